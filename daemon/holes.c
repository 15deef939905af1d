/*
 * holes.c: encoding a chunk with holes (holes.h): the slots of forgotten tokens, which hold token
 * 0 like padding. The encoder is given the chunk's real tokens only, so it sees the stream as if
 * the forgotten ones had never been said; their rows are then put back in their slots, with zero
 * rows in the holes, so that every slot's K and V still belong to the token in it.
 */
#include <string.h>

#include "encoder.h"
#include "hsamem_defs.h"
#include "holes.h"
#include "spec.h"

#define HOLES_S_MAX 1024 /* the largest chunk a spec may have (spec.c) */

int
holes_encode(const struct enc_ops *enc, const struct hsa_spec *spec, const uint32_t *ctx,
             size_t n_ctx, const uint32_t *tok, uint32_t n, float *K, float *V, float *L)
{
	size_t row = (size_t)spec->h_kv * spec->d_h, m = 0;
	uint32_t real[HOLES_S_MAX], slot[HOLES_S_MAX];
	real[0] = 0; /* for an encoder that reads a chunk of no real token */
	if (n > spec->S || spec->S > HOLES_S_MAX)
		return HSAMEM_EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] != 0) {
			slot[m] = i;
			real[m++] = tok[i];
		}
	int ret = enc->encode_chunk(spec, ctx, n_ctx, real, m, K, V, L);
	if (ret != 0 || m == n)
		return ret;
	/* rows 0 .. m-1 go to their slots, last first (slot[i] >= i): holes get zero rows, as
	 * padding does */
	for (size_t i = m; i-- > 0;) {
		memmove(K + slot[i] * row, K + i * row, row * sizeof(float));
		memmove(V + slot[i] * row, V + i * row, row * sizeof(float));
	}
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] == 0) {
			memset(K + i * row, 0, row * sizeof(float));
			memset(V + i * row, 0, row * sizeof(float));
		}
	return 0;
}
