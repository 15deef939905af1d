/*
 * bm25.h: the exact Okapi BM25 of chunks for a question, the second pass of every lexical
 * ranking (hsamem(7), QUERY MODES; encoder/LEXICAL.md, "The exact pass").
 *
 * The lexical landmark ranks a whole memory in one pass, but it holds each term in hashed
 * buckets that the chunk's other terms share, and it leaves stopwords out so that this noise
 * stays small. Its best chunks are therefore scored again here from their own tokens: every word
 * a term (stopwords too: BM25's idf already weighs a common one little, and in a memory where
 * "my" is rare it is what a personal fact and its question share), no hashing, the memory's own
 * term statistics (store.h, TERMS).
 */
#ifndef HSAMEM_BM25_H
#define HSAMEM_BM25_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "store.h"
#include "tokenizer.h"

struct job;

/* A question's distinct terms weighed by one memory's statistics, in a job's arena. */
struct bm25_question {
	size_t n;       /* distinct terms */
	uint32_t *ids;  /* [n], ascending */
	float *idf;     /* [n] */
	float idf_sum;  /* their sum (0: the question has no term) */
	uint32_t *slot; /* [mask + 1] open addressing of the terms: index + 1, 0 for none */
	uint32_t mask;
};

/*
 * The statistics of a question of n ids in memory uid, in txn's snapshot and the job's arena: its
 * distinct ids, ascending, each with its document frequency, and the memory's totals. Read once
 * a query, for the lexical encoder's query vector (encode_query_stats) and for bm25_question_init
 * alike. Returns 0 or an error.
 */
int bm25_stats(struct job *job, struct store_txn *txn, uint64_t uid, const uint32_t *tok, size_t n,
               struct enc_stats *st);

/*
 * The question whose statistics st holds (bm25_stats of its lex1 ids, or of a client's ids: any id
 * but padding and punctuation is a term). Returns 0 or -ENOMEM.
 */
int bm25_question_init(struct job *job, const struct enc_stats *st, struct bm25_question *q);

/*
 * The BM25 score of a chunk's n tokens on the lexical landmark's scale: BM25_SCALE times the sum
 * over the question's terms of idf times the term's saturated frequency, over the sum of the
 * question's idf. The chunk's length is its terms (padding and punctuation are none), against the
 * landmark's reference length. A chunk that holds every term of the question once, at the
 * reference length, scores BM25_SCALE; one that holds none, 0. tf: the caller's scratch of q->n
 * counts, so that threads score with one question at once.
 */
float bm25_score(const struct bm25_question *q, const uint32_t *tok, size_t n, uint32_t *tf);

#define BM25_SCALE 8.0f
#define BM25_K1    1.2f
#define BM25_B     0.75f
/* The reference length of a chunk in words, the lexical landmark's (encoder/LEXICAL.md): a chunk of
 * 64 tokens of prose holds about that many. A chunk's length is its words, not its tokens: a rule
 * of dashes is dozens of punctuation tokens and no word. */
#define BM25_AVGDL 48.0f

/* Whether a lex1 id (or a client's) is a term: padding and punctuation are none. */
static inline bool
bm25_is_term(uint32_t id)
{
	enum lex1_kind k = lex1_kind(id);
	return k != LEX1_K_PAD && k != LEX1_K_PUNCT;
}

/* One term's summand of BM25: its idf times its saturated frequency tf in a text of dl terms. */
static inline float
bm25_summand(float idf, uint32_t tf, size_t dl)
{
	float norm = BM25_K1 * (1.0f - BM25_B + BM25_B * (float)dl / BM25_AVGDL);
	return idf * (float)tf * (BM25_K1 + 1.0f) / ((float)tf + norm);
}

#endif
