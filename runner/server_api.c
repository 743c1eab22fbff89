/* server_api.c - routes and handlers of the server's HTTP API, /metrics and the status pages. */
#include "server_api.h"
#include "buf.h"
#include "error.h"
#include "statuspage.h"
#include "step.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SEGS 8
#define MAX_URL 2048

/* Who a token belongs to. */
enum { AUTH_NONE, AUTH_ADMIN, AUTH_REGISTRATION, AUTH_AGENT };

/* What a request body is. */
enum { BODY_NONE, BODY_JSON, BODY_RAW, BODY_ARTIFACT };

typedef enum {
	R_INDEX,
	R_PAGE_PIPELINE,
	R_PAGE_JOB,
	R_METRICS,
	R_PIPELINES,
	R_PIPELINE_CREATE,
	R_PIPELINE,
	R_PIPELINE_CANCEL,
	R_PIPELINE_ARTIFACTS,
	R_PIPELINE_ARTIFACT,
	R_JOB,
	R_JOB_LOG,
	R_JOB_CANCEL,
	R_AGENTS,
	R_REGISTER,
	R_POLL,
	R_ACK,
	R_HEARTBEAT,
	R_LOG_APPEND,
	R_STEPS,
	R_FINISH,
	R_ARTIFACT_PUT,
	R_ARTIFACT_GET,
} route_id;

typedef struct route {
	const char *method;
	const char *pattern; /* segments; "*" matches any one */
	route_id id;
	int auth;            /* the token kind needed, AUTH_NONE for none */
	int body;
} route;

static const route routes[] = {
	{ "GET", "", R_INDEX, AUTH_NONE, BODY_NONE },
	{ "GET", "pipelines/*", R_PAGE_PIPELINE, AUTH_NONE, BODY_NONE },
	{ "GET", "jobs/*", R_PAGE_JOB, AUTH_NONE, BODY_NONE },
	{ "GET", "metrics", R_METRICS, AUTH_NONE, BODY_NONE },
	{ "GET", "api/v1/pipelines", R_PIPELINES, AUTH_ADMIN, BODY_NONE },
	{ "POST", "api/v1/pipelines", R_PIPELINE_CREATE, AUTH_ADMIN, BODY_JSON },
	{ "GET", "api/v1/pipelines/*", R_PIPELINE, AUTH_ADMIN, BODY_NONE },
	{ "POST", "api/v1/pipelines/*/cancel", R_PIPELINE_CANCEL, AUTH_ADMIN, BODY_JSON },
	{ "GET", "api/v1/pipelines/*/artifacts", R_PIPELINE_ARTIFACTS, AUTH_ADMIN, BODY_NONE },
	{ "GET", "api/v1/pipelines/*/artifacts/*", R_PIPELINE_ARTIFACT, AUTH_ADMIN, BODY_NONE },
	{ "GET", "api/v1/jobs/*", R_JOB, AUTH_ADMIN, BODY_NONE },
	{ "GET", "api/v1/jobs/*/log", R_JOB_LOG, AUTH_ADMIN, BODY_NONE },
	{ "POST", "api/v1/jobs/*/cancel", R_JOB_CANCEL, AUTH_ADMIN, BODY_JSON },
	{ "GET", "api/v1/agents", R_AGENTS, AUTH_ADMIN, BODY_NONE },
	{ "POST", "api/v1/agents/register", R_REGISTER, AUTH_REGISTRATION, BODY_JSON },
	{ "POST", "api/v1/agents/poll", R_POLL, AUTH_AGENT, BODY_JSON },
	{ "POST", "api/v1/leases/*/ack", R_ACK, AUTH_AGENT, BODY_JSON },
	{ "POST", "api/v1/leases/*/heartbeat", R_HEARTBEAT, AUTH_AGENT, BODY_JSON },
	{ "POST", "api/v1/leases/*/log", R_LOG_APPEND, AUTH_AGENT, BODY_RAW },
	{ "POST", "api/v1/leases/*/steps", R_STEPS, AUTH_AGENT, BODY_JSON },
	{ "POST", "api/v1/leases/*/finish", R_FINISH, AUTH_AGENT, BODY_JSON },
	{ "PUT", "api/v1/leases/*/artifacts/*", R_ARTIFACT_PUT, AUTH_AGENT, BODY_ARTIFACT },
	{ "GET", "api/v1/leases/*/artifacts/*", R_ARTIFACT_GET, AUTH_AGENT, BODY_NONE },
};

/* What one request keeps between the calls of the access handler. */
typedef struct req {
	const route *rt;
	char *segs[MAX_SEGS];
	size_t nseg;
	char *args[2];       /* the values of the route's "*" segments */
	int64_t agent_id;
	rn_buf body;
	int too_big;
	int answered;        /* a response is queued */
	rn_coord_upload *up;
	unsigned up_status;  /* an upload failed while receiving: the answer */
	const char *up_code;
	char *up_msg;
	char *sha256;
} req;

/* ---- answers ---- */

static void count(rn_serve_api *api, unsigned status)
{
	rn_metrics_http(api->metrics, status);
}

static void queue(rn_serve_api *api, req *r, struct MHD_Connection *con, unsigned status, struct MHD_Response *resp)
{
	MHD_queue_response(con, status, resp);
	MHD_destroy_response(resp);
	count(api, status);
	r->answered = 1;
}

static struct MHD_Response *text_response(char *text, size_t len, const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	return resp;
}

/* Answer status with body (taken). */
static void reply_json(rn_serve_api *api, req *r, struct MHD_Connection *con, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		text = rn_xstrdup("{}");
	size_t len = strlen(text);
	text = realloc(text, len + 2);
	if (!text)
		abort();
	text[len++] = '\n';
	text[len] = '\0';
	queue(api, r, con, status, text_response(text, len, "application/json"));
}

__attribute__((format(printf, 6, 7))) static void reply_error(rn_serve_api *api, req *r, struct MHD_Connection *con,
							     unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	reply_json(api, r, con, status, json_pack("{s:s, s:s}", "error", msg, "code", code));
	free(msg);
}

/* The answer for a coordinator failure that is not one of the expected ones. */
static void reply_fault(rn_serve_api *api, req *r, struct MHD_Connection *con, int rc)
{
	if (rc == RN_ENOTFOUND)
		reply_error(api, r, con, MHD_HTTP_NOT_FOUND, "not_found", "%s", rn_error_last());
	else
		reply_error(api, r, con, MHD_HTTP_INTERNAL_SERVER_ERROR, "server_error", "%s", rn_error_last());
}

static void reply_gone(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	reply_error(api, r, con, MHD_HTTP_GONE, "lease_gone", "the lease is gone (expired, finished or unknown)");
}

/* Answers of the lease calls: RN_ENOTFOUND is a gone lease. */
static void reply_lease_fault(rn_serve_api *api, req *r, struct MHD_Connection *con, int rc)
{
	if (rc == RN_ENOTFOUND)
		reply_gone(api, r, con);
	else
		reply_fault(api, r, con, rc);
}

/* ---- parsing ---- */

/* A decimal integer in [min, max]; 0 or -1. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s || strlen(s) > 19)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	long long v = strtoll(s, NULL, 10);
	if (errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A pipeline id "17" or a job id "17.3". */
static int parse_job_id(const char *s, int64_t *pipeline, int *n)
{
	const char *dot = strchr(s, '.');
	if (!dot)
		return -1;
	char *p = rn_xstrndup(s, (size_t)(dot - s));
	int64_t nn = 0;
	int rc = parse_int(p, 1, INT64_MAX, pipeline) == 0 && parse_int(dot + 1, 1, 1000000, &nn) == 0 ? 0 : -1;
	free(p);
	*n = (int)nn;
	return rc;
}

static const char *arg(struct MHD_Connection *con, const char *key)
{
	return MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, key);
}

/* Query parameter key as an integer in [min, max] (def when absent); -1 (answered) if bad. */
static int query_int(rn_serve_api *api, req *r, struct MHD_Connection *con, const char *key, int64_t min, int64_t max,
		     int64_t def, int64_t *out)
{
	const char *v = arg(con, key);
	*out = def;
	if (!v)
		return 0;
	if (parse_int(v, min, max, out) < 0) {
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_query", "'%s' must be an integer from %lld to %lld",
			    key, (long long)min, (long long)max);
		return -1;
	}
	return 0;
}

static int hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (const char *p = s; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return 0;
	return 1;
}

static int hex40(const char *s)
{
	if (!s || strlen(s) != 40)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* A JSON string without NUL bytes or control characters (tab allowed when text), at most max
 * bytes. */
static int good_string(json_t *v, size_t min, size_t max, int text)
{
	if (!json_is_string(v))
		return 0;
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (len < min || len > max || strlen(s) != len)
		return 0;
	if (!text)
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return 0;
	return 1;
}

/* The body as a JSON object (an empty body is {}); NULL (answered) when it is not one or has a
 * field outside allowed (a NULL-terminated list). */
static json_t *json_body(rn_serve_api *api, req *r, struct MHD_Connection *con, const char *const *allowed)
{
	json_t *o;
	if (r->body.len == 0) {
		o = json_object();
	} else {
		json_error_t err;
		o = json_loadb(r->body.ptr, r->body.len, JSON_REJECT_DUPLICATES, &err);
		if (!o) {
			reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_json", "bad JSON at line %d column %d: %s",
				    err.line, err.column, err.text);
			return NULL;
		}
	}
	if (!json_is_object(o)) {
		json_decref(o);
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (!allowed[i]) {
			reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "unknown_field", "unknown field '%.64s'", k);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int bad_field(rn_serve_api *api, req *r, struct MHD_Connection *con, const char *field, const char *what)
{
	reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_field", "'%s' must be %s", field, what);
	return -1;
}

/* A label: [A-Za-z0-9_.-]{1,64}. */
static int good_label(json_t *v)
{
	const char *s = json_string_value(v);
	if (!s || !*s || strlen(s) > 64 || json_string_length(v) != strlen(s))
		return 0;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
			return 0;
	return 1;
}

static int good_labels(json_t *v)
{
	if (!json_is_array(v) || json_array_size(v) > 32)
		return 0;
	size_t i;
	json_t *it;
	json_array_foreach(v, i, it)
		if (!good_label(it))
			return 0;
	return 1;
}

static int good_env_name(const char *k)
{
	if (!(isalpha((unsigned char)*k) || *k == '_'))
		return 0;
	for (const char *p = k; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return 0;
	return strlen(k) <= 256;
}

/* ---- authentication ---- */

static void sha_hex(char out[65], const char *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32 && i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

void rn_serve_api_init(rn_serve_api *api)
{
	sha_hex(api->admin_sha, api->admin_token);
	sha_hex(api->registration_sha, api->registration_token);
}

/* The kind of token (compared in constant time through their hashes). */
static int token_kind(rn_serve_api *api, const char *token, int64_t *agent_id)
{
	if (!token || !*token || strlen(token) > 512)
		return AUTH_NONE;
	char h[65];
	sha_hex(h, token);
	if (CRYPTO_memcmp(h, api->admin_sha, 64) == 0)
		return AUTH_ADMIN;
	if (CRYPTO_memcmp(h, api->registration_sha, 64) == 0)
		return AUTH_REGISTRATION;
	if (rn_coord_agent_auth(api->coord, token, agent_id) == 0)
		return AUTH_AGENT;
	return AUTH_NONE;
}

static const char *bearer(struct MHD_Connection *con)
{
	const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

/* ---- routing ---- */

static void req_free(req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nseg; i++)
		free(r->segs[i]);
	rn_buf_free(&r->body);
	rn_coord_upload_abort(r->up);
	free(r->up_msg);
	free(r->sha256);
	free(r);
}

/* Split url into segments; -1 if it has too many or is too long. */
static int split(req *r, const char *url)
{
	if (strlen(url) > MAX_URL)
		return -1;
	const char *p = url;
	while (*p == '/')
		p++;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (r->nseg == MAX_SEGS)
			return -1;
		r->segs[r->nseg++] = rn_xstrndup(p, len);
		p += len;
		if (*p == '/')
			p++;
	}
	return 0;
}

/* Match segs against pattern, collecting "*" segments; 1 if it matches. */
static int match(req *r, const char *pattern)
{
	size_t i = 0, nargs = 0;
	const char *p = pattern;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (i >= r->nseg)
			return 0;
		if (len == 1 && *p == '*') {
			if (!*r->segs[i] || nargs == RN_ARRAY_LEN(r->args))
				return 0;
			r->args[nargs++] = r->segs[i];
		} else if (strlen(r->segs[i]) != len || strncmp(r->segs[i], p, len) != 0) {
			return 0;
		}
		i++;
		p += len;
		if (*p == '/')
			p++;
	}
	return i == r->nseg;
}

/* ---- the status pages ---- */

/* The admin token of a page request: Authorization, ?token= or the runner_token cookie. */
static const char *page_token(struct MHD_Connection *con, int *from_query)
{
	*from_query = 0;
	const char *t = bearer(con);
	if (t)
		return t;
	t = arg(con, "token");
	if (t) {
		*from_query = 1;
		return t;
	}
	return MHD_lookup_connection_value(con, MHD_COOKIE_KIND, "runner_token");
}

static char *url_encode(const char *s)
{
	rn_buf b = RN_BUF_INIT(4096);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			rn_buf_putc(&b, (char)*p);
		else
			rn_buf_printf(&b, "%%%02X", *p);
	}
	return rn_buf_detach(&b);
}

static void reply_html(rn_serve_api *api, req *r, struct MHD_Connection *con, unsigned status, char *html,
		       const char *cookie)
{
	struct MHD_Response *resp = text_response(html, strlen(html), "text/html; charset=utf-8");
	MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	if (cookie) {
		char *enc = url_encode(cookie);
		char *c = rn_xasprintf("runner_token=%s; Path=/; HttpOnly; SameSite=Strict", enc);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, c);
		free(c);
		free(enc);
	}
	queue(api, r, con, status, resp);
}

static const char login_page[] =
	"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>runner</title></head><body>"
	"<h1>runner</h1><p>This status page needs the server's admin token.</p>"
	"<form method=\"get\" action=\"/\"><input type=\"password\" name=\"token\" placeholder=\"admin token\">"
	" <button type=\"submit\">Show</button></form></body></html>\n";

/* Read the last max bytes of the latest attempt's log of a job into *out (caller frees). */
static void tail_log(rn_serve_api *api, int64_t pipeline, int n, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	rn_coord_log lg;
	if (rn_coord_log_read(api->coord, pipeline, n, 0, INT64_MAX, 0, 0, &lg) < 0)
		return;
	int64_t from = lg.length > RN_STATUSPAGE_LOG_MAX ? lg.length - RN_STATUSPAGE_LOG_MAX : 0;
	if (rn_coord_log_read(api->coord, pipeline, n, lg.attempt, from, RN_STATUSPAGE_LOG_MAX, 0, &lg) < 0 ||
	    lg.fd < 0)
		return;
	char *buf = rn_xmalloc((size_t)lg.count + 1);
	ssize_t got = pread(lg.fd, buf, (size_t)lg.count, (off_t)lg.offset);
	close(lg.fd);
	if (got < 0)
		got = 0;
	buf[got] = '\0';
	*out = buf;
	*len = (size_t)got;
}

static void serve_page(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	int from_query = 0;
	const char *token = page_token(con, &from_query);
	int64_t unused = 0;
	const char *cookie = NULL;
	if (!api->public_status) {
		if (token_kind(api, token, &unused) != AUTH_ADMIN) {
			reply_html(api, r, con, MHD_HTTP_UNAUTHORIZED, rn_xstrdup(login_page), NULL);
			return;
		}
		if (from_query)
			cookie = token;
	}
	char *query = NULL;
	if (from_query && !api->public_status) {
		char *enc = url_encode(token);
		query = rn_xasprintf("?token=%s", enc);
		free(enc);
	} else {
		query = rn_xstrdup("");
	}
	json_t *obj = NULL;
	char *html = NULL;
	int rc = 0;
	if (r->rt->id == R_INDEX) {
		rc = rn_coord_pipelines(api->coord, 50, &obj);
		if (rc == 0)
			html = rn_statuspage_index(obj, query);
	} else if (r->rt->id == R_PAGE_PIPELINE) {
		int64_t id = 0;
		rc = parse_int(r->args[0], 1, INT64_MAX, &id) < 0 ? RN_ENOTFOUND : 0;
		if (rc == 0)
			rc = rn_coord_pipeline_get(api->coord, id, &obj);
		if (rc == 0)
			html = rn_statuspage_pipeline(obj, query);
	} else {
		int64_t p = 0;
		int n = 0;
		rc = parse_job_id(r->args[0], &p, &n) < 0 ? RN_ENOTFOUND : 0;
		if (rc == 0)
			rc = rn_coord_job_get(api->coord, p, n, &obj);
		if (rc == 0) {
			char *log = NULL;
			size_t len = 0;
			tail_log(api, p, n, &log, &len);
			html = rn_statuspage_job(obj, log, len, query);
			free(log);
		}
	}
	json_decref(obj);
	free(query);
	if (rc == RN_ENOTFOUND)
		reply_html(api, r, con, MHD_HTTP_NOT_FOUND, rn_xstrdup("<!DOCTYPE html>\n<p>Not found.</p>\n"), NULL);
	else if (rc < 0)
		reply_html(api, r, con, MHD_HTTP_INTERNAL_SERVER_ERROR, rn_xstrdup("<!DOCTYPE html>\n<p>Server error.</p>\n"),
			   NULL);
	else
		reply_html(api, r, con, MHD_HTTP_OK, html, cookie);
}

static void serve_metrics(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	rn_buf b = RN_BUF_INIT(4 * 1024 * 1024);
	if (rn_coord_metrics(api->coord, &b) < 0) {
		rn_buf_free(&b);
		reply_fault(api, r, con, RN_ERROR);
		return;
	}
	/* count this answer before rendering, so that it shows up in its own body */
	rn_metrics_render(api->metrics, &b);
	rn_heap_render(&b, "runner");
	size_t len = b.len;
	char *text = rn_buf_detach(&b);
	queue(api, r, con, MHD_HTTP_OK, text_response(text, len, "text/plain; version=0.0.4; charset=utf-8"));
}

/* ---- user endpoints ---- */

static int check_repo(const char *repo)
{
	static const char *const schemes[] = { "https://", "http://", "git://", "ssh://", "file://" };
	if (repo[0] == '/')
		return 1;
	for (size_t i = 0; i < RN_ARRAY_LEN(schemes); i++)
		if (rn_startswith(repo, schemes[i]) && repo[strlen(schemes[i])])
			return 1;
	return 0;
}

static int check_file(const char *f)
{
	if (!*f || f[0] == '/')
		return 0;
	const char *p = f;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0 || (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += len;
		if (*p == '/')
			p++;
	}
	return 1;
}

static void pipeline_create(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	static const char *const fields[] = { "repo", "ref", "sha", "file", "yaml", "env", NULL };
	json_t *o = json_body(api, r, con, fields);
	if (!o)
		return;
	json_t *repo = json_object_get(o, "repo"), *ref = json_object_get(o, "ref"), *sha = json_object_get(o, "sha"),
	       *file = json_object_get(o, "file"), *yaml = json_object_get(o, "yaml"), *env = json_object_get(o, "env");
	int bad = 0;
	if (!good_string(repo, 1, 4096, 0) || !check_repo(json_string_value(repo)))
		bad = bad_field(api, r, con, "repo",
				"a URL (https, http, git, ssh, file) or an absolute path on the server");
	else if (ref && !good_string(ref, 1, 1024, 0))
		bad = bad_field(api, r, con, "ref", "a non-empty string");
	else if (sha && !hex40(json_string_value(sha)))
		bad = bad_field(api, r, con, "sha", "a full commit sha (40 lower-case hex digits)");
	else if (file && (!good_string(file, 1, 1024, 0) || !check_file(json_string_value(file))))
		bad = bad_field(api, r, con, "file", "a relative path inside the repository");
	else if (yaml && !good_string(yaml, 0, RN_SERVE_BODY_MAX, 1))
		bad = bad_field(api, r, con, "yaml", "the workflow text");
	else if (env && !json_is_object(env))
		bad = bad_field(api, r, con, "env", "an object of strings");
	if (!bad && env) {
		const char *k;
		json_t *v;
		json_object_foreach(env, k, v) {
			if (!good_env_name(k) || !good_string(v, 0, RN_SERVE_BODY_MAX, 1)) {
				bad = bad_field(api, r, con, "env", "an object of strings with names like [A-Za-z_][A-Za-z0-9_]*");
				break;
			}
		}
	}
	if (bad) {
		json_decref(o);
		return;
	}
	rn_coord_submit s = { json_string_value(repo), json_string_value(ref), json_string_value(sha),
			      json_string_value(file), json_string_value(yaml), env };
	json_t *out = NULL, *problems = NULL;
	int rc = rn_coord_pipeline_create(api->coord, &s, &out, &problems);
	json_decref(o);
	if (rc == 0)
		reply_json(api, r, con, MHD_HTTP_CREATED, out);
	else if (rc == RN_EINVALID)
		reply_json(api, r, con, MHD_HTTP_UNPROCESSABLE_CONTENT,
			   json_pack("{s:s, s:s, s:o}", "error", rn_error_last(), "code", "invalid_workflow", "problems",
				     problems ? problems : json_array()));
	else if (rc == RN_ENOTFOUND)
		reply_error(api, r, con, MHD_HTTP_NOT_FOUND, "no_commit", "%s", rn_error_last());
	else if (rc == RN_EIO)
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_repo", "%s", rn_error_last());
	else
		reply_fault(api, r, con, rc);
	if (rc != RN_EINVALID)
		json_decref(problems);
}

static void job_log(rn_serve_api *api, req *r, struct MHD_Connection *con, int64_t p, int n)
{
	int64_t offset = 0, attempt = 0, wait = 0;
	if (query_int(api, r, con, "offset", 0, INT64_MAX, 0, &offset) < 0 ||
	    query_int(api, r, con, "attempt", 1, 1000000, 0, &attempt) < 0 ||
	    query_int(api, r, con, "wait", 0, 60, 0, &wait) < 0)
		return;
	rn_coord_log lg;
	int rc = rn_coord_log_read(api->coord, p, n, (int)attempt, offset, RN_SERVE_BODY_MAX, wait * 1000, &lg);
	if (rc < 0) {
		reply_fault(api, r, con, rc);
		return;
	}
	struct MHD_Response *resp;
	if (lg.fd >= 0)
		resp = MHD_create_response_from_fd_at_offset64((uint64_t)lg.count, lg.fd, (uint64_t)lg.offset);
	else
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	char num[32];
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	snprintf(num, sizeof(num), "%" PRId64, lg.offset + lg.count);
	MHD_add_response_header(resp, "X-Log-Offset", num);
	snprintf(num, sizeof(num), "%d", lg.attempt);
	MHD_add_response_header(resp, "X-Log-Attempt", num);
	if (lg.complete && lg.offset + lg.count >= lg.length)
		MHD_add_response_header(resp, "X-Log-Complete", "1");
	queue(api, r, con, MHD_HTTP_OK, resp);
}

static void send_artifact(rn_serve_api *api, req *r, struct MHD_Connection *con, int fd, json_t *meta)
{
	json_int_t size = json_integer_value(json_object_get(meta, "size"));
	struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)size, fd);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	MHD_add_response_header(resp, "X-Artifact-Sha256", json_string_value(json_object_get(meta, "sha256")));
	MHD_add_response_header(resp, "X-Artifact-Format", json_string_value(json_object_get(meta, "format")));
	char *disp = rn_xasprintf("attachment; filename=\"%s.%s\"", json_string_value(json_object_get(meta, "name")),
				  json_string_value(json_object_get(meta, "format")));
	MHD_add_response_header(resp, "Content-Disposition", disp);
	free(disp);
	json_decref(meta);
	queue(api, r, con, MHD_HTTP_OK, resp);
}

/* ---- agent endpoints ---- */

static void agent_register(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	static const char *const fields[] = { "name", "labels", "capacity", "version", NULL };
	json_t *o = json_body(api, r, con, fields);
	if (!o)
		return;
	json_t *name = json_object_get(o, "name"), *labels = json_object_get(o, "labels"),
	       *cap = json_object_get(o, "capacity"), *version = json_object_get(o, "version");
	int bad = 0;
	if (!good_string(name, 1, 128, 0))
		bad = bad_field(api, r, con, "name", "a string of 1 to 128 printable characters");
	else if (labels && !good_labels(labels))
		bad = bad_field(api, r, con, "labels", "at most 32 labels of [A-Za-z0-9_.-]{1,64}");
	else if (cap && (!json_is_integer(cap) || json_integer_value(cap) < 1 || json_integer_value(cap) > 1024))
		bad = bad_field(api, r, con, "capacity", "an integer from 1 to 1024");
	else if (version && !json_is_null(version) && !good_string(version, 0, 128, 0))
		bad = bad_field(api, r, con, "version", "a short string");
	if (!bad) {
		json_t *lab = labels ? json_incref(labels) : json_array();
		json_t *out = NULL;
		int rc = rn_coord_agent_register(api->coord, json_string_value(name), lab,
						 cap ? (int)json_integer_value(cap) : 1, json_string_value(version), &out);
		json_decref(lab);
		if (rc == 0)
			reply_json(api, r, con, MHD_HTTP_CREATED, out);
		else
			reply_fault(api, r, con, rc);
	}
	json_decref(o);
}

static void agent_poll(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	static const char *const fields[] = { "free", "labels", NULL };
	int64_t wait = 0;
	if (query_int(api, r, con, "wait", 0, 60, 30, &wait) < 0)
		return;
	json_t *o = json_body(api, r, con, fields);
	if (!o)
		return;
	json_t *fr = json_object_get(o, "free"), *labels = json_object_get(o, "labels");
	if (fr && (!json_is_integer(fr) || json_integer_value(fr) < 1)) {
		bad_field(api, r, con, "free", "an integer >= 1");
	} else if (labels && !good_labels(labels)) {
		bad_field(api, r, con, "labels", "at most 32 labels of [A-Za-z0-9_.-]{1,64}");
	} else {
		json_t *out = NULL;
		int rc = rn_coord_poll(api->coord, r->agent_id, labels, wait * 1000, &out);
		if (rc < 0)
			reply_fault(api, r, con, rc);
		else if (out)
			reply_json(api, r, con, MHD_HTTP_OK, out);
		else if (rn_coord_stopping(api->coord))
			reply_error(api, r, con, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "the server is stopping");
		else
			queue(api, r, con, MHD_HTTP_NO_CONTENT,
			      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
	}
	json_decref(o);
}

static const char *const step_states[] = { "pending", "running", "success", "failure", "timed out", "cancelled",
					   "skipped", NULL };

static int one_of(const char *s, const char *const *v)
{
	for (size_t i = 0; s && v[i]; i++)
		if (strcmp(s, v[i]) == 0)
			return 1;
	return 0;
}

static int opt_int(json_t *v, int64_t min)
{
	return !v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= min);
}

/* One STEP of a steps update; NULL if fine, else what is wrong. */
static const char *check_step(json_t *s)
{
	static const char *const fields[] = { "index", "name", "status", "attempt", "exit_code", "started_ms",
					      "duration_ms", "reason", NULL };
	if (!json_is_object(s))
		return "each step must be an object";
	const char *k;
	json_t *v;
	json_object_foreach(s, k, v)
		if (!one_of(k, fields))
			return "a step has an unknown field";
	json_t *idx = json_object_get(s, "index");
	if (!json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) >= 1000)
		return "a step's index must be an integer from 0 to 999";
	json_t *name = json_object_get(s, "name");
	if (name && !good_string(name, 0, 4096, 0))
		return "a step's name must be a string";
	if (!one_of(json_string_value(json_object_get(s, "status")), step_states))
		return "a step's status must be one of pending, running, success, failure, timed out, cancelled, skipped";
	if (!opt_int(json_object_get(s, "attempt"), 0) || !opt_int(json_object_get(s, "started_ms"), 0) ||
	    !opt_int(json_object_get(s, "duration_ms"), 0) || !opt_int(json_object_get(s, "exit_code"), INT32_MIN))
		return "a step's attempt, exit_code, started_ms and duration_ms must be integers (or null)";
	json_t *reason = json_object_get(s, "reason");
	if (reason && !json_is_null(reason) && !good_string(reason, 0, 4096, 1))
		return "a step's reason must be a string (or null)";
	return NULL;
}

/* A body that must be empty or {} (ack, heartbeat, cancel). */
static int empty_body(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	static const char *const none[] = { NULL };
	json_t *o = json_body(api, r, con, none);
	json_decref(o);
	return o ? 0 : -1;
}

static void lease_call(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	const char *lease = r->args[0];
	if (!hex64(lease)) {
		reply_gone(api, r, con);
		return;
	}
	int rc, cancel = 0;
	json_t *out = NULL;
	switch (r->rt->id) {
	case R_ACK:
		if (empty_body(api, r, con) < 0)
			return;
		rc = rn_coord_ack(api->coord, lease, r->agent_id, &out);
		if (rc < 0)
			reply_lease_fault(api, r, con, rc);
		else
			reply_json(api, r, con, MHD_HTTP_OK, out);
		return;
	case R_HEARTBEAT: {
		int64_t wait = 0;
		if (query_int(api, r, con, "wait", 0, 30, 0, &wait) < 0 || empty_body(api, r, con) < 0)
			return;
		rc = rn_coord_heartbeat(api->coord, lease, r->agent_id, wait * 1000, &cancel);
		if (rc < 0)
			reply_lease_fault(api, r, con, rc);
		else
			reply_json(api, r, con, MHD_HTTP_OK, json_pack("{s:b, s:I}", "cancel", cancel, "lease_ttl_ms",
								       (json_int_t)api->lease_ttl_ms));
		return;
	}
	case R_LOG_APPEND: {
		int64_t offset = 0, length = 0;
		const char *o = arg(con, "offset");
		if (!o) {
			reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_query", "'offset' is required");
			return;
		}
		if (query_int(api, r, con, "offset", 0, INT64_MAX / 2, 0, &offset) < 0)
			return;
		rc = rn_coord_log_append(api->coord, lease, r->agent_id, offset, r->body.ptr ? r->body.ptr : "",
					 r->body.len, &length);
		if (rc == RN_EINVALID)
			reply_json(api, r, con, MHD_HTTP_CONFLICT,
				   json_pack("{s:s, s:s, s:I}", "error", rn_error_last(), "code", "offset", "offset",
					     (json_int_t)length));
		else if (rc < 0)
			reply_lease_fault(api, r, con, rc);
		else
			reply_json(api, r, con, MHD_HTTP_OK, json_pack("{s:I}", "offset", (json_int_t)length));
		return;
	}
	case R_STEPS: {
		static const char *const fields[] = { "steps", NULL };
		json_t *o = json_body(api, r, con, fields);
		if (!o)
			return;
		json_t *steps = json_object_get(o, "steps");
		const char *why = NULL;
		if (!json_is_array(steps) || json_array_size(steps) > 1000)
			why = "'steps' must be an array of at most 1000 steps";
		size_t i;
		json_t *s;
		json_array_foreach(steps, i, s) {
			if (why)
				break;
			why = check_step(s);
		}
		if (why) {
			reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_field", "%s", why);
		} else {
			rc = rn_coord_steps(api->coord, lease, r->agent_id, steps, &cancel);
			if (rc < 0)
				reply_lease_fault(api, r, con, rc);
			else
				reply_json(api, r, con, MHD_HTTP_OK, json_pack("{s:b}", "cancel", cancel));
		}
		json_decref(o);
		return;
	}
	case R_FINISH: {
		static const char *const fields[] = { "status", "outputs", "reason", NULL };
		static const char *const finals[] = { "success", "failure", "timed out", "cancelled", NULL };
		json_t *o = json_body(api, r, con, fields);
		if (!o)
			return;
		json_t *st = json_object_get(o, "status"), *outputs = json_object_get(o, "outputs"),
		       *reason = json_object_get(o, "reason");
		int bad = 0;
		if (!one_of(json_string_value(st), finals))
			bad = bad_field(api, r, con, "status", "one of success, failure, timed out, cancelled");
		else if (outputs && !json_is_object(outputs))
			bad = bad_field(api, r, con, "outputs", "an object of strings");
		else if (reason && !json_is_null(reason) && !good_string(reason, 0, 4096, 1))
			bad = bad_field(api, r, con, "reason", "a string (or null)");
		if (!bad && outputs) {
			const char *k;
			json_t *v;
			json_object_foreach(outputs, k, v) {
				if (!good_string(v, 0, RN_SERVE_BODY_MAX, 1)) {
					bad = bad_field(api, r, con, "outputs", "an object of strings");
					break;
				}
			}
		}
		if (!bad) {
			rn_jstate js = RN_JS_FAILURE;
			rn_jstate_parse(&js, json_string_value(st));
			rc = rn_coord_finish(api->coord, lease, r->agent_id, js, outputs, json_string_value(reason), &out);
			if (rc < 0)
				reply_lease_fault(api, r, con, rc);
			else
				reply_json(api, r, con, MHD_HTTP_OK, out);
		}
		json_decref(o);
		return;
	}
	default:
		break;
	}
}

/* ---- artifacts upload: checks at the headers, bytes as they come, the answer at the end ---- */

static const char *const formats[] = { "tar.gz", "tar.xz", "tar.zst", "zip", NULL };

static void upload_start(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	const char *lease = r->args[0], *name = r->args[1];
	const char *sha = arg(con, "sha256"), *format = arg(con, "format");
	const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t len = 0;
	if (!hex64(lease)) {
		reply_gone(api, r, con);
	} else if (!rn_artifact_name_ok(name)) {
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_name",
			    "invalid artifact name (letters, digits, '.', '_' and '-'; not starting with '.')");
	} else if (!hex64(sha)) {
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_query", "'sha256' must be 64 hex digits");
	} else if (!one_of(format, formats)) {
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "bad_query",
			    "'format' must be one of tar.gz, tar.xz, tar.zst, zip");
	} else if (!cl || parse_int(cl, 0, INT64_MAX, &len) < 0) {
		reply_error(api, r, con, MHD_HTTP_LENGTH_REQUIRED, "length_required", "Content-Length is required");
	} else if (len > api->max_artifact_size) {
		reply_error(api, r, con, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the artifact is larger than %lld bytes",
			    (long long)api->max_artifact_size);
	} else {
		int rc = rn_coord_upload_begin(api->coord, lease, r->agent_id, name, format, &r->up);
		if (rc == RN_ENOTFOUND)
			reply_gone(api, r, con);
		else if (rc == RN_EINVALID)
			reply_error(api, r, con, MHD_HTTP_CONFLICT, "conflict", "%s", rn_error_last());
		else if (rc < 0)
			reply_fault(api, r, con, rc);
		else
			r->sha256 = rn_xstrdup(sha);
	}
}

static void upload_data(req *r, const char *data, size_t len)
{
	if (!r->up || r->up_status)
		return;
	int rc = rn_coord_upload_write(r->up, data, len);
	if (rc < 0) {
		r->up_status = rc == RN_ETOOBIG ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_INTERNAL_SERVER_ERROR;
		r->up_code = rc == RN_ETOOBIG ? "too_large" : "server_error";
		r->up_msg = rn_xstrdup(rn_error_last());
		rn_coord_upload_abort(r->up);
		r->up = NULL;
	}
}

static void upload_end(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	if (r->up_status) {
		reply_error(api, r, con, r->up_status, r->up_code, "%s", r->up_msg);
		return;
	}
	json_t *out = NULL;
	rn_coord_upload *u = r->up;
	r->up = NULL;
	int rc = rn_coord_upload_end(api->coord, u, r->sha256, &out);
	if (rc == 0)
		reply_json(api, r, con, MHD_HTTP_CREATED, out);
	else if (rc == RN_EINVALID)
		reply_error(api, r, con, MHD_HTTP_BAD_REQUEST, "sha256_mismatch", "%s", rn_error_last());
	else if (rc == RN_ENOTFOUND)
		reply_gone(api, r, con);
	else if (rc == RN_ERROR)
		reply_error(api, r, con, MHD_HTTP_CONFLICT, "conflict", "%s", rn_error_last());
	else
		reply_fault(api, r, con, rc);
}

/* ---- dispatch ---- */

/* The first call for a request: route, authenticate, check what can be checked before the body. */
static void start(rn_serve_api *api, req *r, struct MHD_Connection *con, const char *url, const char *method)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	char allow[64] = "";
	if (split(r, url) < 0) {
		reply_error(api, r, con, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
		return;
	}
	for (size_t i = 0; i < RN_ARRAY_LEN(routes); i++) {
		if (!match(r, routes[i].pattern))
			continue;
		if (strcmp(routes[i].method, m) == 0) {
			r->rt = &routes[i];
			break;
		}
		if (!strstr(allow, routes[i].method)) {
			if (*allow)
				strcat(allow, ", ");
			strcat(allow, routes[i].method);
		}
	}
	if (!r->rt) {
		if (*allow) {
			reply_error(api, r, con, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use %s", allow);
		} else {
			reply_error(api, r, con, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
		}
		return;
	}
	if (r->rt->auth != AUTH_NONE) {
		int kind = token_kind(api, bearer(con), &r->agent_id);
		if (kind == AUTH_NONE) {
			reply_error(api, r, con, MHD_HTTP_UNAUTHORIZED, "unauthorized", "a valid token is required");
			return;
		}
		if (kind != r->rt->auth) {
			reply_error(api, r, con, MHD_HTTP_FORBIDDEN, "forbidden", "this token cannot be used here");
			return;
		}
	}
	if (r->rt->body == BODY_JSON || r->rt->body == BODY_RAW) {
		const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		int64_t len = 0;
		if (cl && parse_int(cl, 0, INT64_MAX, &len) == 0 && len > RN_SERVE_BODY_MAX) {
			reply_error(api, r, con, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the body is larger than %d bytes",
				    RN_SERVE_BODY_MAX);
			return;
		}
		r->body = (rn_buf)RN_BUF_INIT(RN_SERVE_BODY_MAX);
	} else if (r->rt->body == BODY_ARTIFACT) {
		upload_start(api, r, con);
	}
}

/* The body is complete: answer. */
static void dispatch(rn_serve_api *api, req *r, struct MHD_Connection *con)
{
	if (r->too_big) {
		reply_error(api, r, con, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the body is larger than %d bytes",
			    RN_SERVE_BODY_MAX);
		return;
	}
	int64_t id = 0, p = 0;
	int n = 0, rc = 0;
	json_t *out = NULL;
	switch (r->rt->id) {
	case R_INDEX:
	case R_PAGE_PIPELINE:
	case R_PAGE_JOB:
		serve_page(api, r, con);
		return;
	case R_METRICS:
		serve_metrics(api, r, con);
		return;
	case R_PIPELINES:
		if (query_int(api, r, con, "limit", 1, 500, 50, &id) < 0)
			return;
		rc = rn_coord_pipelines(api->coord, id, &out);
		break;
	case R_PIPELINE_CREATE:
		pipeline_create(api, r, con);
		return;
	case R_PIPELINE:
	case R_PIPELINE_CANCEL:
	case R_PIPELINE_ARTIFACTS:
	case R_PIPELINE_ARTIFACT:
		if (parse_int(r->args[0], 1, INT64_MAX, &id) < 0) {
			reply_error(api, r, con, MHD_HTTP_NOT_FOUND, "not_found", "no pipeline '%.64s'", r->args[0]);
			return;
		}
		if (r->rt->id == R_PIPELINE) {
			rc = rn_coord_pipeline_get(api->coord, id, &out);
		} else if (r->rt->id == R_PIPELINE_CANCEL) {
			if (empty_body(api, r, con) < 0)
				return;
			rc = rn_coord_pipeline_cancel(api->coord, id, &out);
		} else if (r->rt->id == R_PIPELINE_ARTIFACTS) {
			rc = rn_coord_artifacts(api->coord, id, &out);
		} else {
			int fd = -1;
			rc = rn_coord_artifact_open(api->coord, id, NULL, 0, r->args[1], &fd, &out);
			if (rc == 0) {
				send_artifact(api, r, con, fd, out);
				return;
			}
		}
		break;
	case R_JOB:
	case R_JOB_LOG:
	case R_JOB_CANCEL:
		if (parse_job_id(r->args[0], &p, &n) < 0) {
			reply_error(api, r, con, MHD_HTTP_NOT_FOUND, "not_found", "no job '%.64s' (job ids look like 17.3)",
				    r->args[0]);
			return;
		}
		if (r->rt->id == R_JOB_LOG) {
			job_log(api, r, con, p, n);
			return;
		}
		if (r->rt->id == R_JOB) {
			rc = rn_coord_job_get(api->coord, p, n, &out);
		} else {
			if (empty_body(api, r, con) < 0)
				return;
			rc = rn_coord_job_cancel(api->coord, p, n, &out);
		}
		break;
	case R_AGENTS:
		rc = rn_coord_agents(api->coord, &out);
		break;
	case R_REGISTER:
		agent_register(api, r, con);
		return;
	case R_POLL:
		agent_poll(api, r, con);
		return;
	case R_ARTIFACT_PUT:
		upload_end(api, r, con);
		return;
	case R_ARTIFACT_GET: {
		int fd = -1;
		if (!hex64(r->args[0])) {
			reply_gone(api, r, con);
			return;
		}
		rc = rn_coord_artifact_open(api->coord, 0, r->args[0], r->agent_id, r->args[1], &fd, &out);
		if (rc == RN_EINVALID) {
			reply_gone(api, r, con);
			return;
		}
		if (rc == 0) {
			send_artifact(api, r, con, fd, out);
			return;
		}
		break;
	}
	default:
		lease_call(api, r, con);
		return;
	}
	if (rc < 0)
		reply_fault(api, r, con, rc);
	else
		reply_json(api, r, con, MHD_HTTP_OK, out);
}

enum MHD_Result rn_serve_api_handler(void *cls, struct MHD_Connection *con, const char *url, const char *method,
			       const char *version, const char *upload_data_p, size_t *upload_data_size, void **con_cls)
{
	rn_serve_api *api = cls;
	req *r = *con_cls;
	(void)version;
	if (!r) {
		r = rn_xcalloc(1, sizeof(*r));
		*con_cls = r;
		__atomic_add_fetch(&api->inflight, 1, __ATOMIC_SEQ_CST);
		start(api, r, con, url, method);
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* bodies of requests that take none, or that were answered early, are dropped */
		if (!r->answered && r->rt) {
			if (r->rt->body == BODY_ARTIFACT)
				upload_data(r, upload_data_p, *upload_data_size);
			else if (r->rt->body != BODY_NONE && !r->too_big &&
				 rn_buf_add(&r->body, upload_data_p, *upload_data_size) < 0)
				r->too_big = 1;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!r->answered)
		dispatch(api, r, con);
	return MHD_YES;
}

void rn_serve_api_completed(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	rn_serve_api *api = cls;
	(void)con;
	(void)toe;
	if (*con_cls)
		__atomic_sub_fetch(&api->inflight, 1, __ATOMIC_SEQ_CST);
	req_free(*con_cls);
	*con_cls = NULL;
}

long rn_serve_api_inflight(rn_serve_api *api)
{
	return __atomic_load_n(&api->inflight, __ATOMIC_SEQ_CST);
}
