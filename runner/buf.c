/* buf.c - growable byte buffers with a hard size cap. */
#include "buf.h"
#include "error.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rn_buf_add(rn_buf *b, const void *p, size_t n)
{
	if (n > b->max - b->len) {
		rn_error_set("buffer limit of %zu bytes reached", b->max);
		return RN_ETOOBIG;
	}
	if (b->len + n + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 64;
		while (c < b->len + n + 1)
			c *= 2;
		if (c > b->max + 1)
			c = b->max + 1;
		b->ptr = rn_xreallocarray(b->ptr, c, 1);
		b->cap = c;
	}
	if (n)
		memcpy(b->ptr + b->len, p, n);
	b->len += n;
	b->ptr[b->len] = '\0';
	return 0;
}

int rn_buf_puts(rn_buf *b, const char *s)
{
	return rn_buf_add(b, s, strlen(s));
}

int rn_buf_putc(rn_buf *b, char c)
{
	return rn_buf_add(b, &c, 1);
}

int rn_buf_vprintf(rn_buf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n < 0)
		return rn_error_set("bad format");
	if ((size_t)n < sizeof(small))
		return rn_buf_add(b, small, (size_t)n);
	char *big = rn_xmalloc((size_t)n + 1);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	int rc = rn_buf_add(b, big, (size_t)n);
	free(big);
	return rc;
}

int rn_buf_printf(rn_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = rn_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *rn_buf_cstr(const rn_buf *b)
{
	return b->ptr ? b->ptr : "";
}

void rn_buf_consume(rn_buf *b, size_t n)
{
	if (n >= b->len) {
		rn_buf_reset(b);
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
	b->ptr[b->len] = '\0';
}

void rn_buf_reset(rn_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

char *rn_buf_detach(rn_buf *b)
{
	char *p = b->ptr ? b->ptr : rn_xstrdup("");
	b->ptr = NULL;
	b->len = b->cap = 0;
	return p;
}

void rn_buf_free(rn_buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}
