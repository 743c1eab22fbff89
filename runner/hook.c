/* hook.c - `runner hook`: the git post-receive hook and its installer (see hook.h, docs/hook.md).
 *
 * The push path (post-receive) only reads: each `<old> <new> <ref>` line is decided with
 * libgit2 (the pipeline file of the pushed commit, on.push filters against the changed paths)
 * and logged to GIT_DIR/runner/hook.log before the hook exits. A local run is a file in
 * queue/; one detached worker (`runner hook run-queue`, double fork, own session, stdio to
 * worker.log) is started per push. Workers take one of runner.jobs slot locks, claim the oldest
 * queue entry by renaming it into running/, check the commit out (libgit2, through the mirror
 * cache in GIT_DIR/runner/cache) and run it with `runner run`. A worker that finds the queue
 * empty releases its slot and looks once more, so an entry queued meanwhile is never stranded:
 * either that look sees it, or the slot was free when the pushing hook's own worker asked. */
#include "hook.h"
#include "buf.h"
#include "diag.h"
#include "error.h"
#include "event.h"
#include "git.h"
#include "gitread.h"
#include "glob.h"
#include "graph.h"
#include "http.h"
#include "model.h"
#include "util.h"
#include "workflow.h"

#include <git2.h>
#include <jansson.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

#define HOOK_MARKER "# runner-hook: installed by `runner hook install`"
#define DEFAULT_FILE ".pipeline.yml"
#define WORKFLOW_MAX (4u * 1024 * 1024)  /* pipeline file read from a pushed commit */
#define CHANGED_MAX 10000                /* more changed paths: paths filters count as matched */
#define LINE_MAX_BYTES 4096              /* one `<old> <new> <ref>` line */
#define REFS_MAX 10000                   /* lines of one push */
#define JSON_MAX (1u << 20)              /* run.json, queue entries, summary.json read back */
#define SERVER_TIMEOUT_MS 5000           /* the synchronous POST of the hook */
#define SERVER_RETRIES 10                /* the worker's retries of a POST that failed */
#define JOBS_MAX 64
#define KEEP_DEFAULT 100                 /* runner.keep: finished runs kept */
#define HOOK_LOG_MAX (4u << 20)          /* hook.log is renamed hook.log.1 past this size */
#define AFTER_MAX_MS 5000                /* the worker waits this long at most for the push to end */

const char rn_cmd_hook_help[] =
	"subcommands:\n"
	"  install GIT_DIR       write hooks/post-receive (an existing hook is kept as\n"
	"                        post-receive.orig and runs first) and record the settings:\n"
	"      --server URL      queue pipelines on a `runner serve` instead of running them here\n"
	"      --token T         the server's admin token (stored as runner.token)\n"
	"      --file F          the pipeline file in the repository (default .pipeline.yml)\n"
	"      --jobs N          concurrent local runs of this repository (default 1)\n"
	"  uninstall GIT_DIR     remove the hook (restoring post-receive.orig) and the settings\n"
	"  post-receive          the hook: reads `<old> <new> <ref>` lines on stdin\n"
	"      --git-dir DIR     the repository (default $GIT_DIR, else the current directory)\n"
	"  status GIT_DIR [REF]  the latest runs (of REF: a branch, tag or full ref) and their jobs\n"
	"      --limit N         runs to show (default 10)\n"
	"      --json            one JSON object of the runs on stdout\n"
	"  run-queue GIT_DIR     process the queue of local runs (the hook starts this detached)\n"
	"      --after PID       first wait (5 s at most) for PID, the pushing git, to end\n"
	"settings (git config of the repository): runner.server, runner.token, runner.file,\n"
	"runner.jobs, runner.secrets (a dotenv file of secrets for local runs), runner.keep (finished\n"
	"runs kept, default 100).\n"
	"State and logs: GIT_DIR/runner/ (hook.log, RUN_ID/, latest/<ref>).\n";

/* ---- settings and small helpers -------------------------------------------------------------- */

typedef struct settings {
	char *git_dir;   /* absolute */
	char *state;     /* GIT_DIR/runner */
	char *server;    /* NULL: local runs */
	char *token;
	char *file;      /* the pipeline file in the repository */
	char *secrets;   /* dotenv file for local runs, or NULL */
	int jobs;
	int keep;        /* finished runs kept (the newest; and every ref's latest) */
} settings;

static void settings_free(settings *s)
{
	free(s->git_dir);
	free(s->state);
	free(s->server);
	free(s->token);
	free(s->file);
	free(s->secrets);
	memset(s, 0, sizeof(*s));
}

/* Config value or NULL (unset or empty). */
static char *cfg(const char *git_dir, const char *key)
{
	char *v = NULL;
	if (rn_gitread_config_get(&v, git_dir, key) < 0)
		return NULL;
	if (!*v) {
		free(v);
		return NULL;
	}
	return v;
}

/* Open the repository at path: its absolute git dir and the runner.* settings. */
static int settings_load(settings *s, const char *path)
{
	memset(s, 0, sizeof(*s));
	int rc = rn_gitread_git_dir(&s->git_dir, NULL, path);
	if (rc < 0)
		return rc;
	s->state = rn_xasprintf("%s/runner", s->git_dir);
	s->server = cfg(s->git_dir, "runner.server");
	s->token = cfg(s->git_dir, "runner.token");
	s->file = cfg(s->git_dir, "runner.file");
	if (!s->file)
		s->file = rn_xstrdup(DEFAULT_FILE);
	s->secrets = cfg(s->git_dir, "runner.secrets");
	s->keep = KEEP_DEFAULT;
	char *k = cfg(s->git_dir, "runner.keep");
	if (k) {
		char *end;
		long n = strtol(k, &end, 10);
		if (!*end && n >= 1 && n <= 1000000)
			s->keep = (int)n;
		free(k);
	}
	s->jobs = 1;
	char *j = cfg(s->git_dir, "runner.jobs");
	if (j) {
		char *end;
		long n = strtol(j, &end, 10);
		if (!*end && n >= 1 && n <= JOBS_MAX)
			s->jobs = (int)n;
		free(j);
	}
	return 0;
}

/* The first 7 characters of a sha (static buffer of the caller). */
static const char *short_sha(char out[8], const char *sha)
{
	size_t n = sha ? strnlen(sha, 7) : 0;
	memcpy(out, sha ? sha : "", n);
	out[n] = '\0';
	return out;
}

/* Append one line "TIME message" to GIT_DIR/runner/hook.log (one write: O_APPEND keeps lines
 * of concurrent hooks whole). */
static void hook_log(const settings *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hook_log(const settings *s, const char *fmt, ...)
{
	char when[40], msg[2048];
	rn_time_iso8601(when, sizeof(when), rn_wall_ms(), 1);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msg[strcspn(msg, "\n")] = '\0';
	char *line = rn_xasprintf("%s %s\n", when, msg);
	char *path = rn_xasprintf("%s/hook.log", s->state);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 && rn_mkdir_p(s->state, 0755) == 0)
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		rn_write_all(fd, line, strlen(line));
		close(fd);
	}
	free(path);
	free(line);
}

/* Write j to path atomically (a temporary file renamed over it). */
static int write_json(const char *path, json_t *j)
{
	char *tmp = rn_xasprintf("%s.tmp.%d", path, (int)getpid());
	int rc = 0;
	if (json_dump_file(j, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0)
		rc = rn_error_set("cannot write %s", tmp);
	else if (rename(tmp, path) < 0)
		rc = rn_error_errno("rename %s", path);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* Read a JSON object from path (capped); NULL if absent or not JSON. */
static json_t *read_json(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	if (rn_read_file(&data, &len, path, JSON_MAX) < 0)
		return NULL;
	json_t *j = json_loadb(data, len, 0, NULL);
	free(data);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static int is_hex_sha(const char *s)
{
	size_t n = strlen(s);
	return (n == 40 || n == 64) && strspn(s, "0123456789abcdef") == n;
}

/* Single-quote s for sh (caller frees). */
static char *sh_quote(const char *s)
{
	size_t n = 2;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *q = rn_xmalloc(n + 1), *w = q;
	*w++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(w, "'\\''", 4);
			w += 4;
		} else {
			*w++ = *p;
		}
	}
	*w++ = '\'';
	*w = '\0';
	return q;
}

/* getopt_long with "+" that also takes options after positional arguments (`install GIT_DIR
 * --server URL`): returns the next option, or -1 at the end; positional arguments go to pos
 * (at most npos_max; *npos counts them all). optind must be 1 before the first call. */
static int next_opt(int argc, char **argv, const struct option *opts, const char **pos, int npos_max, int *npos)
{
	for (;;) {
		int ch = getopt_long(argc, argv, "+", opts, NULL);
		if (ch != -1)
			return ch;
		if (optind >= argc)
			return -1;
		if (*npos < npos_max)
			pos[*npos] = argv[optind];
		(*npos)++;
		optind++;
	}
}

/* ---- on.push ------------------------------------------------------------------------------- */

static int any_match(const rn_strs *pats, const char *s)
{
	for (size_t i = 0; i < pats->n; i++)
		if (rn_glob_match(pats->v[i], s))
			return 1;
	return 0;
}

/* The paths a push of ref from old to new changed: against old, or for a new ref against its
 * merge base with the default branch (every file when there is none). *too_many when more than
 * CHANGED_MAX changed. */
static int push_changes(char ***paths, size_t *n, int *too_many, const char *git_dir, const char *ref,
			const char *old, const char *new_sha)
{
	*too_many = 0;
	char base[41] = "";
	if (!rn_gitread_is_zero(old)) {
		snprintf(base, sizeof(base), "%s", old);
	} else {
		char *def = NULL, def_sha[41];
		if (rn_gitread_default_branch(&def, git_dir) == 0 && strcmp(def, ref) != 0 &&
		    rn_gitread_resolve(def_sha, git_dir, def) == 0 &&
		    rn_gitread_merge_base(base, git_dir, new_sha, def_sha) < 0)
			base[0] = '\0';
		free(def);
	}
	int rc = rn_gitread_changed(paths, n, git_dir, base[0] ? base : NULL, new_sha, CHANGED_MAX);
	if (rc == RN_ETOOBIG) {
		*too_many = 1;
		return 0;
	}
	return rc;
}

/* Whether p's on.push accepts the push; 1 run, 0 not (*why says why), <0 error. */
static int push_accepts(const rn_pipeline *p, const char *git_dir, const char *ref, const char *old,
			const char *new_sha, const char **why)
{
	const rn_push_filter *f = &p->push;
	int is_branch = rn_startswith(ref, "refs/heads/"), is_tag = rn_startswith(ref, "refs/tags/");
	*why = NULL;
	if (!is_branch && !is_tag) {
		*why = "not a branch or tag";
		return 0;
	}
	const char *name = ref + (is_branch ? 11 : 10);
	int has_branches = f->branches.n || f->branches_ignore.n, has_tags = f->tags.n || f->tags_ignore.n;
	if (is_tag) {
		if (!has_tags && has_branches) {
			*why = "on.push names only branches";
			return 0;
		}
		if (f->tags.n && !any_match(&f->tags, name)) {
			*why = "tag not in on.push.tags";
			return 0;
		}
		if (any_match(&f->tags_ignore, name)) {
			*why = "tag in on.push.tags-ignore";
			return 0;
		}
		return 1; /* paths filters are not applied to tags */
	}
	if (!has_branches && has_tags) {
		*why = "on.push names only tags";
		return 0;
	}
	if (f->branches.n && !any_match(&f->branches, name)) {
		*why = "branch not in on.push.branches";
		return 0;
	}
	if (any_match(&f->branches_ignore, name)) {
		*why = "branch in on.push.branches-ignore";
		return 0;
	}
	if (!f->paths.n && !f->paths_ignore.n)
		return 1;
	char **paths = NULL;
	size_t n = 0;
	int too_many = 0;
	int rc = push_changes(&paths, &n, &too_many, git_dir, ref, old, new_sha);
	if (rc < 0)
		return rc;
	if (too_many)
		return 1; /* too many to look at: run, as for a push that matches */
	int hit = 0;
	for (size_t i = 0; i < n && !hit; i++)
		hit = (!f->paths.n || any_match(&f->paths, paths[i])) && !any_match(&f->paths_ignore, paths[i]);
	rn_gitread_paths_free(paths, n);
	if (!hit)
		*why = n ? "no changed path matches on.push paths" : "no path changed";
	return hit;
}

/* ---- the queue ------------------------------------------------------------------------------- */

static char *state_path(const settings *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *state_path(const settings *s, const char *fmt, ...)
{
	char rel[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	return rn_xasprintf("%s/%s", s->state, rel);
}

/* Put an entry {run_id, mode, ref, sha, old, file, queued_ms} in queue/ under a name that sorts
 * in queueing order. */
static int enqueue(const settings *s, const char *run_id, const char *mode, const char *ref, const char *old,
		   const char *new_sha)
{
	char *qdir = state_path(s, "queue");
	int rc = rn_mkdir_p(qdir, 0755);
	if (rc < 0) {
		free(qdir);
		return rc;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char *path = rn_xasprintf("%s/%lld%09ld-%s.json", qdir, (long long)ts.tv_sec, ts.tv_nsec, run_id);
	json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "run_id", run_id, "mode", mode, "ref", ref, "sha",
			      new_sha, "old", old, "file", s->file, "queued_ms", (json_int_t)rn_wall_ms());
	rc = e ? write_json(path, e) : rn_error_set("a ref name that is not UTF-8");
	json_decref(e);
	free(path);
	free(qdir);
	return rc;
}

/* Start `runner hook run-queue GIT_DIR [--after PID]` fully detached: double fork, own session,
 * stdin from /dev/null, stdout and stderr appended to GIT_DIR/runner/worker.log, no other
 * descriptor. after > 0: the worker first waits (a few seconds at most) for that process to end. */
static int spawn_worker(const settings *s, pid_t after)
{
	char exe[PATH_MAX], after_s[32];
	if (rn_self_exe(exe, sizeof(exe)) < 0)
		return RN_EIO;
	snprintf(after_s, sizeof(after_s), "%d", (int)after);
	char *logpath = state_path(s, "worker.log");
	char *argv[] = { "runner", "hook", "run-queue", s->git_dir, after > 0 ? "--after" : NULL, after_s, NULL };
	long maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		free(logpath);
		return rn_error_errno("fork");
	}
	if (pid == 0) {
		/* only async-signal-safe calls from here to exec */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		int sigs[] = { SIGPIPE, SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGCHLD };
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			sigaction(sigs[i], &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (setsid() < 0)
			_exit(1);
		pid_t again = fork();
		if (again != 0)
			_exit(again < 0 ? 1 : 0);
		int nul = open("/dev/null", O_RDONLY);
		int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (nul < 0 || log < 0)
			_exit(1);
		if (dup2(nul, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
			_exit(1);
#ifdef SYS_close_range
		if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
			for (long fd = 3; fd < maxfd; fd++)
				close((int)fd);
		execv(exe, argv);
		_exit(127);
	}
	free(logpath);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return rn_error_set("could not start the background worker");
	return 0;
}

/* ---- post-receive ---------------------------------------------------------------------------- */

/* The first problem by position, as "FILE:LINE:COL: error: msg" (caller frees). */
static char *first_problem(const rn_diags *d, const char *file)
{
	const rn_diag *best = NULL;
	for (size_t i = 0; i < d->n; i++) {
		const rn_diag *x = &d->v[i];
		if (x->level != RN_DIAG_ERROR)
			continue;
		if (!best || x->line < best->line || (x->line == best->line && x->col < best->col))
			best = x;
	}
	if (!best)
		return rn_xasprintf("%s: invalid", file);
	return rn_xasprintf("%s:%d:%d: error: %s", file, best->line, best->col, best->msg);
}

/* POST /api/v1/pipelines; 0 with *id (caller frees) on 201; RN_ERROR with *transient set when
 * a later try may work (network, timeout, 5xx). */
static int server_queue(const settings *s, const char *ref, const char *sha, int attempts, long timeout_ms,
			char **id, int *transient)
{
	*id = NULL;
	*transient = 0;
	json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "repo", s->git_dir, "ref", ref, "sha", sha, "file", s->file);
	if (!body)
		return rn_error_set("a ref name that is not UTF-8");
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	const char *base = s->server;
	size_t bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	char *url = rn_xasprintf("%.*s/api/v1/pipelines", (int)bl, base);
	char *auth = s->token ? rn_xasprintf("Bearer %s", s->token) : NULL;
	rn_http_header h = { "Authorization", auth };
	rn_http_req req = {
		.url = url,
		.method = "POST",
		.headers = auth ? &h : NULL,
		.nheaders = auth ? 1 : 0,
		.body = text,
		.body_len = strlen(text),
		.timeout_ms = timeout_ms,
		.connect_timeout_ms = timeout_ms < 2000 ? timeout_ms : 2000,
		.attempts = attempts,
		.retry_delay_ms = 2000,
		.retry_max_delay_ms = 60000,
	};
	rn_http_resp resp = { 0 };
	int rc = rn_http_request(&req, &resp);
	if (rc == 0) {
		json_t *j = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
		json_t *v = json_object_get(j, "id");
		*id = json_is_string(v) ? rn_xstrdup(json_string_value(v))
		      : json_is_integer(v) ? rn_xasprintf("%lld", (long long)json_integer_value(v))
					   : rn_xstrdup("?");
		json_decref(j);
	} else {
		*transient = resp.transient;
		json_t *j = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
		json_t *probs = json_object_get(j, "problems");
		const char *err = json_string_value(json_object_get(j, "error"));
		if (json_array_size(probs) > 0 && json_is_string(json_array_get(probs, 0)))
			rn_error_set("HTTP %ld: %s", resp.status, json_string_value(json_array_get(probs, 0)));
		else if (err)
			rn_error_set("HTTP %ld: %s", resp.status, err);
		json_decref(j);
	}
	rn_http_resp_free(&resp);
	free(auth);
	free(url);
	free(text);
	return rc;
}

/* Decide one pushed ref; *queued set when a local run was queued. */
static void receive_ref(const settings *s, const char *old, const char *new_sha, const char *ref, int *queued)
{
	char so[8], sn[8];
	short_sha(so, old);
	short_sha(sn, new_sha);
	if (rn_gitread_is_zero(new_sha)) {
		hook_log(s, "%s %s..%s: deleted: nothing runs", ref, so, sn);
		return;
	}
	if (!rn_startswith(ref, "refs/heads/") && !rn_startswith(ref, "refs/tags/")) {
		hook_log(s, "%s %s..%s: skipped: not a branch or tag", ref, so, sn);
		return;
	}
	char *data = NULL;
	size_t len = 0;
	int rc = rn_gitread_file(&data, &len, s->git_dir, new_sha, s->file, WORKFLOW_MAX);
	if (rc == RN_ENOTFOUND) {
		hook_log(s, "%s %s..%s: skipped: no %s in the commit", ref, so, sn, s->file);
		return;
	}
	if (rc < 0) {
		fprintf(stderr, "runner: %s: %s: nothing runs\n", ref, rn_error_last());
		hook_log(s, "%s %s..%s: error: %s", ref, so, sn, rn_error_last());
		return;
	}
	rn_diags d = RN_DIAGS_INIT(s->file);
	rn_pipeline *p = NULL;
	rn_graph g = { NULL, 0 };
	rc = rn_workflow_parse(&p, s->file, data, len, &d);
	if (rc == 0)
		rc = rn_graph_build(&g, p, &d);
	free(data);
	if (rc < 0) {
		char *first = first_problem(&d, s->file);
		size_t n = d.errors;
		fprintf(stderr, "runner: %s %s: invalid workflow, nothing runs (push accepted): %s%s\n", ref, sn, first,
			n > 1 ? " (and more: see hook.log)" : "");
		hook_log(s, "%s %s..%s: invalid workflow: %zu problem%s, nothing runs", ref, so, sn, n, n == 1 ? "" : "s");
		for (size_t i = 0; i < d.n && i < 20; i++)
			hook_log(s, "  %s:%d:%d: %s: %s", s->file, d.v[i].line, d.v[i].col,
				 d.v[i].level == RN_DIAG_ERROR ? "error" : "warning", d.v[i].msg);
		free(first);
		goto done;
	}
	const char *why = NULL;
	rc = push_accepts(p, s->git_dir, ref, old, new_sha, &why);
	if (rc < 0) {
		fprintf(stderr, "runner: %s: %s: nothing runs\n", ref, rn_error_last());
		hook_log(s, "%s %s..%s: error: %s", ref, so, sn, rn_error_last());
		goto done;
	}
	if (rc == 0) {
		hook_log(s, "%s %s..%s: skipped: %s", ref, so, sn, why);
		goto done;
	}
	if (s->server) {
		char *id = NULL;
		int transient = 0;
		if (server_queue(s, ref, new_sha, 1, SERVER_TIMEOUT_MS, &id, &transient) == 0) {
			fprintf(stderr, "runner: %s %s: pipeline %s queued on %s\n", ref, sn, id, s->server);
			hook_log(s, "%s %s..%s: server: pipeline %s queued", ref, so, sn, id);
			free(id);
		} else if (transient) {
			char *rid = rn_run_id_new();
			fprintf(stderr, "runner: %s %s: the server did not answer (%s): retrying in the background\n", ref, sn,
				rn_error_last());
			hook_log(s, "%s %s..%s: server: %s: retrying in the background (%s)", ref, so, sn, rn_error_last(), rid);
			if (enqueue(s, rid, "server", ref, old, new_sha) == 0)
				*queued = 1;
			else
				hook_log(s, "%s: cannot queue: %s", rid, rn_error_last());
			free(rid);
		} else {
			fprintf(stderr, "runner: %s %s: the server refused the pipeline: %s\n", ref, sn, rn_error_last());
			hook_log(s, "%s %s..%s: server: refused: %s", ref, so, sn, rn_error_last());
		}
		goto done;
	}
	char *rid = rn_run_id_new();
	if (enqueue(s, rid, "local", ref, old, new_sha) == 0) {
		*queued = 1;
		fprintf(stderr, "runner: %s %s: run %s queued (runner hook status %s)\n", ref, sn, rid, s->git_dir);
		hook_log(s, "%s %s..%s: queued: run %s", ref, so, sn, rid);
	} else {
		fprintf(stderr, "runner: %s: cannot queue the run: %s\n", ref, rn_error_last());
		hook_log(s, "%s %s..%s: error: cannot queue: %s", ref, so, sn, rn_error_last());
	}
	free(rid);
done:
	rn_graph_free(&g);
	rn_pipeline_free(p);
	rn_diags_free(&d);
}

static int cmd_post_receive(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "git-dir", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	const char *git_dir = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (ch != 'g') {
			fprintf(stderr, "runner hook: post-receive: unknown option %s\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
		git_dir = optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "runner hook: post-receive takes no arguments (the refs come on stdin)\n");
		return EXIT_USAGE;
	}
	const char *env_git_dir = getenv("GIT_DIR");
	if (!git_dir)
		git_dir = env_git_dir && *env_git_dir ? env_git_dir : ".";
	settings s;
	if (settings_load(&s, git_dir) < 0) {
		/* never fail the push: say why nothing runs */
		fprintf(stderr, "runner: %s: nothing runs\n", rn_error_last());
		return EXIT_OK;
	}
	char line[LINE_MAX_BYTES + 2];
	int queued = 0;
	size_t nrefs = 0;
	while (fgets(line, sizeof(line), stdin)) {
		size_t n = strlen(line);
		if (n > 0 && line[n - 1] != '\n' && !feof(stdin)) {
			int c;
			while ((c = getchar()) != EOF && c != '\n') {
			}
			hook_log(&s, "skipped: a line longer than %d bytes on stdin", LINE_MAX_BYTES);
			continue;
		}
		line[strcspn(line, "\r\n")] = '\0';
		char *save = NULL;
		char *old = strtok_r(line, " ", &save), *new_sha = strtok_r(NULL, " ", &save);
		char *ref = strtok_r(NULL, " ", &save);
		if (!old)
			continue; /* an empty line */
		if (!new_sha || !ref || !is_hex_sha(old) || !is_hex_sha(new_sha)) {
			hook_log(&s, "skipped: not an `<old> <new> <ref>` line");
			continue;
		}
		if (++nrefs > REFS_MAX) {
			if (nrefs == REFS_MAX + 1)
				hook_log(&s, "skipped: more than %d refs in one push; the rest is ignored", REFS_MAX);
			continue;
		}
		receive_ref(&s, old, new_sha, ref, &queued);
	}
	/* run by git (GIT_DIR set): the worker lets receive-pack, our parent, finish the push before it
	 * takes the CPU for a checkout and a run */
	pid_t after = getenv("GIT_DIR") && getppid() > 1 ? getppid() : 0;
	if (queued && spawn_worker(&s, after) < 0) {
		fprintf(stderr, "runner: %s\n", rn_error_last());
		hook_log(&s, "error: %s", rn_error_last());
	}
	settings_free(&s);
	return EXIT_OK;
}

/* ---- the worker ------------------------------------------------------------------------------ */

/* Take one of the jobs slot locks without waiting: its fd, or -1 when all are taken. */
static int take_slot(const settings *s)
{
	char *dir = state_path(s, "locks");
	if (rn_mkdir_p(dir, 0755) < 0) {
		free(dir);
		return -1;
	}
	int got = -1;
	for (int i = 0; i < s->jobs && got < 0; i++) {
		char *path = rn_xasprintf("%s/slot-%d", dir, i);
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		free(path);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			got = fd;
		else
			close(fd);
	}
	free(dir);
	return got;
}

static int not_hidden(const struct dirent *e)
{
	return e->d_name[0] != '.' && strstr(e->d_name, ".json") && !strstr(e->d_name, ".tmp.");
}

/* Claim the oldest queued entry (rename queue/X -> running/X): its JSON, *name its file name
 * (caller frees); NULL when the queue is empty. */
static json_t *claim(const settings *s, char **name)
{
	*name = NULL;
	char *qdir = state_path(s, "queue"), *rdir = state_path(s, "running");
	rn_mkdir_p(rdir, 0755);
	struct dirent **list = NULL;
	int n = scandir(qdir, &list, not_hidden, alphasort);
	json_t *entry = NULL;
	for (int i = 0; i < n; i++) {
		if (!entry) {
			char *from = rn_xasprintf("%s/%s", qdir, list[i]->d_name);
			char *to = rn_xasprintf("%s/%s", rdir, list[i]->d_name);
			if (rename(from, to) == 0) {
				entry = read_json(to);
				if (!entry) {
					fprintf(stderr, "runner hook: %s: not a queue entry; removed\n", to);
					unlink(to);
				} else {
					*name = rn_xstrdup(list[i]->d_name);
				}
			}
			free(from);
			free(to);
		}
		free(list[i]);
	}
	free(list);
	free(qdir);
	free(rdir);
	return entry;
}

static int queue_empty(const settings *s)
{
	char *qdir = state_path(s, "queue");
	struct dirent **list = NULL;
	int n = scandir(qdir, &list, not_hidden, alphasort);
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	free(qdir);
	return n <= 0;
}

/* Point GIT_DIR/runner/latest/<ref without refs/> at the run directory (a relative link,
 * replaced atomically). */
static void update_latest(const settings *s, const char *ref, const char *run_id)
{
	const char *rel = rn_startswith(ref, "refs/") ? ref + 5 : ref;
	if (strstr(rel, "..") || rel[0] == '/' || !*rel)
		return;
	char *link = state_path(s, "latest/%s", rel);
	char *dir = rn_xstrdup(link);
	*strrchr(dir, '/') = '\0';
	rn_mkdir_p(dir, 0755);
	rn_buf target = RN_BUF_INIT(PATH_MAX);
	rn_buf_puts(&target, "../");
	for (const char *p = rel; *p; p++)
		if (*p == '/')
			rn_buf_puts(&target, "../");
	rn_buf_puts(&target, run_id);
	char *tmp = rn_xasprintf("%s.tmp.%d", link, (int)getpid());
	unlink(tmp);
	struct stat st;
	if (lstat(link, &st) == 0 && S_ISDIR(st.st_mode))
		rn_rm_rf(link); /* a ref "a" after refs "a/..." were deleted */
	if (symlink(rn_buf_cstr(&target), tmp) < 0 || rename(tmp, link) < 0) {
		fprintf(stderr, "runner hook: latest link %s: %s\n", link, strerror(errno));
		unlink(tmp);
	}
	rn_buf_free(&target);
	free(tmp);
	free(dir);
	free(link);
}

/* The status word of a `runner run` exit status. */
static const char *run_status(int code)
{
	switch (code) {
	case 0:
		return "success";
	case 1:
		return "failure";
	case 2:
		return "invalid";
	case 130:
	case 143:
		return "cancelled";
	default:
		return "error";
	}
}

/* Drop the variables git sets for hooks: a step running git in its checkout must not be
 * pointed at the pushed-to repository. */
static void clean_git_env(void)
{
	static const char *const vars[] = {
		"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
		"GIT_QUARANTINE_PATH", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_REFLOG_ACTION",
		"GIT_PUSH_OPTION_COUNT",
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(vars); i++)
		unsetenv(vars[i]);
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++) {
			if (rn_startswith(*e, "GIT_PUSH_OPTION_")) {
				char *name = rn_xstrndup(*e, strcspn(*e, "="));
				unsetenv(name);
				free(name);
				again = 1;
				break;
			}
		}
	}
}

/* Make HEAD of the checkout at dir the local branch `name` at its commit, so that the run's git
 * contexts (git.ref, git.branch, RUNNER_REF) name the pushed branch. */
static int attach_branch(const char *dir, const char *name)
{
	git_repository *repo = NULL;
	git_reference *head = NULL, *br = NULL;
	git_commit *c = NULL;
	int rc = -1;
	if (rn_git_init() < 0)
		return RN_ERROR;
	char *full = rn_xasprintf("refs/heads/%s", name);
	if (git_repository_open(&repo, dir) == 0 && git_repository_head(&head, repo) == 0 &&
	    git_commit_lookup(&c, repo, git_reference_target(head)) == 0 &&
	    git_branch_create(&br, repo, name, c, 1) == 0 && git_repository_set_head(repo, full) == 0)
		rc = 0;
	if (rc < 0) {
		const git_error *e = git_error_last();
		rn_error_set("branch %s in the checkout: %s", name, e && e->message ? e->message : "failed");
	}
	git_error_clear();
	free(full);
	git_reference_free(br);
	git_commit_free(c);
	git_reference_free(head);
	git_repository_free(repo);
	rn_git_shutdown();
	return rc;
}

/* Run `runner run` of the checkout: its exit status (or 3 when it could not start). */
static int exec_run(const settings *s, const char *exe, const char *work, const char *rundir, const char *file,
		    int logfd)
{
	char *wf = rn_xasprintf("%s/%s", work, file);
	const char *argv[16];
	int n = 0;
	argv[n++] = "runner";
	argv[n++] = "run";
	argv[n++] = "--no-color";
	argv[n++] = "--workdir";
	argv[n++] = work;
	argv[n++] = "--log-dir";
	argv[n++] = rundir;
	if (s->secrets) {
		argv[n++] = "--secret-file";
		argv[n++] = s->secrets;
	}
	argv[n++] = "--";
	argv[n++] = wf;
	argv[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		free(wf);
		return EXIT_INFRA;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 || chdir(work) < 0)
			_exit(EXIT_INFRA);
		execv(exe, (char *const *)argv);
		_exit(EXIT_INFRA);
	}
	free(wf);
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return EXIT_INFRA;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Process one claimed local entry. */
static void run_local(const settings *s, json_t *e, const char *exe)
{
	const char *rid = jstr(e, "run_id"), *ref = jstr(e, "ref"), *sha = jstr(e, "sha"), *file = jstr(e, "file");
	char ss[8];
	short_sha(ss, sha);
	char *rundir = state_path(s, "%s", rid), *work = state_path(s, "work/%s", rid);
	char *logpath = rn_xasprintf("%s/output.log", rundir), *runjson = rn_xasprintf("%s/run.json", rundir);
	int64_t t0 = rn_wall_ms();
	json_t *info = json_deep_copy(e);
	json_object_set_new(info, "status", json_string("running"));
	json_object_set_new(info, "started_ms", json_integer(t0));
	json_object_set_new(info, "pid", json_integer(getpid()));
	json_object_set_new(info, "logs", json_string(rundir));
	int code = EXIT_INFRA, logfd = -1;
	if (rn_mkdir_p(rundir, 0755) < 0 || write_json(runjson, info) < 0 ||
	    (logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
		hook_log(s, "%s: error: %s", rid, logfd < 0 && errno ? strerror(errno) : rn_error_last());
		goto finish;
	}
	update_latest(s, ref, rid);
	hook_log(s, "%s: started: %s %s", rid, ref, ss);
	FILE *lf = fdopen(dup(logfd), "a");
	if (lf) {
		fprintf(lf, "runner hook: run %s of %s at %s (%s)\n", rid, ref, sha, file);
		fflush(lf);
	}
	char *cache = state_path(s, "cache");
	rn_git_opts go = { .cache_dir = cache, .progress = RN_GIT_PROGRESS_NONE, .progress_out = lf };
	rn_git_result res;
	rn_rm_rf(work);
	int rc = rn_mkdir_p(work, 0755);
	if (rc == 0)
		rc = rn_git_checkout(s->git_dir, sha, work, &go, &res);
	if (rc == 0 && rn_startswith(ref, "refs/heads/"))
		rc = attach_branch(work, ref + 11);
	free(cache);
	if (rc < 0) {
		if (lf)
			fprintf(lf, "runner hook: checkout of %s failed: %s\n", sha, rn_error_last());
		hook_log(s, "%s: error: checkout: %s", rid, rn_error_last());
		if (lf)
			fclose(lf);
		goto finish;
	}
	if (lf)
		fclose(lf);
	code = exec_run(s, exe, work, rundir, file, logfd);
finish:
	if (logfd >= 0)
		close(logfd);
	rn_rm_rf(work);
	int64_t t1 = rn_wall_ms();
	json_object_set_new(info, "status", json_string(run_status(code)));
	json_object_set_new(info, "exit_code", json_integer(code));
	json_object_set_new(info, "finished_ms", json_integer(t1));
	json_object_set_new(info, "duration_ms", json_integer(t1 - t0));
	if (write_json(runjson, info) < 0)
		hook_log(s, "%s: error: %s", rid, rn_error_last());
	hook_log(s, "%s: finished: %s (exit %d, %.1f s)", rid, run_status(code), code, (double)(t1 - t0) / 1000.0);
	json_decref(info);
	free(rundir);
	free(work);
	free(logpath);
	free(runjson);
}

/* Process one claimed server entry (a POST that failed in the hook): retried with backoff. */
static void run_server(const settings *s, json_t *e)
{
	const char *rid = jstr(e, "run_id"), *ref = jstr(e, "ref"), *sha = jstr(e, "sha");
	if (!s->server) {
		hook_log(s, "%s: dropped: runner.server is no longer set", rid);
		return;
	}
	char *id = NULL;
	int transient = 0;
	if (server_queue(s, ref, sha, SERVER_RETRIES, 30000, &id, &transient) == 0)
		hook_log(s, "%s: server: pipeline %s queued for %s %.7s", rid, id, ref, sha);
	else
		hook_log(s, "%s: server: gave up on %s %.7s: %s", rid, ref, sha, rn_error_last());
	free(id);
}

static int is_run_dir(const struct dirent *e);

/* Collect the run ids the latest/ links point at (recursively under dir) into keep. */
static void latest_targets(const char *dir, json_t *keep, int depth)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *p = rn_xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(p, target, sizeof(target) - 1);
			if (n > 0) {
				target[n] = '\0';
				const char *base = strrchr(target, '/');
				json_object_set_new(keep, base ? base + 1 : target, json_true());
			}
		} else if (S_ISDIR(st.st_mode) && depth < 64) {
			latest_targets(p, keep, depth + 1);
		}
		free(p);
	}
	closedir(d);
}

/* Queued entries and runs, newest first. */
static int cmp_runs(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t qx = json_integer_value(json_object_get(x, "queued_ms"));
	json_int_t qy = json_integer_value(json_object_get(y, "queued_ms"));
	if (qx != qy)
		return qx < qy ? 1 : -1;
	return strcmp(jstr(y, "run_id"), jstr(x, "run_id"));
}

/* Remove finished runs past the newest runner.keep (never one a latest link points at), and
 * start a new hook.log when it has grown past HOOK_LOG_MAX. Runs are ordered by the time they
 * were queued, not by id: two runs of one second have ids in random order. */
static void prune(const settings *s)
{
	struct dirent **list = NULL;
	int nd = scandir(s->state, &list, is_run_dir, alphasort);
	json_t **runs = NULL;
	size_t n = 0, cap = 0;
	for (int i = 0; i < nd; i++) {
		char *rj = state_path(s, "%s/run.json", list[i]->d_name);
		json_t *r = read_json(rj);
		free(rj);
		if (r && strcmp(jstr(r, "run_id"), list[i]->d_name) == 0) {
			rn_grow(&runs, &cap, n + 1, sizeof(*runs));
			runs[n++] = r;
		} else {
			json_decref(r);
		}
		free(list[i]);
	}
	free(list);
	if (n > 1)
		qsort(runs, n, sizeof(*runs), cmp_runs); /* newest first */
	json_t *keep = json_object();
	char *latest = state_path(s, "latest");
	latest_targets(latest, keep, 0);
	free(latest);
	int kept = 0;
	for (size_t i = 0; i < n; i++) {
		const char *id = jstr(runs[i], "run_id");
		if (strcmp(jstr(runs[i], "status"), "running") != 0) {
			char *dir = state_path(s, "%s", id);
			if (kept >= s->keep && !json_object_get(keep, id)) {
				if (rn_rm_rf(dir) == 0)
					hook_log(s, "%s: removed (runner.keep = %d)", id, s->keep);
			} else {
				kept++;
			}
			free(dir);
		}
		json_decref(runs[i]);
	}
	free(runs);
	json_decref(keep);
	char *log = state_path(s, "hook.log"), *old = state_path(s, "hook.log.1");
	struct stat st;
	if (stat(log, &st) == 0 && (unsigned long long)st.st_size > HOOK_LOG_MAX)
		rename(log, old);
	free(log);
	free(old);
}

/* Wait until process pid has ended, at most max_ms (a pidfd where the kernel has them). */
static void wait_pid_gone(pid_t pid, int max_ms)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		struct pollfd p = { fd, POLLIN, 0 };
		while (poll(&p, 1, max_ms) < 0 && errno == EINTR) {
		}
		close(fd);
		return;
	}
#endif
	for (int waited = 0; waited < max_ms && (kill(pid, 0) == 0 || errno == EPERM); waited += 10)
		usleep(10000);
}

static int cmd_run_queue(int argc, char **argv)
{
	long after = 0;
	if (argc == 4 && strcmp(argv[2], "--after") == 0) {
		char *end;
		after = strtol(argv[3], &end, 10);
		if (*end || after < 1)
			after = -1;
	}
	if ((argc != 2 && argc != 4) || after < 0) {
		fprintf(stderr, "runner hook: usage: runner hook run-queue GIT_DIR [--after PID]\n");
		return EXIT_USAGE;
	}
	if (after > 0)
		wait_pid_gone((pid_t)after, AFTER_MAX_MS);
	if (rn_git_init() < 0) {
		fprintf(stderr, "runner hook: %s\n", rn_error_last());
		return EXIT_INFRA;
	}
	settings s;
	if (settings_load(&s, argv[1]) < 0) {
		fprintf(stderr, "runner hook: %s\n", rn_error_last());
		rn_git_shutdown();
		return EXIT_INFRA;
	}
	char exe[PATH_MAX];
	if (rn_self_exe(exe, sizeof(exe)) < 0) {
		fprintf(stderr, "runner hook: %s\n", rn_error_last());
		settings_free(&s);
		rn_git_shutdown();
		return EXIT_INFRA;
	}
	clean_git_env();
	if (chdir(s.git_dir) < 0) {
		/* not needed for anything: runs use absolute paths */
	}
	for (;;) {
		int slot = take_slot(&s);
		if (slot < 0)
			break; /* runner.jobs workers are busy: one of them will take what is queued */
		char *name;
		json_t *e;
		while ((e = claim(&s, &name))) {
			if (strcmp(jstr(e, "mode"), "server") == 0)
				run_server(&s, e);
			else
				run_local(&s, e, exe);
			char *done = state_path(&s, "running/%s", name);
			unlink(done);
			free(done);
			free(name);
			json_decref(e);
			prune(&s);
		}
		close(slot);
		if (queue_empty(&s))
			break;
	}
	settings_free(&s);
	rn_git_shutdown();
	return EXIT_OK;
}

/* ---- install --------------------------------------------------------------------------------- */

static int file_has_marker(const char *path)
{
	char *data = NULL;
	size_t len;
	if (rn_read_file(&data, &len, path, 1 << 20) < 0)
		return 0;
	int ours = strstr(data, HOOK_MARKER) != NULL;
	free(data);
	return ours;
}

static int write_hook(const char *path, const char *exe)
{
	char *q = sh_quote(exe);
	char *script = rn_xasprintf(
		"#!/bin/sh\n" HOOK_MARKER " (runner " RN_VERSION ").\n"
		"# On each push it runs or queues the pipeline of the pushed refs (settings: git config runner.*;\n"
		"# see `runner help hook`). A post-receive hook cannot fail the push; the hook that was here\n"
		"# before, if any, is post-receive.orig and runs first. Remove with `runner hook uninstall`.\n"
		"runner=%s\n"
		"if [ ! -x \"$runner\" ]; then\n"
		"\techo \"runner: $runner not found: no CI run for this push\" >&2\n"
		"\texec cat >/dev/null\n"
		"fi\n"
		"if [ -x \"${0%%/*}/post-receive.orig\" ]; then\n"
		"\tinput=$(cat)\n"
		"\tprintf '%%s\\n' \"$input\" | \"${0%%/*}/post-receive.orig\" \"$@\"\n"
		"\tprintf '%%s\\n' \"$input\" | \"$runner\" hook post-receive\n"
		"\texit 0\n"
		"fi\n"
		"exec \"$runner\" hook post-receive\n",
		q);
	free(q);
	char *tmp = rn_xasprintf("%s.tmp.%d", path, (int)getpid());
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (fd < 0)
		rc = rn_error_errno("%s", tmp);
	else if ((rc = rn_write_all(fd, script, strlen(script))) < 0 || fchmod(fd, 0755) < 0 || fsync(fd) < 0)
		rc = rc < 0 ? rc : rn_error_errno("%s", tmp);
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = rn_error_errno("%s", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = rn_error_errno("rename %s", path);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	free(script);
	return rc;
}

static int set_or_unset(const char *git_dir, const char *key, const char *value)
{
	int rc = rn_gitread_config_set(git_dir, key, value);
	if (rc < 0)
		fprintf(stderr, "runner hook: config %s: %s\n", key, rn_error_last());
	return rc;
}

static int cmd_install(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "token", required_argument, NULL, 't' },
		{ "file", required_argument, NULL, 'f' },
		{ "jobs", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *token = NULL, *file = NULL, *jobs = NULL, *pos[1];
	int ch, npos = 0;
	optind = 1;
	while ((ch = next_opt(argc, argv, opts, pos, 1, &npos)) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case 't':
			token = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'j':
			jobs = optarg;
			break;
		default:
			fprintf(stderr, "runner hook: install: unknown option %s\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (npos != 1) {
		fprintf(stderr, "runner hook: install wants one GIT_DIR (a bare repository or a .git directory)\n");
		return EXIT_USAGE;
	}
	if (token && !server) {
		fprintf(stderr, "runner hook: install: --token goes with --server\n");
		return EXIT_USAGE;
	}
	if (server && !rn_startswith(server, "http://") && !rn_startswith(server, "https://")) {
		fprintf(stderr, "runner hook: install: --server wants an http:// or https:// URL, not '%s'\n", server);
		return EXIT_USAGE;
	}
	if (jobs) {
		char *end;
		long n = strtol(jobs, &end, 10);
		if (*end || n < 1 || n > JOBS_MAX) {
			fprintf(stderr, "runner hook: install: --jobs wants a number from 1 to %d, not '%s'\n", JOBS_MAX, jobs);
			return EXIT_USAGE;
		}
	}
	if (file && (!*file || file[0] == '/' || strstr(file, ".."))) {
		fprintf(stderr, "runner hook: install: --file wants a path inside the repository, not '%s'\n", file);
		return EXIT_USAGE;
	}
	const char *repo = pos[0];
	char *git_dir = NULL, *hooks = NULL, exe[PATH_MAX];
	int rc = rn_gitread_git_dir(&git_dir, NULL, repo);
	if (rc == 0)
		rc = rn_gitread_hooks_dir(&hooks, repo);
	if (rc < 0) {
		fprintf(stderr, "runner hook: install: %s\n", rn_error_last());
		free(git_dir);
		return rc == RN_ENOTFOUND ? EXIT_USAGE : EXIT_INFRA;
	}
	int exit_code = EXIT_INFRA;
	char *hook = rn_xasprintf("%s/post-receive", hooks), *orig = rn_xasprintf("%s/post-receive.orig", hooks);
	struct stat st;
	if (rn_self_exe(exe, sizeof(exe)) < 0 || rn_mkdir_p(hooks, 0755) < 0) {
		fprintf(stderr, "runner hook: install: %s\n", rn_error_last());
		goto done;
	}
	int kept = 0;
	if (lstat(hook, &st) == 0 && !file_has_marker(hook)) {
		if (lstat(orig, &st) == 0) {
			fprintf(stderr,
				"runner hook: install: %s exists and is not ours, and %s is taken too: move one of them away first\n",
				hook, orig);
			goto done;
		}
		if (rename(hook, orig) < 0) {
			fprintf(stderr, "runner hook: install: rename %s: %s\n", hook, strerror(errno));
			goto done;
		}
		kept = 1;
	}
	if (set_or_unset(git_dir, "runner.server", server) < 0 || set_or_unset(git_dir, "runner.token", token) < 0 ||
	    set_or_unset(git_dir, "runner.file", file) < 0 || set_or_unset(git_dir, "runner.jobs", jobs) < 0)
		goto done;
	if (write_hook(hook, exe) < 0) {
		fprintf(stderr, "runner hook: install: %s\n", rn_error_last());
		goto done;
	}
	char *state = rn_xasprintf("%s/runner", git_dir);
	rn_mkdir_p(state, 0755);
	free(state);
	printf("installed %s (%s, pipeline file %s%s%s)\n", hook, server ? "queues on " : "local runs",
	       server ? server : "", file ? file : DEFAULT_FILE, "");
	if (!server)
		printf("local runs: at most %s at a time, logs under %s/runner/\n", jobs ? jobs : "1", git_dir);
	if (kept)
		printf("the existing hook is now %s and runs first\n", orig);
	else if (lstat(orig, &st) == 0)
		printf("%s runs first\n", orig);
	exit_code = EXIT_OK;
done:
	free(hook);
	free(orig);
	free(hooks);
	free(git_dir);
	return exit_code;
}

static int cmd_uninstall(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "runner hook: usage: runner hook uninstall GIT_DIR\n");
		return EXIT_USAGE;
	}
	char *git_dir = NULL, *hooks = NULL;
	int rc = rn_gitread_git_dir(&git_dir, NULL, argv[1]);
	if (rc == 0)
		rc = rn_gitread_hooks_dir(&hooks, argv[1]);
	if (rc < 0) {
		fprintf(stderr, "runner hook: uninstall: %s\n", rn_error_last());
		free(git_dir);
		return rc == RN_ENOTFOUND ? EXIT_USAGE : EXIT_INFRA;
	}
	int exit_code = EXIT_OK;
	char *hook = rn_xasprintf("%s/post-receive", hooks), *orig = rn_xasprintf("%s/post-receive.orig", hooks);
	struct stat st;
	if (lstat(hook, &st) == 0 && !file_has_marker(hook)) {
		fprintf(stderr, "runner hook: uninstall: %s is not ours: left alone\n", hook);
		exit_code = EXIT_USAGE;
	} else {
		if (lstat(hook, &st) == 0 && unlink(hook) < 0) {
			fprintf(stderr, "runner hook: uninstall: %s: %s\n", hook, strerror(errno));
			exit_code = EXIT_INFRA;
		} else if (lstat(orig, &st) == 0) {
			if (rename(orig, hook) < 0) {
				fprintf(stderr, "runner hook: uninstall: rename %s: %s\n", orig, strerror(errno));
				exit_code = EXIT_INFRA;
			} else {
				printf("restored %s\n", hook);
			}
		}
		static const char *const keys[] = { "runner.server", "runner.token", "runner.file", "runner.jobs" };
		for (size_t i = 0; i < RN_ARRAY_LEN(keys); i++)
			rn_gitread_config_set(git_dir, keys[i], NULL);
		if (exit_code == EXIT_OK)
			printf("removed the runner hook of %s (runs and logs stay in %s/runner/)\n", git_dir, git_dir);
	}
	free(hook);
	free(orig);
	free(hooks);
	free(git_dir);
	return exit_code;
}

/* ---- status ---------------------------------------------------------------------------------- */

static int is_run_dir(const struct dirent *e)
{
	return e->d_name[0] >= '0' && e->d_name[0] <= '9';
}


/* REF as a full ref: "main" -> refs/heads/main, a tag name -> refs/tags/..., refs/... as is. */
static char *full_ref(const char *git_dir, const char *ref)
{
	if (rn_startswith(ref, "refs/"))
		return rn_xstrdup(ref);
	char *heads = rn_xasprintf("refs/heads/%s", ref), *tags = rn_xasprintf("refs/tags/%s", ref), sha[41];
	if (rn_gitread_resolve(sha, git_dir, heads) < 0 && rn_gitread_resolve(sha, git_dir, tags) == 0) {
		free(heads);
		return tags;
	}
	free(tags);
	return heads;
}

static void fmt_ms(char *buf, size_t size, json_int_t ms)
{
	if (ms < 60000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
	else
		snprintf(buf, size, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int as_json = 0, ch, npos = 0;
	const char *pos[2];
	long limit = 10;
	optind = 1;
	while ((ch = next_opt(argc, argv, opts, pos, 2, &npos)) != -1) {
		if (ch == 'J') {
			as_json = 1;
		} else if (ch == 'n') {
			char *end;
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1 || limit > 100000) {
				fprintf(stderr, "runner hook: status: --limit wants a positive number, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "runner hook: status: unknown option %s\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (npos < 1 || npos > 2) {
		fprintf(stderr, "runner hook: usage: runner hook status GIT_DIR [REF] [--json] [--limit N]\n");
		return EXIT_USAGE;
	}
	settings s;
	int rc = settings_load(&s, pos[0]);
	if (rc < 0) {
		fprintf(stderr, "runner hook: status: %s\n", rn_error_last());
		return rc == RN_ENOTFOUND ? EXIT_USAGE : EXIT_INFRA;
	}
	char *ref = npos > 1 ? full_ref(s.git_dir, pos[1]) : NULL;
	json_t **runs = NULL;
	size_t n = 0, cap = 0;
	/* runs that started (run.json), then queued ones */
	struct dirent **list = NULL;
	int nd = scandir(s.state, &list, is_run_dir, alphasort);
	for (int i = 0; i < nd; i++) {
		char *p = rn_xasprintf("%s/%s/run.json", s.state, list[i]->d_name);
		json_t *r = read_json(p);
		free(p);
		free(list[i]);
		if (!r)
			continue;
		if (strcmp(jstr(r, "status"), "running") == 0) {
			json_int_t pid = json_integer_value(json_object_get(r, "pid"));
			if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
				json_object_set_new(r, "status", json_string("lost"));
		}
		rn_grow(&runs, &cap, n + 1, sizeof(*runs));
		runs[n++] = r;
	}
	free(list);
	char *qdir = state_path(&s, "queue");
	nd = scandir(qdir, &list, not_hidden, alphasort);
	for (int i = 0; i < nd; i++) {
		char *p = rn_xasprintf("%s/%s", qdir, list[i]->d_name);
		json_t *r = read_json(p);
		free(p);
		free(list[i]);
		if (!r)
			continue;
		json_object_set_new(r, "status", json_string(strcmp(jstr(r, "mode"), "server") == 0 ? "retrying" : "queued"));
		rn_grow(&runs, &cap, n + 1, sizeof(*runs));
		runs[n++] = r;
	}
	free(list);
	free(qdir);
	if (n > 1)
		qsort(runs, n, sizeof(*runs), cmp_runs);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++) {
		if ((!ref || strcmp(jstr(runs[i], "ref"), ref) == 0) && (long)json_array_size(out) < limit)
			json_array_append(out, runs[i]);
		json_decref(runs[i]);
	}
	free(runs);
	/* the jobs of the newest run that has a summary */
	json_t *summary = NULL;
	const char *summary_run = NULL;
	for (size_t i = 0; i < json_array_size(out) && !summary; i++) {
		json_t *r = json_array_get(out, i);
		char *p = state_path(&s, "%s/summary.json", jstr(r, "run_id"));
		summary = read_json(p);
		free(p);
		if (summary) {
			summary_run = jstr(r, "run_id");
			json_object_set(r, "summary", summary);
		}
	}
	if (as_json) {
		json_t *doc = json_pack("{s:s, s:o, s:O}", "git_dir", s.git_dir, "ref", ref ? json_string(ref) : json_null(),
					"runs", out);
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			puts(text);
		free(text);
		json_decref(doc);
	} else if (json_array_size(out) == 0) {
		printf("no runs%s%s in %s\n", ref ? " of " : "", ref ? ref : "", s.git_dir);
	} else {
		printf("%-22s  %-24s  %-7s  %-9s  %-20s  %s\n", "RUN", "REF", "COMMIT", "STATUS", "STARTED", "DURATION");
		for (size_t i = 0; i < json_array_size(out); i++) {
			json_t *r = json_array_get(out, i);
			char when[40] = "-", dur[32] = "-";
			json_int_t st = json_integer_value(json_object_get(r, "started_ms"));
			if (st > 0) {
				rn_time_iso8601(when, sizeof(when), st, 0);
			}
			if (json_object_get(r, "duration_ms"))
				fmt_ms(dur, sizeof(dur), json_integer_value(json_object_get(r, "duration_ms")));
			printf("%-22s  %-24s  %.7s  %-9s  %-20s  %s\n", jstr(r, "run_id"), jstr(r, "ref"), jstr(r, "sha"),
			       jstr(r, "status"), when, dur);
		}
		if (summary) {
			printf("\njobs of run %s (%s):\n", summary_run, jstr(summary, "status"));
			json_t *jobs = json_object_get(summary, "jobs");
			for (size_t i = 0; i < json_array_size(jobs); i++) {
				json_t *j = json_array_get(jobs, i);
				char dur[32];
				fmt_ms(dur, sizeof(dur), json_integer_value(json_object_get(j, "duration_ms")));
				const char *reason = jstr(j, "reason");
				printf("  %-30s  %-9s  %8s%s%s\n", jstr(j, "name"), jstr(j, "status"), dur, *reason ? "  " : "",
				       reason);
			}
			printf("logs: %s/%s/\n", s.state, summary_run);
		}
	}
	json_decref(summary);
	json_decref(out);
	free(ref);
	settings_free(&s);
	return EXIT_OK;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

int rn_cmd_hook(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "runner hook: which one? install, uninstall, post-receive, status or run-queue\n");
		return EXIT_USAGE;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
		{ "install", cmd_install }, { "uninstall", cmd_uninstall }, { "post-receive", cmd_post_receive },
		{ "status", cmd_status },   { "run-queue", cmd_run_queue },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(subs); i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		if (subs[i].fn == cmd_run_queue)
			return cmd_run_queue(argc - 1, argv + 1); /* initialises libgit2 after its wait */
		/* one libgit2 initialisation for the whole command: each one loads the TLS certificates,
		 * which costs more than everything else the hook does */
		if (rn_git_init() < 0) {
			fprintf(stderr, "runner hook: %s\n", rn_error_last());
			return strcmp(argv[1], "post-receive") == 0 ? EXIT_OK : EXIT_INFRA;
		}
		int rc = subs[i].fn(argc - 1, argv + 1);
		rn_git_shutdown();
		return rc;
	}
	fprintf(stderr, "runner hook: unknown subcommand '%s' (install, uninstall, post-receive, status, run-queue)\n",
		argv[1]);
	return EXIT_USAGE;
}
