/*
 * bench_cuda_model.c: the learned encoder hsa-small on a CUDA GPU (encoder/hsa_cuda.c):
 * chunk-encoding throughput (tokens/s, batches of --batch windows per call as the daemon's
 * ingest sends them) against the GPU's bf16 GEMM roof (a cuBLAS GEMM of a large square size
 * measured in the same run), and the latency of the query path: the queries of one position
 * (what the daemon's query runs before its own HSA), and the whole path with HSA and logits over
 * a memory of --chunks random chunks held in host memory.
 *
 *     bench/bench_cuda_model [--model DIR] [--batch N] [--seconds S] [--chunks N] [--iters N]
 *                            [--json FILE]
 *
 * --iters sets the query measures' runs (500 of the queries alone, 100 of the whole path by
 * default); a small count with --seconds 0 keeps a kernel profiler's run short.
 *
 * Figures and the machine they were taken on: bench/RESULTS.md.
 */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsa_cuda.h"
#include "hsa_forward.h"
#include "hsa_model.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Token ids and values of the bench's inputs: a 64-bit LCG, its high half. */
static uint64_t lcg = 88172645463325252ull;

static uint32_t
xrand(void)
{
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(lcg >> 33);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* TFLOP/s of a bf16 cuBLAS GEMM (fp32 accumulation) of n x n x n, for about secs seconds. */
static double
gemm_roof(int n, double secs)
{
	void *A = NULL, *B = NULL;
	float *C = NULL, alpha = 1, beta = 0, ms = 0;
	cublasHandle_t h = NULL;
	cudaEvent_t e0, e1;
	double flops = 0, t = 0;
	long it = 0;

	if (cudaMalloc(&A, (size_t)n * n * 2) || cudaMalloc(&B, (size_t)n * n * 2) ||
	    cudaMalloc((void **)&C, (size_t)n * n * 4) || cublasCreate(&h) ||
	    cudaEventCreate(&e0) || cudaEventCreate(&e1))
		return 0;
	cudaMemset(A, 0x3c, (size_t)n * n * 2); /* bf16 0x3c3c: about 0.011 */
	cudaMemset(B, 0x3c, (size_t)n * n * 2);
	while (t < secs) {
		cudaEventRecord(e0, 0);
		for (int i = 0; i < 10; i++)
			if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, A,
			                 CUDA_R_16BF, n, B, CUDA_R_16BF, n, &beta, C, CUDA_R_32F, n,
			                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT))
				return 0;
		cudaEventRecord(e1, 0);
		if (cudaEventSynchronize(e1) || cudaEventElapsedTime(&ms, e0, e1))
			return 0;
		if (it++ > 0) { /* the first round warms up */
			t += ms / 1e3;
			flops += 10 * 2.0 * n * n * n;
		}
	}
	cublasDestroy(h);
	cudaFree(A), cudaFree(B), cudaFree(C);
	return flops / t / 1e12;
}

/* GEMM flops of encoding one chunk (models/README.md: the lower stack on its 2S-token window,
 * the encoder blocks on S+1 rows, the K|V|L projection on S+1 rows). */
static double
chunk_flops(const struct hsa_config *c)
{
	double D = c->d_model, blk = 4 * D * D + 3 * D * c->d_mlp, E = c->chunk + 1.0;

	return 2 * (c->n_lower * 2.0 * c->chunk * blk + c->n_enc * E * blk +
	            E * D * (2.0 * c->h_kv * c->d_h + c->d_r));
}

static int
bench_encode(const struct hsa_model *m, uint32_t batch, double secs, double roof, FILE *js)
{
	const struct hsa_config *c = &m->cfg;
	const struct hsa_runtime *rt = hsa_runtime_cuda();
	size_t W = 2 * (size_t)c->chunk, kv = (size_t)batch * c->chunk * c->h_kv * c->d_h;
	uint32_t *win = malloc(batch * W * sizeof(*win));
	float *K = malloc(kv * 4), *V = malloc(kv * 4), *L = malloc((size_t)batch * c->d_r * 4);
	struct hsa_scratch *s = NULL;
	double t0, t, tps, tf;
	long it = 0;
	int rc;

	for (size_t i = 0; i < batch * W; i++)
		win[i] = xrand() % 8000;
	if ((rc = rt->scratch_alloc(m, batch, &s)) != 0 ||
	    (rc = rt->encode_chunks(m, s, win, batch, K, V, L)) != 0) {
		fprintf(stderr, "bench_cuda_model: encoding failed (%d)\n", rc);
		return 1;
	}
	t0 = now();
	do {
		if ((rc = rt->encode_chunks(m, s, win, batch, K, V, L)) != 0)
			return 1;
		it++;
	} while ((t = now() - t0) < secs);
	tps = (double)it * batch * c->chunk / t;
	tf = (double)it * batch * chunk_flops(c) / t / 1e12;
	printf("chunk encoding: batch %u windows: %.0f tokens/s, %.1f ms a call; GEMMs %.1f "
	       "TFLOP/s "
	       "= %.1f%% of the bf16 roof\n",
	       batch, tps, t / it * 1e3, tf, roof > 0 ? 100 * tf / roof : 0);
	if (js)
		fprintf(js,
		        "{\"bench\":\"cuda_model\",\"what\":\"encode\",\"batch\":%u,"
		        "\"tokens_per_s\":%.0f,\"gemm_tflops\":%.2f,\"roof_tflops\":%.2f}\n",
		        batch, tps, tf, roof);
	rt->scratch_free(s);
	free(win), free(K), free(V), free(L);
	return 0;
}

/* p50 and p99 of iters runs of the query path: heads only (nc 0) or the whole with nc chunks. */
static int
bench_query(const struct hsa_model *m, uint32_t nc, int iters, FILE *js)
{
	const struct hsa_config *c = &m->cfg;
	const struct hsa_runtime *rt = hsa_runtime_cuda();
	size_t per = (size_t)c->chunk * c->h_kv * c->d_h, qd = c->h_q * c->d_h;
	uint32_t n = c->chunk + 20, win[256];
	float *K = malloc(((size_t)nc * per + 1) * 4), *V = malloc(((size_t)nc * per + 1) * 4);
	float *L = malloc(((size_t)nc * c->d_r + 1) * 4), qr[1024], qa[4096];
	float *logits = malloc((size_t)c->vocab * 4);
	struct hsa_memory mem = {K, V, L, nc};
	struct hsa_query_out out = {.logits = logits};
	struct hsa_scratch *s = NULL;
	double *ms = malloc(iters * sizeof(double));
	int rc = 0;

	for (size_t i = 0; i < (size_t)nc * per; i++) {
		K[i] = (float)(xrand() % 2001) / 1000.0f - 1.0f;
		V[i] = (float)(xrand() % 2001) / 1000.0f - 1.0f;
	}
	for (size_t i = 0; i < (size_t)nc * c->d_r; i++)
		L[i] = (float)(xrand() % 2001) / 1000.0f - 1.0f;
	for (uint32_t i = 0; i < n; i++)
		win[i] = xrand() % 8000;
	if (c->d_r > 1024 || qd > 4096 || (rc = rt->scratch_alloc(m, 1, &s)) != 0)
		return 1;
	double *queued = calloc(iters, sizeof(double));
	for (int i = -3; i < iters && !rc && queued; i++) {
		double t0 = now(), t1 = t0;
		if (nc) {
			rc = rt->query(m, s, win, n, n - 1, &mem, &out);
		} else {
			/* the queries alone in the daemon's two halves: queued, then waited for */
			rc = hsa_cuda_query_heads_start(m, s, win, n, n - 1);
			t1 = now();
			if (!rc)
				rc = hsa_cuda_query_heads_finish(m, s, qr, qa);
		}
		if (i >= 0) {
			ms[i] = (now() - t0) * 1e3;
			queued[i] = (t1 - t0) * 1e3;
		}
	}
	if (queued == NULL)
		rc = -1;
	if (rc) {
		fprintf(stderr, "bench_cuda_model: query failed (%d)\n", rc);
		return 1;
	}
	qsort(ms, iters, sizeof(double), cmp_double);
	printf("query %s (%u-token window, 1 position): p50 %.3f ms, p99 %.3f ms\n",
	       nc ? "with HSA and logits" : "queries only", n, ms[iters / 2], ms[iters * 99 / 100]);
	if (nc) {
		printf("  over %u chunks (%.1fM tokens) in host memory\n", nc, nc * c->chunk / 1e6);
	} else {
		qsort(queued, iters, sizeof(double), cmp_double);
		printf("  of which queuing the window's graph and download: p50 %.3f ms\n",
		       queued[iters / 2]);
	}
	free(queued);
	if (js)
		fprintf(js,
		        "{\"bench\":\"cuda_model\",\"what\":\"query\",\"chunks\":%u,\"p50_ms\":%."
		        "4f,"
		        "\"p99_ms\":%.4f}\n",
		        nc, ms[iters / 2], ms[iters * 99 / 100]);
	rt->scratch_free(s);
	free(K), free(V), free(L), free(logits), free(ms);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *dir = "models/hsa-small", *json = NULL;
	uint32_t batch = 512, chunks = 16384;
	int iters = 0;
	double secs = 3, roof;
	char why[512] = "";
	struct hsa_model *m = NULL;
	FILE *js = NULL;
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--model"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--batch"))
			batch = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			secs = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--chunks"))
			chunks = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--iters"))
			iters = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--json"))
			json = argv[i + 1];
		else
			break;
	}
	if (argc % 2 == 0 || batch == 0 || iters < 0) {
		fprintf(stderr,
		        "usage: %s [--model DIR] [--batch N] [--seconds S] [--chunks N] "
		        "[--iters N] [--json FILE]\n",
		        argv[0]);
		return 2;
	}
	if (hsa_model_load(dir, &m, why, sizeof(why)) != 0 ||
	    hsa_cuda_attach(m, 0, why, sizeof(why)) != 0) {
		fprintf(stderr, "bench_cuda_model: %s\n", why);
		hsa_cuda_detach(m);
		hsa_model_free(m);
		return 1;
	}
	if (json && !(js = fopen(json, "a"))) {
		perror(json);
		return 1;
	}
	roof = gemm_roof(8192, secs / 3);
	printf("bf16 GEMM roof (cuBLAS 8192^3, fp32 accumulation): %.1f TFLOP/s\n", roof);
	rc = bench_encode(m, batch, secs, roof, js);
	if (!rc && batch != 64)
		rc = bench_encode(m, 64, secs / 3, roof, js);
	if (!rc)
		rc = bench_query(m, 0, iters ? iters : 500, js);
	if (!rc)
		rc = bench_query(m, chunks, iters ? iters : 100, js);
	if (js)
		fclose(js);
	hsa_cuda_detach(m);
	hsa_model_free(m);
	return rc;
}
