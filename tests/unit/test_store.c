/* test_store.c - the server's SQLite store: every record type round-trips, queries order and
 * filter as documented, transactions roll back, and the data survives closing and reopening. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "store.h"
#include "util.h"

typedef struct fixture {
	char dir[64];
	char *path;
	rn_store *s;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/rn-test-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->path = rn_xasprintf("%s/runner.db", f->dir);
	if (rn_store_open(&f->s, f->path) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	rn_store_close(f->s);
	rn_rm_rf(f->dir);
	free(f->path);
	free(f);
	return 0;
}

static void reopen(fixture *f)
{
	rn_store_close(f->s);
	f->s = NULL;
	assert_int_equal(rn_store_open(&f->s, f->path), 0);
}

static int64_t add_pipeline(rn_store *s, const char *name, int64_t created)
{
	json_t *git = json_pack("{s:s, s:s, s:s}", "sha", "0123456789012345678901234567890123456789", "ref",
				"refs/heads/main", "branch", "main");
	json_t *env = json_pack("{s:s}", "K", "v");
	rn_store_pipeline p = { .name = (char *)name, .repo = "https://u:pw@host/r.git", .ref = "main",
				.sha = "0123456789012345678901234567890123456789", .file = ".pipeline.yml",
				.git = git, .workflow = "jobs: {}\n", .env = env, .state = RN_PS_QUEUED,
				.created_ms = created };
	assert_int_equal(rn_store_pipeline_add(s, &p), 0);
	assert_true(p.id > 0);
	json_decref(git);
	json_decref(env);
	return p.id;
}

/* A job row with every field set to something recognisable. */
static void put_job(rn_store *s, int64_t pipeline, int n, rn_jstate st, int64_t queued, const char *lease,
		    int64_t expires, int64_t agent, int group)
{
	json_t *runs_on = json_pack("[s, s]", "linux", "x86_64");
	json_t *outputs = json_pack("{s:s}", "version", "1.2");
	json_t *steps = json_pack("[{s:i, s:s, s:s}]", "index", 0, "name", "Build", "status", "pending");
	json_t *needs = n > 1 ? json_pack("{s:{s:s, s:{}}}", "a", "result", "success", "outputs") : NULL;
	char name[32];
	snprintf(name, sizeof(name), "build (%d)", n);
	rn_store_job j = { .pipeline = pipeline, .n = n, .name = name, .job = "build", .state = st, .attempt = 1,
			   .agent_id = agent, .agent = agent ? "agent-1" : NULL, .lease = (char *)lease,
			   .lease_expires_ms = expires, .queued_ms = queued, .group = group, .max_parallel = 2,
			   .continue_on_error = n == 3, .runs_on = runs_on, .needs = needs, .outputs = outputs,
			   .steps = steps };
	assert_int_equal(rn_store_job_put(s, &j), 0);
	json_decref(runs_on);
	json_decref(outputs);
	json_decref(steps);
	json_decref(needs);
}

static void test_states(void **state)
{
	(void)state;
	rn_jstate js;
	for (int i = 0; i < RN_JS_COUNT; i++) {
		assert_int_equal(rn_jstate_parse(&js, rn_jstate_name((rn_jstate)i)), 0);
		assert_int_equal(js, i);
	}
	assert_string_equal(rn_jstate_name(RN_JS_TIMED_OUT), "timed out");
	assert_int_equal(rn_jstate_parse(&js, "finished"), RN_EINVALID);
	assert_int_equal(rn_jstate_parse(&js, NULL), RN_EINVALID);
	assert_false(rn_jstate_final(RN_JS_RUNNING));
	assert_false(rn_jstate_final(RN_JS_ASSIGNED));
	assert_true(rn_jstate_final(RN_JS_SKIPPED));
	assert_true(rn_jstate_final(RN_JS_SUCCESS));
	assert_string_equal(rn_pstate_name(RN_PS_CANCELLED), "cancelled");
}

static void test_open_bad_path(void **state)
{
	(void)state;
	rn_store *s = (rn_store *)1;
	assert_int_equal(rn_store_open(&s, "/nonexistent-dir/sub/runner.db"), RN_EIO);
	assert_null(s);
	assert_non_null(strstr(rn_error_last(), "/nonexistent-dir/sub/runner.db"));
}

static void test_pipelines(void **state)
{
	fixture *f = *state;
	int64_t a = add_pipeline(f->s, "first", 1000);
	int64_t b = add_pipeline(f->s, "second", 2000);
	assert_true(b > a);

	rn_store_pipeline p;
	assert_int_equal(rn_store_pipeline_get(f->s, a, &p), 0);
	assert_string_equal(p.name, "first");
	assert_string_equal(p.repo, "https://u:pw@host/r.git");
	assert_string_equal(p.workflow, "jobs: {}\n");
	assert_string_equal(json_string_value(json_object_get(p.git, "branch")), "main");
	assert_string_equal(json_string_value(json_object_get(p.env, "K")), "v");
	assert_int_equal(p.state, RN_PS_QUEUED);
	assert_int_equal(p.started_ms, 0);
	p.state = RN_PS_SUCCESS;
	p.cancel = 1;
	p.started_ms = 1500;
	p.finished_ms = 1600;
	assert_int_equal(rn_store_pipeline_put(f->s, &p), 0);
	rn_store_pipeline_clear(&p);
	assert_null(p.name);

	reopen(f);
	assert_int_equal(rn_store_pipeline_get(f->s, a, &p), 0);
	assert_int_equal(p.state, RN_PS_SUCCESS);
	assert_int_equal(p.cancel, 1);
	assert_int_equal(p.started_ms, 1500);
	assert_int_equal(p.finished_ms, 1600);
	rn_store_pipeline_clear(&p);

	assert_int_equal(rn_store_pipeline_get(f->s, 999, &p), RN_ENOTFOUND);
	rn_store_pipeline_clear(&p);

	/* newest first, limited, without the workflow text */
	rn_store_pipeline *v = NULL;
	size_t n = 0;
	assert_int_equal(rn_store_pipelines_list(f->s, 1, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, b);
	assert_null(v[0].workflow);
	rn_store_pipelines_free(v, n);
	assert_int_equal(rn_store_pipelines_list(f->s, 50, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[1].id, a);
	rn_store_pipelines_free(v, n);

	/* only b is still live */
	int64_t *ids = NULL;
	assert_int_equal(rn_store_pipelines_live(f->s, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], b);
	free(ids);
}

static void test_jobs(void **state)
{
	fixture *f = *state;
	int64_t p = add_pipeline(f->s, "p", 1000);
	put_job(f->s, p, 1, RN_JS_SUCCESS, 10, NULL, 0, 0, 1);
	put_job(f->s, p, 2, RN_JS_QUEUED, 30, NULL, 0, 0, 2);
	put_job(f->s, p, 3, RN_JS_QUEUED, 20, NULL, 0, 0, 2);
	put_job(f->s, p, 4, RN_JS_ASSIGNED, 5, "lease-four", 5000, 7, 2);
	put_job(f->s, p, 5, RN_JS_RUNNING, 6, "lease-five", 9000, 7, 2);

	rn_store_job j;
	assert_int_equal(rn_store_job_get(f->s, p, 2, &j), 0);
	assert_string_equal(j.name, "build (2)");
	assert_string_equal(j.job, "build");
	assert_int_equal(j.state, RN_JS_QUEUED);
	assert_null(j.agent);
	assert_null(j.lease);
	assert_int_equal(j.group, 2);
	assert_int_equal(j.max_parallel, 2);
	assert_string_equal(json_string_value(json_array_get(j.runs_on, 1)), "x86_64");
	assert_string_equal(json_string_value(json_object_get(j.outputs, "version")), "1.2");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j.steps, 0), "name")), "Build");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j.needs, "a"), "result")), "success");
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_job_get(f->s, p, 1, &j), 0);
	assert_null(j.needs); /* not decided: NULL, not {} */
	assert_int_equal(j.continue_on_error, 0);
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_job_get(f->s, p, 9, &j), RN_ENOTFOUND);
	rn_store_job_clear(&j);

	assert_int_equal(rn_store_job_by_lease(f->s, "lease-five", &j), 0);
	assert_int_equal(j.n, 5);
	assert_int_equal(j.agent_id, 7);
	assert_string_equal(j.agent, "agent-1");
	/* the row is replaced as a whole */
	j.state = RN_JS_SUCCESS;
	j.finished_ms = 9999;
	assert_int_equal(rn_store_job_put(f->s, &j), 0);
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_job_get(f->s, p, 5, &j), 0);
	assert_int_equal(j.state, RN_JS_SUCCESS);
	assert_int_equal(j.finished_ms, 9999);
	assert_string_equal(j.lease, "lease-five");
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_job_by_lease(f->s, "forged", &j), RN_ENOTFOUND);
	rn_store_job_clear(&j);

	rn_store_job *v = NULL;
	size_t n = 0;
	assert_int_equal(rn_store_jobs_of(f->s, p, &v, &n), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].n, (int)i + 1);
	rn_store_jobs_free(v, n);

	/* the queue: oldest queued first */
	assert_int_equal(rn_store_jobs_in_state(f->s, RN_JS_QUEUED, 100, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].n, 3);
	assert_int_equal(v[1].n, 2);
	rn_store_jobs_free(v, n);
	assert_int_equal(rn_store_jobs_in_state(f->s, RN_JS_QUEUED, 1, &v, &n), 0);
	assert_int_equal(n, 1);
	rn_store_jobs_free(v, n);

	int64_t count = -1;
	assert_int_equal(rn_store_group_active(f->s, p, 2, &count), 0);
	assert_int_equal(count, 1); /* job 4 (job 5 finished) */
	assert_int_equal(rn_store_agent_active(f->s, 7, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(rn_store_agent_active(f->s, 8, &count), 0);
	assert_int_equal(count, 0);

	int64_t counts[RN_JS_COUNT];
	assert_int_equal(rn_store_job_counts(f->s, counts), 0);
	assert_int_equal(counts[RN_JS_QUEUED], 2);
	assert_int_equal(counts[RN_JS_SUCCESS], 2);
	assert_int_equal(counts[RN_JS_ASSIGNED], 1);
	assert_int_equal(counts[RN_JS_RUNNING], 0);
}

static void test_leases(void **state)
{
	fixture *f = *state;
	int64_t p = add_pipeline(f->s, "p", 1000);
	put_job(f->s, p, 1, RN_JS_ASSIGNED, 1, "l1", 5000, 1, 1);
	put_job(f->s, p, 2, RN_JS_RUNNING, 1, "l2", 7000, 1, 2);
	put_job(f->s, p, 3, RN_JS_SUCCESS, 1, "l3", 100, 1, 3); /* finished: never expires */
	put_job(f->s, p, 4, RN_JS_QUEUED, 1, NULL, 0, 0, 4);

	rn_store_job *v = NULL;
	size_t n = 0;
	assert_int_equal(rn_store_jobs_expired(f->s, 5000, &v, &n), 0);
	assert_int_equal(n, 0); /* strictly before now */
	rn_store_jobs_free(v, n);
	assert_int_equal(rn_store_jobs_expired(f->s, 6000, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].n, 1);
	rn_store_jobs_free(v, n);
	assert_int_equal(rn_store_jobs_expired(f->s, 100000, &v, &n), 0);
	assert_int_equal(n, 2);
	rn_store_jobs_free(v, n);

	/* a restarted server pushes the deadlines: ack for assigned, ttl for running */
	assert_int_equal(rn_store_jobs_extend_leases(f->s, 100000, 10000, 30000), 0);
	rn_store_job j;
	assert_int_equal(rn_store_job_get(f->s, p, 1, &j), 0);
	assert_int_equal(j.lease_expires_ms, 110000);
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_job_get(f->s, p, 2, &j), 0);
	assert_int_equal(j.lease_expires_ms, 130000);
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_job_get(f->s, p, 3, &j), 0);
	assert_int_equal(j.lease_expires_ms, 100);
	rn_store_job_clear(&j);
	assert_int_equal(rn_store_jobs_expired(f->s, 100001, &v, &n), 0);
	assert_int_equal(n, 0);
	rn_store_jobs_free(v, n);
}

static void test_lease_unique(void **state)
{
	fixture *f = *state;
	int64_t p = add_pipeline(f->s, "p", 1000);
	put_job(f->s, p, 1, RN_JS_RUNNING, 1, "same", 5000, 1, 1);
	json_t *a = json_array(), *o = json_object();
	rn_store_job j = { .pipeline = p, .n = 2, .name = "x", .job = "x", .state = RN_JS_RUNNING, .attempt = 1,
			   .lease = "same", .runs_on = a, .outputs = o, .steps = a };
	/* two jobs can never hold the same lease; the first one is untouched */
	assert_int_equal(rn_store_job_put(f->s, &j), RN_EIO);
	rn_store_job got;
	assert_int_equal(rn_store_job_get(f->s, p, 1, &got), 0);
	assert_string_equal(got.lease, "same");
	rn_store_job_clear(&got);
	assert_int_equal(rn_store_job_get(f->s, p, 2, &got), RN_ENOTFOUND);
	rn_store_job_clear(&got);
	json_decref(a);
	json_decref(o);
}

static void test_transactions(void **state)
{
	fixture *f = *state;
	assert_int_equal(rn_store_begin(f->s), 0);
	int64_t p = add_pipeline(f->s, "gone", 1000);
	rn_store_rollback(f->s);
	rn_store_pipeline rec;
	assert_int_equal(rn_store_pipeline_get(f->s, p, &rec), RN_ENOTFOUND);
	rn_store_pipeline_clear(&rec);

	assert_int_equal(rn_store_begin(f->s), 0);
	p = add_pipeline(f->s, "kept", 1000);
	put_job(f->s, p, 1, RN_JS_PENDING, 0, NULL, 0, 0, 1);
	assert_int_equal(rn_store_commit(f->s), 0);
	reopen(f);
	assert_int_equal(rn_store_pipeline_get(f->s, p, &rec), 0);
	assert_string_equal(rec.name, "kept");
	rn_store_pipeline_clear(&rec);
	rn_store_job j;
	assert_int_equal(rn_store_job_get(f->s, p, 1, &j), 0);
	assert_int_equal(j.state, RN_JS_PENDING);
	assert_int_equal(j.queued_ms, 0);
	rn_store_job_clear(&j);
	rn_store_rollback(f->s); /* no transaction: harmless */
}

static void test_agents(void **state)
{
	fixture *f = *state;
	json_t *labels = json_pack("[s]", "linux");
	rn_store_agent a = { .name = "a1", .token_sha256 = "aa11", .labels = labels, .capacity = 2, .version = "0.1",
			     .created_ms = 100, .last_seen_ms = 100 };
	assert_int_equal(rn_store_agent_add(f->s, &a), 0);
	rn_store_agent b = { .name = "a1", .token_sha256 = "bb22", .capacity = 1, .created_ms = 200 };
	assert_int_equal(rn_store_agent_add(f->s, &b), 0);
	assert_true(b.id > a.id); /* the same name registers a new agent */
	json_decref(labels);

	rn_store_agent got;
	assert_int_equal(rn_store_agent_by_token(f->s, "bb22", &got), 0);
	assert_int_equal(got.id, b.id);
	assert_null(got.version);
	assert_int_equal(json_array_size(got.labels), 0);
	assert_int_equal(got.last_seen_ms, 0);
	json_decref(got.labels);
	got.labels = json_pack("[s, s]", "gpu", "linux");
	got.last_seen_ms = 5000;
	got.capacity = 4;
	assert_int_equal(rn_store_agent_put(f->s, &got), 0);
	rn_store_agent_clear(&got);
	assert_int_equal(rn_store_agent_get(f->s, b.id, &got), 0);
	assert_int_equal(got.capacity, 4);
	assert_string_equal(json_string_value(json_array_get(got.labels, 0)), "gpu");
	assert_string_equal(got.token_sha256, "bb22");
	rn_store_agent_clear(&got);
	assert_int_equal(rn_store_agent_by_token(f->s, "cc33", &got), RN_ENOTFOUND);
	rn_store_agent_clear(&got);
	assert_int_equal(rn_store_agent_get(f->s, 4242, &got), RN_ENOTFOUND);
	rn_store_agent_clear(&got);

	rn_store_agent *v = NULL;
	size_t n = 0;
	assert_int_equal(rn_store_agents_list(f->s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].version, "0.1");
	rn_store_agents_free(v, n);
	int64_t seen = 0;
	assert_int_equal(rn_store_agents_seen(f->s, 1000, &seen), 0);
	assert_int_equal(seen, 1);
	assert_int_equal(rn_store_agents_seen(f->s, 0, &seen), 0);
	assert_int_equal(seen, 2);
}

static void test_artifacts(void **state)
{
	fixture *f = *state;
	int64_t p = add_pipeline(f->s, "p", 1000);
	int64_t q = add_pipeline(f->s, "q", 1000);
	rn_store_artifact a = { .pipeline = p, .name = "dist", .job = 1, .format = "tar.gz", .size = 10,
				.sha256 = "ab", .created_ms = 2 };
	assert_int_equal(rn_store_artifact_put(f->s, &a), 0);
	rn_store_artifact b = { .pipeline = p, .name = "docs", .job = 2, .format = "zip", .size = 5,
				.sha256 = "cd", .created_ms = 1 };
	assert_int_equal(rn_store_artifact_put(f->s, &b), 0);
	rn_store_artifact c = { .pipeline = q, .name = "dist", .job = 1, .format = "zip", .size = 1,
				.sha256 = "ef", .created_ms = 3 };
	assert_int_equal(rn_store_artifact_put(f->s, &c), 0);

	/* replace: same pipeline and name */
	a.format = "tar.xz";
	a.size = 11;
	assert_int_equal(rn_store_artifact_put(f->s, &a), 0);
	rn_store_artifact got;
	assert_int_equal(rn_store_artifact_get(f->s, p, "dist", &got), 0);
	assert_string_equal(got.format, "tar.xz");
	assert_int_equal(got.size, 11);
	assert_int_equal(got.job, 1);
	rn_store_artifact_clear(&got);
	assert_int_equal(rn_store_artifact_get(f->s, p, "nope", &got), RN_ENOTFOUND);
	rn_store_artifact_clear(&got);

	rn_store_artifact *v = NULL;
	size_t n = 0;
	assert_int_equal(rn_store_artifacts_of(f->s, p, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "docs"); /* created first */
	assert_string_equal(v[1].name, "dist");
	rn_store_artifacts_free(v, n);
	assert_int_equal(rn_store_artifacts_of(f->s, q, &v, &n), 0);
	assert_int_equal(n, 1);
	rn_store_artifacts_free(v, n);
	assert_int_equal(rn_store_artifacts_of(f->s, 12345, &v, &n), 0);
	assert_int_equal(n, 0);
	rn_store_artifacts_free(v, n);
}

/* The schema is created once: opening an existing database keeps its rows. */
static void test_reopen_keeps(void **state)
{
	fixture *f = *state;
	int64_t p = add_pipeline(f->s, "p", 1000);
	put_job(f->s, p, 1, RN_JS_RUNNING, 5, "l", 100, 3, 1);
	for (int i = 0; i < 3; i++)
		reopen(f);
	rn_store_job j;
	assert_int_equal(rn_store_job_by_lease(f->s, "l", &j), 0);
	assert_int_equal(j.state, RN_JS_RUNNING);
	assert_int_equal(j.agent_id, 3);
	rn_store_job_clear(&j);
	char *wal = rn_xasprintf("%s-wal", f->path);
	assert_int_equal(access(wal, F_OK), 0); /* WAL mode */
	free(wal);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_open_bad_path),
		cmocka_unit_test_setup_teardown(test_pipelines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_artifacts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
