/*
 * arena.h: a bump allocator for building one reply. Everything a reply's protobuf messages point
 * to is allocated here and freed at once when the reply has been packed, so the handlers build
 * nested messages without a free for each of them.
 */
#ifndef HSAMEM_ARENA_H
#define HSAMEM_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
	struct arena_block *head;
	size_t used, cap; /* of the head block */
	size_t total;     /* bytes handed out */
};

void arena_init(struct arena *a);
void arena_fini(struct arena *a);
/* Zeroed memory aligned for any type, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t size);
/* arena_alloc(n * size) with overflow checks. */
void *arena_calloc(struct arena *a, size_t n, size_t size);
/* A NUL-terminated copy of n bytes of s. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);

#endif
