/*
 * test_daemon_ask.c: ask, answers from memory (hsamem(7), ASKING), in the real hsamemd with the
 * shipped model hsa-small.
 *
 * A needle of the model's evaluation task "single" (tools/train/hsatrain/tasks.py: "One of the
 * special magic numbers for KEY is: NUMBER." and its question) among some tens of entries of
 * ordinary text: ask answers with the number, names the needle's entry among the chunks it drew
 * on, and says it is experimental. max_tokens cuts the same answer short. A memory of another
 * encoder, an unknown memory and bad limits are refused.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hsamem.h"
#include "test.h"

#define QUESTION "What is the special magic number for quiet-harbor mentioned in the provided text?"

/* Prose of a fixed vocabulary, reproducible from the seed: about 40 tokens an entry. */
static void
prose(unsigned seed, char *buf, size_t len)
{
	static const char *const subj[] = {"The old ferry", "A tired teacher", "The village baker",
	                                   "Our neighbour", "The night train", "A young painter"};
	static const char *const verb[] = {"carried", "watched", "repaired", "described"};
	static const char *const obj[] = {"the wooden bridge", "a basket of apples",
	                                  "the harbour lights", "an unfinished letter"};
	size_t n = 0;
	unsigned x = seed * 747796405u + 2891336453u;
	for (int s = 0; s < 3 && n < len; s++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		n += (size_t)snprintf(buf + n, len - n, "%s%s %s %s.", s ? " " : "", subj[x % 6],
		                      verb[(x >> 4) % 4], obj[(x >> 8) % 4]);
	}
}

/* 40 entries, the needle the 13th; returns the needle's seq. */
static uint64_t
fill(struct hsamem *c, const char *user)
{
	static char texts[40][256];
	struct hsamem_entry_in in[40];
	struct hsamem_append_info info = {0};
	struct hsamem_spec spec = {.encoder = "hsa-small"};
	CHECK_RET(hsamem_create(c, user, &spec, NULL), 0);
	for (unsigned i = 0; i < 40; i++) {
		if (i == 12)
			snprintf(texts[i], sizeof(texts[i]),
			         "One of the special magic numbers for quiet-harbor is: 4829301.");
		else
			prose(i, texts[i], sizeof(texts[i]));
		in[i] = (struct hsamem_entry_in){.text = texts[i], .role = HSAMEM_ROLE_USER};
	}
	CHECK_RET(hsamem_append(c, user, in, 40, NULL, 0, HSAMEM_APPEND_NO_CREATE, &info), 0);
	CHECK(info.chunks >= 20);
	return info.first_seq + 12;
}

static bool
names_entry(const struct hsamem_ask_result *r, uint64_t seq)
{
	for (size_t i = 0; i < r->n_chunks; i++)
		for (size_t e = 0; e < r->chunks[i].n_entries; e++)
			if (r->chunks[i].entries[e].seq == seq)
				return true;
	return false;
}

static void
test_answer(struct hsamem *c)
{
	struct hsamem_ask_result *r = NULL, *cut = NULL;
	uint64_t seq = fill(c, "hs");

	CHECK_RET(hsamem_ask(c, "hs", QUESTION, NULL, &r), 0);
	if (r == NULL)
		return;
	if (strstr(r->answer, "4829301") == NULL || !names_entry(r, seq))
		fprintf(stderr, "answer '%s' (%zu tokens), %zu chunks, first %llu: %s\n", r->answer,
		        r->n_tokens, r->n_chunks,
		        r->n_chunks ? (unsigned long long)r->chunks[0].chunk : 0ULL,
		        r->n_chunks ? r->chunks[0].text : "");
	CHECK(strstr(r->answer, "4829301") != NULL);
	CHECK(names_entry(r, seq));
	CHECK(r->experimental);
	CHECK(strcmp(r->encoder, "hsa-small") == 0);
	CHECK(r->n_tokens >= 1 && r->n_tokens <= 32);
	CHECK(r->n_chunks >= 1 && r->n_chunks <= 3);
	CHECK(r->positions == r->n_tokens + (r->complete ? 1 : 0));
	CHECK(r->searched >= 20);
	/* most weight first; a chunk's weight is at most one per position */
	for (size_t i = 0; i < r->n_chunks; i++) {
		CHECK(r->chunks[i].weight > 0 && r->chunks[i].weight <= r->positions + 1e-3f);
		CHECK(i == 0 || r->chunks[i].weight <= r->chunks[i - 1].weight);
	}

	/* --max-tokens: the same answer, cut */
	struct hsamem_ask opts = {.max_tokens = 2};
	CHECK_RET(hsamem_ask(c, "hs", QUESTION, &opts, &cut), 0);
	if (cut != NULL && r->n_tokens > 2) {
		CHECK(cut->n_tokens == 2 && !cut->complete && cut->positions == 2);
		CHECK(memcmp(cut->tokens, r->tokens, 2 * sizeof(uint32_t)) == 0);
		CHECK(strncmp(cut->answer, r->answer, strlen(cut->answer)) == 0);
	}
	hsamem_result_free(cut);
	hsamem_result_free(r);
}

static void
test_refused(struct hsamem *c)
{
	struct hsamem_ask_result *r = NULL;
	struct hsamem_ask big = {.max_tokens = 65}, entries = {.max_entries = 65};

	CHECK_RET(hsamem_append_text(c, "lex", HSAMEM_ROLE_USER, "the blue kettle whistles", NULL),
	          0);
	CHECK_RET(hsamem_ask(c, "lex", QUESTION, NULL, &r), HSAMEM_ENOTSUP);
	CHECK(strstr(hsamem_last_message(c), "lexical") != NULL);
	CHECK(r == NULL);
	CHECK_RET(hsamem_ask(c, "nobody", QUESTION, NULL, &r), HSAMEM_ENOUSER);
	CHECK_RET(hsamem_ask(c, "hs", QUESTION, &big, &r), HSAMEM_EINVAL);
	CHECK_RET(hsamem_ask(c, "hs", QUESTION, &entries, &r), HSAMEM_EINVAL);
	CHECK_RET(hsamem_ask(c, "hs", "", NULL, &r), HSAMEM_EINVAL);
	char longq[1024] = "";
	for (int i = 0; i < 40; i++)
		strcat(longq, "numbers and letters ");
	CHECK_RET(hsamem_ask(c, "hs", longq, NULL, &r), HSAMEM_ETOOBIG);
	CHECK(r == NULL);

	/* a memory without sealed chunks answers from its window alone, naming no chunk */
	struct hsamem_spec spec = {.encoder = "hsa-small"};
	CHECK_RET(hsamem_create(c, "empty", &spec, NULL), 0);
	CHECK_RET(hsamem_ask(c, "empty", QUESTION, NULL, &r), 0);
	CHECK(r != NULL && r->n_chunks == 0 && r->searched == 0 && r->experimental);
	hsamem_result_free(r);
}

int
main(void)
{
	struct harness h;
	struct hsamem *c;
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		fprintf(stderr, "cannot start hsamemd\n");
		harness_dump_log(&h);
		return 1;
	}
	CHECK_RET(hsamem_open(h.url, &c), 0);
	test_answer(c);
	test_refused(c);
	hsamem_close(c);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_ask");
}
