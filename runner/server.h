/* server.h - `runner serve`: the coordinator (libmicrohttpd, SQLite, jansson); see docs/protocol.md. */
#ifndef RN_SERVER_H
#define RN_SERVER_H

/* `runner serve` (argv[0] is "serve"): parses its options, returns the exit status. */
int rn_cmd_serve(int argc, char **argv);
/* The option help of `runner serve` (static text). */
extern const char rn_cmd_serve_help[];

#endif
