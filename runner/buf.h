/* buf.h - growable byte buffers with a hard size cap (like curl's dynbuf). */
#ifndef RN_BUF_H
#define RN_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct rn_buf {
	char *ptr;  /* NUL-terminated contents (NULL while empty and never grown) */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* the cap: the buffer never holds more than this */
} rn_buf;

#define RN_BUF_INIT(maxlen) { NULL, 0, 0, (maxlen) }

/* Append n bytes; RN_ETOOBIG (buffer unchanged) if that would pass the cap. */
int rn_buf_add(rn_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string; as rn_buf_add. */
int rn_buf_puts(rn_buf *b, const char *s);
/* Append one byte; as rn_buf_add. */
int rn_buf_putc(rn_buf *b, char c);
/* Append printf-formatted text; as rn_buf_add. */
int rn_buf_printf(rn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append vprintf-formatted text; as rn_buf_add. */
int rn_buf_vprintf(rn_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Contents as a C string; "" when empty; owned by the buffer. */
const char *rn_buf_cstr(const rn_buf *b);
/* Drop the first n bytes, keeping the rest. */
void rn_buf_consume(rn_buf *b, size_t n);
/* Empty the buffer, keeping its memory. */
void rn_buf_reset(rn_buf *b);
/* Take the contents (caller frees; never NULL) and leave the buffer empty. */
char *rn_buf_detach(rn_buf *b);
/* Free the memory and leave the buffer empty. */
void rn_buf_free(rn_buf *b);

#endif
