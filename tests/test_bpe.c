/*
 * test_bpe.c: the hsamem-bpe tokenizer (encoder/bpe.c) against the reference's own output
 * (models/hsa-small/golden-tokenizer.json: every pair must match id for id), decoding back to the
 * same bytes (also for random bytes that are not UTF-8), and the refusal of malformed files.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe.h"
#include "hsamem_defs.h"
#include "test.h"

static char dir[4096];

static void
test_golden(const struct bpe *b)
{
	char path[4200];
	json_error_t jerr;
	json_t *root, *e;
	size_t i, pairs = 0;

	snprintf(path, sizeof(path), "%s/golden-tokenizer.json", dir);
	root = json_load_file(path, 0, &jerr);
	CHECK(json_is_array(root));
	json_array_foreach(root, i, e)
	{
		const char *text = json_string_value(json_object_get(e, "text"));
		json_t *want = json_object_get(e, "ids");
		size_t len = json_string_length(json_object_get(e, "text")), n = 0, k, dlen = 0;
		uint32_t *ids = NULL;
		char *back = NULL;
		int same;

		CHECK_RET(bpe_encode(b, text, len, &ids, &n), 0);
		same = n == json_array_size(want);
		for (k = 0; same && k < n; k++)
			same = ids[k] == (uint32_t)json_integer_value(json_array_get(want, k));
		if (!same)
			fprintf(stderr, "golden pair %zu (\"%s\"): %zu ids, expected %zu\n", i,
			        text, n, json_array_size(want));
		CHECK(same);
		CHECK_RET(bpe_decode(b, ids, n, &back, &dlen), 0);
		CHECK(dlen == len && !memcmp(back, text, len));
		free(ids);
		free(back);
		pairs++;
	}
	printf("golden: %zu pairs matched\n", pairs);
	CHECK(pairs >= 10);
	json_decref(root);
}

/* Random bytes (mostly not UTF-8, with runs of spaces and digits) decode back to themselves. */
static void
test_roundtrip(const struct bpe *b)
{
	static const char alphabet[] = "ab Z09 \t\n\r.,;-\x80\xc3\xa9\xff";
	char text[4096], *back = NULL;
	uint32_t *ids = NULL, seed = 12345;
	size_t n = 0, dlen = 0, i, r;

	for (r = 0; r < 50; r++) {
		size_t len = 1 + (r * 97) % sizeof(text);
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			text[i] = (r & 1) ? (char)(seed >> 16)
			                  : alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		CHECK_RET(bpe_encode(b, text, len, &ids, &n), 0);
		CHECK(n > 0 && n <= len);
		for (i = 0; i < n; i++)
			CHECK(ids[i] < 256 || ids[i] >= 264);
		CHECK_RET(bpe_decode(b, ids, n, &back, &dlen), 0);
		CHECK(dlen == len && !memcmp(back, text, len));
		free(ids);
		free(back);
	}
	CHECK(bpe_special(b, "<|eos|>") == 257);
	CHECK(bpe_special(b, "<|a|>") == 259);
	CHECK(bpe_special(b, "<|nope|>") == -1);
}

/* Writes text to a temporary file and expects bpe_load to refuse it with a message holding want. */
static void
expect_refused(const char *text, const char *want)
{
	char path[] = "/tmp/test_bpe.XXXXXX", why[256] = "";
	struct bpe *b = NULL;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	CHECK_RET(bpe_load(path, &b, why, sizeof(why)), HSAMEM_EENCODER);
	CHECK(b == NULL);
	if (!strstr(why, want) || !strstr(why, path))
		fprintf(stderr, "refusal \"%s\" lacks \"%s\" or the path\n", why, want);
	CHECK(strstr(why, want) != NULL && strstr(why, path) != NULL);
	unlink(path);
}

static void
test_refusals(void)
{
	const char *head = "hsamem-bpe 1\nvocab 266\nspecials 1\n<|pad|> 256\nmerges 8\n";
	char why[256];
	struct bpe *b = NULL;

	expect_refused("hsamem-bpe 2\n", "expected \"hsamem-bpe 1\"");
	expect_refused("hsamem-bpe 1\nvocab x\n", "vocab N");
	expect_refused(head, "expected \"merges 9\" (vocab 266 less bytes and specials)");
	expect_refused(
	        "hsamem-bpe 1\nvocab 259\nspecials 1\n<|pad|> 256\nmerges 2\n97 98\n256 97\n",
	        "merge 1: expected two earlier non-special ids");
	expect_refused("hsamem-bpe 1\nvocab 259\nspecials 1\n<|pad|> 256\nmerges 2\n97 98\n97 98\n",
	               "merge 1 repeats the pair 97 98");
	expect_refused("hsamem-bpe 1\nvocab 259\nspecials 1\n<|pad|> 256\nmerges 2\n97 98\n",
	               "merge 1: expected two earlier non-special ids, found \"(end of file)\"");
	CHECK(bpe_load("/nonexistent/hsamem-bpe.tok", &b, why, sizeof(why)) < 0);
	CHECK(strstr(why, "/nonexistent/hsamem-bpe.tok") != NULL);
}

int
main(void)
{
	const char *top = getenv("HSAMEM_TOP_SRCDIR");
	char path[4200], why[256] = "";
	struct bpe *b = NULL;

	snprintf(dir, sizeof(dir), "%s/models/hsa-small", top ? top : ".");
	snprintf(path, sizeof(path), "%s/hsamem-bpe.tok", dir);
	CHECK_RET(bpe_load(path, &b, why, sizeof(why)), 0);
	if (!b) {
		fprintf(stderr, "%s\n", why);
		return test_done("test_bpe");
	}
	CHECK(bpe_vocab(b) == 8192);
	test_golden(b);
	test_roundtrip(b);
	test_refusals();
	bpe_free(b);
	return test_done("test_bpe");
}
