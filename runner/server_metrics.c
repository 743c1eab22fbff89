/* server_metrics.c - counters and histograms of the server, rendered as Prometheus text. */
#include "server_metrics.h"
#include "util.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define RN_ASAN_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RN_ASAN_ALLOCATOR 1
#endif
#endif
#ifdef RN_ASAN_ALLOCATOR
/* <sanitizer/allocator_interface.h> of compiler-rt (gcc does not ship the header) */
size_t __sanitizer_get_current_allocated_bytes(void);
size_t __sanitizer_get_heap_size(void);
size_t __sanitizer_get_free_bytes(void);
#endif

/* Upper bounds (seconds) of the histogram buckets; +Inf is implicit. */
static const double bounds[RN_M_HISTOGRAM_COUNT][12] = {
	[RN_M_JOB_DURATION] = { 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600 },
	[RN_M_QUEUE_WAIT] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 },
};
#define NBOUNDS 12

static const char *const hist_names[RN_M_HISTOGRAM_COUNT][2] = {
	[RN_M_JOB_DURATION] = { "runner_job_duration_seconds", "Time from a job's start to its end." },
	[RN_M_QUEUE_WAIT] = { "runner_queue_wait_seconds", "Time a job waited in the queue for an agent." },
};

static const char *const counter_names[RN_M_COUNTER_COUNT][2] = {
	[RN_M_LOG_BYTES] = { "runner_log_bytes_total", "Job log bytes received from agents." },
	[RN_M_ARTIFACT_BYTES] = { "runner_artifact_bytes_total", "Artifact bytes stored." },
};

typedef struct histogram {
	uint64_t buckets[NBOUNDS + 1]; /* non-cumulative; the last is +Inf */
	uint64_t count;
	double sum;
} histogram;

struct rn_metrics {
	pthread_mutex_t lock;
	uint64_t http[600];
	uint64_t counters[RN_M_COUNTER_COUNT];
	histogram hist[RN_M_HISTOGRAM_COUNT];
};

rn_metrics *rn_metrics_new(void)
{
	rn_metrics *m = rn_xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void rn_metrics_free(rn_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void rn_metrics_http(rn_metrics *m, unsigned code)
{
	if (!m || code >= RN_ARRAY_LEN(m->http))
		return;
	pthread_mutex_lock(&m->lock);
	m->http[code]++;
	pthread_mutex_unlock(&m->lock);
}

void rn_metrics_add(rn_metrics *m, rn_metric_counter c, uint64_t n)
{
	if (!m || (unsigned)c >= RN_M_COUNTER_COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	m->counters[c] += n;
	pthread_mutex_unlock(&m->lock);
}

void rn_metrics_observe(rn_metrics *m, rn_metric_histogram h, double seconds)
{
	if (!m || (unsigned)h >= RN_M_HISTOGRAM_COUNT)
		return;
	if (seconds < 0)
		seconds = 0;
	size_t b = 0;
	while (b < NBOUNDS && seconds > bounds[h][b])
		b++;
	pthread_mutex_lock(&m->lock);
	m->hist[h].buckets[b]++;
	m->hist[h].count++;
	m->hist[h].sum += seconds;
	pthread_mutex_unlock(&m->lock);
}

void rn_metrics_render(rn_metrics *m, rn_buf *out)
{
	pthread_mutex_lock(&m->lock);
	rn_buf_puts(out, "# HELP runner_http_requests_total HTTP requests answered, by status code.\n"
			 "# TYPE runner_http_requests_total counter\n");
	for (size_t c = 0; c < RN_ARRAY_LEN(m->http); c++)
		if (m->http[c])
			rn_buf_printf(out, "runner_http_requests_total{code=\"%zu\"} %llu\n", c,
				      (unsigned long long)m->http[c]);
	for (int c = 0; c < RN_M_COUNTER_COUNT; c++)
		rn_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_names[c][0],
			      counter_names[c][1], counter_names[c][0], counter_names[c][0],
			      (unsigned long long)m->counters[c]);
	for (int h = 0; h < RN_M_HISTOGRAM_COUNT; h++) {
		const char *name = hist_names[h][0];
		rn_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, hist_names[h][1], name);
		uint64_t cum = 0;
		for (size_t b = 0; b < NBOUNDS; b++) {
			cum += m->hist[h].buckets[b];
			rn_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[h][b], (unsigned long long)cum);
		}
		cum += m->hist[h].buckets[NBOUNDS];
		rn_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
			      (unsigned long long)cum, name, m->hist[h].sum, name,
			      (unsigned long long)m->hist[h].count);
	}
	pthread_mutex_unlock(&m->lock);
}

void rn_heap_stats_get(rn_heap_stats *h)
{
#ifdef RN_ASAN_ALLOCATOR
	/* glibc's arenas are unused under ASan; its allocator keeps its own books */
	*h = (rn_heap_stats){ .in_use = __sanitizer_get_current_allocated_bytes(),
			      .arena = __sanitizer_get_heap_size(),
			      .free = __sanitizer_get_free_bytes() };
#else
	struct mallinfo2 mi = mallinfo2();
	*h = (rn_heap_stats){ .in_use = mi.uordblks + mi.hblkhd, .arena = mi.arena, .mmap = mi.hblkhd,
			      .free = mi.fordblks };
#endif
}

void rn_heap_render(rn_buf *out, const char *prefix)
{
	rn_heap_stats h;
	rn_heap_stats_get(&h);
	const struct {
		const char *name, *help;
		uint64_t v;
	} g[] = {
		{ "heap_in_use_bytes", "Heap bytes allocated and not freed (malloc arenas in use + mmapped chunks).", h.in_use },
		{ "heap_arena_bytes", "Bytes the malloc arenas took from the system.", h.arena },
		{ "heap_mmap_bytes", "Bytes in large allocations mmapped one by one.", h.mmap },
		{ "heap_free_bytes", "Free bytes kept in the malloc arenas.", h.free },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(g); i++)
		rn_buf_printf(out, "# HELP %s_%s %s\n# TYPE %s_%s gauge\n%s_%s %llu\n", prefix, g[i].name, g[i].help,
			      prefix, g[i].name, prefix, g[i].name, (unsigned long long)g[i].v);
}
