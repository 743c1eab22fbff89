/* fuzz_mask.c - libFuzzer property test of secret masking.
 *
 * From the input: 1-3 secrets of 4-19 bytes, up to 7 split points, and an output text in which
 * the bytes 0x01 and 0x02 are commands that paste a (derived form of a / the start of a) secret.
 * The text goes through rn_maskstream in the given splits; the concatenated output must equal
 * rn_mask_buf of the whole text and contain no secret value, base64 or URL form.
 *
 * Secrets contain no '*' and no NUL: a secret without '*' that occurs in the output lies inside
 * one unmasked stretch of the input, so finding it there is a real leak (a secret made of "***"
 * and neighbouring text would not be).
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Irunner tests/fuzz/fuzz_mask.c
 *        runner/mask.c runner/error.c runner/util.c runner/buf.c -lcrypto */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TEXT 4096

typedef struct {
	char *p;
	size_t len, cap;
} sink;

static void sink_emit(const char *d, size_t n, void *payload)
{
	sink *s = payload;
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2 + 16;
		s->p = realloc(s->p, s->cap);
		if (!s->p)
			abort();
	}
	if (n)
		memcpy(s->p + s->len, d, n);
	s->len += n;
}

/* the forms of a secret checked in the output and pasted into the text */
enum { F_VALUE, F_B64, F_B64URL, F_URL, F_NFORMS };

static size_t form_of(const char *sec, int form, char *out)
{
	size_t n = strlen(sec);
	if (form == F_VALUE) {
		memcpy(out, sec, n);
		return n;
	}
	if (form == F_B64 || form == F_B64URL) {
		int len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)sec, (int)n);
		for (int i = 0; form == F_B64URL && i < len; i++)
			out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
		return (size_t)len;
	}
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)sec[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;
	if (size < 1)
		return 0;
	int nsec = 1 + data[i++] % 3;
	char secrets[3][20];
	int got = 0;
	for (int k = 0; k < nsec && i < size; k++) {
		size_t l = 4 + data[i++] % 16;
		if (size - i < l)
			break;
		for (size_t j = 0; j < l; j++) {
			char c = (char)data[i + j];
			secrets[k][j] = c == '\0' ? 'Z' : c == '*' ? '+' : c;
		}
		secrets[k][l] = '\0';
		i += l;
		got++;
	}
	if (got == 0 || i >= size)
		return 0;
	nsec = got;
	size_t ncuts = data[i++] % 8;
	size_t rawcuts[8];
	for (size_t k = 0; k < ncuts; k++) {
		if (size - i < 2)
			return 0;
		rawcuts[k] = (size_t)data[i] << 8 | data[i + 1];
		i += 2;
	}

	/* the text, with paste commands expanded */
	char *text = malloc(MAX_TEXT + 64);
	char form[64];
	size_t n = 0;
	while (i < size && n < MAX_TEXT) {
		uint8_t c = data[i++];
		if ((c == 1 || c == 2) && i < size) {
			uint8_t x = data[i++];
			const char *sec = secrets[x % nsec];
			size_t fl = form_of(sec, (x / 3) % F_NFORMS, form);
			if (c == 2) /* a prefix only */
				fl = fl * (size_t)((x >> 5) + 1) / 9;
			memcpy(text + n, form, fl);
			n += fl;
			continue;
		}
		text[n++] = (char)c;
	}

	rn_masker *m = rn_masker_new();
	for (int k = 0; k < nsec; k++)
		if (rn_masker_add(m, secrets[k]) != 0)
			abort();

	size_t cuts[8];
	for (size_t k = 0; k < ncuts; k++)
		cuts[k] = rawcuts[k] % (n + 1);
	qsort(cuts, ncuts, sizeof(size_t), cmp_size);

	sink s = { NULL, 0, 0 };
	rn_maskstream *st = rn_maskstream_new(m, sink_emit, &s);
	size_t prev = 0;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		rn_maskstream_write(st, text + prev, to - prev);
		prev = to;
	}
	rn_maskstream_flush(st);
	rn_maskstream_free(st);

	size_t wlen;
	char *whole = rn_mask_buf(m, text, n, &wlen);
	if (wlen != s.len || (wlen && memcmp(whole, s.p, wlen) != 0))
		abort(); /* the stream disagrees with one-shot masking */
	if (wlen > n)
		abort(); /* masking never lengthens the text */
	for (int k = 0; k < nsec; k++) {
		for (int f = 0; f < F_NFORMS; f++) {
			size_t fl = form_of(secrets[k], f, form);
			if (s.len >= fl && memmem(s.p, s.len, form, fl))
				abort(); /* a secret leaked */
		}
	}
	free(whole);
	free(s.p);
	free(text);
	rn_masker_free(m);
	return 0;
}
