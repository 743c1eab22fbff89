/* agent_sup.h - the agent's supervision of one leased job: the job directory, the `runner __job`
 * child process, heartbeats, log shipping, step states, artifacts and the final report.
 *
 * Each job gets two threads: the supervisor (downloads the pipeline's artifacts, starts the child,
 * ships DIR/log from its offset and turns DIR/events.jsonl into step updates as inotify reports
 * growth, then uploads what the job packaged and finishes the lease) and the heartbeat (renews
 * the lease with long-polling heartbeats, so that a cancel arrives at once). Nothing of the log
 * is held in memory beyond one chunk in flight; a server that is away is retried with backoff
 * while the job keeps running and its log stays on disk. A lease the server refuses (410) kills
 * the child's process group and drops the job without reporting. */
#ifndef RN_AGENT_SUP_H
#define RN_AGENT_SUP_H

#include "agent_api.h"

#include <jansson.h>
#include <stdint.h>

typedef struct rn_ajob rn_ajob;

typedef struct rn_ajob_opts {
	const rn_api *api;        /* the server and the agent token (copied) */
	const char *jobs_dir;     /* WORK/jobs: the job directory is jobs_dir/LEASE */
	const char *self_exe;     /* the runner binary, started as `runner __job DIR` */
	char *const *envp;        /* the child's environment (borrowed until rn_ajob_free) */
	int keep;                 /* 1: keep the job directory afterwards (--keep-workspace) */
	int wake_fd;              /* an eventfd written when the job is over (or -1) */
} rn_ajob_opts;

/* Counters of every job of this process (for the agent's /metrics). */
typedef struct rn_ajob_stats {
	uint64_t started, success, failure, cancelled, timed_out, lost; /* lost: the lease was gone */
	uint64_t log_bytes, artifact_bytes_up, artifact_bytes_down;
	uint64_t heartbeat_errors, http_errors; /* calls that got no answer or a 5xx */
	int active;                             /* jobs being supervised now */
} rn_ajob_stats;

/* 1 if lease can name a directory: [A-Za-z0-9_-], 1 to 128 characters. */
int rn_ajob_lease_ok(const char *lease);
/* Where the log goes on after an append of sent bytes at off (ok: the call succeeded with status,
 * answer its JSON or NULL) with size bytes on disk: the server's length, never past size;
 * UINT64_MAX when the answer does not say (a failure: retry or give up). */
uint64_t rn_ajob_log_next(int ok, long status, const json_t *answer, uint64_t off, size_t sent, uint64_t size);
/* Check an ASSIGNMENT answer of a poll: *lease and *spec (borrowed from answer), *ttl_ms (30 s
 * when absent or unusable). RN_EINVALID with rn_error_last() when it is not one. */
int rn_ajob_assignment(const json_t *answer, const char **lease, json_t **spec, long *ttl_ms);
/* Take an acknowledged lease: create jobs_dir/LEASE (RN_EINVALID if it exists: a lease never runs
 * twice), write job.json (mode 0600) from spec and start the supervisor thread. *out is owned
 * by the caller (rn_ajob_free); spec is referenced, not copied. */
int rn_ajob_start(rn_ajob **out, const rn_ajob_opts *o, const char *lease, long ttl_ms, json_t *spec);
/* Cancel the job as the agent shuts down (SIGTERM to `runner __job`: it reports cancelled). */
void rn_ajob_terminate(rn_ajob *j);
/* Stop waiting for the server: kill the job if it runs, report nothing more, end the threads. */
void rn_ajob_abandon(rn_ajob *j);
/* 1 once the supervisor thread is over (then rn_ajob_free does not block). */
int rn_ajob_finished(const rn_ajob *j);
/* 1 while the job's processes run (or are about to): it takes a slot of the capacity. After
 * that only its reporting is left. */
int rn_ajob_busy(const rn_ajob *j);
/* The lease id (owned by j). */
const char *rn_ajob_lease(const rn_ajob *j);
/* The server's job id and instance name ("4.1", "build (gcc)"), owned by j. */
const char *rn_ajob_id(const rn_ajob *j);
const char *rn_ajob_name(const rn_ajob *j);
/* The status reported to the server ("success", ...; "lost" when the lease was gone, "" while
 * running); owned by j. */
const char *rn_ajob_status(const rn_ajob *j);
/* Wait for the threads and free everything (NULL is fine). */
void rn_ajob_free(rn_ajob *j);
/* A snapshot of the counters. */
void rn_ajob_stats_get(rn_ajob_stats *out);

/* Kill what a previous agent process left in jobs_dir (a `runner __job` still running: SIGTERM,
 * then SIGKILL after grace_ms) and remove the directories; those leases are never run again (the
 * server queues their jobs again once the leases expire). Returns how many were removed. */
int rn_ajob_cleanup_leftovers(const char *jobs_dir, long grace_ms);

#endif
