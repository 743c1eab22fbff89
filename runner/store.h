/* store.h - the persistent state of `runner serve` in SQLite (DATA/runner.db, WAL mode):
 * pipelines, job instances, agents and artifacts. A plain data layer: typed records in, typed
 * records out; the rules (what a state change means) live in coord.c.
 *
 * One connection. Not thread-safe: the caller serialises every call (coord.c holds a mutex).
 * Every function returns 0 or a negative RN_E* code with rn_error_last(); RN_ENOTFOUND when a
 * looked-up row does not exist. Records handed out are owned by the caller: free them with
 * their *_clear function (which also leaves them zeroed and reusable). Times are milliseconds
 * since the epoch, 0 meaning "not yet" (stored as NULL). */
#ifndef RN_STORE_H
#define RN_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rn_store rn_store;

/* Job instance states (docs/protocol.md), in this order. */
typedef enum {
	RN_JS_PENDING,  /* waiting for its needs */
	RN_JS_QUEUED,   /* waiting for an agent */
	RN_JS_ASSIGNED, /* leased, not acknowledged yet */
	RN_JS_RUNNING,  /* acknowledged: the agent runs it */
	RN_JS_SUCCESS,
	RN_JS_FAILURE,
	RN_JS_TIMED_OUT,
	RN_JS_CANCELLED,
	RN_JS_SKIPPED,
	RN_JS_COUNT
} rn_jstate;

/* Pipeline states. */
typedef enum { RN_PS_QUEUED, RN_PS_RUNNING, RN_PS_SUCCESS, RN_PS_FAILURE, RN_PS_CANCELLED, RN_PS_COUNT } rn_pstate;

/* The protocol name of a job state ("pending", ..., "timed out"); static. */
const char *rn_jstate_name(rn_jstate s);
/* The job state named s into *out; RN_EINVALID if none. */
int rn_jstate_parse(rn_jstate *out, const char *s);
/* 1 for the final job states (success, failure, timed out, cancelled, skipped). */
int rn_jstate_final(rn_jstate s);
/* The protocol name of a pipeline state; static. */
const char *rn_pstate_name(rn_pstate s);

typedef struct rn_store_pipeline {
	int64_t id;           /* assigned by rn_store_pipeline_add */
	char *name;           /* the workflow's name */
	char *repo;           /* as submitted (may hold credentials: redact before showing) */
	char *ref;            /* as submitted ("HEAD" by default) */
	char *sha;            /* the commit, 40 hex */
	char *file;           /* the workflow file in the repository */
	json_t *git;          /* {sha, ref, branch}: the git context of the jobs */
	char *workflow;       /* the workflow text (NULL when listed without it) */
	json_t *env;          /* extra environment of every step: object of strings */
	rn_pstate state;
	int cancel;           /* cancelled by a user */
	int64_t created_ms, started_ms, finished_ms;
} rn_store_pipeline;

typedef struct rn_store_job {
	int64_t pipeline;
	int n;                 /* 1-based instance number in graph order */
	char *name;            /* instance name, e.g. "build (gcc)" */
	char *job;             /* the workflow's job id */
	rn_jstate state;
	int attempt;           /* 1-based; lease expiries add one */
	int64_t agent_id;      /* the agent of the current/last lease, 0 if none */
	char *agent;           /* its name, or NULL */
	char *reason;          /* why it ended (or was re-queued), or NULL */
	char *lease;           /* the current lease (assigned/running) or the one that finished it */
	int64_t lease_expires_ms; /* assigned: the ack deadline; running: the lease expiry */
	int cancel;            /* a cancel was asked while it was leased */
	char *cancel_reason;   /* NULL unless cancel */
	int64_t queued_ms, started_ms, finished_ms;
	int group;             /* n of the first instance of the same job (matrix siblings) */
	int max_parallel;      /* the job's max-parallel (0: unlimited) */
	int continue_on_error; /* the job's continue-on-error */
	json_t *runs_on;       /* array of label strings */
	json_t *needs;         /* {job id: {result, outputs}} once queued, else NULL */
	json_t *outputs;       /* object */
	json_t *steps;         /* array of STEP objects */
} rn_store_job;

typedef struct rn_store_agent {
	int64_t id;            /* assigned by rn_store_agent_add */
	char *name;
	char *token_sha256;    /* hex SHA-256 of its token */
	json_t *labels;        /* array of strings */
	int capacity;
	char *version;         /* or NULL */
	int64_t created_ms, last_seen_ms;
} rn_store_agent;

typedef struct rn_store_artifact {
	int64_t pipeline;
	char *name;
	int job;               /* n of the job instance that uploaded it */
	char *format;          /* tar.gz, tar.xz, tar.zst, zip */
	int64_t size;
	char *sha256;          /* hex */
	int64_t created_ms;
} rn_store_artifact;

/* Open (creating it and its tables if needed) the database at path: WAL, synchronous=NORMAL,
 * a busy timeout. *out is freed with rn_store_close. RN_EIO when it cannot be opened. */
int rn_store_open(rn_store **out, const char *path);
/* Close the database (NULL is fine). */
void rn_store_close(rn_store *s);
/* Bytes SQLite has allocated now, in every connection of the process (page caches included). */
int64_t rn_store_memory_used(void);
/* Start a write transaction (BEGIN IMMEDIATE). */
int rn_store_begin(rn_store *s);
/* Commit the transaction. */
int rn_store_commit(rn_store *s);
/* Roll the transaction back (no-op without one). */
void rn_store_rollback(rn_store *s);

/* Insert a pipeline; p->id gets its new id. */
int rn_store_pipeline_add(rn_store *s, rn_store_pipeline *p);
/* Write the mutable fields of pipeline p->id (state, cancel, started_ms, finished_ms). */
int rn_store_pipeline_put(rn_store *s, const rn_store_pipeline *p);
/* Read pipeline id into *out (with its workflow text). RN_ENOTFOUND if none. */
int rn_store_pipeline_get(rn_store *s, int64_t id, rn_store_pipeline *out);
/* The newest pipelines first, at most limit, without their workflow text, into *v (*n of them;
 * caller frees with rn_store_pipelines_free). */
int rn_store_pipelines_list(rn_store *s, int64_t limit, rn_store_pipeline **v, size_t *n);
/* The ids of unfinished pipelines (queued or running), oldest first, into *ids (caller frees). */
int rn_store_pipelines_live(rn_store *s, int64_t **ids, size_t *n);
/* Free the strings and JSON of p and zero it. */
void rn_store_pipeline_clear(rn_store_pipeline *p);
/* Clear and free an array of n pipelines. */
void rn_store_pipelines_free(rn_store_pipeline *v, size_t n);

/* Insert or replace the job (p->pipeline, p->n) with every field. */
int rn_store_job_put(rn_store *s, const rn_store_job *j);
/* Read job (pipeline, n) into *out. RN_ENOTFOUND if none. */
int rn_store_job_get(rn_store *s, int64_t pipeline, int n, rn_store_job *out);
/* Read the job whose lease column is lease. RN_ENOTFOUND if none. */
int rn_store_job_by_lease(rn_store *s, const char *lease, rn_store_job *out);
/* The jobs of a pipeline ordered by n into *v (caller frees with rn_store_jobs_free). */
int rn_store_jobs_of(rn_store *s, int64_t pipeline, rn_store_job **v, size_t *n);
/* A queued job as the queue scan sees it; runs_on is borrowed for the callback's duration. */
typedef struct rn_store_qent {
	int64_t pipeline;
	int n;
	int group;
	int max_parallel;
	json_t *runs_on;
} rn_store_qent;

/* Call cb for each queued job, oldest queued_ms first (then pipeline, n), until it returns
 * non-zero. 0, or <0 for a database failure. cb may run other store calls. */
int rn_store_queue_each(rn_store *s, int (*cb)(const rn_store_qent *q, void *arg), void *arg);
/* The states of the jobs of a pipeline ordered by n into *states (caller frees), *n of them. */
int rn_store_job_states(rn_store *s, int64_t pipeline, rn_jstate **states, size_t *n);
/* The jobs in state st, oldest queued_ms first (then pipeline, n), at most limit, into *v. */
int rn_store_jobs_in_state(rn_store *s, rn_jstate st, int64_t limit, rn_store_job **v, size_t *n);
/* The assigned and running jobs whose lease_expires_ms is before now, into *v. */
int rn_store_jobs_expired(rn_store *s, int64_t now, rn_store_job **v, size_t *n);
/* Push every lease deadline (assigned: to now + ack_ms, running: to now + ttl_ms) forward; used
 * at start-up so that agents can reach a restarted server before their leases expire. */
int rn_store_jobs_extend_leases(rn_store *s, int64_t now, int64_t ack_ms, int64_t ttl_ms);
/* How many jobs of pipeline's group are assigned or running, into *count. */
int rn_store_group_active(rn_store *s, int64_t pipeline, int group, int64_t *count);
/* How many jobs the agent has assigned or running, into *count. */
int rn_store_agent_active(rn_store *s, int64_t agent_id, int64_t *count);
/* The number of jobs in each state into counts[RN_JS_COUNT]. */
int rn_store_job_counts(rn_store *s, int64_t counts[RN_JS_COUNT]);
/* Free the strings and JSON of j and zero it. */
void rn_store_job_clear(rn_store_job *j);
/* Clear and free an array of n jobs. */
void rn_store_jobs_free(rn_store_job *v, size_t n);

/* Insert an agent; a->id gets its new id. */
int rn_store_agent_add(rn_store *s, rn_store_agent *a);
/* Write labels, capacity, version and last_seen_ms of agent a->id. */
int rn_store_agent_put(rn_store *s, const rn_store_agent *a);
/* Read the agent whose token hash is token_sha256. RN_ENOTFOUND if none. */
int rn_store_agent_by_token(rn_store *s, const char *token_sha256, rn_store_agent *out);
/* Read agent id. RN_ENOTFOUND if none. */
int rn_store_agent_get(rn_store *s, int64_t id, rn_store_agent *out);
/* Every agent ordered by id into *v (caller frees with rn_store_agents_free). */
int rn_store_agents_list(rn_store *s, rn_store_agent **v, size_t *n);
/* How many agents were seen at or after since_ms, into *count. */
int rn_store_agents_seen(rn_store *s, int64_t since_ms, int64_t *count);
/* Free the strings and JSON of a and zero it. */
void rn_store_agent_clear(rn_store_agent *a);
/* Clear and free an array of n agents. */
void rn_store_agents_free(rn_store_agent *v, size_t n);

/* Insert or replace the artifact (a->pipeline, a->name). */
int rn_store_artifact_put(rn_store *s, const rn_store_artifact *a);
/* Read artifact name of pipeline. RN_ENOTFOUND if none. */
int rn_store_artifact_get(rn_store *s, int64_t pipeline, const char *name, rn_store_artifact *out);
/* The artifacts of a pipeline ordered by creation into *v (caller frees with
 * rn_store_artifacts_free). */
int rn_store_artifacts_of(rn_store *s, int64_t pipeline, rn_store_artifact **v, size_t *n);
/* Free the strings of a and zero it. */
void rn_store_artifact_clear(rn_store_artifact *a);
/* Clear and free an array of n artifacts. */
void rn_store_artifacts_free(rn_store_artifact *v, size_t n);

#endif
