/* hook.c - `runner hook`: the git post-receive hook and its installer. */
#include "hook.h"

#include <stdio.h>

const char rn_cmd_hook_help[] = "";

int rn_cmd_hook(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner hook: not built yet\n");
	return 2;
}
