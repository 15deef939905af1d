/*
 * test_cuda_cache.c: the slot cache of the CUDA backend (gpu/cuda_cache.h), on any host: lookups
 * and inserts against a plain model of the same LRU policy over many random operations, pinning
 * within an epoch, growth, forget (naming each slot it frees, which the backend zeroes) and clear.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_cache.h"
#include "test.h"

#define MODEL_MAX 4096

/* The model: slots with their key and last use; the LRU unpinned one is evicted. */
struct model {
	uint32_t n;
	bool used[MODEL_MAX];
	uint64_t uid[MODEL_MAX], j[MODEL_MAX], last[MODEL_MAX], stamp[MODEL_MAX];
	uint64_t clock;
};

static uint64_t rng = 88172645463325252ull;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static uint32_t
model_find(const struct model *m, uint64_t uid, uint64_t j)
{
	for (uint32_t s = 0; s < m->n; s++)
		if (m->used[s] && m->uid[s] == uid && m->j[s] == j)
			return s;
	return SLOT_NONE;
}

static void
check_agrees(struct slot_cache *sc, struct model *m)
{
	uint32_t used = 0;
	for (uint32_t s = 0; s < m->n; s++)
		used += m->used[s];
	CHECK(sc->n_used == used);
	/* the LRU list, walked from the head, is in decreasing last use */
	uint64_t prev = UINT64_MAX;
	uint32_t walked = 0;
	for (uint32_t s = sc->head; s != SLOT_NONE; s = sc->next[s]) {
		CHECK(m->used[s]);
		CHECK(m->last[s] < prev);
		prev = m->last[s];
		walked++;
	}
	CHECK(walked == used);
}

/* The slots slot_cache_forget_each names. */
struct freed {
	uint32_t slot[MODEL_MAX], n;
	uint8_t seen[MODEL_MAX];
};

static void
note_freed(uint32_t slot, void *arg)
{
	struct freed *f = arg;
	if (f->n < MODEL_MAX)
		f->slot[f->n] = slot;
	f->n++;
}

int
main(void)
{
	struct slot_cache sc;
	struct model m;
	uint64_t epoch = 1;

	memset(&m, 0, sizeof(m));
	slot_cache_init(&sc);
	CHECK(slot_cache_insert(&sc, 1, 1, epoch) == SLOT_NONE); /* no slot yet */
	CHECK_RET(slot_cache_grow(&sc, 64), 0);
	m.n = 64;

	for (int op = 0; op < 200000; op++) {
		uint32_t what = rnd(100);
		uint64_t uid = 1 + rnd(4), j = rnd(300);
		if (what < 3) {
			epoch++;
		} else if (what < 4 && m.n + 64 <= MODEL_MAX && op < 100000) {
			CHECK_RET(slot_cache_grow(&sc, 64), 0);
			m.n += 64;
		} else if (what < 5) {
			uint32_t n = 0;
			struct freed fr = {0};
			bool same = true;
			for (uint32_t s = 0; s < m.n; s++)
				if (m.used[s] && m.uid[s] == uid) {
					m.used[s] = false;
					fr.seen[s] = 1; /* the model's: to be named once */
					n++;
				}
			if (op % 2 == 0) {
				CHECK(slot_cache_forget(&sc, uid) == n);
				continue;
			}
			/* the slots named are the memory's own, each once: the backend zeroes them
			 */
			CHECK(slot_cache_forget_each(&sc, uid, note_freed, &fr) == n);
			CHECK(fr.n == n);
			for (uint32_t i = 0; i < fr.n && i < MODEL_MAX; i++)
				same = same && fr.slot[i] < m.n && fr.seen[fr.slot[i]]-- == 1;
			CHECK(same);
		} else {
			uint32_t want = model_find(&m, uid, j);
			bool again = false;
			CHECK(slot_cache_peek(&sc, uid, j) == want);
			uint32_t s = slot_cache_lookup(&sc, uid, j, epoch, &again);
			CHECK(s == want);
			if (s != SLOT_NONE) {
				CHECK(again == (m.stamp[s] == epoch));
				m.last[s] = ++m.clock;
				m.stamp[s] = epoch;
				continue;
			}
			/* model: a free slot if any (which one is the cache's choice), else the LRU
			 * unpinned one */
			uint32_t victim = SLOT_NONE, n_free = 0;
			for (uint32_t x = 0; x < m.n; x++)
				n_free += !m.used[x];
			if (n_free == 0)
				for (uint32_t x = 0; x < m.n; x++)
					if (m.stamp[x] != epoch &&
					    (victim == SLOT_NONE || m.last[x] < m.last[victim]))
						victim = x;
			bool evicted = false;
			uint64_t old_uid = 0, old_j = 0;
			s = slot_cache_insert_evict(&sc, uid, j, epoch, &evicted, &old_uid, &old_j);
			if (n_free == 0) {
				CHECK(s == victim);
				/* the evicted key is reported (the device directory drops it) */
				CHECK(evicted == (s != SLOT_NONE));
				if (s != SLOT_NONE)
					CHECK(old_uid == m.uid[s] && old_j == m.j[s]);
			} else {
				CHECK(s != SLOT_NONE && s < m.n && !m.used[s]);
				CHECK(!evicted);
			}
			if (s != SLOT_NONE && s < m.n) {
				m.used[s] = true;
				m.uid[s] = uid;
				m.j[s] = j;
				m.last[s] = ++m.clock;
				m.stamp[s] = epoch;
			}
		}
		if (op % 997 == 0)
			check_agrees(&sc, &m);
	}
	check_agrees(&sc, &m);

	/* every slot pinned: nothing can be evicted */
	slot_cache_clear(&sc);
	CHECK(sc.n_used == 0);
	epoch++;
	for (uint32_t s = 0; s < sc.n_slots; s++)
		CHECK(slot_cache_insert(&sc, 9, s, epoch) != SLOT_NONE);
	CHECK(slot_cache_insert(&sc, 9, 1000000, epoch) == SLOT_NONE);
	epoch++;
	CHECK(slot_cache_insert(&sc, 9, 1000000, epoch) != SLOT_NONE);
	CHECK(slot_cache_lookup(&sc, 9, 0, epoch, NULL) == SLOT_NONE); /* the LRU one went */
	slot_cache_fini(&sc);
	slot_cache_fini(NULL);
	return test_done("test_cuda_cache");
}
