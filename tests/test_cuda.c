/*
 * test_cuda.c: the CUDA backend against the CPU backend (the oracle), on random memories held in
 * host memory behind a source of this file: many shapes, f16 and bf16, both weightings,
 * off-by-one; k larger than the visible chunks, tokens that see no chunk, ties, extreme and NaN
 * scores, more query tokens than one round; a chunk cache smaller than k, a device budget that
 * forces landmark eviction across users, a memory that grows between calls, forget(), the pinned
 * host cache (read in place by the device, then copied to it), both caches churning, concurrent
 * callers, calls batched together (shapes, k and probabilities mixed, one
 * caller's source failing), a source ending with the unsealed tail that is then sealed under the
 * same index, a filter's chunk mask, bad arguments, and an f32 memory (served by the fallback).
 *
 * Selections must match exactly except where two chunks' scores agree to within rounding (a
 * near tie, counted and allowed; that token's outputs are then not compared). Scores, weights,
 * outputs and attention probabilities must agree to 1e-4 (relative for large scores).
 *
 * Without a usable device the test is skipped (exit 77); with HSAMEM_REQUIRE_GPU=1 that is a
 * failure.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_backend.h"
#include "half.h"
#include "hsamem.h"
#include "test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double
uniform(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* ---- a memory in host memory, and its source ---- */

struct mem {
	struct hsa_spec spec;
	uint64_t uid, n_chunks, cap, page;
	uint64_t fail_kv;   /* non-zero: reading the K/V of chunks from this one on fails */
	uint32_t tail_keys; /* non-zero: the last chunk is the unsealed tail, of this many keys */
	size_t row, kvb;
	char *lmk, *kv;
};

static int
src_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct mem *m = ctx;
	if (first >= m->n_chunks)
		return HSAMEM_EINVAL;
	uint64_t end = (first / m->page + 1) * m->page;
	if (end > m->n_chunks)
		end = m->n_chunks;
	*rows = m->lmk + first * m->row;
	*count = end - first;
	return 0;
}

static int
src_kv(void *ctx, uint64_t j, const void **kv)
{
	struct mem *m = ctx;
	if (j >= m->n_chunks)
		return HSAMEM_EINVAL;
	if (m->fail_kv != 0 && j >= m->fail_kv)
		return HSAMEM_ESTORE;
	*kv = m->kv + j * m->kvb;
	return 0;
}

static int
src_copy_kv(void *ctx, uint64_t j, void *dst)
{
	struct mem *m = ctx;
	const void *kv;
	int err = src_kv(ctx, j, &kv);

	if (err == 0)
		memcpy(dst, kv, m->kvb);
	return err;
}

/* Memories of odd uid offer copy_kv too: the backend then reads them in parallel. */
static struct hsa_source
mem_source(struct mem *m)
{
	return (struct hsa_source){.ctx = m,
	                           .uid = m->uid,
	                           .n_chunks = m->n_chunks,
	                           .tail_keys = m->tail_keys,
	                           .landmarks = src_landmarks,
	                           .chunk_kv = src_kv,
	                           .copy_kv = m->uid % 2 == 1 ? src_copy_kv : NULL};
}

static void
fill(enum hsa_dtype t, void *dst, size_t n, double scale)
{
	float buf[1024];
	size_t esz = spec_elem_size(t);
	for (size_t i = 0; i < n; i += 1024) {
		size_t m = n - i < 1024 ? n - i : 1024;
		for (size_t x = 0; x < m; x++)
			buf[x] = (float)(uniform() * scale);
		half_from_float_row(t, buf, (char *)dst + i * esz, m);
	}
}

/* Adds chunks up to n (cap chunks are allocated at first). */
static void
mem_grow(struct mem *m, uint64_t n)
{
	fill(m->spec.dtype, m->lmk + m->n_chunks * m->row, (n - m->n_chunks) * m->spec.d_r, 2.0);
	fill(m->spec.dtype, m->kv + m->n_chunks * m->kvb,
	     (n - m->n_chunks) * m->kvb / spec_elem_size(m->spec.dtype), 1.0);
	m->n_chunks = n;
}

static void
mem_init(struct mem *m, const struct hsa_spec *spec, uint64_t uid, uint64_t n, uint64_t cap)
{
	memset(m, 0, sizeof(*m));
	m->spec = *spec;
	m->uid = uid;
	m->cap = cap > n ? cap : n;
	m->page = 37; /* odd pages: runs end at awkward places */
	m->row = spec_landmark_bytes(spec);
	m->kvb = spec_kv_bytes(spec);
	m->lmk = malloc(m->cap * m->row + 1);
	m->kv = malloc(m->cap * m->kvb + 1);
	if (m->lmk == NULL || m->kv == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	mem_grow(m, n);
}

static void
mem_fini(struct mem *m)
{
	free(m->lmk);
	free(m->kv);
}

static struct hsa_spec
mkspec(uint32_t S, uint32_t h_kv, uint32_t d_h, uint32_t h_q, uint32_t d_r, enum hsa_dtype t,
       enum hsa_weighting w, bool obo)
{
	struct hsa_spec s = {.S = S,
	                     .h_kv = h_kv,
	                     .d_h = d_h,
	                     .h_q = h_q,
	                     .d_r = d_r,
	                     .dtype = t,
	                     .weighting = w,
	                     .off_by_one = obo,
	                     .top_k = 8};
	strcpy(s.encoder, "client");
	return s;
}

/* ---- one comparison ---- */

struct result {
	float *out, *score, *weight, *attn;
	int64_t *sel;
};

static void
result_alloc(struct result *r, const struct hsa_spec *sp, uint32_t n, uint32_t k, bool attn)
{
	size_t ns = (size_t)n * sp->h_kv * k, no = (size_t)n * sp->h_q * sp->d_h;
	r->out = malloc(no * 4);
	r->score = malloc(ns * 4);
	r->weight = malloc(ns * 4);
	r->sel = malloc(ns * 8);
	r->attn = attn ? malloc((size_t)n * sp->h_q * k * sp->S * 4) : NULL;
	/* poison: every element must be written */
	memset(r->out, 0xff, no * 4);
	memset(r->score, 0xff, ns * 4);
	memset(r->weight, 0xff, ns * 4);
	memset(r->sel, 0x5a, ns * 8);
	if (attn)
		memset(r->attn, 0xff, (size_t)n * sp->h_q * k * sp->S * 4);
}

static void
result_free(struct result *r)
{
	free(r->out);
	free(r->score);
	free(r->weight);
	free(r->sel);
	free(r->attn);
}

static struct hsa_result
as_hsa(struct result *r)
{
	return (struct hsa_result){r->out, r->sel, r->score, r->weight, r->attn};
}

static struct gpu_backend *cpu_b;
static int near_ties;
static uint64_t fixed_seed; /* non-zero: compare() draws the same queries every time */
static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER; /* the draws and the checks */
static pthread_barrier_t *gpu_gate;     /* set: compare() waits there before its GPU call */
static const uint64_t *cmp_mask;        /* set: compare()'s calls carry this chunk mask */
static _Thread_local bool cmp_sel_only; /* set: this thread's device calls ask for the selection
                                         * only (backend.h), from a source without K/V */

static bool
close_to(double a, double b, double tol)
{
	if (isnan(a) || isnan(b))
		return isnan(a) && isnan(b);
	if (isinf(a) || isinf(b))
		return a == b;
	return fabs(a - b) <= tol * (1.0 + fabs(b));
}

/*
 * Runs the query on both backends and compares. pos == NULL: random positions, some seeing
 * nothing and some past the end. Returns the number of failed checks.
 */
static int
compare(struct gpu_backend *gpu, struct mem *m, uint32_t n, uint32_t k, const uint64_t *pos_in,
        bool attn, const char *what)
{
	const struct hsa_spec *sp = &m->spec;
	uint32_t S = sp->S, G = sp->h_q / sp->h_kv;
	uint64_t *pos = malloc(n * sizeof(uint64_t));
	float *qr = malloc((size_t)n * sp->d_r * 4),
	      *qa = malloc((size_t)n * sp->h_q * sp->d_h * 4);
	struct result a, b;
	int bad_sel = 0, bad_score = 0, bad_w = 0, bad_out = 0, bad_attn = 0;

	pthread_mutex_lock(&tmu);
	if (fixed_seed != 0)
		rng_state = fixed_seed;
	for (uint32_t t = 0; t < n; t++) {
		if (pos_in != NULL)
			pos[t] = pos_in[t];
		else if (t % 7 == 3)
			pos[t] = (uint64_t)(uniform() * 0.5 + 0.5) * S; /* sees nothing */
		else
			pos[t] =
			        (uint64_t)((uniform() * 0.6 + 0.6) * (double)(m->n_chunks + 1) * S);
	}
	for (size_t i = 0; i < (size_t)n * sp->d_r; i++)
		qr[i] = (float)(uniform() * 3);
	for (size_t i = 0; i < (size_t)n * sp->h_q * sp->d_h; i++)
		qa[i] = (float)(uniform() * 2);
	struct hsa_query q = {.n = n, .k = k, .pos = pos, .qr = qr, .qa = qa, .mask = cmp_mask};
	struct hsa_source src = mem_source(m);
	result_alloc(&a, sp, n, k, attn);
	result_alloc(&b, sp, n, k, attn);
	struct hsa_result ra = as_hsa(&a), rb = as_hsa(&b);
	pthread_mutex_unlock(&tmu);
	int ea = gpu_attend(cpu_b, sp, &src, &q, &ra);
	struct hsa_source gsrc = src;
	struct hsa_query gq = q;
	if (cmp_sel_only) {
		gsrc.chunk_kv = NULL;
		gsrc.copy_kv = NULL;
		gq.qa = NULL;
		rb.out = NULL;
		rb.attn = NULL;
	}
	if (gpu_gate != NULL)
		pthread_barrier_wait(gpu_gate);
	int eb = gpu_attend(gpu, sp, &gsrc, &gq, &rb);
	pthread_mutex_lock(&tmu);
	CHECK_RET(ea, 0);
	CHECK_RET(eb, 0);
	if (ea != 0 || eb != 0) {
		bad_sel = 1;
		goto out;
	}
	for (uint32_t t = 0; t < n; t++) {
		bool tie = false;
		for (uint32_t r = 0; r < sp->h_kv; r++) {
			size_t at = ((size_t)t * sp->h_kv + r) * k;
			/* scores are sums of products: their rounding scales with the largest */
			double big = 0;
			for (uint32_t i = 0; i < k; i++)
				if (isfinite(a.score[at + i]) && fabs(a.score[at + i]) > big)
					big = fabs(a.score[at + i]);
			for (uint32_t i = 0; i < k; i++) {
				if (a.sel[at + i] != b.sel[at + i]) {
					if (a.sel[at + i] >= 0 && b.sel[at + i] >= 0 &&
					    close_to(b.score[at + i], a.score[at + i],
					             1e-5 * (1 + big)))
						tie = true;
					else
						bad_sel++;
				}
				if (!close_to(b.score[at + i], a.score[at + i], 2e-5 * (1 + big)))
					bad_score++;
			}
		}
		if (tie) {
			near_ties++;
			continue;
		}
		for (size_t i = 0; i < (size_t)sp->h_kv * k; i++) {
			size_t at = (size_t)t * sp->h_kv * k + i;
			if (!(fabs(b.weight[at] - a.weight[at]) <= 1e-4))
				bad_w++;
		}
		for (size_t i = 0; i < (size_t)sp->h_q * sp->d_h && !cmp_sel_only; i++) {
			size_t at = (size_t)t * sp->h_q * sp->d_h + i;
			if (!(fabs(b.out[at] - a.out[at]) <= 1e-4 * (1 + fabs(a.out[at]))))
				bad_out++;
		}
		if (attn && !cmp_sel_only)
			for (size_t i = 0; i < (size_t)sp->h_q * k * S; i++) {
				size_t at = (size_t)t * sp->h_q * k * S + i;
				if (!(fabs(b.attn[at] - a.attn[at]) <= 1e-5))
					bad_attn++;
			}
	}
	if (bad_sel + bad_score + bad_w + bad_out + bad_attn > 0)
		fprintf(stderr,
		        "%s (S%u h_kv%u d_h%u h_q%u d_r%u %s, %" PRIu64 " chunks, n %u, k %u): "
		        "%d selections, %d scores, %d weights, %d outputs, %d attention differ\n",
		        what, S, sp->h_kv, sp->d_h, sp->h_q, sp->d_r, spec_dtype_name(sp->dtype),
		        m->n_chunks, n, k, bad_sel, bad_score, bad_w, bad_out, bad_attn);
	CHECK(bad_sel == 0);
	CHECK(bad_score == 0);
	CHECK(bad_w == 0);
	CHECK(bad_out == 0);
	CHECK(bad_attn == 0);
	(void)G;
out:
	pthread_mutex_unlock(&tmu);
	result_free(&a);
	result_free(&b);
	free(pos);
	free(qr);
	free(qa);
	return bad_sel + bad_score + bad_w + bad_out + bad_attn;
}

static struct gpu_backend *
mkgpu(uint64_t budget, uint64_t host)
{
	struct gpu_cuda_opts o = {
	        .device = 0, .mem_budget = budget, .host_cache = host, .cpu = cpu_b};
	struct gpu_backend *g = NULL;
	int err = gpu_cuda_alloc(&o, &g);
	CHECK_RET(err, 0);
	return err == 0 ? g : NULL;
}

/* ---- the cases ---- */

static uint64_t next_uid = 1;

static void
test_shapes(struct gpu_backend *g)
{
	static const struct {
		uint32_t S, h_kv, d_h, h_q, d_r;
		enum hsa_dtype t;
		enum hsa_weighting w;
		bool obo;
	} shapes[] = {
	        {64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false},
	        {64, 1, 128, 16, 128, HSA_BF16, HSA_STICKBREAK, false},
	        {64, 1, 64, 1, 1024, HSA_F16, HSA_SOFTMAX, false},
	        {16, 2, 32, 8, 64, HSA_BF16, HSA_STICKBREAK, true},
	        {8, 4, 16, 8, 32, HSA_F16, HSA_STICKBREAK, false},
	        {4, 1, 8, 1, 8, HSA_BF16, HSA_SOFTMAX, true},
	        {32, 2, 20, 6, 46, HSA_F16, HSA_SOFTMAX, true},
	        {64, 8, 128, 32, 512, HSA_BF16, HSA_SOFTMAX, false},
	        {128, 2, 64, 4, 256, HSA_F16, HSA_STICKBREAK, true},
	        {3, 3, 7, 9, 9, HSA_F16, HSA_SOFTMAX, false},
	};
	static const uint64_t chunks[] = {0, 1, 5, 300, 5000};
	static const uint32_t ks[] = {1, 8, 64, 256};

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		struct hsa_spec sp =
		        mkspec(shapes[s].S, shapes[s].h_kv, shapes[s].d_h, shapes[s].h_q,
		               shapes[s].d_r, shapes[s].t, shapes[s].w, shapes[s].obo);
		CHECK(g->ops->supports(g, &sp));
		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			struct mem m;
			uint64_t nc = chunks[c];
			if (nc == 5000 && sp.h_kv * sp.d_h > 256)
				nc = 1500;
			mem_init(&m, &sp, next_uid++, nc, 0);
			for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
				uint32_t n = ki == 2 ? 3 : ki == 1 ? 9 : 1;
				compare(g, &m, n, ks[ki], NULL, ki == 1 && sp.S <= 64, "shapes");
			}
			g->ops->forget(g, m.uid);
			mem_fini(&m);
		}
	}
}

static void
test_ties_extremes(struct gpu_backend *g)
{
	struct hsa_spec sp = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct mem m;
	uint64_t pos[9];

	/* ties: every landmark one of four rows; ranks must go to the lower index (4 tokens are
	 * scored by the backend's own kernel, 9 by cuBLAS) */
	mem_init(&m, &sp, next_uid++, 3000, 0);
	for (uint64_t j = 4; j < m.n_chunks; j++)
		memcpy(m.lmk + j * m.row, m.lmk + (j % 4) * m.row, m.row);
	for (int i = 0; i < 9; i++)
		pos[i] = (uint64_t)m.n_chunks * 64 - (uint64_t)i * 333;
	int ties_before = near_ties;
	compare(g, &m, 4, 64, pos, false, "ties");
	compare(g, &m, 9, 64, pos, false, "ties, 9 tokens");
	CHECK(near_ties == ties_before);
	g->ops->forget(g, m.uid);

	/* extremes: huge landmarks (softmax weights underflow), NaN and infinite rows */
	fill(HSA_F16, m.lmk, m.n_chunks * sp.d_r, 60000.0);
	uint16_t nan = 0x7e00, inf = 0x7c00, ninf = 0xfc00, zero = 0;
	for (uint32_t i = 0; i < sp.d_r; i++) {
		memcpy(m.lmk + 10 * m.row + i * 2, &nan, 2);
		memcpy(m.lmk + 11 * m.row + i * 2, i == 0 ? &inf : &zero, 2);
		memcpy(m.lmk + 12 * m.row + i * 2, &ninf, 2);
	}
	compare(g, &m, 4, 64, pos, true, "extremes");
	compare(g, &m, 9, 64, pos, false, "extremes, 9 tokens");
	compare(g, &m, 1, 256, pos, false, "extremes k256");
	g->ops->forget(g, m.uid);

	/* everything NaN: every visible chunk is still a candidate at -inf */
	for (uint64_t j = 0; j < 300; j++)
		for (uint32_t i = 0; i < sp.d_r; i++)
			memcpy(m.lmk + j * m.row + i * 2, &nan, 2);
	m.n_chunks = 300;
	compare(g, &m, 4, 8, NULL, false, "all NaN");
	g->ops->forget(g, m.uid);
	mem_fini(&m);

	/* stick-breaking with extremes */
	sp.weighting = HSA_STICKBREAK;
	mem_init(&m, &sp, next_uid++, 500, 0);
	fill(HSA_F16, m.lmk, m.n_chunks * sp.d_r, 30000.0);
	compare(g, &m, 5, 32, NULL, false, "stick extremes");
	g->ops->forget(g, m.uid);
	mem_fini(&m);
}

/* Small budgets: chunk cache below k, landmark eviction across users, growth, forget. */
static void
test_residency(void)
{
	struct hsa_spec sp = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct gpu_cuda_counters c0, c1;
	struct gpu_stats st;
	/* 2 MiB: 1 MiB of chunk cache = 32 slots of 32 KiB, below k = 64 */
	struct gpu_backend *g = mkgpu(2u << 20, 0);
	struct mem users[5];

	if (g == NULL)
		return;
	/* 3000 landmarks of 256 bytes = 750 KiB each: two fit beside the chunk cache */
	for (int u = 0; u < 5; u++)
		mem_init(&users[u], &sp, next_uid++, 3000, 0);
	for (int round = 0; round < 3; round++)
		for (int u = 0; u < 5; u++)
			compare(g, &users[u], 2, 64, NULL, round == 1, "small cache");
	gpu_cuda_counters(g, &c0);
	g->ops->stats(g, &st);
	CHECK(c0.lmk_evictions > 0);
	CHECK(c0.dev_chunk_slots > 0 && c0.dev_chunk_slots < 64);
	CHECK(st.mem_budget == 2u << 20);
	CHECK(st.resident_users >= 1 && st.resident_users <= 2);
	CHECK(st.chunk_misses > 0);
	printf("small cache: %" PRIu64 " chunk slots, %" PRIu64 " landmark evictions, "
	       "%" PRIu64 " users resident\n",
	       c0.dev_chunk_slots, c0.lmk_evictions, st.resident_users);
	for (int u = 0; u < 5; u++) {
		g->ops->forget(g, users[u].uid);
		mem_fini(&users[u]);
	}
	g->ops->stats(g, &st);
	CHECK(st.resident_users == 0);
	gpu_free(g);

	/* growth: only new rows are loaded */
	g = mkgpu(64u << 20, 16u << 20);
	if (g == NULL)
		return;
	struct mem m;
	mem_init(&m, &sp, next_uid++, 100, 12000);
	uint64_t sizes[] = {100, 101, 700, 3000, 3000, 12000};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (sizes[i] > m.n_chunks)
			mem_grow(&m, sizes[i]);
		uint64_t pos[2] = {m.n_chunks * 64, m.n_chunks * 64};
		gpu_cuda_counters(g, &c0);
		uint64_t before = i == 0 ? 0 : sizes[i - 1];
		compare(g, &m, 2, 64, pos, false, "growth");
		gpu_cuda_counters(g, &c1);
		CHECK(c1.lmk_bytes_loaded - c0.lmk_bytes_loaded == (sizes[i] - before) * m.row);
	}
	/* the host cache serves what the device cache dropped */
	uint64_t pos[3] = {m.n_chunks * 64, m.n_chunks * 64 - 5000, 77777};
	fixed_seed = 12345;
	gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS);
	compare(g, &m, 3, 128, pos, false, "host cache fill");
	gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
	gpu_cuda_counters(g, &c0);
	compare(g, &m, 3, 128, pos, false, "host cache");
	gpu_cuda_counters(g, &c1);
	CHECK(c1.host_hits > c0.host_hits);
	CHECK(c1.source_reads == c0.source_reads);
	/* read in place from the host cache, then copied to the device: the next call is warm */
	CHECK(c1.host_direct > c0.host_direct);
	compare(g, &m, 3, 128, pos, false, "host cache, again");
	gpu_cuda_counters(g, &c0);
	CHECK(c0.host_direct == c1.host_direct);
	CHECK(c0.source_reads == c1.source_reads);
	fixed_seed = 0;
	/* forget: everything is loaded again */
	g->ops->forget(g, m.uid);
	gpu_cuda_counters(g, &c0);
	compare(g, &m, 3, 128, pos, false, "after forget");
	gpu_cuda_counters(g, &c1);
	CHECK(c1.lmk_bytes_loaded - c0.lmk_bytes_loaded == m.n_chunks * m.row);
	CHECK(c1.source_reads > c0.source_reads);
	/* many query tokens: several rounds */
	compare(g, &m, 70, 16, NULL, true, "rounds");
	mem_fini(&m);
	gpu_free(g);

	/*
	 * Both caches far smaller than the memory, the device one emptied now and then: chunks move
	 * between device slots, host slots read in place and the source all the time, and each
	 * directory entry must follow its chunk.
	 */
	g = mkgpu(3u << 20, 2u << 20);
	if (g == NULL)
		return;
	mem_init(&m, &sp, next_uid++, 3000, 0);
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < 60; i++) {
		/* every third query repeats the one before with the device cache emptied: its
		 * chunks, paged in last, are in the host cache */
		if (i % 3 == 2)
			gpu_cuda_drop(g, GPU_CUDA_DROP_DEVICE_CHUNKS);
		fixed_seed = 777 + (uint64_t)(i - (i % 3 == 2));
		compare(g, &m, 1 + (uint32_t)(i / 3) % 2, 32, NULL, false, "churn");
	}
	fixed_seed = 0;
	gpu_cuda_counters(g, &c1);
	printf("churn: %" PRIu64 " host hits (%" PRIu64 " read in place), %" PRIu64
	       " source reads\n",
	       c1.host_hits - c0.host_hits, c1.host_direct - c0.host_direct,
	       c1.source_reads - c0.source_reads);
	CHECK(c1.host_direct > c0.host_direct);
	CHECK(c1.source_reads > c0.source_reads);
	mem_fini(&m);
	gpu_free(g);
}

struct worker_arg {
	struct gpu_backend *g;
	struct mem *m;
	int fails;
};

static void *
worker(void *p)
{
	struct worker_arg *w = p;
	for (int i = 0; i < 20; i++)
		w->fails += compare(w->g, w->m, 1 + i % 3, 32, NULL, false, "concurrent");
	return NULL;
}

static void
test_concurrent(struct gpu_backend *g)
{
	struct hsa_spec sp = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct mem m[4];
	pthread_t th[4];
	struct worker_arg wa[4];

	for (int i = 0; i < 4; i++) {
		mem_init(&m[i], &sp, next_uid++, 2000 + 500 * i, 0);
		wa[i] = (struct worker_arg){g, &m[i], 0};
	}
	/* rng_state is shared: the draws race, which only varies the data */
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, worker, &wa[i]);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(wa[i].fails == 0);
		g->ops->forget(g, m[i].uid);
		mem_fini(&m[i]);
	}
}

/*
 * Batching: callers released together by a barrier, so that their calls queue while one batch
 * runs and are computed together: memories of two shapes, k of 32 and 16, probabilities asked by
 * one caller, a caller with more tokens than a round (its tokens split across rounds shared with
 * others), a memory where k exceeds the visible chunks, and a caller whose source fails on every
 * K/V read, which must get its error while the callers beside it get their results.
 */
#define BATCH_THREADS 12
#define BATCH_ROUNDS  12

struct batch_arg {
	struct gpu_backend *g;
	struct mem *m;
	int id, fails;
};

static void *
batch_worker(void *p)
{
	struct batch_arg *w = p;

	for (int i = 0; i < BATCH_ROUNDS; i++) {
		if (w->m->fail_kv != 0) {
			/* the failing caller: same rhythm as compare(), its own error */
			const struct hsa_spec *sp = &w->m->spec;
			float *qr = calloc(sp->d_r, 4), *qa = calloc((size_t)sp->h_q * sp->d_h, 4);
			uint64_t pos = w->m->n_chunks * sp->S;
			struct result r;
			qr[0] = 1.0f;
			result_alloc(&r, sp, 1, 32, false);
			struct hsa_result res = as_hsa(&r);
			struct hsa_query q = {.n = 1, .k = 32, .pos = &pos, .qr = qr, .qa = qa};
			struct hsa_source src = mem_source(w->m);
			pthread_barrier_wait(gpu_gate);
			int err = gpu_attend(w->g, sp, &src, &q, &res);
			pthread_mutex_lock(&tmu);
			CHECK_RET(err, HSAMEM_ESTORE);
			w->fails += err != HSAMEM_ESTORE;
			pthread_mutex_unlock(&tmu);
			result_free(&r);
			free(qr);
			free(qa);
			continue;
		}
		uint32_t n = w->id == 1 ? 40 : 1 + (uint32_t)(w->id + i) % 3;
		uint32_t k = w->id % 4 == 3 ? 16 : 32;
		w->fails += compare(w->g, w->m, n, k, NULL, w->id == 2, "batched");
	}
	return NULL;
}

static void
test_batching(struct gpu_backend *g)
{
	struct hsa_spec a = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct hsa_spec b = mkspec(32, 2, 64, 8, 64, HSA_BF16, HSA_STICKBREAK, true);
	struct mem m[6];
	pthread_t th[BATCH_THREADS];
	struct batch_arg wa[BATCH_THREADS];
	pthread_barrier_t gate;
	struct gpu_cuda_counters c0, c1;

	mem_init(&m[0], &a, next_uid++, 3000, 0);
	mem_init(&m[1], &a, next_uid++, 1200, 0);
	mem_init(&m[2], &a, next_uid++, 20, 0); /* k > visible chunks */
	mem_init(&m[3], &b, next_uid++, 2500, 0);
	mem_init(&m[4], &b, next_uid++, 700, 0);
	mem_init(&m[5], &a, next_uid++, 500, 0);
	m[5].fail_kv = 1;
	pthread_barrier_init(&gate, NULL, BATCH_THREADS);
	gpu_gate = &gate;
	gpu_cuda_counters(g, &c0);
	for (int i = 0; i < BATCH_THREADS; i++) {
		/* thread 5 alone reads the failing memory */
		wa[i] = (struct batch_arg){g, i == 5 ? &m[5] : &m[i % 5], i, 0};
		pthread_create(&th[i], NULL, batch_worker, &wa[i]);
	}
	for (int i = 0; i < BATCH_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(wa[i].fails == 0);
	}
	gpu_cuda_counters(g, &c1);
	gpu_gate = NULL;
	pthread_barrier_destroy(&gate);
	printf("test_cuda: batching: %" PRIu64 " passes, %" PRIu64
	       " calls batched, at most %" PRIu64 " a pass\n",
	       c1.batches - c0.batches, c1.batched_calls - c0.batched_calls, c1.max_batch);
	CHECK(c1.batched_calls > c0.batched_calls);
	CHECK(c1.max_batch >= 3);
	for (int i = 0; i < 6; i++) {
		g->ops->forget(g, m[i].uid);
		mem_fini(&m[i]);
	}
}

/*
 * A selection only (backend.h): the device's ranking from a source without K/V equals the CPU's
 * whole operator's, by the kernel and by cuBLAS (8 tokens or more), under a mask, and while
 * whole calls run beside it (they may not share a round, and neither may lose its results).
 */
static void *
sel_only_worker(void *p)
{
	struct worker_arg *w = p;
	cmp_sel_only = w->fails == 0; /* the first two workers: selections; the others: whole */
	w->fails = 0;
	for (int i = 0; i < 15; i++)
		w->fails += compare(w->g, w->m, 1 + i % 3, 32, NULL, false, "beside a selection");
	return NULL;
}

static void
test_select_only(struct gpu_backend *g)
{
	struct hsa_spec sp = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct gpu_cuda_counters c0, c1;
	struct mem m[2];
	uint64_t *mask = calloc(3000 / 64 + 1, sizeof(uint64_t));

	mem_init(&m[0], &sp, next_uid++, 3000, 0);
	mem_init(&m[1], &sp, next_uid++, 1700, 0);
	for (uint64_t j = 2; j < 3000; j += 9)
		mask[j / 64] |= 1ull << (j % 64);
	cmp_sel_only = true;
	gpu_cuda_counters(g, &c0);
	compare(g, &m[0], 1, 32, NULL, false, "selection only");
	compare(g, &m[0], 12, 64, NULL, false, "selection only, cuBLAS");
	cmp_mask = mask;
	compare(g, &m[0], 3, 16, NULL, false, "selection only, masked");
	cmp_mask = NULL;
	gpu_cuda_counters(g, &c1);
	CHECK(c1.cpu_fallbacks == c0.cpu_fallbacks); /* the device served them */
	CHECK(c1.source_reads == c0.source_reads);   /* and read no chunk */
	cmp_sel_only = false;

	pthread_t th[4];
	struct worker_arg wa[4];
	for (int i = 0; i < 4; i++) {
		wa[i] = (struct worker_arg){g, &m[i % 2], i < 2 ? 0 : 1};
		pthread_create(&th[i], NULL, sel_only_worker, &wa[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(wa[i].fails == 0);
	}
	for (int i = 0; i < 2; i++) {
		g->ops->forget(g, m[i].uid);
		mem_fini(&m[i]);
	}
	free(mask);
}

/*
 * A source whose last chunk is the memory's unsealed tail (backend.h): computed right while the
 * sealed chunks are resident, without loading or caching anything of the tail; then the tail is
 * sealed under the same index with other content, and the device serves the new content.
 */
static void
test_tail(struct gpu_backend *g)
{
	struct hsa_spec sp = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct gpu_cuda_counters c0, c1, c2;
	struct mem m;
	uint64_t before[3] = {39 * 64, 39 * 64, 20 * 64};
	uint64_t pos[3] = {40 * 64, 40 * 64, 39 * 64 + 5}; /* the last one does not see the tail */

	mem_init(&m, &sp, next_uid++, 40, 0);
	m.n_chunks = 39;
	compare(g, &m, 3, 64, before, true, "before the tail"); /* k covers every chunk */
	m.n_chunks = 40;
	m.tail_keys = 10;
	gpu_cuda_counters(g, &c0);
	compare(g, &m, 3, 64, pos, true, "tail");
	gpu_cuda_counters(g, &c1);
	CHECK(c1.cpu_fallbacks == c0.cpu_fallbacks + 1);
	CHECK(c1.lmk_bytes_loaded == c0.lmk_bytes_loaded);
	CHECK(c1.source_reads == c0.source_reads);
	/* sealed: chunk 39 now holds other data, all 64 keys of it */
	fill(sp.dtype, m.lmk + 39 * m.row, sp.d_r, 2.0);
	fill(sp.dtype, m.kv + 39 * m.kvb, m.kvb / spec_elem_size(sp.dtype), 1.0);
	m.tail_keys = 0;
	compare(g, &m, 3, 64, pos, true, "tail sealed");
	gpu_cuda_counters(g, &c2);
	CHECK(c2.cpu_fallbacks == c1.cpu_fallbacks);
	CHECK(c2.lmk_bytes_loaded - c1.lmk_bytes_loaded == m.row);
	g->ops->forget(g, m.uid);
	mem_fini(&m);
}

/*
 * A filter's chunk mask (backend.h): the select kernels take top-k among the allowed chunks, as
 * the CPU does; a mask keeping 1% of the chunks, one keeping fewer than k, one keeping none, and
 * masked and unmasked calls batched together.
 */
static void
test_mask(struct gpu_backend *g)
{
	struct hsa_spec sp = mkspec(64, 2, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct mem m;
	uint64_t n = 6000, words = n / 64 + 1;
	uint64_t *mask = calloc(words, sizeof(uint64_t)), pos[4] = {n * 64, n * 64, 3000 * 64, 0};
	struct gpu_cuda_counters c0, c1;

	mem_init(&m, &sp, next_uid++, n, 0);
	for (uint64_t j = 5; j < n; j += 100)
		mask[j / 64] |= 1ull << (j % 64);
	cmp_mask = mask;
	gpu_cuda_counters(g, &c0);
	compare(g, &m, 3, 16, pos, true, "mask of 1%");
	gpu_cuda_counters(g, &c1);
	CHECK(c1.cpu_fallbacks == c0.cpu_fallbacks); /* the device served it */
	memset(mask, 0, words * 8);
	mask[0] = 0x15; /* chunks 0, 2, 4: fewer than k */
	compare(g, &m, 3, 16, pos, false, "mask shorter than k");
	memset(mask, 0, words * 8);
	compare(g, &m, 3, 16, pos, false, "empty mask");

	/* every selected chunk is allowed: checked directly on the device's result */
	struct result r;
	float qr[128], qa[16 * 128];
	for (size_t i = 0; i < 128; i++)
		qr[i] = (float)(uniform() * 3);
	for (size_t i = 0; i < 16 * 128; i++)
		qa[i] = (float)(uniform() * 2);
	for (uint64_t j = 7; j < n; j += 50)
		mask[j / 64] |= 1ull << (j % 64);
	struct hsa_query q = {.n = 1, .k = 32, .pos = pos, .qr = qr, .qa = qa, .mask = mask};
	struct hsa_source src = mem_source(&m);
	result_alloc(&r, &sp, 1, 32, false);
	struct hsa_result res = as_hsa(&r);
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &res), 0);
	for (size_t i = 0; i < 2 * 32; i++)
		CHECK(r.sel[i] >= 0 && r.sel[i] % 50 == 7);
	result_free(&r);
	cmp_mask = NULL;
	g->ops->forget(g, m.uid);
	mem_fini(&m);
	free(mask);
}

static void
test_errors(struct gpu_backend *g)
{
	struct hsa_spec sp = mkspec(64, 1, 128, 16, 128, HSA_F16, HSA_SOFTMAX, false);
	struct mem m;
	struct result r;
	float qr[128] = {0}, qa[16 * 128] = {0};
	uint64_t pos = 6400;

	mem_init(&m, &sp, next_uid++, 100, 0);
	struct hsa_source src = mem_source(&m);
	result_alloc(&r, &sp, 1, 8, false);
	struct hsa_result res = as_hsa(&r);
	struct hsa_query q = {.n = 1, .k = 0, .pos = &pos, .qr = qr, .qa = qa};
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &res), HSAMEM_EINVAL);
	q.k = 300;
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &res), HSAMEM_EINVAL);
	q.k = 8;
	q.n = 0;
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &res), HSAMEM_EINVAL);
	q.n = 1;
	res.out = NULL; /* the attention shown: it needs the weights */
	res.attn = res.score;
	res.weight = NULL;
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &res), HSAMEM_EINVAL);
	result_free(&r);
	/* the attention shown without outputs is served on the CPU: the CPU operator's bits */
	struct result full, shown;
	size_t ns = (size_t)sp.h_kv * 8, na = (size_t)sp.h_q * 8 * sp.S;
	for (size_t i = 0; i < 16 * 128; i++)
		qa[i] = (float)(i % 7) * 0.25f;
	qr[3] = 1.0f;
	result_alloc(&full, &sp, 1, 8, true);
	result_alloc(&shown, &sp, 1, 8, true);
	struct hsa_result rf = as_hsa(&full), rs = as_hsa(&shown);
	rs.out = NULL;
	CHECK_RET(gpu_attend(cpu_b, &sp, &src, &q, &rf), 0);
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &rs), 0);
	CHECK(memcmp(full.sel, shown.sel, ns * 8) == 0 &&
	      memcmp(full.score, shown.score, ns * 4) == 0);
	CHECK(memcmp(full.weight, shown.weight, ns * 4) == 0);
	CHECK(memcmp(full.attn, shown.attn, na * 4) == 0);
	result_free(&shown);
	result_free(&full);
	/* a source that fails: the error comes back, and the backend keeps working */
	m.n_chunks = 100;
	src.n_chunks = 200; /* claims more than it has: chunk reads past 100 fail */
	result_alloc(&r, &sp, 1, 8, false);
	res = as_hsa(&r);
	int err = gpu_attend(g, &sp, &src, &q, &res);
	CHECK(err == 0 || err == HSAMEM_EINVAL);
	pos = 12800;
	CHECK_RET(gpu_attend(g, &sp, &src, &q, &res), HSAMEM_EINVAL);
	result_free(&r);
	g->ops->forget(g, m.uid);
	compare(g, &m, 2, 8, NULL, false, "after a source error");
	g->ops->forget(g, m.uid);
	mem_fini(&m);

	/* f32: not the GPU's, but served correctly all the same */
	sp.dtype = HSA_F32;
	CHECK(!g->ops->supports(g, &sp));
	mem_init(&m, &sp, next_uid++, 200, 0);
	compare(g, &m, 2, 8, NULL, false, "f32 fallback");
	mem_fini(&m);
}

int
main(void)
{
	char desc[256];
	const char *req = getenv("HSAMEM_REQUIRE_GPU");
	bool require = req != NULL && strcmp(req, "1") == 0;
	int n = gpu_cuda_probe(desc, sizeof(desc));
	struct gpu_backend *g;

	if (n <= 0) {
		printf("test_cuda: skipped: %s\n", desc);
		return require ? 1 : 77;
	}
	printf("test_cuda: %s\n", desc);
	if (gpu_cpu_alloc(4, &cpu_b) != 0)
		return 1;
	/* 256 MiB and a small pinned host cache */
	if ((g = mkgpu(256u << 20, 16u << 20)) == NULL) {
		if (require)
			return 1;
		printf("test_cuda: skipped: the CUDA backend is not built\n");
		return 77;
	}
	struct gpu_stats st;
	g->ops->stats(g, &st);
	CHECK(strcmp(st.name, "cuda") == 0);
	printf("test_cuda: backend %s on %s\n", st.name, st.device);

	test_shapes(g);
	test_ties_extremes(g);
	test_concurrent(g);
	test_batching(g);
	test_select_only(g);
	test_tail(g);
	test_mask(g);
	test_errors(g);
	g->ops->stats(g, &st);
	printf("test_cuda: %" PRIu64 " calls, %" PRIu64 " chunk hits, %" PRIu64 " misses, "
	       "%d near ties\n",
	       st.calls, st.chunk_hits, st.chunk_misses, near_ties);
	gpu_free(g);
	test_residency();
	gpu_free(cpu_b);
	return test_done("test_cuda");
}
