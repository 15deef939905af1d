/*
 * encoder.h: the built-in encoders, which turn text into tokens, a sealed chunk's tokens into its
 * K, V and landmark, and a query's tokens into retrieval and attention queries.
 *
 * An encoder is thread-safe: the daemon calls it from its workers and its committer at once. Most
 * are stateless; one that needs files (hsa-small's model folder) is loaded once by enc_load before
 * the daemon serves, and until it is loaded its ready() says why it cannot serve. Memories whose
 * encoder is "client" have no encoder here: the client computes K/V/L and the queries itself.
 */
#ifndef HSAMEM_ENCODER_H
#define HSAMEM_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

/* A greedy answer in progress (answer_open). */
struct enc_answer;

/* One chunk to encode on its own (encode_windows): n_ctx <= context tokens of left context (the
 * most recent last), then the chunk's n <= S tokens (n may be 0: a chunk of padding only). */
struct enc_window {
	const uint32_t *ctx;
	size_t n_ctx;
	const uint32_t *tok;
	size_t n;
};

/* One token of a text: its id and the bytes of the text it was read from. */
struct enc_token {
	uint32_t id;
	uint32_t off; /* byte offset in the text */
	uint32_t len; /* bytes */
};

/* Work of a caller's that an encoder runs in the shadow of its own (encode_query_ctx). */
struct enc_meanwhile {
	void (*fn)(void *arg);
	void *arg;
};

/*
 * A memory's term statistics (store.h, TERMS), for an encoder that weighs a query by them: the
 * chunks and real tokens counted, and the document frequency of the query's distinct token ids
 * (ids sorted ascending, df[i] the number of counted chunks that hold ids[i]).
 */
struct enc_stats {
	uint64_t chunks;
	uint64_t tokens;
	size_t n;
	const uint32_t *ids;
	const uint32_t *df;
};

struct enc_ops {
	const char *name;  /* as in hsa_spec.encoder */
	uint32_t revision; /* bumped whenever the output for the same input changes */
	uint32_t
	        min_revision; /* the oldest revision whose memories it still serves (0: revision) */
	const char *tokenizer; /* as in hsa_spec.tokenizer */
	uint32_t context;      /* left-context tokens encode_chunk reads (0: none) */
	bool sparse_landmarks; /* its landmarks are mostly zeros: the store keeps them sparse */

	/* The spec of a memory created implicitly with this encoder. */
	void (*default_spec)(struct hsa_spec *spec);

	/*
	 * Splits len bytes of text (UTF-8; invalid bytes are tolerated) into tokens. On success
	 * *out is a malloc'd array of *n tokens (NULL when *n is 0) that the caller frees.
	 */
	int (*tokenize)(const char *text, size_t len, struct enc_token **out, size_t *n);

	/*
	 * Encodes one chunk of n tokens (n == S for a full chunk; fewer when a chunk is padded by a
	 * flush, or when a query scores the unsealed tail), preceded by n_ctx tokens of left
	 * context (the most recent last; n_ctx <= context). Writes, in fp32: K [S][h_kv][d_h]
	 * (RMS-normalised per head), V [S][h_kv][d_h], L [d_r]. Rows of K and V past n are zero.
	 */
	int (*encode_chunk)(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
	                    const uint32_t *tok, size_t n, float *K, float *V, float *L);

	/*
	 * Encodes a query of n tokens into the retrieval query qr [h_kv][d_r / h_kv] and the
	 * attention query qa [h_q][d_h], fp32.
	 */
	int (*encode_query)(const struct hsa_spec *spec, const uint32_t *tok, size_t n, float *qr,
	                    float *qa);

	/*
	 * Optional: encode_query, weighing the query's tokens by the memory's term statistics
	 * (stats->n may be 0: nothing counted yet). The daemon calls it instead of encode_query
	 * when it is set.
	 */
	int (*encode_query_stats)(const struct hsa_spec *spec, const struct enc_stats *stats,
	                          const uint32_t *tok, size_t n, float *qr, float *qa);

	/*
	 * Optional, for an encoder whose K and V rows are each a pure function of the token in
	 * their slot (no context, no model state): K [S][h_kv][d_h] and V of a chunk of n <= S
	 * slots, in fp32, exactly as encode_chunk writes them for the chunk's real tokens with the
	 * rows put back in their slots (daemon/holes.h): a slot holding token 0 (padding, a
	 * forgotten token) and every slot past n get zero rows. An encoder that has it lets the
	 * daemon keep a chunk's tokens and landmark only and compute its K/V when the chunk is read
	 * (store.h, COMPUTED K/V).
	 */
	int (*encode_kv)(const struct hsa_spec *spec, const uint32_t *tok, size_t n, float *K,
	                 float *V);

	/*
	 * Whether this encoder can serve a memory of this spec: its encoder name, revision (from
	 * min_revision to revision), tokenizer and sizes. Returns 0, or HSAMEM_ESPEC (HSAMEM_EINVAL
	 * from spec_check) with a sentence naming the field written to why (why may be NULL).
	 * encode_chunk and encode_query refuse a spec that fails it with the same code.
	 */
	int (*check_spec)(const struct hsa_spec *spec, char *why, size_t why_len);

	/*
	 * Optional (NULL: always ready): whether the encoder can serve now. Returns 0, or
	 * HSAMEM_EENCODER with a sentence saying why not (the model folder and its problem).
	 */
	int (*ready)(char *why, size_t why_len);

	/*
	 * Optional: encode_chunk for consecutive chunks of the stream in one call, where batching
	 * pays (a model's GEMMs). tok holds n tokens, chunk c being tok[c*S ..]; only the last may
	 * be short (a flush's padded chunk). ctx (n_ctx <= context tokens, the most recent last)
	 * precedes the first chunk; each later chunk's context is the chunk before it. Writes K, V
	 * [ceil(n/S)][S][h_kv][d_h] and L [ceil(n/S)][d_r], as encode_chunk would chunk by chunk.
	 * The daemon calls it outside its committer, so that encoding does not hold up other
	 * writes.
	 */
	int (*encode_chunks)(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
	                     const uint32_t *tok, size_t n, float *K, float *V, float *L);

	/*
	 * Optional: encode_chunk for nw chunks that need not follow each other in the stream, each
	 * with a context of its own (a forget's: the chunks whose tokens or context lost a
	 * forgotten entry), in one call where batching pays. Writes K, V [nw][S][h_kv][d_h] and L
	 * [nw][d_r], as encode_chunk would window by window. Called outside the committer.
	 */
	int (*encode_windows)(const struct hsa_spec *spec, const struct enc_window *w, size_t nw,
	                      float *K, float *V, float *L);

	/*
	 * Optional: encode_query for an encoder that reads the memory's stream before the question:
	 * ctx is the stream's last n_ctx <= query_context tokens (the most recent last). The daemon
	 * calls it instead of encode_query(_stats) when it is set. mw (may be NULL): work of the
	 * caller's, run once on this thread whatever happens, while the encoder's own runs on a
	 * device or on another thread; it must not call the encoder.
	 */
	int (*encode_query_ctx)(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
	                        const uint32_t *tok, size_t n, float *qr, float *qa,
	                        const struct enc_meanwhile *mw);
	uint32_t query_context;   /* stream tokens encode_query_ctx reads (0: none) */
	uint32_t max_query;       /* most tokens of a question (0: the daemon's own limit) */
	const char *query_prefix; /* text put before a question's text to tokenize it, or NULL */

	/*
	 * Optional, for an encoder that is a language model (hsa-small): greedy answering, with
	 * the sparse HSA over the memory's chunks left to the caller (the daemon's backend), one
	 * generated token at a time. answer_open starts the answer to the question tok (n tokens,
	 * as encode_query_ctx takes them) after ctx, for at most max_new tokens. Then, per token:
	 * answer_step writes the retrieval and attention queries (qr [h_kv][d_r / h_kv], qa
	 * [h_q][d_h]) of the position that predicts the next token; answer_next takes that
	 * position's fused HSA output O [h_q][d_h] and gives the next token, or *eos (the answer is
	 * complete; *tok is then not part of it). answer_close frees (NULL is fine). Each answer is
	 * used by one thread; any number of answers may run at once.
	 */
	int (*answer_open)(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
	                   const uint32_t *tok, size_t n, uint32_t max_new,
	                   struct enc_answer **out);
	int (*answer_step)(struct enc_answer *a, float *qr, float *qa);
	int (*answer_next)(struct enc_answer *a, const float *O, uint32_t *tok, bool *eos);
	void (*answer_close)(struct enc_answer *a);
	/* Optional: the text of token ids (specials give none), a malloc'd C string *out. */
	int (*decode)(const uint32_t *ids, size_t n, char **out);
};

/* The encoder of that name, or NULL. */
const struct enc_ops *enc_find(const char *name);

/* The encoder that memories created implicitly use ("lexical"). */
const struct enc_ops *enc_default(void);

/*
 * Called first in main() by a program that encodes with the learned encoder on the CPU, before
 * any thread starts: where the BLAS took generic kernels on a CPU newer than it, the program is
 * executed again with the kernels the CPU's features allow (hsa_forward.h,
 * hsa_blas_select_core). enc_cpu_kernels() names the kernels the BLAS runs, for the log.
 */
void enc_prepare_cpu(char **argv);
const char *enc_cpu_kernels(void);

/*
 * Loads the encoders that need files, once, before any thread encodes: hsa-small from the model
 * folder model_dir. An encoder that fails to load stays in the table and answers HSAMEM_EENCODER
 * (its ready() says why); the others are not affected. Returns 0, or the first failure's code
 * with its sentence (naming the folder and the problem) written to why.
 */
int enc_load(const char *model_dir, char *why, size_t why_len);

/*
 * Runs the loaded encoders that have a GPU runtime (hsa-small) on CUDA device `device`, after
 * enc_load and before any thread encodes. Returns 0, or the failure's code with its sentence in
 * why; the encoders then stay on the CPU, which is also where any failed GPU call is redone.
 */
int enc_use_gpu(int device, char *why, size_t why_len);

/* Frees what enc_load loaded; no thread may be encoding. */
void enc_unload(void);

/* Whether enc serves memories of revision rev (min_revision .. revision). */
static inline int
enc_serves(const struct enc_ops *enc, uint32_t rev)
{
	uint32_t lo = enc->min_revision != 0 ? enc->min_revision : enc->revision;
	return rev >= lo && rev <= enc->revision;
}

#endif
