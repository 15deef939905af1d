/*
 * test_hsa.c: the CPU backend's HSA attention against a naive version written here from hsamem(7)
 * alone: double precision, one loop per formula, a full sort for the top-k. Random memories of many
 * shapes and all three element types (16-bit data is generated, rounded to its type, and the naive
 * version reads the rounded values), both weightings, off-by-one on and off; then the edges: no
 * visible chunk, fewer than k, exact ties, NaN and extreme scores, k = 1 and 256, 100k chunks,
 * thread counts, landmark runs of every length, misaligned rows, concurrent callers, a source
 * whose last chunk is the unsealed tail (and the same index sealed later), the fusion weights of a
 * merged list, bad arguments and source errors. HSAMEM_TEST_QUICK=1 leaves out the large cases (for
 * valgrind).
 *
 * Scores of "grid" data (multiples of 1/4) are exact in float, so the selection must match the
 * naive one exactly, ties included; with continuous data two chunks whose scores differ only by
 * rounding may swap, which the comparison allows, skipping the outputs of that head group.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "half.h"
#include "hsa_math.h"
#include "hsamem.h"
#include "test.h"

/* ---- random data ---- */

static uint64_t rng;

static uint64_t
rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
rnd_below(uint64_t n)
{
	return n == 0 ? 0 : rnd() % n;
}

enum data { DATA_GRID, DATA_RAND };

static float
rnd_value(enum data d)
{
	if (d == DATA_GRID)
		return (float)((int)rnd_below(9) - 4) / 4.0f;
	return (float)((double)(rnd() >> 11) * 0x1p-52 - 1.0);
}

static void
put_elem(enum hsa_dtype t, void *base, size_t i, float v)
{
	uint16_t h;

	if (t == HSA_F32) {
		memcpy((char *)base + 4 * i, &v, 4); /* rows may be misaligned on purpose */
		return;
	}
	h = t == HSA_F16 ? half_f16_from_float(v) : half_bf16_from_float(v);
	memcpy((char *)base + 2 * i, &h, 2);
}

static double
get_elem(enum hsa_dtype t, const void *base, size_t i)
{
	if (t == HSA_F32) {
		float f;
		memcpy(&f, (const char *)base + 4 * i, 4);
		return f;
	}
	uint16_t h;
	memcpy(&h, (const char *)base + 2 * i, 2);
	return t == HSA_F16 ? half_f16_to_float(h) : half_bf16_to_float(h);
}

/* ---- a memory and its source ---- */

struct mem {
	struct hsa_spec spec;
	uint64_t n_chunks;
	char *lmk_alloc, *kv_alloc;
	char *lmk, *kv; /* possibly misaligned inside the allocations */
	size_t lmk_bytes, kv_bytes;
	uint32_t tail_keys;  /* non-zero: the last chunk is the unsealed tail, of this many keys */
	uint64_t max_run;    /* 0: whole runs; else runs of at most this many rows */
	bool varied_runs;    /* run lengths vary with the first row asked for */
	bool zero_count;     /* misbehave: count 0 */
	int64_t fail_lmk_at; /* -1: never fail */
	int64_t fail_kv_at;
	int fail_code;
	atomic_int bad_calls; /* calls for rows that do not exist */
};

static int
src_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct mem *m = ctx;
	uint64_t run;

	if (first >= m->n_chunks) {
		atomic_fetch_add(&m->bad_calls, 1);
		return -EIO;
	}
	run = m->n_chunks - first;
	if (m->max_run > 0) {
		uint64_t want =
		        m->varied_runs ? 1 + (first * 2654435761u) % m->max_run : m->max_run;
		if (want < run)
			run = want;
	}
	if (m->fail_lmk_at >= 0 && (uint64_t)m->fail_lmk_at >= first &&
	    (uint64_t)m->fail_lmk_at < first + run)
		return m->fail_code;
	*rows = m->lmk + first * m->lmk_bytes;
	*count = m->zero_count ? 0 : run;
	return 0;
}

static int
src_kv(void *ctx, uint64_t j, const void **kv)
{
	struct mem *m = ctx;

	if (j >= m->n_chunks) {
		atomic_fetch_add(&m->bad_calls, 1);
		return -EIO;
	}
	if (m->fail_kv_at >= 0 && (uint64_t)m->fail_kv_at == j)
		return m->fail_code;
	*kv = m->kv + j * m->kv_bytes;
	return 0;
}

static struct hsa_source
mem_source(struct mem *m)
{
	return (struct hsa_source){.ctx = m,
	                           .uid = 1,
	                           .n_chunks = m->n_chunks,
	                           .tail_keys = m->tail_keys,
	                           .landmarks = src_landmarks,
	                           .chunk_kv = src_kv};
}

static struct hsa_spec
make_spec(uint32_t S, uint32_t h_kv, uint32_t G, uint32_t d_h, uint32_t d_r, enum hsa_dtype dt,
          enum hsa_weighting w, bool obo)
{
	struct hsa_spec s = {.revision = 1,
	                     .S = S,
	                     .h_kv = h_kv,
	                     .d_h = d_h,
	                     .h_q = h_kv * G,
	                     .d_r = d_r,
	                     .dtype = dt,
	                     .weighting = w,
	                     .off_by_one = obo,
	                     .top_k = 8};
	strcpy(s.encoder, "client");
	return s;
}

/* A memory of random chunks; landmarks of lmk_data scaled by lmk_scale. */
static void
mem_init(struct mem *m, const struct hsa_spec *sp, uint64_t n_chunks, enum data lmk_data,
         float lmk_scale, size_t misalign)
{
	memset(m, 0, sizeof(*m));
	m->spec = *sp;
	m->n_chunks = n_chunks;
	m->lmk_bytes = spec_landmark_bytes(sp);
	m->kv_bytes = spec_kv_bytes(sp);
	m->fail_lmk_at = m->fail_kv_at = -1;
	m->lmk_alloc = malloc(n_chunks * m->lmk_bytes + 16);
	m->kv_alloc = malloc(n_chunks * m->kv_bytes + 16);
	if (m->lmk_alloc == NULL || m->kv_alloc == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(99);
	}
	m->lmk = m->lmk_alloc + misalign;
	m->kv = m->kv_alloc + misalign;
	for (size_t i = 0; i < n_chunks * sp->d_r; i++)
		put_elem(sp->dtype, m->lmk, i, rnd_value(lmk_data) * lmk_scale);
	for (size_t i = 0; i < n_chunks * m->kv_bytes / spec_elem_size(sp->dtype); i++)
		put_elem(sp->dtype, m->kv, i, rnd_value(DATA_RAND) * 2.0f);
}

static void
mem_fini(struct mem *m)
{
	free(m->lmk_alloc);
	free(m->kv_alloc);
}

/* ---- queries and results ---- */

struct qbuf {
	struct hsa_query q;
	uint64_t *pos;
	float *qr, *qa;
};

static void
qbuf_init(struct qbuf *b, const struct hsa_spec *sp, uint64_t n_chunks, uint32_t n, uint32_t k,
          enum data qr_data, float qr_scale, float qa_scale)
{
	b->pos = malloc(n * sizeof(uint64_t));
	b->qr = malloc((size_t)n * sp->d_r * sizeof(float));
	b->qa = malloc((size_t)n * sp->h_q * sp->d_h * sizeof(float));
	for (uint32_t t = 0; t < n; t++) {
		/* a spread of positions: none visible, past everything, on and off chunk edges */
		switch (t % 6) {
		case 0: b->pos[t] = rnd_below(sp->S); break;
		case 1: b->pos[t] = UINT64_MAX / 2 + rnd_below(1000); break;
		case 2: b->pos[t] = (n_chunks + rnd_below(3)) * sp->S; break;
		case 3: b->pos[t] = rnd_below(n_chunks + 1) * sp->S; break;
		default: b->pos[t] = rnd_below((n_chunks + 2) * sp->S); break;
		}
	}
	for (size_t i = 0; i < (size_t)n * sp->d_r; i++)
		b->qr[i] = rnd_value(qr_data) * qr_scale;
	for (size_t i = 0; i < (size_t)n * sp->h_q * sp->d_h; i++)
		b->qa[i] = rnd_value(DATA_RAND) * qa_scale;
	b->q = (struct hsa_query){.n = n, .k = k, .pos = b->pos, .qr = b->qr, .qa = b->qa};
}

static void
qbuf_fini(struct qbuf *b)
{
	free(b->pos);
	free(b->qr);
	free(b->qa);
}

struct rbuf {
	struct hsa_result r;
	size_t n_out, n_sel, n_attn;
};

static void
rbuf_init(struct rbuf *b, const struct hsa_spec *sp, uint32_t n, uint32_t k, bool attn)
{
	b->n_out = (size_t)n * sp->h_q * sp->d_h;
	b->n_sel = (size_t)n * sp->h_kv * k;
	b->n_attn = attn ? (size_t)n * sp->h_q * k * sp->S : 0;
	/* filled with garbage so that anything left unwritten shows */
	b->r.out = malloc(b->n_out * sizeof(float));
	b->r.sel = malloc(b->n_sel * sizeof(int64_t));
	b->r.score = malloc(b->n_sel * sizeof(float));
	b->r.weight = malloc(b->n_sel * sizeof(float));
	b->r.attn = attn ? malloc(b->n_attn * sizeof(float)) : NULL;
	memset(b->r.out, 0x7f, b->n_out * sizeof(float));
	memset(b->r.sel, 0x55, b->n_sel * sizeof(int64_t));
	memset(b->r.score, 0x7f, b->n_sel * sizeof(float));
	memset(b->r.weight, 0x7f, b->n_sel * sizeof(float));
	if (attn)
		memset(b->r.attn, 0x7f, b->n_attn * sizeof(float));
}

static void
rbuf_fini(struct rbuf *b)
{
	free(b->r.out);
	free(b->r.sel);
	free(b->r.score);
	free(b->r.weight);
	free(b->r.attn);
}

static bool
rbuf_same(const struct rbuf *a, const struct rbuf *b)
{
	return memcmp(a->r.out, b->r.out, a->n_out * sizeof(float)) == 0 &&
	       memcmp(a->r.sel, b->r.sel, a->n_sel * sizeof(int64_t)) == 0 &&
	       memcmp(a->r.score, b->r.score, a->n_sel * sizeof(float)) == 0 &&
	       memcmp(a->r.weight, b->r.weight, a->n_sel * sizeof(float)) == 0 &&
	       (a->r.attn == NULL || b->r.attn == NULL ||
	        memcmp(a->r.attn, b->r.attn, a->n_attn * sizeof(float)) == 0);
}

/* ---- the naive operator, straight from hsamem(7) ---- */

struct ref {
	uint32_t *kk;  /* [n][h_kv] */
	int64_t *sel;  /* [n][h_kv][k] */
	double *score; /* [n][h_kv][k] */
	double *weight;
	double *out;  /* [n][h_q][d_h] */
	double *attn; /* [n][h_q][k][S] */
	double *all;  /* [n][h_kv][n_chunks]: every visible chunk's score */
};

struct scored {
	double s;
	int64_t j;
};

static int
scored_rank(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;
	if (x->s != y->s)
		return x->s > y->s ? -1 : 1;
	return x->j < y->j ? -1 : x->j > y->j;
}

static int
scored_recent(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;
	return x->j > y->j ? -1 : x->j < y->j;
}

static double
sigmoid(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

static void
naive(const struct mem *m, const struct hsa_query *q, struct ref *ref)
{
	const struct hsa_spec *sp = &m->spec;
	uint32_t G = sp->h_q / sp->h_kv, d_rh = sp->d_r / sp->h_kv, k = q->k, S = sp->S;
	size_t kvh = (size_t)S * sp->h_kv * sp->d_h; /* elements of K, then of V */
	struct scored *cand = malloc((m->n_chunks + 1) * sizeof(*cand));
	struct scored *picked = malloc(k * sizeof(*picked));
	double *a = malloc(S * sizeof(double));

	ref->kk = calloc((size_t)q->n * sp->h_kv, sizeof(uint32_t));
	ref->sel = calloc((size_t)q->n * sp->h_kv * k, sizeof(int64_t));
	ref->score = calloc((size_t)q->n * sp->h_kv * k, sizeof(double));
	ref->weight = calloc((size_t)q->n * sp->h_kv * k, sizeof(double));
	ref->out = calloc((size_t)q->n * sp->h_q * sp->d_h, sizeof(double));
	ref->attn = calloc((size_t)q->n * sp->h_q * k * S, sizeof(double));
	ref->all = calloc((size_t)q->n * sp->h_kv * m->n_chunks + 1, sizeof(double));

	for (uint32_t t = 0; t < q->n; t++) {
		uint64_t vis = q->pos[t] / S < m->n_chunks ? q->pos[t] / S : m->n_chunks;
		for (uint32_t r = 0; r < sp->h_kv; r++) {
			size_t tr = (size_t)t * sp->h_kv + r;
			/* 1. scores of the visible chunks */
			for (uint64_t j = 0; j < vis; j++) {
				double s = 0;
				for (uint32_t e = 0; e < d_rh; e++)
					s += (double)q->qr[tr * d_rh + e] *
					     get_elem(sp->dtype, m->lmk,
					              j * sp->d_r + r * d_rh + e);
				s /= sqrt((double)d_rh);
				cand[j] = (struct scored){isnan(s) ? -INFINITY : s, (int64_t)j};
				ref->all[tr * m->n_chunks + j] = cand[j].s;
			}
			/* 2. top-k */
			qsort(cand, vis, sizeof(*cand), scored_rank);
			uint32_t kk = vis < k ? (uint32_t)vis : k;
			ref->kk[tr] = kk;
			for (uint32_t i = 0; i < kk; i++) {
				ref->sel[tr * k + i] = cand[i].j;
				ref->score[tr * k + i] = cand[i].s;
			}
			/* 3. weights */
			double *w = ref->weight + tr * k;
			if (sp->weighting == HSA_SOFTMAX && kk > 0) {
				double mx = cand[0].s, sum = 0;
				for (uint32_t i = 0; i < kk; i++)
					sum += exp(cand[i].s - mx);
				for (uint32_t i = 0; i < kk; i++)
					w[i] = exp(cand[i].s - mx) / sum;
			} else if (kk > 0) {
				memcpy(picked, cand, kk * sizeof(*picked));
				qsort(picked, kk, sizeof(*picked), scored_recent);
				double rest = 1;
				for (uint32_t n = 0; n < kk; n++) {
					for (uint32_t i = 0; i < kk; i++)
						if (cand[i].j == picked[n].j)
							w[i] = sigmoid(picked[n].s) * rest;
					rest *= 1 - sigmoid(picked[n].s);
				}
			}
			/* 4, 5. a softmax inside each selected chunk per query head, then fusion */
			for (uint32_t g = 0; g < G; g++) {
				size_t h = (size_t)t * sp->h_q + r * G + g;
				const float *qa = q->qa + h * sp->d_h;
				for (uint32_t i = 0; i < kk; i++) {
					const char *kv = m->kv + (size_t)cand[i].j * m->kv_bytes;
					double mx = -INFINITY, den = 0;
					/* the tail's padding keys are no part of it */
					bool tail = m->tail_keys > 0 &&
					            (uint64_t)cand[i].j + 1 == m->n_chunks;
					uint32_t nk = tail ? m->tail_keys : S;
					for (uint32_t s = 0; s < nk; s++) {
						size_t at = ((size_t)s * sp->h_kv + r) * sp->d_h;
						a[s] = 0;
						for (uint32_t e = 0; e < sp->d_h; e++)
							a[s] += (double)qa[e] *
							        get_elem(sp->dtype, kv, at + e);
						a[s] /= sqrt((double)sp->d_h);
						mx = a[s] > mx ? a[s] : mx;
					}
					if (sp->off_by_one && mx < 0)
						mx = 0;
					den = sp->off_by_one ? exp(0 - mx) : 0;
					for (uint32_t s = 0; s < nk; s++)
						den += exp(a[s] - mx);
					for (uint32_t s = 0; s < nk; s++) {
						double p = exp(a[s] - mx) / den;
						size_t at =
						        kvh + ((size_t)s * sp->h_kv + r) * sp->d_h;
						ref->attn[(h * k + i) * S + s] = p;
						for (uint32_t e = 0; e < sp->d_h; e++)
							ref->out[h * sp->d_h + e] +=
							        w[i] * p *
							        get_elem(sp->dtype, kv, at + e);
					}
				}
			}
		}
	}
	free(a);
	free(picked);
	free(cand);
}

static void
ref_fini(struct ref *ref)
{
	free(ref->kk);
	free(ref->sel);
	free(ref->score);
	free(ref->weight);
	free(ref->out);
	free(ref->attn);
	free(ref->all);
}

/* ---- comparison ---- */

static int reported;

static bool
near(double got, double want, double tol)
{
	if (isinf(want))
		return got == want;
	return fabs(got - want) <= tol * (fabs(want) > 1 ? fabs(want) : 1);
}

static void
mismatch(const char *what, const char *field, uint32_t t, uint32_t x, uint32_t i, double got,
         double want)
{
	test_failures++;
	if (reported++ < 20)
		fprintf(stderr, "%s: %s[t=%u][%u][%u] = %.9g, expected %.9g\n", what, field, t, x,
		        i, got, want);
}

/* Compares a result with the naive one; returns how many head groups had near-tie swaps. */
static int
compare(const struct mem *m, const struct hsa_query *q, const struct hsa_result *res,
        const struct ref *ref, double tol, const char *what)
{
	const struct hsa_spec *sp = &m->spec;
	uint32_t G = sp->h_q / sp->h_kv, k = q->k;
	int swaps = 0;

	for (uint32_t t = 0; t < q->n; t++) {
		for (uint32_t r = 0; r < sp->h_kv; r++) {
			size_t tr = (size_t)t * sp->h_kv + r;
			bool swapped = false;
			test_checks++;
			for (uint32_t i = 0; i < k; i++) {
				size_t at = tr * k + i;
				if (i >= ref->kk[tr]) {
					if (res->sel[at] != -1 || res->score[at] != -INFINITY ||
					    res->weight[at] != 0.0f)
						mismatch(what, "padding sel", t, r, i,
						         (double)res->sel[at], -1);
					continue;
				}
				if (res->sel[at] != ref->sel[at]) {
					int64_t j = res->sel[at];
					double s = j >= 0 && (uint64_t)j < m->n_chunks
					                   ? ref->all[tr * m->n_chunks + j]
					                   : NAN;
					if (!near(s, ref->score[at], 1e-5))
						mismatch(what, "sel", t, r, i, (double)j,
						         (double)ref->sel[at]);
					swapped = true;
					continue;
				}
				if (!near(res->score[at], ref->score[at], tol))
					mismatch(what, "score", t, r, i, res->score[at],
					         ref->score[at]);
				if (!swapped && !near(res->weight[at], ref->weight[at], tol))
					mismatch(what, "weight", t, r, i, res->weight[at],
					         ref->weight[at]);
			}
			if (swapped) {
				swaps++;
				continue;
			}
			for (uint32_t g = 0; g < G; g++) {
				size_t h = (size_t)t * sp->h_q + r * G + g;
				for (uint32_t e = 0; e < sp->d_h; e++) {
					size_t at = h * sp->d_h + e;
					if (!near(res->out[at], ref->out[at], tol))
						mismatch(what, "out", t, (uint32_t)h, e,
						         res->out[at], ref->out[at]);
				}
				for (size_t i = 0; res->attn != NULL && i < (size_t)k * sp->S;
				     i++) {
					size_t at = h * k * sp->S + i;
					if (!near(res->attn[at], ref->attn[at], tol))
						mismatch(what, "attn", t, (uint32_t)h, (uint32_t)i,
						         res->attn[at], ref->attn[at]);
				}
			}
		}
	}
	return swaps;
}

/* ---- the backends under test ---- */

static struct gpu_backend *cpu1, *cpu4, *cpu_portable;
static bool quick;

static int
attend(struct gpu_backend *b, struct mem *m, const struct hsa_query *q, struct rbuf *out)
{
	struct hsa_source src = mem_source(m);
	return gpu_attend(b, &m->spec, &src, q, &out->r);
}

struct case_opts {
	uint32_t n, k;
	enum data lmk_data, qr_data;
	float lmk_scale, qr_scale, qa_scale;
	double tol;
	bool runs;    /* also with short landmark runs */
	bool threads; /* also on four threads */
};

/*
 * One memory and one batch of queries: the one-thread result against the naive one, and the
 * variants (four threads, short runs) bit-identical to it. Returns the near-tie swaps seen.
 */
static int
run_case(const struct hsa_spec *sp, uint64_t n_chunks, const struct case_opts *o, const char *what)
{
	struct mem m;
	struct qbuf qb;
	struct rbuf r1, rv;
	struct ref ref;
	int swaps;

	mem_init(&m, sp, n_chunks, o->lmk_data, o->lmk_scale, 0);
	qbuf_init(&qb, sp, n_chunks, o->n, o->k, o->qr_data, o->qr_scale, o->qa_scale);
	rbuf_init(&r1, sp, o->n, o->k, true);
	CHECK_RET(attend(cpu1, &m, &qb.q, &r1), 0);
	naive(&m, &qb.q, &ref);
	swaps = compare(&m, &qb.q, &r1.r, &ref, o->tol, what);
	if (o->lmk_data == DATA_GRID && o->qr_data == DATA_GRID && swaps != 0) {
		test_failures++;
		fprintf(stderr, "%s: exact scores, yet %d selections differ\n", what, swaps);
	}
	if (o->threads) {
		rbuf_init(&rv, sp, o->n, o->k, true);
		CHECK_RET(attend(cpu4, &m, &qb.q, &rv), 0);
		if (!rbuf_same(&r1, &rv)) {
			test_failures++;
			fprintf(stderr, "%s: four threads differ from one\n", what);
		}
		rbuf_fini(&rv);
	}
	if (o->runs) {
		m.max_run = 5;
		m.varied_runs = true;
		rbuf_init(&rv, sp, o->n, o->k, true);
		CHECK_RET(attend(o->threads ? cpu4 : cpu1, &m, &qb.q, &rv), 0);
		if (!rbuf_same(&r1, &rv)) {
			test_failures++;
			fprintf(stderr, "%s: short landmark runs change the result\n", what);
		}
		rbuf_fini(&rv);
	}
	CHECK(atomic_load(&m.bad_calls) == 0);
	ref_fini(&ref);
	rbuf_fini(&r1);
	qbuf_fini(&qb);
	mem_fini(&m);
	return swaps;
}

static const struct case_opts base_opts = {
        .n = 6,
        .k = 8,
        .lmk_data = DATA_RAND,
        .qr_data = DATA_RAND,
        .lmk_scale = 1,
        .qr_scale = 1,
        .qa_scale = 1,
        .tol = 1e-4,
        .runs = true,
        .threads = true,
};

/* ---- the tests ---- */

static void
test_shapes(void)
{
	static const uint32_t Ss[] = {1, 4, 64}, hs[] = {1, 2, 4}, Gs[] = {1, 4, 16},
	                      dhs[] = {8, 64, 128}, drs[] = {1, 8, 32};
	static const uint32_t ks[] = {1, 3, 8, 16, 64};
	unsigned c = 0;
	char what[160];

	for (int a = 0; a < 3; a++) {
		for (int b = 0; b < 3; b++) {
			for (int g = 0; g < 3; g++) {
				for (int d = 0; d < 3; d++, c++) {
					if (quick && c % 9 != 0)
						continue;
					enum hsa_dtype dt = (enum hsa_dtype)(HSA_F16 + c % 3);
					enum hsa_weighting w =
					        c / 3 % 2 ? HSA_STICKBREAK : HSA_SOFTMAX;
					bool obo = c / 6 % 2;
					uint32_t d_r = hs[b] * drs[(c / 2 + d) % 3];
					struct hsa_spec sp = make_spec(Ss[a], hs[b], Gs[g], dhs[d],
					                               d_r, dt, w, obo);
					struct case_opts o = base_opts;
					o.k = ks[c % 5];
					/* keep the naive attention small */
					while (o.k > 1 &&
					       (uint64_t)o.k * sp.S * sp.h_q * sp.d_h > (1u << 21))
						o.k /= 2;
					o.lmk_data = c % 4 == 0 ? DATA_GRID : DATA_RAND;
					o.qr_data = o.lmk_data;
					uint64_t n_chunks = rnd_below(3 * o.k + 4);
					snprintf(what, sizeof(what),
					         "shape S=%u h_kv=%u G=%u d_h=%u d_r=%u %s %s%s "
					         "k=%u "
					         "chunks=%llu",
					         sp.S, sp.h_kv, Gs[g], sp.d_h, sp.d_r,
					         spec_dtype_name(dt), spec_weighting_name(w),
					         obo ? " off-by-one" : "", o.k,
					         (unsigned long long)n_chunks);
					run_case(&sp, n_chunks, &o, what);
				}
			}
		}
	}
}

/* Every dtype, weighting and off-by-one setting on one mid-sized shape. */
static void
test_modes(void)
{
	char what[128];

	for (int dt = HSA_F16; dt <= HSA_F32; dt++) {
		for (int w = HSA_SOFTMAX; w <= HSA_STICKBREAK; w++) {
			for (int obo = 0; obo < 2; obo++) {
				struct hsa_spec sp = make_spec(16, 2, 4, 32, 64, dt, w, obo);
				struct case_opts o = base_opts;
				o.n = 12;
				o.k = 16;
				snprintf(what, sizeof(what), "modes %s %s%s", spec_dtype_name(dt),
				         spec_weighting_name(w), obo ? " off-by-one" : "");
				run_case(&sp, 40, &o, what);
			}
		}
	}
}

/* Tokens that see no chunk: zeros out, padding everywhere; and a memory with no chunk at all. */
static void
test_no_visible(void)
{
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 16, HSA_F32, HSA_SOFTMAX, false);
	uint64_t pos[3] = {0, 3, 100};
	float qr[3 * 16], qa[3 * 4 * 8];
	struct mem m;
	struct rbuf r;

	for (int n_chunks = 0; n_chunks <= 1; n_chunks++) {
		mem_init(&m, &sp, (uint64_t)n_chunks, DATA_RAND, 1, 0);
		for (size_t i = 0; i < sizeof(qr) / 4; i++)
			qr[i] = rnd_value(DATA_RAND);
		for (size_t i = 0; i < sizeof(qa) / 4; i++)
			qa[i] = rnd_value(DATA_RAND);
		struct hsa_query q = {.n = 3, .k = 4, .pos = pos, .qr = qr, .qa = qa};
		rbuf_init(&r, &sp, 3, 4, true);
		CHECK_RET(attend(cpu4, &m, &q, &r), 0);
		for (uint32_t t = 0; t < 3; t++) {
			bool sees = n_chunks > 0 && t == 2;
			for (size_t i = 0; i < 2 * 4; i++) {
				size_t at = t * 8 + i;
				bool used = sees && i % 4 == 0;
				CHECK(r.r.sel[at] == (used ? 0 : -1));
				CHECK(used || r.r.score[at] == -INFINITY);
				CHECK(r.r.weight[at] == (used ? 1.0f : 0.0f));
			}
			for (size_t i = 0; !sees && i < 4 * 8; i++)
				CHECK(r.r.out[t * 32 + i] == 0.0f);
			for (size_t i = 0; !sees && i < 4 * 4 * 4; i++)
				CHECK(r.r.attn[t * 64 + i] == 0.0f);
		}
		rbuf_fini(&r);
		mem_fini(&m);
	}
}

/* Duplicate landmarks: every score ties, so the selection is the lowest indices in order. */
static void
test_ties(void)
{
	for (int w = HSA_SOFTMAX; w <= HSA_STICKBREAK; w++) {
		struct hsa_spec sp = make_spec(4, 2, 2, 8, 16, HSA_BF16, w, false);
		struct mem m;
		struct qbuf qb;
		struct rbuf r1, r4;
		struct ref ref;
		uint64_t n_chunks = 5000;

		mem_init(&m, &sp, n_chunks, DATA_GRID, 1, 0);
		for (uint64_t j = 1; j < n_chunks; j++)
			memcpy(m.lmk + j * m.lmk_bytes, m.lmk, m.lmk_bytes);
		qbuf_init(&qb, &sp, n_chunks, 8, 32, DATA_GRID, 1, 1);
		for (uint32_t t = 0; t < 8; t++)
			qb.pos[t] = (uint64_t)(t * 700) * sp.S + 1;
		rbuf_init(&r1, &sp, 8, 32, false);
		rbuf_init(&r4, &sp, 8, 32, false);
		CHECK_RET(attend(cpu1, &m, &qb.q, &r1), 0);
		CHECK_RET(attend(cpu4, &m, &qb.q, &r4), 0);
		CHECK(rbuf_same(&r1, &r4));
		for (uint32_t t = 0; t < 8; t++) {
			uint64_t vis = t * 700;
			for (uint32_t i = 0; i < 2 * 32; i++) {
				uint32_t slot = i % 32;
				CHECK(r1.r.sel[t * 64 + i] == (slot < vis ? (int64_t)slot : -1));
			}
		}
		naive(&m, &qb.q, &ref);
		compare(&m, &qb.q, &r1.r, &ref, 1e-4,
		        w == HSA_SOFTMAX ? "ties softmax" : "ties sb");
		ref_fini(&ref);
		rbuf_fini(&r4);
		rbuf_fini(&r1);
		qbuf_fini(&qb);
		mem_fini(&m);
	}

	/* few distinct landmarks: ties among many, across the pieces of four threads */
	struct hsa_spec sp = make_spec(2, 1, 1, 8, 4, HSA_F16, HSA_STICKBREAK, true);
	struct case_opts o = base_opts;
	o.lmk_data = o.qr_data = DATA_GRID;
	o.n = 9;
	o.k = 64;
	run_case(&sp, 20000, &o, "many ties");
}

/* Scores and logits far beyond exp's range: the max shift must keep everything finite. */
static void
test_extreme(void)
{
	for (int w = HSA_SOFTMAX; w <= HSA_STICKBREAK; w++) {
		for (int obo = 0; obo < 2; obo++) {
			struct hsa_spec sp = make_spec(8, 2, 2, 16, 32, HSA_F32, w, obo);
			struct case_opts o = base_opts;
			o.lmk_data = o.qr_data = DATA_GRID;
			o.lmk_scale = 256;
			o.qr_scale = 64; /* scores up to ~2^15 */
			o.qa_scale = 100;
			o.tol = 1e-3;
			o.k = 16;
			run_case(&sp, 60, &o, "extreme");

			/* and the same memory's weights: finite, softmax summing to 1 */
			struct mem m;
			struct qbuf qb;
			struct rbuf r;
			mem_init(&m, &sp, 60, DATA_GRID, 256, 0);
			qbuf_init(&qb, &sp, 60, 4, 16, DATA_GRID, 64, 100);
			for (uint32_t t = 0; t < 4; t++)
				qb.pos[t] = 60 * sp.S;
			rbuf_init(&r, &sp, 4, 16, false);
			CHECK_RET(attend(cpu1, &m, &qb.q, &r), 0);
			for (size_t tr = 0; tr < 4 * 2; tr++) {
				double sum = 0;
				for (int i = 0; i < 16; i++) {
					CHECK(isfinite(r.r.weight[tr * 16 + i]));
					sum += r.r.weight[tr * 16 + i];
				}
				if (w == HSA_SOFTMAX)
					CHECK_NEAR(sum, 1.0, 1e-5);
				else
					CHECK(sum <= 1.0 + 1e-5);
			}
			for (size_t i = 0; i < r.n_out; i++)
				CHECK(isfinite(r.r.out[i]));
			rbuf_fini(&r);
			qbuf_fini(&qb);
			mem_fini(&m);
		}
	}

	/* off-by-one with every logit far below zero: the chunk's output fades to nothing */
	struct hsa_spec sp = make_spec(4, 1, 1, 8, 8, HSA_F32, HSA_SOFTMAX, true);
	struct mem m;
	struct rbuf r;
	uint64_t pos = 4;
	float qr[8] = {1}, qa[8];
	mem_init(&m, &sp, 1, DATA_RAND, 1, 0);
	for (size_t i = 0; i < 4 * 8; i++) /* K: all ones */
		put_elem(HSA_F32, m.kv, i, 1.0f);
	for (int e = 0; e < 8; e++)
		qa[e] = -1000.0f;
	struct hsa_query q = {.n = 1, .k = 1, .pos = &pos, .qr = qr, .qa = qa};
	rbuf_init(&r, &sp, 1, 1, true);
	CHECK_RET(attend(cpu1, &m, &q, &r), 0);
	for (int e = 0; e < 8; e++)
		CHECK(r.r.out[e] == 0.0f);
	for (int s = 0; s < 4; s++)
		CHECK(r.r.attn[s] == 0.0f);
	rbuf_fini(&r);
	mem_fini(&m);
}

/* A landmark of NaN ranks as -inf: last, with weight 0. */
static void
test_nan(void)
{
	struct hsa_spec sp = make_spec(4, 1, 2, 8, 8, HSA_F16, HSA_SOFTMAX, false);
	struct case_opts o = base_opts;
	struct mem m;
	struct qbuf qb;
	struct rbuf r;
	struct ref ref;

	mem_init(&m, &sp, 10, DATA_RAND, 1, 0);
	for (int e = 0; e < 8; e++)
		put_elem(HSA_F16, m.lmk, 3 * 8 + e, NAN);
	qbuf_init(&qb, &sp, 10, 2, 10, DATA_RAND, 1, 1);
	qb.pos[0] = qb.pos[1] = 40;
	rbuf_init(&r, &sp, 2, 10, true);
	CHECK_RET(attend(cpu4, &m, &qb.q, &r), 0);
	for (int t = 0; t < 2; t++) {
		CHECK(r.r.sel[t * 10 + 9] == 3);
		CHECK(r.r.score[t * 10 + 9] == -INFINITY);
		CHECK(r.r.weight[t * 10 + 9] == 0.0f);
	}
	naive(&m, &qb.q, &ref);
	compare(&m, &qb.q, &r.r, &ref, o.tol, "nan");
	ref_fini(&ref);
	rbuf_fini(&r);
	qbuf_fini(&qb);
	mem_fini(&m);
}

static void
test_k_limits(void)
{
	struct case_opts o = base_opts;
	struct hsa_spec sp = make_spec(4, 2, 2, 8, 32, HSA_F16, HSA_SOFTMAX, true);

	o.k = 1;
	run_case(&sp, 300, &o, "k=1");
	o.k = 256;
	o.n = 8;
	sp.weighting = HSA_STICKBREAK;
	run_case(&sp, quick ? 300 : 1000, &o, "k=256");
	o.lmk_data = o.qr_data = DATA_GRID;
	run_case(&sp, quick ? 300 : 3000, &o, "k=256 grid");
}

/* Large memories, spread over four threads, against the naive scores. */
static void
test_many_chunks(void)
{
	struct case_opts o = base_opts;
	struct hsa_spec sp = make_spec(2, 2, 1, 8, 128, HSA_F16, HSA_SOFTMAX, false);
	int swaps;

	if (quick)
		return;
	o.n = 4;
	o.k = 64;
	o.runs = false;
	swaps = run_case(&sp, 100000, &o, "100k chunks");
	CHECK(swaps <= 1);
	sp = make_spec(1, 1, 4, 16, 128, HSA_F32, HSA_STICKBREAK, false);
	o.n = 70; /* two token groups */
	o.k = 32;
	o.runs = true;
	run_case(&sp, 10000, &o, "10k chunks, 70 tokens");
	sp = make_spec(2, 8, 1, 8, 1024, HSA_BF16, HSA_SOFTMAX, true);
	o.n = 3;
	o.k = 16;
	run_case(&sp, 6000, &o, "d_r=1024");
}

/*
 * Many kv heads and the largest k: four threads' heaps outgrow their budget, so the tokens go in
 * several smaller groups; one thread takes them in one. Same bits, and the naive result.
 */
static void
test_groups(void)
{
	struct hsa_spec sp = make_spec(1, 64, 1, 8, 64, HSA_BF16, HSA_SOFTMAX, false);
	struct case_opts o = base_opts;

	o.n = 40;
	o.k = 256;
	o.runs = false;
	run_case(&sp, 600, &o, "groups");
}

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

/* The portable kernels against the naive operator, and close to the dispatched ones. */
static void
test_portable(void)
{
	char what[64];

	for (int dt = HSA_F16; dt <= HSA_F32; dt++) {
		struct hsa_spec sp = make_spec(8, 2, 4, 24, 40, dt, HSA_SOFTMAX, dt == HSA_BF16);
		struct mem m;
		struct qbuf qb;
		struct rbuf r;
		struct ref ref;

		mem_init(&m, &sp, 500, DATA_RAND, 1, 0);
		/* values that reach binary16's subnormals and extremes */
		if (dt == HSA_F16) {
			put_elem(dt, m.lmk, 5, 3e-7f);
			put_elem(dt, m.lmk, 6, -6e-5f);
			put_elem(dt, m.kv, 7, 60000.0f);
		}
		qbuf_init(&qb, &sp, 500, 6, 10, DATA_RAND, 1, 1);
		rbuf_init(&r, &sp, 6, 10, true);
		CHECK_RET(attend(cpu_portable, &m, &qb.q, &r), 0);
		naive(&m, &qb.q, &ref);
		snprintf(what, sizeof(what), "portable %s", spec_dtype_name(dt));
		compare(&m, &qb.q, &r.r, &ref, 1e-4, what);
		ref_fini(&ref);
		rbuf_fini(&r);
		qbuf_fini(&qb);
		mem_fini(&m);
	}
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

/*
 * Runs one batch on one and four threads (bit-identical, both checked against the naive operator)
 * and checks that no token's attention to the tail reaches past its real keys.
 */
static void
tail_case(struct mem *m, struct qbuf *qb, const char *what)
{
	const struct hsa_spec *sp = &m->spec;
	uint32_t n = qb->q.n, k = qb->q.k, G = sp->h_q / sp->h_kv;
	struct rbuf r1, r4;
	struct ref ref;

	rbuf_init(&r1, sp, n, k, true);
	rbuf_init(&r4, sp, n, k, true);
	CHECK_RET(attend(cpu1, m, &qb->q, &r1), 0);
	CHECK_RET(attend(cpu4, m, &qb->q, &r4), 0);
	CHECK(rbuf_same(&r1, &r4));
	naive(m, &qb->q, &ref);
	compare(m, &qb->q, &r1.r, &ref, 1e-4, what);
	for (size_t x = 0; m->tail_keys > 0 && x < r1.n_sel; x++) {
		if (r1.r.sel[x] + 1 != (int64_t)m->n_chunks)
			continue;
		size_t tr = x / k, i = x % k; /* (token, kv head), rank */
		for (uint32_t g = 0; g < G; g++)
			for (uint32_t s = m->tail_keys; s < sp->S; s++)
				CHECK(r1.r.attn[((tr * G + g) * k + i) * sp->S + s] == 0.0f);
	}
	ref_fini(&ref);
	rbuf_fini(&r4);
	rbuf_fini(&r1);
}

/*
 * The unsealed tail as the source's last chunk: its in-chunk softmax runs over its real keys only
 * (its padding rows hold random values here, which must not count), it is visible from
 * n_chunks * S on, and once it is sealed under the same index with other content, all S keys of
 * the new content count and nothing of the old one is left.
 */
static void
test_tail(void)
{
	char what[128];

	for (int c = 0; c < 12; c++) {
		enum hsa_dtype dt = (enum hsa_dtype)(HSA_F16 + c % 3);
		enum hsa_weighting w = c / 3 % 2 ? HSA_STICKBREAK : HSA_SOFTMAX;
		bool obo = c / 6;
		struct hsa_spec sp = make_spec(16, 2, 2, 16, 32, dt, w, obo);
		uint64_t n_chunks = 1 + rnd_below(30);
		uint32_t k = 1 + (uint32_t)rnd_below(12);
		struct mem m;
		struct qbuf qb;

		mem_init(&m, &sp, n_chunks, DATA_RAND, 1, 0);
		m.tail_keys = 1 + (uint32_t)rnd_below(sp.S);
		qbuf_init(&qb, &sp, n_chunks, 8, k, DATA_RAND, 1, 1);
		qb.pos[0] = n_chunks * sp.S;     /* the tail just visible */
		qb.pos[1] = n_chunks * sp.S - 1; /* just not */
		snprintf(what, sizeof(what), "tail of %u keys, %llu chunks, %s %s%s k=%u",
		         m.tail_keys, (unsigned long long)n_chunks, spec_dtype_name(dt),
		         spec_weighting_name(w), obo ? " off-by-one" : "", k);
		tail_case(&m, &qb, what);

		/* sealed: new content under the same index */
		char *lmk = m.lmk + (n_chunks - 1) * m.lmk_bytes;
		char *kv = m.kv + (n_chunks - 1) * m.kv_bytes;
		for (size_t i = 0; i < sp.d_r; i++)
			put_elem(dt, lmk, i, rnd_value(DATA_RAND) * 2.0f);
		for (size_t i = 0; i < m.kv_bytes / spec_elem_size(dt); i++)
			put_elem(dt, kv, i, rnd_value(DATA_RAND) * 2.0f);
		m.tail_keys = 0;
		snprintf(what, sizeof(what), "sealed tail, %llu chunks, %s %s%s k=%u",
		         (unsigned long long)n_chunks, spec_dtype_name(dt), spec_weighting_name(w),
		         obo ? " off-by-one" : "", k);
		tail_case(&m, &qb, what);
		CHECK(atomic_load(&m.bad_calls) == 0);
		qbuf_fini(&qb);
		mem_fini(&m);
	}
}

/*
 * The fusion weights as the daemon uses them, on a merged list that is ranked by score but not
 * ordered by chunk index: against the formulas of hsamem(7) step 4 in double.
 */
static void
test_fusion_weights(void)
{
	const int64_t sel[5] = {7, 2, 9, 0, 4};
	const float score[5] = {3.5f, 1.25f, 0.5f, -2.0f, -7.0f};
	float w[5];
	double sum = 0, rest = 1;

	hsa_fusion_weights(HSA_SOFTMAX, sel, score, 5, w);
	for (int i = 0; i < 5; i++)
		sum += exp(score[i] - score[0]);
	for (int i = 0; i < 5; i++)
		CHECK(near(w[i], exp(score[i] - score[0]) / sum, 1e-6));
	hsa_fusion_weights(HSA_STICKBREAK, sel, score, 5, w);
	static const int by_recency[5] = {2, 0, 4, 1, 3}; /* chunks 9, 7, 4, 2, 0 */
	for (int n = 0; n < 5; n++) {
		int i = by_recency[n];
		CHECK(near(w[i], sigmoid(score[i]) * rest, 1e-6));
		rest *= 1 - sigmoid(score[i]);
	}
	hsa_fusion_weights(HSA_SOFTMAX, sel, score, 0, w); /* nothing selected: nothing written */
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
	res.out = NULL;
	CHECK_RET(gpu_attend(cpu1, &sp, &src, &qb.q, &res), HSAMEM_EINVAL);
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

int
main(void)
{
	const char *qk = getenv("HSAMEM_TEST_QUICK");

	quick = qk != NULL && strcmp(qk, "0") != 0;
	rng = 12345;
	if (gpu_cpu_alloc(1, &cpu1) != 0 || gpu_cpu_alloc(4, &cpu4) != 0)
		return 99;
	setenv("HSAMEM_CPU_KERNELS", "portable", 1);
	if (gpu_cpu_alloc(2, &cpu_portable) != 0)
		return 99;
	unsetenv("HSAMEM_CPU_KERNELS");

	test_shapes();
	test_modes();
	test_no_visible();
	test_ties();
	test_extreme();
	test_nan();
	test_k_limits();
	test_many_chunks();
	test_groups();
	test_misaligned();
	test_runs();
	test_portable();
	test_concurrent();
	test_tail();
	test_fusion_weights();
	test_bad_args();
	test_source_errors();
	test_stats();

	gpu_free(cpu_portable);
	gpu_free(cpu4);
	gpu_free(cpu1);
	return test_done("test_hsa");
}
