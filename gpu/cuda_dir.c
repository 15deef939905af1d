/*
 * cuda_dir.c: the device directories (cuda_dir.h): the value of an entry as the caches stand,
 * the round's updates (keys moved, then keys made resident) gathered on the host for one upload,
 * the insertion of a chunk into a cache with its eviction noted, and the rebuilding of every
 * directory after a cache was emptied.
 */
#include "config.h"

#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "cuda_dir.h"
#include "cuda_landmarks.h"
#include "cuda_pool.h"

/*
 * The directory value of (uid, j) as the caches stand: its device slot, else (with unified
 * addressing) its pinned host slot, which the device then reads in place, else NULL.
 */
static void *
dir_value(const struct cuda_backend *b, const struct pool *p, uint64_t uid, uint64_t j)
{
	uint32_t s = slot_cache_peek(&p->dev, uid, j);

	if (s != SLOT_NONE)
		return dev_slot(p, s);
	if (b->uva && (s = slot_cache_peek(&p->host, uid, j)) != SLOT_NONE)
		return host_slot(p, s);
	return NULL;
}

/*
 * A key left a cache: its directory entry, if its memory is resident, is rewritten before the
 * round's other updates with the value dir_value() gives once the round's inserts are done
 * (dir_finish), so that a key that moves more than once within a round ends up right.
 */
static void
dir_moved(struct cuda_backend *b, const struct pool *p, uint64_t uid, uint64_t j)
{
	struct lmk *l = lmk_find(b, uid);

	if (l == NULL || l->kv_bytes != p->kv_bytes || j >= l->cap)
		return;
	b->dset[b->n_clear] = (struct cuk_dir_set){.at = l->dir + j};
	b->dkey[b->n_clear].uid = uid;
	b->dkey[b->n_clear++].j = j;
}

uint32_t
dir_finish(struct cuda_backend *b, const struct pool *p, struct cuk_dir_set *dst)
{
	for (uint32_t i = 0; i < b->n_clear; i++)
		b->dset[i].val = dir_value(b, p, b->dkey[i].uid, b->dkey[i].j);
	memcpy(dst, b->dset, b->n_clear * sizeof(*dst));
	memcpy(dst + b->n_clear, b->dset + b->dset_cap / 3 * 2, b->n_set * sizeof(*dst));
	return b->n_clear + b->n_set;
}

uint32_t
pool_insert(struct cuda_backend *b, struct pool *p, bool host, uint64_t uid, uint64_t j)
{
	struct slot_cache *sc = host ? &p->host : &p->dev;
	uint64_t old_uid = 0, old_j = 0;
	bool evicted = false;
	uint32_t s;

	if (sc->free_head == SLOT_NONE)
		pool_add_seg(b, p, host);
	s = slot_cache_insert_evict(sc, uid, j, b->epoch, &evicted, &old_uid, &old_j);
	if (evicted)
		dir_moved(b, p, old_uid, old_j);
	return s;
}

/* One entry of a rebuilt directory, when the key's memory is resident. */
static void
dir_add(struct cuda_backend *b, const struct pool *p, struct cuk_dir_set *sets, uint32_t *n,
        uint64_t uid, uint64_t j, void *val)
{
	struct lmk *l = lmk_find(b, uid);

	if (l == NULL || l->kv_bytes != p->kv_bytes || j >= l->cap)
		return;
	sets[(*n)++] = (struct cuk_dir_set){.at = l->dir + j, .val = val};
	l->expect_miss = false;
}

int
dirs_rebuild(struct cuda_backend *b)
{
	size_t max = 0;
	uint32_t n = 0;
	int err;

	for (unsigned i = 0; i < b->n_pools; i++)
		max += (size_t)b->pools[i].dev.n_used + b->pools[i].host.n_used;
	for (struct lmk *l = b->lru_head; l != NULL; l = l->next) {
		l->expect_miss = true;
		if (l->cap > 0 &&
		    (err = CU(cudaMemsetAsync(l->dir, 0, l->cap * sizeof(void *), b->st))) != 0)
			return err;
	}
	if (max > 0) {
		if ((err = host_reserve(b, &b->h_tab, max * sizeof(struct cuk_dir_set))) != 0 ||
		    (err = dev_reserve(b, &b->d_tab, max * sizeof(struct cuk_dir_set))) != 0)
			return err;
		struct cuk_dir_set *sets = b->h_tab.p;
		for (unsigned i = 0; i < b->n_pools; i++) {
			const struct pool *p = &b->pools[i];
			for (uint32_t s = p->dev.head; s != SLOT_NONE; s = p->dev.next[s])
				dir_add(b, p, sets, &n, p->dev.uid[s], p->dev.j[s], dev_slot(p, s));
			for (uint32_t s = p->host.head; b->uva && s != SLOT_NONE;
			     s = p->host.next[s])
				if (slot_cache_peek(&p->dev, p->host.uid[s], p->host.j[s]) ==
				    SLOT_NONE)
					dir_add(b, p, sets, &n, p->host.uid[s], p->host.j[s],
					        host_slot(p, s));
		}
		if (n > 0 && ((err = CU(cudaMemcpyAsync(b->d_tab.p, sets, n * sizeof(*sets),
		                                        cudaMemcpyHostToDevice, b->st))) != 0 ||
		              (err = CU(cuk_dir_update(b->st, b->d_tab.p, 0, n))) != 0))
			return err;
	}
	return CU(cudaStreamSynchronize(b->st));
}
