/* git.c - git checkouts with libgit2 through a local mirror cache (see git.h).
 *
 * Layout of the cache: CACHE/NAME (a bare repository whose `origin` fetches every branch and
 * tag to the same names, pruned) and CACHE/NAME.lock (the flock that serialises updates; held
 * shared while a checkout copies from the mirror). A first clone is built in CACHE/NAME.tmp and
 * renamed into place, so a crash never leaves a half mirror. From a local repository (a path
 * or file://) the first clone links or copies its object files instead of packing them, as
 * `git clone` does for paths.
 *
 * A checkout initialises DEST with `origin` = the real URL (password removed), links the
 * mirror's object files into it, fetches the refs from the mirror (no objects move), checks
 * the commit out and detaches HEAD at it. */
#include "git.h"
#include "buf.h"
#include "error.h"
#include "gitca.h"
#include "util.h"

#include <git2.h>
#include <openssl/evp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TIMEOUT_MS 600000
#define SUBMODULE_DEPTH 8
#define MSG_MAX 900

static const char spec_heads[] = "+refs/heads/*:refs/heads/*";
static const char spec_tags[] = "+refs/tags/*:refs/tags/*";

/* ---- init ---------------------------------------------------------------------------------- */

int rn_git_init(void)
{
	/* the CA certificates are parsed by the first fetch over http(s) (gitca.h) */
	if (rn_gitca_init() < 0) {
		const git_error *e = git_error_last();
		return rn_error_set("libgit2: %s", e && e->message ? e->message : "initialisation failed");
	}
	return 0;
}

void rn_git_shutdown(void)
{
	git_libgit2_shutdown();
}

/* ---- strings and URLs ---------------------------------------------------------------------- */

/* s with every occurrence of needle replaced by "***" (caller frees). */
static char *mask_all(const char *s, const char *needle)
{
	size_t nl = needle ? strlen(needle) : 0;
	if (nl == 0)
		return rn_xstrdup(s);
	rn_buf b = RN_BUF_INIT(64 * 1024);
	const char *p = s, *hit;
	while ((hit = strstr(p, needle))) {
		rn_buf_add(&b, p, (size_t)(hit - p));
		rn_buf_puts(&b, "***");
		p = hit + nl;
	}
	rn_buf_puts(&b, p);
	return rn_buf_detach(&b);
}

/* The span of the userinfo of a URL "scheme://userinfo@host/...": *start and *len, or 0. */
static int userinfo_span(const char *url, size_t *start, size_t *len)
{
	const char *sep = strstr(url, "://");
	if (!sep)
		return 0;
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (auth[i] == '@')
			at = auth + i;
	if (!at)
		return 0;
	*start = (size_t)(auth - url);
	*len = (size_t)(at - auth);
	return 1;
}

/* The password of url's userinfo (caller frees), or NULL. */
static char *url_password(const char *url)
{
	size_t st, len;
	if (!userinfo_span(url, &st, &len))
		return NULL;
	const char *colon = memchr(url + st, ':', len);
	if (!colon || (size_t)(colon - (url + st)) + 1 >= len)
		return NULL;
	return rn_xstrndup(colon + 1, len - (size_t)(colon - (url + st)) - 1);
}

/* url with the password replaced by repl, or removed with its ':' when repl is NULL. */
static char *url_replace_password(const char *url, const char *repl)
{
	size_t st, len;
	if (!userinfo_span(url, &st, &len))
		return rn_xstrdup(url);
	const char *colon = memchr(url + st, ':', len);
	if (!colon)
		return rn_xstrdup(url);
	size_t keep = (size_t)(colon - url);
	return rn_xasprintf("%.*s%s%s%s", (int)keep, url, repl ? ":" : "", repl ? repl : "", url + st + len);
}

char *rn_git_redact_url(const char *url)
{
	return url_replace_password(url ? url : "", "***");
}

/* Secrets that must never reach a message: the token and url's password. A message with them
 * masked, in the error slot; returns code. */
static int fail_msg(int code, const char *url, const char *msg)
{
	char *m = mask_all(msg, getenv("RUNNER_GIT_TOKEN"));
	char *pw = url ? url_password(url) : NULL;
	if (pw && strlen(pw) >= 1) {
		char *m2 = mask_all(m, pw);
		free(m);
		m = m2;
	}
	free(pw);
	rn_error_set("%s", m);
	free(m);
	return code;
}

/* "WHAT: libgit2's message" as the last error (secrets masked); returns code. */
static int git_fail(int code, const char *url, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int git_fail(int code, const char *url, const char *fmt, ...)
{
	char what[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	const git_error *e = git_error_last();
	char *msg = rn_xasprintf("%s: %s", what, e && e->message && *e->message ? e->message : "unknown libgit2 error");
	int rc = fail_msg(code, url, msg);
	free(msg);
	return rc;
}

static int is_url(const char *s)
{
	return strstr(s, "://") != NULL;
}

/* user@host:path (ssh), not a path with a colon in a later component. */
static int is_scp_like(const char *s)
{
	if (is_url(s))
		return 0;
	const char *colon = strchr(s, ':');
	if (!colon || colon == s)
		return 0;
	const char *slash = strchr(s, '/');
	return !slash || slash > colon;
}

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

/* The part of a URL or path that names the repository: after the scheme and userinfo. */
static const char *url_body(const char *url)
{
	const char *sep = strstr(url, "://");
	if (!sep)
		return url;
	size_t st, len;
	if (userinfo_span(url, &st, &len))
		return url + st + len + 1;
	return sep + 3;
}

static void sha256_hex(const char *s, char *out, size_t nhex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hx[] = "0123456789abcdef";
	if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1)
		mdlen = 0;
	size_t i;
	for (i = 0; i < nhex && i / 2 < mdlen; i++)
		out[i] = hx[(md[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
	out[i] = '\0';
}

char *rn_git_mirror_name(const char *url)
{
	char *key = url_replace_password(url ? url : "", NULL);
	char hash[17];
	sha256_hex(key, hash, 16);
	const char *body = url_body(key);
	char slug[49];
	size_t n = 0;
	for (const char *p = body; *p; p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_';
		if (!ok)
			c = '-';
		if (c == '-' && (n == 0 || slug[n - 1] == '-'))
			continue;
		if (n == 0 && c == '.')
			continue;
		if (n < sizeof(slug) - 1)
			slug[n++] = c;
		else {
			/* keep the end: the repository name is the interesting part */
			memmove(slug, slug + 1, n - 1);
			slug[n - 1] = c;
		}
	}
	while (n > 0 && slug[n - 1] == '-')
		n--;
	if (n >= 4 && memcmp(slug + n - 4, ".git", 4) == 0)
		n -= 4;
	while (n > 0 && (slug[n - 1] == '-' || slug[n - 1] == '.'))
		n--;
	slug[n] = '\0';
	char *name = rn_xasprintf("%s%s%s.git", slug[0] == '-' ? slug + 1 : slug, n ? "-" : "", hash);
	free(key);
	return name;
}

char *rn_git_default_dir(const char *url)
{
	const char *body = url ? url_body(url) : "";
	size_t len = strcspn(body, "?#");
	while (len > 0 && body[len - 1] == '/')
		len--;
	size_t st = len;
	while (st > 0 && body[st - 1] != '/' && body[st - 1] != ':')
		st--;
	size_t n = len - st;
	if (n >= 4 && memcmp(body + st + n - 4, ".git", 4) == 0)
		n -= 4;
	if (n == 0 || (n == 1 && body[st] == '.') || (n == 2 && body[st] == '.' && body[st + 1] == '.'))
		return rn_xstrdup("repo");
	return rn_xstrndup(body + st, n);
}

int rn_git_cache_dir(char **out, const char *override)
{
	const char *v;
	if (override && *override)
		*out = rn_xstrdup(override);
	else if ((v = getenv("RUNNER_GIT_CACHE")) && *v)
		*out = rn_xstrdup(v);
	else if ((v = getenv("XDG_CACHE_HOME")) && *v == '/')
		*out = rn_xasprintf("%s/runner/git", v);
	else if ((v = getenv("HOME")) && *v)
		*out = rn_xasprintf("%s/.cache/runner/git", v);
	else
		return rn_error_set("no cache directory for git mirrors: set XDG_CACHE_HOME, HOME or RUNNER_GIT_CACHE");
	return 0;
}

/* ---- where a repository comes from ------------------------------------------------------ */

typedef struct source {
	char *fetch_url;  /* what libgit2 fetches: the URL as given, or a local path made absolute */
	char *stored_url; /* fetch_url without its password: cache key, mirror and checkout config */
	char *shown;      /* fetch_url with its password as ***, for messages */
	char *local_dir;  /* a local repository (a path or file://) whose objects can be linked */
} source;

static void source_free(source *s)
{
	free(s->fetch_url);
	free(s->stored_url);
	free(s->shown);
	free(s->local_dir);
	memset(s, 0, sizeof(*s));
}

static int source_init(source *s, const char *url_or_path)
{
	memset(s, 0, sizeof(*s));
	if (!url_or_path || !*url_or_path)
		return rn_error_set("no repository given"), RN_EINVALID;
	if (is_url(url_or_path) || is_scp_like(url_or_path)) {
		s->fetch_url = rn_xstrdup(url_or_path);
		if (rn_startswith(url_or_path, "file://")) {
			char real[PATH_MAX];
			if (realpath(url_or_path + 7, real))
				s->local_dir = rn_xstrdup(real);
		}
	} else {
		char real[PATH_MAX];
		if (!realpath(url_or_path, real))
			return rn_error_errno("repository %s", url_or_path);
		s->fetch_url = rn_xstrdup(real);
		s->local_dir = rn_xstrdup(real);
	}
	s->stored_url = url_replace_password(s->fetch_url, NULL);
	s->shown = rn_git_redact_url(s->fetch_url);
	return 0;
}

/* ---- remote callbacks: credentials and progress ------------------------------------------ */

typedef struct remote_ctx {
	const source *src;
	const rn_git_opts *o;
	FILE *out;
	int mode; /* RN_GIT_PROGRESS_NONE, _LINE or _SUMMARY */
	int64_t t0, last;
	int line_shown;
	size_t linked; /* object files linked or copied from a local repository */
	int userpass_tries, key_tries, agent_tries;
	char auth_msg[512];
} remote_ctx;

static void remote_ctx_init(remote_ctx *c, const source *src, const rn_git_opts *o)
{
	memset(c, 0, sizeof(*c));
	c->src = src;
	c->o = o;
	c->out = o && o->progress_out ? o->progress_out : stderr;
	int mode = o ? o->progress : RN_GIT_PROGRESS_NONE;
	if (mode == RN_GIT_PROGRESS_AUTO)
		mode = isatty(fileno(c->out)) ? RN_GIT_PROGRESS_LINE : RN_GIT_PROGRESS_SUMMARY;
	c->mode = mode;
	c->t0 = c->last = rn_now_ms();
}

static int on_credentials(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
			  void *payload)
{
	remote_ctx *c = payload;
	(void)url;
	const char *shown = c->src->shown;
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		const char *token = getenv("RUNNER_GIT_TOKEN");
		char *pw = url_password(c->src->fetch_url);
		int url_has_password = pw != NULL;
		free(pw);
		if ((!token || !*token) && url_has_password) {
			snprintf(c->auth_msg, sizeof(c->auth_msg),
				 "authentication failed for %s: the server refused the password in the URL", shown);
			git_error_set_str(GIT_ERROR_NET, c->auth_msg);
			return GIT_EAUTH;
		}
		if (!token || !*token) {
			snprintf(c->auth_msg, sizeof(c->auth_msg),
				 "authentication required by %s: set RUNNER_GIT_TOKEN (a token used as the password)", shown);
			git_error_set_str(GIT_ERROR_NET, c->auth_msg);
			return GIT_EAUTH;
		}
		if (c->userpass_tries++ > 0) {
			snprintf(c->auth_msg, sizeof(c->auth_msg),
				 "authentication failed for %s: the server refused the token in RUNNER_GIT_TOKEN", shown);
			git_error_set_str(GIT_ERROR_NET, c->auth_msg);
			return GIT_EAUTH;
		}
		return git_credential_userpass_plaintext_new(
			out, user_from_url && *user_from_url ? user_from_url : "x-access-token", token);
	}
	const char *user = user_from_url && *user_from_url ? user_from_url : "git";
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user);
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		const char *key = getenv("RUNNER_GIT_SSH_KEY");
		if (key && *key && c->key_tries++ == 0)
			return git_credential_ssh_key_new(out, user, NULL, key, getenv("RUNNER_GIT_SSH_PASSPHRASE"));
		const char *agent = getenv("SSH_AUTH_SOCK");
		if (agent && *agent && c->agent_tries++ == 0)
			return git_credential_ssh_key_from_agent(out, user);
		snprintf(c->auth_msg, sizeof(c->auth_msg),
			 "ssh authentication failed for %s: %s", shown,
			 c->key_tries || c->agent_tries ? "the server refused the key"
							: "set RUNNER_GIT_SSH_KEY (a private key file) or run an ssh agent");
		git_error_set_str(GIT_ERROR_NET, c->auth_msg);
		return GIT_EAUTH;
	}
	return GIT_PASSTHROUGH;
}

static void report(remote_ctx *c, const git_indexer_progress *st, int done)
{
	if (c->o && c->o->on_progress) {
		rn_git_progress p = { c->src->shown, st->total_objects, st->received_objects, st->indexed_objects,
				      (unsigned long long)st->received_bytes, done };
		c->o->on_progress(&p, c->o->payload);
	}
	double secs = (double)(rn_now_ms() - c->t0) / 1000.0;
	double kib = (double)st->received_bytes / 1024.0;
	if (c->mode == RN_GIT_PROGRESS_LINE && !done) {
		fprintf(c->out, "\r\033[K%s: receiving objects %u/%u (%.0f KiB), indexed %u", c->src->shown,
			st->received_objects, st->total_objects, kib, st->indexed_objects);
		fflush(c->out);
		c->line_shown = 1;
	} else if (done && c->mode != RN_GIT_PROGRESS_NONE) {
		if (c->linked)
			fprintf(c->out, "%s%s: mirrored by linking %zu object files, fetched %u objects (%.0f KiB) in %.1f s\n",
				c->line_shown ? "\r\033[K" : "", c->src->shown, c->linked, st->received_objects, kib, secs);
		else
			fprintf(c->out, "%s%s: fetched %u objects (%.0f KiB) in %.1f s\n", c->line_shown ? "\r\033[K" : "",
				c->src->shown, st->received_objects, kib, secs);
		fflush(c->out);
	}
}

static int on_transfer(const git_indexer_progress *st, void *payload)
{
	remote_ctx *c = payload;
	int64_t now = rn_now_ms();
	if (now - c->last < 100)
		return 0;
	c->last = now;
	report(c, st, 0);
	return 0;
}

typedef struct insteadof {
	const char *url;
	size_t best;
	char *out;
} insteadof;

static int insteadof_cb(const git_config_entry *e, void *payload)
{
	insteadof *st = payload;
	size_t n = strlen(e->name), vl = e->value ? strlen(e->value) : 0;
	if (n < 15 || !rn_startswith(e->name, "url.") || strcmp(e->name + n - 10, ".insteadof") != 0 || vl == 0 ||
	    vl <= st->best || strncmp(st->url, e->value, vl) != 0)
		return 0;
	st->best = vl;
	free(st->out);
	st->out = rn_xasprintf("%.*s%s", (int)(n - 14), e->name + 4, st->url + vl);
	return 0;
}

/* url rewritten by the longest matching url.<base>.insteadOf of repo's configuration (global
 * included), as git does; caller frees. (Done here: libgit2 1.5's own rewriting goes through a
 * regex config iterator that leaks ~400 KB per remote.) */
static char *apply_insteadof(git_repository *repo, const char *url)
{
	insteadof st = { url, 0, NULL };
	git_config *cfg = NULL;
	if (git_repository_config_snapshot(&cfg, repo) == 0)
		git_config_foreach(cfg, insteadof_cb, &st);
	git_config_free(cfg);
	git_error_clear();
	return st.out ? st.out : rn_xstrdup(url);
}

/* Configure remote.origin of repo: url, one fetch refspec, and optional tagOpt and prune. No
 * git_remote_create*: see apply_insteadof. */
static int set_origin(git_repository *repo, const char *url, const char *fetchspec, int mirror)
{
	git_config *cfg = NULL;
	int err = git_repository_config(&cfg, repo);
	if (err == 0)
		err = git_config_set_string(cfg, "remote.origin.url", url);
	if (err == 0)
		err = git_config_set_string(cfg, "remote.origin.fetch", fetchspec);
	if (err == 0 && mirror)
		err = git_config_set_string(cfg, "remote.origin.tagOpt", "--tags");
	if (err == 0 && mirror)
		err = git_config_set_bool(cfg, "remote.origin.prune", 1);
	git_config_free(cfg);
	return err < 0 ? git_fail(RN_EIO, NULL, "configuring %s", git_repository_path(repo)) : 0;
}

/* Fetch specs (all tags too) from url into repo through an in-memory remote. prune for
 * mirrors; *keep (if not NULL) gets the remote, still holding the list of remote refs. */
static int fetch_from(git_repository *repo, const char *url, const char *const *specs, size_t nspecs, int prune,
		      remote_ctx *c, git_remote **keep)
{
	git_remote *remote = NULL;
	git_remote_create_options ro;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	char *real = apply_insteadof(repo, url);
	int err = git_remote_create_with_opts(&remote, real, &ro);
	/* https (or http, which may redirect to it) verifies the server against the CA certificates */
	int tls = strncasecmp(real, "http", 4) == 0;
	free(real);
	if (err < 0)
		return git_fail(RN_EIO, c->src->fetch_url, "%s", c->src->shown);
	if (tls && rn_gitca_load() < 0) {
		char msg[MSG_MAX];
		snprintf(msg, sizeof(msg), "%s", rn_error_last());
		git_remote_free(remote);
		return rn_error_set("fetching %s: %s", c->src->shown, msg);
	}
	git_fetch_options fo;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks.credentials = on_credentials;
	fo.callbacks.transfer_progress = on_transfer;
	fo.callbacks.payload = c;
	fo.prune = prune ? GIT_FETCH_PRUNE : GIT_FETCH_NO_PRUNE;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
	char *v[4];
	git_strarray arr = { v, 0 };
	for (size_t i = 0; i < nspecs && i < 4; i++)
		v[arr.count++] = (char *)(uintptr_t)specs[i];
	c->line_shown = 0;
	c->last = 0; /* the first progress call shows the line at once */
	c->auth_msg[0] = '\0';
	err = git_remote_fetch(remote, &arr, &fo, "fetch");
	if (err < 0) {
		int rc;
		if (c->line_shown)
			fprintf(c->out, "\n");
		if (c->auth_msg[0])
			rc = fail_msg(RN_EIO, c->src->fetch_url, c->auth_msg);
		else
			rc = git_fail(RN_EIO, c->src->fetch_url, "fetching %s", c->src->shown);
		git_remote_free(remote);
		return rc;
	}
	report(c, git_remote_stats(remote), 1);
	if (keep)
		*keep = remote;
	else
		git_remote_free(remote);
	return 0;
}

/* ---- files ------------------------------------------------------------------------------- */

static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return rn_error_errno("%s", from);
	struct stat st;
	if (fstat(in, &st) < 0) {
		close(in);
		return rn_error_errno("%s", from);
	}
	int outfd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0777);
	if (outfd < 0) {
		close(in);
		return errno == EEXIST ? 0 : rn_error_errno("%s", to);
	}
	int rc = 0;
	off_t left = st.st_size;
	while (left > 0) {
		ssize_t n = sendfile(outfd, in, NULL, left > (1 << 30) ? (size_t)1 << 30 : (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = rn_error_errno("copy %s", from);
			break;
		}
		left -= n;
	}
	if (close(outfd) < 0 && rc == 0)
		rc = rn_error_errno("%s", to);
	close(in);
	if (rc < 0)
		unlink(to);
	return rc;
}

/* Hard-link (or copy, across file systems) the object files of one objects directory into
 * another: pack/ and the loose-object fan-out directories, not info/ (alternates) nor
 * temporary files of a write in progress. *linked counts the files. */
static int link_objects(const char *from, const char *to, int depth, int *can_link, size_t *count)
{
	DIR *d = opendir(from);
	if (!d)
		return rn_error_errno("%s", from);
	if (rn_mkdir_p(to, 0755) < 0) {
		closedir(d);
		return RN_EIO;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		const char *n = e->d_name;
		if (n[0] == '.' || rn_startswith(n, "tmp") || rn_startswith(n, "pack_git2_") || strstr(n, ".lock"))
			continue;
		char *s = rn_xasprintf("%s/%s", from, n), *t = rn_xasprintf("%s/%s", to, n);
		struct stat st;
		if (lstat(s, &st) < 0) {
			rc = rn_error_errno("%s", s);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth == 0 && (strcmp(n, "pack") == 0 || (strlen(n) == 2 && is_hex(n, 2))))
				rc = link_objects(s, t, 1, can_link, count);
		} else if (S_ISREG(st.st_mode) && depth == 1) {
			if (*can_link && link(s, t) == 0) {
				(*count)++;
			} else if (*can_link && errno == EEXIST) {
				/* already there */
			} else {
				if (*can_link && errno != EXDEV && errno != EPERM && errno != EMLINK && errno != EACCES) {
					rc = rn_error_errno("link %s", t);
				} else {
					*can_link = 0;
					rc = copy_file(s, t);
					if (rc == 0)
						(*count)++;
				}
			}
		}
		free(s);
		free(t);
	}
	closedir(d);
	return rc;
}

/* The objects directory of repo (its common dir for worktrees); caller frees. */
static char *objects_dir(git_repository *repo)
{
	const char *common = git_repository_commondir(repo);
	size_t n = strlen(common);
	return rn_xasprintf("%s%sobjects", common, n && common[n - 1] == '/' ? "" : "/");
}

static int file_exists(const char *dir, const char *name)
{
	char *p = rn_xasprintf("%s/%s", dir, name);
	struct stat st;
	int r = stat(p, &st) == 0;
	free(p);
	return r;
}

/* Link the object files of the local repository at path into repo, when that is safe (no
 * alternates, not shallow): the fetch that follows then finds every object present. */
static void link_local_objects(git_repository *repo, const char *path, size_t *count)
{
	git_repository *src = NULL;
	if (git_repository_open_ext(&src, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		git_error_clear();
		return;
	}
	char *from = objects_dir(src), *to = objects_dir(repo);
	const char *common = git_repository_commondir(src);
	if (!file_exists(from, "info/alternates") && !file_exists(common, "shallow")) {
		int can_link = 1;
		if (link_objects(from, to, 0, &can_link, count) < 0)
			rn_error_clear(); /* the fetch brings what is missing */
	}
	free(from);
	free(to);
	git_repository_free(src);
}

/* ---- the mirror ------------------------------------------------------------------------- */

typedef struct mirror {
	char *path;  /* absolute path of the bare mirror */
	int lock_fd; /* flock on PATH.lock, -1 when released */
} mirror;

static void mirror_release(mirror *m)
{
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
	free(m->path);
	m->path = NULL;
}

static int lock_exclusive(int *fd_out, const char *lock_path, const rn_git_opts *o, remote_ctx *c)
{
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return rn_error_errno("lock %s", lock_path);
	int timeout = o && o->lock_timeout_ms > 0 ? o->lock_timeout_ms : LOCK_TIMEOUT_MS;
	int64_t start = rn_now_ms();
	long nap_ms = 5;
	int said = 0;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			int rc = rn_error_errno("lock %s", lock_path);
			close(fd);
			return rc;
		}
		int64_t waited = rn_now_ms() - start;
		if (waited >= timeout) {
			close(fd);
			rn_error_set("timed out after %.1f s waiting for %s (another process is updating the mirror of %s)",
				     (double)timeout / 1000.0, lock_path, c->src->shown);
			return RN_EIO;
		}
		if (!said && waited >= 1000 && c->mode != RN_GIT_PROGRESS_NONE) {
			fprintf(c->out, "%s: waiting for another process updating its mirror\n", c->src->shown);
			fflush(c->out);
			said = 1;
		}
		struct timespec ts = { 0, nap_ms * 1000000L };
		nanosleep(&ts, NULL);
		if (nap_ms < 100)
			nap_ms *= 2;
	}
	*fd_out = fd;
	return 0;
}

/* Point the mirror's HEAD at the remote's default branch. */
static void mirror_set_head(git_repository *repo, git_remote *remote)
{
	git_buf buf = { NULL, 0, 0 };
	git_reference *r = NULL;
	if (git_remote_default_branch(&buf, remote) == 0 && git_reference_lookup(&r, repo, buf.ptr) == 0)
		git_repository_set_head(repo, buf.ptr);
	git_reference_free(r);
	git_buf_dispose(&buf);
	git_error_clear();
}

static int mirror_create(const char *path, remote_ctx *c, const char *const *specs, size_t nspecs)
{
	const source *s = c->src;
	char *tmp = rn_xasprintf("%s.tmp", path);
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	int rc = rn_rm_rf(tmp);
	if (rc < 0)
		goto out;
	git_repository_init_options io;
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
	io.description = s->stored_url;
	if (git_repository_init_ext(&repo, tmp, &io) < 0) {
		rc = git_fail(RN_EIO, s->fetch_url, "creating the mirror %s", tmp);
		goto out;
	}
	if ((rc = set_origin(repo, s->stored_url, spec_heads, 1)) < 0)
		goto out;
	if (s->local_dir)
		link_local_objects(repo, s->local_dir, &c->linked);
	rc = fetch_from(repo, s->fetch_url, specs, nspecs, 1, c, &remote);
	if (rc < 0)
		goto out;
	mirror_set_head(repo, remote);
	git_remote_free(remote);
	remote = NULL;
	git_repository_free(repo);
	repo = NULL;
	if (rename(tmp, path) < 0)
		rc = rn_error_errno("rename %s", tmp);
out:
	git_remote_free(remote);
	git_repository_free(repo);
	if (rc < 0)
		rn_rm_rf(tmp);
	free(tmp);
	return rc;
}

/* Update or create the mirror of c->src under cache_dir, taking the exclusive lock (left held
 * in m->lock_fd). extra: one more refspec to fetch, or NULL. */
/* 1 if the repository has the commit want (a git_oid), without touching the network. */
static int has_commit(git_repository *repo, const git_oid *want)
{
	git_commit *cm = NULL;
	if (git_commit_lookup(&cm, repo, want) < 0) {
		git_error_clear();
		return 0;
	}
	git_commit_free(cm);
	return 1;
}

/* Bring the mirror of c's source up to date under its lock (held exclusively on return). With
 * want (may be NULL): a commit that, already in the mirror, makes the fetch unnecessary (a
 * commit never changes; agents check out exact shas). */
static int mirror_sync(mirror *m, const char *cache_dir, remote_ctx *c, const char *extra, const git_oid *want)
{
	m->path = NULL;
	m->lock_fd = -1;
	char *dir = NULL, *name = NULL, *lock = NULL;
	int rc = rn_git_cache_dir(&dir, cache_dir ? cache_dir : (c->o ? c->o->cache_dir : NULL));
	if (rc < 0)
		return rc;
	char real[PATH_MAX];
	if (rn_mkdir_p(dir, 0755) < 0 || !realpath(dir, real)) {
		rc = rn_error_errno("git cache %s", dir);
		free(dir);
		return rc;
	}
	free(dir);
	name = rn_git_mirror_name(c->src->stored_url);
	m->path = rn_xasprintf("%s/%s", real, name);
	lock = rn_xasprintf("%s.lock", m->path);
	free(name);
	rc = lock_exclusive(&m->lock_fd, lock, c->o, c);
	free(lock);
	if (rc < 0) {
		mirror_release(m);
		return rc;
	}
	c->t0 = rn_now_ms();
	const char *const specs[3] = { spec_heads, spec_tags, extra };
	size_t nspecs = extra ? 3 : 2;
	git_repository *repo = NULL;
	struct stat st;
	if (stat(m->path, &st) == 0) {
		if (git_repository_open_bare(&repo, m->path) < 0) {
			/* not a repository (a crash during a rename, a disk error): start over */
			git_error_clear();
			if ((rc = rn_rm_rf(m->path)) < 0) {
				mirror_release(m);
				return rc;
			}
		}
	}
	if (repo && want && has_commit(repo, want)) {
		git_repository_free(repo);
		return 0;
	}
	if (repo) {
		git_remote *remote = NULL;
		rc = fetch_from(repo, c->src->fetch_url, specs, nspecs, 1, c, &remote);
		if (rc == 0) {
			mirror_set_head(repo, remote);
			git_remote_free(remote);
		}
		git_repository_free(repo);
	} else {
		rc = mirror_create(m->path, c, specs, nspecs);
	}
	if (rc < 0)
		mirror_release(m);
	return rc;
}

int rn_git_mirror_update(char **mirror_path, const char *cache_dir, const char *url, const rn_git_opts *o)
{
	*mirror_path = NULL;
	if (rn_git_init() < 0)
		return RN_ERROR;
	source s;
	int rc = source_init(&s, url);
	if (rc == 0) {
		remote_ctx c;
		remote_ctx_init(&c, &s, o);
		mirror m;
		rc = mirror_sync(&m, cache_dir, &c, NULL, NULL);
		if (rc == 0) {
			*mirror_path = m.path;
			m.path = NULL;
			mirror_release(&m);
		}
	}
	source_free(&s);
	rn_git_shutdown();
	return rc;
}

/* ---- refs --------------------------------------------------------------------------------- */

static int peel_commit(git_oid *oid, git_object *obj)
{
	git_object *c = NULL;
	if (git_object_peel(&c, obj, GIT_OBJECT_COMMIT) < 0) {
		git_error_clear();
		return -1;
	}
	git_oid_cpy(oid, git_object_id(c));
	git_object_free(c);
	return 0;
}

static void set_str(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

/* Resolve ref in the mirror: the default branch, a branch, a tag, a full ref, a full or short
 * sha, in that order. */
static int resolve_ref(git_repository *repo, const char *ref, const char *shown, git_oid *oid, rn_git_result *res)
{
	git_reference *r = NULL;
	memset(res, 0, sizeof(*res));
	if (!ref || !*ref) {
		git_object *obj = NULL;
		int err = git_repository_head(&r, repo);
		if (err == 0 && git_reference_peel(&obj, r, GIT_OBJECT_COMMIT) == 0) {
			git_oid_cpy(oid, git_object_id(obj));
			set_str(res->ref, sizeof(res->ref), git_reference_name(r));
			if (rn_startswith(res->ref, "refs/heads/"))
				set_str(res->branch, sizeof(res->branch), res->ref + 11);
			git_object_free(obj);
			git_reference_free(r);
			return 0;
		}
		git_reference_free(r);
		git_error_clear();
		rn_error_set("%s has no default branch (is the repository empty?)", shown);
		return RN_ENOTFOUND;
	}
	if (strlen(ref) > 200 || strchr(ref, '\n')) {
		rn_error_set("invalid ref '%.200s' for %s", ref, shown);
		return RN_ENOTFOUND;
	}
	char *cand[3];
	size_t nc = 0;
	if (rn_startswith(ref, "refs/")) {
		cand[nc++] = rn_xstrdup(ref);
	} else {
		cand[nc++] = rn_xasprintf("refs/heads/%s", ref);
		cand[nc++] = rn_xasprintf("refs/tags/%s", ref);
		cand[nc++] = rn_xasprintf("refs/%s", ref);
	}
	int found = 0;
	for (size_t i = 0; i < nc && !found; i++) {
		git_object *obj = NULL;
		if (git_reference_lookup(&r, repo, cand[i]) == 0 && git_reference_peel(&obj, r, GIT_OBJECT_COMMIT) == 0) {
			git_oid_cpy(oid, git_object_id(obj));
			set_str(res->ref, sizeof(res->ref), cand[i]);
			if (rn_startswith(cand[i], "refs/heads/"))
				set_str(res->branch, sizeof(res->branch), cand[i] + 11);
			found = 1;
		}
		git_object_free(obj);
		git_reference_free(r);
		r = NULL;
	}
	for (size_t i = 0; i < nc; i++)
		free(cand[i]);
	git_error_clear();
	if (found)
		return 0;
	size_t len = strlen(ref);
	if (len >= 4 && len <= GIT_OID_HEXSZ && is_hex(ref, len)) {
		git_oid prefix;
		git_object *obj = NULL;
		int err = git_oid_fromstrn(&prefix, ref, len);
		if (err == 0)
			err = git_object_lookup_prefix(&obj, repo, &prefix, len, GIT_OBJECT_ANY);
		if (err == GIT_EAMBIGUOUS) {
			git_error_clear();
			rn_error_set("ref '%s' is ambiguous in %s: more than one object starts with it; give more digits",
				     ref, shown);
			return RN_ENOTFOUND;
		}
		if (err == 0 && peel_commit(oid, obj) == 0) {
			git_object_free(obj);
			set_str(res->ref, sizeof(res->ref), git_oid_tostr_s(oid));
			return 0;
		}
		git_object_free(obj);
		git_error_clear();
	}
	rn_error_set("ref '%s' not found in %s: no branch, tag or commit of that name", ref, shown);
	return RN_ENOTFOUND;
}

/* ---- checkouts ---------------------------------------------------------------------------- */

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* 1 if path is a checkout made by this module (marked runner.checkout in its config). */
static int is_our_checkout(const char *path)
{
	char *cfgpath = rn_xasprintf("%s/.git/config", path);
	git_config *cfg = NULL;
	int v = 0;
	if (git_config_open_ondisk(&cfg, cfgpath) == 0 && git_config_get_bool(&v, cfg, "runner.checkout") < 0)
		v = 0;
	git_config_free(cfg);
	git_error_clear();
	free(cfgpath);
	return v;
}

static int prepare_dest(const char *dest)
{
	struct stat st;
	if (lstat(dest, &st) < 0) {
		if (errno != ENOENT)
			return rn_error_errno("%s", dest);
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		rn_error_set("checkout destination %s exists and is not a directory", dest);
		return RN_EINVALID;
	}
	if (dir_is_empty(dest))
		return 0;
	if (is_our_checkout(dest))
		return rn_rm_rf(dest);
	rn_error_set("checkout destination %s exists and is not empty (and is not an earlier checkout)", dest);
	return RN_EINVALID;
}

/* Set refs/remotes/origin/HEAD like git clone does: to origin/<the mirror's HEAD branch>. */
static void set_origin_head(git_repository *repo, git_repository *mr)
{
	git_reference *h = NULL, *t = NULL, *out = NULL;
	if (git_reference_lookup(&h, mr, "HEAD") == 0 && git_reference_type(h) == GIT_REFERENCE_SYMBOLIC &&
	    rn_startswith(git_reference_symbolic_target(h), "refs/heads/")) {
		char *target = rn_xasprintf("refs/remotes/origin/%s", git_reference_symbolic_target(h) + 11);
		if (git_reference_lookup(&t, repo, target) == 0)
			git_reference_symbolic_create(&out, repo, "refs/remotes/origin/HEAD", target, 1, NULL);
		free(target);
	}
	git_reference_free(h);
	git_reference_free(t);
	git_reference_free(out);
	git_error_clear();
}

static int tree_has_attributes(const char *root, const git_tree_entry *e, void *payload)
{
	(void)root;
	if (strcmp(git_tree_entry_name(e), ".gitattributes") == 0) {
		*(int *)payload = 1;
		return -1; /* stop the walk */
	}
	return 0;
}

static int file_readable(const char *path)
{
	return path && access(path, R_OK) == 0;
}

/* 1 if checking tree out into repo may need a filter (CRLF, ident, ...): core.autocrlf=true or
 * any attributes (a .gitattributes in the tree, core.attributesFile, the global or system
 * attributes file). Without, libgit2's per-file attribute lookups (two realpath() calls and
 * several stat()s per file, more than half of a checkout's time) change nothing and are
 * skipped. */
static int needs_filters(git_repository *repo, git_tree *tree)
{
	git_config *cfg = NULL;
	int need = 0;
	const char *v = NULL;
	if (git_repository_config_snapshot(&cfg, repo) < 0) {
		git_error_clear();
		return 1;
	}
	if (git_config_get_string(&v, cfg, "core.autocrlf") == 0 &&
	    (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0))
		need = 1;
	git_buf file = { NULL, 0, 0 };
	if (!need && git_config_get_path(&file, cfg, "core.attributesFile") == 0 && file_readable(file.ptr))
		need = 1;
	git_buf_dispose(&file);
	git_config_free(cfg);
	git_error_clear();
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *global = xdg && *xdg ? rn_xasprintf("%s/git/attributes", xdg)
				   : home && *home ? rn_xasprintf("%s/.config/git/attributes", home) : NULL;
	if (!need && (file_readable(global) || file_readable("/etc/gitattributes")))
		need = 1;
	free(global);
	if (!need && git_tree_walk(tree, GIT_TREEWALK_PRE, tree_has_attributes, &need) < 0 && !need)
		need = 1; /* the walk failed: be safe */
	git_error_clear();
	return need;
}

static const char spec_origin[] = "+refs/heads/*:refs/remotes/origin/*";

/* Fill repo (fresh) from the mirror with `origin` = origin_url, and check out oid, detached. */
static int fill_from_mirror(git_repository *repo, git_repository *mr, const char *mirror_path, const char *origin_url,
			    const git_oid *oid, remote_ctx *c)
{
	int rc = set_origin(repo, origin_url, spec_origin, 0);
	if (rc < 0)
		return rc;
	char *from = objects_dir(mr), *to = objects_dir(repo);
	int can_link = 1;
	size_t n = 0;
	rc = link_objects(from, to, 0, &can_link, &n);
	free(from);
	free(to);
	if (rc < 0)
		return rc;
	remote_ctx local = *c;
	local.mode = RN_GIT_PROGRESS_NONE; /* a local fetch of refs: no objects move */
	local.o = NULL;
	const char *const specs[1] = { spec_origin };
	rc = fetch_from(repo, mirror_path, specs, 1, 0, &local, NULL);
	if (rc < 0)
		return rc;
	set_origin_head(repo, mr);
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_checkout_options co;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	int err = git_commit_lookup(&commit, repo, oid);
	if (err == 0)
		err = git_commit_tree(&tree, commit);
	if (err == 0) {
		co.disable_filters = !needs_filters(repo, tree);
		err = git_checkout_tree(repo, (git_object *)tree, &co);
	}
	if (err == 0)
		err = git_repository_set_head_detached(repo, oid);
	if (err < 0)
		rc = git_fail(RN_EIO, c->src->fetch_url, "checking out %s from %s", git_oid_tostr_s(oid), c->src->shown);
	git_tree_free(tree);
	git_commit_free(commit);
	return rc;
}

static int checkout_impl(const char *url_or_path, const char *ref, const char *extra, const char *dest,
			 const rn_git_opts *o, rn_git_result *res);

/* A submodule URL relative to the superproject's (./x, ../x) made absolute as git does: the
 * superproject's URL taken as a directory. Caller frees. */
static char *resolve_relative(const char *base, const char *rel)
{
	if (!rn_startswith(rel, "./") && !rn_startswith(rel, "../"))
		return rn_xstrdup(rel);
	char *b = rn_xstrdup(base);
	size_t n = strlen(b);
	while (n > 1 && b[n - 1] == '/')
		b[--n] = '\0';
	/* the part that "../" never removes: scheme://authority */
	const char *sep = strstr(b, "://");
	size_t floor = sep ? (size_t)(sep - b) + 3 + strcspn(sep + 3, "/") : 0;
	char joiner = '/';
	const char *r = rel;
	for (;;) {
		if (rn_startswith(r, "./")) {
			r += 2;
		} else if (rn_startswith(r, "../")) {
			r += 3;
			size_t i = strlen(b);
			while (i > floor && b[i - 1] != '/' && !(b[i - 1] == ':' && !sep))
				i--;
			if (i > floor) {
				joiner = b[i - 1];
				b[i - 1] = '\0';
			}
		} else {
			break;
		}
	}
	char *out = rn_xasprintf("%s%c%s", b, joiner, r);
	free(b);
	return out;
}

#define SUBMODULES_MAX 1000

typedef struct submodule {
	char *name, *path, *url;
} submodule;

typedef struct submodules {
	submodule *v;
	size_t n, cap;
} submodules;

static int gitmodules_cb(const git_config_entry *e, void *payload)
{
	submodules *l = payload;
	const char *k = e->name, *dot = strrchr(k, '.');
	if (!rn_startswith(k, "submodule.") || dot <= k + 10 || (strcmp(dot, ".path") != 0 && strcmp(dot, ".url") != 0))
		return 0;
	size_t nlen = (size_t)(dot - (k + 10));
	submodule *sm = NULL;
	for (size_t i = 0; i < l->n && !sm; i++)
		if (strlen(l->v[i].name) == nlen && memcmp(l->v[i].name, k + 10, nlen) == 0)
			sm = &l->v[i];
	if (!sm) {
		if (l->n >= SUBMODULES_MAX)
			return 0;
		rn_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v));
		sm = &l->v[l->n++];
		memset(sm, 0, sizeof(*sm));
		sm->name = rn_xstrndup(k + 10, nlen);
	}
	char **slot = strcmp(dot, ".path") == 0 ? &sm->path : &sm->url;
	free(*slot);
	*slot = rn_xstrdup(e->value ? e->value : "");
	return 0;
}

static void submodules_free(submodules *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].path);
		free(l->v[i].url);
	}
	free(l->v);
}

/* 1 if a submodule name or path stays where it belongs: relative, no "..", no ".git". */
static int sub_path_ok(const char *p)
{
	if (!*p || *p == '/')
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");
		if ((n == 2 && p[0] == '.' && p[1] == '.') || (n == 4 && strncasecmp(p, ".git", 4) == 0))
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

/* Check out one submodule (the gitlink oid at sm->path) through its own mirror, with its git
 * directory under .git/modules/NAME as git does; *out gets the repository. */
static int checkout_submodule(git_repository **out, git_repository *repo, const submodule *sm, const git_oid *oid,
			      const source *parent, const rn_git_opts *o, source *s)
{
	const char *shown = parent->shown;
	char *url = resolve_relative(parent->stored_url, sm->url);
	char *key = rn_xasprintf("submodule.%s.url", sm->name);
	char *gitdir = rn_xasprintf("%smodules/%s", git_repository_path(repo), sm->name);
	char *workdir = rn_xasprintf("%s%s", git_repository_workdir(repo), sm->path);
	git_config *cfg = NULL;
	git_repository *mr = NULL;
	mirror m = { NULL, -1 };
	remote_ctx c;
	int rc = 0;
	*out = NULL;
	/* recorded in the superproject's config: `git submodule status` sees it initialised */
	if (git_repository_config(&cfg, repo) < 0 || git_config_set_string(cfg, key, url) < 0)
		rc = git_fail(RN_EIO, NULL, "submodule %s of %s", sm->name, shown);
	git_config_free(cfg);
	if (rc == 0)
		rc = source_init(s, url);
	if (rc == 0) {
		remote_ctx_init(&c, s, o);
		rc = mirror_sync(&m, NULL, &c, NULL, oid);
	}
	if (rc == 0) {
		flock(m.lock_fd, LOCK_SH);
		git_commit *commit = NULL;
		if (git_repository_open_bare(&mr, m.path) < 0) {
			rc = git_fail(RN_EIO, s->fetch_url, "opening the mirror %s", m.path);
		} else if (git_commit_lookup(&commit, mr, oid) < 0) {
			git_error_clear();
			rn_error_set("submodule %s of %s: commit %s not found in %s", sm->name, shown, git_oid_tostr_s(oid),
				     s->shown);
			rc = RN_ENOTFOUND;
		}
		git_commit_free(commit);
	}
	if (rc == 0 && !dir_is_empty(workdir) && access(workdir, F_OK) == 0) {
		rn_error_set("submodule %s of %s: %s is not empty", sm->name, shown, workdir);
		rc = RN_EINVALID;
	}
	if (rc == 0) {
		git_repository_init_options io;
		git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
		io.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT | GIT_REPOSITORY_INIT_NO_DOTGIT_DIR |
			   GIT_REPOSITORY_INIT_RELATIVE_GITLINK;
		io.workdir_path = workdir;
		if (git_repository_init_ext(out, gitdir, &io) < 0)
			rc = git_fail(RN_EIO, NULL, "submodule %s of %s: creating %s", sm->name, shown, gitdir);
		else
			rc = fill_from_mirror(*out, mr, m.path, s->stored_url, oid, &c);
	}
	git_repository_free(mr);
	mirror_release(&m);
	free(url);
	free(key);
	free(gitdir);
	free(workdir);
	return rc;
}

/* Check out the submodules of repo (listed in its .gitmodules, at the commits recorded in the
 * tree of head), recursively. Parses .gitmodules itself: libgit2 1.5's submodule API reads the
 * configuration through a regex iterator that leaks. */
static int update_submodules(git_repository *repo, const git_oid *head, const rn_git_opts *o, const source *parent,
			     int level)
{
	const char *wd = git_repository_workdir(repo);
	if (!wd)
		return 0;
	char *file = rn_xasprintf("%s.gitmodules", wd);
	struct stat st;
	if (lstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
		free(file);
		return 0;
	}
	submodules l = { NULL, 0, 0 };
	git_config *cfg = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	int rc = 0;
	if (git_config_open_ondisk(&cfg, file) < 0 || git_config_foreach(cfg, gitmodules_cb, &l) < 0 ||
	    git_commit_lookup(&commit, repo, head) < 0 || git_commit_tree(&tree, commit) < 0)
		rc = git_fail(RN_EIO, NULL, "reading the submodules of %s", parent->shown);
	git_config_free(cfg);
	free(file);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		const submodule *sm = &l.v[i];
		if (!sm->path || !sm->url || !*sm->url) {
			if (sm->path) {
				rn_error_set("submodule %s of %s has no url in .gitmodules", sm->name, parent->shown);
				rc = RN_EINVALID;
			}
			continue;
		}
		if (!sub_path_ok(sm->name) || !sub_path_ok(sm->path)) {
			rn_error_set("submodule %s of %s: refusing the name or path '%s'", sm->name, parent->shown, sm->path);
			rc = RN_EINVALID;
			break;
		}
		git_tree_entry *te = NULL;
		if (git_tree_entry_bypath(&te, tree, sm->path) < 0 || git_tree_entry_filemode(te) != GIT_FILEMODE_COMMIT) {
			git_tree_entry_free(te); /* in .gitmodules but not in the tree: git skips it too */
			git_error_clear();
			continue;
		}
		git_oid oid;
		git_oid_cpy(&oid, git_tree_entry_id(te));
		git_tree_entry_free(te);
		git_repository *sub = NULL;
		source s = { 0 };
		rc = checkout_submodule(&sub, repo, sm, &oid, parent, o, &s);
		if (rc == 0 && level < SUBMODULE_DEPTH)
			rc = update_submodules(sub, &oid, o, &s, level + 1);
		git_repository_free(sub);
		source_free(&s);
	}
	git_tree_free(tree);
	git_commit_free(commit);
	submodules_free(&l);
	return rc;
}

static void warn_depth(const rn_git_opts *o)
{
	static int warned;
	if (warned)
		return;
	warned = 1;
	int major = 0, minor = 0, rev = 0;
	git_libgit2_version(&major, &minor, &rev);
	FILE *out = o->progress_out ? o->progress_out : stderr;
	fprintf(out, "warning: depth is not supported by libgit2 %d.%d; fetching full history\n", major, minor);
	fflush(out);
}

static int checkout_impl(const char *url_or_path, const char *ref, const char *extra, const char *dest,
			 const rn_git_opts *o, rn_git_result *res)
{
	rn_git_result local_res;
	if (!res)
		res = &local_res;
	memset(res, 0, sizeof(*res));
	if (!dest || !*dest)
		return rn_error_set("no checkout destination given"), RN_EINVALID;
	if (o && o->depth > 0 && !(LIBGIT2_VER_MAJOR > 1 || LIBGIT2_VER_MINOR >= 7))
		warn_depth(o);
	source s;
	int rc = source_init(&s, url_or_path);
	if (rc < 0)
		return rc;
	remote_ctx c;
	remote_ctx_init(&c, &s, o);
	char *extra_spec = NULL;
	if (!extra && ref && rn_startswith(ref, "refs/") && !rn_startswith(ref, "refs/heads/") &&
	    !rn_startswith(ref, "refs/tags/") && strlen(ref) < 200 && !strpbrk(ref, "*:^~ \t\n"))
		extra = extra_spec = rn_xasprintf("+%s:%s", ref, ref);
	mirror m;
	git_repository *mr = NULL, *repo = NULL;
	git_oid oid;
	int created = 0;
	/* an exact sha that the mirror has already needs no fetch */
	git_oid want;
	int exact = ref && strlen(ref) == GIT_OID_HEXSZ && strspn(ref, "0123456789abcdefABCDEF") == GIT_OID_HEXSZ &&
		    git_oid_fromstr(&want, ref) == 0;
	rc = mirror_sync(&m, NULL, &c, extra, exact ? &want : NULL);
	free(extra_spec);
	if (rc < 0)
		goto out;
	flock(m.lock_fd, LOCK_SH); /* readers may share; the next update waits */
	if (git_repository_open_bare(&mr, m.path) < 0) {
		rc = git_fail(RN_EIO, s.fetch_url, "opening the mirror %s", m.path);
		goto out;
	}
	if ((rc = resolve_ref(mr, ref, s.shown, &oid, res)) < 0)
		goto out;
	git_oid_tostr(res->sha, sizeof(res->sha), &oid);
	if ((rc = prepare_dest(dest)) < 0)
		goto out;
	git_repository_init_options io;
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
	if (git_repository_init_ext(&repo, dest, &io) < 0) {
		rc = git_fail(RN_EIO, s.fetch_url, "creating %s", dest);
		goto out;
	}
	created = 1;
	git_config *cfg = NULL;
	if (git_repository_config(&cfg, repo) < 0 || git_config_set_bool(cfg, "runner.checkout", 1) < 0) {
		git_config_free(cfg);
		rc = git_fail(RN_EIO, NULL, "configuring %s", dest);
		goto out;
	}
	git_config_free(cfg);
	if ((rc = fill_from_mirror(repo, mr, m.path, s.stored_url, &oid, &c)) < 0)
		goto out;
	git_repository_free(mr);
	mr = NULL;
	mirror_release(&m);
	if (o && o->submodules)
		rc = update_submodules(repo, &oid, o, &s, 0);
out:
	git_repository_free(repo);
	git_repository_free(mr);
	if (m.path || m.lock_fd >= 0)
		mirror_release(&m);
	if (rc < 0 && created) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", rn_error_last());
		rn_rm_rf(dest);
		rn_error_set("%s", msg);
	}
	source_free(&s);
	return rc;
}

int rn_git_checkout(const char *url_or_path, const char *ref, const char *dest, const rn_git_opts *o,
		    rn_git_result *res)
{
	if (rn_git_init() < 0)
		return RN_ERROR;
	rn_git_opts none;
	if (!o) {
		memset(&none, 0, sizeof(none));
		o = &none;
	}
	int rc = checkout_impl(url_or_path, ref, NULL, dest, o, res);
	rn_git_shutdown();
	return rc;
}

/* ---- the repository of a workspace -------------------------------------------------------- */

/* A tag (refs/tags/...) that points at oid, or NULL (caller frees). */
static char *tag_at(git_repository *repo, const git_oid *oid)
{
	git_reference_iterator *it = NULL;
	git_reference *r;
	char *found = NULL;
	if (git_reference_iterator_glob_new(&it, repo, "refs/tags/*") < 0) {
		git_error_clear();
		return NULL;
	}
	while (!found && git_reference_next(&r, it) == 0) {
		git_object *obj = NULL;
		if (git_reference_peel(&obj, r, GIT_OBJECT_COMMIT) == 0 && git_oid_equal(git_object_id(obj), oid))
			found = rn_xstrdup(git_reference_name(r));
		git_object_free(obj);
		git_reference_free(r);
	}
	git_reference_iterator_free(it);
	git_error_clear();
	return found;
}

int rn_git_describe(json_t **out, const char *workdir)
{
	*out = NULL;
	if (rn_git_init() < 0)
		return RN_ERROR;
	git_repository *repo = NULL;
	int err = git_repository_open_ext(&repo, workdir, 0, NULL);
	if (err == GIT_ENOTFOUND) {
		git_error_clear();
		*out = json_object();
		rn_git_shutdown();
		return 0;
	}
	if (err < 0) {
		int rc = git_fail(RN_EIO, NULL, "git repository of %s", workdir);
		rn_git_shutdown();
		return rc;
	}
	char sha[GIT_OID_HEXSZ + 1] = "";
	char *ref = NULL;
	const char *branch = "";
	git_reference *head = NULL, *sym = NULL;
	err = git_repository_head(&head, repo);
	if (err == 0) {
		git_object *obj = NULL;
		if (git_reference_peel(&obj, head, GIT_OBJECT_COMMIT) == 0)
			git_oid_tostr(sha, sizeof(sha), git_object_id(obj));
		if (git_repository_head_detached(repo) == 1)
			ref = obj ? tag_at(repo, git_object_id(obj)) : NULL;
		else
			ref = rn_xstrdup(git_reference_name(head));
		git_object_free(obj);
	} else if (git_reference_lookup(&sym, repo, "HEAD") == 0 && git_reference_type(sym) == GIT_REFERENCE_SYMBOLIC) {
		ref = rn_xstrdup(git_reference_symbolic_target(sym)); /* unborn branch */
	}
	git_error_clear();
	if (ref && rn_startswith(ref, "refs/heads/"))
		branch = ref + 11;
	*out = json_pack("{s:s, s:s, s:s}", "sha", sha, "ref", ref ? ref : "", "branch", branch);
	free(ref);
	git_reference_free(head);
	git_reference_free(sym);
	git_repository_free(repo);
	rn_git_shutdown();
	if (!*out)
		return rn_error_set("git describe: a ref name that is not UTF-8");
	return 0;
}

int rn_git_clean_workspace(char **dest, const char *repo_dir, const char *parent_dir)
{
	*dest = NULL;
	if (rn_git_init() < 0)
		return RN_ERROR;
	git_repository *repo = NULL;
	git_reference *head = NULL;
	git_object *obj = NULL;
	char *src = NULL, *dir = NULL, *base = NULL;
	int rc = 0;
	int err = git_repository_open_ext(&repo, repo_dir, 0, NULL);
	if (err == GIT_ENOTFOUND) {
		git_error_clear();
		rn_error_set("%s is not in a git repository (--clean checks out its HEAD commit)", repo_dir);
		rc = RN_EINVALID;
		goto out;
	}
	if (err < 0) {
		rc = git_fail(RN_EIO, NULL, "git repository of %s", repo_dir);
		goto out;
	}
	if (git_repository_head(&head, repo) < 0 || git_reference_peel(&obj, head, GIT_OBJECT_COMMIT) < 0) {
		git_error_clear();
		rn_error_set("the git repository of %s has no commit yet", repo_dir);
		rc = RN_EINVALID;
		goto out;
	}
	char sha[GIT_OID_HEXSZ + 1];
	git_oid_tostr(sha, sizeof(sha), git_object_id(obj));
	const char *wd = git_repository_workdir(repo);
	src = rn_xstrdup(wd ? wd : git_repository_path(repo));
	size_t n = strlen(src);
	while (n > 1 && src[n - 1] == '/')
		src[--n] = '\0';
	base = rn_git_default_dir(src);
	if ((rc = rn_mkdir_p(parent_dir, 0755)) < 0)
		goto out;
	dir = rn_xasprintf("%s/%s-clean-XXXXXX", parent_dir, base);
	if (!mkdtemp(dir)) {
		rc = rn_error_errno("mkdtemp %s", dir);
		goto out;
	}
	rn_git_opts o;
	memset(&o, 0, sizeof(o));
	/* the local HEAD may be detached on a commit no branch has: fetch it too */
	rc = checkout_impl(src, sha, "+HEAD:refs/runner/HEAD", dir, &o, NULL);
	if (rc < 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", rn_error_last());
		rmdir(dir);
		rn_error_set("%s", msg);
		goto out;
	}
	*dest = dir;
	dir = NULL;
out:
	git_object_free(obj);
	git_reference_free(head);
	git_repository_free(repo);
	free(src);
	free(dir);
	free(base);
	rn_git_shutdown();
	return rc;
}
