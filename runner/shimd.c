/* shimd.c - runner-shim: the fork server that provides the runner's step shims (see shim.h for
 * the protocol and proc.h for the design).
 *
 * Why it exists: fork() of the runner (its libraries, its heap) costs 0.6 to 1.1 ms (its page
 * tables), several times the cost of forking a process that links libc only. The runner starts
 * this small program once, at its first unsandboxed steps, and takes its shims from here.
 *
 * It forks shims ahead of need, each with a control socket and a shared mapping (the arena, a
 * memfd) of its own, and hands both to the runner with a pidfd. A shim enters (subreaper,
 * PDEATHSIG, every other fd closed, its pages copied) and waits on its control socket. From
 * then on the runner talks to the shim directly: it lays each request out in the arena and
 * sends the step's fds; the shim starts the command at once, supervises the tree, writes its
 * report and waits for the next step. This server is not on a step's path: per step it does
 * nothing. It forks more shims when the runner asks (RN_SHIMD_SPAWN), reaps them, and reports
 * those that end (RN_SHIMD_GONE).
 *
 * What it guarantees:
 * - It dies with the runner: PR_SET_PDEATHSIG(SIGKILL), and it checks getppid() after setting it.
 *   Its shims have PR_SET_PDEATHSIG(SIGUSR1) on it, so when it dies every busy shim kills its
 *   tree. EOF on the runner's socket (the runner exited or exec'd) does the same, in order:
 *   every shim is told to kill its tree, and the server exits once they are all reaped (a shim
 *   ends when the runner's end of its control socket is closed).
 * - It is a child subreaper: the tree of a shim that was killed comes back here and is killed
 *   before the runner is told that the shim is gone (RN_SHIMD_GONE, with its wait status).
 * - It runs no handler: every signal is blocked for good, SIGCHLD is read from a signalfd;
 *   SIGINT/SIGTERM/SIGHUP sent to the runner's process group do nothing here (the runner decides
 *   what its steps get). The dispositions are set once so that shims need not reset them.
 *
 * Single-threaded, links libc only (plus shim.c). Memory: a few pages per shim; the arenas are
 * the runner's to fill and to give back. */
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

/* struct clone_args of linux/sched.h, version 0 (64 bytes) */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static pid_t *g_shims; /* our shims, alive (reaped ones are removed) */
static size_t g_nshims, g_capshims;
static int g_clone3 = 1; /* clone3(CLONE_PIDFD) works (else fork + pidfd_open) */

static ssize_t find(pid_t pid)
{
	for (size_t i = 0; i < g_nshims; i++)
		if (g_shims[i] == pid)
			return (ssize_t)i;
	return -1;
}

static int is_ours(pid_t pid, void *arg)
{
	(void)arg;
	return find(pid) >= 0;
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
		/* the control data is the kernel's only when something was received */
		for (struct cmsghdr *h = k > 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
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

/* Send a message to the runner with fds[0..nfds) attached. 0, or -1 (it is gone). */
static int send_msg(uint32_t kind, pid_t pid, int32_t value, uint64_t base, const int *fds, int nfds)
{
	struct rn_shimd_msg m = { RN_SHIMD_MAGIC, kind, pid, value, base };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &m, sizeof(m) };
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
		k = sendmsg(RN_SHIMD_FD, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k == (ssize_t)sizeof(m) ? 0 : -1; /* a few bytes on a stream socket: never partial */
}

/* ---- the shims */

/* In a shim: wait for a step and run it, again and again. EOF (the runner let it go or is
 * gone): exit. */
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
		struct rn_shimd_handoff h;
		int fds[3] = { -1, -1, -1 }, nfds = 0;
		if (recv_full(ctl, &h, sizeof(h), fds, &nfds) <= 0 || h.magic != RN_SHIMD_MAGIC || nfds < 1)
			_exit(0);
		rn_shim_ctx *c = (rn_shim_ctx *)(void *)arena; /* written by the runner */
		/* Signals still pending: a signal the runner queued for an earlier step (SI_QUEUE with
		 * another step's id) is dropped; anything else is this step's. A signalled step's
		 * shim is not reused (forksrv.c), so no pending signal of an earlier step can have
		 * absorbed one for this step (ordinary signals do not queue). A SIGUSR1 that is not
		 * the runner's is our PDEATHSIG: the server died, and this step is killed at once. */
		static const struct timespec zero = { 0, 0 };
		siginfo_t si;
		int term = 0, kill_now = 0;
		while (sigtimedwait(&stale, &si, &zero) > 0) {
			int mine = si.si_code != SI_QUEUE || (uint32_t)si.si_value.sival_int == c->step_id;
			term |= mine && si.si_signo == SIGTERM;
			kill_now |= mine && si.si_signo == SIGUSR1;
		}
		/* the runner died right after it sent this (its end is closed): start nothing; the
		 * server is gone: the step is killed as it starts */
		struct pollfd pf = { .fd = ctl, .events = 0 };
		if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR)))
			_exit(0);
		if (getppid() != server)
			kill_now = 1;
		if (term)
			kill(getpid(), SIGTERM);
		if (kill_now)
			kill(getpid(), SIGUSR1);
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

/* Fork a new shim and hand it to the runner (RN_SHIMD_NEW; pid -1 with errno if that failed).
 * 0, or -1 if the runner is gone. */
static int shim_new(void)
{
	int sv[2] = { -1, -1 }, mfd = -1, pidfd = -1, e = 0;
	char *arena = MAP_FAILED;
	pid_t pid = -1;
	if (g_nshims == g_capshims) {
		size_t cap = g_capshims ? 2 * g_capshims : 16;
		pid_t *ns = realloc(g_shims, cap * sizeof(*ns));
		if (!ns) {
			e = ENOMEM;
			goto fail;
		}
		g_shims = ns;
		g_capshims = cap;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (mfd = memfd_create("runner-shim-arena", MFD_CLOEXEC)) < 0 ||
	    ftruncate(mfd, (off_t)RN_SHIMD_ARENA_SIZE) < 0 ||
	    (arena = mmap(NULL, RN_SHIMD_ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED) {
		e = errno;
		goto fail;
	}
	pid_t self = getpid();
	pid = fork_pidfd(&pidfd);
	if (pid == 0)
		shim_loop(self, sv[1], arena);
	e = errno;
	munmap(arena, RN_SHIMD_ARENA_SIZE); /* the shim and the runner map it, not we */
	close(sv[1]);
	sv[1] = -1;
	if (pid < 0)
		goto fail;
	g_shims[g_nshims++] = pid;
	int fds[3] = { sv[0], mfd, pidfd };
	int rc = send_msg(RN_SHIMD_NEW, pid, 0, (uint64_t)(uintptr_t)arena, fds, 3);
	close(sv[0]); /* the runner's now: when it closes it, the shim ends */
	close(mfd);
	close(pidfd);
	return rc;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (mfd >= 0)
		close(mfd);
	return send_msg(RN_SHIMD_NEW, -1, e ? e : EAGAIN, 0, NULL, 0);
}

/* A child ended. One of our shims: its orphans (if it died with a tree) are killed, then the
 * runner is told. 1 if orphans may be about (the child was not one of our shims), else 0. */
static int child_exited(pid_t pid, int st)
{
	ssize_t i = find(pid);
	if (i < 0)
		return 1;
	g_shims[i] = g_shims[--g_nshims];
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		rn_shim_kill_strays(is_ours, NULL, 1);
	send_msg(RN_SHIMD_GONE, pid, st, 0, NULL, 0); /* the runner may be gone: no matter */
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
		rn_shim_kill_strays(is_ours, NULL, 1);
	return rc;
}

/* Serve one message of the runner. 1 done, 0 the runner closed the socket, -1 a broken message
 * (the runner and the server do not agree: stop). */
static int serve_one(void)
{
	struct rn_shimd_msg m;
	int fds[3] = { -1, -1, -1 }, nfds = 0;
	int got = recv_full(RN_SHIMD_FD, &m, sizeof(m), fds, &nfds);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (got <= 0)
		return got;
	if (m.magic != RN_SHIMD_MAGIC || m.kind != RN_SHIMD_SPAWN || m.value < 1 || m.value > 64 || nfds)
		return -1;
	for (int32_t i = 0; i < m.value; i++)
		if (shim_new() < 0)
			return 0;
	return 1;
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

	struct rn_shimd_hello h = { RN_SHIMD_MAGIC, RN_SHIMD_VERSION, sizeof(struct rn_shimd_msg),
				    sizeof(struct rn_shim_report), sizeof(rn_shim_ctx), RN_SHIMD_ARENA_SIZE };
	/* the hello, then the first shim (else the runner is gone already) */
	int up = write_all(RN_SHIMD_FD, &h, sizeof(h)) == 0 && shim_new() == 0;

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

	/* the runner is gone (or broke the protocol): every tree dies, then we go. A busy shim
	 * kills its tree and reports, an idle one ignores the signal; both end at EOF on their
	 * control socket, which the runner held. */
	close(RN_SHIMD_FD);
	for (size_t i = 0; i < g_nshims; i++)
		kill(g_shims[i], SIGUSR1);
	while (g_nshims > 0 && reap(1) == 0) {
	}
	rn_shim_kill_strays(NULL, NULL, 1);
	close(sfd);
	free(g_shims);
	return 0;
}
