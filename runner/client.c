/* client.c - `runner submit|status|logs|cancel`: the user commands against a server. */
#include "client.h"

#include <stdio.h>

const char rn_cmd_submit_help[] = "";

int rn_cmd_submit(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner submit: not built yet\n");
	return 2;
}

const char rn_cmd_status_help[] = "";

int rn_cmd_status(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner status: not built yet\n");
	return 2;
}

const char rn_cmd_logs_help[] = "";

int rn_cmd_logs(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner logs: not built yet\n");
	return 2;
}

const char rn_cmd_cancel_help[] = "";

int rn_cmd_cancel(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner cancel: not built yet\n");
	return 2;
}
