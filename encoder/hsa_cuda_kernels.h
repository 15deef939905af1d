/*
 * hsa_cuda_kernels.h: the launchers of the learned encoder's small operations on the GPU
 * (hsa_cuda_kernels.cu), called by hsa_cuda.c between its cuBLAS GEMMs. Each launches on stream
 * st and returns the launch's cudaError_t as an int (0: launched); errors of the kernel itself
 * show at the next synchronisation. Matrices are row-major; "bf16" buffers are __nv_bfloat16,
 * passed as void * so that C callers need no CUDA headers. Internal to encoder/.
 */
#ifndef HSAMEM_HSA_CUDA_KERNELS_H
#define HSAMEM_HSA_CUDA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x[r][0..D) = embed[tok[r]] widened to fp32, for rows rows (every id already < vocab). */
int hk_embed(void *st, const uint32_t *tok, uint32_t rows, const void *embed, uint32_t D, float *x);

/* y = rms(x) * w over d values per row (w NULL: no gain), into yf (fp32, may be x) and/or yb
 * (bf16); either may be NULL. */
int hk_rmsnorm(void *st, const float *x, uint32_t ldx, uint32_t rows, uint32_t d, const float *w,
               float eps, float *yf, uint32_t ldyf, void *yb, uint32_t ldyb);

/* In place on qkv [rows][ld] (q at 0, k at D): each head's q and k RMSNormed with gains qn, kn,
 * then rotated for position r % n by the tables cos, sin [n][dh / 2]. */
int hk_qk_rope(void *st, float *qkv, uint32_t ld, uint32_t rows, uint32_t n, uint32_t H,
               uint32_t dh, uint32_t D, const float *qn, const float *kn, const float *cos,
               const float *sin, float eps);

/* Softmax attention of nw windows of n positions, H heads of dh (q, k, v of qkv as above), causal
 * or not, into out (bf16, [nw * n][D]). */
int hk_attend(void *st, const float *qkv, uint32_t ld, uint32_t nw, uint32_t n, uint32_t H,
              uint32_t dh, uint32_t D, int causal, void *out);

/* g[r][i] = silu(h13[r][i]) * h13[r][F + i] (bf16 out, [rows][F]). */
int hk_silu_mul(void *st, const float *h13, uint32_t rows, uint32_t F, void *g);

/* The chunk encoder's input: e [nw][S + 1][D] = rows S .. 2S-1 of each window of x, then summary.
 */
int hk_enc_gather(void *st, const float *x, const float *summary, uint32_t nw, uint32_t S,
                  uint32_t D, float *e);

/* From kvl [nw][S + 1][ld] (enc_k | enc_v | enc_lmk outputs): K [nw][S][hkv][dh] (RMS per head, no
 * gain), V [nw][S][hkv][dh] and L [nw][dr] (row S). */
int hk_kvl_split(void *st, const float *kvl, uint32_t ld, uint32_t nw, uint32_t S, uint32_t hkv,
                 uint32_t dh, uint32_t dr, float eps, float *K, float *V, float *L);

/* fp32 to bf16, n values. */
int hk_to_bf16(void *st, const float *x, uint64_t n, void *y);

/*
 * Top-k of hsa_math.c on dots [hkv][T][nc] (qr . L per kv head): scales them in place by scale
 * (they become the scores), then per position t and kv head r selects k = min(K, nc) chunks by
 * descending score, ties to the lower index, NaN as -inf, with their softmax weights:
 * idx [T][hkv][K] (-1 past k) and w [T][hkv][K] (0 past k).
 */
int hk_topk(void *st, float *dots, uint32_t T, uint32_t hkv, uint64_t nc, uint32_t K, float scale,
            int64_t *idx, float *w);

/*
 * The fused HSA output O [T][hq][dh] (zeroed here): per position t and query head h (kv head
 * r = h / (hq / hkv)), sum over selected chunks i of w_i softmax_s(qa . K_i[s] * scale) V_i, where
 * chunk i's K and V are slot (t * hkv + r) * K + i of Ksel, Vsel [..][S][hkv][dh].
 */
int hk_fuse(void *st, const float *qa, const float *Ksel, const float *Vsel, const int64_t *idx,
            const float *w, uint32_t T, uint32_t hkv, uint32_t hq, uint32_t dh, uint32_t S,
            uint32_t K, float scale, float *O);

#ifdef __cplusplus
}
#endif

#endif
