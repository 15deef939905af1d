/*
 * hybrid.h: lexical landmarks beside a model memory's own, and the rankings of query's modes
 * (hsamem(7), QUERY MODES).
 */
#ifndef HSAMEM_HYBRID_H
#define HSAMEM_HYBRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bm25.h"
#include "encoder.h"
#include "store.h"
#include "words.h"

struct daemon;
struct job;

/* How deep each ranking is read for fusion. */
#define HYB_DEPTH 64

enum hyb_mode { HYB_DEFAULT = 0, HYB_LEARNED, HYB_LEXICAL, HYB_HYBRID };

/* Whether memories of enc keep lexical landmarks (a model encoder that can decode its tokens). */
bool hyb_wanted(const struct enc_ops *enc);

/* The flags of a new memory of this spec: STORE_USER_LEXICAL where its encoder is wanted and
 * ready (it decodes the chunks' tokens). */
uint32_t hyb_flags(const struct hsa_spec *spec);

/* Parses a mode name ("learned", "lexical", "hybrid"; NULL or "" is HYB_DEFAULT): 0 or
 * HSAMEM_EINVAL. */
int hyb_mode_parse(const char *name, enum hyb_mode *out);
const char *hyb_mode_name(enum hyb_mode m);

/*
 * In the seal's transaction, for a memory flagged STORE_USER_LEXICAL: chunk j's lexical landmark
 * from the text of its n_real tokens (decoded by enc), and its lex1 terms into the memory's term
 * statistics. Returns 0 or an error (the transaction's sticky error).
 */
int hyb_seal(struct store_txn *txn, const struct store_user *u, const struct enc_ops *enc,
             uint64_t j, const uint32_t *tokens, uint32_t n_real);
/* The most lex1 ids of one chunk's text that its lexical landmark reads (64 BPE tokens make ~50).
 */
#define HYB_LEX_MAX 256
/*
 * A chunk's lexical landmark from the text of its n_real tokens (decoded by enc) into row
 * (hyb_row_bytes(), f16), and the lex1 ids it counts in the term statistics into ids (room for
 * HYB_LEX_MAX), their number into *n_ids. Reads no store: a worker computes it before the seal
 * (seal.c). Returns 0 or an error.
 */
int hyb_chunk_row(const struct enc_ops *enc, const uint32_t *tokens, uint32_t n_real, void *row,
                  uint32_t *ids, size_t *n_ids);
size_t hyb_row_bytes(void);

/*
 * For a forget in a memory flagged STORE_USER_LEXICAL: chunk j's lexical landmark rewritten from
 * its remaining n_real tokens, and its terms in the statistics replaced (old: its n_old real
 * tokens before).
 */
int hyb_reseal(struct store_txn *txn, const struct store_user *u, const struct enc_ops *enc,
               uint64_t j, const uint32_t *old, uint32_t n_old, const uint32_t *tokens,
               uint32_t n_real);

/* One ranked chunk. */
struct hyb_hit {
	int64_t chunk;
	float score;
};

/*
 * The backend's name for memory uid's lexical landmarks: its caches key a memory's landmarks by
 * uid, and these are another matrix of the same memory. User ids count up from 1 (store.h) and
 * never reach the top bit.
 */
#define HYB_TWIN (UINT64_C(1) << 63)
static inline uint64_t
hyb_twin_uid(uint64_t uid)
{
	return uid | HYB_TWIN;
}

/* Drops what the daemon caches of memory uid: the GPU backend's copies of its landmarks and its
 * lexical landmarks, and its word index (words.h); after its chunks or entries changed under that
 * uid, or it was replaced or deleted. */
void hyb_forget_cached(struct daemon *d, uint64_t uid);

/* A question weighed for the lexical ranking of one memory: the lexical query (d_r of the
 * lexical encoder's landmarks), the dimensions where it is not zero, and its terms for the exact
 * pass, in a job's arena. */
struct hyb_question {
	float *qr;
	uint32_t *at;
	size_t nz;
	struct bm25_question bm; /* its lex1 words for the exact pass (bm25.h) */
};

/* The question (text, NUL-terminated) weighed by the memory's term statistics as the lexical
 * encoder weighs it. Returns 0 or an error. */
int hyb_question_init(struct job *job, struct store_txn *txn, const struct store_user *u,
                      const char *text, struct hyb_question *q);

/*
 * The lexical ranking of a model memory's sealed chunks among those mask allows (NULL: all), by
 * their lexical landmarks: the best min(depth, SPEC_TOPK_MAX, chunks) into out, best first (ties
 * to the lower index), their count into *n. The GPU backend ranks the landmarks where it serves
 * the memory's shape (a selection only, backend.h); the CPU reads each landmark at the question's
 * nonzero dimensions. Returns 0 or an error.
 */
int hyb_lexical_rank(struct job *job, struct store_txn *txn, const struct store_user *u,
                     const struct hyb_question *q, const uint64_t *mask, size_t depth,
                     struct hyb_hit *out, size_t *n);
/* Chunk j's exact BM25 score (bm25.h) for the question: its text decoded by enc and tokenized
 * with lex1, as the seal counts it. Returns 0 or an error. */
int hyb_exact_score(struct job *job, struct store_txn *txn, const struct store_user *u,
                    const struct enc_ops *enc, const struct hyb_question *q, uint64_t j, float *s);
/*
 * The exact pass's candidates: n hits of hyb_lexical_rank (hits, room for n + n_ent) joined by
 * the n_ent chunks of words_rank that they lack, each with its entry's score as the floor of
 * its own (0 where no entry found it). Returns their count.
 */
size_t hyb_with_entries(struct hyb_hit *hits, size_t n, const struct bm25_hit *ent, size_t n_ent);
/*
 * The exact pass over n hits of hyb_with_entries, each scored again by the better of its exact
 * score and the floor it comes with, then, where wq is not NULL, as its entries score it
 * (words_chunk_score, wq open until hyb_exact_finish returns), in two halves so that the caller
 * goes on meanwhile. hyb_exact_start reads the hits' chunks in txn on the calling thread (not
 * those that wq covers: words_chunk_covered), then starts their decoding and scoring on the CPU
 * backend's threads (gpu_cpu_start) and returns; *x (in the job's arena) is NULL where it failed
 * before that. hyb_exact_finish, which must follow where *x is not NULL, before hits or q go
 * away, waits for the scores and sorts the hits by them, best first (ties to the lower index).
 * Each returns 0 or an error.
 */
struct hyb_exact;
int hyb_exact_start(struct job *job, struct store_txn *txn, const struct store_user *u,
                    const struct enc_ops *enc, const struct hyb_question *q,
                    const struct words_query *wq, struct hyb_hit *hits, size_t n,
                    struct hyb_exact **x);
int hyb_exact_finish(struct job *job, struct hyb_exact *x);
/*
 * The ranking over the model's windows from n ranked chunks (hits, reordered): chunk j, where mask
 * (NULL: all) allows it, scores the best of the hits among chunks j - back .. j, since the model
 * encodes a chunk in a window that holds the back chunks before it, so its landmark can answer
 * for words it does not hold (a needle cut by a chunk boundary: its key before it, its value in
 * it). Writes the best min(depth, ...) windows to out (not hits, unless back is 0), best first
 * (ties to the lower index); returns their count. Exact where the hits are a ranking's best: a
 * window holding none of them scores at most the last of them, and each of them is a window of
 * its own at least as good, so the best windows each hold one of them.
 */
size_t hyb_windows(struct hyb_hit *hits, size_t n, uint32_t back, const uint64_t *mask,
                   uint64_t n_chunks, size_t depth, struct hyb_hit *out);
/*
 * Fuses two rankings (best first, a the learned one, each at most HYB_DEPTH deep) by a weighted
 * sum of standard scores: each score minus its ranking's mean, over its standard deviation; a
 * chunk that a ranking does not hold gets that of the ranking's last; each ranking weighed by the
 * cube of its first place's standard score (at least 0.1), so that a ranking whose best is no
 * better than noise counts little, and the clearer of two finds leads; b, the lexical one (BM25
 * scores), is weighed down further when its first place's BM25 is low (below 3.5: mostly a match
 * of common words, however far it stands out). Writes the best k fused
 * (ties to the better rank in a, then the lower index) to out with their fused score; returns their
 * count. Chosen over reciprocal rank fusion by measurement (models/EVAL.md): ranks forget how
 * far a lexical exact match stands above the chunks that share only its common words.
 */
size_t hyb_fuse(const struct hyb_hit *a, size_t na, const struct hyb_hit *b, size_t nb, size_t k,
                struct hyb_hit *out);

/*
 * The model's HSA over n selected sealed chunks of base's memory (chunks: ascending, n <= 256),
 * on the CPU backend: their learned landmarks scored with qr and weighted, and attention inside
 * each with qa over their K/V, as if no other chunk existed. res is as for a query of k = n; its
 * selections are chunk indices of the memory.
 */
struct ops_source;
struct hsa_result;
int hyb_attend(struct job *job, struct ops_source *base, const int64_t *chunks, size_t n,
               const float *qr, const float *qa, struct hsa_result *res);

#endif
