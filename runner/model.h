/* model.h - the format-neutral pipeline model: pipeline -> jobs -> steps, with source positions.
 * Front ends (the YAML workflow today; GitHub Actions or .gitlab-ci.yml later) produce it; the
 * graph, the engine, the agent and the hook only read it. Everything is owned by the pipeline's
 * arena. Settings inherited pipeline -> job -> step are already resolved into each step. */
#ifndef RN_MODEL_H
#define RN_MODEL_H

#include "arena.h"
#include "node.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rn_pos {
	int line, col;
} rn_pos;

typedef struct rn_kv {
	const char *key;
	const char *value;
	rn_pos pos;
} rn_kv;

typedef struct rn_kvs {
	rn_kv *v;
	size_t n;
} rn_kvs;

typedef struct rn_strs {
	const char **v;
	rn_pos *pos;
	size_t n;
} rn_strs;

/* Sandbox settings; -1 means "not set here" (inherited), for limits -1 means no limit. */
typedef struct rn_sandbox {
	int enabled;        /* 0 off (`sandbox: false`), 1 on */
	int network;        /* 0 no network, 1 network */
	int read_only_root; /* 1: only workspace, RUNNER_TEMP and /tmp writable */
	int64_t memory;     /* bytes */
	int64_t pids;
	int64_t cpu_s;      /* CPU seconds */
	int64_t files;      /* open files */
	int64_t file_size;  /* bytes */
	rn_pos pos;         /* where it was set (0:0 for the default) */
} rn_sandbox;

#define RN_SANDBOX_UNSET { -1, -1, -1, -1, -1, -1, -1, -1, { 0, 0 } }

typedef struct rn_push_filter {
	int present;
	rn_strs branches, branches_ignore, tags, tags_ignore, paths, paths_ignore;
} rn_push_filter;

typedef struct rn_notify {
	const char *url;
	rn_strs events; /* pipeline, job */
	rn_strs on;     /* success, failure, cancelled, started */
	rn_kvs headers;
	const char *format; /* json | gitea-status | github-status */
	rn_pos pos;
} rn_notify;

typedef struct rn_step {
	rn_pos pos;
	const char *id;          /* NULL if none */
	const char *name;        /* display name (derived when not given) */
	const char *kind;        /* "run", "build", "package", ..., or a plugin name */
	const rn_node *with;     /* the kind's parameters (for run: the script scalar; for a plugin
	                          * step {plugin, name, id, inputs}, see steps/step.h) */
	const char *run;         /* run steps: the script */
	const char *shell;       /* resolved: step > defaults; NULL = bash if installed, else sh */
	rn_kvs env;              /* the step's own env (merging happens at run time) */
	const char *workdir;     /* resolved: step > defaults; relative to the workspace */
	int64_t timeout_ms;      /* resolved; 0 = none */
	int64_t grace_ms;        /* after SIGTERM, before SIGKILL */
	int max_attempts;        /* 1 = no retry */
	int64_t retry_delay_ms;
	double retry_backoff;
	int continue_on_error;
	const char *if_cond;     /* NULL = success() */
	rn_pos if_pos;
	rn_sandbox sandbox;      /* resolved: step > job > defaults */
} rn_step;

typedef struct rn_matrix_axis {
	const char *name;
	const rn_node *values; /* a sequence */
	rn_pos pos;
} rn_matrix_axis;

typedef struct rn_matrix {
	int present;
	rn_matrix_axis *axes;
	size_t naxes;
	const rn_node *exclude; /* sequence of mappings or NULL */
	const rn_node *include; /* sequence of mappings or NULL */
} rn_matrix;

typedef struct rn_job {
	rn_pos pos;
	const char *id;
	const char *name;       /* display name; defaults to the id */
	rn_strs needs;
	size_t *needs_index;    /* needs resolved to indexes into the pipeline's jobs */
	const char *if_cond;    /* NULL = success() */
	rn_pos if_pos;
	rn_strs runs_on;
	rn_kvs env;
	rn_matrix matrix;
	int fail_fast;          /* default 1 */
	int max_parallel;       /* 0 = unlimited */
	int64_t timeout_ms;     /* whole job; 0 = none */
	int retry;              /* extra attempts of the whole job */
	int continue_on_error;
	rn_kvs outputs;
	rn_sandbox sandbox;     /* resolved: job > defaults */
	rn_step *steps;
	size_t nsteps;
} rn_job;

typedef struct rn_pipeline {
	rn_arena arena;         /* owns everything below */
	const char *file;       /* the path it was read from */
	const char *name;       /* `name:`, else the file name without directory and extension */
	rn_push_filter push;    /* on.push */
	rn_kvs env;
	const char *default_shell;
	int64_t default_timeout_ms;
	const char *default_workdir;
	rn_sandbox default_sandbox;
	rn_notify *notify;
	size_t nnotify;
	rn_job *jobs;
	size_t njobs;
	const rn_node *root;
} rn_pipeline;

/* The job with this id, or NULL. */
const rn_job *rn_pipeline_job(const rn_pipeline *p, const char *id);
/* Free a pipeline and everything it owns (NULL is fine). */
void rn_pipeline_free(rn_pipeline *p);

#endif
