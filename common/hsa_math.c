/*
 * hsa_math.c: the reference math of HSA attention (hsa_math.h). The hot part is hsa_offer_scores,
 * called for every block of landmarks: its heap keeps the worst of the best k at the root, so most
 * chunks are turned away with one comparison.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "hsa_math.h"

static inline bool
ranks_before(float as, int64_t aj, float bs, int64_t bj)
{
	return as > bs || (as == bs && aj < bj);
}

/* Offers a candidate to a bounded heap of the best k whose root h[0] is the worst kept. */
static inline void
heap_offer(struct hsa_cand *h, uint32_t *size, uint32_t k, float s, int64_t j)
{
	uint32_t i;

	if (*size < k) {
		for (i = (*size)++; i > 0; i = (i - 1) / 2) {
			struct hsa_cand *up = &h[(i - 1) / 2];
			if (!ranks_before(up->s, up->j, s, j))
				break;
			h[i] = *up;
		}
	} else if (ranks_before(s, j, h[0].s, h[0].j)) {
		for (i = 0;;) {
			uint32_t c = 2 * i + 1;
			if (c >= k)
				break;
			if (c + 1 < k && ranks_before(h[c].s, h[c].j, h[c + 1].s, h[c + 1].j))
				c++;
			if (!ranks_before(s, j, h[c].s, h[c].j))
				break;
			h[i] = h[c];
			i = c;
		}
	} else {
		return;
	}
	h[i] = (struct hsa_cand){s, j};
}

int
hsa_cand_cmp(const void *a, const void *b)
{
	const struct hsa_cand *x = a, *y = b;
	if (ranks_before(x->s, x->j, y->s, y->j))
		return -1;
	return ranks_before(y->s, y->j, x->s, x->j) ? 1 : 0;
}

void
hsa_offer_scores(struct hsa_cand *heap, uint32_t *size, uint32_t k, const float *dots, size_t n,
                 float scale, int64_t j0)
{
	for (size_t i = 0; i < n; i++) {
		float s = dots[i] * scale;
		if (isnan(s))
			s = -INFINITY;
		heap_offer(heap, size, k, s, j0 + (int64_t)i);
	}
}

void
hsa_offer_scores_masked(struct hsa_cand *heap, uint32_t *size, uint32_t k, const float *dots,
                        size_t n, float scale, int64_t j0, const uint64_t *mask)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t j = (uint64_t)j0 + i;
		if (!((mask[j / 64] >> (j % 64)) & 1))
			continue;
		float s = dots[i] * scale;
		if (isnan(s))
			s = -INFINITY;
		heap_offer(heap, size, k, s, (int64_t)j);
	}
}

uint64_t
hsa_mask_count(const uint64_t *mask, uint64_t n)
{
	if (mask == NULL)
		return n;
	uint64_t c = 0;
	for (uint64_t w = 0; w < n / 64; w++)
		c += (uint64_t)__builtin_popcountll(mask[w]);
	if (n % 64 != 0)
		c += (uint64_t)__builtin_popcountll(mask[n / 64] & ((1ull << (n % 64)) - 1));
	return c;
}

void
hsa_fusion_weights(enum hsa_weighting mode, const int64_t *sel, const float *s, uint32_t kk,
                   float *w)
{
	if (kk == 0)
		return;
	if (mode == HSA_STICKBREAK) {
		/*
		 * Most recent first: the selection is ranked by score, so walk it by decreasing
		 * chunk index, each step taking the highest index below the previous one.
		 */
		float rest = 1.0f;
		int64_t prev = INT64_MAX;
		for (uint32_t n = 0; n < kk; n++) {
			uint32_t at = 0;
			int64_t best = -1;
			for (uint32_t i = 0; i < kk; i++) {
				if (sel[i] < prev && sel[i] > best) {
					best = sel[i];
					at = i;
				}
			}
			prev = best;
			/* sigmoid(x) and 1 - sigmoid(x) = sigmoid(-x), neither overflowing. */
			float x = s[at], e = expf(-fabsf(x));
			float sig = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
			float sig_neg = x >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
			w[at] = sig * rest;
			rest *= sig_neg;
		}
		return;
	}

	/* Softmax; s[0] is the largest score. Scores of +-inf take the limit of the softmax. */
	float m = s[0], sum = 0.0f;
	if (m == -INFINITY) {
		for (uint32_t i = 0; i < kk; i++)
			w[i] = 0.0f;
		return;
	}
	for (uint32_t i = 0; i < kk; i++) {
		w[i] = m == INFINITY ? (s[i] == INFINITY ? 1.0f : 0.0f) : expf(s[i] - m);
		sum += w[i];
	}
	for (uint32_t i = 0; i < kk; i++)
		w[i] /= sum;
}

void
hsa_chunk_softmax(float *a, uint32_t n, float scale, bool off_by_one)
{
	float m = -INFINITY, sum;

	for (uint32_t s = 0; s < n; s++) {
		a[s] *= scale;
		if (a[s] > m)
			m = a[s];
	}
	if (off_by_one && m < 0.0f)
		m = 0.0f; /* keeps exp(0 - m) <= 1 as well */
	sum = off_by_one ? expf(-m) : 0.0f;
	for (uint32_t s = 0; s < n; s++) {
		a[s] = expf(a[s] - m);
		sum += a[s];
	}
	float inv = 1.0f / sum;
	for (uint32_t s = 0; s < n; s++)
		a[s] *= inv;
}
