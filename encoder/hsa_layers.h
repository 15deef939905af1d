/*
 * hsa_layers.h: the building blocks of the learned encoder on the CPU (models/README.md,
 * "Building blocks"): GEMM through OpenBLAS, RMSNorm, RoPE, attention over a window, the MLP and
 * the whole transformer block. Internal to hsa_forward.c; everything is fp32 and works on rows
 * of nw windows of n positions each, laid out one window after another.
 */
#ifndef HSAMEM_HSA_LAYERS_H
#define HSAMEM_HSA_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsa_model.h"

/* Buffers of one call, sized for rows_max rows (hsa_work_init). */
struct hsa_work {
	uint32_t rows_max;
	float *xn;  /* [rows][D] normalised input of a sub-layer */
	float *qkv; /* [rows][3D] */
	float *att; /* [rows][D] attention output before wo */
	float *h13; /* [rows][2 d_mlp]: w1 z | w3 z, then silu(w1 z) * w3 z in the first half */
	float *sc;  /* [2S + 1] attention scores of one position */
	float *cos; /* [2S + 1][d_head / 2] RoPE tables */
	float *sin;
};

int hsa_work_init(struct hsa_work *w, const struct hsa_config *c, uint32_t rows_max);
void hsa_work_fini(struct hsa_work *w);

/* Y[rows][out] (leading dimension ldy) = X[rows][in] (ldx) W^T + beta Y, W [out][in]. */
void hsa_gemm(const float *X, size_t ldx, uint32_t rows, uint32_t in, const float *W, uint32_t out,
              float beta, float *Y, size_t ldy);

/* y = rms(x) * w over d values per row (w NULL: no gain); y may be x. */
void hsa_rmsnorm(const float *x, size_t ldx, float *y, size_t ldy, uint32_t rows, uint32_t d,
                 const float *w, float eps);

/* x += Attention(a, RMSNorm_norm(x)) over nw windows of n positions (RoPE positions 0..n-1). */
void hsa_attn_sublayer(const struct hsa_config *c, struct hsa_work *w, const struct hsa_attn_w *a,
                       const float *norm, float *x, uint32_t nw, uint32_t n, bool causal);

/*
 * The causal attention sub-layer for rows r0 .. n-1 of one window (RoPE positions r0 .. n-1) whose
 * rows 0 .. r0-1 went through it before: qkv [n][3D] holds those rows' q, k and v (normalised and
 * rotated) from then, and takes the new rows'; x holds the new rows only, [n - r0][D]. With r0 = 0
 * it is hsa_attn_sublayer of one window, keeping qkv.
 */
void hsa_attn_rows(const struct hsa_config *c, struct hsa_work *w, const struct hsa_attn_w *a,
                   const float *norm, float *x, float *qkv, uint32_t r0, uint32_t n);

/* x += w2 (silu(w1 z) * (w3 z)), z = RMSNorm_norm(x), over rows rows. */
void hsa_mlp_sublayer(const struct hsa_config *c, struct hsa_work *w, const float *norm,
                      const float *w13, const float *w2, float *x, uint32_t rows);

/* x = Block(b, x) over nw windows of n positions. */
void hsa_block(const struct hsa_config *c, struct hsa_work *w, const struct hsa_block_w *b,
               float *x, uint32_t nw, uint32_t n, bool causal);

#endif
