/* server_api.h - the HTTP side of `runner serve`: routes, authentication, request bodies (capped,
 * or streamed for artifacts) and answers of docs/protocol.md, as a libmicrohttpd access handler
 * running in thread-per-connection mode (so a long-poll blocks its own connection's thread). */
#ifndef RN_SERVER_API_H
#define RN_SERVER_API_H

#include "coord.h"
#include "server_metrics.h"

#include <microhttpd.h>

/* Largest JSON request body and log chunk. */
#define RN_SERVE_BODY_MAX (1024 * 1024)

typedef struct rn_serve_api {
	rn_coord *coord;            /* borrowed */
	rn_metrics *metrics;        /* borrowed */
	const char *admin_token;    /* borrowed */
	const char *registration_token; /* borrowed */
	int public_status;          /* 1: the HTML status pages need no token */
	int64_t max_artifact_size;  /* bytes */
	int64_t lease_ttl_ms;       /* told to agents in heartbeat answers */
	/* filled by rn_serve_api_init */
	char admin_sha[65], registration_sha[65];
	long inflight; /* requests begun and not completed (atomic) */
} rn_serve_api;

/* Prepare api (hash the tokens); call once before serving. */
void rn_serve_api_init(rn_serve_api *api);
/* The libmicrohttpd access handler (cls is the rn_serve_api). */
enum MHD_Result rn_serve_api_handler(void *cls, struct MHD_Connection *con, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
/* The request-completed callback: frees what rn_serve_api_handler kept for the request. */
void rn_serve_api_completed(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode toe);
/* How many requests are being handled or answered now (to let answers go out at shutdown). */
long rn_serve_api_inflight(rn_serve_api *api);

#endif
