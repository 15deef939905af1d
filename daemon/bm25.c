/*
 * bm25.c: the exact BM25 of chunks for a question (bm25.h). Okapi BM25 with k1 1.2 and b 0.75,
 * as the lexical encoder's landmark (encoder/LEXICAL.md, revision 2) and SQLite FTS5 use, and
 * idf = ln(1 + (N - df + 0.5) / (df + 0.5)), always positive.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "ops.h"
#include "tokenizer.h"

/* A term's first slot in q's table (Fibonacci hashing; the table is a power of two). */
static inline uint32_t
slot_of(const struct bm25_question *q, uint32_t id)
{
	return (uint32_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 40) & q->mask;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

int
bm25_stats(struct job *job, struct store_txn *txn, uint64_t uid, const uint32_t *tok, size_t n,
           struct enc_stats *st)
{
	struct store_terms t;
	uint32_t *ids = arena_calloc(&job->arena, n + 1, sizeof(*ids));
	uint32_t *df = arena_calloc(&job->arena, n + 1, sizeof(*df));
	if (ids == NULL || df == NULL)
		return -ENOMEM;
	memcpy(ids, tok, n * sizeof(*ids));
	qsort(ids, n, sizeof(*ids), cmp_u32);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (m == 0 || ids[m - 1] != ids[i])
			ids[m++] = ids[i];
	int ret = store_terms_get(txn, uid, &t);
	if (ret == 0)
		ret = store_terms_df(txn, uid, ids, m, df);
	if (ret == 0)
		*st = (struct enc_stats){
		        .chunks = t.chunks, .tokens = t.tokens, .n = m, .ids = ids, .df = df};
	return ret;
}

int
bm25_question_init(struct job *job, const struct enc_stats *st, struct bm25_question *q)
{
	memset(q, 0, sizeof(*q));
	q->ids = arena_calloc(&job->arena, st->n + 1, sizeof(*q->ids));
	q->idf = arena_calloc(&job->arena, st->n + 1, sizeof(*q->idf));
	if (q->ids == NULL || q->idf == NULL)
		return -ENOMEM;
	/* the terms: st's distinct ids (ascending) that are terms */
	for (size_t i = 0; i < st->n; i++)
		if (bm25_is_term(st->ids[i])) {
			double N = (double)st->chunks, d = st->df[i] < N ? st->df[i] : N;
			q->idf[q->n] = (float)log(1.0 + (N - d + 0.5) / (d + 0.5));
			q->idf_sum += q->idf[q->n];
			q->ids[q->n++] = st->ids[i];
		}
	/* at most half full, so that a token that is no term ends its probe soon */
	q->mask = 15;
	while (q->mask + 1 < 2 * q->n)
		q->mask = 2 * q->mask + 1;
	if ((q->slot = arena_calloc(&job->arena, q->mask + 1, sizeof(*q->slot))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < q->n; i++) {
		uint32_t h = slot_of(q, q->ids[i]);
		while (q->slot[h] != 0)
			h = (h + 1) & q->mask;
		q->slot[h] = (uint32_t)i + 1;
	}
	return 0;
}

float
bm25_score(const struct bm25_question *q, const uint32_t *tok, size_t n, uint32_t *tf)
{
	size_t m = q->n, dl = 0;
	if (m == 0 || !(q->idf_sum > 0))
		return 0;
	memset(tf, 0, m * sizeof(*tf));
	for (size_t i = 0; i < n; i++) {
		if (!bm25_is_term(tok[i]))
			continue;
		dl++;
		for (uint32_t h = slot_of(q, tok[i]); q->slot[h] != 0; h = (h + 1) & q->mask)
			if (q->ids[q->slot[h] - 1] == tok[i]) {
				tf[q->slot[h] - 1]++;
				break;
			}
	}
	float s = 0;
	for (size_t i = 0; i < m; i++)
		if (tf[i] > 0)
			s += bm25_summand(q->idf[i], tf[i], dl);
	return BM25_SCALE * s / q->idf_sum;
}
