/*
 * hybrid.h: lexical landmarks beside a model memory's own, and the rankings of query's modes
 * (hsamem(7), QUERY MODES).
 */
#ifndef HSAMEM_HYBRID_H
#define HSAMEM_HYBRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "store.h"

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
 * The lexical ranking of a model memory's sealed chunks for a question (text, NUL-terminated):
 * the question is weighed by the memory's term statistics as the lexical encoder weighs it, and
 * every lexical landmark is scored. Writes the best min(depth, n_chunks) to out (best first; ties
 * to the lower index) and their count to *n; scores_all (may be NULL) gets every chunk's score.
 */
int hyb_lexical_rank(struct job *job, struct store_txn *txn, const struct store_user *u,
                     const char *text, size_t depth, struct hyb_hit *out, size_t *n,
                     float *scores_all);

/*
 * The lexical ranking over the model's windows: chunk j scores the best of scores[j - back .. j]
 * (scores: every chunk's lexical score, n chunks), since the model encodes a chunk in a window
 * that holds the back chunks before it, so its landmark can answer for words it does not hold
 * (a needle cut by a chunk boundary: its key before it, its value in it). Writes the best
 * min(depth, n) to out, best first (ties to the lower index); returns their count.
 */
size_t hyb_window_rank(const float *scores, uint64_t n, uint32_t back, size_t depth,
                       struct hyb_hit *out);

/*
 * Fuses two rankings (best first, a the learned one, each at most HYB_DEPTH deep) by the sum of
 * standard scores: each score minus its ranking's mean, over its standard deviation; a chunk
 * that a ranking does not hold gets that of the ranking's last. Writes the best k fused (ties to
 * the better rank in a, then the lower index) to out with their fused score; returns their
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
