/* test_lines.c - the bounded line splitter: limits, cuts, binary data, zero copy, tiny writes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"

/* ---- a recorder of callbacks ------------------------------------------------------------- */

#define MAX_CALLS 64

typedef struct {
	size_t n;                  /* calls */
	char *line[MAX_CALLS];     /* copies of the first MAX_CALLS lines */
	size_t len[MAX_CALLS];
	int partial[MAX_CALLS];
	const char *ptr[MAX_CALLS]; /* where the callback's data was */
	size_t total;              /* bytes delivered */
	size_t npartial;
	size_t maxlen;             /* longest piece */
	size_t bad_pieces;         /* partial pieces (not the flushed tail) not exactly limit long */
	size_t limit;
	int flushing;
} rec;

static void rec_cb(const char *line, size_t len, int partial, void *payload)
{
	rec *r = payload;
	if (r->n < MAX_CALLS) {
		r->line[r->n] = malloc(len + 1);
		assert_non_null(r->line[r->n]);
		memcpy(r->line[r->n], line, len);
		r->line[r->n][len] = '\0';
		r->len[r->n] = len;
		r->partial[r->n] = partial;
		r->ptr[r->n] = line;
	}
	r->n++;
	r->total += len;
	r->npartial += partial != 0;
	if (len > r->maxlen)
		r->maxlen = len;
	if (partial && !r->flushing && len != r->limit)
		r->bad_pieces++;
}

static void rec_free(rec *r)
{
	for (size_t i = 0; i < r->n && i < MAX_CALLS; i++)
		free(r->line[i]);
	memset(r, 0, sizeof(*r));
}

static void flush(rn_lines *l, rec *r)
{
	r->flushing = 1;
	rn_lines_flush(l);
	r->flushing = 0;
}

/* ---- table: input written whole and byte by byte, expected lines ------------------------- */

typedef struct {
	size_t limit;
	const char *in;
	size_t inlen; /* 0: strlen(in) */
	const char *want[8];
	int partial[8];
	size_t wantlen[8]; /* 0: strlen(want) */
} lines_case;

static const lines_case cases[] = {
	{ 8, "", 0, { NULL }, { 0 }, { 0 } },
	{ 8, "one\ntwo\n", 0, { "one", "two", NULL }, { 0, 0 }, { 0 } },
	{ 8, "one\ntwo", 0, { "one", "two", NULL }, { 0, 1 }, { 0 } },
	{ 8, "\n\n", 0, { "", "", NULL }, { 0, 0 }, { 0 } },
	/* exactly the limit: one whole line */
	{ 8, "12345678\nx\n", 0, { "12345678", "x", NULL }, { 0, 0 }, { 0 } },
	/* limit + 1: a piece of limit bytes, then the rest of the line */
	{ 8, "123456789\n", 0, { "12345678", "9", NULL }, { 1, 0 }, { 0 } },
	/* 2 * limit exactly: the second piece ends the line */
	{ 4, "abcdefgh\n", 0, { "abcd", "efgh", NULL }, { 1, 0 }, { 0 } },
	{ 4, "abcdefghi", 0, { "abcd", "efgh", "i", NULL }, { 1, 1, 1 }, { 0 } },
	{ 4, "abcd", 0, { "abcd", NULL }, { 1 }, { 0 } },
	/* CR is kept */
	{ 8, "dos\r\nline\r\n", 0, { "dos\r", "line\r", NULL }, { 0, 0 }, { 0 } },
	{ 8, "\r\n\r", 0, { "\r", "\r", NULL }, { 0, 1 }, { 0 } },
	/* binary: NULs and invalid UTF-8 pass unchanged */
	{ 8, "a\0b\n\xff\xfe\xc3\n", 8, { "a\0b", "\xff\xfe\xc3", NULL }, { 0, 0 }, { 3, 3 } },
	{ 3, "\0\0\0\0\n", 5, { "\0\0\0", "\0", NULL }, { 1, 0 }, { 3, 1 } },
	/* many lines in one write */
	{ 16, "a\nbb\nccc\ndddd\neeeee\nffffff\n", 0,
	  { "a", "bb", "ccc", "dddd", "eeeee", "ffffff", NULL }, { 0 }, { 0 } },
};

static void check_case(const lines_case *c, size_t ci, size_t step)
{
	rec r = { 0 };
	r.limit = c->limit;
	rn_lines l;
	rn_lines_init(&l, c->limit, rec_cb, &r);
	size_t inlen = c->inlen ? c->inlen : strlen(c->in);
	for (size_t i = 0; i < inlen; i += step) {
		size_t n = inlen - i < step ? inlen - i : step;
		rn_lines_write(&l, c->in + i, n);
		assert_true(l.len <= l.limit);
	}
	flush(&l, &r);
	assert_int_equal(l.len, 0);
	size_t nwant = 0;
	while (c->want[nwant])
		nwant++;
	if (r.n != nwant)
		fail_msg("case %zu step %zu: %zu lines, want %zu", ci, step, r.n, nwant);
	for (size_t i = 0; i < nwant; i++) {
		size_t wl = c->wantlen[i] ? c->wantlen[i] : strlen(c->want[i]);
		assert_int_equal(r.len[i], wl);
		assert_memory_equal(r.line[i], c->want[i], wl);
		if (r.partial[i] != c->partial[i])
			fail_msg("case %zu step %zu line %zu: partial %d", ci, step, i, r.partial[i]);
	}
	rec_free(&r);
	rn_lines_free(&l);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check_case(&cases[i], i, 1 << 20); /* one write */
		check_case(&cases[i], i, 1);       /* byte by byte */
		check_case(&cases[i], i, 2);
		check_case(&cases[i], i, 3);
	}
}

static void test_default_limit(void **state)
{
	(void)state;
	rec r = { 0 };
	rn_lines l;
	rn_lines_init(&l, 0, rec_cb, &r);
	assert_int_equal(l.limit, RN_LINE_MAX);
	assert_null(l.buf); /* allocated lazily */
	assert_int_equal(l.len, 0);
	rn_lines_write(&l, "x\n", 2);
	assert_null(l.buf); /* a whole line in one write needs no buffer */
	assert_int_equal(r.n, 1);
	rn_lines_free(&l);
	rec_free(&r);
}

/* a complete line inside one write is delivered from the caller's memory */
static void test_zero_copy(void **state)
{
	(void)state;
	rec r = { 0 };
	rn_lines l;
	rn_lines_init(&l, 64, rec_cb, &r);
	const char data[] = "first\nsecond\nthird\ntail";
	rn_lines_write(&l, data, sizeof(data) - 1);
	assert_int_equal(r.n, 3);
	assert_ptr_equal(r.ptr[0], data);
	assert_ptr_equal(r.ptr[1], data + 6);
	assert_ptr_equal(r.ptr[2], data + 13);
	assert_int_equal(l.len, 4); /* only the tail is buffered */
	assert_memory_equal(l.buf, "tail", 4);
	rn_lines_write(&l, "!\nnext\n", 7);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.line[3], "tail!");
	assert_ptr_equal(r.ptr[3], l.buf);
	assert_string_equal(r.line[4], "next");
	assert_int_equal(r.partial[4], 0);
	rn_lines_write(&l, "", 0);
	flush(&l, &r);
	assert_int_equal(r.n, 5); /* nothing pending: flush calls nothing */
	rn_lines_free(&l);
	rn_lines_free(&l); /* twice is harmless */
	rec_free(&r);
}

/* 10 MB without a newline: pieces of exactly limit bytes, nothing lost, memory stays bounded */
static void test_huge_line(void **state)
{
	(void)state;
	size_t n = 10 * 1024 * 1024 + 123;
	char *big = malloc(n);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	size_t writes[] = { n, 4096, 65537, 1000003 };
	for (size_t w = 0; w < sizeof(writes) / sizeof(writes[0]); w++) {
		rec r = { 0 };
		r.limit = RN_LINE_MAX;
		rn_lines l;
		rn_lines_init(&l, 0, rec_cb, &r);
		for (size_t i = 0; i < n; i += writes[w]) {
			size_t k = n - i < writes[w] ? n - i : writes[w];
			rn_lines_write(&l, big + i, k);
			assert_true(l.len <= RN_LINE_MAX);
		}
		assert_int_equal(r.total, n - n % RN_LINE_MAX);
		flush(&l, &r);
		assert_int_equal(r.total, n);
		assert_int_equal(r.n, n / RN_LINE_MAX + 1);
		assert_int_equal(r.npartial, r.n); /* every piece is partial, the tail too */
		assert_int_equal(r.bad_pieces, 0);
		assert_int_equal(r.maxlen, RN_LINE_MAX);
		assert_int_equal(r.len[0], RN_LINE_MAX);
		assert_memory_equal(r.line[0], big, 64);
		rn_lines_free(&l);
		rec_free(&r);
	}
	/* the same line terminated: the last piece is a complete line */
	rec r = { 0 };
	r.limit = RN_LINE_MAX;
	rn_lines l;
	rn_lines_init(&l, 0, rec_cb, &r);
	big[n - 1] = '\n';
	rn_lines_write(&l, big, n);
	flush(&l, &r);
	assert_int_equal(r.total, n - 1);
	assert_int_equal(r.npartial, r.n - 1);
	assert_int_equal(r.bad_pieces, 0);
	rn_lines_free(&l);
	rec_free(&r);
	free(big);
}

/* a line arriving one byte at a time, longer than the limit */
static void test_one_byte_writes(void **state)
{
	(void)state;
	rec r = { 0 };
	r.limit = 5;
	rn_lines l;
	rn_lines_init(&l, 5, rec_cb, &r);
	const char *text = "hello world, this line is long\nshort\n\nend";
	for (size_t i = 0; text[i]; i++) {
		rn_lines_write(&l, text + i, 1);
		assert_true(l.len <= 5);
	}
	flush(&l, &r);
	const char *want[] = { "hello", " worl", "d, th", "is li", "ne is", " long", "short", "", "end" };
	const int part[] = { 1, 1, 1, 1, 1, 0, 0, 0, 1 };
	assert_int_equal(r.n, 9);
	for (size_t i = 0; i < 9; i++) {
		assert_string_equal(r.line[i], want[i]);
		assert_int_equal(r.partial[i], part[i]);
	}
	assert_int_equal(r.bad_pieces, 0);
	rn_lines_free(&l);
	rec_free(&r);
}

/* every split of a text gives the same lines */
static void test_every_split(void **state)
{
	(void)state;
	const char text[] = "ab\ncdefghijk\n\nlmno\r\npq\0rs\nxyz";
	size_t n = sizeof(text) - 1;
	rec ref = { 0 };
	ref.limit = 4;
	rn_lines l;
	rn_lines_init(&l, 4, rec_cb, &ref);
	rn_lines_write(&l, text, n);
	flush(&l, &ref);
	rn_lines_free(&l);
	assert_int_equal(ref.total, n - 5); /* five newlines */
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			rec r = { 0 };
			r.limit = 4;
			rn_lines_init(&l, 4, rec_cb, &r);
			rn_lines_write(&l, text, i);
			rn_lines_write(&l, text + i, j - i);
			rn_lines_write(&l, text + j, n - j);
			flush(&l, &r);
			assert_int_equal(r.n, ref.n);
			for (size_t k = 0; k < r.n; k++) {
				assert_int_equal(r.len[k], ref.len[k]);
				assert_memory_equal(r.line[k], ref.line[k], r.len[k]);
				assert_int_equal(r.partial[k], ref.partial[k]);
			}
			rn_lines_free(&l);
			rec_free(&r);
		}
	}
	rec_free(&ref);
}

/* many short lines in one large write */
static void test_many_lines(void **state)
{
	(void)state;
	size_t nlines = 100000;
	char *buf = malloc(nlines * 8);
	size_t len = 0;
	for (size_t i = 0; i < nlines; i++)
		len += (size_t)sprintf(buf + len, "%06zu\n", i);
	rec r = { 0 };
	r.limit = 16;
	rn_lines l;
	rn_lines_init(&l, 16, rec_cb, &r);
	rn_lines_write(&l, buf, len);
	assert_int_equal(r.n, nlines);
	assert_int_equal(r.total, nlines * 6);
	assert_int_equal(r.npartial, 0);
	assert_null(l.buf);
	assert_string_equal(r.line[0], "000000");
	assert_string_equal(r.line[MAX_CALLS - 1], "000063");
	flush(&l, &r);
	assert_int_equal(r.n, nlines);
	rn_lines_free(&l);
	rec_free(&r);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_default_limit),
		cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_huge_line),
		cmocka_unit_test(test_one_byte_writes),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_many_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
