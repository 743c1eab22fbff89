/* server_metrics.c - counters and histograms of the server, rendered as Prometheus text. */
#include "server_metrics.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>

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
