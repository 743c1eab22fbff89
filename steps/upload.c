/* upload.c - the upload step: an artifact to the store, or a file to a URL. */
#include "step.h"
#include "error.h"
#include "schema.h"

static const char *const methods[] = { "PUT", "POST", NULL };

static const rn_field fields[] = {
	{ "artifact", RN_T_STR, 0, NULL },
	{ "path", RN_T_STR, 0, NULL },
	{ "url", RN_T_STR, 0, NULL },
	{ "method", RN_T_STR, 0, methods },
	{ "headers", RN_T_STRMAP, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static void check(const rn_node *with, rn_diags *d)
{
	if (rn_schema_check(with, fields, "'upload'", d))
		return;
	const rn_node *artifact = rn_node_get(with, "artifact"), *path = rn_node_get(with, "path");
	const rn_node *url = rn_node_get(with, "url");
	if (!!artifact == !!path)
		rn_diag_error(d, with->line, with->col, "'upload' needs exactly one of 'artifact' or 'path'");
	else if (path && !url)
		rn_diag_error(d, with->line, with->col, "'upload' of a 'path' needs a 'url'");
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	(void)argv;
	(void)ctx;
	return rn_error_set("the upload step is not available in this version yet");
}

const rn_step_kind rn_step_upload = { "upload", "upload an artifact or a file", check, command, NULL };
