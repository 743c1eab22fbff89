/* notify.c - the `notify:` status webhooks as an event sink (see notify.h).
 *
 * event() runs on the engine's thread: it decides which entries want the event, builds their
 * bodies and appends them to a queue (dropping, and counting, past queue_max). One sender thread
 * pops the queue in order and POSTs with rn_http_request (retries with backoff). close() lets the
 * thread drain the queue for at most drain_ms, then cancels the request in flight and drops the
 * rest. */
#include "notify.h"
#include "context.h"
#include "error.h"
#include "expr.h"
#include "http.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_DRAIN_MS 10000
#define DEFAULT_ATTEMPTS 5
#define DEFAULT_RETRY_MS 1000
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_QUEUE_MAX 1000
#define DESCRIPTION_MAX 140 /* GitHub refuses longer commit-status descriptions */

enum { FMT_JSON, FMT_GITEA, FMT_GITHUB };
enum { EV_PIPELINE = 1, EV_JOB = 2 };
enum { ON_STARTED = 1, ON_SUCCESS = 2, ON_FAILURE = 4, ON_CANCELLED = 8 };

/* One notify entry, ready to send. */
typedef struct target {
	char *url;             /* expanded */
	char *shown;           /* for messages: without user info and query, masked */
	rn_http_header *hdrs;  /* expanded; names and values owned */
	size_t nhdrs;
	int format;            /* FMT_* */
	unsigned events, on;   /* EV_* and ON_* bits */
} target;

/* A queued notification. */
typedef struct item {
	struct item *next;
	size_t target;
	char *body;
	char *what;            /* "pipeline success" / "job build (gcc) started", masked */
} item;

typedef struct notify_sink {
	rn_sink base;
	target *targets;
	size_t ntargets;
	const rn_masker *m;     /* the run's masker (event thread only) */
	rn_masker *hidden;      /* header values and URLs with credentials: masked in messages */
	FILE *warn;
	/* info, copied */
	char *id, *name, *sha, *ref, *repo, *logs_url;
	int64_t run_started_ms;
	/* options */
	long drain_ms, retry_ms, timeout_ms;
	int attempts;
	size_t queue_max;
	/* the queue */
	pthread_t thread;
	int have_thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* to the sender: an item or closing */
	pthread_cond_t idle;    /* to close(): the queue is empty and nothing is in flight */
	item *head, *tail;
	size_t queued;
	int busy;               /* the sender is delivering an item */
	int closing;
	int detached;           /* the sender frees the sink when done */
	atomic_int abort;       /* cancel the request in flight */
	size_t dropped, failed, sent;
} notify_sink;

const char *rn_notify_state(const rn_event *ev)
{
	switch (ev->type) {
	case RN_EV_RUN_STARTED:
	case RN_EV_JOB_STARTED:
		return "started";
	case RN_EV_RUN_FINISHED:
	case RN_EV_JOB_FINISHED:
		switch (ev->status) {
		case RN_ST_SUCCESS:
			return "success";
		case RN_ST_FAILURE:
		case RN_ST_TIMED_OUT:
			return "failure";
		case RN_ST_CANCELLED:
			return "cancelled";
		default:
			return NULL; /* skipped (or a status that is no change) */
		}
	default:
		return NULL;
	}
}

static unsigned on_bit(const char *state)
{
	if (strcmp(state, "started") == 0)
		return ON_STARTED;
	if (strcmp(state, "success") == 0)
		return ON_SUCCESS;
	if (strcmp(state, "failure") == 0)
		return ON_FAILURE;
	if (strcmp(state, "cancelled") == 0)
		return ON_CANCELLED;
	return 0;
}

/* A JSON string of s, invalid UTF-8 replaced; json null for NULL. */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	char *clean = rn_utf8_sanitize(s, strlen(s), 1, NULL);
	json_t *v = json_string(clean);
	free(clean);
	return v ? v : json_string("");
}

/* A masked JSON string of s (NULL: null). */
static json_t *jmasked(const rn_masker *m, const char *s)
{
	if (!s)
		return json_null();
	char *x = rn_event_mask(m, s);
	json_t *v = jstr(x);
	free(x);
	return v;
}

static void warnf(notify_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(notify_sink *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *safe = rn_mask_str(s->hidden, line);
	fprintf(s->warn, "runner: notify: %s\n", safe);
	fflush(s->warn);
	free(safe);
}

/* ---- the sender thread ------------------------------------------------------------------- */

static int cancel_cb(void *arg)
{
	notify_sink *s = arg;
	return atomic_load(&s->abort);
}

static void item_free(item *it)
{
	if (!it)
		return;
	free(it->body);
	free(it->what);
	free(it);
}

static void deliver(notify_sink *s, item *it)
{
	const target *t = &s->targets[it->target];
	rn_http_req req = {
		.url = t->url,
		.method = "POST",
		.headers = t->hdrs,
		.nheaders = t->nhdrs,
		.body = it->body,
		.body_len = strlen(it->body),
		.content_type = "application/json",
		.timeout_ms = s->timeout_ms,
		.connect_timeout_ms = s->timeout_ms < 5000 ? s->timeout_ms : 5000,
		.attempts = s->attempts,
		.retry_delay_ms = s->retry_ms,
		.retry_max_delay_ms = 30000,
		.max_body = 4096,
		.cancel = cancel_cb,
		.cb_arg = s,
	};
	rn_http_resp resp = { 0 };
	int rc = rn_http_request(&req, &resp);
	if (rc < 0) {
		s->failed++;
		if (resp.cancelled)
			warnf(s, "%s: %s: not delivered (gave up waiting at the end of the run)", t->shown, it->what);
		else
			warnf(s, "%s: %s: not delivered after %d attempt%s: %s", t->shown, it->what, resp.attempts,
			      resp.attempts == 1 ? "" : "s", rn_error_last());
	} else {
		s->sent++;
	}
	rn_http_resp_free(&resp);
}

static void sink_free(notify_sink *s);

static void *sender(void *arg)
{
	notify_sink *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->head && !s->closing)
			pthread_cond_wait(&s->wake, &s->mu);
		if (!s->head)
			break;
		item *it = s->head;
		s->head = it->next;
		if (!s->head)
			s->tail = NULL;
		s->queued--;
		s->busy = 1;
		pthread_mutex_unlock(&s->mu);
		deliver(s, it);
		item_free(it);
		pthread_mutex_lock(&s->mu);
		s->busy = 0;
		if (!s->head)
			pthread_cond_broadcast(&s->idle);
	}
	int detached = s->detached;
	pthread_mutex_unlock(&s->mu);
	if (detached)
		sink_free(s);
	return NULL;
}

/* ---- bodies ------------------------------------------------------------------------------ */

static json_t *ms_or_null(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

static char *json_body(notify_sink *s, const rn_event *ev, const char *state, int is_job)
{
	json_t *pl = json_object();
	json_object_set_new(pl, "id", jstr(s->id));
	json_object_set_new(pl, "name", jstr(s->name));
	json_object_set_new(pl, "started_ms", ms_or_null(s->run_started_ms));
	if (ev->type == RN_EV_RUN_FINISHED) {
		json_object_set_new(pl, "status", json_string(rn_status_name(ev->status)));
		json_object_set_new(pl, "finished_ms", ms_or_null(s->run_started_ms + ev->duration_ms));
		json_object_set_new(pl, "duration_ms", json_integer(ev->duration_ms));
	} else {
		json_object_set_new(pl, "status", json_string("running"));
	}
	json_t *doc = json_object();
	json_object_set_new(doc, "event", json_string(is_job ? "job" : "pipeline"));
	json_object_set_new(doc, "state", json_string(state));
	json_object_set_new(doc, "status",
			    json_string(ev->type == RN_EV_RUN_STARTED || ev->type == RN_EV_JOB_STARTED
						? "running" : rn_status_name(ev->status)));
	json_object_set_new(doc, "pipeline", pl);
	if (is_job) {
		json_t *j = json_object();
		json_object_set_new(j, "id", jmasked(s->m, ev->job_id));
		json_object_set_new(j, "name", jmasked(s->m, ev->job));
		json_object_set_new(j, "attempt", json_integer(ev->attempt));
		json_object_set_new(j, "max_attempts", json_integer(ev->max_attempts));
		json_object_set_new(j, "started_ms", ms_or_null(ev->started_ms));
		if (ev->type == RN_EV_JOB_FINISHED) {
			json_object_set_new(j, "status", json_string(rn_status_name(ev->status)));
			json_object_set_new(j, "finished_ms", ev->started_ms > 0 ? json_integer(ev->started_ms + ev->duration_ms)
									      : json_integer(rn_wall_ms()));
			json_object_set_new(j, "duration_ms", json_integer(ev->duration_ms));
			json_object_set_new(j, "continue_on_error", json_boolean(ev->continue_on_error));
			json_object_set_new(j, "reason", jmasked(s->m, ev->reason));
		} else {
			json_object_set_new(j, "status", json_string("running"));
		}
		json_object_set_new(doc, "job", j);
	}
	json_object_set_new(doc, "repo", jstr(s->repo));
	json_object_set_new(doc, "ref", jstr(s->ref));
	json_object_set_new(doc, "sha", jstr(s->sha));
	json_object_set_new(doc, "url", jstr(s->logs_url));
	json_object_set_new(doc, "time_ms", json_integer(rn_wall_ms()));
	char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return text;
}

/* s cut to at most max bytes on a UTF-8 boundary, with "…" when cut (caller frees). */
static char *cut_utf8(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return rn_xstrdup(s);
	size_t k = max - 3; /* room for "…" */
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return rn_xasprintf("%.*s…", (int)k, s);
}

static void fmt_duration(char *buf, size_t size, int64_t ms)
{
	if (ms < 60000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
	else
		snprintf(buf, size, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
}

static char *status_body(notify_sink *s, const rn_event *ev, const char *state, int is_job)
{
	const char *forge = strcmp(state, "started") == 0 ? "pending"
			    : strcmp(state, "success") == 0 ? "success"
			    : strcmp(state, "failure") == 0 ? "failure" : "error";
	char *job = is_job ? rn_event_mask(s->m, ev->job) : NULL;
	char *reason = ev->reason ? rn_event_mask(s->m, ev->reason) : NULL;
	char dur[32] = "";
	char *desc;
	if (strcmp(state, "started") == 0) {
		desc = is_job && ev->attempt > 1 ? rn_xasprintf("running (attempt %d of %d)", ev->attempt, ev->max_attempts)
						 : rn_xstrdup("running");
	} else {
		fmt_duration(dur, sizeof(dur), ev->duration_ms);
		const char *word = ev->status == RN_ST_TIMED_OUT ? "timed out" : state;
		desc = rn_xasprintf("%s after %s%s%s", word, dur, reason ? ": " : "", reason ? reason : "");
	}
	char *full = is_job ? rn_xasprintf("runner/%s/%s", s->name, job) : rn_xasprintf("runner/%s", s->name);
	char *context = cut_utf8(full, 255);
	char *description = cut_utf8(desc, DESCRIPTION_MAX);
	json_t *doc = json_object();
	json_object_set_new(doc, "state", json_string(forge));
	if (s->logs_url)
		json_object_set_new(doc, "target_url", jstr(s->logs_url));
	json_object_set_new(doc, "description", jstr(description));
	json_object_set_new(doc, "context", jstr(context));
	char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	free(job);
	free(reason);
	free(desc);
	free(full);
	free(context);
	free(description);
	return text;
}

static void enqueue(notify_sink *s, size_t ti, char *body, char *what)
{
	item *it = rn_xcalloc(1, sizeof(*it));
	it->target = ti;
	it->body = body;
	it->what = what;
	pthread_mutex_lock(&s->mu);
	if (s->queued >= s->queue_max || !s->have_thread) {
		s->dropped++;
		pthread_mutex_unlock(&s->mu);
		item_free(it);
		return;
	}
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	s->queued++;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

static void sink_event(rn_sink *base, const rn_event *ev)
{
	notify_sink *s = (notify_sink *)base;
	if (ev->type == RN_EV_RUN_STARTED)
		s->run_started_ms = ev->started_ms > 0 ? ev->started_ms : rn_wall_ms();
	else if (ev->type == RN_EV_RUN_FINISHED && !s->run_started_ms && ev->started_ms > 0)
		s->run_started_ms = ev->started_ms; /* a sink made after a restart missed the start */
	const char *state = rn_notify_state(ev);
	if (!state)
		return;
	int is_job = ev->type == RN_EV_JOB_STARTED || ev->type == RN_EV_JOB_FINISHED;
	unsigned evbit = is_job ? EV_JOB : EV_PIPELINE, onbit = on_bit(state);
	char *json = NULL, *status = NULL;
	for (size_t i = 0; i < s->ntargets; i++) {
		const target *t = &s->targets[i];
		if (!(t->events & evbit) || !(t->on & onbit))
			continue;
		char **body = t->format == FMT_JSON ? &json : &status;
		if (!*body)
			*body = t->format == FMT_JSON ? json_body(s, ev, state, is_job) : status_body(s, ev, state, is_job);
		if (!*body)
			continue;
		char *what;
		if (is_job) {
			char *job = rn_event_mask(s->m, ev->job);
			what = rn_xasprintf("job %s %s", job ? job : "?", state);
			free(job);
		} else {
			what = rn_xasprintf("pipeline %s", state);
		}
		enqueue(s, i, rn_xstrdup(*body), what);
	}
	free(json);
	free(status);
}

/* ---- life cycle -------------------------------------------------------------------------- */

static void sink_free(notify_sink *s)
{
	for (size_t i = 0; i < s->ntargets; i++) {
		target *t = &s->targets[i];
		free(t->url);
		free(t->shown);
		for (size_t k = 0; k < t->nhdrs; k++) {
			free((char *)t->hdrs[k].name);
			free((char *)t->hdrs[k].value);
		}
		free(t->hdrs);
	}
	free(s->targets);
	while (s->head) {
		item *n = s->head->next;
		item_free(s->head);
		s->head = n;
	}
	rn_masker_free(s->hidden);
	free(s->id);
	free(s->name);
	free(s->sha);
	free(s->ref);
	free(s->repo);
	free(s->logs_url);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
	free(s);
}

static void deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int sink_close(rn_sink *base)
{
	notify_sink *s = (notify_sink *)base;
	if (!s->have_thread) {
		if (s->dropped)
			warnf(s, "%zu notification%s not sent (no sender thread)", s->dropped, s->dropped == 1 ? "" : "s");
		sink_free(s);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	s->closing = 1;
	pthread_cond_signal(&s->wake);
	if (s->drain_ms < 0) {
		s->detached = 1;
		pthread_mutex_unlock(&s->mu);
		pthread_detach(s->thread);
		return 0;
	}
	struct timespec dl;
	deadline_after(&dl, s->drain_ms);
	while ((s->head || s->busy) && pthread_cond_timedwait(&s->idle, &s->mu, &dl) == 0) {
	}
	size_t left = 0;
	if (s->head || s->busy) {
		atomic_store(&s->abort, 1); /* the request in flight gives up within 100 ms */
		while (s->head) {
			item *n = s->head->next;
			item_free(s->head);
			s->head = n;
			left++;
		}
		s->tail = NULL;
		s->queued = 0;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	if (left)
		warnf(s, "%zu notification%s not sent: gave up after %ld ms at the end of the run", left,
		      left == 1 ? "" : "s", s->drain_ms);
	if (s->dropped)
		warnf(s, "%zu notification%s dropped: more than %zu waiting", s->dropped, s->dropped == 1 ? "" : "s",
		      s->queue_max);
	sink_free(s);
	return 0;
}

/* Strings of a JSON member, or NULL. */
static const char *jget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The contexts for url and header templates: a copy of ctx with git and pipeline from info. */
static json_t *make_ctx(notify_sink *s, json_t *ctx)
{
	json_t *c = json_is_object(ctx) ? json_copy(ctx) : json_object();
	if (!json_object_get(c, "git")) {
		const char *branch = s->ref && rn_startswith(s->ref, "refs/heads/") ? s->ref + 11 : "";
		json_object_set_new(c, "git", json_pack("{s:o, s:o, s:s}", "sha", jstr(s->sha ? s->sha : ""), "ref",
							jstr(s->ref ? s->ref : ""), "branch", branch));
	}
	if (!json_object_get(c, "pipeline"))
		json_object_set_new(c, "pipeline", json_pack("{s:o, s:o}", "id", jstr(s->id ? s->id : ""), "name",
							     jstr(s->name ? s->name : "")));
	if (!json_object_get(c, "secrets"))
		json_object_set_new(c, "secrets", json_object());
	return c;
}

/* Build target t from entry n; 0, or <0 with the problem in rn_error_last() (no secret in it). */
static int target_init(notify_sink *s, target *t, const rn_notify *n, const rn_expr_env *ee)
{
	memset(t, 0, sizeof(*t));
	t->format = !n->format || strcmp(n->format, "json") == 0 ? FMT_JSON
		    : strcmp(n->format, "gitea-status") == 0	  ? FMT_GITEA
								  : FMT_GITHUB;
	for (size_t k = 0; k < n->events.n; k++)
		t->events |= strcmp(n->events.v[k], "job") == 0 ? EV_JOB : EV_PIPELINE;
	if (!n->events.n)
		t->events = EV_PIPELINE;
	for (size_t k = 0; k < n->on.n; k++)
		t->on |= on_bit(n->on.v[k]);
	if (!n->on.n)
		t->on = ON_STARTED | ON_SUCCESS | ON_FAILURE | ON_CANCELLED;
	if (rn_context_expand(&t->url, n->url, ee) < 0)
		return rn_error_set("url: %s", rn_error_last());
	char *red = rn_http_url_redacted(t->url);
	t->shown = rn_event_mask(s->m, red);
	free(red);
	if (!rn_startswith(t->url, "http://") && !rn_startswith(t->url, "https://"))
		return rn_error_set("url %s: only http:// and https:// URLs can be notified", t->shown);
	if (strcmp(t->url, t->shown) != 0)
		rn_masker_add(s->hidden, t->url); /* credentials in the URL: never in a message */
	t->hdrs = rn_xcalloc(n->headers.n + 1, sizeof(*t->hdrs));
	if (t->format == FMT_GITHUB) {
		int has_accept = 0;
		for (size_t k = 0; k < n->headers.n; k++)
			has_accept |= strcasecmp(n->headers.v[k].key, "Accept") == 0;
		if (!has_accept) {
			t->hdrs[t->nhdrs].name = rn_xstrdup("Accept");
			t->hdrs[t->nhdrs++].value = rn_xstrdup("application/vnd.github+json");
		}
	}
	for (size_t k = 0; k < n->headers.n; k++) {
		char *v = NULL;
		if (rn_context_expand(&v, n->headers.v[k].value, ee) < 0)
			return rn_error_set("header %s: %s", n->headers.v[k].key, rn_error_last());
		rn_masker_add(s->hidden, v); /* values of 4+ bytes; shorter ones are never printed either */
		t->hdrs[t->nhdrs].name = rn_xstrdup(n->headers.v[k].key);
		t->hdrs[t->nhdrs++].value = v;
		if (!rn_http_header_ok(n->headers.v[k].key, v))
			return rn_error_set("header %s: not a valid header name, or a value with a line break", n->headers.v[k].key);
	}
	return 0;
}

static void target_clear(target *t)
{
	free(t->url);
	free(t->shown);
	for (size_t k = 0; k < t->nhdrs; k++) {
		free((char *)t->hdrs[k].name);
		free((char *)t->hdrs[k].value);
	}
	free(t->hdrs);
	memset(t, 0, sizeof(*t));
}

rn_sink *rn_notify_sink_new(const rn_pipeline *p, const rn_masker *m, json_t *info, json_t *ctx,
			    const rn_notify_opts *o)
{
	if (!p || p->nnotify == 0)
		return NULL;
	static const rn_notify_opts defaults = { 0 };
	if (!o)
		o = &defaults;
	notify_sink *s = rn_xcalloc(1, sizeof(*s));
	s->base.event = sink_event;
	s->base.close = sink_close;
	s->m = m;
	s->hidden = rn_masker_new();
	s->warn = o->warn ? o->warn : stderr;
	s->drain_ms = o->drain_ms ? o->drain_ms : DEFAULT_DRAIN_MS;
	s->attempts = o->attempts > 0 ? o->attempts : DEFAULT_ATTEMPTS;
	s->retry_ms = o->retry_delay_ms > 0 ? o->retry_delay_ms : DEFAULT_RETRY_MS;
	s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	s->queue_max = o->queue_max > 0 ? o->queue_max : DEFAULT_QUEUE_MAX;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->idle, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&s->abort, 0);

	s->id = rn_xstrdup(jget(info, "id"));
	const char *name = jget(info, "name") ? jget(info, "name") : p->name;
	s->name = name ? rn_event_mask(m, name) : rn_xstrdup("pipeline");
	s->sha = rn_xstrdup(jget(info, "sha"));
	s->ref = rn_xstrdup(jget(info, "ref"));
	s->repo = rn_xstrdup(jget(info, "repo"));
	s->logs_url = rn_xstrdup(jget(info, "logs_url"));

	json_t *c = make_ctx(s, ctx);
	rn_expr_env ee = { .ctx = c, .failed = 0, .cancelled = 0, .workspace = NULL };
	s->targets = rn_xcalloc(p->nnotify, sizeof(*s->targets));
	for (size_t i = 0; i < p->nnotify; i++) {
		target *t = &s->targets[s->ntargets];
		if (target_init(s, t, &p->notify[i], &ee) < 0) {
			warnf(s, "%s:%d:%d: entry skipped: %s", p->file ? p->file : "workflow", p->notify[i].pos.line,
			      p->notify[i].pos.col, rn_error_last());
			target_clear(t);
			continue;
		}
		s->ntargets++;
	}
	json_decref(c);
	if (s->ntargets > 0) {
		if (pthread_create(&s->thread, NULL, sender, s) == 0)
			s->have_thread = 1;
		else
			warnf(s, "cannot start the sender thread: notifications are not sent");
	}
	return &s->base;
}
