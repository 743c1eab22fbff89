/* sink_json.c - the --json stream: one compact JSON object per event, one per line, flushed per
 * line. Every string is valid UTF-8 (invalid bytes and NUL become U+FFFD), so every line parses
 * with any JSON parser, jansson's default flags included. */
#include "event.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

typedef struct {
	rn_sink base;
	FILE *out;
	int err, err_no; /* a write failed */
	rn_runrec run;   /* for the masked names of jobs and steps */
} json_sink;

/* A JSON string of data[0..len) made valid: invalid UTF-8 and NUL bytes become U+FFFD. */
static json_t *jstrn(const char *data, size_t len)
{
	if (rn_utf8_valid(data, len) && !memchr(data, '\0', len))
		return json_stringn_nocheck(data, len);
	size_t n;
	char *v = rn_utf8_sanitize(data, len, 1, &n);
	json_t *j = json_stringn_nocheck(v, n);
	free(v);
	return j;
}

static void set_str(json_t *o, const char *key, const char *s)
{
	if (s)
		json_object_set_new(o, key, jstrn(s, strlen(s)));
}

static void set_int(json_t *o, const char *key, json_int_t v)
{
	json_object_set_new(o, key, json_integer(v));
}

static const char *const event_names[] = {
	[RN_EV_RUN_STARTED] = "run_started",
	[RN_EV_JOB_STARTED] = "job_started",
	[RN_EV_STEP_STARTED] = "step_started",
	[RN_EV_OUTPUT] = "output",
	[RN_EV_STEP_FINISHED] = "step_finished",
	[RN_EV_JOB_FINISHED] = "job_finished",
	[RN_EV_RUN_FINISHED] = "run_finished",
	[RN_EV_MESSAGE] = "message",
};

static void json_flush(rn_sink *sink)
{
	json_sink *js = (json_sink *)sink;
	if (fflush(js->out) != 0 && !js->err) {
		js->err = 1;
		js->err_no = errno;
	}
}

static void json_event(rn_sink *sink, const rn_event *ev)
{
	json_sink *js = (json_sink *)sink;
	rn_steprec *s = NULL;
	rn_jobrec *j = rn_runrec_update(&js->run, ev, &s);
	if ((size_t)ev->type >= RN_ARRAY_LEN(event_names))
		return;
	json_t *o = json_object();
	json_object_set_new(o, "event", json_string(event_names[ev->type]));
	set_str(o, "run_id", ev->run_id ? ev->run_id : js->run.run_id);
	char now[40];
	rn_time_iso8601(now, sizeof(now), rn_wall_ms(), 1);
	json_object_set_new(o, "time", json_string(now));

	int is_run = ev->type == RN_EV_RUN_STARTED || ev->type == RN_EV_RUN_FINISHED;
	if (is_run)
		set_str(o, "pipeline", js->run.pipeline);
	char *own_job = NULL, *own_step = NULL;
	if (ev->job && !is_run) {
		if (!j)
			own_job = rn_event_mask(js->run.m, ev->job);
		set_str(o, "job", j ? j->name : own_job);
		if (ev->type != RN_EV_MESSAGE)
			set_str(o, "job_id", j ? j->id : NULL);
	}
	int is_step = ev->type == RN_EV_STEP_STARTED || ev->type == RN_EV_OUTPUT ||
		      ev->type == RN_EV_STEP_FINISHED;
	if (ev->step && (is_step || ev->type == RN_EV_MESSAGE)) {
		if (!s)
			own_step = rn_event_mask(js->run.m, ev->step);
		set_str(o, "step", s ? s->name : own_step);
		if (is_step) {
			set_str(o, "step_id", s ? s->id : NULL);
			set_int(o, "step_index", ev->step_index);
		}
	}
	free(own_job);
	free(own_step);

	switch (ev->type) {
	case RN_EV_RUN_STARTED:
		if (ev->njobs > 0)
			set_int(o, "jobs", ev->njobs);
		break;
	case RN_EV_JOB_STARTED:
	case RN_EV_STEP_STARTED:
		set_int(o, "attempt", ev->attempt);
		set_int(o, "max_attempts", ev->max_attempts);
		break;
	case RN_EV_OUTPUT:
		set_int(o, "attempt", ev->attempt);
		json_object_set_new(o, "line", jstrn(ev->data ? ev->data : "", ev->data ? ev->len : 0));
		json_object_set_new(o, "partial", json_boolean(ev->partial));
		break;
	case RN_EV_STEP_FINISHED:
		set_int(o, "attempt", ev->attempt);
		set_int(o, "max_attempts", ev->max_attempts);
		json_object_set_new(o, "status", json_string(rn_status_name(ev->status)));
		json_object_set_new(o, "exit_code",
				    ev->exit_code >= 0 ? json_integer(ev->exit_code) : json_null());
		set_str(o, "reason", s ? s->reason : NULL);
		json_object_set_new(o, "continue_on_error", json_boolean(ev->continue_on_error));
		set_int(o, "duration_ms", ev->duration_ms);
		json_object_set_new(o, "cpu_user_s", json_real(ev->cpu_user_s));
		json_object_set_new(o, "cpu_sys_s", json_real(ev->cpu_sys_s));
		set_int(o, "max_rss_kb", ev->max_rss_kb);
		break;
	case RN_EV_JOB_FINISHED:
		set_int(o, "attempt", ev->attempt);
		set_int(o, "max_attempts", ev->max_attempts);
		json_object_set_new(o, "status", json_string(rn_status_name(ev->status)));
		set_str(o, "reason", j ? j->reason : NULL);
		json_object_set_new(o, "continue_on_error", json_boolean(ev->continue_on_error));
		set_int(o, "duration_ms", ev->duration_ms);
		break;
	case RN_EV_RUN_FINISHED:
		json_object_set_new(o, "status", json_string(rn_status_name(ev->status)));
		set_int(o, "duration_ms", ev->duration_ms);
		break;
	case RN_EV_MESSAGE: {
		size_t n = 0;
		char *text = rn_event_mask_n(js->run.m, ev->data ? ev->data : "", ev->data ? ev->len : 0, &n);
		json_object_set_new(o, "message", jstrn(text, n));
		free(text);
		break;
	}
	}

	char *line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!line)
		return;
	size_t n = strlen(line);
	line[n] = '\n'; /* json_dumps' buffer: replace the NUL and write len + 1 bytes */
	if (fwrite(line, 1, n + 1, js->out) != n + 1 && !js->err) {
		js->err = 1;
		js->err_no = errno;
	}
	free(line);
	if (ev->type != RN_EV_OUTPUT) /* output lines wait for json_flush (see rn_sink.flush) */
		json_flush(sink);
}

static int json_close(rn_sink *sink)
{
	json_sink *js = (json_sink *)sink;
	json_flush(sink);
	int rc = 0;
	if (js->err) {
		errno = js->err_no;
		rc = rn_error_errno("--json output");
	}
	rn_runrec_free(&js->run);
	free(js);
	return rc;
}

rn_sink *rn_json_sink_new(void *out, const struct rn_masker *m)
{
	json_sink *js = rn_xcalloc(1, sizeof(*js));
	js->base.event = json_event;
	js->base.close = json_close;
	js->base.flush = json_flush;
	js->out = out;
	rn_runrec_init(&js->run, m);
	return &js->base;
}
