/* proc.h - run one step as a contained process tree (modelled on git's run-command API).
 *
 * Every step runs under a small supervisor (the "shim", shim.h) that makes itself a child
 * subreaper, then forks the step's command in a new session. Every orphan of the step's tree
 * (background jobs, double forks, setsid() daemons) is re-parented to the shim, so the shim can
 * always find and kill the whole tree. When the command exits the shim SIGKILLs whatever of the
 * tree is left, reaps it, writes a report (status, rusage of the whole tree) to the status pipe
 * and exits. The shim only makes async-signal-safe calls (it never returns to the caller's code).
 *
 * Who forks the shim:
 * - Steps without a sandbox: the fork server `runner-shim` (shimd.c), a small libc-only program
 *   started once per process (posix_spawn, an AF_UNIX socketpair) at the second such step, which
 *   is forked here while it starts, or earlier by rn_proc_prestart. It forks shims ahead of need
 *   and hands them to the runner (forksrv.c keeps them as a pool); each takes one step after
 *   another, handed to it directly (the request laid out in memory it shares with the runner,
 *   the fds sent on its socket). It is found next to the running executable (/proc/self/exe),
 *   or at $RUNNER_SHIM when that is set. The runner signals a shim through its pidfd (no
 *   pid-reuse race: the server, not the runner, is the shim's parent and reaper). See
 *   docs/fork-server.md.
 * - Sandboxed steps (the shim must be created in new namespaces: rn_sandbox_fork), and every step
 *   when runner-shim is missing, is not the one of this build, pidfds are unsupported, or it
 *   failed three times: the runner forks the shim itself, as before. Nothing is logged per step.
 *
 * Signals to the shim: SIGTERM = forward SIGTERM to every process of the tree; SIGUSR1 = SIGKILL
 * the whole tree now. The shim has PR_SET_PDEATHSIG(SIGUSR1) on its parent. The fork server has
 * PR_SET_PDEATHSIG(SIGKILL) on the runner. So if the runner dies, even by SIGKILL, every tree dies.
 *
 * What the caller must know:
 * - Call everything from one thread (the module keeps a static registry of live shims and the
 *   fork server's state), and from a thread that outlives the steps: PDEATHSIG fires when the
 *   *thread* that forked the shim or spawned the fork server ends.
 * - SIGCHLD must not be SIG_IGN in the runner (shims and the fork server are reaped by this
 *   module). Blocking it and reading it from a signalfd is fine; any other mask is fine too
 *   (saved and restored around fork; the shim and the command never run the runner's handlers).
 * - out_fd/in_fd are duplicated into the command: close your copy of the pipe's write end right
 *   after rn_proc_start, so EOF on the read end means "every process of the tree is gone".
 * - rn_proc_reap_strays only touches children of the runner that are not live shims AND are not
 *   in the runner's session (every process of a step tree is in another session, because the
 *   command calls setsid()). Children the runner starts itself in its own session (the fork
 *   server among them) are left alone, alive or zombie; a child started elsewhere that calls
 *   setsid() would be taken for a stray.
 * - With the fork server, the process tree is runner > runner-shim > shim > command. Shims are
 *   kept: one whose step is over (its tree gone, its report read by rn_proc_finish) waits for
 *   another step, so p->pid may be the pid of an earlier step's shim.
 * - maxrss_kb is at least the RSS of the shim's parent at fork time (the kernel counts the
 *   pre-exec image of the forked command into its peak RSS): small through the fork server, the
 *   runner's RSS when the runner forks the shim. */
#ifndef RN_PROC_H
#define RN_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct rn_sandbox_plan;

typedef struct rn_proc_opts {
	const char *const *argv; /* argv[0] is a path, or a name looked up in envp's PATH */
	const char *const *envp; /* the whole environment, NULL-terminated; NULL: empty (never the
	                          * runner's own environ). Its PATH (else /bin:/usr/bin) resolves argv[0] */
	const char *dir;         /* working directory (NULL: inherit) */
	int out_fd;              /* becomes the command's stdout AND stderr; -1: /dev/null */
	int in_fd;               /* becomes its stdin; -1: /dev/null */
	const struct rn_sandbox_plan *sandbox; /* from rn_sandbox_plan_new (sandbox.h), or NULL */
	int async_start;         /* return without waiting for the exec: status_fd first becomes
	                          * readable with a start marker, so an event loop calls
	                          * rn_proc_ready() each time it is readable (see below) */
} rn_proc_opts;

typedef struct rn_proc {
	pid_t pid;     /* the shim's pid (the command is its child) */
	int status_fd; /* read end of the report pipe: readable (report or EOF) when the tree is gone */
	int reaped;    /* internal: the shim was reaped (or, from the fork server, finished) */
	int wstatus;   /* internal: the shim's wait status */
	int pidfd;     /* internal: the shim's pidfd when the fork server started it, else -1 */
	int lead;      /* internal: a report byte rn_proc_start read ahead, -2 while the start
	                * marker of an async start is unread, else -1 */
	int async;     /* internal: started with async_start */
	uint32_t step; /* internal: the step's id at the fork server (signals carry it) */
} rn_proc;

typedef struct rn_proc_result {
	int status;       /* exit code, or 128+signal when killed by a signal; -1 if unknown */
	int signal;       /* the signal that killed the command, else 0 */
	int exec_errno;   /* non-zero if the command could not be started (then status is 127) */
	double user_s;    /* CPU time of the whole tree, user */
	double sys_s;     /* CPU time of the whole tree, system */
	long maxrss_kb;   /* peak RSS of the largest process of the tree */
	int survivors;    /* processes of the tree that were still alive when the command exited
	                   * (when it was killed: besides the command); counted up to 1024 */
	int fail_stage;   /* with exec_errno: which step of starting failed (enum rn_proc_fail) */
	int sandbox_stage; /* with RN_PROC_FAIL_SANDBOX: for rn_sandbox_describe() */
} rn_proc_result;

/* rn_proc_result.fail_stage: what exec_errno is about. */
enum rn_proc_fail {
	RN_PROC_FAIL_NONE = 0,  /* started fine (exec_errno is 0) */
	RN_PROC_FAIL_EXEC = 1,  /* execve (or the PATH lookup of argv[0]) failed */
	RN_PROC_FAIL_CHDIR = 2, /* chdir(dir) failed */
	RN_PROC_FAIL_SETUP = 3,  /* setsid, /dev/null or dup2 failed */
	RN_PROC_FAIL_SANDBOX = 4 /* the sandbox could not be set up (sandbox_stage says where) */
};

/* Make the calling process a child subreaper (once, at start-up): orphans of a crashed shim
 * come back to us. 0 or RN_EIO (also when /proc is not mounted: the tree could not be found). */
int rn_proc_init(void);
/* Start the command under a shim. On success p->pid and p->status_fd are set (status_fd is
 * O_CLOEXEC|O_NONBLOCK, owned by p) and 0 is returned once the command was exec'd or failed to
 * (exec failure is reported in the result, not here), or at once with o->async_start.
 * <0 with rn_error_last() if fork failed. */
int rn_proc_start(rn_proc *p, const rn_proc_opts *o);
/* After an async start, when status_fd is readable: 1 if the report is there (the tree is
 * gone: call rn_proc_finish), 0 if it was only the start marker (the command runs). Never
 * blocks; always 1 after a synchronous start. */
int rn_proc_ready(rn_proc *p);
/* Ask the tree to stop: SIGTERM (then SIGCONT, for stopped ones) to every process of it (via
 * the shim). */
void rn_proc_term(rn_proc *p);
/* Kill the tree now: SIGKILL to every process of it (via the shim). */
void rn_proc_kill(rn_proc *p);
/* Collect the report and reap the shim. Blocks until the tree is gone (call when status_fd is
 * readable to avoid blocking). Closes status_fd. 0, or <0 if the shim died without a report
 * (then the stray processes it leaves are killed and r->status is 128+signal of the shim). */
int rn_proc_finish(rn_proc *p, rn_proc_result *r);
/* Reap children that are not live shims (orphans re-parented to us after a shim crashed) and
 * SIGKILL any such orphan still running, with its descendants; notice a dead fork server (it is
 * started again at the next step). Safe to call at any time (the engine calls it on SIGCHLD). */
void rn_proc_reap_strays(void);
/* Start the fork server now, without waiting for it, when a run knows it will start several
 * unsandboxed steps: its start-up (an exec, its first shim's fork) then overlaps the run's own
 * and no step is forked here. Safe while other threads run (posix_spawn). A no-op when a server
 * runs or starts, or when it is off. */
void rn_proc_prestart(void);
/* Stop the fork server, if one runs (it kills what is left of its steps' trees; waits for it),
 * and forget what is known about it: the next unsandboxed step looks for runner-shim again. */
void rn_proc_shutdown(void);
/* The fork server's pid, or -1 when none runs (not started yet, or steps are forked locally). */
pid_t rn_proc_server_pid(void);
/* How unsandboxed steps start, for diagnostics: "runner-shim PATH (pid N)", "fork (REASON)" or
 * "runner-shim not started yet". Static storage owned by the module, valid until the next call. */
const char *rn_proc_server_info(void);

#endif
