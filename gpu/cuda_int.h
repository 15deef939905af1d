/*
 * cuda_int.h: what the CUDA backend's C side (gpu/cuda_backend.c and its modules, chiefly
 * cuda_round.c) and its kernels (gpu/cuda_*.cu) share: the arguments of each kernel and the
 * C-callable functions that launch them on a stream. Launchers only enqueue; they return the
 * launch's cudaError_t and never synchronise. Internal to gpu/.
 */
#ifndef HSAMEM_CUDA_INT_H
#define HSAMEM_CUDA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Selection, in two steps. cuk_score: fp32 dot products of each token's fp32 query with its
 * memory's landmark rows (converted from 16 bits in registers: the CPU backend's arithmetic, only
 * the order of additions differs), times r_scale, written as order-preserving 32-bit keys (NaN as
 * -inf, -0 as +0; 0 where the chunk is not visible to the token). cuk_select: a radix select of
 * the k best per (token, kv head) pair: a histogram of the keys' top CUK_HIST_BITS bits, the
 * candidates at or above the bin of the k-th best (a few hundred for ordinary scores), then one
 * block per pair finds the exact k-th by radix passes over (key, 0xffffffff - index), so ties go
 * to the lower index whatever their number, sorts the k and writes sel, score and weight.
 */
#define CUK_HIST_BITS  12u
#define CUK_HIST_BINS  (1u << CUK_HIST_BITS)
#define CUK_SEG_TOKENS 32u /* most tokens of one segment */

/*
 * A round may hold the tokens of several calls, on several memories of one shape: a segment is
 * a run of the round's tokens that query one memory.
 */
struct cuk_seg {
	const uint16_t *lmk; /* the memory's landmarks [rows][d_r] */
	uint32_t t0, nt;     /* its tokens in the round, nt <= CUK_SEG_TOKENS */
	uint32_t len;        /* rows to score: the most chunks one of its tokens sees */
	uint32_t gemm;       /* scored by cuBLAS (cuk_gemm_keys), which cuk_score skips */
};

struct cuk_score_args {
	const struct cuk_seg *seg; /* [n_seg], on the device */
	const float *qr;           /* [nt][d_r] */
	const uint32_t *vis;       /* [nt] chunks visible to each token */
	uint32_t *keys;            /* [nt][h_kv][ld] */
	uint64_t len, ld;          /* the largest segment len; ld >= len, a multiple of 4 */
	uint32_t n_seg, seg_nt;    /* segments; most tokens in one */
	uint32_t nt, h_kv, d_r, d_rh;
	int dtype;     /* HSA_F16 or HSA_BF16 */
	float r_scale; /* 1 / sqrt(d_r / h_kv) */
};

/*
 * Scoring by cuBLAS, for segments of many tokens on f16 landmarks: cuk_split turns the segment's
 * fp32 queries [nt][d_r] into f16 [2 nt][d_r], the high parts and then what they leave (so the
 * products keep about 22 bits of each query, close to fp32); a GEMM (fp32 accumulation, times
 * r_scale) gives c [h_kv][2 nt][ldc]; cuk_gemm_keys adds each row's two parts into the keys.
 * Landmarks only: f16 (the split is f16's).
 */
struct cuk_gemm_args {
	const float *c;
	const uint32_t *vis; /* [round tokens] */
	uint32_t *keys;      /* [round tokens][h_kv][ld], as cuk_score writes them */
	const uint16_t *lmk; /* the segment's landmarks and the round's fp32 queries: rows */
	const float *qr;     /* whose products are not finite are scored again from them */
	uint64_t len, ld, ldc;
	uint32_t t0, nt, h_kv, d_r, d_rh;
	float r_scale;
};

/* Keys past a token's visibility are not read: each pair's scan stops at vis[pair / h_kv]. */
struct cuk_select_args {
	const uint32_t *keys; /* [pairs][ld], from cuk_score */
	const uint32_t *vis;  /* [nt] */
	uint64_t len, ld;
	uint32_t *hist; /* [pairs][CUK_HIST_BINS], then [pairs] counts: zero between calls */
	uint64_t *cand; /* [pairs][len] */
	uint32_t pairs, h_kv, k;
	int stickbreak;
	int64_t *sel; /* [pairs][k] */
	float *score, *weight;
	/*
	 * NULL, or the chunk masks of the round's calls (backend.h, hsa_query.mask): token t's mask
	 * starts at word mask_off[t] of mask_words (bit j of word j / 32), UINT32_MAX for a token
	 * without one. The keys of chunks a mask leaves out are cleared to 0 ("not visible")
	 * before the selection, so top-k is taken among the allowed chunks.
	 */
	const uint32_t *mask_off;   /* [nt] */
	const uint32_t *mask_words; /* [sum of the masks' words] */
};

/* Words of the select state (histograms and counts) for pairs; zero it once, it stays zero. */
size_t cuk_select_state_words(uint32_t pairs);

/*
 * In-chunk attention: one block per (pair, rank) attends the G query heads of the pair's kv head
 * to one selected chunk and writes the unweighted output o_i, and the probabilities when asked.
 */
struct cuk_attend_args {
	const void *const *chunk; /* [pairs][k]: K|V of the selected chunk, NULL where none */
	const float *qa;          /* [nt][h_q][d_h] */
	float *partial;           /* [pairs][k][G][d_h] */
	float *attn;              /* NULL, or [nt][h_q][k][S] (zeroed by the caller) */
	uint32_t nt, S, h_kv, d_h, G, k;
	int dtype; /* HSA_F16 or HSA_BF16 */
	float a_scale;
	int off_by_one;
};

/* Fusion: out[t][h] = sum over ranks of weight * o_i, in rank order. */
struct cuk_fuse_args {
	const float *partial;
	const int64_t *sel;
	const float *weight;
	float *out; /* [nt][h_q][d_h] */
	uint32_t nt, h_kv, d_h, G, k;
};

/* A copy of one chunk from mapped pinned host memory into device memory. */
struct cuk_copy {
	const void *src;
	void *dst;
};

/*
 * The device directory of a memory's resident chunks: dir[j] is the device address of chunk j's
 * K|V in the device chunk cache, or in the pinned host cache (read in place over the bus), or
 * NULL. cuk_resolve maps a selection through it: chunk[x] gets the
 * address of sel[x]'s chunk (NULL where sel[x] < 0 or the chunk is not resident), and *misses the
 * number of selected chunks that are not resident. One block: a selection is at most a few
 * thousand entries.
 */
struct cuk_resolve_args {
	const int64_t *sel;      /* [n] */
	void *const *const *dir; /* [n / per_tok]: each token's memory's directory */
	const void **chunk;      /* [n] out */
	uint32_t *misses;        /* out */
	uint32_t n, per_tok;     /* entries; entries per token (h_kv * k) */
};

/*
 * Directory updates, in two ordered phases: first the entries of keys that left a cache (set to
 * where they still are, or NULL), then the entries of chunks now resident on the device, so that
 * a chunk evicted and paged in again within one round ends up named. Within a phase the order is
 * not kept: the host sends each address at most once, or with one value.
 */
struct cuk_dir_set {
	void **at;
	void *val;
};

/* Raises the kernels' dynamic shared-memory limits; call once per device. */
cudaError_t cuk_init(void);
/* Shared memory the attention kernel needs for a shape, in bytes. */
size_t cuk_attend_smem(uint32_t S, uint32_t d_h, uint32_t G);
size_t cuk_attend_smem_max(void);

cudaError_t cuk_score(cudaStream_t st, const struct cuk_score_args *a);
cudaError_t cuk_split(cudaStream_t st, const float *qr, uint16_t *qh, uint32_t nt, uint32_t d_r);
cudaError_t cuk_gemm_keys(cudaStream_t st, const struct cuk_gemm_args *a);
cudaError_t cuk_select(cudaStream_t st, const struct cuk_select_args *a);
cudaError_t cuk_attend(cudaStream_t st, const struct cuk_attend_args *a);
cudaError_t cuk_fuse(cudaStream_t st, const struct cuk_fuse_args *a);
cudaError_t cuk_resolve(cudaStream_t st, const struct cuk_resolve_args *a);
/* sets[0 .. n_clear) then sets[n_clear .. n) */
cudaError_t cuk_dir_update(cudaStream_t st, const struct cuk_dir_set *sets, uint32_t n_clear,
                           uint32_t n);
/* n copies of bytes each (a multiple of 4; addresses 16-byte aligned). */
cudaError_t cuk_gather(cudaStream_t st, const struct cuk_copy *copies, uint32_t n, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
