/* client.c - `runner submit|status|logs|cancel`: the user commands against a server, speaking
 * the protocol of docs/protocol.md (see docs/remote.md).
 *
 * JSON calls go through http.h (capped answers; idempotent ones retried with backoff). Logs are
 * streamed from a libcurl write callback straight to stdout, one answer (at most 1 MiB) at a
 * time, from the byte offset after the last one: nothing holds a whole log, and a broken
 * transfer resumes where it stopped. SIGINT/SIGTERM while following end the command with
 * 130/143 and leave the pipeline alone. */
#include "client.h"
#include "buf.h"
#include "error.h"
#include "git.h"
#include "gitread.h"
#include "http.h"
#include "units.h"
#include "jsonx.h"
#include "util.h"

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

#define JSON_MAX (16u * 1024 * 1024)                 /* cap of a JSON answer */
#define LOG_ANSWER_MAX (1024u * 1024 + 64 * 1024)    /* a log answer is at most 1 MiB */
#define ERR_BODY_MAX (64u * 1024)                    /* cap of an error answer of the log call */
#define POLL_MS 500                                  /* --wait: between two looks at the pipeline */
#define LOG_WAIT_S 30                                /* -f: the long-poll of one log request */
#define LOG_ATTEMPTS 6                               /* -f: tries of one log request */

/* Long options shared by every command. */
enum { OPT_SERVER = 1000, OPT_TOKEN, OPT_REPO, OPT_REF, OPT_SHA, OPT_FILE, OPT_ENV, OPT_WAIT, OPT_JSON,
       OPT_LIMIT, OPT_ATTEMPT };
#define COMMON_OPTS                                                                              \
	{ "server", required_argument, NULL, OPT_SERVER }, { "token", required_argument, NULL, OPT_TOKEN }, \
	{ "help", no_argument, NULL, 'h' }

/* A connection to the server for one command. */
typedef struct client {
	const char *cmd;    /* "submit", ... (for messages) */
	char *base;         /* the server URL without a trailing '/' */
	char *auth;         /* "Bearer TOKEN" (wiped when freed) */
	rn_http_header hdr; /* Authorization: auth */
	int attempts;       /* tries of idempotent calls */
} client;

/* The answer of a JSON call. */
typedef struct answer {
	long status;
	json_t *json; /* the body, when it is JSON */
	char *body;   /* the raw body (NUL-terminated) */
	size_t len;
} answer;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* SIGINT and SIGTERM set got_signal (no SA_RESTART: sleeps are cut short). */
static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int interrupted_exit(void)
{
	return got_signal == SIGTERM ? 143 : 130;
}

static int cancel_cb(void *arg)
{
	(void)arg;
	return got_signal != 0;
}

__attribute__((format(printf, 2, 3))) static int usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "runner %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* getopt_long's complaint about argv[optind - 1], as a usage error. */
static int bad_option(const char *cmd, int argc, char **argv)
{
	const char *opt = optind - 1 < argc ? argv[optind - 1] : "?";
	return usage(cmd, "invalid option or missing argument: %s (see 'runner help %s')", opt, cmd);
}

/* ---- output helpers ------------------------------------------------------------------------ */

/* A copy of s fit for a terminal: control characters become '?'; NULL or "" gives dflt. */
static char *term_str(const char *s, const char *dflt)
{
	if (!s || !*s)
		return rn_xstrdup(dflt);
	char *out = rn_xstrdup(s);
	for (unsigned char *p = (unsigned char *)out; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

/* Characters (UTF-8 code points) of s, for aligning columns. */
static size_t text_width(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			n++;
	return n;
}

/* A table printed with aligned columns; a row may instead be a free line (not aligned). */
typedef struct table {
	size_t ncols;
	char **cells; /* nrows * ncols; a free line: its text in the first cell, NULL in the others */
	char *isline; /* per row */
	size_t nrows, cap;
} table;

static void table_grow(table *t)
{
	if (t->nrows + 1 > t->cap) {
		size_t cap = t->cap;
		rn_grow(&t->isline, &cap, t->nrows + 1, 1);
		t->cells = rn_xreallocarray(t->cells, cap, t->ncols * sizeof(char *));
		t->cap = cap;
	}
}

/* Append a row of t->ncols cells (taken: terminal-safe strings the table frees). */
static void table_row(table *t, char **cells)
{
	table_grow(t);
	memcpy(t->cells + t->nrows * t->ncols, cells, t->ncols * sizeof(char *));
	t->isline[t->nrows++] = 0;
}

/* Append a free line (taken). */
static void table_line(table *t, char *line)
{
	table_grow(t);
	char **row = t->cells + t->nrows * t->ncols;
	row[0] = line;
	for (size_t i = 1; i < t->ncols; i++)
		row[i] = NULL;
	t->isline[t->nrows++] = 1;
}

static void table_print(const table *t, FILE *out)
{
	size_t *w = rn_xcalloc(t->ncols, sizeof(size_t));
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; !t->isline[r] && c < t->ncols; c++) {
			size_t n = text_width(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;
		if (t->isline[r]) {
			fprintf(out, "%s\n", row[0]);
			continue;
		}
		size_t last = t->ncols;
		while (last > 1 && !*row[last - 1])
			last--;
		for (size_t c = 0; c < last; c++) {
			fputs(row[c], out);
			if (c + 1 < last)
				fprintf(out, "%*s", (int)(w[c] - text_width(row[c]) + 2), "");
		}
		fputc('\n', out);
	}
	free(w);
}

static void table_free(table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->isline);
	memset(t, 0, sizeof(*t));
}

/* ---- JSON look-ups ------------------------------------------------------------------------- */

static int final_status(const char *st)
{
	static const char *const fin[] = { "success", "failure", "timed out", "cancelled", "skipped" };
	for (size_t i = 0; st && i < RN_ARRAY_LEN(fin); i++)
		if (strcmp(st, fin[i]) == 0)
			return 1;
	return 0;
}

/* Local time of ms since the epoch, "2024-05-01 12:00:03"; "-" when unknown (ms < 0). */
static void fmt_time(char *buf, size_t size, int64_t ms)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);
	if (ms < 0 || !localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, size, "-");
}

/* started..finished, started..now while running, "-" before the start. */
static void fmt_span(char *buf, size_t size, int64_t started, int64_t finished)
{
	if (started < 0)
		snprintf(buf, size, "-");
	else
		rn_duration_format(buf, size, (finished >= started ? finished : rn_wall_ms()) - started);
}

static const char *short_ref(const char *ref)
{
	if (ref && rn_startswith(ref, "refs/heads/"))
		return ref + 11;
	if (ref && rn_startswith(ref, "refs/tags/"))
		return ref + 10;
	return ref;
}

/* ---- ids ----------------------------------------------------------------------------------- */

enum { ID_BAD = 0, ID_PIPELINE, ID_JOB };

/* ID_PIPELINE for "17", ID_JOB for "17.3", else ID_BAD. */
static int id_kind(const char *s)
{
	size_t a = strspn(s, "0123456789");
	if (a == 0 || a > 18)
		return ID_BAD;
	if (!s[a])
		return ID_PIPELINE;
	if (s[a] != '.')
		return ID_BAD;
	size_t b = strspn(s + a + 1, "0123456789");
	return b > 0 && b <= 9 && !s[a + 1 + b] ? ID_JOB : ID_BAD;
}

static int bad_id(const char *cmd, const char *id)
{
	return usage(cmd, "invalid id '%s' (a pipeline id like 17 or a job id like 17.3)", id);
}

/* ---- the connection ------------------------------------------------------------------------ */

/* Fill c from the options or RUNNER_SERVER / RUNNER_TOKEN; an exit status (usage error), or -1. */
static int client_init(client *c, const char *cmd, const char *server, const char *token)
{
	memset(c, 0, sizeof(*c));
	c->cmd = cmd;
	c->attempts = 3;
	if (!server || !*server)
		server = getenv("RUNNER_SERVER");
	if (!token || !*token)
		token = getenv("RUNNER_TOKEN");
	if (!server || !*server)
		return usage(cmd, "no server: give --server URL or set RUNNER_SERVER");
	if (!token || !*token)
		return usage(cmd, "no token: give --token TOKEN or set RUNNER_TOKEN (the server's admin token)");
	if (strstr(server, "://"))
		c->base = rn_xstrdup(server);
	else
		c->base = rn_xasprintf("http://%s", server);
	if (!rn_startswith(c->base, "http://") && !rn_startswith(c->base, "https://")) {
		char *red = rn_http_url_redacted(c->base);
		usage(cmd, "--server %s: not an http:// or https:// URL", red);
		free(red);
		return EXIT_USAGE;
	}
	size_t n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	c->auth = rn_xasprintf("Bearer %s", token);
	c->hdr.name = "Authorization";
	c->hdr.value = c->auth;
	if (!rn_http_header_ok(c->hdr.name, c->hdr.value))
		return usage(cmd, "the token contains a line break");
	return -1;
}

static void client_free(client *c)
{
	free(c->base);
	if (c->auth) {
		memset(c->auth, 0, strlen(c->auth));
		free(c->auth);
	}
	memset(c, 0, sizeof(*c));
}

static void answer_free(answer *a)
{
	json_decref(a->json);
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/* Call the API: method path (below the base URL) with body (may be NULL), `attempts` tries on
 * connection failures and 5xx. 0 with a->status set (any status) and a->json when the answer is
 * JSON; else an exit status after a message on stderr: EXIT_INFRA (unreachable server, answer
 * too large), EXIT_USAGE (bad URL), 130/143 (interrupted). */
static int api(client *c, const char *method, const char *path, json_t *body, int attempts, answer *a)
{
	memset(a, 0, sizeof(*a));
	char *url = rn_xasprintf("%s%s", c->base, path);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	rn_http_req req = {
		.url = url,
		.method = method,
		.headers = &c->hdr,
		.nheaders = 1,
		.body = text,
		.body_len = text ? strlen(text) : 0,
		.attempts = attempts,
		.max_body = JSON_MAX,
		.cancel = cancel_cb,
		.timeout_ms = 120000,
	};
	rn_http_resp resp = { 0 };
	int rc = rn_http_request(&req, &resp);
	int ret = 0;
	if (resp.cancelled || got_signal) {
		ret = interrupted_exit();
	} else if (rc < 0 && resp.status == 0) {
		char *red = rn_http_url_redacted(c->base);
		if (rc == RN_EINVALID) {
			fprintf(stderr, "runner %s: --server %s: %s\n", c->cmd, red, rn_error_last());
			ret = EXIT_USAGE;
		} else {
			fprintf(stderr, "runner %s: cannot reach the server at %s: %s\n", c->cmd, red, rn_error_last());
			ret = EXIT_INFRA;
		}
		free(red);
	} else if (resp.truncated) {
		fprintf(stderr, "runner %s: the server's answer to %s %s is larger than %u MiB\n", c->cmd, method,
			path, JSON_MAX >> 20);
		ret = EXIT_INFRA;
	} else {
		a->status = resp.status;
		a->body = resp.body ? resp.body : rn_xstrdup("");
		a->len = resp.body ? resp.body_len : 0;
		resp.body = NULL;
		a->json = json_loadb(a->body, a->len, 0, NULL);
	}
	rn_http_resp_free(&resp);
	free(text);
	free(url);
	return ret;
}

/* Report an answer that is not the expected success; the exit status. `what` names the object
 * asked for ("pipeline 17"), for 404. */
static int fail_answer(client *c, const answer *a, const char *what)
{
	const char *err = rn_json_str(a->json, "error");
	const char *code = rn_json_str(a->json, "code");
	char *msg = NULL;
	if (err) {
		msg = term_str(err, "");
	} else if (a->len && !a->json) { /* not our server? the start of what it said */
		char *start = rn_xstrndup(a->body, a->len > 200 ? 200 : a->len);
		msg = term_str(start, "");
		free(start);
	}
	int ret;
	switch (a->status) {
	case 401:
	case 403:
		fprintf(stderr, "runner %s: the server refused the token (HTTP %ld%s%s)\n", c->cmd, a->status,
			msg ? ": " : "", msg ? msg : "");
		ret = EXIT_USAGE;
		break;
	case 404:
		if (what && (!code || strcmp(code, "no_commit") != 0))
			fprintf(stderr, "runner %s: no %s\n", c->cmd, what);
		else
			fprintf(stderr, "runner %s: %s\n", c->cmd, msg ? msg : "not found (HTTP 404)");
		ret = EXIT_USAGE;
		break;
	case 422: {
		json_t *problems = json_object_get(a->json, "problems");
		size_t i;
		json_t *p;
		json_array_foreach(problems, i, p)
			if (json_is_string(p))
				fprintf(stderr, "%s\n", json_string_value(p));
		if (!json_array_size(problems))
			fprintf(stderr, "runner %s: invalid workflow%s%s\n", c->cmd, msg ? ": " : "", msg ? msg : "");
		ret = EXIT_USAGE;
		break;
	}
	default:
		if (a->status == 400 && code && strcmp(code, "bad_repo") == 0) {
			fprintf(stderr, "runner %s: the server cannot fetch the repository%s%s\n", c->cmd,
				msg ? ": " : "", msg ? msg : "");
			ret = EXIT_INFRA;
		} else if (a->status >= 400 && a->status < 500) {
			fprintf(stderr, "runner %s: the server refused the request (HTTP %ld%s%s)\n", c->cmd,
				a->status, msg ? ": " : "", msg ? msg : "");
			ret = EXIT_USAGE;
		} else {
			fprintf(stderr, "runner %s: server error (HTTP %ld%s%s)\n", c->cmd, a->status, msg ? ": " : "",
				msg ? msg : "");
			ret = EXIT_INFRA;
		}
		break;
	}
	free(msg);
	return ret;
}

/* GET path expecting 200 and a JSON object in a->json; else the exit status (reported). */
static int get_json(client *c, const char *path, const char *what, answer *a)
{
	int rc = api(c, "GET", path, NULL, c->attempts, a);
	if (rc)
		return rc;
	if (a->status != 200)
		rc = fail_answer(c, a, what);
	else if (!json_is_object(a->json))
		rc = (fprintf(stderr, "runner %s: the server's answer to GET %s is not a JSON object\n", c->cmd, path),
		      EXIT_INFRA);
	if (rc)
		answer_free(a);
	return rc;
}

/* Print an answer's raw JSON body (--json), with a final newline. */
static void print_raw(const answer *a)
{
	fwrite(a->body, 1, a->len, stdout);
	if (!a->len || a->body[a->len - 1] != '\n')
		fputc('\n', stdout);
}

/* ---- submit -------------------------------------------------------------------------------- */

const char rn_cmd_submit_help[] =
	"options:\n"
	"      --server URL     the server (default: $RUNNER_SERVER)\n"
	"      --token T        its admin token (default: $RUNNER_TOKEN)\n"
	"      --repo R         a repository URL or a path on the server's machine (default: the\n"
	"                       git repository containing the current directory)\n"
	"      --ref REF        branch, tag or HEAD (a local --repo: default its current branch)\n"
	"      --sha SHA        the commit to run (a local --repo: default its HEAD commit)\n"
	"      --file F         the pipeline file in the repository (default .pipeline.yml)\n"
	"      --env K=V        extra environment for every step (repeatable)\n"
	"      --wait           follow the pipeline to its end; exit 0 success, 1 failure or cancelled\n"
	"      --json           print the server's JSON (with --wait: the finished pipeline)\n"
	"Prints the pipeline id. SIGINT while waiting stops following (the pipeline goes on).\n";

/* One line of --wait: a job's new state ("build (gcc): success in 1.234s"). */
static void print_job_change(json_t *job, FILE *out)
{
	const char *st = rn_json_str(job, "status");
	char *name = term_str(rn_json_str(job, "name"), "?");
	char *status = term_str(st, "unknown");
	int64_t attempt = rn_json_int(job, "attempt");
	fprintf(out, "%s: %s", name, status);
	if (final_status(st) && st && strcmp(st, "skipped") != 0 && rn_json_int(job, "started_ms") >= 0) {
		char d[32];
		fmt_span(d, sizeof(d), rn_json_int(job, "started_ms"), rn_json_int(job, "finished_ms"));
		fprintf(out, " in %s", d);
	}
	const char *agent = rn_json_str(job, "agent");
	if (st && (strcmp(st, "running") == 0 || strcmp(st, "assigned") == 0) && agent && *agent) {
		char *a = term_str(agent, "");
		fprintf(out, " on %s", a);
		free(a);
	}
	if (attempt > 1)
		fprintf(out, " (attempt %" PRId64 ")", attempt);
	const char *reason = rn_json_str(job, "reason");
	if (st && reason && *reason && final_status(st) && strcmp(st, "success") != 0 && strcmp(reason, st) != 0) {
		char *r = term_str(reason, "");
		fprintf(out, ": %s", r);
		free(r);
	}
	fputc('\n', out);
	fflush(out);
	free(name);
	free(status);
}

/* Print the jobs of pipeline p whose status or attempt differ from what seen ({id: "status#N"})
 * holds, and remember them. Returns 1 when the pipeline and all its jobs are finished. */
static int show_changes(json_t *p, json_t *seen, int print, FILE *out)
{
	size_t i;
	json_t *job;
	int done = final_status(rn_json_str(p, "status"));
	json_array_foreach(json_object_get(p, "jobs"), i, job) {
		char *id = rn_json_id(job, "id");
		const char *st = rn_json_str(job, "status");
		char *key = rn_xasprintf("%s#%" PRId64, st ? st : "", rn_json_int(job, "attempt"));
		const char *old = rn_json_str(seen, id);
		if (!old || strcmp(old, key) != 0) {
			if (print)
				print_job_change(job, out);
			json_object_set_new(seen, id, json_string(key));
		}
		if (!final_status(st))
			done = 0;
		free(key);
		free(id);
	}
	return done;
}

/* Sleep ms, cut short by a signal. */
static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	if (!got_signal)
		nanosleep(&ts, NULL);
}

/* --wait: follow pipeline id to its end; the exit status. */
static int follow_pipeline(client *c, const char *id, json_t *first, int json_out)
{
	FILE *out = json_out ? stderr : stdout;
	json_t *seen = json_object();
	char *path = rn_xasprintf("/api/v1/pipelines/%s", id);
	char *what = rn_xasprintf("pipeline %s", id);
	int ret;
	show_changes(first, seen, 1, out);
	c->attempts = 8; /* ride out a server restart (about 20 s of backoff) */
	for (;;) {
		answer a;
		nap(POLL_MS);
		if (got_signal) {
			ret = interrupted_exit();
			break;
		}
		ret = get_json(c, path, what, &a);
		if (ret)
			break;
		if (show_changes(a.json, seen, 1, out)) {
			const char *st = rn_json_str(a.json, "status");
			char *s = term_str(st, "unknown");
			fprintf(out, "pipeline %s: %s", id, s);
			if (rn_json_int(a.json, "started_ms") >= 0) {
				char d[32];
				fmt_span(d, sizeof(d), rn_json_int(a.json, "started_ms"), rn_json_int(a.json, "finished_ms"));
				fprintf(out, " in %s", d);
			}
			fputc('\n', out);
			free(s);
			if (json_out)
				print_raw(&a);
			ret = st && strcmp(st, "success") == 0 ? EXIT_OK : EXIT_FAILED;
			answer_free(&a);
			break;
		}
		answer_free(&a);
	}
	if (ret == 130 || ret == 143)
		fprintf(stderr, "runner %s: stopped following pipeline %s; it goes on (runner cancel %s stops it)\n",
			c->cmd, id, id);
	json_decref(seen);
	free(path);
	free(what);
	return ret;
}

int rn_cmd_submit(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "ref", required_argument, NULL, OPT_REF },
		{ "sha", required_argument, NULL, OPT_SHA },
		{ "file", required_argument, NULL, OPT_FILE },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *token = NULL, *repo = NULL, *ref = NULL, *sha = NULL, *file = NULL;
	int wait = 0, json_out = 0, ch, ret;
	json_t *env = json_object();
	json_t *body = NULL;
	char *top = NULL;
	client c = { 0 };
	answer a = { 0 };
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SERVER: server = optarg; break;
		case OPT_TOKEN: token = optarg; break;
		case OPT_REPO: repo = optarg; break;
		case OPT_REF: ref = optarg; break;
		case OPT_SHA: sha = optarg; break;
		case OPT_FILE: file = optarg; break;
		case OPT_WAIT: wait = 1; break;
		case OPT_JSON: json_out = 1; break;
		case OPT_ENV: {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				ret = usage(argv[0], "--env %s: expected KEY=VALUE", optarg);
				goto done;
			}
			char *k = rn_xstrndup(optarg, (size_t)(eq - optarg));
			int bad = json_object_set_new(env, k, json_string(eq + 1)) < 0;
			free(k);
			if (bad) {
				ret = usage(argv[0], "--env %s: not valid UTF-8", optarg);
				goto done;
			}
			break;
		}
		default:
			ret = bad_option(argv[0], argc, argv);
			goto done;
		}
	}
	if (optind < argc) {
		ret = usage(argv[0], "unexpected argument '%s'", argv[optind]);
		goto done;
	}
	ret = client_init(&c, "submit", server, token);
	if (ret >= 0)
		goto done;
	if (!repo) {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) || !(top = rn_gitread_toplevel(cwd))) {
			ret = usage(argv[0], "%s; give --repo", rn_error_last());
			goto done;
		}
		repo = top;
	} else if (!strstr(repo, "://")) {
		/* a local path: the server's machine is this one */
		char *abs = realpath(repo, NULL);
		if (!abs) {
			ret = usage(argv[0], "--repo %s: %s", repo, strerror(errno));
			goto done;
		}
		top = rn_gitread_toplevel(abs);
		free(abs);
		if (!top) {
			ret = usage(argv[0], "--repo %s: %s", repo, rn_error_last());
			goto done;
		}
		repo = top;
	}
	body = json_pack("{s:s}", "repo", repo);
	if (!body) {
		ret = usage(argv[0], "--repo: not valid UTF-8");
		goto done;
	}
	if (top && !ref && !sha) {
		json_t *d = NULL;
		if (rn_git_describe(&d, top) == 0) {
			const char *dref = rn_json_str(d, "ref"), *dsha = rn_json_str(d, "sha");
			if (dref && *dref)
				json_object_set_new(body, "ref", json_string(dref));
			if (dsha && *dsha)
				json_object_set_new(body, "sha", json_string(dsha));
			if (dsha && *dsha && rn_gitread_dirty(top))
				fprintf(stderr, "runner submit: note: the uncommitted changes in %s are not part of the "
						"pipeline (it runs commit %.12s)\n", top, dsha);
		}
		json_decref(d);
	}
	if (ref && json_object_set_new(body, "ref", json_string(ref)) < 0) {
		ret = usage(argv[0], "--ref: not valid UTF-8");
		goto done;
	}
	if (sha && json_object_set_new(body, "sha", json_string(sha)) < 0) {
		ret = usage(argv[0], "--sha: not valid UTF-8");
		goto done;
	}
	if (file && json_object_set_new(body, "file", json_string(file)) < 0) {
		ret = usage(argv[0], "--file: not valid UTF-8");
		goto done;
	}
	if (json_object_size(env))
		json_object_set(body, "env", env);

	if (wait)
		catch_signals();
	/* not idempotent: one try (a retry after a timeout could queue the pipeline twice) */
	ret = api(&c, "POST", "/api/v1/pipelines", body, 1, &a);
	if (ret)
		goto done;
	if (a.status != 201 && a.status != 200) {
		ret = fail_answer(&c, &a, NULL);
		goto done;
	}
	char *id = rn_json_id(a.json, "id");
	if (id_kind(id) != ID_PIPELINE) {
		fprintf(stderr, "runner submit: the server's answer has no valid pipeline id\n");
		free(id);
		ret = EXIT_INFRA;
		goto done;
	}
	if (json_out && !wait)
		print_raw(&a);
	else if (!json_out)
		printf("%s\n", id);
	fflush(stdout);
	ret = wait ? follow_pipeline(&c, id, a.json, json_out) : EXIT_OK;
	free(id);
done:
	answer_free(&a);
	json_decref(body);
	json_decref(env);
	free(top);
	client_free(&c);
	return ret;
}

/* ---- status -------------------------------------------------------------------------------- */

const char rn_cmd_status_help[] =
	"options:\n"
	"      --server URL     the server (default: $RUNNER_SERVER)\n"
	"      --token T        its admin token (default: $RUNNER_TOKEN)\n"
	"      --limit N        without ID: how many of the latest pipelines (default 20, at most 500)\n"
	"      --json           print the server's JSON\n"
	"Without ID: the latest pipelines. ID 17: the pipeline's jobs and steps. ID 17.3: one job.\n";

static void list_pipelines(json_t *list)
{
	table t = { .ncols = 7 };
	char *hdr[] = { rn_xstrdup("ID"), rn_xstrdup("STATUS"), rn_xstrdup("NAME"), rn_xstrdup("REF"),
			rn_xstrdup("COMMIT"), rn_xstrdup("CREATED"), rn_xstrdup("DURATION") };
	table_row(&t, hdr);
	size_t i;
	json_t *p;
	json_array_foreach(list, i, p) {
		char created[32], dur[32];
		const char *sha = rn_json_str(p, "sha");
		char *shortsha = rn_xstrndup(sha ? sha : "", 10);
		fmt_time(created, sizeof(created), rn_json_int(p, "created_ms"));
		fmt_span(dur, sizeof(dur), rn_json_int(p, "started_ms"), rn_json_int(p, "finished_ms"));
		char *id = rn_json_id(p, "id");
		char *row[] = { term_str(id, "?"), term_str(rn_json_str(p, "status"), "?"), term_str(rn_json_str(p, "name"), "-"),
				term_str(short_ref(rn_json_str(p, "ref")), "-"), term_str(shortsha, "-"), rn_xstrdup(created),
				rn_xstrdup(dur) };
		table_row(&t, row);
		free(id);
		free(shortsha);
	}
	if (json_array_size(list))
		table_print(&t, stdout);
	else
		printf("no pipelines\n");
	table_free(&t);
}

/* "(exit 2, 1.234s, attempt 2): reason" for a step; "" when there is nothing to say. */
static char *step_details(json_t *s)
{
	char buf[96] = "";
	size_t n = 0;
	const char *st = rn_json_str(s, "status");
	int64_t code = rn_json_int(s, "exit_code");
	int64_t dur = rn_json_int(s, "duration_ms");
	int64_t att = rn_json_int(s, "attempt");
	const char *sep = " (";
	if (code >= 0 && st && strcmp(st, "success") != 0) {
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sexit %" PRId64, sep, code);
		sep = ", ";
	}
	if (dur >= 0 || rn_json_int(s, "started_ms") >= 0) {
		char d[32];
		if (dur >= 0)
			rn_duration_format(d, sizeof(d), dur);
		else
			fmt_span(d, sizeof(d), rn_json_int(s, "started_ms"), -1);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", sep, d);
		sep = ", ";
	}
	if (att > 1 && n < sizeof(buf)) {
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sattempt %" PRId64, sep, att);
		sep = ", ";
	}
	if (*sep == ',' && n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - n, ")");
	const char *reason = rn_json_str(s, "reason");
	char same[48];
	snprintf(same, sizeof(same), "exit code %" PRId64, code);
	if (reason && (strcmp(reason, same) == 0 || (st && strcmp(reason, st) == 0)))
		reason = NULL; /* says nothing more than the status and exit code */
	char *r = term_str(reason, "");
	char *out = *r ? rn_xasprintf("%s: %s", buf, r) : rn_xstrdup(buf);
	free(r);
	return out;
}

static char *int_cell(int64_t v)
{
	return v >= 0 ? rn_xasprintf("%" PRId64, v) : rn_xstrdup("-");
}

static void show_pipeline(json_t *p)
{
	char created[32], started[32], finished[32], dur[32];
	char *id = rn_json_id(p, "id");
	char *name = term_str(rn_json_str(p, "name"), "(unnamed)");
	char *st = term_str(rn_json_str(p, "status"), "unknown");
	char *repo_red = rn_json_str(p, "repo") ? rn_git_redact_url(rn_json_str(p, "repo")) : NULL;
	char *repo = term_str(repo_red, "-");
	char *ref = term_str(rn_json_str(p, "ref"), "-");
	char *sha = term_str(rn_json_str(p, "sha"), "-");
	fmt_time(created, sizeof(created), rn_json_int(p, "created_ms"));
	fmt_time(started, sizeof(started), rn_json_int(p, "started_ms"));
	fmt_time(finished, sizeof(finished), rn_json_int(p, "finished_ms"));
	fmt_span(dur, sizeof(dur), rn_json_int(p, "started_ms"), rn_json_int(p, "finished_ms"));
	printf("pipeline %s: %s  %s\n", id, name, st);
	printf("  repository  %s\n  ref         %s\n  commit      %s\n", repo, ref, sha);
	printf("  created     %s\n  started     %s\n  finished    %s\n  duration    %s\n\n", created, started,
	       finished, dur);
	free(id);
	free(name);
	free(st);
	free(repo_red);
	free(repo);
	free(ref);
	free(sha);

	table t = { .ncols = 6 };
	char *hdr[] = { rn_xstrdup("JOB"), rn_xstrdup("NAME"), rn_xstrdup("STATUS"), rn_xstrdup("ATTEMPT"),
			rn_xstrdup("AGENT"), rn_xstrdup("DURATION") };
	table_row(&t, hdr);
	size_t i, k;
	json_t *j, *s;
	json_array_foreach(json_object_get(p, "jobs"), i, j) {
		fmt_span(dur, sizeof(dur), rn_json_int(j, "started_ms"), rn_json_int(j, "finished_ms"));
		char *jobid = rn_json_id(j, "id");
		const char *jst = rn_json_str(j, "status");
		const char *reason = rn_json_str(j, "reason");
		char *row[] = { term_str(jobid, "?"), term_str(rn_json_str(j, "name"), "?"), term_str(jst, "?"),
				int_cell(rn_json_int(j, "attempt")), term_str(rn_json_str(j, "agent"), "-"), rn_xstrdup(dur) };
		table_row(&t, row);
		if (reason && *reason && (!jst || strcmp(reason, jst) != 0)) {
			char *r = term_str(reason, "");
			table_line(&t, rn_xasprintf("      (%s)", r));
			free(r);
		}
		free(jobid);
		json_array_foreach(json_object_get(j, "steps"), k, s) {
			char *sname = term_str(rn_json_str(s, "name"), "-");
			char *sst = term_str(rn_json_str(s, "status"), "?");
			char *det = step_details(s);
			int64_t idx = rn_json_int(s, "index");
			table_line(&t, rn_xasprintf("      %" PRId64 ". %s: %s%s", idx >= 0 ? idx + 1 : (int64_t)k + 1,
						    sname, sst, det));
			free(sname);
			free(sst);
			free(det);
		}
	}
	if (t.nrows > 1)
		table_print(&t, stdout);
	else
		printf("no jobs\n");
	table_free(&t);
}

static void show_job(json_t *j)
{
	char tq[32], ts[32], tf[32], dur[32];
	char *id = rn_json_id(j, "id");
	char *pid = rn_json_id(j, "pipeline");
	char *name = term_str(rn_json_str(j, "name"), "(unnamed)");
	char *st = term_str(rn_json_str(j, "status"), "unknown");
	char *wjob = term_str(rn_json_str(j, "job"), "-");
	char *agent = term_str(rn_json_str(j, "agent"), "-");
	char *att = int_cell(rn_json_int(j, "attempt"));
	fmt_time(tq, sizeof(tq), rn_json_int(j, "queued_ms"));
	fmt_time(ts, sizeof(ts), rn_json_int(j, "started_ms"));
	fmt_time(tf, sizeof(tf), rn_json_int(j, "finished_ms"));
	fmt_span(dur, sizeof(dur), rn_json_int(j, "started_ms"), rn_json_int(j, "finished_ms"));
	printf("job %s: %s  %s\n", id, name, st);
	printf("  pipeline    %s\n  job         %s\n  attempt     %s\n  agent       %s\n", *pid ? pid : "-", wjob, att,
	       agent);
	const char *reason = rn_json_str(j, "reason");
	if (reason && *reason) {
		char *r = term_str(reason, "");
		printf("  reason      %s\n", r);
		free(r);
	}
	printf("  queued      %s\n  started     %s\n  finished    %s\n  duration    %s\n", tq, ts, tf, dur);
	const char *k;
	json_t *v;
	int first = 1;
	json_object_foreach(json_object_get(j, "outputs"), k, v) {
		char *val = json_is_string(v) ? rn_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
		char *tk = term_str(k, "?"), *tv = term_str(val, "");
		printf("  %-12s%s=%s\n", first ? "outputs" : "", tk, tv);
		first = 0;
		free(tk);
		free(tv);
		free(val);
	}
	free(id);
	free(pid);
	free(name);
	free(st);
	free(wjob);
	free(agent);
	free(att);

	json_t *steps = json_object_get(j, "steps");
	if (!json_array_size(steps)) {
		printf("\nno steps reported yet\n");
		return;
	}
	putchar('\n');
	table t = { .ncols = 7 };
	char *hdr[] = { rn_xstrdup("STEP"), rn_xstrdup("NAME"), rn_xstrdup("STATUS"), rn_xstrdup("EXIT"),
			rn_xstrdup("ATTEMPT"), rn_xstrdup("DURATION"), rn_xstrdup("REASON") };
	table_row(&t, hdr);
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s) {
		int64_t idx = rn_json_int(s, "index");
		int64_t sdur = rn_json_int(s, "duration_ms");
		if (sdur >= 0)
			rn_duration_format(dur, sizeof(dur), sdur);
		else
			fmt_span(dur, sizeof(dur), rn_json_int(s, "started_ms"), -1);
		char *row[] = { int_cell(idx >= 0 ? idx + 1 : (int64_t)i + 1), term_str(rn_json_str(s, "name"), "-"),
				term_str(rn_json_str(s, "status"), "?"), int_cell(rn_json_int(s, "exit_code")),
				int_cell(rn_json_int(s, "attempt")), rn_xstrdup(dur), term_str(rn_json_str(s, "reason"), "") };
		table_row(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

int rn_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *token = NULL;
	int json_out = 0, ch, ret;
	long limit = 20;
	client c = { 0 };
	answer a = { 0 };
	char *path = NULL, *what = NULL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SERVER: server = optarg; break;
		case OPT_TOKEN: token = optarg; break;
		case OPT_JSON: json_out = 1; break;
		case OPT_LIMIT: {
			char *end;
			errno = 0;
			limit = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || limit < 1 || limit > 500)
				return usage(argv[0], "--limit %s: expected a number from 1 to 500", optarg);
			break;
		}
		default:
			return bad_option(argv[0], argc, argv);
		}
	}
	if (argc - optind > 1)
		return usage(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *id = optind < argc ? argv[optind] : NULL;
	int kind = id ? id_kind(id) : 0;
	if (id && kind == ID_BAD)
		return bad_id(argv[0], id);
	ret = client_init(&c, "status", server, token);
	if (ret >= 0)
		goto done;
	if (!id) {
		path = rn_xasprintf("/api/v1/pipelines?limit=%ld", limit);
	} else if (kind == ID_PIPELINE) {
		path = rn_xasprintf("/api/v1/pipelines/%s", id);
		what = rn_xasprintf("pipeline %s", id);
	} else {
		path = rn_xasprintf("/api/v1/jobs/%s", id);
		what = rn_xasprintf("job %s", id);
	}
	ret = get_json(&c, path, what, &a);
	if (ret)
		goto done;
	if (json_out)
		print_raw(&a);
	else if (!id)
		list_pipelines(json_object_get(a.json, "pipelines"));
	else if (kind == ID_PIPELINE)
		show_pipeline(a.json);
	else
		show_job(a.json);
	ret = EXIT_OK;
done:
	answer_free(&a);
	free(path);
	free(what);
	client_free(&c);
	return ret;
}

/* ---- logs ---------------------------------------------------------------------------------- */

const char rn_cmd_logs_help[] =
	"options:\n"
	"      --server URL     the server (default: $RUNNER_SERVER)\n"
	"      --token T        its admin token (default: $RUNNER_TOKEN)\n"
	"  -f, --follow         keep printing while the job runs, until its log is complete\n"
	"      --attempt K      the log of attempt K (default: the latest)\n"
	"A job id (17.3) prints its log; a pipeline id (17) prints every job's log, each after a\n"
	"'==> JOB NAME <==' line.\n";

/* One GET of a log: what came back. */
typedef struct logget {
	CURL *h;
	long status;
	int64_t hdr_offset;  /* X-Log-Offset, -1 if absent */
	int hdr_attempt;     /* X-Log-Attempt, 0 if absent */
	int complete;        /* X-Log-Complete: 1 */
	size_t written;      /* body bytes written to stdout */
	int too_big;
	int out_error;       /* writing stdout failed */
	rn_buf err;          /* the body of a non-200 answer (capped) */
	int *last_nl;        /* the last byte written to stdout was '\n' (or nothing was written) */
} logget;

static size_t log_header_cb(char *p, size_t size, size_t n, void *arg)
{
	logget *g = arg;
	size_t len = size * n;
	char line[128];
	if (len >= sizeof(line))
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	if (rn_startswith(line, "HTTP/")) { /* a new answer (e.g. after 100 Continue) */
		g->hdr_offset = -1;
		g->hdr_attempt = 0;
		g->complete = 0;
		return len;
	}
	char *colon = strchr(line, ':');
	if (!colon)
		return len;
	*colon = '\0';
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(line, "X-Log-Offset") == 0)
		g->hdr_offset = strtoll(v, NULL, 10);
	else if (strcasecmp(line, "X-Log-Attempt") == 0)
		g->hdr_attempt = atoi(v);
	else if (strcasecmp(line, "X-Log-Complete") == 0)
		g->complete = atoi(v) == 1;
	return len;
}

static size_t log_write_cb(char *p, size_t size, size_t n, void *arg)
{
	logget *g = arg;
	size_t len = size * n;
	if (!g->status)
		curl_easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &g->status);
	if (g->status != 200) {
		size_t room = g->err.max - g->err.len;
		rn_buf_add(&g->err, p, len < room ? len : room);
		return len;
	}
	if (g->written + len > LOG_ANSWER_MAX) {
		g->too_big = 1;
		return 0;
	}
	if (len && fwrite(p, 1, len, stdout) != len) {
		g->out_error = 1;
		return 0;
	}
	fflush(stdout);
	g->written += len;
	if (len)
		*g->last_nl = p[len - 1] == '\n';
	return len;
}

/* One GET of url into stdout; the curl result in *cres. Cut short by a signal. */
static void log_get_once(const char *url, client *c, long wait_s, logget *g, CURLcode *cres)
{
	struct curl_slist *hdrs = NULL;
	char *auth = rn_xasprintf("Authorization: %s", c->auth);
	hdrs = curl_slist_append(hdrs, auth);
	memset(auth, 0, strlen(auth));
	free(auth);
	CURL *h = curl_easy_init();
	CURLM *m = curl_multi_init();
	*cres = CURLE_FAILED_INIT;
	if (!h || !m || !hdrs)
		goto done;
	g->h = h;
	curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "runner/" RN_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, log_header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, g);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, log_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, g);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	/* a long-poll holds the answer up to wait_s: a stall is longer than that */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, wait_s + 30L);
	if (curl_multi_add_handle(m, h) != CURLM_OK)
		goto done;
	for (;;) {
		int running = 0, nmsg;
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (!running) {
			CURLMsg *msg;
			*cres = CURLE_GOT_NOTHING;
			while ((msg = curl_multi_info_read(m, &nmsg)))
				if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
					*cres = msg->data.result;
			break;
		}
		if (got_signal) {
			*cres = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (curl_multi_poll(m, NULL, 0, 100, &nmsg) != CURLM_OK)
			break;
	}
	if (*cres == CURLE_OK && !g->status)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &g->status);
	curl_multi_remove_handle(m, h);
done:
	if (m)
		curl_multi_cleanup(m);
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	g->h = NULL;
}

/* The current JOB object of job id (a->json), or an exit status. */
static int get_job(client *c, const char *id, answer *a)
{
	char *path = rn_xasprintf("/api/v1/jobs/%s", id);
	char *what = rn_xasprintf("job %s", id);
	int rc = get_json(c, path, what, a);
	free(path);
	free(what);
	return rc;
}

/* Print the log of job id (attempt 0: the latest) from offset 0 to stdout; with follow, until
 * the attempt's log is complete (moving on to a newer attempt when one starts meanwhile, unless
 * attempt was given). The exit status. */
static int stream_log(client *c, const char *id, int attempt, int follow, int *last_nl)
{
	int64_t offset = 0;
	int k = attempt, fails = 0, ret = EXIT_OK;
	for (;;) {
		if (got_signal)
			return interrupted_exit();
		char *url = rn_xasprintf("%s/api/v1/jobs/%s/log?offset=%" PRId64, c->base, id, offset);
		if (k > 0) {
			char *u = rn_xasprintf("%s&attempt=%d", url, k);
			free(url);
			url = u;
		}
		if (follow) {
			char *u = rn_xasprintf("%s&wait=%d", url, LOG_WAIT_S);
			free(url);
			url = u;
		}
		logget g = { .hdr_offset = -1, .err = RN_BUF_INIT(ERR_BODY_MAX), .last_nl = last_nl };
		CURLcode cres;
		int64_t t0 = rn_now_ms();
		log_get_once(url, c, follow ? LOG_WAIT_S : 0, &g, &cres);
		free(url);
		offset += (int64_t)g.written; /* what arrived counts, also from a broken answer */
		if (got_signal) {
			rn_buf_free(&g.err);
			return interrupted_exit();
		}
		if (g.out_error) {
			rn_buf_free(&g.err);
			fprintf(stderr, "runner logs: writing the log: %s\n", strerror(errno));
			return EXIT_INFRA;
		}
		if (g.too_big) {
			rn_buf_free(&g.err);
			fprintf(stderr, "runner logs: the server sent more than 1 MiB in one answer\n");
			return EXIT_INFRA;
		}
		int transient = cres != CURLE_OK || g.status >= 500;
		if (transient) {
			char *red = rn_http_url_redacted(c->base);
			if (++fails >= (follow ? LOG_ATTEMPTS : c->attempts)) {
				if (cres != CURLE_OK)
					fprintf(stderr, "runner logs: cannot reach the server at %s: %s\n", red,
						curl_easy_strerror(cres));
				else
					fprintf(stderr, "runner logs: server error (HTTP %ld)\n", g.status);
				free(red);
				rn_buf_free(&g.err);
				return EXIT_INFRA;
			}
			free(red);
			rn_buf_free(&g.err);
			nap(250L << (fails < 6 ? fails : 6)); /* 0.5 s, 1 s, 2 s, ... */
			continue;
		}
		fails = 0;
		if (g.status == 404) {
			/* no job, or no log yet (a job that has not started) */
			rn_buf_free(&g.err);
			answer a;
			ret = get_job(c, id, &a);
			if (ret)
				return ret;
			const char *st = rn_json_str(a.json, "status");
			int fin = final_status(st);
			answer_free(&a);
			if (!follow || fin)
				return EXIT_OK;
			nap(1000);
			continue;
		}
		if (g.status != 200) {
			answer a = { .status = g.status, .body = rn_buf_detach(&g.err) };
			a.len = strlen(a.body);
			a.json = json_loadb(a.body, a.len, 0, NULL);
			char *what = rn_xasprintf("job %s", id);
			ret = fail_answer(c, &a, what);
			free(what);
			answer_free(&a);
			return ret;
		}
		rn_buf_free(&g.err);
		if (k == 0 && g.hdr_attempt > 0)
			k = g.hdr_attempt; /* offsets are per attempt: stay on this one */
		if (g.written && !g.complete)
			continue; /* more may be there already */
		if (!follow)
			return EXIT_OK;
		if (g.written == 0 || g.complete) {
			/* nothing new within the wait, or this attempt is over: look at the job */
			answer a;
			ret = get_job(c, id, &a);
			if (ret)
				return ret;
			int64_t cur = rn_json_int(a.json, "attempt");
			int fin = final_status(rn_json_str(a.json, "status"));
			answer_free(&a);
			if (attempt == 0 && k > 0 && cur > k) {
				fprintf(stderr, "runner logs: job %s: attempt %" PRId64 " (the log starts again)\n", id, cur);
				k = (int)cur;
				offset = 0;
				continue;
			}
			if (g.complete || fin)
				return EXIT_OK;
			/* the server did not hold the request (e.g. no attempt yet): do not spin */
			if (rn_now_ms() - t0 < 500)
				nap(1000);
		}
	}
}

int rn_cmd_logs(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{ "follow", no_argument, NULL, 'f' },
		{ "attempt", required_argument, NULL, OPT_ATTEMPT },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *token = NULL;
	int follow = 0, attempt = 0, ch, ret, last_nl = 1;
	client c = { 0 };
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+hf", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SERVER: server = optarg; break;
		case OPT_TOKEN: token = optarg; break;
		case 'f': follow = 1; break;
		case OPT_ATTEMPT: {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 1000000)
				return usage(argv[0], "--attempt %s: expected a positive number", optarg);
			attempt = (int)v;
			break;
		}
		default:
			return bad_option(argv[0], argc, argv);
		}
	}
	if (optind >= argc)
		return usage(argv[0], "no id given (a job id like 17.3 or a pipeline id like 17)");
	if (argc - optind > 1)
		return usage(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *id = argv[optind];
	int kind = id_kind(id);
	if (kind == ID_BAD)
		return bad_id(argv[0], id);
	ret = client_init(&c, "logs", server, token);
	if (ret >= 0)
		goto done;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	catch_signals();
	if (kind == ID_JOB) {
		ret = stream_log(&c, id, attempt, follow, &last_nl);
	} else {
		answer a;
		char *path = rn_xasprintf("/api/v1/pipelines/%s", id);
		char *what = rn_xasprintf("pipeline %s", id);
		ret = get_json(&c, path, what, &a);
		free(path);
		free(what);
		if (ret == 0) {
			size_t i;
			json_t *j;
			json_array_foreach(json_object_get(a.json, "jobs"), i, j) {
				char *jobid = rn_json_id(j, "id");
				char *name = term_str(rn_json_str(j, "name"), "?");
				char *st = term_str(rn_json_str(j, "status"), "?");
				if (id_kind(jobid) != ID_JOB) {
					fprintf(stderr, "runner logs: the server sent an invalid job id\n");
					ret = EXIT_INFRA;
				} else {
					printf("%s==> %s %s", i ? (last_nl ? "\n" : "\n\n") : "", jobid, name);
					if (!follow)
						printf(" (%s)", st);
					printf(" <==\n");
					fflush(stdout);
					last_nl = 1;
					ret = stream_log(&c, jobid, attempt, follow, &last_nl);
				}
				free(jobid);
				free(name);
				free(st);
				if (ret)
					break;
			}
			answer_free(&a);
		}
	}
	if (ret == 0 && !last_nl)
		fflush(stdout);
	curl_global_cleanup();
done:
	client_free(&c);
	return ret;
}

/* ---- cancel -------------------------------------------------------------------------------- */

const char rn_cmd_cancel_help[] =
	"options:\n"
	"      --server URL     the server (default: $RUNNER_SERVER)\n"
	"      --token T        its admin token (default: $RUNNER_TOKEN)\n"
	"      --json           print the server's JSON\n"
	"ID is a pipeline (17) or a job (17.3). Queued jobs are cancelled at once, running ones by\n"
	"their agents (their state says 'running' until the agent has stopped them).\n";

int rn_cmd_cancel(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *token = NULL;
	int json_out = 0, ch, ret;
	client c = { 0 };
	answer a = { 0 };
	char *path = NULL, *what = NULL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SERVER: server = optarg; break;
		case OPT_TOKEN: token = optarg; break;
		case OPT_JSON: json_out = 1; break;
		default:
			return bad_option(argv[0], argc, argv);
		}
	}
	if (optind >= argc)
		return usage(argv[0], "no id given (a pipeline id like 17 or a job id like 17.3)");
	if (argc - optind > 1)
		return usage(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *id = argv[optind];
	int kind = id_kind(id);
	if (kind == ID_BAD)
		return bad_id(argv[0], id);
	ret = client_init(&c, "cancel", server, token);
	if (ret >= 0)
		goto done;
	what = rn_xasprintf("%s %s", kind == ID_JOB ? "job" : "pipeline", id);
	path = rn_xasprintf("/api/v1/%s/%s/cancel", kind == ID_JOB ? "jobs" : "pipelines", id);
	json_t *empty = json_object();
	/* idempotent: retried like a GET */
	ret = api(&c, "POST", path, empty, c.attempts, &a);
	json_decref(empty);
	if (ret)
		goto done;
	if (a.status != 200) {
		ret = fail_answer(&c, &a, what);
		goto done;
	}
	if (json_out) {
		print_raw(&a);
		goto done;
	}
	char *st = term_str(rn_json_str(a.json, "status"), "unknown");
	if (kind == ID_JOB) {
		char *name = term_str(rn_json_str(a.json, "name"), "?");
		printf("job %s %s: %s%s\n", id, name, st,
		       final_status(rn_json_str(a.json, "status")) ? "" : " (cancel sent to its agent)");
		free(name);
	} else {
		printf("pipeline %s: %s\n", id, st);
		size_t i;
		json_t *j;
		json_array_foreach(json_object_get(a.json, "jobs"), i, j) {
			if (final_status(rn_json_str(j, "status")))
				continue;
			char *jobid = rn_json_id(j, "id");
			char *name = term_str(rn_json_str(j, "name"), "?");
			char *jst = term_str(rn_json_str(j, "status"), "?");
			printf("  %s %s: %s (cancel sent to its agent)\n", jobid, name, jst);
			free(jobid);
			free(name);
			free(jst);
		}
	}
	free(st);
done:
	answer_free(&a);
	free(path);
	free(what);
	client_free(&c);
	return ret;
}
