/* gitread.h - reading a git repository without a work tree (libgit2): refs, files of a commit,
 * changed paths, merge bases, and the repository's runner.* configuration.
 *
 * Every function opens the repository at repo_path itself (a bare repository, a .git directory
 * or a work tree; no search upwards), so they are safe to call from any thread once
 * rn_git_init() has run (they also call it themselves). A repo_path that is not a repository is
 * RN_ENOTFOUND ("PATH: not a git repository"); other libgit2 failures are RN_EIO. */
#ifndef RN_GITREAD_H
#define RN_GITREAD_H

#include <stddef.h>

/* Resolve ref (branch, tag, full or short sha, "HEAD", any rev-parse expression that names a
 * commit) in the repository at repo_path (bare or not) to a 40-hex sha in out. RN_ENOTFOUND if it
 * does not exist (or names no commit), RN_EINVALID if a short sha is ambiguous. */
int rn_gitread_resolve(char out[41], const char *repo_path, const char *ref);

/* The blob at path in commit sha of repo_path into *data (NUL-terminated, caller frees) and *len;
 * RN_ENOTFOUND if absent (or a directory or submodule), RN_EINVALID for a symbolic link or a
 * path with a ".." component, RN_ETOOBIG if larger than max. path is relative to the tree root
 * (a leading "./" or "/" is ignored). sha may also be any ref rn_gitread_resolve accepts. */
int rn_gitread_file(char **data, size_t *len, const char *repo_path, const char *sha, const char *path,
		    size_t max);

/* The paths changed between commits old_sha and new_sha (added, modified, deleted, type
 * changed; a rename counts as its old and its new path), sorted, into *paths (an array of *n
 * strings; caller frees with rn_gitread_paths_free). old_sha NULL, "" or all zeros: every file
 * of new_sha. RN_ETOOBIG (and nothing in *paths) if more than max paths changed. */
int rn_gitread_changed(char ***paths, size_t *n, const char *repo_path, const char *old_sha, const char *new_sha,
		       size_t max);
/* Free an array from rn_gitread_changed. */
void rn_gitread_paths_free(char **paths, size_t n);

/* The best common ancestor of commits a and b into out (40 hex). RN_ENOTFOUND if they have none
 * (or one of them does not exist). */
int rn_gitread_merge_base(char out[41], const char *repo_path, const char *a, const char *b);

/* The default branch: the full ref HEAD points at (e.g. "refs/heads/main", even while unborn)
 * into *ref (caller frees). RN_ENOTFOUND when HEAD is detached. */
int rn_gitread_default_branch(char **ref, const char *repo_path);

/* The absolute git directory of the repository at repo_path (a work tree's .git) into *git_dir
 * (caller frees; no trailing '/'); *bare (may be NULL) gets 1 for a bare repository. */
int rn_gitread_git_dir(char **git_dir, int *bare, const char *repo_path);

/* The directory git runs the repository's hooks from: core.hooksPath (relative to the work
 * tree, or to the git directory of a bare repository) when set, else GIT_DIR/hooks; absolute,
 * into *dir (caller frees). */
int rn_gitread_hooks_dir(char **dir, const char *repo_path);

/* The top-level directory of the git repository containing dir (its git dir when bare), or
 * NULL (with rn_error_last()) when there is none. Caller frees. */
char *rn_gitread_toplevel(const char *dir);
/* 1 if the working tree at top has changes to tracked files (which a pipeline of its HEAD
 * commit does not see), else 0 (also when it cannot be read). */
int rn_gitread_dirty(const char *top);

/* 1 if sha (40 hex) is the all-zeros id git uses for "no commit" (created or deleted refs). */
int rn_gitread_is_zero(const char *sha);

/* The value of config key (e.g. "runner.server") of repo_path (its own config, then the user's
 * and the system's) into *value (caller frees). RN_ENOTFOUND if unset. */
int rn_gitread_config_get(char **value, const char *repo_path, const char *key);
/* Set key to value in the repository's own config file; value NULL removes the key (no error if
 * it was unset). */
int rn_gitread_config_set(const char *repo_path, const char *key, const char *value);

#endif
