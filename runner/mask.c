/* mask.c - secret masking: every occurrence of a masked string is replaced by "***".
 *
 * The masker holds the secret values and the strings derived from them (base64 at the three
 * alignments, base64url, URL-encoded forms, lines of multi-line values). Output is defined as:
 * take every occurrence [start, end) of every masked string, merge occurrences that overlap (in
 * start order, an occurrence starting before the end of the current region extends it) and
 * replace each merged region by "***". The stream produces exactly that output for any split of
 * the input into writes: after a write it decides every byte before the longest suffix that is a
 * proper prefix of some masked string, and holds back only that suffix (< maxlen bytes).
 *
 * Search: the masked strings are grouped by a "root": a masked string that contains no other
 * masked string. Every masked string contains some root at a known offset, so finding the roots
 * finds every candidate, and the other members of a group are confirmed with memcmp (a value's
 * base64 prefixes and padded forms share one root). The roots are found in one pass over each
 * chunk with Wu-Manber: a window as long as the shortest root (capped) slides over the text and a
 * table indexed by the hash of the 2-3 bytes at its end says how far it may jump; only where the
 * table says 0 are the roots of that bucket compared with memcmp. On log text the window jumps
 * most of its length per step, largely independent of the number of secrets. */
#include "mask.h"
#include "error.h"
#include "util.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define MIN_SECRET 4                /* shorter values are refused */
#define SCAN_CHUNK (128 * 1024)     /* input scanned at a time (bounds the occurrence list) */
#define MASK_TEXT "***"
#define WM_BITS 15                  /* Wu-Manber block hash table size */
#define WM_HASH2(a, b) ((unsigned)(a) << 7 ^ (unsigned)(b))
#define WM_HASH3(a, b, c) \
	(((unsigned)(a) << 10 ^ (unsigned)(b) << 5 ^ (unsigned)(c)) & ((1u << WM_BITS) - 1))
#define WM_MAXWIN 64                /* the longest Wu-Manber window (shifts fit in a byte) */

typedef struct {
	char *s;
	size_t len;
	size_t root; /* index (in pats) of the root found inside this string */
	size_t off;  /* offset of that root in this string */
} pattern;

typedef struct {
	unsigned h; /* block hash */
	size_t r;   /* root number */
} wm_end;

struct rn_masker {
	char **values; /* the secret values, as added */
	size_t nvalues, capvalues;
	pattern *pats; /* every masked string, deduplicated */
	size_t npats, cappats;
	size_t maxlen;
	/* search plan, rebuilt after every add */
	size_t *roots; /* pattern indexes of the roots */
	size_t nroots;
	size_t *gstart;  /* members of root r: gmember[gstart[r] .. gstart[r+1]) */
	size_t *gmember; /* pattern indexes, grouped by root (the root itself first) */
	size_t fstart[257]; /* patterns starting with byte c: fmember[fstart[c] .. fstart[c+1]) */
	size_t *fmember;
	unsigned char first[256]; /* 1 if some pattern starts with the byte */
	/* Wu-Manber tables over the roots */
	size_t wm_m;       /* window: the length of the shortest root (at most WM_MAXWIN) */
	unsigned wm_b;     /* block length, 2 or 3 */
	uint8_t *wm_shift; /* block hash -> safe shift */
	wm_end *wm_ends;   /* per root: hash of the block ending its window prefix, by hash */
};

typedef struct {
	size_t s, e;
} occ;

struct rn_maskstream {
	const rn_masker *m;
	rn_mask_emit emit;
	void *payload;
	char *hold; /* held-back bytes: a proper prefix of some masked string */
	size_t hlen, hcap;
	size_t cov;  /* hold[0..cov) is inside a region already emitted as "***" */
	char *tmp;   /* scratch: the seam between hold and new data, the tail */
	size_t tcap;
	occ *occ;    /* occurrences of the chunk being processed */
	size_t nocc, occcap;
};

/* ---- the masker ------------------------------------------------------------------------- */

rn_masker *rn_masker_new(void)
{
	return rn_xcalloc(1, sizeof(rn_masker));
}

static void plan_free(rn_masker *m)
{
	free(m->roots);
	free(m->gstart);
	free(m->gmember);
	free(m->fmember);
	free(m->wm_shift);
	free(m->wm_ends);
	m->roots = m->gstart = m->gmember = m->fmember = NULL;
	m->wm_shift = NULL;
	m->wm_ends = NULL;
	m->nroots = 0;
}

void rn_masker_free(rn_masker *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nvalues; i++)
		free(m->values[i]);
	for (size_t i = 0; i < m->npats; i++)
		free(m->pats[i].s);
	free(m->values);
	free(m->pats);
	plan_free(m);
	free(m);
}

size_t rn_masker_count(const rn_masker *m)
{
	return m ? m->nvalues : 0;
}

size_t rn_masker_maxlen(const rn_masker *m)
{
	return m ? m->maxlen : 0;
}

/* Add one masked string (copied) unless it is too short or already present. */
static void pat_add(rn_masker *m, const char *s, size_t len)
{
	if (len < MIN_SECRET)
		return;
	for (size_t i = 0; i < m->npats; i++)
		if (m->pats[i].len == len && memcmp(m->pats[i].s, s, len) == 0)
			return;
	rn_grow(&m->pats, &m->cappats, m->npats + 1, sizeof(pattern));
	pattern *p = &m->pats[m->npats++];
	p->s = rn_xstrndup(s, len);
	p->len = len;
	p->root = 0;
	p->off = 0;
	if (len > m->maxlen)
		m->maxlen = len;
}

typedef struct {
	size_t len, idx;
} bylen;

static int cmp_len(const void *a, const void *b)
{
	const bylen *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static unsigned wm_hash(const rn_masker *m, const unsigned char *end)
{
	return m->wm_b == 2 ? WM_HASH2(end[-1], end[0]) : WM_HASH3(end[-2], end[-1], end[0]);
}

static int cmp_wm_end(const void *a, const void *b)
{
	const wm_end *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->r < y->r ? -1 : x->r > y->r;
}

static void wm_build(rn_masker *m)
{
	size_t hsize = (size_t)1 << WM_BITS;
	size_t wm = WM_MAXWIN;
	for (size_t r = 0; r < m->nroots; r++)
		if (m->pats[m->roots[r]].len < wm)
			wm = m->pats[m->roots[r]].len;
	m->wm_m = wm;
	m->wm_b = wm < 6 ? 2 : 3;
	m->wm_shift = rn_xmalloc(hsize);
	memset(m->wm_shift, (int)(wm - m->wm_b + 1), hsize);
	m->wm_ends = rn_xcalloc(m->nroots, sizeof(wm_end));
	for (size_t r = 0; r < m->nroots; r++) {
		const unsigned char *p = (const unsigned char *)m->pats[m->roots[r]].s;
		for (size_t j = m->wm_b - 1; j < wm; j++) {
			unsigned h = wm_hash(m, p + j);
			if (m->wm_shift[h] > wm - 1 - j)
				m->wm_shift[h] = (uint8_t)(wm - 1 - j);
		}
		m->wm_ends[r].h = wm_hash(m, p + wm - 1);
		m->wm_ends[r].r = r;
	}
	qsort(m->wm_ends, m->nroots, sizeof(wm_end), cmp_wm_end);
}

static void plan_build(rn_masker *m)
{
	plan_free(m);
	size_t n = m->npats;
	bylen *sorted = rn_xcalloc(n, sizeof(bylen));
	for (size_t i = 0; i < n; i++) {
		sorted[i].len = m->pats[i].len;
		sorted[i].idx = i;
	}
	qsort(sorted, n, sizeof(bylen), cmp_len);
	size_t *order = rn_xcalloc(n, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		order[i] = sorted[i].idx;
	free(sorted);

	/* roots: patterns that contain no shorter pattern (patterns are distinct) */
	m->roots = rn_xcalloc(n, sizeof(size_t));
	size_t *rootno = rn_xcalloc(n, sizeof(size_t)); /* pattern index -> root number */
	for (size_t k = 0; k < n; k++) {
		pattern *a = &m->pats[order[k]];
		size_t r;
		for (r = 0; r < m->nroots; r++) {
			const pattern *root = &m->pats[m->roots[r]];
			const char *hit = memmem(a->s, a->len, root->s, root->len);
			if (hit) {
				a->root = m->roots[r];
				a->off = (size_t)(hit - a->s);
				break;
			}
		}
		if (r == m->nroots) {
			a->root = order[k];
			a->off = 0;
			m->roots[m->nroots++] = order[k];
		}
		rootno[order[k]] = r;
	}

	/* group members by root, the root first */
	m->gstart = rn_xcalloc(m->nroots + 1, sizeof(size_t));
	m->gmember = rn_xcalloc(n, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		m->gstart[rootno[i] + 1]++;
	for (size_t r = 0; r < m->nroots; r++)
		m->gstart[r + 1] += m->gstart[r];
	size_t *fill = rn_xcalloc(m->nroots + 1, sizeof(size_t));
	for (size_t r = 0; r < m->nroots; r++) {
		m->gmember[m->gstart[r]] = m->roots[r];
		fill[r] = m->gstart[r] + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (m->pats[i].root != i)
			m->gmember[fill[rootno[i]]++] = i;

	/* patterns by first byte (for the hold-back test) */
	memset(m->fstart, 0, sizeof(m->fstart));
	memset(m->first, 0, sizeof(m->first));
	m->fmember = rn_xcalloc(n, sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)m->pats[i].s[0];
		m->fstart[c + 1]++;
		m->first[c] = 1;
	}
	for (size_t c = 0; c < 256; c++)
		m->fstart[c + 1] += m->fstart[c];
	size_t ffill[256];
	memcpy(ffill, m->fstart, sizeof(ffill));
	for (size_t i = 0; i < n; i++)
		m->fmember[ffill[(unsigned char)m->pats[i].s[0]]++] = i;

	wm_build(m);
	free(fill);
	free(rootno);
	free(order);
}

/* Standard base64 (padded) of data[0..n) into a new string via OpenSSL; *outlen its length. */
static char *b64_encode(const unsigned char *data, size_t n, size_t *outlen)
{
	unsigned char *out = rn_xmalloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock(out, data, (int)n);
	*outlen = len > 0 ? (size_t)len : 0;
	out[*outlen] = '\0';
	return (char *)out;
}

/* Add s and its base64url spelling ('+' -> '-', '/' -> '_'). */
static void add_b64_pair(rn_masker *m, char *s, size_t len)
{
	pat_add(m, s, len);
	char *u = rn_xstrndup(s, len);
	for (size_t i = 0; i < len; i++)
		u[i] = u[i] == '+' ? '-' : u[i] == '/' ? '_' : u[i];
	pat_add(m, u, len);
	free(u);
}

/* The value's base64 (padded, unpadded, base64url) and, for the value embedded in a longer
 * base64 stream at offsets 0, 1 and 2 bytes, the characters that depend on its bytes only. */
static void add_base64_forms(rn_masker *m, const char *value, size_t n)
{
	unsigned char *in = rn_xmalloc(n + 2);
	for (size_t k = 0; k < 3; k++) {
		memset(in, 0, k);
		memcpy(in + k, value, n);
		size_t elen;
		char *enc = b64_encode(in, n + k, &elen);
		if (k == 0) {
			add_b64_pair(m, enc, elen);
			size_t un = elen;
			while (un > 0 && enc[un - 1] == '=')
				un--;
			add_b64_pair(m, enc, un);
		}
		/* char i covers bits [6i, 6i+6): stable when inside the value's bits [8k, 8(k+n)) */
		size_t from = (8 * k + 5) / 6, to = 8 * (k + n) / 6;
		if (to > from && to - from >= MIN_SECRET)
			add_b64_pair(m, enc + from, to - from);
		free(enc);
	}
	free(in);
}

/* Percent-encode everything but A-Za-z0-9-._~ (spaces as '+' when plus is set). */
static void add_url_form(rn_masker *m, const char *value, size_t n, int plus)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = rn_xmalloc(3 * n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else if (plus && c == ' ') {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	pat_add(m, out, o);
	free(out);
}

int rn_masker_add(rn_masker *m, const char *value)
{
	size_t n = value ? strlen(value) : 0;
	if (n < MIN_SECRET) {
		rn_error_set("secret values must be at least %d characters", MIN_SECRET);
		return RN_EINVALID;
	}
	if (n > INT_MAX / 4) {
		rn_error_set("secret value is too long (%zu bytes)", n);
		return RN_ETOOBIG;
	}
	for (size_t i = 0; i < m->nvalues; i++)
		if (strcmp(m->values[i], value) == 0)
			return 0;
	rn_grow(&m->values, &m->capvalues, m->nvalues + 1, sizeof(char *));
	m->values[m->nvalues++] = rn_xstrdup(value);

	pat_add(m, value, n);
	add_base64_forms(m, value, n);
	add_url_form(m, value, n, 0);
	add_url_form(m, value, n, 1);
	if (memchr(value, '\n', n)) {
		const char *p = value, *end = value + n;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *e = nl ? nl : end;
			size_t l = (size_t)(e - p);
			if (l > 0 && p[l - 1] == '\r')
				l--;
			pat_add(m, p, l);
			p = nl ? nl + 1 : end;
		}
	}
	plan_build(m);
	return 0;
}

/* ---- matching ---------------------------------------------------------------------------- */

/* Root r occurs at s in buf[0..n): record the occurrences of its group members that start in
 * [lo, hi) and lie inside buf. */
static void root_hit(rn_maskstream *st, const char *buf, size_t n, size_t lo, size_t hi, size_t r,
		     size_t s)
{
	const rn_masker *m = st->m;
	for (size_t g = m->gstart[r]; g < m->gstart[r + 1]; g++) {
		const pattern *a = &m->pats[m->gmember[g]];
		if (s < lo + a->off)
			continue;
		size_t start = s - a->off;
		if (start >= hi || a->len > n - start)
			continue;
		if (g != m->gstart[r] && memcmp(buf + start, a->s, a->len) != 0)
			continue;
		rn_grow(&st->occ, &st->occcap, st->nocc + 1, sizeof(occ));
		st->occ[st->nocc].s = start;
		st->occ[st->nocc].e = start + a->len;
		st->nocc++;
	}
}

/* Append every occurrence [a, a+len) of a masked string inside buf[0..n) with lo <= a < hi. */
static void scan(rn_maskstream *st, const char *buf, size_t n, size_t lo, size_t hi)
{
	const rn_masker *m = st->m;
	if (hi > n)
		hi = n;
	if (lo >= hi)
		return;
	/* an occurrence starting before hi ends at most at hi - 1 + maxlen, and so does its root */
	size_t wend = n - hi >= m->maxlen - 1 ? hi + m->maxlen - 1 : n;
	/* Wu-Manber: slide a window of wm_m bytes; the block of wm_b bytes at its end tells how far
	 * the window can move before it can end on the wm_m-byte prefix of some root */
	const unsigned char *t = (const unsigned char *)buf;
	size_t wm = m->wm_m;
	const uint8_t *shift = m->wm_shift;
	for (size_t pos = lo + wm - 1; pos < wend;) {
		unsigned h = m->wm_b == 2 ? WM_HASH2(t[pos - 1], t[pos])
					  : WM_HASH3(t[pos - 2], t[pos - 1], t[pos]);
		unsigned sh = shift[h];
		if (sh) {
			pos += sh;
			continue;
		}
		size_t start = pos + 1 - wm;
		/* the roots whose window ends in this block: binary search the sorted hashes */
		size_t a = 0, b = m->nroots;
		while (a < b) {
			size_t mid = a + (b - a) / 2;
			if (m->wm_ends[mid].h < h)
				a = mid + 1;
			else
				b = mid;
		}
		for (size_t k = a; k < m->nroots && m->wm_ends[k].h == h; k++) {
			size_t r = m->wm_ends[k].r;
			const pattern *root = &m->pats[m->roots[r]];
			if (root->len <= wend - start && memcmp(t + start, root->s, root->len) == 0)
				root_hit(st, buf, n, lo, hi, r, start);
		}
		pos++;
	}
}

static int cmp_occ(const void *a, const void *b)
{
	const occ *x = a, *y = b;
	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	return x->e > y->e ? -1 : x->e < y->e;
}

static void sort_occ(rn_maskstream *st)
{
	for (size_t i = 1; i < st->nocc; i++) {
		if (st->occ[i].s < st->occ[i - 1].s) {
			qsort(st->occ, st->nocc, sizeof(occ), cmp_occ);
			return;
		}
	}
}

/* The start (in the hold+data coordinates) of the longest suffix of hold+data that is a proper
 * prefix of some masked string; hlen + len if there is none. */
static size_t holdback_start(rn_maskstream *st, const char *data, size_t len)
{
	const rn_masker *m = st->m;
	size_t total = st->hlen + len;
	size_t t = m->maxlen - 1 < total ? m->maxlen - 1 : total;
	const char *tail;
	if (len >= t) {
		tail = data + len - t;
	} else {
		rn_grow(&st->tmp, &st->tcap, t, 1);
		size_t fromhold = t - len;
		memcpy(st->tmp, st->hold + st->hlen - fromhold, fromhold);
		if (len)
			memcpy(st->tmp + fromhold, data, len);
		tail = st->tmp;
	}
	for (size_t i = 0; i < t; i++) {
		unsigned char c = (unsigned char)tail[i];
		if (!m->first[c])
			continue;
		size_t rem = t - i;
		for (size_t f = m->fstart[c]; f < m->fstart[c + 1]; f++) {
			const pattern *a = &m->pats[m->fmember[f]];
			if (a->len > rem && memcmp(a->s, tail + i, rem) == 0)
				return total - rem;
		}
	}
	return total;
}

/* Emit the plain bytes [a, b) of hold+data. */
static void emit_plain(rn_maskstream *st, const char *data, size_t a, size_t b)
{
	size_t h = st->hlen;
	if (a >= b)
		return;
	if (a < h) {
		size_t e = b < h ? b : h;
		st->emit(st->hold + a, e - a, st->payload);
		a = e;
	}
	if (b > a)
		st->emit(data + (a - h), b - a, st->payload);
}

/* Merge the sorted occurrences (shifted by base) into the output; *done is the first byte of
 * hold+data not yet emitted or covered. */
static void apply_occ(rn_maskstream *st, const char *data, size_t base, size_t *done)
{
	for (size_t i = 0; i < st->nocc; i++) {
		size_t s = st->occ[i].s + base, e = st->occ[i].e + base;
		if (s < *done) {
			if (e > *done)
				*done = e;
			continue;
		}
		emit_plain(st, data, *done, s);
		st->emit(MASK_TEXT, sizeof(MASK_TEXT) - 1, st->payload);
		*done = e;
	}
	st->nocc = 0;
}

static void process(rn_maskstream *st, const char *data, size_t len, int final)
{
	const rn_masker *m = st->m;
	if (m->npats == 0 && st->hlen == 0) {
		if (len)
			st->emit(data, len, st->payload);
		return;
	}
	size_t H = st->hlen, N = H + len, ml = m->maxlen;
	size_t h = final ? N : holdback_start(st, data, len);
	size_t done = st->cov;

	/* occurrences starting in the held-back bytes: search hold + the start of data */
	size_t hs = H < h ? H : h;
	if (hs > 0) {
		size_t extra = len < ml - 1 ? len : ml - 1;
		rn_grow(&st->tmp, &st->tcap, H + extra, 1);
		memcpy(st->tmp, st->hold, H);
		if (extra)
			memcpy(st->tmp + H, data, extra);
		scan(st, st->tmp, H + extra, 0, hs);
		sort_occ(st);
		apply_occ(st, data, 0, &done);
	}
	/* occurrences starting in data, chunk by chunk */
	size_t hd = h > H ? h - H : 0;
	for (size_t cs = 0; cs < hd; cs += SCAN_CHUNK) {
		size_t ce = hd - cs > SCAN_CHUNK ? cs + SCAN_CHUNK : hd;
		scan(st, data, len, cs, ce);
		if (st->nocc) {
			sort_occ(st);
			apply_occ(st, data, H, &done);
		}
	}
	emit_plain(st, data, done, h);

	/* keep hold+data[h..N) */
	size_t keep = N - h;
	rn_grow(&st->hold, &st->hcap, keep + 1, 1);
	if (h < H) {
		memmove(st->hold, st->hold + h, H - h);
		if (len)
			memcpy(st->hold + (H - h), data, len);
	} else if (keep) {
		memcpy(st->hold, data + (h - H), keep);
	}
	st->hlen = keep;
	st->cov = done > h ? done - h : 0;
}

rn_maskstream *rn_maskstream_new(const rn_masker *m, rn_mask_emit emit, void *payload)
{
	rn_maskstream *st = rn_xcalloc(1, sizeof(rn_maskstream));
	st->m = m;
	st->emit = emit;
	st->payload = payload;
	return st;
}

void rn_maskstream_write(rn_maskstream *s, const char *data, size_t len)
{
	if (len == 0)
		return;
	process(s, data, len, 0);
}

void rn_maskstream_flush(rn_maskstream *s)
{
	if (s->hlen)
		process(s, NULL, 0, 1);
	s->hlen = 0;
	s->cov = 0;
}

void rn_maskstream_free(rn_maskstream *s)
{
	if (!s)
		return;
	free(s->hold);
	free(s->tmp);
	free(s->occ);
	free(s);
}

/* ---- one-shot masking ------------------------------------------------------------------- */

typedef struct {
	char *p;
	size_t len, cap;
} outbuf;

static void out_append(const char *data, size_t len, void *payload)
{
	outbuf *o = payload;
	rn_grow(&o->p, &o->cap, o->len + len + 1, 1);
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

char *rn_mask_buf(const rn_masker *m, const char *s, size_t len, size_t *outlen)
{
	outbuf o = { NULL, 0, 0 };
	rn_grow(&o.p, &o.cap, len + 1, 1); /* masking never makes the text longer */
	rn_maskstream st = { 0 };
	st.m = m;
	st.emit = out_append;
	st.payload = &o;
	if (len)
		process(&st, s, len, 1);
	free(st.hold);
	free(st.tmp);
	free(st.occ);
	o.p[o.len] = '\0';
	if (outlen)
		*outlen = o.len;
	return o.p;
}

char *rn_mask_str(const rn_masker *m, const char *s)
{
	return rn_mask_buf(m, s, strlen(s), NULL);
}
