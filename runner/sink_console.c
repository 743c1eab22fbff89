/* sink_console.c - the human-readable console: `job › step | line` per output line, a line per
 * result, an optional live status line at the bottom (TTY only), and a summary table at the end.
 * Output bytes are written as they come (already masked by the engine); names, reasons and
 * messages are masked here (the run record keeps masked copies of the names). */
#include "event.h"
#include "error.h"
#include "units.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define C_RESET "\033[0m"
#define C_JOB "\033[1;36m"
#define C_STEP "\033[2m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_YELLOW "\033[33m"
#define ERASE_LINE "\r\033[K"

typedef struct {
	rn_sink base;
	FILE *out;
	int color;
	int status_line;
	int status_shown;  /* the status line is on screen (the cursor is at its end) */
	int summary_done;
	int err;           /* a write to out failed (errno in err_no) */
	int err_no;
	rn_runrec run;
	/* the `job › step | ` of the last output line, for the next lines of the same step */
	char *pfx_job, *pfx_step, *pfx;
	size_t pfx_len;
} console_sink;

/* ---- writing ------------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void out_printf(console_sink *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vfprintf(c->out, fmt, ap) < 0 && !c->err) {
		c->err = 1;
		c->err_no = errno;
	}
	va_end(ap);
}

static void out_write(console_sink *c, const char *p, size_t n)
{
	if (n && fwrite(p, 1, n, c->out) != n && !c->err) {
		c->err = 1;
		c->err_no = errno;
	}
}

static void out_puts(console_sink *c, const char *s)
{
	out_write(c, s, strlen(s));
}

/* Colour codes, or "" without colour. */
static const char *col(const console_sink *c, const char *code)
{
	return c->color ? code : "";
}

static const char *status_color(const console_sink *c, rn_status st)
{
	switch (st) {
	case RN_ST_SUCCESS: return col(c, C_GREEN);
	case RN_ST_FAILURE:
	case RN_ST_TIMED_OUT: return col(c, C_RED);
	case RN_ST_CANCELLED:
	case RN_ST_SKIPPED: return col(c, C_YELLOW);
	default: return "";
	}
}

static const char *status_symbol(rn_status st)
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

/* A status word (with its colour). */
static void put_status(console_sink *c, rn_status st)
{
	const char *sc = status_color(c, st);
	out_printf(c, "%s%s%s", sc, rn_status_name(st), *sc ? C_RESET : "");
}

/* "JOB" or "JOB › STEP" (coloured). */
static void put_prefix(console_sink *c, const char *job, const char *step)
{
	int colored = c->color;
	out_printf(c, "%s%s%s", colored ? C_JOB : "", job, colored ? C_RESET : "");
	if (step)
		out_printf(c, " › %s%s%s", colored ? C_STEP : "", step, colored ? C_RESET : "");
}

/* `job › step | ` before an output line: built once per step (lines come in bursts). */
static void put_output_prefix(console_sink *c, const char *job, const char *step)
{
	if (!c->pfx || strcmp(c->pfx_job, job) != 0 || strcmp(c->pfx_step, step) != 0) {
		free(c->pfx_job);
		free(c->pfx_step);
		free(c->pfx);
		c->pfx_job = rn_xstrdup(job);
		c->pfx_step = rn_xstrdup(step);
		c->pfx = rn_xasprintf("%s%s%s › %s%s%s | ", col(c, C_JOB), job, col(c, C_RESET), col(c, C_STEP), step,
				      col(c, C_RESET));
		c->pfx_len = strlen(c->pfx);
	}
	out_write(c, c->pfx, c->pfx_len);
}

/* Display width of UTF-8 text, counted in code points. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static void put_padded(console_sink *c, const char *s, const char *color, size_t width)
{
	out_printf(c, "%s%s%s", color, s, *color ? C_RESET : "");
	for (size_t w = text_width(s); w < width; w++)
		out_write(c, " ", 1);
}

/* ---- the status line ---------------------------------------------------------------------- */

static void status_clear(console_sink *c)
{
	if (c->status_shown) {
		out_puts(c, ERASE_LINE);
		c->status_shown = 0;
	}
}

static int term_columns(console_sink *c)
{
	struct winsize ws;
	int fd = fileno(c->out);
	if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

static void status_draw(console_sink *c)
{
	if (!c->status_line || c->run.finished || !c->run.started)
		return;
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	if (!f)
		return;
	fputs("running:", f);
	int any = 0;
	for (size_t i = 0; i < c->run.njobs; i++) {
		const rn_jobrec *j = c->run.jobs[i];
		if (j->finished || j->status != RN_ST_RUNNING)
			continue;
		fprintf(f, "%s %s", any ? "," : "", j->name);
		const rn_steprec *s = rn_runrec_step(j, j->running_step);
		if (s)
			fprintf(f, " › %s", s->name);
		any = 1;
	}
	if (!any)
		fputs(" -", f);
	size_t done = rn_runrec_done(&c->run);
	if (c->run.njobs_total > 0)
		fprintf(f, "  [%zu/%d jobs done]", done, c->run.njobs_total);
	else
		fprintf(f, "  [%zu jobs done]", done);
	fclose(f);
	/* cut to the terminal width, or the line wraps and can no longer be erased */
	size_t maxw = (size_t)term_columns(c) - 1, w = 0, cut = 0;
	for (; cut < len; cut++) {
		unsigned char b = (unsigned char)line[cut];
		if (b < 0x20)
			line[cut] = ' ';
		if ((b & 0xC0) != 0x80 && w++ == maxw)
			break;
	}
	out_write(c, line, cut);
	free(line);
	c->status_shown = 1;
}

/* ---- events ------------------------------------------------------------------------------- */

static void put_duration(console_sink *c, int64_t ms)
{
	char d[32];
	rn_duration_format(d, sizeof(d), ms);
	out_puts(c, d);
}

/* " (exit 3, 0.500s, attempt 2/3, continue-on-error): reason" */
static void put_details(console_sink *c, rn_status st, int exit_code, int ran, int64_t ms,
			int attempt, int max_attempts, int coe, const char *reason)
{
	const char *sep = " (";
	if (rn_status_failed(st) && exit_code >= 0) {
		out_printf(c, "%sexit %d", sep, exit_code);
		sep = ", ";
	}
	if (ran) {
		out_puts(c, sep);
		put_duration(c, ms);
		sep = ", ";
	}
	if (max_attempts > 1) {
		out_printf(c, "%sattempt %d/%d", sep, attempt, max_attempts);
		sep = ", ";
	}
	if (coe) {
		out_printf(c, "%scontinue-on-error", sep);
		sep = ", ";
	}
	if (sep[0] == ',')
		out_puts(c, ")");
	if (reason && *reason)
		out_printf(c, ": %s", reason);
}

static void summary(console_sink *c)
{
	static const char *const head[5] = { "JOB", "STEP", "STATUS", "DURATION", "ATTEMPTS" };
	size_t w[4];
	for (int k = 0; k < 4; k++)
		w[k] = text_width(head[k]);
	char dur[32];
	for (size_t i = 0; i < c->run.njobs; i++) {
		const rn_jobrec *j = c->run.jobs[i];
		size_t t = text_width(j->name);
		w[0] = t > w[0] ? t : w[0];
		t = strlen(rn_status_name(j->status));
		w[2] = t > w[2] ? t : w[2];
		rn_duration_format(dur, sizeof(dur), j->duration_ms);
		w[3] = strlen(dur) > w[3] ? strlen(dur) : w[3];
		for (size_t k = 0; k < j->nsteps; k++) {
			const rn_steprec *s = j->steps[k];
			if (!s || !s->seen)
				continue;
			t = text_width(s->name);
			w[1] = t > w[1] ? t : w[1];
			t = strlen(rn_status_name(s->status));
			w[2] = t > w[2] ? t : w[2];
			rn_duration_format(dur, sizeof(dur), s->duration_ms);
			w[3] = strlen(dur) > w[3] ? strlen(dur) : w[3];
		}
	}
	out_puts(c, "\n");
	for (int k = 0; k < 4; k++) {
		put_padded(c, head[k], "", w[k]);
		out_puts(c, "  ");
	}
	out_printf(c, "%s\n", head[4]);
	for (size_t i = 0; i < c->run.njobs; i++) {
		const rn_jobrec *j = c->run.jobs[i];
		put_padded(c, j->name, col(c, C_JOB), w[0]);
		out_puts(c, "  ");
		put_padded(c, "", "", w[1]);
		out_puts(c, "  ");
		put_padded(c, rn_status_name(j->status), status_color(c, j->status), w[2]);
		out_puts(c, "  ");
		if (j->started_ms || j->duration_ms)
			rn_duration_format(dur, sizeof(dur), j->duration_ms);
		else
			snprintf(dur, sizeof(dur), "-");
		put_padded(c, dur, "", w[3]);
		out_printf(c, "  %d\n", j->attempts);
		for (size_t k = 0; k < j->nsteps; k++) {
			const rn_steprec *s = j->steps[k];
			if (!s || !s->seen)
				continue;
			put_padded(c, j->name, "", w[0]);
			out_puts(c, "  ");
			put_padded(c, s->name, col(c, C_STEP), w[1]);
			out_puts(c, "  ");
			put_padded(c, rn_status_name(s->status), status_color(c, s->status), w[2]);
			out_puts(c, "  ");
			if (s->started)
				rn_duration_format(dur, sizeof(dur), s->duration_ms);
			else
				snprintf(dur, sizeof(dur), "-");
			put_padded(c, dur, "", w[3]);
			out_printf(c, "  %d\n", s->attempts);
		}
	}
	rn_status st = c->run.status;
	int64_t ms = c->run.duration_ms;
	if (!c->run.finished) {
		/* closed without RUN_FINISHED: the run was interrupted */
		st = RN_ST_CANCELLED;
		for (size_t i = 0; i < c->run.njobs; i++)
			if (rn_status_failed(c->run.jobs[i]->status) && !c->run.jobs[i]->continue_on_error)
				st = RN_ST_FAILURE;
		ms = c->run.started_ms ? rn_wall_ms() - c->run.started_ms : 0;
	}
	out_printf(c, "pipeline %s: ", c->run.pipeline ? c->run.pipeline : "(unnamed)");
	put_status(c, st);
	out_puts(c, " in ");
	put_duration(c, ms);
	out_puts(c, "\n");
	c->summary_done = 1;
}

static void console_flush(rn_sink *sink)
{
	console_sink *c = (console_sink *)sink;
	if (fflush(c->out) != 0 && !c->err) {
		c->err = 1;
		c->err_no = errno;
	}
}

static void console_event(rn_sink *sink, const rn_event *ev)
{
	console_sink *c = (console_sink *)sink;
	rn_steprec *s = NULL;
	rn_jobrec *j = rn_runrec_update(&c->run, ev, &s);
	int redraw = c->status_line;
	status_clear(c); /* every event redraws the status line (simple, and it stays current) */
	rn_event_type type = ev->type;
	if (!j && type != RN_EV_RUN_STARTED && type != RN_EV_RUN_FINISHED && type != RN_EV_MESSAGE)
		type = RN_EV_RUN_STARTED; /* a job event without a job: nothing to print */
	switch (type) {
	case RN_EV_RUN_STARTED:
		break;
	case RN_EV_JOB_STARTED:
		if (ev->attempt > 1) {
			status_clear(c);
			put_prefix(c, j->name, NULL);
			out_printf(c, " ↻ attempt %d/%d\n", ev->attempt, ev->max_attempts);
		}
		break;
	case RN_EV_STEP_STARTED:
		if (s && ev->attempt > 1) {
			status_clear(c);
			put_prefix(c, j->name, s->name);
			out_printf(c, " ↻ attempt %d/%d\n", ev->attempt, ev->max_attempts);
		}
		break;
	case RN_EV_OUTPUT:
		status_clear(c);
		put_output_prefix(c, j->name, s ? s->name : "?");
		if (ev->data)
			out_write(c, ev->data, ev->len);
		out_puts(c, "\n");
		break;
	case RN_EV_STEP_FINISHED:
		if (!s)
			break;
		status_clear(c);
		put_prefix(c, j->name, s->name);
		out_printf(c, " %s%s%s ", status_color(c, s->status), status_symbol(s->status),
			   *status_color(c, s->status) ? C_RESET : "");
		put_status(c, s->status);
		put_details(c, s->status, s->exit_code, s->started, s->duration_ms, ev->attempt,
			    ev->max_attempts, s->continue_on_error, s->reason);
		out_puts(c, "\n");
		break;
	case RN_EV_JOB_FINISHED:
		status_clear(c);
		put_prefix(c, j->name, NULL);
		out_puts(c, ": ");
		put_status(c, j->status);
		put_details(c, RN_ST_SUCCESS, -1, j->attempts > 0, j->duration_ms, j->attempts,
			    j->max_attempts, j->continue_on_error, j->reason);
		out_puts(c, "\n");
		break;
	case RN_EV_RUN_FINISHED:
		status_clear(c);
		summary(c);
		redraw = 0;
		break;
	case RN_EV_MESSAGE: {
		status_clear(c);
		size_t n = 0;
		char *text = rn_event_mask_n(c->run.m, ev->data ? ev->data : "", ev->data ? ev->len : 0, &n);
		if (ev->job) {
			char *jn = j ? NULL : rn_event_mask(c->run.m, ev->job);
			const char *sn = NULL;
			char *own_sn = NULL;
			if (ev->step)
				sn = s ? s->name : (own_sn = rn_event_mask(c->run.m, ev->step));
			put_prefix(c, j ? j->name : jn, sn);
			free(jn);
			free(own_sn);
		} else {
			out_puts(c, "runner");
		}
		out_puts(c, ": ");
		out_write(c, text, n);
		out_puts(c, "\n");
		free(text);
		break;
	}
	}
	if (redraw)
		status_draw(c);
	/* output lines wait for console_flush (the engine calls it before it waits): one write per
	 * burst of lines; everything else goes out at once */
	if (ev->type != RN_EV_OUTPUT)
		console_flush(sink);
}

static int console_close(rn_sink *sink)
{
	console_sink *c = (console_sink *)sink;
	status_clear(c);
	if (!c->summary_done && (c->run.started || c->run.njobs))
		summary(c);
	if (fflush(c->out) != 0 && !c->err) {
		c->err = 1;
		c->err_no = errno;
	}
	int rc = 0;
	if (c->err) {
		errno = c->err_no;
		rc = rn_error_errno("console output");
	}
	rn_runrec_free(&c->run);
	free(c->pfx_job);
	free(c->pfx_step);
	free(c->pfx);
	free(c);
	return rc;
}

rn_sink *rn_console_sink_new(void *out, int color, int status_line, const struct rn_masker *m)
{
	console_sink *c = rn_xcalloc(1, sizeof(*c));
	c->base.event = console_event;
	c->base.close = console_close;
	c->base.flush = console_flush;
	c->out = out;
	c->color = color;
	c->status_line = status_line;
	rn_runrec_init(&c->run, m);
	return &c->base;
}
