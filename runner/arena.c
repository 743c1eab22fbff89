/* arena.c - region allocator. */
#include "arena.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rn_arena_block {
	rn_arena_block *next;
	size_t used, size;
	max_align_t data[];
};

#define BLOCK_SIZE (64 * 1024 - 64)

void *rn_arena_alloc(rn_arena *a, size_t n)
{
	size_t align = sizeof(max_align_t);
	n = (n + align - 1) / align * align;
	rn_arena_block *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t size = n > BLOCK_SIZE / 4 ? n : BLOCK_SIZE;
		b = rn_xmalloc(sizeof(*b) + size);
		b->used = 0;
		b->size = size;
		if (n > BLOCK_SIZE / 4 && a->head) {
			/* keep the current block as the one to fill */
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	a->total += n;
	memset(p, 0, n);
	return p;
}

char *rn_arena_strndup(rn_arena *a, const char *s, size_t n)
{
	char *p = rn_arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *rn_arena_strdup(rn_arena *a, const char *s)
{
	return s ? rn_arena_strndup(a, s, strlen(s)) : NULL;
}

char *rn_arena_printf(rn_arena *a, const char *fmt, ...)
{
	va_list ap;
	char *tmp;
	va_start(ap, fmt);
	int n = vasprintf(&tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	char *p = rn_arena_strndup(a, tmp, (size_t)n);
	free(tmp);
	return p;
}

void rn_arena_free(rn_arena *a)
{
	rn_arena_block *b = a->head;
	while (b) {
		rn_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->total = 0;
}
