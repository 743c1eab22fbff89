/* plugin.c - the step kind of step plugins: `NAME: {inputs}` runs the executable
 * runner-step-NAME (found by plugin.h) as the step, with a JSON document on its stdin.
 *
 * command() runs in the runner: it finds the plugin (a missing one fails the step before it
 * starts) and builds `SELF __step plugin FILE`, FILE holding the plugin's path and the step's
 * expanded parameters. exec_plugin() runs as that command, inside the step's process tree and
 * sandbox, with the step's environment: it writes the document (docs/plugins.md) to an
 * anonymous file, makes it fd 0, sets INPUT_<KEY> variables and execs the plugin in its own
 * place. So a plugin step has what a `run:` step has - process-tree control, sandbox, timeout,
 * grace, retries, env, RUNNER_OUTPUT/RUNNER_ENV, masking, log streaming - and its exit status
 * is the step's. */
#include "step.h"
#include "error.h"
#include "event.h"
#include "plugin.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

/* Longest value put in an INPUT_* variable (the kernel refuses longer single strings); longer
 * ones are only in the document. */
#define INPUT_ENV_MAX (64u * 1024)

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	rn_plugin_check_inputs(key, with, d);
}

/* A JSON string of s, with bytes that are not UTF-8 replaced (json_string refuses them). */
static json_t *text(const char *s)
{
	json_t *j = json_string(s);
	if (!j) {
		size_t n;
		char *fixed = rn_utf8_sanitize(s, strlen(s), 0, &n);
		j = json_stringn(fixed, n);
		free(fixed);
	}
	return j ? j : json_string("");
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	const json_t *w = ctx->with;
	const char *name = json_string_value(json_object_get(w, "plugin"));
	if (!name)
		return rn_error_set("a plugin step without a plugin name");
	char *path = NULL;
	int rc = rn_plugin_find(&path, name);
	if (rc < 0)
		return rc;
	const json_t *inputs = json_object_get(w, "inputs");
	const json_t *sname = json_object_get(w, "name");
	const json_t *id = json_object_get(w, "id");
	json_t *in = json_object();
	json_object_set_new(in, "plugin", json_string(name));
	json_object_set_new(in, "path", text(path));
	json_object_set_new(in, "name", json_is_string(sname) ? json_incref((json_t *)sname) : json_string(name));
	json_object_set_new(in, "id", json_is_string(id) ? json_incref((json_t *)id) : json_null());
	json_object_set_new(in, "index", json_integer(ctx->index));
	json_object_set_new(in, "inputs", json_is_object(inputs) ? json_incref((json_t *)inputs) : json_object());
	/* the plugin's directory stays visible in the sandbox (a private /tmp would hide a plugin
	 * kept under /tmp, say in a CI checkout) */
	if (ctx->visible && path && strrchr(path, '/') && strrchr(path, '/') != path)
		*ctx->visible = rn_xstrndup(path, (size_t)(strrchr(path, '/') - path));
	free(path);
	rc = rn_step_self_command_input(argv, ctx, "plugin", in);
	json_decref(in);
	return rc;
}

/* Remove every INPUT_* variable the step inherited: the plugin sees only its own inputs. */
static void drop_inherited_inputs(void)
{
	for (;;) {
		char **e = environ;
		while (*e && !rn_startswith(*e, "INPUT_"))
			e++;
		if (!*e)
			return;
		size_t n = strcspn(*e, "=");
		char *name = rn_xstrndup(*e, n);
		int rc = unsetenv(name);
		free(name);
		if (rc < 0)
			return;
	}
}

/* INPUT_<KEY> for each input: the key upper-cased, other characters than letters, digits and '_'
 * as '_'; strings as they are, null as "", other values as compact JSON. */
static void set_input_env(const json_t *inputs)
{
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)inputs, key, v) {
		char *value = json_is_string(v) ? rn_xstrndup(json_string_value(v), json_string_length(v))
			      : json_is_null(v) ? rn_xstrdup("")
						: json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!value)
			continue;
		size_t vlen = strlen(value);
		if (vlen > INPUT_ENV_MAX || (json_is_string(v) && vlen != json_string_length(v))) {
			free(value); /* too long for the environment, or holds NUL: only in the document */
			continue;
		}
		char *name = rn_xasprintf("INPUT_%s", key);
		for (char *p = name + 6; *p; p++) {
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
			else if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
				*p = '_';
		}
		setenv(name, value, 1);
		free(name);
		free(value);
	}
}

static json_t *env_object(void)
{
	json_t *o = json_object();
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			continue;
		char *name = rn_xstrndup(*e, (size_t)(eq - *e));
		json_t *v = text(eq + 1);
		json_t *k = text(name);
		json_object_set_new(o, json_string_value(k), v);
		json_decref(k);
		free(name);
	}
	return o;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v ? v : dflt;
}

/* An anonymous read/write file holding data, positioned at its start: a memfd, else an
 * unlinked file in RUNNER_TEMP. -1 with rn_error_last() on failure. */
static int anonymous_file(const char *data, size_t len)
{
	int fd = memfd_create("runner-step-input", MFD_CLOEXEC);
	if (fd < 0) {
		const char *dir = env_or("RUNNER_TEMP", env_or("TMPDIR", "/tmp"));
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0) {
			rn_error_errno("an anonymous file in %s", dir);
			return -1;
		}
	}
	if (rn_write_all(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		rn_error_errno("the plugin's input");
		close(fd);
		return -1;
	}
	return fd;
}

static int exec_plugin(const json_t *input)
{
	const char *name = json_string_value(json_object_get(input, "plugin"));
	const char *path = json_string_value(json_object_get(input, "path"));
	const json_t *inputs = json_object_get(input, "inputs");
	if (!name || !path || !json_is_object(inputs)) {
		fprintf(stderr, "runner: a plugin step's input file is incomplete\n");
		return 3;
	}
	drop_inherited_inputs();
	const char *attempt = env_or("RUNNER_ATTEMPT", "1");
	json_t *doc = json_pack("{s:i, s:s, s:{s:O, s:O, s:O, s:i}, s:O, s:o, s:o, s:o, s:o, s:o}", "protocol",
				RN_PLUGIN_PROTOCOL, "plugin", name, "step", "name", json_object_get(input, "name"), "id",
				json_object_get(input, "id"), "index", json_object_get(input, "index"), "attempt",
				atoi(attempt) > 0 ? atoi(attempt) : 1, "inputs", inputs, "workspace",
				text(env_or("RUNNER_WORKSPACE", "")), "run_id", text(env_or("RUNNER_RUN_ID", "")), "job",
				text(env_or("RUNNER_JOB", "")), "job_name", text(env_or("RUNNER_JOB_NAME", "")), "env",
				env_object());
	if (!doc) {
		fprintf(stderr, "runner: step plugin '%s': cannot build its input document\n", name);
		return 3;
	}
	char *data = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!data) {
		fprintf(stderr, "runner: step plugin '%s': cannot build its input document\n", name);
		return 3;
	}
	int fd = anonymous_file(data, strlen(data));
	free(data);
	if (fd < 0) {
		fprintf(stderr, "runner: step plugin '%s': %s\n", name, rn_error_last());
		return 3;
	}
	if (dup2(fd, 0) < 0) {
		fprintf(stderr, "runner: step plugin '%s': dup2: %s\n", name, strerror(errno));
		close(fd);
		return 3;
	}
	close(fd);
	set_input_env(inputs);
	fflush(NULL);
	char *argv[] = { (char *)path, NULL };
	execv(path, argv);
	int err = errno;
	fprintf(stderr, "runner: cannot run step plugin '%s' (%s): %s%s\n", name, path, strerror(err),
		err == ENOENT ? " (is the interpreter of its #! line installed?)" : "");
	return err == ENOENT ? 127 : 126;
}

const rn_step_kind rn_step_plugin = { "plugin", "run a step plugin (runner-step-NAME)", check, command, exec_plugin };
