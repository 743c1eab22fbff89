/* shimd.c - runner-shim: the fork server that provides the runner's step shims (see shim.h for
 * the protocol and proc.h for the design).
 *
 * Why it exists: the runner links some fifty shared libraries (libgit2, libcurl, OpenSSL, ...),
 * and fork() of such a process costs 0.6 to 1.1 ms (its page tables), several times the cost of
 * forking a process that links libc only. The runner starts this small program once, at its
 * first unsandboxed step, and sends it one request per step.
 *
 * Its shims live in a pool. Each was forked with a socketpair and a shared mapping (the arena)
 * of its own, has entered (subreaper, PDEATHSIG, every other fd closed, its pages copied), and
 * waits on the socketpair. A request is laid out in the arena of an idle shim (the shim context,
 * its pointer arrays and strings, at the same addresses in both processes), the step's fds are
 * passed to it, and it starts the command at once. When the step's tree is gone it writes its
 * report and waits again; the runner says when it has read the report (DONE), and from then on
 * the shim may take another step. So after the first steps no fork is left but the command's
 * own, and none is ever on the path from a request to the exec: when no shim is idle after a
 * hand-off, the next one is forked while the step starts.
 *
 * What it guarantees:
 * - It dies with the runner: PR_SET_PDEATHSIG(SIGKILL), and it checks getppid() after setting it.
 *   Its shims have PR_SET_PDEATHSIG(SIGUSR1) on it, so when it dies every shim kills its tree
 *   (an idle one sees EOF and exits). EOF on the runner's socket (the runner exited or exec'd)
 *   does the same, in order: every shim is told to kill its tree, and the server exits once they
 *   are all reaped.
 * - It is a child subreaper: the tree of a shim that was killed comes back here and is killed,
 *   before the report saying so (RN_SHIM_DIED_MAGIC) is written on the step's status pipe. It
 *   holds that pipe until the step is over (the shim reaped, or DONE).
 * - A shim takes a step only once it has no child left (rn_shim_run returns only then) and the
 *   runner has said DONE, i.e. will not signal it for the previous step any more; signals that
 *   were meant for that step and are still pending are dropped before the next one starts.
 * - It runs no handler: every signal is blocked for good, SIGCHLD is read from a signalfd;
 *   SIGINT/SIGTERM/SIGHUP sent to the runner's process group do nothing here (the runner decides
 *   what its steps get). The dispositions are set once so that shims need not reset them.
 *
 * Single-threaded, links libc only (plus shim.c). Memory: a few pages per shim, at most
 * POOL_MAX idle shims, and the arena pages a large request touched are given back. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#define POOL_MAX 16                 /* idle shims kept; more are let go when their step is over */
#define ARENA_KEEP (256u << 10)     /* arena bytes kept touched between steps */

/* struct clone_args of linux/sched.h, version 0 (64 bytes) */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* A request in memory: the shim context, then its pointer arrays, then the strings. */
#define CTX_SPACE ((sizeof(rn_shim_ctx) + 63) & ~(size_t)63)
#define ARENA_SIZE (CTX_SPACE + (2 * (size_t)RN_SHIMD_MAX_STRINGS + 4) * sizeof(char *) + RN_SHIMD_MAX_REQUEST + 1)

/* What the server sends a shim for a step (the step's fds attached). */
struct handoff {
	uint32_t magic;
	uint32_t flags; /* RN_SHIMD_HAVE_OUT / RN_SHIMD_HAVE_IN: which fds follow status_w */
};

enum { S_IDLE, S_BUSY, S_LEAVING };

/* A shim of ours. */
struct shim {
	pid_t pid;
	int state;     /* S_IDLE: waits for a step; S_BUSY: runs one (or ran it, until DONE);
	                * S_LEAVING: its socket was closed, it exits */
	int pidfd;     /* sent (duplicated) to the runner with each step */
	int ctl;       /* our end of its socketpair */
	char *arena;   /* ARENA_SIZE bytes shared with it */
	size_t used;   /* arena bytes the last request touched */
	int status_w;  /* S_BUSY: the step's status pipe, until the step is over */
	uint32_t id;   /* S_BUSY: the step's id */
	uint64_t idle_since; /* S_IDLE: when it became idle (a counter) */
};

static struct shim *g_shims;
static size_t g_nshims, g_capshims;
static uint32_t g_next_id = 1;
static uint64_t g_clock;           /* orders idle shims: the most recent one is used first */
static int g_fork_failures;        /* shims that died before their first step: after a few, stop */
static int g_clone3 = 1;           /* clone3(CLONE_PIDFD) works (else fork + pidfd_open) */

static struct shim *find(pid_t pid)
{
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i].pid == pid)
			return &g_shims[i];
	return NULL;
}

static int is_ours(pid_t pid, void *arg)
{
	(void)arg;
	return find(pid) != NULL;
}

static size_t count(int state)
{
	size_t n = 0;
	for (size_t i = 0; i < g_nshims; i++)
		n += g_shims[i].state == state;
	return n;
}

static void close_from(unsigned lo)
{
	if (syscall(SYS_close_range, lo, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = lo; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
		close((int)fd);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t k = write(fd, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

/* Receive exactly len bytes from fd; the fds attached to them go to fds[*nfds..3) (extra ones
 * are closed). 1 done, 0 EOF before the first byte, -1 error or EOF in the middle.
 * Async-signal-safe (shims use it). */
static int recv_full(int fd, void *buf, size_t len, int *fds, int *nfds)
{
	size_t have = 0;
	while (have < len) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(3 * sizeof(int))];
		} cm;
		struct iovec iov = { (char *)buf + have, len - have };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
				     .msg_controllen = sizeof(cm.b) };
		ssize_t k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (k < 0 && errno == EINTR)
			continue;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < n; j++) {
				int got;
				memcpy(&got, CMSG_DATA(h) + j * sizeof(int), sizeof(got));
				if (*nfds < 3)
					fds[(*nfds)++] = got;
				else
					close(got);
			}
		}
		if (k <= 0 || (mh.msg_flags & MSG_CTRUNC))
			return k == 0 && have == 0 ? 0 : -1;
		have += (size_t)k;
	}
	return 1;
}

/* Send len bytes with fds[0..nfds) attached. 0, or -1. */
static int send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { (void *)(uintptr_t)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > 0) {
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(h), fds, (size_t)nfds * sizeof(int));
	}
	ssize_t k;
	do
		k = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k == (ssize_t)len ? 0 : -1; /* a few bytes on a stream socket: never partial */
}

static int send_reply(pid_t pid, int err, uint32_t id, int pidfd)
{
	struct rn_shimd_reply r = { RN_SHIMD_MAGIC, pid, err, id };
	return send_fds(RN_SHIMD_FD, &r, sizeof(r), &pidfd, pidfd >= 0 ? 1 : 0);
}

/* ---- the shims */

/* In a shim: wait for a step and run it, again and again. EOF (the server is gone or lets it
 * go): exit. */
static _Noreturn void shim_loop(pid_t server, int ctl, char *arena)
{
	if (rn_shim_enter(server, 1, 1) < 0)
		_exit(126);
	rn_shim_keep_fds(&ctl, 1);
	rn_shim_warm();
	sigset_t stale;
	sigemptyset(&stale);
	sigaddset(&stale, SIGTERM);
	sigaddset(&stale, SIGUSR1);
	sigaddset(&stale, SIGCHLD);
	for (;;) {
		struct handoff h;
		int fds[3] = { -1, -1, -1 }, nfds = 0;
		if (recv_full(ctl, &h, sizeof(h), fds, &nfds) <= 0 || h.magic != RN_SHIMD_MAGIC || nfds < 1)
			_exit(0);
		/* what the runner sent for the previous step: it said DONE before this one came */
		static const struct timespec zero = { 0, 0 };
		while (sigtimedwait(&stale, NULL, &zero) > 0) {
		}
		rn_shim_ctx *c = (rn_shim_ctx *)(void *)arena; /* written by the server, at the same address */
		c->status_w = fds[0];
		c->out_fd = h.flags & RN_SHIMD_HAVE_OUT ? fds[1] : -1;
		c->in_fd = h.flags & RN_SHIMD_HAVE_IN ? fds[nfds - 1] : -1;
		rn_shim_run(c);
	}
}

/* Fork a shim with a pidfd for it: clone3(CLONE_PIDFD) gets both at once; where clone3 is
 * filtered out (some container profiles), fork + pidfd_open (safe: the child cannot be reaped
 * before we call it). 0 in the child; in the parent the pid with *pidfd set, or -1. */
static pid_t fork_pidfd(int *pidfd)
{
	*pidfd = -1;
	if (g_clone3) {
		int fd = -1;
		struct clone3_args a;
		memset(&a, 0, sizeof(a));
		a.flags = CLONE_PIDFD;
		a.pidfd = (uint64_t)(uintptr_t)&fd;
		a.exit_signal = SIGCHLD;
		long pid = syscall(SYS_clone3, &a, sizeof(a));
		if (pid >= 0) {
			*pidfd = fd;
			return (pid_t)pid;
		}
		if (errno != ENOSYS && errno != EPERM)
			return -1;
		g_clone3 = 0;
	}
	pid_t pid = fork();
	if (pid <= 0)
		return pid;
	*pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (*pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL); /* it has not got far: it waits for its first step */
		errno = e;
		return -1;
	}
	return pid;
}

/* A new idle shim. It, or NULL with errno. */
static struct shim *shim_new(void)
{
	if (g_nshims == g_capshims) {
		size_t cap = g_capshims ? 2 * g_capshims : 16;
		struct shim *ns = realloc(g_shims, cap * sizeof(*ns));
		if (!ns)
			return NULL;
		g_shims = ns;
		g_capshims = cap;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	char *arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		errno = e;
		return NULL;
	}
	pid_t self = getpid();
	int pidfd;
	pid_t pid = fork_pidfd(&pidfd);
	if (pid == 0)
		shim_loop(self, sv[1], arena);
	int e = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		munmap(arena, ARENA_SIZE);
		errno = e;
		return NULL;
	}
	struct shim *s = &g_shims[g_nshims++];
	*s = (struct shim){ .pid = pid, .state = S_IDLE, .pidfd = pidfd, .ctl = sv[0], .arena = arena,
			    .used = 0, .status_w = -1, .id = 0, .idle_since = ++g_clock };
	return s;
}

/* Forget a shim that was reaped. */
static void shim_forget(struct shim *s)
{
	if (s->status_w >= 0)
		close(s->status_w);
	if (s->ctl >= 0)
		close(s->ctl);
	if (s->pidfd >= 0)
		close(s->pidfd);
	munmap(s->arena, ARENA_SIZE);
	*s = g_shims[--g_nshims];
}

/* Let an idle shim go: EOF on its socket ends it (it is reaped later). */
static void shim_dismiss(struct shim *s)
{
	close(s->ctl);
	s->ctl = -1;
	s->state = S_LEAVING;
}

/* The runner has read the report of step id of shim pid (DONE). */
static void step_over(pid_t pid, uint32_t id)
{
	struct shim *s = find(pid);
	if (!s || s->state != S_BUSY || s->id != id)
		return; /* it died meanwhile (and was reaped): nothing to do */
	close(s->status_w);
	s->status_w = -1;
	s->state = S_IDLE;
	s->idle_since = ++g_clock;
	if (s->used > ARENA_KEEP) /* give back what a large request touched */
		madvise(s->arena + ARENA_KEEP, s->used - ARENA_KEEP, MADV_REMOVE);
	s->used = 0;
	if (count(S_IDLE) > POOL_MAX)
		shim_dismiss(s);
}

/* A child ended. A busy shim that did not exit normally left no report and maybe a tree: the
 * tree (re-parented to us) is killed first, then a report saying how the shim died is written
 * for it. 1 if orphans may be about (the child was not one of our shims), else 0. */
static int child_exited(pid_t pid, int st)
{
	struct shim *s = find(pid);
	if (!s)
		return 1;
	if (s->state == S_IDLE && s->id == 0)
		g_fork_failures++; /* died before its first step */
	if (s->state == S_BUSY && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		rn_shim_kill_strays(is_ours, NULL);
		struct rn_shim_report r;
		memset(&r, 0, sizeof(r));
		r.magic = RN_SHIM_DIED_MAGIC;
		r.wstatus = st;
		write_all(s->status_w, &r, sizeof(r)); /* fits the pipe: at most the START byte is in it */
	}
	shim_forget(s);
	return 0;
}

/* Reap every child that has ended, without blocking (block: wait for at least one first).
 * -1 if we have no children at all, else 0. */
static int reap(int block)
{
	int strays = 0, rc = 0;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, __WALL | (block ? 0 : WNOHANG));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == ECHILD)
			rc = -1;
		if (w <= 0)
			break;
		strays |= child_exited(w, st);
		block = 0;
	}
	if (strays)
		rn_shim_kill_strays(is_ours, NULL);
	return rc;
}

/* An idle shim for the next step: the one that became idle last (its pages are warm). */
static struct shim *idle_shim(void)
{
	struct shim *best = NULL;
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i].state == S_IDLE && (!best || g_shims[i].idle_since > best->idle_since))
			best = &g_shims[i];
	return best;
}

/* ---- requests */

/* Lay the request out in mem (CTX_SPACE, arrays, then the strings already at strs): the shim
 * context, argv, sh_argv ("/bin/sh" path argv[1..]) and envp. */
static rn_shim_ctx *build_ctx(char *mem, char *strs, const struct rn_shimd_request *rq)
{
	char **argv = (char **)(void *)(mem + CTX_SPACE), **sh_argv = argv + rq->argc + 1,
	     **envp = sh_argv + rq->argc + 2;
	rn_shim_ctx *c = (rn_shim_ctx *)(void *)mem;
	memset(c, 0, sizeof(*c));
	char *s = strs;
	if (rq->flags & RN_SHIMD_HAVE_PATH) {
		c->path = s;
		s += strlen(s) + 1;
	}
	if (rq->flags & RN_SHIMD_HAVE_DIR) {
		c->dir = s;
		s += strlen(s) + 1;
	}
	for (uint32_t i = 0; i < rq->argc; i++) {
		argv[i] = s;
		s += strlen(s) + 1;
	}
	argv[rq->argc] = NULL;
	for (uint32_t i = 0; i < rq->envc; i++) {
		envp[i] = s;
		s += strlen(s) + 1;
	}
	envp[rq->envc] = NULL;
	sh_argv[0] = (char *)"/bin/sh";
	sh_argv[1] = c->path ? (char *)c->path : argv[0];
	for (uint32_t i = 1; i < rq->argc; i++)
		sh_argv[i + 1] = argv[i];
	sh_argv[rq->argc + 1] = NULL;
	c->parent = getpid();
	c->path_errno = rq->path_errno;
	c->argv = argv;
	c->sh_argv = sh_argv;
	c->envp = envp;
	c->children_file = rn_shim_children_file();
	c->signals_clean = 1;
	c->late_start = !!(rq->flags & RN_SHIMD_LATE_START);
	return c;
}

/* Serve one message of the runner. 1 done, 0 the runner closed the socket, -1 a broken message
 * (the runner and the server do not agree: stop). */
static int serve_one(void)
{
	struct rn_shimd_request rq;
	int fds[3] = { -1, -1, -1 }, nfds = 0, rc = -1;
	int got = recv_full(RN_SHIMD_FD, &rq, sizeof(rq), fds, &nfds);
	if (got <= 0) {
		rc = got;
		goto done;
	}
	if (rq.magic == RN_SHIMD_DONE && nfds == 0) {
		step_over(rq.pid, rq.id);
		return 1;
	}
	int want = 1 + !!(rq.flags & RN_SHIMD_HAVE_OUT) + !!(rq.flags & RN_SHIMD_HAVE_IN);
	if (rq.magic != RN_SHIMD_MAGIC || rq.len > RN_SHIMD_MAX_REQUEST || rq.argc < 1 ||
	    (uint64_t)rq.argc + rq.envc > RN_SHIMD_MAX_STRINGS || nfds != want)
		goto done;
	struct shim *s = idle_shim();
	if (!s && !(s = shim_new())) {
		/* the strings must still be read to stay in step with the runner */
		char sink[4096];
		for (uint32_t left = rq.len; left > 0;) {
			uint32_t n = left < sizeof(sink) ? left : (uint32_t)sizeof(sink);
			if (recv_full(RN_SHIMD_FD, sink, n, fds, &nfds) <= 0)
				goto done;
			left -= n;
		}
		rc = send_reply(-1, errno ? errno : EAGAIN, 0, -1) < 0 ? 0 : 1;
		goto done;
	}
	size_t off = CTX_SPACE + (2 * (size_t)rq.argc + rq.envc + 4) * sizeof(char *);
	char *strs = s->arena + off;
	if (rq.len && recv_full(RN_SHIMD_FD, strs, rq.len, fds, &nfds) <= 0)
		goto done;
	if (nfds != want)
		goto done;
	/* the strings: exactly as many NUL-terminated ones as the header says */
	strs[rq.len] = '\0';
	size_t nstr = !!(rq.flags & RN_SHIMD_HAVE_PATH) + !!(rq.flags & RN_SHIMD_HAVE_DIR) + rq.argc + rq.envc;
	size_t n0 = 0;
	for (size_t i = 0; i < rq.len; i++)
		n0 += strs[i] == '\0';
	if (n0 != nstr || (rq.len && strs[rq.len - 1] != '\0'))
		goto done;
	build_ctx(s->arena, strs, &rq);
	s->used = off + rq.len + 1;

	struct handoff h = { RN_SHIMD_MAGIC, rq.flags & (RN_SHIMD_HAVE_OUT | RN_SHIMD_HAVE_IN) };
	while (send_fds(s->ctl, &h, sizeof(h), fds, nfds) < 0) {
		/* it died waiting (reaped later as a stray); the request is in its arena: take a new
		 * shim and lay it out again there */
		char *old = s->arena;
		s->state = S_LEAVING;
		struct shim *ns = shim_new();
		if (!ns) {
			rc = send_reply(-1, errno ? errno : EAGAIN, 0, -1) < 0 ? 0 : 1;
			goto done;
		}
		s = ns;
		memcpy(s->arena + off, old + off, rq.len + 1);
		build_ctx(s->arena, s->arena + off, &rq);
		s->used = off + rq.len + 1;
	}
	s->state = S_BUSY;
	s->id = g_next_id++;
	if (g_next_id == 0)
		g_next_id = 1;
	s->status_w = fds[0];
	fds[0] = -1; /* kept until the step is over */
	rc = send_reply(s->pid, 0, s->id, s->pidfd) < 0 ? 0 : 1;
done:
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* the next step must not wait for a fork: have an idle shim ready (not on this step's path:
	 * the reply is out, the step starting) */
	if (rc == 1 && !idle_shim() && g_fork_failures < 3)
		shim_new();
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--runner") != 0) {
		fprintf(stderr, "runner-shim: the step fork server of runner, started by it (not for direct use)\n");
		return 2;
	}
	pid_t runner = (pid_t)strtol(argv[2], NULL, 10);
	/* fds the runner leaked (opened without O_CLOEXEC) would be held open here and in every shim */
	close_from(RN_SHIMD_FD + 1);
	int type = 0;
	socklen_t tl = sizeof(type);
	if (getsockopt(RN_SHIMD_FD, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
		fprintf(stderr, "runner-shim: fd %d is not the runner's socket\n", RN_SHIMD_FD);
		return 2;
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != runner)
		return 3; /* the runner is gone already (or is not our parent) */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return 3;
	sigset_t all, chld;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL); /* for good: the runner spawned us with all blocked */
	rn_shim_reset_signals(); /* once for all shims (they inherit them) */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (sfd < 0 || self < 0)
		return 4; /* no signalfd or no pidfds: the runner forks its shims itself */
	close(self);
	rn_shim_children_file();

	shim_new(); /* ready for the first step */
	struct rn_shimd_hello h = { RN_SHIMD_MAGIC, RN_SHIMD_VERSION, sizeof(struct rn_shimd_request),
				    sizeof(struct rn_shim_report) };
	int up = write_all(RN_SHIMD_FD, &h, sizeof(h)) == 0; /* else the runner is gone already */

	while (up) {
		struct pollfd pf[2] = { { .fd = RN_SHIMD_FD, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			}
			reap(0);
		}
		if (pf[0].revents && serve_one() <= 0)
			break;
	}

	/* the runner is gone (or broke the protocol): every tree dies, then we go */
	close(RN_SHIMD_FD);
	for (size_t i = 0; i < g_nshims; i++) {
		if (g_shims[i].state == S_BUSY) /* it kills its tree and reports, then sees EOF */
			kill(g_shims[i].pid, SIGUSR1);
		if (g_shims[i].ctl >= 0)
			shim_dismiss(&g_shims[i]);
	}
	while (g_nshims > 0 && reap(1) == 0) {
	}
	rn_shim_kill_strays(NULL, NULL);
	close(sfd);
	free(g_shims);
	return 0;
}
