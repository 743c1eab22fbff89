/* checkout.c - the checkout step: a fresh working tree of a repository at a ref, made with
 * libgit2 through the mirror cache (git.h), under the workspace. Exit status: 0 done, 1 a ref
 * or commit that does not exist or a destination in the way, 2 invalid parameters, 3 clone,
 * authentication, network or disk failures. Step outputs: sha, ref, branch, path. */
#include "step.h"
#include "error.h"
#include "git.h"
#include "schema.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const rn_field fields[] = {
	{ "repo", RN_T_STR, RN_F_REQUIRED, NULL },
	{ "ref", RN_T_STR, 0, NULL },
	{ "path", RN_T_STR, 0, NULL },
	{ "depth", RN_T_INT, 0, NULL },
	{ "submodules", RN_T_BOOL, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	rn_schema_check(with, fields, "'checkout'", d);
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	return rn_step_self_command(argv, ctx, "checkout");
}

/* 1 if path stays inside the workspace: relative, no ".." component. */
static int path_ok(const char *path)
{
	if (!*path || *path == '/')
		return 0;
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

/* A boolean or integer parameter that may have become a string through an expression. */
static int flag(const json_t *v)
{
	if (json_is_string(v))
		return strcmp(json_string_value(v), "true") == 0 || atoi(json_string_value(v)) > 0;
	return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
}

static int number(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) > 0 && json_integer_value(v) < 1000000000 ? (int)json_integer_value(v) : 0;
	if (json_is_string(v))
		return atoi(json_string_value(v)) > 0 ? atoi(json_string_value(v)) : 0;
	return 0;
}

static void output(FILE *f, const char *key, const char *value)
{
	if (f && !strchr(value, '\n'))
		fprintf(f, "%s=%s\n", key, value);
}

static int exec_checkout(const json_t *input)
{
	const json_t *with = json_object_get(input, "with");
	const char *repo = json_string_value(json_object_get(with, "repo"));
	const json_t *refv = json_object_get(with, "ref");
	const char *ref = json_string_value(refv);
	const char *path = json_string_value(json_object_get(with, "path"));
	const char *ws = getenv("RUNNER_WORKSPACE");
	char ref_buf[32];
	if (!repo || !*repo) {
		fprintf(stderr, "checkout: 'repo' is required\n");
		return 2;
	}
	if (json_is_integer(refv)) { /* ref: 1234abcd written without quotes */
		snprintf(ref_buf, sizeof(ref_buf), "%lld", (long long)json_integer_value(refv));
		ref = ref_buf;
	}
	if (!ws) {
		fprintf(stderr, "checkout: RUNNER_WORKSPACE must be set\n");
		return 3;
	}
	char *def = NULL;
	if (!path || !*path)
		path = def = rn_git_default_dir(repo);
	if (!path_ok(path)) {
		fprintf(stderr, "checkout: path '%s' must be relative and stay inside the workspace\n", path);
		free(def);
		return 2;
	}
	char *dest = strcmp(path, ".") == 0 ? rn_xstrdup(ws) : rn_xasprintf("%s/%s", ws, path);
	rn_git_opts o;
	memset(&o, 0, sizeof(o));
	o.depth = number(json_object_get(with, "depth"));
	o.submodules = flag(json_object_get(with, "submodules"));
	o.progress = RN_GIT_PROGRESS_AUTO;
	o.progress_out = stdout;
	rn_git_result res;
	int status = 0;
	int rc = rn_git_checkout(repo, ref, dest, &o, &res);
	char *shown = rn_git_redact_url(repo);
	if (rc < 0) {
		fflush(stdout);
		fprintf(stderr, "checkout: %s\n", rn_error_last());
		status = rc == RN_ENOTFOUND || rc == RN_EINVALID ? 1 : 3;
	} else {
		printf("checkout: %s at %s (%s) in %s%s\n", shown, res.sha, res.ref, path,
		       o.submodules ? ", with submodules" : "");
		const char *out_file = getenv("RUNNER_OUTPUT");
		FILE *f = out_file && *out_file ? fopen(out_file, "a") : NULL;
		output(f, "sha", res.sha);
		output(f, "ref", res.ref);
		output(f, "branch", res.branch);
		output(f, "path", path);
		if (f && fclose(f) != 0) {
			fprintf(stderr, "checkout: cannot write the step outputs to %s\n", out_file);
			status = 3;
		}
	}
	free(shown);
	free(dest);
	free(def);
	return status;
}

const rn_step_kind rn_step_checkout = { "checkout", "clone a git repository at a ref (libgit2, mirror cache)", check,
					command, exec_checkout };
