/* forksrv.h - the runner's side of the step fork server runner-shim (shimd.c): starting it, the
 * pool of its shims that the runner hands steps to directly, and what happens when either dies.
 * Internal to proc.c, which keeps the rn_proc API (proc.h); single-threaded like it. See shim.h
 * for the protocol and docs/fork-server.md for the design. */
#ifndef RN_FORKSRV_H
#define RN_FORKSRV_H

#include "proc.h"
#include "shim.h"

/* Hand the step described by c (status_w, out_fd, in_fd are passed, not closed) to an idle shim
 * of the server: 1 started (p->pid, p->pidfd, p->step set), 0 not (the caller forks the
 * shim itself: no server, or it is starting, or the request is too large). */
int rn_forksrv_start(rn_proc *p, const rn_shim_ctx *c);
/* The step of p (started by rn_forksrv_start) is over: reported says whether its full report
 * was read. The shim goes back to the pool, or, if it died, the wait status the server (or, if
 * that died too, waitid) gives is returned: blocks until the server said the shim is gone (its
 * orphans killed). -1 if unknown or not needed. p->pidfd is -1 afterwards. */
int rn_forksrv_finish(rn_proc *p, int reported);
/* Send sig to the shim of p (a pidfd signal queued with the step's id). */
void rn_forksrv_signal(const rn_proc *p, int sig);
/* 1 if pid is the server, or one of its shims whose step is not finished, else 0. */
int rn_forksrv_keeps(pid_t pid);
/* Notice a server that died (call on SIGCHLD): it is started again at the next steps. */
void rn_forksrv_check(void);
/* rn_proc_prestart, rn_proc_shutdown, rn_proc_server_pid, rn_proc_server_info of proc.h. */
void rn_forksrv_prestart(void);
void rn_forksrv_shutdown(void);
pid_t rn_forksrv_pid(void);
const char *rn_forksrv_info(void);

#endif
