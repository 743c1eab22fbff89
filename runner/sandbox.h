/* sandbox.h - the step sandbox: namespaces, a private /tmp, a read-only root, cgroup or rlimit
 * limits, no_new_privs and a seccomp filter (see docs/sandbox.md for what each key does).
 *
 * Three phases, matching proc.c's process layout (runner -> shim -> command):
 *
 *   runner   rn_sandbox_probe() once per run; per step attempt rn_sandbox_plan_new() (allocates
 *            everything, creates the cgroups and writes their limits, builds the seccomp BPF),
 *            then starts the shim with rn_sandbox_fork() (a raw clone() with the plan's new
 *            namespaces: the shim becomes PID 1 of the step's pid namespace).
 *   shim     rn_sandbox_setup() first thing after the fork: joins the cgroups, writes the uid/gid
 *            maps, performs the mount plan, sets the hostname, brings up lo, installs the seccomp
 *            filter. Async-signal-safe: raw syscalls on the plan's prepared data only.
 *   command  rn_sandbox_exec_prepare() right before execve: rlimits, no_new_privs, seccomp (when
 *            the shim has not installed it already). Async-signal-safe, small stack.
 *   runner   after the shim was reaped: rn_sandbox_collect() (OOM? then the cgroups are removed),
 *            rn_sandbox_plan_free().
 *
 * Child-side functions return 0 or -errno and never print; *stage tells what failed, and
 * rn_sandbox_describe() turns (plan, stage, errno) into a message in the runner. */
#ifndef RN_SANDBOX_H
#define RN_SANDBOX_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define RN_SANDBOX_DIR_MAX 512

/* One kernel feature: usable or not, and the errno of the failed attempt. */
typedef struct rn_sandbox_feat {
	int ok;
	int err; /* errno when !ok (0: not tried) */
} rn_sandbox_feat;

/* Where step cgroups for one controller are created. */
typedef struct rn_sandbox_cg {
	int ver;                        /* 0 none, 1 cgroup v1, 2 cgroup v2 */
	char dir[RN_SANDBOX_DIR_MAX];   /* parent directory of the step cgroups (ver != 0) */
	char why[RN_SANDBOX_DIR_MAX + 256]; /* ver == 0: why not */
} rn_sandbox_cg;

/* What this kernel lets this process do (filled by rn_sandbox_probe; plain data, may be copied
 * and, in tests, edited to simulate a poorer kernel). */
typedef struct rn_sandbox_caps {
	int root;                 /* namespaces work without a user namespace (euid 0 + CAP_SYS_ADMIN) */
	uid_t uid;                /* effective ids of the runner (mapped 1:1 in the user namespace) */
	gid_t gid;
	rn_sandbox_feat user;     /* a user namespace can be created (needed when !root) */
	rn_sandbox_feat pid, mount, ipc, uts, net; /* these namespaces (inside the user ns if !root) */
	rn_sandbox_feat proc;     /* a fresh /proc in a new pid namespace (pid ns is used only with it) */
	rn_sandbox_feat tmpfs;    /* tmpfs mounts (private /tmp) */
	rn_sandbox_feat setattr;  /* mount_setattr(2) with AT_RECURSIVE (read-only root, fast path) */
	rn_sandbox_feat remount;  /* MS_REMOUNT|MS_BIND|MS_RDONLY (read-only root, fallback) */
	rn_sandbox_feat hostname; /* sethostname in the uts namespace */
	rn_sandbox_feat lo;       /* bring `lo` up in a new network namespace */
	rn_sandbox_feat nnp;      /* PR_SET_NO_NEW_PRIVS */
	rn_sandbox_feat seccomp;  /* a seccomp filter can be built (libseccomp) and installed */
	rn_sandbox_feat pidfd;    /* pidfd_open (the shim checks that the runner is alive) */
	rn_sandbox_cg memory;     /* memory limit: cgroup, else RLIMIT_AS */
	rn_sandbox_cg pids;       /* pids limit: cgroup, else RLIMIT_NPROC (not for root) */
	rn_sandbox_cg cpu;        /* CPU accounting of the tree (the cpu limit itself is RLIMIT_CPU) */
	char kernel[96];          /* uname release */
	char libseccomp[32];      /* libseccomp version */
} rn_sandbox_caps;

/* Paths the plan keeps visible. All may be relative to the runner's cwd; they are resolved with
 * realpath() in rn_sandbox_plan_new. */
typedef struct rn_sandbox_paths {
	const char *workspace;         /* required; stays writable */
	const char *temp;              /* RUNNER_TEMP (NULL: none); stays writable */
	const char *self_exe;          /* the runner binary (NULL: /proc/self/exe); stays visible */
	const char *const *extra;      /* NULL-terminated list (or NULL): more writable paths */
	const char *visible;           /* a path to keep visible read-only (NULL: none), e.g. a plugin's
	                                * directory under /tmp */
	const char *cwd;               /* the shim's cwd to re-resolve after the mounts (NULL: getcwd) */
	const char *hostname;          /* NULL: "runner" */
} rn_sandbox_paths;

typedef struct rn_sandbox_plan rn_sandbox_plan;

typedef struct rn_sandbox_result {
	int oom;             /* the memory limit was hit and a process of the step was OOM-killed */
	int pids_hit;        /* a fork failed because of the pids limit (cgroup only; else 0) */
	double cpu_s;        /* CPU time of the whole tree from the cgroup; -1 if not measured */
	int cpu_exceeded;    /* the tree as a whole used more CPU than `cpu` (cgroup only) */
	int64_t memory_peak; /* bytes, from the memory cgroup; -1 if not measured */
} rn_sandbox_result;

/* Probe the kernel once per run (forks two short-lived children; a few ms). Always fills caps;
 * 0, or RN_EIO if the probe itself could not run (then caps says "no" to everything). */
int rn_sandbox_probe(rn_sandbox_caps *caps);
/* The table of `runner run --sandbox-info`: one line per feature, yes/no and how. */
void rn_sandbox_caps_print(FILE *out, const rn_sandbox_caps *caps);

/* Plan the sandbox of one step attempt (in the runner, before fork). settings->enabled == 0:
 * *out = NULL and 0 (no sandbox). Otherwise allocates the plan, resolves the paths, creates the
 * step's cgroups with their limits, and builds the seccomp program. A key that cannot be enforced
 * at all is RN_EINVALID with a message naming it ("sandbox key 'network: false' cannot be
 * enforced: ..."); the caller prefixes settings->pos. Degraded features become notices. */
int rn_sandbox_plan_new(rn_sandbox_plan **out, const rn_sandbox *settings, const rn_sandbox_caps *caps,
			const rn_sandbox_paths *paths);
/* One-line notices of the plan ("sandbox: memory limit enforced with RLIMIT_AS ..."): stable
 * texts, so the caller prints each distinct one once per run. */
size_t rn_sandbox_plan_notice_count(const rn_sandbox_plan *p);
const char *rn_sandbox_plan_notice(const rn_sandbox_plan *p, size_t i);

/* Flags for syscall(SYS_clone, flags, 0, 0, 0, 0) (fork semantics): CLONE_NEW* | SIGCHLD.
 * NULL plan: SIGCHLD. */
unsigned long rn_sandbox_clone_flags(const rn_sandbox_plan *p);
/* fork() for the shim: the raw clone with rn_sandbox_clone_flags (plain fork() when the plan has
 * no namespaces). Returns like fork(). Call with all signals blocked, like proc.c's fork. The
 * child must stick to async-signal-safe code (it has glibc's state of a raw clone). */
pid_t rn_sandbox_fork(const rn_sandbox_plan *p);

/* In the shim (PID 1 of the new pid namespace), first thing after rn_sandbox_fork and before it
 * closes inherited fds: PR_SET_PDEATHSIG(SIGKILL) + runner-alive check, cgroups, uid/gid maps,
 * mounts, hostname, lo, cwd, no_new_privs + seccomp. 0 or -errno; *stage (may be NULL) says
 * which step failed (see rn_sandbox_describe). NULL plan: 0. */
int rn_sandbox_setup(const rn_sandbox_plan *p, int *stage);
/* In the command child right before execve (async-signal-safe, a few hundred bytes of stack):
 * oom_score_adj back to the runner's, rlimits, no_new_privs, seccomp filter last. 0 or -errno
 * with *stage. NULL plan: 0. */
int rn_sandbox_exec_prepare(const rn_sandbox_plan *p, int *stage);
/* Message for a child failure: "sandbox setup failed: bind mount of /tmp/x: Permission denied". */
void rn_sandbox_describe(const rn_sandbox_plan *p, int stage, int err, char *buf, size_t size);

/* After the step's tree is gone (the shim was reaped): fill r and remove the step's cgroups
 * (killing anything still in them). NULL plan: r zeroed (cpu_s/memory_peak -1), 0. <0 with
 * rn_error_last() if a cgroup could not be removed. Idempotent. */
int rn_sandbox_collect(rn_sandbox_plan *p, rn_sandbox_result *r);
/* Tree CPU seconds used so far (cgroup), for a caller that wants to enforce `cpu` on the tree
 * as a whole; 0, or RN_ENOTFOUND when not measured. */
int rn_sandbox_cpu_used(const rn_sandbox_plan *p, double *secs);
/* Free the plan (removes its cgroups if rn_sandbox_collect was not called). NULL is fine. */
void rn_sandbox_plan_free(rn_sandbox_plan *p);

#endif
