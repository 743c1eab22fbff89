/* sink_junit.c - --junit FILE: a JUnit XML report written on close (temporary file + rename): a
 * testsuite per job instance, a testcase per step, failures carrying the last lines of the
 * step's output. Only a capped tail (TAIL_LINES lines / TAIL_BYTES bytes) of each running or
 * failed step is kept in memory. The text is made valid XML 1.0: invalid UTF-8 is repaired, ANSI
 * colour sequences and other control characters are dropped. */
#include "event.h"
#include "buf.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAIL_LINES 50
#define TAIL_BYTES 8192

typedef struct {
	rn_sink base;
	char *path;
	rn_runrec run;
} junit_sink;

static void junit_event(rn_sink *sink, const rn_event *ev)
{
	junit_sink *ju = (junit_sink *)sink;
	rn_runrec_update(&ju->run, ev, NULL);
}

/* ---- XML ---------------------------------------------------------------------------------- */

/* Write s[0..len) escaped for XML text (attr 0) or a double-quoted attribute value (attr 1). */
static void xml_escape(FILE *f, const char *s, size_t len, int attr)
{
	char *fixed = NULL;
	if (!rn_utf8_valid(s, len))
		s = fixed = rn_utf8_sanitize(s, len, 0, &len);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		switch (c) {
		case '&': fputs("&amp;", f); continue;
		case '<': fputs("&lt;", f); continue;
		case '>': fputs("&gt;", f); continue;
		case '"': fputs("&quot;", f); continue;
		case '\'': fputs("&apos;", f); continue;
		case '\t': fputs(attr ? "&#9;" : "\t", f); continue;
		case '\n': fputs(attr ? "&#10;" : "\n", f); continue;
		case '\r': fputs("&#13;", f); continue;
		default: break;
		}
		if (c == 0x1B && i + 1 < len && p[i + 1] == '[') {
			/* an ANSI CSI sequence (colours): ESC [ parameters final byte 0x40-0x7E */
			i += 2;
			while (i < len && !(p[i] >= 0x40 && p[i] <= 0x7E))
				i++;
			continue;
		}
		if (c < 0x20)
			continue; /* not allowed in XML 1.0 */
		if (c == 0xEF && i + 2 < len && p[i + 1] == 0xBF && (p[i + 2] == 0xBE || p[i + 2] == 0xBF)) {
			fputs("\xEF\xBF\xBD", f); /* U+FFFE and U+FFFF are not XML characters */
			i += 2;
			continue;
		}
		putc(c, f);
	}
	free(fixed);
}

static void xml_attr(FILE *f, const char *name, const char *value)
{
	fprintf(f, " %s=\"", name);
	xml_escape(f, value, strlen(value), 1);
	putc('"', f);
}

static void xml_time(FILE *f, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	fprintf(f, " time=\"%lld.%03lld\"", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* ---- the report --------------------------------------------------------------------------- */

typedef enum { TC_PASS, TC_FAIL, TC_SKIP } tc_kind;

static tc_kind kind_of(rn_status st)
{
	if (rn_status_failed(st))
		return TC_FAIL;
	if (st == RN_ST_SUCCESS)
		return TC_PASS;
	return TC_SKIP; /* skipped, cancelled, and steps still pending/running at close */
}

typedef struct {
	size_t tests, failures, skipped;
} counts;

static void count_status(counts *c, rn_status st)
{
	c->tests++;
	tc_kind k = kind_of(st);
	c->failures += k == TC_FAIL;
	c->skipped += k == TC_SKIP;
}

static counts job_counts(const rn_jobrec *j)
{
	counts c = { 0, 0, 0 };
	for (size_t k = 0; k < j->nsteps; k++)
		if (j->steps[k] && j->steps[k]->seen)
			count_status(&c, j->steps[k]->status);
	if (c.tests == 0)
		count_status(&c, j->status); /* a job without steps is a testcase of its own */
	return c;
}

/* The message attribute of a failure: "exit 3", "timed out after 1s (exit 143)"... */
static char *failure_message(rn_status st, int exit_code, const char *reason, int coe)
{
	char *msg;
	if (reason && *reason && exit_code >= 0)
		msg = rn_xasprintf("%s (exit %d)", reason, exit_code);
	else if (reason && *reason)
		msg = rn_xstrdup(reason);
	else if (exit_code >= 0)
		msg = rn_xasprintf("exit %d", exit_code);
	else
		msg = rn_xstrdup(rn_status_name(st));
	if (coe) {
		char *m2 = rn_xasprintf("%s (continue-on-error)", msg);
		free(msg);
		msg = m2;
	}
	return msg;
}

static void testcase(FILE *f, const char *classname, const char *name, int64_t ms, rn_status st,
		     int exit_code, const char *reason, int coe, const rn_buf *tail)
{
	fputs("    <testcase", f);
	xml_attr(f, "classname", classname);
	xml_attr(f, "name", name);
	xml_time(f, ms);
	switch (kind_of(st)) {
	case TC_PASS:
		fputs("/>\n", f);
		return;
	case TC_SKIP:
		fputs(">\n      <skipped", f);
		if (reason && *reason)
			xml_attr(f, "message", reason);
		else if (st != RN_ST_SKIPPED)
			xml_attr(f, "message", rn_status_name(st));
		fputs("/>\n    </testcase>\n", f);
		return;
	case TC_FAIL: {
		char *msg = failure_message(st, exit_code, reason, coe);
		fputs(">\n      <failure", f);
		xml_attr(f, "message", msg);
		xml_attr(f, "type", rn_status_name(st));
		fputs(">", f);
		if (tail && tail->len)
			xml_escape(f, tail->ptr, tail->len, 0);
		fputs("</failure>\n    </testcase>\n", f);
		free(msg);
		return;
	}
	}
}

static void write_report(FILE *f, const rn_runrec *r)
{
	counts all = { 0, 0, 0 };
	int64_t total_ms = 0;
	for (size_t i = 0; i < r->njobs; i++) {
		counts c = job_counts(r->jobs[i]);
		all.tests += c.tests;
		all.failures += c.failures;
		all.skipped += c.skipped;
		total_ms += r->jobs[i]->duration_ms;
	}
	if (r->finished)
		total_ms = r->duration_ms;
	else if (r->started_ms)
		total_ms = rn_wall_ms() - r->started_ms;
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", f);
	xml_attr(f, "name", r->pipeline ? r->pipeline : "runner");
	fprintf(f, " tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\"", all.tests,
		all.failures, all.skipped);
	xml_time(f, total_ms);
	fputs(">\n", f);
	for (size_t i = 0; i < r->njobs; i++) {
		const rn_jobrec *j = r->jobs[i];
		counts c = job_counts(j);
		fputs("  <testsuite", f);
		xml_attr(f, "name", j->name);
		fprintf(f, " tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\"", c.tests,
			c.failures, c.skipped);
		xml_time(f, j->duration_ms);
		if (j->started_ms) {
			char ts[40];
			rn_time_iso8601(ts, sizeof(ts), j->started_ms, 0);
			ts[strlen(ts) - 1] = '\0'; /* JUnit timestamps carry no zone */
			xml_attr(f, "timestamp", ts);
		}
		fputs(">\n", f);
		int any = 0;
		for (size_t k = 0; k < j->nsteps; k++) {
			const rn_steprec *s = j->steps[k];
			if (!s || !s->seen)
				continue;
			any = 1;
			char *name = rn_xasprintf("%02d. %s", s->index + 1, s->name);
			testcase(f, j->name, name, s->duration_ms, s->status, s->exit_code, s->reason,
				 s->continue_on_error, s->tail);
			free(name);
		}
		if (!any)
			testcase(f, j->name, j->name, j->duration_ms, j->status, -1, j->reason,
				 j->continue_on_error, NULL);
		fputs("  </testsuite>\n", f);
	}
	fputs("</testsuites>\n", f);
}

static int write_file(const char *path, const rn_runrec *r)
{
	char *dir = rn_xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (rn_mkdir_p(dir, 0755) < 0) {
			free(dir);
			return RN_EIO;
		}
	}
	free(dir);
	char *tmp = rn_xasprintf("%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int rc = rn_error_errno("create %s", tmp);
		free(tmp);
		return rc;
	}
	int rc = 0;
	if (fchmod(fd, 0644) < 0)
		rc = rn_error_errno("chmod %s", tmp);
	FILE *f = rc == 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (rc == 0)
			rc = rn_error_errno("fdopen %s", tmp);
		close(fd);
	} else {
		write_report(f, r);
		int bad = ferror(f);
		if (fclose(f) != 0 || bad)
			rc = rn_error_errno("write %s", tmp);
	}
	if (rc == 0 && rename(tmp, path) < 0)
		rc = rn_error_errno("rename %s to %s", tmp, path);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int junit_close(rn_sink *sink)
{
	junit_sink *ju = (junit_sink *)sink;
	int rc = write_file(ju->path, &ju->run);
	if (rc < 0) {
		char *msg = rn_xstrdup(rn_error_last());
		rn_error_set("junit report %s: %s", ju->path, msg);
		free(msg);
	}
	rn_runrec_free(&ju->run);
	free(ju->path);
	free(ju);
	return rc;
}

rn_sink *rn_junit_sink_new(const char *path, const struct rn_masker *m)
{
	junit_sink *ju = rn_xcalloc(1, sizeof(*ju));
	ju->base.event = junit_event;
	ju->base.close = junit_close;
	ju->path = rn_xstrdup(path);
	rn_runrec_init(&ju->run, m);
	ju->run.tail_max = TAIL_BYTES;
	ju->run.tail_lines_max = TAIL_LINES;
	return &ju->base;
}
