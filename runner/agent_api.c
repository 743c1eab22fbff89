/* agent_api.c - authenticated calls of the server protocol for the agent (see agent_api.h). */
#include "agent_api.h"
#include "error.h"
#include "http.h"
#include "util.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define ANSWER_MAX (1024 * 1024) /* default cap of a JSON answer */

void rn_api_init(rn_api *api, const char *base, const char *token)
{
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	api->base = rn_xstrndup(base, n);
	api->token = rn_xstrdup(token ? token : "");
}

void rn_api_free(rn_api *api)
{
	if (api->token)
		memset(api->token, 0, strlen(api->token));
	free(api->token);
	free(api->base);
	api->token = api->base = NULL;
}

const char *rn_api_code(const json_t *answer)
{
	const char *c = json_string_value(json_object_get(answer, "code"));
	return c ? c : "";
}

json_t *rn_api_answer_parse(const char *body, size_t len)
{
	json_t *a = json_loadb(body, len, 0, NULL);
	if (json_is_object(a))
		return a;
	json_decref(a);
	return NULL;
}

char *rn_api_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = rn_xmalloc(3 * n + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("._~-", *p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static __thread uint64_t rng_state;

static uint64_t rng_next(void)
{
	if (!rng_state) {
		if (getrandom(&rng_state, sizeof(rng_state), GRND_NONBLOCK) != (ssize_t)sizeof(rng_state) || !rng_state)
			rng_state = (uint64_t)rn_now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	}
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 2685821657736338717ULL;
}

long rn_backoff_ms(int attempt, long base_ms, long cap_ms)
{
	long d = base_ms > 0 ? base_ms : 1;
	for (int i = 1; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	return (long)(rng_next() % (uint64_t)(d + 1));
}

int rn_api_do(const rn_api *api, const rn_api_call *c, rn_api_res *res)
{
	memset(res, 0, sizeof(*res));
	char *url = rn_xasprintf("%s%s", api->base, c->path);
	char *auth = rn_xasprintf("Bearer %s", api->token);
	rn_http_header h[1] = { { "Authorization", auth } };
	char *json = c->json ? json_dumps(c->json, JSON_COMPACT) : NULL;
	rn_http_req req = {
		.url = url,
		.method = c->method,
		.headers = h,
		.nheaders = 1,
		.file = c->file,
		.timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS,
		.connect_timeout_ms = 5000,
		.stall_ms = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS,
		.attempts = 1,
		.max_body = c->max_answer ? c->max_answer : ANSWER_MAX,
		.cancel = c->cancel,
		.wake_fd = c->wake_fd,
		.cb_arg = c->cb_arg,
	};
	if (json) {
		req.body = json;
		req.body_len = strlen(json);
		req.content_type = "application/json";
	} else if (c->body) {
		req.body = c->body;
		req.body_len = c->body_len;
		req.content_type = c->content_type ? c->content_type : "application/octet-stream";
	}
	rn_http_resp r = { 0 };
	int rc = c->file ? rn_http_upload_file(&req, &r) : rn_http_request(&req, &r);
	res->status = r.status;
	res->cancelled = r.cancelled;
	if (r.body && r.body_len && !r.truncated)
		res->answer = rn_api_answer_parse(r.body, r.body_len);
	if (rc < 0 && res->answer && json_is_string(json_object_get(res->answer, "error")))
		rn_error_set("%s %s: HTTP %ld: %s", c->method ? c->method : "POST", c->path, r.status,
			     json_string_value(json_object_get(res->answer, "error")));
	rn_http_resp_free(&r);
	memset(auth, 0, strlen(auth));
	free(auth);
	free(json);
	free(url);
	return rc < 0 ? RN_ERROR : 0;
}

/* ---- downloads ----------------------------------------------------------------------------- */

typedef struct dl {
	int fd;
	uint64_t got, max;
	EVP_MD_CTX *md;
	int too_big, io_err, err_no, cancelled;
	int (*cancel)(void *);
	void *cb_arg;
	CURL *h;
} dl;

static size_t dl_write(char *p, size_t size, size_t n, void *arg)
{
	dl *d = arg;
	size_t len = size * n;
	long code = 0;
	curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200)
		return len; /* an error answer: not the archive */
	if (d->got + len > d->max) {
		d->too_big = 1;
		return 0;
	}
	if (rn_write_all(d->fd, p, len) < 0) {
		d->io_err = 1;
		d->err_no = errno;
		return 0;
	}
	EVP_DigestUpdate(d->md, p, len);
	d->got += len;
	return len;
}

static int dl_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t e)
{
	(void)a, (void)b, (void)c, (void)e;
	dl *d = arg;
	if (d->cancel && d->cancel(d->cb_arg)) {
		d->cancelled = 1;
		return 1;
	}
	return 0;
}

int rn_api_download(const rn_api *api, const char *path, const char *dest, uint64_t max, char sha256_hex[65],
		    long *status, int (*cancel)(void *arg), void *cb_arg)
{
	*status = 0;
	sha256_hex[0] = '\0';
	free(rn_http_url_redacted(api->base)); /* initialises libcurl once for the process (http.c) */
	dl d = { .max = max, .cancel = cancel, .cb_arg = cb_arg };
	int rc = 0;
	char *url = rn_xasprintf("%s%s", api->base, path);
	char *auth = rn_xasprintf("Authorization: Bearer %s", api->token);
	struct curl_slist *hdrs = curl_slist_append(NULL, auth);
	char errbuf[CURL_ERROR_SIZE] = "";
	d.fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (d.fd < 0) {
		rc = rn_error_errno("%s", dest);
		goto out;
	}
	d.md = EVP_MD_CTX_new();
	d.h = curl_easy_init();
	if (!d.md || EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) != 1 || !d.h || !hdrs) {
		rc = rn_error_set("out of memory");
		goto out;
	}
	curl_easy_setopt(d.h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(d.h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(d.h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(d.h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d.h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(d.h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(d.h, CURLOPT_USERAGENT, "runner/" RN_VERSION);
	curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
	curl_easy_setopt(d.h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(d.h, CURLOPT_XFERINFOFUNCTION, dl_progress);
	curl_easy_setopt(d.h, CURLOPT_XFERINFODATA, &d);
	curl_easy_setopt(d.h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(d.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(d.h, CURLOPT_LOW_SPEED_TIME, 60L);
	CURLcode cc = curl_easy_perform(d.h);
	curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, status);
	if (d.too_big) {
		rn_error_set("GET %s: larger than %llu bytes", path, (unsigned long long)max);
		rc = RN_ETOOBIG;
	} else if (d.io_err) {
		errno = d.err_no;
		rc = rn_error_errno("%s", dest);
	} else if (cc != CURLE_OK) {
		*status = 0;
		rc = rn_error_set("GET %s: %s", path, d.cancelled ? "cancelled" : *errbuf ? errbuf : curl_easy_strerror(cc));
	} else if (*status != 200) {
		rc = rn_error_set("GET %s: HTTP %ld", path, *status);
	} else {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int len = 0;
		if (EVP_DigestFinal_ex(d.md, md, &len) != 1 || len != 32) {
			rc = rn_error_set("sha256 failed");
		} else {
			for (unsigned i = 0; i < 32; i++)
				snprintf(sha256_hex + 2 * i, 3, "%02x", md[i]);
		}
	}
	if (rc == 0 && fsync(d.fd) < 0)
		rc = rn_error_errno("%s", dest);
out:
	if (d.fd >= 0 && close(d.fd) < 0 && rc == 0)
		rc = rn_error_errno("%s", dest);
	if (d.h)
		curl_easy_cleanup(d.h);
	EVP_MD_CTX_free(d.md);
	curl_slist_free_all(hdrs);
	memset(auth, 0, strlen(auth));
	free(auth);
	free(url);
	return rc;
}
