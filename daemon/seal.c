/*
 * seal.c: sealing the chunks of a memory's stream. The stream: entries add tokens to the tail;
 * every S tokens seal a chunk (tokens, text references, K|V, landmark), and the tail keeps the
 * rest; a flush seals a short tail as a padded chunk, so the next token starts the next chunk.
 * A built-in encoder computes the chunk's tensors here, with the left context it asks for, and the
 * chunk joins the memory's term statistics (store.h, TERMS); a client memory's tensors come with
 * the request. This file writes the chunk's records; the tail, the
 * entries and the memory's counters are the caller's (ops_write.c).
 */
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "ops.h"
#include "seal.h"

void
seal_fini(struct sealer *s)
{
	free(s->K);
	free(s->V);
	free(s->L);
	free(s->kv);
	free(s->row);
	free(s->tokens);
	free(s->refs);
	free(s->ctx);
}

int
seal_init(struct sealer *s, struct job *job, struct store_txn *txn, struct store_user *u,
          const struct enc_ops *enc)
{
	const struct hsa_spec *spec = &u->spec;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	memset(s, 0, sizeof(*s));
	s->job = job;
	s->txn = txn;
	s->u = u;
	s->enc = enc;
	s->K = malloc(per * sizeof(float));
	s->V = malloc(per * sizeof(float));
	s->L = malloc(spec->d_r * sizeof(float));
	s->kv = malloc(spec_kv_bytes(spec));
	s->row = malloc(spec_landmark_bytes(spec));
	s->tokens = malloc(spec->S * sizeof(uint32_t));
	s->refs = malloc(spec->S * sizeof(struct store_tokref));
	s->ctx = malloc(((enc != NULL ? enc->context : 0) + 1) * sizeof(uint32_t));
	if (!s->K || !s->V || !s->L || !s->kv || !s->row || !s->tokens || !s->refs || !s->ctx) {
		seal_fini(s);
		return ops_oom(job);
	}
	return 0;
}

/*
 * The encoder's left context of a chunk that starts at buf[at]: the tokens before it, from the
 * buffer and, where the buffer does not reach back far enough, from the last sealed chunk.
 */
static size_t
gather_context(struct sealer *s, const uint32_t *buf, size_t at)
{
	size_t want = s->enc->context, n = 0;
	if (want == 0)
		return 0;
	if (at < want && s->u->n_chunks > 0) {
		struct store_chunk prev;
		if (store_chunk_get(s->txn, s->u->uid, s->u->n_chunks - 1, &prev) == 0) {
			size_t from_prev = want - at < prev.n_real ? want - at : prev.n_real;
			memcpy(s->ctx, prev.tokens + prev.n_real - from_prev,
			       from_prev * sizeof(uint32_t));
			n = from_prev;
		}
	}
	size_t from_buf = at < want ? at : want;
	memcpy(s->ctx + n, buf + at - from_buf, from_buf * sizeof(uint32_t));
	return n + from_buf;
}

int
seal_chunk(struct sealer *s, const uint32_t *buf, const struct store_tokref *refs, size_t at,
           uint32_t n_real, const Hsamem__ChunkIn *in)
{
	struct store_user *u = s->u;
	const struct hsa_spec *spec = &u->spec;
	size_t kv_bytes = spec_kv_bytes(spec), half = kv_bytes / 2;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;

	memset(s->tokens, 0, spec->S * sizeof(uint32_t));
	memset(s->refs, 0, spec->S * sizeof(struct store_tokref));
	memcpy(s->tokens, buf + at, n_real * sizeof(uint32_t));
	memcpy(s->refs, refs + at, n_real * sizeof(struct store_tokref));
	if (s->enc != NULL) {
		size_t n_ctx = gather_context(s, buf, at);
		int ret = s->enc->encode_chunk(spec, s->ctx, n_ctx, s->tokens, n_real, s->K, s->V,
		                               s->L);
		if (ret != 0)
			return job_fail(s->job, ret, "encoder %s failed on chunk %llu: %s",
			                s->enc->name, (unsigned long long)u->n_chunks,
			                hsamem_strerror(ret));
		half_from_float_row(spec->dtype, s->K, s->kv, per);
		half_from_float_row(spec->dtype, s->V, (char *)s->kv + half, per);
		half_from_float_row(spec->dtype, s->L, s->row, spec->d_r);
	} else {
		memcpy(s->kv, in->k.data, half);
		memcpy((char *)s->kv + half, in->v.data, half);
		memcpy(s->row, in->landmark.data, spec_landmark_bytes(spec));
	}
	struct store_chunk c = {
	        .n_tokens = spec->S, .n_real = n_real, .tokens = s->tokens, .refs = s->refs};
	int ret;
	if ((ret = store_chunk_put(s->txn, u->uid, u->n_chunks, &c)) != 0 ||
	    (ret = store_kv_put(s->txn, u->uid, u->n_chunks, s->kv, kv_bytes)) != 0 ||
	    (ret = store_landmark_put(s->txn, u, u->n_chunks, s->row)) != 0)
		return ret;
	/* the term statistics of a built-in encoder's ranking, in the seal's transaction */
	if (s->enc != NULL && (ret = store_terms_add(s->txn, u->uid, s->tokens, n_real)) != 0)
		return ret;
	u->n_chunks++;
	if (n_real < spec->S)
		u->n_padded++;
	return 0;
}
