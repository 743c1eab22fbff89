/* step.h - the one interface every step kind implements, and the registry that finds them.
 * A step's kind is the one key of the step that is not a common setting (id, name, env, ...):
 * a built-in kind (run, build, package, checkout, upload, download, one per file in steps/),
 * or else the name of a step plugin, which the plugin kind (steps/plugin.c) runs. The workflow
 * reader checks a step through its kind's `check`; the engine starts it through its kind's
 * `command`. */
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
	char **visible;        /* out (may be NULL): command() may set *visible to a malloc'd path
	                        * the step must see read-only inside the sandbox (a plugin's
	                        * directory); the caller frees it */
} rn_step_ctx;

typedef struct rn_step_kind {
	const char *name;    /* the step key: run, build, package, ... */
	const char *summary; /* one line for `runner help` */
	/* Check the kind's parameters at validate time: key is the step's kind key (its name and
	 * position), with the value under it; adds to d. */
	void (*check)(const rn_node *key, const rn_node *with, rn_diags *d);
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
/* The same with the document written to FILE given (borrowed) instead of {"with": ...}. */
int rn_step_self_command_input(char ***argv, const rn_step_ctx *ctx, const char *kind, const json_t *input);
/* Build the argv that runs script through shell (bash, sh, or a {0} template), writing the
 * script to a file in the temp dir. */
int rn_step_shell_command(char ***argv, const rn_step_ctx *ctx, const char *shell, const char *script);
/* 1 if name is a valid artifact name: [A-Za-z0-9._-]+, not starting with '.', at most 128. */
int rn_artifact_name_ok(const char *name);
/* `runner __step KIND FILE`: run a kind's body inside the step's process tree; returns the
 * exit status (for plugins the plugin replaces this process and its exit status is the step's). */
int rn_step_exec_main(const char *kind, const char *file);

/* The kind that runs steps whose kind key is name: the built-in kind of that name, else
 * rn_step_plugin when name can name a plugin (installed or not: the plugin is looked up when
 * the step starts), else NULL. Static storage. */
const rn_step_kind *rn_step_kind_find(const char *name);
/* The built-in kind with this name, or NULL. Static storage. */
const rn_step_kind *rn_step_kind_builtin(const char *name);
/* All built-in kinds; *n gets the count. Static storage. */
const rn_step_kind *const *rn_step_kinds(size_t *n);

/* The built-in kinds, one per file in steps/. */
extern const rn_step_kind rn_step_run;
extern const rn_step_kind rn_step_build;
extern const rn_step_kind rn_step_package;
extern const rn_step_kind rn_step_checkout;
extern const rn_step_kind rn_step_upload;
extern const rn_step_kind rn_step_download;

/* The kind of plugin steps (steps/plugin.c). Its parameters (rn_step.with of the model, ctx->with
 * after expansion) are {"plugin": NAME, "name": the step's display name, "id": its id (absent
 * when none), "inputs": the value under its NAME: key}, built by the workflow reader: its command
 * finds runner-step-NAME (plugin.h) and runs `SELF __step plugin FILE`, whose body writes the
 * plugin's JSON document (docs/plugins.md) to an anonymous file, makes it stdin and execs the
 * plugin in its place, so the plugin has the step's process tree, sandbox, limits and env. */
extern const rn_step_kind rn_step_plugin;

#endif
