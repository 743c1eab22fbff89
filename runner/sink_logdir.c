/* sink_logdir.c - the log directory: one file per step attempt (the path comes from the engine
 * in log_path), holding the raw masked output lines, and summary.json written on close. One
 * FILE is open per running step attempt; nothing of the output is kept in memory. */
#include "event.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

typedef struct {
	rn_sink base;
	char *dir;   /* without trailing slashes */
	char *error; /* the first error met, reported by close() */
	rn_runrec run;
} logdir_sink;

/* Remember the first error (the message of rn_error_last(), set by the caller). */
static void keep_error(logdir_sink *l)
{
	if (!l->error)
		l->error = rn_xstrdup(rn_error_last());
}

/* 1 if path p is inside the directory. */
static int under_dir(const logdir_sink *l, const char *p)
{
	size_t n = strlen(l->dir);
	if (strcmp(l->dir, "/") == 0)
		return p[0] == '/';
	return strncmp(p, l->dir, n) == 0 && p[n] == '/';
}

/* The path to open for the engine's log_path. */
static char *full_path(const logdir_sink *l, const char *p)
{
	if (p[0] == '/' || under_dir(l, p))
		return rn_xstrdup(p);
	return rn_xasprintf("%s/%s", l->dir, p);
}

/* log_path relative to the directory, for summary.json. */
static const char *rel_path(const logdir_sink *l, const char *p)
{
	if (under_dir(l, p)) {
		p += strcmp(l->dir, "/") == 0 ? 0 : strlen(l->dir);
		while (*p == '/') /* also "dir//x" */
			p++;
	}
	return p;
}

static void close_log(logdir_sink *l, rn_steprec *s)
{
	FILE *f = s->file;
	if (!f)
		return;
	s->file = NULL;
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		rn_error_errno("write %s", s->log_path ? s->log_path : "step log");
		keep_error(l);
	}
}

static void open_log(logdir_sink *l, rn_steprec *s, const char *log_path)
{
	close_log(l, s);
	char *path = full_path(l, log_path);
	char *slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = '\0';
		int rc = rn_mkdir_p(path, 0755);
		*slash = '/';
		if (rc < 0) {
			keep_error(l);
			free(path);
			return;
		}
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		rn_error_errno("open %s", path);
		keep_error(l);
		if (fd >= 0)
			close(fd);
	}
	s->file = f;
	s->logged = f != NULL;
	free(path);
}

static void logdir_event(rn_sink *sink, const rn_event *ev)
{
	logdir_sink *l = (logdir_sink *)sink;
	rn_steprec *s = NULL;
	rn_jobrec *j = rn_runrec_update(&l->run, ev, &s);
	switch (ev->type) {
	case RN_EV_STEP_STARTED:
		/* the log file is created by the first line of output: creating files is the
		 * largest cost of a silent step on some file systems */
		if (s) {
			close_log(l, s);
			s->logged = 0;
		}
		break;
	case RN_EV_OUTPUT: {
		if (s && !s->file && s->running && s->log_path)
			open_log(l, s, s->log_path);
		FILE *f = s ? s->file : NULL;
		if (!f)
			break;
		if (ev->len)
			fwrite(ev->data, 1, ev->len, f);
		if (!ev->partial)
			putc('\n', f);
		break;
	}
	case RN_EV_STEP_FINISHED:
		if (s)
			close_log(l, s);
		break;
	case RN_EV_JOB_FINISHED:
		for (size_t i = 0; j && i < j->nsteps; i++)
			if (j->steps[i])
				close_log(l, j->steps[i]);
		break;
	default:
		break;
	}
}

/* ---- summary.json ------------------------------------------------------------------------- */

/* A JSON string of s (null for NULL), with invalid UTF-8 repaired. */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	size_t n = strlen(s);
	if (rn_utf8_valid(s, n))
		return json_stringn(s, n);
	char *v = rn_utf8_sanitize(s, n, 0, &n);
	json_t *j = json_stringn(v, n);
	free(v);
	return j;
}

static json_t *jtime(int64_t ms)
{
	if (!ms)
		return json_null();
	char buf[40];
	rn_time_iso8601(buf, sizeof(buf), ms, 1);
	return json_string(buf);
}

static json_t *summary_json(const logdir_sink *l)
{
	const rn_runrec *r = &l->run;
	json_t *root = json_object();
	json_object_set_new(root, "run_id", jstr(r->run_id));
	json_object_set_new(root, "pipeline", jstr(r->pipeline));
	json_object_set_new(root, "status", json_string(rn_status_name(r->status)));
	json_object_set_new(root, "started_at", jtime(r->started_ms));
	int64_t dur = r->duration_ms;
	if (!r->finished && r->started_ms)
		dur = rn_wall_ms() - r->started_ms;
	json_object_set_new(root, "duration_ms", json_integer(dur));
	json_t *jobs = json_array();
	for (size_t i = 0; i < r->njobs; i++) {
		const rn_jobrec *j = r->jobs[i];
		json_t *jo = json_object();
		json_object_set_new(jo, "name", jstr(j->name));
		json_object_set_new(jo, "id", jstr(j->id));
		json_object_set_new(jo, "status", json_string(rn_status_name(j->status)));
		json_object_set_new(jo, "attempts", json_integer(j->attempts));
		json_object_set_new(jo, "started_at", jtime(j->started_ms));
		json_object_set_new(jo, "duration_ms", json_integer(j->duration_ms));
		json_object_set_new(jo, "reason", jstr(j->reason));
		json_object_set_new(jo, "continue_on_error", json_boolean(j->continue_on_error));
		json_t *steps = json_array();
		for (size_t k = 0; k < j->nsteps; k++) {
			const rn_steprec *s = j->steps[k];
			if (!s || !s->seen)
				continue;
			json_t *so = json_object();
			json_object_set_new(so, "index", json_integer(s->index));
			json_object_set_new(so, "name", jstr(s->name));
			json_object_set_new(so, "id", jstr(s->id));
			json_object_set_new(so, "status", json_string(rn_status_name(s->status)));
			json_object_set_new(so, "exit_code",
					    s->exit_code >= 0 ? json_integer(s->exit_code) : json_null());
			json_object_set_new(so, "attempts", json_integer(s->attempts));
			json_object_set_new(so, "started_at", jtime(s->started_ms));
			json_object_set_new(so, "duration_ms", json_integer(s->duration_ms));
			json_object_set_new(so, "cpu_user_s", json_real(s->cpu_user_s));
			json_object_set_new(so, "cpu_sys_s", json_real(s->cpu_sys_s));
			json_object_set_new(so, "max_rss_kb", json_integer(s->max_rss_kb));
			/* a step that printed nothing has no log file */
			json_object_set_new(so, "log", s->logged && s->log_path ? jstr(rel_path(l, s->log_path)) : json_null());
			json_object_set_new(so, "reason", jstr(s->reason));
			json_object_set_new(so, "continue_on_error", json_boolean(s->continue_on_error));
			json_array_append_new(steps, so);
		}
		json_object_set_new(jo, "steps", steps);
		json_array_append_new(jobs, jo);
	}
	json_object_set_new(root, "jobs", jobs);
	return root;
}

/* Write path whole: a temporary file in the same directory, then rename. A file already at path
 * (an earlier run's, in a --log-dir used again) is removed first: a rename that replaces a file
 * makes ext4 (auto_da_alloc) write the new one out at once, which cost a reused log directory
 * 1.5-3 ms per run and stalled some runs for 0.1-2 s on a busy disk. Whoever reads it then finds
 * no summary.json for a moment, never a partial one. */
static int write_atomic(const char *path, const char *data, size_t len)
{
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
	if (rc == 0 && rn_write_all(fd, data, len) < 0)
		rc = rn_error_errno("write %s", tmp);
	if (close(fd) < 0 && rc == 0)
		rc = rn_error_errno("close %s", tmp);
	if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
		rc = rn_error_errno("replace %s", path);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = rn_error_errno("rename %s to %s", tmp, path);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int logdir_close(rn_sink *sink)
{
	logdir_sink *l = (logdir_sink *)sink;
	/* log files of steps that never finished (an interrupted run) */
	for (size_t i = 0; i < l->run.njobs; i++) {
		rn_jobrec *j = l->run.jobs[i];
		for (size_t k = 0; k < j->nsteps; k++)
			if (j->steps[k])
				close_log(l, j->steps[k]);
	}
	if (rn_mkdir_p(l->dir, 0755) < 0) {
		keep_error(l);
	} else {
		json_t *root = summary_json(l);
		char *text = json_dumps(root, JSON_INDENT(2));
		json_decref(root);
		if (!text) {
			rn_error_set("cannot encode summary.json");
			keep_error(l);
		} else {
			size_t n = strlen(text);
			char *withnl = rn_xmalloc(n + 2);
			memcpy(withnl, text, n);
			withnl[n] = '\n';
			withnl[n + 1] = '\0';
			free(text);
			char *path = rn_xasprintf("%s/summary.json", l->dir);
			if (write_atomic(path, withnl, n + 1) < 0)
				keep_error(l);
			free(path);
			free(withnl);
		}
	}
	int rc = 0;
	if (l->error) {
		rn_error_set("log directory %s: %s", l->dir, l->error);
		rc = RN_EIO;
	}
	rn_runrec_free(&l->run);
	free(l->error);
	free(l->dir);
	free(l);
	return rc;
}

rn_sink *rn_logdir_sink_new(const char *dir, const struct rn_masker *m)
{
	logdir_sink *l = rn_xcalloc(1, sizeof(*l));
	l->base.event = logdir_event;
	l->base.close = logdir_close;
	l->dir = rn_xstrdup(dir && *dir ? dir : ".");
	size_t n = strlen(l->dir);
	while (n > 1 && l->dir[n - 1] == '/')
		l->dir[--n] = '\0';
	rn_runrec_init(&l->run, m);
	if (rn_mkdir_p(l->dir, 0755) < 0)
		keep_error(l);
	return &l->base;
}
