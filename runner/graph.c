/* graph.c - matrix expansion, dependency counting, selection and printing. */
#include "graph.h"
#include "buf.h"
#include "error.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

json_t *rn_node_to_json(const rn_node *n)
{
	if (!n)
		return json_null();
	if (n->kind == RN_NODE_SEQ) {
		json_t *a = json_array();
		for (size_t i = 0; i < n->n; i++)
			json_array_append_new(a, rn_node_to_json(n->items[i]));
		return a;
	}
	if (n->kind == RN_NODE_MAP) {
		json_t *o = json_object();
		for (size_t i = 0; i < n->n; i++)
			json_object_set_new(o, n->items[2 * i]->str, rn_node_to_json(n->items[2 * i + 1]));
		return o;
	}
	int b;
	if (n->style == RN_SCALAR_PLAIN) {
		if (rn_node_is_null(n))
			return json_null();
		if (rn_node_bool(n, &b) == 0)
			return json_boolean(b);
		if (rn_node_is_number(n)) {
			long long i;
			if (rn_node_int(n, &i) == 0)
				return json_integer(i);
			return json_real(strtod(n->str, NULL));
		}
	}
	return json_stringn(n->str, n->len);
}

/* A value as it appears in an instance name. */
static void name_value(rn_buf *b, const json_t *v)
{
	if (json_is_string(v)) {
		rn_buf_puts(b, json_string_value(v));
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		rn_buf_puts(b, s ? s : "?");
		free(s);
	}
}

/* 1 if every key of `partial` has an equal value in `combo`. */
static int matches(const json_t *combo, const json_t *partial)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)partial, k, v) {
		json_t *cv = json_object_get(combo, k);
		if (!cv || !json_equal(cv, v))
			return 0;
	}
	return 1;
}

/* Expand one job's matrix into a JSON array of objects (GitHub Actions' rules). */
static json_t *expand_matrix(const rn_job *job, rn_diags *d)
{
	const rn_matrix *m = &job->matrix;
	json_t *combos = json_array();
	size_t total = 1;
	for (size_t a = 0; a < m->naxes; a++) {
		total *= m->axes[a].values->n;
		if (total > 1000000) {
			rn_diag_error(d, job->pos.line, job->pos.col, "matrix of job '%s' is too large", job->id);
			return combos;
		}
	}
	if (m->naxes) {
		size_t *idx = rn_xcalloc(m->naxes, sizeof(*idx));
		for (size_t c = 0; c < total; c++) {
			json_t *o = json_object();
			for (size_t a = 0; a < m->naxes; a++)
				json_object_set_new(o, m->axes[a].name, rn_node_to_json(m->axes[a].values->items[idx[a]]));
			/* exclude: drop combos that match any exclude entry */
			int excluded = 0;
			for (size_t e = 0; m->exclude && e < m->exclude->n && !excluded; e++) {
				json_t *ex = rn_node_to_json(m->exclude->items[e]);
				excluded = json_is_object(ex) && matches(o, ex);
				json_decref(ex);
			}
			if (excluded || json_array_size(combos) >= RN_MATRIX_MAX + 1)
				json_decref(o);
			else
				json_array_append_new(combos, o);
			for (size_t a = m->naxes; a-- > 0;) {
				if (++idx[a] < m->axes[a].values->n)
					break;
				idx[a] = 0;
			}
		}
		free(idx);
	}
	/* include: extend every combo whose original axes match and would not be overwritten,
	 * else add the entry as a combo of its own */
	for (size_t i = 0; m->include && i < m->include->n; i++) {
		json_t *inc = rn_node_to_json(m->include->items[i]);
		if (!json_is_object(inc)) {
			json_decref(inc);
			continue;
		}
		int used = 0;
		size_t ci;
		json_t *combo;
		json_array_foreach(combos, ci, combo) {
			int ok = 1;
			const char *k;
			json_t *v;
			json_object_foreach(inc, k, v) {
				int is_axis = 0;
				for (size_t a = 0; a < m->naxes; a++)
					if (strcmp(m->axes[a].name, k) == 0)
						is_axis = 1;
				json_t *cv = json_object_get(combo, k);
				if (is_axis && (!cv || !json_equal(cv, v)))
					ok = 0;
			}
			if (!ok)
				continue;
			json_object_foreach(inc, k, v) {
				if (!json_object_get(combo, k))
					json_object_set(combo, k, v);
			}
			used = 1;
		}
		if (!used)
			json_array_append(combos, inc);
		json_decref(inc);
	}
	return combos;
}

static char *instance_name(const rn_job *job, const json_t *combo)
{
	rn_buf b = RN_BUF_INIT(64 * 1024);
	rn_buf_puts(&b, job->id);
	rn_buf_puts(&b, " (");
	const char *k;
	json_t *v;
	int first = 1;
	/* axis values first, in axis order, then include-only keys in their order */
	for (size_t a = 0; a < job->matrix.naxes; a++) {
		json_t *av = json_object_get(combo, job->matrix.axes[a].name);
		if (!av)
			continue;
		if (!first)
			rn_buf_puts(&b, ", ");
		name_value(&b, av);
		first = 0;
	}
	json_object_foreach((json_t *)combo, k, v) {
		int is_axis = 0;
		for (size_t a = 0; a < job->matrix.naxes; a++)
			if (strcmp(job->matrix.axes[a].name, k) == 0)
				is_axis = 1;
		if (is_axis)
			continue;
		if (!first)
			rn_buf_puts(&b, ", ");
		name_value(&b, v);
		first = 0;
	}
	rn_buf_puts(&b, ")");
	return rn_buf_detach(&b);
}

int rn_graph_build(rn_graph *g, const rn_pipeline *p, rn_diags *d)
{
	size_t errors = d->errors;
	size_t cap = 0;
	size_t *first = rn_xcalloc(p->njobs + 1, sizeof(*first)), *count = rn_xcalloc(p->njobs + 1, sizeof(*count));
	memset(g, 0, sizeof(*g));
	for (size_t j = 0; j < p->njobs; j++) {
		const rn_job *job = &p->jobs[j];
		first[j] = g->n;
		if (!job->matrix.present) {
			rn_grow(&g->nodes, &cap, g->n + 1, sizeof(*g->nodes));
			g->nodes[g->n++] = (rn_gnode){ .job = job, .name = rn_xstrdup(job->id) };
			count[j] = 1;
			continue;
		}
		json_t *combos = expand_matrix(job, d);
		size_t nc = json_array_size(combos);
		if (nc == 0)
			rn_diag_error(d, job->pos.line, job->pos.col, "matrix of job '%s' expands to no instances", job->id);
		else if (nc > RN_MATRIX_MAX)
			rn_diag_error(d, job->pos.line, job->pos.col, "matrix of job '%s' expands to more than %d instances",
				      job->id, RN_MATRIX_MAX);
		for (size_t c = 0; c < nc && c < RN_MATRIX_MAX; c++) {
			json_t *combo = json_array_get(combos, c);
			rn_grow(&g->nodes, &cap, g->n + 1, sizeof(*g->nodes));
			g->nodes[g->n++] = (rn_gnode){ .job = job, .name = instance_name(job, combo),
						       .matrix = json_incref(combo) };
			count[j]++;
		}
		json_decref(combos);
	}
	/* edges: `needs: X` is every instance of X; needs were resolved and checked by the parser */
	for (size_t j = 0; j < p->njobs; j++) {
		const rn_job *job = &p->jobs[j];
		size_t ndeps = 0;
		for (size_t k = 0; k < job->needs.n; k++)
			if (job->needs_index[k] != (size_t)-1)
				ndeps += count[job->needs_index[k]];
		for (size_t i = first[j]; i < first[j] + count[j]; i++) {
			rn_gnode *nd = &g->nodes[i];
			nd->group = first[j];
			nd->ninstances = count[j];
			nd->deps = rn_xcalloc(ndeps + 1, sizeof(*nd->deps));
			for (size_t k = 0; k < job->needs.n; k++) {
				size_t dj = job->needs_index[k];
				if (dj == (size_t)-1)
					continue;
				for (size_t q = first[dj]; q < first[dj] + count[dj]; q++) {
					int dup = 0;
					for (size_t e = 0; e < nd->ndeps; e++)
						dup |= nd->deps[e] == q;
					if (!dup)
						nd->deps[nd->ndeps++] = q;
				}
			}
		}
	}
	size_t *ucap = rn_xcalloc(g->n + 1, sizeof(*ucap));
	for (size_t i = 0; i < g->n; i++) {
		for (size_t e = 0; e < g->nodes[i].ndeps; e++) {
			rn_gnode *dep = &g->nodes[g->nodes[i].deps[e]];
			rn_grow(&dep->users, &ucap[g->nodes[i].deps[e]], dep->nusers + 1, sizeof(*dep->users));
			dep->users[dep->nusers++] = i;
		}
	}
	free(ucap);
	free(first);
	free(count);
	for (size_t i = 0; i < g->n; i++) {
		g->nodes[i].selected = 1;
		g->nodes[i].pending = g->nodes[i].ndeps;
	}
	return d->errors > errors ? RN_EINVALID : 0;
}

int rn_graph_select_one(rn_graph *g, const char *name)
{
	size_t found = g->n;
	for (size_t i = 0; i < g->n && found == g->n; i++)
		if (strcmp(g->nodes[i].name, name) == 0)
			found = i;
	if (found == g->n) {
		rn_error_set("no job instance named '%s'", name);
		return RN_ENOTFOUND;
	}
	for (size_t i = 0; i < g->n; i++) {
		g->nodes[i].selected = i == found;
		g->nodes[i].pending = 0;
	}
	return 0;
}

int rn_graph_select(rn_graph *g, const char *const *ids, size_t nids)
{
	if (nids == 0)
		return 0;
	for (size_t i = 0; i < g->n; i++)
		g->nodes[i].selected = 0;
	size_t *stack = rn_xcalloc(g->n + 1, sizeof(*stack)), sp = 0;
	for (size_t k = 0; k < nids; k++) {
		int found = 0;
		for (size_t i = 0; i < g->n; i++) {
			if (strcmp(g->nodes[i].job->id, ids[k]) && strcmp(g->nodes[i].name, ids[k]))
				continue;
			found = 1;
			if (!g->nodes[i].selected) {
				g->nodes[i].selected = 1;
				stack[sp++] = i;
			}
		}
		if (!found) {
			free(stack);
			rn_error_set("no job named '%s'", ids[k]);
			return RN_ENOTFOUND;
		}
	}
	while (sp) {
		rn_gnode *nd = &g->nodes[stack[--sp]];
		for (size_t e = 0; e < nd->ndeps; e++) {
			if (!g->nodes[nd->deps[e]].selected) {
				g->nodes[nd->deps[e]].selected = 1;
				stack[sp++] = nd->deps[e];
			}
		}
	}
	free(stack);
	for (size_t i = 0; i < g->n; i++) {
		g->nodes[i].pending = 0;
		for (size_t e = 0; e < g->nodes[i].ndeps; e++)
			g->nodes[i].pending += g->nodes[g->nodes[i].deps[e]].selected;
	}
	return 0;
}

size_t *rn_graph_order(const rn_graph *g, size_t *n)
{
	/* Kahn's algorithm over the selected nodes, stable in workflow order. */
	size_t *pending = rn_xcalloc(g->n + 1, sizeof(*pending));
	size_t *order = rn_xcalloc(g->n + 1, sizeof(*order));
	size_t head = 0, tail = 0;
	for (size_t i = 0; i < g->n; i++) {
		if (!g->nodes[i].selected)
			continue;
		for (size_t e = 0; e < g->nodes[i].ndeps; e++)
			pending[i] += g->nodes[g->nodes[i].deps[e]].selected;
		if (!pending[i])
			order[tail++] = i;
	}
	while (head < tail) {
		const rn_gnode *nd = &g->nodes[order[head++]];
		for (size_t u = 0; u < nd->nusers; u++) {
			size_t w = nd->users[u];
			if (g->nodes[w].selected && --pending[w] == 0)
				order[tail++] = w;
		}
	}
	free(pending);
	*n = tail;
	return order;
}

static void print_quoted(FILE *out, const char *s, int mermaid)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputs(mermaid ? "#quot;" : "\\\"", out);
		else if (*s == '\\' && !mermaid)
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs(mermaid ? " " : "\\n", out);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static const char *step_label(const rn_step *s)
{
	return s->name ? s->name : s->kind;
}

int rn_graph_print(const rn_graph *g, rn_graph_format fmt, FILE *out)
{
	size_t n;
	size_t *order = rn_graph_order(g, &n);
	if (fmt == RN_GRAPH_DOT) {
		fputs("digraph pipeline {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", out);
		for (size_t k = 0; k < n; k++) {
			const rn_gnode *nd = &g->nodes[order[k]];
			fprintf(out, "  n%zu [label=", order[k]);
			rn_buf label = RN_BUF_INIT(1024 * 1024);
			rn_buf_puts(&label, nd->name);
			for (size_t s = 0; s < nd->job->nsteps; s++)
				rn_buf_printf(&label, "\n%zu. %s", s + 1, step_label(&nd->job->steps[s]));
			print_quoted(out, rn_buf_cstr(&label), 0);
			rn_buf_free(&label);
			fputs("];\n", out);
		}
		for (size_t k = 0; k < n; k++) {
			const rn_gnode *nd = &g->nodes[order[k]];
			for (size_t e = 0; e < nd->ndeps; e++)
				if (g->nodes[nd->deps[e]].selected)
					fprintf(out, "  n%zu -> n%zu;\n", nd->deps[e], order[k]);
		}
		fputs("}\n", out);
	} else if (fmt == RN_GRAPH_MERMAID) {
		fputs("flowchart LR\n", out);
		for (size_t k = 0; k < n; k++) {
			fprintf(out, "  n%zu[", order[k]);
			print_quoted(out, g->nodes[order[k]].name, 1);
			fputs("]\n", out);
		}
		for (size_t k = 0; k < n; k++) {
			const rn_gnode *nd = &g->nodes[order[k]];
			for (size_t e = 0; e < nd->ndeps; e++)
				if (g->nodes[nd->deps[e]].selected)
					fprintf(out, "  n%zu --> n%zu\n", nd->deps[e], order[k]);
		}
	} else {
		for (size_t k = 0; k < n; k++) {
			const rn_gnode *nd = &g->nodes[order[k]];
			fprintf(out, "%s\n", nd->name);
			int any = 0;
			for (size_t e = 0; e < nd->ndeps; e++) {
				if (!g->nodes[nd->deps[e]].selected)
					continue;
				fprintf(out, "%s%s", any ? ", " : "  needs: ", g->nodes[nd->deps[e]].name);
				any = 1;
			}
			if (any)
				fputc('\n', out);
			for (size_t s = 0; s < nd->job->nsteps; s++) {
				const rn_step *st = &nd->job->steps[s];
				fprintf(out, "  %zu. [%s] %s\n", s + 1, st->kind, step_label(st));
			}
		}
	}
	free(order);
	return ferror(out) ? rn_error_set("write error"), RN_EIO : 0;
}

void rn_graph_free(rn_graph *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->nodes[i].name);
		json_decref(g->nodes[i].matrix);
		free(g->nodes[i].deps);
		free(g->nodes[i].users);
	}
	free(g->nodes);
	memset(g, 0, sizeof(*g));
}
