/* server_metrics.h - the counters and histograms of `runner serve` and their Prometheus text
 * rendering (GET /metrics), and the allocator's heap gauges (the server's and the agent's).
 * Thread-safe: every function takes the registry's own lock. */
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

/* The allocator's figures for this process: glibc's mallinfo2(), or the sanitizer allocator's
 * in an AddressSanitizer build (then mmap and free are what it reports, arena its heap size). */
typedef struct rn_heap_stats {
	uint64_t in_use; /* allocated and not yet freed: chunks in use in the arenas + mmapped chunks */
	uint64_t arena;  /* taken from the system for the arenas (brk and arena mmaps, all arenas) */
	uint64_t mmap;   /* in chunks mmapped one by one (large allocations) */
	uint64_t free;   /* free in the arenas, kept by the allocator */
} rn_heap_stats;

/* Fill h with the allocator's current figures (takes every arena's lock briefly). */
void rn_heap_stats_get(rn_heap_stats *h);
/* Append the heap gauges PREFIX_heap_in_use_bytes, _arena_bytes, _mmap_bytes and _free_bytes as
 * Prometheus text to out (prefix "runner" for the server, "runner_agent" for an agent). */
void rn_heap_render(rn_buf *out, const char *prefix);

#endif
