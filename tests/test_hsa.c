/*
 * test_hsa.c: the CPU backend's HSA attention against a naive version written here from hsamem(7)
 * alone: double precision, one loop per formula, a full sort for the top-k. Random memories of many
 * shapes and all three element types (16-bit data is generated, rounded to its type, and the naive
 * version reads the rounded values), both weightings, off-by-one on and off; then the edges: no
 * visible chunk, fewer than k, exact ties, NaN and extreme scores, k = 1 and 256, 100k chunks,
 * token groups, the portable kernels, a source whose last chunk is the unsealed tail (and the same
 * index sealed later). HSAMEM_TEST_QUICK=1 leaves out the large cases (for valgrind).
 * test_hsa_cpu.c tests the backend's own promises (the same bits whatever its threads, runs and
 * callers; its argument checks, source errors and counters), test_hsa_math.c the reference math.
 *
 * Scores of "grid" data (multiples of 1/4) are exact in float, so the selection must match the
 * naive one exactly, ties included; with continuous data two chunks whose scores differ only by
 * rounding may swap, which the comparison allows, skipping the outputs of that head group.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hsa_fixture.h"
#include "test.h"

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

int
main(void)
{
	const char *qk = getenv("HSAMEM_TEST_QUICK");

	quick = qk != NULL && strcmp(qk, "0") != 0;
	rnd_seed(12345);
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
	test_portable();
	test_tail();

	gpu_free(cpu_portable);
	gpu_free(cpu4);
	gpu_free(cpu1);
	return test_done("test_hsa");
}
