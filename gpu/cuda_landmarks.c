/*
 * cuda_landmarks.c: landmark residency (cuda_landmarks.h): the hash table and LRU list of resident
 * memories, eviction under the budget, growth of a memory's matrix and directory by a
 * device-to-device copy, and the loading of new rows through the pinned staging buffers. A
 * grown directory keeps its entries and starts its new ones NULL (misses).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "cuda_landmarks.h"
#include "cuda_state.h"
#include "hsamem_defs.h"

static struct lmk **
lmk_bucket(struct cuda_backend *b, uint64_t uid)
{
	return &b->buckets[(uid * 0x9e3779b97f4a7c15ull) >> 54 & (LMK_BUCKETS - 1)];
}

struct lmk *
lmk_find(struct cuda_backend *b, uint64_t uid)
{
	for (struct lmk *l = *lmk_bucket(b, uid); l != NULL; l = l->hnext)
		if (l->uid == uid)
			return l;
	return NULL;
}

static void
lru_unlink(struct cuda_backend *b, struct lmk *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		b->lru_head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		b->lru_tail = l->prev;
	l->prev = l->next = NULL;
}

static void
lru_front(struct cuda_backend *b, struct lmk *l)
{
	l->next = b->lru_head;
	l->prev = NULL;
	if (b->lru_head != NULL)
		b->lru_head->prev = l;
	b->lru_head = l;
	if (b->lru_tail == NULL)
		b->lru_tail = l;
}

/* Device bytes per row: the landmark and its directory entry. */
static size_t
lmk_row_cost(const struct lmk *l)
{
	return l->row_bytes + sizeof(void *);
}

void
lmk_drop(struct cuda_backend *b, struct lmk *l)
{
	struct lmk **pp = lmk_bucket(b, l->uid);

	while (*pp != l)
		pp = &(*pp)->hnext;
	*pp = l->hnext;
	lru_unlink(b, l);
	if (l->dev != NULL)
		cudaFree(l->dev);
	if (l->dir != NULL)
		cudaFree(l->dir);
	b->lmk_bytes -= l->cap * lmk_row_cost(l);
	b->n_resident--;
	free(l);
}

int
lmk_erase(struct cuda_backend *b, struct lmk *l)
{
	int err = 0;

	if (l->dev != NULL)
		err = CU(cudaMemsetAsync(l->dev, 0, l->cap * l->row_bytes, b->st));
	if (err == 0 && l->dir != NULL)
		err = CU(cudaMemsetAsync(l->dir, 0, l->cap * sizeof(void *), b->st));
	if (err == 0)
		err = CU(cudaStreamSynchronize(b->st));
	lmk_drop(b, l);
	return err;
}

/*
 * Device memory of rows landmarks and directory entries for l, keeping its loaded rows and its
 * directory: evicts other memories' landmarks (least recently used first) until it fits beside
 * the chunk cache. -ENOMEM when it cannot fit.
 */
static int
lmk_grow(struct cuda_backend *b, struct lmk *l, uint64_t rows)
{
	size_t bytes = rows * l->row_bytes, cost = rows * lmk_row_cost(l);
	size_t old = l->cap * lmk_row_cost(l);
	void *p = NULL, **dir = NULL;
	cudaError_t e;
	int err;

	if (cost / lmk_row_cost(l) != rows || cost > b->budget)
		return -ENOMEM;
	while (b->lmk_bytes - old + cost + b->chunk_bytes > b->budget) {
		struct lmk *v = b->lru_tail;
		while (v != NULL && (v == l || v->batch == b->batch))
			v = v->prev;
		if (v == NULL)
			return -ENOMEM;
		lmk_drop(b, v);
		b->ctr.lmk_evictions++;
	}
	if ((e = cudaMalloc(&p, bytes)) == cudaSuccess &&
	    (e = cudaMalloc((void **)&dir, rows * sizeof(void *))) != cudaSuccess)
		cudaFree(p);
	if (e == cudaErrorMemoryAllocation) {
		cudaGetLastError();
		return -ENOMEM;
	}
	if ((err = CU(e)) != 0)
		return err;
	if ((l->rows > 0 && (err = CU(cudaMemcpyAsync(p, l->dev, l->rows * l->row_bytes,
	                                              cudaMemcpyDeviceToDevice, b->st))) != 0) ||
	    (l->cap > 0 && (err = CU(cudaMemcpyAsync(dir, l->dir, l->cap * sizeof(void *),
	                                             cudaMemcpyDeviceToDevice, b->st))) != 0) ||
	    (err = CU(cudaMemsetAsync(dir + l->cap, 0, (rows - l->cap) * sizeof(void *), b->st))) ||
	    (err = CU(cudaMemsetAsync((char *)p + l->rows * l->row_bytes, 0,
	                              (rows - l->rows) * l->row_bytes, b->st))) ||
	    (l->dev != NULL && (err = CU(cudaFree(l->dev))) != 0) ||
	    (l->dir != NULL && (err = CU(cudaFree(l->dir))) != 0)) {
		cudaFree(p);
		cudaFree(dir);
		return err;
	}
	l->dev = p;
	l->dir = dir;
	l->cap = rows;
	b->lmk_bytes += cost - old;
	return 0;
}

/* Copies rows [l->rows, need) from the source, through the two pinned staging buffers. */
static int
lmk_load(struct cuda_backend *b, struct lmk *l, const struct hsa_source *src, uint64_t need)
{
	uint64_t per = LMK_STAGE_BYTES / l->row_bytes, first = l->rows, done = l->rows;
	int cur = 0, err = 0;
	size_t fill = 0; /* rows in the current buffer */

	if (per == 0)
		return -ENOMEM;
	while (first < need) {
		const void *rows = NULL;
		uint64_t count = 0;
		if ((err = src->landmarks(src->ctx, first, &rows, &count)) != 0)
			goto out;
		if (rows == NULL || count == 0) {
			err = HSAMEM_EINTERNAL;
			goto out;
		}
		if (count > need - first)
			count = need - first;
		for (uint64_t off = 0; off < count;) {
			uint64_t n = count - off < per - fill ? count - off : per - fill;
			/* the buffer's last copy may still be in flight, from this call or from
			 * an earlier one (another memory's load in the same batch): an event
			 * never recorded is complete */
			if (fill == 0 && (err = CU(cudaEventSynchronize(b->ev[cur]))) != 0)
				goto out;
			memcpy((char *)b->h_lmk[cur].p + fill * l->row_bytes,
			       (const char *)rows + off * l->row_bytes, n * l->row_bytes);
			fill += n;
			off += n;
			if (fill == per || first + off == need) {
				err = CU(cudaMemcpyAsync((char *)l->dev + done * l->row_bytes,
				                         b->h_lmk[cur].p, fill * l->row_bytes,
				                         cudaMemcpyHostToDevice, b->st));
				if (err == 0)
					err = CU(cudaEventRecord(b->ev[cur], b->st));
				if (err != 0)
					goto out;
				done += fill;
				fill = 0;
				cur ^= 1;
			}
		}
		first += count;
	}
	b->ctr.lmk_bytes_loaded += (need - l->rows) * l->row_bytes;
	b->lmk_misses += need - l->rows;
	l->rows = need;
out:
	return err;
}

int
lmk_ensure(struct cuda_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
           uint64_t need, struct lmk **out)
{
	size_t row_bytes = spec_landmark_bytes(spec), kv_bytes = spec_kv_bytes(spec);
	struct lmk *l = lmk_find(b, src->uid);
	int err;

	if (l != NULL && (l->row_bytes != row_bytes || l->kv_bytes != kv_bytes)) {
		lmk_drop(b, l);
		l = NULL;
	}
	if (l == NULL) {
		if ((l = calloc(1, sizeof(*l))) == NULL)
			return -ENOMEM;
		l->uid = src->uid;
		l->row_bytes = row_bytes;
		l->kv_bytes = kv_bytes;
		l->expect_miss = true;
		l->hnext = *lmk_bucket(b, src->uid);
		*lmk_bucket(b, src->uid) = l;
		lru_front(b, l);
		b->n_resident++;
	} else if (b->lru_head != l) {
		lru_unlink(b, l);
		lru_front(b, l);
	}
	b->lmk_hits += need < l->rows ? need : l->rows;
	if (need > l->cap) {
		uint64_t cap = l->cap * 2 > need ? l->cap * 2 : need;
		if (cap < 1024)
			cap = 1024;
		if (cap > src->n_chunks && src->n_chunks >= need)
			cap = src->n_chunks > 1024 ? src->n_chunks : 1024;
		err = lmk_grow(b, l, cap);
		if (err == -ENOMEM && cap > need)
			err = lmk_grow(b, l, need);
		if (err != 0) {
			if (l->rows == 0)
				lmk_drop(b, l);
			return err;
		}
	}
	if (need > l->rows && (err = lmk_load(b, l, src, need)) != 0)
		return err;
	*out = l;
	return 0;
}
