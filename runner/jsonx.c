/* jsonx.c - small readers of jansson objects. */
#include "jsonx.h"
#include "util.h"

const char *rn_json_str(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t rn_json_int(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

char *rn_json_id(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_string(v))
		return rn_xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return rn_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return rn_xstrdup("");
}
