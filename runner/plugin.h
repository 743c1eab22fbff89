/* plugin.h - step plugins: `runner-step-NAME` executables found on a search path, asked
 * `--describe` for the schema of their inputs; and `runner plugins`. The step kind that runs
 * them (as `runner __step plugin FILE`, which execs the plugin with its JSON document on stdin)
 * is steps/plugin.c; docs/plugins.md is the protocol.
 *
 * Search order, first match wins: the --plugin-dir directories (rn_plugin_setup), each entry of
 * $RUNNER_PLUGIN_PATH (colon-separated), ~/.local/lib/runner/plugins, the installed plugin
 * directory (RN_PLUGIN_DIR, meson's libdir/runner/plugins), then each entry of $PATH. A plugin
 * is a regular file named runner-step-NAME that the runner may execute. */
#ifndef RN_PLUGIN_H
#define RN_PLUGIN_H

#include "diag.h"
#include "node.h"

#include <jansson.h>
#include <stddef.h>

#define RN_PLUGIN_PROTOCOL 1            /* the version of the stdin document and of --describe */
#define RN_PLUGIN_PREFIX "runner-step-" /* a plugin's file name is this prefix and its name */
#define RN_PLUGIN_NAME_MAX 64
#define RN_PLUGIN_DESCRIBE_MAX (256u * 1024) /* cap of what --describe may print */
#define RN_PLUGIN_DESCRIBE_TIMEOUT_MS 5000   /* then the plugin's process group is killed */

/* How reading a workflow treats plugin steps (rn_plugin_setup). */
typedef enum {
	RN_PLUGINS_UNCHECKED = 0, /* not looked up (server, graph, agent): checked where they run */
	RN_PLUGINS_REQUIRED,      /* the plugin must be installed; inputs checked with --describe */
	RN_PLUGINS_OPTIONAL       /* the same, but a missing plugin is a warning (validate --plugins-optional) */
} rn_plugin_checks;

/* One directory of the search path. */
typedef struct rn_plugin_dir {
	char *path;         /* absolute (relative entries are taken from the current directory) */
	const char *origin; /* "--plugin-dir", "RUNNER_PLUGIN_PATH", "home", "installed", "PATH" (static) */
} rn_plugin_dir;

/* Process-wide settings, like libgit2's search paths: call once at start-up, before any
 * workflow is read or step started, from one thread. dirs (copied, made absolute) come first
 * in the search path. The default (never called) is no extra directories and UNCHECKED. */
void rn_plugin_setup(const char *const *dirs, size_t ndirs, rn_plugin_checks checks);
/* The mode set by rn_plugin_setup. */
rn_plugin_checks rn_plugin_checks_mode(void);
/* 1 if name can name a plugin: letters, digits, '_', '-' and '.', starting with a letter, a
 * digit or '_', at most RN_PLUGIN_NAME_MAX bytes. */
int rn_plugin_name_ok(const char *name);
/* The search path now (it reads the environment), duplicates dropped; *n gets the count.
 * Caller frees with rn_plugin_dirs_free. */
rn_plugin_dir *rn_plugin_search_path(size_t *n);
/* Free what rn_plugin_search_path returned. */
void rn_plugin_dirs_free(rn_plugin_dir *dirs, size_t n);
/* Find plugin NAME: *path gets the absolute path of the first match (caller frees). 0, or
 * RN_ENOTFOUND / RN_EINVALID (not a plugin name) with rn_error_last() saying where it looked. */
int rn_plugin_find(char **path, const char *name);
/* Run `PATH --describe` (stdin /dev/null, its own process group, the runner's environment
 * without RUNNER_SECRET_*, RN_PLUGIN_DESCRIBE_TIMEOUT_MS, output capped): *out gets the
 * description object (new reference), or NULL when the plugin exits non-zero or prints
 * nothing (it does not describe itself). 0, or <0 with rn_error_last() (timed out, too much output, not a JSON
 * object, could not start). */
int rn_plugin_describe(json_t **out, const char *path);
/* Check a plugin step at workflow-read time: key is the step's plugin key (its name and
 * position), inputs the value under it (NULL, null or a mapping). Inputs that are not a mapping
 * are always an error; in the REQUIRED/OPTIONAL modes the installed plugin's --describe schema
 * is applied (once per plugin per process, cached) with FILE:LINE:COL problems in d. A missing
 * plugin is not reported here (the workflow reader does, knowing the step). */
void rn_plugin_check_inputs(const rn_node *key, const rn_node *inputs, rn_diags *d);
/* Like rn_plugin_find, through the cache that rn_plugin_check_inputs uses; *path is borrowed
 * (valid until exit) and NULL when not found. 0 or RN_ENOTFOUND / RN_EINVALID. */
int rn_plugin_lookup(const char **path, const char *name);

/* `runner plugins` (argv[0] is "plugins"): parses its options, returns the exit status. */
int rn_cmd_plugins(int argc, char **argv);
/* The option help of `runner plugins` (static text). */
extern const char rn_cmd_plugins_help[];

#endif
