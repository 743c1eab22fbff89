/* event.c - status names and what the sinks share: masking, times, UTF-8 repair, and the record
 * of a run (rn_runrec) that the console, log directory and JUnit sinks build their summaries
 * from. The record keys jobs by their instance name and steps by index, because the events of
 * jobs that run in parallel interleave. */
#include "event.h"
#include "buf.h"
#include "mask.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *rn_status_name(rn_status st)
{
	switch (st) {
	case RN_ST_PENDING: return "pending";
	case RN_ST_RUNNING: return "running";
	case RN_ST_SUCCESS: return "success";
	case RN_ST_FAILURE: return "failure";
	case RN_ST_CANCELLED: return "cancelled";
	case RN_ST_SKIPPED: return "skipped";
	case RN_ST_TIMED_OUT: return "timed out";
	}
	return "unknown";
}

int rn_status_failed(rn_status st)
{
	return st == RN_ST_FAILURE || st == RN_ST_TIMED_OUT;
}

/* ---- helpers ------------------------------------------------------------------------------ */

char *rn_event_mask_n(const struct rn_masker *m, const char *s, size_t len, size_t *outlen)
{
	if (!m || rn_masker_count(m) == 0) {
		if (outlen)
			*outlen = len;
		return rn_xstrndup(s, len);
	}
	return rn_mask_buf(m, s, len, outlen);
}

char *rn_event_mask(const struct rn_masker *m, const char *s)
{
	if (!s)
		return NULL;
	return rn_event_mask_n(m, s, strlen(s), NULL);
}

void rn_time_iso8601(char *buf, size_t size, int64_t ms, int with_ms)
{
	if (ms < 0)
		ms = 0;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, size, "1970-01-01T00:00:00Z");
		return;
	}
	if (with_ms)
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	else
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Length of the valid UTF-8 sequence at p[0..n) (1 to 4), or 0 if it is not valid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0], cp, min;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, cp = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3, cp = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

int rn_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i);
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

char *rn_utf8_sanitize(const char *s, size_t len, int replace_nul, size_t *outlen)
{
	static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
	const unsigned char *p = (const unsigned char *)s;
	/* every byte becomes at most 3 */
	if (len > (SIZE_MAX - 1) / 3)
		len = (SIZE_MAX - 1) / 3;
	char *out = rn_xmalloc(len * 3 + 1);
	size_t o = 0, i = 0;
	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0 || (replace_nul && p[i] == 0)) {
			memcpy(out + o, repl, 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return out;
}

/* ---- the record of a run ------------------------------------------------------------------ */

void rn_runrec_init(rn_runrec *r, const struct rn_masker *m)
{
	memset(r, 0, sizeof(*r));
	r->m = m;
	r->status = RN_ST_PENDING;
}

static void set_str(char **dst, char *val)
{
	free(*dst);
	*dst = val;
}

/* The index slot of name: the one holding it, else the empty one where it goes. */
static size_t *index_slot(const rn_runrec *r, const char *name)
{
	size_t mask = r->nindex - 1;
	for (size_t i = rn_hash(name, strlen(name)) & mask;; i = (i + 1) & mask)
		if (!r->index[i] || strcmp(r->jobs[r->index[i] - 1]->key, name) == 0)
			return &r->index[i];
}

/* Room in the index for one more job (kept at most half full). */
static void index_grow(rn_runrec *r)
{
	if (2 * (r->njobs + 1) <= r->nindex)
		return;
	free(r->index);
	r->nindex = r->nindex ? 2 * r->nindex : 64;
	r->index = rn_xcalloc(r->nindex, sizeof(*r->index));
	for (size_t i = 0; i < r->njobs; i++)
		*index_slot(r, r->jobs[i]->key) = i + 1;
}

static rn_jobrec *find_job(rn_runrec *r, const char *name, int create)
{
	if (r->last < r->njobs && strcmp(r->jobs[r->last]->key, name) == 0)
		return r->jobs[r->last];
	size_t *slot = r->nindex ? index_slot(r, name) : NULL;
	if (slot && *slot) {
		r->last = *slot - 1;
		return r->jobs[r->last];
	}
	if (!create)
		return NULL;
	rn_jobrec *j = rn_xcalloc(1, sizeof(*j));
	j->key = rn_xstrdup(name);
	j->name = rn_event_mask(r->m, name);
	j->status = RN_ST_PENDING;
	j->running_step = -1;
	index_grow(r);
	rn_grow(&r->jobs, &r->capjobs, r->njobs + 1, sizeof(*r->jobs));
	r->last = r->njobs;
	r->jobs[r->njobs++] = j;
	*index_slot(r, name) = r->njobs;
	return j;
}

rn_steprec *rn_runrec_step(const rn_jobrec *j, int i)
{
	if (i < 0 || (size_t)i >= j->nsteps)
		return NULL;
	return j->steps[i];
}

static rn_steprec *get_step(rn_runrec *r, rn_jobrec *j, const rn_event *ev)
{
	int i = ev->step_index;
	if (i < 0)
		return NULL;
	if ((size_t)i >= j->nsteps) {
		size_t n = (size_t)i + 1;
		if (ev->nsteps > 0 && (size_t)ev->nsteps > n)
			n = (size_t)ev->nsteps;
		j->steps = rn_xreallocarray(j->steps, n, sizeof(*j->steps));
		memset(j->steps + j->nsteps, 0, (n - j->nsteps) * sizeof(*j->steps));
		j->nsteps = n;
	}
	rn_steprec *s = j->steps[i];
	if (!s) {
		s = rn_xcalloc(1, sizeof(*s));
		s->index = i;
		s->status = RN_ST_PENDING;
		s->exit_code = -1;
		if (ev->step)
			s->name = rn_event_mask(r->m, ev->step);
		else
			s->name = rn_xasprintf("step %d", i + 1);
		s->id = rn_event_mask(r->m, ev->step_id);
		j->steps[i] = s;
	}
	return s;
}

static void tail_free(rn_steprec *s)
{
	if (s->tail) {
		rn_buf_free(s->tail);
		free(s->tail);
		s->tail = NULL;
	}
	s->tail_lines = s->tail_cur = 0;
	s->tail_cut = 0;
}

/* Drop the oldest line of the tail (or all of it when it holds no complete line). */
static void tail_drop_line(rn_steprec *s)
{
	rn_buf *b = s->tail;
	const char *nl = b->len ? memchr(b->ptr, '\n', b->len) : NULL;
	if (!nl || s->tail_lines == 0) {
		rn_buf_reset(b);
		s->tail_lines = 0;
		return;
	}
	rn_buf_consume(b, (size_t)(nl - b->ptr) + 1);
	s->tail_lines--;
}

static void tail_add(rn_runrec *r, rn_steprec *s, const char *data, size_t len, int partial)
{
	static const char cut_mark[] = "…";
	if (!s->tail) {
		s->tail = rn_xcalloc(1, sizeof(*s->tail));
		s->tail->max = r->tail_max;
		s->tail_lines = s->tail_cur = 0;
		s->tail_cut = 0;
	}
	rn_buf *b = s->tail;
	/* every line is cut to linecap bytes (its beginning is kept), so that a huge line does not
	 * push every other line out of the tail */
	size_t linecap = r->tail_max / 8 > 16 ? r->tail_max / 8 : 16;
	size_t room = linecap > s->tail_cur ? linecap - s->tail_cur : 0;
	size_t take = len < room ? len : room;
	int cut_now = len > room && !s->tail_cut;
	size_t need = take + (cut_now ? sizeof(cut_mark) - 1 : 0) + (partial ? 0 : 1);
	if (need > b->max) { /* only with a tiny tail_max */
		need = 0;
		take = 0;
		cut_now = 0;
		if (!partial)
			need = 1;
	}
	while (b->len && (b->len + need > b->max || (!partial && s->tail_lines >= r->tail_lines_max)))
		tail_drop_line(s);
	rn_buf_add(b, data, take);
	s->tail_cur += take;
	if (cut_now) {
		rn_buf_add(b, cut_mark, sizeof(cut_mark) - 1);
		s->tail_cut = 1;
	}
	if (!partial) {
		rn_buf_putc(b, '\n');
		s->tail_lines++;
		s->tail_cur = 0;
		s->tail_cut = 0;
	}
}

/* A new attempt of job j: the steps of the previous attempt no longer count. */
static void job_new_attempt(rn_jobrec *j)
{
	for (size_t i = 0; i < j->nsteps; i++) {
		rn_steprec *s = j->steps[i];
		if (!s)
			continue;
		s->seen = s->started = s->running = 0;
		s->status = RN_ST_PENDING;
		s->exit_code = -1;
		s->attempts = 0;
		s->started_ms = s->duration_ms = 0;
		s->cpu_user_s = s->cpu_sys_s = 0;
		s->max_rss_kb = 0;
		s->continue_on_error = 0;
		set_str(&s->reason, NULL);
		set_str(&s->log_path, NULL);
		tail_free(s);
	}
	j->running_step = -1;
}

rn_jobrec *rn_runrec_update(rn_runrec *r, const rn_event *ev, rn_steprec **step)
{
	if (step)
		*step = NULL;
	if (!r->run_id && ev->run_id)
		r->run_id = rn_xstrdup(ev->run_id);
	if (!r->pipeline && ev->pipeline)
		r->pipeline = rn_event_mask(r->m, ev->pipeline);
	switch (ev->type) {
	case RN_EV_RUN_STARTED:
		r->started = 1;
		r->status = RN_ST_RUNNING;
		r->started_ms = ev->started_ms ? ev->started_ms : rn_wall_ms();
		r->njobs_total = ev->njobs;
		return NULL;
	case RN_EV_RUN_FINISHED:
		r->finished = 1;
		r->status = ev->status;
		if (ev->started_ms)
			r->started_ms = ev->started_ms;
		r->duration_ms = ev->duration_ms;
		return NULL;
	default:
		break;
	}
	if (!ev->job)
		return NULL;
	if (ev->type == RN_EV_MESSAGE) {
		rn_jobrec *j = find_job(r, ev->job, 0);
		if (j && step)
			*step = rn_runrec_step(j, ev->step_index);
		return j;
	}
	rn_jobrec *j = find_job(r, ev->job, 1);
	if (!j->id && ev->job_id)
		j->id = rn_event_mask(r->m, ev->job_id);
	rn_steprec *s = NULL;
	switch (ev->type) {
	case RN_EV_JOB_STARTED:
		if (j->attempts > 0 || ev->attempt > 1)
			job_new_attempt(j);
		j->attempts = ev->attempt > 0 ? ev->attempt : j->attempts + 1;
		j->max_attempts = ev->max_attempts;
		j->status = RN_ST_RUNNING;
		j->finished = 0;
		j->started_ms = ev->started_ms ? ev->started_ms : rn_wall_ms();
		j->duration_ms = 0;
		set_str(&j->reason, NULL);
		break;
	case RN_EV_JOB_FINISHED:
		j->status = ev->status;
		j->finished = 1;
		j->continue_on_error = ev->continue_on_error;
		if (ev->max_attempts)
			j->max_attempts = ev->max_attempts;
		if (ev->started_ms)
			j->started_ms = ev->started_ms;
		j->duration_ms = ev->duration_ms;
		set_str(&j->reason, rn_event_mask(r->m, ev->reason));
		j->running_step = -1;
		break;
	case RN_EV_STEP_STARTED:
		s = get_step(r, j, ev);
		if (!s)
			break;
		if (j->status == RN_ST_PENDING)
			j->status = RN_ST_RUNNING;
		s->seen = s->started = s->running = 1;
		s->status = RN_ST_RUNNING;
		s->attempts = ev->attempt > 0 ? ev->attempt : s->attempts + 1;
		s->max_attempts = ev->max_attempts;
		s->exit_code = -1;
		s->continue_on_error = 0;
		s->started_ms = ev->started_ms ? ev->started_ms : rn_wall_ms();
		s->duration_ms = 0;
		s->cpu_user_s = s->cpu_sys_s = 0;
		s->max_rss_kb = 0;
		set_str(&s->reason, NULL);
		set_str(&s->log_path, rn_xstrdup(ev->log_path));
		tail_free(s);
		j->running_step = s->index;
		break;
	case RN_EV_OUTPUT:
		s = get_step(r, j, ev);
		if (s && r->tail_max > 0)
			tail_add(r, s, ev->data ? ev->data : "", ev->data ? ev->len : 0, ev->partial);
		break;
	case RN_EV_STEP_FINISHED:
		s = get_step(r, j, ev);
		if (!s)
			break;
		if (!s->started)
			s->attempts = 0;
		else if (ev->attempt > s->attempts)
			s->attempts = ev->attempt;
		s->seen = 1;
		s->running = 0;
		s->status = ev->status;
		s->exit_code = ev->exit_code;
		s->continue_on_error = ev->continue_on_error;
		if (ev->max_attempts)
			s->max_attempts = ev->max_attempts;
		if (ev->started_ms)
			s->started_ms = ev->started_ms;
		s->duration_ms = ev->duration_ms;
		s->cpu_user_s = ev->cpu_user_s;
		s->cpu_sys_s = ev->cpu_sys_s;
		s->max_rss_kb = ev->max_rss_kb;
		set_str(&s->reason, rn_event_mask(r->m, ev->reason));
		if (ev->log_path)
			set_str(&s->log_path, rn_xstrdup(ev->log_path));
		if (!rn_status_failed(s->status))
			tail_free(s); /* the tail is only reported for failed steps */
		if (j->running_step == s->index)
			j->running_step = -1;
		break;
	default:
		break;
	}
	if (step)
		*step = s;
	return j;
}

size_t rn_runrec_done(const rn_runrec *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->njobs; i++)
		n += r->jobs[i]->finished != 0;
	return n;
}

void rn_runrec_free(rn_runrec *r)
{
	for (size_t i = 0; i < r->njobs; i++) {
		rn_jobrec *j = r->jobs[i];
		for (size_t k = 0; k < j->nsteps; k++) {
			rn_steprec *s = j->steps[k];
			if (!s)
				continue;
			free(s->name);
			free(s->id);
			free(s->log_path);
			free(s->reason);
			tail_free(s);
			free(s);
		}
		free(j->steps);
		free(j->key);
		free(j->name);
		free(j->id);
		free(j->reason);
		free(j);
	}
	free(r->jobs);
	free(r->index);
	free(r->run_id);
	free(r->pipeline);
	memset(r, 0, sizeof(*r));
}
