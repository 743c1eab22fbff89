/* proc.c - run one step as a contained process tree (see proc.h for the design).
 *
 * Layout of one step:
 *
 *   runner (child subreaper)
 *     shim        forked by rn_proc_start; child subreaper; never execs; only async-signal-safe
 *       command   started by the shim (vfork-like clone); setsid(); stdio set up; execve
 *         ...     whatever the command starts; orphans are re-parented to the shim
 *
 * Everything the shim and the command child need (resolved program path, argv for the ENOEXEC
 * fallback, environment) is built before the fork. After the fork, code in this file runs only
 * async-signal-safe functions (raw syscalls, no malloc, no stdio) on static or stack buffers.
 *
 * The status pipe carries one "started" byte (written once the command was exec'd or failed to)
 * and then one fixed-size struct report. The command child is started with
 * clone(CLONE_VM | CLONE_VFORK) (see cmd_child), so the shim resumes only after the exec or its
 * failure, and the errno of a failure comes back through shared memory instead of a pipe.
 *
 * The tree is found by reading /proc/PID/task/TID/children recursively from the shim (cheap:
 * the shim's own list is one small file). Kernels without CONFIG_PROC_CHILDREN fall back to
 * scanning /proc/N/stat for parent pids. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proc.h"
#include "sandbox.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

#define REPORT_MAGIC 0x726e7072u /* "rnpr" */
#define START_BYTE 'S'

/* What the shim sends on the status pipe after the "started" byte (< PIPE_BUF: one atomic write). */
struct report {
	uint32_t magic;
	int32_t wstatus;    /* wait status of the command, -1 if it was never reaped */
	int32_t exec_errno; /* errno of a failed start, else 0 */
	int32_t fail_stage; /* enum rn_proc_fail */
	int32_t survivors;  /* tree processes found alive after the command ended */
	int32_t pad;
	int64_t utime_us, stime_us, maxrss_kb;
};

/* Everything the shim needs, prepared by the caller before fork (the shim gets a copy). */
struct shim_ctx {
	pid_t parent;            /* the runner's pid, to detect that it died before PDEATHSIG was set */
	const char *path;        /* program to execve, NULL if the PATH lookup failed */
	int path_errno;          /* errno of the failed lookup */
	char *const *argv;       /* the command's argv */
	char *const *sh_argv;    /* "/bin/sh" path argv[1..]: the ENOEXEC fallback, like execvp */
	char *const *envp;       /* the command's environment */
	const char *dir;         /* working directory or NULL */
	int in_fd, out_fd;       /* -1: /dev/null */
	int status_w;            /* write end of the status pipe */
	int children_file;       /* /proc/PID/task/TID/children exists */
	const rn_sandbox_plan *sandbox; /* prepared by the runner, or NULL */
};

/* ---- async-signal-safe helpers (used by the shim and the command child, and by the runner) */

/* Scratch space for tree walks: the shim uses its own copy-on-write copy after fork, the runner
 * uses it from rn_proc_reap_strays/rn_proc_finish (single-threaded use only). */
#define TREE_MAX 8192
#define SCAN_MAX 16384
#define SEEN_MAX 1024
static pid_t g_tree[TREE_MAX];
static pid_t g_scan_pid[SCAN_MAX], g_scan_ppid[SCAN_MAX];

/* 1 if /proc/PID/task/TID/children exists, 0 if not, -1 unknown; probed in the runner. */
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

/* Read exactly len bytes unless EOF/error comes first; the bytes read. */
static size_t read_full(int fd, void *buf, size_t len)
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
	const struct shim_ctx *c;
	volatile int32_t err;   /* errno of a failed start, written before _exit */
	volatile int32_t stage; /* enum rn_proc_fail */
	volatile int32_t sandbox_stage; /* with RN_PROC_FAIL_SANDBOX: the sandbox module's stage */
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
	const struct shim_ctx *c = a->c;
	int in = c->in_fd, out = c->out_fd;
	if (setsid() < 0)
		cmd_fail(a, errno, RN_PROC_FAIL_SETUP);
	if (in < 0)
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (out < 0)
		out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0)
		cmd_fail(a, errno, RN_PROC_FAIL_SETUP);
	in = fd_above_stdio(in);
	out = fd_above_stdio(out);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		cmd_fail(a, errno, RN_PROC_FAIL_SETUP);
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
		cmd_fail(a, errno, RN_PROC_FAIL_CHDIR);
	if (!c->path)
		cmd_fail(a, c->path_errno, RN_PROC_FAIL_EXEC);
	if (c->sandbox) {
		/* rlimits, no_new_privs and the seccomp filter: the last thing before exec */
		int stage = 0, rc = rn_sandbox_exec_prepare(c->sandbox, &stage);
		if (rc < 0) {
			a->sandbox_stage = stage;
			cmd_fail(a, -rc, RN_PROC_FAIL_SANDBOX);
		}
	}
	execve(c->path, c->argv, c->envp);
	if (errno == ENOEXEC)
		execve("/bin/sh", c->sh_argv, c->envp);
	cmd_fail(a, errno, RN_PROC_FAIL_EXEC);
}

/* ---- the shim */

struct shim_state {
	const struct shim_ctx *c;
	pid_t self;
	pid_t cmd;         /* the command child */
	int cmd_done;      /* the command was reaped */
	int cmd_status;    /* its wait status */
	int survivors;     /* distinct tree processes found after the command ended */
	size_t nseen;
	pid_t seen[SEEN_MAX];
};

static void shim_note_exit(struct shim_state *s, pid_t w, int st)
{
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
		pid_t w = waitpid(-1, &st, WNOHANG | __WALL);
		if (w > 0) {
			shim_note_exit(s, w, st);
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
		pid_t w;
		do
			w = waitpid(-1, &st, __WALL);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return;
		shim_note_exit(s, w, st);
	}
}

/* The command could not be started: send the "started" byte and a report saying why, then end
 * the shim (there is no tree to watch). */
static _Noreturn void shim_start_failed(const struct shim_ctx *c, int err, int stage, int sandbox_stage)
{
	struct report fail;
	memset(&fail, 0, sizeof(fail));
	fail.magic = REPORT_MAGIC;
	fail.exec_errno = err;
	fail.fail_stage = stage;
	fail.pad = sandbox_stage;
	fail.wstatus = 127 << 8;
	char b = START_BYTE;
	write_full(c->status_w, &b, 1);
	write_full(c->status_w, &fail, sizeof(fail));
	_exit(0);
}

static _Noreturn void shim_main(const struct shim_ctx *c)
{
	/* All signals are blocked (the caller blocked them around fork) and stay blocked: the shim
	 * takes SIGCHLD/SIGTERM/SIGUSR1 with sigwaitinfo and never runs a handler. Dispositions go
	 * back to default so the runner's handlers cannot run here or in the command before exec;
	 * SIGINT/SIGHUP are ignored (the runner decides), SIGPIPE too (a dead reader gives EPIPE). */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa.sa_handler = sig == SIGINT || sig == SIGHUP || sig == SIGPIPE ? SIG_IGN : SIG_DFL;
		sigaction(sig, &sa, NULL);
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		_exit(126);
	/* in a new pid namespace getppid() is 0: the sandbox checks the runner through a pidfd */
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1) < 0 || (!c->sandbox && getppid() != c->parent))
		_exit(126); /* the runner is already gone: start nothing */
	if (c->sandbox) {
		/* namespaces, mounts, limits and the seccomp filter, as PID 1 of the step's namespace */
		int stage = 0, rc = rn_sandbox_setup(c->sandbox, &stage);
		if (rc < 0)
			shim_start_failed(c, -rc, RN_PROC_FAIL_SANDBOX, stage);
	}

	/* keep only stdio (harmless, useful for debugging), the status pipe and the command's fds:
	 * inherited pipe ends of other steps must not be held open by this shim */
	int keep[6] = { 0, 1, 2, c->status_w, c->in_fd, c->out_fd };
	for (int i = 1; i < 6; i++)
		for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned lo = 0;
	for (int i = 0; i < 6; i++) {
		if (keep[i] < 0 || (unsigned)keep[i] < lo)
			continue;
		if ((unsigned)keep[i] > lo)
			close_fds(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_fds(lo, ~0U, 0);

	static struct shim_state s; /* static: seen[] is too big for a comfortable stack frame */
	s.c = c;
	s.self = getpid();
	s.cmd_status = -1;

	struct report rep;
	memset(&rep, 0, sizeof(rep));
	rep.magic = REPORT_MAGIC;

	/* the command child's stack: static, in the shim's copy of memory (the runner never uses it) */
	static char cmd_stack[64 * 1024] __attribute__((aligned(64)));
	static struct cmd_args args;
	args.c = c;
	s.cmd = clone(cmd_child, cmd_stack + sizeof(cmd_stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
		      &args);
	/* here the command has exec'd, or failed to (and exited) */
	int clone_errno = errno;
	/* the tree holds out_fd/in_fd now; our copies would delay EOF for the runner */
	if (c->in_fd >= 0 && c->in_fd != c->status_w)
		close(c->in_fd);
	if (c->out_fd >= 0 && c->out_fd != c->status_w && c->out_fd != c->in_fd)
		close(c->out_fd);
	if (s.cmd < 0)
		shim_start_failed(c, clone_errno, RN_PROC_FAIL_SETUP, 0);
	if (args.err) {
		rep.exec_errno = args.err;
		rep.fail_stage = args.stage;
		rep.pad = args.sandbox_stage;
	}
	char b = START_BYTE;
	write_full(c->status_w, &b, 1);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGCHLD) {
			shim_reap(&s);
			if (s.cmd_done)
				break;
		} else if (sig == SIGTERM) {
			shim_term(&s);
		} else if (sig == SIGUSR1) {
			break; /* rn_proc_kill, or the runner died */
		}
	}
	shim_kill_all(&s);

	struct rusage ru;
	memset(&ru, 0, sizeof(ru));
	getrusage(RUSAGE_CHILDREN, &ru);
	rep.wstatus = s.cmd_done ? s.cmd_status : -1;
	rep.survivors = s.survivors;
	rep.utime_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
	rep.stime_us = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
	rep.maxrss_kb = ru.ru_maxrss;
	write_full(c->status_w, &rep, sizeof(rep));
	_exit(0);
}

/* ---- the runner side */

static pid_t *g_shims;
static size_t g_nshims, g_capshims;

static void shim_add(pid_t pid)
{
	rn_grow(&g_shims, &g_capshims, g_nshims + 1, sizeof(*g_shims));
	g_shims[g_nshims++] = pid;
}

static void shim_del(pid_t pid)
{
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i] == pid) {
			g_shims[i] = g_shims[--g_nshims];
			return;
		}
}

static int is_shim(pid_t pid)
{
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i] == pid)
			return 1;
	return 0;
}

static int children_file(void)
{
	if (g_children_file < 0)
		g_children_file = access("/proc/thread-self/children", R_OK) == 0;
	return g_children_file;
}

int rn_proc_init(void)
{
	/* without /proc the tree cannot be found (and so not killed): refuse to run steps */
	if (access("/proc/self/stat", R_OK) < 0)
		return rn_error_errno("rn_proc_init: /proc is not usable");
	children_file();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return rn_error_errno("prctl(PR_SET_CHILD_SUBREAPER)");
	return RN_OK;
}

/* argv[0] resolved like execvp through envp's PATH; NULL with *err (ENOENT/EACCES) if not found.
 * A relative PATH entry is checked against dir (the command's working directory) and returned
 * relative, since the command execs after chdir(dir). Caller frees. */
static char *resolve_program(const char *name, const char *const *envp, const char *dir, int *err)
{
	*err = ENOENT;
	if (!*name)
		return NULL;
	if (strchr(name, '/'))
		return rn_xstrdup(name);
	const char *path = NULL;
	for (const char *const *e = envp; *e; e++)
		if (rn_startswith(*e, "PATH=")) {
			path = *e + 5;
			break;
		}
	if (!path)
		path = "/bin:/usr/bin";
	for (const char *seg = path;;) {
		const char *end = strchr(seg, ':');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		char *cand = len ? rn_xasprintf("%.*s/%s", (int)len, seg, name) : rn_xstrdup(name);
		char *check = cand;
		if (cand[0] != '/')
			check = dir ? rn_xasprintf("%s/%s", dir, cand) : cand;
		struct stat st;
		int ok = stat(check, &st) == 0 && S_ISREG(st.st_mode);
		if (ok && access(check, X_OK) != 0) {
			*err = EACCES;
			ok = 0;
		}
		if (check != cand)
			free(check);
		if (ok) {
			if (!len) { /* an empty entry means the current directory */
				char *rel = rn_xasprintf("./%s", name);
				free(cand);
				cand = rel;
			}
			return cand;
		}
		free(cand);
		if (!end)
			break;
		seg = end + 1;
	}
	return NULL;
}

int rn_proc_start(rn_proc *p, const rn_proc_opts *o)
{
	static const char *const no_env[] = { NULL };
	p->pid = -1;
	p->status_fd = -1;
	p->reaped = 0;
	p->wstatus = 0;
	if (!o || !o->argv || !o->argv[0]) {
		rn_error_set("rn_proc_start: empty argv");
		return RN_EINVALID;
	}
	const char *const *envp = o->envp ? o->envp : no_env;

	struct shim_ctx c;
	memset(&c, 0, sizeof(c));
	c.parent = getpid();
	c.path = resolve_program(o->argv[0], envp, o->dir, &c.path_errno);
	size_t argc = 0;
	while (o->argv[argc])
		argc++;
	const char **sh_argv = rn_xcalloc(argc + 2, sizeof(*sh_argv));
	sh_argv[0] = "/bin/sh";
	sh_argv[1] = c.path ? c.path : o->argv[0];
	for (size_t i = 1; i < argc; i++)
		sh_argv[i + 1] = o->argv[i];
	/* execve takes char *const[]; it does not write through these pointers */
	c.argv = (char *const *)(uintptr_t)o->argv;
	c.sh_argv = (char *const *)(uintptr_t)sh_argv;
	c.envp = (char *const *)(uintptr_t)envp;
	c.dir = o->dir;
	c.in_fd = o->in_fd;
	c.out_fd = o->out_fd;
	c.children_file = children_file();
	c.sandbox = o->sandbox;

	int sp[2];
	if (pipe2(sp, O_CLOEXEC) < 0) {
		free((void *)(uintptr_t)c.path);
		free(sh_argv);
		return rn_error_errno("rn_proc_start: pipe");
	}
	c.status_w = sp[1];

	/* like git's start_command: no signal handler may run in the child before it resets them */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = o->sandbox ? rn_sandbox_fork(o->sandbox) : fork();
	if (pid == 0)
		shim_main(&c);
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sp[1]);
	free((void *)(uintptr_t)c.path);
	free(sh_argv);
	if (pid < 0) {
		close(sp[0]);
		errno = fork_errno;
		return rn_error_errno("rn_proc_start: fork");
	}
	shim_add(pid);
	p->pid = pid;
	p->status_fd = sp[0];

	/* wait until the command was exec'd or failed to (EOF: the shim died; rn_proc_finish
	 * reports that) */
	char b;
	read_full(sp[0], &b, 1);
	int fl = fcntl(sp[0], F_GETFL);
	if (fl < 0 || fcntl(sp[0], F_SETFL, fl | O_NONBLOCK) < 0)
		rn_error_errno("rn_proc_start: fcntl"); /* not fatal: finish copes with a blocking fd */
	return RN_OK;
}

void rn_proc_term(rn_proc *p)
{
	if (p && p->pid > 0 && !p->reaped)
		kill(p->pid, SIGTERM);
}

void rn_proc_kill(rn_proc *p)
{
	if (p && p->pid > 0 && !p->reaped)
		kill(p->pid, SIGUSR1);
}

/* Kill (with descendants) and reap every child of the runner that is not a live shim and not in
 * the runner's session; repeat while killing them brings new orphans back to us. */
static void kill_strays(void)
{
	pid_t self = getpid(), sid = getsid(0);
	pid_t kids[512];
	for (int round = 0; round < 100; round++) {
		size_t n = 0;
		if (children_file()) {
			children_of(self, 0, kids, &n, RN_ARRAY_LEN(kids));
		} else {
			size_t all = scan_all();
			for (size_t j = 0; j < all && n < RN_ARRAY_LEN(kids); j++)
				if (g_scan_ppid[j] == self)
					kids[n++] = g_scan_pid[j];
		}
		int found = 0;
		for (size_t i = 0; i < n; i++) {
			pid_t k = kids[i], ksid;
			if (is_shim(k) || stat_fields(k, NULL, &ksid) < 0 || ksid == sid)
				continue;
			found++;
			size_t m = walk_tree(k, 0, children_file(), g_tree, TREE_MAX);
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

void rn_proc_reap_strays(void)
{
	kill_strays();
}

int rn_proc_finish(rn_proc *p, rn_proc_result *r)
{
	rn_proc_result dummy;
	if (!r)
		r = &dummy;
	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (!p || p->pid <= 0) {
		rn_error_set("rn_proc_finish: not started");
		return RN_EINVALID;
	}
	struct report rep;
	size_t got = 0;
	memset(&rep, 0, sizeof(rep));
	if (p->status_fd >= 0) {
		while (got < sizeof(rep)) {
			ssize_t k = read(p->status_fd, (char *)&rep + got, sizeof(rep) - got);
			if (k > 0) {
				got += (size_t)k;
			} else if (k == 0) {
				break;
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pf = { .fd = p->status_fd, .events = POLLIN };
				poll(&pf, 1, -1);
			} else if (errno != EINTR) {
				break;
			}
		}
		close(p->status_fd);
		p->status_fd = -1;
	}
	if (!p->reaped) {
		int ws = 0;
		pid_t w;
		do
			w = waitpid(p->pid, &ws, __WALL);
		while (w < 0 && errno == EINTR);
		p->reaped = 1;
		p->wstatus = w == p->pid ? ws : -1;
		shim_del(p->pid);
	}
	if (got == sizeof(rep) && rep.magic == REPORT_MAGIC) {
		int ws = rep.wstatus;
		if (ws != -1 && WIFEXITED(ws)) {
			r->status = WEXITSTATUS(ws);
		} else if (ws != -1 && WIFSIGNALED(ws)) {
			r->signal = WTERMSIG(ws);
			r->status = 128 + r->signal;
		}
		r->exec_errno = rep.exec_errno;
		r->fail_stage = rep.exec_errno ? rep.fail_stage : RN_PROC_FAIL_NONE;
		r->sandbox_stage = rep.fail_stage == RN_PROC_FAIL_SANDBOX ? rep.pad : 0;
		if (rep.exec_errno)
			r->status = 127;
		r->user_s = (double)rep.utime_us / 1e6;
		r->sys_s = (double)rep.stime_us / 1e6;
		r->maxrss_kb = (long)rep.maxrss_kb;
		r->survivors = rep.survivors;
		return RN_OK;
	}
	/* the shim died without a report: its orphans are ours now (we are their subreaper) */
	kill_strays();
	int ws = p->wstatus;
	if (ws != -1 && WIFSIGNALED(ws)) {
		r->signal = WTERMSIG(ws);
		r->status = 128 + r->signal;
		rn_error_set("step supervisor (pid %d) was killed by signal %d; its processes were killed",
			     (int)p->pid, r->signal);
	} else {
		rn_error_set("step supervisor (pid %d) exited (status %d) without a report; its processes "
			     "were killed", (int)p->pid, ws != -1 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
	}
	return RN_ERROR;
}
