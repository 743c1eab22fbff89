/* shimd.c - runner-shim: the fork server that starts the runner's step shims (see shim.h for the
 * protocol and proc.h for the design).
 *
 * Why it exists: the runner links some fifty shared libraries (libgit2, libcurl, OpenSSL, ...),
 * and fork() of such a process costs 0.6 to 1.1 ms (its page tables), several times the cost of
 * forking a process that links libc only. The runner starts this small program once, at its
 * first unsandboxed step, and sends it one request per step; the fork is made here.
 *
 * The spare: the server keeps one shim forked in advance, already entered (subreaper,
 * PDEATHSIG, fds closed, its pages copied) and blocked on a socketpair of its own. A request is
 * written into a shared mapping the spare inherited (the shim context, its pointer arrays and
 * strings, at the same addresses in both processes), the step's fds are passed to it, and it
 * runs the shim from there; the server answers the runner and forks the next spare while the
 * step runs. So no fork is on the path from the request to the exec. Without a spare (it died,
 * or could not be made) a shim is forked for the request, as it would be anyway.
 *
 * What it guarantees:
 * - It dies with the runner: PR_SET_PDEATHSIG(SIGKILL), and it checks getppid() after setting it.
 *   The shims it forks have PR_SET_PDEATHSIG(SIGUSR1) on it, so when it dies every shim kills
 *   its tree. EOF on the socket (the runner closed it, exited or exec'd) does the same, in order:
 *   every shim is told to kill its tree, and the server exits once they are all reaped.
 * - It is a child subreaper: the tree of a shim that was killed comes back here and is killed,
 *   before the report saying so (RN_SHIM_DIED_MAGIC) is written on the shim's status pipe.
 * - It holds each live shim's status pipe until it has reaped the shim, so EOF on the runner's
 *   end still means "the shim is gone" (a report normally arrives before).
 * - It runs no handler: every signal is blocked for good, SIGCHLD is read from a signalfd;
 *   SIGINT/SIGTERM/SIGHUP sent to the runner's process group do nothing here (the runner decides
 *   what its steps get). The dispositions are set once so that shims need not reset them.
 *
 * Single-threaded, links libc only (plus shim.c), and holds no per-step memory after a step. */
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

/* struct clone_args of linux/sched.h, version 0 (64 bytes) */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* A live shim: the server's copy of its status pipe stays open until the shim is reaped. */
struct live {
	pid_t pid;
	int status_w;
};

/* A request in memory: the shim context, then its pointer arrays, then the strings. */
#define CTX_SPACE ((sizeof(rn_shim_ctx) + 63) & ~(size_t)63)
#define ARENA_SIZE (CTX_SPACE + (2 * (size_t)RN_SHIMD_MAX_STRINGS + 4) * sizeof(char *) + RN_SHIMD_MAX_REQUEST + 1)

/* What the server sends the spare (the step's fds attached). */
struct handoff {
	uint32_t magic;
	uint32_t flags; /* RN_SHIMD_HAVE_OUT / RN_SHIMD_HAVE_IN: which fds follow status_w */
};

/* The shim forked in advance. */
static struct {
	pid_t pid;    /* -1: none */
	int pidfd;
	int ctl;      /* our end of its socketpair */
	char *arena;  /* ARENA_SIZE bytes shared with it */
} g_spare = { -1, -1, -1, NULL };
static int g_spare_deaths; /* spares that died waiting: after a few, no more spares */

static struct live *g_live;
static size_t g_nlive, g_caplive;
static char *g_buf; /* a request's memory when there is no spare */
static size_t g_capbuf;
static int g_clone3 = 1; /* clone3(CLONE_PIDFD) works (else fork + pidfd_open) */

static int is_ours(pid_t pid, void *arg)
{
	(void)arg;
	if (pid == g_spare.pid)
		return 1;
	for (size_t i = 0; i < g_nlive; i++)
		if (g_live[i].pid == pid)
			return 1;
	return 0;
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

/* A child ended. A shim that did not exit normally left no report and maybe a tree: the tree
 * (re-parented to us) is killed first, then a report saying how the shim died is written for it.
 * 1 if orphans may be about (the child was not a shim), else 0. */
static void spare_drop(void);

static int child_exited(pid_t pid, int st)
{
	if (pid == g_spare.pid) { /* it died waiting (a stray kill): the next request forks */
		g_spare.pid = -1;
		spare_drop();
		g_spare_deaths++;
		return 0;
	}
	size_t i;
	for (i = 0; i < g_nlive && g_live[i].pid != pid; i++) {
	}
	if (i == g_nlive)
		return 1;
	struct live l = g_live[i];
	g_live[i] = g_live[--g_nlive];
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		rn_shim_kill_strays(is_ours, NULL);
		struct rn_shim_report r;
		memset(&r, 0, sizeof(r));
		r.magic = RN_SHIM_DIED_MAGIC;
		r.wstatus = st;
		write_all(l.status_w, &r, sizeof(r)); /* fits the pipe: at most the START byte is in it */
	}
	close(l.status_w);
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

/* Receive exactly len bytes from fd; the fds attached to them go to fds[*nfds..3) (extra ones
 * are closed). 1 done, 0 EOF before the first byte, -1 error or EOF in the middle.
 * Async-signal-safe (the spare uses it). */
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

static int send_reply(pid_t pid, int err, int pidfd)
{
	struct rn_shimd_reply r = { RN_SHIMD_MAGIC, pid, err, 0 };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { &r, sizeof(r) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (pidfd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &pidfd, sizeof(int));
	}
	ssize_t k;
	do
		k = sendmsg(RN_SHIMD_FD, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k == (ssize_t)sizeof(r) ? 0 : -1; /* 16 bytes on a stream socket: never partial */
}

/* Fork a shim with a pidfd for it: clone3(CLONE_PIDFD) gets both at once; where clone3 is
 * filtered out (some container profiles), fork + pidfd_open (safe: the child cannot be reaped
 * before we call it). 0 in the child; in the parent the pid with *pidfd set, or -1. */
static pid_t fork_shim(int *pidfd)
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
		kill(pid, SIGKILL); /* it has not got far: PDEATHSIG is set, the command maybe not started */
		errno = e;
		return -1;
	}
	return pid;
}

/* ---- the spare */

/* In the spare: wait for a step, then be its shim. EOF (the server is gone or stops): exit. */
static _Noreturn void spare_main(pid_t server, int ctl, char *arena)
{
	if (rn_shim_enter(server, 1, 1) < 0)
		_exit(126);
	rn_shim_keep_fds(&ctl, 1);
	rn_shim_warm();
	struct handoff h;
	int fds[3] = { -1, -1, -1 }, nfds = 0;
	if (recv_full(ctl, &h, sizeof(h), fds, &nfds) <= 0 || h.magic != RN_SHIMD_MAGIC || nfds < 1)
		_exit(0);
	close(ctl);
	rn_shim_ctx *c = (rn_shim_ctx *)(void *)arena; /* written by the server, at the same address */
	c->status_w = fds[0];
	c->out_fd = h.flags & RN_SHIMD_HAVE_OUT ? fds[1] : -1;
	c->in_fd = h.flags & RN_SHIMD_HAVE_IN ? fds[nfds - 1] : -1;
	rn_shim_run(c);
}

static void spare_drop(void)
{
	if (g_spare.pid > 0)
		kill(g_spare.pid, SIGKILL); /* reaped as a stray */
	if (g_spare.ctl >= 0)
		close(g_spare.ctl);
	if (g_spare.pidfd >= 0)
		close(g_spare.pidfd);
	if (g_spare.arena)
		munmap(g_spare.arena, ARENA_SIZE);
	g_spare.pid = -1;
	g_spare.pidfd = -1;
	g_spare.ctl = -1;
	g_spare.arena = NULL;
}

static void spare_fork(void)
{
	if (g_spare.pid > 0 || g_spare_deaths >= 3)
		return;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	char *arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	pid_t self = getpid();
	int pidfd;
	pid_t pid = fork_shim(&pidfd);
	if (pid == 0)
		spare_main(self, sv[1], arena);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		munmap(arena, ARENA_SIZE);
		return;
	}
	g_spare.pid = pid;
	g_spare.pidfd = pidfd;
	g_spare.ctl = sv[0];
	g_spare.arena = arena;
}

/* Pass the step's fds to the spare: it starts the command. 0, or -1 if the spare is gone. */
static int spare_handoff(const int *fds, int nfds, uint32_t flags)
{
	struct handoff h = { RN_SHIMD_MAGIC, flags & (RN_SHIMD_HAVE_OUT | RN_SHIMD_HAVE_IN) };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	ssize_t k;
	do
		k = sendmsg(g_spare.ctl, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k == (ssize_t)sizeof(h) ? 0 : -1;
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
	return c;
}

/* Serve one request. 1 done, 0 the runner closed the socket, -1 a broken request (the runner
 * and the server do not agree: stop). */
static int serve_one(void)
{
	struct rn_shimd_request rq;
	int fds[3] = { -1, -1, -1 }, nfds = 0, rc = -1;
	int got = recv_full(RN_SHIMD_FD, &rq, sizeof(rq), fds, &nfds);
	if (got <= 0) {
		rc = got;
		goto done;
	}
	int want = 1 + !!(rq.flags & RN_SHIMD_HAVE_OUT) + !!(rq.flags & RN_SHIMD_HAVE_IN);
	if (rq.magic != RN_SHIMD_MAGIC || rq.len > RN_SHIMD_MAX_REQUEST || rq.argc < 1 ||
	    (uint64_t)rq.argc + rq.envc > RN_SHIMD_MAX_STRINGS || nfds != want)
		goto done;
	size_t off = CTX_SPACE + (2 * (size_t)rq.argc + rq.envc + 4) * sizeof(char *), need = off + rq.len + 1;
	char *mem = g_spare.arena;
	if (!mem) {
		if (need > g_capbuf) {
			char *nb = realloc(g_buf, need);
			if (!nb)
				goto done;
			g_buf = nb;
			g_capbuf = need;
		}
		mem = g_buf;
	}
	if (rq.len && recv_full(RN_SHIMD_FD, mem + off, rq.len, fds, &nfds) <= 0)
		goto done;
	if (nfds != want)
		goto done;
	/* the strings: exactly as many NUL-terminated ones as the header says */
	char *strs = mem + off;
	strs[rq.len] = '\0';
	size_t nstr = !!(rq.flags & RN_SHIMD_HAVE_PATH) + !!(rq.flags & RN_SHIMD_HAVE_DIR) + rq.argc + rq.envc;
	size_t count = 0;
	for (size_t i = 0; i < rq.len; i++)
		count += strs[i] == '\0';
	if (count != nstr || (rq.len && strs[rq.len - 1] != '\0'))
		goto done;
	rn_shim_ctx *c = build_ctx(mem, strs, &rq);
	c->status_w = fds[0];
	c->out_fd = rq.flags & RN_SHIMD_HAVE_OUT ? fds[1] : -1;
	c->in_fd = rq.flags & RN_SHIMD_HAVE_IN ? fds[nfds - 1] : -1;

	if (g_nlive == g_caplive) {
		size_t cap = g_caplive ? 2 * g_caplive : 16;
		struct live *nl = realloc(g_live, cap * sizeof(*nl));
		if (!nl) {
			rc = send_reply(-1, ENOMEM, -1) < 0 ? 0 : 1;
			goto done;
		}
		g_live = nl;
		g_caplive = cap;
	}
	pid_t pid = -1;
	int pidfd = -1;
	if (g_spare.pid > 0 && spare_handoff(fds, nfds, rq.flags) == 0) {
		pid = g_spare.pid;
		pidfd = g_spare.pidfd;
		g_spare.pid = -1; /* a live shim now */
		g_spare.pidfd = -1;
	} else {
		/* no spare (or it is gone): fork a shim (it inherits mem, the spare's arena or ours) */
		pid = fork_shim(&pidfd);
		if (pid == 0)
			rn_shim_main(c);
		if (pid < 0) {
			int e = errno;
			spare_drop();
			rc = send_reply(-1, e, -1) < 0 ? 0 : 1;
			goto done;
		}
	}
	spare_drop(); /* what is left of the spare we used (or of a dead one) */
	g_live[g_nlive++] = (struct live){ pid, fds[0] };
	fds[0] = -1; /* kept until the shim is reaped */
	rc = send_reply(pid, 0, pidfd) < 0 ? 0 : 1;
	close(pidfd);
done:
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (rc == 1)
		spare_fork(); /* while the step starts */
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

	spare_fork();
	struct rn_shimd_hello h = { RN_SHIMD_MAGIC, RN_SHIMD_VERSION, sizeof(struct rn_shimd_request),
				    sizeof(struct rn_shim_report) };
	if (write_all(RN_SHIMD_FD, &h, sizeof(h)) < 0)
		return 3;

	for (;;) {
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
	pid_t spare = g_spare.pid;
	g_spare.pid = -1; /* EOF on its socket ends it */
	spare_drop();
	g_spare.pid = spare;
	for (size_t i = 0; i < g_nlive; i++)
		kill(g_live[i].pid, SIGUSR1);
	while ((g_nlive > 0 || g_spare.pid > 0) && reap(1) == 0) {
	}
	rn_shim_kill_strays(NULL, NULL);
	close(sfd);
	free(g_live);
	free(g_buf);
	return 0;
}
