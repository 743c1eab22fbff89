/* schema.c - table-driven checks of mappings. */
#include "schema.h"
#include "expr.h"
#include "glob.h"
#include "error.h"
#include "units.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

const char *rn_suggest(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i < n; i++) {
		size_t dist = rn_edit_distance(word, candidates[i]);
		if (dist < best_d) {
			best_d = dist;
			best = candidates[i];
		}
	}
	return best;
}

static int is_scalar(const rn_node *v)
{
	return v && v->kind == RN_NODE_SCALAR;
}

static size_t type_error(const rn_node *v, const char *key, const char *want, rn_diags *d)
{
	rn_diag_error(d, v->line, v->col, "'%s' must be %s, not %s", key, want, rn_node_type_name(v));
	return 1;
}

static size_t check_glob(const rn_node *v, const char *key, rn_diags *d)
{
	const char *p = v->str;
	if (*p == '!')
		p++;
	if (rn_template_has(p))
		return 0;
	if (rn_glob_check(p) < 0) {
		/* the glob module names the pattern itself; keep only the reason */
		const char *why = rn_error_last(), *sep = strstr(why, "': ");
		if (rn_startswith(why, "invalid pattern '") && sep)
			why = sep + 3;
		rn_diag_error(d, v->line, v->col, "bad glob '%s' in '%s': %s", v->str, key, why);
		return 1;
	}
	return 0;
}

size_t rn_schema_check_value(const rn_node *v, rn_type type, const char *const *choices, const char *key,
			     rn_diags *d)
{
	long long i;
	int b;
	int64_t x;
	size_t bad = 0;

	switch (type) {
	case RN_T_ANY:
		return 0;
	case RN_T_STR:
		if (!is_scalar(v) || rn_node_is_null(v))
			return type_error(v, key, "a string", d);
		if (choices) {
			for (size_t c = 0; choices[c]; c++)
				if (strcmp(choices[c], v->str) == 0)
					return 0;
			size_t nc = 0;
			while (choices[nc])
				nc++;
			const char *s = rn_suggest(v->str, choices, nc);
			char list[256] = "";
			for (size_t c = 0; choices[c]; c++) {
				if (c)
					strncat(list, ", ", sizeof(list) - strlen(list) - 1);
				strncat(list, choices[c], sizeof(list) - strlen(list) - 1);
			}
			if (s)
				rn_diag_error(d, v->line, v->col, "invalid value '%s' for '%s' (did you mean '%s'? expected one of: %s)",
					      v->str, key, s, list);
			else
				rn_diag_error(d, v->line, v->col, "invalid value '%s' for '%s' (expected one of: %s)", v->str,
					      key, list);
			return 1;
		}
		return 0;
	case RN_T_INT:
		if (!is_scalar(v) || rn_node_int(v, &i) < 0 || i < 0)
			return rn_diag_error(d, v->line, v->col, "'%s' must be a whole number >= 0", key), 1;
		return 0;
	case RN_T_BOOL:
		if (rn_node_bool(v, &b) < 0)
			return rn_diag_error(d, v->line, v->col, "'%s' must be true or false", key), 1;
		return 0;
	case RN_T_DURATION:
		if (!is_scalar(v) || rn_duration_parse(&x, v->str) < 0)
			return rn_diag_error(d, v->line, v->col, "bad duration for '%s': %s", key,
					     is_scalar(v) ? rn_error_last() : "expected e.g. 30s, 10m, 1h30m"), 1;
		return 0;
	case RN_T_SIZE:
		if (!is_scalar(v) || rn_size_parse(&x, v->str) < 0)
			return rn_diag_error(d, v->line, v->col, "bad size for '%s': %s", key,
					     is_scalar(v) ? rn_error_last() : "expected e.g. 512M, 2G"), 1;
		return 0;
	case RN_T_STRLIST:
	case RN_T_GLOBLIST:
		if (is_scalar(v)) {
			if (rn_node_is_null(v))
				return type_error(v, key, "a string or a list of strings", d);
			return type == RN_T_GLOBLIST ? check_glob(v, key, d) : 0;
		}
		if (v->kind != RN_NODE_SEQ)
			return type_error(v, key, "a string or a list of strings", d);
		for (size_t k = 0; k < v->n; k++) {
			if (!is_scalar(v->items[k]) || rn_node_is_null(v->items[k]))
				bad += type_error(v->items[k], key, "a list of strings", d);
			else if (type == RN_T_GLOBLIST)
				bad += check_glob(v->items[k], key, d);
		}
		return bad;
	case RN_T_STRMAP:
		if (v->kind != RN_NODE_MAP)
			return type_error(v, key, "a mapping", d);
		for (size_t k = 0; k < v->n; k++) {
			const rn_node *val = v->items[2 * k + 1];
			if (!is_scalar(val))
				bad += type_error(val, v->items[2 * k]->str, "a string", d);
		}
		return bad;
	case RN_T_MAP:
		return v->kind == RN_NODE_MAP ? 0 : type_error(v, key, "a mapping", d);
	case RN_T_LIST:
		return v->kind == RN_NODE_SEQ ? 0 : type_error(v, key, "a list", d);
	}
	return 0;
}

size_t rn_schema_check(const rn_node *map, const rn_field *fields, const char *what, rn_diags *d)
{
	size_t bad = 0, nf = 0;
	if (!map || map->kind != RN_NODE_MAP) {
		if (map)
			rn_diag_error(d, map->line, map->col, "%s must be a mapping, not %s", what, rn_node_type_name(map));
		return 1;
	}
	while (fields[nf].key)
		nf++;
	const char **names = rn_xcalloc(nf + 1, sizeof(*names));
	for (size_t f = 0; f < nf; f++)
		names[f] = fields[f].key;
	for (size_t i = 0; i < map->n; i++) {
		const rn_node *k = map->items[2 * i], *v = map->items[2 * i + 1];
		size_t f;
		for (f = 0; f < nf; f++)
			if (strcmp(fields[f].key, k->str) == 0)
				break;
		if (f == nf) {
			const char *s = rn_suggest(k->str, names, nf);
			if (s)
				rn_diag_error(d, k->line, k->col, "unknown key '%s' in %s (did you mean '%s'?)", k->str, what, s);
			else
				rn_diag_error(d, k->line, k->col, "unknown key '%s' in %s", k->str, what);
			bad++;
			continue;
		}
		bad += rn_schema_check_value(v, fields[f].type, fields[f].choices, k->str, d);
	}
	for (size_t f = 0; f < nf; f++) {
		if ((fields[f].flags & RN_F_REQUIRED) && !rn_node_get(map, fields[f].key)) {
			rn_diag_error(d, map->line, map->col, "%s is missing required key '%s'", what, fields[f].key);
			bad++;
		}
	}
	free(names);
	return bad;
}

size_t rn_schema_check_templates(const rn_node *n, rn_diags *d)
{
	size_t bad = 0;
	if (!n)
		return 0;
	if (n->kind == RN_NODE_SCALAR) {
		size_t off = 0;
		if (rn_template_has(n->str) && rn_template_check(n->str, &off) < 0) {
			/* map the byte offset to a line/column for single-line plain or quoted scalars */
			int line = n->line, col = n->col;
			if (n->style != RN_SCALAR_BLOCK) {
				int nl = 0;
				for (size_t i = 0; i < off && n->str[i]; i++)
					if (n->str[i] == '\n')
						nl = 1;
				if (!nl)
					col += (int)off + (n->style == RN_SCALAR_QUOTED ? 1 : 0);
			}
			rn_diag_error(d, line, col, "bad expression: %s", rn_error_last());
			bad++;
		}
		return bad;
	}
	for (size_t i = 0; i < (n->kind == RN_NODE_MAP ? 2 * n->n : n->n); i++)
		bad += rn_schema_check_templates(n->items[i], d);
	return bad;
}
