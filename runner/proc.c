/* proc.c - run one step as a contained process tree: the runner's side (see proc.h for the
 * design, shim.c for the shim itself, shimd.c for the fork server, docs/fork-server.md).
 *
 *   runner (child subreaper)
 *     runner-shim       the fork server (started at the second unsandboxed step, or by
 *                       rn_proc_prestart); subreaper
 *       shim            one per running step, kept by the server for the next step
 *     shim              forked by the runner itself (sandboxed steps; the first two steps
 *                       when the server was not started early; every step when the server
 *                       is unavailable)
 *         command ...   the step's tree
 *
 * rn_proc_start prepares everything the shim needs (resolved program, argv, environment) and
 * either sends it to the fork server with the step's fds, or forks the shim itself. Both paths
 * end the same way: the shim writes its START byte once the command was exec'd (or failed to),
 * and its report when the tree is gone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proc.h"
#include "sandbox.h"
#include "shim.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define SERVER_HELLO_MS 5000 /* runner-shim must answer this fast, else steps are forked locally */
#define SERVER_MAX_FAILURES 3

extern char **environ;

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

/* ---- the fork server */

/* UNTRIED -> (second unsandboxed step: spawned, the step is forked here; or rn_proc_prestart)
 * STARTING -> (next step: its hello read) UP; it dies: UNTRIED again (the next step spawns
 * another), or OFF after SERVER_MAX_FAILURES; OFF: no server. A run of one step never starts it:
 * its start-up (an exec, the dynamic loader, a fork) would cost that run more than the one fork
 * it saves. */
enum { SRV_UNTRIED, SRV_STARTING, SRV_UP, SRV_OFF };

static struct {
	int state;
	int sock;        /* our end of the socketpair (STARTING, UP) */
	pid_t pid;       /* runner-shim (STARTING, UP) */
	pid_t owner;     /* the process that started it: a forked copy of us must start its own */
	int gen;         /* counts the servers started: an rn_proc of an earlier one says no DONE */
	int asked;       /* unsandboxed steps started (up to 2) */
	int failures;    /* servers that died or would not start */
	char *path;      /* the runner-shim in use or last tried */
	char why[256];   /* SRV_OFF: why steps are forked locally */
	char info[PATH_MAX + 64];
	struct rn_shimd_request *done; /* DONE messages not sent yet (see server_done) */
	size_t ndone, capdone;
} g_srv = { SRV_UNTRIED, -1, -1, -1, 0, 0, 0, NULL, "", "", NULL, 0, 0 };

static int keep_child(pid_t pid, void *arg)
{
	(void)arg;
	if ((g_srv.state == SRV_STARTING || g_srv.state == SRV_UP) && pid == g_srv.pid)
		return 1;
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i] == pid)
			return 1;
	return 0;
}

static void server_off(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void server_off(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g_srv.why, sizeof(g_srv.why), fmt, ap);
	va_end(ap);
	g_srv.state = SRV_OFF;
}

/* 1 if pid is a runner-shim process: its command name is the basename of path (truncated as
 * the kernel does). */
static int is_runner_shim(pid_t pid, const char *path)
{
	char fn[64], buf[256];
	snprintf(fn, sizeof(fn), "/proc/%d/stat", (int)pid);
	int fd = open(fn, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return 0;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = (size_t)(close_paren - open_paren - 1), want = strnlen(base, 15);
	return len == want && memcmp(open_paren + 1, base, len) == 0;
}

/* The fork server died: its children came to us (the subreaper). Shims whose step is running are
 * reaped by rn_proc_finish; the others, its spare (EOF on its socket ends it) and shims whose
 * report was read but that the server had not reaped yet, are exiting: reap them. */
static void reap_server_orphans(void)
{
	pid_t kids[512], sid = getsid(0), ksid;
	size_t n = rn_shim_children(getpid(), kids, RN_ARRAY_LEN(kids));
	for (size_t i = 0; i < n; i++) {
		if (keep_child(kids[i], NULL) || rn_shim_stat(kids[i], NULL, &ksid) < 0 || ksid != sid ||
		    !is_runner_shim(kids[i], g_srv.path ? g_srv.path : "runner-shim"))
			continue;
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR) {
		}
	}
}

/* The server is gone or broke the protocol: reap it; it is started again at the next step
 * unless that happened too often. block: wait for it to exit (it is on its way out). */
static void server_lost(int block, const char *what)
{
	if (g_srv.sock >= 0)
		close(g_srv.sock);
	g_srv.sock = -1;
	g_srv.ndone = 0;
	if (g_srv.pid > 0) {
		int st;
		pid_t w;
		do
			w = waitpid(g_srv.pid, &st, block ? 0 : WNOHANG);
		while (w < 0 && errno == EINTR);
		if (w == 0) /* still running (it broke the protocol): make sure it goes */
			kill(g_srv.pid, SIGKILL), waitpid(g_srv.pid, &st, 0);
		g_srv.pid = -1;
	}
	reap_server_orphans();
	g_srv.pid = -1;
	if (++g_srv.failures >= SERVER_MAX_FAILURES)
		server_off("%s: %s (%d times)", g_srv.path ? g_srv.path : "runner-shim", what, g_srv.failures);
	else
		g_srv.state = SRV_UNTRIED;
}

/* runner-shim next to our executable, or $RUNNER_SHIM. Caller frees; NULL if not found out. */
static char *server_locate(void)
{
	const char *env = getenv("RUNNER_SHIM");
	if (env && *env)
		return rn_xstrdup(env);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return rn_xasprintf("%s/runner-shim", exe);
}

/* Start runner-shim (it is not waited for: the step that starts it is forked here, the next
 * one reads its hello). 0, or -1 with the server off. */
static int server_spawn(void)
{
	free(g_srv.path);
	g_srv.path = server_locate();
	if (!g_srv.path) {
		server_off("cannot find the runner's own executable");
		return -1;
	}
	if (access(g_srv.path, X_OK) < 0) {
		server_off("%s: %s", g_srv.path, strerror(errno));
		return -1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		server_off("socketpair: %s", strerror(errno));
		return -1;
	}
	if (sv[1] == RN_SHIMD_FD) { /* dup2 onto itself would leave O_CLOEXEC set */
		int d = fcntl(sv[1], F_DUPFD_CLOEXEC, RN_SHIMD_FD + 1);
		close(sv[1]);
		sv[1] = d;
	}
	char pidarg[24];
	snprintf(pidarg, sizeof(pidarg), "%d", (int)getpid());
	char *argv[] = { g_srv.path, (char *)"--runner", pidarg, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t all;
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	int rc = sv[1] < 0 ? errno : 0;
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, sv[1], RN_SHIMD_FD);
	if (!rc)
		rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	/* no signal may reach it before it blocks them all (a Ctrl-C to the process group, say) */
	if (!rc)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&at, &all);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&at, &all);
	pid_t pid = -1;
	if (!rc)
		rc = posix_spawn(&pid, g_srv.path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (sv[1] >= 0)
		close(sv[1]);
	if (rc) {
		close(sv[0]);
		server_off("%s: %s", g_srv.path, strerror(rc));
		return -1;
	}
	g_srv.sock = sv[0];
	g_srv.pid = pid;
	g_srv.owner = getpid();
	g_srv.gen++;
	g_srv.ndone = 0;
	g_srv.state = SRV_STARTING;
	return 0;
}

/* In a fork of the process that owns the server: drop our copy of its socket (not ours). */
static void server_forget_inherited(void)
{
	if ((g_srv.state == SRV_STARTING || g_srv.state == SRV_UP) && g_srv.owner != getpid()) {
		close(g_srv.sock);
		g_srv.sock = -1;
		g_srv.pid = -1;
		g_srv.state = SRV_UNTRIED;
		g_srv.ndone = 0;
	}
}

/* Send the DONE messages held back by server_done, in one write. A failure means the server is
 * gone, which the request that follows finds out. */
static void server_flush_done(void)
{
	size_t total = g_srv.ndone * sizeof(*g_srv.done), sent = 0;
	g_srv.ndone = 0;
	while (sent < total) {
		ssize_t k = send(g_srv.sock, (const char *)g_srv.done + sent, total - sent, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		sent += (size_t)k;
	}
}

void rn_proc_prestart(void)
{
	server_forget_inherited();
	if (g_srv.state == SRV_UNTRIED) {
		g_srv.asked = 2;
		server_spawn();
	}
}

/* Read the hello of a server that was spawned (waiting for it if it is not there yet). 0, or -1
 * with the server off (not the runner-shim of this build, or it could not set up). */
static int server_hello(void)
{
	struct rn_shimd_hello h;
	struct pollfd pf = { .fd = g_srv.sock, .events = POLLIN };
	int ready;
	do
		ready = poll(&pf, 1, SERVER_HELLO_MS);
	while (ready < 0 && errno == EINTR);
	size_t got = ready > 0 ? read_full(g_srv.sock, &h, sizeof(h)) : 0;
	if (got != sizeof(h) || h.magic != RN_SHIMD_MAGIC || h.version != RN_SHIMD_VERSION ||
	    h.request_size != sizeof(struct rn_shimd_request) || h.report_size != sizeof(struct rn_shim_report)) {
		/* not ours (another build), or it could not set up (no pidfds): for good */
		kill(g_srv.pid, SIGKILL);
		server_lost(1, "no valid answer");
		server_off("%s: %s", g_srv.path,
			   got == sizeof(h) ? "another version of runner-shim" : "it did not start (no pidfd support?)");
		return -1;
	}
	g_srv.state = SRV_UP;
	return 0;
}

/* Copy s with its NUL to w; the byte after. */
static char *put_string(char *w, const char *s)
{
	size_t n = strlen(s) + 1;
	memcpy(w, s, n);
	return w + n;
}

/* Send one request (strings of the step; status_w, out, in attached). 1 started (p->pid and
 * p->pidfd set), 0 not sent (fork locally), -1 with rn_error_last() (the server's fork failed),
 * -2 the server died after it had the request (the caller must find out whether a shim ran). */
static int server_request(rn_proc *p, const rn_shim_ctx *c)
{
	server_forget_inherited();
	if (g_srv.state == SRV_UNTRIED) {
		/* its start-up (an exec, its first shim's fork) would delay this step: fork this one
		 * here */
		if (g_srv.asked < 2)
			g_srv.asked++;
		if (g_srv.asked >= 2)
			server_spawn();
		return 0;
	}
	if (g_srv.state == SRV_STARTING && server_hello() < 0)
		return 0;
	if (g_srv.state != SRV_UP)
		return 0;

	struct rn_shimd_request rq;
	memset(&rq, 0, sizeof(rq));
	rq.magic = RN_SHIMD_MAGIC;
	size_t len = 0;
	if (c->path) {
		rq.flags |= RN_SHIMD_HAVE_PATH;
		len += strlen(c->path) + 1;
	}
	if (c->dir) {
		rq.flags |= RN_SHIMD_HAVE_DIR;
		len += strlen(c->dir) + 1;
	}
	for (size_t i = 0; c->argv[i]; i++, rq.argc++)
		len += strlen(c->argv[i]) + 1;
	for (size_t i = 0; c->envp[i]; i++, rq.envc++)
		len += strlen(c->envp[i]) + 1;
	if (len > RN_SHIMD_MAX_REQUEST || (uint64_t)rq.argc + rq.envc > RN_SHIMD_MAX_STRINGS)
		return 0; /* exec would refuse it anyway: let the local path say so */
	rq.len = (uint32_t)len;
	rq.path_errno = c->path_errno;
	int fds[3], nfds = 0;
	fds[nfds++] = c->status_w;
	if (c->out_fd >= 0) {
		rq.flags |= RN_SHIMD_HAVE_OUT;
		fds[nfds++] = c->out_fd;
	}
	if (c->in_fd >= 0) {
		rq.flags |= RN_SHIMD_HAVE_IN;
		fds[nfds++] = c->in_fd;
	}
	if (c->late_start)
		rq.flags |= RN_SHIMD_LATE_START;

	/* the steps over since the last request: their shims may take this one (the server reads
	 * these before the request, and is woken once for all) */
	server_flush_done();
	char *buf = rn_xmalloc(sizeof(rq) + len), *w = buf + sizeof(rq);
	memcpy(buf, &rq, sizeof(rq));
	if (c->path)
		w = put_string(w, c->path);
	if (c->dir)
		w = put_string(w, c->dir);
	for (size_t i = 0; c->argv[i]; i++)
		w = put_string(w, c->argv[i]);
	for (size_t i = 0; c->envp[i]; i++)
		w = put_string(w, c->envp[i]);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	size_t total = sizeof(rq) + len, sent = 0;
	while (sent < total) {
		struct iovec iov = { buf + sent, total - sent };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (sent == 0) { /* the fds travel with the first byte */
			mh.msg_control = cm.b;
			mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
			struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
			h->cmsg_level = SOL_SOCKET;
			h->cmsg_type = SCM_RIGHTS;
			h->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
			memcpy(CMSG_DATA(h), fds, (size_t)nfds * sizeof(int));
		}
		ssize_t k = sendmsg(g_srv.sock, &mh, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(buf);
			/* nothing or part of it went out: the server cannot have started anything */
			server_lost(1, "lost");
			return 0;
		}
		sent += (size_t)k;
	}
	free(buf);

	struct rn_shimd_reply r;
	int pidfd = -1;
	size_t got = 0;
	while (got < sizeof(r)) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} rc;
		struct iovec iov = { (char *)&r + got, sizeof(r) - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = rc.b,
				     .msg_controllen = sizeof(rc.b) };
		ssize_t k = recvmsg(g_srv.sock, &mh, MSG_CMSG_CLOEXEC);
		if (k < 0 && errno == EINTR)
			continue;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
			    h->cmsg_len >= CMSG_LEN(sizeof(int))) {
				int fd;
				memcpy(&fd, CMSG_DATA(h), sizeof(fd));
				if (pidfd < 0)
					pidfd = fd;
				else
					close(fd);
			}
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got != sizeof(r) || r.magic != RN_SHIMD_MAGIC || (r.pid > 0 && pidfd < 0)) {
		if (pidfd >= 0)
			close(pidfd);
		server_lost(got == 0, "lost");
		return -2;
	}
	if (r.pid <= 0) {
		errno = r.err;
		return rn_error_errno("rn_proc_start: fork (runner-shim)");
	}
	p->pid = r.pid;
	p->pidfd = pidfd;
	p->gen = g_srv.gen;
	p->step = r.id;
	shim_add(r.pid); /* if the server dies, it is re-parented to us: not a stray */
	return 1;
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
	p->gen = 0;
	p->step = 0;
	if (!o || !o->argv || !o->argv[0]) {
		rn_error_set("rn_proc_start: empty argv");
		return RN_EINVALID;
	}
	const char *const *envp = o->envp ? o->envp : no_env;

	rn_shim_ctx c;
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
	c.children_file = rn_shim_children_file();
	c.late_start = p->async;
	c.sandbox = o->sandbox;
	c.sandbox_setup = sandbox_setup;
	c.sandbox_exec_prepare = sandbox_exec_prepare;

	int rc = RN_OK, sp[2];
	for (int attempt = 0;; attempt++) {
		if (pipe2(sp, O_CLOEXEC) < 0) {
			rc = rn_error_errno("rn_proc_start: pipe");
			goto done;
		}
		c.status_w = sp[1];
		int sent = o->sandbox || attempt > 0 ? 0 : server_request(p, &c);
		if (sent == 0)
			break; /* fork it here */
		close(sp[1]);
		if (sent == 1)
			goto started;
		if (sent == -1) {
			close(sp[0]);
			rc = RN_ERROR;
			goto done;
		}
		/* the server died with our request: if it forked the shim first, the shim holds the
		 * pipe, writes START once the command ran and kills the tree (its parent is gone) */
		char b;
		if (read_full(sp[0], &b, 1) == 0) {
			close(sp[0]);
			continue; /* nothing ran: start it here */
		}
		while (read_full(sp[0], &b, 1) == 1) { /* until the tree is gone */
		}
		close(sp[0]);
		rc = rn_error_set("rn_proc_start: the step fork server (runner-shim) died while starting the "
				  "step; its processes were killed");
		goto done;
	}

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
		 * reports that). A shim that died before its START byte has a report written for it
		 * by the fork server: keep its first byte. */
		char b;
		if (read_full(sp[0], &b, 1) == 1 && b != RN_SHIM_START_BYTE)
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
		syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
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
	/* a fork server that died (its shims killed their trees; orphans came back to us) */
	if (g_srv.state == SRV_STARTING || g_srv.state == SRV_UP) {
		int st;
		if (waitpid(g_srv.pid, &st, WNOHANG) == g_srv.pid) {
			g_srv.pid = -1;
			server_lost(0, "died");
		}
	}
	rn_shim_kill_strays(keep_child, NULL);
}

/* Tell the server that the step of p is over: its shim may take another one. The message is held
 * back and sent with the next request (server_flush_done): the server then wakes once for both,
 * not once per step for this alone. Until then the shim waits (the server forks another only if
 * a request finds none idle, and a request carries the DONEs before it). */
static void server_done(const rn_proc *p)
{
	if (g_srv.state != SRV_UP || p->gen != g_srv.gen || g_srv.owner != getpid())
		return;
	if (g_srv.ndone == g_srv.capdone) {
		g_srv.capdone = g_srv.capdone ? 2 * g_srv.capdone : 8;
		g_srv.done = rn_xreallocarray(g_srv.done, g_srv.capdone, sizeof(*g_srv.done));
	}
	struct rn_shimd_request *rq = &g_srv.done[g_srv.ndone++];
	memset(rq, 0, sizeof(*rq));
	rq->magic = RN_SHIMD_DONE;
	rq->pid = p->pid;
	rq->id = p->step;
}

/* A shim started by the fork server is the server's child, unless the server died: then it was
 * re-parented to us (the subreaper) and we reap it. */
static void reap_remote(rn_proc *p)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int w;
	do
		w = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG);
	while (w < 0 && errno == EINTR);
	if (w == 0 && si.si_pid == 0) /* ours now and still exiting */
		while (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED) < 0 && errno == EINTR) {
		}
	close(p->pidfd);
	p->pidfd = -1;
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
		reap_remote(p);
		shim_del(p->pid);
		p->reaped = 1; /* from here on it is not signalled for this step */
		p->wstatus = full && rep.magic == RN_SHIM_DIED_MAGIC ? rep.wstatus : -1;
		if (full && rep.magic == RN_SHIM_REPORT_MAGIC)
			server_done(p);
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
	rn_shim_kill_strays(keep_child, NULL);
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

void rn_proc_shutdown(void)
{
	if (g_srv.state == SRV_STARTING || g_srv.state == SRV_UP) {
		close(g_srv.sock); /* EOF: it kills what is left of its shims' trees, then exits */
		int st;
		while (g_srv.owner == getpid() && waitpid(g_srv.pid, &st, 0) < 0 && errno == EINTR) {
		}
	}
	free(g_srv.path);
	g_srv.path = NULL;
	free(g_srv.done);
	g_srv.done = NULL;
	g_srv.ndone = g_srv.capdone = 0;
	g_srv.sock = -1;
	g_srv.pid = -1;
	g_srv.failures = 0;
	g_srv.asked = 0;
	g_srv.why[0] = '\0';
	g_srv.state = SRV_UNTRIED;
}

pid_t rn_proc_server_pid(void)
{
	return g_srv.state == SRV_STARTING || g_srv.state == SRV_UP ? g_srv.pid : -1;
}

const char *rn_proc_server_info(void)
{
	if (g_srv.state == SRV_STARTING || g_srv.state == SRV_UP)
		snprintf(g_srv.info, sizeof(g_srv.info), "runner-shim %s (pid %d)", g_srv.path, (int)g_srv.pid);
	else if (g_srv.state == SRV_OFF)
		snprintf(g_srv.info, sizeof(g_srv.info), "fork (%s)", g_srv.why);
	else
		snprintf(g_srv.info, sizeof(g_srv.info), "runner-shim not started yet");
	return g_srv.info;
}
