/* store.c - the server's SQLite database: schema, and typed reads and writes of its rows. */
#include "store.h"
#include "error.h"
#include "util.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct rn_store {
	sqlite3 *db;
	int in_tx;
};

/* Schema version 1. Times are INTEGER milliseconds or NULL; JSON columns are TEXT. */
static const char schema[] =
	"CREATE TABLE IF NOT EXISTS pipelines ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, repo TEXT NOT NULL,"
	" ref TEXT NOT NULL, sha TEXT NOT NULL, file TEXT NOT NULL, git TEXT NOT NULL,"
	" workflow TEXT NOT NULL, env TEXT NOT NULL, status TEXT NOT NULL,"
	" cancel INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, started_ms INTEGER,"
	" finished_ms INTEGER);"
	"CREATE INDEX IF NOT EXISTS pipelines_status ON pipelines(status);"
	"CREATE TABLE IF NOT EXISTS jobs ("
	" pipeline INTEGER NOT NULL REFERENCES pipelines(id), n INTEGER NOT NULL,"
	" name TEXT NOT NULL, job TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL,"
	" agent_id INTEGER, agent TEXT, reason TEXT, lease TEXT UNIQUE, lease_expires_ms INTEGER,"
	" cancel INTEGER NOT NULL DEFAULT 0, cancel_reason TEXT, queued_ms INTEGER,"
	" started_ms INTEGER, finished_ms INTEGER, grp INTEGER NOT NULL,"
	" max_parallel INTEGER NOT NULL, coe INTEGER NOT NULL, runs_on TEXT NOT NULL, needs TEXT,"
	" outputs TEXT NOT NULL, steps TEXT NOT NULL, PRIMARY KEY (pipeline, n));"
	"CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, queued_ms);"
	"CREATE TABLE IF NOT EXISTS agents ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
	" token_sha256 TEXT NOT NULL UNIQUE, labels TEXT NOT NULL, capacity INTEGER NOT NULL,"
	" version TEXT, created_ms INTEGER NOT NULL, last_seen_ms INTEGER);"
	"CREATE TABLE IF NOT EXISTS artifacts ("
	" pipeline INTEGER NOT NULL REFERENCES pipelines(id), name TEXT NOT NULL,"
	" job INTEGER NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL, PRIMARY KEY (pipeline, name));"
	"PRAGMA user_version = 1;";

static const char *const jstate_names[RN_JS_COUNT] = {
	"pending", "queued", "assigned", "running", "success", "failure", "timed out", "cancelled", "skipped",
};
static const char *const pstate_names[RN_PS_COUNT] = { "queued", "running", "success", "failure", "cancelled" };

const char *rn_jstate_name(rn_jstate s)
{
	return (unsigned)s < RN_JS_COUNT ? jstate_names[s] : "unknown";
}

int rn_jstate_parse(rn_jstate *out, const char *s)
{
	for (int i = 0; s && i < RN_JS_COUNT; i++) {
		if (strcmp(s, jstate_names[i]) == 0) {
			*out = (rn_jstate)i;
			return 0;
		}
	}
	rn_error_set("unknown job state '%s'", s ? s : "(null)");
	return RN_EINVALID;
}

int rn_jstate_final(rn_jstate s)
{
	return s >= RN_JS_SUCCESS && s < RN_JS_COUNT;
}

const char *rn_pstate_name(rn_pstate s)
{
	return (unsigned)s < RN_PS_COUNT ? pstate_names[s] : "unknown";
}

static rn_pstate pstate_parse(const char *s)
{
	for (int i = 0; s && i < RN_PS_COUNT; i++)
		if (strcmp(s, pstate_names[i]) == 0)
			return (rn_pstate)i;
	return RN_PS_QUEUED;
}

static int db_fail(rn_store *s, const char *what)
{
	rn_error_set("database: %s: %s", what, sqlite3_errmsg(s->db));
	return RN_EIO;
}

int rn_store_open(rn_store **out, const char *path)
{
	*out = NULL;
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rn_error_set("database %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return RN_EIO;
	}
	rn_store *s = rn_xcalloc(1, sizeof(*s));
	s->db = db;
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	/* journal_mode answers a row: run it through exec like the rest */
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", NULL,
			 NULL, &err) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK) {
		rn_error_set("database %s: %s", path, err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		rn_store_close(s);
		return RN_EIO;
	}
	*out = s;
	return 0;
}

void rn_store_close(rn_store *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	free(s);
}

static int exec_sql(rn_store *s, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		rn_error_set("database: %s: %s", sql, err ? err : sqlite3_errmsg(s->db));
		sqlite3_free(err);
		return RN_EIO;
	}
	return 0;
}

int rn_store_begin(rn_store *s)
{
	int rc = exec_sql(s, "BEGIN IMMEDIATE");
	if (rc == 0)
		s->in_tx = 1;
	return rc;
}

int rn_store_commit(rn_store *s)
{
	int rc = exec_sql(s, "COMMIT");
	if (rc < 0)
		rn_store_rollback(s);
	s->in_tx = 0;
	return rc;
}

void rn_store_rollback(rn_store *s)
{
	if (sqlite3_get_autocommit(s->db) == 0)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_tx = 0;
}

/* ---- statement helpers ---- */

static sqlite3_stmt *prep(rn_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, "prepare");
		return NULL;
	}
	return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Times and ids: 0 is stored as NULL. */
static void bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
	if (!v) {
		sqlite3_bind_null(st, i);
		return;
	}
	char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (t)
		sqlite3_bind_text(st, i, t, -1, free);
	else
		sqlite3_bind_null(st, i);
}

static char *col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? rn_xstrdup((const char *)t) : NULL;
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	if (!t)
		return NULL;
	return json_loadb(t, (size_t)sqlite3_column_bytes(st, i), JSON_DECODE_ANY, NULL);
}

/* Step a statement that returns no rows and finalize it. */
static int run_done(rn_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int ret = rc == SQLITE_DONE ? 0 : db_fail(s, what);
	sqlite3_finalize(st);
	return ret;
}

/* Collect the rows of st with read(), growing *v; finalizes st. */
static int collect(rn_store *s, sqlite3_stmt *st, void **v, size_t *n, size_t size,
		   void (*read)(sqlite3_stmt *, void *), const char *what)
{
	size_t cap = 0;
	*v = NULL;
	*n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rn_grow(v, &cap, *n + 1, size);
		char *slot = (char *)*v + *n * size;
		memset(slot, 0, size);
		read(st, slot);
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, what);
	return 0;
}

/* ---- pipelines ---- */

#define PIPELINE_COLS                                                                                          \
	"id, name, repo, ref, sha, file, git, env, status, cancel, created_ms, started_ms, finished_ms, workflow"

static void read_pipeline(sqlite3_stmt *st, void *out)
{
	rn_store_pipeline *p = out;
	p->id = sqlite3_column_int64(st, 0);
	p->name = col_str(st, 1);
	p->repo = col_str(st, 2);
	p->ref = col_str(st, 3);
	p->sha = col_str(st, 4);
	p->file = col_str(st, 5);
	p->git = col_json(st, 6);
	p->env = col_json(st, 7);
	p->state = pstate_parse((const char *)sqlite3_column_text(st, 8));
	p->cancel = sqlite3_column_int(st, 9);
	p->created_ms = sqlite3_column_int64(st, 10);
	p->started_ms = sqlite3_column_int64(st, 11);
	p->finished_ms = sqlite3_column_int64(st, 12);
	if (sqlite3_column_count(st) > 13)
		p->workflow = col_str(st, 13);
	if (!p->git)
		p->git = json_object();
	if (!p->env)
		p->env = json_object();
}

int rn_store_pipeline_add(rn_store *s, rn_store_pipeline *p)
{
	sqlite3_stmt *st = prep(s, "INSERT INTO pipelines (name, repo, ref, sha, file, git, env, status, cancel,"
				   " created_ms, started_ms, finished_ms, workflow)"
				   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (!st)
		return RN_EIO;
	bind_text(st, 1, p->name);
	bind_text(st, 2, p->repo);
	bind_text(st, 3, p->ref);
	bind_text(st, 4, p->sha);
	bind_text(st, 5, p->file);
	bind_json(st, 6, p->git ? p->git : json_object());
	bind_json(st, 7, p->env);
	bind_text(st, 8, rn_pstate_name(p->state));
	sqlite3_bind_int(st, 9, p->cancel);
	sqlite3_bind_int64(st, 10, p->created_ms);
	bind_opt_int(st, 11, p->started_ms);
	bind_opt_int(st, 12, p->finished_ms);
	bind_text(st, 13, p->workflow ? p->workflow : "");
	int rc = run_done(s, st, "insert pipeline");
	if (rc == 0)
		p->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int rn_store_pipeline_put(rn_store *s, const rn_store_pipeline *p)
{
	sqlite3_stmt *st =
		prep(s, "UPDATE pipelines SET status = ?, cancel = ?, started_ms = ?, finished_ms = ? WHERE id = ?");
	if (!st)
		return RN_EIO;
	bind_text(st, 1, rn_pstate_name(p->state));
	sqlite3_bind_int(st, 2, p->cancel);
	bind_opt_int(st, 3, p->started_ms);
	bind_opt_int(st, 4, p->finished_ms);
	sqlite3_bind_int64(st, 5, p->id);
	return run_done(s, st, "update pipeline");
}

int rn_store_pipeline_get(rn_store *s, int64_t id, rn_store_pipeline *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = prep(s, "SELECT " PIPELINE_COLS " FROM pipelines WHERE id = ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_pipeline(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE) {
		rn_error_set("no pipeline %lld", (long long)id);
		return RN_ENOTFOUND;
	}
	return db_fail(s, "read pipeline");
}

int rn_store_pipelines_list(rn_store *s, int64_t limit, rn_store_pipeline **v, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT id, name, repo, ref, sha, file, git, env, status, cancel, created_ms,"
				   " started_ms, finished_ms FROM pipelines ORDER BY id DESC LIMIT ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, limit);
	return collect(s, st, (void **)v, n, sizeof(**v), read_pipeline, "list pipelines");
}

static void read_id(sqlite3_stmt *st, void *out)
{
	*(int64_t *)out = sqlite3_column_int64(st, 0);
}

int rn_store_pipelines_live(rn_store *s, int64_t **ids, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT id FROM pipelines WHERE status IN ('queued', 'running') ORDER BY id");
	if (!st)
		return RN_EIO;
	return collect(s, st, (void **)ids, n, sizeof(**ids), read_id, "list live pipelines");
}

void rn_store_pipeline_clear(rn_store_pipeline *p)
{
	free(p->name);
	free(p->repo);
	free(p->ref);
	free(p->sha);
	free(p->file);
	json_decref(p->git);
	free(p->workflow);
	json_decref(p->env);
	memset(p, 0, sizeof(*p));
}

void rn_store_pipelines_free(rn_store_pipeline *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rn_store_pipeline_clear(&v[i]);
	free(v);
}

/* ---- jobs ---- */

#define JOB_COLS                                                                                              \
	"pipeline, n, name, job, status, attempt, agent_id, agent, reason, lease, lease_expires_ms, cancel,"     \
	" cancel_reason, queued_ms, started_ms, finished_ms, grp, max_parallel, coe, runs_on, needs, outputs,"  \
	" steps"

static void read_job(sqlite3_stmt *st, void *out)
{
	rn_store_job *j = out;
	j->pipeline = sqlite3_column_int64(st, 0);
	j->n = sqlite3_column_int(st, 1);
	j->name = col_str(st, 2);
	j->job = col_str(st, 3);
	if (rn_jstate_parse(&j->state, (const char *)sqlite3_column_text(st, 4)) < 0)
		j->state = RN_JS_FAILURE;
	j->attempt = sqlite3_column_int(st, 5);
	j->agent_id = sqlite3_column_int64(st, 6);
	j->agent = col_str(st, 7);
	j->reason = col_str(st, 8);
	j->lease = col_str(st, 9);
	j->lease_expires_ms = sqlite3_column_int64(st, 10);
	j->cancel = sqlite3_column_int(st, 11);
	j->cancel_reason = col_str(st, 12);
	j->queued_ms = sqlite3_column_int64(st, 13);
	j->started_ms = sqlite3_column_int64(st, 14);
	j->finished_ms = sqlite3_column_int64(st, 15);
	j->group = sqlite3_column_int(st, 16);
	j->max_parallel = sqlite3_column_int(st, 17);
	j->continue_on_error = sqlite3_column_int(st, 18);
	j->runs_on = col_json(st, 19);
	j->needs = col_json(st, 20);
	j->outputs = col_json(st, 21);
	j->steps = col_json(st, 22);
	if (!json_is_array(j->runs_on)) {
		json_decref(j->runs_on);
		j->runs_on = json_array();
	}
	if (!json_is_object(j->outputs)) {
		json_decref(j->outputs);
		j->outputs = json_object();
	}
	if (!json_is_array(j->steps)) {
		json_decref(j->steps);
		j->steps = json_array();
	}
}

int rn_store_job_put(rn_store *s, const rn_store_job *j)
{
	/* an upsert on the key, not INSERT OR REPLACE: that would delete another row holding the
	 * same lease instead of failing */
	sqlite3_stmt *st = prep(s, "INSERT INTO jobs (" JOB_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
				   " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, n) DO UPDATE SET"
				   " name = excluded.name, job = excluded.job, status = excluded.status,"
				   " attempt = excluded.attempt, agent_id = excluded.agent_id, agent = excluded.agent,"
				   " reason = excluded.reason, lease = excluded.lease,"
				   " lease_expires_ms = excluded.lease_expires_ms, cancel = excluded.cancel,"
				   " cancel_reason = excluded.cancel_reason, queued_ms = excluded.queued_ms,"
				   " started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,"
				   " grp = excluded.grp, max_parallel = excluded.max_parallel, coe = excluded.coe,"
				   " runs_on = excluded.runs_on, needs = excluded.needs, outputs = excluded.outputs,"
				   " steps = excluded.steps");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, j->pipeline);
	sqlite3_bind_int(st, 2, j->n);
	bind_text(st, 3, j->name);
	bind_text(st, 4, j->job);
	bind_text(st, 5, rn_jstate_name(j->state));
	sqlite3_bind_int(st, 6, j->attempt);
	bind_opt_int(st, 7, j->agent_id);
	bind_text(st, 8, j->agent);
	bind_text(st, 9, j->reason);
	bind_text(st, 10, j->lease);
	bind_opt_int(st, 11, j->lease_expires_ms);
	sqlite3_bind_int(st, 12, j->cancel);
	bind_text(st, 13, j->cancel_reason);
	bind_opt_int(st, 14, j->queued_ms);
	bind_opt_int(st, 15, j->started_ms);
	bind_opt_int(st, 16, j->finished_ms);
	sqlite3_bind_int(st, 17, j->group);
	sqlite3_bind_int(st, 18, j->max_parallel);
	sqlite3_bind_int(st, 19, j->continue_on_error);
	json_t *empty_a = json_array(), *empty_o = json_object();
	bind_json(st, 20, j->runs_on ? j->runs_on : empty_a);
	bind_json(st, 21, j->needs);
	bind_json(st, 22, j->outputs ? j->outputs : empty_o);
	bind_json(st, 23, j->steps ? j->steps : empty_a);
	json_decref(empty_a);
	json_decref(empty_o);
	return run_done(s, st, "write job");
}

static int job_one(rn_store *s, sqlite3_stmt *st, rn_store_job *out, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_job(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE) {
		rn_error_set("no such job");
		return RN_ENOTFOUND;
	}
	return db_fail(s, what);
}

int rn_store_job_get(rn_store *s, int64_t pipeline, int n, rn_store_job *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE pipeline = ? AND n = ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, pipeline);
	sqlite3_bind_int(st, 2, n);
	return job_one(s, st, out, "read job");
}

int rn_store_job_by_lease(rn_store *s, const char *lease, rn_store_job *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE lease = ?");
	if (!st)
		return RN_EIO;
	bind_text(st, 1, lease);
	return job_one(s, st, out, "read job by lease");
}

int rn_store_jobs_of(rn_store *s, int64_t pipeline, rn_store_job **v, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE pipeline = ? ORDER BY n");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, pipeline);
	return collect(s, st, (void **)v, n, sizeof(**v), read_job, "list jobs");
}

int rn_store_jobs_in_state(rn_store *s, rn_jstate state, int64_t limit, rn_store_job **v, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE status = ?"
				   " ORDER BY queued_ms, pipeline, n LIMIT ?");
	if (!st)
		return RN_EIO;
	bind_text(st, 1, rn_jstate_name(state));
	sqlite3_bind_int64(st, 2, limit);
	return collect(s, st, (void **)v, n, sizeof(**v), read_job, "list jobs by state");
}

int rn_store_queue_each(rn_store *s, int (*cb)(const rn_store_qent *q, void *arg), void *arg)
{
	sqlite3_stmt *st = prep(s, "SELECT pipeline, n, grp, max_parallel, runs_on FROM jobs WHERE status = 'queued'"
				   " ORDER BY queued_ms, pipeline, n");
	if (!st)
		return RN_EIO;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rn_store_qent q = { .pipeline = sqlite3_column_int64(st, 0), .n = sqlite3_column_int(st, 1),
				    .group = sqlite3_column_int(st, 2), .max_parallel = sqlite3_column_int(st, 3),
				    .runs_on = col_json(st, 4) };
		if (!json_is_array(q.runs_on)) {
			json_decref(q.runs_on);
			q.runs_on = json_array();
		}
		int stop = cb(&q, arg);
		json_decref(q.runs_on);
		if (stop) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, "scan the queue");
}

static void read_state(sqlite3_stmt *st, void *out)
{
	if (rn_jstate_parse(out, (const char *)sqlite3_column_text(st, 0)) < 0)
		*(rn_jstate *)out = RN_JS_FAILURE;
}

int rn_store_job_states(rn_store *s, int64_t pipeline, rn_jstate **states, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT status FROM jobs WHERE pipeline = ? ORDER BY n");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, pipeline);
	return collect(s, st, (void **)states, n, sizeof(**states), read_state, "job states");
}

int rn_store_jobs_expired(rn_store *s, int64_t now, rn_store_job **v, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE status IN ('assigned', 'running')"
				   " AND lease_expires_ms < ? ORDER BY pipeline, n");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, now);
	return collect(s, st, (void **)v, n, sizeof(**v), read_job, "list expired leases");
}

int rn_store_jobs_extend_leases(rn_store *s, int64_t now, int64_t ack_ms, int64_t ttl_ms)
{
	sqlite3_stmt *st = prep(s, "UPDATE jobs SET lease_expires_ms = CASE status WHEN 'assigned' THEN ?"
				   " ELSE ? END WHERE status IN ('assigned', 'running')");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, now + ack_ms);
	sqlite3_bind_int64(st, 2, now + ttl_ms);
	return run_done(s, st, "extend leases");
}

static int count_query(rn_store *s, sqlite3_stmt *st, int64_t *count, const char *what)
{
	int rc = sqlite3_step(st);
	*count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_fail(s, what);
}

int rn_store_group_active(rn_store *s, int64_t pipeline, int group, int64_t *count)
{
	sqlite3_stmt *st = prep(s, "SELECT count(*) FROM jobs WHERE pipeline = ? AND grp = ?"
				   " AND status IN ('assigned', 'running')");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, pipeline);
	sqlite3_bind_int(st, 2, group);
	return count_query(s, st, count, "count group");
}

int rn_store_agent_active(rn_store *s, int64_t agent_id, int64_t *count)
{
	sqlite3_stmt *st = prep(s, "SELECT count(*) FROM jobs WHERE status IN ('assigned', 'running')"
				   " AND agent_id = ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, agent_id);
	return count_query(s, st, count, "count agent jobs");
}

int rn_store_job_counts(rn_store *s, int64_t counts[RN_JS_COUNT])
{
	memset(counts, 0, sizeof(int64_t) * RN_JS_COUNT);
	sqlite3_stmt *st = prep(s, "SELECT status, count(*) FROM jobs GROUP BY status");
	if (!st)
		return RN_EIO;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rn_jstate js;
		if (rn_jstate_parse(&js, (const char *)sqlite3_column_text(st, 0)) == 0)
			counts[js] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, "count jobs");
}

void rn_store_job_clear(rn_store_job *j)
{
	free(j->name);
	free(j->job);
	free(j->agent);
	free(j->reason);
	free(j->lease);
	free(j->cancel_reason);
	json_decref(j->runs_on);
	json_decref(j->needs);
	json_decref(j->outputs);
	json_decref(j->steps);
	memset(j, 0, sizeof(*j));
}

void rn_store_jobs_free(rn_store_job *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rn_store_job_clear(&v[i]);
	free(v);
}

/* ---- agents ---- */

#define AGENT_COLS "id, name, token_sha256, labels, capacity, version, created_ms, last_seen_ms"

static void read_agent(sqlite3_stmt *st, void *out)
{
	rn_store_agent *a = out;
	a->id = sqlite3_column_int64(st, 0);
	a->name = col_str(st, 1);
	a->token_sha256 = col_str(st, 2);
	a->labels = col_json(st, 3);
	a->capacity = sqlite3_column_int(st, 4);
	a->version = col_str(st, 5);
	a->created_ms = sqlite3_column_int64(st, 6);
	a->last_seen_ms = sqlite3_column_int64(st, 7);
	if (!json_is_array(a->labels)) {
		json_decref(a->labels);
		a->labels = json_array();
	}
}

int rn_store_agent_add(rn_store *s, rn_store_agent *a)
{
	sqlite3_stmt *st = prep(s, "INSERT INTO agents (name, token_sha256, labels, capacity, version, created_ms,"
				   " last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (!st)
		return RN_EIO;
	json_t *empty = json_array();
	bind_text(st, 1, a->name);
	bind_text(st, 2, a->token_sha256);
	bind_json(st, 3, a->labels ? a->labels : empty);
	sqlite3_bind_int(st, 4, a->capacity);
	bind_text(st, 5, a->version);
	sqlite3_bind_int64(st, 6, a->created_ms);
	bind_opt_int(st, 7, a->last_seen_ms);
	json_decref(empty);
	int rc = run_done(s, st, "insert agent");
	if (rc == 0)
		a->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int rn_store_agent_put(rn_store *s, const rn_store_agent *a)
{
	sqlite3_stmt *st = prep(s, "UPDATE agents SET labels = ?, capacity = ?, version = ?, last_seen_ms = ?"
				   " WHERE id = ?");
	if (!st)
		return RN_EIO;
	json_t *empty = json_array();
	bind_json(st, 1, a->labels ? a->labels : empty);
	sqlite3_bind_int(st, 2, a->capacity);
	bind_text(st, 3, a->version);
	bind_opt_int(st, 4, a->last_seen_ms);
	sqlite3_bind_int64(st, 5, a->id);
	json_decref(empty);
	return run_done(s, st, "update agent");
}

static int agent_one(rn_store *s, sqlite3_stmt *st, rn_store_agent *out)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_agent(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE) {
		rn_error_set("no such agent");
		return RN_ENOTFOUND;
	}
	return db_fail(s, "read agent");
}

int rn_store_agent_by_token(rn_store *s, const char *token_sha256, rn_store_agent *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = prep(s, "SELECT " AGENT_COLS " FROM agents WHERE token_sha256 = ?");
	if (!st)
		return RN_EIO;
	bind_text(st, 1, token_sha256);
	return agent_one(s, st, out);
}

int rn_store_agent_get(rn_store *s, int64_t id, rn_store_agent *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = prep(s, "SELECT " AGENT_COLS " FROM agents WHERE id = ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, id);
	return agent_one(s, st, out);
}

int rn_store_agents_list(rn_store *s, rn_store_agent **v, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT " AGENT_COLS " FROM agents ORDER BY id");
	if (!st)
		return RN_EIO;
	return collect(s, st, (void **)v, n, sizeof(**v), read_agent, "list agents");
}

int rn_store_agents_seen(rn_store *s, int64_t since_ms, int64_t *count)
{
	sqlite3_stmt *st = prep(s, "SELECT count(*) FROM agents WHERE last_seen_ms >= ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, since_ms);
	return count_query(s, st, count, "count agents");
}

void rn_store_agent_clear(rn_store_agent *a)
{
	free(a->name);
	free(a->token_sha256);
	json_decref(a->labels);
	free(a->version);
	memset(a, 0, sizeof(*a));
}

void rn_store_agents_free(rn_store_agent *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rn_store_agent_clear(&v[i]);
	free(v);
}

/* ---- artifacts ---- */

#define ARTIFACT_COLS "pipeline, name, job, format, size, sha256, created_ms"

static void read_artifact(sqlite3_stmt *st, void *out)
{
	rn_store_artifact *a = out;
	a->pipeline = sqlite3_column_int64(st, 0);
	a->name = col_str(st, 1);
	a->job = sqlite3_column_int(st, 2);
	a->format = col_str(st, 3);
	a->size = sqlite3_column_int64(st, 4);
	a->sha256 = col_str(st, 5);
	a->created_ms = sqlite3_column_int64(st, 6);
}

int rn_store_artifact_put(rn_store *s, const rn_store_artifact *a)
{
	sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO artifacts (" ARTIFACT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, a->pipeline);
	bind_text(st, 2, a->name);
	sqlite3_bind_int(st, 3, a->job);
	bind_text(st, 4, a->format);
	sqlite3_bind_int64(st, 5, a->size);
	bind_text(st, 6, a->sha256);
	sqlite3_bind_int64(st, 7, a->created_ms);
	return run_done(s, st, "write artifact");
}

int rn_store_artifact_get(rn_store *s, int64_t pipeline, const char *name, rn_store_artifact *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = prep(s, "SELECT " ARTIFACT_COLS " FROM artifacts WHERE pipeline = ? AND name = ?");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, pipeline);
	bind_text(st, 2, name);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_artifact(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE) {
		rn_error_set("no artifact '%s' in pipeline %lld", name, (long long)pipeline);
		return RN_ENOTFOUND;
	}
	return db_fail(s, "read artifact");
}

int rn_store_artifacts_of(rn_store *s, int64_t pipeline, rn_store_artifact **v, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT " ARTIFACT_COLS " FROM artifacts WHERE pipeline = ?"
				   " ORDER BY created_ms, name");
	if (!st)
		return RN_EIO;
	sqlite3_bind_int64(st, 1, pipeline);
	return collect(s, st, (void **)v, n, sizeof(**v), read_artifact, "list artifacts");
}

void rn_store_artifact_clear(rn_store_artifact *a)
{
	free(a->name);
	free(a->format);
	free(a->sha256);
	memset(a, 0, sizeof(*a));
}

void rn_store_artifacts_free(rn_store_artifact *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rn_store_artifact_clear(&v[i]);
	free(v);
}

int64_t rn_store_memory_used(void)
{
	return (int64_t)sqlite3_memory_used();
}
