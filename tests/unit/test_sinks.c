/* test_sinks.c - the reporting sinks fed with scripted event sequences: two jobs interleaved, a
 * retried step, a skipped step, a timed-out step, a 100 KB line cut into partial pieces, binary
 * output (NUL, invalid UTF-8), a skipped job, and names holding a secret. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"
#include "event.h"
#include "mask.h"
#include "util.h"

#define T0 INT64_C(1700000000000) /* 2023-11-14T22:13:20Z */
#define BIG_A 65536
#define BIG_B 36864 /* 100 KiB in all */

static const char binary_line[] = "bin\0ary\xff\xfe end";
#define BINARY_LEN (sizeof(binary_line) - 1)

/* ---- helpers ------------------------------------------------------------------------------ */

static rn_event ev_new(rn_event_type type)
{
	rn_event e;
	memset(&e, 0, sizeof(e));
	e.type = type;
	e.run_id = "run-1";
	e.pipeline = "ci";
	e.step_index = -1;
	e.exit_code = -1;
	return e;
}

typedef struct {
	const char *job, *job_id;
	int nsteps;
} jobdef;

static const jobdef BUILD = { "build (gcc)", "build", 3 };
static const jobdef LINT = { "lint", "lint", 1 };

static rn_event job_ev(rn_event_type type, const jobdef *j, int attempt, int max_attempts)
{
	rn_event e = ev_new(type);
	e.job = j->job;
	e.job_id = j->job_id;
	e.nsteps = j->nsteps;
	e.attempt = attempt;
	e.max_attempts = max_attempts;
	return e;
}

static rn_event step_ev(rn_event_type type, const jobdef *j, int index, const char *step,
			int attempt, int max_attempts)
{
	rn_event e = job_ev(type, j, attempt, max_attempts);
	e.step = step;
	e.step_index = index;
	return e;
}

static void out_ev(rn_sink *s, const jobdef *j, int index, const char *step, int attempt,
		   const char *data, size_t len, int partial)
{
	rn_event e = step_ev(RN_EV_OUTPUT, j, index, step, attempt, 1);
	e.data = data;
	e.len = len;
	e.partial = partial;
	s->event(s, &e);
}

static void out_str(rn_sink *s, const jobdef *j, int index, const char *step, int attempt,
		    const char *line)
{
	out_ev(s, j, index, step, attempt, line, strlen(line), 0);
}

static char *logp(const char *dir, const char *rel)
{
	return rn_xasprintf("%s/%s", dir, rel);
}

/* The main script. dir: where the engine would put the logs. */
static void feed_main(rn_sink *s, const char *dir)
{
	char *l_conf = logp(dir, "build/01-configure.1.log");
	char *l_comp = logp(dir, "build/02-compile.1.log");
	char *l_test1 = logp(dir, "lint/01-test.1.log");
	char *l_test2 = logp(dir, "lint/01-test.2.log");
	char *big_a = rn_xmalloc(BIG_A), *big_b = rn_xmalloc(BIG_B);
	memset(big_a, 'a', BIG_A);
	memset(big_b, 'b', BIG_B);
	rn_event e;

	e = ev_new(RN_EV_RUN_STARTED);
	e.started_ms = T0;
	e.njobs = 3;
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_STARTED, &BUILD, 1, 1);
	e.started_ms = T0;
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_STARTED, &LINT, 1, 1);
	e.started_ms = T0 + 1;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &BUILD, 0, "Configure", 1, 1);
	e.started_ms = T0 + 2;
	e.log_path = l_conf;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &LINT, 0, "Test", 1, 2);
	e.step_id = "test";
	e.started_ms = T0 + 3;
	e.log_path = l_test1;
	s->event(s, &e);
	out_str(s, &BUILD, 0, "Configure", 1, "configuring");
	out_str(s, &LINT, 0, "Test", 1, "flaky fail");
	out_str(s, &BUILD, 0, "Configure", 1, "done");
	e = step_ev(RN_EV_STEP_FINISHED, &LINT, 0, "Test", 1, 2);
	e.step_id = "test";
	e.status = RN_ST_FAILURE;
	e.exit_code = 1;
	e.started_ms = T0 + 3;
	e.duration_ms = 500;
	e.log_path = l_test1;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_FINISHED, &BUILD, 0, "Configure", 1, 1);
	e.status = RN_ST_SUCCESS;
	e.exit_code = 0;
	e.started_ms = T0 + 2;
	e.duration_ms = 12;
	e.cpu_user_s = 0.25;
	e.cpu_sys_s = 0.125;
	e.max_rss_kb = 1234;
	e.log_path = l_conf;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &LINT, 0, "Test", 2, 2);
	e.step_id = "test";
	e.started_ms = T0 + 600;
	e.log_path = l_test2;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &BUILD, 1, "Compile", 1, 1);
	e.started_ms = T0 + 20;
	e.log_path = l_comp;
	s->event(s, &e);
	out_str(s, &LINT, 0, "Test", 2, "ok now");
	out_ev(s, &BUILD, 1, "Compile", 1, big_a, BIG_A, 1);
	out_ev(s, &BUILD, 1, "Compile", 1, big_b, BIG_B, 0);
	out_ev(s, &BUILD, 1, "Compile", 1, binary_line, BINARY_LEN, 0);
	e = step_ev(RN_EV_STEP_FINISHED, &LINT, 0, "Test", 2, 2);
	e.step_id = "test";
	e.status = RN_ST_SUCCESS;
	e.exit_code = 0;
	e.started_ms = T0 + 600;
	e.duration_ms = 300;
	e.log_path = l_test2;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_FINISHED, &BUILD, 1, "Compile", 1, 1);
	e.status = RN_ST_TIMED_OUT;
	e.exit_code = 143;
	e.reason = "timed out after 1s";
	e.started_ms = T0 + 20;
	e.duration_ms = 1000;
	e.log_path = l_comp;
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_FINISHED, &BUILD, 2, "Package", 0, 1);
	e.status = RN_ST_SKIPPED;
	e.reason = "a previous step failed";
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_FINISHED, &LINT, 1, 1);
	e.status = RN_ST_SUCCESS;
	e.started_ms = T0 + 1;
	e.duration_ms = 1200;
	s->event(s, &e);
	e = ev_new(RN_EV_MESSAGE);
	e.job = BUILD.job;
	e.data = "cache saved";
	e.len = strlen(e.data);
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_FINISHED, &BUILD, 1, 1);
	e.status = RN_ST_FAILURE;
	e.reason = "step Compile timed out";
	e.started_ms = T0;
	e.duration_ms = 1500;
	s->event(s, &e);
	e = ev_new(RN_EV_JOB_FINISHED);
	e.job = "deploy";
	e.job_id = "deploy";
	e.status = RN_ST_SKIPPED;
	e.reason = "needs build failed";
	s->event(s, &e);
	e = ev_new(RN_EV_MESSAGE);
	e.data = "2 of 3 jobs ran";
	e.len = strlen(e.data);
	s->event(s, &e);
	e = ev_new(RN_EV_RUN_FINISHED);
	e.status = RN_ST_FAILURE;
	e.started_ms = T0;
	e.duration_ms = 1234;
	s->event(s, &e);

	free(big_a);
	free(big_b);
	free(l_conf);
	free(l_comp);
	free(l_test1);
	free(l_test2);
}
#define MAIN_EVENTS 25

/* A memory stream the console/json sinks write to. */
typedef struct {
	char *p;
	size_t len;
	FILE *f;
} mem;

static void mem_open(mem *m)
{
	m->p = NULL;
	m->len = 0;
	m->f = open_memstream(&m->p, &m->len);
	assert_non_null(m->f);
}

static void mem_close(mem *m)
{
	assert_int_equal(fclose(m->f), 0);
}

static int mem_has(const mem *m, const char *s)
{
	return memmem(m->p, m->len, s, strlen(s)) != NULL;
}

/* Assert that the output holds the complete line s. */
#define assert_line(m, s) assert_line_((m), (s), __FILE__, __LINE__)
static void assert_line_(const mem *m, const char *s, const char *file, int line)
{
	size_t n = strlen(s);
	for (const char *p = m->p, *end = m->p + m->len; p < end;) {
		const char *hit = memmem(p, (size_t)(end - p), s, n);
		if (!hit)
			break;
		int start_ok = hit == m->p || hit[-1] == '\n' || hit[-1] == 'K'; /* after \r\033[K */
		int end_ok = hit + n < end && hit[n] == '\n';
		if (start_ok && end_ok)
			return;
		p = hit + 1;
	}
	_fail(file, line);
	print_error("line not found: '%s'\n", s);
}

static char *tmpdir_new(void)
{
	char *d = rn_xstrdup("/tmp/rn_test_sinks_XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void tmpdir_free(char *d)
{
	assert_int_equal(rn_rm_rf(d), 0);
	free(d);
}

static char *slurp(const char *path, size_t *len)
{
	char *p = NULL;
	int rc = rn_read_file(&p, len, path, 16 << 20);
	if (rc < 0)
		print_error("read %s: %s\n", path, rn_error_last());
	assert_int_equal(rc, 0);
	return p;
}

static int xmllint_ok(const char *path)
{
	if (access("/usr/bin/xmllint", X_OK) != 0)
		return -1;
	char *cmd = rn_xasprintf("/usr/bin/xmllint --noout '%s'", path);
	int rc = system(cmd);
	free(cmd);
	return rc == 0;
}

/* ---- event.c helpers ---------------------------------------------------------------------- */

static void test_status_and_helpers(void **state)
{
	(void)state;
	assert_string_equal(rn_status_name(RN_ST_SUCCESS), "success");
	assert_string_equal(rn_status_name(RN_ST_FAILURE), "failure");
	assert_string_equal(rn_status_name(RN_ST_CANCELLED), "cancelled");
	assert_string_equal(rn_status_name(RN_ST_SKIPPED), "skipped");
	assert_string_equal(rn_status_name(RN_ST_TIMED_OUT), "timed out");
	assert_string_equal(rn_status_name(RN_ST_PENDING), "pending");
	assert_string_equal(rn_status_name(RN_ST_RUNNING), "running");
	assert_true(rn_status_failed(RN_ST_FAILURE));
	assert_true(rn_status_failed(RN_ST_TIMED_OUT));
	assert_false(rn_status_failed(RN_ST_SUCCESS));
	assert_false(rn_status_failed(RN_ST_CANCELLED));
	assert_false(rn_status_failed(RN_ST_SKIPPED));

	char buf[40];
	rn_time_iso8601(buf, sizeof(buf), T0 + 45, 1);
	assert_string_equal(buf, "2023-11-14T22:13:20.045Z");
	rn_time_iso8601(buf, sizeof(buf), T0 + 45, 0);
	assert_string_equal(buf, "2023-11-14T22:13:20Z");

	assert_true(rn_utf8_valid("plain", 5));
	assert_true(rn_utf8_valid("caf\xc3\xa9 \xe2\x80\xba \xf0\x9f\x98\x80", 14));
	assert_false(rn_utf8_valid("\xc0\xaf", 2));         /* overlong */
	assert_false(rn_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(rn_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
	assert_false(rn_utf8_valid("\xe2\x80", 2));         /* truncated */
	assert_false(rn_utf8_valid("\xff", 1));
	size_t n;
	char *s = rn_utf8_sanitize("a\xffz\0\xc3\xa9", 6, 1, &n);
	assert_int_equal(n, 10);
	assert_memory_equal(s, "a\xef\xbf\xbdz\xef\xbf\xbd\xc3\xa9", 10);
	free(s);
	s = rn_utf8_sanitize("a\0b", 3, 0, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(s, "a\0b", 3);
	free(s);

	assert_null(rn_event_mask(NULL, NULL));
	s = rn_event_mask(NULL, "plain");
	assert_string_equal(s, "plain");
	free(s);
}

/* ---- console ------------------------------------------------------------------------------ */

/* Output lines are buffered until flush() (the engine calls it before it waits); every other
 * event is written at once. Console and --json alike. */
static void test_output_waits_for_flush(void **state)
{
	(void)state;
	for (int json = 0; json < 2; json++) {
		mem m;
		mem_open(&m);
		rn_sink *s = json ? rn_json_sink_new(m.f, NULL) : rn_console_sink_new(m.f, 0, 0, NULL);
		assert_non_null(s->flush);
		rn_event e = ev_new(RN_EV_RUN_STARTED);
		e.njobs = 1;
		s->event(s, &e);
		e = job_ev(RN_EV_JOB_STARTED, &LINT, 1, 1);
		s->event(s, &e);
		e = step_ev(RN_EV_STEP_STARTED, &LINT, 0, "Test", 1, 1);
		s->event(s, &e);
		size_t before = m.len; /* a memstream's length moves when it is flushed */
		out_str(s, &LINT, 0, "Test", 1, "line one");
		out_str(s, &LINT, 0, "Test", 1, "line two");
		assert_int_equal(m.len, before);
		assert_false(mem_has(&m, "line one"));
		s->flush(s);
		assert_true(m.len > before);
		assert_true(mem_has(&m, "line one"));
		assert_true(mem_has(&m, "line two"));
		size_t flushed = m.len;
		e = step_ev(RN_EV_STEP_FINISHED, &LINT, 0, "Test", 1, 1);
		e.status = RN_ST_SUCCESS;
		e.exit_code = 0;
		s->event(s, &e);
		assert_true(m.len > flushed); /* not output: written at once */
		assert_int_equal(s->close(s), 0);
		mem_close(&m);
		free(m.p);
	}
}

static void test_console_plain(void **state)
{
	(void)state;
	mem m;
	mem_open(&m);
	rn_sink *s = rn_console_sink_new(m.f, 0, 0, NULL);
	feed_main(s, "/nonexistent");
	assert_int_equal(s->close(s), 0);
	mem_close(&m);

	assert_line(&m, "build (gcc) › Configure | configuring");
	assert_line(&m, "lint › Test | flaky fail");
	assert_line(&m, "build (gcc) › Configure | done");
	assert_line(&m, "lint › Test ✗ failure (exit 1, 0.500s, attempt 1/2)");
	assert_line(&m, "build (gcc) › Configure ✓ success (0.012s)");
	assert_line(&m, "lint › Test ↻ attempt 2/2");
	assert_line(&m, "lint › Test | ok now");
	assert_line(&m, "lint › Test ✓ success (0.300s, attempt 2/2)");
	assert_line(&m, "build (gcc) › Compile ✗ timed out (exit 143, 1.000s): timed out after 1s");
	assert_line(&m, "build (gcc) › Package ⊘ skipped: a previous step failed");
	assert_line(&m, "lint: success (1.200s)");
	assert_line(&m, "build (gcc): cache saved");
	assert_line(&m, "build (gcc): failure (1.500s): step Compile timed out");
	assert_line(&m, "deploy: skipped: needs build failed");
	assert_line(&m, "runner: 2 of 3 jobs ran");
	/* the first step attempt prints no "attempt" line */
	assert_false(mem_has(&m, "attempt 1/2\n"));
	assert_false(mem_has(&m, "Configure ↻"));

	/* the long line: one console line per piece; the binary line as is */
	char *big = rn_xmalloc(BIG_A + 64);
	int n = snprintf(big, 64, "\nbuild (gcc) › Compile | ");
	memset(big + n, 'a', BIG_A);
	big[n + BIG_A] = '\n';
	assert_non_null(memmem(m.p, m.len, big, (size_t)n + BIG_A + 1));
	memset(big + n, 'b', BIG_B);
	big[n + BIG_B] = '\n';
	assert_non_null(memmem(m.p, m.len, big, (size_t)n + BIG_B + 1));
	free(big);
	char bin[128];
	n = snprintf(bin, sizeof(bin), "\nbuild (gcc) › Compile | ");
	memcpy(bin + n, binary_line, BINARY_LEN);
	bin[(size_t)n + BINARY_LEN] = '\n';
	assert_non_null(memmem(m.p, m.len, bin, (size_t)n + BINARY_LEN + 1));

	/* the summary table */
	char row[256];
#define ROW(...)                                                          \
	do {                                                              \
		snprintf(row, sizeof(row), "%-11s  %-9s  %-9s  %-8s  %s", __VA_ARGS__); \
		assert_line(&m, row);                                     \
	} while (0)
	ROW("JOB", "STEP", "STATUS", "DURATION", "ATTEMPTS");
	ROW("build (gcc)", "", "failure", "1.500s", "1");
	ROW("build (gcc)", "Configure", "success", "0.012s", "1");
	ROW("build (gcc)", "Compile", "timed out", "1.000s", "1");
	ROW("build (gcc)", "Package", "skipped", "-", "0");
	ROW("lint", "", "success", "1.200s", "1");
	ROW("lint", "Test", "success", "0.300s", "2");
	ROW("deploy", "", "skipped", "-", "0");
#undef ROW
	assert_line(&m, "pipeline ci: failure in 1.234s");
	/* the final line is the last one */
	static const char last[] = "pipeline ci: failure in 1.234s\n";
	assert_memory_equal(m.p + m.len - strlen(last), last, strlen(last));
	/* no colour, no status line */
	assert_null(memchr(m.p, '\033', m.len));
	assert_null(memchr(m.p, '\r', m.len));
	free(m.p);
}

static void test_console_color(void **state)
{
	(void)state;
	mem m;
	mem_open(&m);
	rn_sink *s = rn_console_sink_new(m.f, 1, 0, NULL);
	feed_main(s, "/nonexistent");
	assert_int_equal(s->close(s), 0);
	mem_close(&m);
	assert_line(&m, "\033[1;36mbuild (gcc)\033[0m › \033[2mConfigure\033[0m | configuring");
	assert_line(&m, "\033[1;36mbuild (gcc)\033[0m › \033[2mConfigure\033[0m \033[32m✓\033[0m "
			"\033[32msuccess\033[0m (0.012s)");
	assert_true(mem_has(&m, "\033[31mtimed out\033[0m (exit 143, 1.000s)"));
	assert_true(mem_has(&m, "\033[33mskipped\033[0m: a previous step failed"));
	assert_line(&m, "pipeline ci: \033[31mfailure\033[0m in 1.234s");
	free(m.p);
}

static void test_console_status_line(void **state)
{
	(void)state;
	mem m;
	mem_open(&m);
	rn_sink *s = rn_console_sink_new(m.f, 0, 1, NULL);
	feed_main(s, "/nonexistent");
	assert_int_equal(s->close(s), 0);
	mem_close(&m);
	assert_true(mem_has(&m, "running: build (gcc) › Configure, lint › Test  [0/3 jobs done]"));
	assert_true(mem_has(&m, "running: build (gcc) › Compile, lint › Test  [0/3 jobs done]"));
	assert_true(mem_has(&m, "running: build (gcc)  [1/3 jobs done]"));
	/* normal lines are printed after erasing the status line */
	assert_true(mem_has(&m, "[0/3 jobs done]\r\033[Kbuild (gcc) › Configure | configuring\n"));
	assert_line(&m, "lint › Test ✓ success (0.300s, attempt 2/2)");
	/* nothing after the summary: the status line is gone at the end */
	static const char last[] = "\npipeline ci: failure in 1.234s\n";
	assert_memory_equal(m.p + m.len - strlen(last), last, strlen(last));
	free(m.p);
}

static void test_console_interrupted(void **state)
{
	(void)state;
	mem m;
	mem_open(&m);
	rn_sink *s = rn_console_sink_new(m.f, 0, 0, NULL);
	rn_event e = ev_new(RN_EV_RUN_STARTED);
	e.started_ms = rn_wall_ms();
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_STARTED, &LINT, 1, 1);
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &LINT, 0, "Test", 1, 1);
	s->event(s, &e);
	out_str(s, &LINT, 0, "Test", 1, "working");
	assert_int_equal(s->close(s), 0); /* no RUN_FINISHED: the summary comes at close */
	mem_close(&m);
	assert_line(&m, "lint › Test | working");
	assert_true(mem_has(&m, "\nlint        running"));
	assert_true(mem_has(&m, "\npipeline ci: cancelled in "));
	free(m.p);
}

/* Events without a job or step name (an engine bug) must not crash any sink. */
static void test_missing_names(void **state)
{
	(void)state;
	char *tmp = tmpdir_new();
	char *junit = logp(tmp, "j.xml");
	mem m;
	mem_open(&m);
	rn_sink *sinks[4] = {
		rn_console_sink_new(m.f, 1, 1, NULL),
		rn_json_sink_new(m.f, NULL),
		rn_logdir_sink_new(tmp, NULL),
		rn_junit_sink_new(junit, NULL),
	};
	for (int i = 0; i < 4; i++) {
		for (int t = RN_EV_RUN_STARTED; t <= RN_EV_MESSAGE; t++) {
			rn_event e;
			memset(&e, 0, sizeof(e));
			e.type = (rn_event_type)t;
			e.step_index = t == RN_EV_OUTPUT ? 0 : -1;
			e.attempt = 2;
			sinks[i]->event(sinks[i], &e);
			e.job = "j";
			e.step_index = 0;
			sinks[i]->event(sinks[i], &e); /* a step event without a step name */
		}
		assert_int_equal(sinks[i]->close(sinks[i]), 0);
	}
	mem_close(&m);
	free(m.p);
	free(junit);
	tmpdir_free(tmp);
}

/* ---- logdir ------------------------------------------------------------------------------- */

static void assert_file(const char *dir, const char *rel, const char *want, size_t wantlen)
{
	char *path = logp(dir, rel);
	size_t len;
	char *got = slurp(path, &len);
	assert_int_equal(len, wantlen);
	assert_memory_equal(got, want, wantlen);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	free(got);
	free(path);
}

static json_t *jget(json_t *o, const char *path)
{
	/* "jobs.0.steps.1.status" */
	char *p = rn_xstrdup(path), *save = NULL;
	for (char *k = strtok_r(p, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (json_is_array(o))
			o = json_array_get(o, (size_t)atoi(k));
		else
			o = json_object_get(o, k);
	}
	free(p);
	if (!o)
		print_error("no %s\n", path);
	assert_non_null(o);
	return o;
}

#define assert_jstr(o, path, want) assert_string_equal(json_string_value(jget((o), (path))), (want))
#define assert_jint(o, path, want) assert_int_equal(json_integer_value(jget((o), (path))), (want))

static void test_logdir(void **state)
{
	(void)state;
	mode_t old = umask(022);
	char *tmp = tmpdir_new();
	char *dir = logp(tmp, "logs/run-1");
	rn_sink *s = rn_logdir_sink_new(dir, NULL);
	feed_main(s, dir);
	assert_int_equal(s->close(s), 0);
	umask(old);

	assert_file(dir, "build/01-configure.1.log", "configuring\ndone\n", 17);
	assert_file(dir, "lint/01-test.1.log", "flaky fail\n", 11);
	assert_file(dir, "lint/01-test.2.log", "ok now\n", 7);
	size_t want_len = BIG_A + BIG_B + 1 + BINARY_LEN + 1;
	char *want = rn_xmalloc(want_len);
	memset(want, 'a', BIG_A);
	memset(want + BIG_A, 'b', BIG_B);
	want[BIG_A + BIG_B] = '\n';
	memcpy(want + BIG_A + BIG_B + 1, binary_line, BINARY_LEN);
	want[want_len - 1] = '\n';
	assert_file(dir, "build/02-compile.1.log", want, want_len);
	free(want);
	char *pkg = logp(dir, "build/03-package.1.log");
	assert_int_not_equal(access(pkg, F_OK), 0);
	free(pkg);

	char *path = logp(dir, "summary.json");
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err);
	if (!j)
		print_error("summary.json: %s\n", err.text);
	assert_non_null(j);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	free(path);

	assert_jstr(j, "run_id", "run-1");
	assert_jstr(j, "pipeline", "ci");
	assert_jstr(j, "status", "failure");
	assert_jstr(j, "started_at", "2023-11-14T22:13:20.000Z");
	assert_jint(j, "duration_ms", 1234);
	assert_int_equal(json_array_size(jget(j, "jobs")), 3);
	assert_jstr(j, "jobs.0.name", "build (gcc)");
	assert_jstr(j, "jobs.0.id", "build");
	assert_jstr(j, "jobs.0.status", "failure");
	assert_jint(j, "jobs.0.attempts", 1);
	assert_jint(j, "jobs.0.duration_ms", 1500);
	assert_jstr(j, "jobs.0.reason", "step Compile timed out");
	assert_true(json_is_false(jget(j, "jobs.0.continue_on_error")));
	assert_int_equal(json_array_size(jget(j, "jobs.0.steps")), 3);
	assert_jint(j, "jobs.0.steps.0.index", 0);
	assert_jstr(j, "jobs.0.steps.0.name", "Configure");
	assert_true(json_is_null(jget(j, "jobs.0.steps.0.id")));
	assert_jstr(j, "jobs.0.steps.0.status", "success");
	assert_jint(j, "jobs.0.steps.0.exit_code", 0);
	assert_jint(j, "jobs.0.steps.0.attempts", 1);
	assert_jstr(j, "jobs.0.steps.0.started_at", "2023-11-14T22:13:20.002Z");
	assert_jint(j, "jobs.0.steps.0.duration_ms", 12);
	assert_true(json_real_value(jget(j, "jobs.0.steps.0.cpu_user_s")) == 0.25);
	assert_true(json_real_value(jget(j, "jobs.0.steps.0.cpu_sys_s")) == 0.125);
	assert_jint(j, "jobs.0.steps.0.max_rss_kb", 1234);
	assert_jstr(j, "jobs.0.steps.0.log", "build/01-configure.1.log");
	assert_true(json_is_null(jget(j, "jobs.0.steps.0.reason")));
	assert_jstr(j, "jobs.0.steps.1.status", "timed out");
	assert_jint(j, "jobs.0.steps.1.exit_code", 143);
	assert_jstr(j, "jobs.0.steps.1.reason", "timed out after 1s");
	assert_jstr(j, "jobs.0.steps.1.log", "build/02-compile.1.log");
	assert_jint(j, "jobs.0.steps.2.index", 2);
	assert_jstr(j, "jobs.0.steps.2.status", "skipped");
	assert_true(json_is_null(jget(j, "jobs.0.steps.2.exit_code")));
	assert_jint(j, "jobs.0.steps.2.attempts", 0);
	assert_true(json_is_null(jget(j, "jobs.0.steps.2.log")));
	assert_true(json_is_null(jget(j, "jobs.0.steps.2.started_at")));
	assert_jstr(j, "jobs.1.name", "lint");
	assert_jstr(j, "jobs.1.status", "success");
	assert_jstr(j, "jobs.1.steps.0.id", "test");
	assert_jstr(j, "jobs.1.steps.0.status", "success");
	assert_jint(j, "jobs.1.steps.0.attempts", 2);
	assert_jint(j, "jobs.1.steps.0.exit_code", 0);
	assert_jint(j, "jobs.1.steps.0.duration_ms", 300);
	assert_jstr(j, "jobs.1.steps.0.log", "lint/01-test.2.log");
	assert_jstr(j, "jobs.2.name", "deploy");
	assert_jstr(j, "jobs.2.status", "skipped");
	assert_jint(j, "jobs.2.attempts", 0);
	assert_true(json_is_null(jget(j, "jobs.2.started_at")));
	assert_int_equal(json_array_size(jget(j, "jobs.2.steps")), 0);
	json_decref(j);

	/* no temporary file left behind */
	char *cmd = rn_xasprintf("ls -a '%s' | grep -q tmp", dir);
	assert_int_not_equal(system(cmd), 0);
	free(cmd);
	free(dir);
	tmpdir_free(tmp);
}

/* A retried job: summary.json shows the steps of the last attempt; relative log paths. */
static void test_logdir_job_retry(void **state)
{
	(void)state;
	char *tmp = tmpdir_new();
	char *slashed = rn_xasprintf("%s/", tmp); /* a trailing slash, as a user may write it */
	rn_sink *s = rn_logdir_sink_new(slashed, NULL);
	rn_event e;
	for (int a = 1; a <= 2; a++) {
		e = job_ev(RN_EV_JOB_STARTED, &BUILD, a, 2);
		s->event(s, &e);
		/* attempt 1: relative to the directory; attempt 2: "dir/" + "/build/..." */
		char *lp = a == 1 ? rn_xstrdup("build/01.1.log") : rn_xasprintf("%s/build/01.2.log", slashed);
		e = step_ev(RN_EV_STEP_STARTED, &BUILD, 0, "Configure", 1, 1);
		e.log_path = lp;
		s->event(s, &e);
		out_str(s, &BUILD, 0, "Configure", 1, a == 1 ? "first" : "second");
		e = step_ev(RN_EV_STEP_FINISHED, &BUILD, 0, "Configure", 1, 1);
		e.status = a == 1 ? RN_ST_FAILURE : RN_ST_SUCCESS;
		e.exit_code = a == 1 ? 2 : 0;
		e.log_path = lp;
		s->event(s, &e);
		if (a == 1) {
			e = step_ev(RN_EV_STEP_FINISHED, &BUILD, 1, "Compile", 0, 1);
			e.status = RN_ST_SKIPPED;
			s->event(s, &e);
		}
		free(lp);
	}
	e = job_ev(RN_EV_JOB_FINISHED, &BUILD, 2, 2);
	e.status = RN_ST_SUCCESS;
	s->event(s, &e);
	/* no RUN_STARTED/RUN_FINISHED at all: still a valid summary */
	assert_int_equal(s->close(s), 0);
	assert_file(tmp, "build/01.1.log", "first\n", 6);
	assert_file(tmp, "build/01.2.log", "second\n", 7);
	char *path = logp(tmp, "summary.json");
	json_t *j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	free(path);
	assert_jint(j, "jobs.0.attempts", 2);
	assert_jstr(j, "jobs.0.status", "success");
	assert_int_equal(json_array_size(jget(j, "jobs.0.steps")), 1);
	assert_jstr(j, "jobs.0.steps.0.status", "success");
	assert_jstr(j, "jobs.0.steps.0.log", "build/01.2.log");
	json_decref(j);
	free(slashed);
	tmpdir_free(tmp);
}

static void test_logdir_error(void **state)
{
	(void)state;
	char *tmp = tmpdir_new();
	char *file = logp(tmp, "file");
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	char *dir = logp(file, "logs"); /* under a regular file: cannot be created */
	rn_sink *s = rn_logdir_sink_new(dir, NULL);
	feed_main(s, dir);
	rn_error_clear();
	assert_true(s->close(s) < 0);
	assert_non_null(strstr(rn_error_last(), dir));
	free(dir);
	free(file);
	tmpdir_free(tmp);
}

/* ---- json --------------------------------------------------------------------------------- */

static void test_json(void **state)
{
	(void)state;
	mem m;
	mem_open(&m);
	rn_sink *s = rn_json_sink_new(m.f, NULL);
	feed_main(s, "/logs");
	assert_int_equal(s->close(s), 0);
	mem_close(&m);

	json_t *ev[MAIN_EVENTS + 1] = { 0 };
	size_t n = 0;
	char *save = NULL;
	assert_int_equal(m.p[m.len - 1], '\n');
	assert_null(memchr(m.p, '\0', m.len));
	for (char *line = strtok_r(m.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_true(n < MAIN_EVENTS);
		json_error_t err;
		ev[n] = json_loads(line, 0, &err); /* default flags: no \u0000 allowed */
		if (!ev[n])
			print_error("line %zu: %s: %.200s\n", n, err.text, line);
		assert_non_null(ev[n]);
		assert_jstr(ev[n], "run_id", "run-1");
		const char *t = json_string_value(jget(ev[n], "time"));
		assert_int_equal(strlen(t), 24);
		assert_int_equal(t[23], 'Z');
		assert_int_equal(t[19], '.');
		n++;
	}
	assert_int_equal(n, MAIN_EVENTS);

	assert_jstr(ev[0], "event", "run_started");
	assert_jstr(ev[0], "pipeline", "ci");
	assert_jstr(ev[1], "event", "job_started");
	assert_jstr(ev[1], "job", "build (gcc)");
	assert_jstr(ev[1], "job_id", "build");
	assert_jint(ev[1], "attempt", 1);
	assert_jstr(ev[4], "event", "step_started");
	assert_jstr(ev[4], "job", "lint");
	assert_jstr(ev[4], "step", "Test");
	assert_jstr(ev[4], "step_id", "test");
	assert_jint(ev[4], "step_index", 0);
	assert_jint(ev[4], "max_attempts", 2);
	assert_jstr(ev[5], "event", "output");
	assert_jstr(ev[5], "step", "Configure");
	assert_jstr(ev[5], "line", "configuring");
	assert_true(json_is_false(jget(ev[5], "partial")));
	assert_jstr(ev[8], "event", "step_finished");
	assert_jstr(ev[8], "status", "failure");
	assert_jint(ev[8], "exit_code", 1);
	assert_jint(ev[8], "attempt", 1);
	assert_jint(ev[8], "duration_ms", 500);
	assert_jint(ev[9], "max_rss_kb", 1234);
	assert_true(json_real_value(jget(ev[9], "cpu_user_s")) == 0.25);
	assert_jint(ev[10], "attempt", 2);
	/* the long line in two pieces */
	assert_jstr(ev[13], "event", "output");
	assert_true(json_is_true(jget(ev[13], "partial")));
	assert_int_equal(json_string_length(jget(ev[13], "line")), BIG_A);
	assert_true(json_is_false(jget(ev[14], "partial")));
	assert_int_equal(json_string_length(jget(ev[14], "line")), BIG_B);
	/* binary: NUL and invalid bytes became U+FFFD */
	assert_jstr(ev[15], "line", "bin\xef\xbf\xbd" "ary\xef\xbf\xbd\xef\xbf\xbd end");
	assert_jstr(ev[17], "status", "timed out");
	assert_jint(ev[17], "exit_code", 143);
	assert_jstr(ev[17], "reason", "timed out after 1s");
	assert_jstr(ev[18], "status", "skipped");
	assert_true(json_is_null(jget(ev[18], "exit_code")));
	assert_jint(ev[18], "step_index", 2);
	assert_jstr(ev[19], "event", "job_finished");
	assert_jstr(ev[19], "job", "lint");
	assert_jstr(ev[20], "event", "message");
	assert_jstr(ev[20], "job", "build (gcc)");
	assert_jstr(ev[20], "message", "cache saved");
	assert_jstr(ev[21], "reason", "step Compile timed out");
	assert_jstr(ev[22], "job", "deploy");
	assert_jstr(ev[22], "status", "skipped");
	assert_null(json_object_get(ev[23], "job"));
	assert_jstr(ev[23], "message", "2 of 3 jobs ran");
	assert_jstr(ev[24], "event", "run_finished");
	assert_jstr(ev[24], "status", "failure");
	assert_jint(ev[24], "duration_ms", 1234);
	for (size_t i = 0; i < n; i++)
		json_decref(ev[i]);
	free(m.p);
}

/* ---- junit -------------------------------------------------------------------------------- */

static void test_junit(void **state)
{
	(void)state;
	char *tmp = tmpdir_new();
	char *path = logp(tmp, "out/report.xml"); /* the parent directory is created */
	rn_sink *s = rn_junit_sink_new(path, NULL);
	feed_main(s, "/logs");
	assert_int_equal(s->close(s), 0);
	int lint = xmllint_ok(path);
	if (lint >= 0)
		assert_int_equal(lint, 1);
	size_t len;
	char *x = slurp(path, &len);
	assert_int_equal(strlen(x), len); /* no NUL */
	assert_true(rn_utf8_valid(x, len));
	assert_true(rn_startswith(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
	assert_non_null(strstr(x, "<testsuites name=\"ci\" tests=\"5\" failures=\"1\" errors=\"0\" "
				  "skipped=\"2\" time=\"1.234\">"));
	assert_non_null(strstr(x, "<testsuite name=\"build (gcc)\" tests=\"3\" failures=\"1\" "
				  "errors=\"0\" skipped=\"1\" time=\"1.500\" timestamp=\"2023-11-14T22:13:20\">"));
	assert_non_null(strstr(x, "<testsuite name=\"lint\" tests=\"1\" failures=\"0\" errors=\"0\" "
				  "skipped=\"0\" time=\"1.200\""));
	assert_non_null(strstr(x, "<testcase classname=\"build (gcc)\" name=\"01. Configure\" "
				  "time=\"0.012\"/>"));
	assert_non_null(strstr(x, "<testcase classname=\"build (gcc)\" name=\"03. Package\" "
				  "time=\"0.000\">\n      <skipped message=\"a previous step failed\"/>"));
	assert_non_null(strstr(x, "<testcase classname=\"lint\" name=\"01. Test\" time=\"0.300\"/>"));
	assert_non_null(strstr(x, "<testcase classname=\"deploy\" name=\"deploy\" time=\"0.000\">\n"
				  "      <skipped message=\"needs build failed\"/>"));
	/* the failure: the last lines, each cut to 1 KiB; in the binary one NUL is dropped and
	 * the invalid bytes are replaced */
	const char *fail = strstr(x, "<testcase classname=\"build (gcc)\" name=\"02. Compile\" "
				     "time=\"1.000\">\n      <failure message=\"timed out after 1s "
				     "(exit 143)\" type=\"timed out\">");
	assert_non_null(fail);
	const char *text = strchr(strstr(fail, "<failure"), '>') + 1;
	char *want = rn_xmalloc(4096);
	memset(want, 'a', 1024);
	snprintf(want + 1024, 4096 - 1024, "…\nbinary\xef\xbf\xbd\xef\xbf\xbd end\n</failure>");
	if (!rn_startswith(text, want))
		print_error("failure text: %s\n", text + 1000);
	assert_true(rn_startswith(text, want));
	free(want);
	assert_null(strstr(x, "bbbb"));
	free(x);
	free(path);
	tmpdir_free(tmp);
}

/* A failing step printing many lines: only the last 50 are kept; XML escaping. */
static void test_junit_tail_and_escaping(void **state)
{
	(void)state;
	char *tmp = tmpdir_new();
	char *path = logp(tmp, "report.xml");
	rn_sink *s = rn_junit_sink_new(path, NULL);
	static const jobdef J = { "a<b>&\"c'", "weird", 1 };
	rn_event e = ev_new(RN_EV_RUN_STARTED);
	e.pipeline = "p&q";
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_STARTED, &J, 1, 1);
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &J, 0, "step\x01<x>", 1, 1);
	s->event(s, &e);
	for (int i = 0; i < 200; i++) {
		char line[64];
		snprintf(line, sizeof(line), "line %d <&> \033[31mred\033[0m\ttab\x02\r", i);
		out_str(s, &J, 0, "step\x01<x>", 1, line);
	}
	e = step_ev(RN_EV_STEP_FINISHED, &J, 0, "step\x01<x>", 1, 1);
	e.status = RN_ST_FAILURE;
	e.exit_code = 3;
	e.duration_ms = 2500;
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_FINISHED, &J, 1, 1);
	e.status = RN_ST_FAILURE;
	s->event(s, &e);
	/* closed without RUN_FINISHED */
	assert_int_equal(s->close(s), 0);
	int lint = xmllint_ok(path);
	if (lint >= 0)
		assert_int_equal(lint, 1);
	size_t len;
	char *x = slurp(path, &len);
	assert_non_null(strstr(x, "<testsuites name=\"p&amp;q\" tests=\"1\" failures=\"1\""));
	assert_non_null(strstr(x, "<testsuite name=\"a&lt;b&gt;&amp;&quot;c&apos;\""));
	assert_non_null(strstr(x, "name=\"01. step&lt;x&gt;\" time=\"2.500\">"));
	assert_non_null(strstr(x, "<failure message=\"exit 3\" type=\"failure\">line 150 "
				  "&lt;&amp;&gt; red\ttab&#13;\nline 151 "));
	assert_non_null(strstr(x, "line 199 &lt;&amp;&gt; red\ttab&#13;\n</failure>"));
	assert_null(strstr(x, "line 149 "));
	free(x);
	free(path);
	tmpdir_free(tmp);
}

static void test_junit_unwritable(void **state)
{
	(void)state;
	rn_sink *s = rn_junit_sink_new("/proc/nonexistent-dir/report.xml", NULL);
	feed_main(s, "/logs");
	assert_true(s->close(s) < 0);
	assert_non_null(strstr(rn_error_last(), "report.xml"));
}

/* ---- masking ------------------------------------------------------------------------------ */

#define SECRET "s3cr3t-token"

static void feed_secret(rn_sink *s, const char *dir)
{
	static const jobdef J = { "deploy " SECRET, "deploy", 1 };
	char *lp = logp(dir, "deploy/01.1.log");
	rn_event e = ev_new(RN_EV_RUN_STARTED);
	e.pipeline = "ci " SECRET;
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_STARTED, &J, 1, 1);
	s->event(s, &e);
	e = step_ev(RN_EV_STEP_STARTED, &J, 0, "echo " SECRET, 1, 1);
	e.log_path = lp;
	s->event(s, &e);
	out_str(s, &J, 0, "echo " SECRET, 1, "already masked: ***");
	e = step_ev(RN_EV_STEP_FINISHED, &J, 0, "echo " SECRET, 1, 1);
	e.status = RN_ST_FAILURE;
	e.exit_code = 1;
	e.reason = "bad " SECRET;
	e.log_path = lp;
	s->event(s, &e);
	e = ev_new(RN_EV_MESSAGE);
	e.job = J.job;
	e.step = "echo " SECRET;
	e.step_index = 0;
	e.data = "note " SECRET;
	e.len = strlen(e.data);
	s->event(s, &e);
	e = job_ev(RN_EV_JOB_FINISHED, &J, 1, 1);
	e.status = RN_ST_FAILURE;
	e.reason = "job " SECRET;
	s->event(s, &e);
	e = ev_new(RN_EV_RUN_FINISHED);
	e.status = RN_ST_FAILURE;
	s->event(s, &e);
	free(lp);
}

static void test_masking(void **state)
{
	(void)state;
	rn_masker *mk = rn_masker_new();
	assert_int_equal(rn_masker_add(mk, SECRET), 0);
	char *tmp = tmpdir_new();

	mem con, js;
	mem_open(&con);
	mem_open(&js);
	char *junit = logp(tmp, "junit.xml");
	char *logs = logp(tmp, "logs");
	rn_sink *sinks[4] = {
		rn_console_sink_new(con.f, 0, 0, mk),
		rn_json_sink_new(js.f, mk),
		rn_logdir_sink_new(logs, mk),
		rn_junit_sink_new(junit, mk),
	};
	for (int i = 0; i < 4; i++) {
		feed_secret(sinks[i], logs);
		assert_int_equal(sinks[i]->close(sinks[i]), 0);
	}
	mem_close(&con);
	mem_close(&js);

	assert_line(&con, "deploy *** › echo *** | already masked: ***");
	assert_line(&con, "deploy *** › echo *** ✗ failure (exit 1, 0.000s): bad ***");
	assert_line(&con, "deploy *** › echo ***: note ***");
	assert_line(&con, "deploy ***: failure (0.000s): job ***");
	assert_line(&con, "pipeline ci ***: failure in 0.000s");
	assert_false(mem_has(&con, SECRET));
	assert_true(mem_has(&js, "\"job\":\"deploy ***\""));
	assert_true(mem_has(&js, "\"reason\":\"bad ***\""));
	assert_true(mem_has(&js, "\"message\":\"note ***\""));
	assert_false(mem_has(&js, SECRET));

	size_t len;
	char *path = logp(logs, "summary.json");
	char *sum = slurp(path, &len);
	free(path);
	assert_non_null(strstr(sum, "\"deploy ***\""));
	assert_non_null(strstr(sum, "\"bad ***\""));
	assert_null(strstr(sum, SECRET));
	free(sum);
	char *x = slurp(junit, &len);
	assert_non_null(strstr(x, "<testsuite name=\"deploy ***\""));
	assert_non_null(strstr(x, "message=\"bad *** (exit 1)\""));
	assert_null(strstr(x, SECRET));
	free(x);

	free(con.p);
	free(js.p);
	free(junit);
	free(logs);
	tmpdir_free(tmp);
	rn_masker_free(mk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_and_helpers),
		cmocka_unit_test(test_console_plain),
		cmocka_unit_test(test_output_waits_for_flush),
		cmocka_unit_test(test_console_color),
		cmocka_unit_test(test_console_status_line),
		cmocka_unit_test(test_console_interrupted),
		cmocka_unit_test(test_missing_names),
		cmocka_unit_test(test_logdir),
		cmocka_unit_test(test_logdir_job_retry),
		cmocka_unit_test(test_logdir_error),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_junit),
		cmocka_unit_test(test_junit_tail_and_escaping),
		cmocka_unit_test(test_junit_unwritable),
		cmocka_unit_test(test_masking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
