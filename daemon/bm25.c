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
#include "store_filter.h"
#include "tokenizer.h"

#define K1 1.2f
#define B  0.75f

/* The reference length of a chunk in words, the lexical landmark's (encoder/LEXICAL.md): a chunk of
 * 64 tokens of prose holds about that many. A chunk's length is its words, not its tokens: a rule
 * of dashes is dozens of punctuation tokens and no word. */
#define AVGDL 48.0f

static bool
is_term(uint32_t id)
{
	enum lex1_kind k = lex1_kind(id);
	return k != LEX1_K_PAD && k != LEX1_K_PUNCT;
}

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
	q->df = arena_calloc(&job->arena, st->n + 1, sizeof(*q->df));
	if (q->ids == NULL || q->idf == NULL || q->df == NULL)
		return -ENOMEM;
	/* the terms: st's distinct ids (ascending) that are terms */
	for (size_t i = 0; i < st->n; i++)
		if (is_term(st->ids[i])) {
			double N = (double)st->chunks, d = st->df[i] < N ? st->df[i] : N;
			q->idf[q->n] = (float)log(1.0 + (N - d + 0.5) / (d + 0.5));
			q->idf_sum += q->idf[q->n];
			q->df[q->n] = st->df[i];
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
		if (!is_term(tok[i]))
			continue;
		dl++;
		for (uint32_t h = slot_of(q, tok[i]); q->slot[h] != 0; h = (h + 1) & q->mask)
			if (q->ids[q->slot[h] - 1] == tok[i]) {
				tf[q->slot[h] - 1]++;
				break;
			}
	}
	float norm = K1 * (1.0f - B + B * (float)dl / AVGDL), s = 0;
	for (size_t i = 0; i < m; i++)
		if (tf[i] > 0)
			s += q->idf[i] * (float)tf[i] * (K1 + 1.0f) / ((float)tf[i] + norm);
	return BM25_SCALE * s / q->idf_sum;
}

/* One term's saturated frequency, weighed by its idf: BM25's summand. */
static inline float
summand(float idf, uint32_t tf, uint32_t dl)
{
	return idf * (float)tf * (K1 + 1.0f) /
	       ((float)tf + K1 * (1.0f - B + B * (float)dl / AVGDL));
}

static int
cmp_word(const void *a, const void *b)
{
	const struct store_word *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

int
bm25_words_of(struct bm25_words *w, const char *text, size_t len)
{
	struct lex1_cursor c;
	struct enc_token t;
	w->n = w->n_terms = 0;
	lex1_cursor_init(&c, text, len);
	while (lex1_next(&c, &t)) {
		if (!is_term(t.id))
			continue;
		if (w->n_terms == w->cap) {
			size_t cap = w->cap ? 2 * w->cap : 256;
			struct store_word *p = realloc(w->words, cap * sizeof(*p));
			if (p == NULL)
				return -ENOMEM;
			w->words = p;
			w->cap = cap;
		}
		w->words[w->n_terms++] = (struct store_word){t.id, 1};
	}
	qsort(w->words, w->n_terms, sizeof(*w->words), cmp_word);
	for (uint32_t i = 0; i < w->n_terms; i++)
		if (w->n > 0 && w->words[w->n - 1].id == w->words[i].id)
			w->words[w->n - 1].tf++;
		else
			w->words[w->n++] = w->words[i];
	return 0;
}

void
bm25_words_free(struct bm25_words *w)
{
	free(w->words);
	*w = (struct bm25_words){0};
}

/* An entry being scored, in an open-addressed table by seq (seq + 1: 0 is an empty slot). */
struct scored {
	uint64_t seq1;
	uint64_t first_token;
	uint32_t n_tokens;
	float s;
};

static int
cmp_hit(const void *a, const void *b)
{
	const struct bm25_hit *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return (x->chunk > y->chunk) - (x->chunk < y->chunk);
}

static int
cmp_hit_chunk(const void *a, const void *b)
{
	const struct bm25_hit *x = a, *y = b;
	if (x->chunk != y->chunk)
		return (x->chunk > y->chunk) - (x->chunk < y->chunk);
	return (x->score < y->score) - (x->score > y->score);
}

int
bm25_entries(struct job *job, struct store_txn *txn, const struct store_user *u,
             const struct bm25_question *q, const uint64_t *mask, bool tail, size_t depth,
             struct bm25_hit *out, size_t *n)
{
	const uint64_t S = u->spec.S;
	*n = 0;
	if (!(u->flags & STORE_USER_WORDS) || q->n == 0 || !(q->idf_sum > 0) || depth == 0)
		return 0;
	uint32_t *order = arena_calloc(&job->arena, q->n, sizeof(*order));
	size_t *end = arena_calloc(&job->arena, q->n, sizeof(*end));
	struct store_posting *post =
	        arena_alloc(&job->arena, (BM25_POSTINGS_MAX + 1) * sizeof(*post));
	if (order == NULL || end == NULL || post == NULL)
		return -ENOMEM;
	/* the terms rarest first (by their chunks': an entry's is near it) */
	for (uint32_t i = 0; i < q->n; i++) {
		uint32_t j = i;
		for (; j > 0 && q->df[order[j - 1]] > q->df[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	/* their postings, each term's whole or none, while they fit */
	size_t used = 0, n_read = 0;
	for (; n_read < q->n; n_read++) {
		uint32_t t = order[n_read];
		size_t left = BM25_POSTINGS_MAX - used, got = 0;
		if (q->df[t] > left)
			break;
		/* (a term the sealed chunks do not hold may be in the tail's entries) */
		int ret = store_word_postings(txn, u->uid, q->ids[t], post + used, left + 1, &got);
		if (ret != 0)
			return ret;
		if (got > left)
			break;
		used += got;
		end[n_read] = used;
	}
	if (used == 0)
		return 0;
	/* each entry's sum, in a table at most half full */
	uint32_t slots = 16;
	while (slots < 2 * used)
		slots *= 2;
	struct scored *tab = arena_calloc(&job->arena, slots, sizeof(*tab));
	if (tab == NULL)
		return -ENOMEM;
	size_t n_ent = 0;
	for (size_t o = 0, i = 0; o < n_read; o++) {
		float idf = q->idf[order[o]];
		for (; i < end[o]; i++) {
			const struct store_posting *p = &post[i];
			if (p->n_tokens == 0 ||
			    (p->first_token + p->n_tokens - 1) / S - p->first_token / S >=
			            BM25_ENTRY_CHUNKS)
				continue;
			uint32_t h =
			        (uint32_t)((p->seq * 0x9E3779B97F4A7C15ull) >> 40) & (slots - 1);
			while (tab[h].seq1 != 0 && tab[h].seq1 != p->seq + 1)
				h = (h + 1) & (slots - 1);
			if (tab[h].seq1 == 0) {
				tab[h] =
				        (struct scored){p->seq + 1, p->first_token, p->n_tokens, 0};
				n_ent++;
			}
			tab[h].s += summand(idf, p->tf, p->n_terms);
		}
	}
	if (n_ent == 0)
		return 0;
	/* each entry's score to the chunk that holds most of it, where allowed (a ranking of
	 * chunks that gave it to both of an entry's two would hold each entry twice); then each
	 * chunk's best */
	struct bm25_hit *hits = arena_alloc(&job->arena, n_ent * sizeof(*hits));
	if (hits == NULL)
		return -ENOMEM;
	size_t m = 0;
	for (uint32_t h = 0; h < slots; h++) {
		if (tab[h].seq1 == 0)
			continue;
		uint64_t first = tab[h].first_token, c = first / S, in_c = (c + 1) * S - first;
		if (in_c < tab[h].n_tokens && 2 * in_c < tab[h].n_tokens)
			c++;
		if (c > u->n_chunks || (c == u->n_chunks && !tail) ||
		    (mask != NULL && !store_mask_test(mask, c)))
			continue;
		hits[m++] = (struct bm25_hit){(int64_t)c, BM25_SCALE * tab[h].s / q->idf_sum};
	}
	qsort(hits, m, sizeof(*hits), cmp_hit_chunk);
	size_t k = 0;
	for (size_t i = 0; i < m; i++)
		if (k == 0 || hits[k - 1].chunk != hits[i].chunk)
			hits[k++] = hits[i];
	qsort(hits, k, sizeof(*hits), cmp_hit);
	*n = k < depth ? k : depth;
	memcpy(out, hits, *n * sizeof(*out));
	return 0;
}
