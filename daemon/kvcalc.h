/*
 * kvcalc.h: K/V of memories that keep none (store.h, COMPUTED K/V): a lexical memory's chunk K/V
 * are a pure function of its tokens, so the daemon computes them from the stored tokens whenever
 * a chunk is read (a query's selected chunks, `chunks --tensors`, an export) instead of storing
 * 16 KiB per chunk. Every reader of chunk K/V goes through here, so a memory that still stores
 * them (made before, or a model's) is read as it always was.
 */
#ifndef HSAMEM_KVCALC_H
#define HSAMEM_KVCALC_H

#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "store.h"

/* STORE_USER_KV_COMPUTED for a new memory of this spec when its encoder has encode_kv, else 0. */
uint32_t kvc_flags(const struct hsa_spec *spec);

/*
 * The encoder that computes u's K/V: *enc is NULL for a memory that stores them. HSAMEM_EENCODER
 * when u is flagged but this daemon has no such encoder (it cannot then be read).
 */
int kvc_encoder(const struct store_user *u, const struct enc_ops **enc);

/* Computes the K|V of a chunk of n <= S slots (tokens, 0 for padding and holes) into kv
 * (spec_kv_bytes bytes, the spec's dtype). 0, -ENOMEM or the encoder's error. */
int kvc_compute(const struct enc_ops *enc, const struct hsa_spec *spec, const uint32_t *tok,
                uint32_t n, void *kv);

/*
 * The K|V of chunk j of u (spec_kv_bytes bytes): *kv points at the stored record (borrowed from
 * txn) or, for a memory that stores none, at buf (spec_kv_bytes bytes, the caller's), where they
 * were computed. HSAMEM_EFORMAT for a stored record of another size (logged).
 */
int kvc_get(struct store_txn *txn, const struct store_user *u, uint64_t j, void *buf,
            const void **kv);

/*
 * The chunks one source computed, kept until it ends, since a backend reads a chunk's K/V
 * through a pointer that must stay valid until attend() returns and asks for the same chunk once
 * per query token and head. Not locked: the source serialises its callers.
 */
struct kvc_cache {
	uint64_t *keys; /* j + 1; 0: empty slot */
	void **kv;
	size_t cap, n;
};

/* The K|V of chunk j of u, computed by enc on the first request. 0 or an error. */
int kvc_cache_get(struct kvc_cache *c, struct store_txn *txn, const struct store_user *u,
                  const struct enc_ops *enc, uint64_t j, const void **kv);
void kvc_cache_fini(struct kvc_cache *c);

#endif
