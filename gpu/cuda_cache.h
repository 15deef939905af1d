/*
 * cuda_cache.h: the bookkeeping of a cache of fixed-size slots keyed by (uid, chunk), least
 * recently used first out, with pinning for the duration of one call. Plain C and no memory of
 * its own beyond its tables: the CUDA backend keeps one for the device chunk cache and one for the
 * pinned host chunk cache of each chunk size, and maps slot numbers to addresses itself
 * (cuda_pool.h). It is not thread-safe: the backend calls it under its lock.
 *
 * THE LIFE OF A SLOT
 *
 *              slot_cache_insert              slot_cache_lookup (same epoch)
 *     FREE -----------------------> PINNED <------------------------------+
 *      ^                             |  ^                                 |
 *      |                  epoch++    |  | slot_cache_lookup (later epoch) |
 *      |                             v  |                                 |
 *      +---- slot_cache_forget ---- HELD -------------------------------- +
 *      |                             |
 *      +---- insert evicts the LRU --+   (only a HELD slot is ever evicted)
 *
 * A slot is FREE (on the free list), or holds a key: PINNED while its stamp equals the current
 * call's epoch (the call looked it up or filled it, and its data is in flight or will be read by
 * this call's kernels), HELD afterwards. The backend starts each call with a new epoch, so pins
 * fall away by themselves when the call ends; nothing has to unpin.
 *
 * Invariants:
 *   1. A key is in the table at most once, and a slot is on the LRU list iff it holds a key.
 *   2. The LRU list is ordered by last use: head most recent, tail least recent.
 *   3. insert never evicts a PINNED slot: a call's chunks stay put until its kernels have run
 *      (the backend synchronises its stream before the call ends, so the next epoch may reuse
 *      them).
 *   4. forget removes every key of a uid, pinned or not (the backend calls it between calls),
 *      and can name each slot it frees (slot_cache_forget_each).
 *
 * The backend names these slots for its kernels in a device directory per memory, which follows
 * every key a cache takes in or lets go: cuda_dir.h has its rules (invariants 5 and 6).
 */
#ifndef HSAMEM_CUDA_CACHE_H
#define HSAMEM_CUDA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLOT_NONE UINT32_MAX

struct slot_cache {
	uint32_t n_slots; /* slots that exist */
	uint32_t n_used;  /* of them, holding a key */
	uint64_t *uid, *j, *stamp;
	uint32_t *prev, *next; /* LRU list through held slots; free list through next */
	uint32_t head, tail, free_head;
	uint32_t *table; /* open addressing, linear probing: slot + 1, 0 = empty */
	uint32_t mask;   /* table size - 1 */
};

void slot_cache_init(struct slot_cache *sc);
void slot_cache_fini(struct slot_cache *sc);

/* Adds n free slots (numbered n_slots .. n_slots + n - 1). Returns 0 or -ENOMEM. */
int slot_cache_grow(struct slot_cache *sc, uint32_t n);

/*
 * The slot holding (uid, j), made most recent and pinned for epoch; SLOT_NONE if absent.
 * was_pinned (may be NULL): whether it was already pinned for epoch (a repeat within the call).
 */
uint32_t slot_cache_lookup(struct slot_cache *sc, uint64_t uid, uint64_t j, uint64_t epoch,
                           bool *was_pinned);

/* The slot holding (uid, j), or SLOT_NONE; changes nothing (no touch, no pin). */
uint32_t slot_cache_peek(const struct slot_cache *sc, uint64_t uid, uint64_t j);

/*
 * A slot for (uid, j), which must be absent: a free one, else the least recently used one that
 * is not pinned for epoch (its old key is dropped). Pinned for epoch. SLOT_NONE when every slot
 * is pinned (or there is none).
 */
uint32_t slot_cache_insert(struct slot_cache *sc, uint64_t uid, uint64_t j, uint64_t epoch);

/*
 * slot_cache_insert that also says which key it evicted: *evicted (may be NULL) is true when the
 * slot held a key before, which is then in *old_uid and *old_j (written only then). The backend
 * needs it to keep its device directory (the slot's address per chunk) from naming a slot whose
 * key has changed.
 */
uint32_t slot_cache_insert_evict(struct slot_cache *sc, uint64_t uid, uint64_t j, uint64_t epoch,
                                 bool *evicted, uint64_t *old_uid, uint64_t *old_j);

/* Frees every slot of uid; returns how many. */
uint32_t slot_cache_forget(struct slot_cache *sc, uint64_t uid);

/* slot_cache_forget that calls each (may be NULL) with every slot it frees, before freeing it:
 * the backend zeroes the slots of a deleted memory. */
uint32_t slot_cache_forget_each(struct slot_cache *sc, uint64_t uid,
                                void (*each)(uint32_t slot, void *arg), void *arg);

/* Frees every slot. */
void slot_cache_clear(struct slot_cache *sc);

#endif
