/* agent_log.h - the sinks of an agent's job (`runner __job`): the plain-text job log that the
 * agent ships to the server, and a filter that keeps output lines out of the event file. */
#ifndef RN_AGENT_LOG_H
#define RN_AGENT_LOG_H

#include "event.h"

#include <stdio.h>

struct rn_masker;

/* The job log: a header line per step start ("── step 2/4: Build"), each output line as is (the
 * engine masked it), a result line per step ("── step 2/4: Build ✓ success (1.2s)"), job retries
 * and the job's result, and the runner's messages ("runner: ..."); names, reasons and messages
 * masked with m (may be NULL). Flushed per event so that a reader of the file sees every
 * complete line at once. `out` is not closed by the sink. */
rn_sink *rn_joblog_sink_new(FILE *out, const struct rn_masker *m);

/* A sink passing every event except OUTPUT to inner (for the event file: the output is in the
 * job log already). Closing it closes inner. */
rn_sink *rn_nooutput_sink_new(rn_sink *inner);

#endif
