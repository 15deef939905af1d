/*
 * bench_gpu_backend.c: bench_gpu's GPU part (the measures are listed in bench_gpu.c): the CUDA
 * backend called directly on a source over a read transaction of the store, one function per
 * phase, run in the order of the table by gpu_part.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bench_gpu.h"
#include "cuda_backend.h"
#include "hsamem.h"
#include "store.h"

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
/* ---- the phases of the GPU part ---- */

#define DROP_ALL (GPU_CUDA_DROP_LANDMARKS | GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS)

/* Calls timed at n=1 and at n=32 with the chunks cold, and again from the host cache. */
#define PAGE_IN_CALLS_1  30
#define PAGE_IN_CALLS_32 10

/*
 * What the phases share: the store and a source over it, the backends, the query sets and outputs
 * at n=1 and n=32, the latency buffers, and the warm p50s that the page-in rates subtract.
 */
struct gpart {
	const char *dir;
	const struct hsa_spec *sp;
	uint64_t n_chunks, tokens;
	size_t kvb, lb;
	struct store_opts so;
	struct store *st;
	struct bsrc bs;
	struct gpu_backend *g, *cpu;
	struct qset q1[N_SETS], q32[N_SETS];
	struct outbuf o1, o32;
	int ct;               /* calls per thread in the concurrency phase */
	double *t;            /* [iters + 64] latencies or rates of one phase */
	double *tc;           /* [N_THREADS * ct] latencies of the concurrent calls */
	double warm1, warm32; /* us */
};

/* Opens the store, a source over it and both backends; makes the query sets. Exits on failure. */
static void
gp_open(struct gpart *gp, const char *dir, const struct hsa_spec *sp, uint64_t n_chunks)
{
	struct gpu_cuda_opts go = {.device = 0, .mem_budget = 0, .host_cache = host_cache};
	int err;

	memset(gp, 0, sizeof(*gp));
	gp->dir = dir;
	gp->sp = sp;
	gp->n_chunks = n_chunks;
	gp->tokens = n_chunks * sp->S;
	gp->kvb = spec_kv_bytes(sp);
	gp->lb = spec_landmark_bytes(sp);
	gp->so = (struct store_opts){.map_size = (uint64_t)((gp->kvb + gp->lb) * n_chunks * 1.6) +
	                                         (1ull << 30),
	                             .map_max = 1ull << 40};
	gp->ct = iters > 200 ? iters : 200;
	gp->t = malloc(sizeof(double) * (iters + 64));
	gp->tc = malloc(sizeof(double) * N_THREADS * gp->ct);
	if ((err = store_open(dir, &gp->so, &gp->st)) != 0 ||
	    (err = bsrc_open(gp->st, &gp->bs)) != 0) {
		fprintf(stderr, "bench_gpu: store: %s\n", hsamem_strerror(err));
		exit(1);
	}
	if ((err = gpu_cpu_alloc(0, &gp->cpu)) != 0) {
		fprintf(stderr, "bench_gpu: CPU backend: %s\n", hsamem_strerror(err));
		exit(1);
	}
	go.cpu = gp->cpu;
	if ((err = gpu_cuda_alloc(&go, &gp->g)) != 0) {
		fprintf(stderr, "bench_gpu: CUDA backend: %s\n", hsamem_strerror(err));
		exit(1);
	}
	for (int i = 0; i < N_SETS; i++) {
		qset_make(&gp->q1[i], sp, 1, n_chunks);
		qset_make(&gp->q32[i], sp, 32, n_chunks);
	}
	out_alloc(&gp->o1, sp, 1);
	out_alloc(&gp->o32, sp, 32);
}

static void
gp_close(struct gpart *gp)
{
	gpu_free(gp->g);
	gpu_free(gp->cpu);
	bsrc_close(&gp->bs);
	store_close(gp->st);
	for (int i = 0; i < N_SETS; i++) {
		qset_free(&gp->q1[i]);
		qset_free(&gp->q32[i]);
	}
	out_free(&gp->o1);
	out_free(&gp->o32);
	free(gp->t);
	free(gp->tc);
}

/*
 * Warms up the process (module load, cuBLAS handles, the LMDB map in the page cache); then the
 * landmark load (a k=1 call after dropping everything, less the same call warm) and the cold
 * call (nothing resident).
 */
static void
gp_cold(struct gpart *gp)
{
	const struct hsa_spec *sp = gp->sp;
	struct gpu_backend *g = gp->g;
	struct hsa_source *src = &gp->bs.src;
	struct qset *q1 = gp->q1;
	double *t = gp->t;
	int nr = 5;

	for (int i = 0; i < 3; i++)
		attend_once(g, sp, src, &q1[i], K_SEL, &gp->o1);

	for (int i = 0; i < nr; i++) {
		gpu_cuda_drop(g, DROP_ALL);
		double cold = attend_once(g, sp, src, &q1[0], 1, &gp->o1);
		double warm = attend_once(g, sp, src, &q1[0], 1, &gp->o1);
		t[i] = (double)gp->n_chunks * gp->lb / (cold - warm) / 1e9;
	}
	emit("gpu", gp->tokens, "landmark load (page cache->HBM)", pct(t, nr, 50), "GB/s");

	for (int i = 0; i < nr; i++) {
		gpu_cuda_drop(g, DROP_ALL);
		qset_fresh(&q1[1], sp);
		t[i] = attend_once(g, sp, src, &q1[1], K_SEL, &gp->o1) * 1e6;
	}
	emit("gpu", gp->tokens, "attend n=1 cold (nothing resident) p50", pct(t, nr, 50), "us");
}

/* Warm calls at n=1 and n=32, their chunks cached: sets warm1 and warm32. */
static void
gp_warm(struct gpart *gp)
{
	const struct hsa_spec *sp = gp->sp;
	struct gpu_backend *g = gp->g;
	struct hsa_source *src = &gp->bs.src;
	struct qset *q1 = gp->q1, *q32 = gp->q32;
	double *t = gp->t;

	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, src, &q1[i], K_SEL, &gp->o1);
	for (int i = 0; i < iters; i++)
		t[i] = attend_once(g, sp, src, &q1[i % N_SETS], K_SEL, &gp->o1) * 1e6;
	gp->warm1 = pct(t, iters, 50);
	emit("gpu", gp->tokens, "attend n=1 warm p50", gp->warm1, "us");
	emit("gpu", gp->tokens, "attend n=1 warm p99", pct(t, iters, 99), "us");
	int it32 = iters / 4 > 20 ? iters / 4 : 20;
	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, src, &q32[i], K_SEL, &gp->o32);
	for (int i = 0; i < it32; i++)
		t[i] = attend_once(g, sp, src, &q32[i % N_SETS], K_SEL, &gp->o32) * 1e6;
	gp->warm32 = pct(t, it32, 50);
	emit("gpu", gp->tokens, "attend n=32 warm p50", gp->warm32, "us");
	emit("gpu", gp->tokens, "attend n=32 warm p99", pct(t, it32, 99), "us");
}

/*
 * Concurrency: the warm n=1 cycle from 1 thread, then from N_THREADS at once. max_batch is a
 * level since the start, but every call before this ran alone, so it is this run's.
 */
static void
gp_concurrency(struct gpart *gp)
{
	const struct hsa_spec *sp = gp->sp;
	struct gpu_backend *g = gp->g;
	struct qset *q1 = gp->q1;
	uint64_t tokens = gp->tokens;
	int ct = gp->ct;
	double *tc = gp->tc;
	struct gpu_cuda_counters d;

	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, &gp->bs.src, &q1[i], K_SEL, &gp->o1);
	double cps1 = conc_run(gp->st, g, sp, q1, 1, ct, tc, &d);
	emit("gpu", tokens, "attend n=1 warm, 1 thread: calls/s", cps1, "1/s");
	double cps = conc_run(gp->st, g, sp, q1, N_THREADS, ct, tc, &d);
	emit("gpu", tokens, "attend n=1 warm, 16 threads: calls/s", cps, "1/s");
	emit("gpu", tokens, "attend n=1 warm, 16 threads p50", pct(tc, N_THREADS * ct, 50), "us");
	emit("gpu", tokens, "attend n=1 warm, 16 threads p99", pct(tc, N_THREADS * ct, 99), "us");
	emit("gpu", tokens, "calls/s, 16 threads / 1 thread", cps / cps1, "ratio");
	emit("gpu", tokens, "calls per device pass (mean)",
	     ratio0((double)N_THREADS * ct, (double)d.batches), "calls");
	emit("gpu", tokens, "max calls in one pass", (double)d.max_batch, "calls");
}

/*
 * Chunks cold, landmarks resident: every selected chunk from LMDB. The rate's bytes are what the
 * backend paged (bytes_paged): K_SEL chunks a call at n=1 (h_kv = 1, every cache emptied); fewer
 * if the counter leaves some out, which the note below reports.
 */
static void
gp_chunks_cold(struct gpart *gp)
{
	const struct hsa_spec *sp = gp->sp;
	struct gpu_backend *g = gp->g;
	struct hsa_source *src = &gp->bs.src;
	struct qset *q1 = gp->q1, *q32 = gp->q32;
	uint64_t tokens = gp->tokens;
	double *t = gp->t, warm1 = gp->warm1, warm32 = gp->warm32;
	struct gpu_cuda_counters c0, c1, d, h0, h1;
	struct split ms = {0};
	int nc = PAGE_IN_CALLS_1;

	assert(nc <= SPLIT_CALLS);
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q1[2], sp);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, src, &q1[2], K_SEL, &gp->o1) * 1e6;
		gpu_cuda_counters(g, &h1);
		split_add(&ms, &h0, &h1);
	}
	gpu_cuda_counters(g, &c1);
	memset(&d, 0, sizeof(d));
	ctr_add(&d, &c0, &c1);
	double cold1 = pct(t, nc, 50), paged1 = (double)d.bytes_paged / nc;
	if (paged1 < K_SEL * (double)gp->kvb)
		printf("  note: chunks cold n=1 paged %.0f bytes a call, k chunks are %.0f\n",
		       paged1, K_SEL * (double)gp->kvb);
	emit("gpu", tokens, "attend n=1 chunks cold (LMDB) p50", cold1, "us");
	emit("gpu", tokens, "attend n=1 chunks cold (LMDB) p99", pct(t, nc, 99), "us");
	emit("gpu", tokens, "chunk page-in from LMDB", paged1 / (cold1 - warm1) / 1e3, "GB/s");
	emit_split(tokens, "(LMDB)", &ms);
	int nc32 = PAGE_IN_CALLS_32;
	assert(nc32 <= SPLIT_CALLS);
	ms.n = 0;
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc32; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q32[2], sp);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, src, &q32[2], K_SEL, &gp->o32) * 1e6;
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
}

/*
 * The pinned host cache feeding the device: a call from LMDB fills it, the device cache is
 * emptied, the next call is timed; d counts the timed calls only, c0 .. c1 both.
 */
static void
gp_host_cache(struct gpart *gp)
{
	const struct hsa_spec *sp = gp->sp;
	struct gpu_backend *g = gp->g;
	struct hsa_source *src = &gp->bs.src;
	struct qset *q1 = gp->q1, *q32 = gp->q32;
	uint64_t tokens = gp->tokens;
	double *t = gp->t, warm1 = gp->warm1, warm32 = gp->warm32;
	struct gpu_cuda_counters c0, c1, d, h0, h1;
	struct split ms = {0};
	int nc = PAGE_IN_CALLS_1, nc32 = PAGE_IN_CALLS_32;

	memset(&d, 0, sizeof(d));
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc; i++) {
		qset_fresh(&q1[3], sp);
		attend_once(g, sp, src, &q1[3], K_SEL, &gp->o1);
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, src, &q1[3], K_SEL, &gp->o1) * 1e6;
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
		attend_once(g, sp, src, &q32[3], K_SEL, &gp->o32);
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
		gpu_cuda_counters(g, &h0);
		t[i] = attend_once(g, sp, src, &q32[3], K_SEL, &gp->o32) * 1e6;
		gpu_cuda_counters(g, &h1);
		ctr_add(&d, &h0, &h1);
		split_add(&ms, &h0, &h1);
	}
	double hc32 = pct(t, nc32, 50);
	emit("gpu", tokens, "attend n=32 from host cache p50", hc32, "us");
	emit("gpu", tokens, "chunk page-in from pinned host cache, n=32",
	     (double)d.bytes_paged / nc32 / (hc32 - warm32) / 1e3, "GB/s");
	emit_split(tokens, "n=32 (host cache)", &ms);
}

/*
 * A cold page cache (see bench_gpu.c's header): the store is closed around the eviction and
 * opened again, so the source is too. The file is read afterwards: the daemon's figures are for
 * a warm page cache.
 */
static void
gp_page_cache(struct gpart *gp)
{
	double *t = gp->t;
	int np = 0, err;

	for (int i = 0; i < 3; i++) {
		gpu_cuda_drop(gp->g, DROP_ALL);
		bsrc_close(&gp->bs);
		store_close(gp->st);
		gp->st = NULL;
		int perr = page_cache_drop(gp->dir);
		if ((err = store_open(gp->dir, &gp->so, &gp->st)) != 0 ||
		    (err = bsrc_open(gp->st, &gp->bs)) != 0) {
			fprintf(stderr, "bench_gpu: store: %s\n", hsamem_strerror(err));
			exit(1);
		}
		if (perr != 0) {
			printf("  attend n=1 cold (page cache dropped) skipped: %s/data.mdb: %s\n",
			       gp->dir, strerror(-perr));
			break;
		}
		qset_fresh(&gp->q1[4], gp->sp);
		t[np++] = attend_once(gp->g, gp->sp, &gp->bs.src, &gp->q1[4], K_SEL, &gp->o1) * 1e6;
	}
	if (np == 3)
		emit("gpu", gp->tokens, "attend n=1 cold (page cache dropped)", pct(t, np, 50),
		     "us");
	if (np > 0)
		page_cache_fill(gp->dir);
}

void
gpu_part(const char *dir, const struct hsa_spec *sp, uint64_t n_chunks)
{
	struct gpart gp;
	struct gpu_stats gs;

	gp_open(&gp, dir, sp, n_chunks);
	gp_cold(&gp);
	gp_warm(&gp);
	gp_concurrency(&gp);
	gp_chunks_cold(&gp);
	gp_host_cache(&gp);
	gp.g->ops->stats(gp.g, &gs);
	emit("gpu", gp.tokens, "device memory used", gs.mem_used / 1e9, "GB");
	gp_page_cache(&gp);
	gp_close(&gp);
}
