/* lines.c - split a byte stream into lines with bounded memory.
 *
 * Lines that lie entirely inside the data of one write are passed to the callback straight from
 * the caller's memory; only the unterminated tail of a write is copied, and never more than
 * `limit` bytes of it: a line longer than the limit is cut into pieces of exactly `limit` bytes
 * (partial=1), and a line of exactly `limit` bytes followed by '\n' is delivered whole. */
#include "lines.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void rn_lines_init(rn_lines *l, size_t limit, rn_line_cb cb, void *payload)
{
	l->buf = NULL;
	l->len = 0;
	l->limit = limit ? limit : RN_LINE_MAX;
	l->cb = cb;
	l->payload = payload;
}

/* Append n bytes to the pending line (the caller keeps len + n <= limit). */
static void pend(rn_lines *l, const char *data, size_t n)
{
	if (!l->buf)
		l->buf = rn_xmalloc(l->limit);
	memcpy(l->buf + l->len, data, n);
	l->len += n;
}

void rn_lines_write(rn_lines *l, const char *data, size_t len)
{
	size_t limit = l->limit;
	while (len > 0) {
		if (l->len > 0) {
			/* complete the pending line: a '\n' within the room left ends it */
			size_t room = limit - l->len;
			size_t look = len < room + 1 ? len : room + 1;
			const char *nl = memchr(data, '\n', look);
			if (nl) {
				size_t n = (size_t)(nl - data);
				pend(l, data, n);
				size_t total = l->len;
				l->len = 0;
				l->cb(l->buf, total, 0, l->payload);
				data += n + 1;
				len -= n + 1;
			} else if (len > room) {
				pend(l, data, room);
				l->len = 0;
				l->cb(l->buf, limit, 1, l->payload);
				data += room;
				len -= room;
			} else {
				pend(l, data, len);
				return;
			}
			continue;
		}
		size_t look = len < limit + 1 ? len : limit + 1;
		const char *nl = memchr(data, '\n', look);
		if (nl) {
			size_t n = (size_t)(nl - data);
			l->cb(data, n, 0, l->payload);
			data += n + 1;
			len -= n + 1;
		} else if (len > limit) {
			l->cb(data, limit, 1, l->payload);
			data += limit;
			len -= limit;
		} else {
			pend(l, data, len);
			return;
		}
	}
}

void rn_lines_flush(rn_lines *l)
{
	if (l->len == 0)
		return;
	size_t n = l->len;
	l->len = 0;
	l->cb(l->buf, n, 1, l->payload);
}

void rn_lines_free(rn_lines *l)
{
	free(l->buf);
	l->buf = NULL;
	l->len = 0;
}
