/* event.h - what the engine reports while a pipeline runs, and the sinks that consume it
 * (console, log directory with summary.json, --json stream, JUnit). The engine masks secrets in
 * output before it reaches an event; sinks mask every other string they write as well. */
#ifndef RN_EVENT_H
#define RN_EVENT_H

#include <stddef.h>
#include <stdint.h>

struct rn_masker;

typedef enum {
	RN_ST_PENDING,
	RN_ST_RUNNING,
	RN_ST_SUCCESS,
	RN_ST_FAILURE,
	RN_ST_CANCELLED,
	RN_ST_SKIPPED,
	RN_ST_TIMED_OUT, /* a failure: the step or job ran past its timeout */
} rn_status;

typedef enum {
	RN_EV_RUN_STARTED,
	RN_EV_JOB_STARTED,   /* also for each retry attempt of the job */
	RN_EV_STEP_STARTED,  /* also for each retry attempt of the step */
	RN_EV_OUTPUT,        /* one line (or a piece of a long line) of a step's output */
	RN_EV_STEP_FINISHED, /* also for skipped steps (then without STEP_STARTED) */
	RN_EV_JOB_FINISHED,  /* also for skipped/cancelled jobs (then without JOB_STARTED) */
	RN_EV_RUN_FINISHED,
	RN_EV_MESSAGE,       /* a note from the runner itself (job/step may be NULL) */
} rn_event_type;

typedef struct rn_event {
	rn_event_type type;
	const char *run_id;
	const char *pipeline;  /* pipeline name */
	const char *job;       /* job instance name, e.g. "build (gcc)"; NULL for run events */
	const char *job_id;    /* the job's id in the workflow */
	const char *step;      /* step display name; NULL for run/job events */
	const char *step_id;   /* the step's `id:` or NULL */
	int step_index;        /* 0-based index in the job; -1 for run/job events */
	int nsteps;            /* steps in the job */
	int attempt;           /* 1-based attempt of this step (step events) or job (job events) */
	int max_attempts;
	const char *data;      /* OUTPUT: the bytes of the line, without '\n'; MESSAGE: the text */
	size_t len;            /* length of data */
	int partial;           /* OUTPUT: the line continues in the next event (cut at 64 KiB) */
	rn_status status;      /* *_FINISHED: the outcome */
	int continue_on_error; /* *_FINISHED: failed, but continue-on-error made it not count */
	int exit_code;         /* STEP_FINISHED: exit code or 128+signal; -1 if it never ran */
	const char *reason;    /* *_FINISHED: e.g. "timed out after 1s", "cancelled"; or NULL */
	int64_t started_ms;    /* wall clock (ms since the epoch) when it started; 0 if never */
	int64_t duration_ms;   /* *_FINISHED */
	double cpu_user_s;     /* STEP_FINISHED: CPU time of the step's process tree */
	double cpu_sys_s;
	long max_rss_kb;       /* STEP_FINISHED: peak RSS of the largest process of the tree */
	const char *log_path;  /* STEP_STARTED/FINISHED: path of this attempt's log file, or NULL */
	int njobs;             /* RUN_STARTED: job instances in the run, for "[3/10 jobs done]" (0:
	                        * unknown). Zero-initialise events so that new fields stay 0. */
} rn_event;

/* A consumer of events. */
typedef struct rn_sink rn_sink;
struct rn_sink {
	/* Handle one event. */
	void (*event)(rn_sink *s, const rn_event *ev);
	/* Finish (flush files, write summaries) and free the sink; 0 or <0 with rn_error_last(). */
	int (*close)(rn_sink *s);
	/* Optional (NULL if not needed): write out what is buffered. Sinks may buffer output lines
	 * (RN_EV_OUTPUT) and write them here, which the engine calls before it waits for the next
	 * event: a step printing a burst of lines costs one write, not one per line. */
	void (*flush)(rn_sink *s);
};

/* The text of a status: "success", "failure", "cancelled", "skipped", "timed out"... static. */
const char *rn_status_name(rn_status st);
/* 1 if the status counts as failed (failure, timed out). */
int rn_status_failed(rn_status st);

/* The constructors below never fail (they return a sink even if e.g. the directory cannot be
 * created); errors met while writing are remembered and returned by close(). Events must come
 * from one thread. */

/* Console: `job › step | line` per output line, a line per step/job result, a final summary
 * table (job, step, status, duration, attempts). color: ANSI colours; status_line: a live status
 * line (only on a TTY: the caller passes isatty()). Masks names with m (may be NULL). The sink
 * does not close `out`. */
rn_sink *rn_console_sink_new(void *out /* FILE* */, int color, int status_line, const struct rn_masker *m);
/* Log directory: one file per step attempt under dir (named in event log_path by the engine:
 * the sink opens/writes/closes those files), and dir/summary.json on close with every job's and
 * step's status, exit code, start, duration, attempts, CPU time and peak RSS. log_path is used
 * as is when it is absolute or starts with dir; otherwise it is taken relative to dir. */
rn_sink *rn_logdir_sink_new(const char *dir, const struct rn_masker *m);
/* --json: one JSON object per line on out for every event; out is not closed. */
rn_sink *rn_json_sink_new(void *out /* FILE* */, const struct rn_masker *m);
/* --junit FILE: JUnit XML written on close: a testsuite per job, a testcase per step, failures
 * with the last lines of the step's log. */
rn_sink *rn_junit_sink_new(const char *path, const struct rn_masker *m);

/* ---- helpers shared by the sinks (event.c) ---------------------------------------------- */

/* A masked copy of s (caller frees); NULL gives NULL; m NULL gives a plain copy. */
char *rn_event_mask(const struct rn_masker *m, const char *s);
/* As rn_event_mask for s[0..len) (may contain NUL bytes); *outlen gets the length. */
char *rn_event_mask_n(const struct rn_masker *m, const char *s, size_t len, size_t *outlen);
/* ISO-8601 UTC time of ms since the epoch: "2024-05-01T12:00:00Z", or with with_ms
 * "2024-05-01T12:00:00.123Z". size >= 32 is always enough. */
void rn_time_iso8601(char *buf, size_t size, int64_t ms, int with_ms);
/* 1 if s[0..len) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int rn_utf8_valid(const char *s, size_t len);
/* A copy of s[0..len) with every byte of an invalid UTF-8 sequence (and with replace_nul every
 * NUL byte) replaced by U+FFFD; NUL-terminated, caller frees; *outlen (may be NULL) gets the
 * length. */
char *rn_utf8_sanitize(const char *s, size_t len, int replace_nul, size_t *outlen);

/* What the sinks remember of a run: jobs in order of first appearance, their steps by index
 * (values of the last attempt). Strings meant for output are masked copies. */
typedef struct rn_steprec {
	int index;
	int seen;              /* an event for this step came in the job's current attempt */
	int started;           /* STEP_STARTED came in the job's current attempt */
	int running;           /* between STEP_STARTED and STEP_FINISHED */
	char *name, *id;       /* masked (id may be NULL) */
	rn_status status;
	int exit_code;         /* -1 if it never ran */
	int attempts;          /* attempts made (0 for a step that never started) */
	int max_attempts;
	int continue_on_error;
	int64_t started_ms, duration_ms;
	double cpu_user_s, cpu_sys_s;
	long max_rss_kb;
	char *log_path;        /* the engine's log_path of the last attempt (not masked) or NULL */
	char *reason;          /* masked or NULL */
	void *file;            /* logdir sink: the open log file (FILE *) */
	int logged;            /* sink_logdir: this attempt's log file was created */
	struct rn_buf *tail;   /* with rn_runrec.tail_max: the last lines of the current attempt
	                        * (each line cut to tail_max / 8 bytes, marked with "…") */
	size_t tail_lines;     /* complete lines in tail */
	size_t tail_cur;       /* bytes of the current (unfinished) line taken so far */
	int tail_cut;          /* the current line was cut */
} rn_steprec;

typedef struct rn_jobrec {
	char *key;             /* the job instance name as in the events (lookup only) */
	char *name, *id;       /* masked */
	rn_status status;
	int attempts, max_attempts, continue_on_error;
	int finished;          /* JOB_FINISHED came */
	int64_t started_ms, duration_ms;
	char *reason;          /* masked or NULL */
	rn_steprec **steps;    /* by index; NULL where no event came */
	size_t nsteps;         /* length of steps */
	int running_step;      /* index of the running step or -1 */
} rn_jobrec;

typedef struct rn_runrec {
	const struct rn_masker *m;
	char *run_id;          /* not masked (made by the runner) */
	char *pipeline;        /* masked */
	rn_status status;      /* RUNNING after RUN_STARTED, the outcome after RUN_FINISHED */
	int started, finished;
	int njobs_total;       /* from RUN_STARTED (0: unknown) */
	int64_t started_ms, duration_ms;
	rn_jobrec **jobs;
	size_t njobs, capjobs;
	size_t last;           /* lookup cache: index of the last job found */
	size_t *index;         /* open addressing by job key: 1 + index into jobs, 0 empty */
	size_t nindex;         /* slots in index (a power of two, 0 before the first job) */
	size_t tail_max;       /* 0, or keep the last tail_lines_max lines / tail_max bytes */
	size_t tail_lines_max;
} rn_runrec;

/* An empty record of a run; strings are masked with m (may be NULL). */
void rn_runrec_init(rn_runrec *r, const struct rn_masker *m);
/* Record an event; returns the job of a job/step/output event (NULL for run events, or for a
 * MESSAGE without job). For STEP_* and OUTPUT events *step (may be NULL) gets the step. */
rn_jobrec *rn_runrec_update(rn_runrec *r, const rn_event *ev, rn_steprec **step);
/* The step of job j at index i, or NULL. */
rn_steprec *rn_runrec_step(const rn_jobrec *j, int i);
/* Number of finished jobs. */
size_t rn_runrec_done(const rn_runrec *r);
/* Free everything (log files still open in rn_steprec.file are NOT closed: close them first). */
void rn_runrec_free(rn_runrec *r);

#endif
