/* workflow.h - the YAML workflow front end: read a file, check everything, build the model.
 * Every problem of a file is reported in one pass as FILE:LINE:COLUMN: error: message. */
#ifndef RN_WORKFLOW_H
#define RN_WORKFLOW_H

#include "diag.h"
#include "model.h"

#include <stddef.h>

/* Largest workflow file read. */
#define RN_WORKFLOW_MAX_BYTES (64u * 1024 * 1024)

/* Parse and check data[0..len) named `file` (for messages and the default pipeline name).
 * On success *out is a new pipeline (caller frees with rn_pipeline_free) and 0 is returned;
 * otherwise RN_EINVALID with every problem in d, and *out is NULL. */
int rn_workflow_parse(rn_pipeline **out, const char *file, const char *data, size_t len, rn_diags *d);
/* Read the file at path and parse it as rn_workflow_parse does; unreadable files are reported
 * in d too (and return RN_EIO / RN_ENOTFOUND). */
int rn_workflow_load(rn_pipeline **out, const char *path, rn_diags *d);
/* 1 if s is a valid job or step id: [A-Za-z_][A-Za-z0-9_-]*. */
int rn_workflow_valid_id(const char *s);

#endif
