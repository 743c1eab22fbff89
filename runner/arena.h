/* arena.h - region allocator: many small allocations freed together. */
#ifndef RN_ARENA_H
#define RN_ARENA_H

#include <stddef.h>

typedef struct rn_arena_block rn_arena_block;
typedef struct rn_arena {
	rn_arena_block *head; /* newest block first */
	size_t total;         /* bytes handed out, for caps */
} rn_arena;

#define RN_ARENA_INIT { NULL, 0 }

/* Zeroed memory of n bytes owned by the arena (aborts on OOM). */
void *rn_arena_alloc(rn_arena *a, size_t n);
/* Copy of s owned by the arena; NULL gives NULL. */
char *rn_arena_strdup(rn_arena *a, const char *s);
/* Copy of the first n bytes of s, NUL-terminated, owned by the arena. */
char *rn_arena_strndup(rn_arena *a, const char *s, size_t n);
/* printf into memory owned by the arena. */
char *rn_arena_printf(rn_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Free everything the arena handed out. */
void rn_arena_free(rn_arena *a);

#endif
