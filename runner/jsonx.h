/* jsonx.h - small readers of jansson objects shared by the modules that consume JSON answers
 * (the user commands, the status pages). */
#ifndef RN_JSONX_H
#define RN_JSONX_H

#include <jansson.h>
#include <stdint.h>

/* The string member key of o, or NULL when absent or not a string (borrowed from o). */
const char *rn_json_str(const json_t *o, const char *key);
/* The integer member key of o, or -1 when absent, null or not an integer. */
int64_t rn_json_int(const json_t *o, const char *key);
/* An id member (a string, or an integer) as a new string the caller frees; "" when missing. */
char *rn_json_id(const json_t *o, const char *key);

#endif
