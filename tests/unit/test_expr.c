/* test_expr.c - unit tests of the ${{ }} expression language (runner/expr.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "expr.h"
#include "util.h"

static const char ctx_json[] =
	"{"
	" \"env\": {\"NAME\": \"world\", \"EMPTY\": \"\", \"NUM\": \"42\"},"
	" \"matrix\": {\"os\": \"Linux\", \"node\": 18, \"list\": [1, 2, 3], \"flt\": 1.5},"
	" \"steps\": {"
	"   \"build\": {\"outcome\": \"success\", \"outputs\": {\"x\": \"1\"}},"
	"   \"my-step\": {\"outcome\": \"failure\", \"outputs\": {\"x\": \"2\"}},"
	"   \"skip\": {\"outcome\": \"skipped\", \"outputs\": {}}"
	" },"
	" \"github\": {\"event_name\": \"push\", \"ref\": \"refs/heads/main\","
	"   \"event\": {\"commits\": [{\"message\": \"fix a\", \"id\": 1}, {\"message\": \"b\", \"id\": 2},"
	"                            {\"id\": 3}],"
	"             \"labels\": [{\"name\": \"bug\"}, {\"name\": \"Feature\"}]}},"
	" \"nested\": [[1, 2], [3], {\"a\": 4}, 5],"
	" \"obj\": {\"a\": 1, \"b\": [1, 2], \"c\": {\"d\": null}},"
	" \"empty_arr\": [],"
	" \"empty_obj\": {}"
	"}";

static json_t *g_ctx;
static rn_expr_env g_env;

static int setup(void **state)
{
	json_error_t je;
	g_ctx = json_loads(ctx_json, 0, &je);
	if (!g_ctx) {
		fprintf(stderr, "bad test context: %s (line %d)\n", je.text, je.line);
		return -1;
	}
	g_env = (rn_expr_env){ g_ctx, 0, 0, NULL };
	return 0;
}

static int teardown(void **state)
{
	json_decref(g_ctx);
	return 0;
}

/* Parse and evaluate src against env; the result as compact JSON (caller frees), or NULL. */
static char *eval_json(const char *src, const rn_expr_env *env)
{
	rn_expr *e = NULL;
	size_t off = 0;
	if (rn_expr_parse(&e, src, strlen(src), &off) != 0) {
		print_error("parse of \"%s\" failed at %zu: %s\n", src, off, rn_error_last());
		return NULL;
	}
	json_t *v = rn_expr_eval(e, env);
	rn_expr_free(e);
	if (!v) {
		print_error("eval of \"%s\" failed: %s\n", src, rn_error_last());
		return NULL;
	}
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(v);
	return s;
}

/* Parse and evaluate; the result as rn_expr_to_string text (caller frees), or NULL. */
static char *eval_text(const char *src, const rn_expr_env *env)
{
	rn_expr *e = NULL;
	size_t off = 0;
	if (rn_expr_parse(&e, src, strlen(src), &off) != 0) {
		print_error("parse of \"%s\" failed at %zu: %s\n", src, off, rn_error_last());
		return NULL;
	}
	json_t *v = rn_expr_eval(e, env);
	rn_expr_free(e);
	if (!v) {
		print_error("eval of \"%s\" failed: %s\n", src, rn_error_last());
		return NULL;
	}
	char *s = rn_expr_to_string(v);
	json_decref(v);
	return s;
}

/* Parses, but evaluation fails; returns the message (static storage). */
static const char *eval_error(const char *src, const rn_expr_env *env)
{
	rn_expr *e = NULL;
	size_t off = 0;
	assert_int_equal(rn_expr_parse(&e, src, strlen(src), &off), 0);
	json_t *v = rn_expr_eval(e, env);
	rn_expr_free(e);
	if (v) {
		char *s = rn_expr_to_string(v);
		print_error("eval of \"%s\" unexpectedly gave '%s'\n", src, s ? s : "(null)");
		free(s);
		json_decref(v);
		return NULL;
	}
	return rn_error_last();
}

struct row {
	const char *src;
	const char *want; /* compact JSON of the result */
};

static void run_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *got = eval_json(rows[i].src, &g_env);
		if (!got || strcmp(got, rows[i].want) != 0)
			print_error("row %zu: %s\n  want %s\n  got  %s\n", i, rows[i].src, rows[i].want,
				    got ? got : "(error)");
		assert_non_null(got);
		assert_string_equal(got, rows[i].want);
		free(got);
	}
}

static void test_literals(void **state)
{
	static const struct row rows[] = {
		{ "1", "1" },
		{ "1.5", "1.5" },
		{ "0x1F", "31" },
		{ "0XfF", "255" },
		{ "1e3", "1000" },
		{ "2.5E-1", "0.25" },
		{ "-2", "-2" },
		{ "-0.5", "-0.5" },
		{ "  42  ", "42" },
		{ "'abc'", "\"abc\"" },
		{ "'it''s'", "\"it's\"" },
		{ "''''", "\"'\"" },
		{ "''", "\"\"" },
		{ "'caf\xc3\xa9'", "\"caf\xc3\xa9\"" },
		{ "true", "true" },
		{ "false", "false" },
		{ "null", "null" },
		{ "(('x'))", "\"x\"" },
	};
	run_rows(rows, RN_ARRAY_LEN(rows));
}

static void test_operators(void **state)
{
	static const struct row rows[] = {
		/* ! */
		{ "!true", "false" },
		{ "!false", "true" },
		{ "!0", "true" },
		{ "!1", "false" },
		{ "!''", "true" },
		{ "!'a'", "false" },
		{ "!null", "true" },
		{ "!!'x'", "true" },
		{ "!obj", "false" },
		{ "!empty_arr", "false" },
		/* comparisons */
		{ "1 < 2", "true" },
		{ "2 < 1", "false" },
		{ "2 <= 2", "true" },
		{ "3 <= 2", "false" },
		{ "3 > 2", "true" },
		{ "2 > 2", "false" },
		{ "2 >= 2", "true" },
		{ "2 >= 3", "false" },
		{ "'a' < 'B'", "true" },
		{ "'b' > 'A'", "true" },
		{ "'abc' <= 'ABC'", "true" },
		{ "'2' > '10'", "true" },
		{ "'a' < '_'", "true" }, /* ordinal, upper-cased: 'A' < '_' */
		{ "'Z' < 'a'", "false" },
		{ "2 > '10'", "false" },
		{ "1 < 'abc'", "false" },
		{ "1 >= 'abc'", "false" },
		{ "null < 1", "true" },
		{ "null <= null", "true" },
		{ "null < null", "false" },
		{ "true > false", "true" },
		{ "obj < obj", "false" },
		{ "matrix.flt > 1", "true" },
		/* equality and coercion */
		{ "1 == 1", "true" },
		{ "1 == 2", "false" },
		{ "1 != 2", "true" },
		{ "1 == 1.0", "true" },
		{ "1 == '1'", "true" },
		{ "'1' == 1", "true" },
		{ "null == 0", "true" },
		{ "null == ''", "true" },
		{ "null == null", "true" },
		{ "null == false", "true" },
		{ "true == 1", "true" },
		{ "true == 2", "false" },
		{ "true == 'true'", "false" },
		{ "false == ''", "true" },
		{ "false == '0'", "true" },
		{ "'abc' == 'ABC'", "true" },
		{ "'abc' != 'ABC'", "false" },
		{ "'abc' != 'abd'", "true" },
		{ "'abc' == 0", "false" },
		{ "'abc' != 0", "true" },
		{ "'0x10' == 16", "true" },
		{ "' 42 ' == 42", "true" },
		{ "'1e2' == 100", "true" },
		{ "'' == 0", "true" },
		{ "env.NUM == 42", "true" },
		{ "matrix.node == '18'", "true" },
		{ "obj == obj", "true" },
		{ "obj.b == obj.b", "true" },
		{ "obj == fromJSON('{\"a\":1,\"b\":[1,2],\"c\":{\"d\":null}}')", "false" },
		{ "empty_arr == 0", "false" },
		{ "empty_arr == ''", "false" },
		{ "empty_arr != empty_obj", "true" },
		/* && and || return an operand */
		{ "true && false", "false" },
		{ "1 == 1 && 2 == 2", "true" },
		{ "'a' && 'b'", "\"b\"" },
		{ "0 && 'x'", "0" },
		{ "'' && 'x'", "\"\"" },
		{ "false || 'x'", "\"x\"" },
		{ "'' || null", "null" },
		{ "null || 0 || 'z'", "\"z\"" },
		{ "'a' || missing.thing", "\"a\"" },
		{ "env.EMPTY || 'default'", "\"default\"" },
		{ "matrix.list && 'yes'", "\"yes\"" },
		{ "1 == 2 || 3", "3" },
		/* short-circuit: the failing right side is never evaluated */
		{ "false && fromJSON('bad')", "false" },
		{ "true || fromJSON('bad')", "true" },
		{ "1 && 0 && fromJSON('bad')", "0" },
		/* precedence: () [] . > ! > < <= > >= > == != > && > || */
		{ "true || false && false", "true" },
		{ "(true || false) && false", "false" },
		{ "false && true || true", "true" },
		{ "false && (true || true)", "false" },
		{ "!'' == 'x'", "false" },
		{ "!('' == 'x')", "true" },
		{ "1 < 2 == true", "true" },
		{ "1 < (2 == true)", "false" },
		{ "2 > 1 != 3 > 4", "true" },
		{ "1 == 1 && 1 != 2 || false", "true" },
		{ "!matrix.list[0]", "false" },
		{ "! fromJSON('[0]')[0]", "true" },
	};
	run_rows(rows, RN_ARRAY_LEN(rows));
}

static void test_properties(void **state)
{
	static const struct row rows[] = {
		{ "env.NAME", "\"world\"" },
		{ "env.name", "\"world\"" },
		{ "ENV.Name", "\"world\"" },
		{ "env['NAME']", "\"world\"" },
		{ "env[format('NA{0}', 'ME')]", "\"world\"" },
		{ "steps.my-step.outputs.x", "\"2\"" },
		{ "steps['my-step'].outcome", "\"failure\"" },
		{ "steps.build.outputs['x']", "\"1\"" },
		{ "matrix.list[0]", "1" },
		{ "matrix.list[2]", "3" },
		{ "matrix.list[3]", "null" },
		{ "matrix.list[-1]", "null" },
		{ "matrix.list['1']", "2" },
		{ "matrix.list[1.7]", "2" },
		{ "matrix.list[null]", "null" },
		{ "matrix.missing", "null" },
		{ "matrix.missing.deeper[0]", "null" },
		{ "nope", "null" },
		{ "nope.x.y", "null" },
		{ "env.NAME.length", "null" },
		{ "obj.c.d", "null" },
		{ "obj.b[1]", "2" },
		{ "(matrix).os", "\"Linux\"" },
		{ "fromJSON('{\"a\":[10,20]}').a[1]", "20" },
		{ "fromJSON('{\"a\":[10,20]}')['A'][0]", "10" },
		{ "matrix.true", "null" },
		/* filters */
		{ "steps.*.outcome", "[\"success\",\"failure\",\"skipped\"]" },
		{ "steps.*.outputs.x", "[\"1\",\"2\"]" },
		{ "steps[*].outcome", "[\"success\",\"failure\",\"skipped\"]" },
		{ "github.event.commits.*.message", "[\"fix a\",\"b\"]" },
		{ "github.event.commits.*.id", "[1,2,3]" },
		{ "github.event.labels.*.name", "[\"bug\",\"Feature\"]" },
		{ "nested.*", "[[1,2],[3],{\"a\":4},5]" },
		{ "nested.*.*", "[1,2,3,4]" },
		{ "nested.*[0]", "[1,3]" },
		{ "nested.*.a", "[4]" },
		{ "obj.*", "[1,[1,2],{\"d\":null}]" },
		{ "obj.*.d", "[null]" },
		{ "steps.*.outcome[0]", "[]" },
		{ "empty_obj.*", "[]" },
		{ "matrix.node.*", "null" },
		{ "missing.*.x", "null" },
		{ "matrix.*", "[\"Linux\",18,[1,2,3],1.5]" },
	};
	run_rows(rows, RN_ARRAY_LEN(rows));
}

static void test_functions(void **state)
{
	static const struct row rows[] = {
		{ "contains('Hello World', 'WORLD')", "true" },
		{ "contains('abc', 'd')", "false" },
		{ "contains('abc', '')", "true" },
		{ "contains(123, 2)", "true" },
		{ "contains(true, 'ru')", "true" },
		{ "contains(null, '')", "true" },
		{ "contains(matrix.list, 2)", "true" },
		{ "contains(matrix.list, '2')", "true" },
		{ "contains(matrix.list, 4)", "false" },
		{ "contains(steps.*.outcome, 'FAILURE')", "true" },
		{ "contains(github.event.labels.*.name, 'feature')", "true" },
		{ "contains(obj, 'a')", "false" },
		{ "contains('[1]', matrix.list)", "false" },
		{ "contains(fromJSON('[\"push\", \"pull_request\"]'), github.event_name)", "true" },
		{ "CONTAINS('abc', 'B')", "true" },
		{ "contains('xXyYzZ', 'YyZ')", "true" },
		{ "contains('ab', 'abc')", "false" },
		{ "startsWith('Hello', 'he')", "true" },
		{ "startsWith('Hello', 'lo')", "false" },
		{ "startsWith('a', 'ab')", "false" },
		{ "startsWith(github.ref, 'refs/heads/')", "true" },
		{ "startswith(123, 12)", "true" },
		{ "endsWith('Hello', 'LO')", "true" },
		{ "endsWith('Hello', 'he')", "false" },
		{ "endsWith(github.ref, '/main')", "true" },
		{ "endsWith(matrix.list, '3')", "false" },
		{ "format('{0} {1}', 'a', 1.5)", "\"a 1.5\"" },
		{ "format('Hello {0}!', env.NAME)", "\"Hello world!\"" },
		{ "format('{{0}} {0}', 'x')", "\"{0} x\"" },
		{ "format('}}{{')", "\"}{\"" },
		{ "format('{{{0}}}', 'x')", "\"{x}\"" },
		{ "format('{1}{0}{1}', 'a', 'b')", "\"bab\"" },
		{ "format('{0}', null)", "\"\"" },
		{ "format('{0}', true)", "\"true\"" },
		{ "format('{0}', matrix.list)", "\"[1,2,3]\"" },
		{ "format('{0}|{1}', 1e21, -0)", "\"1e+21|0\"" },
		{ "format('plain')", "\"plain\"" },
		{ "FORMAT('{0}', 3)", "\"3\"" },
		{ "join(matrix.list)", "\"1,2,3\"" },
		{ "join(matrix.list, ' | ')", "\"1 | 2 | 3\"" },
		{ "join(steps.*.outcome, '-')", "\"success-failure-skipped\"" },
		{ "join('abc')", "\"abc\"" },
		{ "join(5, '-')", "\"5\"" },
		{ "join(empty_arr)", "\"\"" },
		{ "join(fromJSON('[\"a\", null, true]'), '')", "\"atrue\"" },
		{ "toJSON('a')", "\"\\\"a\\\"\"" },
		{ "toJSON(null)", "\"null\"" },
		{ "toJSON(1.5)", "\"1.5\"" },
		{ "toJSON(empty_obj)", "\"{}\"" },
		{ "toJSON(empty_arr)", "\"[]\"" },
		{ "toJSON(matrix.list)", "\"[\\n  1,\\n  2,\\n  3\\n]\"" },
		{ "fromJSON('[1,2]')[1]", "2" },
		{ "fromJSON('true')", "true" },
		{ "fromJSON('null')", "null" },
		{ "fromJSON('\"s\"')", "\"s\"" },
		{ "fromJSON(' {\"a\": {\"b\": 3}} ').a.b", "3" },
		{ "fromJSON(toJSON(matrix)).list[2]", "3" },
		{ "fromJSON(env.NUM)", "42" },
		{ "success()", "true" },
		{ "failure()", "false" },
		{ "cancelled()", "false" },
		{ "always()", "true" },
		{ "Success()", "true" },
	};
	run_rows(rows, RN_ARRAY_LEN(rows));

	/* toJSON() text: pretty, two-space indent, JSON string escapes */
	static const struct row text[] = {
		{ "toJSON(fromJSON('{\"a\":{\"b\":[true]},\"c\":\"x\\ny\",\"d\":{},\"e\":1.0}'))",
		  "{\n  \"a\": {\n    \"b\": [\n      true\n    ]\n  },\n  \"c\": \"x\\ny\",\n"
		  "  \"d\": {},\n  \"e\": 1\n}" },
		{ "toJSON(steps.*.outcome)", "[\n  \"success\",\n  \"failure\",\n  \"skipped\"\n]" },
		{ "toJSON('tab\tquote''')", "\"tab\\tquote'\"" },
		{ "toJSON(0.1)", "0.1" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(text); i++) {
		char *got = eval_text(text[i].src, &g_env);
		assert_non_null(got);
		if (strcmp(got, text[i].want) != 0)
			print_error("text row %zu: want\n%s\ngot\n%s\n", i, text[i].want, got);
		assert_string_equal(got, text[i].want);
		free(got);
	}
}

static void test_status_functions(void **state)
{
	static const struct {
		int failed, cancelled;
		const char *success, *failure, *cancelled_s, *always;
	} rows[] = {
		{ 0, 0, "true", "false", "false", "true" },
		{ 1, 0, "false", "true", "false", "true" },
		{ 0, 1, "false", "false", "true", "true" },
		{ 1, 1, "false", "true", "true", "true" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		rn_expr_env env = { g_ctx, rows[i].failed, rows[i].cancelled, NULL };
		const char *srcs[] = { "success()", "failure()", "cancelled()", "always()" };
		const char *want[] = { rows[i].success, rows[i].failure, rows[i].cancelled_s,
				       rows[i].always };
		for (size_t k = 0; k < 4; k++) {
			char *got = eval_json(srcs[k], &env);
			assert_non_null(got);
			assert_string_equal(got, want[k]);
			free(got);
		}
	}
	/* no env at all: no contexts, nothing failed */
	char *got = eval_json("success() && env.NAME == null", NULL);
	assert_non_null(got);
	assert_string_equal(got, "true");
	free(got);
}

static void test_eval_errors(void **state)
{
	static const struct {
		const char *src;
		const char *msg_prefix;
	} rows[] = {
		{ "format('{0')", "format(): invalid placeholder at position 0" },
		{ "format('a {x}')", "format(): invalid placeholder at position 2" },
		{ "format('{')", "format(): invalid placeholder at position 0" },
		{ "format('}')", "format(): unmatched '}' at position 0" },
		{ "format('ab}c')", "format(): unmatched '}' at position 2" },
		{ "format('{1}', 'x')", "format(): placeholder {1} has no argument (1 given)" },
		{ "format('{99999999999}', 'x')", "format(): placeholder {99999999999} has no argument" },
		{ "fromJSON('{')", "fromJSON(): invalid JSON" },
		{ "fromJSON('')", "fromJSON(): invalid JSON" },
		{ "fromJSON('[1,]')", "fromJSON(): invalid JSON" },
		{ "hashFiles('*.txt')", "hashFiles() is not available here" },
		{ "contains(fromJSON('x'), 'a')", "fromJSON(): invalid JSON" },
		{ "true && fromJSON('x')", "fromJSON(): invalid JSON" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		const char *msg = eval_error(rows[i].src, &g_env);
		assert_non_null(msg);
		if (strncmp(msg, rows[i].msg_prefix, strlen(rows[i].msg_prefix)) != 0)
			print_error("row %zu: %s\n  want %s...\n  got  %s\n", i, rows[i].src,
				    rows[i].msg_prefix, msg);
		assert_true(strncmp(msg, rows[i].msg_prefix, strlen(rows[i].msg_prefix)) == 0);
	}
	assert_null(rn_expr_eval(NULL, &g_env));
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *src;
		size_t off;
		const char *msg;
	} rows[] = {
		{ "", 0, "empty expression" },
		{ "   ", 3, "empty expression" },
		{ "1 +", 2, "unexpected character '+'" },
		{ "a # b", 2, "unexpected character '#'" },
		{ "(1", 2, "expected ')' before the end of the expression" },
		{ "(1 2)", 3, "expected ')' but found '2'" },
		{ "1)", 1, "unexpected token ')'" },
		{ "  toJSON(a) foo", 12, "unexpected token 'foo'" },
		{ "'abc", 0, "unterminated string literal" },
		{ "x == 'it''s", 5, "unterminated string literal" },
		{ "foo(1)", 0, "unknown function 'foo'" },
		{ "a && bar()", 5, "unknown function 'bar'" },
		{ "contains(1)", 0, "function 'contains' takes 2 arguments" },
		{ "x || startsWith(1, 2, 3)", 5, "function 'startsWith' takes 2 arguments" },
		{ "fromjson(1, 2)", 0, "function 'fromJSON' takes 1 argument" },
		{ "success(1)", 0, "function 'success' takes no arguments" },
		{ "format()", 0, "function 'format' takes at least 1 argument" },
		{ "hashFiles()", 0, "function 'hashFiles' takes at least 1 argument" },
		{ "join(1, 2, 3)", 0, "function 'join' takes 1 or 2 arguments" },
		{ "contains(1,)", 11, "unexpected token ')'" },
		{ "contains(1 2)", 11, "expected ',' or ')' but found '2'" },
		{ "contains(1, 2", 13, "expected ',' or ')' before the end of the expression" },
		{ "a.(", 2, "expected property name after '.'" },
		{ "a. ", 3, "expected property name after '.'" },
		{ "a.0", 2, "expected property name after '.'" },
		{ "a.'b'", 2, "expected property name after '.'" },
		{ "a[1", 3, "expected ']' before the end of the expression" },
		{ "a[1 2]", 4, "expected ']' but found '2'" },
		{ "a[]", 2, "unexpected token ']'" },
		{ "a = b", 2, "unexpected '=' (did you mean '=='?)" },
		{ "a & b", 2, "unexpected '&' (did you mean '&&'?)" },
		{ "a | b", 2, "unexpected '|' (did you mean '||'?)" },
		{ "\"x\"", 0, "unexpected character '\"' (strings use single quotes)" },
		{ "1abc", 0, "invalid number '1abc'" },
		{ "0x", 0, "invalid number '0x'" },
		{ "1.2.3", 0, "invalid number '1.2.3'" },
		{ "1e", 0, "invalid number '1e'" },
		{ "1e999", 0, "number '1e999' is out of range" },
		{ "a == == b", 5, "unexpected token '=='" },
		{ "!", 1, "unexpected end of expression" },
		{ "1 &&  ", 6, "unexpected end of expression" },
		{ "x.y(1)", 3, "unexpected token '('" },
		{ "x ! y", 2, "unexpected token '!'" },
		{ "1 < 2 xyz", 6, "unexpected token 'xyz'" },
		{ "a\x01", 1, "unexpected character 0x01" },
		{ "'\xff'", 0, "invalid UTF-8 in string literal" },
		{ "-x", 0, "unexpected character '-'" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		rn_expr *e = (rn_expr *)1;
		size_t off = 12345;
		int rc = rn_expr_parse(&e, rows[i].src, strlen(rows[i].src), &off);
		if (rc != RN_EINVALID || off != rows[i].off || strcmp(rn_error_last(), rows[i].msg) != 0)
			print_error("row %zu: \"%s\"\n  want %zu: %s\n  got  %zu: %s (rc %d)\n", i,
				    rows[i].src, rows[i].off, rows[i].msg, off, rn_error_last(), rc);
		assert_int_equal(rc, RN_EINVALID);
		assert_null(e);
		assert_int_equal(off, rows[i].off);
		assert_string_equal(rn_error_last(), rows[i].msg);
	}
	/* err_off is optional; len bounds the source (the rest is not read) */
	rn_expr *e = NULL;
	assert_int_equal(rn_expr_parse(&e, "(", 1, NULL), RN_EINVALID);
	assert_int_equal(rn_expr_parse(&e, "1 == 1 garbage", 6, NULL), 0);
	assert_non_null(e);
	rn_expr_free(e);
	rn_expr_free(NULL);
}

static char *repeat(const char *a, size_t n, const char *mid, const char *b)
{
	size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
	char *s = rn_xmalloc(n * (la + lb) + lm + 1), *p = s;
	for (size_t i = 0; i < n; i++, p += la)
		memcpy(p, a, la);
	memcpy(p, mid, lm);
	p += lm;
	for (size_t i = 0; i < n; i++, p += lb)
		memcpy(p, b, lb);
	*p = '\0';
	return s;
}

static int parses(const char *src)
{
	rn_expr *e = NULL;
	size_t off;
	int rc = rn_expr_parse(&e, src, strlen(src), &off);
	rn_expr_free(e);
	return rc;
}

static void test_depth_cap(void **state)
{
	char *s;
	/* a little nesting is fine and evaluates */
	s = repeat("(", 50, "1", ")");
	assert_int_equal(parses(s), 0);
	free(s);
	s = repeat("!", 40, "true", "");
	char *got = eval_json(s, &g_env);
	assert_non_null(got);
	assert_string_equal(got, "true");
	free(got);
	free(s);
	/* too deep: errors, not stack overflows */
	static const struct {
		const char *a, *mid, *b;
		size_t n;
	} deep[] = {
		{ "(", "1", ")", RN_EXPR_MAX_DEPTH + 1 },
		{ "(", "1", ")", 1000000 },
		{ "(", "", "", 1000000 },
		{ "!", "1", "", 1000000 },
		{ "a[", "", "", 100000 },
		{ "a[", "0", "]", 5000 },
		{ "format(", "1", ")", 5000 },
		{ "", "a", ".b", 200 },
		{ "", "a", "[0]", 200 },
		{ "", "1", " == 1", 200 },
		{ "", "1", " < 1", 200 },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(deep); i++) {
		s = repeat(deep[i].a, deep[i].n, deep[i].mid, deep[i].b);
		int rc = parses(s);
		if (rc != RN_EINVALID || !strstr(rn_error_last(), "nested too deeply"))
			print_error("deep row %zu: rc %d: %s\n", i, rc, rn_error_last());
		assert_int_equal(rc, RN_EINVALID);
		assert_non_null(strstr(rn_error_last(), "nested too deeply"));
		free(s);
	}
	/* long && / || chains are flat, so they are not "deep" */
	s = repeat("", 20000, "false", " || false");
	got = eval_json(s, &g_env);
	assert_non_null(got);
	assert_string_equal(got, "false");
	free(got);
	free(s);
	s = repeat("", 20000, "1", " && 1");
	assert_int_equal(parses(s), 0);
	free(s);
}

static void test_result_cap(void **state)
{
	size_t n = (1u << 20) + 7;
	char *big = rn_xmalloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	json_t *ctx = json_pack("{s:s, s:[s,s,s,s,s]}", "big", big, "arr", big, big, big, big, big);
	free(big);
	assert_non_null(ctx);
	rn_expr_env env = { ctx, 0, 0, NULL };
	const char *srcs[] = {
		"format('{0}{0}{0}{0}{0}', big)",
		"join(arr)",
		"toJSON(arr)",
		"format('{0}', arr)",
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(srcs); i++) {
		const char *msg = eval_error(srcs[i], &env);
		assert_non_null(msg);
		assert_non_null(strstr(msg, "longer than"));
	}
	/* under the cap is fine */
	char *got = eval_text("format('{0}{0}', big)", &env);
	assert_non_null(got);
	assert_int_equal(strlen(got), 2 * n);
	free(got);
	/* templates: the expanded text is capped too */
	char *out = (char *)1;
	assert_int_equal(rn_template_expand(&out, "${{ big }}${{ big }}${{ big }}${{ big }}${{ big }}",
					    &env),
			 RN_ETOOBIG);
	assert_null(out);
	/* rn_expr_to_string() refuses text over the cap */
	char *t = rn_expr_to_string(json_object_get(ctx, "arr"));
	assert_null(t);
	assert_non_null(strstr(rn_error_last(), "longer than"));
	json_decref(ctx);
}

static void test_truthy(void **state)
{
	static const struct {
		const char *json;
		int want;
	} rows[] = {
		{ "false", 0 }, { "0", 0 },   { "0.0", 0 },  { "-0.0", 0 }, { "\"\"", 0 },
		{ "null", 0 },  { "true", 1 }, { "1", 1 },    { "-1", 1 },   { "0.5", 1 },
		{ "\"0\"", 1 }, { "\"false\"", 1 }, { "[]", 1 }, { "{}", 1 }, { "\" \"", 1 },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		json_t *v = json_loads(rows[i].json, JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		assert_int_equal(rn_expr_truthy(v), rows[i].want);
		json_decref(v);
	}
	assert_int_equal(rn_expr_truthy(NULL), 0);
}

static void test_to_string(void **state)
{
	static const struct {
		const char *json; /* NULL: use num */
		double num;
		const char *want;
	} rows[] = {
		{ "1", 0, "1" },
		{ "-2", 0, "-2" },
		{ "1234567890123", 0, "1234567890123" },
		{ NULL, 1.0, "1" },
		{ NULL, 3.0, "3" },
		{ NULL, 1.5, "1.5" },
		{ NULL, -1.25, "-1.25" },
		{ NULL, -0.0, "0" },
		{ NULL, 0.1, "0.1" },
		{ NULL, 123.456, "123.456" },
		{ NULL, 1e21, "1e+21" },
		{ NULL, 1e20, "100000000000000000000" },
		{ NULL, 1.5e300, "1.5e+300" },
		{ NULL, 0.000001, "0.000001" },
		{ NULL, 1e-7, "1e-7" },
		{ NULL, 1.5e-7, "1.5e-7" },
		{ NULL, 1.0 / 3.0, "0.3333333333333333" },
		{ "null", 0, "" },
		{ "true", 0, "true" },
		{ "false", 0, "false" },
		{ "\"a b\"", 0, "a b" },
		{ "\"\"", 0, "" },
		{ "[1, \"x\", null, 2.5]", 0, "[1,\"x\",null,2.5]" },
		{ "{\"a\": {\"b\": []}}", 0, "{\"a\":{\"b\":[]}}" },
		{ "[\"a\\\"b\\n\\u0001\"]", 0, "[\"a\\\"b\\n\\u0001\"]" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		json_t *v = rows[i].json ? json_loads(rows[i].json, JSON_DECODE_ANY, NULL)
					 : json_real(rows[i].num);
		assert_non_null(v);
		char *s = rn_expr_to_string(v);
		assert_non_null(s);
		if (strcmp(s, rows[i].want) != 0)
			print_error("row %zu: want %s got %s\n", i, rows[i].want, s);
		assert_string_equal(s, rows[i].want);
		free(s);
		json_decref(v);
	}
	char *s = rn_expr_to_string(NULL);
	assert_string_equal(s, "");
	free(s);
}

static void test_templates(void **state)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "no expressions", "no expressions" },
		{ "", "" },
		{ "hello ${{ env.NAME }}!", "hello world!" },
		{ "${{ 1 }}${{ 2 }} and ${{ 'x' }}", "12 and x" },
		{ "a ${{ '}}' }} b", "a }} b" },
		{ "${{ 'it''s }}' }}", "it's }}" },
		{ "${{ format('{{{0}}}', 'x') }}", "{x}" },
		{ "${{ matrix.list }}", "[1,2,3]" },
		{ "${{ null }}x", "x" },
		{ "$${{ 1 }}", "$1" },
		{ "${{1.5}} ${{ true }} ${{ 1 == 2 }}", "1.5 true false" },
		{ "${{ steps.my-step.outputs.x }}/${{ matrix.os }}", "2/Linux" },
		{ "${{ 1 }}}", "1}" },
		{ "{{ not }} $ {{ an }} ${ expression }", "{{ not }} $ {{ an }} ${ expression }" },
		{ "${{ toJSON(matrix.list) }}", "[\n  1,\n  2,\n  3\n]" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		char *out = NULL;
		size_t off = 99;
		assert_int_equal(rn_template_check(rows[i].in, &off), 0);
		int rc = rn_template_expand(&out, rows[i].in, &g_env);
		if (rc)
			print_error("row %zu: %s: %s\n", i, rows[i].in, rn_error_last());
		assert_int_equal(rc, 0);
		assert_string_equal(out, rows[i].want);
		free(out);
	}
	assert_int_equal(rn_template_has("a ${{ b }}"), 1);
	assert_int_equal(rn_template_has("${{"), 1);
	assert_int_equal(rn_template_has("a ${ b }"), 0);
	assert_int_equal(rn_template_has("{{ x }}"), 0);
	assert_int_equal(rn_template_has(NULL), 0);
}

static void test_template_errors(void **state)
{
	static const struct {
		const char *in;
		size_t off;
		const char *msg;
	} rows[] = {
		{ "abc ${{ 1 ", 4, "unterminated '${{' (no closing '}}')" },
		{ "x ${{ 'a }}", 2, "unterminated '${{' (no closing '}}')" },
		{ "ok ${{ 1 }} ${{ ) }}", 16, "unexpected token ')'" },
		{ "${{ }}", 4, "empty expression" },
		{ "${{}}", 3, "empty expression" },
		{ "a ${{ nope(1) }}", 6, "unknown function 'nope'" },
		{ "${{ 1 }} ${{ 'x", 9, "unterminated '${{' (no closing '}}')" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		size_t off = 12345;
		int rc = rn_template_check(rows[i].in, &off);
		if (rc != RN_EINVALID || off != rows[i].off || strcmp(rn_error_last(), rows[i].msg))
			print_error("row %zu: %s\n  want %zu %s\n  got %zu %s\n", i, rows[i].in,
				    rows[i].off, rows[i].msg, off, rn_error_last());
		assert_int_equal(rc, RN_EINVALID);
		assert_int_equal(off, rows[i].off);
		assert_string_equal(rn_error_last(), rows[i].msg);
		char *out = (char *)1;
		assert_int_equal(rn_template_expand(&out, rows[i].in, &g_env), RN_EINVALID);
		assert_null(out);
		assert_string_equal(rn_error_last(), rows[i].msg);
	}
	/* an evaluation error passes through */
	char *out = (char *)1;
	assert_int_equal(rn_template_expand(&out, "a ${{ fromJSON('x') }}", &g_env), RN_EINVALID);
	assert_null(out);
	assert_true(rn_startswith(rn_error_last(), "fromJSON(): invalid JSON"));
	assert_int_equal(rn_template_check("a ${{ fromJSON('x') }}", NULL), 0);
}

static void test_conditions(void **state)
{
	static const struct {
		const char *cond;
		int failed, cancelled, want;
	} rows[] = {
		{ NULL, 0, 0, 1 },
		{ NULL, 1, 0, 0 },
		{ NULL, 0, 1, 0 },
		{ "", 0, 0, 1 },
		{ "  ", 1, 0, 0 },
		{ "true", 0, 0, 1 },
		{ "false", 0, 0, 0 },
		{ "true", 1, 0, 0 },  /* implicit success() && */
		{ "true", 0, 1, 0 },
		{ "always()", 1, 0, 1 },
		{ "always()", 0, 1, 1 },
		{ "failure()", 1, 0, 1 },
		{ "failure()", 0, 0, 0 },
		{ "cancelled()", 0, 1, 1 },
		{ "!cancelled()", 0, 1, 0 },
		{ "success()", 0, 1, 0 },
		{ "success()", 0, 0, 1 },
		{ "${{ env.NAME == 'world' }}", 0, 0, 1 },
		{ "  ${{ false }}  ", 0, 0, 0 },
		{ "${{ 'a' }}", 0, 0, 1 },
		{ "${{ '' }}", 0, 0, 0 },
		{ "env.NAME == 'WORLD'", 0, 0, 1 },
		{ "contains(env.NAME, 'or')", 0, 0, 1 },
		{ "always() && false", 1, 0, 0 },
		{ "${{ failure() || success() }}", 1, 0, 1 },
		{ "${{ failure() || success() }}", 0, 0, 1 },
		{ "failure() && steps.my-step.outcome == 'failure'", 1, 0, 1 },
		{ "fromJSON('bad')", 1, 0, 0 }, /* not evaluated: success() is false */
		{ "steps.build.outputs.x", 0, 0, 1 },
		{ "matrix.missing", 0, 0, 0 },
		{ "contains('success()', 'x')", 1, 0, 0 }, /* only a real call counts */
		{ "${{ '}}' == '}}' }}", 0, 0, 1 },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		rn_expr_env env = { g_ctx, rows[i].failed, rows[i].cancelled, NULL };
		int out = -1;
		int rc = rn_expr_condition(&out, rows[i].cond, &env);
		if (rc || out != rows[i].want)
			print_error("row %zu: %s: rc %d out %d: %s\n", i,
				    rows[i].cond ? rows[i].cond : "(null)", rc, out, rn_error_last());
		assert_int_equal(rc, 0);
		assert_int_equal(out, rows[i].want);
		size_t off = 7;
		assert_int_equal(rn_expr_condition_check(rows[i].cond, &off), 0);
	}
}

static void test_condition_errors(void **state)
{
	static const struct {
		const char *cond;
		size_t off;
		const char *msg;
	} rows[] = {
		{ "${{ a }} && ${{ b }}", 8,
		  "a condition in ${{ }} must be one expression: put all of it inside one ${{ }}" },
		{ "${{ 1", 0, "unterminated '${{' (no closing '}}')" },
		{ "  ${{ 1", 2, "unterminated '${{' (no closing '}}')" },
		{ "  (1", 4, "expected ')' before the end of the expression" },
		{ "${{ (1 }}", 7, "expected ')' before the end of the expression" },
		{ " ${{ }} ", 5, "empty expression" },
		{ "${{}}", 3, "empty expression" },
		{ "succes()", 0, "unknown function 'succes'" },
		{ "${{ always(1) }}", 4, "function 'always' takes no arguments" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		size_t off = 12345;
		int rc = rn_expr_condition_check(rows[i].cond, &off);
		if (rc != RN_EINVALID || off != rows[i].off || strcmp(rn_error_last(), rows[i].msg))
			print_error("row %zu: %s\n  want %zu %s\n  got %zu %s\n", i, rows[i].cond,
				    rows[i].off, rows[i].msg, off, rn_error_last());
		assert_int_equal(rc, RN_EINVALID);
		assert_int_equal(off, rows[i].off);
		assert_string_equal(rn_error_last(), rows[i].msg);
		int out = -1;
		assert_int_equal(rn_expr_condition(&out, rows[i].cond, &g_env), RN_EINVALID);
		assert_int_equal(out, 0);
	}
	/* an evaluation error fails the condition */
	int out = -1;
	assert_int_equal(rn_expr_condition(&out, "fromJSON('bad')", &g_env), RN_EINVALID);
	assert_true(rn_startswith(rn_error_last(), "fromJSON(): invalid JSON"));
}

static void test_has_status(void **state)
{
	static const struct {
		const char *cond;
		int want;
	} rows[] = {
		{ "success()", 1 },
		{ "${{ always() }}", 1 },
		{ "!FAILURE()", 1 },
		{ "a == b || cancelled()", 1 },
		{ "contains(format('{0}', failure()), 'x')", 1 },
		{ "contains('success()', 'x')", 0 },
		{ "a == b", 0 },
		{ "${{ steps.x.outputs.success }}", 0 },
		{ "success", 0 },
		{ "bad (", 0 },
		{ "", 0 },
		{ NULL, 0 },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++)
		assert_int_equal(rn_expr_condition_has_status(rows[i].cond), rows[i].want);
}

/* hashFiles() */

static void sha256(unsigned char out[32], const void *p, size_t n)
{
	unsigned len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* The hex hashFiles() value for the given file contents, in order. */
static void expected_hash(char hex[65], const char *const *contents, size_t n)
{
	unsigned char *cat = rn_xmalloc(32 * n), md[32];
	for (size_t i = 0; i < n; i++)
		sha256(cat + 32 * i, contents[i], strlen(contents[i]));
	sha256(md, cat, 32 * n);
	free(cat);
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
	char *path = rn_xasprintf("%s/%s", dir, rel);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	assert_int_equal(rn_mkdir_p(path, 0755), 0);
	*slash = '/';
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static void test_hashfiles(void **state)
{
	char tmpl[] = "/tmp/test_expr.XXXXXX", out_tmpl[] = "/tmp/test_expr_out.XXXXXX";
	char *dir = mkdtemp(tmpl), *outside = mkdtemp(out_tmpl);
	assert_non_null(dir);
	assert_non_null(outside);
	write_file(dir, "a.txt", "hello");
	write_file(dir, "sub/b.txt", "world");
	write_file(dir, "sub/c.log", "x");
	write_file(dir, "node_modules/d.txt", "dep");
	write_file(dir, ".git/e.txt", "git");
	write_file(outside, "secret.txt", "secret");
	char *target = rn_xasprintf("%s/secret.txt", outside);
	char *lnk = rn_xasprintf("%s/links/out.lnk", dir);
	char *lnk_in = rn_xasprintf("%s/in.lnk", dir);
	char *links = rn_xasprintf("%s/links", dir);
	assert_int_equal(mkdir(links, 0755), 0);
	free(links);
	assert_int_equal(symlink(target, lnk), 0);
	assert_int_equal(symlink("a.txt", lnk_in), 0);

	rn_expr_env env = { g_ctx, 0, 0, dir };
	char ab[65], b[65], bc[65], a[65];
	const char *c_ab[] = { "hello", "world" }, *c_b[] = { "world" }, *c_bc[] = { "world", "x" },
		   *c_a[] = { "hello" };
	expected_hash(ab, c_ab, 2);
	expected_hash(b, c_b, 1);
	expected_hash(bc, c_bc, 2);
	expected_hash(a, c_a, 1);

	const struct {
		const char *src, *want;
	} rows[] = {
		{ "hashFiles('**/*.txt', '!node_modules/**')", ab },
		{ "hashFiles('**/*.txt\n!node_modules/**')", ab },
		{ "hashFiles('sub/b.txt', 'a.txt')", ab }, /* sorted, not argument order */
		{ "hashFiles('a.txt', 'sub/b.txt', 'a.txt')", ab },
		{ "HASHFILES('./sub/b.txt')", b },
		{ "hashFiles('sub')", bc }, /* a matched directory yields its contents */
		{ "hashFiles('sub/*', '!**/*.log')", b },
		{ "hashFiles('in.lnk')", a }, /* a symlink inside the workspace counts */
		{ "hashFiles('nomatch/*')", "" },
		{ "hashFiles('!a.txt')", "" },
		{ "hashFiles('# comment\n\n  a.txt  ')", a },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		char *got = eval_text(rows[i].src, &env);
		assert_non_null(got);
		if (strcmp(got, rows[i].want) != 0)
			print_error("row %zu: %s\n", i, rows[i].src);
		assert_string_equal(got, rows[i].want);
		free(got);
	}
	/* a symlink leading out of the workspace is refused */
	const char *msg = eval_error("hashFiles('links/*')", &env);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "resolves outside the workspace"));
	msg = eval_error("hashFiles('a[')", &env);
	assert_non_null(msg);
	assert_true(rn_startswith(msg, "hashFiles(): invalid pattern 'a['"));
	rn_expr_env nows = { g_ctx, 0, 0, "/nonexistent/dir/for/test_expr" };
	msg = eval_error("hashFiles('*')", &nows);
	assert_non_null(msg);
	assert_true(rn_startswith(msg, "hashFiles(): "));
	/* in a template */
	char *out = NULL;
	assert_int_equal(rn_template_expand(&out, "key-${{ hashFiles('sub/b.txt') }}", &env), 0);
	char *want = rn_xasprintf("key-%s", b);
	assert_string_equal(out, want);
	free(want);
	free(out);

	free(target);
	free(lnk);
	free(lnk_in);
	assert_int_equal(rn_rm_rf(dir), 0);
	assert_int_equal(rn_rm_rf(outside), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_functions),
		cmocka_unit_test(test_status_functions),
		cmocka_unit_test(test_eval_errors),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_result_cap),
		cmocka_unit_test(test_truthy),
		cmocka_unit_test(test_to_string),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_template_errors),
		cmocka_unit_test(test_conditions),
		cmocka_unit_test(test_condition_errors),
		cmocka_unit_test(test_has_status),
		cmocka_unit_test(test_hashfiles),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
