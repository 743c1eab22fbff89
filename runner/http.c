/* http.c - a small libcurl client: streaming file uploads (PUT from a read callback, or a
 * multipart POST whose file part curl streams from disk) and small JSON requests, with capped
 * response bodies and retries with exponential backoff and jitter on transient failures. */
#include "http.h"
#include "buf.h"
#include "error.h"
#include "util.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONNECT_MS 10000L
#define DEFAULT_STALL_MS 60000L
#define DEFAULT_RETRY_MS 500L
#define DEFAULT_RETRY_MAX_MS 30000L
#define MAX_ATTEMPTS 100
#define EXCERPT_MAX 600 /* bytes of the server's answer quoted in rn_error_last() */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void rn_http_resp_free(rn_http_resp *resp)
{
	if (!resp)
		return;
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

static int tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int rn_http_header_ok(const char *name, const char *value)
{
	if (!name || !*name || !value)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (!tchar(*p))
			return 0;
	return strpbrk(value, "\r\n") == NULL;
}

char *rn_http_url_redacted(const char *url)
{
	pthread_once(&init_once, global_init);
	CURLU *u = curl_url();
	char *out = NULL, *s = NULL;
	if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
		curl_url_set(u, CURLUPART_USER, NULL, 0);
		curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
		curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
		curl_url_set(u, CURLUPART_QUERY, NULL, 0);
		curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
		if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
			out = rn_xstrdup(s);
	}
	curl_free(s);
	curl_url_cleanup(u);
	return out ? out : rn_xstrdup("(invalid URL)");
}

/* 0 if url is an absolute http:// or https:// URL with a host. */
static int check_url(const char *url)
{
	if (!url || !*url)
		return rn_error_set("no URL");
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = 0;
	if (!u)
		return rn_error_set("out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		rc = rn_error_set("invalid URL");
	else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		rc = rn_error_set("unsupported URL scheme '%s' (http or https)", scheme);
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
		rc = rn_error_set("invalid URL: no host");
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	if (rc < 0)
		rc = RN_EINVALID;
	return rc;
}

/* ---- one transfer -------------------------------------------------------------------------- */

typedef struct xfer {
	const rn_http_req *req;
	rn_buf body;   /* the answer, capped */
	int truncated;
	int fd;        /* PUT / raw POST: the file, rewound before each attempt */
	int cancelled;
} xfer;

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	xfer *x = arg;
	size_t len = size * n;
	size_t room = x->body.max - x->body.len;
	if (len > room) {
		x->truncated = 1;
		rn_buf_add(&x->body, p, room);
	} else {
		rn_buf_add(&x->body, p, len);
	}
	return len; /* the rest is received and dropped: the connection stays usable */
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	xfer *x = arg;
	for (;;) {
		ssize_t r = read(x->fd, p, size * n);
		if (r >= 0)
			return (size_t)r;
		if (errno != EINTR)
			return CURL_READFUNC_ABORT;
	}
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
	xfer *x = arg;
	return lseek(x->fd, (off_t)offset, origin) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	xfer *x = arg;
	if (x->req->cancel && x->req->cancel(x->req->cb_arg)) {
		x->cancelled = 1;
		return 1;
	}
	return 0;
}

static int retryable_code(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
#if LIBCURL_VERSION_NUM >= 0x074400
	case CURLE_HTTP3:
	case CURLE_QUIC_CONNECT_ERROR:
#endif
		return 1;
	default:
		return 0;
	}
}

/* The first bytes of the answer for a one-line message: control characters become spaces. */
static void excerpt(char *out, size_t outlen, const char *body, size_t len, int truncated)
{
	size_t n = 0;
	int space = 1;
	size_t i;
	for (i = 0; i < len && n + 4 < outlen; i++) {
		unsigned char c = (unsigned char)body[i];
		if (c < 0x20 || c == 0x7f) {
			if (!space)
				out[n++] = ' ';
			space = 1;
			continue;
		}
		out[n++] = (char)c;
		space = c == ' ';
	}
	if (i < len)
		truncated = 1;
	while (n > 0 && out[n - 1] == ' ')
		n--;
	if (truncated && n + 4 <= outlen) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* Sleep ms milliseconds in short slices, polling req->cancel; 1 if cancelled. */
static int backoff_sleep(const rn_http_req *req, long ms)
{
	int64_t end = rn_now_ms() + ms;
	for (;;) {
		if (req->cancel && req->cancel(req->cb_arg))
			return 1;
		int64_t left = end - rn_now_ms();
		if (left <= 0)
			return 0;
		if (req->cancel && req->wake_fd > 0) {
			struct pollfd p = { .fd = req->wake_fd, .events = POLLIN };
			poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
			continue;
		}
		if (req->cancel && left > 50)
			left = 50;
		struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* xorshift64*, seeded per call: jitter needs spread between agents, not cryptography. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ULL;
}

/* The delay before retry number `retry` (1-based): base * 2^(retry-1), capped, with "equal
 * jitter" (half fixed, half random); a longer Retry-After from the server wins, still capped. */
static long retry_delay(const rn_http_req *req, int retry, long retry_after_ms, uint64_t *seed)
{
	long base = req->retry_delay_ms > 0 ? req->retry_delay_ms : DEFAULT_RETRY_MS;
	long cap = req->retry_max_delay_ms > 0 ? req->retry_max_delay_ms : DEFAULT_RETRY_MAX_MS;
	long d = base;
	for (int i = 1; i < retry && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	d = d / 2 + (long)(next_rand(seed) % (uint64_t)(d / 2 + 1));
	if (retry_after_ms > d)
		d = retry_after_ms < cap ? retry_after_ms : cap;
	return d;
}

/* curl_easy_perform, but through a multi handle woken every CANCEL_POLL_MS, so that a cancel
 * is seen within that time also while the connection is idle (the progress callback runs only
 * about once a second then). */
#define CANCEL_POLL_MS 100
static CURLcode run_transfer(CURL *h, xfer *x)
{
	if (!x->req->cancel)
		return curl_easy_perform(h);
	CURLM *m = curl_multi_init();
	if (!m)
		return CURLE_OUT_OF_MEMORY;
	CURLcode res = CURLE_OK;
	if (curl_multi_add_handle(m, h) != CURLM_OK) {
		curl_multi_cleanup(m);
		return CURLE_FAILED_INIT;
	}
	for (;;) {
		int running = 0, n;
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			break;
		}
		if (!running) {
			CURLMsg *msg;
			res = CURLE_GOT_NOTHING;
			while ((msg = curl_multi_info_read(m, &n)))
				if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
					res = msg->data.result;
			break;
		}
		if (x->req->cancel(x->req->cb_arg)) {
			x->cancelled = 1;
			res = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		/* with a wake fd, sleep until curl or the fd has something (curl bounds the wait by
		 * its own timers: timeouts, stall checks) */
		struct curl_waitfd wfd = { .fd = x->req->wake_fd, .events = CURL_WAIT_POLLIN };
		int have_fd = x->req->wake_fd > 0;
		if (curl_multi_poll(m, have_fd ? &wfd : NULL, have_fd ? 1 : 0, have_fd ? 60000 : CANCEL_POLL_MS, &n) !=
		    CURLM_OK) {
			res = CURLE_FAILED_INIT;
			break;
		}
	}
	curl_multi_remove_handle(m, h);
	curl_multi_cleanup(m);
	return res;
}

enum { MODE_REQUEST, MODE_UPLOAD };

static struct curl_slist *build_headers(const rn_http_req *req, int mode, int *rc)
{
	struct curl_slist *list = NULL, *l;
	int have_ctype = 0;
	*rc = 0;
	for (size_t i = 0; i < req->nheaders; i++) {
		const rn_http_header *h = &req->headers[i];
		if (!rn_http_header_ok(h->name, h->value)) {
			/* never the value: it may be a secret */
			*rc = rn_error_set("invalid header '%s' (a token name; no line breaks in the value)",
					   h->name && rn_http_header_ok(h->name, "") ? h->name : "?");
			*rc = RN_EINVALID;
			break;
		}
		if (strcasecmp(h->name, "Content-Type") == 0)
			have_ctype = 1;
		/* "Name;" is curl's way of sending an empty header ("Name:" would remove it) */
		char *line = *h->value ? rn_xasprintf("%s: %s", h->name, h->value) : rn_xasprintf("%s;", h->name);
		l = curl_slist_append(list, line);
		/* the line may hold a secret: wipe our copy */
		memset(line, 0, strlen(line));
		free(line);
		if (!l) {
			*rc = rn_error_set("out of memory");
			break;
		}
		list = l;
	}
	if (*rc == 0 && mode == MODE_REQUEST && req->body && !have_ctype) {
		char *line = rn_xasprintf("Content-Type: %s", req->content_type ? req->content_type : "application/json");
		l = curl_slist_append(list, line);
		free(line);
		if (!l)
			*rc = rn_error_set("out of memory");
		else
			list = l;
	}
	if (*rc < 0) {
		curl_slist_free_all(list);
		list = NULL;
	}
	return list;
}

static int perform(const rn_http_req *req, rn_http_resp *out, int mode)
{
	rn_http_resp local = { 0 };
	rn_http_resp *resp = out ? out : &local;
	memset(resp, 0, sizeof(*resp));
	pthread_once(&init_once, global_init);
	if (init_rc != CURLE_OK)
		return rn_error_set("cannot initialise libcurl: %s", curl_easy_strerror(init_rc));
	int rc = check_url(req->url);
	if (rc < 0)
		return rc;

	char *where = NULL;
	const char *method = req->method;
	if (!method || !*method)
		method = mode == MODE_UPLOAD ? (req->multipart ? "POST" : "PUT") : (req->body ? "POST" : "GET");
	xfer x = { .req = req, .body = RN_BUF_INIT(req->max_body ? req->max_body : RN_HTTP_BODY_MAX), .fd = -1 };
	CURL *h = NULL;
	curl_mime *mime = NULL;
	struct curl_slist *hdrs = NULL;
	curl_off_t fsize = 0;
	char errbuf[CURL_ERROR_SIZE];

	if (mode == MODE_UPLOAD) {
		struct stat st;
		if (!req->file)
			return rn_error_set("no file to upload");
		x.fd = open(req->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (x.fd < 0) {
			rc = rn_error_errno("%s", req->file);
			return errno == ENOENT ? RN_ENOTFOUND : rc;
		}
		if (fstat(x.fd, &st) < 0) {
			rc = rn_error_errno("%s", req->file);
			close(x.fd);
			return rc;
		}
		if (!S_ISREG(st.st_mode)) {
			rn_error_set("%s: %s", req->file, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
			close(x.fd);
			return RN_EINVALID;
		}
		fsize = (curl_off_t)st.st_size;
	}
	hdrs = build_headers(req, mode, &rc);
	if (rc < 0)
		goto done;
	h = curl_easy_init();
	if (!h) {
		rc = rn_error_set("cannot create a curl handle");
		goto done;
	}
	where = rn_http_url_redacted(req->url);

	curl_easy_setopt(h, CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "runner/" RN_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 req->connect_timeout_ms > 0 ? req->connect_timeout_ms : DEFAULT_CONNECT_MS);
	if (req->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	long stall = req->stall_ms > 0 ? req->stall_ms : DEFAULT_STALL_MS;
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall < 1000 ? 1L : stall / 1000);

	if (mode == MODE_UPLOAD && req->multipart) {
		mime = curl_mime_init(h);
		curl_mimepart *part = mime ? curl_mime_addpart(mime) : NULL;
		if (!part || curl_mime_name(part, req->field ? req->field : "file") != CURLE_OK ||
		    curl_mime_filedata(part, req->file) != CURLE_OK || /* streamed from disk by curl */
		    (req->filename && curl_mime_filename(part, req->filename) != CURLE_OK) ||
		    curl_mime_type(part, "application/octet-stream") != CURLE_OK) {
			rc = rn_error_set("cannot build the multipart form");
			goto done;
		}
		curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (mode == MODE_UPLOAD) {
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
		if (strcmp(method, "POST") == 0) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, fsize);
		} else {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, fsize);
			if (strcmp(method, "PUT") != 0)
				curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		}
	} else if (req->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}

	int attempts = req->attempts > 0 ? req->attempts : 1;
	if (attempts > MAX_ATTEMPTS)
		attempts = MAX_ATTEMPTS;
	uint64_t seed = (uint64_t)rn_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&x;
	if (!seed)
		seed = 0x9e3779b97f4a7c15ULL;
	for (int attempt = 1;; attempt++) {
		rn_buf_reset(&x.body);
		x.truncated = 0;
		errbuf[0] = '\0';
		if (x.fd >= 0 && lseek(x.fd, 0, SEEK_SET) < 0) {
			rc = rn_error_errno("%s", req->file);
			break;
		}
		CURLcode c = run_transfer(h, &x);
		long status = 0;
		curl_off_t retry_after = 0, sent = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &sent);
		curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
		resp->attempts = attempt;
		resp->status = c == CURLE_OK ? status : 0;
		resp->sent = (long long)sent;
		resp->truncated = x.truncated;
		resp->transient = 0;
		char why[EXCERPT_MAX + 128];
		if (c == CURLE_OK && status >= 200 && status < 300) {
			rc = 0;
			break;
		}
		if (c == CURLE_ABORTED_BY_CALLBACK && x.cancelled) {
			resp->cancelled = 1;
			rc = rn_error_set("%s %s: cancelled", method, where);
			break;
		}
		if (c == CURLE_OK) {
			char ex[EXCERPT_MAX];
			excerpt(ex, sizeof(ex), rn_buf_cstr(&x.body), x.body.len, x.truncated);
			snprintf(why, sizeof(why), "HTTP %ld%s%s", status, *ex ? ": " : "", ex);
			resp->transient = status >= 500;
		} else {
			snprintf(why, sizeof(why), "%s", *errbuf ? errbuf : curl_easy_strerror(c));
			resp->transient = retryable_code(c);
		}
		if (!resp->transient || attempt >= attempts) {
			if (resp->transient && attempts > 1)
				rc = rn_error_set("%s %s: %s (gave up after %d attempts)", method, where, why, attempt);
			else
				rc = rn_error_set("%s %s: %s", method, where, why);
			if (c == CURLE_READ_ERROR || c == CURLE_ABORTED_BY_CALLBACK)
				rc = RN_EIO;
			break;
		}
		long delay = retry_delay(req, attempt, (long)retry_after * 1000, &seed);
		if (req->on_retry)
			req->on_retry(req->cb_arg, attempt, delay, why);
		if (backoff_sleep(req, delay)) {
			resp->cancelled = 1;
			rc = rn_error_set("%s %s: cancelled", method, where);
			break;
		}
	}
	if (x.body.len || resp->status) {
		resp->body_len = x.body.len;
		resp->body = rn_buf_detach(&x.body);
	}
done:
	rn_buf_free(&x.body);
	curl_mime_free(mime);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	if (x.fd >= 0)
		close(x.fd);
	free(where);
	if (!out)
		rn_http_resp_free(&local);
	return rc;
}

int rn_http_upload_file(const rn_http_req *req, rn_http_resp *resp)
{
	return perform(req, resp, MODE_UPLOAD);
}

int rn_http_request(const rn_http_req *req, rn_http_resp *resp)
{
	return perform(req, resp, MODE_REQUEST);
}
