/*
 * cuda_dir.h: the device directory of each resident memory, which lets the kernels find a
 * selected chunk's slot without the host, and the one way a chunk enters a cache (pool_insert),
 * so that the directory follows every key that moves. Not thread-safe: the backend calls it
 * under its lock.
 *
 * THE DEVICE DIRECTORY
 *
 * The backend keeps, per resident memory and beside its landmarks (cuda_landmarks.h), a directory
 * on the device: dir[j] is the address of the slot holding (uid, j): a device slot when the
 * device cache holds it, else (with unified addressing) its pinned host slot, which the device
 * reads in place over the bus, else NULL. After the top-k a kernel resolves the selection
 * through it, so a call whose chunks are all in either cache runs to its results with one
 * synchronisation; the host then touches the selected chunks, and copies those read from host
 * slots into device slots with a gather it leaves running on the stream (round_touch). Only
 * when the kernel counts a miss (a NULL entry) does the host walk the selection through the
 * caches (lookup, insert, page in) and run the attention again (walk_page_in, also in
 * cuda_walk.c, then round_attend). The host updates the directory in stream order:
 *   - a key that leaves a cache (slot_cache_insert_evict reports it to pool_insert) has its
 *     entry rewritten to where it still is (the other cache, or nowhere), computed once the
 *     round's inserts are done (dir_finish); then the entries of the chunks the round made
 *     resident on the device are set (dir_set; so a key evicted and paged in again within the
 *     round ends up named);
 *   - forget drops the memory's directory with its landmarks (lmk_drop); emptying a cache
 *     rebuilds every directory from the caches as they stand (dirs_rebuild); a memory's
 *     directory grows with its landmarks, keeping its entries (lmk_grow).
 * Invariants (numbered after cuda_cache.h's):
 *   5. A directory entry that is not NULL names a slot (device or host) that holds that key.
 *      The converse need not hold (a directory made afresh after its landmarks were evicted):
 *      such a chunk reads as a miss, and the call's walk through the caches sets its entry.
 *   6. On the warm path the device reads slots that the host has not yet looked up in this
 *      epoch. That is safe because the host inserts nothing and copies nothing between the
 *      resolve kernel and the round's synchronisation, and then looks every selected chunk up
 *      (made most recent and pinned, cuda_cache.h's invariant 3) before anything of the round
 *      can evict it. A gather left running by a round reads host slots that later rounds may
 *      reuse only after their own first synchronisation, which follows it on the stream.
 */
#ifndef HSAMEM_CUDA_DIR_H
#define HSAMEM_CUDA_DIR_H

#include <stdbool.h>
#include <stdint.h>

#include "cuda_int.h"
#include "cuda_landmarks.h"
#include "cuda_state.h"

/* A key that left a cache in this round, whose entry dir_finish rewrites. */
struct dir_key {
	uint64_t uid, j;
};

/* A directory update of the round: entry j of l's directory set to val. */
static inline void
dir_set(struct cuda_backend *b, struct lmk *l, uint64_t j, void *val)
{
	b->dset[b->dset_cap / 3 * 2 + b->n_set++] =
	        (struct cuk_dir_set){.at = l->dir + j, .val = val};
}

/* The round's directory updates in upload order, to dst: returns how many. */
uint32_t dir_finish(struct cuda_backend *b, const struct pool *p, struct cuk_dir_set *dst);

/*
 * A device slot (or a pinned host slot) for (uid, j), pinned for the round, growing the cache
 * within its budget first if it is full; the key it evicts has its directory entry rewritten.
 * SLOT_NONE when every slot is pinned. The round's scratch must be reserved (round_scratch).
 */
uint32_t pool_insert(struct cuda_backend *b, struct pool *p, bool host, uint64_t uid, uint64_t j);

/*
 * Rewrites every resident memory's directory from the caches as they stand, after one was
 * emptied: its chunks' device slots and, with unified addressing, the host slots of those the
 * device does not hold. A memory left with no entry expects misses. Synchronises.
 */
int dirs_rebuild(struct cuda_backend *b);

#endif
