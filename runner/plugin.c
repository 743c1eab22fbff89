/* plugin.c - step plugins: `runner-step-NAME` executables, and `runner plugins`. */
#include "plugin.h"

#include <stdio.h>

const char rn_cmd_plugins_help[] = "";

int rn_cmd_plugins(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner plugins: not built yet\n");
	return 2;
}
