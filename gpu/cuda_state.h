/*
 * cuda_state.h: the CUDA backend's state, struct cuda_backend, which every module of the backend
 * shares: cuda_backend.c (the ops, the batching of calls, the lifecycle), cuda_landmarks.c,
 * cuda_pool.c, cuda_dir.c, cuda_round.c and cuda_walk.c; with the structures embedded in it
 * (the chunk pools) and those of a pass (a call, a round), so that the modules need not include
 * each other to share them. It includes no header of those modules. Internal to gpu/.
 *
 * Locking: the queue's fields are under qmu; everything from mu down is the device's state,
 * under mu (held by the caller computing a pass, and by forget, drop, counters and stats), but
 * for calls and errors, which are atomic. alloc and free run alone.
 */
#ifndef HSAMEM_CUDA_STATE_H
#define HSAMEM_CUDA_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_buf.h"
#include "cuda_cache.h"
#include "cuda_copy.h"
#include "cuda_counters.h"
#include "cuda_int.h"

#define LMK_BUCKETS 1024 /* the hash table of resident memories (cuda_landmarks.c) */
#define MAX_POOLS   8    /* chunk sizes at a time (cuda_pool.c) */

struct call;
struct dir_key;
struct lmk;
struct miss;
struct staged;

/* The chunks of one size: a device slot cache and a pinned host slot cache. */
struct pool {
	size_t kv_bytes, slot_bytes;
	struct slot_cache dev, host;
	char **dev_seg, **host_seg; /* segments of seg_slots slots each */
	uint32_t n_dev_seg, n_host_seg;
	uint32_t dev_seg_slots, host_seg_slots; /* fixed by the first segment */
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

/* Scratch of the device, and of mapped pinned host memory, counted in scratch_bytes. */
static inline int
dev_reserve(struct cuda_backend *b, struct buf *x, size_t bytes)
{
	return x->cap >= bytes ? 0 : buf_reserve(x, bytes, false, &b->scratch_bytes);
}

static inline int
host_reserve(struct cuda_backend *b, struct buf *x, size_t bytes)
{
	return x->cap >= bytes ? 0 : buf_reserve(x, bytes, true, &b->scratch_bytes);
}

/* ---- a pass: its calls and rounds (cuda_backend.c, cuda_round.c, cuda_walk.c) ---- */

#define TOK_GROUP 32 /* query tokens per round */
_Static_assert(TOK_GROUP <= CUK_SEG_TOKENS,
               "the tokens of one memory in a round fit one scoring segment");

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
	bool sel_only; /* its calls ask for the selection only (backend.h) */
	uint32_t nt, n_seg;
	uint32_t n_dseg;  /* segments on the device: one per run of tokens of one memory */
	uint32_t n_gemm;  /* of them, scored by cuBLAS */
	uint32_t dseg_nt; /* most tokens of one of the others */
	uint64_t max_vis;
	bool masked; /* a call of the round has a chunk mask (pack_queries) */
	struct seg seg[TOK_GROUP];
	struct call *tok[TOK_GROUP]; /* the call of each token */
	uint64_t t_start;            /* ns, for the counters of rounds with misses */
};

static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Selection entries of the round (pairs times k) and output floats. */
static inline size_t
round_n(const struct round *r)
{
	return (size_t)r->nt * r->spec->h_kv * r->k;
}

static inline size_t
round_n_out(const struct round *r)
{
	return (size_t)r->nt * r->spec->h_q * r->spec->d_h;
}

/* The memory of the selection entry x. */
static inline const struct call *
entry_call(const struct round *r, size_t x)
{
	return r->tok[x / ((size_t)r->spec->h_kv * r->k)];
}

#endif
