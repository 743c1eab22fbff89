/* test_sandbox.c - the step sandbox with real processes.
 *
 * Each test runs a "step" the way proc.c's shim does: the runner side plans (rn_sandbox_plan_new)
 * and starts the shim with rn_sandbox_fork (a raw clone with the plan's namespaces); the shim
 * calls rn_sandbox_setup, forks the command, which calls rn_sandbox_exec_prepare and execs
 * /bin/sh -c SCRIPT (or this binary in --helper mode, for raw syscalls); the shim reaps and exits
 * with the command's status, as PID 1 taking every leftover process of the namespace with it.
 * Everything is checked from the outside: the command's output, its exit status, the files it
 * left, rn_sandbox_collect's result.
 *
 * As root the suite runs twice: as root (cgroup limits, no user namespace) and, via setpriv, as
 * `nobody` (user namespace, rlimit fallbacks); the expectations follow what rn_sandbox_probe says.
 * After every test: no child of ours, no process carrying the marker, no step cgroup left. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SAFETY_MS 60000 /* a safety net only: every wait ends on an event long before */

static rn_sandbox_caps g_caps;
static int g_unpriv;               /* this is the `nobody` re-run */
static char g_self[1024];      /* this binary */
static char g_base[64];      /* /tmp/rnsb.XXXXXX */
static char g_ws[80];    /* g_base/ws: a workspace under /tmp */
static char g_temp[80];  /* g_base/temp: RUNNER_TEMP under /tmp */
static char g_tool[80]; /* g_base/bin/tool: a "runner binary" under /tmp */
static char g_base2[64];     /* /var/tmp/rnsb.XXXXXX */
static char g_ws2[80];   /* g_base2/ws: a workspace outside /tmp */
static char g_hostfile[64];  /* a file in the host's /tmp */
static char g_marker[64];          /* the argument of every long sleep: "97.0<pid>" */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the helper mode: raw syscalls inside the sandbox (`test_sandbox --helper WHAT ...`) */

static const char *errname(int e)
{
	switch (e) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case ENODEV: return "ENODEV";
	case EAGAIN: return "EAGAIN";
	case EMFILE: return "EMFILE";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	case ENOKEY: return "ENOKEY";
	case ENOTDIR: return "ENOTDIR";
	}
	return "E?";
}

static void report(const char *name, long rc)
{
	printf("%s=%s\n", name, rc < 0 ? errname(errno) : "OK");
}

#if defined(__x86_64__)
/* A syscall through the i386 ABI (int $0x80) from this 64-bit process: -errno or the result. */
static long int80(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11");
	return ret;
}
#endif

static int helper_sys(void)
{
	struct timespec ts = { 0, 0 };
	report("mount", syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, NULL));
	report("umount2", syscall(SYS_umount2, "/nonexistent-rnsb", 0));
	report("pivot_root", syscall(SYS_pivot_root, "/nonexistent-rnsb", "/nonexistent-rnsb"));
	report("open_tree", syscall(SYS_open_tree, -1, "/nonexistent-rnsb", 0));
	report("fsopen", syscall(SYS_fsopen, "rnsb_nonexistent", 0));
	report("mount_setattr", syscall(SYS_mount_setattr, -1, "", 0, NULL, 0));
	report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
	report("add_key", syscall(SYS_add_key, "rnsb_nonexistent", "x", "y", 1, -3));
	report("request_key", syscall(SYS_request_key, "rnsb_nonexistent", "x", NULL, 0));
	report("bpf", syscall(SYS_bpf, 0xffff, NULL, 0));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("setns", syscall(SYS_setns, -1, 0));
	report("unshare_user", unshare(CLONE_NEWUSER));
	long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (c == 0)
		_exit(0);
	if (c > 0)
		waitpid((pid_t)c, NULL, 0);
	report("clone_newuser", c);
	report("clone3", syscall(SYS_clone3, NULL, 0));
	report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL)); /* bad magic: EINVAL if let through */
	report("delete_module", syscall(SYS_delete_module, "rnsb_nonexistent", O_NONBLOCK));
	report("init_module", syscall(SYS_init_module, NULL, 0, ""));
	report("swapoff", syscall(SYS_swapoff, "/nonexistent-rnsb"));
	report("clock_settime", syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	long u = syscall(SYS_userfaultfd, 0);
	report("userfaultfd", u);
	if (u >= 0)
		close((int)u);
	/* allowed on purpose: ptrace of our own children, chroot */
	pid_t t = fork();
	if (t == 0)
		_exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : 1);
	int st = 0;
	waitpid(t, &st, 0);
	printf("ptrace=%s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "OK" : "FAILED");
#if defined(__x86_64__)
	long pid32 = int80(20 /* i386 getpid */, 0, 0, 0);
	printf("i386_getpid=%s\n", pid32 == getpid() ? "OK" : errname((int)-pid32));
	long m32 = int80(21 /* i386 mount */, 0, 0, 0);
	printf("i386_mount=%s\n", m32 >= 0 ? "OK" : errname((int)-m32));
	errno = 0;
	long x32 = syscall(0x40000000L | SYS_mount, "none", "/mnt", "tmpfs", 0, NULL);
	printf("x32_mount=%s\n", x32 >= 0 ? "OK" : errname(errno));
#endif
	return 0;
}

static int helper_forkbomb(int n, const char *mark)
{
	int ok = 0, err = 0;
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		if (c == 0) {
			execl("/bin/sleep", "sleep", mark, (char *)NULL);
			_exit(127);
		}
		if (c < 0) {
			if (!err)
				err = errno;
			continue;
		}
		ok++;
	}
	printf("forked=%d err=%s\n", ok, errname(err));
	return 0;
}

static int helper_files(int n)
{
	int ok = 0, err = 0;
	for (int i = 0; i < n; i++) {
		if (open("/dev/null", O_RDONLY) < 0) {
			err = errno;
			break;
		}
		ok++;
	}
	printf("opened=%d err=%s\n", ok, errname(err));
	return 0;
}

/* Ends with _exit: no atexit work (an ASan build's leak check needs a thread, which a fork bomb
 * at its pids limit cannot have). */
static int helper_main(int argc, char **argv)
{
	int rc = 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc >= 3 && strcmp(argv[2], "sys") == 0)
		rc = helper_sys();
	else if (argc >= 5 && strcmp(argv[2], "forkbomb") == 0)
		rc = helper_forkbomb(atoi(argv[3]), argv[4]);
	else if (argc >= 4 && strcmp(argv[2], "files") == 0)
		rc = helper_files(atoi(argv[3]));
	else
		fprintf(stderr, "unknown helper\n");
	fflush(stdout);
	_exit(rc);
}

/* ---- running a step */

typedef struct step {
	int status;       /* exit code or 128+signal of the command; -1 unknown */
	int shim_status;  /* raw wait status of the shim */
	int child_err;    /* errno of a failed rn_sandbox_setup / exec_prepare, else 0 */
	int child_stage;
	char child_msg[512];
	double secs;      /* wall time */
	size_t len;
	char out[1 << 16];
	rn_sandbox_result res;
	size_t nnotices;
	char notice[512];
} step;

static step g_step; /* big: keep it off the stack */

static _Noreturn void test_shim(const rn_sandbox_plan *p, char *const argv[], char *const envp[], int out,
				int errfd)
{
	int stage = 0;
	int rc = rn_sandbox_setup(p, &stage);
	if (rc < 0) {
		int v[2] = { -rc, stage };
		if (write(errfd, v, sizeof(v)) < 0)
			_exit(120);
		_exit(121);
	}
	pid_t c = fork();
	if (c == 0) {
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(126);
		rc = rn_sandbox_exec_prepare(p, &stage);
		if (rc < 0) {
			int v[2] = { -rc, stage };
			if (write(errfd, v, sizeof(v)) < 0)
				_exit(120);
			_exit(122);
		}
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(out);
	int st = 0, code = 125;
	for (;;) {
		pid_t w = waitpid(-1, &st, 0);
		if (w == c) {
			code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
	}
	_exit(code); /* as PID 1: the kernel kills whatever is left in the namespace */
}

/* Run argv as a step with these settings; 0, or the plan's error (nothing ran). */
static int run_argv(const rn_sandbox *s, const rn_sandbox_caps *caps, const char *ws, const char *exe,
		    char *const argv[], step *o)
{
	memset(o, 0, sizeof(*o));
	o->status = -1;
	rn_sandbox_paths paths = { ws, g_temp, exe ? exe : g_self, NULL, NULL, NULL, NULL };
	rn_sandbox_plan *p = NULL;
	int rc = rn_sandbox_plan_new(&p, s, caps, &paths);
	if (rc < 0)
		return rc;
	o->nnotices = rn_sandbox_plan_notice_count(p);
	if (o->nnotices)
		snprintf(o->notice, sizeof(o->notice), "%s", rn_sandbox_plan_notice(p, 0));
	char e_ws[PATH_MAX + 8], e_temp[PATH_MAX + 16], e_mark[80], e_home[PATH_MAX + 8], e_self[1100];
	snprintf(e_ws, sizeof(e_ws), "WS=%s", ws);
	snprintf(e_temp, sizeof(e_temp), "RUNNER_TEMP=%s", g_temp);
	snprintf(e_mark, sizeof(e_mark), "MARK=%s", g_marker);
	snprintf(e_home, sizeof(e_home), "HOME=%s", ws);
	snprintf(e_self, sizeof(e_self), "SELF=%s", g_self);
	char *envp[] = { "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C", e_ws, e_temp, e_mark, e_home, e_self,
			 NULL };
	int op[2], ep[2];
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ep, O_CLOEXEC), 0);
	double t0 = now_s();
	pid_t pid = rn_sandbox_fork(p);
	if (pid == 0)
		test_shim(p, argv, envp, op[1], ep[1]);
	assert_true(pid > 0);
	close(op[1]);
	close(ep[1]);
	int64_t deadline = now_ms() + SAFETY_MS;
	for (;;) {
		struct pollfd pf = { .fd = op[0], .events = POLLIN };
		int left = (int)(deadline - now_ms());
		if (left <= 0) {
			kill(pid, SIGKILL);
			fail_msg("step did not finish within %d ms; output so far: %.*s", SAFETY_MS, (int)o->len,
				 o->out);
		}
		if (poll(&pf, 1, left) <= 0)
			continue;
		char buf[4096];
		ssize_t k = read(op[0], buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		size_t room = sizeof(o->out) - 1 - o->len;
		size_t n = (size_t)k < room ? (size_t)k : room;
		memcpy(o->out + o->len, buf, n);
		o->len += n;
	}
	o->out[o->len] = '\0';
	close(op[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	o->secs = now_s() - t0;
	o->shim_status = st;
	o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	int v[2] = { 0, 0 };
	if (read(ep[0], v, sizeof(v)) == (ssize_t)sizeof(v)) {
		o->child_err = v[0];
		o->child_stage = v[1];
		rn_sandbox_describe(p, v[1], v[0], o->child_msg, sizeof(o->child_msg));
	}
	close(ep[0]);
	if (rn_sandbox_collect(p, &o->res) < 0)
		fail_msg("rn_sandbox_collect: %s", rn_error_last());
	rn_sandbox_plan_free(p);
	return 0;
}

static void run_sh(const rn_sandbox *s, const char *ws, const char *script, step *o)
{
	char *argv[] = { "/bin/sh", "-c", (char *)(uintptr_t)script, NULL };
	int rc = run_argv(s, &g_caps, ws, NULL, argv, o);
	if (rc < 0)
		fail_msg("rn_sandbox_plan_new: %s", rn_error_last());
	if (o->child_err)
		fail_msg("%s", o->child_msg);
}

static void run_helper(const rn_sandbox *s, const char *what, const char *a1, const char *a2, step *o)
{
	char *argv[] = { g_self, "--helper", (char *)(uintptr_t)what, (char *)(uintptr_t)a1,
			 (char *)(uintptr_t)a2, NULL };
	int rc = run_argv(s, &g_caps, g_ws, NULL, argv, o);
	if (rc < 0)
		fail_msg("rn_sandbox_plan_new: %s", rn_error_last());
	if (o->child_err)
		fail_msg("%s", o->child_msg);
}

static rn_sandbox on(void)
{
	rn_sandbox s = RN_SANDBOX_UNSET;
	s.enabled = 1;
	return s;
}

static void assert_has(const step *o, const char *needle)
{
	if (!strstr(o->out, needle))
		fail_msg("expected '%s' in the step's output (status %d):\n%s", needle, o->status, o->out);
}

static void assert_lacks(const step *o, const char *needle)
{
	if (strstr(o->out, needle))
		fail_msg("did not expect '%s' in the step's output (status %d):\n%s", needle, o->status, o->out);
}

/* ---- leftovers */

static int marker_processes(void)
{
	int n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t k = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (k <= 0)
			continue;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[k] = '\0';
		if (strstr(buf, g_marker) && !strstr(buf, "--helper"))
			n++;
	}
	closedir(d);
	return n;
}

static int cgroup_leftovers(void)
{
	const rn_sandbox_cg *cgs[] = { &g_caps.memory, &g_caps.pids, &g_caps.cpu };
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "runner-%d-", (int)getpid());
	int n = 0;
	for (size_t i = 0; i < 3; i++) {
		if (!cgs[i]->ver)
			continue;
		DIR *d = opendir(cgs[i]->dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d)))
			if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 ||
			    strncmp(e->d_name, "runner-probe-", 13) == 0)
				n++;
		closedir(d);
	}
	return n;
}

static int teardown_check(void **state)
{
	(void)state;
	/* no child of ours is left (every shim was reaped, nothing was re-parented to us) */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(marker_processes(), 0);
	assert_int_equal(cgroup_leftovers(), 0);
	return 0;
}

/* ---- tests */

static void test_probe(void **state)
{
	(void)state;
	rn_sandbox_caps_print(stdout, &g_caps);
	assert_true(g_caps.nnp.ok);
	assert_true(g_caps.seccomp.ok);
	if (geteuid() == 0)
		assert_true(g_caps.root);
	else
		assert_true(g_caps.user.ok || g_caps.user.err != 0);
	if (g_caps.root || g_caps.user.ok) {
		assert_true(g_caps.pid.ok && g_caps.proc.ok && g_caps.mount.ok && g_caps.tmpfs.ok);
		assert_true(g_caps.setattr.ok || g_caps.remount.ok);
	}
}

static void test_plan_errors(void **state)
{
	(void)state;
	rn_sandbox_paths paths = { g_ws, g_temp, g_self, NULL, NULL, NULL, NULL };
	rn_sandbox_plan *p = (rn_sandbox_plan *)(uintptr_t)1;
	rn_sandbox s = on();

	/* sandbox: false -> no plan */
	s.enabled = 0;
	assert_int_equal(rn_sandbox_plan_new(&p, &s, &g_caps, &paths), 0);
	assert_null(p);
	assert_int_equal(rn_sandbox_clone_flags(NULL), SIGCHLD);

	/* network: false without network namespaces: an error naming the key */
	rn_sandbox_caps c = g_caps;
	c.net.ok = 0;
	c.net.err = EPERM;
	s = on();
	s.network = 0;
	assert_int_equal(rn_sandbox_plan_new(&p, &s, &c, &paths), RN_EINVALID);
	assert_null(p);
	assert_non_null(strstr(rn_error_last(), "sandbox key 'network: false' cannot be enforced"));
	assert_non_null(strstr(rn_error_last(), "network namespaces are not allowed here"));

	/* read-only-root without mount namespaces */
	c = g_caps;
	c.mount.ok = 0;
	c.mount.err = EPERM;
	s = on();
	s.read_only_root = 1;
	assert_int_equal(rn_sandbox_plan_new(&p, &s, &c, &paths), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "sandbox key 'read-only-root: true' cannot be enforced"));

	/* pids as root without a pids cgroup */
	c = g_caps;
	c.uid = 0;
	c.pids.ver = 0;
	snprintf(c.pids.why, sizeof(c.pids.why), "no pids cgroup");
	s = on();
	s.pids = 10;
	assert_int_equal(rn_sandbox_plan_new(&p, &s, &c, &paths), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "sandbox key 'pids' cannot be enforced"));

	/* memory without a memory cgroup: degrades to RLIMIT_AS with a notice */
	c = g_caps;
	c.memory.ver = 0;
	snprintf(c.memory.why, sizeof(c.memory.why), "no memory cgroup here");
	s = on();
	s.memory = 64 << 20;
	assert_int_equal(rn_sandbox_plan_new(&p, &s, &c, &paths), 0);
	assert_non_null(p);
	int found = 0;
	for (size_t i = 0; i < rn_sandbox_plan_notice_count(p); i++)
		if (strstr(rn_sandbox_plan_notice(p, i), "RLIMIT_AS") &&
		    strstr(rn_sandbox_plan_notice(p, i), "no memory cgroup here"))
			found = 1;
	assert_true(found);
	rn_sandbox_plan_free(p);

	/* no user namespaces (and not root): a notice, the step still runs with what is left */
	c = g_caps;
	c.root = 0;
	c.user.ok = 0;
	c.user.err = EPERM;
	s = on();
	assert_int_equal(rn_sandbox_plan_new(&p, &s, &c, &paths), 0);
	assert_non_null(p);
	assert_int_equal(rn_sandbox_clone_flags(p), SIGCHLD);
	assert_non_null(strstr(rn_sandbox_plan_notice(p, 0), "user namespaces are not allowed here"));
	rn_sandbox_plan_free(p);

	/* a workspace that does not exist */
	rn_sandbox_paths bad = { "/nonexistent/rnsb", NULL, NULL, NULL, NULL, NULL, NULL };
	s = on();
	assert_true(rn_sandbox_plan_new(&p, &s, &g_caps, &bad) < 0);
	assert_non_null(strstr(rn_error_last(), "workspace"));
}

static void test_pid_namespace(void **state)
{
	(void)state;
	step *o = &g_step;
	char script[512];
	/* the shell is PID 2 (the shim is 1); /proc and ps show only the step's processes; the
	 * runner's real pid cannot be reached from inside */
	snprintf(script, sizeof(script),
		 "echo pid=$$; echo procs=$(ls /proc | grep -c '^[0-9]'); echo ps=$(ps -e -o pid= | wc -l); "
		 "kill -9 %d 2>/dev/null; echo kill=$?; echo ppid=$PPID; sleep %s & echo bg=$!",
		 (int)getpid(), g_marker);
	run_sh(&(rn_sandbox){ 0 }, g_ws, "true", o); /* sandbox: false works as well */
	rn_sandbox s = on();
	run_sh(&s, g_ws, script, o);
	assert_int_equal(o->status, 0);
	assert_has(o, "pid=2\n");
	assert_has(o, "ppid=1\n");
	assert_has(o, "kill=1\n");
	int bg = atoi(strstr(o->out, "bg=") + 3); /* a small pid of the namespace */
	assert_true(bg > 2 && bg < 20);
	/* shim, sh, ls, grep at most (the subshell may be one more) */
	int procs = atoi(strstr(o->out, "procs=") + 6);
	assert_true(procs >= 2 && procs <= 6);
	int ps = atoi(strstr(o->out, "ps=") + 3);
	assert_true(ps >= 2 && ps <= 7);
	assert_int_equal(kill(getpid(), 0), 0);
}

static void test_private_tmp(void **state)
{
	(void)state;
	step *o = &g_step;
	char script[2048], path[PATH_MAX];
	const char *base = strrchr(g_base, '/') + 1;
	snprintf(script, sizeof(script),
		 "echo tmp=$(ls -A /tmp | tr '\\n' ' '); test -e %s && echo host=visible || echo host=hidden; "
		 "echo inside > /tmp/rnsb-inside.%s && echo tmpw=ok; echo ws > \"$WS/f1\" && echo wsw=ok; "
		 "echo t > \"$RUNNER_TEMP/f2\" && echo tempw=ok; cat \"$WS/seed\"; ls -ld /dev/shm >/dev/null && "
		 "echo shm > /dev/shm/rnsb.%s && echo shmw=ok; echo cwd=$(pwd)",
		 g_hostfile, g_marker, g_marker);
	rn_sandbox s = on();
	run_sh(&s, g_ws, script, o);
	assert_int_equal(o->status, 0);
	/* /tmp holds only the way to the workspace and RUNNER_TEMP, and to the binary the step runs
	 * when the build tree itself lives under /tmp (a CI clone may) */
	char self_top[PATH_MAX] = "";
	if (strncmp(g_self, "/tmp/", 5) == 0) {
		snprintf(self_top, sizeof(self_top), "%s", g_self + 5);
		self_top[strcspn(self_top, "/")] = '\0';
	}
	const char *line = strstr(o->out, "tmp=");
	assert_non_null(line);
	char listed[PATH_MAX * 2];
	snprintf(listed, sizeof(listed), "%.*s", (int)strcspn(line + 4, "\n"), line + 4);
	int saw_base = 0;
	for (char *save = NULL, *tok = strtok_r(listed, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (strcmp(tok, base) == 0)
			saw_base = 1;
		else if (!*self_top || strcmp(tok, self_top) != 0)
			fail_msg("unexpected entry '%s' in the sandbox's /tmp:\n%s", tok, o->out);
	}
	assert_true(saw_base);
	assert_has(o, "host=hidden");
	assert_has(o, "tmpw=ok");
	assert_has(o, "wsw=ok");
	assert_has(o, "tempw=ok");
	assert_has(o, "seed-content");
	assert_has(o, "shmw=ok");
	/* what it wrote to /tmp and /dev/shm stayed in the sandbox; the rest is on the host */
	snprintf(path, sizeof(path), "/tmp/rnsb-inside.%s", g_marker);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "/dev/shm/rnsb.%s", g_marker);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/f1", g_ws);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/f2", g_temp);
	assert_int_equal(access(path, F_OK), 0);
}

/* The runner binary under /tmp (a test build) stays visible and read-only. */
static void test_self_exe_visible(void **state)
{
	(void)state;
	step *o = &g_step;
	char script[512];
	snprintf(script, sizeof(script), "%s hello-from-tool; echo x >> %s; echo w=$?", g_tool, g_tool);
	char *argv[] = { "/bin/sh", "-c", script, NULL };
	rn_sandbox s = on();
	assert_int_equal(run_argv(&s, &g_caps, g_ws, g_tool, argv, o), 0);
	assert_int_equal(o->child_err, 0);
	assert_has(o, "hello-from-tool");
	assert_has(o, "w=");
	assert_lacks(o, "w=0");
}

static void check_read_only_root(const rn_sandbox_caps *caps, const char *ws)
{
	step *o = &g_step;
	char *argv[] = { "/bin/sh", "-c",
			 "touch /usr/rnsb-test 2>&1; echo usr=$?; touch /etc/rnsb-test 2>/dev/null; echo etc=$?; "
			 "touch \"$WS/ok\" && echo ws=ok; mkdir -p \"$WS/sub/dir\" && echo wsdir=ok; "
			 "touch /tmp/ok && echo tmp=ok; touch \"$RUNNER_TEMP/ok\" && echo temp=ok; "
			 "echo 0 > /proc/self/oom_score_adj && echo proc=ok",
			 NULL };
	rn_sandbox s = on();
	s.read_only_root = 1;
	int rc = run_argv(&s, caps, ws, NULL, argv, o);
	if (rc < 0)
		fail_msg("rn_sandbox_plan_new: %s", rn_error_last());
	if (o->child_err)
		fail_msg("%s", o->child_msg);
	assert_has(o, "Read-only file system");
	assert_has(o, "usr=1");
	assert_has(o, "etc=1");
	assert_has(o, "ws=ok");
	assert_has(o, "wsdir=ok");
	assert_has(o, "tmp=ok");
	assert_has(o, "temp=ok");
	assert_has(o, "proc=ok");
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/ok", ws);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(access("/usr/rnsb-test", F_OK), -1);
}

static void test_read_only_root(void **state)
{
	(void)state;
	check_read_only_root(&g_caps, g_ws);  /* workspace under /tmp */
	check_read_only_root(&g_caps, g_ws2); /* workspace elsewhere */
}

static void test_read_only_root_remount_fallback(void **state)
{
	(void)state;
	if (!g_caps.remount.ok)
		skip();
	rn_sandbox_caps c = g_caps;
	c.setattr.ok = 0; /* as on a kernel before 5.12: remount per mount from mountinfo */
	check_read_only_root(&c, g_ws);
	check_read_only_root(&c, g_ws2);
}

/* Without read-only-root, /sys (cgroups!) and, for root, /proc/sys & co are read-only anyway. */
static void test_protected_paths(void **state)
{
	(void)state;
	step *o = &g_step;
	char script[1024];
	snprintf(script, sizeof(script),
		 "echo $$ > %s/cgroup.procs 2>&1; echo cg=$?; echo 1 > /proc/sys/kernel/ns_last_pid 2>&1; "
		 "echo sysctl=$?; echo h > /proc/sysrq-trigger 2>&1; echo sysrq=$?; touch /usr/rnsb-rw && "
		 "rm /usr/rnsb-rw && echo usr=writable",
		 g_caps.pids.ver ? g_caps.pids.dir : "/sys/fs/cgroup");
	rn_sandbox s = on();
	run_sh(&s, g_ws, script, o);
	/* (a failed redirection is status 2 in dash) */
	assert_lacks(o, "cg=0");
	assert_has(o, "cg=");
	assert_lacks(o, "sysrq=0");
	assert_has(o, "sysrq=");
	if (geteuid() == 0) {
		assert_lacks(o, "sysctl=0");
		assert_has(o, "sysctl=");
		assert_has(o, "Read-only file system");
		assert_has(o, "usr=writable");
	}
}

static void test_network(void **state)
{
	(void)state;
	step *o = &g_step;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 8), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	char py[1024];
	snprintf(py, sizeof(py),
		 "import socket\n"
		 "try:\n socket.create_connection(('127.0.0.1', %d), 2); print('host=reached')\n"
		 "except OSError as e:\n print('host=errno%%d' %% e.errno)\n"
		 "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
		 "c = socket.create_connection(s.getsockname(), 2); print('lo=ok')\n",
		 ntohs(a.sin_port));
	char *argv[] = { "/usr/bin/python3", "-c", py, NULL };
	rn_sandbox s = on();
	s.network = 0;
	assert_int_equal(run_argv(&s, &g_caps, g_ws, NULL, argv, o), 0);
	assert_int_equal(o->child_err, 0);
	assert_has(o, "host=errno111"); /* ECONNREFUSED: nobody listens on this namespace's lo */
	assert_has(o, "lo=ok");
	s.network = -1; /* the default: the host's network */
	assert_int_equal(run_argv(&s, &g_caps, g_ws, NULL, argv, o), 0);
	assert_has(o, "host=reached");
	close(l);
}

static void test_hostname(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	run_sh(&s, g_ws, "echo host=$(uname -n)", o);
	assert_has(o, "host=runner\n");
}

static void test_seccomp(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	run_helper(&s, "sys", NULL, NULL, o);
	static const char *const denied[] = { "mount", "umount2", "pivot_root", "open_tree", "fsopen",
		"mount_setattr", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "setns",
		"unshare_user", "clone_newuser", "reboot", "delete_module", "init_module", "swapoff",
		"clock_settime", "open_by_handle_at", "userfaultfd" };
	char want[64];
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		snprintf(want, sizeof(want), "\n%s=EPERM\n", denied[i]);
		if (strncmp(o->out, want + 1, strlen(want + 1)) != 0)
			assert_has(o, want);
	}
	assert_has(o, "clone3=ENOSYS");
	assert_has(o, "ptrace=OK");
#if defined(__x86_64__)
	/* the compat ABIs get the same rules (when the kernel has them at all) */
	if (!strstr(o->out, "i386_getpid=ENOSYS")) {
		assert_has(o, "i386_getpid=OK");
		assert_has(o, "i386_mount=EPERM");
	}
	assert_has(o, "x32_mount=EPERM");
#endif
	/* and from a shell: unshare -r fails */
	run_sh(&s, g_ws, "unshare -r true 2>&1; echo unshare=$?", o);
	assert_lacks(o, "unshare=0");
}

static void test_pids_limit(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	s.pids = 64;
	char mark[80];
	snprintf(mark, sizeof(mark), "%s", g_marker);
	run_helper(&s, "forkbomb", "500", mark, o);
	assert_int_equal(o->status, 0);
	const char *f = strstr(o->out, "forked=");
	assert_non_null(f);
	int n = atoi(f + 7);
	/* the helper itself counts, and the shim is not counted */
	assert_true(n >= 50 && n <= 63);
	assert_has(o, "err=EAGAIN");
	if (g_caps.pids.ver)
		assert_int_equal(o->res.pids_hit, 1);
	/* every sleep is gone with the namespace */
	assert_int_equal(marker_processes(), 0);
}

static void test_memory_limit(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	s.memory = 64 << 20;
	char *argv[] = { "/usr/bin/python3", "-c", "b = bytearray(1 << 30); print('allocated')", NULL };
	assert_int_equal(run_argv(&s, &g_caps, g_ws, NULL, argv, o), 0);
	assert_int_equal(o->child_err, 0);
	assert_lacks(o, "allocated");
	if (g_caps.memory.ver) {
		assert_int_equal(o->status, 128 + SIGKILL);
		assert_int_equal(o->res.oom, 1);
		assert_true(o->res.memory_peak > 0 && o->res.memory_peak <= (64 << 20) + (1 << 20));
	} else {
		assert_int_equal(o->status, 1);
		assert_has(o, "MemoryError");
		assert_int_equal(o->res.oom, 0);
		assert_true(o->nnotices > 0);
	}
	/* within the limit it works */
	char *small[] = { "/usr/bin/python3", "-c", "b = bytearray(8 << 20); print('allocated')", NULL };
	assert_int_equal(run_argv(&s, &g_caps, g_ws, NULL, small, o), 0);
	assert_int_equal(o->status, 0);
	assert_has(o, "allocated");
	assert_int_equal(o->res.oom, 0);
}

static void test_files_limit(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	s.files = 32;
	run_helper(&s, "files", "100", NULL, o);
	const char *f = strstr(o->out, "opened=");
	assert_non_null(f);
	int n = atoi(f + 7);
	assert_true(n >= 20 && n < 32);
	assert_has(o, "err=EMFILE");
}

static void test_file_size_limit(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	s.file_size = 1 << 20;
	run_sh(&s, g_ws, "head -c 2097152 /dev/zero > \"$WS/big\"; echo rc=$?", o);
	assert_has(o, "rc=153"); /* 128 + SIGXFSZ */
	char path[PATH_MAX + 8];
	snprintf(path, sizeof(path), "%s/big", g_ws);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	unlink(path);
}

static void test_cpu_limit(void **state)
{
	(void)state;
	step *o = &g_step;
	rn_sandbox s = on();
	s.cpu_s = 1;
	run_sh(&s, g_ws, "while :; do :; done", o);
	assert_true(o->status == 128 + SIGXCPU || o->status == 128 + SIGKILL);
	assert_true(o->secs < 10.0);
	if (g_caps.cpu.ver)
		assert_true(o->res.cpu_s >= 0.9 && o->res.cpu_s < 5.0);
}

/* The cost of the sandbox per step: plan + clone + setup + exec_prepare + collect + free around
 * a fork+exec of /bin/true, against the same without any sandbox call. */
static double bench(const rn_sandbox *s, int n)
{
	char *argv[] = { "/bin/true", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	rn_sandbox_paths paths = { g_ws, g_temp, g_self, NULL, NULL, NULL, NULL };
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		rn_sandbox_plan *p = NULL;
		if (s && rn_sandbox_plan_new(&p, s, &g_caps, &paths) < 0)
			fail_msg("rn_sandbox_plan_new: %s", rn_error_last());
		pid_t pid = s ? rn_sandbox_fork(p) : fork();
		if (pid == 0) {
			if (s && rn_sandbox_setup(p, NULL) < 0)
				_exit(121);
			pid_t c = fork();
			if (c == 0) {
				if (s && rn_sandbox_exec_prepare(p, NULL) < 0)
					_exit(122);
				execve(argv[0], argv, envp);
				_exit(127);
			}
			int st = 0;
			while (waitpid(c, &st, 0) < 0 && errno == EINTR) {
			}
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 125);
		}
		assert_true(pid > 0);
		int st = 0;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
		}
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		if (s) {
			rn_sandbox_collect(p, NULL);
			rn_sandbox_plan_free(p);
		}
	}
	return (now_s() - t0) / n * 1000.0;
}

static void test_cost(void **state)
{
	(void)state;
	const int n = 200;
	bench(NULL, 10); /* warm up */
	double plain = bench(NULL, n);
	rn_sandbox s = on();
	double sb = bench(&s, n);
	rn_sandbox lim = on();
	lim.network = 0;
	lim.read_only_root = 1;
	lim.memory = 256 << 20;
	lim.pids = 256;
	double sbl = bench(&lim, n / 4);
	printf("cost (%s, %d runs): fork+exec /bin/true %.2f ms; sandboxed (defaults) %.2f ms, extra %.2f ms;"
	       " with network: false, read-only-root, memory and pids limits %.2f ms, extra %.2f ms\n",
	       g_unpriv ? "nobody" : "root", n, plain, sb, sb - plain, sbl, sbl - plain);
	/* the target is < 5 ms; fail only on a gross regression (a loaded CI machine is slower) */
	assert_true(sb - plain < 25.0);
}

/* The whole suite again as `nobody`: user namespace, no cgroups (rlimit fallbacks). */
static void test_unprivileged(void **state)
{
	(void)state;
	if (geteuid() != 0 || g_unpriv)
		skip();
	if (access("/usr/bin/setpriv", X_OK) < 0) {
		printf("skipped: no setpriv to run the unprivileged part\n");
		skip();
	}
	char cmd[1300];
	snprintf(cmd, sizeof(cmd), "setpriv --reuid=65534 --regid=65534 --clear-groups -- '%s' --unpriv", g_self);
	fflush(stdout);
	int st = system(cmd);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- setup */

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t k;
	while ((k = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)k), k);
	close(in);
	close(out);
}

static int group_setup(void **state)
{
	(void)state;
	ssize_t n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
	if (n <= 0)
		return -1;
	g_self[n] = '\0';
	snprintf(g_marker, sizeof(g_marker), "97.0%d", (int)getpid());
	if (rn_sandbox_probe(&g_caps) < 0) {
		fprintf(stderr, "probe: %s\n", rn_error_last());
		return -1;
	}
	snprintf(g_base, sizeof(g_base), "/tmp/rnsb.XXXXXX");
	snprintf(g_base2, sizeof(g_base2), "/var/tmp/rnsb.XXXXXX");
	if (!mkdtemp(g_base) || !mkdtemp(g_base2))
		return -1;
	snprintf(g_ws, sizeof(g_ws), "%s/ws", g_base);
	snprintf(g_temp, sizeof(g_temp), "%s/temp", g_base);
	snprintf(g_ws2, sizeof(g_ws2), "%s/ws", g_base2);
	char bin[96], seed[96];
	snprintf(bin, sizeof(bin), "%s/bin", g_base);
	snprintf(g_tool, sizeof(g_tool), "%s/bin/tool", g_base);
	if (mkdir(g_ws, 0755) < 0 || mkdir(g_temp, 0700) < 0 || mkdir(g_ws2, 0755) < 0 || mkdir(bin, 0755) < 0)
		return -1;
	copy_file("/bin/echo", g_tool);
	snprintf(seed, sizeof(seed), "%s/seed", g_ws);
	write_file(seed, "seed-content\n", 0644);
	snprintf(g_hostfile, sizeof(g_hostfile), "/tmp/rnsb-host.%d", (int)getpid());
	write_file(g_hostfile, "host\n", 0644);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s'", g_base, g_base2, g_hostfile);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--helper") == 0)
		return helper_main(argc, argv);
	g_unpriv = argc >= 2 && strcmp(argv[1], "--unpriv") == 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_probe, teardown_check),
		cmocka_unit_test_teardown(test_plan_errors, teardown_check),
		cmocka_unit_test_teardown(test_pid_namespace, teardown_check),
		cmocka_unit_test_teardown(test_private_tmp, teardown_check),
		cmocka_unit_test_teardown(test_self_exe_visible, teardown_check),
		cmocka_unit_test_teardown(test_read_only_root, teardown_check),
		cmocka_unit_test_teardown(test_read_only_root_remount_fallback, teardown_check),
		cmocka_unit_test_teardown(test_protected_paths, teardown_check),
		cmocka_unit_test_teardown(test_network, teardown_check),
		cmocka_unit_test_teardown(test_hostname, teardown_check),
		cmocka_unit_test_teardown(test_seccomp, teardown_check),
		cmocka_unit_test_teardown(test_pids_limit, teardown_check),
		cmocka_unit_test_teardown(test_memory_limit, teardown_check),
		cmocka_unit_test_teardown(test_files_limit, teardown_check),
		cmocka_unit_test_teardown(test_file_size_limit, teardown_check),
		cmocka_unit_test_teardown(test_cpu_limit, teardown_check),
		cmocka_unit_test_teardown(test_cost, teardown_check),
		cmocka_unit_test_teardown(test_unprivileged, teardown_check),
	};
	return cmocka_run_group_tests_name(g_unpriv ? "sandbox (as nobody)" : "sandbox", tests, group_setup,
					   group_teardown);
}
