/*
 * holes.h: encoding a chunk whose slots hold forgotten tokens (holes: token 0), for sealing
 * (seal.c), forgetting (ops_forget.c) and scoring the tail (ops.c). A module of its own so that
 * those can share it without including each other.
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

#endif
