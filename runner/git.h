/* git.h - git checkouts with libgit2 through a local mirror cache.
 *
 * Every remote URL gets one bare mirror under the cache directory (all branches and tags,
 * pruned), updated under an exclusive flock; working trees are local clones of the mirror
 * (objects hard-linked where the file system allows), detached at the commit, with `origin`
 * pointing at the real URL. Credentials come from the environment: RUNNER_GIT_TOKEN (https,
 * user `x-access-token` or the URL's user), RUNNER_GIT_SSH_KEY (a private key file) or the ssh
 * agent; they are never printed, and URLs are shown with their password replaced by ***.
 *
 * Errors: a ref that does not exist is RN_ENOTFOUND; an unreachable host, a refused login and
 * other transport or disk failures are RN_EIO (with libgit2's message, redacted). */
#ifndef RN_GIT_H
#define RN_GIT_H

#include <jansson.h>
#include <stdio.h>

/* Progress reporting of fetches. */
enum {
	RN_GIT_PROGRESS_NONE = 0, /* nothing */
	RN_GIT_PROGRESS_AUTO,     /* LINE when progress_out is a TTY, else SUMMARY */
	RN_GIT_PROGRESS_LINE,     /* one line updated in place, then the summary */
	RN_GIT_PROGRESS_SUMMARY   /* "fetched N objects (X KiB) in Y s" when a fetch ends */
};

/* A snapshot of a fetch in progress (for rn_git_opts.on_progress). */
typedef struct rn_git_progress {
	const char *url;               /* the remote, redacted */
	unsigned int total_objects;    /* objects in the pack (0 until known) */
	unsigned int received_objects; /* objects received so far */
	unsigned int indexed_objects;  /* objects indexed so far */
	unsigned long long received_bytes;
	int done; /* 1 on the last call of a fetch */
} rn_git_progress;

typedef void (*rn_git_progress_cb)(const rn_git_progress *p, void *payload);

/* Options of the mirror and checkout functions; all-zero (or a NULL pointer) gives defaults. */
typedef struct rn_git_opts {
	const char *cache_dir;  /* mirror cache; NULL: $RUNNER_GIT_CACHE, else $XDG_CACHE_HOME/runner/git,
				 * else ~/.cache/runner/git */
	int depth;              /* > 0: shallow history; unsupported by libgit2 < 1.7: one warning,
				 * full history */
	int submodules;         /* 1: init and update submodules recursively (same mirror cache) */
	int progress;           /* RN_GIT_PROGRESS_* */
	FILE *progress_out;     /* progress, summaries and warnings; NULL: stderr */
	rn_git_progress_cb on_progress; /* called (throttled) while fetching, if set */
	void *payload;          /* for on_progress */
	int lock_timeout_ms;    /* waiting for another process' mirror update; 0: 600000 (10 min) */
} rn_git_opts;

/* What a checkout resolved. Plain arrays: nothing to free. */
typedef struct rn_git_result {
	char sha[41];     /* the commit checked out, 40 hex digits */
	char ref[256];    /* refs/heads/B, refs/tags/T, another full ref, or the sha asked for */
	char branch[256]; /* B when the ref is a branch, else "" */
} rn_git_result;

/* Initialise libgit2 (reference-counted; every function below also works without it).
 * 0 or RN_ERROR. */
int rn_git_init(void);
/* Drop one rn_git_init reference; the last one frees libgit2's global state. */
void rn_git_shutdown(void);

/* Update (or create with a clone on first use) the bare mirror of url under cache_dir (NULL:
 * o->cache_dir or the default) while holding an exclusive lock on its MIRROR.lock file;
 * *mirror_path gets the mirror's absolute path (caller frees). url may be a local path. */
int rn_git_mirror_update(char **mirror_path, const char *cache_dir, const char *url, const rn_git_opts *o);

/* Update the mirror of url_or_path, then create dest (absent, empty, or an earlier checkout by
 * this function, which is replaced) as a fresh working tree of ref (branch, tag, full ref,
 * full or short sha; NULL or "": the remote's HEAD), detached at the commit, cloned from the
 * mirror, `origin` set to the real URL. res (may be NULL) gets what was checked out.
 * RN_ENOTFOUND for a ref that does not exist, RN_EINVALID for a dest in the way, RN_EIO for
 * transport, authentication and disk failures. */
int rn_git_checkout(const char *url_or_path, const char *ref, const char *dest, const rn_git_opts *o,
		    rn_git_result *res);

/* The repository containing workdir: *out gets a new object {sha, ref, branch} of its HEAD
 * (strings; ref "" when detached, branch "" unless on a branch, sha "" while unborn), or {}
 * when workdir is not in a git repository. Caller owns *out. */
int rn_git_describe(json_t **out, const char *workdir);

/* A fresh checkout of the HEAD commit of the repository containing repo_dir (its committed
 * state: no local changes, no untracked files) in a new directory under parent_dir, made
 * through the mirror cache (defaults) like rn_git_checkout; *dest gets its path (caller frees;
 * caller removes the directory with rn_rm_rf when done). Submodules are not checked out. */
int rn_git_clean_workspace(char **dest, const char *repo_dir, const char *parent_dir);

/* url with the password of its userinfo replaced by *** (caller frees). */
char *rn_git_redact_url(const char *url);
/* The directory name of url's mirror: a readable slug and a hash of the URL (without its
 * password), e.g. "host-owner-repo-3f2a9c0d1e4b5a69.git". Caller frees. */
char *rn_git_mirror_name(const char *url);
/* The default name of a checkout of url: the last path component without ".git" (caller
 * frees; "repo" when there is none). */
char *rn_git_default_dir(const char *url);
/* The cache directory: override if non-NULL, else the default described at rn_git_opts.
 * Caller frees *out. 0 or RN_ERROR (no HOME). */
int rn_git_cache_dir(char **out, const char *override);

#endif
