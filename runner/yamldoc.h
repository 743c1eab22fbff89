/* yamldoc.h - the YAML front end: libyaml events to a positioned node tree (node.h).
 * Anchors and aliases are shared subtrees; merge keys (`<<`) are applied; duplicate keys,
 * non-scalar keys, multiple documents, excessive nesting and alias bombs are reported. */
#ifndef RN_YAMLDOC_H
#define RN_YAMLDOC_H

#include "arena.h"
#include "diag.h"
#include "node.h"

#include <stddef.h>

/* Largest expanded document accepted (nodes, aliases counted each time they are used). */
#define RN_YAML_MAX_WEIGHT (8u * 1024 * 1024)
/* Deepest nesting accepted. */
#define RN_YAML_MAX_DEPTH 200

/* Parse data[0..len) into *root (nodes owned by arena). Every problem goes to d. Returns 0,
 * or RN_EINVALID when the text cannot be used (then *root is NULL). */
int rn_yaml_load(rn_node **root, const char *data, size_t len, rn_arena *arena, rn_diags *d);

#endif
