/* http.h - a small libcurl client: streaming file uploads and small JSON requests, with
 * timeouts, capped response bodies and retries (exponential backoff with jitter) on connection
 * errors, timeouts and 5xx answers. One curl easy handle per call; thread-safe. */
#ifndef RN_HTTP_H
#define RN_HTTP_H

#include <stddef.h>

/* Cap of a response body kept by default (more is received and dropped). */
#define RN_HTTP_BODY_MAX (64 * 1024)

/* One request header; both strings borrowed. Values may be secrets: never logged here. */
typedef struct rn_http_header {
	const char *name;
	const char *value;
} rn_http_header;

/* A request; every pointer is borrowed for the duration of the call. Zero means "default". */
typedef struct rn_http_req {
	const char *url;                /* http:// or https:// only */
	const char *method;             /* default: PUT (upload), GET or POST when body (request) */
	const rn_http_header *headers;  /* extra headers (nheaders of them) */
	size_t nheaders;
	/* rn_http_upload_file */
	const char *file;               /* the file to stream from disk */
	int multipart;                  /* 1: POST as multipart/form-data with the file as a part */
	const char *field;              /* multipart field name (default "file") */
	const char *filename;           /* multipart filename (default: the file's base name) */
	/* rn_http_request */
	const char *body;               /* request body (body_len bytes), NULL for none */
	size_t body_len;
	const char *content_type;       /* of body (default application/json) */
	/* limits and retries */
	long timeout_ms;                /* per attempt, whole transfer (default: none) */
	long connect_timeout_ms;        /* per attempt (default 10 s) */
	long stall_ms;                  /* abort an attempt moving < 1 byte/s this long (default 60 s) */
	int attempts;                   /* tries in all, >= 1 (default 1) */
	long retry_delay_ms;            /* first backoff delay, doubled each retry (default 500 ms) */
	long retry_max_delay_ms;        /* backoff cap, also for Retry-After (default 30 s) */
	size_t max_body;                /* cap of resp->body (default RN_HTTP_BODY_MAX) */
	int (*cancel)(void *arg);       /* polled every 100 ms during transfers and backoff; non-zero aborts */
	int wake_fd;                    /* > 0: cancel is polled only when this fd is readable (e.g. a
	                                 * signalfd) or curl has work, instead of every 100 ms: an idle
	                                 * long-poll then costs no CPU */
	/* called before each backoff sleep: the failed attempt (1-based), the delay, why it failed */
	void (*on_retry)(void *arg, int attempt, long delay_ms, const char *why);
	void *cb_arg;                   /* the argument of cancel and on_retry */
} rn_http_req;

/* The outcome of the last attempt. Owned by the caller; release with rn_http_resp_free. */
typedef struct rn_http_resp {
	long status;       /* HTTP status of the last answer, 0 if none came */
	char *body;        /* its body, NUL-terminated, at most max_body bytes (NULL if none) */
	size_t body_len;
	int truncated;     /* 1 if the body was longer than the cap */
	int attempts;      /* attempts made */
	int transient;     /* 1 if the final failure was retryable (network, timeout, 5xx) */
	int cancelled;     /* 1 if req->cancel stopped it */
	long long sent;    /* request body bytes sent by the last attempt */
} rn_http_resp;

/* Stream req->file (PUT, or multipart POST) to req->url, never holding it in memory; retries
 * transient failures. 0 on a 2xx answer; else RN_ERROR (an HTTP or network failure: see
 * resp->status and ->transient), RN_ENOTFOUND (no file), RN_EINVALID (bad URL or header, not a
 * regular file) or RN_EIO (read error), with rn_error_last() naming the status and the start of
 * the server's message; resp (may be NULL) is filled either way and the caller frees it. */
int rn_http_upload_file(const rn_http_req *req, rn_http_resp *resp);
/* A small request (req->body borrowed, e.g. JSON); the answer's capped body into resp (may be
 * NULL; caller frees). Returns as rn_http_upload_file. */
int rn_http_request(const rn_http_req *req, rn_http_resp *resp);
/* Free resp's body and zero it; resp may be NULL. */
void rn_http_resp_free(rn_http_resp *resp);
/* 1 if name is a valid header field name (RFC 9110 token) and value has no CR, LF or NUL. */
int rn_http_header_ok(const char *name, const char *value);
/* url without user info, query and fragment, for messages (may hold credentials otherwise);
 * caller frees. */
char *rn_http_url_redacted(const char *url);

#endif
