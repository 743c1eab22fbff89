/* test_yamldoc.c - the YAML front end: positions, anchors, merge keys, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "yamldoc.h"

#include <stdlib.h>
#include <string.h>

typedef struct fixture {
	rn_arena arena;
	rn_diags d;
	rn_node *root;
	int rc;
} fixture;

static void load(fixture *f, const char *text)
{
	memset(f, 0, sizeof(*f));
	f->d.file = "t.yml";
	f->rc = rn_yaml_load(&f->root, text, strlen(text), &f->arena, &f->d);
}

static void done(fixture *f)
{
	rn_diags_free(&f->d);
	rn_arena_free(&f->arena);
}

static void positions(void **state)
{
	fixture f;
	(void)state;
	load(&f, "a: 1\nb:\n  - x\n  - 'y'\n");
	assert_int_equal(f.rc, 0);
	assert_int_equal(f.root->kind, RN_NODE_MAP);
	const rn_node *b = rn_node_get(f.root, "b");
	assert_non_null(b);
	assert_int_equal(b->kind, RN_NODE_SEQ);
	assert_int_equal(b->n, 2);
	assert_int_equal(b->items[1]->line, 4);
	assert_int_equal(b->items[1]->col, 5);
	assert_int_equal(b->items[1]->style, RN_SCALAR_QUOTED);
	assert_int_equal(rn_node_key(f.root, "b")->line, 2);
	assert_int_equal(rn_node_key(f.root, "b")->col, 1);
	done(&f);
}

static void anchors_and_merge(void **state)
{
	fixture f;
	(void)state;
	load(&f, "base: &base {x: 1, y: 2}\nother: &other {z: 3}\nuse:\n  <<: [*base, *other]\n  y: 9\nref: *base\n");
	assert_int_equal(f.rc, 0);
	const rn_node *use = rn_node_get(f.root, "use");
	assert_int_equal(use->n, 3);
	assert_string_equal(rn_node_get(use, "y")->str, "9");
	assert_string_equal(rn_node_get(use, "x")->str, "1");
	assert_string_equal(rn_node_get(use, "z")->str, "3");
	assert_ptr_equal(rn_node_get(f.root, "ref"), rn_node_get(f.root, "base"));
	done(&f);
}

static void duplicates_reported_all(void **state)
{
	fixture f;
	(void)state;
	load(&f, "a: 1\nb: 2\na: 3\nb: 4\n");
	assert_int_equal(f.rc, RN_EINVALID);
	assert_int_equal(f.d.errors, 2);
	assert_int_equal(f.d.v[0].line, 3);
	assert_non_null(strstr(f.d.v[0].msg, "duplicate key 'a' (first at line 1)"));
	done(&f);
}

static void alias_bomb_refused(void **state)
{
	fixture f;
	(void)state;
	load(&f, "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		 "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		 "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
		 "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n");
	assert_int_equal(f.rc, RN_EINVALID);
	assert_non_null(strstr(f.d.v[0].msg, "alias bomb"));
	done(&f);
}

static void errors(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
		int line;
	} rows[] = {
		{ "", "empty", 1 },
		{ "a: \"x\n", "found unexpected end of stream", 2 },
		{ "a: *nope\n", "unknown alias '*nope'", 1 },
		{ "a: 1\n---\nb: 2\n", "one YAML document", 2 },
		{ "? [a]\n: 1\n", "mapping keys must be plain strings", 1 },
		{ "a: \xff\n", "UTF-8", 1 },
		{ "a: \"x\\0y\"\n", "NUL", 1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		fixture f;
		load(&f, rows[i].text);
		assert_int_equal(f.rc, RN_EINVALID);
		assert_null(f.root);
		assert_true(f.d.n >= 1);
		if (!strstr(f.d.v[0].msg, rows[i].msg) || f.d.v[0].line != rows[i].line)
			fail_msg("row %zu: got %d: %s", i, f.d.v[0].line, f.d.v[0].msg);
		done(&f);
	}
}

static void deep_nesting_refused(void **state)
{
	fixture f;
	char *text = malloc(100003);
	(void)state;
	memset(text, '[', 50000);
	memset(text + 50000, ']', 50000);
	text[100000] = '\0';
	load(&f, text);
	assert_int_equal(f.rc, RN_EINVALID);
	assert_non_null(strstr(f.d.v[0].msg, "nesting deeper"));
	done(&f);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(positions),
		cmocka_unit_test(anchors_and_merge),
		cmocka_unit_test(duplicates_reported_all),
		cmocka_unit_test(alias_bomb_refused),
		cmocka_unit_test(errors),
		cmocka_unit_test(deep_nesting_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
