/*
 * bench_kernels.c: each kernel launcher of the CUDA backend (gpu/cuda_int.h) timed alone on the
 * device, to split the time of a warm attend call between its kernels, its copies and its
 * synchronisation. It calls the launchers directly, with arguments laid out as gpu/cuda_round.c
 * lays them out (round_select, round_resolve, round_attention), and never goes through the
 * backend.
 *
 * One memory of the client spec (S64 h_kv1 d_h128 h_q16 d_r128 f16, k=64): random landmark rows
 * (16384 and 262144 by default: 1M and 16M tokens), a pool of 4096 random chunks (K|V, 32 KiB
 * each) in device memory and a device directory naming chunk j % 4096 for row j, so that every
 * selected chunk resolves; one segment of nt tokens (1, then 32) that all see every row. Before
 * the figures of each shape the whole sequence runs once and its selection is checked (no miss,
 * indices in range, weights summing to 1).
 *
 * Device figures (CUDA events): each repetition sits between its event pair, and batches of
 * them are queued behind a host function that holds the stream until the host has enqueued the
 * batch, so the events see the device's time alone, without the host's launch gaps:
 *   score, select (histogram, collection and final pass: one launcher), resolve, attend, fuse;
 *   seq: the five back to back between one event pair; fuse tiny (one block): a launch's floor;
 *   H2D / D2H 4 KiB pinned; gather of 64 and 2048 chunks from mapped pinned host memory.
 * GB/s where bytes mean something: score, landmark bytes read; attend, K/V bytes read; gather,
 * chunk bytes copied (all over the p50).
 * Live figures: ops launched on an idle stream as the backend launches them, so the host's launch
 * gaps count; timed by the host clock from the first enqueue to the return of
 * cudaStreamSynchronize, or by events around the launches (a separate pass):
 *   sync idle: cudaStreamSynchronize with nothing queued; fuse tiny, H2D and D2H 4 KiB, each with
 *   its synchronisation; seq live; round: the upload of a round's queries, seq and the download
 *   of its results, of the sizes round_run copies (rows "round n=.. upload/download", bytes),
 *   then one synchronisation: the device side of a warm call.
 * cuBLAS beside score, for nt of 1, 8 and 32 (score n=8 is timed there, as the others come
 * from the sequence): cublasGemmEx of the landmarks (transposed: column-major d_r x rows) by a
 * block of f16 query columns into fp32 C [rows x cols], alpha 1/sqrt(d_r), fp32 compute, on the
 * same stream, with two columns a token (hi/lo f16 split of the fp32 query, which keeps
 * fp32-like precision) and with one (the query rounded to f16); a device-to-device copy of the
 * two-column C stands in for the pass that would turn C into score keys (a proxy: it reads C as
 * that pass would, but writes twice as much); the 2-column GEMM and the proxy between one event
 * pair. GB/s: landmark bytes read, except for the proxy, bytes copied. Before them both GEMMs
 * run once and a few rows of C are checked against the host's dot products in double, and the
 * largest error of each against the fp32 query's score is printed (part "check").
 * The tokens column is the memory's size, 0 for figures that do not depend on it.
 * Each figure: 20 warm-up repetitions, then --iters (200), p50 and p10 in microseconds.
 *
 * Usage: bench_kernels [--tokens N[,N...]] [--iters N] [--json FILE]
 * Exit 77 without a CUDA device (1 with HSAMEM_REQUIRE_GPU=1).
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda_int.h"
#include "half.h"

#define S_TOK       64u
#define H_KV        1u
#define D_H         128u
#define H_Q         16u
#define G_Q         (H_Q / H_KV)
#define D_R         128u
#define K_SEL       64u
#define NT_MAX      32u
#define KV_BYTES    ((size_t)S_TOK * H_KV * D_H * 2 * 2)
#define POOL        4096u /* chunks in the device pool */
#define GATHER_MAX  2048u
#define STAGE_MAX   ((size_t)1 << 20) /* room for a round's upload or download */
#define WARMUP      20
#define BATCH       20            /* repetitions queued behind one hold */
#define HOLD_MAX_NS 5000000000ull /* a hold gives up after 5 s rather than hang */

static FILE *json;
static const char *spec_name = "client";

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
cu_fail(cudaError_t e, const char *stmt, int line)
{
	if (e == cudaSuccess)
		return 0;
	fprintf(stderr, "bench_kernels: %s failed at %s:%d: %s (%s)\n", stmt, __FILE__, line,
	        cudaGetErrorString(e), cudaGetErrorName(e));
	return -1;
}

#define CU(stmt) cu_fail((stmt), #stmt, __LINE__)

static int
cb_fail(cublasStatus_t s, const char *stmt, int line)
{
	if (s == CUBLAS_STATUS_SUCCESS)
		return 0;
	fprintf(stderr, "bench_kernels: %s failed at %s:%d: cuBLAS status %d (%s)\n", stmt,
	        __FILE__, line, (int)s, cublasGetStatusName(s));
	return -1;
}

#define CB(stmt) cb_fail((stmt), #stmt, __LINE__)

static uint64_t rs = 0x9e3779b97f4a7c15ull;

static inline uint64_t
rnd64(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static float
unif(void)
{
	return (float)((double)(rnd64() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Random f16 bits in +-[0.5, 1): K/V of reasonable magnitude, fast for hundreds of MiB. */
static void
fill_bits(uint16_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 4) {
		uint64_t r = rnd64();
		for (size_t l = 0; l < 4 && i + l < n; l++)
			p[i + l] = (uint16_t)(((r >> (16 * l)) & 0x83ff) | 0x3800);
	}
}

/* Uniform in [-1, 1): landmarks with a continuous spread of scores, as the select expects. */
static void
fill_f16(uint16_t *p, size_t n)
{
	float buf[256];

	for (size_t i = 0; i < n; i += 256) {
		size_t m = n - i < 256 ? n - i : 256;
		for (size_t x = 0; x < m; x++)
			buf[x] = unif();
		half_from_float_row(HSA_F16, buf, p + i, m);
	}
}

static int
dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile of v[0 .. n), sorted in place. */
static double
pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(double), dcmp);
	int i = (int)ceil(p / 100.0 * n) - 1;
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void
emit(const char *part, uint64_t tokens, const char *metric, double value, const char *unit)
{
	printf("  %-6s %-8s %9" PRIu64 "  %-42s %12.3f %s\n", spec_name, part, tokens, metric,
	       value, unit);
	fflush(stdout);
	if (json != NULL)
		fprintf(json,
		        "{\"spec\":\"%s\",\"part\":\"%s\",\"tokens\":%" PRIu64
		        ",\"metric\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n",
		        spec_name, part, tokens, metric, value, unit);
}

/* p50 and p10 of the samples, and GB/s at the p50 where bytes is not 0. */
static void
report(const char *part, uint64_t tokens, const char *name, double *us, int n, double bytes)
{
	char m[96];
	double p50 = pct(us, n, 50), p10 = pct(us, n, 10);

	snprintf(m, sizeof(m), "%s p50", name);
	emit(part, tokens, m, p50, "us");
	snprintf(m, sizeof(m), "%s p10", name);
	emit(part, tokens, m, p10, "us");
	if (bytes > 0) {
		snprintf(m, sizeof(m), "%s at p50", name);
		emit(part, tokens, m, bytes / p50 / 1e3, "GB/s");
	}
}

/* ---- the buffers and the arguments of one shape ---- */

enum {
	OP_SCORE = 1u << 0,
	OP_SELECT = 1u << 1,
	OP_RESOLVE = 1u << 2,
	OP_ATTEND = 1u << 3,
	OP_FUSE = 1u << 4,
	OP_TINY = 1u << 5, /* cuk_fuse of one block */
	OP_UP = 1u << 6,   /* up_bytes host to device */
	OP_DOWN = 1u << 7, /* down_bytes device to host */
	OP_GATHER = 1u << 8,
	OP_GEMM2 = 1u << 9,  /* cublasGemmEx, two f16 columns a token */
	OP_GEMM1 = 1u << 10, /* cublasGemmEx, one f16 column a token */
	OP_PASS = 1u << 11,  /* the key pass's proxy: a copy of the two-column C */
	OP_SEQ = OP_SCORE | OP_SELECT | OP_RESOLVE | OP_ATTEND | OP_FUSE,
};

struct kb {
	cudaStream_t st;
	cudaEvent_t ev[2 * BATCH];
	int n_ev;
	atomic_int hold; /* 0 while the host enqueues a batch */
	cublasHandle_t blas;

	/* device memory */
	uint16_t *lmk;      /* [rows_max][D_R] */
	void *pool;         /* [POOL] chunks */
	void **dir;         /* [rows_max]: chunk j % POOL */
	void *const **dirs; /* [NT_MAX]: each token's directory, all dir */
	float *qr, *qa;
	uint32_t *vis, *keys, *selst;
	struct cuk_seg *seg;
	uint64_t *cand;
	char *res; /* sel [n] int64, score [n], weight [n], misses (16 bytes), out */
	const void **tab;
	float *partial, *tiny_out;
	void *up_dev, *down_dev;
	struct cuk_copy *copies;   /* [GATHER_MAX] */
	void *gdst;                /* [GATHER_MAX] chunks */
	uint16_t *qh2, *qh1;       /* f16 query columns [NT_MAX][2][D_R] (hi, lo), [NT_MAX][D_R] */
	float *gemm_c, *gemm_pass; /* [2 * NT_MAX][rows_max] each */
	/* pinned host memory */
	void *up_host, *down_host;
	void *gsrc; /* [GATHER_MAX] chunks, mapped */

	/* the shape being timed */
	uint32_t rows, nt;
	struct cuk_score_args sa;
	struct cuk_select_args la;
	struct cuk_resolve_args ra;
	struct cuk_attend_args aa;
	struct cuk_fuse_args fa, tiny;
	size_t up_bytes, down_bytes;
	uint32_t n_gather;
};

static size_t
res_bytes(size_t n, size_t n_out)
{
	return n * 16 + 16 + n_out * 4;
}

static int
dev_alloc(void *pp, size_t bytes)
{
	void **p = pp;

	if (CU(cudaMalloc(p, bytes)) != 0)
		return -1;
	return CU(cudaMemset(*p, 0, bytes));
}

static void
kb_free(struct kb *b)
{
	void *dev[] = {b->lmk,  b->pool,    b->dir,      b->dirs,   b->qr,       b->qa,
	               b->vis,  b->keys,    b->selst,    b->seg,    b->cand,     b->res,
	               b->tab,  b->partial, b->tiny_out, b->up_dev, b->down_dev, b->copies,
	               b->gdst, b->qh2,     b->qh1,      b->gemm_c, b->gemm_pass};

	for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
		cudaFree(dev[i]);
	cudaFreeHost(b->up_host);
	cudaFreeHost(b->down_host);
	cudaFreeHost(b->gsrc);
	if (b->blas != NULL)
		CB(cublasDestroy(b->blas));
	for (int i = 0; i < b->n_ev; i++)
		cudaEventDestroy(b->ev[i]);
	if (b->st != NULL)
		cudaStreamDestroy(b->st);
}

/* Host copies of the random inputs, uploaded; the rest zeroed. */
static int
kb_init(struct kb *b, uint32_t rows_max)
{
	size_t n_max = (size_t)NT_MAX * H_KV * K_SEL, ld_max = ((size_t)rows_max + 3) & ~(size_t)3;
	size_t lmk_n = (size_t)rows_max * D_R, pool_n = (size_t)POOL * KV_BYTES / 2;
	size_t host_n = lmk_n > pool_n ? lmk_n : pool_n;
	size_t dir_n = rows_max > 2 * GATHER_MAX ? rows_max : 2 * GATHER_MAX; /* also the copies */
	uint16_t *h = NULL;
	void **hdir = NULL;
	float *hq = NULL;
	struct cuk_copy *cp;
	char *gsrc_dev;
	int err = -1;

	memset(b, 0, sizeof(*b));
	if (CU(cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking)) != 0)
		goto out;
	for (; b->n_ev < 2 * BATCH; b->n_ev++)
		if (CU(cudaEventCreate(&b->ev[b->n_ev])) != 0)
			goto out;
	if (CB(cublasCreate(&b->blas)) != 0 || CB(cublasSetStream(b->blas, b->st)) != 0)
		goto out;
	if (dev_alloc(&b->lmk, lmk_n * 2) != 0 || dev_alloc(&b->pool, pool_n * 2) != 0 ||
	    dev_alloc(&b->dir, (size_t)rows_max * sizeof(void *)) != 0 ||
	    dev_alloc(&b->dirs, NT_MAX * sizeof(void *)) != 0 ||
	    dev_alloc(&b->qr, (size_t)NT_MAX * D_R * 4) != 0 ||
	    dev_alloc(&b->qa, (size_t)NT_MAX * H_Q * D_H * 4) != 0 ||
	    dev_alloc(&b->vis, NT_MAX * 4) != 0 ||
	    dev_alloc(&b->keys, (size_t)NT_MAX * H_KV * ld_max * 4) != 0 ||
	    dev_alloc(&b->selst, cuk_select_state_words(NT_MAX * H_KV) * 4) != 0 ||
	    dev_alloc(&b->seg, sizeof(struct cuk_seg)) != 0 ||
	    dev_alloc(&b->cand, (size_t)NT_MAX * H_KV * rows_max * 8) != 0 ||
	    dev_alloc(&b->res, res_bytes(n_max, (size_t)NT_MAX * H_Q * D_H)) != 0 ||
	    dev_alloc(&b->tab, n_max * sizeof(void *)) != 0 ||
	    dev_alloc(&b->partial, n_max * G_Q * D_H * 4) != 0 ||
	    dev_alloc(&b->tiny_out, 256) != 0 || dev_alloc(&b->up_dev, STAGE_MAX) != 0 ||
	    dev_alloc(&b->down_dev, STAGE_MAX) != 0 ||
	    dev_alloc(&b->copies, GATHER_MAX * sizeof(struct cuk_copy)) != 0 ||
	    dev_alloc(&b->gdst, GATHER_MAX * KV_BYTES) != 0 ||
	    dev_alloc(&b->qh2, (size_t)NT_MAX * 2 * D_R * 2) != 0 ||
	    dev_alloc(&b->qh1, (size_t)NT_MAX * D_R * 2) != 0 ||
	    dev_alloc(&b->gemm_c, (size_t)2 * NT_MAX * rows_max * 4) != 0 ||
	    dev_alloc(&b->gemm_pass, (size_t)2 * NT_MAX * rows_max * 4) != 0)
		goto out;
	if (CU(cudaHostAlloc(&b->up_host, STAGE_MAX, cudaHostAllocDefault)) != 0 ||
	    CU(cudaHostAlloc(&b->down_host, STAGE_MAX, cudaHostAllocDefault)) != 0 ||
	    CU(cudaHostAlloc(&b->gsrc, GATHER_MAX * KV_BYTES, cudaHostAllocMapped)) != 0)
		goto out;
	memset(b->up_host, 0, STAGE_MAX);

	if ((h = malloc(host_n * 2)) == NULL ||
	    (hq = malloc((size_t)NT_MAX * H_Q * D_H * 4)) == NULL ||
	    (hdir = malloc(dir_n * sizeof(void *))) == NULL) {
		fprintf(stderr, "bench_kernels: out of host memory\n");
		goto out;
	}
	fill_f16(h, lmk_n);
	if (CU(cudaMemcpy(b->lmk, h, lmk_n * 2, cudaMemcpyHostToDevice)) != 0)
		goto out;
	fill_bits(h, pool_n);
	if (CU(cudaMemcpy(b->pool, h, pool_n * 2, cudaMemcpyHostToDevice)) != 0)
		goto out;
	fill_bits(b->gsrc, GATHER_MAX * KV_BYTES / 2);
	for (uint32_t j = 0; j < rows_max; j++)
		hdir[j] = (char *)b->pool + (size_t)(j % POOL) * KV_BYTES;
	if (CU(cudaMemcpy(b->dir, hdir, (size_t)rows_max * sizeof(void *),
	                  cudaMemcpyHostToDevice)) != 0)
		goto out;
	for (uint32_t t = 0; t < NT_MAX; t++)
		hdir[t] = b->dir;
	if (CU(cudaMemcpy(b->dirs, hdir, NT_MAX * sizeof(void *), cudaMemcpyHostToDevice)) != 0)
		goto out;
	for (size_t i = 0; i < (size_t)NT_MAX * H_Q * D_H; i++)
		hq[i] = unif();
	if (CU(cudaMemcpy(b->qa, hq, (size_t)NT_MAX * H_Q * D_H * 4, cudaMemcpyHostToDevice)) != 0)
		goto out;
	for (size_t i = 0; i < (size_t)NT_MAX * D_R; i++)
		hq[i] = unif();
	if (CU(cudaMemcpy(b->qr, hq, (size_t)NT_MAX * D_R * 4, cudaMemcpyHostToDevice)) != 0)
		goto out;
	/* the same queries as f16 columns: hi = f16(q), lo = f16(q - hi); h is [2 * NT_MAX][D_R] */
	for (size_t t = 0; t < NT_MAX; t++)
		for (size_t i = 0; i < D_R; i++) {
			float q = hq[t * D_R + i];
			uint16_t hi = half_f16_from_float(q);
			h[2 * t * D_R + i] = hi;
			h[(2 * t + 1) * D_R + i] = half_f16_from_float(q - half_f16_to_float(hi));
		}
	if (CU(cudaMemcpy(b->qh2, h, (size_t)NT_MAX * 2 * D_R * 2, cudaMemcpyHostToDevice)) != 0 ||
	    CU(cudaMemcpy2D(b->qh1, D_R * 2, h, 2 * D_R * 2, D_R * 2, NT_MAX,
	                    cudaMemcpyHostToDevice)) != 0)
		goto out;

	/* gathers from scattered host slots (797 is odd: a permutation of the 2048) */
	if (CU(cudaHostGetDevicePointer((void **)&gsrc_dev, b->gsrc, 0)) != 0)
		goto out;
	cp = (struct cuk_copy *)hdir;
	for (uint32_t i = 0; i < GATHER_MAX; i++)
		cp[i] = (struct cuk_copy){.src = gsrc_dev +
		                                 (size_t)(i * 797u % GATHER_MAX) * KV_BYTES,
		                          .dst = (char *)b->gdst + (size_t)i * KV_BYTES};
	if (CU(cudaMemcpy(b->copies, cp, GATHER_MAX * sizeof(*cp), cudaMemcpyHostToDevice)) != 0)
		goto out;

	/* the floor of a launch: one block of 128 threads reading one partial */
	b->tiny = (struct cuk_fuse_args){.partial = b->partial,
	                                 .sel = (const int64_t *)b->res,
	                                 .weight = (const float *)b->res,
	                                 .out = b->tiny_out,
	                                 .nt = 1,
	                                 .h_kv = 1,
	                                 .d_h = 1,
	                                 .G = 1,
	                                 .k = 1};
	err = 0;
out:
	free(h);
	free(hq);
	free(hdir);
	return err;
}

/* The arguments of one segment of nt tokens that see all rows, as the backend fills them. */
static int
shape_set(struct kb *b, uint32_t rows, uint32_t nt)
{
	uint32_t pairs = nt * H_KV, vis[NT_MAX];
	uint64_t ld = ((uint64_t)rows + 3) & ~(uint64_t)3;
	size_t n = (size_t)pairs * K_SEL;
	struct cuk_seg seg = {.lmk = b->lmk, .t0 = 0, .nt = nt, .len = rows};

	for (uint32_t t = 0; t < nt; t++)
		vis[t] = rows;
	if (CU(cudaMemcpy(b->seg, &seg, sizeof(seg), cudaMemcpyHostToDevice)) != 0 ||
	    CU(cudaMemcpy(b->vis, vis, nt * 4, cudaMemcpyHostToDevice)) != 0)
		return -1;
	b->rows = rows;
	b->nt = nt;
	b->sa = (struct cuk_score_args){.seg = b->seg,
	                                .qr = b->qr,
	                                .vis = b->vis,
	                                .keys = b->keys,
	                                .len = rows,
	                                .ld = ld,
	                                .n_seg = 1,
	                                .seg_nt = nt,
	                                .nt = nt,
	                                .h_kv = H_KV,
	                                .d_r = D_R,
	                                .d_rh = D_R / H_KV,
	                                .dtype = HSA_F16,
	                                .r_scale = 1.0f / sqrtf((float)(D_R / H_KV))};
	int64_t *sel = (int64_t *)b->res;
	float *score = (float *)(sel + n), *weight = score + n;
	b->la = (struct cuk_select_args){.keys = b->keys,
	                                 .vis = b->vis,
	                                 .len = rows,
	                                 .ld = ld,
	                                 .hist = b->selst,
	                                 .cand = b->cand,
	                                 .pairs = pairs,
	                                 .h_kv = H_KV,
	                                 .k = K_SEL,
	                                 .stickbreak = 0,
	                                 .sel = sel,
	                                 .score = score,
	                                 .weight = weight};
	b->ra = (struct cuk_resolve_args){.sel = sel,
	                                  .dir = (void *const *const *)b->dirs,
	                                  .chunk = b->tab,
	                                  .misses = (uint32_t *)(b->res + n * 16),
	                                  .n = (uint32_t)n,
	                                  .per_tok = H_KV * K_SEL};
	b->aa = (struct cuk_attend_args){.chunk = b->tab,
	                                 .qa = b->qa,
	                                 .partial = b->partial,
	                                 .attn = NULL,
	                                 .nt = nt,
	                                 .S = S_TOK,
	                                 .h_kv = H_KV,
	                                 .d_h = D_H,
	                                 .G = G_Q,
	                                 .k = K_SEL,
	                                 .dtype = HSA_F16,
	                                 .a_scale = 1.0f / sqrtf((float)D_H),
	                                 .off_by_one = 0};
	b->fa = (struct cuk_fuse_args){.partial = b->partial,
	                               .sel = sel,
	                               .weight = weight,
	                               .out = (float *)(b->res + n * 16 + 16),
	                               .nt = nt,
	                               .h_kv = H_KV,
	                               .d_h = D_H,
	                               .G = G_Q,
	                               .k = K_SEL};
	/* what round_run uploads (queries, visibility, the segment, the directories) and
	 * reads back */
	b->up_bytes = (size_t)nt * D_R * 4 + (size_t)nt * 4 + (size_t)nt * H_Q * D_H * 4 +
	              sizeof(struct cuk_seg) + (size_t)nt * sizeof(void *);
	b->down_bytes = res_bytes(n, (size_t)nt * H_Q * D_H);
	return 0;
}

/* C [rows x cols] (column-major, ld rows) = landmarks . q, q the f16 query columns [cols][D_R]. */
static int
gemm(struct kb *b, const uint16_t *q, uint32_t cols)
{
	const float alpha = 1.0f / sqrtf((float)D_R), beta = 0.0f;

	return CB(cublasGemmEx(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)b->rows, (int)cols, D_R,
	                       &alpha, b->lmk, CUDA_R_16F, D_R, q, CUDA_R_16F, D_R, &beta,
	                       b->gemm_c, CUDA_R_32F, (int)b->rows, CUBLAS_COMPUTE_32F,
	                       CUBLAS_GEMM_DEFAULT));
}

/* Enqueues ops, in the order of a round. */
static int
launch(struct kb *b, unsigned ops)
{
	int err = 0;

	if (ops & OP_UP)
		err = CU(cudaMemcpyAsync(b->up_dev, b->up_host, b->up_bytes, cudaMemcpyHostToDevice,
		                         b->st));
	if (err == 0 && (ops & OP_GATHER))
		err = CU(cuk_gather(b->st, b->copies, b->n_gather, KV_BYTES));
	if (err == 0 && (ops & OP_SCORE))
		err = CU(cuk_score(b->st, &b->sa));
	if (err == 0 && (ops & OP_GEMM2))
		err = gemm(b, b->qh2, 2 * b->nt);
	if (err == 0 && (ops & OP_GEMM1))
		err = gemm(b, b->qh1, b->nt);
	if (err == 0 && (ops & OP_PASS))
		err = CU(cudaMemcpyAsync(b->gemm_pass, b->gemm_c, (size_t)b->rows * 2 * b->nt * 4,
		                         cudaMemcpyDeviceToDevice, b->st));
	if (err == 0 && (ops & OP_SELECT))
		err = CU(cuk_select(b->st, &b->la));
	if (err == 0 && (ops & OP_RESOLVE))
		err = CU(cuk_resolve(b->st, &b->ra));
	if (err == 0 && (ops & OP_ATTEND))
		err = CU(cuk_attend(b->st, &b->aa));
	if (err == 0 && (ops & OP_FUSE))
		err = CU(cuk_fuse(b->st, &b->fa));
	if (err == 0 && (ops & OP_TINY))
		err = CU(cuk_fuse(b->st, &b->tiny));
	if (err == 0 && (ops & OP_DOWN))
		err = CU(cudaMemcpyAsync(b->down_host, b->down_dev, b->down_bytes,
		                         cudaMemcpyDeviceToHost, b->st));
	return err;
}

static int
warm_up(struct kb *b, unsigned ops)
{
	for (int i = 0; i < WARMUP; i++)
		if (launch(b, ops) != 0)
			return -1;
	return CU(cudaStreamSynchronize(b->st));
}

/* Holds the stream until the host has enqueued the batch behind it. */
static void CUDART_CB
hold_stream(void *arg)
{
	atomic_int *hold = arg;
	uint64_t t0 = now_ns();

	while (atomic_load_explicit(hold, memory_order_acquire) == 0 && now_ns() - t0 < HOLD_MAX_NS)
		;
}

/* Device time of ops, us[0 .. iters): repetitions queued back to back, each between events. */
static int
time_dev(struct kb *b, unsigned ops, int iters, double *us)
{
	int err;

	if ((err = warm_up(b, ops)) != 0)
		return err;
	for (int done = 0; done < iters;) {
		int m = iters - done < BATCH ? iters - done : BATCH;
		atomic_store(&b->hold, 0);
		if ((err = CU(cudaLaunchHostFunc(b->st, hold_stream, &b->hold))) != 0)
			return err;
		for (int i = 0; i < m && err == 0; i++)
			if ((err = CU(cudaEventRecord(b->ev[2 * i], b->st))) == 0 &&
			    (err = launch(b, ops)) == 0)
				err = CU(cudaEventRecord(b->ev[2 * i + 1], b->st));
		atomic_store(&b->hold, 1);
		if (err != 0 || (err = CU(cudaStreamSynchronize(b->st))) != 0)
			return err;
		for (int i = 0; i < m; i++) {
			float ms;
			if ((err = CU(cudaEventElapsedTime(&ms, b->ev[2 * i], b->ev[2 * i + 1]))) !=
			    0)
				return err;
			us[done + i] = ms * 1e3;
		}
		done += m;
	}
	return 0;
}

/*
 * ops launched on an idle stream, then one synchronisation, us[0 .. iters): the host's time from
 * the first enqueue to the return of the synchronisation, or with events, the events' time around
 * the launches (two passes rather than one: recording the events costs the host time too).
 */
static int
time_live(struct kb *b, unsigned ops, int iters, bool events, double *us)
{
	int err;

	if ((err = warm_up(b, ops)) != 0)
		return err;
	for (int i = 0; i < iters; i++) {
		uint64_t t0 = now_ns();
		if ((events && (err = CU(cudaEventRecord(b->ev[0], b->st))) != 0) ||
		    (err = launch(b, ops)) != 0 ||
		    (events && (err = CU(cudaEventRecord(b->ev[1], b->st))) != 0) ||
		    (err = CU(cudaStreamSynchronize(b->st))) != 0)
			return err;
		us[i] = (double)(now_ns() - t0) / 1e3;
		if (events) {
			float ms;
			if ((err = CU(cudaEventElapsedTime(&ms, b->ev[0], b->ev[1]))) != 0)
				return err;
			us[i] = ms * 1e3;
		}
	}
	return 0;
}

/* One pass of the sequence; then no miss, indices in range and distinct, weights summing to 1. */
static int
shape_check(struct kb *b)
{
	size_t n = (size_t)b->nt * H_KV * K_SEL;
	char *h = b->down_host;
	int err;

	if ((err = launch(b, OP_SEQ)) != 0 ||
	    (err = CU(cudaMemcpyAsync(h, b->res, n * 16 + 16, cudaMemcpyDeviceToHost, b->st))) !=
	            0 ||
	    (err = CU(cudaStreamSynchronize(b->st))) != 0)
		return err;
	const int64_t *sel = (const int64_t *)h;
	const float *weight = (const float *)(h + n * 12);
	uint32_t misses;
	memcpy(&misses, h + n * 16, sizeof(misses));
	if (misses != 0) {
		fprintf(stderr, "bench_kernels: check: %" PRIu32 " misses\n", misses);
		return -1;
	}
	for (size_t p = 0; p < n / K_SEL; p++) {
		double sum = 0;
		for (size_t i = 0; i < K_SEL; i++) {
			int64_t j = sel[p * K_SEL + i];
			bool dup = false;
			for (size_t x = 0; x < i; x++)
				dup |= sel[p * K_SEL + x] == j;
			if (j < 0 || j >= b->rows || dup) {
				fprintf(stderr,
				        "bench_kernels: check: pair %zu rank %zu selects %" PRId64
				        "\n",
				        p, i, j);
				return -1;
			}
			sum += weight[p * K_SEL + i];
		}
		if (fabs(sum - 1.0) > 1e-3) {
			fprintf(stderr, "bench_kernels: check: pair %zu weights sum to %g\n", p,
			        sum);
			return -1;
		}
	}
	return 0;
}

/*
 * Each GEMM once, then rows of C against the host's scores in double: the 2-column pair summed
 * against the fp32 query, the 1-column against the query rounded to f16. The tolerance catches a
 * wrong layout, not a loss of precision: the largest error against the fp32 query is printed.
 */
static int
gemm_check(struct kb *b, uint64_t tokens)
{
	static const uint32_t n_probe = 8;
	uint32_t nt = b->nt;
	float q[NT_MAX * D_R], c[2 * NT_MAX];
	uint16_t l[D_R];
	double err2 = 0, err1 = 0, err1_f16 = 0, scale = 1.0 / sqrt((double)D_R);
	char name[64];

	if (CU(cudaMemcpy(q, b->qr, (size_t)nt * D_R * 4, cudaMemcpyDeviceToHost)) != 0)
		return -1;
	for (int pass = 2; pass >= 1; pass--) {
		if (launch(b, pass == 2 ? OP_GEMM2 : OP_GEMM1) != 0 ||
		    CU(cudaStreamSynchronize(b->st)) != 0)
			return -1;
		for (uint32_t p = 0; p < n_probe; p++) {
			uint32_t j = (uint32_t)((uint64_t)p * (b->rows - 1) / (n_probe - 1));
			if (CU(cudaMemcpy(l, b->lmk + (size_t)j * D_R, sizeof(l),
			                  cudaMemcpyDeviceToHost)) != 0 ||
			    CU(cudaMemcpy2D(c, 4, b->gemm_c + j, (size_t)b->rows * 4, 4,
			                    (size_t)pass * nt, cudaMemcpyDeviceToHost)) != 0)
				return -1;
			for (uint32_t t = 0; t < nt; t++) {
				double s = 0, s_f16 = 0;
				for (uint32_t i = 0; i < D_R; i++) {
					float y = q[t * D_R + i];
					double x = half_f16_to_float(l[i]);
					s += x * y;
					s_f16 += x * half_f16_to_float(half_f16_from_float(y));
				}
				s *= scale;
				s_f16 *= scale;
				if (pass == 2) {
					err2 = fmax(err2,
					            fabs((double)c[2 * t] + c[2 * t + 1] - s));
				} else {
					err1 = fmax(err1, fabs(c[t] - s));
					err1_f16 = fmax(err1_f16, fabs(c[t] - s_f16));
				}
			}
		}
	}
	if (err2 > 1e-3 || err1_f16 > 1e-3) {
		fprintf(stderr, "bench_kernels: check: cublas off by %g (2 cols), %g (1 col)\n",
		        err2, err1_f16);
		return -1;
	}
	snprintf(name, sizeof(name), "cublas 2 cols/token max |err| n=%u", nt);
	emit("check", tokens, name, err2, "abs");
	snprintf(name, sizeof(name), "cublas 1 col/token max |err| n=%u", nt);
	emit("check", tokens, name, err1, "abs");
	return 0;
}

/* ---- the figures ---- */

/* Launch floor, synchronisation, the small copies of a call, and gathers: no memory needed. */
static int
fixed_part(struct kb *b, int iters, double *us)
{
	char name[64];
	int err;

	if ((err = time_dev(b, OP_TINY, iters, us)) != 0)
		return err;
	report("kernel", 0, "fuse tiny (1 block)", us, iters, 0);
	if ((err = time_live(b, 0, iters, false, us)) != 0)
		return err;
	report("host", 0, "sync idle stream", us, iters, 0);
	if ((err = time_live(b, OP_TINY, iters, false, us)) != 0)
		return err;
	report("host", 0, "fuse tiny + sync", us, iters, 0);

	b->up_bytes = b->down_bytes = 4096;
	if ((err = time_dev(b, OP_UP, iters, us)) != 0)
		return err;
	report("copy", 0, "H2D 4 KiB pinned", us, iters, 4096);
	if ((err = time_dev(b, OP_DOWN, iters, us)) != 0)
		return err;
	report("copy", 0, "D2H 4 KiB pinned", us, iters, 4096);
	if ((err = time_live(b, OP_UP, iters, false, us)) != 0)
		return err;
	report("host", 0, "H2D 4 KiB pinned + sync", us, iters, 0);
	if ((err = time_live(b, OP_DOWN, iters, false, us)) != 0)
		return err;
	report("host", 0, "D2H 4 KiB pinned + sync", us, iters, 0);

	uint32_t ns[] = {64, GATHER_MAX};
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		b->n_gather = ns[i];
		if ((err = time_dev(b, OP_GATHER, iters, us)) != 0)
			return err;
		snprintf(name, sizeof(name), "gather %u x 32 KiB mapped", ns[i]);
		report("copy", 0, name, us, iters, (double)ns[i] * KV_BYTES);
	}
	return 0;
}

static int
shape_part(struct kb *b, uint32_t rows, uint32_t nt, int iters, double *us)
{
	static const struct {
		const char *name;
		unsigned ops;
	} kernels[] = {{"score", OP_SCORE},   {"select", OP_SELECT}, {"resolve", OP_RESOLVE},
	               {"attend", OP_ATTEND}, {"fuse", OP_FUSE},     {"seq queued", OP_SEQ}};
	uint64_t tokens = (uint64_t)rows * S_TOK;
	double kv = (double)nt * H_KV * K_SEL * S_TOK * D_H * 2 * 2;
	char name[64];
	int err;

	if ((err = shape_set(b, rows, nt)) != 0 || (err = shape_check(b)) != 0)
		return err;
	for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
		unsigned ops = kernels[i].ops;
		if ((err = time_dev(b, ops, iters, us)) != 0)
			return err;
		snprintf(name, sizeof(name), "%s n=%u", kernels[i].name, nt);
		report("kernel", tokens, name, us, iters,
		       ops == OP_SCORE    ? (double)rows * D_R * 2
		       : ops == OP_ATTEND ? kv
		                          : 0);
	}
	if ((err = time_live(b, OP_SEQ, iters, true, us)) != 0)
		return err;
	snprintf(name, sizeof(name), "seq live n=%u events", nt);
	report("kernel", tokens, name, us, iters, 0);
	if ((err = time_live(b, OP_SEQ, iters, false, us)) != 0)
		return err;
	snprintf(name, sizeof(name), "seq live + sync n=%u", nt);
	report("host", tokens, name, us, iters, 0);

	snprintf(name, sizeof(name), "round n=%u upload", nt);
	emit("copy", tokens, name, (double)b->up_bytes, "B");
	snprintf(name, sizeof(name), "round n=%u download", nt);
	emit("copy", tokens, name, (double)b->down_bytes, "B");
	if ((err = time_live(b, OP_UP | OP_SEQ | OP_DOWN, iters, true, us)) != 0)
		return err;
	snprintf(name, sizeof(name), "round n=%u events", nt);
	report("kernel", tokens, name, us, iters, 0);
	if ((err = time_live(b, OP_UP | OP_SEQ | OP_DOWN, iters, false, us)) != 0)
		return err;
	snprintf(name, sizeof(name), "round + sync n=%u", nt);
	report("host", tokens, name, us, iters, 0);
	return 0;
}

/* cuBLAS in place of score for nt tokens; score itself where the sequence does not time it. */
static int
gemm_part(struct kb *b, uint32_t rows, uint32_t nt, bool score, int iters, double *us)
{
	static const struct {
		const char *fmt;
		unsigned ops;
	} gemms[] = {{"cublas gemm f16 n=%u (2 cols/token)", OP_GEMM2},
	             {"cublas gemm f16 n=%u (1 col/token)", OP_GEMM1},
	             {"D2D copy of C n=%u (key pass proxy)", OP_PASS},
	             {"cublas 2 cols/token + proxy n=%u", OP_GEMM2 | OP_PASS}};
	uint64_t tokens = (uint64_t)rows * S_TOK;
	double lmk = (double)rows * D_R * 2;
	char name[64];
	int err;

	if ((err = shape_set(b, rows, nt)) != 0 || (err = gemm_check(b, tokens)) != 0)
		return err;
	if (score) {
		if ((err = time_dev(b, OP_SCORE, iters, us)) != 0)
			return err;
		snprintf(name, sizeof(name), "score n=%u", nt);
		report("kernel", tokens, name, us, iters, lmk);
	}
	for (size_t i = 0; i < sizeof(gemms) / sizeof(gemms[0]); i++) {
		unsigned ops = gemms[i].ops;
		if ((err = time_dev(b, ops, iters, us)) != 0)
			return err;
		snprintf(name, sizeof(name), gemms[i].fmt, nt);
		report(ops == OP_PASS ? "copy" : "kernel", tokens, name, us, iters,
		       ops == OP_PASS ? (double)rows * 2 * nt * 4 : lmk);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"tokens", required_argument, NULL, 't'},
	                                     {"iters", required_argument, NULL, 'i'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	const char *tokens = "1048576,16777216";
	uint32_t rows[16], n_rows = 0, rows_max = 0;
	int iters = 200, count = 0, ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 't': tokens = optarg; break;
		case 'i': iters = atoi(optarg); break;
		case 'j':
			if ((json = fopen(optarg, "a")) == NULL) {
				perror(optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: %s [--tokens N[,N...]] [--iters N] [--json FILE]\n",
			        argv[0]);
			return 2;
		}
	}
	if (iters < 20)
		iters = 20;
	for (const char *s = tokens; *s != '\0';) {
		char *end;
		unsigned long long t = strtoull(s, &end, 0);
		if (end == s || (*end != ',' && *end != '\0') || t < S_TOK || t % S_TOK != 0 ||
		    t / S_TOK > UINT32_MAX || n_rows == sizeof(rows) / sizeof(rows[0])) {
			fprintf(stderr, "bench_kernels: --tokens: a list of multiples of %u\n",
			        S_TOK);
			return 2;
		}
		rows[n_rows] = (uint32_t)(t / S_TOK);
		if (rows[n_rows] > rows_max)
			rows_max = rows[n_rows];
		n_rows++;
		s = *end == ',' ? end + 1 : end;
	}

	/* without a driver the count is left untouched: 0 */
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess || count == 0) {
		const char *req = getenv("HSAMEM_REQUIRE_GPU");
		printf("bench_kernels: skipped: no CUDA device (%s)\n",
		       e != cudaSuccess ? cudaGetErrorString(e) : "none");
		return req != NULL && strcmp(req, "1") == 0 ? 1 : 77;
	}
	struct cudaDeviceProp prop;
	struct kb b;
	double *us = malloc((size_t)iters * sizeof(double));
	if (us == NULL || CU(cudaGetDeviceProperties(&prop, 0)) != 0 || CU(cuk_init()) != 0) {
		free(us);
		return 1;
	}
	printf("bench_kernels: %s; spec %s (S%u h_kv%u d_h%u h_q%u d_r%u f16), k=%u; "
	       "p50/p10 of %d after %d warm-up\n",
	       prop.name, spec_name, S_TOK, H_KV, D_H, H_Q, D_R, K_SEL, iters, WARMUP);
	if (kb_init(&b, rows_max) != 0 || fixed_part(&b, iters, us) != 0)
		goto out;
	for (uint32_t i = 0; i < n_rows; i++)
		if (shape_part(&b, rows[i], 1, iters, us) != 0 ||
		    shape_part(&b, rows[i], NT_MAX, iters, us) != 0 ||
		    gemm_part(&b, rows[i], 1, false, iters, us) != 0 ||
		    gemm_part(&b, rows[i], 8, true, iters, us) != 0 ||
		    gemm_part(&b, rows[i], NT_MAX, false, iters, us) != 0)
			goto out;
	rc = 0;
out:
	kb_free(&b);
	free(us);
	if (json != NULL)
		fclose(json);
	return rc;
}
