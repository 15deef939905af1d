/*
 * test_hsa_cpu.c: the CPU backend's own promises, beside its math (test_hsa.c checks that against a
 * naive operator): the same bits on one thread or four, with landmark runs of every length, with
 * misaligned rows and with several callers at once; a filter's chunk mask; a selection only
 * (no K/V read, the same ranking as the whole operator's); a sparse query read from landmarks in
 * sparse form (the same bits as from the dense rows); arguments it must
 * refuse, a source's errors reaching the caller from any thread (and a source that misbehaves
 * caught), its counters, and a caller's own pieces on its threads, run while the caller goes on
 * (gpu_cpu_start, gpu_cpu_wait).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hsa_fixture.h"
#include "hsa_math.h"
#include "hsamem.h"
#include "test.h"

static struct gpu_backend *cpu1, *cpu4;

/* Misaligned f32 rows take the converting path and give the same bits. */
static void
test_misaligned(void)
{
	struct hsa_spec sp = make_spec(8, 2, 2, 16, 32, HSA_F32, HSA_SOFTMAX, false);
	struct mem a, b;
	struct qbuf qb;
	struct rbuf ra, rb;

	mem_init(&a, &sp, 300, DATA_RAND, 1, 0);
	mem_init(&b, &sp, 300, DATA_RAND, 1, 2);
	memcpy(b.lmk, a.lmk, 300 * a.lmk_bytes);
	memcpy(b.kv, a.kv, 300 * a.kv_bytes);
	qbuf_init(&qb, &sp, 300, 7, 12, DATA_RAND, 1, 1);
	rbuf_init(&ra, &sp, 7, 12, true);
	rbuf_init(&rb, &sp, 7, 12, true);
	CHECK_RET(attend(cpu4, &a, &qb.q, &ra), 0);
	CHECK_RET(attend(cpu4, &b, &qb.q, &rb), 0);
	CHECK(rbuf_same(&ra, &rb));
	rbuf_fini(&rb);
	rbuf_fini(&ra);
	qbuf_fini(&qb);
	mem_fini(&b);
	mem_fini(&a);
}

/* Landmark runs of one row, of a fixed odd length, and of varied lengths: the same bits. */
static void
test_runs(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 24, HSA_F16, HSA_STICKBREAK, false);
	struct mem m;
	struct qbuf qb;
	struct rbuf r0, r;
	static const uint64_t runs[] = {1, 3, 7, 64, 1000};

	mem_init(&m, &sp, 9000, DATA_RAND, 1, 0);
	qbuf_init(&qb, &sp, 9000, 10, 24, DATA_RAND, 1, 1);
	rbuf_init(&r0, &sp, 10, 24, true);
	CHECK_RET(attend(cpu4, &m, &qb.q, &r0), 0);
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		for (int varied = 0; varied < 2; varied++) {
			m.max_run = runs[i];
			m.varied_runs = varied;
			rbuf_init(&r, &sp, 10, 24, true);
			CHECK_RET(attend(i % 2 ? cpu1 : cpu4, &m, &qb.q, &r), 0);
			CHECK(rbuf_same(&r0, &r));
			rbuf_fini(&r);
		}
	}
	CHECK(atomic_load(&m.bad_calls) == 0);
	rbuf_fini(&r0);
	qbuf_fini(&qb);
	mem_fini(&m);
}

/*
 * A filter's chunk mask (backend.h): each token's selection is the unmasked ranking of every
 * visible chunk with the disallowed ones taken out, cut to k (fewer where fewer are allowed),
 * and weighted over what is left; bit-identical on one thread or four.
 */
static void
test_mask(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 24, HSA_F16, HSA_SOFTMAX, false);
	const uint32_t n = 10, k = 8, all = 200;
	uint64_t mask[4] = {0};
	struct mem m;
	struct qbuf qb;
	struct rbuf full, r, r1;

	for (uint64_t j = 3; j < all; j += 7)
		mask[j / 64] |= 1ull << (j % 64);
	mem_init(&m, &sp, all, DATA_RAND, 1, 0);
	qbuf_init(&qb, &sp, all, n, all, DATA_RAND, 1, 1);
	rbuf_init(&full, &sp, n, all, false);
	CHECK_RET(attend(cpu4, &m, &qb.q, &full), 0);
	qb.q.k = k;
	qb.q.mask = mask;
	rbuf_init(&r, &sp, n, k, false);
	rbuf_init(&r1, &sp, n, k, false);
	CHECK_RET(attend(cpu4, &m, &qb.q, &r), 0);
	CHECK_RET(attend(cpu1, &m, &qb.q, &r1), 0);
	CHECK(rbuf_same(&r, &r1));
	for (uint32_t p = 0; p < n * sp.h_kv; p++) {
		int64_t want[8];
		float ws[8], ww[8];
		uint32_t kk = 0;
		for (uint32_t i = 0; i < all && kk < k; i++) {
			int64_t j = full.r.sel[(size_t)p * all + i];
			if (j >= 0 && (mask[j / 64] >> (j % 64)) & 1) {
				ws[kk] = full.r.score[(size_t)p * all + i];
				want[kk++] = j;
			}
		}
		hsa_fusion_weights(sp.weighting, want, ws, kk, ww);
		for (uint32_t i = 0; i < k; i++) {
			int64_t got = r.r.sel[(size_t)p * k + i];
			CHECK(got == (i < kk ? want[i] : -1));
			if (i < kk)
				CHECK(r.r.score[(size_t)p * k + i] == ws[i] &&
				      near(r.r.weight[(size_t)p * k + i], ww[i], 1e-6));
		}
	}
	/* a mask that allows nothing: no selection, a zero output */
	memset(mask, 0, sizeof(mask));
	CHECK_RET(attend(cpu4, &m, &qb.q, &r), 0);
	for (size_t i = 0; i < (size_t)n * sp.h_kv * k; i++)
		CHECK(r.r.sel[i] == -1);
	for (size_t i = 0; i < r.n_out; i++)
		CHECK(r.r.out[i] == 0.0f);
	rbuf_fini(&r1);
	rbuf_fini(&r);
	rbuf_fini(&full);
	qbuf_fini(&qb);
	mem_fini(&m);
}

/*
 * A selection only (backend.h: out NULL): the same sel and score bits as the whole operator, with
 * a mask too, from a source without K/V and a query without attention queries; weights where
 * asked; nothing else written. And the attention shown without outputs (out NULL, attn given).
 */
static void
test_select_only(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 24, HSA_F16, HSA_SOFTMAX, false);
	const uint32_t n = 9, k = 12, all = 3000;
	uint64_t mask[(3000 + 63) / 64] = {0};
	struct mem m;
	struct qbuf qb;
	struct rbuf full;
	size_t n_sel = (size_t)n * sp.h_kv * k;
	int64_t *sel = malloc(n_sel * sizeof(int64_t));
	float *score = malloc(n_sel * sizeof(float)), *weight = malloc(n_sel * sizeof(float));

	if (sel == NULL || score == NULL || weight == NULL)
		exit(99);
	for (uint64_t j = 1; j < all; j += 3)
		mask[j / 64] |= 1ull << (j % 64);
	mem_init(&m, &sp, all, DATA_RAND, 1, 0);
	qbuf_init(&qb, &sp, all, n, k, DATA_RAND, 1, 1);
	struct hsa_source src = mem_source(&m), bare = src;
	bare.chunk_kv = NULL;
	bare.copy_kv = NULL;
	for (int masked = 0; masked < 2; masked++) {
		qb.q.mask = masked ? mask : NULL;
		rbuf_init(&full, &sp, n, k, false);
		CHECK_RET(gpu_attend(cpu4, &sp, &src, &qb.q, &full.r), 0);
		struct hsa_query q = qb.q;
		q.qa = NULL;
		for (int with_w = 0; with_w < 2; with_w++) {
			struct hsa_result r = {
			        .sel = sel, .score = score, .weight = with_w ? weight : NULL};
			memset(weight, 0xa5, n_sel * sizeof(float));
			CHECK_RET(gpu_attend(with_w ? cpu1 : cpu4, &sp, &bare, &q, &r), 0);
			CHECK(memcmp(sel, full.r.sel, n_sel * sizeof(int64_t)) == 0);
			CHECK(memcmp(score, full.r.score, n_sel * sizeof(float)) == 0);
			for (size_t i = 0; i < n_sel; i++)
				CHECK(with_w ? weight[i] == full.r.weight[i]
				             : ((uint32_t *)weight)[i] == 0xa5a5a5a5u);
		}
		rbuf_fini(&full);
	}
	/* the attention shown without outputs (backend.h): the whole operator's sel, score, weight
	 * and attention bits, out untouched; it reads the keys, as the whole operator reads K/V */
	struct rbuf shown;
	for (int threads = 0; threads < 2; threads++) {
		rbuf_init(&full, &sp, n, k, true);
		rbuf_init(&shown, &sp, n, k, true);
		CHECK_RET(gpu_attend(cpu4, &sp, &src, &qb.q, &full.r), 0);
		struct hsa_result r = shown.r;
		r.out = NULL;
		CHECK_RET(gpu_attend(threads ? cpu4 : cpu1, &sp, &src, &qb.q, &r), 0);
		CHECK(memcmp(shown.r.sel, full.r.sel, n_sel * sizeof(int64_t)) == 0);
		CHECK(memcmp(shown.r.score, full.r.score, n_sel * sizeof(float)) == 0);
		CHECK(memcmp(shown.r.weight, full.r.weight, n_sel * sizeof(float)) == 0);
		CHECK(memcmp(shown.r.attn, full.r.attn, shown.n_attn * sizeof(float)) == 0);
		rbuf_fini(&shown);
		rbuf_fini(&full);
	}
	struct hsa_result r = {.sel = sel, .score = score, .weight = weight, .attn = weight};
	CHECK_RET(gpu_attend(cpu4, &sp, &bare, &qb.q, &r), HSAMEM_EINVAL);
	rbuf_init(&full, &sp, n, k, false);
	CHECK_RET(gpu_attend(cpu4, &sp, &bare, &qb.q, &full.r), HSAMEM_EINVAL);
	rbuf_fini(&full);
	free(weight);
	free(score);
	free(sel);
	qbuf_fini(&qb);
	mem_fini(&m);
}

/* ---- landmarks in sparse form (backend.h, hsa_sparse_rows) ---- */

#define SP_BLOCK 16 /* rows of a sparse block */

/* A memory whose landmarks also come in sparse blocks of SP_BLOCK rows; m first, so that the
 * fixture's own callbacks read it through the same ctx. */
struct sparse_mem {
	struct mem m;
	uint8_t *starts, *entries; /* per block: (d_r + 1) u16 starts; 3-byte entries */
	uint32_t *n_entries, *entry0;
	atomic_int sparse_calls, dense_calls;
};

static int
sparse_rows(void *ctx, uint64_t first, struct hsa_sparse_rows *out)
{
	struct sparse_mem *s = ctx;
	uint64_t b = first / SP_BLOCK, end = (b + 1) * SP_BLOCK;
	uint32_t d = s->m.spec.d_r;
	atomic_fetch_add(&s->sparse_calls, 1);
	if (end > s->m.n_chunks)
		end = s->m.n_chunks;
	*out = (struct hsa_sparse_rows){.count = end - first,
	                                .row0 = (uint32_t)(first % SP_BLOCK),
	                                .start_bytes = 2,
	                                .n_entries = s->n_entries[b],
	                                .starts = s->starts + b * (d + 1) * 2,
	                                .entries = s->entries + (size_t)s->entry0[b] * 3};
	return 0;
}

static int
counted_rows(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct sparse_mem *s = ctx;
	atomic_fetch_add(&s->dense_calls, 1);
	return mem_source(&s->m).landmarks(ctx, first, rows, count);
}

/* Keeps about one element in five of each landmark (the rest zero), then lays the rows out in
 * sparse blocks, element by element. */
static void
sparse_mem_init(struct sparse_mem *s)
{
	const struct hsa_spec *sp = &s->m.spec;
	uint32_t d = sp->d_r;
	uint64_t blocks = (s->m.n_chunks + SP_BLOCK - 1) / SP_BLOCK, total = 0;
	uint16_t *l = (uint16_t *)s->m.lmk;
	for (uint64_t i = 0; i < s->m.n_chunks * d; i++)
		if (rnd_below(5) != 0)
			l[i] = 0;
	s->starts = malloc(blocks * (d + 1) * 2);
	s->entries = malloc(s->m.n_chunks * d * 3);
	s->n_entries = malloc(blocks * sizeof(uint32_t));
	s->entry0 = malloc(blocks * sizeof(uint32_t));
	if (s->starts == NULL || s->entries == NULL || s->n_entries == NULL || s->entry0 == NULL)
		exit(99);
	for (uint64_t b = 0; b < blocks; b++) {
		uint8_t *st = s->starts + b * (d + 1) * 2;
		uint32_t n = 0;
		s->entry0[b] = (uint32_t)total;
		for (uint32_t e = 0; e <= d; e++) {
			st[2 * e] = (uint8_t)n;
			st[2 * e + 1] = (uint8_t)(n >> 8);
			for (uint64_t r = 0;
			     e < d && r < SP_BLOCK && b * SP_BLOCK + r < s->m.n_chunks; r++) {
				uint16_t v = l[(b * SP_BLOCK + r) * d + e];
				if (v == 0)
					continue;
				uint8_t *en = s->entries + (total + n++) * 3;
				en[0] = (uint8_t)r;
				en[1] = (uint8_t)v;
				en[2] = (uint8_t)(v >> 8);
			}
		}
		s->n_entries[b] = n;
		total += n;
	}
}

/*
 * A query that weighs few elements reads the sparse blocks and gives the same bits as from the
 * dense rows, on one thread or four, with a mask too; a dense query reads the dense rows.
 */
static void
test_sparse(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 64, HSA_F16, HSA_SOFTMAX, false);
	const uint32_t n = 6, k = 8, all = 700;
	uint64_t mask[(700 + 63) / 64] = {0};
	struct sparse_mem s = {0};
	struct qbuf qb;
	struct rbuf dense, r;

	for (uint64_t j = 0; j < all; j += 2)
		mask[j / 64] |= 1ull << (j % 64);
	mem_init(&s.m, &sp, all, DATA_RAND, 1, 0);
	sparse_mem_init(&s);
	qbuf_init(&qb, &sp, all, n, k, DATA_RAND, 1, 1);
	struct hsa_source plain = mem_source(&s.m), both = plain;
	plain.ctx = both.ctx = &s;
	both.landmarks = counted_rows;
	both.landmarks_sparse = sparse_rows;
	for (int sparse_q = 0; sparse_q < 2; sparse_q++) {
		if (sparse_q) /* six elements of each head's 32 */
			for (size_t i = 0; i < (size_t)n * sp.d_r; i++)
				if (i % 32 % 5 != 1 || i % 32 > 26)
					qb.qr[i] = 0;
		for (int masked = 0; masked < 2; masked++) {
			qb.q.mask = masked ? mask : NULL;
			rbuf_init(&dense, &sp, n, k, true);
			CHECK_RET(gpu_attend(cpu4, &sp, &plain, &qb.q, &dense.r), 0);
			for (int threads = 1; threads <= 4; threads += 3) {
				atomic_store(&s.sparse_calls, 0);
				atomic_store(&s.dense_calls, 0);
				rbuf_init(&r, &sp, n, k, true);
				CHECK_RET(gpu_attend(threads == 1 ? cpu1 : cpu4, &sp, &both, &qb.q,
				                     &r.r),
				          0);
				CHECK(rbuf_same(&dense, &r));
				CHECK(sparse_q ? atomic_load(&s.sparse_calls) > 0 &&
				                         atomic_load(&s.dense_calls) == 0
				               : atomic_load(&s.sparse_calls) == 0);
				rbuf_fini(&r);
			}
			rbuf_fini(&dense);
		}
	}
	free(s.starts);
	free(s.entries);
	free(s.n_entries);
	free(s.entry0);
	qbuf_fini(&qb);
	mem_fini(&s.m);
}

struct concurrent {
	struct mem *m;
	struct hsa_query *q;
	struct rbuf r;
	int err;
};

static void *
concurrent_main(void *arg)
{
	struct concurrent *c = arg;
	for (int i = 0; i < 3 && c->err == 0; i++)
		c->err = attend(cpu4, c->m, c->q, &c->r);
	return NULL;
}

/* Several callers on one backend at once: each gets what it would have got alone. */
static void
test_concurrent(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 16, 64, HSA_F16, HSA_SOFTMAX, false);
	struct mem m;
	struct qbuf qb[3];
	struct rbuf alone[3];
	struct concurrent cc[3];
	pthread_t th[3];

	mem_init(&m, &sp, 20000, DATA_RAND, 1, 0);
	for (int i = 0; i < 3; i++) {
		qbuf_init(&qb[i], &sp, 20000, 5, 32, DATA_RAND, 1, 1);
		rbuf_init(&alone[i], &sp, 5, 32, false);
		CHECK_RET(attend(cpu1, &m, &qb[i].q, &alone[i]), 0);
		cc[i] = (struct concurrent){.m = &m, .q = &qb[i].q};
		rbuf_init(&cc[i].r, &sp, 5, 32, false);
	}
	for (int i = 0; i < 3; i++)
		CHECK_RET(pthread_create(&th[i], NULL, concurrent_main, &cc[i]), 0);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK_RET(cc[i].err, 0);
		CHECK(rbuf_same(&alone[i], &cc[i].r));
		rbuf_fini(&cc[i].r);
		rbuf_fini(&alone[i]);
		qbuf_fini(&qb[i]);
	}
	mem_fini(&m);
}

static void
test_bad_args(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 16, HSA_F32, HSA_SOFTMAX, false);
	struct mem m;
	struct qbuf qb;
	struct rbuf r;
	struct hsa_source src;
	struct hsa_query q;
	struct hsa_spec bad;
	struct hsa_result res;

	mem_init(&m, &sp, 10, DATA_RAND, 1, 0);
	src = mem_source(&m);
	qbuf_init(&qb, &sp, 10, 2, 4, DATA_RAND, 1, 1);
	rbuf_init(&r, &sp, 2, SPEC_TOPK_MAX + 1, false);

	CHECK(cpu1->ops->supports(cpu1, &sp));
	CHECK_RET(gpu_attend(cpu1, NULL, &src, &qb.q, &r.r), HSAMEM_EINVAL);
	CHECK_RET(gpu_attend(cpu1, &sp, NULL, &qb.q, &r.r), HSAMEM_EINVAL);
	CHECK_RET(gpu_attend(cpu1, &sp, &src, NULL, &r.r), HSAMEM_EINVAL);
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &qb.q, NULL), HSAMEM_EINVAL);

	q = qb.q;
	q.n = 0;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &r.r), HSAMEM_EINVAL);
	q = qb.q;
	q.k = 0;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &r.r), HSAMEM_EINVAL);
	q.k = SPEC_TOPK_MAX + 1;
	CHECK_RET(gpu_attend(cpu4, &sp, &src, &q, &r.r), HSAMEM_EINVAL);
	q = qb.q;
	q.pos = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &r.r), HSAMEM_EINVAL);
	q = qb.q;
	q.qr = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &r.r), HSAMEM_EINVAL);
	q = qb.q;
	q.qa = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &r.r), HSAMEM_EINVAL);

	res = r.r;
	res.out = NULL; /* the attention shown: it needs the weights and the attention queries */
	res.attn = res.score;
	res.weight = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &qb.q, &res), HSAMEM_EINVAL);
	res.weight = r.r.weight;
	q = qb.q;
	q.qa = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &res), HSAMEM_EINVAL);
	res = r.r;
	res.sel = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &qb.q, &res), HSAMEM_EINVAL);
	res = r.r;
	res.score = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &qb.q, &res), HSAMEM_EINVAL);
	res = r.r;
	res.weight = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &qb.q, &res), HSAMEM_EINVAL);

	struct hsa_source s2 = src;
	s2.landmarks = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &s2, &qb.q, &r.r), HSAMEM_EINVAL);
	s2 = src;
	s2.chunk_kv = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &s2, &qb.q, &r.r), HSAMEM_EINVAL);
	s2 = src;
	s2.tail_keys = sp.S + 1; /* a tail has at most S keys */
	CHECK_RET(gpu_attend(cpu1, &sp, &s2, &qb.q, &r.r), HSAMEM_EINVAL);
	s2.tail_keys = 1;
	s2.n_chunks = 0; /* and is a chunk of the source */
	CHECK_RET(gpu_attend(cpu1, &sp, &s2, &qb.q, &r.r), HSAMEM_EINVAL);

	struct {
		uint32_t *field;
		uint32_t value;
	} shapes[] = {
	        {&bad.S, 0},   {&bad.h_kv, 0}, {&bad.d_h, 0}, {&bad.h_q, 3},
	        {&bad.h_q, 0}, {&bad.d_r, 15}, {&bad.d_r, 1},
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		bad = sp;
		*shapes[i].field = shapes[i].value;
		CHECK(!cpu1->ops->supports(cpu1, &bad));
		CHECK_RET(gpu_attend(cpu1, &bad, &src, &qb.q, &r.r), HSAMEM_EINVAL);
	}
	bad = sp;
	bad.dtype = (enum hsa_dtype)7;
	CHECK(!cpu1->ops->supports(cpu1, &bad));
	CHECK_RET(gpu_attend(cpu1, &bad, &src, &qb.q, &r.r), HSAMEM_EINVAL);
	bad = sp;
	bad.weighting = (enum hsa_weighting)0;
	CHECK(!cpu1->ops->supports(cpu1, &bad));
	CHECK_RET(gpu_attend(cpu1, &bad, &src, &qb.q, &r.r), HSAMEM_EINVAL);

	/* the largest k is accepted */
	q = qb.q;
	q.k = SPEC_TOPK_MAX;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &q, &r.r), 0);

	rbuf_fini(&r);
	qbuf_fini(&qb);
	mem_fini(&m);
}

/* A source's error reaches the caller, from any thread; a source that misbehaves is caught. */
static void
test_source_errors(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 16, HSA_F16, HSA_SOFTMAX, false);
	struct gpu_backend *bs[2] = {cpu1, cpu4};
	struct gpu_stats st0, st1;
	struct mem m;
	struct qbuf qb;
	struct rbuf r;

	mem_init(&m, &sp, 20000, DATA_RAND, 1, 0);
	qbuf_init(&qb, &sp, 20000, 4, 8, DATA_RAND, 1, 1);
	for (int t = 0; t < 4; t++)
		qb.pos[t] = 20000 * 4;
	rbuf_init(&r, &sp, 4, 8, false);
	for (int i = 0; i < 2; i++) {
		bs[i]->ops->stats(bs[i], &st0);
		m.fail_code = -EIO;
		m.fail_lmk_at = 15000;
		CHECK_RET(attend(bs[i], &m, &qb.q, &r), -EIO);
		m.fail_lmk_at = 0;
		m.fail_code = HSAMEM_ESTORE;
		CHECK_RET(attend(bs[i], &m, &qb.q, &r), HSAMEM_ESTORE);
		m.fail_lmk_at = -1;
		CHECK_RET(attend(bs[i], &m, &qb.q, &r), 0);
		m.fail_kv_at = r.r.sel[5]; /* a chunk that is selected */
		CHECK_RET(attend(bs[i], &m, &qb.q, &r), HSAMEM_ESTORE);
		m.fail_kv_at = -1;
		m.zero_count = true;
		CHECK_RET(attend(bs[i], &m, &qb.q, &r), HSAMEM_EINTERNAL);
		m.zero_count = false;
		CHECK_RET(attend(bs[i], &m, &qb.q, &r), 0);
		bs[i]->ops->stats(bs[i], &st1);
		CHECK(st1.calls == st0.calls + 6);
		CHECK(st1.errors == st0.errors + 4);
	}
	rbuf_fini(&r);
	qbuf_fini(&qb);
	mem_fini(&m);
}

static void
test_stats(void)
{
	struct gpu_stats st;
	struct gpu_backend *b = NULL;

	cpu4->ops->stats(cpu4, &st);
	CHECK(strcmp(st.name, "cpu") == 0);
	CHECK(strstr(st.device, "4 threads") != NULL);
	CHECK(st.calls > 0);
	CHECK(st.mem_budget == 0);
	CHECK(strcmp(cpu4->ops->name, "cpu") == 0);
	if (cpu4->ops->forget != NULL)
		cpu4->ops->forget(cpu4, 1);
	CHECK_RET(gpu_cpu_alloc(0, &b), 0);
	b->ops->stats(b, &st);
	CHECK(strstr(st.device, "threads") != NULL);
	gpu_free(b);
	gpu_free(NULL);
}

/* Pieces that each mark their slot once; piece 13 fails where asked to. */
struct marks {
	atomic_int hits[64];
	int fail_at;
};

static int
mark_piece(void *arg, size_t piece)
{
	struct marks *m = arg;
	atomic_fetch_add(&m->hits[piece], 1);
	return (int)piece == m->fail_at ? -EIO : 0;
}

/* gpu_cpu_start returns while the pieces may still run; gpu_cpu_wait runs what is left and returns
 * with every piece run once, on one thread or four, with calls queued behind each other; a piece's
 * error reaches the waiter. */
static void
test_caller_pieces(void)
{
	struct gpu_backend *b[] = {cpu1, cpu4};
	for (int i = 0; i < 2; i++) {
		struct marks m1 = {.fail_at = -1}, m2 = {.fail_at = -1};
		struct cpu_job j1, j2;
		gpu_cpu_start(b[i], &j1, mark_piece, &m1, 64);
		gpu_cpu_start(b[i], &j2, mark_piece, &m2, 1);
		CHECK_RET(gpu_cpu_wait(b[i], &j2), 0);
		CHECK_RET(gpu_cpu_wait(b[i], &j1), 0);
		for (int p = 0; p < 64; p++)
			CHECK(atomic_load(&m1.hits[p]) == 1 &&
			      atomic_load(&m2.hits[p]) == (p == 0));
		struct marks bad = {.fail_at = 13};
		gpu_cpu_start(b[i], &j1, mark_piece, &bad, 20);
		CHECK_RET(gpu_cpu_wait(b[i], &j1), -EIO);
	}
}

int
main(void)
{
	rnd_seed(12345);
	if (gpu_cpu_alloc(1, &cpu1) != 0 || gpu_cpu_alloc(4, &cpu4) != 0)
		return 99;

	test_misaligned();
	test_runs();
	test_mask();
	test_select_only();
	test_sparse();
	test_concurrent();
	test_bad_args();
	test_source_errors();
	test_stats();
	test_caller_pieces();

	gpu_free(cpu4);
	gpu_free(cpu1);
	return test_done("test_hsa_cpu");
}
