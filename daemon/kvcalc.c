/*
 * kvcalc.c: chunk K/V for the daemon's readers (kvcalc.h): the stored record, or K/V computed from
 * the chunk's tokens by an encoder whose K/V depend on nothing else (encoder.h, encode_kv). The
 * computed bytes are those a seal would have stored: the same encoder rows, converted to the
 * spec's dtype by the same half_from_float_row.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "hsamem_defs.h"
#include "kvcalc.h"
#include "log.h"

uint32_t
kvc_flags(const struct hsa_spec *spec)
{
	const struct enc_ops *enc = enc_find(spec->encoder);
	return enc != NULL && enc->encode_kv != NULL ? STORE_USER_KV_COMPUTED : 0;
}

int
kvc_encoder(const struct store_user *u, const struct enc_ops **enc)
{
	*enc = NULL;
	if (!(u->flags & STORE_USER_KV_COMPUTED))
		return 0;
	const struct enc_ops *e = enc_find(u->spec.encoder);
	if (e == NULL || e->encode_kv == NULL) {
		log_err("store: the memory of %s keeps no K/V and %s cannot compute them", u->name,
		        u->spec.encoder);
		return HSAMEM_EENCODER;
	}
	*enc = e;
	return 0;
}

int
kvc_compute(const struct enc_ops *enc, const struct hsa_spec *spec, const uint32_t *tok, uint32_t n,
            void *kv)
{
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	float *K = malloc(2 * per * sizeof(float));
	if (K == NULL)
		return -ENOMEM;
	int ret = enc->encode_kv(spec, tok, n, K, K + per);
	if (ret == 0) {
		half_from_float_row(spec->dtype, K, kv, per);
		half_from_float_row(spec->dtype, K + per, (char *)kv + spec_kv_bytes(spec) / 2,
		                    per);
	}
	free(K);
	return ret;
}

int
kvc_get(struct store_txn *txn, const struct store_user *u, uint64_t j, void *buf, const void **kv)
{
	const struct enc_ops *enc;
	size_t want = spec_kv_bytes(&u->spec), len = 0;
	int ret = kvc_encoder(u, &enc);
	if (ret != 0)
		return ret;
	if (enc == NULL) {
		if ((ret = store_kv_get(txn, u->uid, j, kv, &len)) == 0 && len != want) {
			log_err("store: chunk %llu of user %s holds %zu bytes of K/V, expected %zu",
			        (unsigned long long)j, u->name, len, want);
			ret = HSAMEM_EFORMAT;
		}
		return ret;
	}
	struct store_chunk c;
	if ((ret = store_chunk_get(txn, u->uid, j, &c)) != 0)
		return ret;
	if ((ret = kvc_compute(enc, &u->spec, c.tokens, c.n_tokens, buf)) == 0)
		*kv = buf;
	return ret;
}

/* The slot of key j + 1 in c (its own or the empty one where it would go). */
static size_t
slot_of(const struct kvc_cache *c, uint64_t key)
{
	size_t i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (c->cap - 1);
	while (c->keys[i] != 0 && c->keys[i] != key)
		i = (i + 1) & (c->cap - 1);
	return i;
}

/* Doubles the table (16 slots at first). */
static int
cache_grow(struct kvc_cache *c)
{
	size_t cap = c->cap == 0 ? 16 : c->cap * 2;
	struct kvc_cache g = {.keys = calloc(cap, sizeof(uint64_t)),
	                      .kv = calloc(cap, sizeof(void *)),
	                      .cap = cap,
	                      .n = c->n};
	if (g.keys == NULL || g.kv == NULL) {
		free(g.keys);
		free(g.kv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->cap; i++)
		if (c->keys[i] != 0) {
			size_t s = slot_of(&g, c->keys[i]);
			g.keys[s] = c->keys[i];
			g.kv[s] = c->kv[i];
		}
	free(c->keys);
	free(c->kv);
	*c = g;
	return 0;
}

int
kvc_cache_get(struct kvc_cache *c, struct store_txn *txn, const struct store_user *u,
              const struct enc_ops *enc, uint64_t j, const void **kv)
{
	struct store_chunk ch;
	int ret;
	if (c->cap > 0) {
		size_t s = slot_of(c, j + 1);
		if (c->keys[s] != 0) {
			*kv = c->kv[s];
			return 0;
		}
	}
	if ((c->n + 1) * 2 > c->cap && (ret = cache_grow(c)) != 0)
		return ret;
	void *buf = malloc(spec_kv_bytes(&u->spec));
	if (buf == NULL)
		return -ENOMEM;
	if ((ret = store_chunk_get(txn, u->uid, j, &ch)) != 0 ||
	    (ret = kvc_compute(enc, &u->spec, ch.tokens, ch.n_tokens, buf)) != 0) {
		free(buf);
		return ret;
	}
	size_t s = slot_of(c, j + 1);
	c->keys[s] = j + 1;
	c->kv[s] = buf;
	c->n++;
	*kv = buf;
	return 0;
}

void
kvc_cache_fini(struct kvc_cache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->kv[i]);
	free(c->keys);
	free(c->kv);
	memset(c, 0, sizeof(*c));
}
