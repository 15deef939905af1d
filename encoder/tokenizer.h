/*
 * tokenizer.h: the "lex1" tokenizer of the lexical encoder (encoder/LEXICAL.md is its spec).
 *
 * lex1 splits UTF-8 text into words, single punctuation marks and single CJK characters, and gives
 * each token a 32-bit id computed from its lowercased bytes alone, with no vocabulary file. Ids are
 * stored in every chunk of a lexical memory, so the mapping from text to ids is a storage format:
 * it never changes under the name "lex1" (a different mapping gets a new tokenizer name).
 *
 * Id layout (a token's kind is readable from its id, which is what lets the encoder weigh tokens it
 * sees only as ids):
 *   0                                  padding, never produced
 *   1 .. LEX1_STOP_COUNT               the fixed stopword list (ids up to LEX1_STOP_MAX are
 * reserved) LEX1_PUNCT_BASE + code point       a punctuation mark or symbol class <<
 * LEX1_CLASS_SHIFT | hash   any other token; class 1 .. 15 (enum lex1_class) says its shape
 *
 * Thread-safe; nothing here allocates except lex1_tokenize's result.
 */
#ifndef HSAMEM_TOKENIZER_H
#define HSAMEM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encoder.h"

#define LEX1_NAME        "lex1"
#define LEX1_TOKEN_MAX   64   /* bytes: longer words are cut into pieces of at most this */
#define LEX1_STOP_MAX    4095 /* ids reserved for fixed words */
#define LEX1_STOP_COUNT  215  /* ids of stopwords: 1 .. LEX1_STOP_COUNT */
#define LEX1_PUNCT_BASE  0x10000u
#define LEX1_PUNCT_END   (LEX1_PUNCT_BASE + 0x110000u)
#define LEX1_CLASS_SHIFT 27
#define LEX1_HASH_MASK   ((1u << LEX1_CLASS_SHIFT) - 1)

/* The shape of a hashed token, in the top 4 bits of its id. */
enum lex1_class {
	LEX1_WORD1 = 1, /* 1 .. 10: letters only, that many bytes (10: ten or more) */
	LEX1_WORD10 = 10,
	LEX1_NUM_SHORT = 11, /* ASCII digits only, 1 or 2 of them */
	LEX1_NUM = 12,       /* ASCII digits only, 3 or more */
	LEX1_ALNUM = 13,     /* letters and digits mixed: "3pm", "x86", "covid19" */
	LEX1_CJK = 14,       /* one CJK ideograph or kana character */
	LEX1_PIECE = 15,     /* a piece of a word longer than LEX1_TOKEN_MAX bytes */
};

/* What an id stands for, as the encoder sees it. */
enum lex1_kind {
	LEX1_K_PAD,   /* 0 */
	LEX1_K_STOP,  /* a stopword */
	LEX1_K_PUNCT, /* a punctuation mark or symbol */
	LEX1_K_WORD,  /* a hashed token: lex1_class() says which shape */
	LEX1_K_OTHER, /* an id lex1 never produces (a client's own ids): treated as a word */
};

static inline enum lex1_kind
lex1_kind(uint32_t id)
{
	if (id == 0)
		return LEX1_K_PAD;
	if (id <= LEX1_STOP_MAX)
		return id <= LEX1_STOP_COUNT ? LEX1_K_STOP : LEX1_K_OTHER;
	if (id >= LEX1_PUNCT_BASE && id < LEX1_PUNCT_END)
		return LEX1_K_PUNCT;
	if (id >> LEX1_CLASS_SHIFT != 0 && id >> LEX1_CLASS_SHIFT < 16)
		return LEX1_K_WORD;
	return LEX1_K_OTHER;
}

/* The class (1 .. 15) of a hashed token's id; 0 for any other id. */
static inline unsigned
lex1_class(uint32_t id)
{
	return lex1_kind(id) == LEX1_K_WORD ? id >> LEX1_CLASS_SHIFT : 0;
}

/*
 * A position in a text being tokenized. Initialise with lex1_cursor_init; the text must stay valid
 * while the cursor is used.
 */
struct lex1_cursor {
	const unsigned char *text;
	size_t len;
	size_t pos;
	bool piece; /* the last token was cut at LEX1_TOKEN_MAX and its word goes on */
};

void lex1_cursor_init(struct lex1_cursor *c, const char *text, size_t len);

/*
 * Reads the next token into *tok. Returns false at the end of the text. Offsets are relative to the
 * text's start; texts of 4 GiB or more must be split by the caller (lex1_tokenize refuses them).
 */
bool lex1_next(struct lex1_cursor *c, struct enc_token *tok);

/*
 * All tokens of a text: on success *out is a malloc'd array of *n tokens (NULL when *n is 0) that
 * the caller frees. Returns 0, -ENOMEM, or HSAMEM_ETOOBIG for a text of 4 GiB or more.
 */
int lex1_tokenize(const char *text, size_t len, struct enc_token **out, size_t *n);

/* The id of a text that is exactly one token, or 0 when it is empty or more than one token. */
uint32_t lex1_word_id(const char *text, size_t len);

/* The stopword of an id 1 .. LEX1_STOP_COUNT, else NULL. */
const char *lex1_stopword(uint32_t id);

/* FNV-1a, 32 bits, of n bytes: the hash that ids are made of (exposed for tests). */
uint32_t lex1_fnv1a(const void *data, size_t n);

#endif
