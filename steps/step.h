/* step.h - the one interface every step kind implements, and the registry that finds them. */
#ifndef RN_STEP_H
#define RN_STEP_H

#include "diag.h"
#include "node.h"

#include <jansson.h>
#include <stddef.h>

/* What a step kind needs to build its command, all borrowed. */
typedef struct rn_step_ctx {
	const char *workspace; /* absolute path of the job's workspace */
	const char *temp_dir;  /* RUNNER_TEMP: private to the job, removed after it */
	const char *self_exe;  /* the runner binary, for kinds run as `runner __step KIND FILE` */
	const char *shell;     /* run: "bash", "sh" or a command template containing {0} */
	const char *script;    /* run: the script after expression expansion */
	json_t *with;          /* the kind's parameters after expression expansion */
	int index;             /* the step's index in the job (for file names) */
} rn_step_ctx;

typedef struct rn_step_kind {
	const char *name;    /* the step key: run, build, package, ... */
	const char *summary; /* one line for `runner help` */
	/* Check the kind's parameters (the value under its key) at validate time; adds to d. */
	void (*check)(const rn_node *with, rn_diags *d);
	/* Build the command that runs the step: *argv is a NULL-terminated vector of malloc'd
	 * strings (free with rn_strv_free). 0 or <0 with rn_error_last(). */
	int (*command)(char ***argv, const rn_step_ctx *ctx);
	/* The body of kinds run as `runner __step KIND FILE` inside the step's process tree: FILE
	 * holds {"with": ...}; the environment holds RUNNER_WORKSPACE, RUNNER_ARTIFACTS, ... The
	 * return value is the exit status. NULL for kinds that run a command of their own. */
	int (*exec)(const json_t *input);
} rn_step_kind;

/* Build argv for a built-in kind run in its own process as `SELF __step KIND FILE`, writing
 * {"with": ...} to FILE in the temp dir. For use by kinds' command(). */
int rn_step_self_command(char ***argv, const rn_step_ctx *ctx, const char *kind);
/* Build the argv that runs script through shell (bash, sh, or a {0} template), writing the
 * script to a file in the temp dir. */
int rn_step_shell_command(char ***argv, const rn_step_ctx *ctx, const char *shell, const char *script);
/* 1 if name is a valid artifact name: [A-Za-z0-9._-]+, not starting with '.', at most 128. */
int rn_artifact_name_ok(const char *name);
/* `runner __step KIND FILE`: run a built-in kind's body; returns the exit status. */
int rn_step_exec_main(const char *kind, const char *file);

/* The built-in kind with this name, or NULL. Static storage. */
const rn_step_kind *rn_step_kind_find(const char *name);
/* All built-in kinds; *n gets the count. Static storage. */
const rn_step_kind *const *rn_step_kinds(size_t *n);

/* The built-in kinds, one per file in steps/. */
extern const rn_step_kind rn_step_run;
extern const rn_step_kind rn_step_build;
extern const rn_step_kind rn_step_package;
extern const rn_step_kind rn_step_checkout;
extern const rn_step_kind rn_step_upload;
extern const rn_step_kind rn_step_download;

#endif
