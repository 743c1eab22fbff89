/* test_statuspage.c - the HTML status page: escaping of hostile names and logs, refresh only
 * while something is unfinished, links that carry the query. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "statuspage.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define T0 ((json_int_t)1700000000000)
#define REFRESH "<meta http-equiv=\"refresh\" content=\"5\">"

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, 0, &err);
	if (!v)
		fail_msg("bad test JSON: %s at %d", err.text, err.line);
	return v;
}

static json_t *job(const char *id, const char *name, const char *status)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:n, s:I, s:I, s:I, s:{}, s:[{s:i, s:s, s:s, s:i, s:i, s:I, s:I}]}",
			 "id", id, "pipeline", "7", "name", name, "job", "build", "status", status, "attempt", 1, "agent",
			 "a1", "reason", "queued_ms", T0, "started_ms", T0 + 1000, "finished_ms", T0 + 2500, "outputs", "steps", "index", 0, "name",
			 "compile", "status", status, "attempt", 1, "exit_code", 0, "started_ms", T0 + 1000, "duration_ms",
			 (json_int_t)1500);
}

/* Every href="..." of html ends with the (escaped) query. */
static void assert_links_carry(const char *html, const char *escaped_query, size_t min_links)
{
	size_t n = 0;
	for (const char *p = strstr(html, "href=\""); p; p = strstr(p + 1, "href=\"")) {
		const char *v = p + 6;
		const char *end = strchr(v, '"');
		assert_non_null(end);
		size_t ql = strlen(escaped_query);
		if ((size_t)(end - v) < ql || memcmp(end - ql, escaped_query, ql) != 0)
			fail_msg("link without the query: %.*s", (int)(end - v), v);
		n++;
	}
	if (n < min_links)
		fail_msg("%zu links, expected at least %zu", n, min_links);
}

/* No raw control characters but \n (and \t) in the page. */
static void assert_no_controls(const char *html)
{
	for (const unsigned char *p = (const unsigned char *)html; *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			fail_msg("control character 0x%02x at offset %zu", *p, (size_t)(p - (const unsigned char *)html));
}

static void index_escapes_and_links(void **state)
{
	(void)state;
	json_t *list = load("{\"pipelines\": ["
			    "{\"id\": \"12\", \"name\": \"<script>alert(1)</script>\", \"repo\": \"/r\","
			    " \"ref\": \"refs/heads/\\\"><img src=x onerror=alert(2)>\", \"sha\": \"0123456789abcdef0123\","
			    " \"status\": \"success\", \"created_ms\": 1700000000000, \"started_ms\": 1700000000100,"
			    " \"finished_ms\": 1700000003500},"
			    "{\"id\": \"11\", \"name\": \"it's & \\u001b[31mred\", \"repo\": \"/r\", \"ref\": \"v1\","
			    " \"sha\": null, \"status\": \"failure\", \"created_ms\": 1700000000000,"
			    " \"started_ms\": null, \"finished_ms\": null}]}");
	char *html = rn_statuspage_index(list, "?token=a%2Bb&x=1");
	assert_true(rn_startswith(html, "<!DOCTYPE html>"));
	assert_non_null(strstr(html, "</html>\n"));
	assert_null(strstr(html, "<script>"));
	assert_null(strstr(html, "<img"));
	assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(html, "&quot;&gt;&lt;img src=x"));
	assert_non_null(strstr(html, "it&#39;s &amp; red"));
	assert_non_null(strstr(html, "<code>01234567</code>")); /* the short sha */
	assert_null(strstr(html, "0123456789"));
	assert_non_null(strstr(html, "3.400s"));
	assert_non_null(strstr(html, "href=\"/pipelines/12?token=a%2Bb&amp;x=1\""));
	assert_non_null(strstr(html, "href=\"/?token=a%2Bb&amp;x=1\""));
	assert_links_carry(html, "?token=a%2Bb&amp;x=1", 5);
	assert_no_controls(html);
	assert_null(strstr(html, REFRESH)); /* everything finished */
	free(html);

	/* an empty query gives plain links; a bare array is accepted too */
	html = rn_statuspage_index(json_object_get(list, "pipelines"), "");
	assert_non_null(strstr(html, "href=\"/pipelines/11\""));
	assert_links_carry(html, "", 5);
	free(html);
	html = rn_statuspage_index(json_object_get(list, "pipelines"), NULL);
	assert_non_null(strstr(html, "href=\"/\""));
	free(html);
	json_decref(list);
}

static void index_refreshes_while_unfinished(void **state)
{
	(void)state;
	static const char *const unfinished[] = { "queued", "running", "something new" };
	for (size_t i = 0; i < RN_ARRAY_LEN(unfinished); i++) {
		json_t *list = json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "pipelines", "id", "2", "name", "b",
					 "status", unfinished[i], "id", "1", "name", "a", "status", "cancelled");
		char *html = rn_statuspage_index(list, "");
		assert_non_null(strstr(html, REFRESH));
		free(html);
		json_decref(list);
	}
	json_t *empty = json_pack("{s:[]}", "pipelines");
	char *html = rn_statuspage_index(empty, "");
	assert_null(strstr(html, REFRESH));
	assert_non_null(strstr(html, "No pipelines yet"));
	free(html);
	json_decref(empty);
}

static void pipeline_page(void **state)
{
	(void)state;
	json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:[]}", "id", "7", "name", "ci <b>",
			      "repo", "https://user:s3cr3tpw@example.com/x.git", "ref", "refs/heads/main", "sha",
			      "0123456789abcdef0123456789abcdef01234567", "status", "success", "created_ms", T0,
			      "started_ms", T0, "finished_ms", T0 + 4000, "jobs");
	json_t *jobs = json_object_get(p, "jobs");
	json_array_append_new(jobs, job("7.1", "build (<gcc>)", "success"));
	json_array_append_new(jobs, job("7.2", "test \"quoted\"", "skipped"));
	char *html = rn_statuspage_pipeline(p, "?token=t");
	assert_null(strstr(html, "s3cr3tpw"));
	assert_non_null(strstr(html, "example.com"));
	assert_null(strstr(html, "<b>"));
	assert_non_null(strstr(html, "ci &lt;b&gt;"));
	assert_non_null(strstr(html, "build (&lt;gcc&gt;)"));
	assert_non_null(strstr(html, "test &quot;quoted&quot;"));
	assert_non_null(strstr(html, "href=\"/jobs/7.1?token=t\""));
	assert_non_null(strstr(html, "href=\"/jobs/7.2?token=t\""));
	assert_non_null(strstr(html, "class=\"st st-success\""));
	assert_non_null(strstr(html, "class=\"st st-skipped\""));
	assert_non_null(strstr(html, "compile"));
	assert_non_null(strstr(html, "1.500s"));
	assert_links_carry(html, "?token=t", 5);
	assert_no_controls(html);
	assert_null(strstr(html, REFRESH));
	free(html);

	/* finished pipeline, a job still running (being cancelled): refresh */
	json_array_append_new(jobs, job("7.3", "deploy", "running"));
	html = rn_statuspage_pipeline(p, "");
	assert_non_null(strstr(html, REFRESH));
	free(html);
	/* all jobs finished but the pipeline not yet: refresh */
	json_array_remove(jobs, 2);
	json_object_set_new(p, "status", json_string("running"));
	html = rn_statuspage_pipeline(p, "");
	assert_non_null(strstr(html, REFRESH));
	free(html);
	json_decref(p);
}

static void hostile_ids_and_statuses(void **state)
{
	(void)state;
	json_t *p = json_pack("{s:s, s:s, s:s, s:[]}", "id", "1/../../admin?x=\"y\"", "name", "n", "status",
			      "<b onclick=x>", "jobs");
	json_array_append_new(json_object_get(p, "jobs"), job("1 2\"><script>", "j", "weird\"status"));
	char *html = rn_statuspage_pipeline(p, "?q=1");
	assert_null(strstr(html, "<script>"));
	assert_null(strstr(html, "<b onclick"));
	assert_non_null(strstr(html, "&lt;b onclick=x&gt;"));
	assert_non_null(strstr(html, "class=\"st st-other\""));
	assert_null(strstr(html, "weird\"status"));
	assert_non_null(strstr(html, "href=\"/jobs/1%202%22%3E%3Cscript%3E?q=1\""));
	assert_links_carry(html, "?q=1", 3);
	free(html);
	json_t *list = json_pack("{s:[O]}", "pipelines", p);
	html = rn_statuspage_index(list, "");
	assert_non_null(strstr(html, "href=\"/pipelines/1%2F..%2F..%2Fadmin%3Fx%3D%22y%22\""));
	free(html);
	json_decref(list);
	json_decref(p);

	/* a query with a quote cannot break out of the attribute */
	json_t *j = job("3.1", "x", "success");
	html = rn_statuspage_job(j, "", 0, "?token=\"><script>");
	assert_null(strstr(html, "<script>"));
	assert_links_carry(html, "?token=&quot;&gt;&lt;script&gt;", 3);
	free(html);
	json_decref(j);
}

static void job_page_log(void **state)
{
	(void)state;
	json_t *j = job("7.1", "build", "success");
	json_object_set_new(j, "outputs", json_pack("{s:s}", "version", "<1.0>"));
	static const char log[] = "compiling <script>alert('x')</script>\n"
				  "\x1b[31mred\x1b[0m text & more\r\n"
				  "progress 10%\rprogress 100%\n"
				  "bad utf-8: \xff\xfe and a NUL: \0 end\n"
				  "\x1b]0;title\x07osc gone\n"
				  "snowman \xe2\x98\x83 stays\n";
	char *html = rn_statuspage_job(j, log, sizeof(log) - 1, "?token=t");
	assert_null(strstr(html, "<script>"));
	assert_non_null(strstr(html, "compiling &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\n"));
	assert_non_null(strstr(html, "red text &amp; more\n"));
	assert_non_null(strstr(html, "progress 10%\nprogress 100%\n"));
	assert_non_null(strstr(html, "bad utf-8: \xef\xbf\xbd\xef\xbf\xbd and a NUL: \xef\xbf\xbd end"));
	assert_non_null(strstr(html, "osc gone"));
	assert_null(strstr(html, "title\n"));
	assert_non_null(strstr(html, "snowman \xe2\x98\x83 stays"));
	assert_non_null(strstr(html, "&lt;1.0&gt;"));
	assert_non_null(strstr(html, "href=\"/pipelines/7?token=t\""));
	assert_links_carry(html, "?token=t", 3);
	assert_no_controls(html);
	assert_null(strstr(html, REFRESH));
	assert_non_null(strstr(html, "<pre class=\"log\">"));
	free(html);

	/* no log yet; running: refresh */
	json_object_set_new(j, "status", json_string("running"));
	html = rn_statuspage_job(j, NULL, 0, "");
	assert_non_null(strstr(html, "No log yet"));
	assert_non_null(strstr(html, REFRESH));
	free(html);
	json_object_set_new(j, "status", json_string("assigned"));
	html = rn_statuspage_job(j, "", 0, "");
	assert_non_null(strstr(html, "The log is empty"));
	assert_non_null(strstr(html, REFRESH));
	free(html);
	/* no pipeline field: taken from the job id */
	json_object_del(j, "pipeline");
	json_object_set_new(j, "status", json_string("timed out"));
	html = rn_statuspage_job(j, "x", 1, "");
	assert_non_null(strstr(html, "href=\"/pipelines/7\""));
	assert_non_null(strstr(html, "st-timed-out"));
	assert_null(strstr(html, REFRESH));
	free(html);
	json_decref(j);
}

static void long_log_shows_the_tail(void **state)
{
	(void)state;
	size_t len = RN_STATUSPAGE_LOG_MAX + 300000;
	char *log = rn_xmalloc(len);
	memset(log, '<', len);
	memcpy(log, "FIRST LINE\n", 11);
	for (size_t i = 100; i < len; i += 100)
		log[i] = '\n';
	memcpy(log + len - 10, "LAST LINE\n", 10);
	json_t *j = job("7.1", "build", "success");
	char *html = rn_statuspage_job(j, log, len, "");
	assert_null(strstr(html, "FIRST LINE"));
	assert_non_null(strstr(html, "LAST LINE\n</pre>"));
	assert_non_null(strstr(html, "are not shown"));
	assert_null(strstr(html, "<<"));
	/* the escaped tail is about 4 times its size, not more */
	assert_true(strlen(html) < 5 * RN_STATUSPAGE_LOG_MAX);
	free(html);
	json_decref(j);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(index_escapes_and_links),
		cmocka_unit_test(index_refreshes_while_unfinished),
		cmocka_unit_test(pipeline_page),
		cmocka_unit_test(hostile_ids_and_statuses),
		cmocka_unit_test(job_page_log),
		cmocka_unit_test(long_log_shows_the_tail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
