/*
 * holes.h: encoding a chunk whose slots hold forgotten tokens (holes: token 0), for sealing
 * (seal.c), forgetting (forget.c: a batch of them, in the worker that prepares the forget)
 * and scoring the tail (ops.c). A module of its own so that those can share it without including
 * each other.
 */
#ifndef HSAMEM_HOLES_H
#define HSAMEM_HOLES_H

#include <stddef.h>
#include <stdint.h>

struct enc_ops;
struct hsa_spec;

/*
 * Encodes a chunk of n slots of which those holding token 0 (forgotten tokens) are holes: the
 * encoder sees the real tokens, after the real context ctx, and K and V get their rows in the
 * real tokens' slots and zero rows in the holes (as padding has). L as the encoder writes it.
 */
int holes_encode(const struct enc_ops *enc, const struct hsa_spec *spec, const uint32_t *ctx,
                 size_t n_ctx, const uint32_t *tok, uint32_t n, float *K, float *V, float *L);

/* One chunk of holes_encode_batch: its n slots (token 0: a hole) after the real context ctx. */
struct holes_chunk {
	const uint32_t *ctx;
	size_t n_ctx;
	const uint32_t *tok;
	uint32_t n;
};

/*
 * holes_encode for nw chunks: in one call of the encoder's encode_windows where it has one (a
 * model, which batches them), else chunk by chunk. Writes K, V [nw][S][h_kv][d_h] and L
 * [nw][d_r]. Returns 0, -ENOMEM or the encoder's error.
 */
int holes_encode_batch(const struct enc_ops *enc, const struct hsa_spec *spec,
                       const struct holes_chunk *c, size_t nw, float *K, float *V, float *L);

#endif
