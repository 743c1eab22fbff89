/* agent.c - `runner agent`: the self-hosted agent. It registers once (the agent token is kept in
 * WORK/agent.json), long-polls the server for jobs while it has free capacity, acknowledges each
 * assignment and hands it to a supervisor (agent_sup.h) that runs it as `runner __job DIR` in a
 * child process. Signals come through a signalfd: SIGTERM/SIGINT stop polling and let running
 * jobs finish (up to --shutdown-timeout, then they are cancelled), SIGHUP re-reads --config.
 * The daemon itself stays small: no engine, no workflow parsing, one blocked request when idle. */
#include "agent.h"
#include "agent_api.h"
#include "agent_conf.h"
#include "agent_sup.h"
#include "error.h"
#include "event.h"
#include "server_metrics.h"
#include "units.h"
#include "util.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char rn_cmd_agent_help[] =
	"options:\n"
	"  --server URL            the server (also RUNNER_SERVER)\n"
	"  --token TOKEN           the registration token, needed once (also RUNNER_TOKEN)\n"
	"  --name NAME             the agent's name (default: the host name)\n"
	"  --labels a,b            labels matched against jobs' runs-on (default: none)\n"
	"  --capacity N            jobs run at once (default 1)\n"
	"  --work-dir DIR          state, mirror cache and job directories (default ./runner-agent)\n"
	"  --config FILE           YAML settings with the same keys; re-read on SIGHUP (labels,\n"
	"                          capacity)\n"
	"  --shutdown-timeout DUR  on SIGTERM/SIGINT, how long running jobs may go on before they\n"
	"                          are cancelled (default 10m)\n"
	"  --keep-workspace        keep each job's directory afterwards (for debugging)\n"
	"  --metrics ADDR:PORT     serve Prometheus metrics at http://ADDR:PORT/metrics\n";

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

#define POLL_WAIT_S 30
#define POLL_BASE_MS 500
#define POLL_CAP_MS 30000
#define ACK_WINDOW_MS 8000          /* the server re-queues a lease not acknowledged in 10 s */
#define ABANDON_AFTER_MS 60000      /* after cancelling at the shutdown timeout: wait this long for reports */
#define LEFTOVER_GRACE_MS 15000
#define ASSIGNMENT_MAX ((size_t)160 * 1024 * 1024) /* an ASSIGNMENT carries the workflow (64 MiB at most) */
#define DEFAULT_SHUTDOWN_MS (10 * 60 * 1000)

typedef struct agent {
	rn_agent_conf cli, file, eff; /* command line (and environment), config file, in effect */
	char *config_path;
	char *work, *jobs_dir, *git_dir, *state_path;
	char exe[PATH_MAX];
	char **envp;           /* environment of `runner __job` */
	rn_api reg;            /* server + registration token */
	rn_api api;            /* server + agent token */
	char *agent_id;
	int sigfd, wakefd, lockfd;
	rn_ajob **jobs;
	size_t njobs, capjobs;
	atomic_int capacity;
	atomic_int server_up;
	atomic_ullong polls, poll_errors, assignments;
	struct MHD_Daemon *mhd;
} agent;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char ts[40];
	rn_time_iso8601(ts, sizeof(ts), rn_wall_ms(), 1);
	fprintf(stderr, "%s runner agent: ", ts);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- settings ------------------------------------------------------------------------------ */

/* eff = defaults < config file < command line and environment. */
static int merge_conf(agent *a)
{
	rn_agent_conf *e = &a->eff, *c = &a->cli, *f = &a->file;
	rn_agent_conf_free(e);
	e->server = rn_xstrdup(c->server ? c->server : f->server);
	e->token = rn_xstrdup(c->token ? c->token : f->token);
	e->work_dir = rn_xstrdup(c->work_dir ? c->work_dir : f->work_dir ? f->work_dir : "runner-agent");
	e->metrics = rn_xstrdup(c->metrics ? c->metrics : f->metrics);
	if (c->name || f->name) {
		e->name = rn_xstrdup(c->name ? c->name : f->name);
	} else {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) < 0 || !*host)
			snprintf(host, sizeof(host), "agent");
		e->name = rn_xstrdup(host);
	}
	const rn_agent_conf *ls = c->labels_set ? c : f->labels_set ? f : NULL;
	e->labels_set = 1;
	for (size_t i = 0; ls && i < ls->nlabels; i++) {
		e->labels = rn_xreallocarray(e->labels, e->nlabels + 1, sizeof(*e->labels));
		e->labels[e->nlabels++] = rn_xstrdup(ls->labels[i]);
	}
	e->capacity = c->capacity > 0 ? c->capacity : f->capacity > 0 ? f->capacity : 1;
	e->shutdown_ms = c->shutdown_ms >= 0 ? c->shutdown_ms : f->shutdown_ms >= 0 ? f->shutdown_ms : DEFAULT_SHUTDOWN_MS;
	e->keep_workspace = c->keep_workspace > 0 ? 1 : f->keep_workspace > 0;
	atomic_store(&a->capacity, e->capacity);
	return 0;
}

static char *labels_text(const rn_agent_conf *c)
{
	size_t n = 1;
	for (size_t i = 0; i < c->nlabels; i++)
		n += strlen(c->labels[i]) + 1;
	char *s = rn_xmalloc(n), *p = s;
	*p = '\0';
	for (size_t i = 0; i < c->nlabels; i++)
		p += sprintf(p, "%s%s", i ? "," : "", c->labels[i]);
	return *s ? s : (free(s), rn_xstrdup("(none)"));
}

static json_t *labels_json(const rn_agent_conf *c)
{
	json_t *l = json_array();
	for (size_t i = 0; i < c->nlabels; i++)
		json_array_append_new(l, json_string(c->labels[i]));
	return l;
}

/* SIGHUP: re-read the config file; labels and capacity take effect (where the command line did
 * not set them), running jobs go on. */
static void reload(agent *a)
{
	if (!a->config_path) {
		say("SIGHUP: no --config file to re-read");
		return;
	}
	rn_agent_conf f;
	rn_agent_conf_init(&f);
	rn_diags d = RN_DIAGS_INIT(a->config_path);
	if (rn_agent_conf_load(&f, a->config_path, &d) < 0) {
		rn_diags_print(&d, stderr);
		say("SIGHUP: %s has errors; the settings stay as they were", a->config_path);
		rn_diags_free(&d);
		rn_agent_conf_free(&f);
		return;
	}
	rn_diags_free(&d);
	int restart = (f.server && (!a->file.server || strcmp(f.server, a->file.server))) ||
		      (f.work_dir && (!a->file.work_dir || strcmp(f.work_dir, a->file.work_dir))) ||
		      (f.name && (!a->file.name || strcmp(f.name, a->file.name)));
	rn_agent_conf_free(&a->file);
	a->file = f;
	/* only labels, capacity, shutdown-timeout and keep-workspace change while running */
	char *server = rn_xstrdup(a->eff.server), *token = rn_xstrdup(a->eff.token), *work = rn_xstrdup(a->eff.work_dir);
	char *name = rn_xstrdup(a->eff.name), *metrics = rn_xstrdup(a->eff.metrics);
	merge_conf(a);
	free(a->eff.server);
	free(a->eff.token);
	free(a->eff.work_dir);
	free(a->eff.name);
	free(a->eff.metrics);
	a->eff.server = server;
	a->eff.token = token;
	a->eff.work_dir = work;
	a->eff.name = name;
	a->eff.metrics = metrics;
	char *lt = labels_text(&a->eff);
	say("SIGHUP: reloaded %s: labels %s, capacity %d%s", a->config_path, lt, a->eff.capacity,
	    restart ? " (server, name and work-dir change only with a restart)" : "");
	free(lt);
}

/* ---- state: the agent token ------------------------------------------------------------------ */

static int save_state(agent *a, const char *id, const char *token)
{
	json_t *s = json_pack("{s:s, s:s, s:s, s:s}", "server", a->eff.server, "id", id, "token", token, "name", a->eff.name);
	char *tmp = rn_xasprintf("%s.tmp", a->state_path);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || json_dumpfd(s, fd, JSON_INDENT(2)) < 0 || fsync(fd) < 0 || close(fd) < 0 ||
	    rename(tmp, a->state_path) < 0) {
		rc = rn_error_errno("cannot write %s", a->state_path);
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	free(tmp);
	json_decref(s);
	return rc;
}

/* 1 if a signal is waiting in the signalfd (the HTTP cancel callback of the main thread). */
static int signal_pending(void *arg)
{
	agent *a = arg;
	struct pollfd p = { .fd = a->sigfd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

/* Sleep up to ms; returns early (1) when a signal comes. */
static int nap(agent *a, long ms)
{
	struct pollfd p = { .fd = a->sigfd, .events = POLLIN };
	return poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms) > 0;
}

/* Register with the registration token (retrying while the server is unreachable). 0, or
 * EXIT_* codes > 0 to stop with. */
static int do_register(agent *a)
{
	if (!a->eff.token || !*a->eff.token) {
		fprintf(stderr, "runner agent: not registered yet: --token REGISTRATION_TOKEN (or RUNNER_TOKEN) is needed\n");
		return EXIT_USAGE;
	}
	json_t *body = json_pack("{s:s, s:o, s:i, s:s}", "name", a->eff.name, "labels", labels_json(&a->eff), "capacity",
				 a->eff.capacity, "version", RN_VERSION);
	int ret = EXIT_INFRA;
	for (int attempt = 1;; attempt++) {
		rn_api_call c = { .method = "POST", .path = "/api/v1/agents/register", .json = body,
				  .cancel = signal_pending, .wake_fd = a->sigfd, .cb_arg = a };
		rn_api_res res;
		int rc = rn_api_do(&a->reg, &c, &res);
		const char *id = json_string_value(json_object_get(res.answer, "id"));
		const char *token = json_string_value(json_object_get(res.answer, "token"));
		json_t *idn = json_object_get(res.answer, "id");
		char *idbuf = id ? rn_xstrdup(id) : json_is_integer(idn) ? rn_xasprintf("%lld", (long long)json_integer_value(idn)) : NULL;
		if (rc == 0 && idbuf && token) {
			if (save_state(a, idbuf, token) < 0) {
				fprintf(stderr, "runner agent: %s\n", rn_error_last());
			} else {
				rn_api_init(&a->api, a->eff.server, token);
				a->agent_id = rn_xstrdup(idbuf);
				say("registered as %s (agent id %s) at %s", a->eff.name, idbuf, a->eff.server);
				ret = 0;
			}
			free(idbuf);
			json_decref(res.answer);
			break;
		}
		free(idbuf);
		json_decref(res.answer);
		if (res.cancelled || (rc < 0 && !RN_API_TRANSIENT(res.status))) {
			if (!res.cancelled)
				fprintf(stderr, "runner agent: registration refused: %s\n", rn_error_last());
			ret = res.cancelled ? EXIT_OK : EXIT_INFRA;
			break;
		}
		if (rc == 0)
			rn_error_set("the server's answer has no id and token");
		long d = rn_backoff_ms(attempt, POLL_BASE_MS, POLL_CAP_MS);
		if (attempt == 1 || attempt % 10 == 0)
			say("cannot register at %s (%d tries): %s; retrying", a->eff.server, attempt, rn_error_last());
		if (nap(a, d)) {
			ret = -1; /* a signal: the caller decides */
			break;
		}
	}
	json_decref(body);
	return ret;
}

/* Use WORK/agent.json when it belongs to this server, else register. */
static int load_or_register(agent *a)
{
	json_t *s = json_load_file(a->state_path, 0, NULL);
	const char *server = json_string_value(json_object_get(s, "server"));
	const char *token = json_string_value(json_object_get(s, "token"));
	const char *id = json_string_value(json_object_get(s, "id"));
	if (server && token && id && strcmp(server, a->eff.server) == 0) {
		rn_api_init(&a->api, a->eff.server, token);
		a->agent_id = rn_xstrdup(id);
		say("agent %s (id %s) of %s, state in %s", a->eff.name, id, server, a->work);
		json_decref(s);
		return 0;
	}
	if (server && strcmp(server, a->eff.server) != 0)
		say("%s belongs to %s: registering at %s", a->state_path, server, a->eff.server);
	json_decref(s);
	return do_register(a);
}

/* ---- metrics ---------------------------------------------------------------------------------- */

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				       const char *version, const char *upload_data, size_t *upload_data_size,
				       void **con_cls)
{
	(void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
	agent *a = cls;
	struct MHD_Response *r;
	unsigned code = MHD_HTTP_OK;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else if (strcmp(url, "/metrics") != 0) {
		code = MHD_HTTP_NOT_FOUND;
		r = MHD_create_response_from_buffer(10, (void *)"not found\n", MHD_RESPMEM_PERSISTENT);
	} else {
		rn_ajob_stats st;
		rn_ajob_stats_get(&st);
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		if (!f)
			return MHD_NO;
		fprintf(f, "# HELP runner_agent_capacity Jobs the agent runs at once.\n# TYPE runner_agent_capacity gauge\n");
		fprintf(f, "runner_agent_capacity %d\n", atomic_load(&a->capacity));
		fprintf(f, "# HELP runner_agent_jobs_running Jobs running now.\n# TYPE runner_agent_jobs_running gauge\n");
		fprintf(f, "runner_agent_jobs_running %d\n", st.active);
		fprintf(f, "# HELP runner_agent_jobs_total Jobs finished, by the status reported.\n# TYPE runner_agent_jobs_total counter\n");
		fprintf(f, "runner_agent_jobs_total{status=\"success\"} %llu\n", (unsigned long long)st.success);
		fprintf(f, "runner_agent_jobs_total{status=\"failure\"} %llu\n", (unsigned long long)st.failure);
		fprintf(f, "runner_agent_jobs_total{status=\"cancelled\"} %llu\n", (unsigned long long)st.cancelled);
		fprintf(f, "runner_agent_jobs_total{status=\"timed out\"} %llu\n", (unsigned long long)st.timed_out);
		fprintf(f, "runner_agent_jobs_total{status=\"lost\"} %llu\n", (unsigned long long)st.lost);
		fprintf(f, "# TYPE runner_agent_assignments_total counter\nrunner_agent_assignments_total %llu\n",
			(unsigned long long)atomic_load(&a->assignments));
		fprintf(f, "# TYPE runner_agent_polls_total counter\nrunner_agent_polls_total %llu\n",
			(unsigned long long)atomic_load(&a->polls));
		fprintf(f, "# TYPE runner_agent_poll_errors_total counter\nrunner_agent_poll_errors_total %llu\n",
			(unsigned long long)atomic_load(&a->poll_errors));
		fprintf(f, "# TYPE runner_agent_heartbeat_errors_total counter\nrunner_agent_heartbeat_errors_total %llu\n",
			(unsigned long long)st.heartbeat_errors);
		fprintf(f, "# TYPE runner_agent_http_errors_total counter\nrunner_agent_http_errors_total %llu\n",
			(unsigned long long)st.http_errors);
		fprintf(f, "# TYPE runner_agent_log_bytes_total counter\nrunner_agent_log_bytes_total %llu\n",
			(unsigned long long)st.log_bytes);
		fprintf(f, "# TYPE runner_agent_artifact_bytes_total counter\n");
		fprintf(f, "runner_agent_artifact_bytes_total{direction=\"up\"} %llu\n", (unsigned long long)st.artifact_bytes_up);
		fprintf(f, "runner_agent_artifact_bytes_total{direction=\"down\"} %llu\n",
			(unsigned long long)st.artifact_bytes_down);
		fprintf(f, "# HELP runner_agent_server_up 1 if the last call to the server was answered.\n"
			   "# TYPE runner_agent_server_up gauge\nrunner_agent_server_up %d\n",
			atomic_load(&a->server_up));
		rn_buf heap = RN_BUF_INIT(64 * 1024);
		rn_heap_render(&heap, "runner_agent");
		if (heap.len)
			fwrite(heap.ptr, 1, heap.len, f);
		rn_buf_free(&heap);
		fclose(f);
		r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
		if (r)
			MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
		else
			free(text);
	}
	if (!r)
		return MHD_NO;
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static int start_metrics(agent *a)
{
	const char *spec = a->eff.metrics;
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1])
		return rn_error_set("--metrics wants ADDR:PORT, not '%s'", spec), RN_EINVALID;
	char *host = rn_xstrndup(spec, (size_t)(colon - spec));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int e = getaddrinfo(host, colon + 1, &hints, &res);
	free(host);
	if (e != 0 || !res)
		return rn_error_set("--metrics %s: %s", spec, gai_strerror(e)), RN_EINVALID;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	if (res->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->mhd = MHD_start_daemon(flags, 0, NULL, NULL, metrics_handler, a, MHD_OPTION_SOCK_ADDR, res->ai_addr,
				  MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	freeaddrinfo(res);
	if (!a->mhd)
		return rn_error_set("--metrics %s: cannot listen there", spec);
	say("metrics at http://%s/metrics", spec);
	return 0;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static void reap_jobs(agent *a)
{
	size_t k = 0;
	for (size_t i = 0; i < a->njobs; i++) {
		if (rn_ajob_finished(a->jobs[i]))
			rn_ajob_free(a->jobs[i]);
		else
			a->jobs[k++] = a->jobs[i];
	}
	a->njobs = k;
	uint64_t v;
	while (read(a->wakefd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

/* Report a job we cannot run (after the ack): finish it as failed. */
static void refuse_job(agent *a, const char *lease, const char *why)
{
	char *path = rn_xasprintf("/api/v1/leases/%s/finish", lease);
	json_t *body = json_pack("{s:s, s:{}, s:s}", "status", "failure", "outputs", "reason", why);
	rn_api_call c = { .method = "POST", .path = path, .json = body };
	rn_api_res res;
	rn_api_do(&a->api, &c, &res);
	json_decref(res.answer);
	json_decref(body);
	free(path);
}

/* An ASSIGNMENT: acknowledge it and start the job. 0, or -1 for an answer that is not one. */
static int take_job(agent *a, json_t *answer)
{
	const char *lease;
	json_t *spec;
	long ttl;
	atomic_fetch_add(&a->assignments, 1);
	if (rn_ajob_assignment(answer, &lease, &spec, &ttl) < 0) {
		say("ignoring %s", rn_error_last());
		return -1;
	}
	char *path = rn_xasprintf("/api/v1/leases/%s/ack", lease);
	int64_t end = rn_now_ms() + ACK_WINDOW_MS;
	int acked = 0;
	for (int attempt = 1;; attempt++) {
		rn_api_call c = { .method = "POST", .path = path, .body = "{}", .body_len = 2,
				  .content_type = "application/json", .timeout_ms = 5000 };
		rn_api_res res;
		int rc = rn_api_do(&a->api, &c, &res);
		json_int_t t = json_integer_value(json_object_get(res.answer, "lease_ttl_ms"));
		json_decref(res.answer);
		if (rc == 0) {
			acked = 1;
			if (t >= 1000)
				ttl = (long)t;
			break;
		}
		if (!RN_API_TRANSIENT(res.status) || rn_now_ms() >= end) {
			say("lease %s: acknowledgement failed: %s; the server will hand the job out again", lease,
			    rn_error_last());
			break;
		}
		struct timespec ts = { 0, rn_backoff_ms(attempt, 100, 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	free(path);
	if (!acked)
		return 0;
	rn_ajob_opts o = { .api = &a->api, .jobs_dir = a->jobs_dir, .self_exe = a->exe, .envp = a->envp,
			   .keep = a->eff.keep_workspace, .wake_fd = a->wakefd };
	rn_ajob *j = NULL;
	if (rn_ajob_start(&j, &o, lease, ttl, spec) < 0) {
		char *why = rn_xasprintf("agent %s: %s", a->eff.name, rn_error_last());
		say("lease %s: cannot start the job: %s", lease, rn_error_last());
		if (!strstr(why, "was taken before"))
			refuse_job(a, lease, why);
		free(why);
		return 0;
	}
	rn_grow(&a->jobs, &a->capjobs, a->njobs + 1, sizeof(*a->jobs));
	a->jobs[a->njobs++] = j;
	return 0;
}

/* One long-poll for work. Returns 1 when the server answered (job or not), 0 on a failure
 * (the caller backs off), -1 when the agent token is refused. */
static int poll_once(agent *a, int free_slots)
{
	json_t *body = json_pack("{s:i, s:o}", "free", free_slots, "labels", labels_json(&a->eff));
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/agents/poll?wait=%d", POLL_WAIT_S);
	rn_api_call c = { .method = "POST", .path = path, .json = body, .timeout_ms = (POLL_WAIT_S + 15) * 1000L,
			  .max_answer = ASSIGNMENT_MAX, .cancel = signal_pending, .wake_fd = a->sigfd, .cb_arg = a };
	rn_api_res res;
	atomic_fetch_add(&a->polls, 1);
	int rc = rn_api_do(&a->api, &c, &res);
	json_decref(body);
	int ret = 1;
	if (res.cancelled) {
		ret = 1; /* a signal: handled by the loop */
	} else if (rc == 0 && res.status == 200) {
		if (!res.answer)
			rn_error_set("the server's answer to a poll is not JSON");
		if (!res.answer || take_job(a, res.answer) < 0)
			ret = 0; /* not an assignment: back off as after a failure */
	} else if (rc == 0) {
		/* 204: no work within the wait */
	} else if (res.status == 401 || res.status == 403) {
		ret = -1;
	} else {
		ret = 0;
	}
	atomic_store(&a->server_up, rc == 0 || (res.status > 0 && res.status < 500));
	json_decref(res.answer);
	return ret;
}

/* ---- the command ------------------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "runner agent: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

/* The environment of `runner __job`: ours without tokens and secrets, plus the mirror cache. */
static char **job_environ(const char *git_dir)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **v = rn_xcalloc(n + 2, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = environ[i];
		if (rn_startswith(e, "RUNNER_TOKEN=") || rn_startswith(e, "RUNNER_ADMIN_TOKEN=") ||
		    rn_startswith(e, "RUNNER_REGISTRATION_TOKEN=") || rn_startswith(e, "RUNNER_SECRET_") ||
		    rn_startswith(e, "RUNNER_GIT_CACHE=") || rn_startswith(e, "RUNNER_SERVER="))
			continue;
		v[k++] = rn_xstrdup(e);
	}
	v[k++] = rn_xasprintf("RUNNER_GIT_CACHE=%s", git_dir);
	v[k] = NULL;
	return v;
}

static int parse_args(agent *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "token", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "labels", required_argument, NULL, 'l' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "work-dir", required_argument, NULL, 'w' },
		{ "config", required_argument, NULL, 'f' },
		{ "shutdown-timeout", required_argument, NULL, 'T' },
		{ "keep-workspace", no_argument, NULL, 'k' },
		{ "metrics", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	rn_agent_conf *c = &a->cli;
	int ch;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (ch) {
		case 's': free(c->server); c->server = rn_xstrdup(optarg); break;
		case 't': free(c->token); c->token = rn_xstrdup(optarg); break;
		case 'n':
			if (!*optarg)
				return usage("--name must not be empty");
			free(c->name);
			c->name = rn_xstrdup(optarg);
			break;
		case 'l':
			if (rn_agent_conf_labels(c, optarg) < 0)
				return usage("--labels: %s", rn_error_last());
			break;
		case 'c': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 1 || n > RN_AGENT_CAPACITY_MAX)
				return usage("--capacity wants a whole number from 1 to 1024, not '%s'", optarg);
			c->capacity = (int)n;
			break;
		}
		case 'w': free(c->work_dir); c->work_dir = rn_xstrdup(optarg); break;
		case 'f': free(a->config_path); a->config_path = rn_xstrdup(optarg); break;
		case 'T':
			if (rn_duration_parse(&c->shutdown_ms, optarg) < 0)
				return usage("--shutdown-timeout: %s", rn_error_last());
			break;
		case 'k': c->keep_workspace = 1; break;
		case 'm': free(c->metrics); c->metrics = rn_xstrdup(optarg); break;
		default:
			return usage("unknown option %s (see runner agent --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	const char *env_server = getenv("RUNNER_SERVER"), *env_token = getenv("RUNNER_TOKEN");
	if (!c->server && env_server && *env_server)
		c->server = rn_xstrdup(env_server);
	if (!c->token && env_token && *env_token)
		c->token = rn_xstrdup(env_token);
	return 0;
}

/* Work directory, lock, state paths, environment of the jobs. */
static int prepare_work(agent *a)
{
	char real[PATH_MAX];
	if (rn_mkdir_p(a->eff.work_dir, 0700) < 0 || !realpath(a->eff.work_dir, real)) {
		fprintf(stderr, "runner agent: work directory %s: %s\n", a->eff.work_dir,
			*rn_error_last() ? rn_error_last() : strerror(errno));
		return EXIT_INFRA;
	}
	a->work = rn_xstrdup(real);
	a->jobs_dir = rn_xasprintf("%s/jobs", real);
	a->git_dir = rn_xasprintf("%s/git", real);
	a->state_path = rn_xasprintf("%s/agent.json", real);
	char *lock = rn_xasprintf("%s/agent.lock", real);
	a->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lock);
	if (a->lockfd < 0 || flock(a->lockfd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "runner agent: %s is in use by another agent (each agent needs its own --work-dir)\n", real);
		return EXIT_INFRA;
	}
	if (rn_mkdir_p(a->jobs_dir, 0700) < 0 || rn_mkdir_p(a->git_dir, 0700) < 0) {
		fprintf(stderr, "runner agent: %s\n", rn_error_last());
		return EXIT_INFRA;
	}
	ssize_t n = readlink("/proc/self/exe", a->exe, sizeof(a->exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "runner agent: /proc/self/exe: %s\n", strerror(errno));
		return EXIT_INFRA;
	}
	a->exe[n] = '\0';
	a->envp = job_environ(a->git_dir);
	return 0;
}

static void agent_free(agent *a)
{
	for (size_t i = 0; i < a->njobs; i++)
		rn_ajob_free(a->jobs[i]);
	free(a->jobs);
	if (a->mhd)
		MHD_stop_daemon(a->mhd);
	rn_agent_conf_free(&a->cli);
	rn_agent_conf_free(&a->file);
	rn_agent_conf_free(&a->eff);
	rn_api_free(&a->reg);
	rn_api_free(&a->api);
	if (a->envp) {
		for (char **e = a->envp; *e; e++)
			free(*e);
		free(a->envp);
	}
	free(a->config_path);
	free(a->work);
	free(a->jobs_dir);
	free(a->git_dir);
	free(a->state_path);
	free(a->agent_id);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->wakefd >= 0)
		close(a->wakefd);
	if (a->lockfd >= 0)
		close(a->lockfd);
}

int rn_cmd_agent(int argc, char **argv)
{
	agent a;
	memset(&a, 0, sizeof(a));
	a.sigfd = a.wakefd = a.lockfd = -1;
	rn_agent_conf_init(&a.cli);
	rn_agent_conf_init(&a.file);
	rn_agent_conf_init(&a.eff);
	int ret = parse_args(&a, argc, argv);
	if (ret)
		goto out;
	if (a.config_path) {
		rn_diags d = RN_DIAGS_INIT(a.config_path);
		if (rn_agent_conf_load(&a.file, a.config_path, &d) < 0) {
			rn_diags_print(&d, stderr);
			rn_diags_free(&d);
			ret = EXIT_USAGE;
			goto out;
		}
		rn_diags_free(&d);
	}
	merge_conf(&a);
	if (!a.eff.server || !*a.eff.server) {
		ret = usage("no server: give --server URL (or RUNNER_SERVER, or server: in --config)");
		goto out;
	}
	if (!rn_startswith(a.eff.server, "http://") && !rn_startswith(a.eff.server, "https://")) {
		ret = usage("--server wants an http:// or https:// URL, not '%s'", a.eff.server);
		goto out;
	}

	/* signals: blocked in every thread, read from a signalfd by this one */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || (a.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    (a.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		fprintf(stderr, "runner agent: signals: %s\n", strerror(errno));
		ret = EXIT_INFRA;
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((ret = prepare_work(&a)) != 0)
		goto out;
	int left = rn_ajob_cleanup_leftovers(a.jobs_dir, LEFTOVER_GRACE_MS);
	if (left > 0)
		say("removed %d job director%s of an earlier run", left, left == 1 ? "y" : "ies");
	rn_api_init(&a.reg, a.eff.server, a.eff.token);
	if (a.eff.metrics && start_metrics(&a) < 0) {
		fprintf(stderr, "runner agent: %s\n", rn_error_last());
		ret = EXIT_USAGE;
		goto out;
	}
	ret = load_or_register(&a);
	if (ret != 0) {
		if (ret < 0)
			ret = EXIT_OK; /* interrupted while registering */
		goto out;
	}
	{
		char *lt = labels_text(&a.eff);
		say("waiting for jobs from %s (labels %s, capacity %d)", a.eff.server, lt, a.eff.capacity);
		free(lt);
	}

	int stopping = 0, terminated = 0, abandoned = 0, failures = 0, reregistered = 0;
	int64_t stop_deadline = 0, abandon_at = 0, retry_at = 0;
	for (;;) {
		reap_jobs(&a);
		/* signals */
		struct signalfd_siginfo si;
		while (read(a.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGHUP) {
				reload(&a);
				continue;
			}
			if (!stopping) {
				stopping = 1;
				stop_deadline = rn_now_ms() + a.eff.shutdown_ms;
				char d[32];
				rn_duration_format(d, sizeof(d), a.eff.shutdown_ms);
				say("%s: no new jobs; %zu running may finish within %s", strsignal((int)si.ssi_signo), a.njobs,
				    d);
			} else if (!terminated) {
				stop_deadline = rn_now_ms(); /* again: cancel them now */
			} else {
				abandon_at = rn_now_ms();
			}
		}
		reap_jobs(&a);
		int64_t now = rn_now_ms();
		if (stopping) {
			if (a.njobs == 0)
				break;
			if (!terminated && now >= stop_deadline) {
				say("cancelling %zu running job%s", a.njobs, a.njobs == 1 ? "" : "s");
				for (size_t i = 0; i < a.njobs; i++)
					rn_ajob_terminate(a.jobs[i]);
				terminated = 1;
				abandon_at = now + ABANDON_AFTER_MS;
			}
			if (terminated && !abandoned && now >= abandon_at) {
				say("giving up on reporting %zu job%s to the server", a.njobs, a.njobs == 1 ? "" : "s");
				for (size_t i = 0; i < a.njobs; i++)
					rn_ajob_abandon(a.jobs[i]);
				abandoned = 1;
			}
			int64_t until = !terminated ? stop_deadline : !abandoned ? abandon_at : -1;
			struct pollfd p[2] = { { .fd = a.sigfd, .events = POLLIN }, { .fd = a.wakefd, .events = POLLIN } };
			int64_t t = until < 0 ? -1 : until - now > 0 ? until - now : 0;
			poll(p, 2, t > INT_MAX ? INT_MAX : (int)t);
			continue;
		}
		/* a job that only reports its end leaves its slot to the next one (at most as many
		 * reporting as running, so that an unreachable server cannot pile them up) */
		int busy = 0;
		for (size_t i = 0; i < a.njobs; i++)
			busy += rn_ajob_busy(a.jobs[i]);
		int free_slots = a.eff.capacity - busy;
		if ((int)a.njobs >= 2 * a.eff.capacity)
			free_slots = 0;
		if (free_slots <= 0 || now < retry_at) {
			/* busy or backing off: wait for a job to end, a signal, or the retry time */
			struct pollfd p[2] = { { .fd = a.sigfd, .events = POLLIN }, { .fd = a.wakefd, .events = POLLIN } };
			int64_t t = free_slots <= 0 ? -1 : retry_at - now;
			poll(p, free_slots <= 0 ? 2 : 1, t > INT_MAX ? INT_MAX : (int)t);
			continue;
		}
		int r = poll_once(&a, free_slots);
		if (r > 0) {
			if (failures)
				say("the server answers again");
			failures = 0;
			retry_at = 0;
		} else if (r < 0) {
			if (!reregistered && a.eff.token && *a.eff.token) {
				say("the server does not know this agent's token any more: registering again");
				reregistered = 1;
				rn_api_free(&a.api);
				free(a.agent_id);
				a.agent_id = NULL;
				int rr = do_register(&a);
				if (rr > 0) {
					ret = rr;
					break;
				}
				if (rr == 0)
					continue;
			} else {
				fprintf(stderr, "runner agent: the server refuses this agent's token (%s); remove %s and "
						"register again with --token\n",
					rn_error_last(), a.state_path);
				ret = EXIT_INFRA;
				stopping = 1;
				stop_deadline = rn_now_ms() + a.eff.shutdown_ms;
				continue;
			}
		} else {
			failures++;
			atomic_fetch_add(&a.poll_errors, 1);
			long d = rn_backoff_ms(failures, POLL_BASE_MS, POLL_CAP_MS);
			if (failures == 1 || failures % 10 == 0)
				say("cannot reach %s (%d tries): %s; retrying", a.eff.server, failures, rn_error_last());
			retry_at = rn_now_ms() + d;
		}
	}
	if (stopping)
		say("stopped");
out:
	agent_free(&a);
	return ret;
}
