/* agent.c - `runner agent`: the self-hosted agent that polls the server and runs jobs. */
#include "agent.h"

#include <stdio.h>

const char rn_cmd_agent_help[] = "";

int rn_cmd_agent(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner agent: not built yet\n");
	return 2;
}
