/* context.h - what expressions and steps see: the `${{ }}` contexts of a job instance and the
 * environment of a step (pipeline < job < RUNNER_ENV < step < --env, plus CI and RUNNER_*). */
#ifndef RN_CONTEXT_H
#define RN_CONTEXT_H

#include "event.h"
#include "expr.h"
#include "graph.h"
#include "model.h"

#include <jansson.h>

/* The contexts of a job instance: env (empty until a step fills it), matrix, secrets, needs,
 * job {status}, runner {os, arch, workspace, temp}, git, pipeline {id, name}, steps {}. The
 * arguments are borrowed (secrets, git and needs are referenced, not copied). New reference. */
json_t *rn_context_job(const rn_pipeline *p, const rn_gnode *node, json_t *secrets, json_t *git,
		       json_t *needs, const char *run_id, const char *workspace);
/* Merge env layers (later wins) into ctx.env, expanding `${{ }}` in each value with the contexts
 * as they are (env holding the unexpanded merged values). `dynamic` (object, may be NULL) is
 * layered between job and step. 0, or <0 with rn_error_last() naming the variable. */
int rn_context_set_env(json_t *ctx, const rn_kvs *pipeline_env, const rn_kvs *job_env, json_t *dynamic,
		       const rn_kvs *step_env, const rn_expr_env *ee);
/* A copy of v with `${{ }}` expanded in every string (keys stay); *out new reference. 0 or <0. */
int rn_context_expand_json(json_t **out, const json_t *v, const rn_expr_env *ee);
/* Expand a template string; NULL in gives NULL out. 0 or <0 with rn_error_last(). */
int rn_context_expand(char **out, const char *s, const rn_expr_env *ee);

/* A NULL-terminated "K=V" environment: base (the runner's environ, without RUNNER_SECRET_*),
 * then every member of env (object of strings), then extra ("K=V" strings, may be NULL), with
 * PATH prefixed by the entries of path_prepend (array, newest first; may be NULL). Caller
 * frees with rn_strv_free. */
char **rn_context_environ(char *const *base, json_t *env, const char *const *extra, size_t nextra,
			  json_t *path_prepend);
/* Decide whether job instance n runs now that its needs are finished (the one rule of the engine
 * and the server): evaluates its `if:` (NULL = success()) with needs (job id -> {result,
 * outputs}, borrowed), any_bad (a need failed and did not continue-on-error) and the other
 * contexts (borrowed; workspace may be NULL). *run gets 1 or 0, *reason a static text when 0.
 * <0 with rn_error_last() for a bad condition (then *run is 0). */
int rn_context_job_decide(int *run, const char **reason, const rn_pipeline *p, const rn_gnode *n, json_t *needs,
			  int any_bad, json_t *secrets, json_t *git, const char *run_id, const char *workspace);
/* Record a finished job instance in needs (object job id -> {result, outputs}): the results of
 * matrix siblings combine to the worse one, their outputs merge (outputs borrowed, may be NULL). */
void rn_context_needs_record(json_t *needs, const char *job_id, rn_status result, json_t *outputs);
/* The status named s ("success", "timed out", ...), or RN_ST_PENDING if none. */
rn_status rn_status_parse(const char *s);

/* Free a NULL-terminated vector of malloc'd strings (NULL is fine). */
void rn_strv_free(char **v);

#endif
