/* statuspage.c - the HTML status page of `runner serve`, rendered from protocol JSON objects.
 *
 * Everything that comes from the objects or the log goes through put_text(): made valid UTF-8,
 * stripped of control characters and terminal escape sequences, then HTML-escaped (the five
 * characters & < > " '), so that it is safe both as element text and inside a quoted attribute.
 * Link targets are built from ids percent-encoded as path segments. */
#include "statuspage.h"
#include "buf.h"
#include "event.h"
#include "git.h"
#include "units.h"
#include "jsonx.h"
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A page never grows past this (a 1 MiB log escapes to at most ~18 MiB). */
#define PAGE_MAX (64u * 1024 * 1024)
#define SHORT_SHA 8

typedef struct page {
	rn_buf b;
	const char *q; /* the query appended to links ("" for none) */
} page;

static void put(page *p, const char *s)
{
	rn_buf_puts(&p->b, s);
}

__attribute__((format(printf, 2, 3))) static void putf(page *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rn_buf_vprintf(&p->b, fmt, ap);
	va_end(ap);
}

/* Length of the terminal escape sequence at s[0] == ESC (CSI, OSC, or a two-byte one). */
static size_t escape_len(const unsigned char *s, size_t len)
{
	size_t i = 1;
	if (len < 2)
		return len;
	if (s[1] == '[') { /* CSI: parameters, intermediates, one final byte */
		for (i = 2; i < len && s[i] >= 0x20 && s[i] <= 0x3f; i++)
			;
		return i < len ? i + 1 : len;
	}
	if (s[1] == ']') { /* OSC: up to BEL or ESC \ */
		for (i = 2; i < len; i++) {
			if (s[i] == 0x07)
				return i + 1;
			if (s[i] == 0x1b)
				return i + 1 < len && s[i + 1] == '\\' ? i + 2 : i;
		}
		return len;
	}
	return 2;
}

/* Text s[0..len) as safe HTML: valid UTF-8, no control characters but \n and \t (a lone \r
 * becomes \n), no escape sequences, the HTML specials escaped. */
static void put_text_n(page *p, const char *s, size_t len)
{
	size_t n;
	char *clean = rn_utf8_sanitize(s, len, 1, &n);
	const unsigned char *u = (const unsigned char *)clean;
	size_t run = 0; /* start of the pending run of plain bytes */
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		const char *rep = NULL;
		size_t skip = 1;
		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		case '\n':
		case '\t':
			break;
		case '\r':
			rep = i + 1 < n && u[i + 1] == '\n' ? "" : "\n";
			break;
		case 0x1b:
			rep = "";
			skip = escape_len(u + i, n - i);
			break;
		case 0xc2: /* C1 controls U+0080..U+009F */
			if (i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
				rep = "";
				skip = 2;
			}
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				rep = "";
			break;
		}
		if (!rep) {
			i++;
			continue;
		}
		rn_buf_add(&p->b, clean + run, i - run);
		put(p, rep);
		i += skip;
		run = i;
	}
	rn_buf_add(&p->b, clean + run, n - run);
	free(clean);
}

/* A string as safe HTML; NULL (or "") gives dflt, which is trusted markup. */
static void put_text(page *p, const char *s, const char *dflt)
{
	if (!s || !*s)
		put(p, dflt);
	else
		put_text_n(p, s, strlen(s));
}

/* ---- JSON look-ups ------------------------------------------------------------------------- */

static int is_one_of(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static const char *const job_final_states[] = { "success", "failure", "timed out", "cancelled", "skipped", NULL };

/* 1 if a job (or step or pipeline) status will not change any more. */
static int final_status(const char *st)
{
	return is_one_of(st, job_final_states);
}

/* The CSS class of a status: a fixed string, never the status text itself. */
static const char *status_class(const char *st)
{
	static const char *const known[][2] = {
		{ "success", "st-success" },     { "failure", "st-failure" },     { "timed out", "st-timed-out" },
		{ "cancelled", "st-cancelled" }, { "skipped", "st-skipped" },     { "running", "st-running" },
		{ "assigned", "st-assigned" },   { "queued", "st-queued" },       { "pending", "st-pending" },
	};
	for (size_t i = 0; st && i < RN_ARRAY_LEN(known); i++)
		if (strcmp(st, known[i][0]) == 0)
			return known[i][1];
	return "st-other";
}

/* ---- pieces of pages ----------------------------------------------------------------------- */

static const char style[] =
	"body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:1.2em 2em;color:#1f2328}"
	"nav{margin-bottom:1em;color:#57606a}h1{font-size:1.4em;margin:.3em 0 .6em}h2{font-size:1.1em;margin-top:1.5em}"
	"a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}"
	"table{border-collapse:collapse}th,td{padding:.3em .8em;text-align:left;vertical-align:top;"
	"border-bottom:1px solid #d0d7de}th{background:#f6f8fa;font-weight:600}"
	"code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
	".st{display:inline-block;padding:0 .55em;border-radius:1em;color:#fff;font-size:.9em;white-space:nowrap}"
	".dot{display:inline-block;width:.65em;height:.65em;border-radius:50%;margin-right:.3em}"
	".step{white-space:nowrap;margin-right:.8em}"
	".st-success{background:#1a7f37}.st-failure,.st-timed-out{background:#cf222e}"
	".st-running{background:#0969da}.st-assigned{background:#54aeff}"
	".st-queued,.st-pending{background:#8c959f}.st-cancelled{background:#9a6700}"
	".st-skipped{background:#d0d7de;color:#1f2328}.st-other{background:#6e7781}"
	"dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}dt{color:#57606a}dd{margin:0}"
	"pre.log{background:#0d1117;color:#e6edf3;padding:1em;overflow-x:auto;white-space:pre-wrap;"
	"word-break:break-all;font-size:13px}.muted{color:#57606a}";

static void begin(page *p, const char *query, int refresh)
{
	p->b = (rn_buf)RN_BUF_INIT(PAGE_MAX);
	p->q = query ? query : "";
	put(p, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
	if (refresh)
		put(p, "<meta http-equiv=\"refresh\" content=\"5\">\n");
	put(p, "<title>");
}

static void end_head(page *p)
{
	putf(p, " - runner</title>\n<style>%s</style>\n</head>\n<body>\n", style);
}

static char *finish(page *p)
{
	put(p, "</main>\n</body>\n</html>\n");
	return rn_buf_detach(&p->b);
}

/* The query, escaped for an attribute. */
static void put_query(page *p)
{
	put_text(p, p->q, "");
}

/* An id as a URL path segment (percent-encoded), then the query. */
static void put_href(page *p, const char *prefix, const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	put(p, " href=\"");
	put(p, prefix);
	for (const unsigned char *s = (const unsigned char *)id; *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '.' || *s == '-' || *s == '_')
			rn_buf_putc(&p->b, (char)*s);
		else
			putf(p, "%%%c%c", hex[*s >> 4], hex[*s & 15]);
	}
	put_query(p);
	put(p, "\"");
}

static void put_status(page *p, const char *st)
{
	putf(p, "<span class=\"st %s\">", status_class(st));
	put_text(p, st, "unknown");
	put(p, "</span>");
}

static void put_time(page *p, int64_t ms)
{
	if (ms < 0) {
		put(p, "-");
		return;
	}
	char iso[40];
	rn_time_iso8601(iso, sizeof(iso), ms, 0);
	putf(p, "<time datetime=\"%s\">", iso);
	char *t = strchr(iso, 'T');
	if (t)
		*t = ' ';
	size_t n = strlen(iso);
	if (n && iso[n - 1] == 'Z')
		iso[n - 1] = '\0';
	putf(p, "%s UTC</time>", iso);
}

/* started..finished, or started..now while unfinished; "-" before the start. */
static void put_duration(page *p, int64_t started, int64_t finished, int64_t given)
{
	char d[32];
	if (given >= 0)
		rn_duration_format(d, sizeof(d), given);
	else if (started < 0)
		snprintf(d, sizeof(d), "-");
	else if (finished >= started)
		rn_duration_format(d, sizeof(d), finished - started);
	else
		rn_duration_format(d, sizeof(d), rn_wall_ms() - started);
	put(p, d);
}

static const char *short_ref(const char *ref)
{
	if (!ref)
		return NULL;
	if (rn_startswith(ref, "refs/heads/"))
		return ref + 11;
	if (rn_startswith(ref, "refs/tags/"))
		return ref + 10;
	return ref;
}

static void put_sha(page *p, const char *sha)
{
	if (!sha || !*sha) {
		put(p, "-");
		return;
	}
	put(p, "<code>");
	put_text_n(p, sha, strnlen(sha, SHORT_SHA));
	put(p, "</code>");
}

static void put_repo(page *p, const char *repo)
{
	if (!repo || !*repo) {
		put(p, "-");
		return;
	}
	char *red = rn_git_redact_url(repo);
	put_text(p, red, "-");
	free(red);
}

static void nav(page *p, const char *pipeline_id, const char *job_id)
{
	put(p, "<nav><a href=\"/");
	put_query(p);
	put(p, "\">pipelines</a>");
	if (pipeline_id) {
		put(p, " &rsaquo; ");
		if (job_id) {
			put(p, "<a");
			put_href(p, "/pipelines/", pipeline_id);
			put(p, ">");
		}
		put(p, "pipeline ");
		put_text(p, pipeline_id, "?");
		if (job_id)
			put(p, "</a> &rsaquo; job ");
		if (job_id)
			put_text(p, job_id, "?");
	}
	put(p, "</nav>\n<main>\n");
}

/* ---- the index ----------------------------------------------------------------------------- */

char *rn_statuspage_index(json_t *pipelines, const char *query)
{
	page p;
	json_t *list = json_is_object(pipelines) ? json_object_get(pipelines, "pipelines") : pipelines;
	size_t i;
	json_t *pl;
	int refresh = 0;
	json_array_foreach(list, i, pl)
		if (!final_status(rn_json_str(pl, "status")))
			refresh = 1;
	begin(&p, query, refresh);
	put(&p, "pipelines");
	end_head(&p);
	nav(&p, NULL, NULL);
	put(&p, "<h1>Pipelines</h1>\n");
	if (!json_array_size(list)) {
		put(&p, "<p class=\"muted\">No pipelines yet.</p>\n");
		return finish(&p);
	}
	put(&p, "<table>\n<tr><th>#</th><th>name</th><th>ref</th><th>commit</th><th>status</th>"
		"<th>created</th><th>duration</th></tr>\n");
	json_array_foreach(list, i, pl) {
		char *id = rn_json_id(pl, "id");
		put(&p, "<tr><td><a");
		put_href(&p, "/pipelines/", id);
		put(&p, ">");
		put_text(&p, id, "?");
		put(&p, "</a></td><td><a");
		put_href(&p, "/pipelines/", id);
		put(&p, ">");
		put_text(&p, rn_json_str(pl, "name"), "(unnamed)");
		put(&p, "</a></td><td>");
		put_text(&p, short_ref(rn_json_str(pl, "ref")), "-");
		put(&p, "</td><td>");
		put_sha(&p, rn_json_str(pl, "sha"));
		put(&p, "</td><td>");
		put_status(&p, rn_json_str(pl, "status"));
		put(&p, "</td><td>");
		put_time(&p, rn_json_int(pl, "created_ms"));
		put(&p, "</td><td>");
		put_duration(&p, rn_json_int(pl, "started_ms"), rn_json_int(pl, "finished_ms"), -1);
		put(&p, "</td></tr>\n");
		free(id);
	}
	put(&p, "</table>\n");
	return finish(&p);
}

/* ---- a pipeline ---------------------------------------------------------------------------- */

static void put_step_dots(page *p, json_t *steps)
{
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s) {
		const char *st = rn_json_str(s, "status");
		put(p, "<span class=\"step\" title=\"");
		put_text(p, st, "unknown");
		putf(p, "\"><span class=\"dot %s\"></span>", status_class(st));
		const char *name = rn_json_str(s, "name");
		if (name && *name)
			put_text(p, name, "");
		else
			putf(p, "step %zu", i + 1);
		put(p, "</span>");
	}
}

char *rn_statuspage_pipeline(json_t *pipeline, const char *query)
{
	page p;
	json_t *jobs = json_object_get(pipeline, "jobs");
	size_t i;
	json_t *j;
	int refresh = !final_status(rn_json_str(pipeline, "status"));
	json_array_foreach(jobs, i, j)
		if (!final_status(rn_json_str(j, "status")))
			refresh = 1;
	char *id = rn_json_id(pipeline, "id");
	begin(&p, query, refresh);
	put(&p, "pipeline ");
	put_text(&p, id, "?");
	put(&p, " ");
	put_text(&p, rn_json_str(pipeline, "name"), "");
	end_head(&p);
	nav(&p, id, NULL);
	put(&p, "<h1>Pipeline ");
	put_text(&p, id, "?");
	put(&p, ": ");
	put_text(&p, rn_json_str(pipeline, "name"), "(unnamed)");
	put(&p, " ");
	put_status(&p, rn_json_str(pipeline, "status"));
	put(&p, "</h1>\n<dl>\n<dt>repository</dt><dd>");
	put_repo(&p, rn_json_str(pipeline, "repo"));
	put(&p, "</dd>\n<dt>ref</dt><dd>");
	put_text(&p, rn_json_str(pipeline, "ref"), "-");
	put(&p, "</dd>\n<dt>commit</dt><dd><code>");
	put_text(&p, rn_json_str(pipeline, "sha"), "-");
	put(&p, "</code></dd>\n<dt>created</dt><dd>");
	put_time(&p, rn_json_int(pipeline, "created_ms"));
	put(&p, "</dd>\n<dt>started</dt><dd>");
	put_time(&p, rn_json_int(pipeline, "started_ms"));
	put(&p, "</dd>\n<dt>finished</dt><dd>");
	put_time(&p, rn_json_int(pipeline, "finished_ms"));
	put(&p, "</dd>\n<dt>duration</dt><dd>");
	put_duration(&p, rn_json_int(pipeline, "started_ms"), rn_json_int(pipeline, "finished_ms"), -1);
	put(&p, "</dd>\n</dl>\n<h2>Jobs</h2>\n");
	free(id);
	if (!json_array_size(jobs)) {
		put(&p, "<p class=\"muted\">No jobs.</p>\n");
		return finish(&p);
	}
	put(&p, "<table>\n<tr><th>job</th><th>name</th><th>status</th><th>attempt</th><th>agent</th>"
		"<th>duration</th><th>steps</th></tr>\n");
	json_array_foreach(jobs, i, j) {
		char *jobid = rn_json_id(j, "id");
		put(&p, "<tr><td><a");
		put_href(&p, "/jobs/", jobid);
		put(&p, ">");
		put_text(&p, jobid, "?");
		put(&p, "</a></td><td><a");
		put_href(&p, "/jobs/", jobid);
		put(&p, ">");
		put_text(&p, rn_json_str(j, "name"), "(unnamed)");
		put(&p, "</a></td><td>");
		put_status(&p, rn_json_str(j, "status"));
		const char *reason = rn_json_str(j, "reason");
		if (reason && *reason) {
			put(&p, " <span class=\"muted\">");
			put_text(&p, reason, "");
			put(&p, "</span>");
		}
		put(&p, "</td><td>");
		int64_t att = rn_json_int(j, "attempt");
		if (att > 0)
			putf(&p, "%lld", (long long)att);
		else
			put(&p, "-");
		put(&p, "</td><td>");
		put_text(&p, rn_json_str(j, "agent"), "-");
		put(&p, "</td><td>");
		put_duration(&p, rn_json_int(j, "started_ms"), rn_json_int(j, "finished_ms"), -1);
		put(&p, "</td><td>");
		put_step_dots(&p, json_object_get(j, "steps"));
		put(&p, "</td></tr>\n");
		free(jobid);
	}
	put(&p, "</table>\n");
	return finish(&p);
}

/* ---- a job --------------------------------------------------------------------------------- */

/* Where to start showing a log of len bytes: past the first RN_STATUSPAGE_LOG_MAX-from-the-end
 * byte, at the next line start (when one is near) or at least at a UTF-8 sequence start. */
static size_t log_start(const char *log, size_t len)
{
	if (len <= RN_STATUSPAGE_LOG_MAX)
		return 0;
	size_t start = len - RN_STATUSPAGE_LOG_MAX;
	const char *nl = memchr(log + start, '\n', len - start < 4096 ? len - start : 4096);
	if (nl)
		return (size_t)(nl - log) + 1;
	while (start < len && ((unsigned char)log[start] & 0xc0) == 0x80)
		start++;
	return start;
}

static void put_outputs(page *p, json_t *outputs)
{
	const char *k;
	json_t *v;
	put(p, "<dt>outputs</dt><dd>");
	json_object_foreach(outputs, k, v) {
		put(p, "<code>");
		put_text(p, k, "");
		put(p, "</code> = <code>");
		if (json_is_string(v)) {
			put_text(p, json_string_value(v), "");
		} else {
			char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			put_text(p, s, "");
			free(s);
		}
		put(p, "</code><br>");
	}
	put(p, "</dd>\n");
}

char *rn_statuspage_job(json_t *job, const char *log, size_t len, const char *query)
{
	page p;
	json_t *steps = json_object_get(job, "steps");
	char *id = rn_json_id(job, "id");
	char *pid = rn_json_id(job, "pipeline");
	if (!*pid) { /* "17.3" belongs to pipeline 17 */
		free(pid);
		const char *dot = strchr(id, '.');
		pid = rn_xstrndup(id, dot ? (size_t)(dot - id) : strlen(id));
	}
	begin(&p, query, !final_status(rn_json_str(job, "status")));
	put(&p, "job ");
	put_text(&p, id, "?");
	put(&p, " ");
	put_text(&p, rn_json_str(job, "name"), "");
	end_head(&p);
	nav(&p, *pid ? pid : NULL, id);
	put(&p, "<h1>Job ");
	put_text(&p, id, "?");
	put(&p, ": ");
	put_text(&p, rn_json_str(job, "name"), "(unnamed)");
	put(&p, " ");
	put_status(&p, rn_json_str(job, "status"));
	put(&p, "</h1>\n<dl>\n");
	if (*pid) {
		put(&p, "<dt>pipeline</dt><dd><a");
		put_href(&p, "/pipelines/", pid);
		put(&p, ">");
		put_text(&p, pid, "?");
		put(&p, "</a></dd>\n");
	}
	put(&p, "<dt>workflow job</dt><dd><code>");
	put_text(&p, rn_json_str(job, "job"), "-");
	put(&p, "</code></dd>\n<dt>attempt</dt><dd>");
	int64_t att = rn_json_int(job, "attempt");
	if (att > 0)
		putf(&p, "%lld", (long long)att);
	else
		put(&p, "-");
	put(&p, "</dd>\n<dt>agent</dt><dd>");
	put_text(&p, rn_json_str(job, "agent"), "-");
	put(&p, "</dd>\n");
	const char *reason = rn_json_str(job, "reason");
	if (reason && *reason) {
		put(&p, "<dt>reason</dt><dd>");
		put_text(&p, reason, "");
		put(&p, "</dd>\n");
	}
	put(&p, "<dt>queued</dt><dd>");
	put_time(&p, rn_json_int(job, "queued_ms"));
	put(&p, "</dd>\n<dt>started</dt><dd>");
	put_time(&p, rn_json_int(job, "started_ms"));
	put(&p, "</dd>\n<dt>finished</dt><dd>");
	put_time(&p, rn_json_int(job, "finished_ms"));
	put(&p, "</dd>\n<dt>duration</dt><dd>");
	put_duration(&p, rn_json_int(job, "started_ms"), rn_json_int(job, "finished_ms"), -1);
	put(&p, "</dd>\n");
	json_t *outputs = json_object_get(job, "outputs");
	if (json_object_size(outputs))
		put_outputs(&p, outputs);
	put(&p, "</dl>\n<h2>Steps</h2>\n");

	size_t i;
	json_t *s;
	if (!json_array_size(steps)) {
		put(&p, "<p class=\"muted\">No steps reported yet.</p>\n");
	} else {
		put(&p, "<table>\n<tr><th>#</th><th>step</th><th>status</th><th>exit</th><th>attempt</th>"
			"<th>started</th><th>duration</th><th>reason</th></tr>\n");
		json_array_foreach(steps, i, s) {
			int64_t idx = rn_json_int(s, "index");
			putf(&p, "<tr><td>%lld</td><td>", (long long)(idx >= 0 ? idx + 1 : (int64_t)i + 1));
			put_text(&p, rn_json_str(s, "name"), "-");
			put(&p, "</td><td>");
			put_status(&p, rn_json_str(s, "status"));
			put(&p, "</td><td>");
			int64_t code = rn_json_int(s, "exit_code");
			if (json_is_integer(json_object_get(s, "exit_code")))
				putf(&p, "%lld", (long long)code);
			else
				put(&p, "-");
			put(&p, "</td><td>");
			int64_t satt = rn_json_int(s, "attempt");
			if (satt > 0)
				putf(&p, "%lld", (long long)satt);
			else
				put(&p, "-");
			put(&p, "</td><td>");
			put_time(&p, rn_json_int(s, "started_ms"));
			put(&p, "</td><td>");
			int64_t dur = rn_json_int(s, "duration_ms");
			if (dur < 0 && rn_json_int(s, "started_ms") < 0)
				put(&p, "-");
			else
				put_duration(&p, rn_json_int(s, "started_ms"), -1, dur);
			put(&p, "</td><td>");
			put_text(&p, rn_json_str(s, "reason"), "");
			put(&p, "</td></tr>\n");
		}
		put(&p, "</table>\n");
	}

	put(&p, "<h2>Log</h2>\n");
	if (!log) {
		put(&p, "<p class=\"muted\">No log yet.</p>\n");
	} else if (len == 0) {
		put(&p, "<p class=\"muted\">The log is empty.</p>\n");
	} else {
		size_t start = log_start(log, len);
		if (start > 0)
			putf(&p, "<p class=\"muted\">The first %zu bytes are not shown (<code>runner logs ", start);
		if (start > 0) {
			put_text(&p, id, "?");
			put(&p, "</code> prints them).</p>\n");
		}
		put(&p, "<pre class=\"log\">");
		put_text_n(&p, log + start, len - start);
		put(&p, "</pre>\n");
	}
	free(id);
	free(pid);
	return finish(&p);
}
