/* registry.c - the table of step kinds, and the helpers kinds share to build their commands. */
#include "step.h"
#include "context.h"
#include "error.h"
#include "plugin.h"
#include "util.h"

#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const rn_step_kind *const kinds[] = {
	&rn_step_run, &rn_step_build, &rn_step_package, &rn_step_checkout, &rn_step_upload, &rn_step_download,
};

const rn_step_kind *const *rn_step_kinds(size_t *n)
{
	*n = sizeof(kinds) / sizeof(kinds[0]);
	return kinds;
}

const rn_step_kind *rn_step_kind_builtin(const char *name)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

const rn_step_kind *rn_step_kind_find(const char *name)
{
	const rn_step_kind *k = rn_step_kind_builtin(name);
	if (k)
		return k;
	return rn_plugin_name_ok(name) ? &rn_step_plugin : NULL;
}

/* Write a file, reusing it when it exists: the steps of a job share one script file, and
 * rewriting plus ftruncate() costs a small fraction of creating or O_TRUNC-ing a file on some
 * file systems (ext4 with discard: 0.01 ms against 0.3 ms), which adds up over many steps. */
static int write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return rn_error_errno("%s", path);
	int rc = rn_write_all(fd, data, len);
	if (rc == 0 && ftruncate(fd, (off_t)len) < 0)
		rc = rn_error_errno("%s", path);
	if (close(fd) < 0 && rc == 0)
		rc = rn_error_errno("%s", path);
	return rc;
}

static char **strv_new(size_t n)
{
	return rn_xcalloc(n + 1, sizeof(char *));
}

int rn_step_shell_command(char ***argv, const rn_step_ctx *ctx, const char *shell, const char *script)
{
	char *file = rn_xasprintf("%s/step.sh", ctx->temp_dir);
	size_t len = strlen(script);
	int rc = write_file(file, script, len);
	if (rc < 0) {
		free(file);
		return rc;
	}
	char **v;
	if (strcmp(shell, "bash") == 0) {
		v = strv_new(6);
		const char *a[] = { "bash", "--noprofile", "--norc", "-eo", "pipefail" };
		for (size_t i = 0; i < 5; i++)
			v[i] = rn_xstrdup(a[i]);
		v[5] = file;
	} else if (strcmp(shell, "sh") == 0) {
		v = strv_new(3);
		v[0] = rn_xstrdup("sh");
		v[1] = rn_xstrdup("-e");
		v[2] = file;
	} else {
		/* a template: words split on blanks, {0} replaced by the script file */
		size_t n = 0, cap = 0;
		v = NULL;
		const char *p = shell;
		while (*p) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (!*p)
				break;
			size_t wl = strcspn(p, " \t");
			char *word = rn_xstrndup(p, wl);
			char *at;
			while ((at = strstr(word, "{0}"))) {
				*at = '\0';
				char *nw = rn_xasprintf("%s%s%s", word, file, at + 3);
				free(word);
				word = nw;
			}
			rn_grow(&v, &cap, n + 2, sizeof(*v));
			v[n++] = word;
			v[n] = NULL;
			p += wl;
		}
		free(file);
		if (!v) {
			return rn_error_set("empty shell command");
		}
	}
	*argv = v;
	return 0;
}

int rn_step_self_command(char ***argv, const rn_step_ctx *ctx, const char *kind)
{
	json_t *input = json_pack("{s:O}", "with", ctx->with ? ctx->with : json_null());
	int rc = rn_step_self_command_input(argv, ctx, kind, input);
	json_decref(input);
	return rc;
}

int rn_step_self_command_input(char ***argv, const rn_step_ctx *ctx, const char *kind, const json_t *input)
{
	char *file = rn_xasprintf("%s/step.json", ctx->temp_dir);
	char *text = json_dumps(input, JSON_COMPACT);
	if (!text) {
		free(file);
		return rn_error_set("the input of a '%s' step cannot be written as JSON", kind);
	}
	int rc = write_file(file, text, strlen(text));
	free(text);
	if (rc < 0) {
		free(file);
		return rc;
	}
	char **v = strv_new(4);
	v[0] = rn_xstrdup(ctx->self_exe);
	v[1] = rn_xstrdup("__step");
	v[2] = rn_xstrdup(kind);
	v[3] = file;
	*argv = v;
	return 0;
}

int rn_step_exec_main(const char *kind, const char *file)
{
	/* file names in archives and messages are UTF-8 whatever the caller's locale is */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "");
	const rn_step_kind *k = rn_step_kind_find(kind);
	if (!k || !k->exec) {
		fprintf(stderr, "runner: no built-in step kind '%s'\n", kind);
		return 2;
	}
	json_error_t err;
	json_t *input = json_load_file(file, 0, &err);
	if (!input) {
		fprintf(stderr, "runner: %s: %s\n", file, err.text);
		return 3;
	}
	/* a plugin's inputs may hold secrets: its step's later siblings must not find them here
	 * (the built-in kinds keep the file, rewritten for each step, to save creating it) */
	if (k == &rn_step_plugin)
		unlink(file);
	int rc = k->exec(input);
	json_decref(input);
	return rc;
}
