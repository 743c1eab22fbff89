/* server.c - `runner serve`: the coordinator (libmicrohttpd, SQLite, jansson); see docs/protocol.md. */
#include "server.h"

#include <stdio.h>

const char rn_cmd_serve_help[] = "";

int rn_cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "runner serve: not built yet\n");
	return 2;
}
