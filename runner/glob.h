/* glob.h - path globs as workflows use them: `*` (not crossing '/'), `**` (crossing '/', matching zero
 * or more whole directories, so the segments a, **, b joined by slashes match "a/b"), `?`, `[abc]`, `[a-z]`, `[!x]`, and `\` escapes. */
#ifndef RN_GLOB_H
#define RN_GLOB_H

#include <stddef.h>
#include <sys/stat.h>

/* 0 if the pattern is valid; RN_EINVALID with rn_error_last() (e.g. unclosed '[', '**' glued to
 * other characters like `a**`, empty pattern, trailing '\'). */
int rn_glob_check(const char *pattern);
/* 1 if path (relative, '/'-separated) matches pattern, else 0. */
int rn_glob_match(const char *pattern, const char *path);

/* Called for each matching file, symlink or directory-that-matched, relpath relative to root. */
typedef int (*rn_glob_cb)(const char *relpath, const struct stat *st, void *payload);
/* Walk root (not following symlinks) in sorted, deterministic order; call cb for each entry that
 * matches any include pattern and no exclude pattern (a matched directory yields its whole
 * contents, as if the pattern went on with a "**" segment). A non-zero cb return stops the walk and is returned. */
int rn_glob_walk(const char *root, const char *const *include, size_t ninclude,
		 const char *const *exclude, size_t nexclude, rn_glob_cb cb, void *payload);

#endif
