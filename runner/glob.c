/* glob.c - path globs (`*`, `**`, `?`, `[...]`, `\` escapes) and a deterministic directory walk.
 *
 * Matching never backtracks exponentially: a path is split into '/'-separated segments and the
 * pattern into segments where `**` is a segment of its own. Both levels use the classic iterative
 * wildcard algorithm that only remembers the last star (the last `**` across segments, the last
 * `*` inside a segment); it is exact because every other token matches exactly one unit (one
 * segment, one character), and it costs O(len(pattern) * len(path)) at worst. Characters are
 * UTF-8 aware: `?` and `[...]` match one code point; invalid bytes match only themselves. */
#include "glob.h"
#include "buf.h"
#include "error.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WALK_MAX_DEPTH 256
#define WALK_MAX_PATH (64 * 1024)

/* Decode the character at s (n > 0 bytes available) into *cp; returns its length in bytes.
 * An invalid or truncated sequence decodes as one byte, mapped past the Unicode range so that
 * it only ever equals the same invalid byte. */
static size_t u8_next(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len;
	uint32_t c, min;
	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	} else if (u[0] >= 0xC2 && u[0] <= 0xDF) {
		len = 2, c = u[0] & 0x1F, min = 0x80;
	} else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
		len = 3, c = u[0] & 0x0F, min = 0x800;
	} else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
		len = 4, c = u[0] & 0x07, min = 0x10000;
	} else {
		goto invalid;
	}
	if (len > n)
		goto invalid;
	for (size_t i = 1; i < len; i++) {
		if ((u[i] & 0xC0) != 0x80)
			goto invalid;
		c = (c << 6) | (u[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		goto invalid;
	*cp = c;
	return len;
invalid:
	*cp = 0x110000u + u[0];
	return 1;
}

/* --- pattern validation ------------------------------------------------------------------- */

/* Validate the bracket expression starting after '[' at p (segment ends at e). On success
 * *end points just past the closing ']' and NULL is returned; else the error message. */
static const char *check_class(const char *p, const char *e, const char **end)
{
	if (p < e && (*p == '!' || *p == '^'))
		p++;
	int first = 1;
	while (p < e) {
		if (*p == ']' && !first) {
			*end = p + 1;
			return NULL;
		}
		first = 0;
		uint32_t lo, hi;
		if (*p == '\\') {
			if (++p == e)
				return *e == '/' ? "'/' cannot be escaped or used in '[...]'"
						 : "unclosed '[' in pattern";
		}
		p += u8_next(p, (size_t)(e - p), &lo);
		if (p + 1 < e && *p == '-' && p[1] != ']') {
			p++;
			if (*p == '\\' && ++p == e)
				return "unclosed '[' in pattern";
			p += u8_next(p, (size_t)(e - p), &hi);
			if (hi < lo)
				return "invalid range in '[...]' (start is after end)";
		}
	}
	return "unclosed '[' in pattern";
}

/* NULL if pattern is valid, else a static message saying why not. */
static const char *check_msg(const char *pattern)
{
	if (!pattern || !*pattern)
		return "empty pattern";
	if (*pattern == '/')
		return "patterns are relative to the workspace";
	const char *s = pattern;
	for (;;) {
		const char *e = strchr(s, '/');
		if (!e)
			e = s + strlen(s);
		size_t n = (size_t)(e - s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return "'..' is not allowed in patterns";
		int dstar = n == 2 && s[0] == '*' && s[1] == '*';
		for (const char *p = s; !dstar && p < e;) {
			if (*p == '\\') {
				if (p + 1 == e)
					return *e == '/' ? "'/' cannot be escaped" : "trailing '\\' in pattern";
				uint32_t c;
				p++;
				p += u8_next(p, (size_t)(e - p), &c);
			} else if (*p == '[') {
				const char *msg = check_class(p + 1, e, &p);
				if (msg)
					return msg;
			} else if (*p == '*' && p + 1 < e && p[1] == '*') {
				return "'**' must be a whole path segment";
			} else {
				p++;
			}
		}
		if (!*e)
			return NULL;
		s = e + 1;
	}
}

int rn_glob_check(const char *pattern)
{
	const char *msg = check_msg(pattern);
	if (!msg)
		return 0;
	rn_error_set("invalid pattern '%s': %s", pattern ? pattern : "", msg);
	return RN_EINVALID;
}

/* --- matching ----------------------------------------------------------------------------- */

/* Next segment at or after *pos, skipping empty and "." segments; 0 at the end. */
static int seg_next(const char **pos, const char **seg, size_t *len)
{
	const char *p = *pos;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p) {
			*pos = p;
			return 0;
		}
		const char *e = p;
		while (*e && *e != '/')
			e++;
		if (!(e - p == 1 && *p == '.')) {
			*seg = p;
			*len = (size_t)(e - p);
			*pos = e;
			return 1;
		}
		p = e;
	}
}

static int is_dstar(const char *seg, size_t len)
{
	return len == 2 && seg[0] == '*' && seg[1] == '*';
}

/* Does the (validated) class after '[' at p match c? *end is set past the closing ']'. */
static int class_match(const char *p, const char *e, uint32_t c, const char **end)
{
	int neg = 0, hit = 0, first = 1;
	if (p < e && (*p == '!' || *p == '^')) {
		neg = 1;
		p++;
	}
	while (p < e && (*p != ']' || first)) {
		first = 0;
		uint32_t lo, hi;
		if (*p == '\\')
			p++;
		p += u8_next(p, (size_t)(e - p), &lo);
		hi = lo;
		if (p + 1 < e && *p == '-' && p[1] != ']') {
			p++;
			if (*p == '\\')
				p++;
			p += u8_next(p, (size_t)(e - p), &hi);
		}
		if (c >= lo && c <= hi)
			hit = 1;
	}
	*end = p < e ? p + 1 : e;
	return hit != neg;
}

/* Match one non-star pattern element at p against one character at s; on a match the element
 * and character lengths go to *pl and *sl. */
static int elem_match(const char *p, size_t pn, const char *s, size_t sn, size_t *pl, size_t *sl)
{
	uint32_t c, pc;
	*sl = u8_next(s, sn, &c);
	switch (*p) {
	case '?':
		*pl = 1;
		return 1;
	case '[': {
		const char *end;
		int m = class_match(p + 1, p + pn, c, &end);
		*pl = (size_t)(end - p);
		return m;
	}
	case '\\':
		*pl = 1 + u8_next(p + 1, pn - 1, &pc);
		return pc == c;
	default:
		*pl = u8_next(p, pn, &pc);
		return pc == c;
	}
}

/* One pattern segment (no `**`) against one path segment. */
static int seg_match(const char *p, size_t pn, const char *s, size_t sn)
{
	size_t pi = 0, si = 0, star_pi = SIZE_MAX, star_si = 0;
	while (si < sn) {
		size_t pl, sl;
		if (pi < pn && p[pi] == '*') {
			star_pi = ++pi;
			star_si = si;
		} else if (pi < pn && elem_match(p + pi, pn - pi, s + si, sn - si, &pl, &sl)) {
			pi += pl;
			si += sl;
		} else if (star_pi != SIZE_MAX) {
			uint32_t c;
			star_si += u8_next(s + star_si, sn - star_si, &c);
			si = star_si;
			pi = star_pi;
		} else {
			return 0;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

/* Whole pattern (validated) against a whole path, segment by segment. */
static int path_match(const char *pattern, const char *path)
{
	const char *pp = pattern, *sp = path, *star_pp = NULL, *star_sp = NULL;
	const char *ps, *ss;
	size_t pn, sn;
	for (;;) {
		const char *pnext = pp, *snext = sp;
		int have_p = seg_next(&pnext, &ps, &pn);
		if (!seg_next(&snext, &ss, &sn)) {
			/* path consumed: the rest of the pattern must be `**` only */
			while (have_p && is_dstar(ps, pn))
				have_p = seg_next(&pnext, &ps, &pn);
			return !have_p;
		}
		if (have_p && is_dstar(ps, pn)) {
			star_pp = pp = pnext;
			star_sp = sp;
		} else if (have_p && seg_match(ps, pn, ss, sn)) {
			pp = pnext;
			sp = snext;
		} else if (star_pp) {
			/* let the last `**` absorb one more segment and retry after it */
			seg_next(&star_sp, &ss, &sn);
			sp = star_sp;
			pp = star_pp;
		} else {
			return 0;
		}
	}
}

int rn_glob_match(const char *pattern, const char *path)
{
	if (!path || check_msg(pattern))
		return 0;
	return path_match(pattern, path);
}

/* 1 if some path strictly below dir could match pattern (validated), so the walk must descend. */
static int could_descend(const char *pattern, const char *dir)
{
	const char *pp = pattern, *sp = dir, *ps, *ss;
	size_t pn, sn;
	for (;;) {
		int have_p = seg_next(&pp, &ps, &pn);
		if (!seg_next(&sp, &ss, &sn))
			return have_p;
		if (!have_p)
			return 0;
		if (is_dstar(ps, pn))
			return 1;
		if (!seg_match(ps, pn, ss, sn))
			return 0;
	}
}

/* 1 if the pattern explicitly names the `.git` directory as its first segment. */
static int names_git(const char *pattern)
{
	const char *pp = pattern, *ps;
	size_t pn;
	if (!seg_next(&pp, &ps, &pn))
		return 0;
	return pn >= 4 && memcmp(ps, ".git", 4) == 0 && seg_match(ps, pn, ".git", 4);
}

/* --- walk --------------------------------------------------------------------------------- */

typedef struct walk {
	const char *root;
	const char *const *inc;
	size_t ninc;
	const char *const *exc;
	size_t nexc;
	rn_glob_cb cb;
	void *payload;
	int keep_git;
	rn_buf path; /* relpath of the entry being visited */
} walk;

static int any_match(const char *const *pats, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (path_match(pats[i], path))
			return 1;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read and sort the names in d (without "." and ".."); caller frees each and the array. */
static int read_names(walk *w, DIR *d, char ***out, size_t *count)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rn_grow(&names, &cap, n + 1, sizeof(*names));
		names[n++] = rn_xstrdup(de->d_name);
	}
	if (errno) {
		int rc = rn_error_errno("read directory %s/%s", w->root, rn_buf_cstr(&w->path));
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return rc;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	*out = names;
	*count = n;
	return 0;
}

/* Visit the entries of the directory open at fd (taken over); included: an ancestor matched. */
static int walk_dir(walk *w, int fd, int included, unsigned depth)
{
	char **names = NULL;
	size_t n = 0, base = w->path.len;
	int rc = 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		rc = rn_error_errno("open directory %s/%s", w->root, rn_buf_cstr(&w->path));
		close(fd);
		return rc;
	}
	if ((rc = read_names(w, d, &names, &n)) < 0)
		goto done;

	for (size_t i = 0; i < n; i++) {
		struct stat st;
		const char *name = names[i];
		w->path.len = base;
		if (w->path.ptr)
			w->path.ptr[base] = '\0';
		if ((base && (rc = rn_buf_putc(&w->path, '/')) < 0) ||
		    (rc = rn_buf_puts(&w->path, name)) < 0) {
			rn_error_set("path too long under %s: %s/%s...", w->root,
				     rn_buf_cstr(&w->path), name);
			goto done;
		}
		const char *rel = w->path.ptr;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* vanished meanwhile */
			rc = rn_error_errno("stat %s/%s", w->root, rel);
			goto done;
		}
		int is_dir = S_ISDIR(st.st_mode);
		if (is_dir && !w->keep_git && strcmp(name, ".git") == 0)
			continue;
		if (any_match(w->exc, w->nexc, rel))
			continue; /* excluded: a directory's subtree goes with it */
		int inc = included || any_match(w->inc, w->ninc, rel);
		if (inc && (rc = w->cb(rel, &st, w->payload)) != 0)
			goto done;
		if (!is_dir)
			continue;
		if (!inc) {
			int descend = 0;
			for (size_t k = 0; k < w->ninc && !descend; k++)
				descend = could_descend(w->inc[k], rel);
			if (!descend)
				continue;
		}
		if (depth + 1 >= WALK_MAX_DEPTH) {
			rn_error_set("%s/%s: directory tree deeper than %d levels", w->root, rel,
				     WALK_MAX_DEPTH);
			rc = RN_ETOOBIG;
			goto done;
		}
		int cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			if (errno == ENOENT)
				continue;
			rc = rn_error_errno("open directory %s/%s", w->root, rel);
			goto done;
		}
		if ((rc = walk_dir(w, cfd, inc, depth + 1)) != 0)
			goto done;
	}

done:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	w->path.len = base;
	if (w->path.ptr)
		w->path.ptr[base] = '\0';
	return rc;
}

int rn_glob_walk(const char *root, const char *const *include, size_t ninclude,
		 const char *const *exclude, size_t nexclude, rn_glob_cb cb, void *payload)
{
	int rc;
	for (size_t i = 0; i < ninclude; i++)
		if ((rc = rn_glob_check(include[i])) < 0)
			return rc;
	for (size_t i = 0; i < nexclude; i++)
		if ((rc = rn_glob_check(exclude[i])) < 0)
			return rc;
	if (!cb)
		return rn_error_set("rn_glob_walk: no callback"), RN_EINVALID;

	walk w = { .root = root, .inc = include, .ninc = ninclude, .exc = exclude,
		   .nexc = nexclude, .cb = cb, .payload = payload };
	w.path = (rn_buf)RN_BUF_INIT(WALK_MAX_PATH);
	for (size_t i = 0; i < ninclude && !w.keep_git; i++)
		w.keep_git = names_git(include[i]);

	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = rn_error_errno("open directory %s", root);
		return errno == ENOENT ? RN_ENOTFOUND : rc;
	}
	/* A pattern matching the root itself ("." or "**") takes everything. */
	int all = any_match(include, ninclude, "") && !any_match(exclude, nexclude, "");
	rc = walk_dir(&w, fd, all, 0);
	rn_buf_free(&w.path);
	return rc;
}
