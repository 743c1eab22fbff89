/* shim.c - the per-step supervisor and the process-tree helpers (see shim.h, and proc.h for the
 * design).
 *
 * Layout of one step:
 *
 *   runner-shim or runner   forks the shim (the fork server, or proc.c itself)
 *     shim        child subreaper; never execs; only async-signal-safe calls
 *       command   started by the shim (vfork-like clone); setsid(); stdio set up; execve
 *         ...     whatever the command starts; orphans are re-parented to the shim
 *
 * Everything the shim and the command child need (resolved program path, argv for the ENOEXEC
 * fallback, environment) is built before the fork. After the fork, code in this file runs only
 * async-signal-safe functions (raw syscalls, no malloc, no stdio) on static or stack buffers.
 *
 * The status pipe carries one "started" byte (written once the command was exec'd or failed to)
 * and then one fixed-size struct rn_shim_report. The command child is started with
 * clone(CLONE_VM | CLONE_VFORK) (see cmd_child), so the shim resumes only after the exec or its
 * failure, and the errno of a failure comes back through shared memory instead of a pipe.
 *
 * The tree is found by reading /proc/PID/task/TID/children recursively from the shim (cheap:
 * the shim's own list is one small file). Kernels without CONFIG_PROC_CHILDREN fall back to
 * scanning /proc/N/stat for parent pids.
 *
 * This file must stay libc-only: it is linked into runner-shim, which links nothing else. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Code that runs in the vfork-like command child, on a stack ASan does not know: no ASan
 * instrumentation there (it would warn about the stack switch at _exit). */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define CHILD_CODE __attribute__((no_sanitize("address")))
#endif
#endif
#ifndef CHILD_CODE
#define CHILD_CODE
#endif

/* ---- async-signal-safe helpers (used by the shim and the command child, and by the runner) */

/* Scratch space for tree walks: the shim uses its own copy-on-write copy after fork, the runner
 * and the fork server use it from rn_shim_kill_strays (single-threaded use only). */
#define TREE_MAX 8192
#define SCAN_MAX 16384
#define SEEN_MAX 1024
static pid_t g_tree[TREE_MAX];
static pid_t g_scan_pid[SCAN_MAX], g_scan_ppid[SCAN_MAX];

/* 1 if /proc/PID/task/TID/children exists, 0 if not, -1 unknown; probed before any fork. */
static int g_children_file = -1;

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_num(char *p, long v)
{
	char tmp[24];
	int n = 0;
	if (v < 0)
		v = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* The pid in a decimal directory name, or -1. */
static pid_t parse_pid(const char *s)
{
	long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 100000000)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v > 0 ? (pid_t)v : -1;
}

/* Append the pids of a space-separated /proc children file (opened relative to dfd) to
 * out[*n..max). 0, or -1 if the file cannot be opened (the task is gone). */
static int read_pid_list(int dfd, const char *path, pid_t *out, size_t *n, size_t max)
{
	int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[512];
	long cur = -1;
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		for (ssize_t i = 0; i < k; i++) {
			char c = buf[i];
			if (c >= '0' && c <= '9') {
				cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
			} else if (cur >= 0) {
				if (*n < max)
					out[(*n)++] = (pid_t)cur;
				cur = -1;
			}
		}
	}
	if (cur >= 0 && *n < max)
		out[(*n)++] = (pid_t)cur;
	close(fd);
	return 0;
}

/* Append the children of every thread of pid to out[*n..max) (single: pid has one thread, so
 * only /proc/PID/task/PID/children is read). 0, or -1 if pid is gone. */
static int children_of(pid_t pid, int single, pid_t *out, size_t *n, size_t max)
{
	char path[64], *p;
	if (single) {
		p = put_str(path, "/proc/");
		p = put_num(p, pid);
		p = put_str(p, "/task/");
		p = put_num(p, pid);
		p = put_str(p, "/children");
		*p = '\0';
		return read_pid_list(AT_FDCWD, path, out, n, max);
	}
	p = put_str(path, "/proc/");
	p = put_num(p, pid);
	p = put_str(p, "/task");
	*p = '\0';
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	char dbuf[1024] __attribute__((aligned(8)));
	for (;;) {
		long k = syscall(SYS_getdents64, dfd, dbuf, sizeof(dbuf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		for (long off = 0; off < k;) {
			/* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[] */
			unsigned short reclen;
			memcpy(&reclen, dbuf + off + 16, sizeof(reclen));
			const char *name = dbuf + off + 19;
			off += reclen;
			if (reclen == 0)
				break;
			if (parse_pid(name) < 0)
				continue;
			p = put_str(path, name);
			p = put_str(p, "/children");
			*p = '\0';
			read_pid_list(dfd, path, out, n, max);
		}
	}
	close(dfd);
	return 0;
}

/* Parent pid and session of pid from /proc/PID/stat. 0, or -1 if it is gone. */
static int stat_fields(pid_t pid, pid_t *ppid, pid_t *sid)
{
	char path[40], buf[640], *p;
	p = put_str(path, "/proc/");
	p = put_num(p, pid);
	p = put_str(p, "/stat");
	*p = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t k;
	do
		k = read(fd, buf, sizeof(buf) - 1);
	while (k < 0 && errno == EINTR);
	close(fd);
	if (k <= 0)
		return -1;
	buf[k] = '\0';
	/* "pid (comm) S ppid pgrp session ..."; comm may contain anything, so use the last ')' */
	char *e = NULL;
	for (ssize_t i = 0; i < k; i++)
		if (buf[i] == ')')
			e = buf + i;
	if (!e)
		return -1;
	long f[3] = { 0, 0, 0 };
	int field = -1; /* -1: the state letter */
	p = e + 1;
	while (*p && field < 3) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (field >= 0) {
			long v = 0;
			while (*p >= '0' && *p <= '9')
				v = v * 10 + (*p++ - '0');
			f[field] = v;
		}
		while (*p && *p != ' ')
			p++;
		field++;
	}
	if (field < 3)
		return -1;
	if (ppid)
		*ppid = (pid_t)f[0];
	if (sid)
		*sid = (pid_t)f[2];
	return 0;
}

/* Fallback without children files: (pid, ppid) of every process into g_scan_*; their count. */
static size_t scan_all(void)
{
	size_t n = 0;
	int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	char dbuf[2048] __attribute__((aligned(8)));
	for (;;) {
		long k = syscall(SYS_getdents64, dfd, dbuf, sizeof(dbuf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		for (long off = 0; off < k;) {
			unsigned short reclen;
			memcpy(&reclen, dbuf + off + 16, sizeof(reclen));
			const char *name = dbuf + off + 19;
			off += reclen;
			if (reclen == 0)
				break;
			pid_t pid = parse_pid(name), ppid;
			if (pid > 0 && n < SCAN_MAX && stat_fields(pid, &ppid, NULL) == 0) {
				g_scan_pid[n] = pid;
				g_scan_ppid[n] = ppid;
				n++;
			}
		}
	}
	close(dfd);
	return n;
}

/* All descendants of root (root excluded) into out[0..max), parents before children. */
static size_t walk_tree(pid_t root, int root_single, int children_file, pid_t *out, size_t max)
{
	size_t n = 0;
	if (children_file) {
		children_of(root, root_single, out, &n, max);
		for (size_t i = 0; i < n; i++)
			children_of(out[i], 0, out, &n, max);
		return n;
	}
	size_t all = scan_all();
	for (size_t j = 0; j < all; j++)
		if (g_scan_ppid[j] == root && n < max)
			out[n++] = g_scan_pid[j];
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < all; j++)
			if (g_scan_ppid[j] == out[i] && n < max)
				out[n++] = g_scan_pid[j];
	return n;
}

static void write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t k = write(fd, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		p += k;
		len -= (size_t)k;
	}
}

/* close_range(lo, hi, flags), falling back to a close() loop on old kernels. */
CHILD_CODE static void close_fds(unsigned lo, unsigned hi, unsigned flags)
{
	if (lo > hi)
		return;
	if (syscall(SYS_close_range, lo, hi, flags) == 0)
		return;
	struct rlimit rl;
	unsigned max = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max)
		max = (unsigned)rl.rlim_cur;
	if (hi > max)
		hi = max;
	for (unsigned fd = lo; fd <= hi; fd++) {
		if (flags & CLOSE_RANGE_CLOEXEC)
			fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		else
			close((int)fd);
	}
}

/* ---- the command child
 *
 * It is started with clone(CLONE_VM | CLONE_VFORK), like glibc's posix_spawn: it runs on its own
 * stack in the shim's memory while the shim is suspended, until it execs or exits. So there is no
 * page-table copy, and a failure (errno and stage) is simply stored in struct cmd_args, which the
 * shim reads when clone returns. The child has its own copy of the fd table, cwd and signal
 * dispositions (no CLONE_FILES/CLONE_FS/CLONE_SIGHAND), so dup2/chdir/sigaction here do not touch
 * the shim. It must not return to the shim's stack frames, and does not: it ends in _exit. */

struct cmd_args {
	const rn_shim_ctx *c;
	volatile int32_t err;   /* errno of a failed start, written before _exit */
	volatile int32_t stage; /* enum rn_proc_fail */
	volatile int32_t sandbox_stage; /* with RN_SHIM_FAIL_SANDBOX: the sandbox module's stage */
};

CHILD_CODE static _Noreturn void cmd_fail(struct cmd_args *a, int err, int stage)
{
	a->err = err ? err : EIO;
	a->stage = stage;
	_exit(127);
}

/* fd moved to a number >= 3 (a new CLOEXEC copy) so dup2 onto 0..2 cannot clobber it. */
CHILD_CODE static int fd_above_stdio(int fd)
{
	return fd >= 0 && fd < 3 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : fd;
}

CHILD_CODE static int cmd_child(void *arg)
{
	struct cmd_args *a = arg;
	const rn_shim_ctx *c = a->c;
	int in = c->in_fd, out = c->out_fd;
	if (setsid() < 0)
		cmd_fail(a, errno, RN_SHIM_FAIL_SETUP);
	if (in < 0)
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (out < 0)
		out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0)
		cmd_fail(a, errno, RN_SHIM_FAIL_SETUP);
	in = fd_above_stdio(in);
	out = fd_above_stdio(out);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		cmd_fail(a, errno, RN_SHIM_FAIL_SETUP);
	/* every other fd goes at exec */
	close_fds(3, ~0U, CLOSE_RANGE_CLOEXEC);

	/* the shim ignores these and has every signal blocked; the command gets defaults (all other
	 * dispositions are already SIG_DFL: the shim reset them) */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (c->dir && chdir(c->dir) < 0)
		cmd_fail(a, errno, RN_SHIM_FAIL_CHDIR);
	if (!c->path)
		cmd_fail(a, c->path_errno, RN_SHIM_FAIL_EXEC);
	if (c->sandbox) {
		/* rlimits, no_new_privs and the seccomp filter: the last thing before exec */
		int stage = 0, rc = c->sandbox_exec_prepare(c->sandbox, &stage);
		if (rc < 0) {
			a->sandbox_stage = stage;
			cmd_fail(a, -rc, RN_SHIM_FAIL_SANDBOX);
		}
	}
	execve(c->path, c->argv, c->envp);
	if (errno == ENOEXEC)
		execve("/bin/sh", c->sh_argv, c->envp);
	cmd_fail(a, errno, RN_SHIM_FAIL_EXEC);
}

/* ---- the shim */

struct shim_state {
	const rn_shim_ctx *c;
	pid_t self;
	pid_t cmd;         /* the command child */
	int cmd_done;      /* the command was reaped */
	int cmd_status;    /* its wait status */
	int survivors;     /* distinct tree processes found after the command ended */
	int64_t utime_us, stime_us, maxrss_kb; /* of every process reaped (with what it reaped): the
	                                        * tree's; not RUSAGE_CHILDREN, which a shim of the fork
	                                        * server would carry over from one step to the next */
	size_t nseen;
	pid_t seen[SEEN_MAX];
};

static void shim_note_exit(struct shim_state *s, pid_t w, int st, const struct rusage *ru)
{
	s->utime_us += (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec;
	s->stime_us += (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
	if (ru->ru_maxrss > s->maxrss_kb)
		s->maxrss_kb = ru->ru_maxrss;
	if (w == s->cmd && !s->cmd_done) {
		s->cmd_done = 1;
		s->cmd_status = st;
	}
}

/* Reap every exited child without blocking. 1 if children remain, 0 if none (ECHILD). */
static int shim_reap(struct shim_state *s)
{
	for (;;) {
		int st;
		struct rusage ru;
		pid_t w = wait4(-1, &st, WNOHANG | __WALL, &ru);
		if (w > 0) {
			shim_note_exit(s, w, st, &ru);
			continue;
		}
		if (w == 0)
			return 1;
		if (errno == EINTR)
			continue;
		return 0;
	}
}

static void shim_count(struct shim_state *s, pid_t pid)
{
	if (pid == s->cmd)
		return;
	for (size_t i = 0; i < s->nseen; i++)
		if (s->seen[i] == pid)
			return;
	if (s->nseen < SEEN_MAX) { /* beyond that the count stays at SEEN_MAX */
		s->seen[s->nseen++] = pid;
		s->survivors++;
	}
}

/* SIGTERM to the command's process group and to every process of the tree, then SIGCONT so
 * that stopped processes can act on it (as systemd does). */
static void shim_term(struct shim_state *s)
{
	if (!s->cmd_done)
		kill(-s->cmd, SIGTERM);
	size_t n = walk_tree(s->self, 1, s->c->children_file, g_tree, TREE_MAX);
	for (size_t i = 0; i < n; i++) {
		kill(g_tree[i], SIGTERM);
		kill(g_tree[i], SIGCONT);
	}
	if (!s->cmd_done)
		kill(-s->cmd, SIGCONT);
}

/* SIGKILL every process of the tree and reap, until no child is left. Orphans come back to us
 * (we are their subreaper), so a process forked while we were killing is found next round. */
static void shim_kill_all(struct shim_state *s)
{
	for (;;) {
		if (!shim_reap(s))
			return;
		size_t n = walk_tree(s->self, 1, s->c->children_file, g_tree, TREE_MAX);
		if (n == 0 && s->c->children_file) /* children left, none listed: ask /proc the slow way */
			n = walk_tree(s->self, 1, 0, g_tree, TREE_MAX);
		if (!s->cmd_done)
			kill(-s->cmd, SIGKILL);
		for (size_t i = 0; i < n; i++) {
			shim_count(s, g_tree[i]);
			kill(g_tree[i], SIGKILL);
		}
		/* every child we have is dying now: wait for one, then look again */
		int st;
		struct rusage ru;
		pid_t w;
		do
			w = wait4(-1, &st, __WALL, &ru);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return;
		shim_note_exit(s, w, st, &ru);
	}
}

/* The command could not be started: send the "started" byte and a report saying why (there is no
 * tree to watch), and close the status pipe. */
static void shim_start_failed(const rn_shim_ctx *c, int err, int stage, int sandbox_stage)
{
	struct rn_shim_report fail;
	memset(&fail, 0, sizeof(fail));
	fail.magic = RN_SHIM_REPORT_MAGIC;
	fail.exec_errno = err;
	fail.fail_stage = stage;
	fail.sandbox_stage = sandbox_stage;
	fail.wstatus = 127 << 8;
	char b = RN_SHIM_START_BYTE;
	int status_w = c->status_w; /* c may be rewritten once the report is out (see rn_shim_run) */
	write_full(status_w, &b, 1);
	write_full(status_w, &fail, sizeof(fail));
	close(status_w);
}

/* The shim's state and the command child's stack: static, in the shim's copy of memory (its
 * parent never uses them). */
static struct shim_state g_state;
static char g_cmd_stack[64 * 1024] __attribute__((aligned(64)));
static struct cmd_args g_args;

int rn_shim_enter(pid_t parent, int signals_clean, int check_parent)
{
	/* All signals are blocked (the runner blocked them around fork; the fork server blocks them
	 * for good) and stay blocked: the shim takes SIGCHLD/SIGTERM/SIGUSR1 with sigwaitinfo and
	 * never runs a handler. Dispositions go back to default so the runner's handlers cannot run
	 * here or in the command before exec; SIGINT/SIGHUP are ignored (the runner decides), SIGPIPE
	 * too (a dead reader gives EPIPE). The fork server has set them so once for all its shims. */
	if (!signals_clean)
		rn_shim_reset_signals();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return -1;
	/* in a new pid namespace getppid() is 0: the sandbox checks the runner through a pidfd */
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1) < 0 || (check_parent && getppid() != parent))
		return -1; /* the parent (runner or fork server) is already gone: start nothing */
	return 0;
}

void rn_shim_keep_fds(const int *fds, int n)
{
	/* keep only stdio (harmless, useful for debugging) and the given fds: inherited pipe ends
	 * of other steps must not be held open by this shim */
	int keep[8];
	int k = 0;
	keep[k++] = 0;
	keep[k++] = 1;
	keep[k++] = 2;
	for (int i = 0; i < n && k < 8; i++)
		keep[k++] = fds[i];
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned lo = 0;
	for (int i = 0; i < k; i++) {
		if (keep[i] < 0 || (unsigned)keep[i] < lo)
			continue;
		if ((unsigned)keep[i] > lo)
			close_fds(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_fds(lo, ~0U, 0);
}

void rn_shim_warm(void)
{
	/* write every page the shim will write when it starts its command, so that the copies
	 * (copy-on-write after fork) are made now and not while a step waits */
	volatile char *p = (volatile char *)&g_state;
	for (size_t i = 0; i < sizeof(g_state); i += 4096)
		p[i] = 0;
	p[sizeof(g_state) - 1] = 0;
	for (size_t i = sizeof(g_cmd_stack); i > sizeof(g_cmd_stack) - 16384; i -= 4096)
		((volatile char *)g_cmd_stack)[i - 1] = 0;
	memset(&g_args, 0, sizeof(g_args));
}

_Noreturn void rn_shim_main(const rn_shim_ctx *c)
{
	if (rn_shim_enter(c->parent, c->signals_clean, !c->sandbox) < 0)
		_exit(126);
	if (c->sandbox) {
		/* namespaces, mounts, limits and the seccomp filter, as PID 1 of the step's namespace */
		int stage = 0, rc = c->sandbox_setup(c->sandbox, &stage);
		if (rc < 0) {
			shim_start_failed(c, -rc, RN_SHIM_FAIL_SANDBOX, stage);
			_exit(0);
		}
	}
	int fds[3] = { c->status_w, c->in_fd, c->out_fd };
	rn_shim_keep_fds(fds, 3);
	rn_shim_run(c);
	_exit(0);
}

int rn_shim_run(const rn_shim_ctx *c)
{
	struct shim_state *s = &g_state;
	memset(s, 0, sizeof(*s));
	memset(&g_args, 0, sizeof(g_args));
	s->c = c;
	s->self = getpid();
	s->cmd_status = -1;

	struct rn_shim_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.magic = RN_SHIM_REPORT_MAGIC;

	g_args.c = c;
	s->cmd = clone(cmd_child, g_cmd_stack + sizeof(g_cmd_stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
		      &g_args);
	/* here the command has exec'd, or failed to (and exited) */
	int clone_errno = errno;
	/* the tree holds out_fd/in_fd now; our copies would delay EOF for the runner (late_start:
	 * out_fd is held until the report is out, so that EOF and the report come together) */
	int hold_out = c->late_start && c->out_fd >= 0 && c->out_fd != c->status_w && c->out_fd != c->in_fd;
	if (c->in_fd >= 0 && c->in_fd != c->status_w)
		close(c->in_fd);
	if (c->out_fd >= 0 && c->out_fd != c->status_w && c->out_fd != c->in_fd && !hold_out)
		close(c->out_fd);
	if (s->cmd < 0) {
		if (hold_out)
			close(c->out_fd);
		shim_start_failed(c, clone_errno, RN_SHIM_FAIL_SETUP, 0);
		return 0;
	}
	if (g_args.err) {
		rep.exec_errno = g_args.err;
		rep.fail_stage = g_args.stage;
		rep.sandbox_stage = g_args.sandbox_stage;
	}
	char b = RN_SHIM_START_BYTE;
	if (!c->late_start)
		write_full(c->status_w, &b, 1);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGCHLD) {
			shim_reap(s);
			if (s->cmd_done)
				break;
		} else if (sig == SIGTERM) {
			shim_term(s);
		} else if (sig == SIGUSR1) {
			break; /* rn_proc_kill, or the parent (runner or fork server) died */
		}
	}
	shim_kill_all(s);

	rep.wstatus = s->cmd_done ? s->cmd_status : -1;
	rep.survivors = s->survivors;
	rep.utime_us = s->utime_us;
	rep.stime_us = s->stime_us;
	rep.maxrss_kb = s->maxrss_kb;
	/* once the report is out, c is not ours to read: the runner may be laying the next step
	 * out in the fork server's arena already */
	int status_w = c->status_w, out_fd = hold_out ? c->out_fd : -1;
	if (c->late_start) { /* START and the report in one write (< PIPE_BUF: atomic) */
		char both[1 + sizeof(rep)];
		both[0] = b;
		memcpy(both + 1, &rep, sizeof(rep));
		write_full(status_w, both, sizeof(both));
	} else {
		write_full(status_w, &rep, sizeof(rep));
	}
	close(status_w);
	if (out_fd >= 0)
		close(out_fd);
	return 0;
}


/* ---- used by the runner and the fork server */

void rn_shim_reset_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa.sa_handler = sig == SIGINT || sig == SIGHUP || sig == SIGPIPE ? SIG_IGN : SIG_DFL;
		if (sigaction(sig, &sa, NULL) == 0 || errno != EINVAL)
			continue;
		/* glibc keeps its internal signals (32, 33) from sigaction(), and posix_spawn() leaves
		 * them ignored in the new program; the command must not inherit that. An all-zero
		 * kernel sigaction is SIG_DFL with no flags and an empty mask on every architecture. */
		static const char zero[64];
		syscall(SYS_rt_sigaction, sig, zero, NULL, (size_t)(NSIG - 1) / 8);
	}
}

int rn_shim_children_file(void)
{
	if (g_children_file < 0)
		g_children_file = access("/proc/thread-self/children", R_OK) == 0;
	return g_children_file;
}

size_t rn_shim_children(pid_t pid, pid_t *out, size_t max)
{
	size_t n = 0;
	if (rn_shim_children_file()) {
		children_of(pid, 0, out, &n, max);
		return n;
	}
	size_t all = scan_all();
	for (size_t j = 0; j < all && n < max; j++)
		if (g_scan_ppid[j] == pid)
			out[n++] = g_scan_pid[j];
	return n;
}

int rn_shim_stat(pid_t pid, pid_t *ppid, pid_t *sid)
{
	return stat_fields(pid, ppid, sid);
}

void rn_shim_kill_strays(int (*keep)(pid_t pid, void *arg), void *arg, int any_session)
{
	pid_t self = getpid(), sid = getsid(0);
	pid_t kids[512];
	int cf = rn_shim_children_file();
	for (int round = 0; round < 100; round++) {
		size_t n = rn_shim_children(self, kids, sizeof(kids) / sizeof(kids[0]));
		int found = 0;
		for (size_t i = 0; i < n; i++) {
			pid_t k = kids[i], ksid;
			if ((keep && keep(k, arg)) || stat_fields(k, NULL, &ksid) < 0 || (!any_session && ksid == sid))
				continue;
			found++;
			size_t m = walk_tree(k, 0, cf, g_tree, TREE_MAX);
			kill(k, SIGKILL);
			for (size_t j = 0; j < m; j++)
				kill(g_tree[j], SIGKILL);
			while (waitpid(k, NULL, __WALL) < 0 && errno == EINTR) {
			}
		}
		if (!found)
			break;
	}
}
