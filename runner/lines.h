/* lines.h - split a byte stream into lines with bounded memory: lines longer than the limit are
 * cut into pieces of at most `limit` bytes (none lost); binary bytes pass through unchanged. */
#ifndef RN_LINES_H
#define RN_LINES_H

#include <stddef.h>

#define RN_LINE_MAX (64 * 1024)

/* Called once per line, without its '\n'; `partial` is 1 when the piece was cut at the limit
 * (the line continues in the next call) or is the unterminated tail at end of stream. */
typedef void (*rn_line_cb)(const char *line, size_t len, int partial, void *payload);

typedef struct rn_lines {
	char *buf;    /* pending bytes of the current line; at most limit */
	size_t len;   /* bytes pending */
	size_t limit; /* the line length cap */
	rn_line_cb cb;
	void *payload;
} rn_lines;

/* Initialise; limit 0 means RN_LINE_MAX. Memory is allocated lazily, at most `limit` bytes. */
void rn_lines_init(rn_lines *l, size_t limit, rn_line_cb cb, void *payload);
/* Feed bytes; calls cb for each complete line (or cut piece). */
void rn_lines_write(rn_lines *l, const char *data, size_t len);
/* End of stream: deliver the unterminated tail, if any, as partial. */
void rn_lines_flush(rn_lines *l);
/* Free the pending buffer. */
void rn_lines_free(rn_lines *l);

#endif
