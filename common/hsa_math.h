/*
 * hsa_math.h: the reference math of HSA attention, the one place where hsamem(7)'s formulas are
 * written for the host: how a chunk's score is made and ranked, how the top-k is kept, the fusion
 * weights of a selection, and the softmax inside a chunk. The CPU backend (gpu/cpu.c) computes the
 * operator with these; the daemon weights a query's merged hit list with hsa_fusion_weights(); the
 * CUDA kernels (gpu/cuda_*.cu) compute the same formulas on the device and are tested
 * against the CPU backend.
 *
 * Everything is fp32, pure (no state, no allocation) and deterministic: equal inputs give
 * bit-identical outputs, whichever thread computes them.
 */
#ifndef HSAMEM_HSA_MATH_H
#define HSAMEM_HSA_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

/*
 * A candidate chunk: its score and index. The ranking (hsamem(7) step 3) is higher score first,
 * ties to the lower index: a strict total order, so a top-k does not depend on the order in which
 * candidates are offered.
 */
struct hsa_cand {
	float s;
	int64_t j;
};

/* qsort comparator of candidates by the ranking, best first. */
int hsa_cand_cmp(const void *a, const void *b);

/*
 * Scores chunks j0 .. j0+n-1 from their dot products with the retrieval query (hsamem(7) step 2:
 * s = dot * scale, scale = 1/sqrt(d_r/h_kv); a NaN score ranks as -inf, so every visible chunk
 * stays a candidate) and offers each to a bounded heap of the best k. heap holds k candidates, of
 * which *size are in use (0 for an empty heap); it is a heap, not a ranking: sort it with
 * hsa_cand_cmp (after merging heaps, if the chunks were cut into ranges).
 */
void hsa_offer_scores(struct hsa_cand *heap, uint32_t *size, uint32_t k, const float *dots,
                      size_t n, float scale, int64_t j0);

/*
 * The same, offering only the chunks whose bit is set in mask (bit j of mask[j / 64]; a filter's
 * chunk mask, backend.h): the others are not candidates at all.
 */
void hsa_offer_scores_masked(struct hsa_cand *heap, uint32_t *size, uint32_t k, const float *dots,
                             size_t n, float scale, int64_t j0, const uint64_t *mask);

/* How many of chunks 0 .. n-1 mask allows (NULL: all n). */
uint64_t hsa_mask_count(const uint64_t *mask, uint64_t n);

/*
 * The fusion weights (hsamem(7) step 4) of n selected chunks listed best first by the ranking, with
 * their indices sel and scores score: a softmax over the scores (scores of +-inf take its limit),
 * or stick-breaking over the chunks most recent (highest index) first, which sums to at most 1.
 * The indices must be distinct. Writes weight[0 .. n-1].
 */
void hsa_fusion_weights(enum hsa_weighting mode, const int64_t *sel, const float *score, uint32_t n,
                        float *weight);

/*
 * The softmax inside one chunk (hsamem(7) step 5), in place over the logits of its n keys: each is
 * multiplied by scale (1/sqrt(d_h)) first; off_by_one adds exp(0) to the denominator. n is S for a
 * sealed chunk, padding keys of a flushed chunk included; for the unsealed tail it is its real
 * keys only (backend.h).
 */
void hsa_chunk_softmax(float *a, uint32_t n, float scale, bool off_by_one);

#endif
