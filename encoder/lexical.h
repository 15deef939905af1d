/*
 * lexical.h: the lexical encoder, "lexical" revision 1, tokenizer "lex1" (encoder/LEXICAL.md).
 *
 * Deterministic and weightless: a chunk's landmark is a hashed bag of its content words, each
 * token's key and value are hashed sign patterns of its id, and a query's vectors are made the same
 * way, so that a question sharing a fact's rarer words selects the fact's chunk and, inside it,
 * attends to those words. Use it through enc_find("lexical") or enc_default().
 */
#ifndef HSAMEM_LEXICAL_H
#define HSAMEM_LEXICAL_H

#include "encoder.h"

#define LEX_NAME     "lexical"
#define LEX_REVISION 2

/*
 * The scale of scores: for a query qr and a landmark L of this encoder, the HSA score
 * <qr, L> / sqrt(d_r / h_kv) equals LEX_TEMPERATURE times the cosine of their bags of words (the
 * landmark's length floored, see LEXICAL.md), so scores lie in [-LEX_TEMPERATURE, LEX_TEMPERATURE].
 */
#define LEX_TEMPERATURE 16.0f

/*
 * Revision 2's scale: a chunk that holds each word of the query once, at the reference length,
 * scores LEX_BM25_SCALE; a chunk's score is LEX_BM25_SCALE times its BM25 score over the sum of
 * the query words' idf (LEXICAL.md).
 */
#define LEX_BM25_SCALE 8.0f

extern const struct enc_ops enc_lexical;

#endif
