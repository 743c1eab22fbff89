/* util.c - allocation helpers and small string utilities. */
#include "util.h"
#include "error.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
	static const char msg[] = "runner: out of memory\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to do */
	}
	abort();
}

void *rn_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *rn_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *rn_xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		oom();
	p = realloc(p, n * size != 0 ? n * size : 1);
	if (!p)
		oom();
	return p;
}

char *rn_xstrdup(const char *s)
{
	return s ? rn_xstrndup(s, strlen(s)) : NULL;
}

char *rn_xstrndup(const char *s, size_t n)
{
	char *p = rn_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *rn_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	return s;
}

void rn_grow(void *v, size_t *cap, size_t need, size_t size)
{
	void **pv = v;
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 4;
	while (c < need)
		c *= 2;
	*pv = rn_xreallocarray(*pv, c, size);
	*cap = c;
}

int64_t rn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rn_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rn_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

size_t rn_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211u;
	return (size_t)h;
}

size_t rn_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return (size_t)-1;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

int rn_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return rn_error_errno("write");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t rn_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t k = read(fd, p + got, len - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

ssize_t rn_read_proc_file(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || size == 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int rn_read_file(char **out, size_t *len, const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? (rn_error_errno("%s", path), RN_ENOTFOUND)
				       : rn_error_errno("%s", path);
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		close(fd);
		rn_error_set("%s: file is larger than %zu bytes", path, max);
		return RN_ETOOBIG;
	}
	size_t cap = 4096, n = 0;
	char *buf = rn_xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				free(buf);
				close(fd);
				rn_error_set("%s: file is larger than %zu bytes", path, max);
				return RN_ETOOBIG;
			}
			cap = cap * 2 > max ? max : cap * 2;
			buf = rn_xreallocarray(buf, cap + 1, 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int rc = rn_error_errno("%s", path);
			free(buf);
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int rn_mkdir_p(const char *path, unsigned mode)
{
	char *p = rn_xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			int rc = rn_error_errno("mkdir %s", p);
			free(p);
			return rc;
		}
		*s = '/';
	}
	int rc = 0;
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		rc = rn_error_errno("mkdir %s", p);
	free(p);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rn_rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : rn_error_errno("%s", path);
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return rn_error_errno("remove %s", path);
	return 0;
}

char *rn_run_id_new(void)
{
	unsigned char r[3] = { 0, 0, 0 };
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r[0] = (unsigned char)getpid();
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	return rn_xasprintf("%04d%02d%02d-%02d%02d%02d-%02x%02x%02x", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			    tm.tm_hour, tm.tm_min, tm.tm_sec, r[0], r[1], r[2]);
}

int rn_self_exe(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	if (n <= 0)
		return rn_error_errno("/proc/self/exe");
	buf[(size_t)n] = '\0';
	return 0;
}

char *rn_ext_path(const char *exe)
{
	const char *env = getenv("RUNNER_EXT");
	if (env && *env)
		return rn_xstrdup(env);
	char self[PATH_MAX];
	if (!exe) {
		if (rn_self_exe(self, sizeof(self)) < 0)
			return NULL;
		exe = self;
	}
	const char *slash = strrchr(exe, '/');
	return slash ? rn_xasprintf("%.*s/runner-ext.so", (int)(slash - exe), exe) : NULL;
}
