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
 *     chunks cold landmarks resident, device and host chunk caches emptied before each call
 *     host cache  device chunk cache emptied, the pinned host cache holding the chunks
 *   end to end over ipc (hsamemd started on that store, libhsamem):
 *     ping, attend warm n=1 and n=32, attend cold (first call after a restart), queries/s with 16
 *     clients, appends/s of one appender while 16 clients query, and the daemon's append rate.
 *
 * Usage: bench_gpu [--spec client|lexical] [--tokens N[,N...]] [--iters N] [--no-e2e]
 *                  [--json FILE] [--host-cache BYTES]
 * Exit 77 without a CUDA device (1 with HSAMEM_REQUIRE_GPU=1).
 */
#include "config.h"

#include <errno.h>
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

#include "backend.h"
#include "cuda_backend.h"
#include "half.h"
#include "harness.h"
#include "hsamem.h"
#include "store.h"

#define K_SEL 64
#define N_SETS 16

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
	printf("  %-6s %-8s %9" PRIu64 "  %-34s %12.3f %s\n", spec_name, part, tokens, metric, value,
	       unit);
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
	struct hsa_spec s = {.S = 64, .h_kv = 1, .d_h = 128, .h_q = 16, .d_r = 128,
	                     .dtype = HSA_F16, .weighting = HSA_SOFTMAX, .top_k = K_SEL};
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
	                       .map_max = 1ull << 40, .no_sync = true};
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

struct bsrc {
	struct store_txn txn;
	struct store_user u;
	size_t kvb;
};

static int
bs_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct bsrc *s = ctx;
	return store_landmarks_get(&s->txn, &s->u, first, rows, count);
}

static int
bs_kv(void *ctx, uint64_t j, const void **kv)
{
	struct bsrc *s = ctx;
	size_t len = 0;
	int err = store_kv_get(&s->txn, s->u.uid, j, kv, &len);
	return err == 0 && len != s->kvb ? HSAMEM_EFORMAT : err;
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

static void
gpu_part(const char *dir, const struct hsa_spec *sp, uint64_t n_chunks)
{
	uint64_t tokens = n_chunks * sp->S;
	size_t kvb = spec_kv_bytes(sp), lb = spec_landmark_bytes(sp);
	struct store_opts so = {.map_size = (uint64_t)((kvb + lb) * n_chunks * 1.6) + (1ull << 30),
	                        .map_max = 1ull << 40};
	struct store *st = NULL;
	struct bsrc bs = {.kvb = kvb};
	struct gpu_cuda_opts go = {.device = 0, .mem_budget = 0, .host_cache = host_cache};
	struct gpu_backend *g = NULL;
	struct qset q1[N_SETS], q32[N_SETS];
	struct outbuf o1, o32;
	double *t = malloc(sizeof(double) * (iters + 64));
	int err;

	if ((err = store_open(dir, &so, &st)) != 0 ||
	    (err = store_txn_begin(st, &bs.txn, false, NULL)) != 0 ||
	    (err = store_user_get(&bs.txn, "bench", &bs.u)) != 0) {
		fprintf(stderr, "bench_gpu: store: %s\n", hsamem_strerror(err));
		exit(1);
	}
	if ((err = gpu_cuda_alloc(&go, &g)) != 0) {
		fprintf(stderr, "bench_gpu: CUDA backend: %s\n", hsamem_strerror(err));
		exit(1);
	}
	struct hsa_source src = {.ctx = &bs, .uid = bs.u.uid, .n_chunks = bs.u.n_chunks,
	                         .landmarks = bs_landmarks, .chunk_kv = bs_kv};
	for (int i = 0; i < N_SETS; i++) {
		qset_make(&q1[i], sp, 1, n_chunks);
		qset_make(&q32[i], sp, 32, n_chunks);
	}
	out_alloc(&o1, sp, 1);
	out_alloc(&o32, sp, 32);

	/* warm up the process: module load, cuBLAS handles, the LMDB map in the page cache */
	for (int i = 0; i < 3; i++)
		attend_once(g, sp, &src, &q1[i], K_SEL, &o1);

	/* landmark load: a k=1 call after dropping everything, less the same call warm */
	int nr = 5;
	for (int i = 0; i < nr; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_LANDMARKS | GPU_CUDA_DROP_DEVICE_CHUNKS |
		                         GPU_CUDA_DROP_HOST_CHUNKS);
		double cold = attend_once(g, sp, &src, &q1[0], 1, &o1);
		double warm = attend_once(g, sp, &src, &q1[0], 1, &o1);
		t[i] = (double)n_chunks * lb / (cold - warm) / 1e9;
	}
	emit("gpu", tokens, "landmark load (page cache->HBM)", pct(t, nr, 50), "GB/s");

	/* cold: nothing resident */
	for (int i = 0; i < nr; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_LANDMARKS | GPU_CUDA_DROP_DEVICE_CHUNKS |
		                         GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q1[1], sp);
		t[i] = attend_once(g, sp, &src, &q1[1], K_SEL, &o1) * 1e6;
	}
	emit("gpu", tokens, "attend n=1 cold (nothing resident) p50", pct(t, nr, 50), "us");

	/* warm */
	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, &src, &q1[i], K_SEL, &o1);
	for (int i = 0; i < iters; i++)
		t[i] = attend_once(g, sp, &src, &q1[i % N_SETS], K_SEL, &o1) * 1e6;
	double warm1 = pct(t, iters, 50);
	emit("gpu", tokens, "attend n=1 warm p50", warm1, "us");
	emit("gpu", tokens, "attend n=1 warm p99", pct(t, iters, 99), "us");
	int it32 = iters / 4 > 20 ? iters / 4 : 20;
	for (int i = 0; i < N_SETS; i++)
		attend_once(g, sp, &src, &q32[i], K_SEL, &o32);
	for (int i = 0; i < it32; i++)
		t[i] = attend_once(g, sp, &src, &q32[i % N_SETS], K_SEL, &o32) * 1e6;
	double warm32 = pct(t, it32, 50);
	emit("gpu", tokens, "attend n=32 warm p50", warm32, "us");
	emit("gpu", tokens, "attend n=32 warm p99", pct(t, it32, 99), "us");

	/* chunks cold, landmarks resident: every selected chunk from LMDB */
	int nc = 30;
	for (int i = 0; i < nc; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q1[2], sp);
		t[i] = attend_once(g, sp, &src, &q1[2], K_SEL, &o1) * 1e6;
	}
	double cold1 = pct(t, nc, 50);
	emit("gpu", tokens, "attend n=1 chunks cold (LMDB) p50", cold1, "us");
	emit("gpu", tokens, "attend n=1 chunks cold (LMDB) p99", pct(t, nc, 99), "us");
	emit("gpu", tokens, "chunk page-in from LMDB", K_SEL * (double)kvb / (cold1 - warm1) / 1e3,
	     "GB/s");
	for (int i = 0; i < 10; i++) {
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
		qset_fresh(&q32[2], sp);
		t[i] = attend_once(g, sp, &src, &q32[2], K_SEL, &o32) * 1e6;
	}
	emit("gpu", tokens, "attend n=32 chunks cold (LMDB) p50", pct(t, 10, 50), "us");

	/* the pinned host cache feeding the device */
	struct gpu_cuda_counters c0, c1;
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < nc; i++) {
		qset_fresh(&q1[3], sp);
		attend_once(g, sp, &src, &q1[3], K_SEL, &o1);
		gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
		t[i] = attend_once(g, sp, &src, &q1[3], K_SEL, &o1) * 1e6;
	}
	gpu_cuda_counters(g, &c1);
	double hc = pct(t, nc, 50);
	emit("gpu", tokens, "attend n=1 from host cache p50", hc, "us");
	emit("gpu", tokens, "chunk page-in from pinned host cache",
	     K_SEL * (double)kvb / (hc - warm1) / 1e3, "GB/s");
	emit("gpu", tokens, "host cache hits / misses paged",
	     (double)(c1.host_hits - c0.host_hits) /
	             (double)(c1.host_hits - c0.host_hits + c1.source_reads - c0.source_reads),
	     "ratio");

	struct gpu_stats gs;
	g->ops->stats(g, &gs);
	emit("gpu", tokens, "device memory used", gs.mem_used / 1e9, "GB");
	gpu_free(g);
	store_txn_abort(&bs.txn);
	store_close(st);
	for (int i = 0; i < N_SETS; i++) {
		free(q1[i].qr);
		free(q1[i].qa);
		free(q1[i].pos);
		free(q32[i].qr);
		free(q32[i].qa);
		free(q32[i].pos);
	}
	free(o1.r.out);
	free(o1.r.sel);
	free(o1.r.score);
	free(o1.r.weight);
	free(o32.r.out);
	free(o32.r.sel);
	free(o32.r.score);
	free(o32.r.weight);
	free(t);
}

/* ---- end to end ---- */

static double
e2e_attend(struct hsamem *c, const char *user, struct qset *q, bool check)
{
	struct hsamem_attend a = {.n = q->n, .qr = q->qr, .qr_len = 0, .qa = q->qa,
	                          .positions = q->pos, .top_k = K_SEL};
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
			if (hsamem_append(c, "bench", &e, 1, &ch, 1, HSAMEM_APPEND_NO_CREATE, NULL) != 0)
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
		free(q1[i].qr);
		free(q1[i].qa);
		free(q1[i].pos);
		free(q32[i].qr);
		free(q32[i].qa);
		free(q32[i].pos);
	}
	free(t);
	return 0;
}

/* The daemon's own append rate for client chunks, 32 chunks (1 MiB for the client spec) a request. */
static int
append_rate(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks)
{
	struct hsamem *c = NULL;
	struct hsamem_spec hs = {.encoder = "client", .chunk_size = sp->S, .h_kv = sp->h_kv,
	                         .d_h = sp->d_h, .h_q = sp->h_q, .d_r = sp->d_r,
	                         .dtype = HSAMEM_F16, .weighting = HSAMEM_SOFTMAX, .top_k = K_SEL};
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
		ch[i] = (struct hsamem_chunk_in){(char *)k + i * half, half, (char *)v + i * half,
		                                 half, (char *)lm + i * lb, lb};
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
	static const struct option opts[] = {
	        {"spec", required_argument, NULL, 's'},  {"tokens", required_argument, NULL, 't'},
	        {"iters", required_argument, NULL, 'i'}, {"json", required_argument, NULL, 'j'},
	        {"no-e2e", no_argument, NULL, 'n'},      {"host-cache", required_argument, NULL, 'c'},
	        {"append", required_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
	char *tokens = strdup("1048576,4194304,16777216");
	bool e2e = true;
	uint64_t append_chunks = 4096;
	char desc[256];
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': spec_name = optarg; break;
		case 't': free(tokens); tokens = strdup(optarg); break;
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
