/* notify.h - the `notify:` status webhooks of a pipeline, as an event sink.
 *
 * Each matching state change (pipeline or job; started, success, failure, cancelled) becomes one
 * POST of a JSON document to each `notify:` entry that asks for it, in the entry's format:
 *   json           {"event", "state", "status", "pipeline": {...}, "job": {...} (job events),
 *                   "repo", "ref", "sha", "url", "time_ms"}
 *   gitea-status,  {"state": pending|success|failure|error, "target_url", "description",
 *   github-status   "context"} (a forge's commit-status body)
 * The documents are built when the event arrives (names masked) and sent by one background
 * thread from a bounded queue, with retries and backoff on connection errors, timeouts and 5xx
 * answers, so the run is never blocked by a slow or dead endpoint. `${{ }}` in `url` and header
 * values is expanded once, when the sink is made (e.g. `${{ secrets.TOKEN }}`, `${{ git.sha }}`);
 * header values never appear in messages. */
#ifndef RN_NOTIFY_H
#define RN_NOTIFY_H

#include "event.h"
#include "mask.h"
#include "model.h"

#include <jansson.h>

/* Tuning of a notify sink; all-zero (or a NULL pointer) gives the defaults. */
typedef struct rn_notify_opts {
	void *warn;          /* FILE *: one line per notification that could not be delivered, and
	                      * per notify entry that cannot be used; NULL: stderr */
	long drain_ms;       /* close() waits at most this long for queued notifications (0: 10 s);
	                      * < 0: close() returns at once and the thread delivers the rest alone,
	                      * then frees everything (for a long-running server) */
	int attempts;        /* tries per notification (0: 5) */
	long retry_delay_ms; /* first backoff delay, doubled each retry (0: 1000) */
	long timeout_ms;     /* per attempt (0: 10 s) */
	size_t queue_max;    /* undelivered notifications held; more are dropped and counted (0: 1000) */
} rn_notify_opts;

/* A sink that POSTs p's `notify:` entries, or NULL when p has none (nothing to add). Everything
 * it needs of p, info, ctx and o is copied: p may be freed after this call; m (borrowed, may be
 * NULL) must live until the last event; events must come from one thread.
 * info: {"id": pipeline or run id, "name": pipeline name (default p->name), "sha", "ref",
 * "repo", "logs_url": a URL to the logs or null} (every member optional; borrowed).
 * ctx: the `${{ }}` contexts for url and headers (e.g. {"secrets", "env", "git", "pipeline"};
 * borrowed, may be NULL); "git" ({sha, ref, branch}) and "pipeline" ({id, name}) are filled from
 * info when absent. An entry whose url or headers cannot be expanded or are invalid is reported
 * once on o->warn and skipped. close() always returns 0: delivery failures are warnings, never a
 * failed run. */
rn_sink *rn_notify_sink_new(const rn_pipeline *p, const rn_masker *m, json_t *info, json_t *ctx,
			    const rn_notify_opts *o);

/* The state word of an event for `on:` (static "started", "success", "failure", "cancelled"), or
 * NULL when the event is no notify state change (skipped jobs, steps, output). */
const char *rn_notify_state(const rn_event *ev);

#endif
