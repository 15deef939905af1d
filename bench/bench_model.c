/*
 * bench_model.c: the learned encoder hsa-small on the CPU (encoder/hsa_forward.c): tokenizer
 * throughput, chunk-encoding throughput against the machine's fp32 roof (an OpenBLAS sgemm of a
 * large square size measured in the same run, and the peak that the CPU's flags and clock
 * promise), and the latency of the query path over a 1M-token memory of random chunks.
 *
 *     bench/bench_model [--model DIR] [--batch N] [--seconds S] [--chunks N] [--threads N]
 *
 * --threads: OpenBLAS threads (default 0: one per core).
 *
 * Figures and the machine they were taken on: bench/RESULTS.md.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bpe.h"
#include "hsa_forward.h"
#include "hsa_model.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t rng = 2463534242u;

static uint32_t
xrand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static float
frand(void)
{
	return (float)(xrand() >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* GFLOP/s of C[m][n] = A[m][k] B[n][k]^T, repeated for about secs seconds. */
static double
gemm_rate(int m, int n, int k, double secs)
{
	float *A = malloc((size_t)m * k * 4), *B = malloc((size_t)n * k * 4);
	float *C = malloc((size_t)m * n * 4);
	double t0, t;
	long it = 0;

	for (size_t i = 0; i < (size_t)m * k; i++)
		A[i] = frand();
	for (size_t i = 0; i < (size_t)n * k; i++)
		B[i] = frand();
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, A, k, B, k, 0, C, n);
	t0 = now();
	do {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, A, k, B, k, 0, C,
		            n);
		it++;
	} while ((t = now() - t0) < secs);
	free(A), free(B), free(C);
	return 2.0 * m * n * k * it / t / 1e9;
}

/* The peak the flags promise: cores x clock x FMA lanes x 2 FMA pipes x 2 flops. */
static double
peak_gflops(int cores, char *desc, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	double mhz = 0;
	int avx512 = 0, fma = 0, amd = 0, lanes;

	while (f && fgets(line, sizeof(line), f)) {
		if (!mhz && !strncmp(line, "cpu MHz", 7))
			mhz = atof(strchr(line, ':') + 1);
		if (!strncmp(line, "flags", 5)) {
			avx512 |= strstr(line, " avx512f") != NULL;
			fma |= strstr(line, " fma") != NULL;
		}
		if (!strncmp(line, "vendor_id", 9))
			amd |= strstr(line, "AuthenticAMD") != NULL;
	}
	if (f)
		fclose(f);
	/* AMD's AVX-512 (Zen 4) runs on two 256-bit FMA pipes: 8 fp32 lanes each. */
	lanes = avx512 && !amd ? 16 : 8;
	snprintf(desc, len, "%d cores x %.0f MHz x 2 FMA pipes x %d fp32 lanes x 2%s", cores, mhz,
	         lanes, fma ? "" : " (no FMA flag!)");
	return cores * mhz * 1e6 * 2 * lanes * 2 / 1e9;
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

static void
bench_tokenizer(const struct hsa_model *m, const char *dir, double secs)
{
	char path[8192], *text;
	size_t len = 0, cap = 1 << 20, n = 0;
	double t0, t;
	long it = 0, toks = 0;
	FILE *f;

	text = malloc(cap);
	snprintf(path, sizeof(path), "%s/../EVAL.md", dir);
	while (len < cap - 65536) { /* the models' own prose, repeated to 1 MB */
		size_t r;
		f = fopen(path, "rb");
		if (!f)
			break;
		r = fread(text + len, 1, cap - len, f);
		fclose(f);
		if (!r)
			break;
		len += r;
	}
	t0 = now();
	do {
		uint32_t *ids = NULL;
		bpe_encode(m->tok, text, len, &ids, &n);
		free(ids);
		toks += (long)n;
		it++;
	} while ((t = now() - t0) < secs);
	printf("| tokenizer (1 thread, %zu-byte text)  | %.2f M tokens/s, %.1f MB/s |\n", len,
	       toks / t / 1e6, len * it / t / 1e6);
	free(text);
}

/* The rate of the encoder's GEMM shapes alone (one chunk batch's worth, in order). */
static double
encoder_gemm_rate(const struct hsa_config *c, uint32_t batch, double secs)
{
	int R = (int)(batch * 2 * c->chunk), E = (int)(batch * (c->chunk + 1)), D = (int)c->d_model;
	int F = (int)c->d_mlp, kvl = (int)(2 * c->h_kv * c->d_h + c->d_r);
	int shapes[][4] = {{R, 3 * D, D, (int)c->n_lower},
	                   {R, D, D, (int)c->n_lower},
	                   {R, 2 * F, D, (int)c->n_lower},
	                   {R, D, F, (int)c->n_lower},
	                   {E, 3 * D, D, (int)c->n_enc},
	                   {E, D, D, (int)c->n_enc},
	                   {E, 2 * F, D, (int)c->n_enc},
	                   {E, D, F, (int)c->n_enc},
	                   {E, kvl, D, 1}};
	size_t big = (size_t)R * 2 * F;
	float *A = malloc(big * 4), *B = malloc((size_t)2 * F * F * 4), *C = malloc(big * 4);
	double flops = 0, t0, t;
	long it = 0;

	for (size_t i = 0; i < big; i++)
		A[i] = C[i] = frand();
	for (size_t i = 0; i < (size_t)2 * F * F; i++)
		B[i] = frand();
	t0 = now();
	do {
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
			for (int r = 0; r < shapes[s][3]; r++) {
				int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, A,
				            k, B, k, 0, C, n);
				flops += 2.0 * m * n * k;
			}
		it++;
	} while ((t = now() - t0) < secs);
	free(A), free(B), free(C);
	return flops / t / 1e9;
}

/* Chunks encoded per second in batches of batch windows of random tokens. */
static double
bench_encode(const struct hsa_model *m, uint32_t batch, double secs)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t W = 2 * c->chunk, *win = malloc((size_t)batch * W * 4);
	size_t kv = (size_t)batch * c->chunk * c->h_kv * c->d_h;
	float *K = malloc(kv * 4), *V = malloc(kv * 4), *L = malloc((size_t)batch * c->d_r * 4);
	struct hsa_scratch *s = NULL;
	double t0, t;
	long it = 0;

	for (size_t i = 0; i < (size_t)batch * W; i++)
		win[i] = xrand() % c->vocab;
	if (hsa_scratch_alloc(m, batch, &s))
		return 0;
	hsa_encode_chunks(m, s, win, batch, K, V, L);
	t0 = now();
	do {
		hsa_encode_chunks(m, s, win, batch, K, V, L);
		it++;
	} while ((t = now() - t0) < secs);
	hsa_scratch_free(s);
	free(win), free(K), free(V), free(L);
	return (double)batch * it / t;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Query-path latency over n_chunks random chunks: ranking at <|a|> and one generation step. */
static void
bench_query(const struct hsa_model *m, uint64_t n_chunks, int reps)
{
	const struct hsa_config *c = &m->cfg;
	size_t kv = (size_t)n_chunks * c->chunk * c->h_kv * c->d_h, nl = n_chunks * c->d_r;
	float *K = malloc(kv * 4), *V = malloc(kv * 4), *L = malloc(nl * 4);
	float *scores = malloc(n_chunks * c->h_kv * 4), *logits = malloc((size_t)c->vocab * 4);
	uint32_t win[128], n = 2 * c->chunk - 36, ans[8], n_ans;
	struct hsa_memory mem = {K, V, L, n_chunks};
	struct hsa_scratch *s = NULL;
	double lat[2][64];

	for (size_t i = 0; i < kv; i++)
		K[i] = frand(), V[i] = frand();
	for (size_t i = 0; i < nl; i++)
		L[i] = frand();
	for (uint32_t i = 0; i < n; i++)
		win[i] = xrand() % 8000;
	hsa_scratch_alloc(m, 1, &s);
	for (int r = 0; r < reps && r < 64; r++) {
		struct hsa_query_out rank = {.scores = scores}, step = {.logits = logits};
		double t0 = now();
		hsa_query(m, s, win, n, n - 1, &mem, &rank);
		lat[0][r] = now() - t0;
		t0 = now();
		hsa_query(m, s, win, n, n - 1, &mem, &step);
		lat[1][r] = now() - t0;
	}
	qsort(lat[0], reps, sizeof(double), cmp_double);
	qsort(lat[1], reps, sizeof(double), cmp_double);
	printf("| query: rank %llu chunks (%.2fM tokens), p50 | %.2f ms (max %.2f) |\n",
	       (unsigned long long)n_chunks, n_chunks * c->chunk / 1e6, lat[0][reps / 2] * 1e3,
	       lat[0][reps - 1] * 1e3);
	printf("| query: one generation step (logits), p50 | %.2f ms (max %.2f) |\n",
	       lat[1][reps / 2] * 1e3, lat[1][reps - 1] * 1e3);
	{
		double t0 = now();
		hsa_generate(hsa_runtime_cpu(), m, s, win, c->chunk, win + c->chunk, n - c->chunk,
		             &mem, 8, ans, &n_ans);
		printf("| generate %u tokens (no eos, 8 at most) | %.1f ms |\n", n_ans,
		       (now() - t0) * 1e3);
	}
	hsa_scratch_free(s);
	free(K), free(V), free(L), free(scores), free(logits);
}

int
main(int argc, char **argv)
{
	const char *top = getenv("HSAMEM_TOP_SRCDIR"), *dir = NULL;
	char def[4200], why[512] = "", desc[256];
	uint32_t batch = 16, chunks = 16384;
	double secs = 3, roof, peak, enc, gem;
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN), threads = 0;
	struct hsa_model *m = NULL;

	hsa_blas_select_core(argv);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--model"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--batch"))
			batch = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			secs = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--chunks"))
			chunks = (uint32_t)atoi(argv[i + 1]);
	}
	snprintf(def, sizeof(def), "%s/models/hsa-small", top ? top : ".");
	if (!dir)
		dir = def;
	if (hsa_model_load(dir, &m, why, sizeof(why))) {
		fprintf(stderr, "bench_model: %s\n", why);
		return 1;
	}
	hsa_blas_threads(threads);
	printf("bench_model: %s, %d cores, OpenBLAS %d threads (%s)\n\n", dir, cores,
	       openblas_get_num_threads(), openblas_get_config());
	printf("| measure | figure |\n|---|---|\n");
	bench_tokenizer(m, dir, secs / 3);
	roof = gemm_rate(2048, 2048, 2048, secs / 2);
	peak = peak_gflops(cores, desc, sizeof(desc));
	printf("| fp32 peak from flags and clock | %.1f GFLOP/s (%s) |\n", peak, desc);
	printf("| sgemm 2048^3 (the roof) | %.1f GFLOP/s (%.0f%% of peak) |\n", roof,
	       100 * roof / peak);
	gem = encoder_gemm_rate(&m->cfg, batch, secs / 2);
	printf("| encoder GEMM shapes alone, batch %u | %.1f GFLOP/s (%.0f%% of the roof) |\n",
	       batch, gem, 100 * gem / roof);
	enc = bench_encode(m, batch, secs);
	printf("| chunk encoding, batch %u | %.0f chunks/s = %.0f tokens/s |\n", batch, enc,
	       enc * m->cfg.chunk);
	printf("| chunk encoding, GEMM flops / time | %.1f GFLOP/s (%.0f%% of the roof) |\n",
	       enc * chunk_flops(&m->cfg) / 1e9, 100 * enc * chunk_flops(&m->cfg) / 1e9 / roof);
	enc = bench_encode(m, 1, secs / 2);
	printf("| chunk encoding, batch 1 | %.0f chunks/s = %.0f tokens/s |\n", enc,
	       enc * m->cfg.chunk);
	bench_query(m, chunks, 15);
	hsa_model_free(m);
	return 0;
}
