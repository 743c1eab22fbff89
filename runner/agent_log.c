/* agent_log.c - the job log of an agent's job (plain text, what the server shows for the job)
 * and the filter sink that keeps output lines out of the event file. */
#include "agent_log.h"
#include "error.h"
#include "units.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	rn_sink base;
	FILE *out;
	int err, err_no; /* a write failed */
	rn_runrec run;   /* masked names of the job and its steps */
} joblog_sink;

__attribute__((format(printf, 2, 3))) static void lprintf(joblog_sink *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vfprintf(l->out, fmt, ap) < 0 && !l->err) {
		l->err = 1;
		l->err_no = errno;
	}
	va_end(ap);
}

static void lwrite(joblog_sink *l, const char *p, size_t n)
{
	if (n && fwrite(p, 1, n, l->out) != n && !l->err) {
		l->err = 1;
		l->err_no = errno;
	}
}

static const char *symbol(rn_status st)
{
	switch (st) {
	case RN_ST_SUCCESS: return "✓";
	case RN_ST_FAILURE:
	case RN_ST_TIMED_OUT: return "✗";
	case RN_ST_CANCELLED:
	case RN_ST_SKIPPED: return "⊘";
	default: return "•";
	}
}

/* " (exit 3, 0.500s, attempt 2/3, continue-on-error): reason" as the console writes it. */
static void details(joblog_sink *l, rn_status st, int exit_code, int ran, int64_t ms, int attempt,
		    int max_attempts, int coe, const char *reason)
{
	const char *sep = " (";
	char d[32];
	if (rn_status_failed(st) && exit_code >= 0) {
		lprintf(l, "%sexit %d", sep, exit_code);
		sep = ", ";
	}
	if (ran) {
		rn_duration_format(d, sizeof(d), ms);
		lprintf(l, "%s%s", sep, d);
		sep = ", ";
	}
	if (max_attempts > 1) {
		lprintf(l, "%sattempt %d/%d", sep, attempt, max_attempts);
		sep = ", ";
	}
	if (coe) {
		lprintf(l, "%scontinue-on-error", sep);
		sep = ", ";
	}
	if (sep[0] == ',')
		lprintf(l, ")");
	if (reason && *reason)
		lprintf(l, ": %s", reason);
}

static void step_head(joblog_sink *l, const rn_event *ev, const rn_steprec *s)
{
	lprintf(l, "── step %d/%d: %s", ev->step_index + 1, ev->nsteps, s->name ? s->name : "?");
}

static void joblog_flush(rn_sink *sink)
{
	joblog_sink *l = (joblog_sink *)sink;
	if (fflush(l->out) != 0 && !l->err) {
		l->err = 1;
		l->err_no = errno;
	}
}

static void joblog_event(rn_sink *sink, const rn_event *ev)
{
	joblog_sink *l = (joblog_sink *)sink;
	rn_steprec *s = NULL;
	rn_jobrec *j = rn_runrec_update(&l->run, ev, &s);
	switch (ev->type) {
	case RN_EV_RUN_STARTED:
	case RN_EV_RUN_FINISHED:
		return;
	case RN_EV_JOB_STARTED:
		if (j && ev->attempt > 1)
			lprintf(l, "── job %s: attempt %d/%d\n", j->name, ev->attempt, ev->max_attempts);
		break;
	case RN_EV_STEP_STARTED:
		if (!s)
			return;
		step_head(l, ev, s);
		if (ev->attempt > 1)
			lprintf(l, " (attempt %d/%d)", ev->attempt, ev->max_attempts);
		lprintf(l, "\n");
		break;
	case RN_EV_OUTPUT:
		if (ev->data)
			lwrite(l, ev->data, ev->len);
		if (!ev->partial)
			lwrite(l, "\n", 1);
		break;
	case RN_EV_STEP_FINISHED:
		if (!s)
			return;
		step_head(l, ev, s);
		lprintf(l, " %s %s", symbol(s->status), rn_status_name(s->status));
		details(l, s->status, s->exit_code, s->started, s->duration_ms, ev->attempt, ev->max_attempts,
			s->continue_on_error, s->reason);
		lprintf(l, "\n");
		break;
	case RN_EV_JOB_FINISHED:
		if (!j)
			return;
		lprintf(l, "── job %s: %s %s", j->name, symbol(j->status), rn_status_name(j->status));
		details(l, RN_ST_SUCCESS, -1, j->attempts > 0, j->duration_ms, j->attempts, j->max_attempts,
			j->continue_on_error, j->reason);
		lprintf(l, "\n");
		break;
	case RN_EV_MESSAGE: {
		size_t n = 0;
		char *text = rn_event_mask_n(l->run.m, ev->data ? ev->data : "", ev->data ? ev->len : 0, &n);
		lprintf(l, "runner: ");
		lwrite(l, text, n);
		lprintf(l, "\n");
		free(text);
		break;
	}
	}
	if (ev->type != RN_EV_OUTPUT) /* output lines wait for joblog_flush (see rn_sink.flush) */
		joblog_flush(sink);
}

static int joblog_close(rn_sink *sink)
{
	joblog_sink *l = (joblog_sink *)sink;
	joblog_flush(sink);
	int rc = 0;
	if (l->err) {
		errno = l->err_no;
		rc = rn_error_errno("job log");
	}
	rn_runrec_free(&l->run);
	free(l);
	return rc;
}

rn_sink *rn_joblog_sink_new(FILE *out, const struct rn_masker *m)
{
	joblog_sink *l = rn_xcalloc(1, sizeof(*l));
	l->base.event = joblog_event;
	l->base.close = joblog_close;
	l->base.flush = joblog_flush;
	l->out = out;
	rn_runrec_init(&l->run, m);
	return &l->base;
}

/* ---- the filter ---------------------------------------------------------------------------- */

typedef struct {
	rn_sink base;
	rn_sink *inner;
} filter_sink;

static void filter_event(rn_sink *sink, const rn_event *ev)
{
	filter_sink *f = (filter_sink *)sink;
	if (ev->type != RN_EV_OUTPUT)
		f->inner->event(f->inner, ev);
}

static void filter_flush(rn_sink *sink)
{
	filter_sink *f = (filter_sink *)sink;
	if (f->inner->flush)
		f->inner->flush(f->inner);
}

static int filter_close(rn_sink *sink)
{
	filter_sink *f = (filter_sink *)sink;
	int rc = f->inner->close(f->inner);
	free(f);
	return rc;
}

rn_sink *rn_nooutput_sink_new(rn_sink *inner)
{
	filter_sink *f = rn_xcalloc(1, sizeof(*f));
	f->base.event = filter_event;
	f->base.close = filter_close;
	f->base.flush = filter_flush;
	f->inner = inner;
	return &f->base;
}
