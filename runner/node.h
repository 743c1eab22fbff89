/* node.h - a format-neutral document tree (scalars, sequences, mappings) with source positions.
 * Every front end (YAML today) produces these; the workflow checker reads only these. Nodes are
 * owned by an arena; aliases may make two parents share a child. */
#ifndef RN_NODE_H
#define RN_NODE_H

#include <stddef.h>

typedef enum { RN_NODE_SCALAR, RN_NODE_SEQ, RN_NODE_MAP } rn_node_kind;

/* How a scalar was written: plain scalars may be booleans, numbers or null; quoted ones are strings. */
typedef enum { RN_SCALAR_PLAIN, RN_SCALAR_QUOTED, RN_SCALAR_BLOCK } rn_scalar_style;

typedef struct rn_node rn_node;
struct rn_node {
	rn_node_kind kind;
	int line, col;         /* 1-based position of the node's start */
	rn_scalar_style style; /* scalars only */
	char *str;             /* scalars only: the value, NUL-terminated */
	size_t len;            /* scalars only: its length in bytes */
	rn_node **items;       /* SEQ: n items; MAP: n pairs as items[2i] key, items[2i+1] value */
	size_t n;
	size_t weight;         /* nodes in the subtree with aliases expanded (saturating) */
};

/* The value node of key in a mapping, or NULL. */
const rn_node *rn_node_get(const rn_node *map, const char *key);
/* The key node of key in a mapping, or NULL (for positions). */
const rn_node *rn_node_key(const rn_node *map, const char *key);
/* 1 if the node is a plain scalar null (`~`, `null`, empty). */
int rn_node_is_null(const rn_node *n);
/* Parse a scalar as a YAML 1.2 core boolean into *out; 0 or RN_EINVALID. */
int rn_node_bool(const rn_node *n, int *out);
/* Parse a scalar as an integer into *out; 0 or RN_EINVALID. */
int rn_node_int(const rn_node *n, long long *out);
/* 1 if a plain scalar reads as a number (int or float). */
int rn_node_is_number(const rn_node *n);
/* Name of the node's type for messages ("string", "list", "mapping"); static storage. */
const char *rn_node_type_name(const rn_node *n);

#endif
