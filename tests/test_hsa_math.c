/*
 * test_hsa_math.c: the reference math of HSA attention (common/hsa_math.h), alone: the ranking of
 * candidates, the bounded top-k fed in ranges, the fusion weights of a merged list and the softmax
 * inside a chunk, each against its formula in hsamem(7) written here in double. The operator built
 * from them is test_hsa.c's. And the rows of floats to f16 (half.c), against the scalar rule.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "hsa_fixture.h"
#include "hsa_math.h"
#include "test.h"

/* The ranking: higher score first, ties to the lower index; -inf after every finite score. */
static void
test_cand_cmp(void)
{
	struct hsa_cand a = {2.0f, 5}, b = {1.0f, 1}, c = {2.0f, 7}, ninf = {-INFINITY, 0};

	CHECK(hsa_cand_cmp(&a, &b) < 0 && hsa_cand_cmp(&b, &a) > 0);
	CHECK(hsa_cand_cmp(&a, &c) < 0 && hsa_cand_cmp(&c, &a) > 0);
	CHECK(hsa_cand_cmp(&b, &ninf) < 0 && hsa_cand_cmp(&ninf, &b) > 0);
	CHECK(hsa_cand_cmp(&a, &a) == 0);
}

static int
rank_ref(const void *x, const void *y)
{
	const struct hsa_cand *a = x, *b = y;
	if (a->s != b->s)
		return a->s > b->s ? -1 : 1;
	return a->j < b->j ? -1 : a->j > b->j;
}

/*
 * The best k of 1000 scores with many ties, a NaN (ranked as -inf) and infinities, offered in
 * three ranges whose first index is not 0: the heap, once sorted, is the head of a full sort.
 */
static void
test_offer_scores(void)
{
	static const uint32_t ks[] = {1, 7, 64, 1000, 1500};
	enum { N = 1000, J0 = 10 };
	static const size_t cut[] = {0, 300, 301, N};
	const float scale = 0.5f;
	float dots[N];
	struct hsa_cand all[N], heap[1500];

	for (size_t i = 0; i < N; i++)
		dots[i] = rnd_value(DATA_GRID) * 4.0f;
	dots[17] = NAN;
	dots[400] = INFINITY;
	dots[401] = -INFINITY;
	for (size_t i = 0; i < N; i++) {
		float s = dots[i] * scale;
		all[i] = (struct hsa_cand){isnan(s) ? -INFINITY : s, J0 + (int64_t)i};
	}
	qsort(all, N, sizeof(all[0]), rank_ref);
	for (size_t x = 0; x < sizeof(ks) / sizeof(ks[0]); x++) {
		uint32_t size = 0, want = ks[x] < N ? ks[x] : N;
		int bad = 0;
		for (int r = 0; r < 3; r++)
			hsa_offer_scores(heap, &size, ks[x], dots + cut[r], cut[r + 1] - cut[r],
			                 scale, J0 + (int64_t)cut[r]);
		CHECK_RET(size, want);
		qsort(heap, size, sizeof(heap[0]), hsa_cand_cmp);
		for (uint32_t i = 0; i < size && i < want; i++)
			bad += heap[i].s != all[i].s || heap[i].j != all[i].j;
		CHECK(bad == 0);
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

/* The softmax inside a chunk, with and without off-by-one, against the formula in double. */
static void
test_chunk_softmax(void)
{
	static const uint32_t ns[] = {1, 5, 64};
	float a[64], logit[64];

	for (size_t x = 0; x < sizeof(ns) / sizeof(ns[0]); x++) {
		for (int obo = 0; obo < 2; obo++) {
			uint32_t n = ns[x];
			double m = -INFINITY, den = 0, sum = 0;
			for (uint32_t s = 0; s < n; s++) {
				a[s] = logit[s] = rnd_value(DATA_RAND) * 8.0f;
				m = fmax(m, (double)logit[s] * 0.25);
			}
			hsa_chunk_softmax(a, n, 0.25f, obo);
			if (obo && m < 0)
				m = 0;
			den = obo ? exp(-m) : 0;
			for (uint32_t s = 0; s < n; s++)
				den += exp((double)logit[s] * 0.25 - m);
			for (uint32_t s = 0; s < n; s++) {
				CHECK(near(a[s], exp((double)logit[s] * 0.25 - m) / den, 1e-6));
				sum += a[s];
			}
			if (!obo)
				CHECK_NEAR(sum, 1.0, 1e-6);
		}
	}

	/* logits far below zero: off-by-one fades them all to nothing, else they share alike */
	for (int s = 0; s < 4; s++)
		a[s] = -1000.0f;
	hsa_chunk_softmax(a, 4, 1.0f, true);
	for (int s = 0; s < 4; s++)
		CHECK(a[s] == 0.0f);
	for (int s = 0; s < 4; s++)
		a[s] = -1000.0f;
	hsa_chunk_softmax(a, 4, 1.0f, false);
	for (int s = 0; s < 4; s++)
		CHECK(a[s] == 0.25f);
}

/* half_f16_from_floats (F16C where the CPU has it) gives half_f16_from_float's bits: every
 * 61st float bit pattern (every exponent, both signs, NaNs and infinities among them), the edges
 * of f16's range and its ties, in rows of every length mod 8. */
static void
test_f16_rows(void)
{
	enum { N = 1 << 16 };
	static float f[N];
	static uint16_t got[N];
	static const float edge[] = {0.0f,           -0.0f,          65504.0f,
	                             65519.996f,     65520.0f,       -65520.0f,
	                             6.1035156e-05f, 6.0975552e-05f, 5.9604645e-08f,
	                             2.9802322e-08f, 2.9802326e-08f, 8.9406967e-08f,
	                             1.0009766f,     1.0004883f,     1.0014648f,
	                             INFINITY,       -INFINITY,      NAN};
	size_t bad = 0, n = 0;
	for (uint64_t u = 0; u <= UINT32_MAX; u += 61) {
		uint32_t x = (uint32_t)u;
		memcpy(&f[n++], &x, 4);
		if (n == N || u + 61 > UINT32_MAX) {
			size_t m = n > 8 ? n - (u / 61) % 8
			                 : n; /* rows ending anywhere in a group of 8 */
			half_f16_from_floats(f, got, m);
			for (size_t i = 0; i < m; i++)
				bad += got[i] != half_f16_from_float(f[i]);
			n = 0;
		}
	}
	size_t ne = sizeof(edge) / sizeof(edge[0]);
	half_f16_from_floats(edge, got, ne);
	for (size_t i = 0; i < ne; i++)
		bad += got[i] != half_f16_from_float(edge[i]);
	CHECK(bad == 0);
	CHECK(half_f16_from_float(65520.0f) == 0x7c00 && half_f16_from_float(65519.996f) == 0x7bff);
}

int
main(void)
{
	rnd_seed(12345);
	test_cand_cmp();
	test_offer_scores();
	test_fusion_weights();
	test_chunk_softmax();
	test_f16_rows();
	return test_done("test_hsa_math");
}
