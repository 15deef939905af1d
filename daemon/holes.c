/*
 * holes.c: encoding a chunk with holes (holes.h): the slots of forgotten tokens, which hold token
 * 0 like padding. The encoder is given the chunk's real tokens only, so it sees the stream as if
 * the forgotten ones had never been said; their rows are then put back in their slots, with zero
 * rows in the holes, so that every slot's K and V still belong to the token in it. A forget
 * encodes all the chunks it changes in one call of the encoder (holes_encode_batch), which a
 * model batches.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "hsamem_defs.h"
#include "holes.h"
#include "spec.h"

#define HOLES_S_MAX 1024 /* the largest chunk a spec may have (spec.c) */

/* The real tokens of tok[0, n) into real, the slot of each into slot; their count. */
static size_t
compact(const uint32_t *tok, uint32_t n, uint32_t *real, uint32_t *slot)
{
	size_t m = 0;
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] != 0) {
			slot[m] = i;
			real[m++] = tok[i];
		}
	return m;
}

/* Moves the rows of m real tokens (rows 0 .. m-1 of K and V) to their slots among n, and zeroes
 * the holes' rows, as padding has. */
static void
scatter(const struct hsa_spec *spec, const uint32_t *tok, uint32_t n, const uint32_t *slot,
        size_t m, float *K, float *V)
{
	size_t row = (size_t)spec->h_kv * spec->d_h;
	if (m == n)
		return;
	/* last first: slot[i] >= i */
	for (size_t i = m; i-- > 0;) {
		memmove(K + slot[i] * row, K + i * row, row * sizeof(float));
		memmove(V + slot[i] * row, V + i * row, row * sizeof(float));
	}
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] == 0) {
			memset(K + i * row, 0, row * sizeof(float));
			memset(V + i * row, 0, row * sizeof(float));
		}
}

int
holes_encode(const struct enc_ops *enc, const struct hsa_spec *spec, const uint32_t *ctx,
             size_t n_ctx, const uint32_t *tok, uint32_t n, float *K, float *V, float *L)
{
	uint32_t real[HOLES_S_MAX], slot[HOLES_S_MAX];
	real[0] = 0; /* for an encoder that reads a chunk of no real token */
	if (n > spec->S || spec->S > HOLES_S_MAX)
		return HSAMEM_EINVAL;
	size_t m = compact(tok, n, real, slot);
	int ret = enc->encode_chunk(spec, ctx, n_ctx, real, m, K, V, L);
	if (ret == 0)
		scatter(spec, tok, n, slot, m, K, V);
	return ret;
}

int
holes_encode_batch(const struct enc_ops *enc, const struct hsa_spec *spec,
                   const struct holes_chunk *c, size_t nw, float *K, float *V, float *L)
{
	size_t S = spec->S, per = S * spec->h_kv * spec->d_h;
	int ret = 0;
	if (nw == 0)
		return 0;
	if (enc->encode_windows == NULL) {
		for (size_t i = 0; i < nw && ret == 0; i++)
			ret = holes_encode(enc, spec, c[i].ctx, c[i].n_ctx, c[i].tok, c[i].n,
			                   K + i * per, V + i * per, L + i * spec->d_r);
		return ret;
	}
	if (S > HOLES_S_MAX)
		return HSAMEM_EINVAL;
	uint32_t *real = malloc(nw * S * sizeof(uint32_t) + 1);
	uint32_t *slot = malloc(nw * S * sizeof(uint32_t) + 1);
	struct enc_window *w = calloc(nw, sizeof(*w));
	if (real == NULL || slot == NULL || w == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nw; i++) {
		if (c[i].n > S) {
			ret = HSAMEM_EINVAL;
			goto out;
		}
		size_t m = compact(c[i].tok, c[i].n, real + i * S, slot + i * S);
		w[i] = (struct enc_window){c[i].ctx, c[i].n_ctx, real + i * S, m};
	}
	if ((ret = enc->encode_windows(spec, w, nw, K, V, L)) != 0)
		goto out;
	for (size_t i = 0; i < nw; i++)
		scatter(spec, c[i].tok, c[i].n, slot + i * S, w[i].n, K + i * per, V + i * per);
out:
	free(w);
	free(slot);
	free(real);
	return ret;
}
