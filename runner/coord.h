/* coord.h - the coordinator behind `runner serve`: pipelines made from git commits, job instances
 * decided as their needs finish (the engine's rules, through rn_context_job_decide), the queue
 * agents poll, leases with fencing and expiry, logs and artifacts on disk.
 *
 * State lives in the store (store.h, DATA/runner.db) and in files under the data directory
 * (logs/PIPELINE/N.ATTEMPT.log, artifacts/PIPELINE/NAME.FORMAT); nothing grows in memory with
 * the number of jobs (the parsed workflows of a few live pipelines are cached; a live pipeline
 * with `notify:` entries has a notify sink, notify.h, closed when it is final). Every function
 * is thread-safe: one mutex guards the store, and a condition variable wakes the long-polls
 * (an agent's poll, a heartbeat waiting for a cancel, a log tail) on every state change. A
 * background thread expires leases every second.
 *
 * Results: 0, or a negative RN_E* code with rn_error_last(); each function says what its codes
 * mean (the HTTP layer maps them to status codes). JSON handed out is a new reference owned by
 * the caller. Ids: pipelines are integers, a job instance is (pipeline, n), n 1-based. */
#ifndef RN_COORD_H
#define RN_COORD_H

#include "buf.h"
#include "server_metrics.h"
#include "store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rn_coord rn_coord;

typedef struct rn_coord_opts {
	const char *data_dir;      /* an existing, writable directory */
	int64_t lease_ttl_ms;      /* a lease lives this long after its last heartbeat (0: 30 s) */
	int64_t ack_timeout_ms;    /* an assignment not acknowledged this long is queued again (0: 10 s) */
	int max_attempts;          /* attempts of a job whose agent is lost (0: 3) */
	int64_t max_artifact_size; /* bytes (0: 1 GiB) */
	json_t *secrets;           /* {NAME: value} sent to agents with every job (borrowed; may be NULL) */
	rn_metrics *metrics;       /* counters and histograms to feed (borrowed; may be NULL) */
} rn_coord_opts;

/* Open the coordinator on o->data_dir: the database, then (after a restart) push live lease
 * deadlines forward so agents can reach the server again, decide what a crash left undecided,
 * and start the lease-expiry thread. Free with rn_coord_close. RN_EIO when the data directory or
 * the database cannot be used. */
int rn_coord_open(rn_coord **out, const rn_coord_opts *o);
/* The server's base URL ("http://HOST:PORT", copied), for the logs URL of `notify:` webhooks
 * (BASE/pipelines/ID); until it is set notifications carry no URL. */
void rn_coord_set_base_url(rn_coord *c, const char *url);
/* Shutting down: wake every long-poll (they answer at once) and make new ones return at once. */
void rn_coord_stop(rn_coord *c);
/* 1 once rn_coord_stop was called. */
int rn_coord_stopping(rn_coord *c);
/* Stop the expiry thread and close the database (NULL is fine). No call may be running. */
void rn_coord_close(rn_coord *c);

/* A pipeline request (POST /api/v1/pipelines); every pointer borrowed, NULL for absent. */
typedef struct rn_coord_submit {
	const char *repo; /* URL or absolute path on this machine */
	const char *ref;  /* default "HEAD" */
	const char *sha;  /* a full sha that must exist, or NULL */
	const char *file; /* default ".pipeline.yml" */
	const char *yaml; /* the workflow text instead of reading file from the commit */
	json_t *env;      /* object of strings, or NULL */
} rn_coord_submit;

/* Fetch the repository into the mirror cache (DATA/git), resolve the commit, read, validate and
 * expand the workflow, store the pipeline and queue what can start. *out gets the PIPELINE.
 * RN_EINVALID: an invalid workflow, *problems gets the "FILE:LINE:COL: error: ..." strings;
 * RN_ENOTFOUND: the ref or sha does not exist; RN_EIO: the repository cannot be fetched;
 * RN_ERROR: anything else (a server fault). */
int rn_coord_pipeline_create(rn_coord *c, const rn_coord_submit *s, json_t **out, json_t **problems);
/* The PIPELINE id (with its jobs) into *out. RN_ENOTFOUND if none. */
int rn_coord_pipeline_get(rn_coord *c, int64_t id, json_t **out);
/* {"pipelines": [PIPELINE without jobs, newest first, at most limit]} into *out. */
int rn_coord_pipelines(rn_coord *c, int64_t limit, json_t **out);
/* The JOB (pipeline, n) into *out. RN_ENOTFOUND if none. */
int rn_coord_job_get(rn_coord *c, int64_t pipeline, int n, json_t **out);
/* Cancel a pipeline: its pending and queued jobs end now, leased ones are told through their
 * heartbeat. *out gets the PIPELINE. RN_ENOTFOUND if none. */
int rn_coord_pipeline_cancel(rn_coord *c, int64_t id, json_t **out);
/* Cancel one job instance the same way; *out gets the JOB. RN_ENOTFOUND if none. */
int rn_coord_job_cancel(rn_coord *c, int64_t pipeline, int n, json_t **out);

/* What to send of a log: count bytes of fd from offset (fd -1 when count is 0; the caller
 * closes it). */
typedef struct rn_coord_log {
	int fd;
	int64_t offset;   /* where the bytes start (the asked offset, at most the log's length) */
	int64_t count;    /* how many bytes to send */
	int64_t length;   /* the log's length when it was looked at */
	int attempt;      /* the attempt the log belongs to */
	int complete;     /* the attempt is over: no more bytes will come */
} rn_coord_log;

/* The log of attempt (0: the latest) of job (pipeline, n) from offset, at most max bytes; when
 * there is nothing new at offset and the attempt is not over, wait up to wait_ms for bytes.
 * RN_ENOTFOUND: no such job or attempt. */
int rn_coord_log_read(rn_coord *c, int64_t pipeline, int n, int attempt, int64_t offset, int64_t max,
		      int64_t wait_ms, rn_coord_log *out);

/* {"artifacts": [ARTIFACT...]} of a pipeline into *out. RN_ENOTFOUND: no such pipeline. */
int rn_coord_artifacts(rn_coord *c, int64_t pipeline, json_t **out);
/* Open artifact name for reading: of pipeline (lease NULL), or of the pipeline of a live lease of
 * agent_id. *fd (caller closes) and *meta (the ARTIFACT). RN_ENOTFOUND: no such artifact or
 * pipeline; RN_EINVALID: the lease is gone (fencing). */
int rn_coord_artifact_open(rn_coord *c, int64_t pipeline, const char *lease, int64_t agent_id, const char *name,
			   int *fd, json_t **meta);

/* Register an agent (name, labels array of strings, capacity, version may be NULL): *out gets
 * {"id", "token"}; only the token's SHA-256 is stored. */
int rn_coord_agent_register(rn_coord *c, const char *name, json_t *labels, int capacity, const char *version,
			    json_t **out);
/* The agent whose token is token into *agent_id (compared through its hash, in constant time).
 * RN_ENOTFOUND if no agent has it. */
int rn_coord_agent_auth(rn_coord *c, const char *token, int64_t *agent_id);
/* {"agents": [...]} into *out. */
int rn_coord_agents(rn_coord *c, json_t **out);

/* An agent asks for a job: labels (array of strings; NULL keeps the registered ones) replace its
 * labels; the oldest queued job whose runs-on labels it has is leased to it, waiting up to
 * wait_ms for one. *assignment gets {"lease", "lease_ttl_ms", "job": JOBSPEC}, or NULL when
 * nothing came (or the server is stopping: see rn_coord_stopping). */
int rn_coord_poll(rn_coord *c, int64_t agent_id, json_t *labels, int64_t wait_ms, json_t **assignment);

/* For the lease calls below, RN_ENOTFOUND means the lease is gone (expired, never acknowledged
 * in time, finished, another agent's, or forged): answer 410 and change nothing. Every call but
 * finish also acknowledges a lease not acknowledged yet. */

/* Acknowledge the lease: the job runs. *out gets {"lease_ttl_ms"}. */
int rn_coord_ack(rn_coord *c, const char *lease, int64_t agent_id, json_t **out);
/* Renew the lease; if no cancel is pending wait up to wait_ms for one. *cancel gets 1 when the
 * job is to be cancelled. */
int rn_coord_heartbeat(rn_coord *c, const char *lease, int64_t agent_id, int64_t wait_ms, int *cancel);
/* Append data[0..len), which starts at byte offset of the attempt's log; *length gets the log's
 * length after it (also on RN_EINVALID: a gap, offset past the length). Bytes the log has already
 * are ignored. RN_EIO: a disk failure. */
int rn_coord_log_append(rn_coord *c, const char *lease, int64_t agent_id, int64_t offset, const char *data,
			size_t len, int64_t *length);
/* Replace the job's steps that have the index of one in steps (an array of checked STEP
 * objects); *cancel as for heartbeats. */
int rn_coord_steps(rn_coord *c, const char *lease, int64_t agent_id, json_t *steps, int *cancel);
/* The job ended with state (success, failure, timed out or cancelled), outputs (object of
 * strings, may be NULL) and reason (may be NULL): decide what it unblocks. *out gets the JOB.
 * Finishing a lease that already finished changes nothing and answers the JOB again. */
int rn_coord_finish(rn_coord *c, const char *lease, int64_t agent_id, rn_jstate state, json_t *outputs,
		    const char *reason, json_t **out);

typedef struct rn_coord_upload rn_coord_upload;
/* Start receiving artifact name (a valid name) in format for a live lease of agent_id: a temp
 * file in the data directory, hashed while written. *out is ended with rn_coord_upload_end or
 * rn_coord_upload_abort. RN_ENOTFOUND: the lease is gone; RN_EINVALID: another job of the
 * pipeline has an artifact of that name; RN_EIO: disk. */
int rn_coord_upload_begin(rn_coord *c, const char *lease, int64_t agent_id, const char *name, const char *format,
			  rn_coord_upload **out);
/* Write the next bytes. RN_ETOOBIG past the server's --max-artifact-size; RN_EIO: disk. */
int rn_coord_upload_write(rn_coord_upload *u, const char *data, size_t len);
/* Check that the bytes' SHA-256 is sha256 (hex) and store the artifact; *out gets the ARTIFACT.
 * Frees u. RN_EINVALID: sha256 mismatch (nothing stored); RN_ENOTFOUND: the lease is gone;
 * RN_ERROR: the name was taken meanwhile; RN_EIO: disk. */
int rn_coord_upload_end(rn_coord *c, rn_coord_upload *u, const char *sha256, json_t **out);
/* Drop an upload and its temp file (NULL is fine). */
void rn_coord_upload_abort(rn_coord_upload *u);

/* Append the state gauges (runner_jobs{state}, runner_pipelines{state}, runner_agents_connected)
 * as Prometheus text to out. */
int rn_coord_metrics(rn_coord *c, rn_buf *out);

#endif
