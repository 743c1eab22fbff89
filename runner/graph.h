/* graph.h - the expanded job graph: matrix instances as nodes, `needs` as edges. Pure data and
 * functions, no I/O except the printers. Each node counts its unfinished dependencies so a
 * scheduler marks a node done and queues the users whose count reaches zero (samurai's design). */
#ifndef RN_GRAPH_H
#define RN_GRAPH_H

#include "diag.h"
#include "model.h"

#include <jansson.h>
#include <stdio.h>

typedef struct rn_gnode {
	const rn_job *job;  /* the job this is an instance of */
	char *name;         /* "build" or "build (gcc, O2)"; owned by the graph */
	json_t *matrix;     /* this instance's matrix values (object), or NULL; owned by the graph */
	size_t *deps;       /* indexes of the nodes this one needs */
	size_t ndeps;
	size_t *users;      /* indexes of the nodes that need this one */
	size_t nusers;
	size_t pending;     /* dependencies not finished yet (the scheduler decrements it) */
	int selected;       /* 1 if the run includes it (all, or the closure of --job) */
	size_t group;       /* index of the first instance of the same job (matrix siblings) */
	size_t ninstances;  /* how many instances the job has */
} rn_gnode;

typedef struct rn_graph {
	rn_gnode *nodes; /* in workflow order, instances of a job adjacent */
	size_t n;
} rn_graph;

typedef enum { RN_GRAPH_TEXT, RN_GRAPH_DOT, RN_GRAPH_MERMAID } rn_graph_format;

/* Largest number of instances one matrix may expand to. */
#define RN_MATRIX_MAX 256

/* Expand the pipeline's jobs (matrix: product of axes, minus exclude, plus include) into g.
 * All nodes start selected with pending = number of deps. Problems (a matrix over the cap or
 * expanding to nothing) go to d; returns 0 or RN_EINVALID. Free with rn_graph_free. */
int rn_graph_build(rn_graph *g, const rn_pipeline *p, rn_diags *d);
/* Select only the nodes matching ids (a job id selects all its instances; an instance name
 * selects one) and everything they need, transitively; pending counts only selected deps.
 * RN_ENOTFOUND with rn_error_last() naming an id that matches nothing. */
int rn_graph_select(rn_graph *g, const char *const *ids, size_t nids);
/* Select exactly the instance named name (an instance name, or a job id without matrix), nothing
 * it needs, with pending 0 (an agent runs one job of a pipeline). RN_ENOTFOUND if none. */
int rn_graph_select_one(rn_graph *g, const char *name);
/* Indexes of selected nodes in a dependency order (each after all it needs); caller frees. */
size_t *rn_graph_order(const rn_graph *g, size_t *n);
/* Print the selected graph in a format; 0 or RN_EIO. */
int rn_graph_print(const rn_graph *g, rn_graph_format fmt, FILE *out);
/* Free what the graph owns (not the pipeline). */
void rn_graph_free(rn_graph *g);
/* A node tree as JSON: plain scalars typed (true/false/null/numbers), others strings; new ref. */
json_t *rn_node_to_json(const rn_node *n);

#endif
