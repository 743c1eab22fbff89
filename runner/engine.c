/* engine.c - the scheduler and its event loop (see engine.h). */
#include "engine.h"
#include "context.h"
#include "error.h"
#include "expr.h"
#include "kvfile.h"
#include "lines.h"
#include "proc.h"
#include "sandbox.h"
#include "step.h"
#include "units.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define COMMAND_FILE_MAX (1024 * 1024) /* RUNNER_OUTPUT / RUNNER_ENV / RUNNER_PATH */
#define EOF_WAIT_MS 5000               /* how long output may trail the end of a tree */

typedef enum { J_WAITING, J_READY, J_RUNNING, J_DONE } jstate;
typedef enum { P_RUNNING, P_TERM_SENT, P_KILL_SENT } phase;

typedef struct engine engine;

/* The step attempt running in a job. */
typedef struct steprun {
	engine *e;
	struct jobrun *j;
	rn_proc proc;
	int out_fd;             /* read end of the output pipe, -1 after EOF */
	int reported;           /* the completion report was collected */
	rn_proc_result res;
	int finish_rc;
	rn_maskstream *mask;
	rn_lines lines;
	phase phase;
	int64_t deadline;       /* next deadline (timeout, then grace), 0 = none */
	int64_t grace_ms;
	int64_t start_mono, start_wall, report_mono;
	int timed_out;          /* the step's own timeout fired */
	char *name;             /* display name (expanded, masked) */
	char *log_path;
	char *out_file, *env_file, *path_file;
	rn_sandbox_plan *sandbox; /* this attempt's sandbox, or NULL */
	int oom;                  /* the memory limit killed a process of the step */
} steprun;

typedef struct jobrun {
	size_t node;
	rn_gnode *g;
	const rn_job *job;
	jstate state;
	rn_status status;       /* the conclusion, once done */
	int attempt, max_attempts;
	size_t step;            /* current step */
	int step_attempt;
	int failed;             /* a step failed (without continue-on-error) */
	int cancel;             /* stop: run cancelled, job timed out or fail-fast */
	rn_status cancel_status;
	const char *cancel_reason;
	json_t *ctx;            /* expression contexts of this attempt */
	json_t *dyn_env;        /* from RUNNER_ENV */
	json_t *path_add;       /* from RUNNER_PATH, newest first */
	char *temp_dir;
	steprun *cur;
	int64_t wake_at;        /* a step retry waits until then (mono), 0 = none */
	int64_t job_deadline;   /* mono, 0 = none */
	int64_t start_mono, start_wall, first_start_wall;
	char *reason;           /* for the finished event */
} jobrun;

struct engine {
	const rn_engine_opts *o;
	rn_graph *g;
	jobrun *jobs;           /* one per graph node */
	size_t nselected, ndone;
	size_t *runnable;       /* READY jobs waiting for a slot, FIFO */
	size_t nrunnable, runnable_head;
	size_t *woken;          /* jobs whose last need just finished, to decide (a work list, so
	                         * long chains of skipped jobs never recurse) */
	size_t nwoken;
	size_t running;
	int stopping;           /* a job failed and keep_going is off */
	int cancelled;          /* the run is being cancelled */
	int cancel_sig;
	int hard;               /* second SIGINT: kill at once */
	int failed;             /* some job failed (counts for the run's status) */
	json_t *needs;          /* job id -> {result, outputs} */
	json_t *extra_env;      /* --env as an object */
	const char *default_shell;
	char *buf;              /* read buffer */
	json_t *notices;        /* sandbox notices already shown (each once per run) */
	char **tmp_pool;        /* emptied RUNNER_TEMP directories of finished jobs, for reuse */
	size_t ntmp_pool, tmp_pool_cap;
};

static void emit(engine *e, rn_event *ev)
{
	ev->run_id = e->o->run_id;
	ev->pipeline = e->o->pipeline->name;
	for (size_t i = 0; i < e->o->nsinks; i++)
		e->o->sinks[i]->event(e->o->sinks[i], ev);
}

static void flush_sinks(engine *e)
{
	for (size_t i = 0; i < e->o->nsinks; i++)
		if (e->o->sinks[i]->flush)
			e->o->sinks[i]->flush(e->o->sinks[i]);
}

static void message(engine *e, const jobrun *j, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void message(engine *e, const jobrun *j, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	rn_event ev = { .type = RN_EV_MESSAGE, .step_index = -1, .data = text, .len = strlen(text) };
	if (j) {
		ev.job = j->g->name;
		ev.job_id = j->job->id;
	}
	emit(e, &ev);
}

static char *slug(const char *s)
{
	char *out = rn_xstrdup(s);
	for (char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '-' || *p == '_'))
			*p = '_';
	if (strlen(out) > 80)
		out[80] = '\0';
	return out;
}

static const char *find_shell(void)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	const char *p = path;
	while (*p) {
		size_t n = strcspn(p, ":");
		char file[PATH_MAX];
		if (n && n < sizeof(file) - 6) {
			snprintf(file, sizeof(file), "%.*s/bash", (int)n, p);
			if (access(file, X_OK) == 0)
				return "bash";
		}
		p += n;
		if (*p)
			p++;
	}
	return "sh";
}

/* ---- expression environments ---- */

static void expr_env(rn_expr_env *ee, engine *e, jobrun *j)
{
	ee->ctx = j->ctx;
	ee->failed = j->failed;
	ee->cancelled = j->cancel || e->cancelled;
	ee->workspace = e->o->workspace;
}

static json_t *needs_of(engine *e, const rn_job *job)
{
	json_t *n = json_object();
	for (size_t k = 0; k < job->needs.n; k++) {
		json_t *v = json_object_get(e->needs, job->needs.v[k]);
		if (v)
			json_object_set(n, job->needs.v[k], v);
	}
	return n;
}

/* ---- output path: pipe -> mask -> lines -> events ---- */

static void on_line(const char *line, size_t len, int partial, void *payload)
{
	steprun *s = payload;
	rn_event ev = {
		.type = RN_EV_OUTPUT,
		.job = s->j->g->name,
		.job_id = s->j->job->id,
		.step = s->name,
		.step_id = s->j->job->steps[s->j->step].id,
		.step_index = (int)s->j->step,
		.nsteps = (int)s->j->job->nsteps,
		.attempt = s->j->step_attempt,
		.max_attempts = s->j->job->steps[s->j->step].max_attempts,
		.data = line,
		.len = len,
		.partial = partial,
		.log_path = s->log_path,
	};
	emit(s->e, &ev);
}

static void on_masked(const char *data, size_t len, void *payload)
{
	steprun *s = payload;
	rn_lines_write(&s->lines, data, len);
}

static void close_output(steprun *s)
{
	if (s->out_fd < 0)
		return;
	close(s->out_fd);
	s->out_fd = -1;
	rn_maskstream_flush(s->mask);
	rn_lines_flush(&s->lines);
}

static void read_output(engine *e, steprun *s)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		ssize_t n = read(s->out_fd, e->buf, 65536);
		if (n > 0) {
			rn_maskstream_write(s->mask, e->buf, (size_t)n);
			if (n < 65536)
				return;
			continue;
		}
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_output(s);
		return;
	}
}

/* ---- steps ---- */

static void steprun_free(steprun *s)
{
	if (!s)
		return;
	if (s->out_fd >= 0)
		close(s->out_fd);
	rn_maskstream_free(s->mask);
	rn_lines_free(&s->lines);
	free(s->name);
	free(s->log_path);
	free(s->out_file);
	free(s->env_file);
	free(s->path_file);
	rn_sandbox_plan_free(s->sandbox);
	free(s);
}

static char *masked(engine *e, const char *s)
{
	return e->o->masker ? rn_mask_str(e->o->masker, s) : rn_xstrdup(s);
}

static char *log_path_for(engine *e, jobrun *j, const char *step_name)
{
	if (!e->o->log_dir)
		return NULL;
	/* names may hold secrets (a matrix value, an expanded step name): file names are masked */
	char *mj = masked(e, j->g->name);
	char *js = slug(mj), *ss = slug(step_name);
	free(mj);
	char *dir = j->attempt > 1 ? rn_xasprintf("%s/%s/attempt-%d", e->o->log_dir, js, j->attempt)
				   : rn_xasprintf("%s/%s", e->o->log_dir, js);
	char *p = j->step_attempt > 1 ? rn_xasprintf("%s/%02zu-%s.attempt-%d.log", dir, j->step + 1, ss, j->step_attempt)
				      : rn_xasprintf("%s/%02zu-%s.log", dir, j->step + 1, ss);
	free(js);
	free(ss);
	free(dir);
	return p;
}

static void step_event(engine *e, jobrun *j, steprun *s, rn_event *ev)
{
	const rn_step *st = &j->job->steps[j->step];
	ev->job = j->g->name;
	ev->job_id = j->job->id;
	ev->step = s ? s->name : st->name;
	ev->step_id = st->id;
	ev->step_index = (int)j->step;
	ev->nsteps = (int)j->job->nsteps;
	ev->attempt = j->step_attempt;
	ev->max_attempts = st->max_attempts;
	ev->log_path = s ? s->log_path : NULL;
}

/* Prepare and start the current step of j. Returns 0 (running) or <0 (failed to start; the
 * reason is in rn_error_last()). */
static int step_start(engine *e, jobrun *j)
{
	const rn_step *st = &j->job->steps[j->step];
	const rn_step_kind *kind = rn_step_kind_find(st->kind);
	rn_expr_env ee;
	char **argv = NULL, **envp = NULL;
	char *script = NULL, *workdir = NULL, *dir = NULL, *name = NULL, *visible = NULL;
	json_t *with = NULL, *rawwith = NULL;
	int pipefd[2] = { -1, -1 };
	int rc = 0;

	steprun *s = rn_xcalloc(1, sizeof(*s));
	s->e = e;
	s->j = j;
	s->out_fd = -1;
	expr_env(&ee, e, j);
	if (!kind) {
		rc = rn_error_set("unknown step kind '%s'", st->kind);
		goto done;
	}
	/* contexts: env first (expressions in everything else may read env) */
	rc = rn_context_set_env(j->ctx, &e->o->pipeline->env, &j->job->env, j->dyn_env, &st->env, &ee);
	if (rc < 0)
		goto done;
	json_object_update(json_object_get(j->ctx, "env"), e->extra_env);
	if (rn_context_expand(&name, st->name, &ee) < 0)
		name = rn_xstrdup(st->name); /* a display name never stops a step */
	s->name = masked(e, name);
	if ((rc = rn_context_expand(&script, st->run, &ee)) < 0)
		goto done;
	if ((rc = rn_context_expand(&workdir, st->workdir, &ee)) < 0)
		goto done;
	rawwith = st->run ? json_null() : rn_node_to_json(st->with);
	if ((rc = rn_context_expand_json(&with, rawwith, &ee)) < 0)
		goto done;
	dir = !workdir || !*workdir ? rn_xstrdup(e->o->workspace)
	      : workdir[0] == '/'   ? rn_xstrdup(workdir)
				    : rn_xasprintf("%s/%s", e->o->workspace, workdir);
	struct stat dst;
	if (stat(dir, &dst) < 0 || !S_ISDIR(dst.st_mode)) {
		rc = rn_error_set("working directory '%s' does not exist", workdir ? workdir : dir);
		goto done;
	}

	/* The command files are not created here (a step creates them by appending), so their
	 * names are unique per step attempt in the job's fresh RUNNER_TEMP. */
	s->out_file = rn_xasprintf("%s/output-%zu.%d", j->temp_dir, j->step + 1, j->step_attempt);
	s->env_file = rn_xasprintf("%s/env-%zu.%d", j->temp_dir, j->step + 1, j->step_attempt);
	s->path_file = rn_xasprintf("%s/path-%zu.%d", j->temp_dir, j->step + 1, j->step_attempt);

	rn_step_ctx sc = {
		.workspace = e->o->workspace,
		.temp_dir = j->temp_dir,
		.self_exe = e->o->self_exe,
		.shell = st->shell ? st->shell : e->default_shell,
		.script = script,
		.with = with,
		.index = (int)j->step,
		.visible = &visible,
	};
	if ((rc = kind->command(&argv, &sc)) < 0)
		goto done;

	/* the environment: inherited < merged workflow env < RUNNER_* */
	char attempt[16];
	snprintf(attempt, sizeof(attempt), "%d", j->step_attempt);
	char *stepname = st->id ? rn_xstrdup(st->id) : rn_xasprintf("%zu", j->step + 1);
	json_t *env = json_deep_copy(json_object_get(j->ctx, "env"));
	json_t *fixed = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "CI", "true",
				  "RUNNER_WORKSPACE", e->o->workspace, "RUNNER_TEMP", j->temp_dir, "RUNNER_JOB",
				  j->job->id, "RUNNER_JOB_NAME", j->g->name, "RUNNER_STEP", stepname, "RUNNER_RUN_ID",
				  e->o->run_id, "RUNNER_OUTPUT", s->out_file, "RUNNER_ENV", s->env_file, "RUNNER_PATH",
				  s->path_file, "RUNNER_ARTIFACTS", e->o->artifacts_dir ? e->o->artifacts_dir : "",
				  "RUNNER_ATTEMPT", attempt);
	free(stepname);
	if (e->o->git) {
		const char *sha = json_string_value(json_object_get(e->o->git, "sha"));
		const char *ref = json_string_value(json_object_get(e->o->git, "ref"));
		if (sha)
			json_object_set_new(fixed, "RUNNER_COMMIT", json_string(sha));
		if (ref)
			json_object_set_new(fixed, "RUNNER_REF", json_string(ref));
	}
	json_object_update(env, fixed);
	json_decref(fixed);
	envp = rn_context_environ(environ, env, NULL, 0, j->path_add);
	json_decref(env);

	if (e->o->sandbox_caps) {
		/* the step's sandbox: on unless `sandbox: false`; keys that cannot be enforced fail the
		 * step naming the key, features that degrade are said once per run */
		rn_sandbox settings = st->sandbox;
		if (settings.enabled < 0)
			settings.enabled = 1;
		rn_sandbox_paths paths = { .workspace = e->o->workspace, .temp = j->temp_dir, .self_exe = e->o->self_exe,
					   .visible = visible, .cwd = NULL, .hostname = NULL };
		if (rn_sandbox_plan_new(&s->sandbox, &settings, e->o->sandbox_caps, &paths) < 0) {
			if (settings.pos.line)
				rc = rn_error_set("%s:%d:%d: %s", e->o->pipeline->file, settings.pos.line, settings.pos.col,
						  rn_error_last());
			else
				rc = RN_EINVALID;
			goto done;
		}
		for (size_t k = 0; s->sandbox && k < rn_sandbox_plan_notice_count(s->sandbox); k++) {
			const char *note = rn_sandbox_plan_notice(s->sandbox, k);
			if (json_object_get(e->notices, note))
				continue;
			json_object_set_new(e->notices, note, json_true());
			message(e, NULL, "sandbox: %s", note);
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = rn_error_errno("pipe");
		goto done;
	}
	s->log_path = log_path_for(e, j, s->name);
	s->start_mono = rn_now_ms();
	s->start_wall = rn_wall_ms();
	rn_event ev = { .type = RN_EV_STEP_STARTED, .started_ms = s->start_wall };
	step_event(e, j, s, &ev);
	emit(e, &ev);

	rn_proc_opts po = {
		.argv = (const char *const *)argv,
		.envp = (const char *const *)envp,
		.dir = dir,
		.out_fd = pipefd[1],
		.in_fd = -1,
		.sandbox = s->sandbox,
		.async_start = 1, /* the loop goes on while the command is exec'd (collect) */
	};
	rc = rn_proc_start(&s->proc, &po);
	close(pipefd[1]);
	pipefd[1] = -1;
	if (rc < 0) {
		close(pipefd[0]);
		goto done;
	}
	s->out_fd = pipefd[0];
	fcntl(s->out_fd, F_SETFL, O_RDONLY | O_NONBLOCK); /* a pipe2(O_CLOEXEC) read end: no other flag */
	s->mask = rn_maskstream_new(e->o->masker, on_masked, s);
	rn_lines_init(&s->lines, 0, on_line, s);
	s->grace_ms = st->grace_ms;
	if (st->timeout_ms > 0)
		s->deadline = s->start_mono + st->timeout_ms;
	j->cur = s;
	s = NULL;
done:
	free(visible);
	if (rc < 0 && s) {
		/* the step could not start: report it as a failed attempt */
		const char *why = rn_error_last();
		char *mw = masked(e, why);
		if (!s->name)
			s->name = masked(e, st->name);
		j->cur = s;
		if (!s->log_path) {
			s->log_path = log_path_for(e, j, s->name);
			s->start_wall = rn_wall_ms();
			rn_event sev = { .type = RN_EV_STEP_STARTED, .started_ms = s->start_wall };
			step_event(e, j, s, &sev);
			emit(e, &sev);
		}
		char *line = rn_xasprintf("runner: cannot start the step: %s", mw);
		on_line(line, strlen(line), 0, s);
		free(line);
		free(mw);
		j->cur = NULL;
		steprun_free(s);
		rn_error_set("%s", why);
	}
	rn_strv_free(argv);
	rn_strv_free(envp);
	free(script);
	free(workdir);
	free(dir);
	free(name);
	json_decref(with);
	json_decref(rawwith);
	return rc;
}

typedef struct kvctx {
	json_t *obj;
	int path;
} kvctx;

static int kv_set(const char *key, const char *value, size_t vlen, void *payload)
{
	kvctx *k = payload;
	/* not valid UTF-8: kept as text with the bad bytes replaced, so expressions can use it */
	json_t *v = json_stringn(value, vlen);
	if (!v) {
		char *fixed = rn_utf8_sanitize(value, vlen, 0, &vlen);
		v = json_stringn(fixed, vlen);
		free(fixed);
	}
	json_object_set_new(k->obj, key, v ? v : json_string(""));
	return 0;
}

/* Read a RUNNER_OUTPUT/RUNNER_ENV file into obj; problems become messages. */
static void read_command_file(engine *e, jobrun *j, const char *path, json_t *obj, const char *what)
{
	char *data = NULL;
	size_t len = 0;
	int rc = rn_read_file(&data, &len, path, COMMAND_FILE_MAX);
	if (rc == RN_ENOTFOUND)
		return; /* the step did not write it */
	if (rc < 0) {
		message(e, j, "%s: %s", what, rn_error_last());
		return;
	}
	kvctx k = { obj, 0 };
	if (len && rn_kvfile_parse(data, len, RN_KV_COMMANDS, kv_set, &k) < 0)
		message(e, j, "%s: %s", what, rn_error_last());
	free(data);
}

static void read_path_file(engine *e, jobrun *j, const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int rc = rn_read_file(&data, &len, path, COMMAND_FILE_MAX);
	if (rc == RN_ENOTFOUND)
		return;
	if (rc < 0) {
		message(e, j, "RUNNER_PATH: %s", rn_error_last());
		return;
	}
	char *save = NULL;
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n)
			json_array_insert_new(j->path_add, 0, json_string(line));
	}
	free(data);
}

static void job_advance(engine *e, jobrun *j);
static void job_end_attempt(engine *e, jobrun *j);

static void record_step(jobrun *j, const rn_step *st, json_t *outputs, rn_status outcome, rn_status conclusion)
{
	if (!st->id) {
		json_decref(outputs);
		return;
	}
	json_t *steps = json_object_get(j->ctx, "steps");
	json_object_set_new(steps, st->id,
			    json_pack("{s:o, s:s, s:s}", "outputs", outputs ? outputs : json_object(), "outcome",
				      rn_status_name(outcome), "conclusion", rn_status_name(conclusion)));
}

static char *exit_reason(const steprun *s)
{
	const rn_proc_result *r = &s->res;
	if (s->oom)
		return rn_xasprintf("out of memory (the sandbox's memory limit; %s)",
				    r->signal ? strsignal(r->signal) : "exited");
	if (r->exec_errno && r->fail_stage == RN_PROC_FAIL_SANDBOX) {
		char why[512];
		rn_sandbox_describe(s->sandbox, r->sandbox_stage, r->exec_errno, why, sizeof(why));
		return rn_xstrdup(why);
	}
	if (r->exec_errno && r->fail_stage == RN_PROC_FAIL_CHDIR)
		return rn_xasprintf("could not enter the working directory: %s", strerror(r->exec_errno));
	if (r->exec_errno)
		return rn_xasprintf("could not start: %s", strerror(r->exec_errno));
	if (r->signal)
		return rn_xasprintf("killed by signal %d (%s)", r->signal, strsignal(r->signal));
	return rn_xasprintf("exit code %d", r->status);
}

/* The current step's tree is gone and its output drained: conclude the attempt. */
static void step_finished(engine *e, jobrun *j)
{
	steprun *s = j->cur;
	const rn_step *st = &j->job->steps[j->step];
	rn_status status;
	char *reason = NULL;
	char dur[32];

	if (s->timed_out) {
		rn_duration_format(dur, sizeof(dur), st->timeout_ms);
		status = RN_ST_TIMED_OUT;
		reason = rn_xasprintf("timed out after %s", dur);
	} else if (j->cancel && s->phase != P_RUNNING) {
		status = j->cancel_status;
		reason = rn_xstrdup(j->cancel_reason);
	} else if (s->finish_rc < 0) {
		status = RN_ST_FAILURE;
		reason = rn_xasprintf("the step's supervisor died (%s)", rn_error_last());
	} else if (s->res.status == 0 && !s->res.exec_errno && !s->oom) {
		status = RN_ST_SUCCESS;
	} else {
		status = RN_ST_FAILURE;
		reason = exit_reason(s);
	}
	json_t *outputs = json_object();
	read_command_file(e, j, s->out_file, outputs, "RUNNER_OUTPUT");
	read_command_file(e, j, s->env_file, j->dyn_env, "RUNNER_ENV");
	read_path_file(e, j, s->path_file);

	int retry = rn_status_failed(status) && status != RN_ST_TIMED_OUT && !j->cancel &&
		    j->step_attempt < st->max_attempts;
	if (status == RN_ST_TIMED_OUT && !j->cancel && j->step_attempt < st->max_attempts)
		retry = 1;
	int coe = rn_status_failed(status) && !retry && st->continue_on_error;
	rn_event ev = {
		.type = RN_EV_STEP_FINISHED,
		.status = status,
		.continue_on_error = coe,
		.exit_code = s->res.exec_errno ? 127 : s->res.status,
		.reason = reason,
		.started_ms = s->start_wall,
		.duration_ms = rn_now_ms() - s->start_mono,
		.cpu_user_s = s->res.user_s,
		.cpu_sys_s = s->res.sys_s,
		.max_rss_kb = s->res.maxrss_kb,
	};
	step_event(e, j, s, &ev);
	emit(e, &ev);
	j->cur = NULL;
	steprun_free(s);
	free(reason);

	if (retry) {
		int64_t delay = st->retry_delay_ms;
		for (int k = 1; k < j->step_attempt; k++)
			delay = (int64_t)((double)delay * st->retry_backoff);
		j->step_attempt++;
		j->wake_at = rn_now_ms() + (delay > 0 ? delay : 0);
		if (j->wake_at == 0)
			j->wake_at = 1;
		json_decref(outputs);
		return;
	}
	rn_status conclusion = coe ? RN_ST_SUCCESS : status;
	record_step(j, st, outputs, status, conclusion);
	if (rn_status_failed(conclusion) || conclusion == RN_ST_CANCELLED)
		j->failed = 1;
	j->step++;
	j->step_attempt = 1;
	job_advance(e, j);
}

/* ---- jobs ---- */

static void finish_skipped_step(engine *e, jobrun *j, rn_status st_status, const char *reason)
{
	const rn_step *st = &j->job->steps[j->step];
	rn_event ev = { .type = RN_EV_STEP_FINISHED, .status = st_status, .exit_code = -1, .reason = reason };
	step_event(e, j, NULL, &ev);
	emit(e, &ev);
	record_step(j, st, NULL, st_status, st_status);
}

/* Start or skip steps until one runs or the job's steps are done. */
static void job_advance(engine *e, jobrun *j)
{
	while (j->step < j->job->nsteps) {
		const rn_step *st = &j->job->steps[j->step];
		/* once cancelled, only steps that ask for it (always(), cancelled()) still run; a
		 * second interrupt runs nothing more */
		if (e->hard || ((j->cancel || e->cancelled) && !(st->if_cond && rn_expr_condition_has_status(st->if_cond)))) {
			finish_skipped_step(e, j, RN_ST_SKIPPED, j->cancel_reason ? j->cancel_reason : "cancelled");
			j->step++;
			continue;
		}
		rn_expr_env ee;
		expr_env(&ee, e, j);
		int run = 0;
		json_object_set_new(json_object_get(j->ctx, "job"), "status",
				    json_string(j->failed ? "failure" : "success"));
		if (rn_expr_condition(&run, st->if_cond, &ee) < 0) {
			message(e, j, "step %zu: bad condition: %s", j->step + 1, rn_error_last());
			run = 0;
			j->failed = 1;
		}
		if (!run) {
			finish_skipped_step(e, j, RN_ST_SKIPPED, NULL);
			j->step++;
			continue;
		}
		if (step_start(e, j) == 0)
			return;
		/* could not start: a failed attempt (retried like any failure) */
		rn_event ev = { .type = RN_EV_STEP_FINISHED, .status = RN_ST_FAILURE, .exit_code = -1,
				.reason = rn_error_last(), .started_ms = rn_wall_ms() };
		step_event(e, j, NULL, &ev);
		emit(e, &ev);
		if (j->step_attempt < st->max_attempts) {
			j->step_attempt++;
			continue;
		}
		record_step(j, st, NULL, RN_ST_FAILURE, st->continue_on_error ? RN_ST_SUCCESS : RN_ST_FAILURE);
		if (!st->continue_on_error)
			j->failed = 1;
		j->step++;
		j->step_attempt = 1;
	}
	job_end_attempt(e, j);
}

static void ready_users(engine *e, jobrun *j);
static void job_ready(engine *e, jobrun *j);

/* Remove everything in dir but the shared script file (rewritten before every step). Read with
 * getdents64 into a buffer on the stack: opendir's 32 KiB allocation per job cost more than the
 * listing of a directory that usually holds that one file. */
static int empty_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rn_error_errno("%s", dir);
	int rc = 0;
	char buf[4096] __attribute__((aligned(8)));
	ssize_t got;
	while ((got = getdents64(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < got;) {
			const struct dirent64 *de = (const struct dirent64 *)(buf + off);
			off += de->d_reclen;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "step.sh"))
				continue;
			if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN && unlinkat(fd, de->d_name, 0) == 0)
				continue;
			char *p = rn_xasprintf("%s/%s", dir, de->d_name);
			if (rn_rm_rf(p) < 0)
				rc = RN_EIO;
			free(p);
		}
	}
	if (got < 0)
		rc = rn_error_errno("%s", dir);
	close(fd);
	return rc;
}

/* A RUNNER_TEMP for a job attempt: an emptied one from the pool, else a new one. Reusing
 * directories spares an inode allocation and release per job, which is most of a short job's
 * cost on ext4 with many recently deleted inodes. Caller owns the path. */
static char *temp_get(engine *e)
{
	if (e->ntmp_pool)
		return e->tmp_pool[--e->ntmp_pool];
	char tmpl[PATH_MAX];
	const char *tmp = e->o->temp_dir ? e->o->temp_dir : getenv("TMPDIR");
	snprintf(tmpl, sizeof(tmpl), "%s/runner-job-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpl)) {
		rn_error_errno("cannot create RUNNER_TEMP in %s", tmp && *tmp ? tmp : "/tmp");
		return NULL;
	}
	return rn_xstrdup(tmpl);
}

/* A job is done with its RUNNER_TEMP: empty it and keep it for the next job. */
static void temp_put(engine *e, char *dir)
{
	if (empty_dir(dir) < 0 || e->ntmp_pool >= 64) {
		rn_rm_rf(dir);
		free(dir);
		return;
	}
	rn_grow(&e->tmp_pool, &e->tmp_pool_cap, e->ntmp_pool + 1, sizeof(*e->tmp_pool));
	e->tmp_pool[e->ntmp_pool++] = dir;
}

static int start_attempt(engine *e, jobrun *j)
{
	char *dir = temp_get(e);
	if (!dir)
		return RN_EIO;
	free(j->temp_dir);
	j->temp_dir = dir;
	json_decref(j->ctx);
	json_t *needs = needs_of(e, j->job);
	j->ctx = rn_context_job(e->o->pipeline, j->g, e->o->secrets, e->o->git, needs, e->o->run_id, e->o->workspace);
	json_decref(needs);
	json_object_set_new(json_object_get(j->ctx, "runner"), "temp", json_string(j->temp_dir));
	json_decref(j->dyn_env);
	json_decref(j->path_add);
	j->dyn_env = json_object();
	j->path_add = json_array();
	j->step = 0;
	j->step_attempt = 1;
	j->failed = 0;
	j->start_mono = rn_now_ms();
	j->start_wall = rn_wall_ms();
	if (!j->first_start_wall)
		j->first_start_wall = j->start_wall;
	j->job_deadline = j->job->timeout_ms > 0 ? j->start_mono + j->job->timeout_ms : 0;
	rn_event ev = { .type = RN_EV_JOB_STARTED, .job = j->g->name, .job_id = j->job->id, .step_index = -1,
			.nsteps = (int)j->job->nsteps, .attempt = j->attempt, .max_attempts = j->max_attempts,
			.started_ms = j->start_wall };
	emit(e, &ev);
	return 0;
}

static void cleanup_temp(engine *e, jobrun *j)
{
	if (j->temp_dir) {
		temp_put(e, j->temp_dir);
		j->temp_dir = NULL;
	}
}

static void cancel_job(engine *e, jobrun *j, rn_status st, const char *reason);

/* The job instance is over: publish its result and outputs, free its slot, wake its users. */
static void job_finish(engine *e, jobrun *j, rn_status status, const char *reason)
{
	int was_running = j->state == J_RUNNING;
	j->state = J_DONE;
	j->status = status;
	e->ndone++;
	if (was_running)
		e->running--;
	int counts = rn_status_failed(status) && !j->job->continue_on_error;
	/* outputs, from the last attempt's step contexts */
	json_t *outputs = json_object();
	if (j->ctx) {
		rn_expr_env ee;
		expr_env(&ee, e, j);
		for (size_t k = 0; k < j->job->outputs.n; k++) {
			char *v = NULL;
			if (rn_context_expand(&v, j->job->outputs.v[k].value, &ee) < 0) {
				message(e, j, "output '%s': %s", j->job->outputs.v[k].key, rn_error_last());
				continue;
			}
			json_object_set_new(outputs, j->job->outputs.v[k].key, json_string(v ? v : ""));
			free(v);
		}
	}
	rn_status result = counts || !rn_status_failed(status) ? status : RN_ST_SUCCESS;
	rn_context_needs_record(e->needs, j->job->id, result, outputs);
	json_decref(outputs);
	rn_event ev = { .type = RN_EV_JOB_FINISHED, .job = j->g->name, .job_id = j->job->id, .step_index = -1,
			.nsteps = (int)j->job->nsteps, .attempt = j->attempt, .max_attempts = j->max_attempts,
			.status = status, .continue_on_error = rn_status_failed(status) && !counts, .reason = reason,
			.started_ms = j->first_start_wall,
			.duration_ms = j->start_mono ? rn_now_ms() - j->start_mono : 0 };
	emit(e, &ev);
	cleanup_temp(e, j);
	if (counts) {
		e->failed = 1;
		if (!e->o->keep_going)
			e->stopping = 1;
		/* fail-fast: cancel the other instances of the matrix */
		if (j->job->fail_fast && j->g->ninstances > 1) {
			for (size_t i = j->g->group; i < j->g->group + j->g->ninstances; i++)
				if (&e->jobs[i] != j && e->g->nodes[i].selected && e->jobs[i].state != J_DONE)
					cancel_job(e, &e->jobs[i], RN_ST_CANCELLED, "cancelled by fail-fast");
		}
	}
	ready_users(e, j);
}

static void job_end_attempt(engine *e, jobrun *j)
{
	rn_status status = j->cancel ? j->cancel_status : j->failed ? RN_ST_FAILURE : RN_ST_SUCCESS;
	if (status == RN_ST_FAILURE && j->attempt < j->max_attempts && !e->cancelled) {
		cleanup_temp(e, j);
		rn_event ev = { .type = RN_EV_JOB_FINISHED, .job = j->g->name, .job_id = j->job->id, .step_index = -1,
				.nsteps = (int)j->job->nsteps, .attempt = j->attempt, .max_attempts = j->max_attempts,
				.status = status, .reason = "retrying", .started_ms = j->start_wall,
				.duration_ms = rn_now_ms() - j->start_mono };
		emit(e, &ev);
		j->attempt++;
		message(e, j, "retrying the job: attempt %d/%d", j->attempt, j->max_attempts);
		if (start_attempt(e, j) < 0) {
			job_finish(e, j, RN_ST_FAILURE, rn_error_last());
			return;
		}
		job_advance(e, j);
		return;
	}
	job_finish(e, j, status, j->cancel ? j->cancel_reason : NULL);
}

/* Ask a job to stop: a running step gets SIGTERM (then SIGKILL after its grace period). */
static void cancel_job(engine *e, jobrun *j, rn_status st, const char *reason)
{
	if (j->state == J_DONE || j->cancel)
		return;
	j->cancel = 1;
	j->cancel_status = st;
	j->cancel_reason = reason;
	if (j->state != J_RUNNING)
		return; /* decided when it becomes ready */
	if (j->cur && j->cur->phase == P_RUNNING) {
		rn_proc_term(&j->cur->proc);
		j->cur->phase = P_TERM_SENT;
		j->cur->deadline = rn_now_ms() + j->cur->grace_ms;
	} else if (!j->cur && j->wake_at) {
		/* waiting to retry a step: conclude now */
		j->wake_at = 0;
		j->step++;
		job_advance(e, j);
	}
}

static int job_wants_always(const rn_job *job)
{
	return job->if_cond && rn_expr_condition_has_status(job->if_cond);
}

/* All needs of j are done: decide whether it runs, is skipped or is cancelled. */
static void job_ready(engine *e, jobrun *j)
{
	if (j->cancel || e->cancelled) {
		job_finish(e, j, j->cancel ? j->cancel_status : RN_ST_CANCELLED,
			   j->cancel ? j->cancel_reason : "the run was cancelled");
		return;
	}
	/* evaluate `if` against the needs' results (unless the coordinator decided already) */
	int any_bad = 0, run = 1;
	const char *why = NULL;
	if (!e->o->decided) {
		for (size_t k = 0; k < j->g->ndeps; k++) {
			jobrun *d = &e->jobs[j->g->deps[k]];
			if (!e->g->nodes[j->g->deps[k]].selected)
				continue;
			int ok = d->status == RN_ST_SUCCESS || (rn_status_failed(d->status) && d->job->continue_on_error);
			any_bad |= !ok;
		}
		json_t *needs = needs_of(e, j->job);
		if (rn_context_job_decide(&run, &why, e->o->pipeline, j->g, needs, any_bad, e->o->secrets, e->o->git,
					  e->o->run_id, e->o->workspace) < 0)
			message(e, j, "bad condition: %s", rn_error_last());
		json_decref(needs);
	}
	if (!run) {
		job_finish(e, j, RN_ST_SKIPPED, why);
		return;
	}
	if (e->stopping && !e->o->decided && !job_wants_always(j->job)) {
		job_finish(e, j, RN_ST_SKIPPED, "an earlier job failed");
		return;
	}
	j->state = J_READY;
	e->runnable[e->nrunnable++] = (size_t)(j - e->jobs);
}

static void ready_users(engine *e, jobrun *j)
{
	for (size_t u = 0; u < j->g->nusers; u++) {
		rn_gnode *un = &e->g->nodes[j->g->users[u]];
		if (!un->selected)
			continue;
		if (--un->pending == 0)
			e->woken[e->nwoken++] = j->g->users[u];
	}
}

/* Decide every woken job (which may finish jobs and wake more). */
static void drain_woken(engine *e)
{
	while (e->nwoken)
		job_ready(e, &e->jobs[e->woken[--e->nwoken]]);
}

static int group_running(engine *e, const jobrun *j)
{
	int n = 0;
	for (size_t i = j->g->group; i < j->g->group + j->g->ninstances; i++)
		n += e->jobs[i].state == J_RUNNING;
	return n;
}

/* Start runnable jobs while there are free slots. */
static void start_jobs(engine *e)
{
	size_t i = e->runnable_head;
	while (i < e->nrunnable && e->running < (size_t)e->o->parallel) {
		size_t idx = e->runnable[i];
		jobrun *j = &e->jobs[idx];
		if (j->state != J_READY) {
			i++;
			continue;
		}
		if (j->cancel || e->cancelled) {
			job_finish(e, j, j->cancel ? j->cancel_status : RN_ST_CANCELLED,
				   j->cancel ? j->cancel_reason : "the run was cancelled");
			i++;
			continue;
		}
		if (e->stopping && !job_wants_always(j->job)) {
			job_finish(e, j, RN_ST_SKIPPED, "an earlier job failed");
			i++;
			continue;
		}
		if (j->job->max_parallel > 0 && group_running(e, j) >= j->job->max_parallel) {
			i++;
			continue;
		}
		j->state = J_RUNNING;
		e->running++;
		j->attempt = 1;
		if (start_attempt(e, j) < 0) {
			message(e, j, "%s", rn_error_last());
			job_finish(e, j, RN_ST_FAILURE, "could not prepare the job");
		} else {
			job_advance(e, j);
		}
		/* the entry is used: compact the head if it was the first */
		if (i == e->runnable_head)
			e->runnable_head++;
		i++;
	}
	while (e->runnable_head < e->nrunnable && e->jobs[e->runnable[e->runnable_head]].state != J_READY)
		e->runnable_head++;
}

/* ---- the loop ---- */

static void cancel_all(engine *e, int sig)
{
	if (e->cancelled) {
		if (sig == SIGINT || sig == SIGTERM) {
			e->hard = 1;
			for (size_t i = 0; i < e->g->n; i++)
				if (e->jobs[i].cur && e->jobs[i].cur->phase != P_KILL_SENT) {
					rn_proc_kill(&e->jobs[i].cur->proc);
					e->jobs[i].cur->phase = P_KILL_SENT;
					e->jobs[i].cur->deadline = 0;
				}
		}
		return;
	}
	e->cancelled = 1;
	e->cancel_sig = sig;
	if (sig)
		message(e, NULL, "received %s: stopping every step (again to kill at once)", strsignal(sig));
	else
		message(e, NULL, "cancel requested: stopping every step");
	for (size_t i = 0; i < e->g->n; i++)
		if (e->g->nodes[i].selected && e->jobs[i].state == J_RUNNING)
			cancel_job(e, &e->jobs[i], RN_ST_CANCELLED, "cancelled");
	start_jobs(e); /* concludes runnable jobs as cancelled */
}

static void handle_deadlines(engine *e, int64_t now)
{
	for (size_t i = 0; i < e->g->n; i++) {
		jobrun *j = &e->jobs[i];
		if (j->state != J_RUNNING)
			continue;
		if (j->job_deadline && now >= j->job_deadline && !j->cancel) {
			char dur[32];
			rn_duration_format(dur, sizeof(dur), j->job->timeout_ms);
			free(j->reason);
			j->reason = rn_xasprintf("job timed out after %s", dur);
			j->job_deadline = 0;
			cancel_job(e, j, RN_ST_TIMED_OUT, j->reason);
		}
		steprun *s = j->cur;
		if (s && s->deadline && now >= s->deadline) {
			if (s->phase == P_RUNNING) {
				s->timed_out = 1;
				rn_proc_term(&s->proc);
				s->phase = P_TERM_SENT;
				s->deadline = now + s->grace_ms;
			} else if (s->phase == P_TERM_SENT) {
				rn_proc_kill(&s->proc);
				s->phase = P_KILL_SENT;
				s->deadline = 0;
			}
		}
		if (s && s->reported && s->out_fd >= 0 && now - s->report_mono >= EOF_WAIT_MS) {
			message(e, j, "output pipe still open %d s after the step's processes ended; closing it",
				EOF_WAIT_MS / 1000);
			close_output(s);
		}
		if (!j->cur && j->wake_at && now >= j->wake_at) {
			j->wake_at = 0;
			job_advance(e, j);
		}
	}
}

static int64_t next_timeout(engine *e, int64_t now)
{
	int64_t best = -1;
	for (size_t i = 0; i < e->g->n; i++) {
		jobrun *j = &e->jobs[i];
		if (j->state != J_RUNNING)
			continue;
		int64_t cand[4] = { j->job_deadline, j->cur ? j->cur->deadline : 0, j->cur ? 0 : j->wake_at,
				    j->cur && j->cur->reported && j->cur->out_fd >= 0 ? j->cur->report_mono + EOF_WAIT_MS
										      : 0 };
		for (int k = 0; k < 4; k++) {
			if (!cand[k])
				continue;
			int64_t wait = cand[k] > now ? cand[k] - now : 0;
			if (best < 0 || wait < best)
				best = wait;
		}
	}
	return best;
}

static int setup_signals(engine *e, sigset_t *old, int *sfd)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (e->o->handle_signals) {
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
	}
	if (sigprocmask(SIG_BLOCK, &set, old) < 0)
		return rn_error_errno("sigprocmask");
	*sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*sfd < 0) {
		sigprocmask(SIG_SETMASK, old, NULL);
		return rn_error_errno("signalfd");
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void handle_signalfd(engine *e, int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			rn_proc_reap_strays();
		else
			cancel_all(e, (int)si.ssi_signo);
	}
}

static void collect(engine *e, jobrun *j)
{
	steprun *s = j->cur;
	if (!rn_proc_ready(&s->proc))
		return; /* only the start marker: the command runs */
	s->finish_rc = rn_proc_finish(&s->proc, &s->res);
	if (s->sandbox) {
		rn_sandbox_result sr;
		if (rn_sandbox_collect(s->sandbox, &sr) == 0)
			s->oom = sr.oom;
	}
	s->reported = 1;
	s->report_mono = rn_now_ms();
	s->deadline = 0;
}

int rn_engine_run(const rn_engine_opts *o, rn_engine_result *res)
{
	engine e = { .o = o, .g = o->graph };
	sigset_t old;
	int sfd = -1, rc = 0;
	struct pollfd *pfds = NULL;
	jobrun **owner = NULL;

	e.jobs = rn_xcalloc(e.g->n + 1, sizeof(*e.jobs));
	e.runnable = rn_xcalloc(e.g->n + 1, sizeof(*e.runnable));
	e.woken = rn_xcalloc(e.g->n + 1, sizeof(*e.woken));
	e.needs = o->needs_preset ? json_deep_copy(o->needs_preset) : json_object();
	e.extra_env = json_object();
	e.notices = json_object();
	e.buf = rn_xmalloc(65536);
	e.default_shell = find_shell();
	for (size_t i = 0; i < o->nextra_env; i++) {
		const char *eq = strchr(o->extra_env[i], '=');
		if (!eq)
			continue;
		char *k = rn_xstrndup(o->extra_env[i], (size_t)(eq - o->extra_env[i]));
		json_object_set_new(e.extra_env, k, json_string(eq + 1));
		free(k);
	}
	for (size_t i = 0; i < e.g->n; i++) {
		e.jobs[i] = (jobrun){ .node = i, .g = &e.g->nodes[i], .job = e.g->nodes[i].job, .state = J_WAITING,
				      .status = RN_ST_PENDING, .max_attempts = e.g->nodes[i].job->retry + 1 };
		e.nselected += e.g->nodes[i].selected;
	}
	if (setup_signals(&e, &old, &sfd) < 0) {
		rc = RN_ERROR;
		goto out;
	}
	if (rn_proc_init() < 0)
		message(&e, NULL, "%s: orphans of a crashed step supervisor may escape", rn_error_last());
	rn_event ev = { .type = RN_EV_RUN_STARTED, .step_index = -1, .started_ms = rn_wall_ms(),
			.njobs = (int)e.nselected };
	int64_t run_start = rn_now_ms();
	emit(&e, &ev);

	for (size_t i = e.g->n; i-- > 0;)
		if (e.g->nodes[i].selected && e.g->nodes[i].pending == 0)
			e.woken[e.nwoken++] = i;

	size_t cap = 2 * e.g->n + 2;
	pfds = rn_xcalloc(cap, sizeof(*pfds));
	owner = rn_xcalloc(cap, sizeof(*owner));
	while (e.ndone < e.nselected) {
		drain_woken(&e);
		start_jobs(&e);
		drain_woken(&e);
		int64_t now = rn_now_ms();
		handle_deadlines(&e, now);
		/* steps whose tree is gone and whose output is drained are concluded */
		int progressed = 0;
		for (size_t i = 0; i < e.g->n; i++) {
			jobrun *j = &e.jobs[i];
			if (j->cur && j->cur->reported && j->cur->out_fd < 0) {
				step_finished(&e, j);
				progressed = 1;
			}
		}
		if (progressed || e.nwoken || e.ndone >= e.nselected)
			continue;
		size_t n = 0;
		pfds[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		owner[n++] = NULL;
		if (o->cancel_fd >= 0 && !e.cancelled) {
			pfds[n] = (struct pollfd){ .fd = o->cancel_fd, .events = POLLIN };
			owner[n++] = NULL;
		}
		for (size_t i = 0; i < e.g->n; i++) {
			jobrun *j = &e.jobs[i];
			if (!j->cur)
				continue;
			if (j->cur->out_fd >= 0) {
				pfds[n] = (struct pollfd){ .fd = j->cur->out_fd, .events = POLLIN };
				owner[n++] = j;
			}
			if (!j->cur->reported) {
				pfds[n] = (struct pollfd){ .fd = j->cur->proc.status_fd, .events = POLLIN };
				owner[n++] = j;
			}
		}
		int64_t t = next_timeout(&e, rn_now_ms());
		flush_sinks(&e); /* what the sinks buffered goes out before we wait */
		int pr = poll(pfds, n, t < 0 ? -1 : t > INT_MAX ? INT_MAX : (int)t);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			rc = rn_error_errno("poll");
			cancel_all(&e, 0);
			e.hard = 1;
			break;
		}
		for (size_t k = 0; k < n && pr > 0; k++) {
			if (!pfds[k].revents)
				continue;
			if (pfds[k].fd == sfd) {
				handle_signalfd(&e, sfd);
			} else if (!owner[k]) {
				char b[64];
				ssize_t got = read(o->cancel_fd, b, sizeof(b));
				(void)got;
				cancel_all(&e, 0);
			} else if (owner[k]->cur && pfds[k].fd == owner[k]->cur->out_fd) {
				read_output(&e, owner[k]->cur);
			} else if (owner[k]->cur && !owner[k]->cur->reported && pfds[k].fd == owner[k]->cur->proc.status_fd) {
				collect(&e, owner[k]);
			}
		}
	}
	res->status = e.cancelled ? RN_ST_CANCELLED : e.failed ? RN_ST_FAILURE : RN_ST_SUCCESS;
	res->signal = e.cancel_sig;
	res->needs = json_incref(e.needs);
	rn_event end = { .type = RN_EV_RUN_FINISHED, .step_index = -1, .status = res->status,
			 .duration_ms = rn_now_ms() - run_start };
	emit(&e, &end);
out:
	/* an error in the loop: nothing may outlive it */
	for (size_t i = 0; i < e.g->n; i++) {
		jobrun *j = &e.jobs[i];
		if (j->cur) {
			if (!j->cur->reported) {
				rn_proc_kill(&j->cur->proc);
				rn_proc_finish(&j->cur->proc, &j->cur->res);
				rn_sandbox_result sr;
				if (j->cur->sandbox)
					rn_sandbox_collect(j->cur->sandbox, &sr);
			}
			steprun_free(j->cur);
		}
		cleanup_temp(&e, j);
		json_decref(j->ctx);
		json_decref(j->dyn_env);
		json_decref(j->path_add);
		free(j->reason);
	}
	if (sfd >= 0) {
		close(sfd);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	for (size_t i = 0; i < e.ntmp_pool; i++) {
		rn_rm_rf(e.tmp_pool[i]);
		free(e.tmp_pool[i]);
	}
	free(e.tmp_pool);
	free(pfds);
	free(owner);
	free(e.jobs);
	free(e.runnable);
	free(e.woken);
	free(e.buf);
	json_decref(e.needs);
	json_decref(e.extra_env);
	json_decref(e.notices);
	return rc;
}
