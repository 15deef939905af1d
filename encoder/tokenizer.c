/*
 * tokenizer.c: the lex1 tokenizer (encoder/LEXICAL.md). It owns the character classes, the
 * stopword table and the id function; it knows nothing of chunks or vectors.
 *
 * Everything here is part of the storage format: the stopword table's order, the character ranges
 * and the hash must never change. A change is a new tokenizer with a new name.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hsamem_defs.h"
#include "tokenizer.h"

/* Ids 1 .. N in this order. Append-only is NOT allowed either: ids of stored chunks would change
 * meaning for words that were hashed before. */
/* clang-format off */
static const char *const stopwords[] = {
	"the", "of", "and", "a", "to", "in", "is", "it", "you", "that", "he", "was", "for", "on",
	"are", "with", "as", "i", "his", "they", "be", "at", "have", "this", "from", "or", "had",
	"by", "but", "not", "what", "all", "were", "we", "when", "your", "can", "there", "an",
	"each", "which", "she", "do", "how", "their", "if", "will", "up", "about", "out", "then",
	"them", "these", "so", "some", "her", "would", "him", "into", "has", "more", "could", "no",
	"my", "than", "been", "who", "its", "now", "did", "get", "may", "down", "over", "only",
	"very", "just", "also", "any", "our", "me", "us", "most", "such", "where", "why", "after",
	"before", "because", "while", "should", "off", "own", "same", "both", "few", "again",
	"once", "here", "those", "through", "during", "above", "below", "under", "until",
	"between", "against", "am", "being", "does", "doing", "having", "itself", "myself",
	"yourself", "himself", "herself", "ourselves", "themselves", "hers", "ours", "yours",
	"theirs", "whom", "whose", "nor", "too", "s", "t", "d", "ll", "m", "re", "ve", "don",
	"doesn", "didn", "isn", "wasn", "aren", "weren", "hasn", "haven", "hadn", "wouldn",
	"shouldn", "couldn", "cannot", "mustn", "needn", "ain", "might", "must", "shall", "yet",
	"ever", "every", "either", "neither", "via", "per", "upon", "onto", "within", "without",
	"toward", "towards", "among", "around", "across", "along", "since", "though", "although",
	"unless", "whether", "however", "therefore", "thus", "else", "etc", "ok", "okay", "yes",
	"oh", "hi", "hello", "please", "thanks", "thank", "really", "quite", "rather", "much",
	"still", "even", "already", "almost", "perhaps", "maybe", "always", "never", "often",
	"sometimes", "something", "anything", "nothing", "everything", "someone", "anyone",
	"everyone", "another", "other", "many",
};
/* clang-format on */

_Static_assert(sizeof(stopwords) / sizeof(stopwords[0]) == LEX1_STOP_COUNT,
               "LEX1_STOP_COUNT must match the stopword table");

#define STOP_LEN_MAX 10 /* the longest stopword, in bytes */
#define STOP_SLOTS   1024

/* Open addressing by FNV-1a, built once: slot holds a stopword's id, 0 when empty. */
static uint16_t stop_slots[STOP_SLOTS];
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

#define FNV_BASIS 2166136261u
#define FNV_PRIME 16777619u

uint32_t
lex1_fnv1a(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint32_t h = FNV_BASIS;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

static void
stop_build(void)
{
	for (uint32_t id = 1; id <= LEX1_STOP_COUNT; id++) {
		const char *w = stopwords[id - 1];
		uint32_t s = lex1_fnv1a(w, strlen(w)) & (STOP_SLOTS - 1);
		while (stop_slots[s] != 0)
			s = (s + 1) & (STOP_SLOTS - 1);
		stop_slots[s] = (uint16_t)id;
	}
}

/* The stopword id of lowercase ASCII word w (its hash h), or 0. */
static uint32_t
stop_find(const unsigned char *w, size_t len, uint32_t h)
{
	pthread_once(&stop_once, stop_build);
	for (uint32_t s = h & (STOP_SLOTS - 1);; s = (s + 1) & (STOP_SLOTS - 1)) {
		uint32_t id = stop_slots[s];
		if (id == 0)
			return 0;
		const char *sw = stopwords[id - 1];
		if (strlen(sw) == len && memcmp(sw, w, len) == 0)
			return id;
	}
}

const char *
lex1_stopword(uint32_t id)
{
	return id >= 1 && id <= LEX1_STOP_COUNT ? stopwords[id - 1] : NULL;
}

/* Character classes (LEXICAL.md "Characters"). */
enum cc {
	CC_SPACE,  /* skipped */
	CC_WORD,   /* part of a word */
	CC_PUNCT,  /* a token by itself */
	CC_CJK,    /* a token by itself, hashed like a word */
	CC_EXTEND, /* joins the token before it; skipped when none is adjacent */
};

#define BAD_CP 0xffffffffu

/* Decodes one code point at p (avail > 0 bytes); an invalid byte decodes as BAD_CP of length 1. */
static uint32_t
decode(const unsigned char *p, size_t avail, size_t *adv)
{
	uint32_t c = p[0], cp, min;
	size_t need;
	if (c < 0x80) {
		*adv = 1;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3, cp = c & 0x07, min = 0x10000;
	} else {
		goto bad;
	}
	if (avail <= need)
		goto bad;
	for (size_t i = 1; i <= need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			goto bad;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		goto bad;
	*adv = need + 1;
	return cp;
bad:
	*adv = 1;
	return BAD_CP;
}

static inline enum cc
classify(uint32_t cp)
{
	if (cp < 0x80) {
		if ((cp | 0x20) - 'a' < 26 || cp - '0' < 10)
			return CC_WORD;
		return cp <= 0x20 || cp == 0x7f ? CC_SPACE : CC_PUNCT;
	}
	if (cp == BAD_CP)
		return CC_WORD; /* keeps Latin-1 or cut-off text in its words */
	if (cp <= 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200b) || cp == 0x2028 ||
	    cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff)
		return CC_SPACE; /* C1 controls, no-break and typographic spaces, BOM */
	if ((cp >= 0xa1 && cp <= 0xbf) || cp == 0xd7 || cp == 0xf7)
		return CC_PUNCT;
	if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0xfe00 && cp <= 0xfe0f) ||
	    (cp >= 0x1f3fb && cp <= 0x1f3ff) || (cp >= 0xe0020 && cp <= 0xe007f))
		return CC_EXTEND; /* combining marks, variation selectors, skin tones, tags */
	if (cp >= 0x2010 && cp <= 0x2bff)
		return CC_PUNCT; /* general punctuation through arrows, math, shapes, dingbats */
	if ((cp >= 0x3001 && cp <= 0x303f) || (cp >= 0xff01 && cp <= 0xff0f) ||
	    (cp >= 0xff1a && cp <= 0xff20) || (cp >= 0xff3b && cp <= 0xff40) ||
	    (cp >= 0xff5b && cp <= 0xff65))
		return CC_PUNCT; /* CJK and fullwidth punctuation */
	if ((cp >= 0x1f000 && cp <= 0x1faff))
		return CC_PUNCT; /* emoji and pictographs */
	if ((cp >= 0x3040 && cp <= 0x30ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
	    (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xf900 && cp <= 0xfaff) ||
	    (cp >= 0x20000 && cp <= 0x2ffff))
		return CC_CJK;
	return CC_WORD;
}

/* The class of the code point at p, which it decodes into *cp, *adv bytes. */
static inline enum cc
next_class(const unsigned char *p, size_t avail, uint32_t *cp, size_t *adv)
{
	if (p[0] < 0x80) { /* most text: no decoding */
		*cp = p[0];
		*adv = 1;
		return classify(p[0]);
	}
	*cp = decode(p, avail, adv);
	return classify(*cp);
}

static inline uint32_t
make_id(unsigned cls, uint32_t h)
{
	return ((uint32_t)cls << LEX1_CLASS_SHIFT) |
	       ((h ^ (h >> LEX1_CLASS_SHIFT)) & LEX1_HASH_MASK);
}

void
lex1_cursor_init(struct lex1_cursor *c, const char *text, size_t len)
{
	c->text = (const unsigned char *)text;
	c->len = len;
	c->pos = 0;
	c->piece = false;
}

/* Moves past the extenders that follow a punctuation mark or CJK character, keeping the token
 * within LEX1_TOKEN_MAX bytes (further extenders are skipped as whitespace). */
static void
absorb_extenders(struct lex1_cursor *c, size_t start)
{
	while (c->pos < c->len) {
		size_t adv;
		uint32_t cp;
		if (next_class(c->text + c->pos, c->len - c->pos, &cp, &adv) != CC_EXTEND ||
		    c->pos + adv - start > LEX1_TOKEN_MAX)
			break;
		c->pos += adv;
	}
}

bool
lex1_next(struct lex1_cursor *c, struct enc_token *tok)
{
	const unsigned char *t = c->text;
	size_t adv = 0;
	uint32_t cp = 0;
	enum cc k = CC_SPACE;

	while (c->pos < c->len) {
		k = next_class(t + c->pos, c->len - c->pos, &cp, &adv);
		if (k != CC_SPACE && k != CC_EXTEND)
			break;
		c->pos += adv;
	}
	if (c->pos >= c->len)
		return false;

	size_t start = c->pos;
	tok->off = (uint32_t)start;
	if (k == CC_PUNCT) {
		c->pos += adv;
		absorb_extenders(c, start);
		tok->id = LEX1_PUNCT_BASE + cp;
		tok->len = (uint32_t)(c->pos - start);
		c->piece = false;
		return true;
	}
	if (k == CC_CJK) {
		tok->id = make_id(LEX1_CJK, lex1_fnv1a(t + start, adv));
		c->pos += adv;
		absorb_extenders(c, start);
		tok->len = (uint32_t)(c->pos - start);
		c->piece = false;
		return true;
	}

	/* A word: hash its lowercased bytes as they are read. */
	uint32_t h = FNV_BASIS;
	bool digit = false, letter = false, ascii_alpha = true, cut = false;
	unsigned char low[STOP_LEN_MAX];
	for (;;) {
		size_t n = c->pos - start;
		if (n + adv > LEX1_TOKEN_MAX) {
			cut = true;
			break;
		}
		if (cp < 0x80) {
			unsigned char b = (unsigned char)cp;
			if ((unsigned)(b - '0') < 10) {
				digit = true;
				ascii_alpha = false;
			} else {
				letter = true;
				b |= 0x20;
			}
			if (n < STOP_LEN_MAX)
				low[n] = b;
			h = (h ^ b) * FNV_PRIME;
		} else {
			letter = true;
			ascii_alpha = false;
			for (size_t i = 0; i < adv; i++) {
				unsigned char b = t[c->pos + i];
				/* Latin-1 capitals U+00C0..U+00DE (not U+00D7) fold to small
				 * letters. */
				if (i == 1 && cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
					b += 0x20;
				h = (h ^ b) * FNV_PRIME;
			}
		}
		c->pos += adv;
		if (c->pos >= c->len)
			break;
		k = next_class(t + c->pos, c->len - c->pos, &cp, &adv);
		if (k != CC_WORD && k != CC_EXTEND)
			break;
	}

	size_t n = c->pos - start;
	unsigned cls;
	tok->len = (uint32_t)n;
	if (cut || c->piece) {
		cls = LEX1_PIECE;
	} else if (!letter) {
		cls = n <= 2 ? LEX1_NUM_SHORT : LEX1_NUM;
	} else if (digit) {
		cls = LEX1_ALNUM;
	} else {
		if (ascii_alpha && n <= STOP_LEN_MAX) {
			uint32_t id = stop_find(low, n, h);
			if (id != 0) {
				tok->id = id;
				c->piece = false;
				return true;
			}
		}
		cls = n < 10 ? (unsigned)n : 10;
	}
	c->piece = cut;
	tok->id = make_id(cls, h);
	return true;
}

int
lex1_tokenize(const char *text, size_t len, struct enc_token **out, size_t *n)
{
	if (len >= UINT32_MAX)
		return HSAMEM_ETOOBIG;
	struct lex1_cursor c;
	struct enc_token *v = NULL, tok;
	size_t cnt = 0, cap = 0;
	lex1_cursor_init(&c, text, len);
	while (lex1_next(&c, &tok)) {
		if (cnt == cap) {
			/* English runs about 4.5 bytes a token: one guess, then doubling. */
			size_t ncap = cap ? 2 * cap : len / 4 + 16;
			struct enc_token *nv = realloc(v, ncap * sizeof(*v));
			if (nv == NULL) {
				free(v);
				return -ENOMEM;
			}
			v = nv, cap = ncap;
		}
		v[cnt++] = tok;
	}
	*out = v;
	*n = cnt;
	return 0;
}

uint32_t
lex1_word_id(const char *text, size_t len)
{
	struct lex1_cursor c;
	struct enc_token a, b;
	lex1_cursor_init(&c, text, len);
	if (!lex1_next(&c, &a) || lex1_next(&c, &b))
		return 0;
	return a.id;
}
