/* server_metrics.h - the counters and histograms of `runner serve` and their Prometheus text
 * rendering (GET /metrics). Thread-safe: every function takes the registry's own lock. */
#ifndef RN_SERVER_METRICS_H
#define RN_SERVER_METRICS_H

#include "buf.h"

#include <stdint.h>

typedef struct rn_metrics rn_metrics;

/* What a counter counts. */
typedef enum {
	RN_M_LOG_BYTES,      /* log bytes appended */
	RN_M_ARTIFACT_BYTES, /* artifact bytes stored */
	RN_M_COUNTER_COUNT
} rn_metric_counter;

/* What a histogram measures (seconds). */
typedef enum {
	RN_M_JOB_DURATION, /* from a job's start (ack) to its end */
	RN_M_QUEUE_WAIT,   /* from a job's queueing to its assignment */
	RN_M_HISTOGRAM_COUNT
} rn_metric_histogram;

/* A new registry, all zero; caller frees with rn_metrics_free. */
rn_metrics *rn_metrics_new(void);
/* Free the registry (NULL is fine). */
void rn_metrics_free(rn_metrics *m);
/* Count one HTTP answer with this status code (m may be NULL). */
void rn_metrics_http(rn_metrics *m, unsigned code);
/* Add n to a counter (m may be NULL). */
void rn_metrics_add(rn_metrics *m, rn_metric_counter c, uint64_t n);
/* Record one observation (seconds) in a histogram (m may be NULL). */
void rn_metrics_observe(rn_metrics *m, rn_metric_histogram h, double seconds);
/* Append the counters and histograms as Prometheus text to out (the caller adds the gauges it
 * computes itself, e.g. jobs by state). */
void rn_metrics_render(rn_metrics *m, rn_buf *out);

#endif
