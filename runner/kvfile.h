/* kvfile.h - parsers for key/value files: the step command files (RUNNER_OUTPUT, RUNNER_ENV:
 * `key=value` lines and `key<<DELIM` ... `DELIM` heredocs) and dotenv files (--secret-file:
 * `KEY=value`, optional `export `, '#' comments, blank lines, single/double quotes with \n
 * escapes in double quotes). */
#ifndef RN_KVFILE_H
#define RN_KVFILE_H

#include <stddef.h>

typedef enum { RN_KV_COMMANDS, RN_KV_DOTENV } rn_kv_format;

/* Called for each pair in file order; key and value are NUL-terminated and borrowed for the call.
 * Returning non-zero stops parsing and that value is returned by rn_kvfile_parse. */
typedef int (*rn_kv_cb)(const char *key, const char *value, size_t vlen, void *payload);

/* Parse data[0..len) in the given format. Errors (line without '=', bad key, unterminated heredoc
 * or quote) return RN_EINVALID with "line N: message" in rn_error_last(). Keys must match
 * [A-Za-z_][A-Za-z0-9_.-]* for COMMANDS and [A-Za-z_][A-Za-z0-9_]* for DOTENV. */
int rn_kvfile_parse(const char *data, size_t len, rn_kv_format fmt, rn_kv_cb cb, void *payload);

#endif
