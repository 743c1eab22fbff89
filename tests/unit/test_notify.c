/* test_notify.c - the notify sink against a real HTTP server (tests/integration/http_sink.py,
 * started here): bodies of every format, event and state filters, template expansion of url and
 * headers, retries after 503, masking of header values, and that a dead endpoint never blocks
 * the caller. Workflows are parsed with the real front end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "diag.h"
#include "error.h"
#include "event.h"
#include "mask.h"
#include "notify.h"
#include "util.h"
#include "workflow.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char B[256];          /* scratch directory */
static pid_t server_pid = -1;
static int port;
static char logfile[PATH_MAX];

static int group_setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/rn-notify-XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(B, sizeof(B), "%s", tmpl);
	const char *script = getenv("HTTP_SINK");
	if (!script || access(script, R_OK) != 0) {
		fprintf(stderr, "HTTP_SINK (tests/integration/http_sink.py) is not set\n");
		return -1;
	}
	char portfile[PATH_MAX];
	snprintf(portfile, sizeof(portfile), "%s/port", B);
	snprintf(logfile, sizeof(logfile), "%s/requests.json", B);
	server_pid = fork();
	if (server_pid == 0) {
		execlp("python3", "python3", script, portfile, logfile, (char *)NULL);
		_exit(127);
	}
	/* wait for the port file (written once the server accepts connections) */
	for (int i = 0; i < 400; i++) {
		char *data = NULL;
		size_t len;
		if (rn_read_file(&data, &len, portfile, 64) == 0) {
			port = atoi(data);
			free(data);
			if (port > 0)
				return 0;
		}
		int st;
		if (waitpid(server_pid, &st, WNOHANG) == server_pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
	}
	if (!getenv("RN_KEEP"))
		rn_rm_rf(B);
	return 0;
}

/* The requests the server has logged whose path starts with prefix (new reference). */
static json_t *requests(const char *prefix)
{
	json_t *all = json_load_file(logfile, 0, NULL);
	assert_non_null(all);
	json_t *out = json_array();
	for (size_t i = 0; i < json_array_size(all); i++) {
		json_t *r = json_array_get(all, i);
		if (rn_startswith(json_string_value(json_object_get(r, "path")), prefix))
			json_array_append(out, r);
	}
	json_decref(all);
	return out;
}

/* A pipeline from workflow text with @URL@ replaced by http://127.0.0.1:PORT. */
static rn_pipeline *pipeline(const char *yaml)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	rn_buf b = RN_BUF_INIT(1 << 20);
	for (const char *p = yaml; *p;) {
		const char *hit = strstr(p, "@URL@");
		if (!hit) {
			rn_buf_puts(&b, p);
			break;
		}
		rn_buf_add(&b, p, (size_t)(hit - p));
		rn_buf_puts(&b, url);
		p = hit + 5;
	}
	rn_diags d = RN_DIAGS_INIT("notify.yml");
	rn_pipeline *p = NULL;
	int rc = rn_workflow_parse(&p, "notify.yml", b.ptr, b.len, &d);
	if (rc < 0)
		rn_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	rn_diags_free(&d);
	rn_buf_free(&b);
	return p;
}

static rn_event ev_of(rn_event_type type, const char *job, rn_status st)
{
	rn_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.run_id = "run-1";
	ev.pipeline = "ci";
	ev.job = job;
	ev.job_id = job;
	ev.step_index = -1;
	ev.attempt = 1;
	ev.max_attempts = 1;
	ev.status = st;
	ev.started_ms = rn_wall_ms() - 1500;
	ev.duration_ms = 1500;
	return ev;
}

/* Feed a whole run: pipeline started, job build started+success, job test started+failure,
 * job skipped, pipeline failure. */
static void feed_run(rn_sink *s)
{
	rn_event evs[] = {
		ev_of(RN_EV_RUN_STARTED, NULL, RN_ST_RUNNING),   ev_of(RN_EV_JOB_STARTED, "build", RN_ST_RUNNING),
		ev_of(RN_EV_JOB_FINISHED, "build", RN_ST_SUCCESS), ev_of(RN_EV_JOB_STARTED, "test", RN_ST_RUNNING),
		ev_of(RN_EV_STEP_FINISHED, "test", RN_ST_FAILURE), ev_of(RN_EV_JOB_FINISHED, "test", RN_ST_FAILURE),
		ev_of(RN_EV_JOB_FINISHED, "deploy", RN_ST_SKIPPED), ev_of(RN_EV_RUN_FINISHED, NULL, RN_ST_FAILURE),
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(evs); i++)
		s->event(s, &evs[i]);
}

static const rn_notify_opts fast = { .retry_delay_ms = 100, .drain_ms = 20000 };

static void test_none(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	assert_null(rn_notify_sink_new(p, NULL, NULL, NULL, NULL));
	rn_pipeline_free(p);
}

/* The hex SHA-256 of s. */
static void sha_hex(const char *s, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The server logs each body's sha256 (not the body): compare with that of the body we expect. */
static void expect_sha(json_t *req, const char *expected_body)
{
	char hex[65];
	sha_hex(expected_body, hex);
	const char *got = json_string_value(json_object_get(req, "sha256"));
	if (!got || strcmp(got, hex) != 0)
		fail_msg("the body is not %s", expected_body);
}

static void test_events_and_states(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("name: ci\n"
				  "notify:\n"
				  "  - url: @URL@/ok/default\n"
				  "  - url: @URL@/ok/jobs-failure\n"
				  "    events: [job]\n"
				  "    on: [failure]\n"
				  "  - url: @URL@/ok/both\n"
				  "    events: [pipeline, job]\n"
				  "    on: [started, success, failure, cancelled]\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	json_t *info = json_pack("{s:s, s:s, s:s, s:n}", "id", "run-1", "sha", "0123456789abcdef0123456789abcdef01234567",
				 "ref", "refs/heads/main", "logs_url");
	rn_sink *s = rn_notify_sink_new(p, NULL, info, NULL, &fast);
	rn_pipeline_free(p); /* the sink copied what it needs */
	json_decref(info);
	assert_non_null(s);
	feed_run(s);
	assert_int_equal(s->close(s), 0);

	json_t *def = requests("/ok/default");
	assert_int_equal(json_array_size(def), 2); /* pipeline started, pipeline failure */
	json_t *r0 = json_array_get(def, 0);
	assert_string_equal(json_string_value(json_object_get(r0, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(r0, "content_type")), "application/json");
	json_decref(def);
	json_t *jf = requests("/ok/jobs-failure");
	assert_int_equal(json_array_size(jf), 1); /* job test failure only */
	json_decref(jf);
	json_t *both = requests("/ok/both");
	/* pipeline started, build started, build success, test started, test failure, pipeline
	 * failure; the skipped job and the step event send nothing */
	assert_int_equal(json_array_size(both), 6);
	json_decref(both);
}

/* The bodies themselves: an endpoint that echoes nothing back, so the body is checked by its
 * hash against the document we expect, built from the same event with fixed times. */
static void test_status_body(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("name: ci\n"
				  "notify:\n"
				  "  - url: @URL@/ok/gitea/${{ git.sha }}\n"
				  "    format: gitea-status\n"
				  "    events: [pipeline, job]\n"
				  "  - url: @URL@/ok/github\n"
				  "    format: github-status\n"
				  "    on: [success]\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	json_t *info = json_pack("{s:s, s:s, s:s, s:s}", "id", "17", "sha", "0123456789abcdef0123456789abcdef01234567",
				 "ref", "refs/heads/main", "logs_url", "http://ci.example/p/17");
	rn_sink *s = rn_notify_sink_new(p, NULL, info, NULL, &fast);
	rn_pipeline_free(p);
	json_decref(info);
	rn_event started = ev_of(RN_EV_RUN_STARTED, NULL, RN_ST_RUNNING);
	rn_event job = ev_of(RN_EV_JOB_FINISHED, "build (gcc)", RN_ST_TIMED_OUT);
	job.duration_ms = 2500;
	job.reason = "timed out after 2s";
	rn_event done = ev_of(RN_EV_RUN_FINISHED, NULL, RN_ST_SUCCESS);
	done.duration_ms = 75000;
	s->event(s, &started);
	s->event(s, &job);
	s->event(s, &done);
	assert_int_equal(s->close(s), 0);
	json_t *g = requests("/ok/gitea/0123456789abcdef0123456789abcdef01234567");
	assert_int_equal(json_array_size(g), 3);
	expect_sha(json_array_get(g, 0), "{\"state\":\"pending\",\"target_url\":\"http://ci.example/p/17\","
					 "\"description\":\"running\",\"context\":\"runner/ci\"}");
	expect_sha(json_array_get(g, 1),
		   "{\"state\":\"failure\",\"target_url\":\"http://ci.example/p/17\","
		   "\"description\":\"timed out after 2.5s: timed out after 2s\",\"context\":\"runner/ci/build (gcc)\"}");
	expect_sha(json_array_get(g, 2), "{\"state\":\"success\",\"target_url\":\"http://ci.example/p/17\","
					 "\"description\":\"success after 1m15s\",\"context\":\"runner/ci\"}");
	json_decref(g);
	json_t *gh = requests("/ok/github");
	assert_int_equal(json_array_size(gh), 1);
	json_t *h = json_object_get(json_array_get(gh, 0), "headers");
	assert_string_equal(json_string_value(json_object_get(h, "Accept")), "application/vnd.github+json");
	assert_string_equal(json_string_value(json_object_get(h, "User-Agent")), "runner/" RN_VERSION);
	json_decref(gh);
}

/* The json document, byte for byte: every member is fixed but time_ms, which is one of the
 * milliseconds between the event and the end of close(). */
static void test_json_body(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("name: ci\n"
				  "notify:\n"
				  "  - url: @URL@/ok/json\n"
				  "    events: [job]\n"
				  "    on: [success]\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	json_t *info = json_pack("{s:s, s:s, s:s, s:s, s:n}", "id", "run-7", "sha", "abc", "ref", "refs/tags/v1", "repo",
				 "/srv/git/app.git", "logs_url");
	rn_sink *s = rn_notify_sink_new(p, NULL, info, NULL, &fast);
	rn_pipeline_free(p);
	json_decref(info);
	rn_event ev = ev_of(RN_EV_JOB_FINISHED, "build", RN_ST_SUCCESS);
	ev.job_id = "build";
	ev.started_ms = 1000;
	ev.duration_ms = 500;
	ev.attempt = 2;
	ev.max_attempts = 3;
	int64_t t0 = rn_wall_ms();
	s->event(s, &ev);
	assert_int_equal(s->close(s), 0);
	int64_t t1 = rn_wall_ms();
	json_t *r = requests("/ok/json");
	assert_int_equal(json_array_size(r), 1);
	const char *prefix = "{\"event\":\"job\",\"state\":\"success\",\"status\":\"success\","
			     "\"pipeline\":{\"id\":\"run-7\",\"name\":\"ci\",\"started_ms\":null,\"status\":\"running\"},"
			     "\"job\":{\"id\":\"build\",\"name\":\"build\",\"attempt\":2,\"max_attempts\":3,\"started_ms\":1000,"
			     "\"status\":\"success\",\"finished_ms\":1500,\"duration_ms\":500,\"continue_on_error\":false,"
			     "\"reason\":null},\"repo\":\"/srv/git/app.git\",\"ref\":\"refs/tags/v1\",\"sha\":\"abc\","
			     "\"url\":null,\"time_ms\":";
	const char *got = json_string_value(json_object_get(json_array_get(r, 0), "sha256"));
	int found = 0;
	for (int64_t ms = t0; ms <= t1 && !found; ms++) {
		char *body = rn_xasprintf("%s%lld}", prefix, (long long)ms), hex[65];
		sha_hex(body, hex);
		found = strcmp(hex, got) == 0;
		free(body);
	}
	assert_true(found);
	json_decref(r);
}

static void test_retry_after_503(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("notify:\n  - url: @URL@/flaky/retry\n    on: [success]\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	char warnpath[PATH_MAX];
	snprintf(warnpath, sizeof(warnpath), "%s/warn-retry", B);
	FILE *warn = fopen(warnpath, "w+");
	rn_notify_opts o = fast;
	o.warn = warn;
	rn_sink *s = rn_notify_sink_new(p, NULL, NULL, NULL, &o);
	rn_pipeline_free(p);
	rn_event ev = ev_of(RN_EV_RUN_FINISHED, NULL, RN_ST_SUCCESS);
	s->event(s, &ev);
	assert_int_equal(s->close(s), 0);
	json_t *r = requests("/flaky/retry");
	assert_int_equal(json_array_size(r), 3); /* 503, 503, 200 */
	json_decref(r);
	fclose(warn);
	char *text = NULL;
	size_t len;
	assert_int_equal(rn_read_file(&text, &len, warnpath, 1 << 20), 0);
	assert_int_equal(len, 0); /* delivered in the end: nothing to warn about */
	free(text);
}

static void test_secret_headers(void **state)
{
	(void)state;
	const char *secret = "s3cr3t-token-value";
	rn_pipeline *p = pipeline("notify:\n"
				  "  - url: @URL@/echo/secret\n"
				  "    on: [success]\n"
				  "    headers:\n"
				  "      Authorization: token ${{ secrets.T }}\n"
				  "      X-Plain: plain-header-value\n"
				  "  - url: @URL@/ok/secret\n"
				  "    on: [success]\n"
				  "    headers: {Authorization: 'token ${{ secrets.T }}'}\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	rn_masker *m = rn_masker_new();
	assert_int_equal(rn_masker_add(m, secret), 0);
	json_t *ctx = json_pack("{s:{s:s}}", "secrets", "T", secret);
	char warnpath[PATH_MAX];
	snprintf(warnpath, sizeof(warnpath), "%s/warn-secret", B);
	FILE *warn = fopen(warnpath, "w+");
	rn_notify_opts o = fast;
	o.warn = warn;
	o.attempts = 1;
	rn_sink *s = rn_notify_sink_new(p, m, NULL, ctx, &o);
	json_decref(ctx);
	rn_pipeline_free(p);
	rn_event ev = ev_of(RN_EV_RUN_FINISHED, NULL, RN_ST_SUCCESS);
	s->event(s, &ev);
	assert_int_equal(s->close(s), 0);
	rn_masker_free(m);
	fclose(warn);
	json_t *r = requests("/ok/secret");
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "authorization")),
			    "token s3cr3t-token-value");
	json_decref(r);
	r = requests("/echo/secret");
	assert_int_equal(json_array_size(r), 1);
	json_t *h = json_object_get(json_array_get(r, 0), "headers");
	assert_string_equal(json_string_value(json_object_get(h, "X-Plain")), "plain-header-value");
	json_decref(r);
	/* the 401 answer echoes the headers: the warning shows neither value */
	char *text = NULL;
	size_t len;
	assert_int_equal(rn_read_file(&text, &len, warnpath, 1 << 20), 0);
	assert_non_null(strstr(text, "runner: notify: "));
	assert_non_null(strstr(text, "401"));
	assert_null(strstr(text, secret));
	assert_null(strstr(text, "plain-header-value"));
	free(text);
}

static void test_never_blocks(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("notify:\n  - url: @URL@/slow/x\n    events: [pipeline, job]\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	char warnpath[PATH_MAX];
	snprintf(warnpath, sizeof(warnpath), "%s/warn-slow", B);
	FILE *warn = fopen(warnpath, "w+");
	rn_notify_opts o = { .warn = warn, .drain_ms = 500, .queue_max = 3, .timeout_ms = 60000 };
	rn_sink *s = rn_notify_sink_new(p, NULL, NULL, NULL, &o);
	rn_pipeline_free(p);
	int64_t t0 = rn_now_ms();
	for (int i = 0; i < 50; i++) {
		rn_event ev = ev_of(i % 2 ? RN_EV_JOB_FINISHED : RN_EV_JOB_STARTED, "build", RN_ST_SUCCESS);
		s->event(s, &ev);
	}
	int64_t t1 = rn_now_ms();
	assert_true(t1 - t0 < 1000); /* 50 events against an endpoint that never answers */
	assert_int_equal(s->close(s), 0);
	int64_t t2 = rn_now_ms();
	assert_true(t2 - t1 >= 500);   /* waited for the queue to drain, */
	assert_true(t2 - t1 < 5000);   /* but only that long */
	fclose(warn);
	char *text = NULL;
	size_t len;
	assert_int_equal(rn_read_file(&text, &len, warnpath, 1 << 20), 0);
	assert_non_null(strstr(text, "gave up"));
	assert_non_null(strstr(text, "dropped"));
	free(text);
}

static void test_bad_entries(void **state)
{
	(void)state;
	rn_pipeline *p = pipeline("notify:\n"
				  "  - url: ftp://example.com/x\n"
				  "  - url: @URL@/ok/bad-header\n"
				  "    headers: {'X-Bad': \"a${{ secrets.NL }}b\"}\n"
				  "  - url: @URL@/ok/good\n"
				  "    on: [success]\n"
				  "jobs:\n  a:\n    steps:\n      - run: 'true'\n");
	json_t *ctx = json_pack("{s:{s:s}}", "secrets", "NL", "line\r\nInjected: yes");
	char warnpath[PATH_MAX];
	snprintf(warnpath, sizeof(warnpath), "%s/warn-bad", B);
	FILE *warn = fopen(warnpath, "w+");
	rn_notify_opts o = fast;
	o.warn = warn;
	rn_sink *s = rn_notify_sink_new(p, NULL, NULL, ctx, &o);
	json_decref(ctx);
	rn_pipeline_free(p);
	assert_non_null(s);
	rn_event ev = ev_of(RN_EV_RUN_FINISHED, NULL, RN_ST_SUCCESS);
	s->event(s, &ev);
	assert_int_equal(s->close(s), 0);
	fclose(warn);
	json_t *r = requests("/ok/good");
	assert_int_equal(json_array_size(r), 1);
	json_decref(r);
	r = requests("/ok/bad-header");
	assert_int_equal(json_array_size(r), 0);
	json_decref(r);
	char *text = NULL;
	size_t len;
	assert_int_equal(rn_read_file(&text, &len, warnpath, 1 << 20), 0);
	assert_non_null(strstr(text, "notify.yml:2:5: entry skipped: url ftp://example.com/x: only http"));
	assert_non_null(strstr(text, "header X-Bad"));
	assert_null(strstr(text, "Injected"));
	free(text);
}

static void test_state_names(void **state)
{
	(void)state;
	rn_event ev = ev_of(RN_EV_JOB_FINISHED, "a", RN_ST_TIMED_OUT);
	assert_string_equal(rn_notify_state(&ev), "failure");
	ev.status = RN_ST_CANCELLED;
	assert_string_equal(rn_notify_state(&ev), "cancelled");
	ev.status = RN_ST_SKIPPED;
	assert_null(rn_notify_state(&ev));
	ev.type = RN_EV_OUTPUT;
	assert_null(rn_notify_state(&ev));
	ev.type = RN_EV_RUN_STARTED;
	assert_string_equal(rn_notify_state(&ev), "started");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_events_and_states),
		cmocka_unit_test(test_status_body),
		cmocka_unit_test(test_json_body),
		cmocka_unit_test(test_retry_after_503),
		cmocka_unit_test(test_secret_headers),
		cmocka_unit_test(test_never_blocks),
		cmocka_unit_test(test_bad_entries),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
