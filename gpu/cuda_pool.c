/*
 * cuda_pool.c: the chunk pools of cuda_pool.h: finding a chunk size's pool, and the memory of its
 * slot caches, allocated a segment at a time within the budgets (the accounting is the backend's
 * chunk_bytes and host_bytes). A segment that cannot be had is no error: the cache then evicts.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_pool.h"
#include "cuda_state.h"

#define SEG_BYTES  ((size_t)64 << 20) /* chunk cache segment */
#define SLOT_ALIGN 256

struct pool *
pool_get(struct cuda_backend *b, size_t kv_bytes)
{
	for (unsigned i = 0; i < b->n_pools; i++)
		if (b->pools[i].kv_bytes == kv_bytes)
			return &b->pools[i];
	if (b->n_pools == MAX_POOLS)
		return NULL;
	struct pool *p = &b->pools[b->n_pools++];
	memset(p, 0, sizeof(*p));
	p->kv_bytes = kv_bytes;
	p->slot_bytes = (kv_bytes + SLOT_ALIGN - 1) & ~(size_t)(SLOT_ALIGN - 1);
	slot_cache_init(&p->dev);
	slot_cache_init(&p->host);
	return p;
}

bool
pool_add_seg(struct cuda_backend *b, struct pool *p, bool host)
{
	uint64_t limit, used, room;
	char ***seg = host ? &p->host_seg : &p->dev_seg;
	uint32_t *seg_slots = host ? &p->host_seg_slots : &p->dev_seg_slots;
	uint32_t *n_seg = host ? &p->n_host_seg : &p->n_dev_seg;
	struct slot_cache *sc = host ? &p->host : &p->dev;
	void *mem = NULL;
	cudaError_t e;

	if (host) {
		limit = b->host_budget;
		used = b->host_bytes;
	} else {
		limit = b->lmk_bytes < b->budget ? b->budget - b->lmk_bytes : 0;
		limit = b->chunk_budget < limit ? b->chunk_budget : limit;
		used = b->chunk_bytes;
	}
	room = used < limit ? limit - used : 0;
	size_t bytes = SEG_BYTES < room ? SEG_BYTES : room;
	uint32_t n = (uint32_t)(bytes / p->slot_bytes);
	if (n == 0 || (*n_seg > 0 && n < *seg_slots))
		return false;
	if (*n_seg > 0)
		n = *seg_slots;
	bytes = (size_t)n * p->slot_bytes;
	char **ns = realloc(*seg, (*n_seg + 1) * sizeof(char *));
	if (ns == NULL)
		return false;
	*seg = ns;
	e = host ? cudaHostAlloc(&mem, bytes, cudaHostAllocMapped | cudaHostAllocPortable)
	         : cudaMalloc(&mem, bytes);
	if (e != cudaSuccess) {
		cudaGetLastError();
		return false;
	}
	/* a slot's bytes past its chunk are never written: they must not keep what the memory
	 * held before (landmarks of another memory, maybe deleted since) */
	if ((!host && cudaMemsetAsync(mem, 0, bytes, b->st) != cudaSuccess) ||
	    slot_cache_grow(sc, n) != 0) {
		cudaGetLastError();
		host ? cudaFreeHost(mem) : cudaFree(mem);
		return false;
	}
	*seg_slots = n;
	(*seg)[(*n_seg)++] = mem;
	if (host)
		b->host_bytes += bytes;
	else
		b->chunk_bytes += bytes;
	return true;
}

void
pool_free_all(struct cuda_backend *b, struct pool *p)
{
	for (uint32_t i = 0; i < p->n_dev_seg; i++)
		cudaFree(p->dev_seg[i]);
	for (uint32_t i = 0; i < p->n_host_seg; i++)
		cudaFreeHost(p->host_seg[i]);
	free(p->dev_seg);
	free(p->host_seg);
	slot_cache_fini(&p->dev);
	slot_cache_fini(&p->host);
}
