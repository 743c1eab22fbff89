/* statuspage.h - the HTML status page of `runner serve` (`/`, `/pipelines/{id}`, `/jobs/{id}`),
 * rendered from the JSON objects of the protocol (docs/protocol.md: PIPELINE, JOB, STEP).
 *
 * Pure functions: no I/O, no state; the arguments are borrowed. Every string of the objects and
 * of the log is HTML-escaped (invalid UTF-8 replaced by U+FFFD, control characters and terminal
 * escape sequences dropped); URL credentials in `repo` are shown as ***. `query` is appended to
 * every link of the page as given (already URL-encoded, e.g. "?token=abc", or "" / NULL for
 * none), so that a token given as ?token= keeps working while navigating. A page refreshes
 * itself every 5 s (a meta refresh, no JavaScript) while anything it shows is unfinished. */
#ifndef RN_STATUSPAGE_H
#define RN_STATUSPAGE_H

#include <jansson.h>
#include <stddef.h>

/* Of a long log, the page shows the last this many bytes (with a note saying so). */
#define RN_STATUSPAGE_LOG_MAX (1024 * 1024)

/* The index page: the pipelines (a JSON array of PIPELINE, or the object {"pipelines": [...]}
 * of GET /api/v1/pipelines) newest first as given, each linking to /pipelines/{id}.
 * Caller frees the returned string (never NULL). */
char *rn_statuspage_index(json_t *pipelines, const char *query);
/* The page of one PIPELINE (with its "jobs"): its jobs with status, attempt, agent, duration and
 * steps, each linking to /jobs/{id}. Caller frees the returned string (never NULL). */
char *rn_statuspage_pipeline(json_t *pipeline, const char *query);
/* The page of one JOB with its steps and log[0..len) (log may be NULL: no log yet; only the last
 * RN_STATUSPAGE_LOG_MAX bytes are shown). Caller frees the returned string (never NULL). */
char *rn_statuspage_job(json_t *job, const char *log, size_t len, const char *query);

#endif
