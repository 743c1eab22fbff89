/* test_mask.c - secret masking: derived forms, streaming in every split, overlaps, hold-back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "error.h"
#include "mask.h"

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct {
	char *p;
	size_t len, cap;
	size_t calls;
	const char *last_ptr; /* data pointer of the last emit */
} sink;

static void sink_emit(const char *data, size_t len, void *payload)
{
	sink *s = payload;
	if (s->len + len + 1 > s->cap) {
		s->cap = (s->len + len + 1) * 2;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	memcpy(s->p + s->len, data, len);
	s->len += len;
	s->p[s->len] = '\0';
	s->calls++;
	s->last_ptr = data;
}

static void sink_reset(sink *s)
{
	s->len = 0;
	s->calls = 0;
	if (s->p)
		s->p[0] = '\0';
}

static rn_masker *masker_of(const char *const *secrets)
{
	rn_masker *m = rn_masker_new();
	assert_non_null(m);
	for (size_t i = 0; secrets[i]; i++)
		assert_int_equal(rn_masker_add(m, secrets[i]), 0);
	return m;
}

/* Mask text through a stream cut at the given split points (ascending). */
static char *stream_mask(const rn_masker *m, const char *text, size_t len, const size_t *cuts,
			 size_t ncuts, size_t *outlen)
{
	sink s = { 0 };
	rn_maskstream *st = rn_maskstream_new(m, sink_emit, &s);
	assert_non_null(st);
	size_t prev = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		rn_maskstream_write(st, text + prev, to - prev);
		/* never more than maxlen-1 bytes undecided */
		prev = to;
	}
	rn_maskstream_flush(st);
	rn_maskstream_free(st);
	if (!s.p) {
		s.p = calloc(1, 1);
		assert_non_null(s.p);
	}
	*outlen = s.len;
	return s.p;
}

static int contains(const char *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static char *b64(const char *data, size_t n)
{
	unsigned char *out = malloc(4 * ((n + 2) / 3) + 1);
	assert_non_null(out);
	EVP_EncodeBlock(out, (const unsigned char *)data, (int)n);
	return (char *)out;
}

/* ---- adding secrets --------------------------------------------------------------------- */

static void test_refuse_short(void **state)
{
	(void)state;
	rn_masker *m = rn_masker_new();
	const char *bad[] = { "", "a", "ab", "abc" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rn_error_clear();
		assert_int_equal(rn_masker_add(m, bad[i]), RN_EINVALID);
		assert_string_equal(rn_error_last(), "secret values must be at least 4 characters");
	}
	assert_int_equal(rn_masker_add(m, NULL), RN_EINVALID);
	assert_int_equal(rn_masker_count(m), 0);
	assert_int_equal(rn_masker_maxlen(m), 0);
	/* nothing is masked by a refused value */
	char *out = rn_mask_str(m, "abc abc");
	assert_string_equal(out, "abc abc");
	free(out);

	assert_int_equal(rn_masker_add(m, "abcd"), 0);
	assert_int_equal(rn_masker_count(m), 1);
	assert_true(rn_masker_maxlen(m) >= 4);
	out = rn_mask_str(m, "abc abcd");
	assert_string_equal(out, "abc ***");
	free(out);
	rn_masker_free(m);
	rn_masker_free(NULL);
}

static void test_count_and_maxlen(void **state)
{
	(void)state;
	rn_masker *m = rn_masker_new();
	assert_int_equal(rn_masker_count(m), 0);
	assert_int_equal(rn_masker_maxlen(m), 0);
	assert_int_equal(rn_masker_add(m, "supersecret"), 0);
	assert_int_equal(rn_masker_count(m), 1);
	/* the longest masked string is the padded base64 (16 chars) */
	assert_int_equal(rn_masker_maxlen(m), 16);
	assert_int_equal(rn_masker_add(m, "supersecret"), 0); /* the same value again */
	assert_int_equal(rn_masker_count(m), 1);
	assert_int_equal(rn_masker_add(m, "p@ss w/rd"), 0);
	assert_int_equal(rn_masker_count(m), 2);
	/* p%40ss%20w%2Frd: 15 chars, base64 12 */
	assert_int_equal(rn_masker_maxlen(m), 16);
	rn_masker_free(m);
}

/* ---- one-shot masking, table driven -------------------------------------------------------- */

typedef struct {
	const char *secrets[4];
	const char *in;
	const char *out;
} mask_case;

static const mask_case cases[] = {
	{ { "supersecret" }, "token=supersecret;", "token=***;" },
	{ { "supersecret" }, "supersecret", "***" },
	{ { "supersecret" }, "no secret here", "no secret here" },
	{ { "supersecret" }, "", "" },
	{ { "supersecret" }, "supersecre", "supersecre" },
	{ { "supersecret" }, "SUPERSECRET", "SUPERSECRET" },
	/* adjacent occurrences each become *** */
	{ { "supersecret" }, "supersecretsupersecret", "******" },
	{ { "supersecret" }, "a supersecret b supersecret c", "a *** b *** c" },
	/* base64 padded, unpadded; base64url */
	{ { "supersecret" }, "b64=c3VwZXJzZWNyZXQ=!", "b64=***!" },
	{ { "supersecret" }, "b64=c3VwZXJzZWNyZXQ!", "b64=***!" },
	{ { "hunter2!?" }, "aHVudGVyMiE/", "***" },
	{ { "hunter2!?" }, "aHVudGVyMiE_", "***" },
	{ { ">>>??" }, "x Pj4+Pz8= y", "x *** y" },
	{ { ">>>??" }, "x Pj4-Pz8= y", "x *** y" },
	{ { ">>>??" }, "x Pj4-Pz8 y", "x *** y" },
	/* URL encoding, with %20 and with '+' */
	{ { "p@ss w/rd" }, "u=p%40ss%20w%2Frd&x", "u=***&x" },
	{ { "p@ss w/rd" }, "u=p%40ss+w%2Frd&x", "u=***&x" },
	{ { "p@ss w/rd" }, "raw p@ss w/rd.", "raw ***." },
	{ { "p@ss w/rd" }, "cEBzcyB3L3Jk", "***" },
	/* overlapping occurrences of two secrets: the union is masked once */
	{ { "abcdef", "defghi" }, "xabcdefghix", "x***x" },
	{ { "abcdef", "defghi" }, "abcdefabcdef", "******" },
	{ { "aaaa" }, "aaaaaaa", "***" },
	{ { "aaaa" }, "aaa aaaa aaaaa", "aaa *** ***" },
	/* a secret that is a prefix of another: the longest match wins */
	{ { "pass", "password" }, "password", "***" },
	{ { "pass", "password" }, "passport", "***port" },
	{ { "password", "pass" }, "my password!", "my ***!" },
	{ { "password", "word" }, "swordfish password", "s***fish ***" },
	/* multi-line secrets: the value and every line of 4+ characters */
	{ { "line-one\nline-two\nab" }, "x line-two y", "x *** y" },
	{ { "line-one\nline-two\nab" }, "x line-one\nline-two\nab y", "x *** y" },
	{ { "line-one\nline-two\nab" }, "ab ab", "ab ab" },
	{ { "first\r\nsecond\r\n" }, "[first] [second]", "[***] [***]" },
	/* binary and NUL-free but high bytes */
	{ { "\xff\xfe\xfd\xfc" }, "a\xff\xfe\xfd\xfc" "b", "a***b" },
	{ { NULL }, "nothing to mask", "nothing to mask" },
};

static void test_mask_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const mask_case *c = &cases[i];
		rn_masker *m = masker_of(c->secrets);
		size_t outlen = 99;
		char *out = rn_mask_buf(m, c->in, strlen(c->in), &outlen);
		if (strcmp(out, c->out) != 0)
			fail_msg("case %zu: mask(\"%s\") = \"%s\", want \"%s\"", i, c->in, out, c->out);
		assert_int_equal(outlen, strlen(c->out));
		free(out);
		out = rn_mask_str(m, c->in);
		assert_string_equal(out, c->out);
		free(out);
		/* the stream gives the same result, whole and byte by byte */
		size_t len = strlen(c->in);
		out = stream_mask(m, c->in, len, NULL, 0, &outlen);
		assert_string_equal(out, c->out);
		free(out);
		size_t *cuts = calloc(len + 1, sizeof(size_t));
		for (size_t k = 0; k < len; k++)
			cuts[k] = k + 1;
		out = stream_mask(m, c->in, len, cuts, len ? len - 1 : 0, &outlen);
		assert_string_equal(out, c->out);
		free(out);
		free(cuts);
		rn_masker_free(m);
	}
}

/* base64 of the secret inside a longer base64 stream, at every alignment */
static void test_base64_embedded(void **state)
{
	(void)state;
	const char *secret = "correct horse battery";
	rn_masker *m = rn_masker_new();
	assert_int_equal(rn_masker_add(m, secret), 0);
	for (size_t pre = 0; pre < 6; pre++) {
		for (size_t post = 0; post < 6; post++) {
			char plain[64];
			size_t n = 0;
			for (size_t i = 0; i < pre; i++)
				plain[n++] = (char)('A' + i);
			memcpy(plain + n, secret, strlen(secret));
			n += strlen(secret);
			for (size_t i = 0; i < post; i++)
				plain[n++] = (char)('z' - i);
			char *enc = b64(plain, n);
			char *out = rn_mask_str(m, enc);
			assert_true(contains(out, strlen(out), "***"));
			/* at most 3 characters on each side of the secret's part survive, plus the
			 * characters encoding the prefix and suffix bytes */
			size_t kept = strlen(out) - 3;
			assert_true(kept <= (pre * 8 + 5) / 6 + 2 + (post * 8 + 5) / 6 + 4);
			/* the stable middle of this alignment is gone */
			size_t k = pre % 3, from = (8 * k + 5) / 6, to = 8 * (k + strlen(secret)) / 6;
			char shifted[64] = { 0 };
			memcpy(shifted + k, secret, strlen(secret));
			char *senc = b64(shifted, k + strlen(secret));
			senc[to] = '\0';
			assert_false(contains(out, strlen(out), senc + from));
			free(senc);
			free(out);
			free(enc);
		}
	}
	rn_masker_free(m);
}

/* ---- streaming --------------------------------------------------------------------------- */

typedef struct {
	const char *secrets[4];
	const char *text;
	const char *want;
} split_case;

static const split_case splits[] = {
	{ { "supersecret" }, "log: supersecret and supersecret.", "log: *** and ***." },
	{ { "supersecret" }, "c3VwZXJzZWNyZXQ= c3VwZXJzZWNyZXQ", "*** ***" },
	{ { "abcdef", "defghi" }, "--abcdefghi--abcdef--defghi--", "--***--***--***--" },
	{ { "pass", "password" }, "password passport pas", "*** ***port pas" },
	{ { "aaaa" }, "aaaaaaaaa b aaa", "*** b aaa" },
	{ { "line-one\nline-two" }, "a line-one\nline-two b line-two", "a *** b ***" },
	{ { "p@ss w/rd", "supersecret" }, "p%40ss+w%2Frdsupersecret!", "******!" },
	{ { "abcdXabcdY" }, "abcdXabcdXabcdY", "abcdX***" },
	/* the longest masked string (the URL form) contains no other one */
	{ { "!!!!!!!!" }, "x %21%21%21%21%21%21%21%21 %21%21%21%21%21%21%21%2",
	  "x *** %21%21%21%21%21%21%21%2" },
};

static void check_no_secret(const char *const *secrets, const char *out, size_t n)
{
	for (size_t i = 0; secrets[i]; i++)
		assert_false(contains(out, n, secrets[i]));
}

static void test_split_two_writes(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(splits) / sizeof(splits[0]); c++) {
		const split_case *sc = &splits[c];
		rn_masker *m = masker_of(sc->secrets);
		size_t len = strlen(sc->text);
		char *whole = rn_mask_str(m, sc->text);
		assert_string_equal(whole, sc->want);
		for (size_t i = 0; i <= len; i++) {
			size_t outlen;
			char *out = stream_mask(m, sc->text, len, &i, 1, &outlen);
			if (strcmp(out, sc->want) != 0)
				fail_msg("case %zu split %zu: \"%s\", want \"%s\"", c, i, out, sc->want);
			assert_int_equal(outlen, strlen(sc->want));
			check_no_secret(sc->secrets, out, outlen);
			free(out);
		}
		free(whole);
		rn_masker_free(m);
	}
}

static void test_split_three_writes(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(splits) / sizeof(splits[0]); c++) {
		const split_case *sc = &splits[c];
		rn_masker *m = masker_of(sc->secrets);
		size_t len = strlen(sc->text);
		for (size_t i = 0; i <= len; i++) {
			for (size_t j = i; j <= len; j++) {
				size_t cuts[2] = { i, j }, outlen;
				char *out = stream_mask(m, sc->text, len, cuts, 2, &outlen);
				if (strcmp(out, sc->want) != 0)
					fail_msg("case %zu splits %zu,%zu: \"%s\"", c, i, j, out);
				free(out);
			}
		}
		rn_masker_free(m);
	}
}

static void test_no_secrets_passthrough(void **state)
{
	(void)state;
	rn_masker *m = rn_masker_new();
	sink s = { 0 };
	rn_maskstream *st = rn_maskstream_new(m, sink_emit, &s);
	const char *chunks[] = { "hello ", "wor", "ld\n", ("\x00\x01" "binary") };
	size_t total = 0;
	for (size_t i = 0; i < 4; i++) {
		size_t n = i == 3 ? 8 : strlen(chunks[i]);
		rn_maskstream_write(st, chunks[i], n);
		total += n;
		/* no hold-back: everything is out, straight from the caller's memory */
		assert_int_equal(s.len, total);
		assert_int_equal(s.calls, i + 1);
		assert_ptr_equal(s.last_ptr, chunks[i]);
	}
	rn_maskstream_write(st, "x", 0);
	assert_int_equal(s.calls, 4);
	rn_maskstream_flush(st);
	assert_int_equal(s.len, total);
	assert_memory_equal(s.p, "hello world\n\x00\x01" "binary", total);
	rn_maskstream_free(st);
	char *out = rn_mask_str(m, "plain");
	assert_string_equal(out, "plain");
	free(out);
	free(s.p);
	rn_masker_free(m);
}

static void test_flush_and_holdback(void **state)
{
	(void)state;
	const char *secrets[] = { "SECRET", NULL };
	rn_masker *m = masker_of(secrets);
	size_t maxlen = rn_masker_maxlen(m);
	sink s = { 0 };
	rn_maskstream *st = rn_maskstream_new(m, sink_emit, &s);

	/* a possible start of a secret is held back, the rest goes out at once */
	rn_maskstream_write(st, "my SEC", 6);
	assert_string_equal(s.p, "my ");
	rn_maskstream_write(st, "R", 1);
	assert_string_equal(s.p, "my ");
	rn_maskstream_write(st, "ET is out", 9);
	assert_string_equal(s.p, "my *** is out");
	/* flush releases an incomplete prefix unmasked */
	rn_maskstream_write(st, " SECR", 5);
	assert_string_equal(s.p, "my *** is out ");
	rn_maskstream_flush(st);
	assert_string_equal(s.p, "my *** is out SECR");
	/* flushing twice, or with nothing held, does nothing */
	size_t calls = s.calls;
	rn_maskstream_flush(st);
	assert_int_equal(s.calls, calls);
	/* flush ends the stream: the stream is reusable, and what was flushed is not reconsidered
	 * (callers flush only at the real end of an output) */
	rn_maskstream_write(st, "ET", 2);
	rn_maskstream_flush(st);
	assert_string_equal(s.p, "my *** is out SECRET");
	rn_maskstream_free(st);

	/* held back bytes never exceed maxlen - 1 */
	sink_reset(&s);
	st = rn_maskstream_new(m, sink_emit, &s);
	const char *text = "SSSSSSSSSSSSSSSSSSSSSSSSSSSS SECRE U0VDU NFQ1J TRUNS SECRES SEC";
	size_t len = strlen(text);
	for (size_t i = 0; i < len; i++) {
		rn_maskstream_write(st, text + i, 1);
		assert_true(i + 1 - s.len <= maxlen - 1);
	}
	rn_maskstream_flush(st);
	assert_string_equal(s.p, text);
	rn_maskstream_free(st);

	/* a complete secret that is also a prefix of a longer one is decided at flush */
	const char *two[] = { "pass", "password", NULL };
	rn_masker *m2 = masker_of(two);
	sink_reset(&s);
	st = rn_maskstream_new(m2, sink_emit, &s);
	rn_maskstream_write(st, "pass", 4);
	assert_int_equal(s.len, 0);
	rn_maskstream_flush(st);
	assert_string_equal(s.p, "***");
	rn_maskstream_write(st, "passwor", 7);
	rn_maskstream_write(st, "d!", 2);
	assert_string_equal(s.p, "******!");
	rn_maskstream_free(st);
	/* freeing without flush drops what is held and does not leak */
	st = rn_maskstream_new(m2, sink_emit, &s);
	rn_maskstream_write(st, "passw", 5);
	rn_maskstream_free(st);
	rn_maskstream_free(NULL);
	free(s.p);
	rn_masker_free(m2);
	rn_masker_free(m);
}

/* a secret added while a stream is running is masked from then on */
static void test_add_while_streaming(void **state)
{
	(void)state;
	rn_masker *m = rn_masker_new();
	sink s = { 0 };
	rn_maskstream *st = rn_maskstream_new(m, sink_emit, &s);
	rn_maskstream_write(st, "before token1234 ", 17);
	assert_int_equal(rn_masker_add(m, "token1234"), 0);
	rn_maskstream_write(st, "after token", 11);
	rn_maskstream_write(st, "1234.", 5);
	rn_maskstream_flush(st);
	assert_string_equal(s.p, "before token1234 after ***.");
	rn_maskstream_free(st);
	free(s.p);
	rn_masker_free(m);
}

/* a long secret (a window longer than the search cap), split everywhere */
static void test_long_secret(void **state)
{
	(void)state;
	char secret[101], text[400];
	for (size_t i = 0; i < 100; i++)
		secret[i] = (char)('a' + (i * 7) % 26);
	secret[100] = '\0';
	const char *secrets[] = { secret, NULL };
	rn_masker *m = masker_of(secrets);
	assert_true(rn_masker_maxlen(m) >= 136); /* base64 of 100 bytes */
	size_t n = (size_t)snprintf(text, sizeof(text), "start %s middle %.99s end %s", secret, secret,
				    secret);
	char *whole = rn_mask_buf(m, text, n, NULL);
	char want[300];
	snprintf(want, sizeof(want), "start *** middle %.99s end ***", secret);
	assert_string_equal(whole, want);
	for (size_t i = 0; i <= n; i += 3) {
		size_t outlen;
		char *out = stream_mask(m, text, n, &i, 1, &outlen);
		assert_string_equal(out, want);
		free(out);
	}
	free(whole);
	rn_masker_free(m);
}

/* ---- randomized: against a naive reference ------------------------------------------------- */

/* Over the alphabet {a, b, \n} no base64 or URL form of a secret over {a, b, \n} can occur, so
 * the masked strings that matter are the values and their lines of 4+ characters. */
static char *naive_mask(char **pats, size_t npats, const char *t, size_t n, size_t *outlen)
{
	char *out = malloc(n + 1);
	size_t o = 0, done = 0;
	assert_non_null(out);
	for (size_t s = 0; s < n; s++) {
		size_t best = 0;
		for (size_t k = 0; k < npats; k++) {
			size_t pl = strlen(pats[k]);
			if (pl <= n - s && memcmp(t + s, pats[k], pl) == 0 && pl > best)
				best = pl;
		}
		if (!best)
			continue;
		if (s < done) {
			if (s + best > done)
				done = s + best;
			continue;
		}
		memcpy(out + o, t + done, s - done);
		o += s - done;
		memcpy(out + o, "***", 3);
		o += 3;
		done = s + best;
	}
	if (done < n) {
		memcpy(out + o, t + done, n - done);
		o += n - done;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static void test_random_vs_reference(void **state)
{
	(void)state;
	srand(12345);
	const char alpha[] = "ab\n";
	for (int iter = 0; iter < 400; iter++) {
		rn_masker *m = rn_masker_new();
		char *pats[64];
		size_t npats = 0;
		int nsec = 1 + rand() % 3;
		for (int k = 0; k < nsec; k++) {
			size_t sl = 4 + (size_t)(rand() % 7);
			char *sec = malloc(sl + 1);
			for (size_t i = 0; i < sl; i++)
				sec[i] = alpha[rand() % (iter % 2 ? 3 : 2)];
			sec[sl] = '\0';
			assert_int_equal(rn_masker_add(m, sec), 0);
			pats[npats++] = sec;
			for (char *p = sec, *nl; p; p = nl ? nl + 1 : NULL) {
				nl = strchr(p, '\n');
				size_t ll = nl ? (size_t)(nl - p) : strlen(p);
				if (ll >= 4)
					pats[npats++] = strndup(p, ll);
			}
		}
		size_t n = (size_t)(rand() % 200);
		char *t = malloc(n + 1);
		for (size_t i = 0; i < n; i++)
			t[i] = alpha[rand() % 3];
		t[n] = '\0';
		size_t wantlen, gotlen;
		char *want = naive_mask(pats, npats, t, n, &wantlen);
		char *got = rn_mask_buf(m, t, n, &gotlen);
		assert_int_equal(gotlen, wantlen);
		assert_memory_equal(got, want, wantlen);
		/* random splits */
		size_t cuts[8], nc = (size_t)(rand() % 8);
		for (size_t i = 0; i < nc; i++)
			cuts[i] = n ? (size_t)rand() % (n + 1) : 0;
		for (size_t i = 1; i < nc; i++)
			for (size_t j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
				size_t x = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = x;
			}
		free(got);
		got = stream_mask(m, t, n, cuts, nc, &gotlen);
		assert_int_equal(gotlen, wantlen);
		assert_memory_equal(got, want, wantlen);
		for (size_t k = 0; k < npats; k++)
			assert_true(memmem(got, gotlen, pats[k], strlen(pats[k])) == NULL);
		free(got);
		free(want);
		free(t);
		for (size_t k = 0; k < npats; k++)
			free(pats[k]);
		rn_masker_free(m);
	}
}

/* a long text with secrets at chunk boundaries of the internal scanner */
static void test_large_text(void **state)
{
	(void)state;
	const char *secrets[] = { "0123456789abcdef", "fedcba9876543210", NULL };
	rn_masker *m = masker_of(secrets);
	size_t n = 1024 * 1024;
	char *t = malloc(n);
	for (size_t i = 0; i < n; i++)
		t[i] = (char)('A' + i % 23);
	size_t at[] = { 0, 100, 65536 - 20, 65536 + 10, 131072 - 8, 131072 + 200, 262144 - 1, n - 16 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		memcpy(t + at[i], secrets[i % 2], 16);
	size_t outlen;
	char *whole = rn_mask_buf(m, t, n, &outlen);
	assert_int_equal(outlen, n - 8 * 13);
	check_no_secret(secrets, whole, outlen);
	size_t cuts[] = { 1, 4096, 65536 - 3, 100000, 131072 + 7, 500000, n - 5 };
	size_t slen;
	char *s = stream_mask(m, t, n, cuts, sizeof(cuts) / sizeof(cuts[0]), &slen);
	assert_int_equal(slen, outlen);
	assert_memory_equal(s, whole, outlen);
	free(s);
	free(whole);
	free(t);
	rn_masker_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refuse_short),
		cmocka_unit_test(test_count_and_maxlen),
		cmocka_unit_test(test_mask_table),
		cmocka_unit_test(test_base64_embedded),
		cmocka_unit_test(test_split_two_writes),
		cmocka_unit_test(test_split_three_writes),
		cmocka_unit_test(test_no_secrets_passthrough),
		cmocka_unit_test(test_flush_and_holdback),
		cmocka_unit_test(test_add_while_streaming),
		cmocka_unit_test(test_long_secret),
		cmocka_unit_test(test_random_vs_reference),
		cmocka_unit_test(test_large_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
