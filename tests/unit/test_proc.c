/* test_proc.c - the process-tree module with real processes.
 *
 * Every test starts commands through rn_proc_start with a pipe as out_fd and waits for events
 * (output lines, the status pipe), never for time. After each test the teardown proves that no
 * process of any tree survived: the test process is a child subreaper (rn_proc_init), so any
 * survivor would have become its child; it must have none, and no process may carry the marker
 * argument that every long-lived `sleep $M` of these tests gets.
 *
 * All tests run twice: once with the shims forked by the fork server (runner-shim, found through
 * RUNNER_SHIM next to $RUNNER_BIN, which meson sets), once with RUNNER_SHIM pointing to a missing
 * file, so that the runner forks them itself (the fallback, and the path of sandboxed steps).
 * Between tests the fork server is stopped (rn_proc_shutdown) after checking it has no child
 * left, and a new one is started by the next test's first step. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define SAFETY_MS 30000 /* a safety net only: every wait ends on an event long before */

static char g_marker[64];  /* argument of every long sleep: "4711.<our pid>" */
static char g_menv[80];    /* "M=<marker>" */
static char g_tmp[PATH_MAX];
static char g_shim[PATH_MAX]; /* the runner-shim of this build */
static int g_group_server;    /* this group's steps go through the fork server */
static int g_server;          /* what check_shim_parent expects (a test may change it) */
static int g_check_parent;    /* check_shim_parent checks (a test may turn it off) */
static const char *g_env[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", g_menv, NULL };

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long stat_field(pid_t pid, int idx);


/* The shim's parent is the fork server in the server group, this process otherwise; with no
 * server running before the step (server_before -1), the step is forked here (the second one
 * starts the server). (Checked while the shim is still there: a quick command's shim may be gone
 * already.) */
static void check_shim_parent(pid_t shim, pid_t server_before)
{
	if (!g_check_parent)
		return;
	long ppid = stat_field(shim, 0);
	if (ppid < 0)
		return;
	if (g_server && server_before > 0) {
		assert_int_equal(rn_proc_server_pid(), server_before);
		assert_int_equal(ppid, server_before);
	} else {
		if (!g_server)
			assert_int_equal(rn_proc_server_pid(), -1);
		assert_int_equal(ppid, getpid());
	}
}

typedef struct job {
	rn_proc p;
	int out_r;   /* read end of the output pipe, -1 after EOF */
	int in_w;    /* write end of the stdin pipe, or -1 */
	int done;    /* rn_proc_finish was called */
	int rc;      /* what it returned */
	rn_proc_result r;
	size_t len;
	char out[1 << 16];
} job;

static job g_job; /* big: keep it off the stack */

static void job_start(job *j, const char *const *argv, const char *const *envp, const char *dir,
		      int with_stdin)
{
	int op[2], ip[2] = { -1, -1 };
	memset(j, 0, sizeof(*j));
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	if (with_stdin)
		assert_int_equal(pipe2(ip, O_CLOEXEC), 0);
	rn_proc_opts o = { argv, envp, dir, op[1], ip[0], NULL, 0 };
	pid_t server_before = rn_proc_server_pid();
	int rc = rn_proc_start(&j->p, &o);
	if (rc != 0)
		fail_msg("rn_proc_start: %s", rn_error_last());
	close(op[1]);
	if (ip[0] >= 0)
		close(ip[0]);
	j->out_r = op[0];
	j->in_w = ip[1];
	assert_true(j->p.pid > 0);
	assert_true(j->p.status_fd >= 0);
	check_shim_parent(j->p.pid, server_before);
	assert_true(fcntl(j->p.status_fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(j->p.status_fd, F_GETFD) & FD_CLOEXEC);
}

static void job_sh(job *j, const char *script, int with_stdin)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	job_start(j, argv, g_env, NULL, with_stdin);
}

/* Wait (up to ms) for output or the status pipe, as the runner's event loop does; 0 on timeout. */
static int job_pump(job *j, int ms)
{
	struct pollfd pf[2];
	int n = 0;
	if (j->out_r >= 0)
		pf[n++] = (struct pollfd){ .fd = j->out_r, .events = POLLIN };
	if (!j->done)
		pf[n++] = (struct pollfd){ .fd = j->p.status_fd, .events = POLLIN };
	if (n == 0)
		return 1;
	int k = poll(pf, (nfds_t)n, ms);
	if (k < 0 && errno == EINTR)
		return 1;
	assert_true(k >= 0);
	if (k == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (!pf[i].revents)
			continue;
		if (pf[i].fd == j->out_r) {
			ssize_t r = read(j->out_r, j->out + j->len, sizeof(j->out) - 1 - j->len);
			if (r > 0) {
				j->len += (size_t)r;
				j->out[j->len] = '\0';
			} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(j->out_r);
				j->out_r = -1;
			}
		} else {
			j->rc = rn_proc_finish(&j->p, &j->r);
			j->done = 1;
		}
	}
	return 1;
}

/* Wait until the output contains needle; the text after it. */
static const char *job_expect(job *j, const char *needle)
{
	int64_t end = now_ms() + SAFETY_MS;
	const char *hit;
	while (!(hit = strstr(j->out, needle))) {
		if (j->out_r < 0 && j->done)
			fail_msg("output ended without \"%s\": [%s]", needle, j->out);
		int64_t left = end - now_ms();
		if (left <= 0 || !job_pump(j, (int)left))
			fail_msg("timed out waiting for \"%s\": [%s]", needle, j->out);
	}
	return hit + strlen(needle);
}

static void job_send(job *j, const char *s)
{
	assert_int_equal(write(j->in_w, s, strlen(s)), (ssize_t)strlen(s));
}

/* Close stdin, then collect output to EOF and the report. */
static void job_end(job *j)
{
	if (j->in_w >= 0) {
		close(j->in_w);
		j->in_w = -1;
	}
	int64_t end = now_ms() + SAFETY_MS;
	while (j->out_r >= 0 || !j->done) {
		int64_t left = end - now_ms();
		if (left <= 0 || !job_pump(j, (int)left)) {
			rn_proc_kill(&j->p);
			fail_msg("step did not end: [%s]", j->out);
		}
	}
}

static void job_run(job *j, const char *script)
{
	job_sh(j, script, 0);
	job_end(j);
}

/* The pid printed after prefix in the output. */
static pid_t job_pid(job *j, const char *prefix)
{
	const char *s = job_expect(j, prefix);
	job_expect(j, "\n");
	return (pid_t)strtol(s, NULL, 10);
}

static int alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *e = strrchr(buf, ')');
	return e && e[1] == ' ' && e[2] != 'Z' && e[2] != 'X';
}

static long stat_field(pid_t pid, int idx) /* idx 0 = state letter's successor: ppid */
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p += 3; /* ") S " */
	long v = -1;
	for (int i = 0; i <= idx; i++)
		v = strtol(p, &p, 10);
	return v;
}

/* Processes whose argv contains the marker. */
static int marker_count(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], buf[4096];
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
			if (strcmp(buf + i, g_marker) == 0) {
				count++;
				break;
			}
	}
	closedir(d);
	return count;
}

/* Our children, from /proc/self/task/TID/children. */
static int my_children(char *list, size_t cap)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int count = 0;
	size_t used = 0;
	assert_non_null(d);
	list[0] = '\0';
	while ((e = readdir(d))) {
		char path[300], buf[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
			count++;
			used += (size_t)snprintf(list + used, cap - used, "%s ", t);
			if (used >= cap)
				used = cap - 1;
		}
	}
	closedir(d);
	return count;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Kill whatever a failed test left behind, so that the next tests start clean. */
static void kill_leftovers(void)
{
	for (int round = 0; round < 50; round++) {
		char list[1024];
		if (my_children(list, sizeof(list)) == 0)
			break;
		for (char *t = strtok(list, " "); t; t = strtok(NULL, " ")) {
			pid_t pid = (pid_t)atoi(t);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
}

/* The children of pid (a single-threaded process) as "PID PID ...", and their count. */
static int children_of(pid_t pid, char *list, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	list[0] = '\0';
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, list, cap - 1);
	close(fd);
	list[n > 0 ? n : 0] = '\0';
	int count = 0;
	for (char *p = list; *p; p++)
		count += (*p >= '0' && *p <= '9') && (p == list || p[-1] == ' ');
	return count;
}

/* A child of the server (one of its shims) that still has a child of its own: a step's tree,
 * or its command not reaped yet. */
static pid_t shim_busy(pid_t server)
{
	char list[1024], sub[1024];
	children_of(server, list, sizeof(list));
	for (char *t = strtok(list, " \n"); t; t = strtok(NULL, " \n"))
		if (children_of((pid_t)atoi(t), sub, sizeof(sub)) > 0)
			return (pid_t)atoi(t);
	return 0;
}

/* After every test: nothing of any tree is left. The fork server's shims are idle (no child):
 * every step reported, so its tree is gone (a shim reports only then), and the pool is small.
 * Then the server is stopped: it and its shims must all go. */
static int check_clean(void **state)
{
	(void)state;
	char list[1024];
	pid_t server = rn_proc_server_pid();
	if (server > 0) {
		pid_t busy = shim_busy(server);
		int kids = children_of(server, list, sizeof(list));
		if (busy || kids > 4) {
			rn_proc_shutdown();
			kill_leftovers();
			fail_msg("the fork server's shims: %s (shim %d has children)", list, (int)busy);
		}
	}
	rn_proc_shutdown();
	int kids = my_children(list, sizeof(list));
	int markers = marker_count();
	if (kids != 0 || markers != 0) {
		kill_leftovers();
		fail_msg("%d processes survived as our children (%s), %d with the marker", kids, list,
			 markers);
	}
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	return 0;
}

/* ---- tests */

static void test_exit_codes(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "exit 0");
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	assert_int_equal(j->r.signal, 0);
	assert_int_equal(j->r.exec_errno, 0);
	assert_int_equal(j->r.fail_stage, RN_PROC_FAIL_NONE);
	assert_int_equal(j->r.survivors, 0);
	job_run(j, "exit 3");
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 3);
	assert_int_equal(j->r.signal, 0);
}

static void test_killed_by_signal(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "kill -KILL $$");
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 128 + SIGKILL);
	assert_int_equal(j->r.signal, SIGKILL);
	job_run(j, "kill -USR2 $$");
	assert_int_equal(j->r.status, 128 + SIGUSR2);
	assert_int_equal(j->r.signal, SIGUSR2);
}

static void test_exec_failure(void **state)
{
	(void)state;
	job *j = &g_job;
	const char *abs[] = { "/nonexistent/rn-prog", NULL };
	job_start(j, abs, g_env, NULL, 0);
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.exec_errno, ENOENT);
	assert_int_equal(j->r.fail_stage, RN_PROC_FAIL_EXEC);
	assert_int_equal(j->r.status, 127);
	assert_int_equal(j->len, 0);

	const char *bare[] = { "rn-no-such-program", "x", NULL };
	job_start(j, bare, g_env, NULL, 0);
	job_end(j);
	assert_int_equal(j->r.exec_errno, ENOENT);
	assert_int_equal(j->r.status, 127);

	/* found in PATH but not executable */
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/noexec", g_tmp);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs("#!/bin/sh\necho no\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
	const char *noexec[] = { path, NULL };
	job_start(j, noexec, g_env, NULL, 0);
	job_end(j);
	assert_int_equal(j->r.exec_errno, EACCES);
	assert_int_equal(j->r.status, 127);

	/* a working directory that does not exist */
	const char *t[] = { "true", NULL };
	job_start(j, t, g_env, "/nonexistent/rn-dir", 0);
	job_end(j);
	assert_int_equal(j->r.exec_errno, ENOENT);
	assert_int_equal(j->r.fail_stage, RN_PROC_FAIL_CHDIR);
	assert_int_equal(j->r.status, 127);
}

static void test_script_without_shebang_and_relative_path(void **state)
{
	(void)state;
	job *j = &g_job;
	char bin[PATH_MAX + 8], path[PATH_MAX + 32];
	snprintf(bin, sizeof(bin), "%s/bin", g_tmp);
	mkdir(bin, 0755);
	snprintf(path, sizeof(path), "%s/hello", bin);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs("echo \"hello $1 from $(pwd)\"\n", f); /* no #!: run by /bin/sh like execvp does */
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	/* a relative PATH entry is looked up in the step's working directory */
	const char *env[] = { "PATH=bin:/usr/bin:/bin", NULL };
	const char *argv[] = { "hello", "world", NULL };
	job_start(j, argv, env, g_tmp, 0);
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.exec_errno, 0);
	assert_int_equal(j->r.status, 0);
	char want[PATH_MAX + 64], real[PATH_MAX];
	assert_non_null(realpath(g_tmp, real));
	snprintf(want, sizeof(want), "hello world from %s\n", real);
	assert_string_equal(j->out, want);

	/* an empty entry is the working directory (the runner's own is elsewhere) */
	const char *env2[] = { "PATH=/nonexistent::/usr/bin:/bin", NULL };
	job_start(j, argv, env2, bin, 0);
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	snprintf(want, sizeof(want), "hello world from %s/bin\n", real);
	assert_string_equal(j->out, want);
}

static void test_output_captured(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "echo out; echo err >&2; printf 'no newline'");
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "out\nerr\nno newline");
}

static void test_stdin_is_dev_null(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "readlink /proc/self/fd/0; cat; echo rc=$?");
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "/dev/null\nrc=0\n");

	/* and a pipe when in_fd is given */
	job_sh(j, "read line; echo \"got $line\"", 1);
	job_send(j, "hello\n");
	job_end(j);
	assert_string_equal(j->out, "got hello\n");
}

static void test_only_stdio_inherited(void **state)
{
	(void)state;
	job *j = &g_job;
	int extra = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
	assert_true(extra >= 3);
	/* and the output/input pipes the caller passes without O_CLOEXEC either */
	int op[2], ip[2];
	assert_int_equal(pipe(op), 0);
	assert_int_equal(pipe(ip), 0);
	const char *argv[] = { "ls", "/proc/self/fd", NULL };
	rn_proc_opts o = { argv, g_env, NULL, op[1], ip[0], NULL, 0 };
	memset(j, 0, sizeof(*j));
	assert_int_equal(rn_proc_start(&j->p, &o), 0);
	close(op[1]);
	close(ip[0]);
	j->out_r = op[0];
	j->in_w = ip[1];
	job_end(j);
	close(extra);
	/* 0 1 2 and the fd of the directory ls is reading */
	assert_string_equal(j->out, "0\n1\n2\n3\n");
}

static void test_command_leads_its_session(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "echo $$; cat /proc/$$/stat");
	assert_int_equal(j->r.status, 0);
	char *nl = strchr(j->out, '\n');
	assert_non_null(nl);
	long pid = strtol(j->out, NULL, 10);
	char *p = strrchr(nl, ')');
	assert_non_null(p);
	long ppid, pgrp, sid;
	assert_int_equal(sscanf(p, ") %*c %ld %ld %ld", &ppid, &pgrp, &sid), 3);
	assert_int_equal(ppid, j->p.pid); /* its parent is the shim */
	assert_int_equal(pgrp, pid);
	assert_int_equal(sid, pid);
}

static void test_background_job_killed(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "sleep $M & echo bg $!");
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	assert_int_equal(j->r.survivors, 1);
	pid_t bg = (pid_t)strtol(strstr(j->out, "bg ") + 3, NULL, 10);
	assert_true(bg > 0);
	assert_false(alive(bg));
}

static void test_double_fork(void **state)
{
	(void)state;
	job *j = &g_job;
	/* the middle shell exits at once: its child is re-parented to the shim (the subreaper) */
	job_sh(j, "sh -c 'sleep $M & echo gc $!'; echo mid-gone; read go; exit 0", 1);
	pid_t gc = job_pid(j, "gc ");
	assert_true(gc > 0);
	job_expect(j, "mid-gone"); /* the middle shell has exited and was reaped */
	assert_true(alive(gc));
	assert_int_equal(stat_field(gc, 0), j->p.pid);
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->r.status, 0);
	assert_int_equal(j->r.survivors, 1);
	assert_false(alive(gc));
}

static void test_setsid_daemon(void **state)
{
	(void)state;
	job *j = &g_job;
	job_sh(j, "setsid sh -c 'echo sid $$; exec sleep $M' & read go; exit 0", 1);
	pid_t d = job_pid(j, "sid ");
	assert_true(d > 0);
	/* it really is in a session of its own, apart from the command's */
	long dsid = stat_field(d, 2);
	assert_true(dsid > 0);
	assert_int_equal(dsid, d);
	assert_true(dsid != getsid(0));
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->r.status, 0);
	assert_true(j->r.survivors >= 1);
	assert_false(alive(d));
}

static void test_term_ends_sleep_with_143(void **state)
{
	(void)state;
	job *j = &g_job;
	const char *argv[] = { "sleep", g_marker, NULL };
	job_start(j, argv, g_env, NULL, 0); /* returns after the exec */
	rn_proc_term(&j->p);
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 143);
	assert_int_equal(j->r.signal, SIGTERM);
}

/* Wait until pid is stopped (state T), polling /proc: the event has no file descriptor. */
static void wait_stopped(pid_t pid)
{
	for (int64_t end = now_ms() + SAFETY_MS; now_ms() < end;) {
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		FILE *f = fopen(path, "re");
		assert_non_null(f);
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		const char *e = strrchr(buf, ')');
		if (e && e[2] == 'T')
			return;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	fail_msg("process %d never stopped", (int)pid);
}

static void test_term_reaches_stopped_process(void **state)
{
	(void)state;
	job *j = &g_job;
	job_sh(j, "echo pid $$; kill -STOP $$; echo continued-without-term", 0);
	pid_t cmd = job_pid(j, "pid ");
	wait_stopped(cmd);
	rn_proc_term(&j->p); /* TERM alone would wait for a SIGCONT that never comes */
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 143);
	assert_int_equal(j->r.signal, SIGTERM);
	assert_null(strstr(j->out, "continued"));
}

static void test_term_reaches_other_sessions(void **state)
{
	(void)state;
	job *j = &g_job;
	/* the grandchild is in a session (and group) of its own: only the /proc walk finds it */
	job_sh(j,
	       "setsid sh -c 'trap \"echo gc-term; exit 0\" TERM; echo gc-ready; "
	       "while :; do sleep 1; done' & trap '' TERM; echo cmd-ready; wait; echo cmd-done",
	       0);
	job_expect(j, "gc-ready");
	job_expect(j, "cmd-ready");
	rn_proc_term(&j->p);
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	assert_non_null(strstr(j->out, "gc-term"));
	assert_non_null(strstr(j->out, "cmd-done"));
}

static void test_term_ignored_then_kill(void **state)
{
	(void)state;
	job *j = &g_job;
	job_sh(j,
	       "sh -c 'trap \"\" TERM; echo child $$; exec sleep $M' & "
	       "trap 'echo got-term' TERM; echo cmd-ready; while :; do wait; done",
	       0);
	pid_t child = job_pid(j, "child ");
	job_expect(j, "cmd-ready");
	rn_proc_term(&j->p);
	job_expect(j, "got-term"); /* the TERM arrived, and the tree is still there */
	assert_true(alive(child));
	assert_false(j->done);
	struct pollfd pf = { .fd = j->p.status_fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 0), 0);
	rn_proc_kill(&j->p);
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 128 + SIGKILL);
	assert_int_equal(j->r.signal, SIGKILL);
	assert_true(j->r.survivors >= 1);
	assert_false(alive(child));
}

static void test_step_kills_its_shim(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "sleep $M & echo bg $!; kill -9 $PPID; wait");
	assert_true(j->rc < 0);
	assert_int_equal(j->r.status, 128 + SIGKILL);
	assert_int_equal(j->r.signal, SIGKILL);
	assert_non_null(strstr(rn_error_last(), "killed"));
	pid_t bg = (pid_t)strtol(strstr(j->out, "bg ") + 3, NULL, 10);
	assert_true(bg > 0);
	assert_false(alive(bg));
}

static void test_shim_crash_then_reap_strays(void **state)
{
	(void)state;
	job *j = &g_job;
	job_sh(j, "sleep $M & echo bg $!; echo cmd $$; read go", 1);
	pid_t bg = job_pid(j, "bg ");
	pid_t cmd = job_pid(j, "cmd ");
	/* the shim dies (OOM killer, a stray kill): its tree is re-parented to its parent */
	assert_int_equal(kill(j->p.pid, SIGKILL), 0);
	if (g_server) {
		/* the fork server kills the orphans before it writes the report saying how the shim
		 * died (stdin stays open: the command would not end by itself) */
		int64_t end = now_ms() + SAFETY_MS;
		while (!j->done && now_ms() < end)
			job_pump(j, (int)(end - now_ms()));
		assert_true(j->done);
		assert_true(j->rc < 0);
		assert_int_equal(j->r.status, 128 + SIGKILL);
		assert_int_equal(j->r.signal, SIGKILL);
		assert_non_null(strstr(rn_error_last(), "killed by signal 9"));
		assert_false(alive(bg));
		assert_false(alive(cmd));
		job_end(j);
		return;
	}
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)j->p.pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(stat_field(cmd, 0), getpid());
	/* what the event loop does on SIGCHLD: the orphans die; the dead shim is left for finish */
	rn_proc_reap_strays();
	assert_false(alive(bg));
	assert_false(alive(cmd));
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)j->p.pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
	assert_int_equal(si.si_pid, j->p.pid);
	job_end(j);
	assert_true(j->rc < 0);
	assert_int_equal(j->r.status, 128 + SIGKILL);
	assert_int_equal(j->r.signal, SIGKILL);
}

static void test_runner_dies(void **state)
{
	(void)state;
	/* a child process plays the runner: it starts a step, then is SIGKILLed. The shim's
	 * PR_SET_PDEATHSIG must take the whole tree down; with the fork server in between, the
	 * server's PR_SET_PDEATHSIG(SIGKILL) kills it, and its death is the shim's PDEATHSIG. */
	int op[2], info[2];
	rn_proc_shutdown(); /* our own server: the child starts its own */
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	assert_int_equal(pipe2(info, O_CLOEXEC), 0);
	pid_t runner = fork();
	assert_true(runner >= 0);
	if (runner == 0) {
		const char *argv[] = { "/bin/sh", "-c",
				       "setsid sleep $M & sleep $M & echo bg $!; wait", NULL };
		rn_proc p;
		/* the fork server started early (by the keeper thread, whose end would be the server's
		 * PDEATHSIG: it must last as long as the process), and a step first */
		rn_proc_prestart();
		const char *first[] = { "/bin/true", NULL };
		rn_proc_opts o1 = { first, g_env, NULL, -1, -1, NULL, 0 };
		rn_proc_result r1;
		if (rn_proc_start(&p, &o1) != 0 || rn_proc_finish(&p, &r1) != 0 || r1.status != 0)
			_exit(1);
		rn_proc_opts o = { argv, g_env, NULL, op[1], -1, NULL, 0 };
		if (rn_proc_start(&p, &o) != 0)
			_exit(1);
		close(op[1]);
		char msg[64];
		int n = snprintf(msg, sizeof(msg), "%d %d\n", (int)p.pid, (int)rn_proc_server_pid());
		if (write(info[1], msg, (size_t)n) != n)
			_exit(1);
		for (;;)
			pause();
	}
	close(op[1]);
	close(info[1]);
	job *j = &g_job;
	memset(j, 0, sizeof(*j));
	j->out_r = op[0];
	j->in_w = -1;
	j->done = 1; /* no status pipe here: only output */
	pid_t bg = job_pid(j, "bg ");
	char msg[64] = "";
	assert_true(read(info[0], msg, sizeof(msg) - 1) > 0);
	close(info[0]);
	char *rest;
	pid_t shim = (pid_t)strtol(msg, &rest, 10);
	pid_t server = (pid_t)strtol(rest, NULL, 10);
	assert_true(shim > 0);
	if (g_server) {
		assert_true(server > 0);
		assert_int_equal(stat_field(shim, 0), server);
		assert_int_equal(stat_field(server, 0), runner);
	} else {
		assert_int_equal(server, -1);
		assert_int_equal(stat_field(shim, 0), runner);
	}
	assert_true(alive(bg));
	assert_int_equal(kill(runner, SIGKILL), 0);
	int st;
	assert_int_equal(waitpid(runner, &st, 0), runner);
	if (g_server) {
		/* the server dies at once (SIGKILL) and is re-parented to us, the subreaper */
		assert_int_equal(waitpid(server, &st, 0), server);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGKILL);
		/* so are its children: the shim, which kills its tree and exits, and the server's spare
		 * shim, which exits when its socket to the server closes */
		int others = 0, got_shim = 0;
		char seen[512] = "";
		for (;;) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			if (waitid(P_ALL, 0, &si, WEXITED | WNOWAIT) < 0)
				break;
			char fn[64], comm[64] = "?";
			snprintf(fn, sizeof(fn), "/proc/%d/comm", (int)si.si_pid);
			FILE *f = fopen(fn, "re");
			if (f) {
				if (!fgets(comm, sizeof(comm), f))
					comm[0] = '\0';
				fclose(f);
				comm[strcspn(comm, "\n")] = '\0';
			}
			size_t used = strlen(seen);
			snprintf(seen + used, sizeof(seen) - used, "%d:%s:%d:%d ", (int)si.si_pid, comm, si.si_code, si.si_status);
			pid_t w = waitpid(si.si_pid, &st, 0);
			assert_int_equal(w, si.si_pid);
			if (w == shim)
				got_shim = 1;
			else
				others++;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				fail_msg("re-parented process did not exit 0: %s", seen);
		}
		if (!got_shim || others > 1)
			fail_msg("re-parented processes: %s (shim %d)", seen, (int)shim);
		job_end(j);
		assert_false(alive(bg));
		return;
	}
	/* the output pipe reaches EOF when no process of the tree holds it any more */
	job_end(j);
	/* the shim was re-parented to us (the subreaper); it exits normally once it has killed and
	 * reaped its tree (EOF alone can come a moment before the last process is gone) */
	assert_int_equal(waitpid(shim, &st, 0), shim);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_false(alive(bg));
}

static void test_kill_races_a_spawner(void **state)
{
	(void)state;
	job *j = &g_job;
	/* the command leaves behind a loop that keeps starting setsid'd sleeps while the shim is
	 * killing the tree: the shim must go round until nothing is left */
	const char *argv[] = { "/bin/sh", "-c",
			       "rm -f ff; mkfifo ff; "
			       "(i=0; while [ $i -lt 300 ]; do setsid sleep $M & i=$((i+1)); "
			       "if [ $i = 5 ]; then echo 5 > ff; fi; done) & "
			       "read x < ff; echo spawning",
			       NULL };
	job_start(j, argv, g_env, g_tmp, 0);
	job_end(j);
	assert_int_equal(j->r.status, 0);
	assert_non_null(strstr(j->out, "spawning"));
	assert_true(j->r.survivors >= 5);
}

static void test_reap_strays_leaves_own_children(void **state)
{
	(void)state;
	/* a child the runner started itself, in its own session: not a stray */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		char b;
		close(p[1]);
		while (read(p[0], &b, 1) < 0 && errno == EINTR) {
		}
		_exit(7);
	}
	close(p[0]);
	rn_proc_reap_strays();
	assert_true(alive(kid));
	close(p[1]); /* let it exit, then it is a zombie: still not ours to reap */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)kid, &si, WEXITED | WNOWAIT), 0);
	rn_proc_reap_strays();
	int st = 0;
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);

	/* while a step runs, reap_strays does not touch its shim or its tree */
	job *j = &g_job;
	job_sh(j, "sleep $M & echo bg $!; read go", 1);
	pid_t bg = job_pid(j, "bg ");
	rn_proc_reap_strays();
	assert_true(alive(bg));
	assert_true(alive(j->p.pid));
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
}

static void test_rusage(void **state)
{
	(void)state;
	job *j = &g_job;
	/* the busy loop runs in a grandchild: the tree's time is counted, not only the command's */
	job_run(j, "sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done' & wait");
	assert_int_equal(j->r.status, 0);
	assert_true(j->r.user_s + j->r.sys_s > 0.0);
	assert_true(j->r.user_s > 0.001);
	assert_true(j->r.maxrss_kb > 0);
}

static void test_dir_and_env_exact(void **state)
{
	(void)state;
	job *j = &g_job;
	setenv("RN_TEST_SECRET", "must-not-leak", 1);
	const char *env[] = { "PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY=", NULL };
	const char *argv[] = { "env", NULL };
	job_start(j, argv, env, NULL, 0);
	job_end(j);
	unsetenv("RN_TEST_SECRET");
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "PATH=/usr/bin:/bin\nFOO=bar baz\nEMPTY=\n");

	/* NULL envp: an empty environment (argv[0] found through the default PATH) */
	job_start(j, argv, NULL, NULL, 0);
	job_end(j);
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "");

	const char *pwd[] = { "pwd", NULL };
	job_start(j, pwd, g_env, g_tmp, 0);
	job_end(j);
	char want[PATH_MAX + 2], real[PATH_MAX];
	assert_non_null(realpath(g_tmp, real));
	snprintf(want, sizeof(want), "%s\n", real);
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, want);
}

static void test_signal_mask_and_dispositions_reset(void **state)
{
	(void)state;
	job *j = &g_job;
	/* the runner blocks and ignores signals; the command must start with none of that */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, &old);
	struct sigaction ign = { .sa_handler = SIG_IGN }, oldint, oldpipe, oldusr2;
	sigaction(SIGINT, &ign, &oldint);
	sigaction(SIGPIPE, &ign, &oldpipe);
	sigaction(SIGUSR2, &ign, &oldusr2);
	job_run(j, "grep -E '^Sig(Blk|Ign)' /proc/self/status");
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGPIPE, &oldpipe, NULL);
	sigaction(SIGUSR2, &oldusr2, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	assert_string_equal(j->out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

static void test_invalid_args(void **state)
{
	(void)state;
	rn_proc p;
	const char *none[] = { NULL };
	rn_proc_opts o = { none, g_env, NULL, -1, -1, NULL, 0 };
	assert_int_equal(rn_proc_start(&p, &o), RN_EINVALID);
}

static job g_job2;

static void test_parallel_steps_independent(void **state)
{
	(void)state;
	/* both output pipes exist before either step starts, so the first shim inherits the write end
	 * of the second pipe: it must close it, or the second step's EOF would wait for the first */
	job *a = &g_job, *b = &g_job2;
	int pa[2], pb[2], ia[2];
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	assert_int_equal(pipe2(pa, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pb, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ia, O_CLOEXEC), 0);
	const char *sa[] = { "/bin/sh", "-c", "echo a-ready; read go; echo a-done", NULL };
	const char *sb[] = { "/bin/sh", "-c", "echo b-done", NULL };
	rn_proc_opts oa = { sa, g_env, NULL, pa[1], ia[0], NULL, 0 };
	rn_proc_opts ob = { sb, g_env, NULL, pb[1], -1, NULL, 0 };
	assert_int_equal(rn_proc_start(&a->p, &oa), 0);
	assert_int_equal(rn_proc_start(&b->p, &ob), 0);
	close(pa[1]);
	close(pb[1]);
	close(ia[0]);
	a->out_r = pa[0];
	a->in_w = ia[1];
	b->out_r = pb[0];
	b->in_w = -1;
	job_expect(a, "a-ready");
	job_end(b); /* output EOF and report while a still runs */
	assert_int_equal(b->r.status, 0);
	assert_string_equal(b->out, "b-done\n");
	assert_false(a->done);
	rn_proc_reap_strays(); /* as the event loop does on SIGCHLD: must not disturb a */
	job_send(a, "go\n");
	job_end(a);
	assert_int_equal(a->r.status, 0);
	assert_string_equal(a->out, "a-ready\na-done\n");
}

static void test_many_sequential(void **state)
{
	(void)state;
	job *j = &g_job;
	const char *argv[] = { "/bin/true", NULL };
	job_start(j, argv, g_env, NULL, 0); /* the fork server's socket is open from now on */
	job_end(j);
	int before = count_fds();
	int64_t t0 = now_ms();
	for (int i = 0; i < 200; i++) {
		job_start(j, argv, g_env, NULL, 0);
		job_end(j);
		assert_int_equal(j->rc, 0);
		assert_int_equal(j->r.status, 0);
	}
	int64_t ms = now_ms() - t0;
	assert_int_equal(count_fds(), before);
	print_message("200 sequential steps of /bin/true: %lld ms\n", (long long)ms);
	assert_true(ms < 20000);
}

/* Wait until pid's parent is ppid, polling /proc (re-parenting has no file descriptor). */
static void wait_parent(pid_t pid, pid_t ppid)
{
	for (int64_t end = now_ms() + SAFETY_MS; now_ms() < end;) {
		long cur = stat_field(pid, 0);
		if (cur == ppid)
			return;
		assert_true(cur > 0);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	fail_msg("process %d was not re-parented to %d", (int)pid, (int)ppid);
}

static void test_double_forked_setsid_daemon(void **state)
{
	(void)state;
	job *j = &g_job;
	/* the classic daemon: fork, setsid, fork again, and the middle processes exit; the daemon
	 * is re-parented to the shim (the nearest subreaper), in a session of its own */
	job_sh(j, "( setsid sh -c 'sleep $M & echo d $!' & ); echo started; read go", 1);
	pid_t d = job_pid(j, "d ");
	job_expect(j, "started");
	wait_parent(d, j->p.pid);
	long dsid = stat_field(d, 2);
	assert_true(dsid > 0);
	assert_true(dsid != getsid(0));
	assert_true(dsid != getsid(j->p.pid));
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	assert_true(j->r.survivors >= 1);
	assert_false(alive(d));
}

/* The fork server is what starts the shims, a small program of its own. */
static void test_fork_server_in_use(void **state)
{
	(void)state;
	job *j = &g_job;
	job_sh(j, "echo ready; read go", 1);
	job_expect(j, "ready");
	pid_t server = rn_proc_server_pid();
	assert_true(server > 0);
	assert_int_equal(stat_field(j->p.pid, 0), server);
	assert_int_equal(stat_field(server, 0), getpid());
	char path[64], exe[PATH_MAX], want[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)server);
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_non_null(realpath(g_shim, want));
	assert_string_equal(exe, want);
	assert_non_null(strstr(rn_proc_server_info(), "runner-shim"));
	/* libc only: none of the runner's libraries is mapped into it */
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)server);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	char line[PATH_MAX + 128];
	int lines = 0;
	while (fgets(line, sizeof(line), f)) {
		lines++;
		assert_null(strstr(line, "libgit2"));
		assert_null(strstr(line, "libcurl"));
		assert_null(strstr(line, "libcrypto"));
		assert_null(strstr(line, "libyaml"));
	}
	fclose(f);
	assert_true(lines > 0);
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	/* the shim reported; the server reaps it (check_clean waits for that) */
}

static void test_fork_server_killed_mid_step(void **state)
{
	(void)state;
	job *j = &g_job;
	job_sh(j, "sleep $M & echo bg $!; echo cmd $$; read go", 1);
	pid_t bg = job_pid(j, "bg ");
	pid_t cmd = job_pid(j, "cmd ");
	pid_t server = rn_proc_server_pid();
	assert_true(server > 0);
	assert_int_equal(kill(server, SIGKILL), 0);
	/* the shim's PDEATHSIG: it kills its tree and reports (stdin stays open: the command would
	 * not end by itself); the shim is re-parented to us and rn_proc_finish reaps it */
	int64_t end = now_ms() + SAFETY_MS;
	while (!j->done && now_ms() < end)
		job_pump(j, (int)(end - now_ms()));
	assert_true(j->done);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 128 + SIGKILL);
	assert_false(alive(bg));
	assert_false(alive(cmd));
	job_end(j);
	/* what the engine does on SIGCHLD: the dead server is noticed and reaped */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)server, &si, WEXITED | WNOWAIT), 0);
	rn_proc_reap_strays();
	assert_int_equal(rn_proc_server_pid(), -1);
	errno = 0;
	assert_int_equal(waitpid(server, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	/* the next step starts a new one */
	job_run(j, "echo again");
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "again\n");
	pid_t again = rn_proc_server_pid();
	assert_true(again > 0);
	assert_true(again != server);
	job_run(j, "echo third"); /* through the new server (check_shim_parent) */
	assert_string_equal(j->out, "third\n");
	assert_int_equal(rn_proc_server_pid(), again);
}

/* A run's first step is forked here and starts no server (a one-step run would only pay for
 * it); the second starts it and is forked here too (its start-up would delay it); a step started
 * while that one runs already goes through the server. */
static void test_first_steps_forked_while_server_starts(void **state)
{
	(void)state;
	rn_proc_shutdown();
	assert_int_equal(rn_proc_server_pid(), -1);
	job *a = &g_job, *b = &g_job2;
	job_run(a, "echo zero");
	assert_string_equal(a->out, "zero\n");
	assert_int_equal(rn_proc_server_pid(), -1);
	job_sh(a, "echo one; read go", 1);
	job_expect(a, "one");
	pid_t server = rn_proc_server_pid();
	assert_true(server > 0);
	assert_int_equal(stat_field(a->p.pid, 0), getpid());
	job_sh(b, "echo two; read go", 1);
	job_expect(b, "two");
	assert_int_equal(stat_field(b->p.pid, 0), server);
	job_send(b, "go\n");
	job_end(b);
	job_send(a, "go\n");
	job_end(a);
	assert_int_equal(a->r.status, 0);
	assert_int_equal(b->r.status, 0);
}

/* The server's shims take one step after another; a signal meant for a step that had already
 * reported (the runner's kill racing the step's end) must not reach the next one. */
static void test_shim_takes_next_step_clean(void **state)
{
	(void)state;
	job *a = &g_job, *b = &g_job2;
	job_sh(a, "echo a-done", 0);
	/* the report is written (the tree is gone); the runner has not read it yet */
	struct pollfd pf = { .fd = a->p.status_fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, SAFETY_MS), 1);
	rn_proc_term(&a->p);
	rn_proc_kill(&a->p);
	pid_t shim = a->p.pid;
	job_end(a);
	assert_int_equal(a->rc, 0);
	assert_int_equal(a->r.status, 0);
	assert_string_equal(a->out, "a-done\n");
	/* the next step: not on that shim (a signalled shim is not reused: the signals still
	 * pending there would absorb the same ones meant for its next step, since ordinary
	 * signals do not queue), and not killed by the stale signals */
	job_sh(b, "echo b-ready; read go; echo b-done", 1);
	job_expect(b, "b-ready");
	if (g_server)
		assert_true(b->p.pid != shim);
	job_send(b, "go\n");
	job_end(b);
	assert_int_equal(b->rc, 0);
	assert_int_equal(b->r.status, 0);
	assert_int_equal(b->r.signal, 0);
	assert_string_equal(b->out, "b-ready\nb-done\n");
	/* and its rusage is its own: a busy loop before does not show up in a quick step after */
	job_run(a, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
	double busy = a->r.user_s + a->r.sys_s;
	assert_true(busy > 0.05);
	job_run(a, "true");
	assert_true(a->r.user_s + a->r.sys_s < busy / 2);
}

/* A large environment: 1 MiB in 1,000 variables goes through the server (a request of many
 * socket buffers); 70,000 small variables exceed its limit (65,536 strings): forked here, and
 * run. */
static void test_large_environment(void **state)
{
	(void)state;
	job *j = &g_job;
	size_t n = 70000;
	char **env = calloc(n + 2, sizeof(*env));
	assert_non_null(env);
	env[0] = strdup("PATH=/usr/bin:/bin");
	for (size_t i = 1; i <= 1000; i++) {
		env[i] = malloc(1100);
		assert_non_null(env[i]);
		int k = snprintf(env[i], 1100, "BIG%zu=", i);
		memset(env[i] + k, 'a' + (int)(i % 26), 1023);
		env[i][k + 1023] = '\0';
	}
	const char *argv[] = { "/bin/sh", "-c", "echo ${#BIG1000} ${BIG999%${BIG999#?}}", NULL };
	job_start(j, argv, (const char *const *)env, NULL, 0);
	job_end(j);
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "1023 l\n");

	for (size_t i = 1; i <= n; i++) { /* small ones only: execve takes 2 MiB at most here */
		free(env[i]);
		env[i] = malloc(16);
		assert_non_null(env[i]);
		snprintf(env[i], 16, "V%zu=x", i);
	}
	const char *argv2[] = { "/bin/sh", "-c", "echo $V70000; echo ready; read go", NULL };
	g_check_parent = 0;
	job_start(j, argv2, (const char *const *)env, NULL, 1);
	job_expect(j, "ready");
	assert_int_equal(stat_field(j->p.pid, 0), getpid());
	job_send(j, "go\n");
	job_end(j);
	g_check_parent = 1;
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "x\nready\n");
	for (size_t i = 0; i <= n; i++)
		free(env[i]);
	free(env);
}

/* RUNNER_SHIM names a missing file, or a program that is no fork server: steps are forked here. */
static void test_fallback_without_fork_server(void **state)
{
	(void)state;
	job *j = &g_job;
	const char *was = getenv("RUNNER_SHIM");
	char saved[PATH_MAX];
	snprintf(saved, sizeof(saved), "%s", was ? was : "");
	g_server = 0; /* what check_shim_parent expects (warm() sets it back) */

	setenv("RUNNER_SHIM", "/nonexistent/runner-shim", 1);
	rn_proc_shutdown();
	job_run(j, "true"); /* the second step looks for the server */
	job_sh(j, "echo ready; read go", 1);
	job_expect(j, "ready");
	assert_int_equal(rn_proc_server_pid(), -1);
	assert_int_equal(stat_field(j->p.pid, 0), getpid());
	assert_non_null(strstr(rn_proc_server_info(), "fork ("));
	assert_non_null(strstr(rn_proc_server_info(), "/nonexistent/runner-shim"));
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);

	/* /bin/true exits without the hello: the second step (forked here) starts it, the third
	 * finds no hello and is forked here too; it is given up for good, nothing is left of it */
	setenv("RUNNER_SHIM", "/bin/true", 1);
	rn_proc_shutdown();
	g_check_parent = 0;
	job_run(j, "true");
	job_run(j, "echo hi");
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "hi\n");
	assert_true(rn_proc_server_pid() > 0);
	job_run(j, "echo again");
	assert_string_equal(j->out, "again\n");
	assert_int_equal(rn_proc_server_pid(), -1);
	assert_non_null(strstr(rn_proc_server_info(), "did not start"));
	g_check_parent = 1;
	job_sh(j, "echo ready; read go", 1);
	job_expect(j, "ready");
	assert_int_equal(stat_field(j->p.pid, 0), getpid());
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->r.status, 0);

	setenv("RUNNER_SHIM", saved, 1);
	rn_proc_shutdown();
}

/* Before each test of the server group: two steps (the second starts the fork server), so that
 * the test's steps go through it. */
static int warm(void **state)
{
	(void)state;
	g_server = g_group_server;
	g_check_parent = 1;
	if (!g_server)
		return 0;
	job_run(&g_job, "true");
	if (g_job.r.status != 0 || rn_proc_server_pid() != -1)
		return -1; /* one step does not start it */
	job_run(&g_job, "true");
	return g_job.r.status == 0 && rn_proc_server_pid() > 0 ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	if (rn_proc_init() != 0)
		fail_msg("rn_proc_init: %s", rn_error_last());
	snprintf(g_marker, sizeof(g_marker), "4711.%d", (int)getpid());
	snprintf(g_menv, sizeof(g_menv), "M=%s", g_marker);
	const char *base = getenv("TMPDIR");
	snprintf(g_tmp, sizeof(g_tmp), "%s/test_proc.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(g_tmp))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* async_start: rn_proc_start returns at once; the status pipe stays empty while the command runs
 * (here it waits for its stdin to close: rn_proc_ready 0), so that the runner is not woken in
 * the middle of a step; the start marker and the report come together, and the output pipe's
 * EOF only after them (the shim holds its end until then), so that one wake-up sees both. An
 * exec failure comes through the report as with a plain start. */
static void test_async_start(void **state)
{
	(void)state;
	int ip[2], op[2];
	assert_int_equal(pipe2(ip, O_CLOEXEC), 0);
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	const char *argv[] = { "/bin/sh", "-c", "echo started; read x; exit 7", NULL };
	rn_proc p;
	rn_proc_opts o = { argv, g_env, NULL, op[1], ip[0], NULL, 1 };
	assert_int_equal(rn_proc_start(&p, &o), 0);
	close(op[1]);
	close(ip[0]);
	/* the command runs: its output arrives, and the status pipe holds no report yet */
	char buf[64];
	size_t len = 0;
	while (len < 8) {
		struct pollfd pf = { .fd = op[0], .events = POLLIN };
		assert_int_equal(poll(&pf, 1, SAFETY_MS), 1);
		ssize_t k = read(op[0], buf + len, sizeof(buf) - 1 - len);
		assert_true(k > 0);
		len += (size_t)k;
	}
	buf[len] = '\0';
	assert_string_equal(buf, "started\n");
	struct pollfd sf = { .fd = p.status_fd, .events = POLLIN };
	assert_int_equal(poll(&sf, 1, 0), 0); /* no marker while the command runs */
	assert_int_equal(rn_proc_ready(&p), 0);
	assert_int_equal(rn_proc_ready(&p), 0);
	assert_int_equal(poll(&sf, 1, 0), 0);
	close(ip[1]);
	/* the command exits: EOF on its output comes after the report, never before */
	struct pollfd of = { .fd = op[0], .events = POLLIN };
	assert_int_equal(poll(&of, 1, SAFETY_MS), 1);
	assert_int_equal(read(op[0], buf, sizeof(buf)), 0); /* EOF: it printed nothing more */
	assert_int_equal(poll(&sf, 1, 0), 1);
	assert_int_equal(rn_proc_ready(&p), 1);
	rn_proc_result r;
	assert_int_equal(rn_proc_finish(&p, &r), 0);
	assert_int_equal(r.status, 7);
	assert_int_equal(r.exec_errno, 0);
	close(op[0]);

	/* a command that cannot be exec'd, finished without waiting for readiness first */
	const char *bad[] = { "/nonexistent/command", NULL };
	rn_proc_opts ob = { bad, g_env, NULL, -1, -1, NULL, 1 };
	assert_int_equal(rn_proc_start(&p, &ob), 0);
	assert_int_equal(rn_proc_finish(&p, &r), 0);
	assert_int_equal(r.status, 127);
	assert_int_equal(r.exec_errno, ENOENT);
	assert_int_equal(r.fail_stage, RN_PROC_FAIL_EXEC);
}

/* A report ends the step for the runner, which may hand the shim its next step at once and lay
 * that request out in the memory the shim shares with it: nothing of the old step may be read
 * from there after the report. (The shim used to close the step's pipes from there: when the
 * next request came first, it closed nothing and held the output pipe of the step before, one
 * step in a few thousand.) Steps back to back, each output must reach EOF, and the idle shim
 * holds no fd but its socket. */
static void test_back_to_back_steps_release_pipes(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/true", NULL };
	rn_proc p;
	rn_proc_result r;
	int prev_out = -1;
	pid_t shim = 0;
	for (int i = 0; i < 1500; i++) {
		int op[2];
		assert_int_equal(pipe2(op, O_CLOEXEC), 0);
		rn_proc_opts o = { argv, g_env, NULL, op[1], -1, NULL, 1 };
		assert_int_equal(rn_proc_start(&p, &o), 0);
		close(op[1]);
		if (prev_out >= 0) { /* the step before: its output ends now that it was reported */
			struct pollfd of = { .fd = prev_out, .events = POLLIN };
			assert_int_equal(poll(&of, 1, SAFETY_MS), 1);
			char b;
			assert_int_equal(read(prev_out, &b, 1), 0);
			close(prev_out);
		}
		prev_out = op[0];
		/* read the report the moment it is there, and start the next step right away */
		struct pollfd sf = { .fd = p.status_fd, .events = POLLIN };
		while (!rn_proc_ready(&p))
			assert_int_equal(poll(&sf, 1, SAFETY_MS), 1);
		assert_int_equal(rn_proc_finish(&p, &r), 0);
		assert_int_equal(r.status, 0);
		if (g_server && i > 10) { /* the same shim takes every step once the pool is set up */
			if (!shim)
				shim = p.pid;
			assert_int_equal(p.pid, shim);
		}
	}
	struct pollfd of = { .fd = prev_out, .events = POLLIN };
	assert_int_equal(poll(&of, 1, SAFETY_MS), 1);
	close(prev_out);
	if (!g_server)
		return;
	char path[64], list[1024];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)shim);
	DIR *d = opendir(path);
	assert_non_null(d);
	int n = 0;
	size_t used = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s ", e->d_name);
		if (used >= sizeof(list))
			used = sizeof(list) - 1;
	}
	closedir(d);
	if (n != 4) /* 0, 1, 2 and its socket */
		fail_msg("the idle shim holds %d fds: %s", n, list);
}

/* A signal sent the moment a step was handed over (an async start returns before the shim has
 * even received it) is the step's: the shim drops only signals left from an earlier step. */
static void test_term_right_after_async_start(void **state)
{
	(void)state;
	const char *argv[] = { "sleep", g_marker, NULL };
	for (int i = 0; i < 30; i++) {
		rn_proc p;
		rn_proc_result r;
		rn_proc_opts o = { argv, g_env, NULL, -1, -1, NULL, 1 };
		assert_int_equal(rn_proc_start(&p, &o), 0);
		rn_proc_term(&p);
		struct pollfd sf = { .fd = p.status_fd, .events = POLLIN };
		while (!rn_proc_ready(&p))
			assert_int_equal(poll(&sf, 1, SAFETY_MS), 1);
		assert_int_equal(rn_proc_finish(&p, &r), 0);
		assert_int_equal(r.status, 143);
		assert_int_equal(r.signal, SIGTERM);
	}
}

/* An idle shim of the pool dies (the OOM killer, a stray kill): the next step goes to another
 * one and runs as usual. */
static void test_idle_shim_killed(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "echo before");
	pid_t shim = j->p.pid;
	assert_int_equal(stat_field(shim, 0), rn_proc_server_pid());
	int pfd = (int)syscall(SYS_pidfd_open, shim, 0);
	assert_true(pfd >= 0);
	assert_int_equal(kill(shim, SIGKILL), 0);
	struct pollfd pf = { .fd = pfd, .events = POLLIN }; /* readable once it has exited */
	assert_int_equal(poll(&pf, 1, SAFETY_MS), 1);
	close(pfd);
	for (int i = 0; i < 3; i++) {
		job_run(j, "echo after");
		assert_int_equal(j->rc, 0);
		assert_int_equal(j->r.status, 0);
		assert_string_equal(j->out, "after\n");
		assert_true(j->p.pid != shim);
	}
}

/* rn_proc_prestart: the server is spawned by a thread of its own, without waiting for it; the
 * first step goes through it, and it lives on (its PDEATHSIG is that thread's end). */
static void test_prestart(void **state)
{
	(void)state;
	job *j = &g_job;
	rn_proc_shutdown();
	rn_proc_prestart();
	pid_t server = rn_proc_server_pid();
	assert_true(server > 0);
	assert_int_equal(stat_field(server, 0), getpid());
	job_sh(j, "echo first; read go", 1);
	job_expect(j, "first");
	assert_int_equal(stat_field(j->p.pid, 0), server);
	job_send(j, "go\n");
	job_end(j);
	assert_int_equal(j->r.status, 0);
	/* again after a shutdown: the same keeper thread spawns the next one */
	rn_proc_shutdown();
	rn_proc_prestart();
	pid_t again = rn_proc_server_pid();
	assert_true(again > 0 && again != server);
	job_run(j, "echo second");
	assert_string_equal(j->out, "second\n");
	assert_int_equal(rn_proc_server_pid(), again);
	assert_int_equal(kill(again, 0), 0);
}

/* A step that was signalled after its report (a cancel racing its end) leaves signals pending on
 * its shim; a step started and signalled right after it must still get its own (an ordinary
 * signal already pending swallows a second one of the same number). */
static void test_signal_after_a_stale_one(void **state)
{
	(void)state;
	const char *argv[] = { "sleep", g_marker, NULL };
	for (int i = 0; i < 5; i++) {
		job *a = &g_job;
		job_sh(a, "true", 0);
		struct pollfd pf = { .fd = a->p.status_fd, .events = POLLIN };
		assert_int_equal(poll(&pf, 1, SAFETY_MS), 1); /* reported, not read yet */
		if (i % 2)
			rn_proc_kill(&a->p);
		else
			rn_proc_term(&a->p);
		pid_t old = a->p.pid;
		job_end(a);
		assert_int_equal(a->r.status, 0);
		/* the old shim is held still until the next step is signalled, so that, were it handed
		 * that step, the signal would surely come before it looks at what is pending (if it
		 * has exited already, its pid is not reused within these microseconds: pids are
		 * allocated in increasing order) */
		if (g_server)
			kill(old, SIGSTOP);
		rn_proc p;
		rn_proc_result r;
		rn_proc_opts o = { argv, g_env, NULL, -1, -1, NULL, 1 };
		assert_int_equal(rn_proc_start(&p, &o), 0);
		if (i % 2)
			rn_proc_kill(&p);
		else
			rn_proc_term(&p);
		if (g_server)
			kill(old, SIGCONT);
		struct pollfd sf = { .fd = p.status_fd, .events = POLLIN };
		while (!rn_proc_ready(&p))
			assert_int_equal(poll(&sf, 1, SAFETY_MS), 1);
		assert_int_equal(rn_proc_finish(&p, &r), 0);
		assert_int_equal(r.status, i % 2 ? 128 + SIGKILL : 143);
	}
}

/* A child forked from a process whose server is up (without exec) does not use its parent's
 * server or shims, even after an rn_proc_shutdown of its own: it starts its own, and the
 * parent's go on. */
static void test_forked_child_uses_its_own_server(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "true");
	pid_t server = rn_proc_server_pid();
	assert_true(server > 0);
	int rp[2];
	assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
	pid_t kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		close(rp[0]);
		rn_proc_shutdown(); /* "stop my server": not the parent's */
		rn_proc_prestart();
		const char *argv[] = { "/bin/true", NULL };
		rn_proc_opts o = { argv, g_env, NULL, -1, -1, NULL, 0 };
		int bad = 0;
		for (int i = 0; i < 3; i++) {
			rn_proc p;
			rn_proc_result r;
			if (rn_proc_start(&p, &o) != 0) {
				bad = 1;
				break;
			}
			long parent = stat_field(p.pid, 0);
			bad |= parent == server || parent <= 0;
			bad |= rn_proc_finish(&p, &r) != 0 || r.status != 0;
		}
		bad |= rn_proc_server_pid() == server;
		rn_proc_shutdown();
		char c = bad ? 'x' : 'k';
		_exit(write(rp[1], &c, 1) == 1 && !bad ? 0 : 1);
	}
	close(rp[1]);
	char c = 0;
	assert_int_equal(read(rp[0], &c, 1), 1);
	close(rp[0]);
	int st;
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_int_equal(c, 'k');
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* the parent's server was left alone */
	assert_int_equal(rn_proc_server_pid(), server);
	job_run(j, "echo still");
	assert_string_equal(j->out, "still\n");
	assert_int_equal(rn_proc_server_pid(), server);
}

/* The server dies while its shims wait (killed by hand, the OOM killer), and a step starts
 * before the runner has handled the SIGCHLD: the step runs (forked here), the server's shims are
 * gone, and the step after gets a new server. */
static void test_step_right_after_server_died(void **state)
{
	(void)state;
	job *j = &g_job;
	job_run(j, "true");
	job_run(j, "true");
	pid_t server = rn_proc_server_pid();
	assert_true(server > 0);
	assert_int_equal(kill(server, SIGKILL), 0);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)server, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped */
	g_check_parent = 0; /* forked here, though a server was running before it */
	job_run(j, "echo ran");
	g_check_parent = 1;
	assert_int_equal(j->rc, 0);
	assert_int_equal(j->r.status, 0);
	assert_string_equal(j->out, "ran\n");
	errno = 0;
	assert_int_equal(waitpid(server, NULL, WNOHANG), -1); /* reaped by the runner's side */
	assert_int_equal(errno, ECHILD);
	job_run(j, "echo next");
	assert_string_equal(j->out, "next\n");
	pid_t again = rn_proc_server_pid();
	assert_true(again > 0 && again != server);
}

int main(void)
{
#define COMMON_TESTS \
		cmocka_unit_test_setup_teardown(test_exit_codes, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_killed_by_signal, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_exec_failure, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_script_without_shebang_and_relative_path, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_output_captured, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_stdin_is_dev_null, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_only_stdio_inherited, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_command_leads_its_session, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_background_job_killed, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_double_fork, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_setsid_daemon, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_double_forked_setsid_daemon, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_term_ends_sleep_with_143, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_term_reaches_stopped_process, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_term_reaches_other_sessions, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_term_ignored_then_kill, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_step_kills_its_shim, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_shim_crash_then_reap_strays, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_runner_dies, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_kill_races_a_spawner, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_reap_strays_leaves_own_children, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_rusage, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_dir_and_env_exact, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_signal_mask_and_dispositions_reset, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_invalid_args, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_parallel_steps_independent, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_many_sequential, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_shim_takes_next_step_clean, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_large_environment, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_fallback_without_fork_server, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_async_start, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_back_to_back_steps_release_pipes, warm, check_clean), \
		cmocka_unit_test_setup_teardown(test_term_right_after_async_start, warm, check_clean)
	const struct CMUnitTest server_tests[] = {
		COMMON_TESTS,
		cmocka_unit_test_setup_teardown(test_fork_server_in_use, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_fork_server_killed_mid_step, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_first_steps_forked_while_server_starts, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_idle_shim_killed, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_prestart, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_signal_after_a_stale_one, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_forked_child_uses_its_own_server, warm, check_clean),
		cmocka_unit_test_setup_teardown(test_step_right_after_server_died, warm, check_clean),
	};
	const struct CMUnitTest fork_tests[] = { COMMON_TESTS };
#undef COMMON_TESTS
	/* runner-shim is built next to the runner binary (meson passes its path) */
	const char *bin = getenv("RUNNER_BIN");
	if (!bin || !*bin) {
		fprintf(stderr, "test_proc: RUNNER_BIN (the runner binary, next to runner-shim) is not set\n");
		return 1;
	}
	snprintf(g_shim, sizeof(g_shim), "%s", bin);
	char *slash = strrchr(g_shim, '/');
	snprintf(slash ? slash + 1 : g_shim, sizeof(g_shim) - (size_t)(slash ? slash + 1 - g_shim : 0), "runner-shim");
	if (access(g_shim, X_OK) != 0) {
		fprintf(stderr, "test_proc: %s: %s\n", g_shim, strerror(errno));
		return 1;
	}
	g_group_server = 1;
	setenv("RUNNER_SHIM", g_shim, 1);
	int failed = cmocka_run_group_tests_name("proc, shims forked by runner-shim", server_tests, setup, teardown);
	g_group_server = 0;
	setenv("RUNNER_SHIM", "/nonexistent/runner-shim", 1);
	rn_proc_shutdown();
	failed += cmocka_run_group_tests_name("proc, shims forked by the runner", fork_tests, setup, teardown);
	return failed;
}
