/* node.c - queries on the document tree. */
#include "node.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const rn_node *rn_node_key(const rn_node *map, const char *key)
{
	if (!map || map->kind != RN_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++) {
		const rn_node *k = map->items[2 * i];
		if (k->kind == RN_NODE_SCALAR && strcmp(k->str, key) == 0)
			return k;
	}
	return NULL;
}

const rn_node *rn_node_get(const rn_node *map, const char *key)
{
	if (!map || map->kind != RN_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++) {
		const rn_node *k = map->items[2 * i];
		if (k->kind == RN_NODE_SCALAR && strcmp(k->str, key) == 0)
			return map->items[2 * i + 1];
	}
	return NULL;
}

int rn_node_is_null(const rn_node *n)
{
	if (!n)
		return 1;
	if (n->kind != RN_NODE_SCALAR || n->style != RN_SCALAR_PLAIN)
		return 0;
	return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
	       strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

int rn_node_bool(const rn_node *n, int *out)
{
	if (!n || n->kind != RN_NODE_SCALAR || n->style != RN_SCALAR_PLAIN)
		return RN_EINVALID;
	static const char *t[] = { "true", "True", "TRUE" }, *f[] = { "false", "False", "FALSE" };
	for (int i = 0; i < 3; i++) {
		if (strcmp(n->str, t[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(n->str, f[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return RN_EINVALID;
}

int rn_node_int(const rn_node *n, long long *out)
{
	if (!n || n->kind != RN_NODE_SCALAR || n->len == 0)
		return RN_EINVALID;
	char *end;
	errno = 0;
	long long v = strtoll(n->str, &end, 10);
	if (errno || *end)
		return RN_EINVALID;
	*out = v;
	return 0;
}

int rn_node_is_number(const rn_node *n)
{
	if (!n || n->kind != RN_NODE_SCALAR || n->style != RN_SCALAR_PLAIN || n->len == 0)
		return 0;
	char *end;
	errno = 0;
	(void)strtod(n->str, &end);
	if (*end || errno)
		return 0;
	/* strtod accepts inf/nan and hex; YAML plain numbers start with a digit, sign or dot */
	char c = n->str[0];
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.';
}

const char *rn_node_type_name(const rn_node *n)
{
	if (!n)
		return "nothing";
	switch (n->kind) {
	case RN_NODE_SEQ:
		return "list";
	case RN_NODE_MAP:
		return "mapping";
	default:
		return rn_node_is_null(n) ? "null" : "string";
	}
}
