/* yamldoc.c - libyaml events to a node tree, with anchors, merge keys and limits. */
#include "yamldoc.h"
#include "error.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct frame {
	rn_node *node;     /* the collection being built */
	rn_node **items;   /* children so far (malloc'd) */
	size_t n, cap;
	char *anchor;      /* anchor to register when complete (malloc'd) */
} frame;

typedef struct anchor {
	char *name;
	rn_node *node;
} anchor;

typedef struct loader {
	rn_arena *arena;
	rn_diags *d;
	frame *stack;
	size_t depth, cap;
	anchor *anchors;
	size_t nanchors, anchors_cap;
	int failed;
} loader;

static size_t add_weight(size_t a, size_t b)
{
	return a > SIZE_MAX / 2 - b ? SIZE_MAX / 2 : a + b;
}

static rn_node *new_node(loader *l, rn_node_kind kind, yaml_mark_t mark)
{
	rn_node *n = rn_arena_alloc(l->arena, sizeof(*n));
	n->kind = kind;
	n->line = (int)mark.line + 1;
	n->col = (int)mark.column + 1;
	n->weight = 1;
	return n;
}

static void set_anchor(loader *l, const char *name, rn_node *node)
{
	/* a later anchor of the same name replaces the earlier one, as YAML says */
	for (size_t i = 0; i < l->nanchors; i++) {
		if (strcmp(l->anchors[i].name, name) == 0) {
			l->anchors[i].node = node;
			return;
		}
	}
	rn_grow(&l->anchors, &l->anchors_cap, l->nanchors + 1, sizeof(*l->anchors));
	l->anchors[l->nanchors++] = (anchor){ rn_xstrdup(name), node };
}

static rn_node *find_anchor(loader *l, const char *name)
{
	for (size_t i = l->nanchors; i-- > 0;)
		if (strcmp(l->anchors[i].name, name) == 0)
			return l->anchors[i].node;
	return NULL;
}

static void push_item(frame *f, rn_node *n)
{
	rn_grow(&f->items, &f->cap, f->n + 1, sizeof(*f->items));
	f->items[f->n++] = n;
	f->node->weight = add_weight(f->node->weight, n->weight);
}

/* Attach a finished node to the enclosing collection, or make it the root. */
static void attach(loader *l, rn_node *n, rn_node **root)
{
	if (l->depth == 0) {
		*root = n;
		return;
	}
	frame *f = &l->stack[l->depth - 1];
	if (f->node->kind == RN_NODE_MAP && f->n % 2 == 0 && n->kind != RN_NODE_SCALAR) {
		rn_diag_error(l->d, n->line, n->col, "mapping keys must be plain strings");
		l->failed = 1;
	}
	push_item(f, n);
}

static int is_merge_key(const rn_node *k)
{
	return k->kind == RN_NODE_SCALAR && k->style == RN_SCALAR_PLAIN && strcmp(k->str, "<<") == 0;
}

static int has_key(rn_node **items, size_t npairs, const char *key)
{
	for (size_t i = 0; i < npairs; i++)
		if (items[2 * i]->kind == RN_NODE_SCALAR && strcmp(items[2 * i]->str, key) == 0)
			return 1;
	return 0;
}

typedef struct keyref {
	const rn_node *key;
	size_t index;
} keyref;

static int keyref_cmp(const void *a, const void *b)
{
	const keyref *x = a, *y = b;
	int c = strcmp(x->key->str, y->key->str);
	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Finish a mapping: apply merge keys, then report duplicate keys. */
static void finish_map(loader *l, frame *f)
{
	rn_node **items = f->items;
	size_t n = f->n / 2;
	rn_node **out = rn_xcalloc(2 * n + 1, sizeof(*out));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (is_merge_key(items[2 * i]))
			continue;
		out[2 * m] = items[2 * i];
		out[2 * m + 1] = items[2 * i + 1];
		m++;
	}
	/* merged pairs: explicit keys win, then earlier sources win */
	for (size_t i = 0; i < n; i++) {
		if (!is_merge_key(items[2 * i]))
			continue;
		rn_node *v = items[2 * i + 1];
		rn_node **srcs = &v;
		size_t nsrc = 1;
		if (v->kind == RN_NODE_SEQ) {
			srcs = v->items;
			nsrc = v->n;
		}
		int bad = 0;
		for (size_t s = 0; s < nsrc; s++)
			bad |= srcs[s]->kind != RN_NODE_MAP;
		if (bad) {
			rn_diag_error(l->d, items[2 * i]->line, items[2 * i]->col,
				      "merge key '<<' needs a mapping or a list of mappings");
			l->failed = 1;
			continue;
		}
		for (size_t s = 0; s < nsrc; s++) {
			rn_node *src = srcs[s];
			for (size_t j = 0; j < src->n; j++) {
				rn_node *k = src->items[2 * j];
				if (k->kind != RN_NODE_SCALAR || has_key(out, m, k->str))
					continue;
				out = rn_xreallocarray(out, 2 * (m + 1) + 1, sizeof(*out));
				out[2 * m] = k;
				out[2 * m + 1] = src->items[2 * j + 1];
				m++;
			}
		}
	}
	/* duplicate keys among the explicit pairs (merged ones never duplicate) */
	keyref *refs = rn_xcalloc(n + 1, sizeof(*refs));
	size_t nr = 0;
	for (size_t i = 0; i < n; i++)
		if (!is_merge_key(items[2 * i]) && items[2 * i]->kind == RN_NODE_SCALAR)
			refs[nr++] = (keyref){ items[2 * i], i };
	qsort(refs, nr, sizeof(*refs), keyref_cmp);
	for (size_t i = 1; i < nr; i++) {
		if (strcmp(refs[i].key->str, refs[i - 1].key->str) == 0) {
			const rn_node *k = refs[i].key;
			size_t first = i - 1;
			while (first > 0 && strcmp(refs[first - 1].key->str, k->str) == 0)
				first--;
			rn_diag_error(l->d, k->line, k->col, "duplicate key '%s' (first at line %d)", k->str,
				      refs[first].key->line);
			l->failed = 1;
		}
	}
	free(refs);
	size_t w = 1;
	for (size_t i = 0; i < 2 * m; i++)
		w = add_weight(w, out[i]->weight);
	f->node->weight = w;
	f->node->items = rn_arena_alloc(l->arena, (2 * m + 1) * sizeof(*out));
	memcpy(f->node->items, out, 2 * m * sizeof(*out));
	f->node->n = m;
	free(out);
}

static void finish_seq(loader *l, frame *f)
{
	f->node->items = rn_arena_alloc(l->arena, (f->n + 1) * sizeof(*f->items));
	if (f->n)
		memcpy(f->node->items, f->items, f->n * sizeof(*f->items));
	f->node->n = f->n;
}

static void start_collection(loader *l, rn_node *node, const yaml_char_t *anchor_name)
{
	rn_grow(&l->stack, &l->cap, l->depth + 1, sizeof(*l->stack));
	l->stack[l->depth++] = (frame){ node, NULL, 0, 0, anchor_name ? rn_xstrdup((const char *)anchor_name) : NULL };
}

static void free_loader(loader *l)
{
	for (size_t i = 0; i < l->depth; i++) {
		free(l->stack[i].items);
		free(l->stack[i].anchor);
	}
	free(l->stack);
	for (size_t i = 0; i < l->nanchors; i++)
		free(l->anchors[i].name);
	free(l->anchors);
}

static void report_parser_error(loader *l, const yaml_parser_t *p, const char *data, size_t len)
{
	const char *what = p->problem ? p->problem : "invalid YAML";
	yaml_mark_t m = p->problem_mark;
	if (p->error == YAML_READER_ERROR) {
		/* the reader counts bytes only: find the line and column of the offset */
		int line = 1, col = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (data[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)data[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		rn_diag_error(l->d, line, col, "%s (the file must be UTF-8 text)", what);
		return;
	}
	if (p->context)
		rn_diag_error(l->d, (int)m.line + 1, (int)m.column + 1, "%s %s (line %d)", what, p->context,
			      (int)p->context_mark.line + 1);
	else
		rn_diag_error(l->d, (int)m.line + 1, (int)m.column + 1, "%s", what);
}

int rn_yaml_load(rn_node **root, const char *data, size_t len, rn_arena *arena, rn_diags *d)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	loader l = { .arena = arena, .d = d };
	int docs = 0, done = 0;
	*root = NULL;

	if (!yaml_parser_initialize(&parser))
		return rn_error_set("cannot initialise the YAML parser"), RN_ERROR;
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			report_parser_error(&l, &parser, data, len);
			l.failed = 1;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				rn_diag_error(d, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
					      "a workflow file holds one YAML document");
				l.failed = 1;
				done = 1;
			}
			break;
		case YAML_SCALAR_EVENT: {
			rn_node *n = new_node(&l, RN_NODE_SCALAR, ev.start_mark);
			n->str = rn_arena_strndup(arena, (const char *)ev.data.scalar.value, ev.data.scalar.length);
			n->len = ev.data.scalar.length;
			switch (ev.data.scalar.style) {
			case YAML_PLAIN_SCALAR_STYLE:
				n->style = RN_SCALAR_PLAIN;
				break;
			case YAML_LITERAL_SCALAR_STYLE:
			case YAML_FOLDED_SCALAR_STYLE:
				n->style = RN_SCALAR_BLOCK;
				break;
			default:
				n->style = RN_SCALAR_QUOTED;
				break;
			}
			if (strlen(n->str) != n->len) {
				rn_diag_error(d, n->line, n->col, "strings may not contain NUL characters");
				l.failed = 1;
			}
			if (ev.data.scalar.anchor)
				set_anchor(&l, (const char *)ev.data.scalar.anchor, n);
			attach(&l, n, root);
			break;
		}
		case YAML_ALIAS_EVENT: {
			rn_node *target = find_anchor(&l, (const char *)ev.data.alias.anchor);
			if (!target) {
				rn_diag_error(d, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
					      "unknown alias '*%s'", (const char *)ev.data.alias.anchor);
				l.failed = 1;
				break;
			}
			attach(&l, target, root);
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			int seq = ev.type == YAML_SEQUENCE_START_EVENT;
			if (l.depth >= RN_YAML_MAX_DEPTH) {
				rn_diag_error(d, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
					      "nesting deeper than %d levels", RN_YAML_MAX_DEPTH);
				l.failed = 1;
				done = 1;
				break;
			}
			rn_node *n = new_node(&l, seq ? RN_NODE_SEQ : RN_NODE_MAP, ev.start_mark);
			start_collection(&l, n, seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor);
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: {
			if (l.depth == 0 || !l.stack) { /* libyaml pairs start and end events; never trust it blindly */
				rn_diag_error(d, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
					      "unbalanced YAML collection end");
				l.failed = 1;
				done = 1;
				break;
			}
			frame f = l.stack[--l.depth];
			if (f.node->kind == RN_NODE_MAP)
				finish_map(&l, &f);
			else
				finish_seq(&l, &f);
			free(f.items);
			if (f.anchor) {
				set_anchor(&l, f.anchor, f.node);
				free(f.anchor);
			}
			attach(&l, f.node, root);
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (*root && (*root)->weight > RN_YAML_MAX_WEIGHT)
			break;
		if (l.depth && (l.stack[0].node->weight > RN_YAML_MAX_WEIGHT ||
				l.stack[l.depth - 1].node->weight > RN_YAML_MAX_WEIGHT)) {
			rn_diag_error(d, l.stack[0].node->line, l.stack[0].node->col,
				      "document expands to more than %u nodes (alias bomb?)", RN_YAML_MAX_WEIGHT);
			l.failed = 1;
			break;
		}
	}
	yaml_parser_delete(&parser);
	free_loader(&l);
	if (!l.failed && *root && (*root)->weight > RN_YAML_MAX_WEIGHT) {
		rn_diag_error(d, (*root)->line, (*root)->col,
			      "document expands to more than %u nodes (alias bomb?)", RN_YAML_MAX_WEIGHT);
		l.failed = 1;
	}
	if (!l.failed && !*root) {
		rn_diag_error(d, 1, 1, "the workflow file is empty");
		l.failed = 1;
	}
	if (l.failed) {
		*root = NULL;
		return RN_EINVALID;
	}
	return 0;
}
