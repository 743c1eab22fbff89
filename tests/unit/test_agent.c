/* test_agent.c - the pure parts of the agent: its config file and labels, lease ids, the
 * backoff, URL escaping, and the job log sink fed with scripted events (steps, a retry, a skip,
 * a failure with a reason, partial lines, masked names and messages) plus the output filter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_api.h"
#include "agent_conf.h"
#include "agent_log.h"
#include "agent_sup.h"
#include "diag.h"
#include "error.h"
#include "event.h"
#include "mask.h"
#include "util.h"

/* ---- config -------------------------------------------------------------------------------- */

static int parse(rn_agent_conf *c, const char *text, rn_diags *d)
{
	rn_agent_conf_init(c);
	return rn_agent_conf_parse(c, text, strlen(text), d);
}

/* The printed diagnostics (caller frees). */
static char *diag_text(rn_diags *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	rn_diags_print(d, f);
	fclose(f);
	return buf;
}

static void test_conf_full(void **state)
{
	(void)state;
	rn_agent_conf c;
	rn_diags d = RN_DIAGS_INIT("agent.yml");
	assert_int_equal(parse(&c,
			       "server: http://ci.example:8080\n"
			       "token: reg-token\n"
			       "name: builder-1\n"
			       "labels: [linux, x86_64, big.disk]\n"
			       "capacity: 4\n"
			       "work-dir: /var/lib/runner\n"
			       "shutdown-timeout: 1m30s\n"
			       "keep-workspace: true\n"
			       "metrics: 127.0.0.1:9101\n",
			       &d),
			 0);
	assert_string_equal(c.server, "http://ci.example:8080");
	assert_string_equal(c.token, "reg-token");
	assert_string_equal(c.name, "builder-1");
	assert_string_equal(c.work_dir, "/var/lib/runner");
	assert_string_equal(c.metrics, "127.0.0.1:9101");
	assert_true(c.labels_set);
	assert_int_equal(c.nlabels, 3);
	assert_string_equal(c.labels[2], "big.disk");
	assert_int_equal(c.capacity, 4);
	assert_int_equal(c.shutdown_ms, 90000);
	assert_int_equal(c.keep_workspace, 1);
	rn_agent_conf_free(&c);
	rn_diags_free(&d);

	/* labels as a comma-separated string; unset keys stay unset; an empty file sets nothing */
	assert_int_equal(parse(&c, "labels: 'gpu, arm64'\n", &d), 0);
	assert_int_equal(c.nlabels, 2);
	assert_string_equal(c.labels[0], "gpu");
	assert_string_equal(c.labels[1], "arm64");
	assert_null(c.server);
	assert_int_equal(c.capacity, -1);
	assert_int_equal(c.shutdown_ms, -1);
	assert_int_equal(c.keep_workspace, -1);
	rn_agent_conf_free(&c);
	assert_int_equal(parse(&c, "", &d), 0);
	assert_false(c.labels_set);
	rn_agent_conf_free(&c);
	assert_int_equal(parse(&c, "labels: []\n", &d), 0);
	assert_true(c.labels_set);
	assert_int_equal(c.nlabels, 0);
	rn_agent_conf_free(&c);
	assert_int_equal(d.errors, 0);
	rn_diags_free(&d);
}

static void test_conf_errors(void **state)
{
	(void)state;
	rn_agent_conf c;
	rn_diags d = RN_DIAGS_INIT("agent.yml");
	/* every problem of the file in one pass, with line and column */
	assert_int_equal(parse(&c,
			       "server: http://x\n"
			       "capacity: 0\n"
			       "labels: [ok, 'bad label']\n"
			       "colour: red\n"
			       "shutdown-timeout: soon\n"
			       "keep-workspace: maybe\n"
			       "name: [a]\n",
			       &d),
			 RN_EINVALID);
	char *text = diag_text(&d);
	assert_non_null(strstr(text, "agent.yml:2:11: error: 'capacity' must be a whole number from 1 to 1024"));
	assert_non_null(strstr(text, "agent.yml:3:14: error: invalid label 'bad label'"));
	assert_non_null(strstr(text, "agent.yml:4:1: error: unknown key 'colour'"));
	assert_non_null(strstr(text, "agent.yml:5:19: error: 'shutdown-timeout' must be a duration"));
	assert_non_null(strstr(text, "agent.yml:6:17: error: 'keep-workspace' must be true or false"));
	assert_non_null(strstr(text, "agent.yml:7:7: error: 'name' must be a non-empty string"));
	assert_int_equal(d.errors, 6);
	free(text);
	rn_agent_conf_free(&c);
	rn_diags_free(&d);

	d = (rn_diags)RN_DIAGS_INIT("agent.yml");
	assert_int_equal(parse(&c, "- a\n- b\n", &d), RN_EINVALID);
	text = diag_text(&d);
	assert_non_null(strstr(text, "must be a mapping"));
	free(text);
	rn_agent_conf_free(&c);
	rn_diags_free(&d);

	d = (rn_diags)RN_DIAGS_INIT("agent.yml");
	assert_int_equal(parse(&c, "server: [unclosed\n", &d), RN_EINVALID);
	assert_true(d.errors > 0);
	rn_agent_conf_free(&c);
	rn_diags_free(&d);

	/* a missing file */
	d = (rn_diags)RN_DIAGS_INIT("/nonexistent/agent.yml");
	rn_agent_conf_init(&c);
	assert_int_equal(rn_agent_conf_load(&c, "/nonexistent/agent.yml", &d), RN_ENOTFOUND);
	assert_int_equal(d.errors, 1);
	rn_agent_conf_free(&c);
	rn_diags_free(&d);
}

static void test_labels(void **state)
{
	(void)state;
	rn_agent_conf c;
	rn_agent_conf_init(&c);
	assert_int_equal(rn_agent_conf_labels(&c, " linux ,x86_64,  v1.2-rc_3 "), 0);
	assert_int_equal(c.nlabels, 3);
	assert_string_equal(c.labels[0], "linux");
	assert_string_equal(c.labels[1], "x86_64");
	assert_string_equal(c.labels[2], "v1.2-rc_3");
	assert_int_equal(rn_agent_conf_labels(&c, ""), 0);
	assert_int_equal(c.nlabels, 0);
	assert_true(c.labels_set);
	assert_int_equal(rn_agent_conf_labels(&c, "a,,b"), RN_EINVALID);
	assert_int_equal(rn_agent_conf_labels(&c, "a,b,a"), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "twice"));
	assert_int_equal(rn_agent_conf_labels(&c, "a/b"), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "invalid label 'a/b'"));
	/* 32 labels are fine, 33 are not */
	char many[33 * 4 + 1] = "";
	for (int i = 0; i < 33; i++)
		sprintf(many + strlen(many), "%sl%02d", i ? "," : "", i);
	assert_int_equal(rn_agent_conf_labels(&c, many), RN_EINVALID);
	many[strlen(many) - 4] = '\0';
	assert_int_equal(rn_agent_conf_labels(&c, many), 0);
	assert_int_equal(c.nlabels, 32);
	char longest[66];
	memset(longest, 'x', 65);
	longest[65] = '\0';
	assert_false(rn_agent_label_ok(longest));
	longest[64] = '\0';
	assert_true(rn_agent_label_ok(longest));
	assert_false(rn_agent_label_ok(""));
	rn_agent_conf_free(&c);
}

/* ---- small helpers ------------------------------------------------------------------------- */

static void test_lease_ids(void **state)
{
	(void)state;
	assert_true(rn_ajob_lease_ok("9f2c0a1b-Z_z"));
	assert_false(rn_ajob_lease_ok(""));
	assert_false(rn_ajob_lease_ok(NULL));
	assert_false(rn_ajob_lease_ok("../etc"));
	assert_false(rn_ajob_lease_ok("a/b"));
	assert_false(rn_ajob_lease_ok("a b"));
	assert_false(rn_ajob_lease_ok(".hidden"));
	char l[130];
	memset(l, 'a', 129);
	l[129] = '\0';
	assert_false(rn_ajob_lease_ok(l));
	l[128] = '\0';
	assert_true(rn_ajob_lease_ok(l));
}

static void test_backoff(void **state)
{
	(void)state;
	/* full jitter: uniformly in [0, min(cap, base * 2^(n-1))], spread out */
	for (int attempt = 1; attempt <= 12; attempt++) {
		long bound = 500;
		for (int i = 1; i < attempt && bound < 30000; i++)
			bound *= 2;
		if (bound > 30000)
			bound = 30000;
		long lo = bound, hi = 0;
		for (int k = 0; k < 400; k++) {
			long d = rn_backoff_ms(attempt, 500, 30000);
			assert_true(d >= 0 && d <= bound);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		assert_true(lo < bound / 4);
		assert_true(hi > bound * 3 / 4);
	}
}

static void test_escape(void **state)
{
	(void)state;
	char *s = rn_api_escape("dist-1.0_x~y.tar");
	assert_string_equal(s, "dist-1.0_x~y.tar");
	free(s);
	s = rn_api_escape("a b/c?d&e=%");
	assert_string_equal(s, "a%20b%2Fc%3Fd%26e%3D%25");
	free(s);
	s = rn_api_escape("\xc3\xa9");
	assert_string_equal(s, "%C3%A9");
	free(s);
	json_t *a = json_pack("{s:s}", "code", "lease_gone");
	assert_string_equal(rn_api_code(a), "lease_gone");
	assert_string_equal(rn_api_code(NULL), "");
	json_decref(a);
}

/* ---- the job log --------------------------------------------------------------------------- */

static rn_event ev(rn_event_type type, int step, const char *name)
{
	rn_event e;
	memset(&e, 0, sizeof(e));
	e.type = type;
	e.run_id = "17";
	e.pipeline = "ci";
	e.job = "build (gcc)";
	e.job_id = "build";
	e.step = name;
	e.step_index = step;
	e.nsteps = 3;
	e.attempt = 1;
	e.max_attempts = 1;
	e.exit_code = -1;
	e.started_ms = 1700000000000;
	return e;
}

static void out(rn_sink *s, const char *line, int partial)
{
	rn_event e = ev(RN_EV_OUTPUT, 0, "Compile");
	e.data = line;
	e.len = strlen(line);
	e.partial = partial;
	s->event(s, &e);
}

static void test_joblog(void **state)
{
	(void)state;
	rn_masker *m = rn_masker_new();
	assert_int_equal(rn_masker_add(m, "hunter22"), 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	rn_sink *s = rn_joblog_sink_new(f, m);

	rn_event e = ev(RN_EV_RUN_STARTED, -1, NULL);
	e.job = NULL;
	s->event(s, &e);
	e = ev(RN_EV_JOB_STARTED, -1, NULL);
	s->event(s, &e);
	e = ev(RN_EV_STEP_STARTED, 0, "Compile");
	s->event(s, &e);
	out(s, "cc -c main.c", 0);
	out(s, "a long line cut ", 1);
	out(s, "in two", 0);
	e = ev(RN_EV_STEP_FINISHED, 0, "Compile");
	e.status = RN_ST_SUCCESS;
	e.exit_code = 0;
	e.duration_ms = 1500;
	s->event(s, &e);
	/* a retried step that fails with a reason */
	e = ev(RN_EV_STEP_STARTED, 1, "Test hunter22");
	s->event(s, &e);
	e = ev(RN_EV_STEP_FINISHED, 1, "Test hunter22");
	e.status = RN_ST_FAILURE;
	e.exit_code = 2;
	e.duration_ms = 250;
	e.max_attempts = 2;
	s->event(s, &e);
	e = ev(RN_EV_STEP_STARTED, 1, "Test hunter22");
	e.attempt = 2;
	e.max_attempts = 2;
	s->event(s, &e);
	e = ev(RN_EV_STEP_FINISHED, 1, "Test hunter22");
	e.attempt = 2;
	e.max_attempts = 2;
	e.status = RN_ST_TIMED_OUT;
	e.exit_code = 143;
	e.duration_ms = 1000;
	e.reason = "timed out after 1s";
	s->event(s, &e);
	/* a skipped step, a message with a secret, the job's end */
	e = ev(RN_EV_STEP_FINISHED, 2, "Deploy");
	e.status = RN_ST_SKIPPED;
	e.started_ms = 0;
	e.reason = "condition is false";
	s->event(s, &e);
	e = ev(RN_EV_MESSAGE, -1, NULL);
	e.data = "token hunter22 was used";
	e.len = strlen(e.data);
	s->event(s, &e);
	e = ev(RN_EV_JOB_FINISHED, -1, NULL);
	e.status = RN_ST_TIMED_OUT;
	e.duration_ms = 2750;
	s->event(s, &e);
	e = ev(RN_EV_RUN_FINISHED, -1, NULL);
	e.job = NULL;
	s->event(s, &e);
	assert_int_equal(s->close(s), 0);
	fclose(f);
	assert_string_equal(buf, "── step 1/3: Compile\n"
				 "cc -c main.c\n"
				 "a long line cut in two\n"
				 "── step 1/3: Compile ✓ success (1.500s)\n"
				 "── step 2/3: Test ***\n"
				 "── step 2/3: Test *** ✗ failure (exit 2, 0.250s, attempt 1/2)\n"
				 "── step 2/3: Test *** (attempt 2/2)\n"
				 "── step 2/3: Test *** ✗ timed out (exit 143, 1.000s, attempt 2/2): timed out after 1s\n"
				 "── step 3/3: Deploy ⊘ skipped: condition is false\n"
				 "runner: token *** was used\n"
				 "── job build (gcc): ✗ timed out (2.750s)\n");
	free(buf);
	rn_masker_free(m);
}

typedef struct {
	rn_sink base;
	int counts[8];
	int closed;
} count_sink;

static void count_event(rn_sink *s, const rn_event *e)
{
	((count_sink *)s)->counts[e->type]++;
}

static int count_close(rn_sink *s)
{
	((count_sink *)s)->closed = 1;
	return 0;
}

static void test_filter(void **state)
{
	(void)state;
	count_sink c = { { count_event, count_close, NULL }, { 0 }, 0 };
	rn_sink *f = rn_nooutput_sink_new(&c.base);
	rn_event e = ev(RN_EV_STEP_STARTED, 0, "Compile");
	f->event(f, &e);
	out(f, "x", 0);
	out(f, "y", 0);
	e = ev(RN_EV_STEP_FINISHED, 0, "Compile");
	f->event(f, &e);
	assert_int_equal(f->close(f), 0);
	assert_int_equal(c.counts[RN_EV_STEP_STARTED], 1);
	assert_int_equal(c.counts[RN_EV_STEP_FINISHED], 1);
	assert_int_equal(c.counts[RN_EV_OUTPUT], 0);
	assert_true(c.closed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_full),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_lease_ids),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_joblog),
		cmocka_unit_test(test_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
