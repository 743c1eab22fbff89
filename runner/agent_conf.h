/* agent_conf.h - the settings of `runner agent`: the YAML config file (--config, re-read on
 * SIGHUP) and the checks shared with the command line (labels, capacity). */
#ifndef RN_AGENT_CONF_H
#define RN_AGENT_CONF_H

#include "diag.h"

#include <stddef.h>
#include <stdint.h>

/* Most labels an agent may have, and the longest label (docs/protocol.md). */
#define RN_AGENT_LABELS_MAX 32
#define RN_AGENT_LABEL_LEN 64
/* Largest --capacity. */
#define RN_AGENT_CAPACITY_MAX 1024

/* Settings; unset strings are NULL, unset numbers negative. Every string is owned. */
typedef struct rn_agent_conf {
	char *server, *token, *name, *work_dir, *metrics;
	char **labels;          /* nlabels strings, when labels_set */
	size_t nlabels;
	int labels_set;
	int capacity;           /* -1: unset */
	int64_t shutdown_ms;    /* -1: unset */
	int keep_workspace;     /* -1: unset */
} rn_agent_conf;

/* An empty (all unset) configuration. */
void rn_agent_conf_init(rn_agent_conf *c);
/* Free what c owns and make it empty. */
void rn_agent_conf_free(rn_agent_conf *c);
/* Parse the YAML config text (a mapping with the keys server, token, name, labels (a list or a
 * comma-separated string), capacity, work-dir, shutdown-timeout, keep-workspace, metrics) into c,
 * which the caller initialised. Problems go to d (FILE:LINE:COL); RN_EINVALID if any. */
int rn_agent_conf_parse(rn_agent_conf *c, const char *text, size_t len, rn_diags *d);
/* Read and parse the file at path (at most 1 MiB) as rn_agent_conf_parse; unreadable files are
 * reported in d too (RN_ENOTFOUND / RN_EIO). */
int rn_agent_conf_load(rn_agent_conf *c, const char *path, rn_diags *d);
/* Set c's labels from "a,b,c" (blanks around names ignored, empty list allowed). RN_EINVALID
 * with rn_error_last() naming a bad label, a duplicate, or too many. */
int rn_agent_conf_labels(rn_agent_conf *c, const char *csv);
/* 1 if s is a valid label: [A-Za-z0-9_.-], 1 to 64 characters. */
int rn_agent_label_ok(const char *s);

#endif
