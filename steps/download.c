/* download.c - the download step: extract an artifact from the store into a directory. */
#include "step.h"
#include "archiver.h"
#include "error.h"
#include "schema.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const rn_field fields[] = {
	{ "artifact", RN_T_STR, RN_F_REQUIRED, NULL },
	{ "path", RN_T_STR, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	rn_schema_check(with, fields, "'download'", d);
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	return rn_step_self_command(argv, ctx, "download");
}

static int exec_download(const json_t *input)
{
	const json_t *with = json_object_get(input, "with");
	const char *name = json_string_value(json_object_get(with, "artifact"));
	const char *path = json_string_value(json_object_get(with, "path"));
	const char *store = getenv("RUNNER_ARTIFACTS"), *ws = getenv("RUNNER_WORKSPACE");
	if (!rn_artifact_name_ok(name)) {
		fprintf(stderr, "download: invalid artifact name '%s'\n", name ? name : "");
		return 2;
	}
	if (!store || !ws) {
		fprintf(stderr, "download: RUNNER_ARTIFACTS and RUNNER_WORKSPACE must be set\n");
		return 3;
	}
	char *meta = rn_xasprintf("%s/%s.json", store, name);
	json_error_t err;
	json_t *m = json_load_file(meta, 0, &err);
	free(meta);
	if (!m) {
		fprintf(stderr, "download: no artifact named '%s' in this run (is the job that packages it in 'needs'?)\n",
			name);
		return 1;
	}
	const char *file = json_string_value(json_object_get(m, "file"));
	const char *sha = json_string_value(json_object_get(m, "sha256"));
	char *archive = rn_xasprintf("%s/%s", store, file ? file : "");
	char *dest = path && path[0] == '/' ? rn_xstrdup(path) : rn_xasprintf("%s/%s", ws, path ? path : ".");
	char got[65];
	int status = 0;
	if (!file || strchr(file, '/') || rn_sha256_file(archive, got) < 0 || !sha || strcmp(got, sha) != 0) {
		fprintf(stderr, "download: artifact '%s' is damaged (sha256 mismatch)\n", name);
		status = 1;
	} else if (rn_archive_extract(archive, dest) < 0) {
		fprintf(stderr, "download: %s\n", rn_error_last());
		status = 1;
	} else {
		printf("download: artifact '%s' extracted into %s\n", name, path ? path : ".");
	}
	free(archive);
	free(dest);
	json_decref(m);
	return status;
}

const rn_step_kind rn_step_download = { "download", "extract an artifact of a needed job", check, command,
					exec_download };
