/* checkout.c - the checkout step: clone or fetch a repository with libgit2. */
#include "step.h"
#include "error.h"
#include "schema.h"

static const rn_field fields[] = {
	{ "repo", RN_T_STR, RN_F_REQUIRED, NULL },
	{ "ref", RN_T_STR, 0, NULL },
	{ "path", RN_T_STR, 0, NULL },
	{ "depth", RN_T_INT, 0, NULL },
	{ "submodules", RN_T_BOOL, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static void check(const rn_node *with, rn_diags *d)
{
	rn_schema_check(with, fields, "'checkout'", d);
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	(void)argv;
	(void)ctx;
	return rn_error_set("the checkout step is not available in this version yet");
}

const rn_step_kind rn_step_checkout = { "checkout", "clone or fetch a git repository", check, command, NULL };
