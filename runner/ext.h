/* ext.h - the parts of the runner that live in runner-ext.so, loaded when first needed.
 *
 * The runner binary links only what `runner run`, `validate`, `hook` and an agent's job need
 * (libyaml, jansson, libgit2, libcrypto, libseccomp). The HTTP client (libcurl), the artifact
 * archives (libarchive), `runner serve` (libmicrohttpd, SQLite), `runner agent` and the client
 * commands are in runner-ext.so: loading their fifty-odd shared libraries cost every start of
 * the runner about 9 ms (see docs/fork-server.md). ext.c holds the functions of http.h,
 * archiver.h and the commands' entry points that the binary calls: each loads runner-ext.so
 * once (dlopen) and calls the implementation through the table below. The tests and the fuzz
 * targets link the implementations directly and never use ext.c. */
#ifndef RN_EXT_H
#define RN_EXT_H

#include "archiver.h"
#include "http.h"

#include <stddef.h>

/* Bumped whenever rn_ext_api changes: a runner-ext.so of another build is refused. */
#define RN_EXT_ABI 1

/* A command implemented in runner-ext.so. */
typedef struct rn_ext_command {
	const char *name;                   /* serve, agent, submit, ... */
	int (*fn)(int argc, char **argv);   /* argv[0] is the command's name; returns the exit status */
	const char *help;                   /* the option help (static text) */
} rn_ext_command;

/* What runner-ext.so exports, as the symbol "rn_ext_table". */
typedef struct rn_ext_api {
	int abi;                            /* RN_EXT_ABI */
	const char *version;                /* RN_VERSION of the build */
	int (*http_request)(const rn_http_req *req, rn_http_resp *resp);
	int (*http_upload_file)(const rn_http_req *req, rn_http_resp *resp);
	void (*http_resp_free)(rn_http_resp *resp);
	int (*http_header_ok)(const char *name, const char *value);
	char *(*http_url_redacted)(const char *url);
	int (*archive_create)(const char *out_path, const char *format, const char *root,
			      const char *const *include, size_t ninclude, const char *const *exclude,
			      size_t nexclude, rn_archive_info *info);
	int (*archive_extract)(const char *archive_path, const char *dest_dir);
	int (*archive_extract_limit)(const char *archive_path, const char *dest_dir, uint64_t max_bytes,
				     uint64_t max_entries);
	int (*sha256_file)(const char *path, char out[65]);
	const rn_ext_command *commands;
	size_t ncommands;
} rn_ext_api;

/* The table of runner-ext.so, loaded on the first call (thread-safe): $RUNNER_EXT, else
 * runner-ext.so next to the running executable, else the installed one (RN_EXT_PATH). NULL
 * with rn_error_last() if it cannot be loaded or is of another build. Static storage. */
const rn_ext_api *rn_ext(void);
/* Run the runner-ext.so command argv[0]; the exit status (3 if runner-ext.so is missing). */
int rn_ext_run_command(int argc, char **argv);
/* The option help of the runner-ext.so command name, or NULL (message on stderr) if it cannot
 * be loaded. Static storage. */
const char *rn_ext_command_help(const char *name);

#endif
