/*
 * hsa_forward.h: the forward computation of the learned HSA encoder (models/README.md, "Forward
 * computation"), stage by stage: the lower stack, the chunk encoder (K, V and landmark of sealed
 * chunks, many per call), the query path (retrieval and attention queries of every query-block
 * position, sparse HSA over a memory's chunks, the output block and the logits) and greedy
 * generation on top of it.
 *
 * Threads: a model (hsa_model.h) is read-only; all mutable state of a call is in a struct
 * hsa_scratch. Any number of threads may call these functions at once on one model, each with
 * its own scratch. A scratch keeps the window of its last query path (every layer's keys and
 * values of its rows): the next hsa_query or hsa_query_heads on it runs only the rows from where
 * its window first differs, since every attention of the path looks back only. GEMMs go through
 * OpenBLAS, whose thread count is process-wide: see hsa_blas_threads().
 *
 * Backends: struct hsa_runtime is the table a caller goes through (hsa_runtime_cpu() is the CPU
 * one, always there and the oracle for others); a CUDA runtime is another table of the same
 * shape. hsa_generate() works on any runtime through its query entry.
 *
 * Shapes (S = cfg.chunk, D = d_model, fp32, row-major):
 *   window      up to 2S token ids: the previous chunk's S tokens (or S pads), then the chunk's
 *   K, V        [n][S][h_kv][d_h] per chunk (K RMS-normalised per head)
 *   L           [n][h_kv][d_r / h_kv] per chunk
 */
#ifndef HSAMEM_HSA_FORWARD_H
#define HSAMEM_HSA_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "hsa_model.h"

struct hsa_scratch;

/* A memory's sealed chunks, fp32, as above. Chunk j is K + j*S*h_kv*d_h, and so on. */
struct hsa_memory {
	const float *K, *V, *L;
	uint64_t n_chunks;
};

/*
 * What hsa_query computes for query positions first .. n-1 of the window (T = n - first rows
 * each). Every pointer may be NULL (not wanted); logits cost a [T, vocab] GEMM.
 */
struct hsa_query_out {
	float *hidden;     /* [T][D]: X after the HSA block's SWA sub-layer */
	float *qr;         /* [T][h_kv][d_r / h_kv] */
	float *qa;         /* [T][h_q][d_h] */
	float *scores;     /* [T][h_kv][n_chunks]: s_j of every chunk */
	int64_t *topk_idx; /* [T][h_kv][topk]: best first; -1 past min(topk, n_chunks) */
	float *topk_w;     /* [T][h_kv][topk]: softmax weights; 0 past the selection */
	float *hsa_out;    /* [T][h_q][d_h]: the fused HSA output O */
	float *logits;     /* [T][vocab] */
};

struct hsa_runtime {
	const char *name;
	/* Scratch for calls of up to max_windows windows at once (encode_chunks batches). */
	int (*scratch_alloc)(const struct hsa_model *m, uint32_t max_windows,
	                     struct hsa_scratch **out);
	void (*scratch_free)(struct hsa_scratch *s);
	/* hsa_encode_chunks below. */
	int (*encode_chunks)(const struct hsa_model *m, struct hsa_scratch *s,
	                     const uint32_t *windows, uint32_t n_windows, float *K, float *V,
	                     float *L);
	/* hsa_query below. */
	int (*query)(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win,
	             uint32_t n, uint32_t first, const struct hsa_memory *mem,
	             const struct hsa_query_out *out);
};

/* The CPU runtime: the functions below. */
const struct hsa_runtime *hsa_runtime_cpu(void);

/*
 * Sets OpenBLAS's thread count for the whole process (n 0: one per core). The CPU runtime's
 * GEMMs are the only parallel part of a call. A daemon whose workers each run a call should
 * leave OpenBLAS at 1 thread when its workers already fill the cores, and give it the cores when
 * one caller (ingest, encoding batches of chunks) is the only user. Returns the previous count.
 */
int hsa_blas_threads(int n);

/*
 * OpenBLAS chooses its kernels once, as it loads, from the CPU's family and model numbers, and a
 * CPU newer than the library gets its generic kernels without AVX or FMA ("Prescott"): Debian 12's
 * 0.3.21 does not know Intel's Emerald Rapids (family 6, model 207), where its fp32 GEMM then runs
 * at a fifth of its speed with the AVX-512 kernels (bench_model on 2 cores: 31 against 154
 * GFLOP/s). Its one way to be told is the variable OPENBLAS_CORETYPE, read as it loads. So a
 * program that runs the model on the CPU calls this first in main(), before any thread starts:
 * where OpenBLAS took a generic core and the CPU has AVX-512 (or AVX2 and FMA, or AVX), it sets
 * OPENBLAS_CORETYPE to SkylakeX (Haswell, Sandybridge) and executes itself again with argv, the
 * same process id and open files. A variable set already is left alone, so it happens at most
 * once; where the new image cannot be executed, the program goes on with the generic kernels.
 */
void hsa_blas_select_core(char **argv);

/* The name of the kernels OpenBLAS runs (e.g. "SkylakeX", "Zen", "Prescott"). */
const char *hsa_blas_core(void);

/* Scratch for calls of up to max_windows windows (>= 1). 0, -ENOMEM or HSAMEM_EINVAL. */
int hsa_scratch_alloc(const struct hsa_model *m, uint32_t max_windows, struct hsa_scratch **out);
void hsa_scratch_free(struct hsa_scratch *s);

/*
 * The lower stack on n_windows windows of n tokens each (n <= 2S): H [n_windows * n][D].
 * HSAMEM_EINVAL for an id >= vocab, n > 2S or more windows than the scratch holds.
 */
int hsa_lower(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *tok,
              uint32_t n_windows, uint32_t n, float *H);

/*
 * Encodes n_windows sealed chunks, each given by its window of exactly 2S tokens
 * ([n_windows][2S]): K, V [n_windows][S][h_kv][d_h], L [n_windows][h_kv][d_r / h_kv].
 * HSAMEM_EINVAL as hsa_lower.
 */
int hsa_encode_chunks(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *windows,
                      uint32_t n_windows, float *K, float *V, float *L);

/*
 * The query path on one window of n <= 2S tokens (the memory's last S tokens, then the query
 * block), for positions first .. n-1 (first < n), against every chunk of mem (all are in the
 * past of the block). Writes what out asks for. HSAMEM_EINVAL for bad sizes or ids, -ENOMEM.
 */
int hsa_query(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win, uint32_t n,
              uint32_t first, const struct hsa_memory *mem, const struct hsa_query_out *out);

/*
 * hsa_query in two halves, for a caller that runs the sparse HSA itself (the daemon, on its
 * backend over the stored chunks): hsa_query_heads runs the window (as hsa_query) and writes the
 * retrieval and attention queries of positions first .. n-1, qr [T][d_r] and qa [T][h_q][d_h];
 * hsa_query_logits then takes their fused HSA output O [T][h_q][d_h] and writes logits
 * [T][vocab]. It must follow hsa_query_heads on the same scratch with the same n and first, and
 * runs once per hsa_query_heads. HSAMEM_EINVAL for bad sizes or ids.
 */
int hsa_query_heads(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win,
                    uint32_t n, uint32_t first, float *qr, float *qa);
int hsa_query_logits(const struct hsa_model *m, struct hsa_scratch *s, uint32_t n, uint32_t first,
                     const float *O, float *logits);

/*
 * Greedy answering through runtime rt: the query block q (n_q tokens: <|q|> question <|a|>)
 * after ctx (n_ctx <= S tokens: the memory's last tokens), extended by the argmax token until
 * <|eos|> or max_new tokens. The window is ctx then the block; once that passes 2S tokens its
 * oldest tokens drop out. Writes the new tokens (eos not included) to ans (max_new room) and
 * their count to *n_ans.
 */
int hsa_generate(const struct hsa_runtime *rt, const struct hsa_model *m, struct hsa_scratch *s,
                 const uint32_t *ctx, uint32_t n_ctx, const uint32_t *q, uint32_t n_q,
                 const struct hsa_memory *mem, uint32_t max_new, uint32_t *ans, uint32_t *n_ans);

#endif
