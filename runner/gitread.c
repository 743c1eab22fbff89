/* gitread.c - reading a git repository without a work tree (see gitread.h). */
#include "gitread.h"
#include "error.h"
#include "git.h"
#include "util.h"

#include <git2.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* "WHAT: libgit2's message" as the last error; returns code. */
static int lg_fail(int code, const char *what, const char *arg)
{
	const git_error *e = git_error_last();
	rn_error_set("%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
		     e && e->message && *e->message ? e->message : "unknown libgit2 error");
	git_error_clear();
	return code;
}

/* Open the repository at path (no search upwards), taking one rn_git_init reference that
 * repo_close drops. */
static int repo_open(git_repository **repo, const char *path)
{
	*repo = NULL;
	if (!path || !*path) {
		rn_error_set("no repository path");
		return RN_EINVALID;
	}
	if (rn_git_init() < 0)
		return RN_ERROR;
	int rc = git_repository_open_ext(repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc < 0) {
		git_error_clear();
		rn_git_shutdown();
		*repo = NULL;
		rn_error_set("%s: not a git repository", path);
		return RN_ENOTFOUND;
	}
	return 0;
}

static void repo_close(git_repository *repo)
{
	if (repo) {
		git_repository_free(repo);
		rn_git_shutdown();
	}
}

/* Map a libgit2 lookup failure to our codes. */
static int lookup_fail(int lgrc, const char *what, const char *arg)
{
	if (lgrc == GIT_ENOTFOUND || lgrc == GIT_EINVALIDSPEC || lgrc == GIT_EPEEL) {
		git_error_clear();
		rn_error_set("%s %s: not found", what, arg);
		return RN_ENOTFOUND;
	}
	if (lgrc == GIT_EAMBIGUOUS) {
		git_error_clear();
		rn_error_set("%s %s: ambiguous", what, arg);
		return RN_EINVALID;
	}
	return lg_fail(RN_EIO, what, arg);
}

/* The commit ref names (any rev-parse expression peeled to a commit); caller frees *out. */
static int commit_of(git_commit **out, git_repository *repo, const char *ref)
{
	*out = NULL;
	if (!ref || !*ref || ref[0] == '-') {
		rn_error_set("revision %s: not found", ref ? ref : "(null)");
		return RN_ENOTFOUND;
	}
	git_object *obj = NULL, *peeled = NULL;
	int rc = git_revparse_single(&obj, repo, ref);
	if (rc < 0)
		return lookup_fail(rc, "revision", ref);
	rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (rc < 0)
		return lookup_fail(rc, "revision", ref);
	*out = (git_commit *)peeled;
	return 0;
}

int rn_gitread_resolve(char out[41], const char *repo_path, const char *ref)
{
	out[0] = '\0';
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_commit *c;
	rc = commit_of(&c, repo, ref);
	if (rc == 0) {
		git_oid_tostr(out, 41, git_commit_id(c));
		git_commit_free(c);
	}
	repo_close(repo);
	return rc;
}

/* path without a leading "./" or "/"; NULL if it has a ".." component or is empty. */
static const char *clean_path(const char *path)
{
	while (*path == '/' || (path[0] == '.' && path[1] == '/'))
		path += *path == '/' ? 1 : 2;
	if (!*path)
		return NULL;
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return NULL;
		p += n;
		while (*p == '/')
			p++;
	}
	return path;
}

int rn_gitread_file(char **data, size_t *len, const char *repo_path, const char *sha, const char *path, size_t max)
{
	*data = NULL;
	if (len)
		*len = 0;
	const char *rel = path ? clean_path(path) : NULL;
	if (!rel) {
		rn_error_set("invalid path in repository: %s", path ? path : "(null)");
		return RN_EINVALID;
	}
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_commit *c = NULL;
	git_tree *tree = NULL;
	git_tree_entry *ent = NULL;
	git_blob *blob = NULL;
	if ((rc = commit_of(&c, repo, sha)) < 0)
		goto done;
	if (git_commit_tree(&tree, c) < 0) {
		rc = lg_fail(RN_EIO, "tree of", sha);
		goto done;
	}
	int lrc = git_tree_entry_bypath(&ent, tree, rel);
	if (lrc < 0) {
		if (lrc == GIT_ENOTFOUND) {
			git_error_clear();
			rc = RN_ENOTFOUND;
			rn_error_set("%s: not found in %.12s", rel, sha);
		} else {
			rc = lg_fail(RN_EIO, "looking up", rel);
		}
		goto done;
	}
	git_filemode_t mode = git_tree_entry_filemode(ent);
	if (mode == GIT_FILEMODE_LINK) {
		rc = RN_EINVALID;
		rn_error_set("%s: a symbolic link in %.12s", rel, sha);
		goto done;
	}
	if (git_tree_entry_type(ent) != GIT_OBJECT_BLOB) {
		rc = RN_ENOTFOUND;
		rn_error_set("%s: not a file in %.12s", rel, sha);
		goto done;
	}
	if (git_blob_lookup(&blob, repo, git_tree_entry_id(ent)) < 0) {
		rc = lg_fail(RN_EIO, "reading", rel);
		goto done;
	}
	git_object_size_t size = git_blob_rawsize(blob);
	if ((unsigned long long)size > (unsigned long long)max) {
		rc = RN_ETOOBIG;
		rn_error_set("%s: %llu bytes, more than the limit of %zu", rel, (unsigned long long)size, max);
		goto done;
	}
	char *buf = rn_xmalloc((size_t)size + 1);
	memcpy(buf, git_blob_rawcontent(blob), (size_t)size);
	buf[size] = '\0';
	*data = buf;
	if (len)
		*len = (size_t)size;
	rc = 0;
done:
	git_blob_free(blob);
	git_tree_entry_free(ent);
	git_tree_free(tree);
	git_commit_free(c);
	repo_close(repo);
	return rc;
}

int rn_gitread_is_zero(const char *sha)
{
	if (!sha || strlen(sha) != 40)
		return 0;
	return strspn(sha, "0") == 40;
}

/* State of a diff walk: the paths collected, capped. */
struct changed {
	char **paths;
	size_t n, cap, max;
	int over;
};

static void changed_add(struct changed *ch, const char *path)
{
	if (!path || (ch->n > 0 && strcmp(ch->paths[ch->n - 1], path) == 0))
		return;
	if (ch->n >= ch->max) {
		ch->over = 1;
		return;
	}
	rn_grow(&ch->paths, &ch->cap, ch->n + 1, sizeof(char *));
	ch->paths[ch->n++] = rn_xstrdup(path);
}

static int changed_file(const git_diff_delta *d, float progress, void *payload)
{
	(void)progress;
	struct changed *ch = payload;
	changed_add(ch, d->old_file.path);
	if (!d->old_file.path || strcmp(d->old_file.path, d->new_file.path) != 0)
		changed_add(ch, d->new_file.path);
	return ch->over ? GIT_EUSER : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void rn_gitread_paths_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int rn_gitread_changed(char ***paths, size_t *n, const char *repo_path, const char *old_sha, const char *new_sha,
		       size_t max)
{
	*paths = NULL;
	*n = 0;
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_commit *oc = NULL, *nc = NULL;
	git_tree *ot = NULL, *nt = NULL;
	git_diff *diff = NULL;
	struct changed ch = {NULL, 0, 0, max, 0};
	int has_old = old_sha && *old_sha && !rn_gitread_is_zero(old_sha);
	if (has_old && (rc = commit_of(&oc, repo, old_sha)) < 0)
		goto done;
	if ((rc = commit_of(&nc, repo, new_sha)) < 0)
		goto done;
	if ((oc && git_commit_tree(&ot, oc) < 0) || git_commit_tree(&nt, nc) < 0) {
		rc = lg_fail(RN_EIO, "trees of", new_sha);
		goto done;
	}
	git_diff_options dopts;
	git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
	dopts.flags |= GIT_DIFF_SKIP_BINARY_CHECK;
	if (git_diff_tree_to_tree(&diff, repo, ot, nt, &dopts) < 0) {
		rc = lg_fail(RN_EIO, "diff to", new_sha);
		goto done;
	}
	int frc = git_diff_foreach(diff, changed_file, NULL, NULL, NULL, &ch);
	if (ch.over) {
		git_error_clear();
		rc = RN_ETOOBIG;
		rn_error_set("more than %zu paths changed", max);
		goto done;
	}
	if (frc < 0) {
		rc = lg_fail(RN_EIO, "diff to", new_sha);
		goto done;
	}
	if (ch.n > 1) {
		qsort(ch.paths, ch.n, sizeof(char *), cmp_str);
		size_t w = 1; /* a rename's path may also appear as another delta's path */
		for (size_t r = 1; r < ch.n; r++) {
			if (strcmp(ch.paths[r], ch.paths[w - 1]) == 0)
				free(ch.paths[r]);
			else
				ch.paths[w++] = ch.paths[r];
		}
		ch.n = w;
	}
	*paths = ch.paths;
	*n = ch.n;
	ch.paths = NULL;
	ch.n = 0;
	rc = 0;
done:
	rn_gitread_paths_free(ch.paths, ch.n);
	git_diff_free(diff);
	git_tree_free(ot);
	git_tree_free(nt);
	git_commit_free(oc);
	git_commit_free(nc);
	repo_close(repo);
	return rc;
}

int rn_gitread_merge_base(char out[41], const char *repo_path, const char *a, const char *b)
{
	out[0] = '\0';
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_commit *ca = NULL, *cb = NULL;
	if ((rc = commit_of(&ca, repo, a)) < 0 || (rc = commit_of(&cb, repo, b)) < 0)
		goto done;
	git_oid base;
	int lrc = git_merge_base(&base, repo, git_commit_id(ca), git_commit_id(cb));
	if (lrc == GIT_ENOTFOUND) {
		git_error_clear();
		rc = RN_ENOTFOUND;
		rn_error_set("%s and %s have no common ancestor", a, b);
	} else if (lrc < 0) {
		rc = lg_fail(RN_EIO, "merge base of", a);
	} else {
		git_oid_tostr(out, 41, &base);
		rc = 0;
	}
done:
	git_commit_free(ca);
	git_commit_free(cb);
	repo_close(repo);
	return rc;
}

int rn_gitread_default_branch(char **ref, const char *repo_path)
{
	*ref = NULL;
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_reference *head = NULL;
	if (git_reference_lookup(&head, repo, "HEAD") < 0) {
		rc = lg_fail(RN_ENOTFOUND, "HEAD of", repo_path);
	} else if (git_reference_type(head) != GIT_REFERENCE_SYMBOLIC) {
		rc = RN_ENOTFOUND;
		rn_error_set("%s: HEAD is detached", repo_path);
	} else {
		*ref = rn_xstrdup(git_reference_symbolic_target(head));
		rc = 0;
	}
	git_reference_free(head);
	repo_close(repo);
	return rc;
}

int rn_gitread_config_get(char **value, const char *repo_path, const char *key)
{
	*value = NULL;
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_config *cfg = NULL;
	git_buf buf = {0};
	if (git_repository_config_snapshot(&cfg, repo) < 0) {
		rc = lg_fail(RN_EIO, "config of", repo_path);
		goto done;
	}
	int lrc = git_config_get_string_buf(&buf, cfg, key);
	if (lrc == GIT_ENOTFOUND) {
		git_error_clear();
		rc = RN_ENOTFOUND;
		rn_error_set("%s: not set", key);
	} else if (lrc < 0) {
		rc = lg_fail(RN_EINVALID, "config", key);
	} else {
		*value = rn_xstrdup(buf.ptr ? buf.ptr : "");
		rc = 0;
	}
done:
	git_buf_dispose(&buf);
	git_config_free(cfg);
	repo_close(repo);
	return rc;
}

int rn_gitread_config_set(const char *repo_path, const char *key, const char *value)
{
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_config *all = NULL, *local = NULL;
	if (git_repository_config(&all, repo) < 0 || git_config_open_level(&local, all, GIT_CONFIG_LEVEL_LOCAL) < 0) {
		rc = lg_fail(RN_EIO, "config of", repo_path);
		goto done;
	}
	int lrc;
	if (value) {
		lrc = git_config_set_string(local, key, value);
	} else {
		lrc = git_config_delete_entry(local, key);
		if (lrc == GIT_ENOTFOUND)
			lrc = 0;
	}
	rc = lrc < 0 ? lg_fail(RN_EINVALID, "setting config", key) : 0;
done:
	git_config_free(local);
	git_config_free(all);
	repo_close(repo);
	return rc;
}

/* A copy of path without trailing slashes (but "/" stays). */
static char *strip_slash(const char *path)
{
	char *s = rn_xstrdup(path);
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

int rn_gitread_git_dir(char **git_dir, int *bare, const char *repo_path)
{
	*git_dir = NULL;
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	char real[PATH_MAX];
	const char *gd = git_repository_path(repo);
	*git_dir = strip_slash(realpath(gd, real) ? real : gd);
	if (bare)
		*bare = git_repository_is_bare(repo);
	repo_close(repo);
	return 0;
}

int rn_gitread_hooks_dir(char **dir, const char *repo_path)
{
	*dir = NULL;
	git_repository *repo;
	int rc = repo_open(&repo, repo_path);
	if (rc < 0)
		return rc;
	git_config *cfg = NULL;
	git_buf buf = { 0 };
	char real[PATH_MAX];
	const char *gd = git_repository_path(repo);
	char *gitdir = strip_slash(realpath(gd, real) ? real : gd);
	if (git_repository_config_snapshot(&cfg, repo) == 0 && git_config_get_path(&buf, cfg, "core.hooksPath") == 0 &&
	    buf.ptr && *buf.ptr) {
		if (buf.ptr[0] == '/') {
			*dir = strip_slash(buf.ptr);
		} else {
			const char *wd = git_repository_workdir(repo);
			char *base = strip_slash(wd ? wd : gitdir);
			*dir = rn_xasprintf("%s/%s", base, buf.ptr);
			free(base);
		}
	} else {
		*dir = rn_xasprintf("%s/hooks", gitdir);
	}
	git_error_clear();
	git_buf_dispose(&buf);
	git_config_free(cfg);
	free(gitdir);
	repo_close(repo);
	return 0;
}

char *rn_gitread_toplevel(const char *dir)
{
	git_repository *repo = NULL;
	char *out = NULL;
	if (rn_git_init() < 0)
		return NULL;
	if (git_repository_open_ext(&repo, dir, 0, NULL) < 0) {
		rn_error_set("%s is not in a git repository", dir);
		git_error_clear();
	} else {
		const char *top = git_repository_workdir(repo);
		if (!top)
			top = git_repository_path(repo);
		out = rn_xstrdup(top);
		size_t n = strlen(out);
		while (n > 1 && out[n - 1] == '/')
			out[--n] = '\0';
	}
	git_repository_free(repo);
	rn_git_shutdown();
	return out;
}

int rn_gitread_dirty(const char *top)
{
	git_repository *repo = NULL;
	git_status_list *list = NULL;
	int dirty = 0;
	if (rn_git_init() < 0)
		return 0;
	git_status_options o;
	git_status_options_init(&o, GIT_STATUS_OPTIONS_VERSION);
	o.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	o.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	if (git_repository_open(&repo, top) == 0 && !git_repository_is_bare(repo) &&
	    git_status_list_new(&list, repo, &o) == 0)
		dirty = git_status_list_entrycount(list) > 0;
	git_error_clear();
	git_status_list_free(list);
	git_repository_free(repo);
	rn_git_shutdown();
	return dirty;
}
