/* agent_api.h - the agent's side of the server protocol (docs/protocol.md): authenticated JSON
 * calls, raw log appends and streamed artifact transfers over runner/http.h (and libcurl for
 * downloads), plus the backoff the agent uses between failed calls. Thread-safe: one curl
 * handle per call. */
#ifndef RN_AGENT_API_H
#define RN_AGENT_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A server and the token that authenticates to it (both owned by the struct). */
typedef struct rn_api {
	char *base;  /* "http://host:port" without a trailing slash */
	char *token; /* bearer token (registration or agent token) */
} rn_api;

/* One call; every pointer is borrowed for the duration of the call. */
typedef struct rn_api_call {
	const char *method;       /* default: POST with a body, else GET */
	const char *path;         /* "/api/v1/..." (with the query string) */
	json_t *json;             /* a JSON body, or NULL */
	const char *body;         /* a raw body (body_len bytes) instead, e.g. log bytes */
	size_t body_len;
	const char *content_type; /* of body (default application/octet-stream) */
	const char *file;         /* PUT this file, streamed from disk (artifacts) */
	long timeout_ms;          /* whole call (default 30 s) */
	size_t max_answer;        /* cap of the answer's body (default 1 MiB; an ASSIGNMENT carries
	                           * the workflow text) */
	int (*cancel)(void *arg); /* polled every 100 ms (or when wake_fd is readable); non-zero aborts */
	int wake_fd;              /* > 0: poll cancel only when this fd is readable (no idle wakeups) */
	void *cb_arg;
} rn_api_call;

/* The outcome of a call (caller frees answer with json_decref). */
typedef struct rn_api_res {
	long status;    /* HTTP status; 0 when no answer came (network, timeout, cancelled) */
	int cancelled;  /* the cancel callback stopped it */
	json_t *answer; /* the answer's JSON object when it had one, else NULL */
} rn_api_res;

/* 1 for failures worth retrying (no answer, 5xx, 429). */
#define RN_API_TRANSIENT(st) ((st) == 0 || (st) >= 500 || (st) == 429)

/* Set up api for base (trailing slashes dropped) and token (copied). */
void rn_api_init(rn_api *api, const char *base, const char *token);
/* Free what api owns (the token is wiped first). */
void rn_api_free(rn_api *api);
/* Make one attempt of the call (no retries: the agent's loops back off themselves). 0 on a 2xx
 * answer, else RN_ERROR with rn_error_last() naming the status and the server's message; res is
 * filled either way (caller frees res->answer). */
int rn_api_do(const rn_api *api, const rn_api_call *c, rn_api_res *res);
/* GET path into the file dest (created or truncated, mode 0644), streamed, never held in memory,
 * at most max bytes (RN_ETOOBIG past it); sha256_hex gets the hex SHA-256 of what arrived. One
 * attempt: 0 on 200, else RN_ERROR (*status says: 0 = no answer) or RN_EIO (disk). */
int rn_api_download(const rn_api *api, const char *path, const char *dest, uint64_t max, char sha256_hex[65],
		    long *status, int (*cancel)(void *arg), void *cb_arg);

/* The delay before retry `attempt` (1-based) of a failed call: "full jitter", a uniformly random
 * time in [0, min(cap, base * 2^(attempt-1))] milliseconds. */
long rn_backoff_ms(int attempt, long base_ms, long cap_ms);
/* The JSON object of an answer's body, or NULL when it is not one (caller frees). */
json_t *rn_api_answer_parse(const char *body, size_t len);
/* The "code" of an error answer ({"error", "code"}), or "" (static or borrowed from answer). */
const char *rn_api_code(const json_t *answer);
/* path with every character outside [A-Za-z0-9._~-] percent-encoded (for a path segment or a
 * query value); caller frees. */
char *rn_api_escape(const char *s);

#endif
