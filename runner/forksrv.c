/* forksrv.c - the runner's side of the step fork server (see forksrv.h, shim.h for the protocol).
 *
 * The server (runner-shim) forks shims ahead of need and hands each to us: the control socket
 * of the shim, its arena (a memfd, mapped here too) and a pidfd. They form our pool. A step is
 * handed to an idle shim directly: the request is laid out in its arena and the step's fds are
 * sent on its control socket; the shim starts the command at once. Nothing is waited for, and
 * the server is not woken: per step the runner makes one sendmsg, and the shim wakes once.
 * When the pool runs dry the server is asked for another shim (RN_SHIMD_SPAWN) while the step
 * that took the last one starts; its answer is read when a shim is next needed.
 *
 * A shim that dies (killed by its step, the OOM killer, ...) leaves EOF on the step's status
 * pipe and no report; its tree is re-parented to the server, which kills it and then says so
 * (RN_SHIMD_GONE, with the shim's wait status). rn_forksrv_finish waits for that message: a
 * step is never over before its tree is gone. If the server dies, its busy shims kill their
 * trees (PDEATHSIG), report, and are re-parented to us: we close every control socket (the
 * shims end), reap them, and start a new server at the next step. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "forksrv.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
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
#define POOL_MAX 16               /* idle shims kept; more are let go when their step is over */
#define ARENA_KEEP (256u << 10)   /* arena bytes kept touched between steps */
#define HANDOFF_TRIES 3           /* shims found dead when handed a step: after these, the step
                                   * is forked by the caller */

extern char **environ;

/* A shim of the server, ours to hand steps to. */
struct pshim {
	pid_t pid;
	int pidfd;
	int ctl;       /* our end of its control socket; -1 once let go (it ends at EOF) */
	char *arena;   /* RN_SHIMD_ARENA_SIZE bytes shared with it, or NULL once let go */
	uint64_t base; /* the arena's address in the shim */
	size_t used;   /* arena bytes the last request touched */
	int busy;      /* runs a step (until rn_forksrv_finish) */
	int signalled; /* its step was signalled: not reused (a signal still pending could absorb
	                * one meant for the next step: ordinary signals do not queue) */
	int orphan;    /* busy when its server was lost: reaped by us when its step is over */
	int gone;      /* the server said it ended, with wstatus */
	int wstatus;
};

/* UNTRIED -> (second unsandboxed step: spawned, the step is forked by the caller) STARTING ->
 * (next step: its hello read) UP; or UNTRIED -> (rn_forksrv_prestart) SPAWNING (the keeper
 * thread spawns it; its pid is not known yet) -> STARTING at the next call of this module. It
 * dies: UNTRIED again (the next step spawns another), or OFF after SERVER_MAX_FAILURES; OFF: no
 * server. A run of one step never starts it: its start-up (an exec, the dynamic loader, a fork)
 * would cost that run more than the one fork it saves. */
enum { SRV_UNTRIED, SRV_SPAWNING, SRV_STARTING, SRV_UP, SRV_OFF };

static struct {
	int state;
	int sock;        /* our end of the socketpair (STARTING, UP) */
	pid_t pid;       /* runner-shim (STARTING, UP) */
	int asked;       /* unsandboxed steps started (up to 2) */
	int failures;    /* servers that died or would not start */
	int pending;     /* shims asked for (or promised) whose NEW message is not read yet */
	int spawn_errno;   /* the server's last fork of a shim failed with it (0: none) */
	uint32_t next_id;  /* the next step's id (signals carry it) */
	char *path;      /* the runner-shim in use or last tried */
	char why[256];   /* SRV_OFF: why steps are forked locally */
	char info[PATH_MAX + 64];
	struct pshim *pool;
	size_t npool, cappool;
} g_srv = { .state = SRV_UNTRIED, .sock = -1, .pid = -1, .next_id = 1 };

/* Set in the child of a fork() (pthread_atfork): what it inherited of the server is not its. */
static volatile sig_atomic_t g_forked;

static void mark_forked(void)
{
	g_forked = 1;
}

static void watch_forks(void)
{
	pthread_atfork(NULL, NULL, mark_forked);
}

static int live(void)
{
	return g_srv.state == SRV_STARTING || g_srv.state == SRV_UP;
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

/* ---- the keeper thread
 *
 * posix_spawn suspends the calling thread until the child has exec'd (vfork semantics): up to a
 * millisecond on a VM. rn_forksrv_prestart has it done by a thread of its own, so the run goes
 * on reading its workflow and repository meanwhile. The server's PR_SET_PDEATHSIG fires when the
 * *thread* that spawned it ends, so that thread never ends: it waits for the next spawn request,
 * with every signal blocked, for as long as the process lives. */

struct spawn_req {
	const char *path; /* g_srv.path: not changed while a request is out */
	int fd;           /* the server's end of the socketpair: the keeper closes it */
	pid_t runner;
};

struct spawn_res {
	pid_t pid; /* or -1 */
	int err;   /* posix_spawn's error */
};

static struct {
	int req_w, res_r; /* our ends; -1 until the keeper runs */
	int req_r, res_w; /* the keeper's ends */
	pid_t owner;      /* the process the keeper belongs to (a fork has no keeper) */
} g_keeper = { -1, -1, -1, -1, -1 };

static int spawn_server(const char *path, int fd, pid_t runner, pid_t *pid);

static void *keeper_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct spawn_req rq;
		if (rn_read_full(g_keeper.req_r, &rq, sizeof(rq)) != sizeof(rq))
			for (;;) /* cannot happen (nobody closes req_w); it must not end either */
				pause();
		struct spawn_res r = { -1, 0 };
		r.err = spawn_server(rq.path, rq.fd, rq.runner, &r.pid);
		close(rq.fd);
		rn_write_all(g_keeper.res_w, &r, sizeof(r));
	}
	return NULL;
}

/* Start the keeper (once per process). 0, or -1 (then the caller spawns the server itself). */
static int keeper_start(void)
{
	if (g_keeper.owner == getpid())
		return 0;
	if (g_keeper.req_w >= 0) { /* a fork's copies: the keeper is its parent's */
		close(g_keeper.req_w);
		close(g_keeper.res_r);
		close(g_keeper.req_r);
		close(g_keeper.res_w);
	}
	int req[2], res[2];
	if (pipe2(req, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(res, O_CLOEXEC) < 0) {
		close(req[0]);
		close(req[1]);
		return -1;
	}
	g_keeper.req_r = req[0];
	g_keeper.req_w = req[1];
	g_keeper.res_r = res[0];
	g_keeper.res_w = res[1];
	/* no signal of the process may land in it (the engine reads them from a signalfd) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 * 1024);
	pthread_t t;
	int rc = pthread_create(&t, &at, keeper_main, NULL);
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		close(req[0]);
		close(req[1]);
		close(res[0]);
		close(res[1]);
		g_keeper.req_w = g_keeper.res_r = g_keeper.req_r = g_keeper.res_w = -1;
		return -1;
	}
	g_keeper.owner = getpid();
	return 0;
}

static void server_off(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A spawn handed to the keeper: wait for its result (it comes as soon as the server has exec'd).
 * Afterwards the state is STARTING, or OFF. */
static void settle(void)
{
	if (g_srv.state != SRV_SPAWNING)
		return;
	struct spawn_res r = { -1, EIO };
	int got = rn_read_full(g_keeper.res_r, &r, sizeof(r)) == sizeof(r);
	if (!got || r.pid <= 0) {
		close(g_srv.sock);
		g_srv.sock = -1;
		server_off("%s: %s", g_srv.path, strerror(got && r.err ? r.err : EIO));
		return;
	}
	g_srv.pid = r.pid;
	g_srv.state = SRV_STARTING;
}

/* ---- the pool */

static struct pshim *pool_find(pid_t pid)
{
	for (size_t i = 0; i < g_srv.npool; i++)
		if (g_srv.pool[i].pid == pid)
			return &g_srv.pool[i];
	return NULL;
}

/* The entry of a step's shim: by its pidfd (unique while open; a pid could have been reused). */
static struct pshim *pool_find_fd(int pidfd)
{
	for (size_t i = 0; i < g_srv.npool; i++)
		if (g_srv.pool[i].pidfd == pidfd)
			return &g_srv.pool[i];
	return NULL;
}

/* Let the shim go: EOF on its control socket ends it (the server, or we after the server's
 * death, reap it). */
static void pool_release(struct pshim *s)
{
	if (s->ctl >= 0)
		close(s->ctl);
	s->ctl = -1;
	if (s->arena)
		munmap(s->arena, RN_SHIMD_ARENA_SIZE);
	s->arena = NULL;
}

/* Forget an entry altogether (released first). */
static void pool_drop(struct pshim *s)
{
	pool_release(s);
	if (s->pidfd >= 0)
		close(s->pidfd);
	*s = g_srv.pool[--g_srv.npool];
}

static size_t pool_idle(void)
{
	size_t n = 0;
	for (size_t i = 0; i < g_srv.npool; i++)
		n += !g_srv.pool[i].busy;
	return n;
}

/* The idle shim that became idle last (its pages are warm): the last idle one in the array. */
static struct pshim *pool_take(void)
{
	for (size_t i = g_srv.npool; i-- > 0;)
		if (!g_srv.pool[i].busy)
			return &g_srv.pool[i];
	return NULL;
}

/* ---- losing the server */

/* 1 if pid is a runner-shim process: its command name is the basename of path (truncated as
 * the kernel does). */
static int is_runner_shim(pid_t pid, const char *path)
{
	char buf[256];
	if (rn_read_proc_file(pid, "stat", buf, sizeof(buf)) <= 0)
		return 0;
	char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return 0;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = (size_t)(close_paren - open_paren - 1), want = strnlen(base, 15);
	return len == want && memcmp(open_paren + 1, base, len) == 0;
}

/* The fork server died: its children came to us (the subreaper). Shims whose step is running are
 * reaped by rn_forksrv_finish; the others were let go (their control sockets closed): reap them
 * as they exit. */
static void reap_server_orphans(void)
{
	pid_t kids[512], sid = getsid(0), ksid;
	size_t n = rn_shim_children(getpid(), kids, RN_ARRAY_LEN(kids));
	for (size_t i = 0; i < n; i++) {
		if (rn_forksrv_keeps(kids[i]) || rn_shim_stat(kids[i], NULL, &ksid) < 0 || ksid != sid ||
		    !is_runner_shim(kids[i], g_srv.path ? g_srv.path : "runner-shim"))
			continue;
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR) {
		}
	}
}

/* The server is gone or broke the protocol: it is made sure of (SIGKILL) and reaped, its idle
 * shims are let go and reaped, its busy ones are orphans (their steps go on; rn_forksrv_finish
 * lets them go and reaps them); it is started again at the next step unless that happened too
 * often. */
static void server_lost(const char *what)
{
	if (g_srv.sock >= 0)
		close(g_srv.sock);
	g_srv.sock = -1;
	g_srv.pending = 0;
	for (size_t i = g_srv.npool; i-- > 0;) {
		struct pshim *s = &g_srv.pool[i];
		if (s->busy) { /* its step goes on; its socket is closed once the step is finished */
			if (s->arena)
				munmap(s->arena, RN_SHIMD_ARENA_SIZE);
			s->arena = NULL;
			s->orphan = 1;
		} else {
			pool_drop(s);
		}
	}
	if (g_srv.pid > 0) {
		/* not waited for while it lives: its exit would wait for its busy shims */
		int st;
		pid_t w;
		do
			w = waitpid(g_srv.pid, &st, WNOHANG);
		while (w < 0 && errno == EINTR);
		if (w == 0) /* still running (it broke the protocol, or is on its way out) */
			kill(g_srv.pid, SIGKILL), waitpid(g_srv.pid, &st, 0);
		g_srv.pid = -1;
	}
	reap_server_orphans();
	if (++g_srv.failures >= SERVER_MAX_FAILURES)
		server_off("%s: %s (%d times)", g_srv.path ? g_srv.path : "runner-shim", what, g_srv.failures);
	else
		g_srv.state = SRV_UNTRIED;
}

/* In the child of a fork of the process that owns a server: drop our copies of its socket and
 * shims (not ours; nothing is sent, and a keeper's spawn result is not ours to read). Every
 * entry point calls it first. */
static void server_forget_inherited(void)
{
	if (!g_forked)
		return;
	g_forked = 0;
	if (g_srv.sock >= 0)
		close(g_srv.sock);
	while (g_srv.npool > 0)
		pool_drop(&g_srv.pool[g_srv.npool - 1]);
	g_srv.sock = -1;
	g_srv.pid = -1;
	g_srv.pending = 0;
	if (g_srv.state != SRV_OFF)
		g_srv.state = SRV_UNTRIED;
}

/* ---- talking to the server */

/* Read one message of the server (block: wait for it). 1 handled, 0 none there, -1 the server
 * was lost (EOF, or a message that makes no sense). */
static int server_recv(int block)
{
	struct rn_shimd_msg m;
	int fds[3] = { -1, -1, -1 }, nfds = 0;
	size_t got = 0;
	while (got < sizeof(m)) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(3 * sizeof(int))];
		} cm;
		struct iovec iov = { (char *)&m + got, sizeof(m) - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
				     .msg_controllen = sizeof(cm.b) };
		ssize_t k = recvmsg(g_srv.sock, &mh, MSG_CMSG_CLOEXEC | (block || got ? 0 : MSG_DONTWAIT));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && got == 0 && !block && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		/* the control data is the kernel's only when something was received */
		for (struct cmsghdr *h = k > 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < n; j++) {
				int fd;
				memcpy(&fd, CMSG_DATA(h) + j * sizeof(int), sizeof(fd));
				if (nfds < 3)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	int ok = got == sizeof(m) && m.magic == RN_SHIMD_MAGIC;
	if (ok && m.kind == RN_SHIMD_NEW && m.pid > 0 && nfds == 3) {
		void *arena = mmap(NULL, RN_SHIMD_ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
		close(fds[1]);
		if (g_srv.pending > 0)
			g_srv.pending--;
		g_srv.spawn_errno = 0;
		if (arena == MAP_FAILED) {
			close(fds[0]); /* the shim ends; the server reaps it */
			close(fds[2]);
			return 1;
		}
		rn_grow(&g_srv.pool, &g_srv.cappool, g_srv.npool + 1, sizeof(*g_srv.pool));
		g_srv.pool[g_srv.npool++] = (struct pshim){ .pid = m.pid, .pidfd = fds[2], .ctl = fds[0],
							    .arena = arena, .base = m.base };
		return 1;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (ok && m.kind == RN_SHIMD_NEW && m.pid <= 0) { /* its fork failed */
		if (g_srv.pending > 0)
			g_srv.pending--;
		g_srv.spawn_errno = m.value ? m.value : EAGAIN;
		return 1;
	}
	if (ok && m.kind == RN_SHIMD_GONE && nfds == 0) {
		for (size_t i = 0; i < g_srv.npool; i++) {
			struct pshim *s = &g_srv.pool[i];
			if (s->pid != m.pid || s->gone || s->orphan)
				continue;
			if (!s->busy) {
				pool_drop(s); /* it died idle */
			} else {
				s->gone = 1;
				s->wstatus = m.value;
			}
			break;
		}
		return 1;
	}
	server_lost("lost");
	return -1;
}

/* Ask the server for another shim (no answer awaited). 0, or -1 with the server lost. */
static int server_spawn_one(void)
{
	struct rn_shimd_msg m = { RN_SHIMD_MAGIC, RN_SHIMD_SPAWN, 0, 1, 0 };
	ssize_t k;
	do
		k = send(g_srv.sock, &m, sizeof(m), MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k != (ssize_t)sizeof(m)) {
		server_lost("lost");
		return -1;
	}
	g_srv.pending++;
	return 0;
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

/* posix_spawn runner-shim at path with fd as its RN_SHIMD_FD, every signal blocked and set to
 * its default, stdin and stdout /dev/null, the environment envp. 0 with *pid, or an errno. */
static int spawn_server_env(const char *path, int fd, pid_t runner, char *const *envp, pid_t *pid)
{
	char pidarg[24];
	snprintf(pidarg, sizeof(pidarg), "%d", (int)runner);
	char *argv[] = { (char *)(uintptr_t)path, (char *)"--runner", pidarg, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t all;
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	int rc = posix_spawn_file_actions_adddup2(&fa, fd, RN_SHIMD_FD);
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
	if (!rc)
		rc = posix_spawn(pid, path, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return rc;
}

static char **g_spawn_env; /* the environment a keeper's spawn uses: a copy of environ's pointers */

static int spawn_server(const char *path, int fd, pid_t runner, pid_t *pid)
{
	return spawn_server_env(path, fd, runner, g_spawn_env, pid);
}

/* Start runner-shim without waiting for it: the step that starts it is forked by the caller,
 * the next one reads its hello. keeper: the keeper thread spawns it (rn_forksrv_prestart), and
 * this thread does not wait for even that. 0, or -1 with the server off. */
static int server_spawn(int keeper)
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
		if (d < 0) {
			close(sv[0]);
			server_off("fcntl: %s", strerror(errno));
			return -1;
		}
	}
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, watch_forks);
	g_srv.sock = sv[0];
	g_srv.pid = -1;
	g_srv.pending = 0;
	if (keeper && keeper_start() == 0) {
		size_t n = 0;
		while (environ[n])
			n++;
		free(g_spawn_env);
		g_spawn_env = rn_xcalloc(n + 1, sizeof(*g_spawn_env));
		memcpy(g_spawn_env, environ, n * sizeof(*g_spawn_env));
		struct spawn_req rq = { g_srv.path, sv[1], getpid() };
		if (rn_write_all(g_keeper.req_w, &rq, sizeof(rq)) == 0) {
			g_srv.state = SRV_SPAWNING; /* settle() collects the result */
			return 0;
		}
	}
	pid_t pid = -1;
	int rc = spawn_server_env(g_srv.path, sv[1], getpid(), environ, &pid);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		g_srv.sock = -1;
		server_off("%s: %s", g_srv.path, strerror(rc));
		return -1;
	}
	g_srv.pid = pid;
	g_srv.state = SRV_STARTING;
	return 0;
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
	size_t got = 0;
	while (ready > 0 && got < sizeof(h)) {
		ssize_t k = read(g_srv.sock, (char *)&h + got, sizeof(h) - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got != sizeof(h) || h.magic != RN_SHIMD_MAGIC || h.version != RN_SHIMD_VERSION ||
	    h.msg_size != sizeof(struct rn_shimd_msg) || h.report_size != sizeof(struct rn_shim_report) ||
	    h.ctx_size != sizeof(rn_shim_ctx) || h.arena_size != RN_SHIMD_ARENA_SIZE) {
		/* not ours (another build), or it could not set up (no pidfds): for good */
		kill(g_srv.pid, SIGKILL);
		server_lost("no valid answer");
		server_off("%s: %s", g_srv.path,
			   got == sizeof(h) ? "another version of runner-shim" : "it did not start (no pidfd support?)");
		return -1;
	}
	g_srv.state = SRV_UP;
	g_srv.pending = 1; /* its first shim comes next */
	return 0;
}

void rn_forksrv_prestart(void)
{
	server_forget_inherited();
	if (g_srv.state == SRV_UNTRIED) {
		g_srv.asked = 2;
		server_spawn(1);
	}
}

/* ---- handing a step to a shim */

/* Copy s with its NUL into the arena at *off; its address in the shim. */
static char *put_string(const struct pshim *s, size_t *off, const char *str)
{
	size_t n = strlen(str) + 1;
	memcpy(s->arena + *off, str, n);
	char *remote = (char *)(uintptr_t)(s->base + *off);
	*off += n;
	return remote;
}

/* Lay the request out in the arena of s: the shim context, argv, sh_argv ("/bin/sh" path
 * argv[1..]: the ENOEXEC fallback) and envp, the strings after them; every pointer as the shim
 * sees it. The bytes of the arena it used. */
static size_t lay_out(struct pshim *s, const rn_shim_ctx *c, size_t argc, size_t envc, uint32_t id)
{
	char **argv = (char **)(void *)(s->arena + RN_SHIMD_CTX_SPACE), **sh_argv = argv + argc + 1,
	     **envp = sh_argv + argc + 2;
	size_t off = RN_SHIMD_CTX_SPACE + (2 * argc + envc + 4) * sizeof(char *);
	uint64_t arrays = s->base + RN_SHIMD_CTX_SPACE;
	rn_shim_ctx *r = (rn_shim_ctx *)(void *)s->arena;
	memset(r, 0, sizeof(*r));
	r->parent = g_srv.pid;
	r->path = c->path ? put_string(s, &off, c->path) : NULL;
	r->path_errno = c->path_errno;
	r->dir = c->dir ? put_string(s, &off, c->dir) : NULL;
	for (size_t i = 0; i < argc; i++)
		argv[i] = put_string(s, &off, c->argv[i]);
	argv[argc] = NULL;
	for (size_t i = 0; i < envc; i++)
		envp[i] = put_string(s, &off, c->envp[i]);
	envp[envc] = NULL;
	sh_argv[0] = put_string(s, &off, "/bin/sh");
	sh_argv[1] = r->path ? (char *)r->path : argv[0];
	for (size_t i = 1; i < argc; i++)
		sh_argv[i + 1] = argv[i];
	sh_argv[argc + 1] = NULL;
	r->argv = (char *const *)(uintptr_t)arrays;
	r->sh_argv = (char *const *)(uintptr_t)(arrays + (argc + 1) * sizeof(char *));
	r->envp = (char *const *)(uintptr_t)(arrays + (2 * argc + 3) * sizeof(char *));
	r->children_file = c->children_file;
	r->signals_clean = 1;
	r->late_start = c->late_start;
	r->step_id = id;
	r->status_w = r->in_fd = r->out_fd = -1; /* the shim sets them from the fds it receives */
	return off;
}

/* Send the hand-off with the step's fds. 0, or -1 (the shim is gone). */
static int send_handoff(struct pshim *s, const rn_shim_ctx *c)
{
	struct rn_shimd_handoff h = { RN_SHIMD_MAGIC, 0 };
	int fds[3], nfds = 0;
	fds[nfds++] = c->status_w;
	if (c->out_fd >= 0) {
		h.flags |= RN_SHIMD_HAVE_OUT;
		fds[nfds++] = c->out_fd;
	}
	if (c->in_fd >= 0) {
		h.flags |= RN_SHIMD_HAVE_IN;
		fds[nfds++] = c->in_fd;
	}
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int)) };
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(ch), fds, (size_t)nfds * sizeof(int));
	ssize_t k;
	do
		k = sendmsg(s->ctl, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k == (ssize_t)sizeof(h) ? 0 : -1; /* a few bytes on a stream socket: never partial */
}

int rn_forksrv_start(rn_proc *p, const rn_shim_ctx *c)
{
	server_forget_inherited();
	settle();
	if (g_srv.state == SRV_UNTRIED) {
		/* its start-up (an exec, its first shim's fork) would delay this step: the caller forks
		 * this one */
		if (g_srv.asked < 2)
			g_srv.asked++;
		if (g_srv.asked >= 2)
			server_spawn(0);
		return 0;
	}
	if (g_srv.state == SRV_STARTING && server_hello() < 0)
		return 0;
	if (g_srv.state != SRV_UP)
		return 0;
	/* a server that died since the last step (its SIGCHLD not handled yet): its idle shims would
	 * kill a step at once (their PDEATHSIG); this one is forked here, the next ones get a new
	 * server. Asked of the process (our child), not of its socket: a shim it has just forked
	 * holds a copy of that until it has closed its inherited fds. */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)g_srv.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == g_srv.pid) {
		server_lost("died");
		return 0;
	}

	size_t len = 8 + (c->path ? strlen(c->path) + 1 : 0) + (c->dir ? strlen(c->dir) + 1 : 0);
	size_t argc = 0, envc = 0;
	for (; c->argv[argc]; argc++)
		len += strlen(c->argv[argc]) + 1;
	for (; c->envp[envc]; envc++)
		len += strlen(c->envp[envc]) + 1;
	if (len > RN_SHIMD_MAX_REQUEST || argc + envc > RN_SHIMD_MAX_STRINGS)
		return 0; /* exec would refuse it anyway: let the local path say so */

	for (int tries = 0;;) {
		struct pshim *s = pool_take();
		if (!s) {
			if (g_srv.pending == 0) {
				if (g_srv.spawn_errno) { /* it could not fork one: this step is forked here
				                          * (which says why if it fails too); the next asks again */
					g_srv.spawn_errno = 0;
					return 0;
				}
				if (server_spawn_one() < 0)
					return 0;
			}
			if (server_recv(1) < 0)
				return 0;
			continue;
		}
		/* the next step must not wait for a fork: when this takes the last idle shim, the
		 * server forks another while this step starts. Asked first, so that a server found
		 * dead now is not one whose shim has just been handed a step. */
		if (g_srv.pending == 0 && pool_idle() == 1) {
			g_srv.spawn_errno = 0;
			if (server_spawn_one() < 0)
				return 0;
		}
		uint32_t id = g_srv.next_id++;
		if (g_srv.next_id == 0)
			g_srv.next_id = 1;
		s->used = lay_out(s, c, argc, envc, id);
		if (send_handoff(s, c) < 0) {
			/* it died idle (the server's message saying so is not read yet) */
			pool_drop(s);
			if (++tries >= HANDOFF_TRIES)
				return 0;
			continue;
		}
		s->busy = 1;
		s->gone = 0;
		s->signalled = 0;
		p->pid = s->pid;
		p->pidfd = s->pidfd;
		p->step = id;
		return 1;
	}
}

/* ---- the end of a step */

/* Reap a shim that is (or was) our child: the server died and it was re-parented to us. Its
 * wait status, or -1 if it was not ours (the server reaped it). */
static int reap_orphan(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int w;
	do
		w = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
	while (w < 0 && errno == EINTR);
	if (w < 0 || si.si_pid == 0)
		return -1;
	if (si.si_code == CLD_EXITED)
		return (si.si_status & 0xff) << 8;
	return si.si_status & 0x7f; /* killed (CLD_DUMPED: the core flag is not kept) */
}

int rn_forksrv_finish(rn_proc *p, int reported)
{
	int key = p->pidfd, ws = -1;
	p->pidfd = -1; /* the pool's: closed with its entry */
	server_forget_inherited();
	struct pshim *s = key >= 0 ? pool_find_fd(key) : NULL;
	/* it died: the server says how, once the orphans of its tree are dead */
	while (!reported && s && !s->gone && !s->orphan && live()) {
		if (server_recv(1) < 0)
			break; /* the server is lost too: s is an orphan now */
		s = pool_find_fd(key); /* the pool may have moved */
	}
	s = pool_find_fd(key);
	if (!s)
		return -1;
	if (reported && !s->orphan && !s->gone && !s->signalled && live()) {
		s->busy = 0;
		if (s->used > ARENA_KEEP) /* give back what a large request touched */
			madvise(s->arena + ARENA_KEEP, s->used - ARENA_KEEP, MADV_REMOVE);
		s->used = 0;
		if (pool_idle() > POOL_MAX)
			pool_drop(s);
		return -1;
	}
	if (s->gone) {
		ws = reported ? -1 : s->wstatus;
	} else if (s->orphan) {
		pool_release(s); /* a reported one exits at EOF on its control socket */
		ws = reap_orphan(s->pidfd);
	}
	pool_drop(s);
	return ws;
}

void rn_forksrv_signal(const rn_proc *p, int sig)
{
	server_forget_inherited();
	struct pshim *s = pool_find_fd(p->pidfd);
	if (s)
		s->signalled = 1;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = (int)p->step;
	syscall(SYS_pidfd_send_signal, p->pidfd, sig, &si, 0);
}

int rn_forksrv_keeps(pid_t pid)
{
	server_forget_inherited();
	if (pid <= 0)
		return 0;
	if ((g_srv.state == SRV_STARTING || g_srv.state == SRV_UP) && pid == g_srv.pid)
		return 1;
	struct pshim *s = pool_find(pid);
	return s && s->busy;
}

void rn_forksrv_check(void)
{
	server_forget_inherited();
	settle();
	/* a fork server that died (its shims killed their trees; orphans came back to us) */
	if (live()) {
		int st;
		if (waitpid(g_srv.pid, &st, WNOHANG) == g_srv.pid) {
			g_srv.pid = -1;
			server_lost("died");
		}
	}
}

void rn_forksrv_shutdown(void)
{
	server_forget_inherited();
	settle();
	if (live()) {
		for (size_t i = g_srv.npool; i-- > 0;) {
			if (g_srv.pool[i].busy) {
				pool_release(&g_srv.pool[i]);
				g_srv.pool[i].orphan = 1;
			} else {
				pool_drop(&g_srv.pool[i]);
			}
		}
		close(g_srv.sock); /* EOF: it kills what is left of its shims' trees, then exits */
		int st;
		while (waitpid(g_srv.pid, &st, 0) < 0 && errno == EINTR) {
		}
	}
	free(g_srv.path);
	g_srv.path = NULL;
	g_srv.sock = -1;
	g_srv.pid = -1;
	g_srv.pending = 0;
	g_srv.failures = 0;
	g_srv.asked = 0;
	g_srv.why[0] = '\0';
	g_srv.state = SRV_UNTRIED;
	if (g_srv.npool == 0) {
		free(g_srv.pool);
		g_srv.pool = NULL;
		g_srv.cappool = 0;
	}
}

pid_t rn_forksrv_pid(void)
{
	server_forget_inherited();
	settle();
	return g_srv.state == SRV_STARTING || g_srv.state == SRV_UP ? g_srv.pid : -1;
}

const char *rn_forksrv_info(void)
{
	server_forget_inherited();
	settle();
	if (g_srv.state == SRV_STARTING || g_srv.state == SRV_UP)
		snprintf(g_srv.info, sizeof(g_srv.info), "runner-shim %s (pid %d)", g_srv.path, (int)g_srv.pid);
	else if (g_srv.state == SRV_OFF)
		snprintf(g_srv.info, sizeof(g_srv.info), "fork (%s)", g_srv.why);
	else
		snprintf(g_srv.info, sizeof(g_srv.info), "runner-shim not started yet");
	return g_srv.info;
}
