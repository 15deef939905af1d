/*
 * cuda_cache.c: the slot cache of cuda_cache.h: a hash table from (uid, chunk) to slot, an LRU
 * list through the held slots and a free list. It owns these tables only; what a slot holds and
 * where it lives is the caller's business. Plain C, so the state machine is tested on any host.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_cache.h"

static inline uint32_t
key_hash(uint64_t uid, uint64_t j)
{
	uint64_t h = uid * 0x9e3779b97f4a7c15ull ^ (j + 0x632be59bd9b4e019ull);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (uint32_t)h;
}

void
slot_cache_init(struct slot_cache *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->head = sc->tail = sc->free_head = SLOT_NONE;
}

void
slot_cache_fini(struct slot_cache *sc)
{
	if (sc == NULL)
		return;
	free(sc->uid);
	free(sc->j);
	free(sc->stamp);
	free(sc->prev);
	free(sc->next);
	free(sc->table);
	slot_cache_init(sc);
}

static void
table_put(struct slot_cache *sc, uint32_t s)
{
	uint32_t i = key_hash(sc->uid[s], sc->j[s]) & sc->mask;

	while (sc->table[i] != 0)
		i = (i + 1) & sc->mask;
	sc->table[i] = s + 1;
}

/* Removes slot s from the table, shifting back the entries of its probe run. */
static void
table_del(struct slot_cache *sc, uint32_t s)
{
	uint32_t i = key_hash(sc->uid[s], sc->j[s]) & sc->mask;

	while (sc->table[i] != s + 1)
		i = (i + 1) & sc->mask;
	for (uint32_t gap = i;;) {
		i = (i + 1) & sc->mask;
		if (sc->table[i] == 0) {
			sc->table[gap] = 0;
			return;
		}
		uint32_t o = sc->table[i] - 1;
		uint32_t home = key_hash(sc->uid[o], sc->j[o]) & sc->mask;
		/* the entry at i may move to gap if its home is not in (gap, i] */
		if (((i - home) & sc->mask) >= ((i - gap) & sc->mask)) {
			sc->table[gap] = sc->table[i];
			gap = i;
		}
	}
}

static void
lru_unlink(struct slot_cache *sc, uint32_t s)
{
	if (sc->prev[s] != SLOT_NONE)
		sc->next[sc->prev[s]] = sc->next[s];
	else
		sc->head = sc->next[s];
	if (sc->next[s] != SLOT_NONE)
		sc->prev[sc->next[s]] = sc->prev[s];
	else
		sc->tail = sc->prev[s];
}

static void
lru_push_head(struct slot_cache *sc, uint32_t s)
{
	sc->prev[s] = SLOT_NONE;
	sc->next[s] = sc->head;
	if (sc->head != SLOT_NONE)
		sc->prev[sc->head] = s;
	sc->head = s;
	if (sc->tail == SLOT_NONE)
		sc->tail = s;
}

int
slot_cache_grow(struct slot_cache *sc, uint32_t n)
{
	uint32_t old = sc->n_slots, total = old + n, size = 16;
	uint64_t *u, *jj, *st;
	uint32_t *pv, *nx, *tb;

	if (n == 0)
		return 0;
	if (total < old || total >= (1u << 30))
		return -ENOMEM;
	while (size < 2 * total)
		size <<= 1;
	if ((u = realloc(sc->uid, total * sizeof(*u))) == NULL)
		return -ENOMEM;
	sc->uid = u;
	if ((jj = realloc(sc->j, total * sizeof(*jj))) == NULL)
		return -ENOMEM;
	sc->j = jj;
	if ((st = realloc(sc->stamp, total * sizeof(*st))) == NULL)
		return -ENOMEM;
	sc->stamp = st;
	if ((pv = realloc(sc->prev, total * sizeof(*pv))) == NULL)
		return -ENOMEM;
	sc->prev = pv;
	if ((nx = realloc(sc->next, total * sizeof(*nx))) == NULL)
		return -ENOMEM;
	sc->next = nx;
	if ((tb = calloc(size, sizeof(*tb))) == NULL)
		return -ENOMEM;
	free(sc->table);
	sc->table = tb;
	sc->mask = size - 1;
	for (uint32_t s = sc->head; s != SLOT_NONE; s = sc->next[s])
		table_put(sc, s);
	for (uint32_t s = total; s-- > old;) {
		sc->stamp[s] = 0;
		sc->next[s] = sc->free_head;
		sc->free_head = s;
	}
	sc->n_slots = total;
	return 0;
}

uint32_t
slot_cache_peek(const struct slot_cache *sc, uint64_t uid, uint64_t j)
{
	if (sc->n_used == 0)
		return SLOT_NONE;
	for (uint32_t i = key_hash(uid, j) & sc->mask; sc->table[i] != 0; i = (i + 1) & sc->mask) {
		uint32_t s = sc->table[i] - 1;
		if (sc->uid[s] == uid && sc->j[s] == j)
			return s;
	}
	return SLOT_NONE;
}

uint32_t
slot_cache_lookup(struct slot_cache *sc, uint64_t uid, uint64_t j, uint64_t epoch, bool *was_pinned)
{
	uint32_t s = slot_cache_peek(sc, uid, j);

	if (s == SLOT_NONE)
		return SLOT_NONE;
	if (sc->head != s) {
		lru_unlink(sc, s);
		lru_push_head(sc, s);
	}
	if (was_pinned != NULL)
		*was_pinned = sc->stamp[s] == epoch;
	sc->stamp[s] = epoch;
	return s;
}

uint32_t
slot_cache_insert(struct slot_cache *sc, uint64_t uid, uint64_t j, uint64_t epoch)
{
	return slot_cache_insert_evict(sc, uid, j, epoch, NULL, NULL, NULL);
}

uint32_t
slot_cache_insert_evict(struct slot_cache *sc, uint64_t uid, uint64_t j, uint64_t epoch,
                        bool *evicted, uint64_t *old_uid, uint64_t *old_j)
{
	uint32_t s = sc->free_head;
	bool ev = false;

	if (s != SLOT_NONE) {
		sc->free_head = sc->next[s];
		sc->n_used++;
	} else {
		/* pinned slots were touched this call, so they sit at the head end */
		for (s = sc->tail; s != SLOT_NONE && sc->stamp[s] == epoch; s = sc->prev[s])
			;
		if (s == SLOT_NONE)
			return SLOT_NONE;
		table_del(sc, s);
		lru_unlink(sc, s);
		ev = true;
		if (old_uid != NULL)
			*old_uid = sc->uid[s];
		if (old_j != NULL)
			*old_j = sc->j[s];
	}
	if (evicted != NULL)
		*evicted = ev;
	sc->uid[s] = uid;
	sc->j[s] = j;
	sc->stamp[s] = epoch;
	table_put(sc, s);
	lru_push_head(sc, s);
	return s;
}

static void
slot_free(struct slot_cache *sc, uint32_t s)
{
	table_del(sc, s);
	lru_unlink(sc, s);
	sc->next[s] = sc->free_head;
	sc->free_head = s;
	sc->n_used--;
}

uint32_t
slot_cache_forget_each(struct slot_cache *sc, uint64_t uid, void (*each)(uint32_t slot, void *arg),
                       void *arg)
{
	uint32_t n = 0;

	for (uint32_t s = sc->head; s != SLOT_NONE;) {
		uint32_t nx = sc->next[s];
		if (sc->uid[s] == uid) {
			if (each != NULL)
				each(s, arg);
			slot_free(sc, s);
			n++;
		}
		s = nx;
	}
	return n;
}

uint32_t
slot_cache_forget(struct slot_cache *sc, uint64_t uid)
{
	return slot_cache_forget_each(sc, uid, NULL, NULL);
}

void
slot_cache_clear(struct slot_cache *sc)
{
	while (sc->head != SLOT_NONE)
		slot_free(sc, sc->head);
}
