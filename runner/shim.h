/* shim.h - the per-step supervisor ("shim") and the protocol of its fork server (runner-shim).
 *
 * This module is compiled into the runner library (proc.c forks a shim itself for sandboxed
 * steps and when the fork server is unavailable) and into the small `runner-shim` executable
 * (shimd.c: the fork server that proc.c asks for every other step). It uses libc only, and what
 * runs in a shim or a command child is async-signal-safe (raw syscalls, static or stack buffers).
 * See proc.h for the process layout and proc.c / shimd.c for the two sides of the protocol. */
#ifndef RN_SHIM_H
#define RN_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* enum rn_proc_fail of proc.h, repeated here so that runner-shim needs no runner header */
enum {
	RN_SHIM_FAIL_EXEC = 1,
	RN_SHIM_FAIL_CHDIR = 2,
	RN_SHIM_FAIL_SETUP = 3,
	RN_SHIM_FAIL_SANDBOX = 4
};

/* A sandbox hook (proc.c wraps sandbox.h's functions): 0 or -errno, *stage says where it failed. */
typedef int (*rn_shim_sandbox_fn)(const void *plan, int *stage);

/* Everything a shim needs, prepared before the fork (the shim works on its own copy). */
typedef struct rn_shim_ctx {
	pid_t parent;           /* who forks the shim: a shim whose parent is already gone starts nothing */
	const char *path;       /* program to execve, NULL if the PATH lookup failed */
	int path_errno;         /* errno of the failed lookup */
	char *const *argv;      /* the command's argv */
	char *const *sh_argv;   /* "/bin/sh" path argv[1..]: the ENOEXEC fallback, like execvp */
	char *const *envp;      /* the command's environment */
	const char *dir;        /* working directory or NULL */
	int in_fd, out_fd;      /* -1: /dev/null */
	int status_w;           /* write end of the status pipe */
	int children_file;      /* /proc/PID/task/TID/children exists (rn_shim_children_file) */
	int signals_clean;      /* every signal is blocked and the dispositions are already the shim's
	                         * (SIG_DFL, SIGINT/SIGHUP/SIGPIPE ignored): the fork server's case */
	int late_start;         /* the runner waits for the end only (an async start): the START
	                         * byte goes out with the report, in one write, and the shim holds
	                         * out_fd until then, so that the runner is woken once, at the end */
	uint32_t step_id;       /* a fork server's shim: signals queued with another si_value are
	                         * stale (meant for an earlier step) */
	const void *sandbox;    /* the sandbox plan, or NULL (then the hooks are not called) */
	rn_shim_sandbox_fn sandbox_setup;        /* in the shim, first thing (new namespaces) */
	rn_shim_sandbox_fn sandbox_exec_prepare; /* in the command child, right before execve */
} rn_shim_ctx;

/* The status pipe carries one START byte (once the command was exec'd or failed to; with
 * late_start, right before the report) and then one struct rn_shim_report (smaller than
 * PIPE_BUF: one atomic write). A shim that dies without writing it leaves EOF: the fork server
 * tells the runner how it died (RN_SHIMD_GONE). */
#define RN_SHIM_START_BYTE 'S'
#define RN_SHIM_REPORT_MAGIC 0x726e7072u /* "rnpr" */

struct rn_shim_report {
	uint32_t magic;
	int32_t wstatus;       /* wait status of the command, -1 if unknown */
	int32_t exec_errno;    /* errno of a failed start, else 0 */
	int32_t fail_stage;    /* RN_SHIM_FAIL_* */
	int32_t survivors;     /* tree processes found alive after the command ended */
	int32_t sandbox_stage; /* with RN_SHIM_FAIL_SANDBOX: the sandbox module's stage */
	int64_t utime_us, stime_us, maxrss_kb; /* RUSAGE_CHILDREN of the shim: the whole tree */
};

/* ---- the fork server protocol
 *
 * runner-shim --runner PID has an AF_UNIX stream socketpair with the runner on fd 3. Once set
 * up it sends a struct rn_shimd_hello, then one RN_SHIMD_NEW message for its first shim. The
 * server only forks shims, reaps them and kills the orphans of those that die; it is not on a
 * step's path:
 * - runner -> server: RN_SHIMD_SPAWN (value: how many shims) when the runner is about to run
 *   out of idle ones; no answer but the NEW messages.
 * - server -> runner: RN_SHIMD_NEW per shim forked: pid, base (the arena's address in the
 *   shim), with three fds attached: the runner's end of the shim's control socket, a memfd of
 *   its arena (RN_SHIMD_ARENA_SIZE bytes) and a pidfd; pid -1 and value = errno when the fork
 *   failed. RN_SHIMD_GONE when a shim ended: pid, value = its wait status; sent after the
 *   orphans of its tree (re-parented to the server, a subreaper) were killed.
 * - runner -> shim, per step: the runner lays the request out in the shim's arena (the shim
 *   context, its pointer arrays and strings; pointers as the shim sees them: base + offset) and
 *   sends a struct rn_shimd_handoff on the control socket with status_w, [out_fd], [in_fd]
 *   attached. The shim runs the step, writes its report on status_w and waits for the next
 *   hand-off. Signals for the step are sent with sigqueue semantics (SI_QUEUE, si_value = the
 *   step's id): the shim drops what was meant for an earlier step.
 * EOF from the runner on fd 3: every shim is told to kill its tree (SIGUSR1), and the server
 * exits once all are gone; a shim ends when its control socket reaches EOF. */
#define RN_SHIMD_MAGIC 0x726e7364u /* "rnsd" */
#define RN_SHIMD_VERSION 4
#define RN_SHIMD_FD 3
#define RN_SHIMD_MAX_REQUEST (4u << 20) /* bytes of strings of one request, and how many strings: */
#define RN_SHIMD_MAX_STRINGS 65536u     /* a larger step is forked by the runner (exec would refuse it) */
/* A request in an arena: the shim context, then argv, sh_argv and envp, then the strings. */
#define RN_SHIMD_CTX_SPACE ((sizeof(rn_shim_ctx) + 63) & ~(size_t)63)
#define RN_SHIMD_ARENA_SIZE \
	(RN_SHIMD_CTX_SPACE + (2 * (size_t)RN_SHIMD_MAX_STRINGS + 4) * sizeof(char *) + RN_SHIMD_MAX_REQUEST + 1)

enum { RN_SHIMD_SPAWN = 1, RN_SHIMD_NEW = 2, RN_SHIMD_GONE = 3 };

enum {
	RN_SHIMD_HAVE_OUT = 1 << 0, /* an out fd is attached after status_w */
	RN_SHIMD_HAVE_IN = 1 << 1   /* an in fd is attached after that */
};

struct rn_shimd_hello {
	uint32_t magic, version;
	uint32_t msg_size, report_size; /* sizeof of the structs, as built into runner-shim */
	uint32_t ctx_size, arena_size;
};

struct rn_shimd_msg {
	uint32_t magic;
	uint32_t kind;  /* RN_SHIMD_SPAWN, _NEW, _GONE */
	int32_t pid;    /* NEW, GONE: the shim */
	int32_t value;  /* SPAWN: how many; NEW: errno when pid is -1; GONE: wait status */
	uint64_t base;  /* NEW: the arena's address in the shim */
};

struct rn_shimd_handoff {
	uint32_t magic;
	uint32_t flags; /* RN_SHIMD_HAVE_* */
};

/* ---- the shim */

/* Run the shim in a freshly forked child: rn_shim_enter, the sandbox's setup, rn_shim_keep_fds
 * and rn_shim_run. Signals: SIGTERM = TERM (and CONT) to the tree, SIGUSR1 = kill it now (also
 * its PDEATHSIG). Never returns. */
_Noreturn void rn_shim_main(const rn_shim_ctx *c);
/* First thing in a new shim: dispositions (unless signals_clean), child subreaper,
 * PDEATHSIG(SIGUSR1) on the parent, and (check_parent) that the parent is still there.
 * 0, or -1: the shim must _exit without starting anything. */
int rn_shim_enter(pid_t parent, int signals_clean, int check_parent);
/* Close every fd but 0, 1, 2 and fds[0..n) (n <= 5; negative entries are ignored). */
void rn_shim_keep_fds(const int *fds, int n);
/* Make the private copies of the pages rn_shim_run writes, ahead of time (a shim forked before
 * its step is known: the fork server's spare). */
void rn_shim_warm(void);
/* The shim proper, once entered: start the command, supervise its tree until it is gone, write
 * the report to c->status_w and close it (in/out are closed once the command has them). Returns
 * 0 then, with no child left: a shim of the fork server can take another step (the caller must
 * first drain SIGTERM/SIGUSR1 that were meant for this one), also when the command could not be
 * started (the report says why). */
int rn_shim_run(const rn_shim_ctx *c);

/* Set every signal disposition to the shim's: SIG_DFL, SIGINT/SIGHUP/SIGPIPE ignored (also
 * glibc's internal real-time signals, which sigaction() refuses). Async-signal-safe. */
void rn_shim_reset_signals(void);

/* ---- process-tree helpers (single-threaded use: they share static scratch space) */

/* 1 if /proc/PID/task/TID/children exists on this kernel (probed once), else 0. */
int rn_shim_children_file(void);
/* The children of pid (of all its threads) into out[0..max); their count. */
size_t rn_shim_children(pid_t pid, pid_t *out, size_t max);
/* Parent and session of pid from /proc/PID/stat (either may be NULL). 0, or -1 if it is gone. */
int rn_shim_stat(pid_t pid, pid_t *ppid, pid_t *sid);
/* SIGKILL, with their descendants, and reap every child of the caller that keep() does not
 * claim and (unless any_session) that is not in the caller's session; repeats while that brings
 * orphans back (the caller is their subreaper). keep may be NULL. The fork server passes
 * any_session: its only children of its own are its shims (a command orphaned before its
 * setsid() is still in the server's session). */
void rn_shim_kill_strays(int (*keep)(pid_t pid, void *arg), void *arg, int any_session);

#endif
