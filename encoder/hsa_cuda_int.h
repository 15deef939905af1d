/*
 * hsa_cuda_int.h: what hsa_cuda.c (weights, scratch, layers, chunk encoding) and
 * hsa_cuda_query.c (the query path) share: the device copy of a model, the scratch of a call and
 * the checks that turn a CUDA or cuBLAS failure into HSAMEM_EBACKEND (logged with the statement
 * and line). Internal to encoder/, in a CUDA build only.
 */
#ifndef HSAMEM_HSA_CUDA_INT_H
#define HSAMEM_HSA_CUDA_INT_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "hsa_forward.h"
#include "hsa_model.h"

/* A model's device copy (hsa_model.gpu). */
struct hsa_gpu {
	int device;
	void *wb;         /* the weight arena as bf16 */
	float *wf;        /* the weight arena as fp32 (gains, summary) */
	float *cos, *sin; /* RoPE tables [2S + 1][d_head / 2] */
};

/* The device buffers of a scratch, all cudaMalloc'ed (freed as an array of pointers). */
struct hc_bufs {
	uint32_t *tok;      /* [rows] token ids, rows = max_windows * 2S */
	float *x;           /* [rows][D] the residual stream */
	void *xn;           /* [rows][D] bf16: a normalised GEMM input */
	float *qkv;         /* [rows][3D] */
	void *att;          /* [rows][D] bf16: attention output */
	float *h13;         /* [rows][2 d_mlp] */
	void *g13;          /* [rows][d_mlp] bf16: silu(w1 z) * w3 z */
	float *e;           /* [max_windows (S + 1)][D] the chunk encoder's stream */
	float *kvl;         /* [max_windows (S + 1)][2 h_kv d_h + d_r] */
	float *K, *V, *L;   /* the encoded chunks */
	float *qr, *qa, *o; /* [2S][d_r], [2S][h_q d_h], [2S][h_q d_h] */
	void *ob;           /* [2S][h_q d_h] bf16 */
	float *logits;      /* [2S][vocab] */
	float *tw;          /* [2S][h_kv][topk] fusion weights */
	int64_t *idx;       /* [2S][h_kv][topk] selected chunks */
	float *Ksel, *Vsel; /* [2S h_kv topk][S][h_kv][d_h] the selected chunks */
	float *Lm, *dots;   /* a memory's landmarks, [h_kv][2S][chunks] scores */
};

/* Graphs of the query window a scratch keeps (hsa_cuda_query.c): one for each window length and
 * first query position seen, the least recently used replaced. A question's window is the memory's
 * last tokens and the question, so its length takes a few dozen values; making a graph costs
 * about a millisecond, a kept one a few kilobytes. */
#define HC_HEADS_GRAPHS 128

struct hc_scratch {
	const struct hsa_model *m;
	struct hsa_gpu *g;
	uint32_t max_windows;
	cudaStream_t st;
	cublasHandle_t h;
	struct hc_bufs bufs;
	int64_t *hidx;         /* host copy of bufs.idx */
	uint64_t mem_cap;      /* chunks bufs.Lm and bufs.dots hold */
	uint32_t q_n, q_first; /* the window of the last query_heads (q_n 0: none) */
	void *blas_ws;         /* cuBLAS's workspace: its own, so that a graph can hold GEMMs */
	uint32_t *win;         /* pinned [2S]: the window a graph reads its tokens from */
	float *qout;           /* pinned [2S][d_r + h_q d_h]: query_heads' queries on their way */
	struct {
		uint32_t n, first;
		uint64_t used; /* heads_clock at its last launch */
		cudaGraphExec_t exec;
	} heads[HC_HEADS_GRAPHS]; /* query_heads of windows of n, from first, as graphs */
	uint64_t heads_clock;     /* counts the graphs' launches */
	bool heads_failed; /* a graph could not be made: the kernels are launched one by one */
};

int hc_cu(int e, const char *what, int line);
int hc_blas(int e, const char *what, int line);
#define CU(x)   hc_cu((int)(x), #x, __LINE__)
#define BLAS(x) hc_blas((int)(x), #x, __LINE__)

/* The device addresses of a weight tensor p of the model's arena, as bf16 and as fp32. */
#define WB(s, p) ((const void *)((const uint16_t *)(s)->g->wb + ((p) - (s)->m->arena)))
#define WF(s, p) ((s)->g->wf + ((p) - (s)->m->arena))

int hc_scratch_alloc(const struct hsa_model *m, uint32_t max_windows, struct hsa_scratch **out);
void hc_scratch_free(struct hsa_scratch *s);
int hc_encode_chunks(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *windows,
                     uint32_t nw, float *K, float *V, float *L);
int hc_gemm(struct hc_scratch *s, const void *X, size_t ldx, uint32_t rows, uint32_t in,
            const float *W, uint32_t out, float beta, float *Y, size_t ldy);
int hc_attn(struct hc_scratch *s, const struct hsa_attn_w *a, const float *norm, float *x,
            uint32_t nw, uint32_t n, bool causal);
int hc_mlp(struct hc_scratch *s, const float *norm, const float *w13, const float *w2, float *x,
           uint32_t rows);
int hc_block(struct hc_scratch *s, const struct hsa_block_w *b, float *x, uint32_t nw, uint32_t n,
             bool causal);
int hc_lower(struct hc_scratch *s, const uint32_t *tok, uint32_t nw, uint32_t n);
int hc_sync(struct hc_scratch *s);

#endif
