/* agent_job.c - `runner __job DIR`: one leased job run by the engine in a child process of the agent. */
#include "agent_job.h"

#include <stdio.h>

const char rn_cmd_job_help[] = "";

int rn_cmd_job(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner __job: not built yet\n");
	return 2;
}
