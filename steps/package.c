/* package.c - the package step: archive files into a named artifact in the artifact store
 * ($RUNNER_ARTIFACTS/NAME.FORMAT plus NAME.json with format, size, sha256 and file count). */
#include "step.h"
#include "archiver.h"
#include "error.h"
#include "schema.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const formats[] = { "tar.gz", "tar.xz", "tar.zst", "zip", NULL };
static const char *const if_no_files[] = { "error", "warn", "ignore", NULL };

static const rn_field fields[] = {
	{ "name", RN_T_STR, RN_F_REQUIRED, NULL },
	{ "paths", RN_T_GLOBLIST, RN_F_REQUIRED, NULL },
	{ "exclude", RN_T_GLOBLIST, 0, NULL },
	{ "format", RN_T_STR, 0, formats },
	{ "if-no-files", RN_T_STR, 0, if_no_files },
	{ NULL, RN_T_ANY, 0, NULL },
};

int rn_artifact_name_ok(const char *name)
{
	if (!name || !*name || *name == '.' || strlen(name) > 128)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return 0;
	return 1;
}

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	if (rn_schema_check(with, fields, "'package'", d))
		return;
	const rn_node *name = rn_node_get(with, "name");
	if (name && !strstr(name->str, "${{") && !rn_artifact_name_ok(name->str))
		rn_diag_error(d, name->line, name->col,
			      "invalid artifact name '%s' (letters, digits, '.', '_' and '-'; not starting with '.')",
			      name->str);
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	return rn_step_self_command(argv, ctx, "package");
}

/* A string or a list of strings as a vector (borrowed strings); *n gets the count. */
static const char **strings(const json_t *v, size_t *n)
{
	*n = 0;
	const char **out = rn_xcalloc(json_is_array(v) ? json_array_size(v) + 1 : 2, sizeof(*out));
	if (json_is_string(v)) {
		out[(*n)++] = json_string_value(v);
		return out;
	}
	size_t i;
	json_t *it;
	json_array_foreach(v, i, it)
		if (json_is_string(it))
			out[(*n)++] = json_string_value(it);
	return out;
}

static int exec_package(const json_t *input)
{
	const json_t *with = json_object_get(input, "with");
	const char *name = json_string_value(json_object_get(with, "name"));
	const char *format = json_string_value(json_object_get(with, "format"));
	const char *if_none = json_string_value(json_object_get(with, "if-no-files"));
	const char *store = getenv("RUNNER_ARTIFACTS"), *ws = getenv("RUNNER_WORKSPACE");
	if (!format)
		format = "tar.gz";
	if (!if_none)
		if_none = "error";
	if (!rn_artifact_name_ok(name)) {
		fprintf(stderr, "package: invalid artifact name '%s'\n", name ? name : "");
		return 2;
	}
	if (!store || !ws) {
		fprintf(stderr, "package: RUNNER_ARTIFACTS and RUNNER_WORKSPACE must be set\n");
		return 3;
	}
	size_t ninc, nexc;
	const char **inc = strings(json_object_get(with, "paths"), &ninc);
	const char **exc = strings(json_object_get(with, "exclude"), &nexc);
	char *out = rn_xasprintf("%s/%s.%s", store, name, format);
	rn_archive_info info;
	memset(&info, 0, sizeof(info));
	int status = 0;
	int rc = rn_mkdir_p(store, 0755);
	if (rc == 0)
		rc = rn_archive_create(out, format, ws, inc, ninc, exc, nexc, &info);
	if (rc == RN_ENOTFOUND) {
		if (strcmp(if_none, "error") == 0) {
			fprintf(stderr, "package: no files matched the paths of artifact '%s'\n", name);
			status = 1;
		} else if (strcmp(if_none, "warn") == 0) {
			fprintf(stderr, "package: warning: no files matched; artifact '%s' not created\n", name);
		}
	} else if (rc < 0) {
		fprintf(stderr, "package: %s\n", rn_error_last());
		status = 1;
	} else {
		char *meta = rn_xasprintf("%s/%s.json", store, name);
		json_t *m = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "name", name, "format", format, "file",
				      strrchr(out, '/') + 1, "bytes", (json_int_t)info.bytes, "files",
				      (json_int_t)info.files, "sha256", info.sha256);
		const char *job = getenv("RUNNER_JOB");
		if (job)
			json_object_set_new(m, "job", json_string(job));
		if (json_dump_file(m, meta, JSON_INDENT(2)) < 0) {
			fprintf(stderr, "package: cannot write %s\n", meta);
			status = 1;
		} else {
			printf("package: artifact '%s' (%s): %llu files, %llu bytes, sha256 %s\n", name, format,
			       (unsigned long long)info.files, (unsigned long long)info.bytes, info.sha256);
		}
		json_decref(m);
		free(meta);
	}
	free(out);
	free(inc);
	free(exc);
	return status;
}

const rn_step_kind rn_step_package = { "package", "archive files into an artifact", check, command, exec_package };
