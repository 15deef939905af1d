/*
 * cuda_int.h: what the CUDA backend's C side (gpu/cuda_backend.c) and its kernels
 * (gpu/cuda_kernels.cu) share: the arguments of each kernel and the C-callable functions that
 * launch them on a stream. Launchers only enqueue; they return the launch's cudaError_t and never
 * synchronise. Internal to gpu/.
 */
#ifndef HSAMEM_CUDA_INT_H
#define HSAMEM_CUDA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest group one top-k block sorts: 4096 keys of 8 bytes, 32 KiB of shared memory. */
#define CUK_TOPK_GROUP_MAX 4096u

/*
 * One pass of the top-k. A key packs a score and a chunk index so that a larger key ranks first:
 * the score's bits made monotonic in the high word, 0xffffffff - j in the low word; 0 is "no
 * chunk". The first pass builds keys from the GEMM's scores (scores != NULL), later passes read
 * the previous pass's keys. Each block sorts one group of one (token, kv head) pair and keeps its
 * best k. The final pass (n_groups == 1) writes sel, score and weight.
 */
struct cuk_topk_args {
	const float *scores;     /* [h_kv][nsplit][nt][ld]: partial dot products of the splits */
	const uint64_t *keys_in; /* [pairs][len] */
	uint64_t *keys_out;      /* [pairs][n_groups][k], unless final */
	const uint32_t *vis;     /* [nt] chunks visible to each token */
	const float *unscale;    /* [nt][h_kv]: undoes the query's power-of-two scaling */
	uint64_t ld;             /* scores: elements per column */
	uint64_t len;            /* items per pair in this pass */
	uint32_t group;          /* items per block, a power of two >= k, <= CUK_TOPK_GROUP_MAX */
	uint32_t n_groups;
	uint32_t nsplit, nt, h_kv, k;
	float r_scale;           /* 1 / sqrt(d_r / h_kv) */
	int stickbreak;
	int64_t *sel;            /* final: [nt][h_kv][k] */
	float *score, *weight;
};

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

/* Raises the kernels' dynamic shared-memory limits; call once per device. */
cudaError_t cuk_init(void);
/* Shared memory the attention kernel needs for a shape, in bytes. */
size_t cuk_attend_smem(uint32_t S, uint32_t d_h, uint32_t G);
size_t cuk_attend_smem_max(void);

cudaError_t cuk_topk(cudaStream_t st, const struct cuk_topk_args *a);
cudaError_t cuk_attend(cudaStream_t st, const struct cuk_attend_args *a);
cudaError_t cuk_fuse(cudaStream_t st, const struct cuk_fuse_args *a);
/* n copies of bytes each (a multiple of 4; addresses 16-byte aligned). */
cudaError_t cuk_gather(cudaStream_t st, const struct cuk_copy *copies, uint32_t n, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
