/* coord.c - the coordinator: pipelines, the job queue, leases, logs and artifacts. */
#include "coord.h"
#include "context.h"
#include "diag.h"
#include "error.h"
#include "expr.h"
#include "git.h"
#include "gitread.h"
#include "graph.h"
#include "mask.h"
#include "notify.h"
#include "util.h"
#include "workflow.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Parsed workflows of live pipelines kept in memory (least recently used goes first). */
#define MODEL_CACHE 8
/* Queued jobs looked at per poll. */
#define QUEUE_SCAN 2000
/* Steps kept per job. */
#define MAX_STEPS 1000
/* An agent counts as connected this long after it was last seen. */
#define AGENT_SEEN_MS 90000

/* The `notify:` sink of a live pipeline that has notify entries (pipelines without any have
 * none). Kept outside the model cache: it lives until the pipeline is final. */
typedef struct note {
	struct note *next;
	int64_t id;
	rn_sink *sink;   /* NULL until the first event after a restart (made lazily) */
	int tried;       /* making the sink was tried (it stays NULL if that failed) */
	int started;     /* RUN_STARTED was sent (or the pipeline had started before a restart) */
} note;

typedef struct model {
	int64_t id; /* 0: free slot */
	rn_pipeline *p;
	rn_graph g;
	uint64_t used;
} model;

struct rn_coord {
	pthread_mutex_t lock;
	/* CLOCK_MONOTONIC conditions: `state` is broadcast on every change of jobs and the queue
	 * (polls, heartbeats), `logs` on log appends and job ends (log tails), `tick` only to stop
	 * the expiry thread */
	pthread_cond_t state, logs, tick;
	rn_store *store;
	char *data_dir, *git_dir, *logs_dir, *art_dir, *tmp_dir;
	int64_t ttl_ms, ack_ms, max_artifact;
	int max_attempts;
	json_t *secrets;
	rn_metrics *metrics;
	int stopping;
	pthread_t ticker;
	int ticker_started;
	model cache[MODEL_CACHE];
	uint64_t clock;
	note *notes;       /* live pipelines with `notify:` entries */
	rn_masker *masker; /* the server's secrets, for the notify sinks */
	char *base_url;    /* for the logs URL of notifications, or NULL */
};

/* ---- small helpers ---- */

static void lock(rn_coord *c)
{
	pthread_mutex_lock(&c->lock);
}

static void unlock(rn_coord *c)
{
	pthread_mutex_unlock(&c->lock);
}

/* A state change: wake polls, heartbeats and log tails. */
static void wake(rn_coord *c)
{
	pthread_cond_broadcast(&c->state);
	pthread_cond_broadcast(&c->logs);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for a broadcast of cond or until the monotonic deadline (ms); the lock is held. */
static void wait_until(rn_coord *c, pthread_cond_t *cond, int64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000), .tv_nsec = (long)(deadline % 1000) * 1000000 };
	pthread_cond_timedwait(cond, &c->lock, &ts);
}

static void set_str(char **dst, const char *s)
{
	char *copy = rn_xstrdup(s);
	free(*dst);
	*dst = copy;
}

static json_t *opt_ms(int64_t ms)
{
	return ms ? json_integer(ms) : json_null();
}

static json_t *opt_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

static void hex(char *out, const unsigned char *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* 32 random bytes as 64 hex digits into out[65]. */
static int random_hex(char out[65])
{
	unsigned char r[32];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return rn_error_errno("getrandom");
		}
		got += (size_t)k;
	}
	hex(out, r, sizeof(r));
	return 0;
}

static void sha256_hex(char out[65], const char *s, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
	hex(out, md, n > 32 ? 32 : n);
}

static int js_failed(rn_jstate s)
{
	return s == RN_JS_FAILURE || s == RN_JS_TIMED_OUT;
}

static rn_status js_status(rn_jstate s)
{
	switch (s) {
	case RN_JS_SUCCESS:
		return RN_ST_SUCCESS;
	case RN_JS_FAILURE:
		return RN_ST_FAILURE;
	case RN_JS_TIMED_OUT:
		return RN_ST_TIMED_OUT;
	case RN_JS_CANCELLED:
		return RN_ST_CANCELLED;
	case RN_JS_SKIPPED:
		return RN_ST_SKIPPED;
	default:
		return RN_ST_PENDING;
	}
}

/* A need counts as fine for its users: success, or a failure with continue-on-error. */
static int job_ok(const rn_store_job *j)
{
	return j->state == RN_JS_SUCCESS || (js_failed(j->state) && j->continue_on_error);
}

static int counts_as_failure(const rn_store_job *j)
{
	return js_failed(j->state) && !j->continue_on_error;
}

static char *log_path(rn_coord *c, int64_t pipeline, int n, int attempt)
{
	return rn_xasprintf("%s/%lld/%d.%d.log", c->logs_dir, (long long)pipeline, n, attempt);
}

static char *artifact_path(rn_coord *c, int64_t pipeline, const char *name, const char *format)
{
	return rn_xasprintf("%s/%lld/%s.%s", c->art_dir, (long long)pipeline, name, format);
}

/* ---- JSON of records ---- */

static json_t *job_json(const rn_store_job *j)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_sprintf("%lld.%d", (long long)j->pipeline, j->n));
	json_object_set_new(o, "pipeline", json_sprintf("%lld", (long long)j->pipeline));
	json_object_set_new(o, "name", json_string(j->name));
	json_object_set_new(o, "job", json_string(j->job));
	json_object_set_new(o, "status", json_string(rn_jstate_name(j->state)));
	json_object_set_new(o, "attempt", json_integer(j->attempt));
	json_object_set_new(o, "agent", opt_str(j->agent));
	json_object_set_new(o, "reason", opt_str(j->reason));
	json_object_set_new(o, "cancel_requested", json_boolean(j->cancel));
	json_object_set_new(o, "runs_on", json_copy(j->runs_on));
	json_object_set_new(o, "queued_ms", opt_ms(j->queued_ms));
	json_object_set_new(o, "started_ms", opt_ms(j->started_ms));
	json_object_set_new(o, "finished_ms", opt_ms(j->finished_ms));
	json_object_set_new(o, "outputs", json_deep_copy(j->outputs));
	json_object_set_new(o, "steps", json_deep_copy(j->steps));
	return o;
}

static json_t *pipeline_json(const rn_store_pipeline *p, const rn_store_job *jobs, size_t njobs, int with_jobs)
{
	char *repo = rn_git_redact_url(p->repo);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_sprintf("%lld", (long long)p->id));
	json_object_set_new(o, "name", json_string(p->name));
	json_object_set_new(o, "repo", json_string(repo));
	json_object_set_new(o, "ref", json_string(p->ref));
	json_object_set_new(o, "sha", json_string(p->sha));
	json_object_set_new(o, "file", json_string(p->file));
	json_object_set_new(o, "status", json_string(rn_pstate_name(p->state)));
	json_object_set_new(o, "created_ms", opt_ms(p->created_ms));
	json_object_set_new(o, "started_ms", opt_ms(p->started_ms));
	json_object_set_new(o, "finished_ms", opt_ms(p->finished_ms));
	if (with_jobs) {
		json_t *a = json_array();
		for (size_t i = 0; i < njobs; i++)
			json_array_append_new(a, job_json(&jobs[i]));
		json_object_set_new(o, "jobs", a);
	}
	free(repo);
	return o;
}

static json_t *artifact_json_of(const rn_store_artifact *a)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(a->name));
	json_object_set_new(o, "job", json_sprintf("%lld.%d", (long long)a->pipeline, a->job));
	json_object_set_new(o, "format", json_string(a->format));
	json_object_set_new(o, "size", json_integer(a->size));
	json_object_set_new(o, "sha256", json_string(a->sha256));
	json_object_set_new(o, "created_ms", json_integer(a->created_ms));
	return o;
}

/* The steps of a job before it runs: one pending STEP per step of the workflow. */
static json_t *initial_steps(const rn_job *job)
{
	json_t *a = json_array();
	for (size_t k = 0; k < job->nsteps; k++)
		json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:i, s:n, s:n, s:n, s:n}", "index", (json_int_t)k,
						   "name", job->steps[k].name ? job->steps[k].name : "",
						   "status", "pending", "attempt", 0, "exit_code", "started_ms",
						   "duration_ms", "reason"));
	return a;
}

/* ---- the model cache ---- */

static void model_drop(model *m)
{
	if (!m->id)
		return;
	rn_graph_free(&m->g);
	rn_pipeline_free(m->p);
	memset(m, 0, sizeof(*m));
}

static void model_evict(rn_coord *c, int64_t id)
{
	for (size_t i = 0; i < MODEL_CACHE; i++)
		if (c->cache[i].id == id)
			model_drop(&c->cache[i]);
}

/* Put a parsed pipeline in the cache (taking p and g). */
static model *model_put(rn_coord *c, int64_t id, rn_pipeline *p, rn_graph *g)
{
	model *slot = &c->cache[0];
	for (size_t i = 0; i < MODEL_CACHE; i++) {
		if (!c->cache[i].id) {
			slot = &c->cache[i];
			break;
		}
		if (c->cache[i].used < slot->used)
			slot = &c->cache[i];
	}
	model_drop(slot);
	slot->id = id;
	slot->p = p;
	slot->g = *g;
	slot->used = ++c->clock;
	return slot;
}

/* The parsed workflow of a pipeline (from the cache, or parsed again from its stored text).
 * NULL with rn_error_last() if it cannot be parsed any more. */
static model *model_get(rn_coord *c, const rn_store_pipeline *p)
{
	for (size_t i = 0; i < MODEL_CACHE; i++) {
		if (c->cache[i].id == p->id) {
			c->cache[i].used = ++c->clock;
			return &c->cache[i];
		}
	}
	if (!p->workflow) {
		rn_error_set("pipeline %lld: no workflow text", (long long)p->id);
		return NULL;
	}
	rn_diags d = RN_DIAGS_INIT(p->file);
	rn_pipeline *wp = NULL;
	rn_graph g = { NULL, 0 };
	int rc = rn_workflow_parse(&wp, p->file, p->workflow, strlen(p->workflow), &d);
	if (rc == 0)
		rc = rn_graph_build(&g, wp, &d);
	if (rc < 0) {
		rn_error_set("pipeline %lld: its workflow does not parse any more (%zu problems)", (long long)p->id,
			     d.errors);
		rn_diags_free(&d);
		rn_graph_free(&g);
		rn_pipeline_free(wp);
		return NULL;
	}
	rn_diags_free(&d);
	return model_put(c, p->id, wp, &g);
}

/* ---- a pipeline being changed: its row, its jobs, what changed ---- */

typedef struct pset {
	rn_store_pipeline p;
	rn_store_job *v;
	size_t n;
	char *dirty;
	int pdirty;
	model *m;
	rn_jstate *was; /* the jobs' states when loaded (what changed is notified after the commit) */
	rn_pstate pwas;
} pset;

static int pset_load(rn_coord *c, int64_t id, pset *ps)
{
	memset(ps, 0, sizeof(*ps));
	int rc = rn_store_pipeline_get(c->store, id, &ps->p);
	if (rc == 0)
		rc = rn_store_jobs_of(c->store, id, &ps->v, &ps->n);
	if (rc < 0)
		return rc;
	ps->dirty = rn_xcalloc(ps->n + 1, 1);
	ps->was = rn_xcalloc(ps->n + 1, sizeof(*ps->was));
	ps->pwas = ps->p.state;
	for (size_t i = 0; i < ps->n; i++)
		ps->was[i] = ps->v[i].state;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].n != (int)i + 1) {
			rn_error_set("pipeline %lld: job %zu missing", (long long)id, i + 1);
			return RN_ERROR;
		}
	}
	return 0;
}

static void pset_free(pset *ps)
{
	rn_store_pipeline_clear(&ps->p);
	rn_store_jobs_free(ps->v, ps->n);
	free(ps->dirty);
	free(ps->was);
	memset(ps, 0, sizeof(*ps));
}

static int pset_save(rn_coord *c, pset *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		if (!ps->dirty[i])
			continue;
		int rc = rn_store_job_put(c->store, &ps->v[i]);
		if (rc < 0)
			return rc;
		ps->dirty[i] = 0;
	}
	if (ps->pdirty) {
		int rc = rn_store_pipeline_put(c->store, &ps->p);
		if (rc < 0)
			return rc;
		ps->pdirty = 0;
	}
	return 0;
}

/* ---- notify: the status webhooks of live pipelines (notify.h) ----
 * Events go to a pipeline's sink after the transaction that made the change committed, with the
 * lock held (one thread at a time); the sink only queues, its own thread POSTs. */

static int pstate_final(rn_pstate s)
{
	return s == RN_PS_SUCCESS || s == RN_PS_FAILURE || s == RN_PS_CANCELLED;
}

static note *note_find(rn_coord *c, int64_t id)
{
	for (note *e = c->notes; e; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

static note *note_add(rn_coord *c, int64_t id, int started)
{
	note *e = rn_xcalloc(1, sizeof(*e));
	e->id = id;
	e->started = started;
	e->next = c->notes;
	c->notes = e;
	return e;
}

/* Close the sink of pipeline id (its thread delivers what is queued on its own) and forget it. */
static void note_drop(rn_coord *c, int64_t id)
{
	for (note **pp = &c->notes; *pp; pp = &(*pp)->next) {
		if ((*pp)->id != id)
			continue;
		note *e = *pp;
		*pp = e->next;
		if (e->sink)
			e->sink->close(e->sink);
		free(e);
		return;
	}
}

/* The sink of e, made on first use from the pipeline's row p (NULL: read from the store) and its
 * workflow (from the model cache, or parsed again); NULL if it cannot be made (said once on
 * stderr). */
static rn_sink *note_sink(rn_coord *c, note *e, const rn_store_pipeline *p)
{
	if (e->sink || e->tried)
		return e->sink;
	e->tried = 1;
	rn_store_pipeline row = { 0 };
	if (!p) {
		if (rn_store_pipeline_get(c->store, e->id, &row) < 0) {
			fprintf(stderr, "runner serve: notify: pipeline %lld: %s\n", (long long)e->id, rn_error_last());
			return NULL;
		}
		p = &row;
	}
	int cached = 0;
	for (size_t i = 0; i < MODEL_CACHE; i++)
		cached |= c->cache[i].id == p->id;
	int evict = pstate_final(p->state) && !cached;
	model *m = model_get(c, p);
	if (!m) {
		fprintf(stderr, "runner serve: notify: %s\n", rn_error_last());
		rn_store_pipeline_clear(&row);
		return NULL;
	}
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)p->id);
	char *repo = p->repo ? rn_git_redact_url(p->repo) : NULL;
	char *logs = c->base_url ? rn_xasprintf("%s/pipelines/%s", c->base_url, id) : NULL;
	json_t *info = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "id", id, "name", p->name, "sha", p->sha, "ref",
				 p->ref, "repo", repo, "logs_url", logs);
	json_t *ctx = json_pack("{s:O, s:O*}", "secrets", c->secrets, "git", json_is_object(p->git) ? p->git : NULL);
	rn_notify_opts no = { .drain_ms = -1 }; /* close() returns at once; the thread finishes alone */
	e->sink = rn_notify_sink_new(m->p, c->masker, info, ctx, &no);
	json_decref(info);
	json_decref(ctx);
	free(repo);
	free(logs);
	if (evict)
		model_evict(c, p->id); /* parsed again only for this: a final pipeline needs no model */
	rn_store_pipeline_clear(&row);
	return e->sink;
}

/* A job event: started (its agent acknowledged it) or finished (a final state). */
static void note_job(rn_coord *c, const rn_store_pipeline *p, const rn_store_job *j, int finished)
{
	note *e = note_find(c, j->pipeline);
	rn_sink *s = e ? note_sink(c, e, p) : NULL;
	if (!s)
		return;
	char run_id[32];
	snprintf(run_id, sizeof(run_id), "%lld", (long long)j->pipeline);
	rn_event ev = {
		.type = finished ? RN_EV_JOB_FINISHED : RN_EV_JOB_STARTED,
		.run_id = run_id,
		.pipeline = p ? p->name : NULL,
		.job = j->name,
		.job_id = j->job,
		.step_index = -1,
		.attempt = j->attempt,
		.max_attempts = c->max_attempts,
		.status = finished ? js_status(j->state) : RN_ST_RUNNING,
		.continue_on_error = finished && js_failed(j->state) && j->continue_on_error,
		.exit_code = -1,
		.reason = finished ? j->reason : NULL,
		.started_ms = j->started_ms,
		.duration_ms = finished && j->started_ms && j->finished_ms > j->started_ms ? j->finished_ms - j->started_ms : 0,
	};
	s->event(s, &ev);
}

/* The pipeline runs (its first job was handed out): RUN_STARTED, once. */
static void note_run_started(rn_coord *c, const rn_store_pipeline *p)
{
	note *e = note_find(c, p->id);
	if (!e || e->started)
		return;
	e->started = 1;
	rn_sink *s = note_sink(c, e, p);
	if (!s)
		return;
	char run_id[32];
	snprintf(run_id, sizeof(run_id), "%lld", (long long)p->id);
	rn_event ev = { .type = RN_EV_RUN_STARTED, .run_id = run_id, .pipeline = p->name, .step_index = -1,
			.started_ms = p->started_ms ? p->started_ms : rn_wall_ms() };
	s->event(s, &ev);
}

/* The pipeline is final: RUN_FINISHED, then its sink is closed. */
static void note_run_finished(rn_coord *c, const rn_store_pipeline *p)
{
	note *e = note_find(c, p->id);
	if (!e)
		return;
	rn_sink *s = note_sink(c, e, p);
	if (s) {
		char run_id[32];
		snprintf(run_id, sizeof(run_id), "%lld", (long long)p->id);
		rn_event ev = {
			.type = RN_EV_RUN_FINISHED,
			.run_id = run_id,
			.pipeline = p->name,
			.step_index = -1,
			.status = p->state == RN_PS_SUCCESS ? RN_ST_SUCCESS
				  : p->state == RN_PS_FAILURE ? RN_ST_FAILURE : RN_ST_CANCELLED,
			.started_ms = p->started_ms,
			.duration_ms = p->started_ms && p->finished_ms > p->started_ms ? p->finished_ms - p->started_ms : 0,
		};
		s->event(s, &ev);
	}
	note_drop(c, p->id);
}

/* After a committed change of ps: its jobs that became final, then the pipeline if it did. */
static void note_pset(rn_coord *c, const pset *ps)
{
	if (!c->notes || !ps->was || !note_find(c, ps->p.id))
		return;
	for (size_t i = 0; i < ps->n; i++)
		if (!rn_jstate_final(ps->was[i]) && rn_jstate_final(ps->v[i].state))
			note_job(c, &ps->p, &ps->v[i], 1);
	if (!pstate_final(ps->pwas) && pstate_final(ps->p.state))
		note_run_finished(c, &ps->p);
}

/* Steps left pending or running when a job ends without its agent saying so. */
static void close_steps(rn_store_job *j)
{
	size_t i;
	json_t *s;
	json_array_foreach(j->steps, i, s) {
		const char *st = json_string_value(json_object_get(s, "status"));
		if (st && strcmp(st, "pending") == 0) {
			json_object_set_new(s, "status", json_string("skipped"));
		} else if (st && strcmp(st, "running") == 0) {
			json_object_set_new(s, "status",
					    json_string(j->state == RN_JS_CANCELLED ? "cancelled" : "failure"));
			json_object_set_new(s, "reason", opt_str(j->reason));
		}
	}
}

/* Job i of ps ends in a final state now (not through its agent). */
static void finalize(rn_coord *c, pset *ps, size_t i, rn_jstate st, const char *reason, int64_t now)
{
	rn_store_job *j = &ps->v[i];
	j->state = st;
	set_str(&j->reason, reason);
	j->finished_ms = now;
	j->lease_expires_ms = 0;
	close_steps(j);
	ps->dirty[i] = 1;
	if (st == RN_JS_FAILURE && j->started_ms)
		rn_metrics_observe(c->metrics, RN_M_JOB_DURATION, (double)(now - j->started_ms) / 1000.0);
}

/* Ask job i to stop: not started yet, it is cancelled now; leased, its agent is told. */
static void cancel_one(rn_coord *c, pset *ps, size_t i, const char *reason, int64_t now)
{
	rn_store_job *j = &ps->v[i];
	if (rn_jstate_final(j->state))
		return;
	if (j->state == RN_JS_PENDING || j->state == RN_JS_QUEUED) {
		finalize(c, ps, i, RN_JS_CANCELLED, reason, now);
	} else if (!j->cancel) {
		j->cancel = 1;
		set_str(&j->cancel_reason, reason);
		ps->dirty[i] = 1;
	}
}

/* Job i just reached a final state: a counted failure with fail-fast cancels its siblings. */
static void concluded(rn_coord *c, pset *ps, size_t i, int64_t now)
{
	if (!counts_as_failure(&ps->v[i]) || !ps->m)
		return;
	const rn_gnode *g = &ps->m->g.nodes[i];
	if (!g->job->fail_fast || g->ninstances <= 1)
		return;
	for (size_t k = g->group; k < g->group + g->ninstances && k < ps->n; k++)
		if (k != i)
			cancel_one(c, ps, k, "cancelled by fail-fast", now);
}

static int wants_always(const rn_job *job)
{
	return job->if_cond && rn_expr_condition_has_status(job->if_cond);
}

/* All needs of pending job i are finished: decide it as the engine's job_ready does. */
static void decide(rn_coord *c, pset *ps, size_t i, int stopping, int64_t now)
{
	rn_store_job *j = &ps->v[i];
	const rn_gnode *node = &ps->m->g.nodes[i];
	if (ps->p.cancel || j->cancel) {
		finalize(c, ps, i, RN_JS_CANCELLED, j->cancel ? j->cancel_reason : "the run was cancelled", now);
		return;
	}
	int any_bad = 0;
	json_t *needs = json_object();
	for (size_t k = 0; k < node->ndeps; k++) {
		const rn_store_job *d = &ps->v[node->deps[k]];
		any_bad |= !job_ok(d);
		rn_status res = js_failed(d->state) && d->continue_on_error ? RN_ST_SUCCESS : js_status(d->state);
		rn_context_needs_record(needs, d->job, res, d->outputs);
	}
	int run = 0;
	const char *why = NULL;
	char *bad = NULL;
	char run_id[32];
	snprintf(run_id, sizeof(run_id), "%lld", (long long)ps->p.id);
	if (rn_context_job_decide(&run, &why, ps->m->p, node, needs, any_bad, c->secrets, ps->p.git, run_id, NULL) <
	    0)
		bad = rn_xasprintf("bad condition: %s", rn_error_last());
	if (!run) {
		finalize(c, ps, i, RN_JS_SKIPPED, bad ? bad : why, now);
		json_decref(needs);
	} else if (stopping && !wants_always(node->job)) {
		finalize(c, ps, i, RN_JS_SKIPPED, "an earlier job failed", now);
		json_decref(needs);
	} else {
		j->state = RN_JS_QUEUED;
		j->queued_ms = now;
		json_decref(j->needs);
		j->needs = needs;
		ps->dirty[i] = 1;
	}
	free(bad);
}

/* Decide every pending job whose needs are finished (repeatedly: a skip decides more), skip
 * queued jobs after a failure, and compute the pipeline's state. */
static void advance(rn_coord *c, pset *ps, int64_t now)
{
	if (ps->p.state != RN_PS_QUEUED && ps->p.state != RN_PS_RUNNING)
		return;
	if (!ps->m)
		ps->m = model_get(c, &ps->p);
	if (ps->m && ps->m->g.n != ps->n) {
		rn_error_set("pipeline %lld: the workflow expands to %zu jobs, %zu stored", (long long)ps->p.id,
			     ps->m->g.n, ps->n);
		ps->m = NULL;
	}
	if (!ps->m) {
		/* the stored workflow cannot be used any more: nothing else can start */
		char *why = rn_xstrdup(rn_error_last());
		for (size_t i = 0; i < ps->n; i++)
			if (ps->v[i].state == RN_JS_PENDING || ps->v[i].state == RN_JS_QUEUED)
				finalize(c, ps, i, RN_JS_FAILURE, why, now);
		free(why);
	} else {
		int stopping = 0;
		for (size_t i = 0; i < ps->n; i++)
			stopping |= counts_as_failure(&ps->v[i]);
		for (int changed = 1; changed;) {
			changed = 0;
			for (size_t i = 0; i < ps->n; i++) {
				if (ps->v[i].state != RN_JS_PENDING)
					continue;
				const rn_gnode *node = &ps->m->g.nodes[i];
				size_t k = 0;
				while (k < node->ndeps && rn_jstate_final(ps->v[node->deps[k]].state))
					k++;
				if (k < node->ndeps)
					continue;
				decide(c, ps, i, stopping, now);
				changed = 1;
			}
		}
		if (stopping)
			for (size_t i = 0; i < ps->n; i++)
				if (ps->v[i].state == RN_JS_QUEUED && !wants_always(ps->m->g.nodes[i].job))
					finalize(c, ps, i, RN_JS_SKIPPED, "an earlier job failed", now);
	}
	int all_final = 1, failed = 0, started = 0, cancelled = ps->p.cancel;
	for (size_t i = 0; i < ps->n; i++) {
		all_final &= rn_jstate_final(ps->v[i].state);
		failed |= counts_as_failure(&ps->v[i]);
		cancelled |= ps->v[i].state == RN_JS_CANCELLED;
		started |= ps->v[i].state == RN_JS_ASSIGNED || ps->v[i].state == RN_JS_RUNNING ||
			   ps->v[i].started_ms != 0;
	}
	rn_pstate st;
	if (all_final) {
		/* as `runner run`: a cancelled run is cancelled, else a failure fails it; a job cancelled
		 * on its own (a user's cancel, an agent stopped) leaves it cancelled, not successful */
		st = ps->p.cancel ? RN_PS_CANCELLED : failed ? RN_PS_FAILURE : cancelled ? RN_PS_CANCELLED : RN_PS_SUCCESS;
		ps->p.finished_ms = now;
		model_evict(c, ps->p.id);
		ps->m = NULL;
		ps->pdirty = 1;
	} else {
		st = started ? RN_PS_RUNNING : RN_PS_QUEUED;
	}
	if (st != ps->p.state) {
		ps->p.state = st;
		ps->pdirty = 1;
	}
}

/* Save, commit, wake the waiters and notify what changed; rolls back on failure. */
static int commit(rn_coord *c, pset *ps)
{
	int rc = ps ? pset_save(c, ps) : 0;
	if (rc == 0)
		rc = rn_store_commit(c->store);
	else
		rn_store_rollback(c->store);
	wake(c);
	if (rc == 0 && ps)
		note_pset(c, ps);
	return rc;
}

/* ---- open / close / the expiry thread ---- */

static int expire_leases(rn_coord *c, int64_t now);

static void *ticker_main(void *arg)
{
	rn_coord *c = arg;
	lock(c);
	int64_t next = mono_ms() + 1000;
	while (!c->stopping) {
		if (mono_ms() < next) {
			wait_until(c, &c->tick, next);
			continue;
		}
		next = mono_ms() + 1000;
		if (expire_leases(c, rn_wall_ms()) < 0)
			fprintf(stderr, "runner serve: lease expiry: %s\n", rn_error_last());
	}
	unlock(c);
	return NULL;
}

/* Remove what interrupted uploads left in the temp directory. */
static void clean_tmp(rn_coord *c)
{
	rn_rm_rf(c->tmp_dir);
	rn_mkdir_p(c->tmp_dir, 0700);
}

/* Decide what a crash may have left undecided. */
static int recover(rn_coord *c)
{
	int64_t *ids = NULL;
	size_t n = 0;
	int64_t now = rn_wall_ms();
	int rc = rn_store_begin(c->store);
	if (rc == 0)
		rc = rn_store_jobs_extend_leases(c->store, now, c->ack_ms, c->ttl_ms);
	if (rc == 0)
		rc = rn_store_pipelines_live(c->store, &ids, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		pset ps;
		rc = pset_load(c, ids[i], &ps);
		if (rc == 0) {
			advance(c, &ps, now);
			rc = pset_save(c, &ps);
		}
		/* its notify sink is made again at its next event (what happened meanwhile is lost) */
		if (rc == 0 && !pstate_final(ps.p.state) && ps.m && ps.m->p->nnotify > 0)
			note_add(c, ps.p.id, ps.p.started_ms != 0);
		pset_free(&ps);
	}
	free(ids);
	if (rc == 0)
		return rn_store_commit(c->store);
	rn_store_rollback(c->store);
	return rc;
}

int rn_coord_open(rn_coord **out, const rn_coord_opts *o)
{
	*out = NULL;
	rn_coord *c = rn_xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->state, &ca);
	pthread_cond_init(&c->logs, &ca);
	pthread_cond_init(&c->tick, &ca);
	pthread_condattr_destroy(&ca);
	c->data_dir = rn_xstrdup(o->data_dir);
	c->git_dir = rn_xasprintf("%s/git", o->data_dir);
	c->logs_dir = rn_xasprintf("%s/logs", o->data_dir);
	c->art_dir = rn_xasprintf("%s/artifacts", o->data_dir);
	c->tmp_dir = rn_xasprintf("%s/tmp", o->data_dir);
	c->ttl_ms = o->lease_ttl_ms > 0 ? o->lease_ttl_ms : 30000;
	c->ack_ms = o->ack_timeout_ms > 0 ? o->ack_timeout_ms : 10000;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 3;
	c->max_artifact = o->max_artifact_size > 0 ? o->max_artifact_size : (int64_t)1 << 30;
	c->secrets = o->secrets ? json_incref(o->secrets) : json_object();
	c->metrics = o->metrics;
	c->masker = rn_masker_new();
	const char *sname;
	json_t *sval;
	json_object_foreach(c->secrets, sname, sval)
		if (json_is_string(sval))
			rn_masker_add(c->masker, json_string_value(sval));
	int rc = 0;
	const char *dirs[] = { c->git_dir, c->logs_dir, c->art_dir };
	for (size_t i = 0; rc == 0 && i < RN_ARRAY_LEN(dirs); i++)
		rc = rn_mkdir_p(dirs[i], 0755);
	if (rc == 0) {
		clean_tmp(c);
		char *db = rn_xasprintf("%s/runner.db", o->data_dir);
		rc = rn_store_open(&c->store, db);
		free(db);
	}
	if (rc == 0)
		rc = recover(c);
	if (rc == 0 && pthread_create(&c->ticker, NULL, ticker_main, c) != 0)
		rc = rn_error_set("cannot start the lease thread");
	if (rc < 0) {
		rn_coord_close(c);
		return rc < 0 ? rc : RN_EIO;
	}
	c->ticker_started = 1;
	*out = c;
	return 0;
}

void rn_coord_set_base_url(rn_coord *c, const char *url)
{
	lock(c);
	set_str(&c->base_url, url);
	unlock(c);
}

void rn_coord_stop(rn_coord *c)
{
	lock(c);
	c->stopping = 1;
	wake(c);
	pthread_cond_broadcast(&c->tick);
	unlock(c);
}

int rn_coord_stopping(rn_coord *c)
{
	lock(c);
	int s = c->stopping;
	unlock(c);
	return s;
}

void rn_coord_close(rn_coord *c)
{
	if (!c)
		return;
	rn_coord_stop(c);
	if (c->ticker_started)
		pthread_join(c->ticker, NULL);
	for (size_t i = 0; i < MODEL_CACHE; i++)
		model_drop(&c->cache[i]);
	while (c->notes)
		note_drop(c, c->notes->id); /* live pipelines: their threads deliver what is queued */
	rn_masker_free(c->masker);
	free(c->base_url);
	rn_store_close(c->store);
	json_decref(c->secrets);
	free(c->data_dir);
	free(c->git_dir);
	free(c->logs_dir);
	free(c->art_dir);
	free(c->tmp_dir);
	pthread_cond_destroy(&c->state);
	pthread_cond_destroy(&c->logs);
	pthread_cond_destroy(&c->tick);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- pipelines ---- */

/* The git context {sha, ref, branch} of ref at sha in the mirror. */
static json_t *git_context(const char *mirror, const char *ref, const char *sha)
{
	char *full = NULL;
	char tmp[41];
	if (!ref || !*ref || strcmp(ref, "HEAD") == 0) {
		if (rn_gitread_default_branch(&full, mirror) == 0 && rn_gitread_resolve(tmp, mirror, full) == 0 &&
		    strcmp(tmp, sha) == 0) {
			/* HEAD is that branch */
		} else {
			free(full);
			full = NULL;
		}
	} else if (rn_startswith(ref, "refs/")) {
		full = rn_xstrdup(ref);
	} else {
		static const char *const prefixes[] = { "refs/heads/", "refs/tags/" };
		for (size_t i = 0; !full && i < RN_ARRAY_LEN(prefixes); i++) {
			char *cand = rn_xasprintf("%s%s", prefixes[i], ref);
			if (rn_gitread_resolve(tmp, mirror, cand) == 0)
				full = cand;
			else
				free(cand);
		}
	}
	const char *branch = full && rn_startswith(full, "refs/heads/") ? full + 11 : "";
	json_t *g = json_pack("{s:s, s:s, s:s}", "sha", sha, "ref", full ? full : sha, "branch", branch);
	free(full);
	rn_error_clear();
	return g;
}

/* The problems of d as an array of "FILE:LINE:COL: error: msg" strings. */
static json_t *problem_lines(rn_diags *d)
{
	json_t *a = json_array();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return a;
	rn_diags_print(d, f);
	fclose(f);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		json_array_append_new(a, json_string(line));
	free(text);
	return a;
}

/* One problem without a position: "FILE: error: msg". */
static json_t *one_problem(const char *file, const char *msg)
{
	json_t *a = json_array();
	json_array_append_new(a, json_sprintf("%s: error: %s", file, msg));
	return a;
}

int rn_coord_pipeline_create(rn_coord *c, const rn_coord_submit *s, json_t **out, json_t **problems)
{
	*out = NULL;
	*problems = NULL;
	const char *ref = s->ref && *s->ref ? s->ref : "HEAD";
	const char *file = s->file && *s->file ? s->file : ".pipeline.yml";
	char *mirror = NULL, *text = NULL;
	size_t len = 0;
	rn_pipeline *wp = NULL;
	rn_graph g = { NULL, 0 };
	rn_diags d = RN_DIAGS_INIT(file);
	json_t *git = NULL;
	char sha[41];
	int rc;

	rn_git_opts go = { .cache_dir = c->git_dir, .progress = RN_GIT_PROGRESS_NONE };
	rc = rn_git_mirror_update(&mirror, c->git_dir, s->repo, &go);
	if (rc < 0) {
		char *shown = rn_git_redact_url(s->repo);
		char *msg = rn_xstrdup(rn_error_last());
		rn_error_set("cannot fetch %s: %s", shown, msg);
		free(shown);
		free(msg);
		rc = RN_EIO;
		goto done;
	}
	rc = rn_gitread_resolve(sha, mirror, s->sha ? s->sha : ref);
	if (rc < 0 || (s->sha && strcmp(sha, s->sha) != 0)) {
		if (rc == RN_ENOTFOUND || rc == RN_EINVALID || rc == 0) {
			rn_error_set("no commit '%s' in the repository", s->sha ? s->sha : ref);
			rc = RN_ENOTFOUND;
		}
		goto done;
	}
	git = git_context(mirror, ref, sha);
	if (s->yaml) {
		text = rn_xstrdup(s->yaml);
		len = strlen(text);
	} else {
		rc = rn_gitread_file(&text, &len, mirror, sha, file, RN_WORKFLOW_MAX_BYTES);
		if (rc == RN_ENOTFOUND || rc == RN_ETOOBIG || rc == RN_EINVALID) {
			char *msg = rn_xasprintf("%s (commit %.12s)", rn_error_last(), sha);
			*problems = one_problem(file, msg);
			rn_error_set("%s: %s", file, msg);
			free(msg);
			rc = RN_EINVALID;
			goto done;
		}
		if (rc < 0)
			goto done;
	}
	if (memchr(text, '\0', len)) {
		*problems = one_problem(file, "the workflow contains a NUL byte");
		rn_error_set("%s: the workflow contains a NUL byte", file);
		rc = RN_EINVALID;
		goto done;
	}
	rc = rn_workflow_parse(&wp, file, text, len, &d);
	if (rc == 0)
		rc = rn_graph_build(&g, wp, &d);
	if (rc < 0 || d.errors) {
		*problems = problem_lines(&d);
		rn_error_set("%s: invalid workflow (%zu problem%s)", file, d.errors, d.errors == 1 ? "" : "s");
		rc = RN_EINVALID;
		goto done;
	}

	int64_t now = rn_wall_ms();
	lock(c);
	rc = rn_store_begin(c->store);
	rn_store_pipeline rec = { 0 };
	if (rc == 0) {
		rec.name = (char *)wp->name;
		rec.repo = (char *)s->repo;
		rec.ref = (char *)ref;
		rec.sha = sha;
		rec.file = (char *)file;
		rec.git = git;
		rec.workflow = text;
		rec.env = s->env ? s->env : json_object();
		rec.state = RN_PS_QUEUED;
		rec.created_ms = now;
		rc = rn_store_pipeline_add(c->store, &rec);
		if (!s->env)
			json_decref(rec.env);
	}
	for (size_t i = 0; rc == 0 && i < g.n; i++) {
		const rn_gnode *node = &g.nodes[i];
		json_t *runs_on = json_array();
		for (size_t k = 0; k < node->job->runs_on.n; k++)
			json_array_append_new(runs_on, json_string(node->job->runs_on.v[k]));
		rn_store_job j = {
			.pipeline = rec.id, .n = (int)i + 1, .name = node->name, .job = (char *)node->job->id,
			.state = RN_JS_PENDING, .attempt = 1, .group = (int)node->group + 1,
			.max_parallel = node->job->max_parallel, .continue_on_error = node->job->continue_on_error,
			.runs_on = runs_on, .outputs = json_object(), .steps = initial_steps(node->job),
		};
		rc = rn_store_job_put(c->store, &j);
		json_decref(j.runs_on);
		json_decref(j.outputs);
		json_decref(j.steps);
	}
	if (rc == 0) {
		pset ps;
		rc = pset_load(c, rec.id, &ps);
		if (rc == 0 && wp->nnotify > 0)
			note_add(c, rec.id, 0); /* its sink (and thread) comes with its first event */
		if (rc == 0) {
			ps.m = model_put(c, rec.id, wp, &g);
			wp = NULL;
			memset(&g, 0, sizeof(g));
			advance(c, &ps, now);
			rc = commit(c, &ps);
			if (rc == 0)
				*out = pipeline_json(&ps.p, ps.v, ps.n, 1);
		} else {
			rn_store_rollback(c->store);
		}
		pset_free(&ps);
	} else {
		rn_store_rollback(c->store);
	}
	if (rc < 0) {
		model_evict(c, rec.id);
		note_drop(c, rec.id);
		rc = RN_ERROR;
	}
	unlock(c);
done:
	rn_diags_free(&d);
	rn_graph_free(&g);
	rn_pipeline_free(wp);
	json_decref(git);
	free(text);
	free(mirror);
	return rc;
}

int rn_coord_pipeline_get(rn_coord *c, int64_t id, json_t **out)
{
	*out = NULL;
	lock(c);
	rn_store_pipeline p;
	rn_store_job *v = NULL;
	size_t n = 0;
	int rc = rn_store_pipeline_get(c->store, id, &p);
	if (rc == 0)
		rc = rn_store_jobs_of(c->store, id, &v, &n);
	if (rc == 0)
		*out = pipeline_json(&p, v, n, 1);
	unlock(c);
	rn_store_pipeline_clear(&p);
	rn_store_jobs_free(v, n);
	return rc;
}

int rn_coord_pipelines(rn_coord *c, int64_t limit, json_t **out)
{
	*out = NULL;
	rn_store_pipeline *v = NULL;
	size_t n = 0;
	lock(c);
	int rc = rn_store_pipelines_list(c->store, limit, &v, &n);
	unlock(c);
	if (rc < 0)
		return rc;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, pipeline_json(&v[i], NULL, 0, 0));
	rn_store_pipelines_free(v, n);
	*out = json_pack("{s:o}", "pipelines", a);
	return 0;
}

int rn_coord_job_get(rn_coord *c, int64_t pipeline, int n, json_t **out)
{
	*out = NULL;
	rn_store_job j;
	lock(c);
	int rc = rn_store_job_get(c->store, pipeline, n, &j);
	unlock(c);
	if (rc == 0)
		*out = job_json(&j);
	rn_store_job_clear(&j);
	return rc;
}

int rn_coord_pipeline_cancel(rn_coord *c, int64_t id, json_t **out)
{
	*out = NULL;
	int64_t now = rn_wall_ms();
	lock(c);
	pset ps;
	int rc = rn_store_begin(c->store);
	if (rc == 0)
		rc = pset_load(c, id, &ps);
	else
		memset(&ps, 0, sizeof(ps));
	if (rc == 0 && (ps.p.state == RN_PS_QUEUED || ps.p.state == RN_PS_RUNNING)) {
		ps.p.cancel = 1;
		ps.pdirty = 1;
		for (size_t i = 0; i < ps.n; i++)
			cancel_one(c, &ps, i, "cancelled", now);
		advance(c, &ps, now);
	}
	if (rc == 0)
		rc = commit(c, &ps);
	else
		rn_store_rollback(c->store);
	if (rc == 0)
		*out = pipeline_json(&ps.p, ps.v, ps.n, 1);
	unlock(c);
	pset_free(&ps);
	return rc;
}

int rn_coord_job_cancel(rn_coord *c, int64_t pipeline, int n, json_t **out)
{
	*out = NULL;
	int64_t now = rn_wall_ms();
	lock(c);
	pset ps;
	int rc = rn_store_begin(c->store);
	if (rc == 0)
		rc = pset_load(c, pipeline, &ps);
	else
		memset(&ps, 0, sizeof(ps));
	if (rc == 0 && (n < 1 || (size_t)n > ps.n)) {
		rn_error_set("no job %lld.%d", (long long)pipeline, n);
		rc = RN_ENOTFOUND;
	}
	if (rc == 0) {
		cancel_one(c, &ps, (size_t)n - 1, "cancelled", now);
		advance(c, &ps, now);
		rc = commit(c, &ps);
	} else {
		rn_store_rollback(c->store);
	}
	if (rc == 0)
		*out = job_json(&ps.v[n - 1]);
	unlock(c);
	pset_free(&ps);
	return rc;
}

/* ---- logs ---- */

static int64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

int rn_coord_log_read(rn_coord *c, int64_t pipeline, int n, int attempt, int64_t offset, int64_t max,
		      int64_t wait_ms, rn_coord_log *out)
{
	*out = (rn_coord_log){ .fd = -1 };
	int64_t deadline = mono_ms() + wait_ms;
	char *path = NULL;
	int rc;
	lock(c);
	for (;;) {
		rn_store_job j;
		rc = rn_store_job_get(c->store, pipeline, n, &j);
		if (rc < 0)
			break;
		int a = attempt ? attempt : j.attempt;
		if (a < 1 || a > j.attempt) {
			rn_error_set("job %lld.%d has no attempt %d", (long long)pipeline, n, a);
			rn_store_job_clear(&j);
			rc = RN_ENOTFOUND;
			break;
		}
		out->attempt = a;
		out->complete = a < j.attempt || rn_jstate_final(j.state);
		rn_store_job_clear(&j);
		free(path);
		path = log_path(c, pipeline, n, a);
		int64_t size = file_size(path);
		out->length = size;
		out->offset = offset < size ? offset : size;
		out->count = size - out->offset;
		if (out->count > 0 || out->complete || c->stopping || mono_ms() >= deadline)
			break;
		wait_until(c, &c->logs, deadline);
	}
	unlock(c);
	if (rc == 0 && out->count > 0) {
		if (out->count > max)
			out->count = max;
		out->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (out->fd < 0) {
			out->count = 0;
			rc = rn_error_errno("%s", path);
		}
	}
	free(path);
	return rc;
}

/* ---- artifacts (reading) ---- */

int rn_coord_artifacts(rn_coord *c, int64_t pipeline, json_t **out)
{
	*out = NULL;
	rn_store_pipeline p;
	rn_store_artifact *v = NULL;
	size_t n = 0;
	lock(c);
	int rc = rn_store_pipeline_get(c->store, pipeline, &p);
	if (rc == 0)
		rc = rn_store_artifacts_of(c->store, pipeline, &v, &n);
	unlock(c);
	rn_store_pipeline_clear(&p);
	if (rc < 0)
		return rc;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, artifact_json_of(&v[i]));
	rn_store_artifacts_free(v, n);
	*out = json_pack("{s:o}", "artifacts", a);
	return 0;
}

/* The job of a live lease of agent_id into *j (the lock is held). RN_ENOTFOUND if it is gone. */
static int live_lease(rn_coord *c, const char *lease, int64_t agent_id, rn_store_job *j)
{
	int rc = rn_store_job_by_lease(c->store, lease, j);
	if (rc == RN_ENOTFOUND || (rc == 0 && (j->agent_id != agent_id || rn_jstate_final(j->state)))) {
		rn_store_job_clear(j);
		rn_error_set("lease gone");
		return RN_ENOTFOUND;
	}
	return rc;
}

int rn_coord_artifact_open(rn_coord *c, int64_t pipeline, const char *lease, int64_t agent_id, const char *name,
			   int *fd, json_t **meta)
{
	*fd = -1;
	*meta = NULL;
	rn_store_artifact a = { 0 };
	int rc = 0;
	lock(c);
	if (lease) {
		rn_store_job j;
		rc = live_lease(c, lease, agent_id, &j);
		if (rc == RN_ENOTFOUND)
			rc = RN_EINVALID;
		if (rc == 0)
			pipeline = j.pipeline;
		rn_store_job_clear(&j);
	}
	if (rc == 0)
		rc = rn_store_artifact_get(c->store, pipeline, name, &a);
	if (rc == 0) {
		char *path = artifact_path(c, pipeline, a.name, a.format);
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0)
			rc = rn_error_errno("%s", path);
		free(path);
	}
	unlock(c);
	if (rc == 0)
		*meta = artifact_json_of(&a);
	rn_store_artifact_clear(&a);
	return rc;
}

/* ---- agents ---- */

int rn_coord_agent_register(rn_coord *c, const char *name, json_t *labels, int capacity, const char *version,
			    json_t **out)
{
	*out = NULL;
	char token[65], hash[65];
	int rc = random_hex(token);
	if (rc < 0)
		return rc;
	sha256_hex(hash, token, strlen(token));
	rn_store_agent a = {
		.name = (char *)name, .token_sha256 = hash, .labels = labels, .capacity = capacity,
		.version = (char *)version, .created_ms = rn_wall_ms(),
	};
	lock(c);
	rc = rn_store_agent_add(c->store, &a);
	unlock(c);
	if (rc == 0)
		*out = json_pack("{s:o, s:s}", "id", json_sprintf("%lld", (long long)a.id), "token", token);
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}

int rn_coord_agent_auth(rn_coord *c, const char *token, int64_t *agent_id)
{
	*agent_id = 0;
	char hash[65];
	sha256_hex(hash, token, strlen(token));
	rn_store_agent a;
	lock(c);
	int rc = rn_store_agent_by_token(c->store, hash, &a);
	unlock(c);
	if (rc == 0 && (!a.token_sha256 || strlen(a.token_sha256) != 64 || CRYPTO_memcmp(a.token_sha256, hash, 64) != 0))
		rc = RN_ENOTFOUND;
	if (rc == 0)
		*agent_id = a.id;
	rn_store_agent_clear(&a);
	return rc;
}

int rn_coord_agents(rn_coord *c, json_t **out)
{
	*out = NULL;
	rn_store_agent *v = NULL;
	size_t n = 0;
	json_t *a = json_array();
	lock(c);
	int rc = rn_store_agents_list(c->store, &v, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int64_t running = 0;
		rc = rn_store_agent_active(c->store, v[i].id, &running);
		json_array_append_new(a, json_pack("{s:o, s:s, s:O, s:i, s:I, s:o, s:o}", "id",
						   json_sprintf("%lld", (long long)v[i].id), "name", v[i].name,
						   "labels", v[i].labels, "capacity", v[i].capacity, "running",
						   (json_int_t)running, "last_seen_ms", opt_ms(v[i].last_seen_ms),
						   "version", opt_str(v[i].version)));
	}
	unlock(c);
	rn_store_agents_free(v, n);
	if (rc < 0) {
		json_decref(a);
		return rc;
	}
	*out = json_pack("{s:o}", "agents", a);
	return 0;
}

/* ---- the queue ---- */

static int labels_match(json_t *want, json_t *have)
{
	size_t i, k;
	json_t *w, *h;
	json_array_foreach(want, i, w) {
		int found = 0;
		json_array_foreach(have, k, h) {
			if (json_equal(w, h)) {
				found = 1;
				break;
			}
		}
		if (!found)
			return 0;
	}
	return 1;
}

/* The JOBSPEC of job j of pipeline p (the lock is held). */
static json_t *jobspec(rn_coord *c, const rn_store_pipeline *p, const rn_store_job *j)
{
	json_t *arts = json_array();
	rn_store_artifact *v = NULL;
	size_t n = 0;
	if (rn_store_artifacts_of(c->store, p->id, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arts, artifact_json_of(&v[i]));
	rn_store_artifacts_free(v, n);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_sprintf("%lld.%d", (long long)j->pipeline, j->n));
	json_object_set_new(o, "pipeline", json_sprintf("%lld", (long long)j->pipeline));
	json_object_set_new(o, "name", json_string(j->name));
	json_object_set_new(o, "job", json_string(j->job));
	json_object_set_new(o, "attempt", json_integer(j->attempt));
	json_object_set_new(o, "repo", json_string(p->repo));
	json_object_set_new(o, "ref", json_string(p->ref));
	json_object_set_new(o, "sha", json_string(p->sha));
	json_object_set_new(o, "file", json_string(p->file));
	json_object_set_new(o, "workflow", json_string(p->workflow ? p->workflow : ""));
	json_object_set_new(o, "run_id", json_sprintf("%lld", (long long)j->pipeline));
	json_object_set_new(o, "git", json_deep_copy(p->git));
	json_object_set_new(o, "needs", j->needs ? json_deep_copy(j->needs) : json_object());
	json_object_set_new(o, "env", json_deep_copy(p->env));
	json_object_set_new(o, "secrets", json_deep_copy(c->secrets));
	json_object_set_new(o, "artifacts", arts);
	return o;
}

typedef struct pick {
	rn_coord *c;
	const rn_store_agent *a;
	int64_t pipeline;
	int n;
	int rc;
} pick;

/* The first queued job the agent has the labels for and whose matrix is under max-parallel. */
static int pick_cb(const rn_store_qent *q, void *arg)
{
	pick *p = arg;
	if (!labels_match(q->runs_on, p->a->labels))
		return 0;
	if (q->max_parallel > 0) {
		int64_t active = 0;
		p->rc = rn_store_group_active(p->c->store, q->pipeline, q->group, &active);
		if (p->rc < 0)
			return 1;
		if (active >= q->max_parallel)
			return 0;
	}
	p->pipeline = q->pipeline;
	p->n = q->n;
	return 1;
}

/* Lease the first queued job agent a can take; *assignment NULL if none (the lock is held). */
static int try_assign(rn_coord *c, const rn_store_agent *a, json_t **assignment)
{
	*assignment = NULL;
	pick pk = { .c = c, .a = a };
	int rc = rn_store_queue_each(c->store, pick_cb, &pk);
	if (rc == 0)
		rc = pk.rc;
	if (rc < 0 || !pk.n)
		return rc;
	int64_t now = rn_wall_ms();
	char lease[65];
	rn_store_pipeline p = { 0 };
	rn_store_job j = { 0 };
	rc = random_hex(lease);
	if (rc == 0)
		rc = rn_store_begin(c->store);
	if (rc < 0)
		return rc;
	rc = rn_store_pipeline_get(c->store, pk.pipeline, &p);
	if (rc == 0)
		rc = rn_store_job_get(c->store, pk.pipeline, pk.n, &j);
	if (rc == 0) {
		j.state = RN_JS_ASSIGNED;
		set_str(&j.lease, lease);
		j.agent_id = a->id;
		set_str(&j.agent, a->name);
		j.lease_expires_ms = now + c->ack_ms;
		free(j.reason);
		j.reason = NULL;
		rc = rn_store_job_put(c->store, &j);
	}
	if (rc == 0 && (!p.started_ms || p.state == RN_PS_QUEUED)) {
		if (!p.started_ms)
			p.started_ms = now;
		p.state = RN_PS_RUNNING;
		rc = rn_store_pipeline_put(c->store, &p);
	}
	if (rc == 0)
		rc = rn_store_commit(c->store);
	else
		rn_store_rollback(c->store);
	if (rc == 0) {
		note_run_started(c, &p);
		rn_metrics_observe(c->metrics, RN_M_QUEUE_WAIT, (double)(now - j.queued_ms) / 1000.0);
		*assignment = json_pack("{s:s, s:I, s:o}", "lease", lease, "lease_ttl_ms", (json_int_t)c->ttl_ms, "job",
					jobspec(c, &p, &j));
	}
	rn_store_pipeline_clear(&p);
	rn_store_job_clear(&j);
	return rc;
}

static int touch_agent(rn_coord *c, rn_store_agent *a, json_t *labels)
{
	if (labels) {
		json_decref(a->labels);
		a->labels = json_deep_copy(labels);
	}
	a->last_seen_ms = rn_wall_ms();
	return rn_store_agent_put(c->store, a);
}

int rn_coord_poll(rn_coord *c, int64_t agent_id, json_t *labels, int64_t wait_ms, json_t **assignment)
{
	*assignment = NULL;
	int64_t deadline = mono_ms() + wait_ms;
	rn_store_agent a;
	lock(c);
	int rc = rn_store_agent_get(c->store, agent_id, &a);
	if (rc == 0)
		rc = touch_agent(c, &a, labels);
	int64_t touched = mono_ms();
	while (rc == 0 && !c->stopping) {
		rc = try_assign(c, &a, assignment);
		if (rc < 0 || *assignment || mono_ms() >= deadline)
			break;
		wait_until(c, &c->state, deadline);
	}
	if (rc == 0 && mono_ms() - touched > 1000)
		rc = touch_agent(c, &a, NULL);
	unlock(c);
	rn_store_agent_clear(&a);
	if (rc < 0) {
		json_decref(*assignment);
		*assignment = NULL;
	}
	return rc;
}

/* ---- leases: the calls of an agent touch only their job's row ---- */

/* Begin a transaction and load the job of a live lease (the lock is held). */
static int lease_begin(rn_coord *c, const char *lease, int64_t agent_id, rn_store_job *j)
{
	memset(j, 0, sizeof(*j));
	int rc = rn_store_begin(c->store);
	if (rc == 0) {
		rc = live_lease(c, lease, agent_id, j);
		if (rc < 0)
			rn_store_rollback(c->store);
	}
	return rc;
}

/* Write the job (if dirty) and commit; rolls back on failure. Nobody waits for what these calls
 * change (renewals, acks, steps): no wake-up. */
static int lease_commit(rn_coord *c, rn_store_job *j, int dirty)
{
	int rc = dirty ? rn_store_job_put(c->store, j) : 0;
	if (rc == 0)
		rc = rn_store_commit(c->store);
	else
		rn_store_rollback(c->store);
	return rc;
}

/* The agent works on it: an assigned lease becomes running (implicit or explicit ack); 1 if
 * that changed the job. */
static int activate(rn_coord *c, rn_store_job *j, int64_t now)
{
	if (j->state != RN_JS_ASSIGNED)
		return 0;
	j->state = RN_JS_RUNNING;
	j->started_ms = now;
	j->lease_expires_ms = now + c->ttl_ms;
	return 1;
}

int rn_coord_ack(rn_coord *c, const char *lease, int64_t agent_id, json_t **out)
{
	*out = NULL;
	rn_store_job j;
	int64_t now = rn_wall_ms();
	lock(c);
	int rc = lease_begin(c, lease, agent_id, &j);
	if (rc == 0) {
		int started = activate(c, &j, now);
		j.lease_expires_ms = now + c->ttl_ms;
		rc = lease_commit(c, &j, 1);
		if (rc == 0 && started)
			note_job(c, NULL, &j, 0);
	}
	unlock(c);
	rn_store_job_clear(&j);
	if (rc == 0)
		*out = json_pack("{s:I}", "lease_ttl_ms", (json_int_t)c->ttl_ms);
	return rc;
}

/* Renew a live lease; *cancel gets its cancel flag (the lock is held). */
static int renew(rn_coord *c, const char *lease, int64_t agent_id, int *cancel)
{
	rn_store_job j;
	int64_t now = rn_wall_ms();
	int rc = lease_begin(c, lease, agent_id, &j);
	if (rc == 0) {
		int started = activate(c, &j, now);
		j.lease_expires_ms = now + c->ttl_ms;
		*cancel = j.cancel;
		rc = lease_commit(c, &j, 1);
		if (rc == 0 && started)
			note_job(c, NULL, &j, 0);
	}
	rn_store_job_clear(&j);
	return rc;
}

int rn_coord_heartbeat(rn_coord *c, const char *lease, int64_t agent_id, int64_t wait_ms, int *cancel)
{
	*cancel = 0;
	int64_t deadline = mono_ms() + wait_ms;
	lock(c);
	int rc = renew(c, lease, agent_id, cancel);
	if (rc == 0 && !*cancel && wait_ms > 0) {
		while (!c->stopping && mono_ms() < deadline) {
			wait_until(c, &c->state, deadline);
			rn_store_job j;
			rc = live_lease(c, lease, agent_id, &j);
			if (rc == 0)
				*cancel = j.cancel;
			rn_store_job_clear(&j);
			if (rc < 0 || *cancel)
				break;
		}
		if (rc == 0)
			rc = renew(c, lease, agent_id, cancel);
	}
	unlock(c);
	return rc;
}

int rn_coord_log_append(rn_coord *c, const char *lease, int64_t agent_id, int64_t offset, const char *data,
			size_t len, int64_t *length)
{
	*length = 0;
	rn_store_job j;
	int64_t now = rn_wall_ms();
	lock(c);
	int rc = lease_begin(c, lease, agent_id, &j);
	if (rc < 0) {
		unlock(c);
		return rc;
	}
	int dirty = activate(c, &j, now);
	char *dir = rn_xasprintf("%s/%lld", c->logs_dir, (long long)j.pipeline);
	char *path = log_path(c, j.pipeline, j.n, j.attempt);
	int fd = -1;
	rc = rn_mkdir_p(dir, 0755);
	if (rc == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			rc = rn_error_errno("%s", path);
	}
	struct stat st;
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = rn_error_errno("%s", path);
	if (rc == 0) {
		int64_t have = (int64_t)st.st_size;
		*length = have;
		if (offset > have) {
			rn_error_set("gap: the log has %lld bytes, not %lld", (long long)have, (long long)offset);
			rc = RN_EINVALID;
		} else if (offset + (int64_t)len > have) {
			size_t skip = (size_t)(have - offset);
			rc = rn_write_all(fd, data + skip, len - skip);
			if (rc == 0) {
				*length = have + (int64_t)(len - skip);
				rn_metrics_add(c->metrics, RN_M_LOG_BYTES, len - skip);
				pthread_cond_broadcast(&c->logs);
			} else if (ftruncate(fd, (off_t)have) < 0) {
				/* a short write: put the file back to what it had */
				rc = rn_error_errno("%s", path);
			}
		}
	}
	if (fd >= 0)
		close(fd);
	int rc2 = lease_commit(c, &j, dirty);
	if (rc2 == 0 && dirty)
		note_job(c, NULL, &j, 0);
	unlock(c);
	rn_store_job_clear(&j);
	free(dir);
	free(path);
	return rc < 0 ? rc : rc2;
}

/* The index of a STEP object, or -1. */
static json_int_t step_index(json_t *s)
{
	json_t *i = json_object_get(s, "index");
	return json_is_integer(i) ? json_integer_value(i) : -1;
}

int rn_coord_steps(rn_coord *c, const char *lease, int64_t agent_id, json_t *steps, int *cancel)
{
	*cancel = 0;
	rn_store_job j;
	int64_t now = rn_wall_ms();
	lock(c);
	int rc = lease_begin(c, lease, agent_id, &j);
	int started = 0;
	if (rc == 0) {
		started = activate(c, &j, now);
		size_t k;
		json_t *s;
		json_array_foreach(steps, k, s) {
			json_int_t idx = step_index(s);
			size_t pos = 0, m = json_array_size(j.steps);
			while (pos < m && step_index(json_array_get(j.steps, pos)) < idx)
				pos++;
			if (pos < m && step_index(json_array_get(j.steps, pos)) == idx)
				json_array_set(j.steps, pos, s);
			else if (m < MAX_STEPS)
				json_array_insert(j.steps, pos, s);
		}
		*cancel = j.cancel;
		rc = lease_commit(c, &j, 1);
		if (rc == 0 && started)
			note_job(c, NULL, &j, 0);
	}
	unlock(c);
	rn_store_job_clear(&j);
	return rc;
}

/* Whether finishing job n (1-based) of a pipeline can change anything else: a failure (fail-fast,
 * skipping), a cancelled pipeline, the last job, or a user whose needs are now all finished. */
static int finish_decides(rn_coord *c, const rn_store_pipeline *p, const model *m, const rn_store_job *j)
{
	if (!m || counts_as_failure(j) || p->cancel)
		return 1;
	rn_jstate *st = NULL;
	size_t n = 0;
	if (rn_store_job_states(c->store, p->id, &st, &n) < 0 || n != m->g.n) {
		free(st);
		return 1;
	}
	int decides = 1;
	for (size_t i = 0; i < n && decides; i++)
		decides = rn_jstate_final(st[i]);
	const rn_gnode *node = &m->g.nodes[j->n - 1];
	for (size_t u = 0; u < node->nusers && !decides; u++) {
		const rn_gnode *un = &m->g.nodes[node->users[u]];
		if (st[node->users[u]] != RN_JS_PENDING)
			continue;
		size_t k = 0;
		while (k < un->ndeps && rn_jstate_final(st[un->deps[k]]))
			k++;
		decides = k == un->ndeps;
	}
	free(st);
	return decides;
}

int rn_coord_finish(rn_coord *c, const char *lease, int64_t agent_id, rn_jstate state, json_t *outputs,
		    const char *reason, json_t **out)
{
	*out = NULL;
	int64_t now = rn_wall_ms();
	lock(c);
	/* a second finish of the same lease answers the job again */
	rn_store_job j;
	int rc = rn_store_job_by_lease(c->store, lease, &j);
	if (rc == 0 && j.agent_id == agent_id && rn_jstate_final(j.state)) {
		*out = job_json(&j);
		rn_store_job_clear(&j);
		unlock(c);
		return 0;
	}
	rn_store_job_clear(&j);
	rc = lease_begin(c, lease, agent_id, &j);
	if (rc < 0) {
		unlock(c);
		return rc;
	}
	if (!j.started_ms)
		j.started_ms = now;
	j.state = state;
	set_str(&j.reason, reason);
	j.finished_ms = now;
	j.lease_expires_ms = 0;
	json_decref(j.outputs);
	j.outputs = outputs ? json_deep_copy(outputs) : json_object();
	close_steps(&j);
	rn_metrics_observe(c->metrics, RN_M_JOB_DURATION, (double)(now - j.started_ms) / 1000.0);
	rc = rn_store_job_put(c->store, &j);
	rn_store_pipeline p = { 0 };
	if (rc == 0)
		rc = rn_store_pipeline_get(c->store, j.pipeline, &p);
	model *m = rc == 0 ? model_get(c, &p) : NULL;
	if (m && m->g.n <= (size_t)j.n - 1)
		m = NULL;
	pset ps = { 0 };
	if (rc == 0 && finish_decides(c, &p, m, &j)) {
		/* the whole pipeline: fail-fast, decisions, its state */
		rc = pset_load(c, j.pipeline, &ps);
		if (rc == 0) {
			ps.m = m;
			concluded(c, &ps, (size_t)j.n - 1, now);
			advance(c, &ps, now);
			rc = pset_save(c, &ps);
		}
	}
	if (rc == 0)
		rc = rn_store_commit(c->store);
	else
		rn_store_rollback(c->store);
	wake(c);
	if (rc == 0) {
		/* this job, then what it decided (ps.was has it final already) */
		note_job(c, &p, &j, 1);
		note_pset(c, &ps);
	}
	pset_free(&ps);
	unlock(c);
	if (rc == 0)
		*out = job_json(&j);
	rn_store_pipeline_clear(&p);
	rn_store_job_clear(&j);
	return rc;
}

/* Called every second by the ticker (the lock is held): leases not acknowledged in time go back
 * to the queue; expired ones are queued again as a new attempt, or fail after max_attempts. */
static int expire_leases(rn_coord *c, int64_t now)
{
	rn_store_job *v = NULL;
	size_t n = 0;
	int rc = rn_store_jobs_expired(c->store, now, &v, &n);
	for (size_t e = 0; rc == 0 && e < n; e++) {
		pset ps;
		rc = rn_store_begin(c->store);
		if (rc < 0)
			break;
		rc = pset_load(c, v[e].pipeline, &ps);
		size_t i = (size_t)v[e].n - 1;
		if (rc == 0 && ps.v[i].state == v[e].state && ps.v[i].lease && v[e].lease &&
		    strcmp(ps.v[i].lease, v[e].lease) == 0) {
			rn_store_job *j = &ps.v[i];
			ps.m = model_get(c, &ps.p);
			if (j->cancel) {
				finalize(c, &ps, i, RN_JS_CANCELLED, j->cancel_reason, now);
			} else if (j->state == RN_JS_ASSIGNED) {
				j->state = RN_JS_QUEUED;
				set_str(&j->reason, "the agent did not acknowledge the job in time; queued again");
			} else if (j->attempt < c->max_attempts) {
				j->state = RN_JS_QUEUED;
				j->attempt++;
				j->queued_ms = now;
				j->started_ms = 0;
				json_decref(j->outputs);
				j->outputs = json_object();
				if (ps.m) {
					json_decref(j->steps);
					j->steps = initial_steps(ps.m->g.nodes[i].job);
				}
				free(j->reason);
				j->reason = rn_xasprintf("agent %s lost (lease expired); attempt %d", j->agent ? j->agent : "?",
							 j->attempt);
			} else {
				finalize(c, &ps, i, RN_JS_FAILURE, "agent lost", now);
				concluded(c, &ps, i, now);
			}
			if (j->state == RN_JS_QUEUED) {
				free(j->lease);
				j->lease = NULL;
				free(j->agent);
				j->agent = NULL;
				j->agent_id = 0;
				j->lease_expires_ms = 0;
			}
			ps.dirty[i] = 1;
			advance(c, &ps, now);
		}
		if (rc == 0)
			rc = commit(c, &ps);
		else
			rn_store_rollback(c->store);
		pset_free(&ps);
	}
	rn_store_jobs_free(v, n);
	return rc;
}

/* ---- artifacts (uploads) ---- */

struct rn_coord_upload {
	char *lease;
	int64_t agent_id;
	char *name, *format, *tmp;
	int fd;
	EVP_MD_CTX *md;
	int64_t size, max;
};

void rn_coord_upload_abort(rn_coord_upload *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp)
		unlink(u->tmp);
	EVP_MD_CTX_free(u->md);
	free(u->lease);
	free(u->name);
	free(u->format);
	free(u->tmp);
	free(u);
}

/* Another job of the pipeline already has an artifact of this name (the lock is held). */
static int name_taken(rn_coord *c, const rn_store_job *j, const char *name, rn_store_artifact *old)
{
	int rc = rn_store_artifact_get(c->store, j->pipeline, name, old);
	if (rc == RN_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	if (old->job != j->n) {
		rn_error_set("artifact '%s' was uploaded by job %lld.%d", name, (long long)j->pipeline, old->job);
		return RN_EINVALID;
	}
	return 0;
}

int rn_coord_upload_begin(rn_coord *c, const char *lease, int64_t agent_id, const char *name, const char *format,
			  rn_coord_upload **out)
{
	*out = NULL;
	rn_store_job j;
	rn_store_artifact old = { 0 };
	lock(c);
	int rc = lease_begin(c, lease, agent_id, &j);
	if (rc == 0) {
		int dirty = activate(c, &j, rn_wall_ms());
		rc = name_taken(c, &j, name, &old);
		if (rc == 0)
			rc = lease_commit(c, &j, dirty);
		else
			rn_store_rollback(c->store);
		if (rc == 0 && dirty)
			note_job(c, NULL, &j, 0);
	}
	unlock(c);
	rn_store_job_clear(&j);
	rn_store_artifact_clear(&old);
	if (rc < 0)
		return rc;
	rn_coord_upload *u = rn_xcalloc(1, sizeof(*u));
	u->lease = rn_xstrdup(lease);
	u->agent_id = agent_id;
	u->name = rn_xstrdup(name);
	u->format = rn_xstrdup(format);
	u->max = c->max_artifact;
	u->tmp = rn_xasprintf("%s/upload-XXXXXX", c->tmp_dir);
	u->fd = mkostemp(u->tmp, O_CLOEXEC);
	if (u->fd < 0) {
		rc = rn_error_errno("%s", u->tmp);
		free(u->tmp);
		u->tmp = NULL;
		rn_coord_upload_abort(u);
		return rc;
	}
	u->md = EVP_MD_CTX_new();
	if (!u->md || EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1) {
		rn_coord_upload_abort(u);
		return rn_error_set("sha256: cannot initialise");
	}
	*out = u;
	return 0;
}

int rn_coord_upload_write(rn_coord_upload *u, const char *data, size_t len)
{
	if (u->size + (int64_t)len > u->max) {
		rn_error_set("artifact larger than %lld bytes", (long long)u->max);
		return RN_ETOOBIG;
	}
	int rc = rn_write_all(u->fd, data, len);
	if (rc < 0)
		return rc;
	EVP_DigestUpdate(u->md, data, len);
	u->size += (int64_t)len;
	return 0;
}

int rn_coord_upload_end(rn_coord *c, rn_coord_upload *u, const char *sha256, json_t **out)
{
	*out = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char got[65];
	EVP_DigestFinal_ex(u->md, md, &mdlen);
	hex(got, md, mdlen > 32 ? 32 : mdlen);
	if (strcasecmp(got, sha256) != 0) {
		rn_error_set("sha256 mismatch: the upload has %s", got);
		rn_coord_upload_abort(u);
		return RN_EINVALID;
	}
	if (fdatasync(u->fd) < 0) {
		int rc = rn_error_errno("%s", u->tmp);
		rn_coord_upload_abort(u);
		return rc;
	}
	rn_store_job job;
	rn_store_artifact old = { 0 };
	char *dir = NULL, *path = NULL;
	int64_t now = rn_wall_ms();
	lock(c);
	int rc = lease_begin(c, u->lease, u->agent_id, &job);
	if (rc == 0) {
		rn_store_job *j = &job;
		rc = name_taken(c, j, u->name, &old);
		if (rc == RN_EINVALID)
			rc = RN_ERROR;
		dir = rn_xasprintf("%s/%lld", c->art_dir, (long long)j->pipeline);
		path = artifact_path(c, j->pipeline, u->name, u->format);
		if (rc == 0)
			rc = rn_mkdir_p(dir, 0755);
		if (rc == 0 && rename(u->tmp, path) < 0)
			rc = rn_error_errno("%s", path);
		if (rc == 0) {
			free(u->tmp);
			u->tmp = NULL;
			if (old.name && strcmp(old.format, u->format) != 0) {
				char *stale = artifact_path(c, j->pipeline, old.name, old.format);
				unlink(stale);
				free(stale);
			}
			rn_store_artifact a = { .pipeline = j->pipeline, .name = u->name, .job = j->n,
						.format = u->format, .size = u->size, .sha256 = got, .created_ms = now };
			rc = rn_store_artifact_put(c->store, &a);
			if (rc == 0)
				*out = artifact_json_of(&a);
		}
		if (rc == 0) {
			rc = lease_commit(c, j, 0);
			rn_metrics_add(c->metrics, RN_M_ARTIFACT_BYTES, (uint64_t)u->size);
		} else {
			rn_store_rollback(c->store);
		}
	}
	unlock(c);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	rn_store_job_clear(&job);
	rn_store_artifact_clear(&old);
	free(dir);
	free(path);
	rn_coord_upload_abort(u);
	return rc;
}

/* ---- metrics ---- */

int rn_coord_metrics(rn_coord *c, rn_buf *out)
{
	int64_t counts[RN_JS_COUNT], agents = 0;
	lock(c);
	int rc = rn_store_job_counts(c->store, counts);
	if (rc == 0)
		rc = rn_store_agents_seen(c->store, rn_wall_ms() - AGENT_SEEN_MS, &agents);
	unlock(c);
	if (rc < 0)
		return rc;
	rn_buf_puts(out, "# HELP runner_jobs Job instances by state.\n# TYPE runner_jobs gauge\n");
	for (int s = 0; s < RN_JS_COUNT; s++)
		rn_buf_printf(out, "runner_jobs{state=\"%s\"} %lld\n", rn_jstate_name((rn_jstate)s), (long long)counts[s]);
	rn_buf_printf(out,
		      "# HELP runner_agents_connected Agents seen in the last %d seconds.\n"
		      "# TYPE runner_agents_connected gauge\nrunner_agents_connected %lld\n",
		      AGENT_SEEN_MS / 1000, (long long)agents);
	rn_buf_printf(out,
		      "# HELP runner_sqlite_memory_bytes Heap bytes held by SQLite (its page cache included).\n"
		      "# TYPE runner_sqlite_memory_bytes gauge\nrunner_sqlite_memory_bytes %lld\n",
		      (long long)rn_store_memory_used());
	return 0;
}
