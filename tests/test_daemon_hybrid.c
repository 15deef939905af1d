/*
 * test_daemon_hybrid.c: query's ranking modes in the real hsamemd (hsamem(7), QUERY MODES).
 *
 * An hsa-small memory holds thirty access codes of one form ("The code ZX-4471-QP opens the red
 * door.") among ordinary prose, each in its own chunk. The model's landmark says "this chunk
 * states a code" and cannot tell the codes apart, so the learned ranking alone puts another code
 * first; the lexical ranking and the hybrid one (the default) find the code asked for. Lexical
 * mode works on an hsa-small memory, its hits scored by the model's own K/V. Bad modes are
 * refused and change nothing; a lexical memory refuses learned and hybrid. A memory without
 * lexical landmarks (made before them: simulated by clearing its flag in the store while the
 * daemon is stopped) ranks learned by default, refuses lexical and hybrid naming reencode, and
 * reencode gives it them. Export and import keep them. BM25 over entries on the lexical side: a
 * fact of one sentence that shares its chunk with a paragraph ranks first in lexical mode, before
 * shorter chunks that repeat its words (daemon/bm25.h).
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"
#include "store.h"
#include "test.h"

#define N_CODES 30
#define NEEDLE  17 /* the code asked for */

static void
code_of(unsigned i, char *buf, size_t len)
{
	static const char letters[] = "ABCDEFGHJKLMNPQRSTUVWXYZ";
	unsigned x = i * 2654435761u + 12345u;
	snprintf(buf, len, "ZX-%04u-%c%c", 1000 + x % 9000, letters[(x >> 13) % 24],
	         letters[(x >> 19) % 24]);
}

static void
prose(unsigned seed, char *buf, size_t len)
{
	static const char *const subj[] = {"The old ferry", "A tired teacher", "The village baker",
	                                   "Our neighbour", "The night train", "A young painter"};
	static const char *const verb[] = {"carried",   "watched", "repaired",
	                                   "described", "painted", "remembered"};
	static const char *const obj[] = {"the wooden bridge",  "a basket of apples",
	                                  "the harbour lights", "an unfinished letter",
	                                  "the winter garden",  "a map of the valley"};
	size_t n = 0;
	unsigned x = seed * 747796405u + 2891336453u;
	for (int s = 0; s < 4 && n < len; s++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		n += (size_t)snprintf(buf + n, len - n, "%s%s %s %s.", s ? " " : "", subj[x % 6],
		                      verb[(x >> 4) % 6], obj[(x >> 8) % 6]);
	}
}

/* Prose with a code every fifth entry; *needle_seq gets the entry of code NEEDLE. */
static void
fill(struct hsamem *c, const char *user, uint64_t *needle_seq)
{
	static const char *const doors[] = {"red", "green", "blue", "yellow", "grey", "white"};
	char texts[N_CODES * 5][256], code[32];
	struct hsamem_entry_in in[N_CODES * 5];
	for (unsigned i = 0; i < N_CODES * 5; i++) {
		if (i % 5 == 2) {
			code_of(i / 5, code, sizeof(code));
			snprintf(texts[i], sizeof(texts[i]), "The code %s opens the %s door.", code,
			         doors[i / 5 % 6]);
		} else {
			prose(i, texts[i], sizeof(texts[i]));
		}
		in[i] = (struct hsamem_entry_in){.text = texts[i], .role = HSAMEM_ROLE_USER};
	}
	struct hsamem_append_info info = {0};
	CHECK_RET(hsamem_append(c, user, in, N_CODES * 5, NULL, 0, HSAMEM_APPEND_NO_CREATE, &info),
	          0);
	CHECK_RET(hsamem_flush(c, user, NULL, NULL), 0);
	*needle_seq = info.first_seq + NEEDLE * 5 + 2;
}

static int
rank_of(const struct hsamem_query_result *r, uint64_t seq)
{
	for (size_t i = 0; i < r->n_hits; i++)
		for (size_t e = 0; e < r->hits[i].n_entries; e++)
			if (r->hits[i].entries[e].seq == seq)
				return (int)i + 1;
	return 0;
}

/* The needle's rank in mode (NULL: the default), 0 when not among k = 8; -1 on an error. */
static int
ask_rank(struct hsamem *c, const char *user, const char *mode, uint64_t seq, const char *want_mode)
{
	char code[32], q[128];
	code_of(NEEDLE, code, sizeof(code));
	snprintf(q, sizeof(q), "Which door does the code %s open?", code);
	struct hsamem_query qq = {.text = q, .top_k = 8};
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_query_mode(c, user, &qq, mode, &r), 0);
	if (r == NULL)
		return -1;
	CHECK(strcmp(r->mode, want_mode) == 0);
	CHECK(r->n_hits == 8);
	float wsum = 0;
	for (size_t i = 0; i < r->n_hits; i++) {
		wsum += r->hits[i].weight;
		/* in lexical and hybrid modes every hit has its lexical score */
		CHECK(r->ranks[i].has_lexical == (strcmp(want_mode, "learned") != 0));
		/* lexical mode ranks each chunk by its own lexical score: the ranking's scan of the
		 * pages (or the GPU's product) and the hit's own read of its row agree */
		if (strcmp(want_mode, "lexical") == 0)
			CHECK(fabsf(r->ranks[i].rank_score - r->ranks[i].lexical_score) <=
			      1e-5f * (1.0f + fabsf(r->ranks[i].lexical_score)));
		CHECK(!r->hits[i].tail && r->hits[i].n_top_tokens > 0);
	}
	/* the model's softmax over the selection's learned scores */
	CHECK(wsum > 0.999f && wsum < 1.001f);
	int rank = rank_of(r, seq);
	fprintf(stderr, "mode %s: the code's entry ranked %d (top: chunk %llu score %.3f)\n",
	        want_mode, rank, r->n_hits ? (unsigned long long)r->hits[0].chunk : 0ULL,
	        r->n_hits ? r->hits[0].score : 0.0f);
	if (strcmp(want_mode, "lexical") == 0 && rank == 1)
		CHECK(r->ranks[0].lexical_score > r->ranks[1].lexical_score);
	hsamem_result_free(r);
	return rank;
}

/* Ten chunks of one short entry that holds the question's words, and the needle, an entry of
 * five words, in a chunk of its own with a paragraph after it: per chunk the ten rank first (the
 * same words in fewer), per entry the needle. */
static void
test_short_entry(struct hsamem *c)
{
	char para[256];
	uint64_t seq = 0;
	CHECK_RET(hsamem_create(c, "sh", &(struct hsamem_spec){.encoder = "hsa-small"}, NULL), 0);
	for (unsigned i = 0; i < 21; i++) {
		if (i == 10) {
			CHECK_RET(hsamem_append_text(c, "sh", HSAMEM_ROLE_USER,
			                             "The launch code is 5521.", &seq),
			          0);
			prose(i, para, sizeof(para));
		} else if (i % 2) {
			snprintf(para, sizeof(para),
			         "The launch code is under review. The old ferry "
			         "carried the wooden bridge.");
		} else {
			prose(i, para, sizeof(para));
		}
		CHECK_RET(hsamem_append_text(c, "sh", HSAMEM_ROLE_USER, para, NULL), 0);
		CHECK_RET(hsamem_flush(c, "sh", NULL, NULL), 0);
	}
	struct hsamem_query qq = {.text = "What is the launch code?", .top_k = 4};
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_query_mode(c, "sh", &qq, "lexical", &r), 0);
	CHECK(r != NULL && r->n_hits > 0 && rank_of(r, seq) == 1);
	if (r != NULL && r->n_hits > 0)
		fprintf(stderr, "short entry: first hit \"%.40s\", score %.3f\n", r->hits[0].text,
		        r->ranks[0].lexical_score);
	hsamem_result_free(r);
}

static void
test_modes(struct hsamem *c, uint64_t seq)
{
	int learned = ask_rank(c, "hy", "learned", seq, "learned");
	CHECK(learned != 1); /* the premise: the model alone cannot tell the codes apart */
	CHECK(ask_rank(c, "hy", "lexical", seq, "lexical") == 1);
	CHECK(ask_rank(c, "hy", "hybrid", seq, "hybrid") == 1);
	CHECK(ask_rank(c, "hy", NULL, seq, "hybrid") == 1);
}

static void
test_refusals(struct hsamem *c)
{
	struct hsamem_query q = {.text = "the red door", .top_k = 3};
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_query_mode(c, "hy", &q, "bm25", &r), HSAMEM_EINVAL);
	CHECK(strstr(hsamem_last_message(c), "learned, lexical or hybrid") != NULL);
	CHECK_RET(hsamem_query_mode(c, "hy", &q, "Hybrid", &r), HSAMEM_EINVAL);
	CHECK(r == NULL);
	CHECK_RET(hsamem_append_text(c, "lex", HSAMEM_ROLE_USER, "the red kettle whistles", NULL),
	          0);
	CHECK_RET(hsamem_query_mode(c, "lex", &q, "learned", &r), HSAMEM_EINVAL);
	CHECK(strstr(hsamem_last_message(c), "lexically only") != NULL);
	CHECK_RET(hsamem_query_mode(c, "lex", &q, "hybrid", &r), HSAMEM_EINVAL);
	CHECK_RET(hsamem_query_mode(c, "lex", &q, "lexical", &r), 0);
	CHECK(r != NULL && r->n_hits == 1 && strcmp(r->mode, "lexical") == 0);
	hsamem_result_free(r);
	r = NULL;
	CHECK_RET(hsamem_query_mode(c, "lex", &q, NULL, &r), 0);
	CHECK(r != NULL && r->n_hits == 1 && !r->ranks[0].has_lexical);
	hsamem_result_free(r);
}

/* Clears the memory's STORE_USER_LEXICAL with the daemon stopped: a memory made before them. */
static void
clear_flag(struct harness *h, const char *user)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u;
	CHECK_RET(harness_stop(h, SIGTERM), 0);
	CHECK_RET(store_open(h->state, &(struct store_opts){0}, &st), 0);
	if (st == NULL)
		return;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_get(&txn, user, &u), 0);
	CHECK(u.flags & STORE_USER_LEXICAL);
	u.flags &= ~(uint32_t)STORE_USER_LEXICAL;
	CHECK_RET(store_user_update(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	store_close(st);
	CHECK_RET(harness_start(h), 0);
}

static void
test_old_memory(struct harness *h, uint64_t seq)
{
	struct hsamem *c = NULL;
	struct hsamem_query q = {.text = "Which door?", .top_k = 3};
	struct hsamem_query_result *r = NULL;
	clear_flag(h, "hy");
	CHECK_RET(hsamem_open(h->url, &c), 0);
	if (c == NULL)
		return;
	CHECK_RET(hsamem_query_mode(c, "hy", &q, NULL, &r), 0);
	CHECK(r != NULL && strcmp(r->mode, "learned") == 0);
	hsamem_result_free(r);
	r = NULL;
	CHECK_RET(hsamem_query_mode(c, "hy", &q, "hybrid", &r), HSAMEM_ENOTSUP);
	CHECK(strstr(hsamem_last_message(c), "hsamem reencode hy --encoder hsa-small") != NULL);
	CHECK_RET(hsamem_query_mode(c, "hy", &q, "lexical", &r), HSAMEM_ENOTSUP);
	struct hsamem_reencode_info info = {0};
	for (int i = 0; i < 100 && !info.done; i++)
		CHECK_RET(hsamem_reencode(c, "hy", "hsa-small", 0, &info), 0);
	CHECK(info.done && info.switched);
	CHECK(ask_rank(c, "hy", NULL, seq, "hybrid") == 1);
	hsamem_close(c);
}

static void
test_import(struct hsamem *c, uint64_t seq)
{
	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (f == NULL)
		return;
	CHECK_RET(hsamem_export(c, "hy", fileno(f), NULL), 0);
	CHECK(lseek(fileno(f), 0, SEEK_SET) == 0);
	CHECK_RET(hsamem_import(c, "hy2", fileno(f), NULL), 0);
	fclose(f);
	CHECK(ask_rank(c, "hy2", "lexical", seq, "lexical") == 1);
	CHECK(ask_rank(c, "hy2", NULL, seq, "hybrid") == 1);
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	uint64_t seq = 0;
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		fprintf(stderr, "cannot start hsamemd\n");
		harness_dump_log(&h);
		return 1;
	}
	CHECK_RET(hsamem_open(h.url, &c), 0);
	/* the fill's one append encodes about 70 chunks: past 30 s on two busy cores */
	hsamem_set_timeout(c, 120000);
	CHECK_RET(hsamem_create(c, "hy", &(struct hsamem_spec){.encoder = "hsa-small"}, NULL), 0);
	fill(c, "hy", &seq);
	test_modes(c, seq);
	test_short_entry(c);
	test_refusals(c);
	test_import(c, seq);
	hsamem_close(c);
	/* after a restart, as before */
	CHECK_RET(harness_stop(&h, SIGKILL), 128 + SIGKILL);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);
	test_modes(c, seq);
	hsamem_close(c);
	test_old_memory(&h, seq);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_hybrid");
}
