/* faultio.c - an LD_PRELOAD library that injects EINTR and short transfers into the runner's own
 * I/O (issue #8; tests/integration/fault_io.sh drives it).
 *
 * It interposes read, write, readv, writev, pread, pwrite, send, recv, sendmsg and recvmsg (and
 * the _FORTIFY_SOURCE variants of the reads). glibc's stdio calls its internal symbols and is
 * not affected. Only a process whose executable's basename is FAULTIO_EXE (default "runner") is
 * affected, which includes forks of it that have not exec'd (a step's shim) and `runner __step`,
 * but not the step commands (sh, true...) nor the fork server runner-shim, which inherit
 * LD_PRELOAD.
 *
 * Environment:
 *   FAULTIO_SEED           seed of the pseudo-random sequence (default 1)
 *   FAULTIO_EINTR_PERCENT  0-100: chance that a call fails with EINTR before doing anything
 *   FAULTIO_SHORT_PERCENT  0-100: chance that a call of n >= 2 bytes moves only 1..n-1 of them
 *   FAULTIO_FDTYPES        the kinds of fds faults hit, comma-separated among fifo, sock, reg, chr
 *                          (default "fifo,sock"). Short transfers are never injected on sockets
 *                          that are not SOCK_STREAM: the kernel never cuts their messages;
 *                          and regular files of /proc, /sys and cgroup file systems get none
 *                          (the kernel reads and writes those in one go).
 *   FAULTIO_ATOMIC         1 (default): like the kernel, never cut a write of at most PIPE_BUF
 *                          bytes to a pipe or stream socket (POSIX makes such pipe writes
 *                          atomic); 0: cut those too (stricter than any kernel)
 *   FAULTIO_CALLERS        ours (default): only calls made by the runner's own code: the
 *                          executable and the modules whose basename starts with FAULTIO_OURS
 *                          (default "runner-ext": runner-ext.so), not by the shared libraries
 *                          it uses (libseccomp, libarchive, libgit2, curl...); all: every call
 *   FAULTIO_EXE            the basename of the executable to affect (default "runner")
 *   FAULTIO_TRACE          a file to which each injected fault is appended as a line
 *                          "eintr|short PID OBJ+0xADDR FD N" (the caller: OBJ is "exe" or a
 *                          library's basename, ADDR relative to its load address, for addr2line)
 *   FAULTIO_STATS          a file to which each affected process appends one line at exit:
 *                          "faultio pid=P calls=C eintr=E short=S"
 *
 * The wrappers are async-signal-safe (no malloc, no stdio, no locks) for calls from code already
 * known (the executable, the libraries loaded at start): the runner calls them between fork and
 * exec. The first call from a module loaded later (dlopen) scans the loaded objects again
 * (dl_iterate_phdr, under a spin lock). The sequence is a hash of the seed and a call counter, so a run with a
 * given seed and the same sequence of calls sees the same faults (a fork continues the parent's
 * sequence). */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#define SHORT_IOV_MAX 64 /* writev/readv with more buffers are never shortened */

enum { T_FIFO = 1, T_SOCK = 2, T_REG = 4, T_CHR = 8 };

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);

static int g_active;
static uint64_t g_seed = 1;
static unsigned g_eintr, g_short; /* percent */
static unsigned g_types = T_FIFO | T_SOCK;
static int g_atomic = 1;

/* The code of the loaded objects, to tell the runner's own calls from its libraries' ones. */
#define MAX_OBJS 256
struct obj {
	uintptr_t lo, hi, base; /* executable segments, load address */
	int ours;               /* the executable, or a module named FAULTIO_OURS* */
	char name[48];          /* basename, for the trace */
};
static struct obj g_objs[MAX_OBJS];
static int g_nobjs;        /* entries published (atomic) */
static int g_objs_lock;    /* held while scanning */
static int g_scan_index;   /* position of the object dl_iterate_phdr is at (0: the executable) */
static int g_filter;       /* 1: only calls made by our code get faults */
static char g_ours[64] = "runner-ext";
static int g_trace_fd = -1;
static uint64_t g_counter, g_calls, g_nintr, g_nshort;
static char g_stats[4096];

/* ---- set-up */

static void *next_sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static void resolve(void)
{
	real_read = (ssize_t(*)(int, void *, size_t))next_sym("read");
	real_write = (ssize_t(*)(int, const void *, size_t))next_sym("write");
	real_readv = (ssize_t(*)(int, const struct iovec *, int))next_sym("readv");
	real_writev = (ssize_t(*)(int, const struct iovec *, int))next_sym("writev");
	real_pread = (ssize_t(*)(int, void *, size_t, off_t))next_sym("pread");
	real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))next_sym("pwrite");
	real_send = (ssize_t(*)(int, const void *, size_t, int))next_sym("send");
	real_recv = (ssize_t(*)(int, void *, size_t, int))next_sym("recv");
	real_sendmsg = (ssize_t(*)(int, const struct msghdr *, int))next_sym("sendmsg");
	real_recvmsg = (ssize_t(*)(int, struct msghdr *, int))next_sym("recvmsg");
}

static unsigned percent(const char *name)
{
	const char *v = getenv(name);
	long p = v ? strtol(v, NULL, 10) : 0;
	return p < 0 ? 0 : p > 100 ? 100 : (unsigned)p;
}

static unsigned parse_types(const char *v)
{
	unsigned t = 0;
	while (*v) {
		size_t n = strcspn(v, ",");
		if (n == 4 && !strncmp(v, "fifo", 4))
			t |= T_FIFO;
		else if (n == 4 && !strncmp(v, "sock", 4))
			t |= T_SOCK;
		else if (n == 3 && !strncmp(v, "reg", 3))
			t |= T_REG;
		else if (n == 3 && !strncmp(v, "chr", 3))
			t |= T_CHR;
		v += n;
		if (*v == ',')
			v++;
	}
	return t;
}

static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_hex(char *p, uintptr_t v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = "0123456789abcdef"[v % 16];
	while ((v /= 16) > 0);
	*p++ = '0';
	*p++ = 'x';
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* dl_iterate_phdr callback: note where each object's code is (once). */
static int scan_object(struct dl_phdr_info *info, size_t size, void *data)
{
	int index = g_scan_index++;
	uintptr_t lo = 0, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		uintptr_t l = info->dlpi_addr + ph->p_vaddr, h = l + ph->p_memsz;
		if (!hi || l < lo)
			lo = l;
		if (h > hi)
			hi = h;
	}
	int n = __atomic_load_n(&g_nobjs, __ATOMIC_ACQUIRE);
	if (!hi || n >= MAX_OBJS)
		return 0;
	for (int i = 0; i < n; i++)
		if (g_objs[i].lo == lo)
			return 0;
	const char *path = info->dlpi_name ? info->dlpi_name : "";
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	struct obj *o = &g_objs[n];
	o->lo = lo;
	o->hi = hi;
	o->base = info->dlpi_addr;
	o->ours = index == 0 || (g_ours[0] && strncmp(base, g_ours, strlen(g_ours)) == 0);
	size_t len = strlen(index == 0 ? "exe" : base);
	if (len >= sizeof(o->name))
		len = sizeof(o->name) - 1;
	memcpy(o->name, index == 0 ? "exe" : base, len);
	o->name[len] = '\0';
	__atomic_store_n(&g_nobjs, n + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Scan the loaded objects again (a module was loaded since). */
static void rescan(void)
{
	while (__atomic_test_and_set(&g_objs_lock, __ATOMIC_ACQUIRE)) {
	}
	g_scan_index = 0;
	dl_iterate_phdr(scan_object, NULL);
	__atomic_clear(&g_objs_lock, __ATOMIC_RELEASE);
}

/* The object whose code holds ra, or NULL. */
static const struct obj *find_object(const void *ra, int may_scan)
{
	for (int pass = 0; pass < 2; pass++) {
		int n = __atomic_load_n(&g_nobjs, __ATOMIC_ACQUIRE);
		for (int i = 0; i < n; i++)
			if ((uintptr_t)ra >= g_objs[i].lo && (uintptr_t)ra < g_objs[i].hi)
				return &g_objs[i];
		if (!may_scan)
			break;
		rescan();
	}
	return NULL;
}

__attribute__((constructor)) static void faultio_init(void)
{
	resolve();
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	const char *base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	const char *want = getenv("FAULTIO_EXE");
	if (strcmp(base, want && *want ? want : "runner") != 0)
		return;
	const char *seed = getenv("FAULTIO_SEED");
	if (seed && *seed)
		g_seed = strtoull(seed, NULL, 10);
	g_eintr = percent("FAULTIO_EINTR_PERCENT");
	g_short = percent("FAULTIO_SHORT_PERCENT");
	const char *types = getenv("FAULTIO_FDTYPES");
	if (types)
		g_types = parse_types(types);
	const char *atomic = getenv("FAULTIO_ATOMIC");
	if (atomic && *atomic)
		g_atomic = atoi(atomic) != 0;
	const char *callers = getenv("FAULTIO_CALLERS");
	g_filter = !callers || strcmp(callers, "all") != 0;
	const char *ours = getenv("FAULTIO_OURS");
	if (ours && strlen(ours) < sizeof(g_ours))
		strcpy(g_ours, ours);
	rescan();
	const char *trace = getenv("FAULTIO_TRACE");
	if (trace && *trace)
		g_trace_fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	const char *stats = getenv("FAULTIO_STATS");
	if (stats && strlen(stats) < sizeof(g_stats))
		strcpy(g_stats, stats);
	g_active = g_eintr > 0 || g_short > 0;
}

__attribute__((destructor)) static void faultio_fini(void)
{
	if (!g_active || !g_stats[0] || !real_write)
		return;
	int fd = open(g_stats, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	char line[160], *p = line;
	p = put_str(p, "faultio pid=");
	p = put_u64(p, (uint64_t)getpid());
	p = put_str(p, " calls=");
	p = put_u64(p, __atomic_load_n(&g_calls, __ATOMIC_RELAXED));
	p = put_str(p, " eintr=");
	p = put_u64(p, __atomic_load_n(&g_nintr, __ATOMIC_RELAXED));
	p = put_str(p, " short=");
	p = put_u64(p, __atomic_load_n(&g_nshort, __ATOMIC_RELAXED));
	*p++ = '\n';
	real_write(fd, line, (size_t)(p - line)); /* O_APPEND: one line per write */
	close(fd);
}

/* ---- decisions */

/* The next number of the sequence (splitmix64 of seed and counter). */
static uint64_t next_random(void)
{
	uint64_t z = g_seed + __atomic_fetch_add(&g_counter, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define PROC_MAGIC 0x9fa0
#define SYSFS_MAGIC 0x62656572
#define CGROUP_MAGIC 0x27e0eb
#define CGROUP2_MAGIC 0x63677270

/* 1 if the regular file fd is on a kernel file system (proc, sysfs, cgroup). */
static int on_kernel_fs(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return 1;
	return sf.f_type == PROC_MAGIC || sf.f_type == SYSFS_MAGIC || sf.f_type == CGROUP_MAGIC ||
	       sf.f_type == CGROUP2_MAGIC;
}

/* The fault kinds a call on fd that moves n bytes may get: bit 1 EINTR, bit 2 short transfers.
 * out: 1 for writes (a small write to a pipe or stream socket is atomic). */
static unsigned fd_faults(int fd, size_t n, int out)
{
	unsigned cut = out && g_atomic && n <= PIPE_BUF ? 0 : 2;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 0;
	switch (st.st_mode & S_IFMT) {
	case S_IFIFO:
		return g_types & T_FIFO ? 1 | cut : 0;
	case S_IFREG:
		return g_types & T_REG && !on_kernel_fs(fd) ? 3 : 0;
	case S_IFCHR:
		return g_types & T_CHR ? 3 : 0;
	case S_IFSOCK: {
		if (!(g_types & T_SOCK))
			return 0;
		int type = 0;
		socklen_t len = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
			return 1;
		return type == SOCK_STREAM ? 1 | cut : 1;
	}
	default:
		return 0; /* eventfd, signalfd, pidfd, directories... */
	}
}

/* Append a line about a fault to the trace file (FAULTIO_TRACE). */
static void trace(const char *what, const void *ra, int fd, size_t n)
{
	if (g_trace_fd < 0 || !real_write)
		return;
	char line[128], *p = line;
	p = put_str(p, what);
	*p++ = ' ';
	p = put_u64(p, (uint64_t)getpid());
	*p++ = ' ';
	const struct obj *o = find_object(ra, 1);
	p = put_str(p, o ? o->name : "?");
	*p++ = '+';
	p = put_hex(p, (uintptr_t)ra - (o ? o->base : 0));
	*p++ = ' ';
	p = put_u64(p, (uint64_t)fd);
	*p++ = ' ';
	p = put_u64(p, (uint64_t)n);
	*p++ = '\n';
	int e = errno;
	real_write(g_trace_fd, line, (size_t)(p - line));
	errno = e;
}

/* What to do with a call of n bytes on fd (out: a write) made from code at ra: -1 fail with
 * EINTR (errno set), else the number of bytes to transfer (n, or 1..n-1). */
static ssize_t decide(int fd, size_t n, int out, const void *ra)
{
	if (!g_active)
		return (ssize_t)n;
	if (g_filter) {
		const struct obj *o = find_object(ra, 1);
		if (!o || !o->ours)
			return (ssize_t)n;
	}
	unsigned kinds = fd_faults(fd, n, out);
	if (!kinds)
		return (ssize_t)n;
	__atomic_fetch_add(&g_calls, 1, __ATOMIC_RELAXED);
	uint64_t r = next_random();
	unsigned roll = (unsigned)(r % 100);
	if ((kinds & 1) && roll < g_eintr) {
		__atomic_fetch_add(&g_nintr, 1, __ATOMIC_RELAXED);
		trace("eintr", ra, fd, n);
		errno = EINTR;
		return -1;
	}
	if ((kinds & 2) && n >= 2 && roll >= g_eintr && roll < g_eintr + g_short) {
		__atomic_fetch_add(&g_nshort, 1, __ATOMIC_RELAXED);
		trace("short", ra, fd, n);
		return (ssize_t)(1 + (r >> 32) % (n - 1));
	}
	return (ssize_t)n;
}

/* Copy iov[0..cnt) into out, cut to max bytes in total; the number of buffers kept. */
static int cut_iov(struct iovec *out, const struct iovec *iov, int cnt, size_t max)
{
	int k = 0;
	for (int i = 0; i < cnt && max > 0; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > max)
			out[k].iov_len = max;
		max -= out[k].iov_len;
		k++;
	}
	return k;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0;
	for (int i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

/* ---- the wrappers */

#define RA __builtin_return_address(0)

#define NEED(sym)              \
	do {                   \
		if (!real_##sym) \
			resolve(); \
	} while (0)

ssize_t read(int fd, void *buf, size_t n)
{
	NEED(read);
	ssize_t d = decide(fd, n, 0, RA);
	return d < 0 ? -1 : real_read(fd, buf, (size_t)d);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	NEED(write);
	ssize_t d = decide(fd, n, 1, RA);
	return d < 0 ? -1 : real_write(fd, buf, (size_t)d);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	NEED(pread);
	ssize_t d = decide(fd, n, 0, RA);
	return d < 0 ? -1 : real_pread(fd, buf, (size_t)d, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	NEED(pwrite);
	ssize_t d = decide(fd, n, 1, RA);
	return d < 0 ? -1 : real_pwrite(fd, buf, (size_t)d, off);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	NEED(send);
	ssize_t d = decide(fd, n, 1, RA);
	return d < 0 ? -1 : real_send(fd, buf, (size_t)d, flags);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	NEED(recv);
	ssize_t d = decide(fd, n, 0, RA);
	return d < 0 ? -1 : real_recv(fd, buf, (size_t)d, flags);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	NEED(readv);
	size_t n = cnt > 0 && cnt <= SHORT_IOV_MAX ? iov_total(iov, cnt) : 0;
	ssize_t d = decide(fd, n, 0, RA);
	if (d < 0)
		return -1;
	if ((size_t)d == n)
		return real_readv(fd, iov, cnt);
	struct iovec cut[SHORT_IOV_MAX];
	return real_readv(fd, cut, cut_iov(cut, iov, cnt, (size_t)d));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	NEED(writev);
	size_t n = cnt > 0 && cnt <= SHORT_IOV_MAX ? iov_total(iov, cnt) : 0;
	ssize_t d = decide(fd, n, 1, RA);
	if (d < 0)
		return -1;
	if ((size_t)d == n)
		return real_writev(fd, iov, cnt);
	struct iovec cut[SHORT_IOV_MAX];
	return real_writev(fd, cut, cut_iov(cut, iov, cnt, (size_t)d));
}

ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
	NEED(sendmsg);
	int cnt = (int)mh->msg_iovlen;
	size_t n = cnt > 0 && cnt <= SHORT_IOV_MAX ? iov_total(mh->msg_iov, cnt) : 0;
	ssize_t d = decide(fd, n, 1, RA);
	if (d < 0)
		return -1;
	if ((size_t)d == n)
		return real_sendmsg(fd, mh, flags);
	struct iovec cut[SHORT_IOV_MAX];
	struct msghdr m = *mh;
	m.msg_iov = cut;
	m.msg_iovlen = (size_t)cut_iov(cut, mh->msg_iov, cnt, (size_t)d);
	return real_sendmsg(fd, &m, flags);
}

ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
	NEED(recvmsg);
	int cnt = (int)mh->msg_iovlen;
	size_t n = cnt > 0 && cnt <= SHORT_IOV_MAX ? iov_total(mh->msg_iov, cnt) : 0;
	ssize_t d = decide(fd, n, 0, RA);
	if (d < 0)
		return -1;
	if ((size_t)d == n)
		return real_recvmsg(fd, mh, flags);
	struct iovec cut[SHORT_IOV_MAX], *orig = mh->msg_iov;
	size_t origlen = mh->msg_iovlen;
	mh->msg_iov = cut;
	mh->msg_iovlen = (size_t)cut_iov(cut, orig, cnt, (size_t)d);
	ssize_t k = real_recvmsg(fd, mh, flags);
	int e = errno;
	mh->msg_iov = orig;
	mh->msg_iovlen = origlen;
	errno = e;
	return k;
}

/* _FORTIFY_SOURCE builds call these instead of read, pread and recv. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		abort();
	NEED(read);
	ssize_t d = decide(fd, n, 0, RA);
	return d < 0 ? -1 : real_read(fd, buf, (size_t)d);
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		abort();
	NEED(pread);
	ssize_t d = decide(fd, n, 0, RA);
	return d < 0 ? -1 : real_pread(fd, buf, (size_t)d, off);
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		abort();
	NEED(recv);
	ssize_t d = decide(fd, n, 0, RA);
	return d < 0 ? -1 : real_recv(fd, buf, (size_t)d, flags);
}
