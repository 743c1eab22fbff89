/* test_kvfile.c - command files (key=value, heredocs) and dotenv files: every rule and error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kvfile.h"

#define MAX_PAIRS 8

typedef struct {
	size_t n;
	char *key[MAX_PAIRS];
	char *val[MAX_PAIRS];
	size_t vlen[MAX_PAIRS];
	size_t stop_at; /* return 7 from the stop_at-th call (1-based; 0 never) */
} got;

static int collect(const char *key, const char *value, size_t vlen, void *payload)
{
	got *g = payload;
	assert_non_null(key);
	assert_non_null(value);
	assert_int_equal(value[vlen], '\0'); /* NUL-terminated */
	if (g->n < MAX_PAIRS) {
		g->key[g->n] = strdup(key);
		g->val[g->n] = malloc(vlen + 1);
		memcpy(g->val[g->n], value, vlen + 1);
		g->vlen[g->n] = vlen;
	}
	g->n++;
	return g->stop_at && g->n == g->stop_at ? 7 : 0;
}

static void got_free(got *g)
{
	for (size_t i = 0; i < g->n && i < MAX_PAIRS; i++) {
		free(g->key[i]);
		free(g->val[i]);
	}
	memset(g, 0, sizeof(*g));
}

typedef struct {
	const char *key;
	const char *val;
	size_t vlen; /* 0: strlen(val) */
} pair;

typedef struct {
	rn_kv_format fmt;
	const char *in;
	size_t inlen; /* 0: strlen(in) */
	const char *err; /* expected error message, NULL for success */
	pair want[MAX_PAIRS];
} kv_case;

#define C RN_KV_COMMANDS
#define D RN_KV_DOTENV

static const kv_case cases[] = {
	/* ---- commands: key=value */
	{ C, "", 0, NULL, { { NULL, NULL, 0 } } },
	{ C, "a=1\nb=two words\n", 0, NULL, { { "a", "1", 0 }, { "b", "two words", 0 } } },
	{ C, "empty=\n", 0, NULL, { { "empty", "", 0 } } },
	{ C, "eq=a=b=c", 0, NULL, { { "eq", "a=b=c", 0 } } },
	{ C, "sp= leading and trailing ", 0, NULL, { { "sp", " leading and trailing ", 0 } } },
	{ C, "my.key-1_x=v\n_k=w\nK9=x", 0, NULL,
	  { { "my.key-1_x", "v", 0 }, { "_k", "w", 0 }, { "K9", "x", 0 } } },
	{ C, "a=1\r\nb=2\r\n", 0, NULL, { { "a", "1", 0 }, { "b", "2", 0 } } },
	{ C, "a=in\rside\n", 0, NULL, { { "a", "in\rside", 0 } } },
	{ C, "\n\na=1\n\n  \n\t\nb=2\n\n", 0, NULL, { { "a", "1", 0 }, { "b", "2", 0 } } },
	{ C, "a=x\0y\n", 6, NULL, { { "a", "x\0y", 3 } } },
	{ C, "dup=1\ndup=2\n", 0, NULL, { { "dup", "1", 0 }, { "dup", "2", 0 } } },
	/* '=' before '<<' is a plain value; '<<' before '=' is a heredoc */
	{ C, "a=b<<c\n", 0, NULL, { { "a", "b<<c", 0 } } },
	{ C, "a<<b=c\nline\nb=c\n", 0, NULL, { { "a", "line", 0 } } },
	/* ---- commands: heredocs */
	{ C, "x<<EOF\nline1\nline2\nEOF\n", 0, NULL, { { "x", "line1\nline2", 0 } } },
	{ C, "x<<EOF\nEOF\ny=1", 0, NULL, { { "x", "", 0 }, { "y", "1", 0 } } },
	{ C, "x<<EOF\n\nmid\n\nEOF", 0, NULL, { { "x", "\nmid\n", 0 } } },
	{ C, "x<<EOF\n EOF\nEOF \nEOFX\nEOF\n", 0, NULL, { { "x", " EOF\nEOF \nEOFX", 0 } } },
	{ C, "x<<E\r\nl1\r\nl2\r\nE\r\nz=9\r\n", 0, NULL, { { "x", "l1\nl2", 0 }, { "z", "9", 0 } } },
	{ C, "x<<ghadelimiter_1\na=b\ny<<EOF\nghadelimiter_1\n", 0, NULL,
	  { { "x", "a=b\ny<<EOF", 0 } } },
	{ C, "x<<EOF\nwith\0nul\nEOF\n", 20, NULL, { { "x", "with\0nul", 8 } } },
	/* ---- commands: errors, with line numbers */
	{ C, "a=1\nnoequals\n", 0, "line 2: expected key=value or key<<DELIMITER",
	  { { "a", "1", 0 } } },
	{ C, "\n\n\njust text", 0, "line 4: expected key=value or key<<DELIMITER", { { NULL, NULL, 0 } } },
	{ C, "a<b\n", 0, "line 1: expected key=value or key<<DELIMITER", { { NULL, NULL, 0 } } },
	{ C, "1abc=x\n", 0, "line 1: invalid key '1abc'", { { NULL, NULL, 0 } } },
	{ C, "=x\n", 0, "line 1: invalid key ''", { { NULL, NULL, 0 } } },
	{ C, "ok=1\na b=x\n", 0, "line 2: invalid key 'a b'", { { "ok", "1", 0 } } },
	{ C, " a=x\n", 0, "line 1: invalid key ' a'", { { NULL, NULL, 0 } } },
	{ C, "k$<<EOF\nx\nEOF\n", 0, "line 1: invalid key 'k$'", { { NULL, NULL, 0 } } },
	{ C, "<<EOF\nx\nEOF\n", 0, "line 1: invalid key ''", { { NULL, NULL, 0 } } },
	{ C, "\n\nx<<EOF\nabc\n", 0, "line 3: heredoc 'EOF' is not terminated", { { NULL, NULL, 0 } } },
	{ C, "x<<EOF\nabc\nEO", 0, "line 1: heredoc 'EOF' is not terminated", { { NULL, NULL, 0 } } },
	{ C, "x<<EOF", 0, "line 1: heredoc 'EOF' is not terminated", { { NULL, NULL, 0 } } },
	{ C, "x<<\nabc\n", 0, "line 1: heredoc delimiter is empty", { { NULL, NULL, 0 } } },
	{ C, "x<<E\na\nb\nE\nbad\n", 0, "line 5: expected key=value or key<<DELIMITER",
	  { { "x", "a\nb", 0 } } },
	{ C, "a=1\r\n\r\nb\r\n", 0, "line 3: expected key=value or key<<DELIMITER",
	  { { "a", "1", 0 } } },
	{ C, "x<<E\n1\nE\n\ny<<F\n2\n", 0, "line 5: heredoc 'F' is not terminated",
	  { { "x", "1", 0 } } },

	/* ---- dotenv */
	{ D, "", 0, NULL, { { NULL, NULL, 0 } } },
	{ D, "KEY=value", 0, NULL, { { "KEY", "value", 0 } } },
	{ D, "export KEY=value\nexport\t OTHER=2\n", 0, NULL,
	  { { "KEY", "value", 0 }, { "OTHER", "2", 0 } } },
	{ D, "exportX=1\nexport=2\n", 0, NULL, { { "exportX", "1", 0 }, { "export", "2", 0 } } },
	{ D, "# comment\n\n  # indented comment\n\t\nA=1\n#B=2\n", 0, NULL, { { "A", "1", 0 } } },
	{ D, "  A  =  spaced value  \n", 0, NULL, { { "A", "spaced value", 0 } } },
	{ D, "A=\nB=   \n", 0, NULL, { { "A", "", 0 }, { "B", "", 0 } } },
	{ D, "A=value # comment\nB=value#not\nC=#x\nD= #c\nE=v\t# tab\n", 0, NULL,
	  { { "A", "value", 0 }, { "B", "value#not", 0 }, { "C", "#x", 0 }, { "D", "", 0 },
	    { "E", "v", 0 } } },
	{ D, "A=a=b\nB=x'y\"z\n", 0, NULL, { { "A", "a=b", 0 }, { "B", "x'y\"z", 0 } } },
	{ D, "A='single $lit \\n # no comment'\n", 0, NULL,
	  { { "A", "single $lit \\n # no comment", 0 } } },
	{ D, "A=\"dq \\n\\t\\\\ \\\" end\"\n", 0, NULL, { { "A", "dq \n\t\\ \" end", 0 } } },
	{ D, "A=\"keep \\q and \\$\"", 0, NULL, { { "A", "keep \\q and \\$", 0 } } },
	{ D, "A=\"has # hash\" # comment\nB='x'  \n", 0, NULL,
	  { { "A", "has # hash", 0 }, { "B", "x", 0 } } },
	{ D, "A=''\nB=\"\"\n", 0, NULL, { { "A", "", 0 }, { "B", "", 0 } } },
	{ D, "A=\"  padded  \"\n", 0, NULL, { { "A", "  padded  ", 0 } } },
	/* quoted values may span lines; CRLF inside them becomes LF */
	{ D, "A=\"line1\nline2\"\nB=2", 0, NULL, { { "A", "line1\nline2", 0 }, { "B", "2", 0 } } },
	{ D, "A='l1\nl2\n'\nB=3\n", 0, NULL, { { "A", "l1\nl2\n", 0 }, { "B", "3", 0 } } },
	{ D, "A=\"l1\r\nl2\"\r\nB=x\r\n", 0, NULL, { { "A", "l1\nl2", 0 }, { "B", "x", 0 } } },
	{ D, "A=x\r\n", 0, NULL, { { "A", "x", 0 } } },
	{ D, "A=\"x\\ny\"", 0, NULL, { { "A", "x\ny", 0 } } },
	{ D, "_a1=1\n", 0, NULL, { { "_a1", "1", 0 } } },
	/* ---- dotenv: errors */
	{ D, "A=1\nnot a pair\n", 0, "line 2: expected KEY=value", { { "A", "1", 0 } } },
	{ D, "export FOO\n", 0, "line 1: expected KEY=value", { { NULL, NULL, 0 } } },
	{ D, "my.key=1\n", 0, "line 1: invalid key 'my.key'", { { NULL, NULL, 0 } } },
	{ D, "A-B=1\n", 0, "line 1: invalid key 'A-B'", { { NULL, NULL, 0 } } },
	{ D, "1A=x\n", 0, "line 1: invalid key '1A'", { { NULL, NULL, 0 } } },
	{ D, "=x\n", 0, "line 1: invalid key ''", { { NULL, NULL, 0 } } },
	{ D, "A B=x\n", 0, "line 1: invalid key 'A B'", { { NULL, NULL, 0 } } },
	{ D, "A=\"open\nB=2\n", 0, "line 1: unterminated double-quoted value", { { NULL, NULL, 0 } } },
	{ D, "\nA='open", 0, "line 2: unterminated single-quoted value", { { NULL, NULL, 0 } } },
	{ D, "A=\"ends in backslash\\", 0, "line 1: unterminated double-quoted value",
	  { { NULL, NULL, 0 } } },
	{ D, "A=\"x\" y\n", 0, "line 1: unexpected text after the closing quote", { { NULL, NULL, 0 } } },
	{ D, "A=\"l1\nl2\" junk\n", 0, "line 2: unexpected text after the closing quote",
	  { { NULL, NULL, 0 } } },
	{ D, "A=\"a\nb\"\n\nbad\n", 0, "line 4: expected KEY=value", { { "A", "a\nb", 0 } } },
	{ D, "# c\r\nA=1\r\nB\r\n", 0, "line 3: expected KEY=value", { { "A", "1", 0 } } },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const kv_case *c = &cases[i];
		got g = { 0 };
		size_t inlen = c->inlen ? c->inlen : strlen(c->in);
		rn_error_clear();
		int rc = rn_kvfile_parse(c->in, inlen, c->fmt, collect, &g);
		if (c->err) {
			if (rc != RN_EINVALID || strcmp(rn_error_last(), c->err) != 0)
				fail_msg("case %zu: rc %d, error \"%s\", want \"%s\"", i, rc,
					 rn_error_last(), c->err);
		} else if (rc != 0) {
			fail_msg("case %zu: rc %d: %s", i, rc, rn_error_last());
		}
		size_t nwant = 0;
		while (nwant < MAX_PAIRS && c->want[nwant].key)
			nwant++;
		if (g.n != nwant)
			fail_msg("case %zu: %zu pairs, want %zu", i, g.n, nwant);
		for (size_t k = 0; k < nwant; k++) {
			const pair *w = &c->want[k];
			size_t vl = w->vlen ? w->vlen : strlen(w->val);
			assert_string_equal(g.key[k], w->key);
			if (g.vlen[k] != vl || memcmp(g.val[k], w->val, vl) != 0)
				fail_msg("case %zu pair %zu: value \"%s\" (%zu), want \"%s\"", i, k,
					 g.val[k], g.vlen[k], w->val);
		}
		got_free(&g);
	}
}

/* a non-zero callback result stops parsing and is returned */
static void test_callback_stops(void **state)
{
	(void)state;
	const char *cmd = "a=1\nb<<E\nx\nE\nc=3\n";
	const char *env = "A=1\nB=\"x\"\nC=3\n";
	for (size_t stop = 1; stop <= 3; stop++) {
		got g = { 0 };
		g.stop_at = stop;
		assert_int_equal(rn_kvfile_parse(cmd, strlen(cmd), RN_KV_COMMANDS, collect, &g), 7);
		assert_int_equal(g.n, stop);
		got_free(&g);
		g.stop_at = stop;
		assert_int_equal(rn_kvfile_parse(env, strlen(env), RN_KV_DOTENV, collect, &g), 7);
		assert_int_equal(g.n, stop);
		got_free(&g);
	}
	/* a later syntax error is not reached */
	got g = { 0 };
	g.stop_at = 1;
	assert_int_equal(rn_kvfile_parse("a=1\n!!!\n", 8, RN_KV_COMMANDS, collect, &g), 7);
	got_free(&g);
}

/* the data need not be NUL-terminated: only data[0..len) is read */
static void test_length_bounded(void **state)
{
	(void)state;
	const char buf[] = "a=12345\nb=6";
	got g = { 0 };
	assert_int_equal(rn_kvfile_parse(buf, 5, RN_KV_COMMANDS, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.val[0], "123");
	got_free(&g);
	assert_int_equal(rn_kvfile_parse(buf, 5, RN_KV_DOTENV, collect, &g), 0);
	assert_string_equal(g.val[0], "123");
	got_free(&g);
	assert_int_equal(rn_kvfile_parse(NULL, 0, RN_KV_DOTENV, collect, &g), 0);
	assert_int_equal(rn_kvfile_parse(NULL, 0, RN_KV_COMMANDS, collect, &g), 0);
	assert_int_equal(g.n, 0);
}

/* a long bad key is shortened in the message */
static void test_long_key_message(void **state)
{
	(void)state;
	char in[300];
	memset(in, 'k', 200);
	in[0] = '-';
	memcpy(in + 200, "=v\n", 3);
	got g = { 0 };
	assert_int_equal(rn_kvfile_parse(in, 203, RN_KV_COMMANDS, collect, &g), RN_EINVALID);
	assert_true(strncmp(rn_error_last(), "line 1: invalid key '-kkk", 25) == 0);
	assert_true(strlen(rn_error_last()) < 120);
	assert_int_equal(g.n, 0);
}

/* a large heredoc value */
static void test_large_heredoc(void **state)
{
	(void)state;
	size_t lines = 10000;
	char *in = malloc(lines * 12 + 64);
	size_t n = (size_t)sprintf(in, "big<<END_OF_VALUE\n");
	for (size_t i = 0; i < lines; i++)
		n += (size_t)sprintf(in + n, "%010zu\n", i);
	n += (size_t)sprintf(in + n, "END_OF_VALUE\n");
	got g = { 0 };
	assert_int_equal(rn_kvfile_parse(in, n, RN_KV_COMMANDS, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.vlen[0], lines * 11 - 1);
	assert_memory_equal(g.val[0], "0000000000\n0000000001\n", 22);
	assert_string_equal(g.val[0] + g.vlen[0] - 10, "0000009999");
	got_free(&g);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_long_key_message),
		cmocka_unit_test(test_large_heredoc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
