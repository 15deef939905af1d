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

#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "store.h"

struct job;

/* A question's distinct terms weighed by one memory's statistics, in a job's arena. */
struct bm25_question {
	size_t n;       /* distinct terms */
	uint32_t *ids;  /* [n], ascending */
	float *idf;     /* [n] */
	uint32_t *df;   /* [n] in how many chunks each occurs */
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

/*
 * BM25 over entries, from the word index (store_filter.h, WORDS). The unit of a chunk's score is
 * its 64 tokens, and a fact of one sentence appended as an entry of its own shares its chunk with
 * the text beside it; BM25 over entries weighs it as what it is, a short text that holds the
 * question's words. So every lexical ranking also ranks the entries that the question's rarer
 * words find, by the same formula over each entry's own words and length (on the chunks' scale,
 * with the same idf and reference length), and a chunk scores the better of its own BM25 and that
 * of the best entry it holds the most of (an entry cut by a chunk boundary counts in one of its
 * two chunks, so that a ranking of chunks holds each entry once). The question's terms are read
 * rarest first, each whole or not at all, while their postings fit BM25_POSTINGS_MAX: a common word
 * weighs little and would cost most. An entry that spans more than BM25_ENTRY_CHUNKS chunks (a
 * document) is left to its chunks' own scores, which tell which of its chunks holds the words.
 */
#define BM25_POSTINGS_MAX 4096
#define BM25_ENTRY_CHUNKS 2
#define BM25_ENTRY_DEPTH  32 /* the chunks of the best entries that join a ranking's candidates */

/* The words of an entry's text for the word index: its distinct lex1 terms (padding and
 * punctuation are none) ascending, each with its count, and its length in terms. */
struct bm25_words {
	struct store_word *words;
	uint32_t n;
	uint32_t n_terms;
	size_t cap;
};

/* w (zeroed, or reused) gets the words of text[0, len). Returns 0 or -ENOMEM. */
int bm25_words_of(struct bm25_words *w, const char *text, size_t len);
void bm25_words_free(struct bm25_words *w);

/* Entry e written with the words of w (w must outlive the write). */
static inline void
bm25_words_give(const struct bm25_words *w, struct store_entry *e)
{
	e->words = w->words;
	e->n_words = w->n;
	e->n_terms = w->n_terms;
}

/* A chunk and the score of the best entry it holds. */
struct bm25_hit {
	int64_t chunk;
	float score;
};

/*
 * The chunks of memory u that hold the best entries for question q by BM25 over entries (above),
 * among those mask allows (NULL: all; the unsealed tail is chunk u->n_chunks, and only where tail
 * is true): at most depth, each with its best entry's score, best first (ties to the lower index),
 * into out (room for depth); their count into *n. Returns 0 or an error.
 */
int bm25_entries(struct job *job, struct store_txn *txn, const struct store_user *u,
                 const struct bm25_question *q, const uint64_t *mask, bool tail, size_t depth,
                 struct bm25_hit *out, size_t *n);

#endif
