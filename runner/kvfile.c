/* kvfile.c - parsers for the step command files (RUNNER_OUTPUT, RUNNER_ENV) and dotenv files.
 *
 * COMMANDS (GitHub's $GITHUB_OUTPUT format), one entry per line:
 *   key=value          value is the rest of the line (may be empty, may contain '=')
 *   key<<DELIM         the following lines up to one exactly equal to DELIM, joined with '\n'
 * whichever of '=' and '<<' comes first decides the form; blank lines are skipped; a '\r' before
 * '\n' is dropped. Keys: [A-Za-z_][A-Za-z0-9_.-]*.
 *
 * DOTENV: `[export ]KEY = value` lines, '#' comment lines, blank lines. Unquoted values are
 * trimmed and lose a ` #comment`; 'single quoted' values are literal, "double quoted" ones know
 * \n \t \r \\ \" (other backslashes are kept); quoted values may span lines. Keys:
 * [A-Za-z_][A-Za-z0-9_]*. */
#include "kvfile.h"
#include "buf.h"
#include "error.h"

#include <string.h>

#define KEY_SHOWN 64 /* at most this many bytes of a bad key in an error message */

/* The next line of data[*pos..len) without its '\n' and a '\r' before it; 0 at the end. */
static int next_line(const char *data, size_t len, size_t *pos, const char **line, size_t *llen)
{
	if (*pos >= len)
		return 0;
	const char *p = data + *pos;
	const char *nl = memchr(p, '\n', len - *pos);
	size_t n = nl ? (size_t)(nl - p) : len - *pos;
	*pos += nl ? n + 1 : n;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	*line = p;
	*llen = n;
	return 1;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alpha_(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int valid_key(const char *k, size_t n, rn_kv_format fmt)
{
	if (n == 0 || !is_alpha_(k[0]))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = k[i];
		if (is_alpha_(c) || is_digit(c))
			continue;
		if (fmt == RN_KV_COMMANDS && (c == '.' || c == '-'))
			continue;
		return 0;
	}
	return 1;
}

static int bad_key(size_t lineno, const char *k, size_t n)
{
	rn_error_set("line %zu: invalid key '%.*s%s'", lineno, (int)(n > KEY_SHOWN ? KEY_SHOWN : n), k,
		     n > KEY_SHOWN ? "..." : "");
	return RN_EINVALID;
}

/* Call cb with key and the value held in val (both made NUL-terminated). */
static int deliver(rn_buf *key, rn_buf *val, rn_kv_cb cb, void *payload)
{
	return cb(rn_buf_cstr(key), rn_buf_cstr(val), val->len, payload);
}

static int parse_commands(const char *data, size_t len, rn_kv_cb cb, void *payload)
{
	rn_buf key = RN_BUF_INIT(len + 1), val = RN_BUF_INIT(len + 1);
	size_t pos = 0, lineno = 0;
	const char *line;
	size_t ll;
	int rc = 0;
	while (rc == 0 && next_line(data, len, &pos, &line, &ll)) {
		lineno++;
		size_t b = 0;
		while (b < ll && is_ws(line[b]))
			b++;
		if (b == ll)
			continue; /* blank line */
		const char *eq = memchr(line, '=', ll);
		const char *hd = memmem(line, ll, "<<", 2);
		rn_buf_reset(&key);
		rn_buf_reset(&val);
		if (eq && (!hd || eq < hd)) {
			size_t kn = (size_t)(eq - line);
			if (!valid_key(line, kn, RN_KV_COMMANDS)) {
				rc = bad_key(lineno, line, kn);
				break;
			}
			rn_buf_add(&key, line, kn);
			rn_buf_add(&val, eq + 1, ll - kn - 1);
		} else if (hd) {
			size_t kn = (size_t)(hd - line);
			if (!valid_key(line, kn, RN_KV_COMMANDS)) {
				rc = bad_key(lineno, line, kn);
				break;
			}
			const char *delim = hd + 2;
			size_t dn = ll - kn - 2;
			if (dn == 0) {
				rn_error_set("line %zu: heredoc delimiter is empty", lineno);
				rc = RN_EINVALID;
				break;
			}
			rn_buf_add(&key, line, kn);
			size_t start = lineno;
			int found = 0, first = 1;
			while (next_line(data, len, &pos, &line, &ll)) {
				lineno++;
				if (ll == dn && memcmp(line, delim, dn) == 0) {
					found = 1;
					break;
				}
				if (!first)
					rn_buf_putc(&val, '\n');
				rn_buf_add(&val, line, ll);
				first = 0;
			}
			if (!found) {
				rn_error_set("line %zu: heredoc '%.*s' is not terminated", start,
					     (int)(dn > KEY_SHOWN ? KEY_SHOWN : dn), delim);
				rc = RN_EINVALID;
				break;
			}
		} else {
			rn_error_set("line %zu: expected key=value or key<<DELIMITER", lineno);
			rc = RN_EINVALID;
			break;
		}
		rc = deliver(&key, &val, cb, payload);
	}
	rn_buf_free(&key);
	rn_buf_free(&val);
	return rc;
}

/* A quoted dotenv value starting at data[*pos] (the quote); on success *pos is just past the
 * closing quote and *lineno the line it is on. */
static int dotenv_quoted(const char *data, size_t len, size_t *pos, size_t *lineno, rn_buf *val)
{
	char q = data[*pos];
	size_t start = *lineno, i = *pos + 1, ln = *lineno;
	while (i < len) {
		char c = data[i];
		if (c == q) {
			*pos = i + 1;
			*lineno = ln;
			return 0;
		}
		if (c == '\n') {
			ln++;
			if (data[i - 1] == '\r' && val->len > 0)
				val->len--; /* CRLF line ends inside the value become LF */
			rn_buf_putc(val, '\n');
			i++;
			continue;
		}
		if (q == '"' && c == '\\' && i + 1 < len) {
			char e = data[i + 1];
			switch (e) {
			case 'n':
				rn_buf_putc(val, '\n');
				break;
			case 't':
				rn_buf_putc(val, '\t');
				break;
			case 'r':
				rn_buf_putc(val, '\r');
				break;
			case '\\':
			case '"':
				rn_buf_putc(val, e);
				break;
			default:
				/* unknown escape: keep the backslash, handle the next byte normally */
				rn_buf_putc(val, '\\');
				i++;
				continue;
			}
			i += 2;
			continue;
		}
		rn_buf_putc(val, c);
		i++;
	}
	rn_error_set("line %zu: unterminated %s-quoted value", start, q == '"' ? "double" : "single");
	return RN_EINVALID;
}

static int parse_dotenv(const char *data, size_t len, rn_kv_cb cb, void *payload)
{
	rn_buf key = RN_BUF_INIT(len + 1), val = RN_BUF_INIT(len + 1);
	size_t pos = 0, lineno = 1;
	int rc = 0;
	while (rc == 0 && pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t le = nl ? (size_t)(nl - data) : len; /* end of the line */
		size_t ce = le > pos && data[le - 1] == '\r' ? le - 1 : le;
		size_t p = pos;
		while (p < ce && is_ws(data[p]))
			p++;
		if (p == ce || data[p] == '#') {
			pos = le + 1;
			lineno++;
			continue;
		}
		if (ce - p > 6 && memcmp(data + p, "export", 6) == 0 && is_ws(data[p + 6])) {
			p += 6;
			while (p < ce && is_ws(data[p]))
				p++;
		}
		const char *eq = memchr(data + p, '=', ce - p);
		if (!eq) {
			rn_error_set("line %zu: expected KEY=value", lineno);
			rc = RN_EINVALID;
			break;
		}
		size_t e = (size_t)(eq - data), kend = e;
		while (kend > p && is_ws(data[kend - 1]))
			kend--;
		if (!valid_key(data + p, kend - p, RN_KV_DOTENV)) {
			rc = bad_key(lineno, data + p, kend - p);
			break;
		}
		rn_buf_reset(&key);
		rn_buf_reset(&val);
		rn_buf_add(&key, data + p, kend - p);
		size_t v = e + 1;
		while (v < ce && is_ws(data[v]))
			v++;
		if (v < ce && (data[v] == '"' || data[v] == '\'')) {
			size_t q = v;
			rc = dotenv_quoted(data, len, &q, &lineno, &val);
			if (rc)
				break;
			/* the rest of the closing quote's line: blanks and an optional comment */
			nl = memchr(data + q, '\n', len - q);
			le = nl ? (size_t)(nl - data) : len;
			while (q < le && (is_ws(data[q]) || data[q] == '\r'))
				q++;
			if (q < le && data[q] != '#') {
				rn_error_set("line %zu: unexpected text after the closing quote", lineno);
				rc = RN_EINVALID;
				break;
			}
		} else {
			size_t end = ce;
			for (size_t i = e + 2; i < ce; i++) {
				if (data[i] == '#' && is_ws(data[i - 1])) {
					end = i;
					break;
				}
			}
			while (end > v && is_ws(data[end - 1]))
				end--;
			if (end > v)
				rn_buf_add(&val, data + v, end - v);
		}
		rc = deliver(&key, &val, cb, payload);
		pos = le + 1;
		lineno++;
	}
	rn_buf_free(&key);
	rn_buf_free(&val);
	return rc;
}

int rn_kvfile_parse(const char *data, size_t len, rn_kv_format fmt, rn_kv_cb cb, void *payload)
{
	if (!data)
		len = 0;
	if (fmt == RN_KV_COMMANDS)
		return parse_commands(data, len, cb, payload);
	if (fmt == RN_KV_DOTENV)
		return parse_dotenv(data, len, cb, payload);
	rn_error_set("unknown key/value file format %d", (int)fmt);
	return RN_EINVALID;
}
