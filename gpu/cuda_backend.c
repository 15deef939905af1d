/*
 * cuda_backend.c: the CUDA backend. It owns one device's state for hsamem: a stream, the resident
 * landmark matrices of recently queried memories, the device and pinned host chunk caches, and
 * the scratch buffers of a call. It never owns chunk data of record: everything comes from the
 * source during a call, and may be dropped at any time.
 *
 * Calls are batched: a caller queues its call, and whichever caller finds the device idle takes
 * every queued call and computes them together (cuda_attend), so calls from several clients that
 * arrive while the device is busy share its next pass. A pass makes each call's landmarks
 * resident (1 below) and pins them for the pass, then runs rounds: a round holds up to TOK_GROUP
 * query tokens of calls of one shape and k (one call's tokens may span rounds, several calls'
 * tokens share one), each run of tokens of one memory a segment, and every step after 1 runs
 * once per round for all its segments together:
 *
 *   1. residency: the memory's landmark rows that are visible to the query and not yet on the
 *      device are copied from the source through two pinned staging buffers (host memcpy of one
 *      overlaps the DMA of the other) onto the end of its device matrix, which grows by doubling
 *      with a device-to-device copy: sealed chunks never change, so rows once loaded stay valid;
 *   2. one upload of the round's fp32 queries, visibilities, attention queries, segments and
 *      each token's directory;
 *   3. selection (gpu/cuda_kernels.cu): scores of every landmark a token sees, against its own
 *      memory's matrix, as 32-bit keys: a segment of GEMM_TOKENS or more on f16 landmarks by a
 *      cuBLAS GEMM of the queries split into f16 high and low parts, fp32 accumulation; the
 *      others by a kernel of fp32 dot products (streaming the landmarks for few tokens); then a
 *      radix select of the k best per (token, kv head) with their weights;
 *   4. warm path: a kernel resolves the selected chunks through each memory's device directory
 *      (cuda_cache.h) to their slots, in the device cache or else in the pinned host cache (read
 *      in place over the bus), and counts those in neither; the in-chunk attention and fusion
 *      run on them, one download brings back selection, miss count and output, and the stream
 *      is synchronised once. With no miss the host then touches the selected chunks in its
 *      LRU, leaves a gather running that copies the ones read from host slots into device
 *      slots, and the round is done. When misses are expected (a memory's directory is new or
 *      was emptied, or its last round missed) the round reads its selection back instead and
 *      goes straight to 5, wasting no pass;
 *   5. slow path, when some chunk missed: each selected chunk is looked up in the device cache;
 *      misses get a device slot (or a place in device staging when the cache is full of this
 *      round's chunks) and are read from the pinned host cache, or from the source into it (or
 *      into pinned staging) by the copy pool's threads, woken while the selection ran, and the
 *      calling thread together: in parallel through the source's copy_kv where it has one; the
 *      directory updates and the gather list go up in one upload, and a gather kernel copies each
 *      run of batches of misses from mapped pinned memory as soon as its host copies are done;
 *      attention and fusion run again, and the stream is synchronised before the round ends, so
 *      the next round may reuse every buffer. Each call's share of the results is copied to its
 *      buffers.
 *
 * The warm path of a round of few tokens is thus one upload, seven kernels (score, three of the
 * select, resolve, attention, fusion), one download and one synchronisation; scratch buffers only
 * grow, so nothing is allocated once a shape has been seen.
 *
 * Memories the budget cannot hold, shapes the kernels do not cover, f32 memories and sources with
 * an unsealed tail (never cached: backend.h) are served by the CPU backend the backend was given,
 * so a resource shortfall never reads as a device failure. A
 * CUDA error is logged with its statement, file and line, fails the call with
 * HSAMEM_EBACKEND and leaves the backend failed: the daemon then serves on the CPU.
 *
 * Concurrency: one stream, one lock over the device state held by the caller computing a pass,
 * and the queue's own lock. A round that fails for a reason of its own (a source's error, a
 * shortfall) has its pass's calls computed again one by one, so each caller gets its own result
 * or error. The chunk caches are documented in cuda_cache.h.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_backend.h"
#include "cuda_cache.h"
#include "cuda_copy.h"
#include "cuda_int.h"
#include "half.h"
#include "hsamem_defs.h"
#include "log.h"

#define TOK_GROUP      32       /* query tokens per round */
#define GEMM_TOKENS    8        /* a segment's tokens from which cuBLAS scores it */
#define GEMM_QUERY_MAX 60000.0f /* query elements cuBLAS's f16 split can carry */
_Static_assert(TOK_GROUP <= CUK_SEG_TOKENS,
               "the tokens of one memory in a round fit one scoring segment");
#define LMK_STAGE_BYTES (8u << 20)         /* each of the two landmark staging buffers */
#define SEG_BYTES       ((size_t)64 << 20) /* chunk cache segment */
#define SLOT_ALIGN      256
#define LMK_BUCKETS     1024
#define MAX_POOLS       8
#define CP_PUBLISH      4                   /* jobs published at a time by a walk */
#define CP_MIN_BYTES    ((size_t)256 << 10) /* copies worth waking the pool for */
#define CP_BATCH_BYTES  ((size_t)512 << 10) /* misses gathered by one launch */
#define BATCH_CALLS     64                  /* most calls computed together */

/* ---- errors ---- */

static int
cu_fail(cudaError_t e, const char *stmt, const char *file, int line)
{
	if (e == cudaSuccess)
		return 0;
	log_err("cuda: %s failed at %s:%d: %s (%s)", stmt, file, line, cudaGetErrorString(e),
	        cudaGetErrorName(e));
	return HSAMEM_EBACKEND;
}

#define CU(stmt) cu_fail((stmt), #stmt, __FILE__, __LINE__)

static int
blas_fail(cublasStatus_t e, const char *stmt, const char *file, int line)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return 0;
	log_err("cuda: %s failed at %s:%d: %s (%d)", stmt, file, line, cublasGetStatusString(e),
	        (int)e);
	return HSAMEM_EBACKEND;
}

#define BLAS(stmt) blas_fail((stmt), #stmt, __FILE__, __LINE__)

/* ---- state ---- */

struct lmk {
	uint64_t uid;
	size_t row_bytes, kv_bytes;
	uint64_t rows, cap; /* rows loaded; rows allocated */
	void *dev;
	void **dir;              /* [cap]: the device directory (cuda_cache.h), on the device */
	bool expect_miss;        /* directory new or cleared, or the last round missed */
	uint64_t batch;          /* the last batch that used it: pinned while that batch runs */
	struct lmk *prev, *next; /* LRU, head most recent */
	struct lmk *hnext;
};

/* The chunks of one size: a device slot cache and a pinned host slot cache. */
struct pool {
	size_t kv_bytes, slot_bytes;
	struct slot_cache dev, host;
	char **dev_seg, **host_seg; /* segments of seg_slots slots each */
	uint32_t n_dev_seg, n_host_seg;
	uint32_t dev_seg_slots, host_seg_slots; /* fixed by the first segment */
};

struct buf {
	void *p;
	size_t cap;
};

/* One miss of the current round. */
struct miss {
	uint32_t dev_slot;  /* SLOT_NONE: device staging entry dst_stage */
	uint32_t host_slot; /* SLOT_NONE: pinned staging entry src_stage */
	uint32_t dst_stage, src_stage;
};

struct call;

struct staged {
	uint64_t uid, j;
	uint32_t entry;
	bool used;
};

struct dir_key {
	uint64_t uid, j;
};

struct cuda_backend {
	struct gpu_backend base;
	/* the batcher's queue (cuda_attend) */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct call *q_head, **q_tail;
	bool computing;
	/* the device and everything below */
	pthread_mutex_t mu;
	int device;
	char name[128];
	cudaStream_t st;
	cublasHandle_t blas;
	cudaEvent_t ev[2];
	bool failed;
	bool uva;                /* mapped pinned memory has the same address on the device */
	struct gpu_backend *cpu; /* the fallback, borrowed (gpu_cuda_opts.cpu) */

	uint64_t budget, chunk_budget, host_budget;
	uint64_t lmk_bytes, chunk_bytes, host_bytes, scratch_bytes;
	struct lmk *lru_head, *lru_tail, *buckets[LMK_BUCKETS];
	uint64_t n_resident;
	struct pool pools[MAX_POOLS];
	unsigned n_pools;
	uint64_t epoch; /* of the round: chunk slots it uses are pinned (cuda_cache.h) */
	uint64_t batch; /* of the batch: landmarks it uses are pinned */

	/* device scratch */
	struct buf d_q, d_keys, d_selst, d_cand, d_res, d_attn, d_partial, d_tab, d_stage;
	struct buf d_qh, d_gemm; /* cuBLAS scoring: split queries, products */
	/* pinned host scratch */
	struct buf h_q, h_sel, h_attn, h_tab, h_stage, h_lmk[2];
	/* plain host scratch */
	struct miss *miss;
	size_t miss_cap;
	struct cuk_dir_set *dset; /* [dset_cap]: keys moved from 0, sets from dset_cap / 3 * 2 */
	struct dir_key *dkey;     /* [dset_cap / 3 * 2]: the keys moved */
	size_t dset_cap;
	uint32_t n_clear, n_set;
	struct cpool cp;
	uint32_t gathered; /* the round's jobs whose gather is launched */
	uint32_t *which;   /* per (pair, rank) of a round: device slot or staging entry */
	uint8_t *kind;     /* 0 none, 1 device slot, 2 device staging */
	size_t which_cap;
	struct staged *staged; /* per round: (uid, j) -> device staging entry, open addressing */
	size_t staged_cap;

	atomic_uint_fast64_t calls, errors;
	uint64_t lmk_hits, lmk_misses, chunk_hits, chunk_misses;
	struct gpu_cuda_counters ctr;
};

/* ---- buffers ---- */

/*
 * A round's results on the device (d_res), copied back at once: sel [n] int64, score [n],
 * weight [n], the miss count (16 bytes), out [n_out] floats.
 */
static size_t
res_out_off(size_t n)
{
	return n * 16 + 16;
}

static size_t
res_bytes(size_t n, size_t n_out)
{
	return res_out_off(n) + n_out * 4;
}

static size_t
al16(size_t x)
{
	return (x + 15) & ~(size_t)15;
}

/*
 * Grows a scratch buffer of device memory (or of mapped pinned host memory) to at least bytes,
 * by half again at least; its contents are not kept. -ENOMEM when there is no room.
 */
static int
buf_reserve(struct cuda_backend *b, struct buf *x, size_t bytes, bool host)
{
	cudaError_t e;
	void *p;

	if (x->cap >= bytes)
		return 0;
	if (bytes < x->cap + x->cap / 2)
		bytes = x->cap + x->cap / 2;
	bytes = (bytes + 4095) & ~(size_t)4095;
	if (x->p != NULL) {
		int err = host ? CU(cudaFreeHost(x->p)) : CU(cudaFree(x->p));
		x->p = NULL;
		if (!host)
			b->scratch_bytes -= x->cap;
		x->cap = 0;
		if (err != 0)
			return err;
	}
	e = host ? cudaHostAlloc(&p, bytes, cudaHostAllocMapped | cudaHostAllocPortable)
	         : cudaMalloc(&p, bytes);
	if (e == cudaErrorMemoryAllocation) {
		cudaGetLastError();
		log_warn("cuda: no %s memory for %zu bytes of scratch",
		         host ? "pinned host" : "device", bytes);
		return -ENOMEM;
	}
	if (CU(e) != 0)
		return HSAMEM_EBACKEND;
	x->p = p;
	x->cap = bytes;
	if (!host)
		b->scratch_bytes += bytes;
	return 0;
}

static int
dev_reserve(struct cuda_backend *b, struct buf *x, size_t bytes)
{
	return buf_reserve(b, x, bytes, false);
}

static int
host_reserve(struct cuda_backend *b, struct buf *x, size_t bytes)
{
	return buf_reserve(b, x, bytes, true);
}

static void
dev_release(struct buf *x)
{
	if (x->p != NULL)
		cudaFree(x->p);
	x->p = NULL;
	x->cap = 0;
}

static void
host_release(struct buf *x)
{
	if (x->p != NULL)
		cudaFreeHost(x->p);
	x->p = NULL;
	x->cap = 0;
}

/* The device address of mapped pinned memory (the same pointer under unified addressing). */
static int
mapped(const void *host, const void **dev)
{
	void *d = NULL;
	int err = CU(cudaHostGetDevicePointer(&d, (void *)host, 0));
	if (err == 0)
		*dev = d;
	return err;
}

/* ---- landmark residency ---- */

static struct lmk **
lmk_bucket(struct cuda_backend *b, uint64_t uid)
{
	return &b->buckets[(uid * 0x9e3779b97f4a7c15ull) >> 54 & (LMK_BUCKETS - 1)];
}

static struct lmk *
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

static void
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
	bool used[2] = {false, false};

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
			if (fill == 0 && used[cur] &&
			    (err = CU(cudaEventSynchronize(b->ev[cur]))) != 0)
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
				used[cur] = true;
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

/* Makes the first need rows of the memory's landmarks resident; *out gets them. */
static int
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

/* ---- chunk pools ---- */

static struct pool *
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

static char *
dev_slot(const struct pool *p, uint32_t s)
{
	return p->dev_seg[s / p->dev_seg_slots] + (size_t)(s % p->dev_seg_slots) * p->slot_bytes;
}

static char *
host_slot(const struct pool *p, uint32_t s)
{
	return p->host_seg[s / p->host_seg_slots] + (size_t)(s % p->host_seg_slots) * p->slot_bytes;
}

/* Adds a segment of device (or pinned host) slots within the budget; false when none fits. */
static bool
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
	if (slot_cache_grow(sc, n) != 0) {
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

static void
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

/* ---- calls, batches and rounds ---- */

/*
 * One attend() call. Its caller queues it and waits; the batcher computes it together with the
 * calls queued beside it (cuda_attend).
 */
struct call {
	const struct hsa_spec *spec;
	const struct hsa_source *src;
	const struct hsa_query *q;
	struct hsa_result *res;
	struct lmk *lmk;
	struct pool *pool;
	uint32_t placed; /* tokens given to rounds so far */
	int err;
	bool done;         /* under qmu: err and res are final */
	struct call *next; /* the queue, then the batch */
};

/* A run of a round's tokens taken from one call. */
struct seg {
	struct call *c;
	uint32_t t0, nt; /* tokens t0 .. t0 + nt - 1 of the call */
	uint32_t rt0;    /* the first one's place in the round */
	uint64_t len;    /* the most chunks one of them sees */
};

/* Up to TOK_GROUP query tokens of calls of one shape, computed in one pass. */
struct round {
	struct cuda_backend *b;
	const struct hsa_spec *spec;
	struct pool *pool;
	uint32_t k, G, d_rh;
	bool attn;
	uint32_t nt, n_seg;
	uint32_t n_dseg;  /* segments on the device: one per run of tokens of one memory */
	uint32_t n_gemm;  /* of them, scored by cuBLAS */
	uint32_t dseg_nt; /* most tokens of one of the others */
	uint64_t max_vis;
	struct seg seg[TOK_GROUP];
	struct call *tok[TOK_GROUP]; /* the call of each token */
	uint64_t t_start;            /* ns, for the counters of rounds with misses */
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Selection entries of the round (pairs times k) and output floats. */
static size_t
round_n(const struct round *r)
{
	return (size_t)r->nt * r->spec->h_kv * r->k;
}

static size_t
round_n_out(const struct round *r)
{
	return (size_t)r->nt * r->spec->h_q * r->spec->d_h;
}

/*
 * Packs the round's upload: fp32 queries, visibilities, attention queries, the segments and each
 * token's directory. Offsets of the parts after the first go to off[0..3].
 */
static size_t
pack_queries(struct round *r, void *dst, size_t off[4])
{
	const struct hsa_spec *sp = r->spec;
	uint32_t nt = r->nt;
	size_t n_qr = (size_t)nt * sp->d_r, n_qa = (size_t)nt * sp->h_q * sp->d_h;
	char *d = dst;

	off[0] = al16(n_qr * 4);
	off[1] = off[0] + al16((size_t)nt * 4);
	off[2] = off[1] + al16(n_qa * 4);
	off[3] = off[2] + al16((size_t)r->n_seg * sizeof(struct cuk_seg));
	uint32_t *vis = (uint32_t *)(d + off[0]);
	struct cuk_seg *cs = (struct cuk_seg *)(d + off[2]);
	void *const **dirs = (void *const **)(d + off[3]);

	bool split_ok[TOK_GROUP]; /* per device segment: its queries survive cuBLAS's f16 split */
	r->max_vis = 0;
	r->n_dseg = r->n_gemm = r->dseg_nt = 0;
	for (uint32_t i = 0; i < r->n_seg; i++) {
		struct seg *g = &r->seg[i];
		const struct call *c = g->c;
		const float *qr = c->q->qr + (size_t)g->t0 * sp->d_r;
		bool ok = sp->dtype == HSA_F16;
		g->len = 0;
		for (uint32_t t = 0; t < g->nt; t++) {
			uint64_t v = c->q->pos[g->t0 + t] / sp->S;
			if (v > c->src->n_chunks)
				v = c->src->n_chunks;
			vis[g->rt0 + t] = (uint32_t)v;
			dirs[g->rt0 + t] = (void *const *)c->lmk->dir;
			if (v > g->len)
				g->len = v;
		}
		for (size_t x = 0; ok && x < (size_t)g->nt * sp->d_r; x++)
			ok = fabsf(qr[x]) <= GEMM_QUERY_MAX; /* false for NaN too */
		if (g->len > r->max_vis)
			r->max_vis = g->len;
		/* segments of one memory are neighbours (batch_rounds): they score as one */
		struct cuk_seg *last = r->n_dseg > 0 ? &cs[r->n_dseg - 1] : NULL;
		if (last != NULL && last->lmk == c->lmk->dev) {
			last->nt += g->nt;
			if (g->len > last->len)
				last->len = (uint32_t)g->len;
			split_ok[r->n_dseg - 1] &= ok;
		} else {
			split_ok[r->n_dseg] = ok;
			cs[r->n_dseg++] = (struct cuk_seg){.lmk = c->lmk->dev,
			                                   .t0 = g->rt0,
			                                   .nt = g->nt,
			                                   .len = (uint32_t)g->len};
		}
		memcpy(d + (size_t)g->rt0 * sp->d_r * 4, qr, (size_t)g->nt * sp->d_r * 4);
		memcpy(d + off[1] + (size_t)g->rt0 * sp->h_q * sp->d_h * 4,
		       c->q->qa + (size_t)g->t0 * sp->h_q * sp->d_h,
		       (size_t)g->nt * sp->h_q * sp->d_h * 4);
	}
	/* many tokens on one memory: cuBLAS; the others: cuk_score */
	for (uint32_t i = 0; i < r->n_dseg; i++) {
		cs[i].gemm = split_ok[i] && cs[i].nt >= GEMM_TOKENS && cs[i].len > 0;
		if (cs[i].gemm)
			r->n_gemm++;
		else if (cs[i].nt > r->dseg_nt)
			r->dseg_nt = cs[i].nt;
	}
	return off[3] + (size_t)nt * sizeof(void *);
}

/* Room for the select state, which the kernels leave zero: zeroed whenever it is allocated. */
static int
selst_reserve(struct cuda_backend *b, uint32_t pairs)
{
	size_t cap = b->d_selst.cap, bytes = cuk_select_state_words(pairs) * 4;
	int err = dev_reserve(b, &b->d_selst, bytes);

	if (err == 0 && b->d_selst.cap != cap)
		err = CU(cudaMemsetAsync(b->d_selst.p, 0, b->d_selst.cap, b->st));
	return err;
}

/*
 * The segments cuBLAS scores (pack_queries chose them), one after the other through the same
 * scratch: the split queries, one GEMM over the kv heads, the keys (launches only).
 */
static int
round_gemm(struct round *r, const char *dq, const size_t off[4], uint64_t ld)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	const struct cuk_seg *cs = (const struct cuk_seg *)((const char *)b->h_q.p + off[2]);
	float alpha = 1.0f / sqrtf((float)r->d_rh), beta = 0.0f;
	int err;

	for (uint32_t i = 0; i < r->n_dseg; i++) {
		const struct cuk_seg *g = &cs[i];
		uint64_t ldc = ((uint64_t)g->len + 3) & ~(uint64_t)3;
		if (!g->gemm)
			continue;
		if ((err = dev_reserve(b, &b->d_qh, (size_t)2 * g->nt * sp->d_r * 2)) != 0 ||
		    (err = dev_reserve(b, &b->d_gemm, (size_t)sp->h_kv * 2 * g->nt * ldc * 4)) != 0)
			return err;
		struct cuk_gemm_args ga = {
		        .c = b->d_gemm.p,
		        .vis = (const uint32_t *)(dq + off[0]),
		        .keys = b->d_keys.p,
		        .len = g->len,
		        .ld = ld,
		        .ldc = ldc,
		        .lmk = g->lmk,
		        .qr = (const float *)dq,
		        .t0 = g->t0,
		        .nt = g->nt,
		        .h_kv = sp->h_kv,
		        .d_r = sp->d_r,
		        .d_rh = r->d_rh,
		        .r_scale = alpha,
		};
		if ((err = CU(cuk_split(b->st, (const float *)dq + (size_t)g->t0 * sp->d_r,
		                        b->d_qh.p, g->nt, sp->d_r))) != 0 ||
		    (err = BLAS(cublasGemmStridedBatchedEx(
		             b->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)g->len, (int)(2 * g->nt),
		             (int)r->d_rh, &alpha, g->lmk, CUDA_R_16F, (int)sp->d_r,
		             (long long)r->d_rh, b->d_qh.p, CUDA_R_16F, (int)sp->d_r,
		             (long long)r->d_rh, &beta, b->d_gemm.p, CUDA_R_32F, (int)ldc,
		             (long long)(ldc * 2 * g->nt), (int)sp->h_kv, CUBLAS_COMPUTE_32F,
		             CUBLAS_GEMM_DEFAULT))) != 0 ||
		    (err = CU(cuk_gemm_keys(b->st, &ga))) != 0)
			return err;
	}
	return 0;
}

/* Scores and the top-k of the round, with weights, into d_res (launches only). */
static int
round_select(struct round *r, const char *dq, const size_t off[4])
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	uint32_t nt = r->nt, h_kv = sp->h_kv, k = r->k, pairs = nt * h_kv;
	uint64_t len = r->max_vis, ld = (len + 3) & ~(uint64_t)3;
	int err;

	if ((err = dev_reserve(b, &b->d_res, res_bytes(round_n(r), round_n_out(r)))) != 0 ||
	    (err = selst_reserve(b, pairs)) != 0 ||
	    (len > 0 && ((err = dev_reserve(b, &b->d_keys, (size_t)pairs * ld * 4)) != 0 ||
	                 (err = dev_reserve(b, &b->d_cand, (size_t)pairs * len * 8)) != 0)))
		return err;
	struct cuk_score_args sa = {
	        .seg = (const struct cuk_seg *)(dq + off[2]),
	        .qr = (const float *)dq,
	        .vis = (const uint32_t *)(dq + off[0]),
	        .keys = b->d_keys.p,
	        .len = len,
	        .ld = ld,
	        .n_seg = r->n_dseg,
	        .seg_nt = r->dseg_nt,
	        .nt = nt,
	        .h_kv = h_kv,
	        .d_r = sp->d_r,
	        .d_rh = r->d_rh,
	        .dtype = sp->dtype,
	        .r_scale = 1.0f / sqrtf((float)r->d_rh),
	};
	int64_t *d_sel = b->d_res.p;
	struct cuk_select_args a = {
	        .keys = b->d_keys.p,
	        .vis = sa.vis,
	        .len = len,
	        .ld = ld,
	        .hist = b->d_selst.p,
	        .cand = b->d_cand.p,
	        .pairs = pairs,
	        .h_kv = h_kv,
	        .k = k,
	        .stickbreak = sp->weighting == HSA_STICKBREAK,
	        .sel = d_sel,
	        .score = (float *)(d_sel + (size_t)pairs * k),
	};
	a.weight = a.score + (size_t)pairs * k;
	if ((len > 0 && r->n_gemm < r->n_dseg && (err = CU(cuk_score(b->st, &sa))) != 0) ||
	    (len > 0 && r->n_gemm > 0 && (err = round_gemm(r, dq, off, ld)) != 0) ||
	    (err = CU(cuk_select(b->st, &a))) != 0)
		return err;
	return 0;
}

/*
 * In-chunk attention over the chunk addresses in d_tab and the fusion into d_res's out, then the
 * copies back to the pinned h_sel (same layout as d_res): the whole of d_res (selection, miss
 * count, out) when with_sel, else only out; the probabilities to h_attn. Does not synchronise.
 */
static int
round_attention(struct round *r, const float *d_qa, bool with_sel)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	uint32_t nt = r->nt, h_kv = sp->h_kv, k = r->k;
	size_t n = round_n(r), part = n * r->G * sp->d_h * 4, n_out = round_n_out(r);
	size_t n_attn = (size_t)nt * sp->h_q * k * sp->S;
	char *res = b->d_res.p;
	int err;

	if ((err = dev_reserve(b, &b->d_partial, part)) != 0 ||
	    (r->attn && ((err = dev_reserve(b, &b->d_attn, n_attn * 4)) != 0 ||
	                 (err = host_reserve(b, &b->h_attn, n_attn * 4)) != 0)))
		return err;
	if (r->attn && (err = CU(cudaMemsetAsync(b->d_attn.p, 0, n_attn * 4, b->st))) != 0)
		return err;
	struct cuk_attend_args aa = {
	        .chunk = b->d_tab.p,
	        .qa = d_qa,
	        .partial = b->d_partial.p,
	        .attn = r->attn ? b->d_attn.p : NULL,
	        .nt = nt,
	        .S = sp->S,
	        .h_kv = h_kv,
	        .d_h = sp->d_h,
	        .G = r->G,
	        .k = k,
	        .dtype = sp->dtype,
	        .a_scale = 1.0f / sqrtf((float)sp->d_h),
	        .off_by_one = sp->off_by_one,
	};
	struct cuk_fuse_args fa = {
	        .partial = b->d_partial.p,
	        .sel = (const int64_t *)res,
	        .weight = (const float *)(res + n * 12),
	        .out = (float *)(res + res_out_off(n)),
	        .nt = nt,
	        .h_kv = h_kv,
	        .d_h = sp->d_h,
	        .G = r->G,
	        .k = k,
	};
	if ((err = CU(cuk_attend(b->st, &aa))) != 0 || (err = CU(cuk_fuse(b->st, &fa))) != 0)
		return err;
	size_t from = with_sel ? 0 : res_out_off(n);
	err = CU(cudaMemcpyAsync((char *)b->h_sel.p + from, res + from, res_bytes(n, n_out) - from,
	                         cudaMemcpyDeviceToHost, b->st));
	if (err == 0 && r->attn)
		err = CU(cudaMemcpyAsync(b->h_attn.p, b->d_attn.p, n_attn * 4,
		                         cudaMemcpyDeviceToHost, b->st));
	return err;
}

/*
 * The warm path: the selected chunks' addresses resolved through each token's memory's device
 * directory, attention and fusion on them, everything back, one synchronisation. *misses gets
 * the number of selected chunks that were not resident (their attention was skipped:
 * round_attend redoes it).
 */
static int
round_resolve(struct round *r, const char *dq, const size_t off[4], uint32_t *misses)
{
	struct cuda_backend *b = r->b;
	size_t n = round_n(r);
	char *res = b->d_res.p;
	int err;

	if ((err = dev_reserve(b, &b->d_tab, n * 8)) != 0)
		return err;
	struct cuk_resolve_args ra = {
	        .sel = (const int64_t *)res,
	        .dir = (void *const *const *)(dq + off[3]),
	        .chunk = b->d_tab.p,
	        .misses = (uint32_t *)(res + n * 16),
	        .n = (uint32_t)n,
	        .per_tok = r->spec->h_kv * r->k,
	};
	if ((err = CU(cuk_resolve(b->st, &ra))) != 0 ||
	    (err = round_attention(r, (const float *)(dq + off[1]), true)) != 0 ||
	    (err = CU(cudaStreamSynchronize(b->st))) != 0)
		return err;
	memcpy(misses, (const char *)b->h_sel.p + n * 16, sizeof(*misses));
	return 0;
}

/*
 * The selection of the round back to the host, one synchronisation: the start of the slow path
 * when misses are expected, which then costs no wasted pass through the directory.
 */
static int
round_fetch_sel(struct round *r)
{
	struct cuda_backend *b = r->b;
	size_t n = round_n(r);
	int err;

	if ((err = CU(cudaMemcpyAsync(b->h_sel.p, b->d_res.p, n * 16, cudaMemcpyDeviceToHost,
	                              b->st))) != 0)
		return err;
	return CU(cudaStreamSynchronize(b->st));
}

/* The memory of the selection entry x. */
static inline const struct call *
entry_call(const struct round *r, size_t x)
{
	return r->tok[x / ((size_t)r->spec->h_kv * r->k)];
}

/* The round's results, from h_sel and h_attn, to each call's result at its tokens. */
static void
round_scatter(struct round *r)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	size_t n = round_n(r), per = (size_t)sp->h_kv * r->k, per_out = (size_t)sp->h_q * sp->d_h;
	size_t per_attn = (size_t)sp->h_q * r->k * sp->S;
	const char *hs = b->h_sel.p;

	for (uint32_t i = 0; i < r->n_seg; i++) {
		const struct seg *g = &r->seg[i];
		struct hsa_result *res = g->c->res;
		size_t at = g->rt0 * per, to = g->t0 * per, m = g->nt * per;
		memcpy(res->sel + to, hs + at * 8, m * 8);
		memcpy(res->score + to, hs + n * 8 + at * 4, m * 4);
		memcpy(res->weight + to, hs + n * 12 + at * 4, m * 4);
		memcpy(res->out + g->t0 * per_out, hs + res_out_off(n) + g->rt0 * per_out * 4,
		       g->nt * per_out * 4);
		if (r->attn)
			memcpy(res->attn + g->t0 * per_attn,
			       (const float *)b->h_attn.p + g->rt0 * per_attn,
			       g->nt * per_attn * 4);
	}
}

/* The device staging entry of chunk j of memory uid in this round, creating it; *fresh when new. */
static uint32_t
staged_entry(struct cuda_backend *b, uint64_t uid, uint64_t j, uint32_t *n_staged, bool *fresh)
{
	size_t mask = b->staged_cap - 1;
	size_t i = (size_t)((j ^ uid * 0xff51afd7ed558ccdull) * 0x9e3779b97f4a7c15ull >> 20) & mask;
	struct staged *e;

	for (; (e = &b->staged[i])->used; i = (i + 1) & mask) {
		if (e->uid == uid && e->j == j) {
			*fresh = false;
			return e->entry;
		}
	}
	*e = (struct staged){.uid = uid, .j = j, .entry = (*n_staged)++, .used = true};
	*fresh = true;
	return e->entry;
}

/* ---- the copy pool (cuda_copy.h) and the gathers ---- */

/* Starts the copy pool once: all CPUs but two (a round's copies are a short burst, and the
 * calling thread copies too); false when it has no thread. */
static bool
copy_start(struct cuda_backend *b)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cp_start(&b->cp, cpus > 2 ? (unsigned)(cpus - 2) : 0);
}

/*
 * Launches one gather (copy list copies, readable by the device) for the jobs past those
 * gathered whose batches are copied: whole batches of the n published only, unless final (n is
 * every job). Returns 0, or the launch's error; *any says whether it launched.
 */
static int
gather_ready(struct cuda_backend *b, uint32_t n, bool final, const struct cuk_copy *copies,
             bool *any)
{
	uint32_t end = cp_copied(&b->cp, b->gathered, n, final);

	*any = end > b->gathered;
	if (!*any)
		return 0;
	int err = CU(cuk_gather(b->st, copies + b->gathered, end - b->gathered, b->cp.bytes));
	b->gathered = end;
	return err;
}

/*
 * Completes the copies of the round's n misses, all published, with the pool's threads when they
 * were woken or there are enough bytes to share, and launches a gather (copy list copies) for
 * every run of batches as soon as their copies are done. Returns the first error, a source's
 * included, once every job is through.
 */
static int
copy_run(struct cuda_backend *b, uint32_t n, uint32_t n_src, const struct cuk_copy *copies)
{
	struct cpool *cp = &b->cp;
	int err = 0;

	cp_close(cp, n, (size_t)n_src * cp->bytes >= CP_MIN_BYTES && copy_start(b));
	while (b->gathered < n && err == 0) {
		bool any = false;
		if ((err = gather_ready(b, n, true, copies, &any)) == 0 && !any && !cp_help(cp))
			cp_relax();
	}
	if (err != 0) {
		/* the helpers must be done with the jobs before the caller moves on */
		while (cp_help(cp))
			;
		return err;
	}
	return cp_error(cp);
}

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

/* A directory update of the round: entry j of l's directory set to val. */
static void
dir_set(struct cuda_backend *b, struct lmk *l, uint64_t j, void *val)
{
	b->dset[b->dset_cap / 3 * 2 + b->n_set++] =
	        (struct cuk_dir_set){.at = l->dir + j, .val = val};
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

/* The round's directory updates in upload order, to dst: returns how many. */
static uint32_t
dir_finish(struct cuda_backend *b, const struct pool *p, struct cuk_dir_set *dst)
{
	for (uint32_t i = 0; i < b->n_clear; i++)
		b->dset[i].val = dir_value(b, p, b->dkey[i].uid, b->dkey[i].j);
	memcpy(dst, b->dset, b->n_clear * sizeof(*dst));
	memcpy(dst + b->n_clear, b->dset + b->dset_cap / 3 * 2, b->n_set * sizeof(*dst));
	return b->n_clear + b->n_set;
}

/*
 * A device slot (or a pinned host slot) for (uid, j), growing the cache within its budget first
 * if it is full; the key it evicts has its directory entry rewritten.
 */
static uint32_t
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

/*
 * Room for a round of n selection entries: the miss list, the directory updates (up to 2n keys
 * moved, n set), the copy jobs and the staging table.
 */
static int
round_scratch(struct cuda_backend *b, size_t n)
{
	if (b->miss_cap < n) {
		struct miss *m = realloc(b->miss, n * sizeof(*m));
		if (m == NULL)
			return -ENOMEM;
		b->miss = m;
		if (cp_reserve(&b->cp, n) != 0)
			return -ENOMEM;
		b->miss_cap = n;
	}
	if (b->dset_cap < 3 * n) {
		struct cuk_dir_set *d = realloc(b->dset, 3 * n * sizeof(*d));
		if (d == NULL)
			return -ENOMEM;
		b->dset = d;
		struct dir_key *k = realloc(b->dkey, 2 * n * sizeof(*k));
		if (k == NULL)
			return -ENOMEM;
		b->dkey = k;
		b->dset_cap = 3 * n;
	}
	b->n_clear = b->n_set = 0;
	return 0;
}

/*
 * After a warm round: the selected chunks made most recent (and pinned) in the device cache.
 * Chunks the device read in place from the pinned host cache (their directory entries named host
 * slots) are touched there and copied into device slots by a gather left running on the stream,
 * the directory following in stream order: the next round finds them resident.
 */
static int
round_touch(struct round *r)
{
	struct cuda_backend *b = r->b;
	struct pool *p = r->pool;
	size_t n = round_n(r);
	const int64_t *sel = b->h_sel.p;
	uint32_t n_up = 0;
	bool ready = false; /* the round's scratch, at the first chunk to move */
	int err;

	for (size_t x = 0; x < n; x++) {
		bool again = false;
		if (sel[x] < 0)
			continue;
		const struct call *c = entry_call(r, x);
		uint64_t uid = c->src->uid, j = (uint64_t)sel[x];
		if (slot_cache_lookup(&p->dev, uid, j, b->epoch, &again) != SLOT_NONE) {
			if (!again)
				b->chunk_hits++;
			continue;
		}
		uint32_t h = slot_cache_lookup(&p->host, uid, j, b->epoch, &again);
		if (h == SLOT_NONE) {
			log_err("cuda: chunk %" PRIu64 " of memory %" PRIu64
			        " is in the device directory but in no cache",
			        j, uid);
			return HSAMEM_EINTERNAL;
		}
		if (again)
			continue;
		b->chunk_misses++;
		b->ctr.host_hits++;
		b->ctr.host_direct++;
		b->ctr.bytes_paged += p->kv_bytes;
		if (!ready && (err = round_scratch(b, n)) != 0)
			return err;
		ready = true;
		uint32_t d = pool_insert(b, p, false, uid, j);
		if (d == SLOT_NONE)
			continue; /* the device cache is full of this round's chunks */
		b->miss[n_up].host_slot = h;
		b->miss[n_up++].dev_slot = d;
		dir_set(b, c->lmk, j, dev_slot(p, d));
	}
	if (!ready || (n_up == 0 && b->n_clear == 0))
		return 0;
	size_t bytes = n_up * sizeof(struct cuk_copy) +
	               (size_t)(b->n_clear + b->n_set) * sizeof(struct cuk_dir_set);
	if ((err = host_reserve(b, &b->h_tab, bytes)) != 0 ||
	    (err = dev_reserve(b, &b->d_tab, bytes)) != 0)
		return err;
	struct cuk_copy *cp = b->h_tab.p;
	for (uint32_t i = 0; i < n_up; i++)
		cp[i] = (struct cuk_copy){.src = host_slot(p, b->miss[i].host_slot),
		                          .dst = dev_slot(p, b->miss[i].dev_slot)};
	uint32_t n_dir = dir_finish(b, p, (struct cuk_dir_set *)(cp + n_up));
	const struct cuk_copy *d_cp = b->d_tab.p;
	bytes = (char *)((struct cuk_dir_set *)(cp + n_up) + n_dir) - (char *)cp;
	if ((err = CU(cudaMemcpyAsync(b->d_tab.p, b->h_tab.p, bytes, cudaMemcpyHostToDevice,
	                              b->st))) != 0 ||
	    (err = CU(cuk_gather(b->st, d_cp, n_up, p->kv_bytes))) != 0 ||
	    (err = CU(cuk_dir_update(b->st, (const struct cuk_dir_set *)(d_cp + n_up), b->n_clear,
	                             n_dir))) != 0)
		return err;
	return 0;
}

/*
 * The slow path of a round, when some selected chunk was not resident: finds or pages in the
 * round's selected chunks, updates the device directory, then runs attention and fusion again.
 */
static int
round_attend(struct round *r, const float *d_qa)
{
	struct cuda_backend *b = r->b;
	struct pool *p = r->pool;
	size_t n = round_n(r);
	const int64_t *sel = b->h_sel.p;
	uint32_t n_miss = 0, n_dstage = 0, n_hstage = 0, n_src = 0;
	uint64_t t_walk = now_ns();
	int err;

	if ((err = round_scratch(b, n)) != 0)
		return err;
	size_t need_staged = 16;
	while (need_staged < 2 * n)
		need_staged <<= 1;
	if (b->staged_cap < need_staged) {
		struct staged *s = realloc(b->staged, need_staged * sizeof(*s));
		if (s == NULL)
			return -ENOMEM;
		b->staged = s;
		b->staged_cap = need_staged;
	}
	memset(b->staged, 0, b->staged_cap * sizeof(*b->staged));
	if (b->which_cap < n) {
		uint32_t *w = realloc(b->which, n * sizeof(uint32_t));
		if (w != NULL)
			b->which = w;
		uint8_t *kd = realloc(b->kind, n);
		if (kd != NULL)
			b->kind = kd;
		if (w == NULL || kd == NULL)
			return -ENOMEM;
		b->which_cap = n;
	}
	uint32_t *which = b->which;
	uint8_t *kind = b->kind;
	memset(kind, 0, n);

	/* table: [n] device pointers, the copies, the directory updates */
	size_t tab_cap = n * (8 + sizeof(struct cuk_copy) + 3 * sizeof(struct cuk_dir_set));
	if ((err = host_reserve(b, &b->h_tab, tab_cap)) != 0)
		return err;
	const void **ptr = b->h_tab.p;
	/* the gathers read their list where the walk writes it, in mapped pinned memory */
	struct cuk_copy *hcp = (struct cuk_copy *)(ptr + n);
	const struct cuk_copy *d_hcp = hcp;
	if (!b->uva && (err = mapped(hcp, (const void **)&d_hcp)) != 0)
		return err;

	/* 1: where each selected chunk is or will be; each miss's copy published to the pool */
	uint32_t batch = (uint32_t)(CP_BATCH_BYTES / p->kv_bytes);
	cp_begin(&b->cp, p->kv_bytes, batch, (uint32_t)n);
	b->gathered = 0;
	uint32_t walk_gather = 4 * b->cp.batch > n / 8 ? 4 * b->cp.batch : (uint32_t)(n / 8);
	for (uint32_t i = 0; i < r->n_seg; i++)
		r->seg[i].c->lmk->expect_miss = false;
	for (size_t x = 0; x < n; x++) {
		if (sel[x] < 0)
			continue;
		const struct call *c = entry_call(r, x);
		const struct hsa_source *src = c->src;
		uint64_t j = (uint64_t)sel[x];
		bool again = false, fresh = true;
		uint32_t s = slot_cache_lookup(&p->dev, src->uid, j, b->epoch, &again);
		if (s != SLOT_NONE) {
			kind[x] = 1;
			which[x] = s;
			if (!again) {
				b->chunk_hits++;
				dir_set(b, c->lmk, j, dev_slot(p, s));
			}
			continue;
		}
		s = pool_insert(b, p, false, src->uid, j);
		struct miss *m = &b->miss[n_miss];
		struct cp_job *jb = &b->cp.job[n_miss];
		m->dev_slot = s;
		if (s == SLOT_NONE) {
			/* device staging, for every entry left at the first one that needs it */
			if (n_dstage == 0 &&
			    (err = dev_reserve(b, &b->d_stage, (n - x) * p->slot_bytes)) != 0)
				goto out;
			m->dst_stage = staged_entry(b, src->uid, j, &n_dstage, &fresh);
			kind[x] = 2;
			which[x] = m->dst_stage;
			if (!fresh)
				continue;
		} else {
			kind[x] = 1;
			which[x] = s;
			dir_set(b, c->lmk, j, dev_slot(p, s));
		}
		b->chunk_misses++;
		c->lmk->expect_miss = true;
		m->host_slot = slot_cache_lookup(&p->host, src->uid, j, b->epoch, NULL);
		jb->src = NULL;
		jb->from = NULL;
		if (m->host_slot != SLOT_NONE) {
			b->ctr.host_hits++;
		} else {
			if (src->copy_kv != NULL) {
				jb->from = src;
				jb->j = j;
			} else if ((err = src->chunk_kv(src->ctx, j, &jb->src)) != 0) {
				goto out;
			} else if (jb->src == NULL) {
				err = HSAMEM_EINTERNAL;
				goto out;
			}
			b->ctr.source_reads++;
			n_src++;
			if (b->host_budget > 0)
				m->host_slot = pool_insert(b, p, true, src->uid, j);
		}
		if (m->host_slot == SLOT_NONE) {
			/* pinned staging, for every miss left at the first one that needs it */
			if (n_hstage == 0 &&
			    (err = host_reserve(b, &b->h_stage, (n - x) * p->slot_bytes)) != 0)
				goto out;
			m->src_stage = n_hstage++;
		}
		jb->dst = m->host_slot != SLOT_NONE
		                  ? host_slot(p, m->host_slot)
		                  : (char *)b->h_stage.p + (size_t)m->src_stage * p->slot_bytes;
		struct cuk_copy *cp = &hcp[n_miss];
		if (b->uva)
			cp->src = jb->dst;
		else if ((err = mapped(jb->dst, &cp->src)) != 0)
			goto out;
		cp->dst = m->dev_slot != SLOT_NONE
		                  ? dev_slot(p, m->dev_slot)
		                  : (char *)b->d_stage.p + (size_t)m->dst_stage * p->slot_bytes;
		/* in fours: each publication takes the line from every spinning thread */
		if (++n_miss % CP_PUBLISH == 0)
			cp_publish(&b->cp, n_miss);
		/* a large round's first gathers go out while it walks, a few large launches */
		bool any;
		if (n_miss - b->gathered >= walk_gather &&
		    (err = gather_ready(b, n_miss, false, d_hcp, &any)) != 0)
			goto out;
	}

	/* 2: the chunk table and the directory updates */
	for (size_t x = 0; x < n; x++)
		ptr[x] = kind[x] == 0   ? NULL
		         : kind[x] == 1 ? (const void *)dev_slot(p, which[x])
		                        : (const void *)((char *)b->d_stage.p +
		                                         (size_t)which[x] * p->slot_bytes);
	struct cuk_dir_set *ds = (struct cuk_dir_set *)(hcp + n_miss);
	uint32_t n_dir = dir_finish(b, p, ds);
	b->ctr.bytes_paged += (uint64_t)n_miss * p->kv_bytes;

	/*
	 * 3: one upload of the table and the directory updates; the rest of the host copies, each
	 * batch's gather launched when it is complete; attention, fusion, results back
	 */
	size_t tab_bytes = (char *)(ds + n_dir) - (char *)ptr;
	if ((err = dev_reserve(b, &b->d_tab, tab_bytes)) != 0)
		goto out;
	const struct cuk_copy *d_cp = (const struct cuk_copy *)((const void **)b->d_tab.p + n);
	if ((err = CU(cudaMemcpyAsync(b->d_tab.p, b->h_tab.p, tab_bytes, cudaMemcpyHostToDevice,
	                              b->st))) != 0 ||
	    (err = CU(cuk_dir_update(b->st, (const struct cuk_dir_set *)(d_cp + n_miss), b->n_clear,
	                             n_dir))) != 0)
		goto out;
	uint64_t t_copy = now_ns();
	b->ctr.ns_walk += t_copy - t_walk;
	if ((err = copy_run(b, n_miss, n_src, d_hcp)) != 0)
		goto out;
	uint64_t t_finish = now_ns();
	b->ctr.ns_copy += t_finish - t_copy;
	if ((err = round_attention(r, d_qa, false)) != 0)
		goto out;
	err = CU(cudaStreamSynchronize(b->st));
	b->ctr.ns_finish += now_ns() - t_finish;
	b->ctr.miss_rounds++;
out:
	return err;
}

/* Runs one round to its results in the calls' result buffers. */
static int
round_run(struct round *r)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	size_t off[4], bytes, n = round_n(r), n_out = round_n_out(r);
	size_t bound = (size_t)r->nt * sp->d_r * 4 + (size_t)r->nt * 4 +
	               (size_t)r->nt * sp->h_q * sp->d_h * 4 +
	               (size_t)r->n_seg * sizeof(struct cuk_seg) + (size_t)r->nt * sizeof(void *) +
	               64;
	bool expect_miss = false;
	uint32_t misses = 0;
	int err;

	r->t_start = now_ns();
	b->epoch++;
	if ((err = host_reserve(b, &b->h_q, bound)) != 0 ||
	    (err = dev_reserve(b, &b->d_q, bound)) != 0 ||
	    (err = host_reserve(b, &b->h_sel, res_bytes(n, n_out))) != 0)
		return err;
	bytes = pack_queries(r, b->h_q.p, off);
	if ((err = CU(cudaMemcpyAsync(b->d_q.p, b->h_q.p, bytes, cudaMemcpyHostToDevice, b->st))) !=
	    0)
		return err;
	const char *dq = b->d_q.p;
	if ((err = round_select(r, dq, off)) != 0)
		return err;
	for (uint32_t i = 0; i < r->n_seg; i++)
		expect_miss |= r->seg[i].c->lmk->expect_miss;
	if (expect_miss) {
		/* the copy pool wakes while the selection runs, ready for the misses */
		if (n * r->pool->kv_bytes >= CP_MIN_BYTES && copy_start(b))
			cp_wake(&b->cp);
		err = round_fetch_sel(r);
		misses = 1;
	} else {
		err = round_resolve(r, dq, off, &misses);
	}
	if (err == 0 && misses == 0) {
		err = round_touch(r);
	} else if (err == 0) {
		b->ctr.ns_select += now_ns() - r->t_start;
		err = round_attend(r, (const float *)(dq + off[1]));
	}
	cp_cancel(&b->cp);
	if (err == 0)
		round_scatter(r);
	return err;
}

/* Whether two calls can share a round: one shape, one k, probabilities asked of both or none. */
static bool
same_round(const struct call *a, const struct call *c)
{
	const struct hsa_spec *x = a->spec, *y = c->spec;

	return a->pool == c->pool && x->S == y->S && x->h_kv == y->h_kv && x->h_q == y->h_q &&
	       x->d_h == y->d_h && x->d_r == y->d_r && x->dtype == y->dtype &&
	       x->weighting == y->weighting && x->off_by_one == y->off_by_one &&
	       a->q->k == c->q->k && (a->res->attn != NULL) == (c->res->attn != NULL);
}

/*
 * Makes a call's landmarks resident and pins them to the batch, so that no other call of the
 * batch evicts them. -ENOMEM when the call does not fit the device (it is then served on the
 * CPU), or the source's error.
 */
static int
call_prepare(struct cuda_backend *b, struct call *c)
{
	const struct hsa_spec *sp = c->spec;
	uint64_t need = 0;
	int err;

	c->placed = 0;
	for (uint32_t t = 0; t < c->q->n; t++) {
		uint64_t v = c->q->pos[t] / sp->S;
		if (v > need)
			need = v;
	}
	if (need > c->src->n_chunks)
		need = c->src->n_chunks;
	if (need >= INT32_MAX)
		return -ENOMEM; /* beyond the 32-bit chunk indices of the kernels */
	if ((c->pool = pool_get(b, spec_kv_bytes(sp))) == NULL)
		return -ENOMEM;
	if ((err = lmk_ensure(b, sp, c->src, need, &c->lmk)) != 0)
		return err;
	c->lmk->batch = b->batch;
	return 0;
}

/*
 * The rounds of the batch's prepared calls (err 0): each round takes the tokens of the first
 * call with tokens left and of the calls after it that can share its round, up to TOK_GROUP.
 * Returns the first round's error.
 */
static int
batch_rounds(struct cuda_backend *b, struct call *list)
{
	for (;;) {
		struct round r = {.b = b};
		struct call *lead = list;

		while (lead != NULL && (lead->err != 0 || lead->placed == lead->q->n))
			lead = lead->next;
		if (lead == NULL)
			return 0;
		r.spec = lead->spec;
		r.pool = lead->pool;
		r.k = lead->q->k;
		r.G = r.spec->h_q / r.spec->h_kv;
		r.d_rh = r.spec->d_r / r.spec->h_kv;
		r.attn = lead->res->attn != NULL;
		for (struct call *c = lead; c != NULL && r.nt < TOK_GROUP; c = c->next) {
			if (c->err != 0 || c->placed == c->q->n || !same_round(lead, c))
				continue;
			uint32_t m = c->q->n - c->placed;
			if (m > TOK_GROUP - r.nt)
				m = TOK_GROUP - r.nt;
			/* in place among the segments of its memory, so they score together */
			uint32_t at = r.n_seg;
			while (at > 0 && (uintptr_t)r.seg[at - 1].c->lmk > (uintptr_t)c->lmk)
				at--;
			memmove(&r.seg[at + 1], &r.seg[at], (r.n_seg - at) * sizeof(r.seg[0]));
			r.seg[at] = (struct seg){.c = c, .t0 = c->placed, .nt = m};
			r.n_seg++;
			r.nt += m;
			c->placed += m;
		}
		for (uint32_t i = 0, t = 0; i < r.n_seg; t += r.seg[i++].nt) {
			r.seg[i].rt0 = t;
			for (uint32_t x = 0; x < r.seg[i].nt; x++)
				r.tok[t + x] = r.seg[i].c;
		}
		int err = round_run(&r);
		if (err != 0)
			return err;
	}
}

static void forget_locked(struct cuda_backend *b, uint64_t uid);

/*
 * One pass over a batch: prepares its calls (each call's err) and runs their rounds. Returns 0,
 * or the first round's error; after a round's error the stream is drained and the memories of
 * the batch are forgotten, for a failed round may leave cache slots named for chunks whose copy
 * never ran.
 */
static int
batch_pass(struct cuda_backend *b, struct call *list)
{
	int err;

	b->batch++;
	for (struct call *c = list; c != NULL; c = c->next)
		if ((c->err = call_prepare(b, c)) == HSAMEM_EBACKEND)
			return HSAMEM_EBACKEND;
	if ((err = batch_rounds(b, list)) == 0 || err == HSAMEM_EBACKEND)
		return err;
	if (CU(cudaStreamSynchronize(b->st)) != 0)
		return HSAMEM_EBACKEND;
	for (struct call *c = list; c != NULL; c = c->next)
		forget_locked(b, c->src->uid);
	return err;
}

/*
 * Computes a batch of calls under the device lock, setting each call's err. When a round fails
 * for a reason of its own (a source's error, a shortfall), the batch's calls are computed again
 * one by one, so that each gets its own result or error.
 */
static void
batch_run(struct cuda_backend *b, struct call *list)
{
	uint64_t n = 0;
	int err;

	for (struct call *c = list; c != NULL; c = c->next)
		n++;
	pthread_mutex_lock(&b->mu);
	b->ctr.batches++;
	if (n > 1)
		b->ctr.batched_calls += n;
	if (n > b->ctr.max_batch)
		b->ctr.max_batch = n;
	err = b->failed ? HSAMEM_EBACKEND : CU(cudaSetDevice(b->device));
	if (err == 0)
		err = batch_pass(b, list);
	if (err != 0 && err != HSAMEM_EBACKEND && n == 1) {
		list->err = err;
	} else if (err != 0 && err != HSAMEM_EBACKEND) {
		for (struct call *c = list; c != NULL; c = c->next) {
			struct call *next = c->next;
			if (c->err != 0)
				continue; /* failed alone already */
			c->next = NULL;
			err = batch_pass(b, c);
			c->next = next;
			if (err == HSAMEM_EBACKEND)
				break;
			if (err != 0)
				c->err = err;
		}
	}
	if (err == HSAMEM_EBACKEND) {
		b->failed = true;
		for (struct call *c = list; c != NULL; c = c->next)
			c->err = HSAMEM_EBACKEND;
	}
	pthread_mutex_unlock(&b->mu);
}

/* ---- the backend ---- */

static bool
cuda_supports(struct gpu_backend *gb, const struct hsa_spec *sp)
{
	if (sp == NULL || !gpu_shape_ok(sp) || sp->dtype == HSA_F32)
		return false;
	return cuk_attend_smem(sp->S, sp->d_h, sp->h_q / sp->h_kv) <= cuk_attend_smem_max();
}

/* Serves a call on the CPU fallback; called without the lock. */
static int
cpu_serve(struct cuda_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
          const struct hsa_query *q, struct hsa_result *res)
{
	pthread_mutex_lock(&b->mu);
	b->ctr.cpu_fallbacks++;
	pthread_mutex_unlock(&b->mu);
	return gpu_attend(b->cpu, spec, src, q, res);
}

/*
 * The batcher. A call joins the queue; when no call is being computed, the first waiting caller
 * takes every queued call (up to BATCH_CALLS) and computes them together, then wakes them. Calls
 * that arrive meanwhile queue for the next batch, so calls batch exactly when they arrive
 * together, and a lone call pays only two uncontended locks.
 */
static int
cuda_attend(struct gpu_backend *gb, const struct hsa_spec *spec, const struct hsa_source *src,
            const struct hsa_query *q, struct hsa_result *res)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;
	struct call c = {.spec = spec, .src = src, .q = q, .res = res};
	int err;

	atomic_fetch_add_explicit(&b->calls, 1, memory_order_relaxed);
	if ((err = gpu_check_call(spec, src, q, res)) != 0)
		goto out;
	if (!cuda_supports(gb, spec) || gpu_source_sealed(src) < src->n_chunks) {
		err = cpu_serve(b, spec, src, q, res);
		goto out;
	}
	pthread_mutex_lock(&b->qmu);
	*b->q_tail = &c;
	b->q_tail = &c.next;
	while (!c.done) {
		if (b->computing) {
			pthread_cond_wait(&b->qcv, &b->qmu);
			continue;
		}
		struct call *list = b->q_head, **end = &b->q_head;
		for (unsigned i = 0; *end != NULL && i < BATCH_CALLS; i++)
			end = &(*end)->next;
		b->q_head = *end;
		if (b->q_head == NULL)
			b->q_tail = &b->q_head;
		*end = NULL;
		b->computing = true;
		pthread_mutex_unlock(&b->qmu);
		batch_run(b, list);
		pthread_mutex_lock(&b->qmu);
		for (struct call *x = list, *next; x != NULL; x = next) {
			next = x->next;
			x->done = true;
		}
		b->computing = false;
		pthread_cond_broadcast(&b->qcv);
	}
	pthread_mutex_unlock(&b->qmu);
	err = c.err;
	if (err == -ENOMEM)
		err = cpu_serve(b, spec, src, q, res);
out:
	if (err != 0)
		atomic_fetch_add_explicit(&b->errors, 1, memory_order_relaxed);
	return err;
}

static void
forget_locked(struct cuda_backend *b, uint64_t uid)
{
	struct lmk *l = lmk_find(b, uid);

	if (l != NULL)
		lmk_drop(b, l);
	for (unsigned i = 0; i < b->n_pools; i++) {
		slot_cache_forget(&b->pools[i].dev, uid);
		slot_cache_forget(&b->pools[i].host, uid);
	}
}

static void
cuda_forget(struct gpu_backend *gb, uint64_t uid)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	pthread_mutex_lock(&b->mu);
	cudaSetDevice(b->device);
	forget_locked(b, uid);
	pthread_mutex_unlock(&b->mu);
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

/*
 * Rewrites every resident memory's directory from the caches as they stand, after one was
 * emptied: its chunks' device slots and, with unified addressing, the host slots of those the
 * device does not hold. A memory left with no entry expects misses. Synchronises.
 */
static int
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

void
gpu_cuda_drop(struct gpu_backend *gb, unsigned what)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	pthread_mutex_lock(&b->mu);
	/* the stream may still read the scratch that the rebuild writes */
	if (!b->failed &&
	    (CU(cudaSetDevice(b->device)) != 0 || CU(cudaStreamSynchronize(b->st)) != 0))
		b->failed = true;
	if (what & GPU_CUDA_DROP_LANDMARKS)
		while (b->lru_head != NULL)
			lmk_drop(b, b->lru_head);
	for (unsigned i = 0; i < b->n_pools; i++) {
		if (what & GPU_CUDA_DROP_DEVICE_CHUNKS)
			slot_cache_clear(&b->pools[i].dev);
		if (what & GPU_CUDA_DROP_HOST_CHUNKS)
			slot_cache_clear(&b->pools[i].host);
	}
	/* a stale directory must not be used: failing to rebuild fails the backend */
	if ((what & (GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS)) && !b->failed &&
	    dirs_rebuild(b) != 0)
		b->failed = true;
	pthread_mutex_unlock(&b->mu);
}

void
gpu_cuda_counters(struct gpu_backend *gb, struct gpu_cuda_counters *out)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	pthread_mutex_lock(&b->mu);
	*out = b->ctr;
	out->dev_chunk_slots = out->host_chunk_slots = 0;
	for (unsigned i = 0; i < b->n_pools; i++) {
		out->dev_chunk_slots += b->pools[i].dev.n_slots;
		out->host_chunk_slots += b->pools[i].host.n_slots;
	}
	pthread_mutex_unlock(&b->mu);
}

static void
cuda_stats(struct gpu_backend *gb, struct gpu_stats *out)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "cuda");
	pthread_mutex_lock(&b->mu);
	snprintf(out->device, sizeof(out->device), "%s", b->name);
	out->mem_budget = b->budget;
	out->mem_used = b->lmk_bytes + b->chunk_bytes + b->scratch_bytes;
	out->resident_users = b->n_resident;
	out->lmk_hits = b->lmk_hits;
	out->lmk_misses = b->lmk_misses;
	out->chunk_hits = b->chunk_hits;
	out->chunk_misses = b->chunk_misses;
	pthread_mutex_unlock(&b->mu);
	out->calls = atomic_load_explicit(&b->calls, memory_order_relaxed);
	out->errors = atomic_load_explicit(&b->errors, memory_order_relaxed);
}

static void
cuda_free(struct gpu_backend *gb)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	if (b == NULL)
		return;
	cudaSetDevice(b->device);
	if (b->st != NULL)
		cudaStreamSynchronize(b->st);
	while (b->lru_head != NULL)
		lmk_drop(b, b->lru_head);
	for (unsigned i = 0; i < b->n_pools; i++)
		pool_free_all(b, &b->pools[i]);
	struct buf *dev[] = {&b->d_q,     &b->d_keys, &b->d_selst,   &b->d_cand,
	                     &b->d_res,   &b->d_attn, &b->d_partial, &b->d_tab,
	                     &b->d_stage, &b->d_qh,   &b->d_gemm};
	for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
		dev_release(dev[i]);
	struct buf *host[] = {&b->h_q,     &b->h_attn,   &b->h_sel,   &b->h_tab,
	                      &b->h_stage, &b->h_lmk[0], &b->h_lmk[1]};
	for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
		host_release(host[i]);
	for (int i = 0; i < 2; i++)
		if (b->ev[i] != NULL)
			cudaEventDestroy(b->ev[i]);
	if (b->blas != NULL)
		cublasDestroy(b->blas);
	if (b->st != NULL)
		cudaStreamDestroy(b->st);
	cp_stop(&b->cp);
	free(b->miss);
	free(b->dset);
	free(b->dkey);
	free(b->which);
	free(b->kind);
	free(b->staged);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->qcv);
	pthread_mutex_destroy(&b->qmu);
	free(b);
}

static const struct gpu_ops cuda_ops = {
        .name = "cuda",
        .supports = cuda_supports,
        .attend = cuda_attend,
        .forget = cuda_forget,
        .stats = cuda_stats,
        .free = cuda_free,
};

int
gpu_cuda_backend_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out)
{
	struct cuda_backend *b;
	struct cudaDeviceProp prop;
	size_t free_b = 0, total_b = 0;
	int err;

	if (opts == NULL || out == NULL || opts->cpu == NULL)
		return HSAMEM_EINVAL;
	/* aligned as its members are: the copy pool keeps its counters a cache line apart */
	if ((b = aligned_alloc(_Alignof(struct cuda_backend), sizeof(*b))) == NULL)
		return -ENOMEM;
	memset(b, 0, sizeof(*b));
	cp_init(&b->cp);
	b->base.ops = &cuda_ops;
	b->device = opts->device;
	b->cpu = opts->cpu;
	pthread_mutex_init(&b->qmu, NULL);
	pthread_cond_init(&b->qcv, NULL);
	b->q_tail = &b->q_head;
	pthread_mutex_init(&b->mu, NULL);
	atomic_init(&b->calls, 0);
	atomic_init(&b->errors, 0);
	if ((err = CU(cudaSetDevice(opts->device))) != 0 ||
	    (err = CU(cudaGetDeviceProperties(&prop, opts->device))) != 0 ||
	    (err = CU(cudaMemGetInfo(&free_b, &total_b))) != 0 ||
	    (err = CU(cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking))) != 0 ||
	    (err = BLAS(cublasCreate(&b->blas))) != 0 ||
	    (err = BLAS(cublasSetStream(b->blas, b->st))) != 0 || (err = CU(cuk_init())) != 0 ||
	    (err = CU(cudaEventCreateWithFlags(&b->ev[0], cudaEventDisableTiming))) != 0 ||
	    (err = CU(cudaEventCreateWithFlags(&b->ev[1], cudaEventDisableTiming))) != 0)
		goto fail;
	if ((err = host_reserve(b, &b->h_lmk[0], LMK_STAGE_BYTES)) != 0 ||
	    (err = host_reserve(b, &b->h_lmk[1], LMK_STAGE_BYTES)) != 0)
		goto fail;
	snprintf(b->name, sizeof(b->name), "%.127s", prop.name);
	b->uva = prop.unifiedAddressing != 0;
	b->budget = opts->mem_budget != 0 ? opts->mem_budget : (uint64_t)free_b / 10 * 8;
	b->chunk_budget = b->budget / 2;
	b->host_budget = opts->host_cache;
	log_info("cuda: %s, budget %.1f GiB (chunk cache up to %.1f GiB), pinned host cache "
	         "%.1f GiB",
	         b->name, b->budget / 1073741824.0, b->chunk_budget / 1073741824.0,
	         b->host_budget / 1073741824.0);
	*out = &b->base;
	return 0;
fail:
	cuda_free(&b->base);
	return err == -ENOMEM ? HSAMEM_EBACKEND : err;
}
