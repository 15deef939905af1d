/*
 * test_daemon_basic.c: the real hsamemd driven through libhsamem: facts appended among ordinary
 * text are found by questions, before and after a restart; users never see each other's memory;
 * delete leaves no record of the user in the store; export then import reproduces a memory exactly;
 * flush seals the tail, which a query finds before and after.
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"
#include "store.h"
#include "test.h"

static const char *const facts[][2] = {
        {"Alice's cat is named Whiskers and sleeps on the red sofa.",
         "What is the name of Alice's cat?"},
        {"The password for the blue vault is tangerine.", "What is the blue vault password?"},
        {"The quarterly budget meeting moved to Thursday in room 418.",
         "Where is the quarterly budget meeting?"},
};

/* Ordinary text: sentences made from a fixed vocabulary with a simple generator, so the test
 * needs no data files. */
static void
filler(unsigned seed, char *buf, size_t len)
{
	static const char *const words[] = {
	        "the",     "river",   "morning", "people",  "walked",    "along",    "quiet",
	        "road",    "market",  "opened",  "early",   "bread",     "children", "played",
	        "near",    "school",  "weather", "turned",  "cold",      "evening",  "train",
	        "arrived", "late",    "station", "garden",  "flowers",   "grew",     "tall",
	        "summer",  "letters", "were",    "written", "by",        "hand",     "old",
	        "friends", "shared",  "stories", "about",   "mountains", "and",      "a",
	        "of",      "in",      "to",      "was",     "with",      "for",      "on",
	        "their"};
	size_t n = 0, nw = sizeof(words) / sizeof(words[0]);
	unsigned x = seed * 2654435761u + 1;
	int count = 12 + (int)(seed % 14);
	for (int i = 0; i < count && n + 16 < len; i++) {
		x = x * 1103515245u + 12345u;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "", words[(x >> 8) % nw]);
	}
	snprintf(buf + n, len - n, ".");
}

static int
rank_of(struct hsamem_query_result *r, uint64_t seq)
{
	for (size_t i = 0; i < r->n_hits; i++)
		for (size_t e = 0; e < r->hits[i].n_entries; e++)
			if (r->hits[i].entries[e].seq == seq)
				return (int)i + 1;
	return 0;
}

static void
check_facts(struct hsamem *c, const char *user, const uint64_t *fact_seq)
{
	for (size_t f = 0; f < sizeof(facts) / sizeof(facts[0]); f++) {
		struct hsamem_query_result *r = NULL;
		CHECK_RET(hsamem_query_text(c, user, facts[f][1], 5, &r), 0);
		if (r == NULL)
			continue;
		int rank = rank_of(r, fact_seq[f]);
		if (rank < 1 || rank > 3)
			fprintf(stderr, "fact %zu ranked %d for \"%s\"\n", f, rank, facts[f][1]);
		CHECK(rank >= 1 && rank <= 3);
		hsamem_result_free(r);
	}
}

static void
test_facts_and_restart(struct harness *h)
{
	struct hsamem *c;
	uint64_t fact_seq[3];
	char text[512];
	CHECK_RET(hsamem_open(h->url, &c), 0);
	for (unsigned i = 0; i < 400; i++) {
		uint64_t seq;
		if (i % 130 == 60) {
			size_t f = i / 130;
			CHECK_RET(
			        hsamem_append_text(c, "alice", HSAMEM_ROLE_USER, facts[f][0], &seq),
			        0);
			fact_seq[f] = seq;
		}
		filler(i, text, sizeof(text));
		CHECK_RET(hsamem_append_text(c, "alice", HSAMEM_ROLE_ASSISTANT, text, &seq), 0);
	}
	check_facts(c, "alice", fact_seq);

	/* the most recent entry sits in the unsealed tail and is found all the same */
	uint64_t seq;
	CHECK_RET(hsamem_append_text(c, "alice", HSAMEM_ROLE_USER, "My bicycle lock code is 7291.",
	                             &seq),
	          0);
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_query_text(c, "alice", "bicycle lock code", 3, &r), 0);
	CHECK(r != NULL && r->n_hits > 0 && rank_of(r, seq) == 1);
	hsamem_result_free(r);
	hsamem_close(c);

	CHECK_RET(harness_stop(h, SIGTERM), 0);
	CHECK_RET(harness_start(h), 0);
	CHECK_RET(hsamem_open(h->url, &c), 0);
	check_facts(c, "alice", fact_seq);
	struct hsamem_user_list *ul = NULL;
	CHECK_RET(hsamem_users(c, &ul), 0);
	CHECK(ul != NULL && ul->n_users == 1 && ul->users[0].entries == 404);
	hsamem_result_free(ul);
	hsamem_close(c);
}

static void
test_isolation(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_query_result *r = NULL;
	uint64_t seq;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_append_text(c, "bob", HSAMEM_ROLE_USER, "Bob keeps a parrot called Rio.",
	                             &seq),
	          0);
	/* bob's memory holds nothing of alice's */
	CHECK_RET(hsamem_query_text(c, "bob", "Alice cat Whiskers tangerine vault", 8, &r), 0);
	for (size_t i = 0; r != NULL && i < r->n_hits; i++) {
		CHECK(strstr(r->hits[i].text, "Whiskers") == NULL);
		CHECK(strstr(r->hits[i].text, "tangerine") == NULL);
	}
	hsamem_result_free(r);
	/* and alice's nothing of bob's */
	r = NULL;
	CHECK_RET(hsamem_query_text(c, "alice", "parrot called Rio", 8, &r), 0);
	for (size_t i = 0; r != NULL && i < r->n_hits; i++)
		CHECK(strstr(r->hits[i].text, "parrot") == NULL);
	hsamem_result_free(r);
	struct hsamem_entry_list *el = NULL;
	CHECK_RET(hsamem_entries(c, "bob", 0, 100, &el), 0);
	CHECK(el != NULL && el->n_entries == 1 && el->total == 1);
	hsamem_result_free(el);
	/* ranges past the end are empty, however far past */
	el = NULL;
	CHECK_RET(hsamem_entries(c, "bob", 10, 100, &el), 0);
	CHECK(el != NULL && el->n_entries == 0 && el->total == 1);
	hsamem_result_free(el);
	el = NULL;
	CHECK_RET(hsamem_entries(c, "bob", UINT64_MAX, 1000, &el), 0);
	CHECK(el != NULL && el->n_entries == 0);
	hsamem_result_free(el);
	struct hsamem_chunk_list *cl = NULL;
	CHECK_RET(hsamem_chunks(c, "bob", UINT64_MAX - 3, 16, 0, &cl), 0);
	CHECK(cl != NULL && cl->n_chunks == 0);
	hsamem_result_free(cl);
	CHECK_RET(hsamem_query_text(c, "carol", "anything", 3, &r), HSAMEM_ENOUSER);
	hsamem_close(c);
}

/* A query by token ids of the memory's tokenizer: chunk 0's own tokens find chunk 0. */
static void
test_query_tokens(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_chunk_list *cl = NULL;
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_chunks(c, "alice", 7, 1, 0, &cl), 0);
	if (cl != NULL && cl->n_chunks == 1) {
		struct hsamem_query q = {.tokens = cl->chunks[0].tokens,
		                         .n_tokens = cl->chunks[0].n_real,
		                         .top_k = 3};
		CHECK_RET(hsamem_query(c, "alice", &q, &r), 0);
		CHECK(r != NULL && r->n_hits > 0 && r->hits[0].chunk == 7);
		hsamem_result_free(r);
	}
	hsamem_result_free(cl);
	hsamem_close(c);
}

/* A lexical memory that fuses by stick-breaking: the most recent hit weighs sigmoid(score), each
 * older one sigmoid(score) times what the more recent ones left. */
static void
test_stickbreak_query(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_spec spec = {.encoder = "lexical", .weighting = HSAMEM_STICKBREAK};
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_create(c, "erin", &spec, NULL), 0);
	const char *notes[] = {"the green kettle whistles loudly", "a green kettle on the stove",
	                       "kettle descaling with vinegar", "the garden shed needs paint"};
	for (int i = 0; i < 4; i++) {
		CHECK_RET(hsamem_append_text(c, "erin", HSAMEM_ROLE_USER, notes[i], NULL), 0);
		CHECK_RET(hsamem_flush(c, "erin", NULL, NULL), 0); /* one chunk each */
	}
	CHECK_RET(hsamem_query_text(c, "erin", "green kettle", 3, &r), 0);
	if (r != NULL && r->n_hits == 3) {
		/* order the hits most recent first, then check the product */
		struct hsamem_hit *by_recency[3] = {&r->hits[0], &r->hits[1], &r->hits[2]};
		for (int i = 0; i < 3; i++)
			for (int j = i + 1; j < 3; j++)
				if (by_recency[j]->chunk > by_recency[i]->chunk) {
					struct hsamem_hit *t = by_recency[i];
					by_recency[i] = by_recency[j];
					by_recency[j] = t;
				}
		double rest = 1, sum = 0;
		for (int i = 0; i < 3; i++) {
			double sig = 1 / (1 + exp(-by_recency[i]->score));
			CHECK_NEAR(by_recency[i]->weight, sig * rest, 1e-5);
			rest *= 1 - sig;
			sum += by_recency[i]->weight;
		}
		CHECK(sum <= 1.0 + 1e-6);
	}
	CHECK(r != NULL && r->n_hits == 3);
	hsamem_result_free(r);
	hsamem_close(c);
}

/* A second daemon on the same state directory refuses to start. */
static void
test_second_daemon(struct harness *h)
{
	char bin[512], url[400];
	const char *top = getenv("HSAMEM_TOP_BUILDDIR");
	snprintf(bin, sizeof(bin), "%s/hsamemd", top && *top ? top : ".");
	snprintf(url, sizeof(url), "ipc://%s/second.sock", h->dir);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, STDERR_FILENO);
		execl(bin, bin, "-l", url, "-d", h->state, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

static void
test_flush(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_flush_info fi;
	struct hsamem_memory *m = NULL;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_create(c, "dave", NULL, &m), 0);
	CHECK(m != NULL && strcmp(m->spec.encoder, "lexical") == 0);
	hsamem_result_free(m);
	CHECK_RET(hsamem_create(c, "dave", NULL, &m), HSAMEM_EEXIST);
	CHECK_RET(hsamem_append_text(c, "dave", HSAMEM_ROLE_USER, "short note about turnips", NULL),
	          0);
	/* the tail is found, its top tokens among its own four; once sealed (the same index, now a
	 * padded chunk), the same question finds the chunk with the same score: the exact BM25 of
	 * the one term on the landmark's scale, 8 (k1 + 1) / (1 + k1 (1 - b + b dl / 48)), dl 4 */
	struct hsamem_query_result *r = NULL;
	float want = 8 * 2.2f / (1 + 1.2f * (0.25f + 0.75f * 4 / 48));
	CHECK_RET(hsamem_query_text(c, "dave", "turnips", 3, &r), 0);
	CHECK(r != NULL && r->n_hits == 1 && r->hits[0].tail && r->hits[0].chunk == 0 &&
	      r->hits[0].n_tokens == 4 && r->hits[0].n_top_tokens > 0);
	for (size_t i = 0; r != NULL && r->n_hits == 1 && i < r->hits[0].n_top_tokens; i++)
		CHECK(r->hits[0].top_tokens[i].index < 4);
	CHECK(r != NULL && r->n_hits == 1 && fabsf(r->hits[0].score - want) < 1e-4f);
	hsamem_result_free(r);
	CHECK_RET(hsamem_flush(c, "dave", NULL, &fi), 0);
	CHECK(fi.sealed && fi.chunks == 1);
	r = NULL;
	CHECK_RET(hsamem_query_text(c, "dave", "turnips", 3, &r), 0);
	CHECK(r != NULL && r->n_hits == 1 && !r->hits[0].tail && r->hits[0].chunk == 0 &&
	      fabsf(r->hits[0].score - want) < 1e-4f &&
	      strcmp(r->hits[0].text, "short note about turnips") == 0);
	hsamem_result_free(r);
	CHECK_RET(hsamem_flush(c, "dave", NULL, &fi), 0);
	CHECK(!fi.sealed && fi.chunks == 1);
	struct hsamem_chunk_list *cl = NULL;
	CHECK_RET(hsamem_chunks(c, "dave", 0, 4, HSAMEM_CHUNKS_TENSORS, &cl), 0);
	CHECK(cl != NULL && cl->n_chunks == 1 && cl->chunks[0].n_real == 4 &&
	      cl->chunks[0].n_tokens == 64 &&
	      strcmp(cl->chunks[0].text, "short note about turnips") == 0);
	hsamem_result_free(cl);
	hsamem_close(c);
}

/* Reads a whole memory (entries and chunks with tensors) as one comparable blob of text. */
static char *
dump_memory(struct hsamem *c, const char *user)
{
	size_t cap = 1 << 20, len = 0;
	char *out = malloc(cap);
	struct hsamem_entry_list *el = NULL;
	struct hsamem_chunk_list *cl = NULL;
	uint64_t first = 0;
#define PUT(...) len += (size_t)snprintf(out + len, cap - len, __VA_ARGS__)
	do {
		if (hsamem_entries(c, user, first, 500, &el) != 0)
			break;
		for (size_t i = 0; i < el->n_entries; i++) {
			struct hsamem_entry *e = &el->entries[i];
			if (cap - len < strlen(e->text) + 256)
				out = realloc(out, cap *= 2);
			PUT("E%llu %d %lld %llu %u %s|", (unsigned long long)e->seq, e->role,
			    (long long)e->timestamp_ms, (unsigned long long)e->first_token,
			    e->n_tokens, e->text);
		}
		first += el->n_entries;
		size_t got = el->n_entries;
		hsamem_result_free(el);
		if (got == 0)
			break;
	} while (1);
	first = 0;
	do {
		if (hsamem_chunks(c, user, first, 32, HSAMEM_CHUNKS_TENSORS, &cl) != 0)
			break;
		for (size_t i = 0; i < cl->n_chunks; i++) {
			struct hsamem_chunk *k = &cl->chunks[i];
			uint64_t sum = 1469598103934665603ull;
			for (size_t b = 0; b < k->k_size; b++)
				sum = (sum ^ ((uint8_t *)k->k)[b]) * 1099511628211ull;
			for (size_t b = 0; b < k->v_size; b++)
				sum = (sum ^ ((uint8_t *)k->v)[b]) * 1099511628211ull;
			for (size_t b = 0; b < k->landmark_size; b++)
				sum = (sum ^ ((uint8_t *)k->landmark)[b]) * 1099511628211ull;
			for (size_t t = 0; t < k->n_tokens; t++)
				sum = (sum ^ k->tokens[t]) * 1099511628211ull;
			if (cap - len < strlen(k->text) + 256)
				out = realloc(out, cap *= 2);
			PUT("C%llu %u %llx %s|", (unsigned long long)k->index, k->n_real,
			    (unsigned long long)sum, k->text);
		}
		first += cl->n_chunks;
		size_t got = cl->n_chunks;
		hsamem_result_free(cl);
		if (got == 0)
			break;
	} while (1);
#undef PUT
	return out;
}

static void
test_export_import_delete(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_transfer tx = {0}, rx = {0};
	char path[400];
	CHECK_RET(hsamem_open(h->url, &c), 0);
	snprintf(path, sizeof(path), "%s/alice.export", h->dir);
	FILE *f = fopen(path, "w+");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	CHECK_RET(hsamem_export(c, "alice", fileno(f), &tx), 0);
	CHECK(tx.entries == 404 && tx.chunks > 0);
	rewind(f);
	CHECK_RET(hsamem_import(c, "alice2", fileno(f), &rx), 0);
	CHECK(rx.entries == tx.entries && rx.chunks == tx.chunks);
	char *a = dump_memory(c, "alice"), *b = dump_memory(c, "alice2");
	CHECK(a != NULL && b != NULL && strlen(a) > 10000 && strcmp(a, b) == 0);
	free(a);
	free(b);
	/* the imported memory answers the same question the same way */
	struct hsamem_query_result *r1 = NULL, *r2 = NULL;
	CHECK_RET(hsamem_query_text(c, "alice", facts[1][1], 5, &r1), 0);
	CHECK_RET(hsamem_query_text(c, "alice2", facts[1][1], 5, &r2), 0);
	CHECK(r1 && r2 && r1->n_hits == r2->n_hits && r1->hits[0].chunk == r2->hits[0].chunk &&
	      r1->hits[0].score == r2->hits[0].score);
	hsamem_result_free(r1);
	hsamem_result_free(r2);
	/* import into an existing user is refused and changes nothing */
	rewind(f);
	CHECK_RET(hsamem_import(c, "alice2", fileno(f), &rx), HSAMEM_EEXIST);
	/* a truncated stream is refused, and leaves no memory behind once deleted */
	CHECK(ftruncate(fileno(f), (off_t)(tx.bytes / 2)) == 0);
	rewind(f);
	CHECK(hsamem_import(c, "alice3", fileno(f), &rx) < 0);
	fclose(f);
	/* the abandoned partial import is invisible, and a new import of the user replaces it */
	struct hsamem_query_result *r3 = NULL;
	CHECK_RET(hsamem_query_text(c, "alice3", facts[1][1], 5, &r3), HSAMEM_ENOUSER);
	f = fopen(path, "w+");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	CHECK_RET(hsamem_export(c, "bob", fileno(f), &tx), 0);
	rewind(f);
	CHECK_RET(hsamem_import(c, "alice3", fileno(f), &rx), 0);
	CHECK(rx.entries == 1);
	fclose(f);

	/* delete: nothing of the user remains in the store, and others keep everything */
	struct hsamem_delete_info di;
	struct hsamem_user_list *ul = NULL;
	CHECK_RET(hsamem_delete(c, "alice2", &di), 0);
	CHECK(di.entries == 404);
	CHECK_RET(hsamem_delete(c, "alice2", &di), HSAMEM_ENOUSER);
	hsamem_delete(c, "alice3", NULL);
	CHECK_RET(hsamem_users(c, &ul), 0);
	for (size_t i = 0; ul != NULL && i < ul->n_users; i++)
		CHECK(strncmp(ul->users[i].user, "alice2", 6) != 0 &&
		      strcmp(ul->users[i].user, "alice3") != 0);
	hsamem_result_free(ul);
	hsamem_close(c);

	CHECK_RET(harness_stop(h, SIGTERM), 0);
	struct store *st = NULL;
	struct store_opts so = {0};
	CHECK_RET(store_open(h->state, &so, &st), 0);
	if (st != NULL) {
		/* user ids are given in creation order: alice 1, bob 2, erin 3, dave 4, alice2 5,
		 * the abandoned import of alice3 6, its replacement 7 */
		uint64_t n = 99;
		for (uint64_t uid = 5; uid <= 7; uid++) {
			CHECK_RET(store_count_records(st, uid, &n), 0);
			CHECK(n == 0);
		}
		CHECK_RET(store_count_records(st, 1, &n), 0);
		CHECK(n > 404);
		store_close(st);
	}
}

int
main(void)
{
	struct harness h;
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		fprintf(stderr, "test_daemon_basic: cannot start hsamemd\n");
		return 1;
	}
	test_facts_and_restart(&h);
	test_isolation(&h);
	test_query_tokens(&h);
	test_stickbreak_query(&h);
	test_second_daemon(&h);
	test_flush(&h);
	test_export_import_delete(&h);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_basic");
}
