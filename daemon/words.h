/*
 * words.h: BM25 over entries, from a word index of each memory's entries that the daemon holds in
 * memory; the third part of every lexical ranking, beside the landmarks and the exact pass
 * (bm25.h; hsamem(7), QUERY MODES; encoder/LEXICAL.md, "BM25 over entries").
 *
 * The unit of a chunk's score is its 64 tokens, and a fact of one sentence appended as an entry of
 * its own shares its chunk with the text beside it; BM25 over entries weighs it as what it is, a
 * short text that holds the question's words. So every lexical ranking also ranks the entries
 * that the question's rarer words find, by BM25 over each entry's own words and length as SQLite
 * FTS5 ranks rows: the idf from the index's own counts of entries, ln((N - n + 0.5) / (n + 0.5)),
 * a term that half of the entries hold weighing next to nothing (the chunks' idf, ln(1 + ...),
 * keeps it weighing), the chunks' reference length, and the score put on the chunks' scale (over
 * the question's idf sum). A chunk scores the better of its own BM25 and that of the best entry
 * it holds the most of (an entry cut by a chunk boundary counts in one of its chunks, so that
 * a ranking of chunks holds each entry once); a chunk made of such entries alone scores as the
 * best of them (words_chunk_score). The question's terms are read rarest first, each whole or
 * not at all, while their postings fit WORDS_POSTINGS_MAX (a common word weighs little and would
 * cost most), and the best WORDS_ENTRY_WHOLE entries they find are then scored by the common
 * words too, so that an entry's score is its whole BM25. An entry longer than WORDS_ENTRY_CHUNKS
 * chunks (a document) is not indexed and is left to its chunks' own scores, which tell which of
 * its chunks holds the words.
 *
 * The index is not stored. A memory's is made when a query first needs it, from the entries of
 * the query's snapshot, and each later query adds the entries appended since, so that appends
 * never wait for it (a word index written with every append, as postings in the store, cost more
 * than half of the ingest rate: models/EVAL.md). A forget, an update, a re-encode or a delete
 * drops the memory's index (words_drop) and the next query makes it anew (an import makes a new
 * memory); a restart starts with none. Every entry whose chunk it adds to a ranking is checked
 * against the query's snapshot (a sequence number below the snapshot's count, a record of the same
 * token range that still holds its text), so an index ahead of or behind a snapshot adds only what
 * that snapshot holds; the chunks it scores again are the snapshot's own. Indexes of memories not
 * queried for a while are dropped when all of them together pass WORDS_BYTES_MAX.
 */
#ifndef HSAMEM_WORDS_H
#define HSAMEM_WORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bm25_question;
struct job;
struct store_txn;
struct store_user;
struct words;

#define WORDS_POSTINGS_MAX 4096
#define WORDS_ENTRY_CHUNKS 2
#define WORDS_ENTRY_DEPTH  32  /* the chunks of the best entries that join a ranking's candidates */
#define WORDS_ENTRY_READ   256 /* the best entries read for them (a filter may allow few) */
#define WORDS_ENTRY_WHOLE  64  /* of them, those scored by the common terms too */
#define WORDS_BYTES_MAX    ((size_t)1 << 30)

/* The daemon's indexes (none yet), or NULL when out of memory. */
struct words *words_new(void);
/* Frees every index; no query may be running. NULL-safe. */
void words_free(struct words *w);
/* Drops the index of memory uid, if any: its entries changed other than by appends. */
void words_drop(struct words *w, uint64_t uid);

/* A chunk and the score of the best entry it holds. */
struct bm25_hit {
	int64_t chunk;
	float score;
};

/*
 * A question's use of a memory's index: words_open brings memory u's index up to txn's snapshot
 * and holds it for reading with question q's terms weighed by it, until words_close, which must
 * follow before the job's arena or q goes away. *wq (in the job's arena) is NULL where there is
 * nothing to rank (no index, no term, no entry), which the others take as no hits. Returns 0 or
 * an error (-ENOMEM, or the store's).
 */
struct words_query;
int words_open(struct job *job, struct store_txn *txn, const struct store_user *u,
               const struct bm25_question *q, struct words_query **wq);
void words_close(struct words_query *wq);

/*
 * The chunks that hold the best entries for wq's question by BM25 over entries (above), in
 * txn's snapshot (the one words_open saw), among those mask allows (NULL: all; the unsealed tail
 * is chunk u->n_chunks, and only where tail is true): at most depth, each with its best entry's
 * score, best first (ties to the lower chunk), into out (room for depth); their count into *n.
 * Returns 0 or an error (-ENOMEM, or the store's).
 */
int words_rank(struct job *job, struct words_query *wq, struct store_txn *txn, const uint64_t *mask,
               bool tail, size_t depth, struct bm25_hit *out, size_t *n);

/*
 * The lexical score of a chunk of wq's memory for its question (*score: its exact score, bm25.h),
 * so that a ranking of chunks ranks entries as BM25 over entries does: a sealed chunk whose
 * entries the index all holds (short entries with text; a flush's padding is no entry's and holds
 * no word) scores the best whole BM25 of the entries it holds the most of, 0 where it holds none,
 * instead of its exact score, in which the end of one entry and the start of another add up, and
 * which counts an entry that two chunks share twice; any other chunk keeps the better of its
 * exact score and those entries'. The unsealed tail keeps its score. Reads the index alone: any
 * thread may call it while wq is open.
 */
void words_chunk_score(const struct words_query *wq, int64_t chunk, float *score);
/* Whether words_chunk_score gives chunk its entries' score whatever its exact one: a sealed
 * chunk whose entries the index all holds, which need not be read for an exact score. */
bool words_chunk_covered(const struct words_query *wq, int64_t chunk);

#endif
