/* run.c - the shell step: `run: SCRIPT`. */
#include "step.h"
#include "schema.h"

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	if (with->kind != RN_NODE_SCALAR || rn_node_is_null(with))
		rn_diag_error(d, with->line, with->col, "'run' must be a script (a string), not %s",
			      rn_node_type_name(with));
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	return rn_step_shell_command(argv, ctx, ctx->shell, ctx->script ? ctx->script : "");
}

const rn_step_kind rn_step_run = { "run", "run a shell script", check, command, NULL };
