/* schema.h - table-driven checks of mappings in a document tree: known keys (with "did you mean"
 * suggestions), value types, required keys and allowed values. Used by the workflow checker and
 * by every step kind to check its parameters. */
#ifndef RN_SCHEMA_H
#define RN_SCHEMA_H

#include "diag.h"
#include "node.h"

#include <stddef.h>

typedef enum {
	RN_T_ANY,      /* anything */
	RN_T_STR,      /* a scalar (numbers and booleans are taken as their text) */
	RN_T_INT,      /* a whole number >= 0 */
	RN_T_BOOL,     /* true or false */
	RN_T_STRLIST,  /* a scalar or a list of scalars */
	RN_T_STRMAP,   /* a mapping of scalar to scalar */
	RN_T_DURATION, /* 500ms, 30s, 1h30m */
	RN_T_SIZE,     /* 512M, 2G */
	RN_T_GLOBLIST, /* a glob or a list of globs */
	RN_T_MAP,      /* a mapping (checked elsewhere) */
	RN_T_LIST      /* a list (checked elsewhere) */
} rn_type;

enum { RN_F_REQUIRED = 1 };

typedef struct rn_field {
	const char *key;
	rn_type type;
	unsigned flags;
	const char *const *choices; /* NULL-terminated allowed values for RN_T_STR, or NULL */
} rn_field;

/* Check map against fields (terminated by a {NULL} row); `what` names the mapping in messages
 * ("job 'build'"). Adds one diagnostic per problem; returns how many it added. */
size_t rn_schema_check(const rn_node *map, const rn_field *fields, const char *what, rn_diags *d);
/* Check one value against a type (and choices); `key` names it in messages. Returns problems added. */
size_t rn_schema_check_value(const rn_node *v, rn_type type, const char *const *choices, const char *key,
			     rn_diags *d);
/* Check every ${{ }} in every string scalar below n; returns problems added. */
size_t rn_schema_check_templates(const rn_node *n, rn_diags *d);
/* The candidate closest to word (edit distance <= 2, or a prefix), or NULL; borrowed. */
const char *rn_suggest(const char *word, const char *const *candidates, size_t n);

#endif
