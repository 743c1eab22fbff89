/* expr.c - the `${{ }}` expression language: an on-demand lexer, a recursive-descent parser that
 * builds a small AST (with a nesting cap), and an evaluator over jansson values that follows the
 * GitHub Actions rules for coercion, comparison, property access, filters and functions. */
#include "expr.h"
#include "buf.h"
#include "error.h"
#include "glob.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

/* Deepest array/object nesting toJSON() and friends will print (fromJSON() stops at 2048). */
#define JSON_MAX_LEVEL 4096

/* ------------------------------------------------------------------------------------------ */
/* Small ASCII helpers (locale independent). */

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int upper(int c)
{
	return c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c;
}

static int hex_val(int c)
{
	if (is_digit(c))
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Case-insensitive (ASCII) ordinal comparison of two byte strings; like .NET's OrdinalIgnoreCase
 * it compares upper-cased bytes (so 'a' < '_', as on GitHub). */
static int mem_icmp(const char *a, size_t an, const char *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	for (size_t i = 0; i < n; i++) {
		int x = upper((unsigned char)a[i]), y = upper((unsigned char)b[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return an == bn ? 0 : an < bn ? -1 : 1;
}

static int mem_ieq(const char *a, const char *b, size_t n)
{
	return mem_icmp(a, n, b, n) == 0;
}

static char *lowered(const char *s, size_t n)
{
	char *p = rn_xmalloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)lower((unsigned char)s[i]);
	return p;
}

/* 1 if needle occurs in hay, ignoring ASCII case (linear time: glibc memmem is two-way). */
static int mem_icontains(const char *hay, size_t hn, const char *needle, size_t nn)
{
	if (nn == 0)
		return 1;
	if (nn > hn)
		return 0;
	char *h = lowered(hay, hn), *n = lowered(needle, nn);
	int r = memmem(h, hn, n, nn) != NULL;
	free(h);
	free(n);
	return r;
}

static json_t *jcheck(json_t *v)
{
	if (!v)
		abort(); /* jansson only fails here on out-of-memory */
	return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Numbers. */

/* Parse a JS-style number: [+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?,
 * [+-]? 0x.. / 0o.. / 0b.., or [+-]? Infinity. The whole of t[0..n) must match. 0 or -1. */
static int parse_number(const char *t, size_t n, double *out)
{
	size_t i = 0;
	int neg = 0;
	if (i < n && (t[i] == '+' || t[i] == '-')) {
		neg = t[i] == '-';
		i++;
	}
	if (n - i == 8 && memcmp(t + i, "Infinity", 8) == 0) {
		*out = neg ? -INFINITY : INFINITY;
		return 0;
	}
	if (n - i > 2 && t[i] == '0') {
		int c = lower((unsigned char)t[i + 1]);
		int base = c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
		if (base) {
			double d = 0;
			for (size_t j = i + 2; j < n; j++) {
				int v = hex_val((unsigned char)t[j]);
				if (v < 0 || v >= base)
					return -1;
				d = d * base + v;
			}
			*out = neg ? -d : d;
			return 0;
		}
	}
	size_t start = i, digits = 0;
	while (i < n && is_digit((unsigned char)t[i])) {
		i++;
		digits++;
	}
	if (i < n && t[i] == '.') {
		i++;
		while (i < n && is_digit((unsigned char)t[i])) {
			i++;
			digits++;
		}
	}
	if (!digits)
		return -1;
	if (i < n && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		if (i < n && (t[i] == '+' || t[i] == '-'))
			i++;
		size_t ed = 0;
		while (i < n && is_digit((unsigned char)t[i])) {
			i++;
			ed++;
		}
		if (!ed)
			return -1;
	}
	if (i != n)
		return -1;
	char small[64];
	char *buf = n - start < sizeof(small) ? small : rn_xmalloc(n - start + 1);
	memcpy(buf, t + start, n - start);
	buf[n - start] = '\0';
	double d = strtod(buf, NULL);
	if (buf != small)
		free(buf);
	*out = neg ? -d : d;
	return 0;
}

/* A string as a number, as JavaScript's Number(): trimmed, "" is 0, unparseable is NaN. */
static double str_to_num(const char *s, size_t n)
{
	while (n && is_space((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && is_space((unsigned char)s[n - 1]))
		n--;
	if (!n)
		return 0;
	double d;
	return parse_number(s, n, &d) == 0 ? d : NAN;
}

/* A value as a number: null 0, bool 0/1, strings parsed, arrays/objects NaN. */
static double to_num(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return 0;
	case JSON_TRUE:
		return 1;
	case JSON_INTEGER:
	case JSON_REAL:
		return json_number_value(v);
	case JSON_STRING:
		return str_to_num(json_string_value(v), json_string_length(v));
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	return NAN;
}

/* A finite number as a value: integral values that fit exactly become integers. */
static json_t *num_value(double d)
{
	if (d == floor(d) && fabs(d) <= 9007199254740992.0)
		return jcheck(json_integer((json_int_t)d));
	return jcheck(json_real(d));
}

/* A double as JavaScript's Number.prototype.toString() prints it: the shortest digits that
 * round-trip, plain notation for 1e-7 < |d| < 1e21, otherwise d.ddde+x. */
static void fmt_double(char *out, size_t cap, double d)
{
	if (isnan(d)) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (isinf(d)) {
		snprintf(out, cap, "%s", d < 0 ? "-Infinity" : "Infinity");
		return;
	}
	if (d == 0) {
		snprintf(out, cap, "0");
		return;
	}
	char e[48];
	for (int p = 1; p <= 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, d);
		if (strtod(e, NULL) == d)
			break;
	}
	/* e is [-]D[.DDD]e[+-]XX */
	char digits[24];
	size_t k = 0;
	const char *q = e;
	int neg = *q == '-';
	if (neg)
		q++;
	for (; *q && *q != 'e'; q++)
		if (is_digit((unsigned char)*q) && k < sizeof(digits) - 1)
			digits[k++] = *q;
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';
	int x = *q == 'e' ? atoi(q + 1) : 0;
	int n = x + 1; /* value = 0.digits * 10^n */
	rn_buf b = RN_BUF_INIT(64);
	if (neg)
		rn_buf_putc(&b, '-');
	if ((int)k <= n && n <= 21) {
		rn_buf_add(&b, digits, k);
		for (int i = (int)k; i < n; i++)
			rn_buf_putc(&b, '0');
	} else if (0 < n && n <= 21) {
		rn_buf_add(&b, digits, (size_t)n);
		rn_buf_putc(&b, '.');
		rn_buf_add(&b, digits + n, k - (size_t)n);
	} else if (-6 < n && n <= 0) {
		rn_buf_puts(&b, "0.");
		for (int i = 0; i < -n; i++)
			rn_buf_putc(&b, '0');
		rn_buf_add(&b, digits, k);
	} else {
		rn_buf_putc(&b, digits[0]);
		if (k > 1) {
			rn_buf_putc(&b, '.');
			rn_buf_add(&b, digits + 1, k - 1);
		}
		rn_buf_printf(&b, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
	}
	snprintf(out, cap, "%s", rn_buf_cstr(&b));
	rn_buf_free(&b);
}

static void fmt_number(char *out, size_t cap, const json_t *v)
{
	if (json_is_integer(v))
		snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		fmt_double(out, cap, json_number_value(v));
}

/* ------------------------------------------------------------------------------------------ */
/* Values as text. */

static int put_json_str(rn_buf *b, const char *s, size_t n)
{
	int rc = rn_buf_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[8];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(u, sizeof(u), "\\u%04x", c);
				esc = u;
			}
			break;
		}
		if (!esc) {
			run++;
			continue;
		}
		rc = rn_buf_add(b, s + i - run, run);
		run = 0;
		if (rc == 0)
			rc = rn_buf_puts(b, esc);
	}
	if (rc == 0)
		rc = rn_buf_add(b, s + n - run, run);
	if (rc == 0)
		rc = rn_buf_putc(b, '"');
	return rc;
}

static int put_indent(rn_buf *b, int pretty, int level)
{
	if (!pretty)
		return 0;
	int rc = rn_buf_putc(b, '\n');
	for (int i = 0; rc == 0 && i < level; i++)
		rc = rn_buf_add(b, "  ", 2);
	return rc;
}

/* JSON text of v: compact, or pretty with 2-space indentation (as GitHub's toJSON). */
static int put_json(rn_buf *b, const json_t *v, int pretty, int level)
{
	char num[64];
	int rc = 0;
	if (level > JSON_MAX_LEVEL) {
		rn_error_set("value nested too deeply to print");
		return RN_EINVALID;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		json_t *o = (json_t *)v;
		void *it = json_object_iter(o);
		if (!it)
			return rn_buf_puts(b, "{}");
		rc = rn_buf_putc(b, '{');
		for (int first = 1; rc == 0 && it; it = json_object_iter_next(o, it), first = 0) {
			if (!first)
				rc = rn_buf_putc(b, ',');
			if (rc == 0)
				rc = put_indent(b, pretty, level + 1);
			if (rc == 0)
				rc = put_json_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
			if (rc == 0)
				rc = pretty ? rn_buf_add(b, ": ", 2) : rn_buf_putc(b, ':');
			if (rc == 0)
				rc = put_json(b, json_object_iter_value(it), pretty, level + 1);
		}
		if (rc == 0)
			rc = put_indent(b, pretty, level);
		return rc ? rc : rn_buf_putc(b, '}');
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		if (!n)
			return rn_buf_puts(b, "[]");
		rc = rn_buf_putc(b, '[');
		for (size_t i = 0; rc == 0 && i < n; i++) {
			if (i)
				rc = rn_buf_putc(b, ',');
			if (rc == 0)
				rc = put_indent(b, pretty, level + 1);
			if (rc == 0)
				rc = put_json(b, json_array_get(v, i), pretty, level + 1);
		}
		if (rc == 0)
			rc = put_indent(b, pretty, level);
		return rc ? rc : rn_buf_putc(b, ']');
	}
	case JSON_STRING:
		return put_json_str(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
	case JSON_REAL:
		fmt_number(num, sizeof(num), v);
		return rn_buf_puts(b, num);
	case JSON_TRUE:
		return rn_buf_puts(b, "true");
	case JSON_FALSE:
		return rn_buf_puts(b, "false");
	case JSON_NULL:
		return rn_buf_puts(b, "null");
	}
	return 0;
}

/* v as substitution text (see rn_expr_to_string). */
static int put_text(rn_buf *b, const json_t *v)
{
	char num[64];
	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_NULL:
		return 0;
	case JSON_STRING:
		return rn_buf_add(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
	case JSON_REAL:
		fmt_number(num, sizeof(num), v);
		return rn_buf_puts(b, num);
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	return put_json(b, v, 0, 0);
}

/* A borrowed view of a value's text: strings point into the value, the rest are printed. */
typedef struct strview {
	const char *s;
	size_t n;
	rn_buf tmp;
} strview;

static int sv_get(strview *sv, const json_t *v)
{
	sv->tmp = (rn_buf)RN_BUF_INIT(RN_EXPR_MAX_RESULT);
	if (json_is_string(v)) {
		sv->s = json_string_value(v);
		sv->n = json_string_length(v);
		return 0;
	}
	int rc = put_text(&sv->tmp, v);
	sv->s = rn_buf_cstr(&sv->tmp);
	sv->n = sv->tmp.len;
	return rc;
}

static void sv_free(strview *sv)
{
	rn_buf_free(&sv->tmp);
}

char *rn_expr_to_string(const json_t *v)
{
	rn_buf b = RN_BUF_INIT(RN_EXPR_MAX_RESULT);
	int rc = put_text(&b, v);
	if (rc) {
		if (rc == RN_ETOOBIG)
			rn_error_set("value is longer than %zu bytes as text", RN_EXPR_MAX_RESULT);
		rn_buf_free(&b);
		return NULL;
	}
	return rn_buf_detach(&b);
}

int rn_expr_truthy(const json_t *v)
{
	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return 0;
	case JSON_TRUE:
		return 1;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL: {
		double d = json_real_value(v);
		return d != 0 && !isnan(d);
	}
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Comparison. */

static int is_container(const json_t *v)
{
	return json_is_object(v) || json_is_array(v);
}

/* Loose equality: different types compare as numbers; strings ignore case; arrays and objects
 * are equal only to themselves. */
static int loose_eq(const json_t *a, const json_t *b)
{
	json_type ta = json_typeof(a), tb = json_typeof(b);
	if (ta == JSON_TRUE || ta == JSON_FALSE)
		ta = JSON_TRUE;
	if (tb == JSON_TRUE || tb == JSON_FALSE)
		tb = JSON_TRUE;
	if (ta == JSON_REAL)
		ta = JSON_INTEGER;
	if (tb == JSON_REAL)
		tb = JSON_INTEGER;
	if (ta != tb) {
		if (is_container(a) || is_container(b))
			return 0;
		return to_num(a) == to_num(b);
	}
	switch (ta) {
	case JSON_NULL:
		return 1;
	case JSON_TRUE:
		return json_is_true(a) == json_is_true(b);
	case JSON_INTEGER:
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	case JSON_STRING:
		return mem_icmp(json_string_value(a), json_string_length(a), json_string_value(b),
				json_string_length(b)) == 0;
	case JSON_FALSE:
	case JSON_REAL:
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	return a == b;
}

/* Ordering for < <= > >=: two strings compare ignoring case, everything else as numbers (NaN
 * compares false, so arrays and objects are never ordered). */
static int compare(const json_t *a, const json_t *b, int lt, int eq, int gt)
{
	int r;
	if (json_is_string(a) && json_is_string(b)) {
		r = mem_icmp(json_string_value(a), json_string_length(a), json_string_value(b),
			     json_string_length(b));
	} else {
		double x = to_num(a), y = to_num(b);
		if (isnan(x) || isnan(y))
			return 0;
		r = x < y ? -1 : x > y ? 1 : 0;
	}
	return r < 0 ? lt : r > 0 ? gt : eq;
}

/* ------------------------------------------------------------------------------------------ */
/* AST. */

enum node_kind {
	N_LIT,   /* lit */
	N_CTX,   /* top-level name */
	N_INDEX, /* kids[0][kids[1]] (also a.b) */
	N_WILD,  /* kids[0].* */
	N_NOT,
	N_CMP,   /* op is a token type */
	N_AND,   /* n-ary, short-circuit */
	N_OR,
	N_CALL   /* op is an index in fn_table */
};

struct rn_expr {
	enum node_kind kind;
	int op;
	size_t off; /* byte offset in the source */
	unsigned height;
	json_t *lit;
	char *name;
	rn_expr **kids;
	size_t nkids, cap;
};

enum fn_id {
	F_CONTAINS, F_STARTSWITH, F_ENDSWITH, F_FORMAT, F_JOIN, F_TOJSON, F_FROMJSON, F_HASHFILES,
	F_SUCCESS, F_FAILURE, F_CANCELLED, F_ALWAYS
};

static const struct fn_def {
	const char *name;
	unsigned min, max; /* max UINT_MAX: any */
	int status;
} fn_table[] = {
	[F_CONTAINS] = { "contains", 2, 2, 0 },
	[F_STARTSWITH] = { "startsWith", 2, 2, 0 },
	[F_ENDSWITH] = { "endsWith", 2, 2, 0 },
	[F_FORMAT] = { "format", 1, UINT_MAX, 0 },
	[F_JOIN] = { "join", 1, 2, 0 },
	[F_TOJSON] = { "toJSON", 1, 1, 0 },
	[F_FROMJSON] = { "fromJSON", 1, 1, 0 },
	[F_HASHFILES] = { "hashFiles", 1, UINT_MAX, 0 },
	[F_SUCCESS] = { "success", 0, 0, 1 },
	[F_FAILURE] = { "failure", 0, 0, 1 },
	[F_CANCELLED] = { "cancelled", 0, 0, 1 },
	[F_ALWAYS] = { "always", 0, 0, 1 },
};

static int fn_lookup(const char *name, size_t n)
{
	for (size_t i = 0; i < RN_ARRAY_LEN(fn_table); i++)
		if (strlen(fn_table[i].name) == n && mem_ieq(fn_table[i].name, name, n))
			return (int)i;
	return -1;
}

static rn_expr *node_new(enum node_kind kind, size_t off)
{
	rn_expr *n = rn_xcalloc(1, sizeof(*n));
	n->kind = kind;
	n->off = off;
	n->height = 1;
	return n;
}

static void node_add(rn_expr *n, rn_expr *kid)
{
	rn_grow(&n->kids, &n->cap, n->nkids + 1, sizeof(*n->kids));
	n->kids[n->nkids++] = kid;
	if (kid->height + 1 > n->height)
		n->height = kid->height + 1;
}

void rn_expr_free(rn_expr *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nkids; i++)
		rn_expr_free(e->kids[i]);
	free(e->kids);
	json_decref(e->lit);
	free(e->name);
	free(e);
}

static int has_status(const rn_expr *e)
{
	if (e->kind == N_CALL && fn_table[e->op].status)
		return 1;
	for (size_t i = 0; i < e->nkids; i++)
		if (has_status(e->kids[i]))
			return 1;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Lexer. */

enum tok {
	T_EOF, T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_DOT, T_COMMA, T_STAR, T_NOT,
	T_LT, T_LE, T_GT, T_GE, T_EQ, T_NE, T_AND, T_OR, T_STRING, T_NUMBER, T_IDENT
};

typedef struct parser {
	const char *s;
	size_t len;
	size_t pos;  /* where the lexer continues */
	enum tok type; /* the current token */
	size_t off, tlen;
	int depth;
	size_t err_off;
} parser;

/* A printable excerpt of s[0..n) for messages (at most ~32 bytes, cut at a UTF-8 boundary). */
static void excerpt(char *out, size_t cap, const char *s, size_t n)
{
	size_t lim = 32, k = 0, i;
	if (n > lim) {
		while (lim > 0 && ((unsigned char)s[lim] & 0xC0) == 0x80)
			lim--;
	}
	for (i = 0; i < n && i < lim && k + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		out[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (i < n && k + 4 < cap) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
}

static int lex_fail(parser *p, size_t off)
{
	p->err_off = off;
	return -1;
}

static int is_ident_char(int c)
{
	return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
}

static int lex(parser *p)
{
	const char *s = p->s;
	size_t n = p->len, i = p->pos, l = 1;
	while (i < n && is_space((unsigned char)s[i]))
		i++;
	p->off = i;
	if (i >= n) {
		p->type = T_EOF;
		p->tlen = 0;
		p->pos = i;
		return 0;
	}
	int c = (unsigned char)s[i];
	int c1 = i + 1 < n ? (unsigned char)s[i + 1] : -1;
	switch (c) {
	case '(': p->type = T_LPAREN; break;
	case ')': p->type = T_RPAREN; break;
	case '[': p->type = T_LBRACK; break;
	case ']': p->type = T_RBRACK; break;
	case '.': p->type = T_DOT; break;
	case ',': p->type = T_COMMA; break;
	case '*': p->type = T_STAR; break;
	case '!':
		p->type = c1 == '=' ? T_NE : T_NOT;
		l = c1 == '=' ? 2 : 1;
		break;
	case '<':
		p->type = c1 == '=' ? T_LE : T_LT;
		l = c1 == '=' ? 2 : 1;
		break;
	case '>':
		p->type = c1 == '=' ? T_GE : T_GT;
		l = c1 == '=' ? 2 : 1;
		break;
	case '=':
	case '&':
	case '|':
		if (c1 != c) {
			rn_error_set("unexpected '%c' (did you mean '%c%c'?)", c, c, c);
			return lex_fail(p, i);
		}
		p->type = c == '=' ? T_EQ : c == '&' ? T_AND : T_OR;
		l = 2;
		break;
	case '\'': {
		size_t j = i + 1;
		for (;;) {
			if (j >= n) {
				rn_error_set("unterminated string literal");
				return lex_fail(p, i);
			}
			if (s[j] == '\'') {
				if (j + 1 < n && s[j + 1] == '\'') {
					j += 2;
					continue;
				}
				break;
			}
			j++;
		}
		p->type = T_STRING;
		l = j + 1 - i;
		break;
	}
	default:
		if (is_digit(c) || (c == '-' && c1 >= 0 && is_digit(c1))) {
			size_t j = i + (c == '-');
			int hex = j + 1 < n && s[j] == '0' && lower((unsigned char)s[j + 1]) == 'x';
			while (j < n) {
				int d = (unsigned char)s[j];
				if (is_alpha(d) || is_digit(d) || d == '_' || d == '.')
					j++;
				else if ((d == '+' || d == '-') && !hex && lower((unsigned char)s[j - 1]) == 'e')
					j++;
				else
					break;
			}
			p->type = T_NUMBER;
			l = j - i;
		} else if (is_alpha(c) || c == '_') {
			size_t j = i + 1;
			while (j < n && is_ident_char((unsigned char)s[j]))
				j++;
			p->type = T_IDENT;
			l = j - i;
		} else if (c == '"') {
			rn_error_set("unexpected character '\"' (strings use single quotes)");
			return lex_fail(p, i);
		} else if (c < 0x20 || c >= 0x7f) {
			rn_error_set("unexpected character 0x%02x", (unsigned)c);
			return lex_fail(p, i);
		} else {
			rn_error_set("unexpected character '%c'", c);
			return lex_fail(p, i);
		}
		break;
	}
	p->tlen = l;
	p->pos = i + l;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Parser. */

static rn_expr *parse_expr(parser *p);

static rn_expr *fail_at(parser *p, size_t off, rn_expr *discard)
{
	p->err_off = off;
	rn_expr_free(discard);
	return NULL;
}

static rn_expr *unexpected(parser *p, rn_expr *discard)
{
	if (p->type == T_EOF) {
		rn_error_set("unexpected end of expression");
	} else {
		char t[48];
		excerpt(t, sizeof(t), p->s + p->off, p->tlen);
		rn_error_set("unexpected token '%s'", t);
	}
	return fail_at(p, p->off, discard);
}

/* Require the current token to be `want` (described as what) and move past it. */
static int expect(parser *p, enum tok want, const char *what)
{
	if (p->type == want)
		return lex(p);
	if (p->type == T_EOF) {
		rn_error_set("expected %s before the end of the expression", what);
	} else {
		char t[48];
		excerpt(t, sizeof(t), p->s + p->off, p->tlen);
		rn_error_set("expected %s but found '%s'", what, t);
	}
	p->err_off = p->off;
	return -1;
}

static rn_expr *too_deep(parser *p, size_t off, rn_expr *discard)
{
	rn_error_set("expression nested too deeply (more than %d levels)", RN_EXPR_MAX_DEPTH);
	return fail_at(p, off, discard);
}

/* n once built: fails if the tree got too tall. */
static rn_expr *check_height(parser *p, rn_expr *n)
{
	if (n->height > RN_EXPR_MAX_DEPTH)
		return too_deep(p, n->off, n);
	return n;
}

static rn_expr *parse_string(parser *p)
{
	const char *s = p->s + p->off + 1;
	size_t n = p->tlen - 2;
	char *buf = rn_xmalloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		buf[k++] = s[i];
		if (s[i] == '\'')
			i++; /* '' is one quote */
	}
	json_t *v = json_stringn(buf, k);
	free(buf);
	if (!v) {
		rn_error_set("invalid UTF-8 in string literal");
		return fail_at(p, p->off, NULL);
	}
	rn_expr *e = node_new(N_LIT, p->off);
	e->lit = v;
	if (lex(p))
		return fail_at(p, p->err_off, e);
	return e;
}

static rn_expr *parse_number_lit(parser *p)
{
	double d;
	char t[48];
	if (parse_number(p->s + p->off, p->tlen, &d) < 0) {
		excerpt(t, sizeof(t), p->s + p->off, p->tlen);
		rn_error_set("invalid number '%s'", t);
		return fail_at(p, p->off, NULL);
	}
	if (!isfinite(d)) {
		excerpt(t, sizeof(t), p->s + p->off, p->tlen);
		rn_error_set("number '%s' is out of range", t);
		return fail_at(p, p->off, NULL);
	}
	rn_expr *e = node_new(N_LIT, p->off);
	e->lit = num_value(d);
	if (lex(p))
		return fail_at(p, p->err_off, e);
	return e;
}

static rn_expr *parse_call(parser *p, size_t name_off, size_t name_len)
{
	const char *name = p->s + name_off;
	int id = fn_lookup(name, name_len);
	if (id < 0) {
		rn_error_set("unknown function '%.*s'", (int)(name_len > 64 ? 64 : name_len), name);
		return fail_at(p, name_off, NULL);
	}
	rn_expr *e = node_new(N_CALL, name_off);
	e->op = id;
	if (lex(p)) /* past '(' */
		return fail_at(p, p->err_off, e);
	if (p->type != T_RPAREN) {
		for (;;) {
			rn_expr *a = parse_expr(p);
			if (!a)
				return fail_at(p, p->err_off, e);
			node_add(e, a);
			if (p->type == T_COMMA) {
				if (lex(p))
					return fail_at(p, p->err_off, e);
				continue;
			}
			if (expect(p, T_RPAREN, "',' or ')'"))
				return fail_at(p, p->err_off, e);
			break;
		}
	} else if (lex(p)) {
		return fail_at(p, p->err_off, e);
	}
	const struct fn_def *f = &fn_table[id];
	if (e->nkids < f->min || e->nkids > f->max) {
		if (f->max == 0)
			rn_error_set("function '%s' takes no arguments", f->name);
		else if (f->max == UINT_MAX)
			rn_error_set("function '%s' takes at least %u argument%s", f->name, f->min,
				     f->min == 1 ? "" : "s");
		else if (f->min == f->max)
			rn_error_set("function '%s' takes %u argument%s", f->name, f->min,
				     f->min == 1 ? "" : "s");
		else
			rn_error_set("function '%s' takes %u or %u arguments", f->name, f->min, f->max);
		return fail_at(p, name_off, e);
	}
	return check_height(p, e);
}

static rn_expr *parse_primary(parser *p)
{
	switch (p->type) {
	case T_LPAREN: {
		if (lex(p))
			return NULL;
		rn_expr *e = parse_expr(p);
		if (!e)
			return NULL;
		if (expect(p, T_RPAREN, "')'"))
			return fail_at(p, p->err_off, e);
		return e;
	}
	case T_STRING:
		return parse_string(p);
	case T_NUMBER:
		return parse_number_lit(p);
	case T_IDENT: {
		size_t off = p->off, n = p->tlen;
		const char *w = p->s + off;
		json_t *kw = NULL;
		if (n == 4 && memcmp(w, "true", 4) == 0)
			kw = json_true();
		else if (n == 5 && memcmp(w, "false", 5) == 0)
			kw = json_false();
		else if (n == 4 && memcmp(w, "null", 4) == 0)
			kw = json_null();
		if (lex(p))
			return NULL;
		if (kw) {
			rn_expr *e = node_new(N_LIT, off);
			e->lit = kw;
			return e;
		}
		if (p->type == T_LPAREN)
			return parse_call(p, off, n);
		rn_expr *e = node_new(N_CTX, off);
		e->name = rn_xstrndup(w, n);
		return e;
	}
	case T_EOF:
	case T_RPAREN:
	case T_LBRACK:
	case T_RBRACK:
	case T_DOT:
	case T_COMMA:
	case T_STAR:
	case T_NOT:
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
	case T_EQ:
	case T_NE:
	case T_AND:
	case T_OR:
		break;
	}
	return unexpected(p, NULL);
}

static rn_expr *parse_postfix(parser *p)
{
	rn_expr *e = parse_primary(p);
	while (e) {
		size_t off = p->off;
		rn_expr *n;
		if (p->type == T_DOT) {
			if (lex(p))
				return fail_at(p, p->err_off, e);
			if (p->type == T_STAR) {
				n = node_new(N_WILD, off);
				node_add(n, e);
			} else if (p->type == T_IDENT) {
				rn_expr *k = node_new(N_LIT, p->off);
				k->lit = json_stringn(p->s + p->off, p->tlen); /* ASCII, cannot fail */
				if (!k->lit)
					abort();
				n = node_new(N_INDEX, off);
				node_add(n, e);
				node_add(n, k);
			} else {
				rn_error_set("expected property name after '.'");
				return fail_at(p, p->off, e);
			}
			if (lex(p))
				return fail_at(p, p->err_off, n);
		} else if (p->type == T_LBRACK) {
			if (lex(p))
				return fail_at(p, p->err_off, e);
			if (p->type == T_STAR) {
				n = node_new(N_WILD, off);
				node_add(n, e);
				if (lex(p))
					return fail_at(p, p->err_off, n);
			} else {
				rn_expr *k = parse_expr(p);
				if (!k)
					return fail_at(p, p->err_off, e);
				n = node_new(N_INDEX, off);
				node_add(n, e);
				node_add(n, k);
			}
			if (expect(p, T_RBRACK, "']'"))
				return fail_at(p, p->err_off, n);
		} else {
			break;
		}
		e = check_height(p, n);
	}
	return e;
}

static rn_expr *parse_unary(parser *p)
{
	if (p->type != T_NOT)
		return parse_postfix(p);
	size_t off = p->off;
	if (++p->depth > RN_EXPR_MAX_DEPTH)
		return too_deep(p, off, NULL);
	if (lex(p))
		return NULL;
	rn_expr *k = parse_unary(p);
	p->depth--;
	if (!k)
		return NULL;
	rn_expr *n = node_new(N_NOT, off);
	node_add(n, k);
	return check_height(p, n);
}

static int is_cmp(enum tok t, int eq)
{
	if (eq)
		return t == T_EQ || t == T_NE;
	return t == T_LT || t == T_LE || t == T_GT || t == T_GE;
}

/* Left-associative binary level: comparisons (eq=0) or equality (eq=1). */
static rn_expr *parse_binary(parser *p, int eq)
{
	rn_expr *l = eq ? parse_binary(p, 0) : parse_unary(p);
	while (l && is_cmp(p->type, eq)) {
		rn_expr *n = node_new(N_CMP, p->off);
		n->op = (int)p->type;
		node_add(n, l);
		if (lex(p))
			return fail_at(p, p->err_off, n);
		rn_expr *r = eq ? parse_binary(p, 0) : parse_unary(p);
		if (!r)
			return fail_at(p, p->err_off, n);
		node_add(n, r);
		l = check_height(p, n);
	}
	return l;
}

/* && (is_and=1) or || (is_and=0): one n-ary node for a chain, so long chains stay shallow. */
static rn_expr *parse_logic(parser *p, int is_and)
{
	enum tok op = is_and ? T_AND : T_OR;
	rn_expr *l = is_and ? parse_binary(p, 1) : parse_logic(p, 1);
	if (!l || p->type != op)
		return l;
	rn_expr *n = node_new(is_and ? N_AND : N_OR, p->off);
	node_add(n, l);
	while (p->type == op) {
		if (lex(p))
			return fail_at(p, p->err_off, n);
		rn_expr *r = is_and ? parse_binary(p, 1) : parse_logic(p, 1);
		if (!r)
			return fail_at(p, p->err_off, n);
		node_add(n, r);
	}
	return check_height(p, n);
}

static rn_expr *parse_expr(parser *p)
{
	if (++p->depth > RN_EXPR_MAX_DEPTH)
		return too_deep(p, p->off, NULL);
	rn_expr *e = parse_logic(p, 0);
	p->depth--;
	return e;
}

int rn_expr_parse(rn_expr **out, const char *src, size_t len, size_t *err_off)
{
	parser p = { src ? src : "", src ? len : 0, 0, T_EOF, 0, 0, 0, 0 };
	rn_expr *e = NULL;
	*out = NULL;
	if (lex(&p))
		goto fail;
	if (p.type == T_EOF) {
		rn_error_set("empty expression");
		p.err_off = p.off;
		goto fail;
	}
	e = parse_expr(&p);
	if (!e)
		goto fail;
	if (p.type != T_EOF) {
		unexpected(&p, e);
		goto fail;
	}
	*out = e;
	return 0;
fail:
	if (err_off)
		*err_off = p.err_off;
	return RN_EINVALID;
}

/* ------------------------------------------------------------------------------------------ */
/* Evaluation. */

typedef struct evctx {
	const rn_expr_env *env;
	int err; /* the code of the failure when eval returns NULL */
} evctx;

static json_t *ev_fail(evctx *c, int code)
{
	c->err = code;
	return NULL;
}

static json_t *eval(const rn_expr *n, evctx *c, int *filtered);

/* Object member by name: exact match first, then ignoring case (as GitHub does). Borrowed. */
static json_t *obj_get_ci(const json_t *o, const char *k, size_t n)
{
	json_t *obj = (json_t *)o;
	json_t *v = json_object_getn(obj, k, n);
	if (v)
		return v;
	for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
		if (json_object_iter_key_len(it) == n && mem_ieq(json_object_iter_key(it), k, n))
			return json_object_iter_value(it);
	return NULL;
}

/* o[ix], borrowed, or NULL when there is no such member/element. */
static json_t *index_one(const json_t *o, const json_t *ix)
{
	if (json_is_array(o)) {
		if (!json_is_number(ix) && !json_is_string(ix))
			return NULL;
		double d = floor(to_num(ix));
		if (!(d >= 0) || d >= (double)json_array_size(o))
			return NULL;
		return json_array_get(o, (size_t)d);
	}
	if (json_is_object(o)) {
		if (json_is_string(ix))
			return obj_get_ci(o, json_string_value(ix), json_string_length(ix));
		if (json_is_number(ix)) {
			char num[64];
			fmt_number(num, sizeof(num), ix);
			return obj_get_ci(o, num, strlen(num));
		}
	}
	return NULL;
}

static json_t *eval_index(const json_t *o, int of, const json_t *ix, int *filtered)
{
	if (!of) {
		json_t *v = index_one(o, ix);
		return v ? json_incref(v) : json_null();
	}
	/* a filtered array maps the access over its items, keeping the ones that have it */
	json_t *r = jcheck(json_array()), *it;
	size_t i;
	json_array_foreach(o, i, it) {
		json_t *v = index_one(it, ix);
		if (v)
			json_array_append(r, v);
	}
	*filtered = 1;
	return r;
}

static void append_values(json_t *r, const json_t *o)
{
	json_t *obj = (json_t *)o;
	if (json_is_array(o))
		json_array_extend(r, obj);
	else if (json_is_object(o))
		for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
			json_array_append(r, json_object_iter_value(it));
}

static json_t *eval_wild(const json_t *o, int of, int *filtered)
{
	json_t *r;
	if (of) {
		size_t i;
		json_t *it;
		r = jcheck(json_array());
		json_array_foreach(o, i, it)
			append_values(r, it);
	} else if (is_container(o)) {
		r = jcheck(json_array());
		append_values(r, o);
	} else {
		return json_null();
	}
	*filtered = 1;
	return r;
}

/* Take the text in b as a new string value (b is freed). */
static json_t *buf_value(evctx *c, rn_buf *b, int rc, const char *fn)
{
	if (rc) {
		if (rc == RN_ETOOBIG)
			rn_error_set("%s(): result is longer than %zu bytes", fn, RN_EXPR_MAX_RESULT);
		rn_buf_free(b);
		return ev_fail(c, rc);
	}
	json_t *v = json_stringn(rn_buf_cstr(b), b->len);
	rn_buf_free(b);
	if (!v) {
		rn_error_set("%s(): result is not valid UTF-8", fn);
		return ev_fail(c, RN_EINVALID);
	}
	return v;
}

static json_t *fn_contains(json_t **a)
{
	if (json_is_array(a[0])) {
		size_t i;
		json_t *it;
		json_array_foreach(a[0], i, it)
			if (loose_eq(it, a[1]))
				return json_true();
		return json_false();
	}
	if (is_container(a[0]) || is_container(a[1]))
		return json_false();
	strview h, nd;
	sv_get(&h, a[0]); /* primitives: short, cannot hit the cap */
	sv_get(&nd, a[1]);
	int r = mem_icontains(h.s, h.n, nd.s, nd.n);
	sv_free(&h);
	sv_free(&nd);
	return json_boolean(r);
}

static json_t *fn_affix(json_t **a, int ends)
{
	if (is_container(a[0]) || is_container(a[1]))
		return json_false();
	strview h, x;
	sv_get(&h, a[0]);
	sv_get(&x, a[1]);
	int r = x.n <= h.n && mem_ieq(ends ? h.s + h.n - x.n : h.s, x.s, x.n);
	sv_free(&h);
	sv_free(&x);
	return json_boolean(r);
}

static json_t *fn_format(json_t **a, size_t na, evctx *c)
{
	strview f;
	rn_buf b = RN_BUF_INIT(RN_EXPR_MAX_RESULT);
	int rc = sv_get(&f, a[0]);
	const char *s = f.s;
	size_t n = f.n, i = 0;
	while (rc == 0 && i < n) {
		if (s[i] == '{') {
			if (i + 1 < n && s[i + 1] == '{') {
				rc = rn_buf_putc(&b, '{');
				i += 2;
				continue;
			}
			size_t j = i + 1, nd = 0, idx = 0;
			for (; j < n && is_digit((unsigned char)s[j]); j++, nd++)
				if (nd < 9)
					idx = idx * 10 + (size_t)(s[j] - '0');
			if (nd == 0 || j >= n || s[j] != '}') {
				rn_error_set("format(): invalid placeholder at position %zu (write '{{' for a "
					     "literal '{')", i);
				rc = RN_EINVALID;
				break;
			}
			if (nd > 9 || idx + 1 >= na) {
				rn_error_set("format(): placeholder {%.*s} has no argument (%zu given)",
					     (int)(nd > 12 ? 12 : nd), s + i + 1, na - 1);
				rc = RN_EINVALID;
				break;
			}
			rc = put_text(&b, a[idx + 1]);
			i = j + 1;
		} else if (s[i] == '}') {
			if (i + 1 < n && s[i + 1] == '}') {
				rc = rn_buf_putc(&b, '}');
				i += 2;
				continue;
			}
			rn_error_set("format(): unmatched '}' at position %zu (write '}}' for a literal "
				     "'}')", i);
			rc = RN_EINVALID;
		} else {
			size_t j = i;
			while (j < n && s[j] != '{' && s[j] != '}')
				j++;
			rc = rn_buf_add(&b, s + i, j - i);
			i = j;
		}
	}
	sv_free(&f);
	return buf_value(c, &b, rc, "format");
}

static json_t *fn_join(json_t **a, size_t na, evctx *c)
{
	rn_buf b = RN_BUF_INIT(RN_EXPR_MAX_RESULT);
	int rc = 0;
	if (!json_is_array(a[0])) {
		rc = put_text(&b, a[0]);
		return buf_value(c, &b, rc, "join");
	}
	strview sep = { ",", 1, RN_BUF_INIT(0) };
	if (na > 1)
		rc = sv_get(&sep, a[1]);
	size_t i;
	json_t *it;
	json_array_foreach(a[0], i, it) {
		if (rc)
			break;
		if (i)
			rc = rn_buf_add(&b, sep.s, sep.n);
		if (rc == 0)
			rc = put_text(&b, it);
	}
	sv_free(&sep);
	return buf_value(c, &b, rc, "join");
}

static json_t *fn_tojson(json_t **a, evctx *c)
{
	rn_buf b = RN_BUF_INIT(RN_EXPR_MAX_RESULT);
	return buf_value(c, &b, put_json(&b, a[0], 1, 0), "toJSON");
}

static json_t *fn_fromjson(json_t **a, evctx *c)
{
	strview s;
	json_error_t je;
	int rc = sv_get(&s, a[0]);
	if (rc) {
		sv_free(&s);
		return ev_fail(c, rc);
	}
	json_t *v = json_loadb(s.s, s.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	sv_free(&s);
	if (!v) {
		rn_error_set("fromJSON(): invalid JSON: %s (line %d, column %d)", je.text, je.line,
			     je.column);
		return ev_fail(c, RN_EINVALID);
	}
	return v;
}

/* hashFiles() */

typedef struct pathlist {
	char **v;
	size_t n, cap;
} pathlist;

static int hf_collect(const char *relpath, const struct stat *st, void *payload)
{
	pathlist *l = payload;
	if (!S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode))
		return 0;
	rn_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = rn_xstrdup(relpath);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_pattern(pathlist *l, const char *s, size_t n)
{
	while (n && is_space((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && is_space((unsigned char)s[n - 1]))
		n--;
	if (!n || *s == '#')
		return;
	rn_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = rn_xstrndup(s, n);
}

static void pathlist_free(pathlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* sha256 of the file root/rel into md; symlinks count only if they resolve to a regular file
 * inside root (whose realpath is rroot). 0 or <0. */
static int hash_file(unsigned char md[32], const char *root, const char *rroot, const char *rel)
{
	char *path = rn_xasprintf("%s/%s", root, rel);
	int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0) {
		rc = rn_error_errno("hashFiles(): %s", rel);
		free(path);
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = rn_error_errno("hashFiles(): %s", rel);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rn_error_set("hashFiles(): %s is not a regular file", rel);
		rc = RN_EINVALID;
		goto out;
	}
	char *real = realpath(path, NULL);
	size_t rl = strlen(rroot);
	int inside = real && strncmp(real, rroot, rl) == 0 && (real[rl] == '/' || rl == 1);
	free(real);
	if (!inside) {
		rn_error_set("hashFiles(): %s resolves outside the workspace", rel);
		rc = RN_EINVALID;
		goto out;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		abort();
	char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = rn_error_errno("hashFiles(): read %s", rel);
			break;
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)r);
	}
	unsigned len = 32;
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
out:
	close(fd);
	free(path);
	return rc;
}

static json_t *fn_hashfiles(json_t **a, size_t na, evctx *c)
{
	const char *root = c->env ? c->env->workspace : NULL;
	if (!root) {
		rn_error_set("hashFiles() is not available here (no workspace)");
		return ev_fail(c, RN_EINVALID);
	}
	pathlist inc = { 0 }, exc = { 0 }, files = { 0 }, pats = { 0 };
	json_t *result = NULL;
	int rc = 0;
	char *rroot = NULL;
	/* each argument may hold several patterns, one a line (as @actions/glob) */
	for (size_t i = 0; i < na && rc == 0; i++) {
		strview s;
		rc = sv_get(&s, a[i]);
		for (size_t st = 0; rc == 0 && st <= s.n;) {
			const char *nl = memchr(s.s + st, '\n', s.n - st);
			size_t e = nl ? (size_t)(nl - s.s) : s.n;
			add_pattern(&pats, s.s + st, e - st);
			st = e + 1;
		}
		sv_free(&s);
	}
	if (rc)
		goto done;
	for (size_t i = 0; i < pats.n; i++) {
		char *pt = pats.v[i];
		int neg = *pt == '!';
		pt += neg;
		while (pt[0] == '.' && pt[1] == '/')
			pt += 2;
		if (rn_glob_check(pt)) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", rn_error_last());
			rn_error_set("hashFiles(): invalid pattern '%s': %s", pats.v[i], msg);
			rc = RN_EINVALID;
			goto done;
		}
		pathlist *l = neg ? &exc : &inc;
		rn_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v));
		l->v[l->n++] = rn_xstrdup(pt);
	}
	if (inc.n) {
		rc = rn_glob_walk(root, (const char *const *)inc.v, inc.n, (const char *const *)exc.v,
				  exc.n, hf_collect, &files);
		if (rc) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", rn_error_last());
			rn_error_set("hashFiles(): %s", msg);
			goto done;
		}
	}
	if (!files.n) {
		result = jcheck(json_string(""));
		goto done;
	}
	qsort(files.v, files.n, sizeof(*files.v), cmp_str);
	rroot = realpath(root, NULL);
	if (!rroot) {
		rc = rn_error_errno("hashFiles(): %s", root);
		goto done;
	}
	EVP_MD_CTX *all = EVP_MD_CTX_new();
	if (!all || EVP_DigestInit_ex(all, EVP_sha256(), NULL) != 1)
		abort();
	for (size_t i = 0; i < files.n && rc == 0; i++) {
		unsigned char md[32];
		if (i && strcmp(files.v[i], files.v[i - 1]) == 0)
			continue;
		rc = hash_file(md, root, rroot, files.v[i]);
		if (rc == 0)
			EVP_DigestUpdate(all, md, sizeof(md));
	}
	unsigned char md[32];
	unsigned len = 32;
	EVP_DigestFinal_ex(all, md, &len);
	EVP_MD_CTX_free(all);
	if (rc == 0) {
		char hex[65];
		for (size_t i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		result = jcheck(json_string(hex));
	}
done:
	free(rroot);
	pathlist_free(&inc);
	pathlist_free(&exc);
	pathlist_free(&files);
	pathlist_free(&pats);
	if (!result)
		return ev_fail(c, rc ? rc : RN_ERROR);
	return result;
}

static json_t *eval_call(const rn_expr *n, evctx *c)
{
	const rn_expr_env *env = c->env;
	int failed = env && env->failed, cancelled = env && env->cancelled;
	switch ((enum fn_id)n->op) {
	case F_SUCCESS:
		return json_boolean(!failed && !cancelled);
	case F_FAILURE:
		return json_boolean(failed);
	case F_CANCELLED:
		return json_boolean(cancelled);
	case F_ALWAYS:
		return json_true();
	case F_CONTAINS:
	case F_STARTSWITH:
	case F_ENDSWITH:
	case F_FORMAT:
	case F_JOIN:
	case F_TOJSON:
	case F_FROMJSON:
	case F_HASHFILES:
		break;
	}
	json_t **a = rn_xcalloc(n->nkids, sizeof(*a)), *r = NULL;
	size_t na = n->nkids, i;
	for (i = 0; i < na; i++)
		if (!(a[i] = eval(n->kids[i], c, NULL)))
			goto out;
	switch ((enum fn_id)n->op) {
	case F_CONTAINS: r = fn_contains(a); break;
	case F_STARTSWITH: r = fn_affix(a, 0); break;
	case F_ENDSWITH: r = fn_affix(a, 1); break;
	case F_FORMAT: r = fn_format(a, na, c); break;
	case F_JOIN: r = fn_join(a, na, c); break;
	case F_TOJSON: r = fn_tojson(a, c); break;
	case F_FROMJSON: r = fn_fromjson(a, c); break;
	case F_HASHFILES: r = fn_hashfiles(a, na, c); break;
	case F_SUCCESS:
	case F_FAILURE:
	case F_CANCELLED:
	case F_ALWAYS:
		break;
	}
out:
	for (i = 0; i < na; i++)
		json_decref(a[i]);
	free(a);
	return r;
}

/* A new reference, or NULL with c->err and rn_error_last() set. *filtered (optional) tells
 * whether the result is an object filter's array, to which further `.x` / `[i]` apply per item. */
static json_t *eval(const rn_expr *n, evctx *c, int *filtered)
{
	int dummy, f = 0;
	if (!filtered)
		filtered = &dummy;
	*filtered = 0;
	switch (n->kind) {
	case N_LIT:
		return json_incref(n->lit);
	case N_CTX: {
		json_t *ctx = c->env ? c->env->ctx : NULL, *v = NULL;
		if (json_is_object(ctx))
			v = obj_get_ci(ctx, n->name, strlen(n->name));
		return v ? json_incref(v) : json_null();
	}
	case N_INDEX: {
		json_t *o = eval(n->kids[0], c, &f), *r = NULL;
		if (!o)
			return NULL;
		json_t *ix = eval(n->kids[1], c, NULL);
		if (ix)
			r = eval_index(o, f, ix, filtered);
		json_decref(o);
		json_decref(ix);
		return r;
	}
	case N_WILD: {
		json_t *o = eval(n->kids[0], c, &f);
		if (!o)
			return NULL;
		json_t *r = eval_wild(o, f, filtered);
		json_decref(o);
		return r;
	}
	case N_NOT: {
		json_t *v = eval(n->kids[0], c, NULL);
		if (!v)
			return NULL;
		int t = rn_expr_truthy(v);
		json_decref(v);
		return json_boolean(!t);
	}
	case N_CMP: {
		json_t *l = eval(n->kids[0], c, NULL);
		if (!l)
			return NULL;
		json_t *r = eval(n->kids[1], c, NULL);
		if (!r) {
			json_decref(l);
			return NULL;
		}
		int res = 0;
		switch ((enum tok)n->op) {
		case T_EQ: res = loose_eq(l, r); break;
		case T_NE: res = !loose_eq(l, r); break;
		case T_LT: res = compare(l, r, 1, 0, 0); break;
		case T_LE: res = compare(l, r, 1, 1, 0); break;
		case T_GT: res = compare(l, r, 0, 0, 1); break;
		case T_GE: res = compare(l, r, 0, 1, 1); break;
		default: break;
		}
		json_decref(l);
		json_decref(r);
		return json_boolean(res);
	}
	case N_AND:
	case N_OR:
		for (size_t i = 0; i < n->nkids; i++) {
			json_t *v = eval(n->kids[i], c, filtered);
			if (!v)
				return NULL;
			int t = rn_expr_truthy(v);
			if (i + 1 == n->nkids || (n->kind == N_AND ? !t : t))
				return v;
			json_decref(v);
		}
		return json_null(); /* not reached: n-ary nodes have two or more operands */
	case N_CALL:
		return eval_call(n, c);
	}
	return json_null();
}

json_t *rn_expr_eval(const rn_expr *e, const rn_expr_env *env)
{
	evctx c = { env, 0 };
	if (!e) {
		rn_error_set("no expression");
		return NULL;
	}
	return eval(e, &c, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Templates and conditions. */

int rn_template_has(const char *s)
{
	return s && strstr(s, "${{") != NULL;
}

/* The `}}` closing the ${{ whose body starts at s[a], skipping '...' literals; 0 or -1. */
static int tmpl_end(const char *s, size_t n, size_t a, size_t *end)
{
	int inq = 0;
	for (size_t j = a; j < n; j++) {
		if (s[j] == '\'')
			inq = !inq;
		else if (!inq && s[j] == '}' && j + 1 < n && s[j + 1] == '}') {
			*end = j;
			return 0;
		}
	}
	return -1;
}

static int unterminated(size_t at, size_t *err_off)
{
	rn_error_set("unterminated '${{' (no closing '}}')");
	if (err_off)
		*err_off = at;
	return RN_EINVALID;
}

/* Walk the ${{ }} of s: for each, parse it and (when env) evaluate it into out. */
static int tmpl_run(const char *s, rn_buf *out, const rn_expr_env *env, size_t *err_off)
{
	size_t n = strlen(s), i = 0;
	for (;;) {
		const char *st = strstr(s + i, "${{");
		size_t at = st ? (size_t)(st - s) : n, end, off = 0;
		int rc;
		if (out && (rc = rn_buf_add(out, s + i, at - i)))
			return rc;
		if (!st)
			return 0;
		if (tmpl_end(s, n, at + 3, &end))
			return unterminated(at, err_off);
		rn_expr *e;
		if (rn_expr_parse(&e, s + at + 3, end - at - 3, &off)) {
			if (err_off)
				*err_off = at + 3 + off;
			return RN_EINVALID;
		}
		if (out) {
			evctx c = { env, 0 };
			json_t *v = eval(e, &c, NULL);
			rn_expr_free(e);
			if (!v)
				return c.err ? c.err : RN_ERROR;
			rc = put_text(out, v);
			json_decref(v);
			if (rc)
				return rc;
		} else {
			rn_expr_free(e);
		}
		i = end + 2;
	}
}

int rn_template_check(const char *s, size_t *err_off)
{
	return tmpl_run(s ? s : "", NULL, NULL, err_off);
}

int rn_template_expand(char **out, const char *s, const rn_expr_env *env)
{
	rn_buf b = RN_BUF_INIT(RN_EXPR_MAX_RESULT);
	*out = NULL;
	int rc = tmpl_run(s ? s : "", &b, env, NULL);
	if (rc) {
		if (rc == RN_ETOOBIG)
			rn_error_set("expanded text is longer than %zu bytes", RN_EXPR_MAX_RESULT);
		rn_buf_free(&b);
		return rc;
	}
	*out = rn_buf_detach(&b);
	return 0;
}

/* The expression of an `if:`: trimmed, and unwrapped if it is one ${{ }}. [*a, *b) in cond;
 * empty means the default success(). */
static int cond_range(const char *cond, size_t *a, size_t *b, size_t *err_off)
{
	size_t n = strlen(cond), i = 0, end;
	while (i < n && is_space((unsigned char)cond[i]))
		i++;
	while (n > i && is_space((unsigned char)cond[n - 1]))
		n--;
	*a = i;
	*b = n;
	if (n - i < 3 || memcmp(cond + i, "${{", 3) != 0)
		return 0;
	if (tmpl_end(cond, n, i + 3, &end))
		return unterminated(i, err_off);
	if (end + 2 != n) {
		rn_error_set("a condition in ${{ }} must be one expression: put all of it inside one "
			     "${{ }}");
		if (err_off)
			*err_off = end + 2;
		return RN_EINVALID;
	}
	*a = i + 3;
	*b = end;
	if (*a == *b) { /* "${{}}" */
		rn_error_set("empty expression");
		if (err_off)
			*err_off = *a;
		return RN_EINVALID;
	}
	return 0;
}

/* Parse a condition; *e stays NULL for an empty one. */
static int cond_parse(rn_expr **e, const char *cond, size_t *err_off)
{
	size_t a, b, off = 0;
	*e = NULL;
	if (!cond)
		return 0;
	int rc = cond_range(cond, &a, &b, err_off);
	if (rc || a == b)
		return rc;
	rc = rn_expr_parse(e, cond + a, b - a, &off);
	if (rc && err_off)
		*err_off = a + off;
	return rc;
}

int rn_expr_condition(int *out, const char *cond, const rn_expr_env *env)
{
	rn_expr *e;
	int success = !(env && (env->failed || env->cancelled));
	*out = 0;
	int rc = cond_parse(&e, cond, NULL);
	if (rc)
		return rc;
	if (!e || !has_status(e)) {
		/* implicit `success() && (cond)`, short-circuited like GitHub */
		if (!e || !success) {
			*out = success;
			rn_expr_free(e);
			return 0;
		}
	}
	evctx c = { env, 0 };
	json_t *v = eval(e, &c, NULL);
	rn_expr_free(e);
	if (!v)
		return c.err ? c.err : RN_ERROR;
	*out = rn_expr_truthy(v);
	json_decref(v);
	return 0;
}

int rn_expr_condition_check(const char *cond, size_t *err_off)
{
	rn_expr *e;
	int rc = cond_parse(&e, cond, err_off);
	rn_expr_free(e);
	return rc;
}

int rn_expr_condition_has_status(const char *cond)
{
	rn_expr *e;
	if (cond_parse(&e, cond, NULL) || !e)
		return 0;
	int r = has_status(e);
	rn_expr_free(e);
	return r;
}
