/* test_graph.c - matrix expansion, dependency counters, selection, order and printing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "context.h"
#include "error.h"
#include "graph.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gfix {
	rn_pipeline *p;
	rn_graph g;
} gfix;

static void build(gfix *f, const char *text)
{
	rn_diags d = RN_DIAGS_INIT("t.yml");
	assert_int_equal(rn_workflow_parse(&f->p, "t.yml", text, strlen(text), &d), 0);
	int rc = rn_graph_build(&f->g, f->p, &d);
	if (rc)
		rn_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	rn_diags_free(&d);
}

static void done(gfix *f)
{
	rn_graph_free(&f->g);
	rn_pipeline_free(f->p);
}

static const rn_gnode *node(const rn_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->nodes[i].name, name) == 0)
			return &g->nodes[i];
	fail_msg("no node '%s'", name);
	return NULL;
}

static void matrix_rules(void **state)
{
	gfix f;
	(void)state;
	build(&f, "jobs:\n  b:\n    matrix:\n      os: [linux, mac]\n      cc: [gcc, clang]\n"
		  "      exclude: [{os: mac, cc: gcc}]\n"
		  "      include: [{os: linux, cc: gcc, extra: yes}, {os: bsd, cc: tcc}]\n"
		  "    steps:\n      - run: echo\n");
	assert_int_equal(f.g.n, 4);
	assert_string_equal(f.g.nodes[0].name, "b (linux, gcc, yes)");
	assert_string_equal(f.g.nodes[1].name, "b (linux, clang)");
	assert_string_equal(f.g.nodes[2].name, "b (mac, clang)");
	assert_string_equal(f.g.nodes[3].name, "b (bsd, tcc)");
	assert_string_equal(json_string_value(json_object_get(f.g.nodes[0].matrix, "extra")), "yes");
	assert_int_equal(f.g.nodes[2].group, 0);
	assert_int_equal(f.g.nodes[2].ninstances, 4);
	done(&f);
}

static void matrix_value_types(void **state)
{
	gfix f;
	(void)state;
	build(&f, "jobs:\n  b:\n    matrix:\n      n: [1, 2.5, true, 'x']\n    steps:\n      - run: echo\n");
	assert_int_equal(f.g.n, 4);
	assert_true(json_is_integer(json_object_get(f.g.nodes[0].matrix, "n")));
	assert_true(json_is_real(json_object_get(f.g.nodes[1].matrix, "n")));
	assert_true(json_is_true(json_object_get(f.g.nodes[2].matrix, "n")));
	assert_true(json_is_string(json_object_get(f.g.nodes[3].matrix, "n")));
	assert_string_equal(f.g.nodes[0].name, "b (1)");
	done(&f);
}

static const char dag[] = "jobs:\n"
			  "  lint:\n    steps:\n      - run: echo\n"
			  "  build:\n    needs: lint\n    matrix:\n      cc: [gcc, clang]\n    steps:\n      - run: echo\n"
			  "  test:\n    needs: [build]\n    steps:\n      - run: echo\n"
			  "  docs:\n    steps:\n      - run: echo\n";

static void counters_and_edges(void **state)
{
	gfix f;
	(void)state;
	build(&f, dag);
	assert_int_equal(f.g.n, 5);
	const rn_gnode *test = node(&f.g, "test");
	assert_int_equal(test->ndeps, 2); /* both instances of build */
	assert_int_equal(test->pending, 2);
	assert_int_equal(node(&f.g, "lint")->nusers, 2);
	assert_int_equal(node(&f.g, "build (gcc)")->pending, 1);
	assert_int_equal(node(&f.g, "docs")->pending, 0);
	size_t n;
	size_t *order = rn_graph_order(&f.g, &n);
	assert_int_equal(n, 5);
	size_t pos[5];
	for (size_t i = 0; i < n; i++)
		pos[order[i]] = i;
	assert_true(pos[0] < pos[1] && pos[0] < pos[2] && pos[1] < pos[3] && pos[2] < pos[3]);
	free(order);
	done(&f);
}

static void select_closure(void **state)
{
	gfix f;
	(void)state;
	build(&f, dag);
	const char *ids[] = { "test" };
	assert_int_equal(rn_graph_select(&f.g, ids, 1), 0);
	assert_true(node(&f.g, "lint")->selected);
	assert_true(node(&f.g, "build (clang)")->selected);
	assert_false(node(&f.g, "docs")->selected);
	const char *one[] = { "build (gcc)" };
	assert_int_equal(rn_graph_select(&f.g, one, 1), 0);
	assert_true(node(&f.g, "build (gcc)")->selected);
	assert_false(node(&f.g, "build (clang)")->selected);
	assert_false(node(&f.g, "test")->selected);
	const char *bad[] = { "nope" };
	assert_int_equal(rn_graph_select(&f.g, bad, 1), RN_ENOTFOUND);
	done(&f);
}

static char *print(const rn_graph *g, rn_graph_format fmt)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);
	assert_int_equal(rn_graph_print(g, fmt, fp), 0);
	fclose(fp);
	return out;
}

/* An agent runs one instance: nothing it needs is selected, and it is ready at once. */
static void select_one_instance(void **state)
{
	(void)state;
	gfix f;
	build(&f, "jobs:\n  a: {steps: [{run: x}]}\n  b:\n    needs: a\n    matrix: {cc: [gcc, clang]}\n"
		  "    steps: [{run: x}]\n  c: {needs: b, steps: [{run: x}]}\n");
	assert_int_equal(rn_graph_select_one(&f.g, "b (clang)"), 0);
	size_t nsel = 0;
	for (size_t i = 0; i < f.g.n; i++) {
		nsel += f.g.nodes[i].selected;
		assert_int_equal(f.g.nodes[i].pending, 0);
	}
	assert_int_equal(nsel, 1);
	assert_true(node(&f.g, "b (clang)")->selected);
	assert_false(node(&f.g, "a")->selected);
	assert_int_equal(rn_graph_select_one(&f.g, "b"), RN_ENOTFOUND); /* a job id with a matrix is no instance */
	assert_int_equal(rn_graph_select_one(&f.g, "nope"), RN_ENOTFOUND);
	done(&f);
}

/* The shared job decision of the engine and the server: `if:` against the needs' results. */
static void decide_and_record(void **state)
{
	(void)state;
	gfix f;
	build(&f, "env: {X: '1'}\njobs:\n  a: {steps: [{run: x}]}\n  b: {needs: a, steps: [{run: x}]}\n"
		  "  c: {needs: a, if: \"failure() && env.X == '1'\", steps: [{run: x}]}\n"
		  "  d: {needs: a, if: \"needs.a.outputs.v == 'y'\", steps: [{run: x}]}\n");
	json_t *needs = json_object();
	json_t *out = json_pack("{s:s}", "v", "y");
	rn_context_needs_record(needs, "a", RN_ST_SUCCESS, out);
	rn_context_needs_record(needs, "a", RN_ST_FAILURE, NULL); /* a matrix sibling failed: the worse wins */
	assert_string_equal(json_string_value(json_object_get(json_object_get(needs, "a"), "result")), "failure");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(needs, "a"), "outputs"), "v")), "y");
	int run = -1;
	const char *why = NULL;
	assert_int_equal(rn_context_job_decide(&run, &why, f.p, node(&f.g, "b"), needs, 1, NULL, NULL, "1", NULL), 0);
	assert_int_equal(run, 0);
	assert_string_equal(why, "a needed job did not succeed");
	assert_int_equal(rn_context_job_decide(&run, &why, f.p, node(&f.g, "c"), needs, 1, NULL, NULL, "1", NULL), 0);
	assert_int_equal(run, 1);
	assert_int_equal(rn_context_job_decide(&run, &why, f.p, node(&f.g, "c"), needs, 0, NULL, NULL, "1", NULL), 0);
	assert_int_equal(run, 0);
	assert_string_equal(why, "condition is false");
	assert_int_equal(rn_context_job_decide(&run, &why, f.p, node(&f.g, "d"), needs, 0, NULL, NULL, "1", NULL), 0);
	assert_int_equal(run, 1);
	assert_int_equal(rn_status_parse("timed out"), RN_ST_TIMED_OUT);
	assert_int_equal(rn_status_parse("bogus"), RN_ST_PENDING);
	json_decref(out);
	json_decref(needs);
	done(&f);
}

static void printers(void **state)
{
	gfix f;
	(void)state;
	build(&f, dag);
	char *t = print(&f.g, RN_GRAPH_TEXT);
	assert_non_null(strstr(t, "test\n  needs: build (gcc), build (clang)\n  1. [run] echo\n"));
	free(t);
	char *d = print(&f.g, RN_GRAPH_DOT);
	assert_true(strncmp(d, "digraph pipeline {", 18) == 0);
	assert_non_null(strstr(d, "n0 -> n1;"));
	free(d);
	char *m = print(&f.g, RN_GRAPH_MERMAID);
	assert_non_null(strstr(m, "n1 --> n3"));
	free(m);
	done(&f);
}

static void wide_graph_is_fast(void **state)
{
	/* 3,000 jobs, each needing the previous three: building and ordering stays linear-ish */
	size_t cap = 3000 * 96;
	char *text = malloc(cap), *p = text;
	(void)state;
	p += sprintf(p, "jobs:\n");
	for (int i = 0; i < 3000; i++) {
		p += sprintf(p, "  j%d:\n", i);
		if (i >= 3)
			p += sprintf(p, "    needs: [j%d, j%d, j%d]\n", i - 1, i - 2, i - 3);
		p += sprintf(p, "    steps:\n      - run: echo\n");
	}
	gfix f;
	build(&f, text);
	assert_int_equal(f.g.n, 3000);
	assert_int_equal(f.g.nodes[2999].pending, 3);
	done(&f);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(matrix_rules),
		cmocka_unit_test(matrix_value_types),
		cmocka_unit_test(counters_and_edges),
		cmocka_unit_test(select_closure),
		cmocka_unit_test(select_one_instance),
		cmocka_unit_test(decide_and_record),
		cmocka_unit_test(printers),
		cmocka_unit_test(wide_graph_is_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
