/*
 * hsa_model.h: a loaded learned HSA encoder (models/README.md): its configuration, its weights
 * widened to fp32 and its tokenizer, read from a model folder in the "hsamem-hsa 1" format.
 *
 * Every size comes from the folder's config.json, so a retrained model of another size loads
 * without code changes. A loaded model is read-only: any number of threads may run the forward
 * computation (hsa_forward.h) on it at once, each with its own scratch.
 */
#ifndef HSAMEM_HSA_MODEL_H
#define HSAMEM_HSA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "bpe.h"

#define HSA_FORMAT "hsamem-hsa 1"

struct hsa_config {
	uint32_t vocab, d_model, n_heads, d_head; /* d_head = d_model / n_heads (the SWA heads) */
	uint32_t d_mlp, n_lower, n_enc, n_upper;
	uint32_t chunk; /* S; a window is 2S tokens */
	uint32_t h_kv, d_h, h_q, d_r, topk;
	float rope_theta, eps;
	uint32_t pad_id, eos_id, q_id, a_id;
	uint32_t step; /* the encoder revision */
};

/* The weights of one attention layer: wqkv is wq, wk and wv stacked ([3D, D]). */
struct hsa_attn_w {
	float *wqkv, *wo, *q_norm, *k_norm;
};

/* One transformer block: w13 is mlp.w1 and mlp.w3 stacked ([2 d_mlp, D]). */
struct hsa_block_w {
	float *attn_norm, *mlp_norm, *w13, *w2;
	struct hsa_attn_w attn;
};

struct hsa_model {
	struct hsa_config cfg;
	struct bpe *tok;
	float *embed; /* [vocab, D], also the LM head */
	struct hsa_block_w *lower, *enc, *upper;
	float *summary, *enc_norm, *enc_k, *enc_v, *enc_lmk;
	struct hsa_attn_w hsa_swa;
	float *hsa_swa_norm, *ret_norm, *ret_q, *hsa_norm, *hsa_q, *hsa_o;
	float *hsa_mlp_norm, *hsa_w13, *hsa_w2, *final_norm;
	float *arena; /* all of the above weights */
	size_t n_params;
	void *gpu; /* the device copy of the weights (hsa_cuda.h), or NULL */
};

/*
 * Loads the model folder dir: config.json, the weights file it names (checked tensor by tensor
 * against the config: name, dtype, shape; and its metadata: format, step, config) and the
 * tokenizer file it names. Returns 0 and *out; HSAMEM_EENCODER when a file is missing, malformed,
 * truncated or does not match the config, with a sentence naming the file, the tensor or field,
 * and what was expected and found written to why (may be NULL); -ENOMEM.
 */
int hsa_model_load(const char *dir, struct hsa_model **out, char *why, size_t why_len);

/* Frees; accepts NULL. A model attached to a GPU must be detached first (hsa_cuda_detach). */
void hsa_model_free(struct hsa_model *m);

#endif
