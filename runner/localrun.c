/* localrun.c - `runner run`: set up a run (id, workspace, secrets, sinks) and drive the engine. */
#include "localrun.h"
#include "proc.h"
#include "diag.h"
#include "engine.h"
#include "error.h"
#include "git.h"
#include "event.h"
#include "graph.h"
#include "kvfile.h"
#include "mask.h"
#include "notify.h"
#include "plugin.h"
#include "sandbox.h"
#include "util.h"
#include "workflow.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

typedef struct secrets_ctx {
	json_t *obj;
	rn_masker *m;
	const char *origin;
} secrets_ctx;

static int add_secret(secrets_ctx *s, const char *name, const char *value)
{
	if (rn_masker_add(s->m, value) < 0) {
		fprintf(stderr, "runner run: secret %s (%s): %s\n", name, s->origin, rn_error_last());
		return RN_EINVALID;
	}
	json_object_set_new(s->obj, name, json_string(value));
	return 0;
}

static int secret_kv(const char *key, const char *value, size_t vlen, void *payload)
{
	(void)vlen;
	return add_secret(payload, key, value);
}

/* Secrets from RUNNER_SECRET_<NAME>, --secret-file and --secret (later wins). */
static int load_secrets(const rn_local_opts *o, secrets_ctx *s)
{
	s->origin = "environment";
	for (char **e = environ; *e; e++) {
		if (!rn_startswith(*e, "RUNNER_SECRET_"))
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		char *name = rn_xstrndup(*e + 14, (size_t)(eq - *e - 14));
		int rc = *name ? add_secret(s, name, eq + 1) : 0;
		free(name);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < o->nsecret_files; i++) {
		char *data = NULL;
		size_t len = 0;
		s->origin = o->secret_files[i];
		if (rn_read_file(&data, &len, o->secret_files[i], 1024 * 1024) < 0) {
			fprintf(stderr, "runner run: --secret-file: %s\n", rn_error_last());
			return RN_EINVALID;
		}
		int rc = rn_kvfile_parse(data, len, RN_KV_DOTENV, secret_kv, s);
		free(data);
		if (rc < 0) {
			if (rc != RN_EINVALID || *rn_error_last())
				fprintf(stderr, "runner run: %s: %s\n", o->secret_files[i], rn_error_last());
			return RN_EINVALID;
		}
	}
	s->origin = "--secret";
	for (size_t i = 0; i < o->nsecrets; i++) {
		const char *eq = strchr(o->secrets[i], '=');
		if (!eq || eq == o->secrets[i]) {
			fprintf(stderr, "runner run: --secret wants NAME=VALUE\n");
			return RN_EINVALID;
		}
		char *name = rn_xstrndup(o->secrets[i], (size_t)(eq - o->secrets[i]));
		int rc = add_secret(s, name, eq + 1);
		free(name);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void dry_run(const rn_graph *g, FILE *out)
{
	size_t n;
	size_t *order = rn_graph_order(g, &n);
	fprintf(out, "dry run: %zu job%s would run, in this order:\n", n, n == 1 ? "" : "s");
	rn_graph_print(g, RN_GRAPH_TEXT, out);
	free(order);
}

int rn_local_sandbox_info(void)
{
	rn_sandbox_caps caps;
	if (rn_sandbox_probe(&caps) < 0) {
		fprintf(stderr, "runner run: sandbox: %s\n", rn_error_last());
		return EXIT_INFRA;
	}
	rn_sandbox_caps_print(stdout, &caps);
	return EXIT_OK;
}

/* The git.* contexts, read on a thread of their own: libgit2's initialisation parses the
 * system's CA certificates (several ms), which then overlaps reading the workflow. It is joined
 * before anything forks (the sandbox probe): a child forked while it runs would hold its
 * half-made state with no thread to own it. */
typedef struct describe_job {
	pthread_t thread;
	int joinable; /* the thread runs or ended and is not joined yet */
	const char *workspace;
	json_t *git; /* the result, owned */
	int rc;
	char err[1024];
} describe_job;

static void *describe_main(void *arg)
{
	describe_job *j = arg;
	j->rc = rn_git_describe(&j->git, j->workspace);
	if (j->rc < 0)
		snprintf(j->err, sizeof(j->err), "%s", rn_error_last());
	return NULL;
}

/* Start describing workspace's repository (borrowed until describe_wait); without a thread,
 * describe_wait does it. */
static void describe_start(describe_job *j, const char *workspace)
{
	sigset_t all, old;
	j->workspace = workspace;
	sigfillset(&all);
	/* every signal blocked on the thread: they stay for the engine's signalfd */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	j->joinable = pthread_create(&j->thread, NULL, describe_main, j) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The describe result: 0 with *git (owned by the caller), or <0 with rn_error_last(). */
static int describe_wait(describe_job *j, json_t **git)
{
	if (j->joinable) {
		pthread_join(j->thread, NULL);
		j->joinable = 0;
	} else {
		describe_main(j);
	}
	*git = j->git;
	j->git = NULL;
	return j->rc < 0 ? rn_error_set("%s", j->err) : 0;
}

/* Steps of the selected jobs that will run without a sandbox (every matrix instance counted,
 * up to 2: that is all the caller asks). */
static size_t unsandboxed_steps(const rn_graph *g, int no_sandbox)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n && n < 2; i++) {
		if (!g->nodes[i].selected)
			continue;
		const rn_job *job = g->nodes[i].job;
		for (size_t k = 0; k < job->nsteps && n < 2; k++)
			if (no_sandbox || job->steps[k].sandbox.enabled == 0)
				n++;
	}
	return n;
}

int rn_local_run(const rn_local_opts *o)
{
	int exit_code = EXIT_OK;
	rn_diags d = RN_DIAGS_INIT(o->file);
	rn_pipeline *p = NULL;
	rn_graph g = { NULL, 0 };
	rn_masker *masker = rn_masker_new();
	json_t *secrets = json_object();
	char *run_id = NULL, *log_dir = NULL, *artifacts = NULL;
	char workspace[PATH_MAX], exe[PATH_MAX];
	char *clean = NULL; /* --clean: the fresh checkout the steps run in */
	json_t *git = NULL;
	rn_sink *sinks[5];
	rn_sandbox_caps caps;
	size_t nsinks = 0;
	FILE *console = o->json ? stderr : stdout;
	describe_job dj = { 0 };
	int have_ws = realpath(o->workdir ? o->workdir : ".", workspace) != NULL;
	int ws_errno = errno;
	if (have_ws && !o->dry_run)
		describe_start(&dj, workspace);

	/* step plugins: found and checked now (a missing one is an invalid workflow), and found
	 * again where each plugin step starts */
	rn_plugin_setup(o->plugin_dirs, o->nplugin_dirs, RN_PLUGINS_REQUIRED);
	int rc = rn_workflow_load(&p, o->file, &d);
	if (rc == 0)
		rc = rn_graph_build(&g, p, &d);
	rn_diags_print(&d, stderr);
	if (rc < 0) {
		exit_code = rc == RN_EINVALID || rc == RN_ENOTFOUND || rc == RN_ETOOBIG ? EXIT_USAGE : EXIT_INFRA;
		goto done;
	}
	if (rn_graph_select(&g, o->jobs, o->njobs) < 0) {
		fprintf(stderr, "runner run: %s\n", rn_error_last());
		exit_code = EXIT_USAGE;
		goto done;
	}
	secrets_ctx sc = { secrets, masker, NULL };
	if (load_secrets(o, &sc) < 0) {
		exit_code = EXIT_USAGE;
		goto done;
	}
	if (o->dry_run) {
		dry_run(&g, stdout);
		goto done;
	}
	if (!have_ws) {
		fprintf(stderr, "runner run: workspace %s: %s\n", o->workdir ? o->workdir : ".", strerror(ws_errno));
		exit_code = EXIT_INFRA;
		goto done;
	}
	/* two unsandboxed steps or more: the fork server starts while the repository is read */
	if (unsandboxed_steps(&g, o->no_sandbox) >= 2)
		rn_proc_prestart();
	/* git.* contexts come from the working tree's repository ({} outside one) */
	if (describe_wait(&dj, &git) < 0) {
		fprintf(stderr, "runner run: %s\n", rn_error_last());
		exit_code = EXIT_INFRA;
		goto done;
	}
	/* what the kernel lets the sandbox do, once per run */
	if (!o->no_sandbox) {
		if (rn_sandbox_probe(&caps) < 0) {
			fprintf(stderr, "runner run: sandbox: %s\n", rn_error_last());
			exit_code = EXIT_INFRA;
			goto done;
		}
	}
	if (o->clean) {
		/* a fresh checkout of HEAD (the committed state), so a local run behaves as an agent's */
		const char *tmp = getenv("TMPDIR");
		int rc2 = rn_git_clean_workspace(&clean, workspace, tmp && *tmp ? tmp : "/tmp");
		if (rc2 < 0) {
			fprintf(stderr, "runner run: --clean: %s\n", rn_error_last());
			exit_code = rc2 == RN_EINVALID ? EXIT_USAGE : EXIT_INFRA;
			goto done;
		}
		fprintf(o->json ? stderr : stdout, "runner: --clean: running in a fresh checkout of %s\n",
			json_string_value(json_object_get(git, "sha")) ? json_string_value(json_object_get(git, "sha")) : "HEAD");
	}
	if (rn_self_exe(exe, sizeof(exe)) < 0) {
		fprintf(stderr, "runner run: %s\n", rn_error_last());
		exit_code = EXIT_INFRA;
		goto done;
	}
	run_id = rn_run_id_new();
	log_dir = o->log_dir ? rn_xstrdup(o->log_dir) : rn_xasprintf("%s/.runner/logs/%s", workspace, run_id);
	artifacts = rn_xasprintf("%s/.runner/artifacts/%s", workspace, run_id);
	if (rn_mkdir_p(log_dir, 0755) < 0 || rn_mkdir_p(artifacts, 0755) < 0) {
		fprintf(stderr, "runner run: %s\n", rn_error_last());
		exit_code = EXIT_INFRA;
		goto done;
	}
	int tty = isatty(fileno(console));
	int color = o->color != 0 && tty && !getenv("NO_COLOR");
	sinks[nsinks++] = rn_console_sink_new(console, color, color, masker);
	sinks[nsinks++] = rn_logdir_sink_new(log_dir, masker);
	if (o->json)
		sinks[nsinks++] = rn_json_sink_new(stdout, masker);
	if (o->junit)
		sinks[nsinks++] = rn_junit_sink_new(o->junit, masker);
	/* notify: webhooks (none without `notify:` entries); delivery never fails the run */
	json_t *ninfo = json_pack("{s:s, s:s?, s:s?, s:n}", "id", run_id, "sha",
				  json_string_value(json_object_get(git, "sha")), "ref",
				  json_string_value(json_object_get(git, "ref")), "logs_url");
	json_t *nctx = json_pack("{s:O, s:O}", "secrets", secrets, "git", git ? git : json_null());
	rn_sink *ns = rn_notify_sink_new(p, masker, ninfo, nctx, NULL);
	json_decref(ninfo);
	json_decref(nctx);
	if (ns)
		sinks[nsinks++] = ns;

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	rn_engine_opts eo = {
		.pipeline = p,
		.graph = &g,
		.parallel = o->parallel > 0 ? o->parallel : (ncpu > 0 ? (int)ncpu : 1),
		.keep_going = o->keep_going,
		.workspace = clean ? clean : workspace,
		.log_dir = log_dir,
		.artifacts_dir = artifacts,
		.run_id = run_id,
		.self_exe = exe,
		.extra_env = o->env,
		.nextra_env = o->nenv,
		.secrets = secrets,
		.masker = masker,
		.git = git,
		.sinks = sinks,
		.nsinks = nsinks,
		.handle_signals = 1,
		.cancel_fd = -1,
		.sandbox_caps = o->no_sandbox ? NULL : &caps,
	};
	rn_engine_result res = { RN_ST_FAILURE, 0, NULL };
	int erc = rn_engine_run(&eo, &res);
	json_decref(res.needs);
	if (erc < 0) {
		fprintf(stderr, "runner run: %s\n", rn_error_last());
		exit_code = EXIT_INFRA;
	} else if (res.signal) {
		exit_code = 128 + res.signal;
	} else {
		exit_code = res.status == RN_ST_SUCCESS ? EXIT_OK : EXIT_FAILED;
	}
	for (size_t i = 0; i < nsinks; i++) {
		if (sinks[i]->close(sinks[i]) < 0) {
			fprintf(stderr, "runner run: %s\n", rn_error_last());
			if (exit_code == EXIT_OK)
				exit_code = EXIT_INFRA;
		}
	}
	nsinks = 0;
done:
	for (size_t i = 0; i < nsinks; i++)
		sinks[i]->close(sinks[i]);
	rn_graph_free(&g);
	rn_pipeline_free(p);
	rn_diags_free(&d);
	rn_masker_free(masker);
	json_decref(secrets);
	if (dj.joinable)
		pthread_join(dj.thread, NULL);
	json_decref(dj.git);
	json_decref(git);
	if (clean) {
		rn_rm_rf(clean);
		free(clean);
	}
	/* a run that made no artifact leaves no empty .runner/artifacts/RUN_ID behind */
	if (artifacts)
		rmdir(artifacts);
	free(run_id);
	free(log_dir);
	free(artifacts);
	return exit_code;
}
