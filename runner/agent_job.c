/* agent_job.c - `runner __job DIR`: one leased job of an agent, run by the engine in a child
 * process of the agent (the agent itself never runs the engine).
 *
 * DIR holds job.json (the JOBSPEC of docs/protocol.md; removed as soon as it is read, since it
 * holds the job's secrets and the steps run next to it) and artifacts/ (pre-filled by the agent
 * with the pipeline's artifacts). This process checks the repository out into DIR/workspace
 * through the mirror cache ($RUNNER_GIT_CACHE, set by the agent), parses the workflow text of the
 * spec, selects the one job instance spec.name and runs it with the server's decision
 * (needs_preset, decided), writing:
 *   DIR/log           the job log (plain text, masked), appended as the job runs
 *   DIR/events.jsonl  the engine's events except output lines (rn_json_sink_new)
 *   DIR/result.json   {status, outputs, reason} at the end (written atomically)
 * Exit status: 0 success, 1 the job failed, 2 the spec or workflow is unusable, 3 infrastructure
 * (checkout, disk, sandbox), 143/130 cancelled by SIGTERM/SIGINT (steps stopped as on timeout). */
#include "agent_job.h"
#include "agent_log.h"
#include "context.h"
#include "diag.h"
#include "engine.h"
#include "error.h"
#include "git.h"
#include "graph.h"
#include "mask.h"
#include "sandbox.h"
#include "util.h"
#include "workflow.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char rn_cmd_job_help[] = "";

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

/* job.json: the workflow text (64 MiB at most) JSON-escaped, plus the rest of the spec */
#define SPEC_MAX ((size_t)RN_WORKFLOW_MAX_BYTES * 2 + 16u * 1024 * 1024)

/* ---- what the job did (a sink) --------------------------------------------------------------- */

typedef struct {
	rn_sink base;
	rn_runrec run;
	const char *job;      /* the instance name we run */
	int finished;
	rn_status status;
	char *reason;         /* the job's reason (masked) */
	char *failed_step;    /* "step 2 (Build) failed: exit 1" of the last failed step (masked) */
} result_sink;

static void result_event(rn_sink *sink, const rn_event *ev)
{
	result_sink *r = (result_sink *)sink;
	rn_steprec *s = NULL;
	rn_jobrec *j = rn_runrec_update(&r->run, ev, &s);
	if (!j || !ev->job || strcmp(ev->job, r->job) != 0)
		return;
	if (ev->type == RN_EV_STEP_FINISHED && s && rn_status_failed(s->status) && !s->continue_on_error) {
		free(r->failed_step);
		if (s->reason && *s->reason)
			r->failed_step = rn_xasprintf("step %d (%s) %s: %s", s->index + 1, s->name, rn_status_name(s->status),
						      s->reason);
		else if (s->exit_code >= 0)
			r->failed_step = rn_xasprintf("step %d (%s) %s: exit %d", s->index + 1, s->name,
						      rn_status_name(s->status), s->exit_code);
		else
			r->failed_step = rn_xasprintf("step %d (%s) %s", s->index + 1, s->name, rn_status_name(s->status));
	} else if (ev->type == RN_EV_JOB_STARTED) {
		free(r->failed_step);
		r->failed_step = NULL;
	} else if (ev->type == RN_EV_JOB_FINISHED) {
		r->finished = 1;
		r->status = j->status;
		free(r->reason);
		r->reason = j->reason ? rn_xstrdup(j->reason) : NULL;
	}
}

static int result_close(rn_sink *sink)
{
	(void)sink; /* freed by the command, which still reads it */
	return 0;
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* A member of the spec as a string (numbers are formatted), or NULL. Caller frees. */
static char *spec_str(const json_t *spec, const char *key)
{
	const json_t *v = json_object_get(spec, key);
	if (json_is_string(v))
		return rn_xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return rn_xasprintf("%lld", (long long)json_integer_value(v));
	return NULL;
}

/* Write result.json atomically: {status, outputs, reason}. */
static int write_result(const char *dir, const char *status, json_t *outputs, const char *reason)
{
	json_t *outs = outputs ? json_incref(outputs) : json_object();
	json_t *o = json_pack("{s:s, s:o, s:s?}", "status", status, "outputs", outs, "reason", reason);
	char *tmp = rn_xasprintf("%s/result.json.tmp", dir), *path = rn_xasprintf("%s/result.json", dir);
	int rc = 0;
	if (!o || json_dump_file(o, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0)
		rc = rn_error_errno("cannot write %s", path);
	json_decref(o);
	free(tmp);
	free(path);
	return rc;
}

/* A note in the job log ("runner: ..." as the engine's messages), masked. */
__attribute__((format(printf, 3, 4))) static void note(FILE *log, const rn_masker *m, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (!text)
		return;
	char *masked = m ? rn_mask_str(m, text) : rn_xstrdup(text);
	fprintf(log, "runner: %s\n", masked);
	fflush(log);
	free(masked);
	free(text);
}

/* Read and remove DIR/job.json (its text into *out, caller frees). */
static int load_spec(char **out, size_t *len, const char *dir)
{
	char *path = rn_xasprintf("%s/job.json", dir);
	int rc = rn_read_file(out, len, path, SPEC_MAX);
	if (rc == 0)
		unlink(path);
	free(path);
	return rc;
}

/* ---- the spec ------------------------------------------------------------------------------ */

void rn_jobspec_free(rn_jobspec *js)
{
	json_decref(js->spec);
	rn_masker_free(js->masker);
	rn_strv_free(js->env);
	free(js->name);
	free(js->repo);
	free(js->rev);
	free(js->file);
	free(js->run_id);
	memset(js, 0, sizeof(*js));
}

int rn_jobspec_parse(rn_jobspec *js, const char *text, size_t len)
{
	memset(js, 0, sizeof(*js));
	js->masker = rn_masker_new();
	json_error_t err;
	js->spec = json_loadb(text, len, 0, &err);
	if (!js->spec)
		return rn_error_set("job spec: not JSON (%s at line %d)", err.text, err.line), RN_EINVALID;
	if (!json_is_object(js->spec))
		return rn_error_set("job spec: not a JSON object"), RN_EINVALID;
	json_t *spec = js->spec;
	/* secrets first: everything written from here on is masked */
	json_t *secrets = json_object_get(spec, "secrets");
	if (secrets && !json_is_object(secrets))
		return rn_error_set("job spec: 'secrets' is not an object"), RN_EINVALID;
	const char *key;
	json_t *val;
	json_object_foreach(secrets, key, val) {
		if (!json_is_string(val))
			return rn_error_set("secret %s: not a string", key), RN_EINVALID;
		if (rn_masker_add(js->masker, json_string_value(val)) < 0)
			return rn_error_set("secret %s: %s", key, rn_error_last()), RN_EINVALID;
	}
	js->name = spec_str(spec, "name");
	js->repo = spec_str(spec, "repo");
	js->rev = spec_str(spec, "sha");
	if (!js->rev || !*js->rev) {
		free(js->rev);
		js->rev = spec_str(spec, "ref");
	}
	js->file = spec_str(spec, "file");
	js->run_id = spec_str(spec, "run_id");
	if (!js->run_id)
		js->run_id = spec_str(spec, "pipeline");
	if (!js->name || !*js->name || !js->repo || !*js->repo)
		return rn_error_set("job spec: 'name' and 'repo' are required"), RN_EINVALID;
	json_t *env_obj = json_object_get(spec, "env");
	if (env_obj && !json_is_object(env_obj) && !json_is_null(env_obj))
		return rn_error_set("job spec: 'env' is not an object"), RN_EINVALID;
	js->env = rn_xcalloc(json_object_size(env_obj) + 1, sizeof(*js->env));
	json_object_foreach(env_obj, key, val) {
		if (json_is_string(val))
			js->env[js->nenv++] = rn_xasprintf("%s=%s", key, json_string_value(val));
	}
	return 0;
}

int rn_jobspec_workflow(const rn_jobspec *js, const char *workspace, rn_pipeline **p, rn_graph *g, rn_diags *d,
			const rn_job **job)
{
	*job = NULL;
	const char *wf_name = js->file && *js->file ? js->file : ".pipeline.yml";
	const json_t *wf = json_object_get(js->spec, "workflow");
	d->file = wf_name;
	int rc;
	if (json_is_string(wf)) {
		rc = rn_workflow_parse(p, wf_name, json_string_value(wf), json_string_length(wf), d);
	} else {
		char *path = rn_xasprintf("%s/%s", workspace, wf_name);
		rc = rn_workflow_load(p, path, d);
		free(path);
	}
	if (rc == 0)
		rc = rn_graph_build(g, *p, d);
	if (rc < 0)
		return rn_error_set("invalid workflow %s", wf_name), RN_EINVALID;
	if (rn_graph_select_one(g, js->name) < 0)
		return RN_EINVALID;
	for (size_t i = 0; i < g->n; i++)
		if (g->nodes[i].selected)
			*job = g->nodes[i].job;
	if (!*job)
		return rn_error_set("no job instance named '%s'", js->name), RN_EINVALID;
	return 0;
}

/* The git progress summary lines (captured in memory) into the log, masked. */
static void copy_masked(FILE *log, const rn_masker *m, const char *text, size_t len)
{
	if (!len)
		return;
	size_t n = 0;
	char *masked = rn_mask_buf(m, text, len, &n);
	fwrite(masked, 1, n, log);
	if (masked[n - 1] != '\n')
		fputc('\n', log);
	fflush(log);
	free(masked);
}

/* ---- the command ----------------------------------------------------------------------------- */

int rn_cmd_job(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: runner __job DIR\n");
		return EXIT_USAGE;
	}
	char dir[PATH_MAX], exe[PATH_MAX];
	if (!realpath(argv[1], dir)) {
		fprintf(stderr, "runner __job: %s: %s\n", argv[1], strerror(errno));
		return EXIT_INFRA;
	}
	int exit_code = EXIT_INFRA;
	json_t *outputs = NULL;
	rn_jobspec js;
	memset(&js, 0, sizeof(js));
	rn_masker *masker = NULL;
	rn_diags d = RN_DIAGS_INIT(NULL);
	rn_pipeline *p = NULL;
	rn_graph g = { NULL, 0 };
	char *log_path = rn_xasprintf("%s/log", dir), *events_path = rn_xasprintf("%s/events.jsonl", dir);
	char *workspace = rn_xasprintf("%s/workspace", dir), *artifacts = rn_xasprintf("%s/artifacts", dir);
	/* RUNNER_TEMP directories inside DIR: removed with it even when this process is killed */
	char *temp_dir = rn_xasprintf("%s/tmp", dir);
	char *fail_reason = NULL;
	FILE *log = NULL, *events = NULL;
	json_t *git = NULL;
	const char *status = "failure";
	rn_sink *sinks[3] = { NULL, NULL, NULL };
	result_sink rs;
	memset(&rs, 0, sizeof(rs));

	int lfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0 || !(log = fdopen(lfd, "a"))) {
		fprintf(stderr, "runner __job: %s: %s\n", log_path, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		goto done;
	}
	char *spec_text = NULL;
	size_t spec_len = 0;
	int rc = load_spec(&spec_text, &spec_len, dir);
	if (rc < 0) {
		fail_reason = rn_xasprintf("job spec: %s", rn_error_last());
		note(log, NULL, "%s", fail_reason);
		exit_code = EXIT_INFRA;
		goto done;
	}
	rc = rn_jobspec_parse(&js, spec_text, spec_len);
	free(spec_text);
	masker = js.masker;
	if (rc < 0) {
		fail_reason = rn_xstrdup(rn_error_last());
		goto usage;
	}
	json_t *secrets = json_object_get(js.spec, "secrets");

	/* the checkout, through the agent's mirror cache ($RUNNER_GIT_CACHE) */
	char *shown = rn_git_redact_url(js.repo);
	note(log, masker, "checkout of %s at %s", shown, js.rev && *js.rev ? js.rev : "HEAD");
	free(shown);
	char *progress = NULL;
	size_t plen = 0;
	FILE *pout = open_memstream(&progress, &plen);
	rn_git_opts go = { .progress = pout ? RN_GIT_PROGRESS_SUMMARY : RN_GIT_PROGRESS_NONE, .progress_out = pout };
	rn_git_result gr;
	rc = rn_git_checkout(js.repo, js.rev, workspace, &go, &gr);
	if (pout) {
		fclose(pout);
		copy_masked(log, masker, progress, plen);
		free(progress);
	}
	if (rc < 0) {
		fail_reason = rn_xasprintf("checkout failed: %s", rn_error_last());
		note(log, masker, "%s", fail_reason);
		exit_code = EXIT_INFRA;
		goto done;
	}
	git = json_object_get(js.spec, "git");
	if (json_is_object(git))
		json_incref(git);
	else
		git = json_pack("{s:s, s:s, s:s}", "sha", gr.sha, "ref", gr.ref, "branch", gr.branch);

	/* the workflow: the spec's text (what the server validated), else the file of the commit */
	const rn_job *job = NULL;
	rc = rn_jobspec_workflow(&js, workspace, &p, &g, &d, &job);
	rn_diags_print(&d, log);
	fflush(log);
	if (rc < 0) {
		fail_reason = rn_xstrdup(rn_error_last());
		goto usage;
	}
	if (rn_mkdir_p(artifacts, 0755) < 0 || rn_mkdir_p(temp_dir, 0700) < 0 || rn_self_exe(exe, sizeof(exe)) < 0) {
		fail_reason = rn_xstrdup(rn_error_last());
		note(log, masker, "%s", fail_reason);
		goto done;
	}
	rn_sandbox_caps caps;
	if (rn_sandbox_probe(&caps) < 0) {
		fail_reason = rn_xasprintf("sandbox: %s", rn_error_last());
		note(log, masker, "%s", fail_reason);
		goto done;
	}
	int efd = open(events_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (efd < 0 || !(events = fdopen(efd, "a"))) {
		fail_reason = rn_xasprintf("%s: %s", events_path, strerror(errno));
		if (efd >= 0)
			close(efd);
		note(log, masker, "%s", fail_reason);
		goto done;
	}
	rs.base.event = result_event;
	rs.base.close = result_close;
	rs.job = js.name;
	rn_runrec_init(&rs.run, masker);
	sinks[0] = rn_joblog_sink_new(log, masker);
	sinks[1] = rn_nooutput_sink_new(rn_json_sink_new(events, masker));
	sinks[2] = &rs.base;

	json_t *needs = json_object_get(js.spec, "needs");
	rn_engine_opts eo = {
		.pipeline = p,
		.graph = &g,
		.parallel = 1,
		.workspace = workspace,
		.artifacts_dir = artifacts,
		.temp_dir = temp_dir,
		.run_id = js.run_id ? js.run_id : "0",
		.self_exe = exe,
		.extra_env = (const char *const *)js.env,
		.nextra_env = js.nenv,
		.secrets = secrets,
		.masker = masker,
		.git = git,
		.sinks = sinks,
		.nsinks = 3,
		.handle_signals = 1,
		.cancel_fd = -1,
		.sandbox_caps = &caps,
		.needs_preset = json_is_object(needs) ? needs : NULL,
		.decided = 1,
	};
	rn_engine_result res = { RN_ST_FAILURE, 0, NULL };
	if (rn_engine_run(&eo, &res) < 0) {
		fail_reason = rn_xasprintf("the engine failed: %s", rn_error_last());
		note(log, masker, "%s", fail_reason);
		json_decref(res.needs);
		goto done;
	}
	outputs = json_incref(json_object_get(json_object_get(res.needs, job->id), "outputs"));
	json_decref(res.needs);
	/* the job's own status (a failure with continue-on-error stays a failure: the server
	 * applies continue-on-error itself) */
	rn_status st = rs.finished ? rs.status : res.signal ? RN_ST_CANCELLED : RN_ST_FAILURE;
	if (st == RN_ST_SKIPPED) /* never with `decided`, unless the run was cancelled first */
		st = res.signal ? RN_ST_CANCELLED : RN_ST_FAILURE;
	status = rn_status_name(st);
	if (rs.reason && *rs.reason)
		fail_reason = rn_xstrdup(rs.reason);
	else if (rn_status_failed(st) && rs.failed_step)
		fail_reason = rn_xstrdup(rs.failed_step);
	else if (!rs.finished)
		fail_reason = rn_xstrdup(res.signal ? "cancelled" : "the job did not finish");
	if (st == RN_ST_SUCCESS)
		exit_code = EXIT_OK;
	else if (st == RN_ST_CANCELLED && res.signal)
		exit_code = 128 + res.signal;
	else
		exit_code = EXIT_FAILED;
	goto done;

usage:
	note(log, masker, "%s", fail_reason);
	exit_code = EXIT_USAGE;
done:
	for (size_t i = 0; i < 2; i++)
		if (sinks[i] && sinks[i]->close(sinks[i]) < 0) {
			fprintf(stderr, "runner __job: %s\n", rn_error_last());
			if (exit_code == EXIT_OK)
				exit_code = EXIT_INFRA;
		}
	if (sinks[2])
		rn_runrec_free(&rs.run);
	if (write_result(dir, status, outputs, fail_reason) < 0) {
		fprintf(stderr, "runner __job: %s\n", rn_error_last());
		if (exit_code == EXIT_OK)
			exit_code = EXIT_INFRA;
	}
	if (log)
		fclose(log);
	if (events)
		fclose(events);
	free(rs.reason);
	free(rs.failed_step);
	rn_graph_free(&g);
	rn_pipeline_free(p);
	rn_diags_free(&d);
	rn_jobspec_free(&js);
	json_decref(git);
	json_decref(outputs);
	free(log_path);
	free(events_path);
	free(workspace);
	free(temp_dir);
	free(artifacts);
	free(fail_reason);
	return exit_code;
}
