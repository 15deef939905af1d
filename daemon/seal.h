/*
 * seal.h: turning S tokens of a memory's stream into a sealed chunk, in the committer's write
 * transaction (seal.c). One sealer holds the buffers for the chunks of one write.
 */
#ifndef HSAMEM_SEAL_H
#define HSAMEM_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "hsamem.pb-c.h"

struct enc_ops;
struct job;
struct store_tokref;
struct store_txn;
struct store_user;

struct sealer {
	struct job *job;
	struct store_txn *txn;
	struct store_user *u;
	const struct enc_ops *enc;
	float *K, *V, *L; /* encoder outputs, fp32 */
	void *kv, *row;   /* the same in the spec's dtype */
	uint32_t *tokens; /* [S] padded */
	struct store_tokref *refs;
	uint32_t *ctx; /* [enc->context] */
};

/* Allocates the buffers for sealing chunks of u with enc (NULL: a client memory). Fails the job
 * (-ENOMEM returned) when out of memory. */
int seal_init(struct sealer *s, struct job *job, struct store_txn *txn, struct store_user *u,
              const struct enc_ops *enc);
void seal_fini(struct sealer *s);

/*
 * Seals chunk u->n_chunks from n_real tokens at buf[at], with their text references at refs[at]
 * (n_real < S: padded). Client memories pass the tensors in `in` (checked against the spec by the
 * caller); built-in ones are encoded here. Advances u's chunk counters; the caller stores u.
 * Returns 0, the job's error (the encoder failed), or the store's.
 */
int seal_chunk(struct sealer *s, const uint32_t *buf, const struct store_tokref *refs, size_t at,
               uint32_t n_real, const Hsamem__ChunkIn *in);

#endif
