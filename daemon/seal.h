/*
 * seal.h: turning S tokens of a memory's stream into a sealed chunk, in the committer's write
 * transaction (seal.c). One sealer holds the buffers for the chunks of one write. An encoder with
 * batched encoding (enc_ops.encode_chunks: a model) encodes in the worker instead, before the
 * commit (seal_pre_encode), and the sealer takes those tensors when the memory is still as the
 * worker saw it.
 */
#ifndef HSAMEM_SEAL_H
#define HSAMEM_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem.pb-c.h"

struct enc_ops;
struct job;
struct store_tokref;
struct store_txn;
struct store_user;

/*
 * The chunks a worker encoded for one write (seal_pre_encode), in the spec's dtype: valid for the
 * memory uid while it has n_tokens tokens and n_chunks chunks, since its stream only grows.
 */
struct seal_pre {
	uint64_t uid, n_tokens, n_chunks;
	size_t n;       /* chunks */
	char *kv, *lmk; /* [n][spec_kv_bytes] (NULL when the memory keeps no K/V: store.h,
	                   COMPUTED K/V), [n][spec_landmark_bytes] */
	/* for a memory flagged STORE_USER_LEXICAL (hybrid.h), else NULL: the chunks' lexical
	 * landmarks [n][hyb_row_bytes()] and their lex1 ids, chunk c's n_ids[c] at
	 * ids[c * HYB_LEX_MAX] */
	char *lex;
	uint32_t *ids, *n_ids;
};

struct sealer {
	struct job *job;
	struct store_txn *txn;
	struct store_user *u;
	const struct enc_ops *enc;
	float *K, *V, *L; /* encoder outputs, fp32 */
	void *kv, *row;   /* the same in the spec's dtype */
	uint32_t *tokens; /* [S] padded */
	struct store_tokref *refs;
	uint32_t *ctx;              /* [enc->context] */
	const struct seal_pre *pre; /* chunks encoded by the worker, or NULL */
	size_t pre_next;            /* the next of them to seal */
	bool no_pre;                /* a chunk had forgotten slots: the rest is encoded here */
	/* the landmarks (and lexical landmarks) of the chunks sealed since the last seal_flush:
	 * rows_n rows from chunk rows_first on, and the ids they count in the term statistics
	 * (row r's term_n[r] after row r - 1's) */
	uint8_t *lmk_rows, *lex_rows;
	uint32_t *term_ids, *term_n;
	size_t terms_len;
	uint64_t rows_first;
	uint32_t rows_n;
};

/* Allocates the buffers for sealing chunks of u with enc (NULL: a client memory). Fails the job
 * (-ENOMEM returned) when out of memory. */
int seal_init(struct sealer *s, struct job *job, struct store_txn *txn, struct store_user *u,
              const struct enc_ops *enc);
void seal_fini(struct sealer *s);
/*
 * Writes the landmarks of the chunks sealed so far and counts their terms. seal_chunk keeps them,
 * a few dozen at most, so that each landmark page is written once for many chunks rather than
 * once for each (a page is rewritten whole at each write), and each term's count once. The caller
 * calls it after its last seal_chunk, before its transaction reads those landmarks or term
 * statistics or ends. Returns 0 or the store's error.
 */
int seal_flush(struct sealer *s);

/*
 * In a worker, for an encoder with encode_chunks: encodes the chunks that the job's write will
 * seal (an append: those its entries' tokens fill after the memory's tail; a flush: the tail,
 * padded) from a snapshot of the memory, a slice of chunks a call (spread over helper threads
 * while no other write is encoding), with their lexical landmarks and terms where the memory
 * keeps them, and sets job->pre (in the job's arena).
 * Leaves job->pre NULL when nothing seals, the memory does not exist or is not as the job
 * expects (the committer then decides). Returns 0, or fails the job and returns its code.
 */
int seal_pre_encode(struct job *job, const char *user, bool flush);

/*
 * Has s seal from pre when pre was encoded for u as it was before this write (uid, n_tokens0
 * tokens, u->n_chunks chunks) and holds n_seal chunks; otherwise another write got in between,
 * and seal_chunk encodes here, in the committer (rare). Returns whether pre is used.
 */
bool seal_use_pre(struct sealer *s, const struct seal_pre *pre, uint64_t n_tokens0, size_t n_seal);

/*
 * Seals chunk u->n_chunks from n_real tokens at buf[at], with their text references at refs[at]
 * (n_real < S: padded). Client memories pass the tensors in `in` (checked against the spec by the
 * caller); built-in ones come from the sealer's pre-encoded chunks or are encoded here. Advances
 * u's chunk counters; the caller stores u. Returns 0, the job's error (the encoder failed), or the
 * store's.
 */
int seal_chunk(struct sealer *s, const uint32_t *buf, const struct store_tokref *refs, size_t at,
               uint32_t n_real, const Hsamem__ChunkIn *in);

#endif
