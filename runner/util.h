/* util.h - allocation helpers and small string utilities. */
#ifndef RN_UTIL_H
#define RN_UTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#define RN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* malloc that aborts on out-of-memory; caller owns the result. */
void *rn_xmalloc(size_t n);
/* calloc that aborts on out-of-memory (and on n*size overflow); caller owns the result. */
void *rn_xcalloc(size_t n, size_t size);
/* realloc of an array of n elements of size bytes, aborting on overflow or OOM; caller owns it. */
void *rn_xreallocarray(void *p, size_t n, size_t size);
/* strdup that aborts on OOM; NULL in gives NULL out; caller owns the result. */
char *rn_xstrdup(const char *s);
/* strndup that aborts on OOM; caller owns the result. */
char *rn_xstrndup(const char *s, size_t n);
/* asprintf that aborts on OOM; caller owns the result. */
char *rn_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Grow *v (elements of size bytes, capacity *cap) to hold at least need elements. */
void rn_grow(void *v, size_t *cap, size_t need, size_t size);
/* Monotonic clock in milliseconds. */
int64_t rn_now_ms(void);
/* Wall clock in milliseconds since the epoch. */
int64_t rn_wall_ms(void);
/* 1 if s starts with prefix. */
int rn_startswith(const char *s, const char *prefix);
/* FNV-1a hash of the n bytes at s (for hash tables). */
size_t rn_hash(const char *s, size_t n);
/* Levenshtein distance between a and b (for "did you mean" suggestions). */
size_t rn_edit_distance(const char *a, const char *b);
/* Write all of buf to fd, retrying on EINTR and short writes; 0 or RN_EIO. */
int rn_write_all(int fd, const void *buf, size_t len);
/* Read len bytes from fd unless EOF or an error comes first, retrying on EINTR and short reads;
 * the bytes read. */
size_t rn_read_full(int fd, void *buf, size_t len);
/* Read /proc/PID/NAME (at most size - 1 bytes, one read: enough for stat or cmdline) into buf,
 * NUL-terminated; the bytes read, or -1 (the process is gone). */
ssize_t rn_read_proc_file(pid_t pid, const char *name, char *buf, size_t size);
/* Read a whole file into a new NUL-terminated buffer of at most max bytes; caller frees *out. */
int rn_read_file(char **out, size_t *len, const char *path, size_t max);
/* mkdir -p with mode; 0 or RN_EIO. */
int rn_mkdir_p(const char *path, unsigned mode);
/* rm -rf of path (does not follow symlinks); 0 or RN_EIO. */
int rn_rm_rf(const char *path);
/* A new run id "YYYYMMDD-HHMMSS-xxxxxx" (UTC time and 24 random bits); caller frees. */
char *rn_run_id_new(void);
/* The path of the running executable into buf (NUL-terminated); 0 or RN_EIO. */
int rn_self_exe(char *buf, size_t size);
/* The runner-ext.so (ext.h) the runner looks at first: $RUNNER_EXT if set, else runner-ext.so
 * in the directory of exe (NULL: the running executable). Caller frees; NULL if unknown. */
char *rn_ext_path(const char *exe);

#endif
