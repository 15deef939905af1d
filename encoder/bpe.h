/*
 * bpe.h: the byte-level BPE tokenizer "hsamem-bpe" of the learned encoder (models/README.md,
 * "Tokenizer file"): loading its file, encoding text into ids and decoding ids into bytes.
 *
 * A loaded tokenizer is read-only: any number of threads may encode and decode with it at once.
 */
#ifndef HSAMEM_BPE_H
#define HSAMEM_BPE_H

#include <stddef.h>
#include <stdint.h>

struct bpe;

/*
 * Loads a tokenizer file. Returns 0 and *out, HSAMEM_EENCODER when the file is not a well-formed
 * "hsamem-bpe 1" file (a sentence naming the file, line and what is wrong goes to why, which may
 * be NULL), or -errno.
 */
int bpe_load(const char *path, struct bpe **out, char *why, size_t why_len);

/* Frees; accepts NULL. */
void bpe_free(struct bpe *b);

/* The number of ids (bytes, specials and merges). */
uint32_t bpe_vocab(const struct bpe *b);

/* The id of a special token by its name ("<|eos|>"), or -1. */
int32_t bpe_special(const struct bpe *b, const char *name);

/*
 * Encodes len bytes of text (any bytes: invalid UTF-8 is tokenized as bytes). On success *ids is
 * a malloc'd array of *n ids (NULL when *n is 0) that the caller frees. Special ids never come
 * out. Token i covers the bytes that bpe_bytes() gives for it, one after another: the offset of
 * token i is the sum of the lengths of tokens 0 .. i-1.
 */
int bpe_encode(const struct bpe *b, const char *text, size_t len, uint32_t **ids, size_t *n);

/* The bytes of one id (special and unknown ids have none): sets *len, returns the bytes. */
const unsigned char *bpe_bytes(const struct bpe *b, uint32_t id, size_t *len);

/*
 * Decodes n ids into a malloc'd, NUL-terminated buffer *out of *len bytes (the NUL not counted)
 * that the caller frees.
 */
int bpe_decode(const struct bpe *b, const uint32_t *ids, size_t n, char **out, size_t *len);

#endif
