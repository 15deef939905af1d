/*
 * cuda_pool.h: the CUDA backend's chunk caches, one pool per chunk size: a device slot cache and a
 * pinned host slot cache, whose bookkeeping is cuda_cache.h's. A pool's slots live in segments of
 * up to SEG_BYTES, added as a cache fills: device ones within what the budget leaves beside the
 * landmarks and at most the chunk budget, host ones (mapped, so the device can read them in
 * place) within the host budget. A segment's slot count is fixed by the pool's first, so a slot
 * number maps to its address by division (dev_slot, host_slot). struct pool is in cuda_state.h,
 * which embeds the pools. Not thread-safe: the backend calls it under its lock.
 */
#ifndef HSAMEM_CUDA_POOL_H
#define HSAMEM_CUDA_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_state.h"

/* The address of device slot s, or of pinned host slot s, of p. */
static inline char *
dev_slot(const struct pool *p, uint32_t s)
{
	return p->dev_seg[s / p->dev_seg_slots] + (size_t)(s % p->dev_seg_slots) * p->slot_bytes;
}

static inline char *
host_slot(const struct pool *p, uint32_t s)
{
	return p->host_seg[s / p->host_seg_slots] + (size_t)(s % p->host_seg_slots) * p->slot_bytes;
}

/* The pool of chunks of kv_bytes, made if need be; NULL when MAX_POOLS exist already. */
struct pool *pool_get(struct cuda_backend *b, size_t kv_bytes);

/* Adds a segment of device (or pinned host) slots within the budget; false when none fits. */
bool pool_add_seg(struct cuda_backend *b, struct pool *p, bool host);

/* Frees every segment and the caches' tables of p. */
void pool_free_all(struct cuda_backend *b, struct pool *p);

#endif
