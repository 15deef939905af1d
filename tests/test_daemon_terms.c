/*
 * test_daemon_terms.c: the term statistics of lexical memories (store.h, TERMS) and the BM25
 * ranking of lexical revision 2 that reads them, through the real daemon and the real store.
 *
 * The statistics match the sealed chunks (every distinct token id of every chunk, counted from the
 * chunks themselves with the store stopped) after appends, after a restart, after SIGKILL right
 * after acknowledged appends, and after an export imported as another user; a delete leaves no
 * record of them. The ranking: many chunks share the common words of a question, one holds its
 * rare code; revision 2 (idf from the statistics) ranks that chunk first, revision 1 (a fixed
 * rarity prior and the cosine) does not. The exact pass (daemon/bm25.h): two keys that differ only
 * in a stopword ("colors-more", "colors-other"), which the landmark leaves out, are told apart,
 * and the scores are the exact BM25 of the chunks' own words. BM25 over entries (the word
 * index of entries, daemon/words.h): a fact of one sentence that shares its chunk with a paragraph
 * is found before shorter chunks that repeat its words, once it is forgotten its words find its
 * chunk no more, and after a restart (the index made anew from the store) and a re-encode it is
 * found as before.
 */
#include <fcntl.h>
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

#define N_FILLER 400

static const char *const filler[] = {
        "maintenance", "inspection", "reservoir", "turbine",  "generator", "pipeline",
        "calibration", "schedule",   "operator",  "pressure", "coolant",   "valves",
};

/* Entries whose chunks mostly hold the question's common words; the code is in one of them. */
static void
append_haystack(struct hsamem *c, const char *user)
{
	char text[512];
	uint64_t r = 12345;
	for (int i = 0; i < N_FILLER; i++) {
		size_t len = 0;
		/* two entries in three hold the question's common words, but not those near the
		 * code */
		if (i % 3 != 0 && (i < N_FILLER / 2 - 6 || i > N_FILLER / 2 + 6))
			len += (size_t)snprintf(text, sizeof(text),
			                        "Transmission configuration parameters were "
			                        "reviewed by the committee. ");
		for (int w = 0; w < 10; w++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ",
			                        filler[(r >> 33) % 12]);
		}
		if (i == N_FILLER / 2)
			snprintf(text + len, sizeof(text) - len, "The unit was tagged qk7.");
		CHECK_RET(hsamem_append_text(c, user, HSAMEM_ROLE_USER, text, NULL), 0);
	}
	CHECK_RET(hsamem_flush(c, user, NULL, NULL), 0);
}

/* Whether the first hit of the question holds the code. */
static bool
finds_code(struct hsamem *c, const char *user)
{
	struct hsamem_query_result *q = NULL;
	bool found = false;
	CHECK_RET(hsamem_query_text(c, user,
	                            "transmission configuration parameters of the unit qk7", 8, &q),
	          0);
	if (q != NULL && q->n_hits > 0) {
		found = strstr(q->hits[0].text, "qk7") != NULL;
		printf("  %s: first hit chunk %llu, score %.2f, %s the code\n", user,
		       (unsigned long long)q->hits[0].chunk, q->hits[0].score,
		       found ? "holds" : "does not hold");
	}
	hsamem_result_free(q);
	return found;
}

/* Two needles of the same form whose keys differ in a stopword alone, each sealed in a chunk of
 * its own among filler: the question's key word "more" is what tells them apart. The other
 * needle says the question's content words twice, so that a ranking without stopwords (the
 * landmark's) puts it first. */
static void
test_stopword_key(struct hsamem *c)
{
	static const char *const needles[] = {
	        "The special magic number for colors-other is 4410; special magic number colors.",
	        "The special magic number for colors-more is 7720.",
	};
	char text[512];
	uint64_t r = 777;
	for (int i = 0; i < 40; i++) {
		size_t len = 0;
		for (int w = 0; w < 10; w++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ",
			                        filler[(r >> 33) % 12]);
		}
		CHECK_RET(hsamem_append_text(c, "keys", HSAMEM_ROLE_USER, text, NULL), 0);
		if (i == 20)
			for (int n = 0; n < 2; n++) {
				CHECK_RET(hsamem_flush(c, "keys", NULL, NULL), 0);
				CHECK_RET(hsamem_append_text(c, "keys", HSAMEM_ROLE_USER,
				                             needles[n], NULL),
				          0);
				CHECK_RET(hsamem_flush(c, "keys", NULL, NULL), 0);
			}
	}
	CHECK_RET(hsamem_flush(c, "keys", NULL, NULL), 0);
	struct hsamem_query_result *q = NULL;
	CHECK_RET(hsamem_query_text(c, "keys", "What is the special magic number for colors-more?",
	                            8, &q),
	          0);
	CHECK(q != NULL && q->n_hits >= 2);
	if (q != NULL && q->n_hits >= 2) {
		printf("  keys: first hit %.2f \"%s\", second %.2f \"%s\"\n", q->hits[0].score,
		       q->hits[0].text, q->hits[1].score, q->hits[1].text);
		CHECK(strcmp(q->hits[0].text, needles[1]) == 0);
		CHECK(strcmp(q->hits[1].text, needles[0]) == 0);
		CHECK(q->hits[0].score > q->hits[1].score && q->hits[1].score > 0);
		for (size_t i = 1; i < q->n_hits; i++)
			CHECK(q->hits[i].score <= q->hits[i - 1].score);
	}
	hsamem_result_free(q);
}

/* Whether the first hit for the question holds the needle. */
static bool
first_holds(struct hsamem *c, const char *user, const char *question, const char *needle,
            uint64_t *chunk)
{
	struct hsamem_query_result *q = NULL;
	bool found = false;
	CHECK_RET(hsamem_query_text(c, user, question, 4, &q), 0);
	if (q != NULL && q->n_hits > 0) {
		found = strstr(q->hits[0].text, needle) != NULL;
		*chunk = q->hits[0].chunk;
		printf("  %s: first hit chunk %llu, score %.2f: \"%.60s\"\n", user,
		       (unsigned long long)q->hits[0].chunk, q->hits[0].score, q->hits[0].text);
	}
	hsamem_result_free(q);
	return found;
}

/*
 * A short entry among longer ones. Each of 30 chunks is one entry of 23 words that holds the
 * question's words; the needle is an entry of five that shares its chunk with a paragraph of 40
 * words that holds none of them. Per chunk, BM25 ranks the 30 first (the same words in fewer);
 * per entry, the needle. After the needle is forgotten, its chunk holds the paragraph alone, and
 * no posting of its words may still rank it.
 */
static const char *const launch = "What is the launch code?";

static void
append_short(struct hsamem *c, const char *user, uint64_t *seq)
{
	char text[512];
	uint64_t r = 4242;
	for (int i = 0; i < 61; i++) {
		size_t len = 0;
		if (i == 30) {
			CHECK_RET(hsamem_append_text(c, user, HSAMEM_ROLE_USER,
			                             "The launch code is 5521.", seq),
			          0);
		} else {
			len = (size_t)snprintf(text, sizeof(text), "%s",
			                       i % 2 ? "The launch code is under review. " : "");
		}
		for (int w = 0; i % 2 == 1 || i == 30 ? w < (i == 30 ? 40 : 18) : w < 20; w++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ",
			                        filler[(r >> 33) % 12]);
		}
		CHECK_RET(hsamem_append_text(c, user, HSAMEM_ROLE_USER, text, NULL), 0);
		CHECK_RET(hsamem_flush(c, user, NULL, NULL), 0);
	}
}

static void
test_short_entry(struct hsamem *c)
{
	uint64_t seq = 0, chunk = 0, after = 0;
	append_short(c, "short", &seq);
	append_short(c, "short2", NULL);
	CHECK(first_holds(c, "short", launch, "5521", &chunk));
	struct hsamem_forget_info f;
	CHECK_RET(hsamem_forget(c, "short", seq, seq, &f), 0);
	CHECK(!first_holds(c, "short", launch, "5521", &after));
	CHECK(after != chunk);
}

/*
 * Two neighbours and a fact. One entry ends in "orchid" thrice and the next starts with "quasar"
 * thrice, both in one chunk; the fact, an entry of its own elsewhere, says each word once. Per
 * chunk the neighbours add up to more of both words than the fact's chunk holds; per entry each
 * neighbour holds one word and the fact both, and the fact ranks first.
 */
static void
test_neighbours(struct hsamem *c)
{
	char text[512];
	uint64_t r = 99;
	for (int i = 0; i < 60; i++) {
		size_t len = 0;
		if (i == 20 || i == 40)
			CHECK_RET(hsamem_flush(c, "pair", NULL, NULL), 0);
		if (i == 21)
			len = (size_t)snprintf(text, sizeof(text), "quasar quasar quasar ");
		for (int w = 0; w < 6; w++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ",
			                        filler[(r >> 33) % 12]);
		}
		if (i == 20)
			snprintf(text + len, sizeof(text) - len, "orchid orchid orchid");
		if (i == 40)
			snprintf(text + len, sizeof(text) - len, "The orchid is a quasar.");
		CHECK_RET(hsamem_append_text(c, "pair", HSAMEM_ROLE_USER, text, NULL), 0);
	}
	CHECK_RET(hsamem_flush(c, "pair", NULL, NULL), 0);
	uint64_t chunk;
	CHECK(first_holds(c, "pair", "orchid quasar", "is a quasar", &chunk));
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/*
 * With the daemon stopped: the statistics of user match its chunks. Counts every token id's
 * chunks from the chunks themselves and compares with the store's df of the ids of the first and
 * last chunks; *chunks gets the sealed chunks (0 and no checks when the user is absent).
 */
static void
check_terms(const char *state, const char *user, uint64_t *chunks, uint64_t *uid)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u;
	struct store_terms t;
	*chunks = 0;
	CHECK_RET(store_open(state, NULL, &st), 0);
	if (st == NULL)
		return;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	if (store_user_get(&txn, user, &u) != 0)
		goto out;
	*chunks = u.n_chunks;
	*uid = u.uid;
	CHECK_RET(store_terms_get(&txn, u.uid, &t), 0);
	uint64_t real = 0;
	uint32_t probe[2][64];
	size_t n_probe[2] = {0, 0};
	for (uint64_t j = 0; j < u.n_chunks; j++) {
		struct store_chunk ch;
		CHECK_RET(store_chunk_get(&txn, u.uid, j, &ch), 0);
		real += ch.n_real;
		if (j == 0 || j == u.n_chunks - 1) {
			int p = j == 0 ? 0 : 1;
			n_probe[p] = ch.n_real;
			memcpy(probe[p], ch.tokens, ch.n_real * sizeof(uint32_t));
		}
	}
	CHECK(t.chunks == u.n_chunks && t.tokens == real);
	for (int p = 0; p < 2; p++) {
		qsort(probe[p], n_probe[p], sizeof(uint32_t), cmp_u32);
		uint32_t df[64];
		CHECK_RET(store_terms_df(&txn, u.uid, probe[p], n_probe[p], df), 0);
		for (size_t i = 0; i < n_probe[p]; i++) {
			uint32_t want = 0;
			for (uint64_t j = 0; j < u.n_chunks; j++) {
				struct store_chunk ch;
				CHECK_RET(store_chunk_get(&txn, u.uid, j, &ch), 0);
				for (uint32_t k = 0; k < ch.n_real; k++)
					if (ch.tokens[k] == probe[p][i]) {
						want++;
						break;
					}
			}
			if (df[i] != want)
				printf("  token %u: df %u, in %u chunks\n", probe[p][i], df[i],
				       want);
			CHECK(df[i] == want);
		}
	}
out:
	store_txn_abort(&txn);
	store_close(st);
}

static struct hsamem *
restart(struct harness *h, struct hsamem *c, int sig)
{
	hsamem_close(c);
	harness_stop(h, sig);
	CHECK_RET(harness_start(h), 0);
	c = NULL;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	return c;
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	uint64_t n, n2, uid = 0, uid2 = 0;
	CHECK_RET(harness_init(&h), 0);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);

	/* The ranking: revision 1 (asked for by name) misses the rare code, revision 2 finds it. */
	struct hsamem_spec old = {.encoder = "lexical", .revision = 1};
	CHECK_RET(hsamem_create(c, "old", &old, NULL), 0);
	append_haystack(c, "old");
	append_haystack(c, "new");
	CHECK(finds_code(c, "new"));
	CHECK(!finds_code(c, "old"));
	test_stopword_key(c);
	test_short_entry(c);
	test_neighbours(c);

	/* The statistics match the chunks, after a clean stop and after a restart. */
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	check_terms(h.state, "new", &n, &uid);
	CHECK(n > 50);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);
	append_haystack(c, "new");
	CHECK(finds_code(c, "new"));

	/* The word index is made anew from the stored entries after a restart, and a re-encode
	 * keeps what it finds. */
	uint64_t chunk = 0;
	CHECK(first_holds(c, "short2", launch, "5521", &chunk));
	struct hsamem_reencode_info ri = {0};
	for (int step = 0; step < 100 && !ri.done; step++)
		CHECK_RET(hsamem_reencode(c, "short2", "lexical", 2, &ri), 0);
	CHECK(ri.done);
	CHECK(first_holds(c, "short2", launch, "5521", &chunk));

	/* SIGKILL right after acknowledged appends: the statistics hold exactly what committed. */
	c = restart(&h, c, SIGKILL);
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGKILL), 128 + SIGKILL);
	check_terms(h.state, "new", &n2, &uid);
	CHECK(n2 > n);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);

	/* An import counts its chunks again: the copy's statistics match its chunks. */
	char path[400];
	snprintf(path, sizeof(path), "%s/new.export", h.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_RET(hsamem_export(c, "new", fd, NULL), 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RET(hsamem_import(c, "copy", fd, NULL), 0);
	close(fd);
	CHECK(finds_code(c, "copy"));

	/* A delete leaves no record of the memory, its statistics included. */
	CHECK_RET(hsamem_delete(c, "new", NULL), 0);
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	check_terms(h.state, "copy", &n, &uid2);
	CHECK(n == n2);
	struct store *st = NULL;
	uint64_t records = 1;
	CHECK_RET(store_open(h.state, NULL, &st), 0);
	if (st != NULL) {
		CHECK_RET(store_count_records(st, uid, &records), 0);
		CHECK(records == 0);
		store_close(st);
	}
	harness_fini(&h);
	return test_done("test_daemon_terms");
}
