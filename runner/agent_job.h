/* agent_job.h - `runner __job DIR`: one leased job run by the engine in a child process of the agent. */
#ifndef RN_AGENT_JOB_H
#define RN_AGENT_JOB_H

#include "diag.h"
#include "graph.h"
#include "mask.h"
#include "workflow.h"

#include <jansson.h>
#include <stddef.h>

/* A checked job spec (job.json: the JOBSPEC of docs/protocol.md); every member owned. */
typedef struct rn_jobspec {
	json_t *spec;       /* the whole object (NULL if the text was not JSON) */
	rn_masker *masker;  /* holds every secret of the spec */
	char *name, *repo;  /* required, non-empty */
	char *rev;          /* "sha", else "ref", or NULL */
	char *file;         /* or NULL */
	char *run_id;       /* "run_id", else "pipeline", or NULL */
	char **env;         /* "NAME=value" of the spec's env strings, NULL-terminated */
	size_t nenv;
} rn_jobspec;

/* Parse and check the spec text into js (no I/O). RN_EINVALID with rn_error_last() saying what
 * is wrong; js is filled as far as it got either way: free it with rn_jobspec_free. */
int rn_jobspec_parse(rn_jobspec *js, const char *text, size_t len);
/* Free what js owns and zero it. */
void rn_jobspec_free(rn_jobspec *js);
/* The workflow of js (its "workflow" text, else WORKSPACE/FILE) into *p and its graph into g with
 * the instance js->name selected, *job (borrowed from *p). Problems go to d (d->file is set);
 * RN_EINVALID. The caller frees *p and g, also on failure. */
int rn_jobspec_workflow(const rn_jobspec *js, const char *workspace, rn_pipeline **p, rn_graph *g, rn_diags *d,
			const rn_job **job);

/* `runner __job` (argv[0] is "__job"): parses its options, returns the exit status. */
int rn_cmd_job(int argc, char **argv);
/* The option help of `runner __job` (static text). */
extern const char rn_cmd_job_help[];

#endif
