/* engine.h - runs the selected part of a job graph: the one engine behind `runner run`, the
 * agent and the git hook. One poll() loop drives every step's output pipe, every step's
 * completion report, signals (signalfd) and deadlines (timeouts, grace periods, retry delays).
 * A job instance starts when its last dependency finishes; at most `parallel` run at once;
 * steps of a job run in order, each as a contained process tree (proc.h). */
#ifndef RN_ENGINE_H
#define RN_ENGINE_H

#include "event.h"
#include "graph.h"
#include "mask.h"
#include "model.h"

#include <jansson.h>

struct rn_sandbox_caps;

typedef struct rn_engine_opts {
	const rn_pipeline *pipeline;
	rn_graph *graph;               /* the selected nodes run; `pending` counters are consumed */
	int parallel;                  /* most jobs at once (>= 1) */
	int keep_going;                /* after a failure, independent jobs still start */
	const char *workspace;         /* absolute path the steps run in */
	const char *log_dir;           /* where per-step logs go (named in events), or NULL */
	const char *artifacts_dir;     /* the run's artifact store (RUNNER_ARTIFACTS) */
	const char *run_id;
	const char *self_exe;          /* the runner binary, for built-in kinds run as `runner __step` */
	const char *const *extra_env;  /* --env "K=V", highest precedence */
	size_t nextra_env;
	json_t *secrets;               /* object name -> value (borrowed), for ${{ secrets.X }} */
	const rn_masker *masker;       /* masks every output line (borrowed, may be NULL) */
	json_t *git;                   /* object sha/ref/branch for ${{ git.* }}, or NULL */
	rn_sink *const *sinks;         /* where events go (borrowed) */
	size_t nsinks;
	int handle_signals;            /* 1: SIGINT/SIGTERM/SIGHUP cancel the run (a second SIGINT kills) */
	int cancel_fd;                 /* readable = cancel the run (e.g. a pipe from the agent); -1: none */
	const struct rn_sandbox_caps *sandbox_caps; /* from rn_sandbox_probe; NULL: no sandbox at all */
	json_t *needs_preset;          /* job id -> {result, outputs} of jobs finished elsewhere (an agent's
	                                * job: from the server), borrowed; NULL: none */
	int decided;                   /* 1: selected jobs run without re-evaluating `if:` and needs (the
	                                * coordinator decided that they run) */
	const char *temp_dir;          /* where RUNNER_TEMP directories are made; NULL: $TMPDIR or /tmp
	                                * (an agent's job: inside its job directory, removed with it
	                                * even when the job is killed) */
} rn_engine_opts;

typedef struct rn_engine_result {
	rn_status status; /* success, failure or cancelled */
	int signal;       /* the signal that cancelled the run, or 0 */
	json_t *needs;    /* job id -> {result, outputs} after the run: a new reference the caller
	                   * releases (json_decref), NULL when rn_engine_run failed */
} rn_engine_result;

/* Run to the end. Returns 0 (the outcome is in *res) or <0 with rn_error_last() when the loop
 * itself could not work (signalfd, poll); running steps are killed in that case too. */
int rn_engine_run(const rn_engine_opts *o, rn_engine_result *res);

#endif
