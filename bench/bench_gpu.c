/*
 * bench_gpu.c: the CUDA backend, alone and inside hsamemd, on memories of 1M, 4M and 16M tokens.
 *
 * For each spec and size the memory is written straight into an LMDB store with the store API
 * (appending 16M tokens of client chunks through the daemon would take longer than a benchmark
 * run: the daemon's own append rate is measured separately, on a smaller memory). Then:
 *
 *   GPU part (the backend called directly on a source over a read transaction of that store):
 *     cold        landmarks not resident, chunks not cached (every selected chunk from LMDB)
 *     lmk load    landmark bytes / the extra time of a call that loads them (k = 1)
 *     warm n=1    p50/p99, a cycle of 16 queries whose chunks are cached
 *     warm n=32   the same with 32 query tokens a call
 *     16 threads  the warm n=1 cycle from 16 threads at once, max(iters, 200) calls each, every
 *                 thread with its read transaction and source of its own: calls/s, p50/p99 of
 *                 a call, calls per device pass (calls / the batches counter) and the most calls
 *                 in one pass; beside it calls/s of the same loop on 1 thread
 *     chunks cold landmarks resident, device and host chunk caches emptied before each call, at
 *                 n=1 and n=32; page-in rate = chunk bytes the backend paged a call (its
 *                 bytes_paged counter) / (chunks cold p50 - warm p50)
 *     host cache  device chunk cache emptied, the pinned host cache holding the chunks, at n=1
 *                 and n=32; page-in rate as above against the warm p50 of the same n
 *     miss rounds for the chunks-cold and host-cache calls at n=1 and n=32: per call with misses,
 *                 the time one of its rounds with misses spends in select, walk, copy, finish
 *                 and the four together (counter changes around the call / its miss rounds);
 *                 the p50 over the calls of each; no rows where no call had such a round
 *                 (the device read the host cache in place)
 *     page cache  n=1, median of 3, after emptying every cache of the backend and evicting the
 *                 store's data.mdb from the page cache. The store is closed first (the kernel
 *                 never evicts pages mapped into a process, and LMDB's map would hold them), the
 *                 file is flushed with fdatasync (only clean pages are evicted: dirty ones stay,
 *                 and a store built without sync has many), posix_fadvise(POSIX_FADV_DONTNEED)
 *                 evicts it, and the store is opened again; so the call reads its landmarks and
 *                 chunks from the disk, apart from the few pages that opening the store and
 *                 finding the user read back, and pages another process maps. Where the
 *                 fadvise fails the row is left out with a message. The file is read once
 *                 afterwards, so the end-to-end figures find the page cache warm.
 *   end to end over ipc (hsamemd started on that store, libhsamem):
 *     ping, attend warm n=1 and n=32, attend cold (first call after a restart), queries/s with 16
 *     clients, appends/s of one appender while 16 clients query, and the daemon's append rate.
 *
 *
 * This file holds the options, the store written directly and what both parts share (bench_gpu.h);
 * the GPU part is bench_gpu_backend.c, the end-to-end part bench_gpu_e2e.c.
 *
 * Usage: bench_gpu [--spec client|lexical] [--tokens N[,N...]] [--iters N] [--no-e2e]
 *                  [--json FILE] [--host-cache BYTES]
 * Exit 77 without a CUDA device (1 with HSAMEM_REQUIRE_GPU=1).
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_gpu.h"
#include "cuda_backend.h"
#include "half.h"
#include "harness.h"
#include "hsamem.h"
#include "store.h"

FILE *json;
const char *spec_name = "client";
int iters = 200;
uint64_t host_cache = 2ull << 30;

double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double
pct(double *v, int n, double p)
{
	if (n <= 0)
		return NAN;
	qsort(v, n, sizeof(double), dcmp);
	int i = (int)ceil(p / 100.0 * n) - 1;
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static uint64_t rs = 0x2545f4914f6cdd1dull;

static inline uint64_t
rnd64(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

double
unif(void)
{
	return (double)(rnd64() >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Random 16-bit values in +-[0.5, 1): fast enough for gigabytes of K/V. */
void
fill_kv(enum hsa_dtype t, uint16_t *p, size_t n)
{
	uint16_t mask = t == HSA_F16 ? 0x83ff : 0x807f, one = t == HSA_F16 ? 0x3800 : 0x3f00;
	for (size_t i = 0; i < n; i += 4) {
		uint64_t r = rnd64();
		for (size_t l = 0; l < 4 && i + l < n; l++)
			p[i + l] = (uint16_t)(((r >> (16 * l)) & mask) | one);
	}
}

void
fill_f(enum hsa_dtype t, void *dst, size_t n, double scale)
{
	float buf[256];
	for (size_t i = 0; i < n; i += 256) {
		size_t m = n - i < 256 ? n - i : 256;
		for (size_t x = 0; x < m; x++)
			buf[x] = (float)(unif() * scale);
		half_from_float_row(t, buf, (char *)dst + i * 2, m);
	}
}

void
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

struct hsa_spec
bench_spec(void)
{
	struct hsa_spec s = {.S = 64,
	                     .h_kv = 1,
	                     .d_h = 128,
	                     .h_q = 16,
	                     .d_r = 128,
	                     .dtype = HSA_F16,
	                     .weighting = HSA_SOFTMAX,
	                     .top_k = K_SEL};
	if (strcmp(spec_name, "lexical") == 0) {
		s.d_h = 64;
		s.h_q = 1;
		s.d_r = 1024;
	}
	strcpy(s.encoder, "client");
	return s;
}

/* ---- the store, written directly ---- */

static int
build_store(const char *dir, const struct hsa_spec *sp, uint64_t n_chunks)
{
	size_t kvb = spec_kv_bytes(sp), lb = spec_landmark_bytes(sp);
	struct store_opts o = {.map_size = (uint64_t)((kvb + lb) * n_chunks * 1.6) + (1ull << 30),
	                       .map_max = 1ull << 40,
	                       .no_sync = true};
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u;
	uint16_t *kv = malloc(kvb), *row = malloc(lb);
	int err;
	double t0 = now_s();

	if ((err = store_open(dir, &o, &st)) != 0)
		goto out;
	memset(&u, 0, sizeof(u));
	strcpy(u.name, "bench");
	u.spec = *sp;
	if ((err = store_txn_begin(st, &txn, true, NULL)) != 0)
		goto out;
	store_user_create(&txn, &u);
	if ((err = store_txn_commit(&txn)) != 0)
		goto out;
	for (uint64_t j = 0; j < n_chunks;) {
		if ((err = store_txn_begin(st, &txn, true, NULL)) != 0)
			goto out;
		for (uint64_t e = j + 4096 < n_chunks ? j + 4096 : n_chunks; j < e; j++) {
			fill_kv(sp->dtype, kv, kvb / 2);
			fill_f(sp->dtype, row, sp->d_r, 2.0);
			store_kv_put(&txn, u.uid, j, kv, kvb);
			store_landmark_put(&txn, &u, j, row);
		}
		u.n_chunks = j;
		u.n_tokens = j * sp->S;
		store_user_update(&txn, &u);
		if ((err = store_txn_commit(&txn)) != 0)
			goto out;
	}
	double dt = now_s() - t0;
	emit("store", n_chunks * sp->S, "store build (direct, no sync)",
	     (double)n_chunks * (kvb + lb) / dt / 1e9, "GB/s");
out:
	if (err != 0)
		fprintf(stderr, "bench_gpu: building the store: %s\n", hsamem_strerror(err));
	store_close(st);
	free(kv);
	free(row);
	return err;
}

/* ---- queries ---- */

void
qset_make(struct qset *q, const struct hsa_spec *sp, uint32_t n, uint64_t n_chunks)
{
	q->n = n;
	q->qr = malloc((size_t)n * sp->d_r * 4);
	q->qa = malloc((size_t)n * sp->h_q * sp->d_h * 4);
	q->pos = malloc(n * 8);
	for (size_t i = 0; i < (size_t)n * sp->d_r; i++)
		q->qr[i] = (float)unif();
	for (size_t i = 0; i < (size_t)n * sp->h_q * sp->d_h; i++)
		q->qa[i] = (float)unif();
	for (uint32_t t = 0; t < n; t++)
		q->pos[t] = n_chunks * sp->S; /* the whole memory is visible */
}

void
qset_fresh(struct qset *q, const struct hsa_spec *sp)
{
	for (size_t i = 0; i < (size_t)q->n * sp->d_r; i++)
		q->qr[i] = (float)unif();
}

void
qset_free(struct qset *q)
{
	free(q->qr);
	free(q->qa);
	free(q->pos);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"spec", required_argument, NULL, 's'},
	                                     {"tokens", required_argument, NULL, 't'},
	                                     {"iters", required_argument, NULL, 'i'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {"no-e2e", no_argument, NULL, 'n'},
	                                     {"host-cache", required_argument, NULL, 'c'},
	                                     {"append", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	char *tokens = strdup("1048576,4194304,16777216");
	bool e2e = true;
	uint64_t append_chunks = 4096;
	char desc[256];
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': spec_name = optarg; break;
		case 't':
			free(tokens);
			tokens = strdup(optarg);
			break;
		case 'i': iters = atoi(optarg); break;
		case 'j': json = fopen(optarg, "a"); break;
		case 'n': e2e = false; break;
		case 'c': host_cache = strtoull(optarg, NULL, 0); break;
		case 'a': append_chunks = strtoull(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	if (iters < 20)
		iters = 20;
	if (gpu_cuda_probe(desc, sizeof(desc)) <= 0) {
		const char *req = getenv("HSAMEM_REQUIRE_GPU");
		printf("bench_gpu: skipped: %s\n", desc);
		return req != NULL && strcmp(req, "1") == 0 ? 1 : 77;
	}
	struct hsa_spec sp = bench_spec();
	printf("bench_gpu: %s; spec %s (S%u h_kv%u d_h%u h_q%u d_r%u f16), k=%d\n", desc, spec_name,
	       sp.S, sp.h_kv, sp.d_h, sp.h_q, sp.d_r, K_SEL);
	if (append_chunks > 0 && e2e) {
		struct harness h;
		if (harness_init(&h) != 0 || append_rate(&h, &sp, append_chunks) != 0) {
			harness_dump_log(&h);
			return 1;
		}
		harness_fini(&h);
	}
	for (char *s = strtok(tokens, ","); s != NULL; s = strtok(NULL, ",")) {
		uint64_t n_chunks = strtoull(s, NULL, 0) / sp.S;
		struct harness h;
		if (harness_init(&h) != 0)
			return 1;
		mkdir(h.state, 0700);
		if (build_store(h.state, &sp, n_chunks) != 0)
			return 1;
		gpu_part(h.state, &sp, n_chunks);
		if (e2e && e2e_part(&h, &sp, n_chunks) != 0) {
			harness_dump_log(&h);
			return 1;
		}
		harness_fini(&h);
	}
	free(tokens);
	if (json != NULL)
		fclose(json);
	return 0;
}
