/*
 * spec.h: the spec of a memory (hsamem(7), CONCEPTS), fixed when the memory is created.
 *
 * Every module that touches chunk tensors takes its sizes from here, and every request that carries
 * tensors is checked against the memory's spec before anything is written. h_r, the number of
 * retrieval heads, always equals h_kv, so it has no field of its own.
 */
#ifndef HSAMEM_SPEC_H
#define HSAMEM_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPEC_NAME_MAX 31 /* encoder and tokenizer names */
#define SPEC_TOPK_MAX 256

enum hsa_dtype { HSA_F16 = 1, HSA_BF16 = 2, HSA_F32 = 3 };
enum hsa_weighting { HSA_SOFTMAX = 1, HSA_STICKBREAK = 2 };

struct hsa_spec {
	char encoder[SPEC_NAME_MAX + 1];   /* "lexical", "client", ... */
	uint32_t revision;                 /* encoder revision: chunks are only valid for it */
	char tokenizer[SPEC_NAME_MAX + 1]; /* "" when the client tokenizes */
	uint32_t S;                        /* chunk size in tokens */
	uint32_t h_kv;                     /* key/value heads (= retrieval heads) */
	uint32_t d_h;                      /* head dimension */
	uint32_t h_q;                      /* query heads, a multiple of h_kv */
	uint32_t d_r;                      /* landmark dimension, a multiple of h_kv */
	enum hsa_dtype dtype;              /* element type of K, V and landmarks at rest */
	enum hsa_weighting weighting;      /* how the selected chunks' outputs are fused */
	bool off_by_one;                   /* softmax-off-by-one inside chunks */
	uint32_t top_k;                    /* default k of queries */
};

/*
 * Checks every field against its range. Returns 0, or HSAMEM_EINVAL with a sentence naming the
 * field written to why (why may be NULL).
 */
int spec_check(const struct hsa_spec *spec, char *why, size_t why_len);

/* Bytes of one element of the given type: 2 or 4. */
size_t spec_elem_size(enum hsa_dtype dtype);

/* Bytes of one chunk's K followed by its V: 2 * S * h_kv * d_h elements. */
size_t spec_kv_bytes(const struct hsa_spec *spec);

/* Bytes of one landmark: d_r elements. */
size_t spec_landmark_bytes(const struct hsa_spec *spec);

/* "f16", "bf16", "f32", or NULL; and back (returns 0 for an unknown name). */
const char *spec_dtype_name(enum hsa_dtype dtype);
enum hsa_dtype spec_dtype_parse(const char *name);
const char *spec_weighting_name(enum hsa_weighting w);
enum hsa_weighting spec_weighting_parse(const char *name);

#endif
