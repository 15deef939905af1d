/*
 * cuda_walk.h: the host's part in a round's chunks (cuda_walk.c): after a warm round, the touch
 * that keeps the caches' LRU order and promotes host slots the device read in place; after a
 * miss, the slow path's walk of the selection through the caches, which pages the missing chunks
 * in through the copy pool (cuda_copy.h) and the gathers. It calls nothing of cuda_round.c.
 */
#ifndef HSAMEM_CUDA_WALK_H
#define HSAMEM_CUDA_WALK_H

#include <stdbool.h>
#include <stdint.h>

#include "cuda_state.h"

#define CP_MIN_BYTES ((size_t)256 << 10) /* copies worth waking the pool for */

/*
 * Starts the copy pool once: all CPUs but two (a round's copies are a short burst, and the
 * calling thread copies too); false when it has no thread.
 */
bool copy_start(struct cuda_backend *b);

/*
 * After a warm round: the selected chunks made most recent (and pinned) in the device cache.
 * Chunks the device read in place from the pinned host cache (their directory entries named host
 * slots) are touched there and copied into device slots by a gather left running on the stream,
 * the directory following in stream order: the next round finds them resident.
 */
int round_touch(struct round *r);

/*
 * The host's part of a round's slow path, when some selected chunk was not resident: finds or
 * pages in the round's selected chunks and updates the device directory, in stream order, into
 * the chunk table (d_tab) that the attention reads next. Returns once every host copy is done
 * and its gather launched; *t_finish gets that time (ns), for the counters.
 */
int walk_page_in(struct round *r, uint64_t *t_finish);

#endif
