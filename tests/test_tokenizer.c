/*
 * test_tokenizer.c: the lex1 tokenizer. The hard-coded ids below pin the storage format: if one of
 * them changes, stored memories would be read with other ids, so the fix is never to update the
 * expected value but to restore the old behaviour (or to add a new tokenizer).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsamem.h"
#include "test.h"
#include "tokenizer.h"

struct want {
	const char *text; /* the token's bytes in the input */
	uint32_t id;
};

/* Tokenizes s and checks every token's id and exact byte range against want[0..n). */
static void
check_tokens(const char *s, size_t len, const struct want *want, size_t n_want)
{
	struct enc_token *t = NULL;
	size_t n = 0, at = 0;
	CHECK_RET(lex1_tokenize(s, len, &t, &n), 0);
	CHECK_RET(n, n_want);
	for (size_t i = 0; i < n && i < n_want; i++) {
		size_t wl = strlen(want[i].text);
		/* Tokens come in order; find where the wanted bytes start at or after the
		 * last one. */
		while (at + wl <= len && memcmp(s + at, want[i].text, wl) != 0)
			at++;
		CHECK_RET(t[i].off, at);
		CHECK_RET(t[i].len, wl);
		CHECK_RET(t[i].id, want[i].id);
		at += wl;
	}
	free(t);
}

static void
test_fnv(void)
{
	/* Published FNV-1a 32-bit test vectors. */
	CHECK_RET(lex1_fnv1a("", 0), 0x811c9dc5u);
	CHECK_RET(lex1_fnv1a("a", 1), 0xe40c292cu);
	CHECK_RET(lex1_fnv1a("foobar", 6), 0xbf9cf968u);
}

static void
test_stopwords(void)
{
	CHECK_RET(lex1_word_id("the", 3), 1);
	CHECK_RET(lex1_word_id("The", 3), 1);
	CHECK_RET(lex1_word_id("THE", 3), 1);
	CHECK_RET(lex1_word_id("of", 2), 2);
	CHECK_RET(lex1_word_id("and", 3), 3);
	CHECK_RET(lex1_word_id("a", 1), 4);
	CHECK_RET(lex1_word_id("is", 2), 7);
	CHECK_RET(lex1_word_id("for", 3), 13);
	CHECK_RET(lex1_word_id("s", 1), 129);
	CHECK_RET(lex1_word_id("t", 1), 130);
	CHECK_RET(lex1_word_id("don", 3), 136);
	CHECK_RET(lex1_word_id("hello", 5), 188);
	CHECK_RET(lex1_word_id("many", 4), LEX1_STOP_COUNT);
	CHECK(strcmp(lex1_stopword(1), "the") == 0);
	CHECK(strcmp(lex1_stopword(LEX1_STOP_COUNT), "many") == 0);
	CHECK(lex1_stopword(0) == NULL);
	CHECK(lex1_stopword(LEX1_STOP_COUNT + 1) == NULL);
	/* Every stopword maps to its own id, and no two share one. */
	for (uint32_t id = 1; id <= LEX1_STOP_COUNT; id++) {
		const char *w = lex1_stopword(id);
		CHECK_RET(lex1_word_id(w, strlen(w)), id);
		CHECK(lex1_kind(id) == LEX1_K_STOP);
	}
}

static void
test_ids(void)
{
	/* Hashed words: class in the top bits, folded FNV-1a of the lowercased bytes below. */
	CHECK_RET(lex1_word_id("password", 8), 0x464b5f1eu);
	CHECK_RET(lex1_word_id("Tangerine", 9), 0x4e442505u);
	CHECK_RET(lex1_word_id("vault", 5), 0x2d496ba7u);
	CHECK_RET(lex1_word_id("blue", 4), 0x22fbf5ddu);
	CHECK_RET(lex1_word_id("cat", 3), 0x1e745c07u);
	CHECK_RET(lex1_word_id("quarterly", 9), 0x4b81106eu);
	CHECK_RET(lex1_word_id("3pm", 3), 0x69b1dcc2u);
	CHECK_RET(lex1_word_id("418", 3), 0x642dcd7fu);
	CHECK_RET(lex1_word_id("42", 2), 0x5fe38593u);
	CHECK_RET(lex1_word_id("2024", 4), 0x622940b1u);
	CHECK_RET(lex1_word_id("covid19", 7), 0x6cbf5991u);
	CHECK_RET(lex1_word_id("caf\xc3\xa9", 5), 0x282b505cu);
	/* Latin-1 capitals fold: CAFÉ is café. */
	CHECK_RET(lex1_word_id("CAF\xc3\x89", 5), 0x282b505cu);
	CHECK_RET(lex1_word_id("\xe6\x97\xa5", 3), 0x70d4e4edu); /* 日 */

	CHECK_RET(lex1_class(lex1_word_id("cat", 3)), 3);
	CHECK_RET(lex1_class(lex1_word_id("password", 8)), 8);
	CHECK_RET(lex1_class(lex1_word_id("internationalization", 20)), LEX1_WORD10);
	CHECK_RET(lex1_class(lex1_word_id("7", 1)), LEX1_NUM_SHORT);
	CHECK_RET(lex1_class(lex1_word_id("2024", 4)), LEX1_NUM);
	CHECK_RET(lex1_class(lex1_word_id("x86", 3)), LEX1_ALNUM);
	CHECK_RET(lex1_class(lex1_word_id("\xe6\x97\xa5", 3)), LEX1_CJK);

	/* Punctuation: the base plus the code point. */
	CHECK_RET(lex1_word_id(".", 1), LEX1_PUNCT_BASE + '.');
	CHECK_RET(lex1_word_id("?", 1), 0x1003fu);
	CHECK_RET(lex1_word_id("\xe2\x80\x94", 3), LEX1_PUNCT_BASE + 0x2014); /* em dash */
	CHECK(lex1_kind(LEX1_PUNCT_BASE + '.') == LEX1_K_PUNCT);
	CHECK(lex1_kind(0) == LEX1_K_PAD);
	CHECK(lex1_kind(LEX1_STOP_COUNT + 1) == LEX1_K_OTHER);
	CHECK(lex1_kind(12345) == LEX1_K_OTHER);

	/* Not exactly one token. */
	CHECK_RET(lex1_word_id("", 0), 0);
	CHECK_RET(lex1_word_id("two words", 9), 0);
	CHECK_RET(lex1_word_id("  ", 2), 0);
}

static void
test_ranges(void)
{
	static const char s[] = "The password for the blue vault is Tangerine.";
	static const struct want w[] = {
	        {"The", 1}, {"password", 0x464b5f1eu},  {"for", 13},
	        {"the", 1}, {"blue", 0x22fbf5ddu},      {"vault", 0x2d496ba7u},
	        {"is", 7},  {"Tangerine", 0x4e442505u}, {".", 0x1002eu},
	};
	check_tokens(s, sizeof(s) - 1, w, sizeof(w) / sizeof(w[0]));

	/* Apostrophes (ASCII and U+2019) are tokens that split the word; dashes and curly quotes
	 * are punctuation; a variation selector joins the symbol before it. */
	static const char u[] =
	        "Alice's cat \xe2\x80\x94 \xe2\x80\x9cWhiskers\xe2\x80\x9d don\xe2\x80\x99t "
	        "\xe2\x9d\xa4\xef\xb8\x8f caf\xc3\xa9!";
	static const struct want wu[] = {
	        {"Alice", 0x2f2213f7u},
	        {"'", LEX1_PUNCT_BASE + '\''},
	        {"s", 129},
	        {"cat", 0x1e745c07u},
	        {"\xe2\x80\x94", LEX1_PUNCT_BASE + 0x2014},
	        {"\xe2\x80\x9c", LEX1_PUNCT_BASE + 0x201c},
	        {"Whiskers", 0x441cf00bu},
	        {"\xe2\x80\x9d", LEX1_PUNCT_BASE + 0x201d},
	        {"don", 136},
	        {"\xe2\x80\x99", LEX1_PUNCT_BASE + 0x2019},
	        {"t", 130},
	        {"\xe2\x9d\xa4\xef\xb8\x8f", LEX1_PUNCT_BASE + 0x2764},
	        {"caf\xc3\xa9", 0x282b505cu},
	        {"!", LEX1_PUNCT_BASE + '!'},
	};
	check_tokens(u, sizeof(u) - 1, wu, sizeof(wu) / sizeof(wu[0]));

	/* CJK characters are tokens one by one; the ideographic space is whitespace. */
	static const char c[] = "\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x80x";
	static const struct want wc[] = {
	        {"\xe6\x97\xa5", 0x70d4e4edu},
	        {"\xe6\x9c\xac", 0x71c00f8au},
	        {"x", 0x0d0c5098u},
	};
	check_tokens(c, sizeof(c) - 1, wc, sizeof(wc) / sizeof(wc[0]));
}

static void
test_edges(void)
{
	struct enc_token *t = (struct enc_token *)&t; /* must become NULL */
	size_t n = 99;

	CHECK_RET(lex1_tokenize("", 0, &t, &n), 0);
	CHECK(t == NULL);
	CHECK_RET(n, 0);
	t = (struct enc_token *)&t;
	CHECK_RET(lex1_tokenize(" \t\r\n\v\f \xc2\xa0\xe2\x80\x83\xef\xbb\xbf", 15, &t, &n), 0);
	CHECK(t == NULL);
	CHECK_RET(n, 0);
	CHECK_RET(lex1_tokenize(NULL, 0, &t, &n), 0);
	CHECK_RET(n, 0);
	CHECK_RET(lex1_tokenize("x", (size_t)UINT32_MAX + 1, &t, &n), HSAMEM_ETOOBIG);

	/* Invalid UTF-8: a stray byte is a one-byte letter; a cut-off sequence at the very
	 * end too. */
	static const char bad[] = "ab\xff"
	                          "cd \xe2\x82 x\xc3";
	static const struct want wb[] = {
	        {"ab\xff"
	         "cd",
	         0x2924a19du},
	        {"\xe2\x82", 0x15efd7a6u},
	        {"x\xc3", 0x16625b1fu},
	};
	check_tokens(bad, sizeof(bad) - 1, wb, sizeof(wb) / sizeof(wb[0]));
	/* Overlong encodings and surrogates are invalid, not decoded. */
	CHECK(lex1_word_id("\xc0\xae", 2) != LEX1_PUNCT_BASE + '.');
	CHECK(lex1_kind(lex1_word_id("\xed\xa0\x80", 3)) == LEX1_K_WORD);

	/* A word of 150 bytes: pieces of 64, 64 and 22 bytes, all of class LEX1_PIECE. */
	char longw[151];
	memset(longw, 'a', 150);
	longw[150] = '\0';
	CHECK_RET(lex1_tokenize(longw, 150, &t, &n), 0);
	CHECK_RET(n, 3);
	if (n == 3) {
		CHECK_RET(t[0].off, 0);
		CHECK_RET(t[0].len, 64);
		CHECK_RET(t[1].off, 64);
		CHECK_RET(t[1].len, 64);
		CHECK_RET(t[2].off, 128);
		CHECK_RET(t[2].len, 22);
		CHECK_RET(t[0].id, 0x796f0f9eu);
		CHECK_RET(t[0].id, t[1].id);
		CHECK_RET(t[2].id, 0x795a654eu);
		for (int i = 0; i < 3; i++)
			CHECK_RET(lex1_class(t[i].id), LEX1_PIECE);
	}
	free(t);

	/* A long word of 3-byte characters is cut at a character boundary (63 bytes). */
	char wide[3 * 30 + 1];
	for (int i = 0; i < 30; i++)
		memcpy(wide + 3 * i,
		       "\xc3\xa9"
		       "e",
		       3);
	CHECK_RET(lex1_tokenize(wide, 90, &t, &n), 0);
	CHECK_RET(n, 2);
	if (n == 2) {
		CHECK_RET(t[0].len, 63);
		CHECK_RET(t[1].off, 63);
		CHECK_RET(t[1].len, 27);
	}
	free(t);

	/* Exactly 64 bytes is one ordinary word; a word after a long one is ordinary again. */
	char w64[64 + 4];
	memset(w64, 'b', 64);
	memcpy(w64 + 64, " cat", 4);
	CHECK_RET(lex1_tokenize(w64, sizeof(w64), &t, &n), 0);
	CHECK_RET(n, 2);
	if (n == 2) {
		CHECK_RET(t[0].len, 64);
		CHECK_RET(lex1_class(t[0].id), LEX1_WORD10);
		CHECK_RET(t[1].id, 0x1e745c07u);
	}
	free(t);
	char w70[70 + 4];
	memset(w70, 'b', 70);
	memcpy(w70 + 70, " cat", 4);
	CHECK_RET(lex1_tokenize(w70, sizeof(w70), &t, &n), 0);
	CHECK_RET(n, 3);
	if (n == 3)
		CHECK_RET(t[2].id, 0x1e745c07u);
	free(t);

	/* Controls are whitespace; a combining mark at the start of the text is skipped. */
	CHECK_RET(lex1_word_id("\x01"
	                       "cat\x7f",
	                       5),
	          0x1e745c07u);
	CHECK_RET(lex1_word_id("\xcc\x81"
	                       "cat",
	                       5),
	          0x1e745c07u);
}

/* Every byte string tokenizes without reading out of bounds, and tokens tile the non-space bytes
 * in order, never overlapping. */
static void
test_random_bytes(void)
{
	unsigned seed = 12345;
	char buf[512];
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)(rand_r(&seed) & 0xff);
		char *copy = malloc(len ? len : 1); /* exact size, so valgrind sees overreads */
		memcpy(copy, buf, len);
		struct enc_token *t;
		size_t n;
		CHECK_RET(lex1_tokenize(copy, len, &t, &n), 0);
		size_t end = 0;
		for (size_t i = 0; i < n; i++) {
			CHECK(t[i].off >= end);
			CHECK(t[i].len >= 1 && t[i].len <= LEX1_TOKEN_MAX);
			CHECK(t[i].id != 0);
			end = t[i].off + t[i].len;
		}
		CHECK(end <= len);
		free(t);
		free(copy);
	}
}

int
main(void)
{
	test_fnv();
	test_stopwords();
	test_ids();
	test_ranges();
	test_edges();
	test_random_bytes();
	return test_done("test_tokenizer");
}
