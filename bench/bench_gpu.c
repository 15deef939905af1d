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
 * Usage: bench_gpu [--spec client|lexical] [--tokens N[,N...]] [--iters N] [--no-e2e]
 *                  [--json FILE] [--host-cache BYTES]
 * Exit 77 without a CUDA device (1 with HSAMEM_REQUIRE_GPU=1).
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cuda_backend.h"
#include "half.h"
#include "harness.h"
#include "hsamem.h"
#include "store.h"

#define K_SEL     64
#define N_SETS    16
#define N_THREADS 16

static FILE *json;
static const char *spec_name = "client";
static int iters = 200;
static uint64_t host_cache = 2ull << 30;

static double
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

static double
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

static double
unif(void)
{
	return (double)(rnd64() >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Random 16-bit values in +-[0.5, 1): fast enough for gigabytes of K/V. */
static void
fill_kv(enum hsa_dtype t, uint16_t *p, size_t n)
{
	uint16_t mask = t == HSA_F16 ? 0x83ff : 0x807f, one = t == HSA_F16 ? 0x3800 : 0x3f00;
	for (size_t i = 0; i < n; i += 4) {
		uint64_t r = rnd64();
		for (size_t l = 0; l < 4 && i + l < n; l++)
			p[i + l] = (uint16_t)(((r >> (16 * l)) & mask) | one);
	}
}

static void
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

static struct hsa_spec
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

/* ---- the source over the store ---- */

/*
 * One caller's source: a read transaction of its own. The backend may call a source's callbacks
 * from several of its threads at once, and a transaction is for one thread at a time, so they
 * are serialised by a mutex, as the daemon's source does; copy_kv reads through each thread's
 * own reader (store_kv_copy), as the daemon's does.
 */
struct bsrc {
	struct store_txn txn;
	struct store_user u;
	size_t kvb;
	pthread_mutex_t mu;
	struct hsa_source src;
};

static int
bs_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct bsrc *s = ctx;
	pthread_mutex_lock(&s->mu);
	int err = store_landmarks_get(&s->txn, &s->u, first, rows, count);
	pthread_mutex_unlock(&s->mu);
	return err;
}

static int
bs_kv(void *ctx, uint64_t j, const void **kv)
{
	struct bsrc *s = ctx;
	size_t len = 0;
	pthread_mutex_lock(&s->mu);
	int err = store_kv_get(&s->txn, s->u.uid, j, kv, &len);
	pthread_mutex_unlock(&s->mu);
	return err == 0 && len != s->kvb ? HSAMEM_EFORMAT : err;
}

static int
bs_copy_kv(void *ctx, uint64_t j, void *dst)
{
	struct bsrc *s = ctx;
	return store_kv_copy(&s->txn, s->u.uid, j, dst, s->kvb);
}

/* Begins a read transaction of st and finds the bench user in it. Close with bsrc_close. */
static int
bsrc_open(struct store *st, struct bsrc *bs)
{
	int err;

	memset(bs, 0, sizeof(*bs));
	if ((err = store_txn_begin(st, &bs->txn, false, NULL)) != 0)
		return err;
	if ((err = store_user_get(&bs->txn, "bench", &bs->u)) != 0) {
		store_txn_abort(&bs->txn);
		return err;
	}
	bs->kvb = spec_kv_bytes(&bs->u.spec);
	pthread_mutex_init(&bs->mu, NULL);
	bs->src = (struct hsa_source){.ctx = bs,
	                              .uid = bs->u.uid,
	                              .n_chunks = bs->u.n_chunks,
	                              .landmarks = bs_landmarks,
	                              .chunk_kv = bs_kv,
	                              .copy_kv = bs_copy_kv};
	return 0;
}

static void
bsrc_close(struct bsrc *bs)
{
	store_txn_abort(&bs->txn);
	pthread_mutex_destroy(&bs->mu);
}

/* ---- queries ---- */

struct qset {
	uint32_t n;
	float *qr, *qa;
	uint64_t *pos;
};

static void
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

static void
qset_fresh(struct qset *q, const struct hsa_spec *sp)
{
	for (size_t i = 0; i < (size_t)q->n * sp->d_r; i++)
		q->qr[i] = (float)unif();
}

static void
qset_free(struct qset *q)
{
	free(q->qr);
	free(q->qa);
	free(q->pos);
}

struct outbuf {
	struct hsa_result r;
};

static void
out_alloc(struct outbuf *o, const struct hsa_spec *sp, uint32_t n)
{
	size_t ns = (size_t)n * sp->h_kv * K_SEL;
	o->r.out = malloc((size_t)n * sp->h_q * sp->d_h * 4);
	o->r.sel = malloc(ns * 8);
	o->r.score = malloc(ns * 4);
	o->r.weight = malloc(ns * 4);
	o->r.attn = NULL;
}

static void
out_free(struct outbuf *o)
{
	free(o->r.out);
	free(o->r.sel);
	free(o->r.score);
	free(o->r.weight);
}

static double
attend_once(struct gpu_backend *g, const struct hsa_spec *sp, struct hsa_source *src,
            struct qset *q, uint32_t k, struct outbuf *o)
{
	struct hsa_query hq = {.n = q->n, .k = k, .pos = q->pos, .qr = q->qr, .qa = q->qa};
	double t0 = now_s();
	int err = gpu_attend(g, sp, src, &hq, &o->r);
	double dt = now_s() - t0;
	if (err != 0) {
		fprintf(stderr, "bench_gpu: attend: %s\n", hsamem_strerror(err));
		exit(1);
	}
	return dt;
}

/* ---- GPU part ---- */

/* Adds c1 - c0 to *acc for the counters that are sums; max_batch and the slot counts are levels,
 * taken from c1. */
static void
ctr_add(struct gpu_cuda_counters *acc, const struct gpu_cuda_counters *c0,
        const struct gpu_cuda_counters *c1)
{
	acc->host_hits += c1->host_hits - c0->host_hits;
	acc->source_reads += c1->source_reads - c0->source_reads;
	acc->bytes_paged += c1->bytes_paged - c0->bytes_paged;
	acc->lmk_bytes_loaded += c1->lmk_bytes_loaded - c0->lmk_bytes_loaded;
	acc->lmk_evictions += c1->lmk_evictions - c0->lmk_evictions;
	acc->cpu_fallbacks += c1->cpu_fallbacks - c0->cpu_fallbacks;
	acc->batches += c1->batches - c0->batches;
	acc->batched_calls += c1->batched_calls - c0->batched_calls;
	acc->miss_rounds += c1->miss_rounds - c0->miss_rounds;
	acc->ns_select += c1->ns_select - c0->ns_select;
	acc->ns_walk += c1->ns_walk - c0->ns_walk;
	acc->ns_copy += c1->ns_copy - c0->ns_copy;
	acc->ns_finish += c1->ns_finish - c0->ns_finish;
	acc->max_batch = c1->max_batch;
	acc->dev_chunk_slots = c1->dev_chunk_slots;
	acc->host_chunk_slots = c1->host_chunk_slots;
}

/* x / y, 0 where y is 0: a counter the backend does not keep reads 0, and JSON has no NaN. */
static double
ratio0(double x, double y)
{
	return y != 0 ? x / y : 0;
}

/*
 * Per call with misses, the microseconds of one of its rounds with misses in select, walk, copy,
 * finish and the four together: a call's counter changes over its miss_rounds. Medians of these,
 * not sums over a phase, since a rare slow round (one that allocates a pinned segment, say)
 * would move a mean.
 */
#define SPLIT_CALLS 32

struct split {
	int n;
	double us[5][SPLIT_CALLS];
};

/* Adds the call with counters c0 before it and c1 after it; a call without misses is skipped. */
static void
split_add(struct split *s, const struct gpu_cuda_counters *c0, const struct gpu_cuda_counters *c1)
{
	uint64_t rounds = c1->miss_rounds - c0->miss_rounds;
	uint64_t ns[] = {c1->ns_select - c0->ns_select, c1->ns_walk - c0->ns_walk,
	                 c1->ns_copy - c0->ns_copy, c1->ns_finish - c0->ns_finish};
	double total = 0;

	if (rounds == 0)
		return;
	assert(s->n < SPLIT_CALLS);
	for (int i = 0; i < 4; i++) {
		s->us[i][s->n] = ns[i] / 1e3 / (double)rounds;
		total += s->us[i][s->n];
	}
	s->us[4][s->n++] = total;
}

/* The p50s of s; nothing where no call had a round with misses. */
static void
emit_split(uint64_t tokens, const char *what, struct split *s)
{
	static const char *part[] = {"select", "walk", "copy", "finish", "total"};
	char metric[64];

	if (s->n == 0)
		return;
	for (int i = 0; i < 5; i++) {
		snprintf(metric, sizeof(metric), "miss round %s: %s us p50", what, part[i]);
		emit("gpu", tokens, metric, pct(s->us[i], s->n, 50), "us");
	}
}

/* One of the threads calling the backend at once. */
struct conc {
	struct store *st;
	struct gpu_backend *g;
	const struct hsa_spec *sp;
	struct qset *q;
	pthread_barrier_t *go;
	int id, calls;
	double *t;  /* [calls] latency of each call, us */
	double end; /* when its last call returned */
	int err;
};

static void *
conc_main(void *arg)
{
	struct conc *c = arg;
	struct bsrc bs;
	struct outbuf o;

	out_alloc(&o, c->sp, 1);
	c->err = bsrc_open(c->st, &bs);
	pthread_barrier_wait(c->go);
	for (int i = 0; c->err == 0 && i < c->calls; i++) {
		struct qset *q = &c->q[(c->id + i) % N_SETS];
		c->t[i] = attend_once(c->g, c->sp, &bs.src, q, K_SEL, &o) * 1e6;
	}
	c->end = now_s();
	if (c->err == 0)
		bsrc_close(&bs);
	out_free(&o);
	return NULL;
}

/*
 * n threads, each with a source of its own, start together and make calls calls each on the
 * query sets q (n = 1, k = K_SEL). t gets the n * calls latencies (us), *d the counters' change
 * over the run. Returns calls/s over the wall time from the start to the last call's return.
 */
static double
conc_run(struct store *st, struct gpu_backend *g, const struct hsa_spec *sp, struct qset *q, int n,
         int calls, double *t, struct gpu_cuda_counters *d)
{
	struct conc c[N_THREADS];
	pthread_t th[N_THREADS];
	pthread_barrier_t go;
	struct gpu_cuda_counters c0, c1;

	assert(n >= 1 && n <= N_THREADS);
	pthread_barrier_init(&go, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		c[i] = (struct conc){.st = st,
		                     .g = g,
		                     .sp = sp,
		                     .q = q,
		                     .go = &go,
		                     .id = i,
		                     .calls = calls,
		                     .t = t + (size_t)i * calls};
		pthread_create(&th[i], NULL, conc_main, &c[i]);
	}
	gpu_cuda_counters(g, &c0);
	pthread_barrier_wait(&go);
	double t0 = now_s(), end = t0;
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (c[i].err != 0) {
			fprintf(stderr, "bench_gpu: source: %s\n", hsamem_strerror(c[i].err));
			exit(1);
		}
		end = c[i].end > end ? c[i].end : end;
	}
	gpu_cuda_counters(g, &c1);
	pthread_barrier_destroy(&go);
	memset(d, 0, sizeof(*d));
	ctr_add(d, &c0, &c1);
	return (double)n * calls / (end - t0);
}

/*
 * Evicts the store's data file from the page cache: flushed first, since only clean pages are
 * evicted. The store must be closed: pages mapped into a process are never evicted. Returns 0
 * or -errno of the open or the fadvise; a failed flush only leaves its dirty pages cached.
 */
static int
page_cache_drop(const char *dir)
{
	char path[4096];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	(void)fdatasync(fd);
	rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return -rc;
}

/* Reads the store's data file once, so that what follows finds the page cache warm again. */
static void
page_cache_fill(const char *dir)
{
	static char buf[8 << 20];
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static void
gpu_part(const char *dir, const struct hsa_spec *sp, uint64_t n_chunks)
{
	uint64_t tokens = n_chunks * sp->S;
	size_t kvb = spec_kv_bytes(sp), lb = spec_landmark_bytes(sp);
	struct store_opts so = {.map_size = (uint64_t)((kvb + lb) * n_chunks * 1.6) + (1ull << 30),
	                        .map_max = 1ull << 40};
	const unsigned all =
	        GPU_CUDA_DROP_LANDMARKS | GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS;
	struct store *st = NULL;
	struct bsrc bs;
	struct gpu_cuda_opts go = {.device = 0, .mem_budget = 0, .host_cache = host_cache};
	struct gpu_backend *g = NULL, *cpu = NULL;
	struct qset q1[N_SETS], q32[N_SETS];
	struct outbuf o1, o32;
	struct gpu_cuda_counters c0, c1, d;
	int ct = iters > 200 ? iters : 200;
	double *t = malloc(sizeof(double) * (iters + 64));
	double *tc = malloc(sizeof(double) * N_THREADS * ct);
	int err;

	if ((err = store_open(dir, &so, &st)) != 0 || (err = bsrc_open(st, &bs)) != 0) {
		fprintf(stderr, "bench_gpu: store: %s\n", hsamem_strerror(err));
		exit(1);
	}
	if ((err = gpu_cpu_alloc(0, &cpu)) != 0) {
		fprintf(stderr, "bench_gpu: CPU backend: %s\n", hsamem_strerror(err));
		exit(1);
	}
	go.cpu = cpu;
	if ((err = gpu_cuda_alloc(&go, &g)) != 0) {
		fprintf(stderr, "bench_gpu: CUDA backend: %s\n", hsamem_strerror(err));
		exit(1);
	}
	for (int i = 0; i < N_SETS; i++) {
		qset_make(&q1[i], sp, 1, n_chunks);
		qset_make(&q32[i], sp, 32, n_chunks);
	}
	out_alloc(&o1, sp, 1);
	out_alloc(&o32, sp, 32);

	/* warm up the process: module load, cuBLAS handles, the LMDB map in the page cache */
	for (int i = 0; i < 3; i++)
		attend_once(g, sp, &bs.src, &q1[i], K_SEL, &o1);

	/* landmark load: a k=1 call after dropping everything, less the same call warm */
	int nr = 5;
	for (int i = 0; i < nr; i++) {
		gpu_cuda_drop(g, all);
		double cold = attend_once(g, sp, &bs.src, &q1[0], 1, &o1);
		double warm = attend_once(g, sp, &bs.src, &q1[0], 1, &o1);
		t[i] = (double)n_chunks * lb / (cold - warm) / 1e9;
	}
	emit("gpu", tokens, "landmark load (page cache->HBM)", pct(t, nr, 50), "GB/s");

	/* cold: nothing resident */
	for (int i = 0; i < nr; i++) {
		gpu_cuda_drop(g, all);
		qset_fresh(&q1[1], sp);
		t[i] = attend_once(g, sp, &bs.src, &q1[1], K_SEL, &o1) * 1e6;
	}
	emit("gpu", tokens, "attend n=1 cold (nothing resident) p50", pct(t, nr, 50), "us");

	/* warm */
	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, &bs.src, &q1[i], K_SEL, &o1);
	for (int i = 0; i < iters; i++)
		t[i] = attend_once(g, sp, &bs.src, &q1[i % N_SETS], K_SEL, &o1) * 1e6;
	double warm1 = pct(t, iters, 50);
	emit("gpu", tokens, "attend n=1 warm p50", warm1, "us");
	emit("gpu", tokens, "attend n=1 warm p99", pct(t, iters, 99), "us");
	int it32 = iters / 4 > 20 ? iters / 4 : 20;
	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, &bs.src, &q32[i], K_SEL, &o32);
	for (int i = 0; i < it32; i++)
		t[i] = attend_once(g, sp, &bs.src, &q32[i % N_SETS], K_SEL, &o32) * 1e6;
	double warm32 = pct(t, it32, 50);
	emit("gpu", tokens, "attend n=32 warm p50", warm32, "us");
	emit("gpu", tokens, "attend n=32 warm p99", pct(t, it32, 99), "us");

	/*
	 * concurrency: the warm n=1 cycle from 1 thread, then from N_THREADS at once. max_batch
	 * is a level since the start, but every call before this ran alone, so it is this run's.
	 */
	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, &bs.src, &q1[i], K_SEL, &o1);
	double cps1 = conc_run(st, g, sp, q1, 1, ct, tc, &d);
	emit("gpu", tokens, "attend n=1 warm, 1 thread: calls/s", cps1, "1/s");
	double cps = conc_run(st, g, sp, q1, N_THREADS, ct, tc, &d);
	emit("gpu", tokens, "attend n=1 warm, 16 threads: calls/s", cps, "1/s");
	emit("gpu", tokens, "attend n=1 warm, 16 threads p50", pct(tc, N_THREADS * ct, 50), "us");
	emit("gpu", tokens, "attend n=1 warm, 16 threads p99", pct(tc, N_THREADS * ct, 99), "us");
	emit("gpu", tokens, "calls/s, 16 threads / 1 thread", cps / cps1, "ratio");
	emit("gpu", tokens, "calls per device pass (mean)",
	     ratio0((double)N_THREADS * ct, (double)d.batches), "calls");
	emit("gpu", tokens, "max calls in one pass", (double)d.max_batch, "calls");

	/*
	 * chunks cold, landmarks resident: every selected chunk from LMDB. The rate's bytes are
	 * what the backend paged (bytes_paged): K_SEL chunks a call at n=1 (h_kv = 1, every cache
	 * emptied); fewer if the counter leaves some out, which the note below reports.
	 */
	struct gpu_cuda_counters h0, h1;
	struct split ms = {0};
	int nc = 30;
	assert(nc <= SPLIT_CALLS);
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q1[2], sp);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, &bs.src, &q1[2], K_SEL, &o1) * 1e6;
		gpu_cuda_counters(g, &h1);
		split_add(&ms, &h0, &h1);
	}
	gpu_cuda_counters(g, &c1);
	memset(&d, 0, sizeof(d));
	ctr_add(&d, &c0, &c1);
	double cold1 = pct(t, nc, 50), paged1 = (double)d.bytes_paged / nc;
	if (paged1 < K_SEL * (double)kvb)
		printf("  note: chunks cold n=1 paged %.0f bytes a call, k chunks are %.0f\n",
		       paged1, K_SEL * (double)kvb);
	emit("gpu", tokens, "attend n=1 chunks cold (LMDB) p50", cold1, "us");
	emit("gpu", tokens, "attend n=1 chunks cold (LMDB) p99", pct(t, nc, 99), "us");
	emit("gpu", tokens, "chunk page-in from LMDB", paged1 / (cold1 - warm1) / 1e3, "GB/s");
	emit_split(tokens, "(LMDB)", &ms);
	int nc32 = 10;
	assert(nc32 <= SPLIT_CALLS);
	ms.n = 0;
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc32; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q32[2], sp);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, &bs.src, &q32[2], K_SEL, &o32) * 1e6;
		gpu_cuda_counters(g, &h1);
		split_add(&ms, &h0, &h1);
	}
	gpu_cuda_counters(g, &c1);
	memset(&d, 0, sizeof(d));
	ctr_add(&d, &c0, &c1);
	double cold32 = pct(t, nc32, 50);
	emit("gpu", tokens, "attend n=32 chunks cold (LMDB) p50", cold32, "us");
	emit("gpu", tokens, "chunk page-in from LMDB, n=32",
	     (double)d.bytes_paged / nc32 / (cold32 - warm32) / 1e3, "GB/s");
	emit_split(tokens, "n=32 (LMDB)", &ms);

	/*
	 * the pinned host cache feeding the device: a call from LMDB fills it, the device cache is
	 * emptied, the next call is timed; d counts the timed calls only, c0 .. c1 both
	 */
	memset(&d, 0, sizeof(d));
	ms.n = 0;
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc; i++) {
		qset_fresh(&q1[3], sp);
		attend_once(g, sp, &bs.src, &q1[3], K_SEL, &o1);
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, &bs.src, &q1[3], K_SEL, &o1) * 1e6;
		gpu_cuda_counters(g, &h1);
		ctr_add(&d, &h0, &h1);
		split_add(&ms, &h0, &h1);
	}
	gpu_cuda_counters(g, &c1);
	double hc = pct(t, nc, 50);
	emit("gpu", tokens, "attend n=1 from host cache p50", hc, "us");
	emit("gpu", tokens, "chunk page-in from pinned host cache",
	     (double)d.bytes_paged / nc / (hc - warm1) / 1e3, "GB/s");
	emit("gpu", tokens, "host cache hits / misses paged",
	     (double)(c1.host_hits - c0.host_hits) /
	             (double)(c1.host_hits - c0.host_hits + c1.source_reads - c0.source_reads),
	     "ratio");
	emit_split(tokens, "(host cache)", &ms);
	memset(&d, 0, sizeof(d));
	ms.n = 0;
	for (int i = 0; i < nc32; i++) {
		qset_fresh(&q32[3], sp);
		attend_once(g, sp, &bs.src, &q32[3], K_SEL, &o32);
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, &bs.src, &q32[3], K_SEL, &o32) * 1e6;
		gpu_cuda_counters(g, &h1);
		ctr_add(&d, &h0, &h1);
		split_add(&ms, &h0, &h1);
	}
	double hc32 = pct(t, nc32, 50);
	emit("gpu", tokens, "attend n=32 from host cache p50", hc32, "us");
	emit("gpu", tokens, "chunk page-in from pinned host cache, n=32",
	     (double)d.bytes_paged / nc32 / (hc32 - warm32) / 1e3, "GB/s");
	emit_split(tokens, "n=32 (host cache)", &ms);

	struct gpu_stats gs;
	g->ops->stats(g, &gs);
	emit("gpu", tokens, "device memory used", gs.mem_used / 1e9, "GB");

	/* cold page cache (see the header): the store is closed around the eviction */
	int np = 0;
	for (int i = 0; i < 3; i++) {
		gpu_cuda_drop(g, all);
		bsrc_close(&bs);
		store_close(st);
		st = NULL;
		int perr = page_cache_drop(dir);
		if ((err = store_open(dir, &so, &st)) != 0 || (err = bsrc_open(st, &bs)) != 0) {
			fprintf(stderr, "bench_gpu: store: %s\n", hsamem_strerror(err));
			exit(1);
		}
		if (perr != 0) {
			printf("  attend n=1 cold (page cache dropped) skipped: %s/data.mdb: %s\n",
			       dir, strerror(-perr));
			break;
		}
		qset_fresh(&q1[4], sp);
		t[np++] = attend_once(g, sp, &bs.src, &q1[4], K_SEL, &o1) * 1e6;
	}
	if (np == 3)
		emit("gpu", tokens, "attend n=1 cold (page cache dropped)", pct(t, np, 50), "us");
	if (np > 0)
		page_cache_fill(dir); /* the daemon's figures below are for a warm page cache */

	gpu_free(g);
	gpu_free(cpu);
	bsrc_close(&bs);
	store_close(st);
	for (int i = 0; i < N_SETS; i++) {
		qset_free(&q1[i]);
		qset_free(&q32[i]);
	}
	out_free(&o1);
	out_free(&o32);
	free(t);
	free(tc);
}

/* ---- end to end ---- */

static double
e2e_attend(struct hsamem *c, const char *user, struct qset *q, bool check)
{
	struct hsamem_attend a = {.n = q->n,
	                          .qr = q->qr,
	                          .qr_len = 0,
	                          .qa = q->qa,
	                          .positions = q->pos,
	                          .top_k = K_SEL};
	struct hsa_spec sp = bench_spec();
	a.qr_len = (size_t)q->n * sp.d_r;
	a.qa_len = (size_t)q->n * sp.h_q * sp.d_h;
	struct hsamem_attend_result *r = NULL;
	double t0 = now_s();
	int err = hsamem_attend(c, user, &a, &r);
	double dt = now_s() - t0;
	if (err != 0) {
		fprintf(stderr, "bench_gpu: hsamem_attend: %s (%s)\n", hsamem_strerror(err),
		        hsamem_last_message(c));
		exit(1);
	}
	(void)check;
	hsamem_result_free(r);
	return dt;
}

struct load {
	const char *url;
	struct qset *q;
	atomic_bool *stop;
	uint64_t done;
	bool appender;
	uint64_t n_chunks;
};

static void *
load_main(void *arg)
{
	struct load *l = arg;
	struct hsamem *c = NULL;
	struct hsa_spec sp = bench_spec();

	if (hsamem_open(l->url, &c) != 0)
		return NULL;
	if (l->appender) {
		size_t kvb = spec_kv_bytes(&sp) / 2, lb = spec_landmark_bytes(&sp);
		uint16_t *k = malloc(kvb), *v = malloc(kvb), *lm = malloc(lb);
		uint32_t tok[64];
		fill_kv(sp.dtype, k, kvb / 2);
		fill_kv(sp.dtype, v, kvb / 2);
		fill_f(sp.dtype, lm, sp.d_r, 2.0);
		for (int i = 0; i < 64; i++)
			tok[i] = (uint32_t)i + 1;
		while (!atomic_load(l->stop)) {
			struct hsamem_chunk_in ch = {k, kvb, v, kvb, lm, lb};
			struct hsamem_entry_in e = {.tokens = tok, .n_tokens = sp.S};
			if (hsamem_append(c, "bench", &e, 1, &ch, 1, HSAMEM_APPEND_NO_CREATE,
			                  NULL) != 0)
				break;
			l->done++;
		}
		free(k);
		free(v);
		free(lm);
	} else {
		for (uint64_t i = 0; !atomic_load(l->stop); i++) {
			e2e_attend(c, "bench", &l->q[i % N_SETS], false);
			l->done++;
		}
	}
	hsamem_close(c);
	return NULL;
}

static void
run_load(const char *url, struct qset *q, int n_q, bool appender, double secs, double *qps,
         double *aps)
{
	struct load l[17];
	pthread_t th[17];
	atomic_bool stop = false;
	int n = n_q + (appender ? 1 : 0);

	for (int i = 0; i < n; i++) {
		l[i] = (struct load){.url = url, .q = q, .stop = &stop, .appender = i == n_q};
		pthread_create(&th[i], NULL, load_main, &l[i]);
	}
	double t0 = now_s();
	struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	uint64_t nq = 0, na = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (l[i].appender)
			na += l[i].done;
		else
			nq += l[i].done;
	}
	double dt = now_s() - t0;
	*qps = nq / dt;
	*aps = na / dt;
}

static int
start_daemon(struct harness *h)
{
	static char hc[64];
	snprintf(hc, sizeof(hc), "host-cache=%" PRIu64, host_cache);
	h->extra[0] = "-o";
	h->extra[1] = hc;
	h->extra[2] = "-o";
	h->extra[3] = "workers=16";
	h->extra[4] = NULL;
	int err = harness_start(h);
	if (err != 0) {
		harness_dump_log(h);
		return err;
	}
	return 0;
}

static int
e2e_part(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks)
{
	uint64_t tokens = n_chunks * sp->S;
	struct hsamem *c = NULL;
	struct hsamem_server *srv = NULL;
	struct qset q1[N_SETS], q32[N_SETS];
	double *t = malloc(sizeof(double) * (iters + 64));
	int err;

	if ((err = start_daemon(h)) != 0)
		return err;
	if ((err = hsamem_open(h->url, &c)) != 0 || (err = hsamem_ping(c, &srv)) != 0)
		return err;
	printf("  daemon backend: %s\n", srv->backend);
	const char *req = getenv("HSAMEM_REQUIRE_GPU");
	if (strncmp(srv->backend, "cuda", 4) != 0 && req != NULL && strcmp(req, "1") == 0) {
		fprintf(stderr, "bench_gpu: the daemon is not serving on the GPU\n");
		harness_dump_log(h);
		return 1;
	}
	hsamem_result_free(srv);
	for (int i = 0; i < N_SETS; i++) {
		qset_make(&q1[i], sp, 1, n_chunks);
		qset_make(&q32[i], sp, 32, n_chunks);
	}
	/* cold: the first call after a start */
	t[0] = e2e_attend(c, "bench", &q1[0], true) * 1e6;
	emit("e2e", tokens, "attend n=1 cold (after start)", t[0], "us");

	for (int i = 0; i < iters; i++) {
		double t0 = now_s();
		struct hsamem_server *s = NULL;
		hsamem_ping(c, &s);
		t[i] = (now_s() - t0) * 1e6;
		hsamem_result_free(s);
	}
	double ping = pct(t, iters, 50);
	emit("e2e", tokens, "ping round trip p50", ping, "us");
	for (int i = 0; i < N_SETS; i++)
		e2e_attend(c, "bench", &q1[i], false);
	for (int i = 0; i < iters; i++)
		t[i] = e2e_attend(c, "bench", &q1[i % N_SETS], false) * 1e6;
	emit("e2e", tokens, "attend n=1 warm p50", pct(t, iters, 50), "us");
	emit("e2e", tokens, "attend n=1 warm p99", pct(t, iters, 99), "us");
	int it32 = iters / 4 > 20 ? iters / 4 : 20;
	for (int i = 0; i < N_SETS; i++)
		e2e_attend(c, "bench", &q32[i], false);
	for (int i = 0; i < it32; i++)
		t[i] = e2e_attend(c, "bench", &q32[i % N_SETS], false) * 1e6;
	emit("e2e", tokens, "attend n=32 warm p50", pct(t, it32, 50), "us");
	emit("e2e", tokens, "attend n=32 warm p99", pct(t, it32, 99), "us");
	for (int i = 0; i < 20; i++) {
		qset_fresh(&q1[5], sp);
		t[i] = e2e_attend(c, "bench", &q1[5], false) * 1e6;
	}
	emit("e2e", tokens, "attend n=1 new queries p50", pct(t, 20, 50), "us");

	double qps, aps;
	run_load(h->url, q1, 16, false, 3.0, &qps, &aps);
	emit("e2e", tokens, "queries/s, 16 clients (n=1, warm)", qps, "1/s");
	run_load(h->url, q1, 16, true, 3.0, &qps, &aps);
	emit("e2e", tokens, "queries/s, 16 clients + 1 appender", qps, "1/s");
	emit("e2e", tokens, "appends/s (1 chunk each) meanwhile", aps, "1/s");
	hsamem_close(c);

	/* cold again: restart the daemon (nothing resident, the page cache warm) */
	harness_stop(h, SIGTERM);
	if ((err = start_daemon(h)) != 0)
		return err;
	hsamem_open(h->url, &c);
	t[0] = e2e_attend(c, "bench", &q1[7], false) * 1e6;
	emit("e2e", tokens, "attend n=1 cold (after restart)", t[0], "us");
	hsamem_close(c);
	harness_stop(h, SIGTERM);
	for (int i = 0; i < N_SETS; i++) {
		qset_free(&q1[i]);
		qset_free(&q32[i]);
	}
	free(t);
	return 0;
}

/* The daemon's own append rate for client chunks, 32 chunks (1 MiB for the client spec)
 * a request. */
static int
append_rate(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks)
{
	struct hsamem *c = NULL;
	struct hsamem_spec hs = {.encoder = "client",
	                         .chunk_size = sp->S,
	                         .h_kv = sp->h_kv,
	                         .d_h = sp->d_h,
	                         .h_q = sp->h_q,
	                         .d_r = sp->d_r,
	                         .dtype = HSAMEM_F16,
	                         .weighting = HSAMEM_SOFTMAX,
	                         .top_k = K_SEL};
	size_t half = spec_kv_bytes(sp) / 2, lb = spec_landmark_bytes(sp);
	uint16_t *k = malloc(32 * half), *v = malloc(32 * half), *lm = malloc(32 * lb);
	uint32_t *tok = malloc(32 * sp->S * 4);
	int err;

	if ((err = start_daemon(h)) != 0)
		return err;
	hsamem_open(h->url, &c);
	if ((err = hsamem_create(c, "fill", &hs, NULL)) != 0)
		return err;
	fill_kv(sp->dtype, k, 32 * half / 2);
	fill_kv(sp->dtype, v, 32 * half / 2);
	fill_f(sp->dtype, lm, 32 * sp->d_r, 2.0);
	for (uint32_t i = 0; i < 32 * sp->S; i++)
		tok[i] = i + 1;
	struct hsamem_chunk_in ch[32];
	for (int i = 0; i < 32; i++)
		ch[i] = (struct hsamem_chunk_in){(char *)k + i * half, half,
		                                 (char *)v + i * half, half,
		                                 (char *)lm + i * lb,  lb};
	double t0 = now_s();
	for (uint64_t j = 0; j < n_chunks; j += 32) {
		struct hsamem_entry_in e = {.tokens = tok, .n_tokens = 32 * sp->S};
		if ((err = hsamem_append(c, "fill", &e, 1, ch, 32, HSAMEM_APPEND_NO_CREATE, NULL)))
			return err;
	}
	double dt = now_s() - t0;
	emit("e2e", n_chunks * sp->S, "daemon append rate (32 chunks/req)",
	     n_chunks * (2 * half + lb) / dt / 1e9, "GB/s");
	emit("e2e", n_chunks * sp->S, "daemon append, 16M tokens would take",
	     262144.0 / n_chunks * dt, "s");
	hsamem_close(c);
	harness_stop(h, SIGTERM);
	free(k);
	free(v);
	free(lm);
	free(tok);
	return 0;
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
