/* proc.c - run one step as a contained process tree: the runner's side (see proc.h for the
 * design, shim.c for the shim itself, shimd.c for the fork server, docs/fork-server.md).
 *
 *   runner (child subreaper)
 *     runner-shim       the fork server (started at the second unsandboxed step, or by
 *                       rn_proc_prestart); subreaper; forks shims ahead of need
 *       shim            takes one step after another, handed to it by the runner directly
 *                       (forksrv.c: the runner's pool of the server's shims)
 *     shim              forked by the runner itself (sandboxed steps; the first two steps
 *                       when the server was not started early; every step when the server
 *                       is unavailable)
 *         command ...   the step's tree
 *
 * rn_proc_start prepares everything the shim needs (resolved program, argv, environment) and
 * either hands it to an idle shim of the fork server with the step's fds, or forks the shim
 * itself. Both paths
 * end the same way: the shim writes its START byte once the command was exec'd (or failed to),
 * and its report when the tree is gone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proc.h"
#include "forksrv.h"
#include "sandbox.h"
#include "shim.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>


/* ---- live shims: the ones the runner forked, and the server's ones running our steps (if the
 * server dies they are re-parented to us; rn_proc_finish reaps them) */

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

static int keep_child(pid_t pid, void *arg)
{
	(void)arg;
	if (rn_forksrv_keeps(pid))
		return 1;
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i] == pid)
			return 1;
	return 0;
}

static int sandbox_setup(const void *plan, int *stage)
{
	return rn_sandbox_setup(plan, stage);
}

static int sandbox_exec_prepare(const void *plan, int *stage)
{
	return rn_sandbox_exec_prepare(plan, stage);
}

int rn_proc_init(void)
{
	/* without /proc the tree cannot be found (and so not killed): refuse to run steps */
	if (access("/proc/self/stat", R_OK) < 0)
		return rn_error_errno("rn_proc_init: /proc is not usable");
	rn_shim_children_file();
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
	/* the candidates are built in place (this runs for every step, PATH has a dozen entries) */
	size_t nlen = strlen(name), dlen = dir ? strlen(dir) : 0;
	char check[PATH_MAX];
	for (const char *seg = path;;) {
		const char *end = strchr(seg, ':');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		/* dir/ (a relative entry: from the working directory) seg/ name */
		size_t pre = (!len || seg[0] != '/') && dir ? dlen + 1 : 0;
		size_t total = pre + (len ? len + 1 : 0) + nlen;
		if (total < sizeof(check)) {
			char *w = check;
			if (pre) {
				memcpy(w, dir, dlen);
				w[dlen] = '/';
				w += dlen + 1;
			}
			if (len) {
				memcpy(w, seg, len);
				w[len] = '/';
				w += len + 1;
			}
			memcpy(w, name, nlen + 1);
			struct stat st;
			int ok = stat(check, &st) == 0 && S_ISREG(st.st_mode);
			if (ok && access(check, X_OK) != 0) {
				*err = EACCES;
				ok = 0;
			}
			if (ok) {
				if (!len) /* an empty entry means the current directory */
					return rn_xasprintf("./%s", name);
				return rn_xstrndup(check + pre, total - pre);
			}
		}
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
	p->pidfd = -1;
	p->lead = -1;
	p->async = o && o->async_start;
	p->step = 0;
	if (!o || !o->argv || !o->argv[0]) {
		rn_error_set("rn_proc_start: empty argv");
		return RN_EINVALID;
	}
	const char *const *envp = o->envp ? o->envp : no_env;

	rn_shim_ctx c;
	memset(&c, 0, sizeof(c));
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
	c.children_file = rn_shim_children_file();
	c.late_start = p->async;
	c.sandbox = o->sandbox;
	c.sandbox_setup = sandbox_setup;
	c.sandbox_exec_prepare = sandbox_exec_prepare;

	int rc = RN_OK, sp[2];
	if (pipe2(sp, O_CLOEXEC) < 0) {
		rc = rn_error_errno("rn_proc_start: pipe");
		goto done;
	}
	c.status_w = sp[1];
	if (!o->sandbox && rn_forksrv_start(p, &c) == 1) {
		close(sp[1]); /* the shim has it */
		goto started;
	}

	c.parent = getpid(); /* the shim is forked here: it checks that its parent is still us */
	/* like git's start_command: no signal handler may run in the child before it resets them */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = o->sandbox ? rn_sandbox_fork(o->sandbox) : fork();
	if (pid == 0)
		rn_shim_main(&c);
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		errno = fork_errno;
		rc = rn_error_errno("rn_proc_start: fork");
		goto done;
	}
	shim_add(pid);
	p->pid = pid;

started:
	p->status_fd = sp[0];
	if (o->async_start) {
		p->lead = -2; /* the START byte is read by rn_proc_ready or rn_proc_finish */
	} else {
		/* wait until the command was exec'd or failed to (EOF: the shim died; rn_proc_finish
		 * reports that) */
		char b;
		if (rn_read_full(sp[0], &b, 1) == 1 && b != RN_SHIM_START_BYTE)
			p->lead = (unsigned char)b;
	}
	/* the read end of a pipe2(O_CLOEXEC): O_RDONLY is all its status flags */
	if (fcntl(sp[0], F_SETFL, O_RDONLY | O_NONBLOCK) < 0)
		rn_error_errno("rn_proc_start: fcntl"); /* not fatal: finish copes with a blocking fd */
done:
	free((void *)(uintptr_t)c.path);
	free(sh_argv);
	return rc;
}

static void proc_signal(rn_proc *p, int sig)
{
	if (!p || p->pid <= 0 || p->reaped)
		return;
	if (p->pidfd >= 0)
		rn_forksrv_signal(p, sig);
	else
		kill(p->pid, sig);
}

void rn_proc_term(rn_proc *p)
{
	proc_signal(p, SIGTERM);
}

void rn_proc_kill(rn_proc *p)
{
	proc_signal(p, SIGUSR1);
}

void rn_proc_reap_strays(void)
{
	rn_forksrv_check();
	rn_shim_kill_strays(keep_child, NULL, 0);
}

/* Consume the START byte of an async start if it is there. 1 if it was (or there is nothing
 * to consume), 0 if the pipe is empty for now. A first byte that is not START (the fork server
 * wrote a report for a shim that died before it) is kept as the report's lead; EOF as well. */
static int take_start_byte(rn_proc *p)
{
	if (p->lead != -2)
		return 1;
	for (;;) {
		unsigned char b;
		ssize_t k = read(p->status_fd, &b, 1);
		if (k == 1) {
			p->lead = b == RN_SHIM_START_BYTE ? -1 : b;
			return 1;
		}
		if (k == 0) {
			p->lead = -1;
			return 1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		p->lead = -1; /* a broken pipe end: rn_proc_finish reports no report */
		return 1;
	}
}

int rn_proc_ready(rn_proc *p)
{
	if (!p || p->status_fd < 0 || !p->async)
		return 1;
	if (!take_start_byte(p))
		return 0;
	if (p->lead >= 0)
		return 1;
	struct pollfd pf = { .fd = p->status_fd, .events = POLLIN };
	int k;
	do
		k = poll(&pf, 1, 0);
	while (k < 0 && errno == EINTR);
	return k != 0; /* the report (or EOF) right behind the marker, or an error to collect */
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
	while (p->status_fd >= 0 && !take_start_byte(p)) { /* async start: the marker comes first */
		struct pollfd pf = { .fd = p->status_fd, .events = POLLIN };
		poll(&pf, 1, -1);
	}
	struct rn_shim_report rep;
	size_t got = 0;
	memset(&rep, 0, sizeof(rep));
	if (p->lead >= 0) {
		*(unsigned char *)&rep = (unsigned char)p->lead;
		got = 1;
		p->lead = -1;
	}
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
	int full = got == sizeof(rep);
	if (p->pidfd >= 0) {
		/* back to the pool; or, if it died, how (once its orphans were killed) */
		p->wstatus = rn_forksrv_finish(p, full && rep.magic == RN_SHIM_REPORT_MAGIC);
		p->reaped = 1; /* from here on it is not signalled for this step */
	} else if (!p->reaped) {
		int ws = 0;
		pid_t w;
		do
			w = waitpid(p->pid, &ws, __WALL);
		while (w < 0 && errno == EINTR);
		p->reaped = 1;
		p->wstatus = w == p->pid ? ws : -1;
		shim_del(p->pid);
	}
	if (full && rep.magic == RN_SHIM_REPORT_MAGIC) {
		int ws = rep.wstatus;
		if (ws != -1 && WIFEXITED(ws)) {
			r->status = WEXITSTATUS(ws);
		} else if (ws != -1 && WIFSIGNALED(ws)) {
			r->signal = WTERMSIG(ws);
			r->status = 128 + r->signal;
		}
		r->exec_errno = rep.exec_errno;
		r->fail_stage = rep.exec_errno ? rep.fail_stage : RN_PROC_FAIL_NONE;
		r->sandbox_stage = rep.fail_stage == RN_PROC_FAIL_SANDBOX ? rep.sandbox_stage : 0;
		if (rep.exec_errno)
			r->status = 127;
		r->user_s = (double)rep.utime_us / 1e6;
		r->sys_s = (double)rep.stime_us / 1e6;
		r->maxrss_kb = (long)rep.maxrss_kb;
		r->survivors = rep.survivors;
		return RN_OK;
	}
	/* the shim died without a report: its orphans came back to its parent, which killed them
	 * (the fork server before it wrote the DIED record; we, a subreaper, do it here) */
	rn_shim_kill_strays(keep_child, NULL, 0);
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

void rn_proc_prestart(void)
{
	rn_forksrv_prestart();
}

void rn_proc_shutdown(void)
{
	rn_forksrv_shutdown();
}

pid_t rn_proc_server_pid(void)
{
	return rn_forksrv_pid();
}

const char *rn_proc_server_info(void)
{
	return rn_forksrv_info();
}
