/* fuzz_server.c - libFuzzer target for the request handling of `runner serve` (server_api.c over
 * coord.c): every endpoint's JSON bodies, headers, query strings and ids must survive anything.
 *
 * Black box: one in-process libmicrohttpd daemon on 127.0.0.1:0 (the same handler and flags as
 * `runner serve`) over one coordinator in a temp data directory, made once per process with a
 * small git repository, a registered agent and a leased job (so leases, logs and artifacts
 * exist). Each input is one or more requests separated by a line "%%":
 *
 *     METHOD PATH
 *     Header: value          (any number; "!nolength" omits Content-Length, "!chunked" sends
 *                             the body chunked; Content-Length/Transfer-Encoding lines are dropped)
 *
 *     body
 *
 * "@A", "@R", "@T", "@L", "@P", "@J" anywhere become the admin, registration and agent tokens,
 * the live lease, its pipeline and job id. "wait=0&" is put first in every query string (the
 * first value of a key wins), so long-polls never wait. Repositories that are not absolute
 * paths are replaced by the local one (no network). Each request is sent raw over a new socket;
 * the answer is read to its end.
 * Build: meson setup build-fuzz -Dfuzz=true (clang), or see ci/fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "coord.h"
#include "error.h"
#include "git.h"
#include "server_api.h"
#include "server_metrics.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ADMIN "admin-token-0123456789abcdef"
#define REG "registration-token-0123456789ab"
#define MAX_REQUESTS 8

static const char workflow[] = "jobs:\n  a:\n    steps:\n      - run: echo a\n  b:\n    needs: a\n"
			       "    steps:\n      - run: echo b\n";

static char *dir, *repo;
static rn_coord *coord;
static rn_metrics *metrics;
static rn_serve_api api;
static struct MHD_Daemon *daemon_;
static unsigned short port;
static char *agent_token, *lease, *pipeline_id, *job_id;
static int64_t agent_id;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_server: %s: %s\n", what, rn_error_last());
	abort();
}

static void teardown(void)
{
	if (coord)
		rn_coord_stop(coord);
	if (daemon_)
		MHD_stop_daemon(daemon_);
	rn_coord_close(coord);
	rn_metrics_free(metrics);
	rn_git_shutdown();
	if (dir)
		rn_rm_rf(dir);
	free(dir);
	free(repo);
	free(agent_token);
	free(lease);
	free(pipeline_id);
	free(job_id);
}

/* A live lease (a new pipeline's first job when the last one is gone: finished, cancelled...). */
static void ensure_lease(void)
{
	int cancel = 0;
	if (lease && rn_coord_heartbeat(coord, lease, agent_id, 0, &cancel) == 0 && !cancel)
		return;
	for (int tries = 0; tries < 3; tries++) {
		json_t *labels = json_array(), *out = NULL;
		int rc = rn_coord_poll(coord, agent_id, labels, 0, &out);
		json_decref(labels);
		if (rc < 0)
			die("poll");
		if (out) {
			json_t *job = json_object_get(out, "job");
			free(lease);
			free(pipeline_id);
			free(job_id);
			lease = rn_xstrdup(json_string_value(json_object_get(out, "lease")));
			job_id = rn_xstrdup(json_string_value(json_object_get(job, "id")));
			json_t *p = json_object_get(job, "pipeline");
			pipeline_id = json_is_string(p) ? rn_xstrdup(json_string_value(p))
							: rn_xasprintf("%lld", (long long)json_integer_value(p));
			json_decref(out);
			if (rn_coord_ack(coord, lease, agent_id, &out) < 0)
				die("ack");
			json_decref(out);
			return;
		}
		rn_coord_submit s = { .repo = repo, .yaml = workflow };
		json_t *problems = NULL;
		if (rn_coord_pipeline_create(coord, &s, &out, &problems) < 0)
			die("pipeline");
		json_decref(out);
		json_decref(problems);
	}
	die("no lease");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	char tmpl[] = "/dev/shm/rn-fuzz-server-XXXXXX";
	char tmpl2[] = "/tmp/rn-fuzz-server-XXXXXX";
	char *d = mkdtemp(tmpl);
	if (!d)
		d = mkdtemp(tmpl2);
	if (!d)
		abort();
	dir = rn_xstrdup(d);
	atexit(teardown);
	repo = rn_xasprintf("%s/repo", dir);
	char *cmd = rn_xasprintf("git init -q -b main '%s' && printf '%%s' '%s' >'%s/.pipeline.yml' && "
				 "git -C '%s' add .pipeline.yml && git -C '%s' -c user.name=f -c user.email=f@f "
				 "commit -qm p",
				 repo, workflow, repo, repo, repo);
	if (system(cmd) != 0)
		abort();
	free(cmd);
	char *data = rn_xasprintf("%s/data", dir);
	if (rn_mkdir_p(data, 0700) < 0 || rn_git_init() < 0)
		die("setup");
	metrics = rn_metrics_new();
	rn_coord_opts co = { .data_dir = data, .lease_ttl_ms = 600000, .ack_timeout_ms = 600000,
			     .max_artifact_size = 1 << 20, .metrics = metrics };
	if (rn_coord_open(&coord, &co) < 0)
		die("coord");
	free(data);
	api = (rn_serve_api){ .coord = coord, .metrics = metrics, .admin_token = ADMIN, .registration_token = REG,
			      .max_artifact_size = 1 << 20, .lease_ttl_ms = 600000 };
	rn_serve_api_init(&api);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
					   MHD_USE_ITC,
				   0, NULL, NULL, rn_serve_api_handler, &api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_NOTIFY_COMPLETED,
				   rn_serve_api_completed, &api, MHD_OPTION_END);
	if (!daemon_)
		die("MHD_start_daemon");
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	port = info ? info->port : 0;

	json_t *labels = json_array(), *out = NULL;
	if (rn_coord_agent_register(coord, "fuzz", labels, 4, "1", &out) < 0)
		die("register");
	json_decref(labels);
	agent_token = rn_xstrdup(json_string_value(json_object_get(out, "token")));
	json_decref(out);
	if (rn_coord_agent_auth(coord, agent_token, &agent_id) < 0)
		die("auth");
	ensure_lease();
	return 0;
}

/* ---- building a request ---- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* s[0..n) with the placeholders replaced. */
static void put_subst(sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '@' && i + 1 < n) {
			const char *v = NULL;
			switch (s[i + 1]) {
			case 'A': v = ADMIN; break;
			case 'R': v = REG; break;
			case 'T': v = agent_token; break;
			case 'L': v = lease; break;
			case 'P': v = pipeline_id; break;
			case 'J': v = job_id; break;
			default: break;
			}
			if (v) {
				puts_(b, v);
				i++;
				continue;
			}
		}
		put(b, s + i, 1);
	}
}

/* A pipeline request body with "repo" made local when it is not an absolute path. */
static void local_repo(sbuf *body)
{
	json_t *o = json_loadb(body->p ? body->p : "", body->len, JSON_REJECT_DUPLICATES, NULL);
	json_t *r = json_object_get(o, "repo");
	if (json_is_string(r) && json_string_value(r)[0] != '/') {
		json_object_set_new(o, "repo", json_string(repo));
		char *t = json_dumps(o, JSON_COMPACT);
		if (t) {
			body->len = 0;
			puts_(body, t);
			free(t);
		}
	}
	json_decref(o);
}

static void send_request(const char *req, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		size_t off = 0;
		while (off < len) {
			ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		char buf[65536];
		struct pollfd p = { .fd = fd, .events = POLLIN };
		/* the answer to its end (Connection: close); the timeout is only a safety net */
		while (poll(&p, 1, 20000) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
		}
	}
	close(fd);
}

static void one_request(const char *s, size_t n)
{
	const char *end = s + n, *nl = memchr(s, '\n', n);
	const char *line_end = nl ? nl : end;
	const char *sp = memchr(s, ' ', (size_t)(line_end - s));
	if (!sp || sp == s)
		return;
	sbuf method = { 0 }, path = { 0 }, hdrs = { 0 }, body = { 0 }, out = { 0 };
	put(&method, s, (size_t)(sp - s));
	put_subst(&path, sp + 1, (size_t)(line_end - sp - 1));
	int nolength = 0, chunked = 0;
	const char *p = nl ? nl + 1 : end;
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (!e)
			e = end;
		if (e == p) { /* the blank line: the body follows */
			p = e + 1;
			break;
		}
		size_t ln = (size_t)(e - p);
		if (ln == 9 && !memcmp(p, "!nolength", 9))
			nolength = 1;
		else if (ln == 8 && !memcmp(p, "!chunked", 8))
			chunked = 1;
		else if (!(ln >= 15 && !strncasecmp(p, "content-length:", 15)) &&
			 !(ln >= 18 && !strncasecmp(p, "transfer-encoding:", 18)) &&
			 !(ln >= 11 && !strncasecmp(p, "connection:", 11))) {
			put_subst(&hdrs, p, ln);
			puts_(&hdrs, "\r\n");
		}
		p = e + 1;
	}
	if (p < end)
		put_subst(&body, p, (size_t)(end - p));
	if (!strcmp(method.p, "POST") && path.p && strstr(path.p, "/pipelines") && !strstr(path.p, "cancel"))
		local_repo(&body);

	/* the method and path are sent as given, with wait=0 first in the query */
	put(&out, method.p, method.len);
	puts_(&out, " ");
	const char *q = path.p ? memchr(path.p, '?', path.len) : NULL;
	if (q) {
		put(&out, path.p, (size_t)(q - path.p));
		puts_(&out, "?wait=0&");
		put(&out, q + 1, path.len - (size_t)(q - path.p) - 1);
	} else {
		if (path.p)
			put(&out, path.p, path.len);
		puts_(&out, "?wait=0");
	}
	puts_(&out, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	if (hdrs.p)
		put(&out, hdrs.p, hdrs.len);
	/* after the input's headers: a folded line of theirs (" x") continues theirs, never this one,
	 * which would keep the connection open until the server's 10 s idle timeout */
	puts_(&out, "Connection: close\r\n");
	char num[64];
	if (chunked) {
		puts_(&out, "Transfer-Encoding: chunked\r\n\r\n");
		size_t half = body.len / 2;
		size_t parts[2] = { half, body.len - half }, at = 0;
		for (int i = 0; i < 2; i++) {
			if (!parts[i])
				continue;
			snprintf(num, sizeof(num), "%zx\r\n", parts[i]);
			puts_(&out, num);
			put(&out, body.p + at, parts[i]);
			puts_(&out, "\r\n");
			at += parts[i];
		}
		puts_(&out, "0\r\n\r\n");
	} else {
		if (!nolength) {
			snprintf(num, sizeof(num), "Content-Length: %zu\r\n", body.len);
			puts_(&out, num);
		}
		puts_(&out, "\r\n");
		if (!nolength && body.len)
			put(&out, body.p, body.len);
	}
	send_request(out.p, out.len);
	free(method.p);
	free(path.p);
	free(hdrs.p);
	free(body.p);
	free(out.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ensure_lease();
	const char *s = (const char *)data, *end = s + size;
	for (int i = 0; i < MAX_REQUESTS && s < end; i++) {
		const char *sep = NULL;
		for (const char *q = s; q + 4 <= end; q++)
			if (!memcmp(q, "\n%%\n", 4)) {
				sep = q;
				break;
			}
		const char *e = sep ? sep : end;
		one_request(s, (size_t)(e - s));
		s = sep ? sep + 4 : end;
	}
	return 0;
}
