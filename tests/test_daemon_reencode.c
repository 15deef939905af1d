/*
 * test_daemon_reencode.c: re-encoding a memory from its kept text (hsamem(7), RE-ENCODING),
 * through the real daemon and the real store.
 *
 * A lexical revision 1 memory of some 100k tokens (several steps of the daemon's budget), with
 * roles, tags, timestamps and a flush, is re-encoded to revision 2 step by step: between steps it
 * answers queries as revision 1 and takes appends; at the end every entry (the old ones and those
 * appended meanwhile) is what it was, the spec says revision 2, the BM25 ranking finds the rare
 * code that revision 1 misses, the term statistics match the chunks, and the old memory left no
 * record. A SIGKILL between steps leaves the old memory whole, and the next start removes the
 * half-built one (counted in the store). Refusals: an unknown encoder, "client", a revision the
 * encoder lacks, no such user; a memory of a revision the daemon does not serve is refused on
 * append and query with a message naming the reencode command, which then rebuilds it.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hsamem.h"
#include "store.h"
#include "test.h"

#define N_ENTRIES 4000
#define BATCH     250

static const char *const words[] = {
        "maintenance", "inspection", "reservoir", "turbine",  "generator", "pipeline",
        "calibration", "schedule",   "operator",  "pressure", "coolant",   "valves",
};
static const char *const tag_sets[][2] = {{"ops", "night"}, {"ops", "day"}, {"review", "q3"}};

/* Entry i's text, into buf. */
static void
entry_text(int i, char *buf, size_t len)
{
	uint64_t r = 977 + (uint64_t)i * 7919;
	size_t n = 0;
	if (i % 3 != 0 && (i < N_ENTRIES / 2 - 6 || i > N_ENTRIES / 2 + 6))
		n += (size_t)snprintf(buf, len,
		                      "Transmission configuration parameters were "
		                      "reviewed by the committee. ");
	for (int w = 0; w < 12; w++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		n += (size_t)snprintf(buf + n, len - n, "%s ", words[(r >> 33) % 12]);
	}
	if (i == N_ENTRIES / 2)
		snprintf(buf + n, len - n, "The unit was tagged qk7.");
}

/* Appends entries [from, to) of the corpus, with roles, tags and timestamps; a flush after
 * flush_after (if in range). */
static void
fill(struct hsamem *c, const char *user, int from, int to, int flush_after)
{
	static char texts[BATCH][512];
	struct hsamem_entry_in e[BATCH];
	for (int i = from; i < to;) {
		int n = 0;
		for (; n < BATCH && i < to; n++, i++) {
			entry_text(i, texts[n], sizeof(texts[n]));
			e[n] = (struct hsamem_entry_in){
			        .text = texts[n],
			        .role = i % 2 ? HSAMEM_ROLE_ASSISTANT : HSAMEM_ROLE_USER,
			        .timestamp_ms = 1700000000000 + i,
			        .tags = tag_sets[i % 3],
			        .n_tags = (size_t)(i % 3),
			};
			if (i == flush_after) {
				n++, i++;
				break;
			}
		}
		CHECK_RET(hsamem_append(c, user, e, (size_t)n, NULL, 0, 0, NULL), 0);
		if (i - 1 == flush_after)
			CHECK_RET(hsamem_flush(c, user, NULL, NULL), 0);
	}
}

/* Every entry of user, all of its fields but the token positions, as one string (malloc'd). */
static char *
entries_digest(struct hsamem *c, const char *user, uint64_t *count)
{
	size_t cap = 1 << 20, len = 0;
	char *d = malloc(cap);
	uint64_t first = 0, total = 1;
	while (d != NULL && first < total) {
		struct hsamem_entry_list *l = NULL;
		CHECK_RET(hsamem_entries(c, user, first, 1000, &l), 0);
		if (l == NULL)
			break;
		total = l->total;
		for (size_t i = 0; i < l->n_entries; i++) {
			const struct hsamem_entry *e = &l->entries[i];
			if (cap - len < strlen(e->text) + 1024) {
				char *g = realloc(d, cap *= 2);
				if (g == NULL)
					break;
				d = g;
			}
			len += (size_t)snprintf(d + len, cap - len, "%llu|%d|%lld|%s|",
			                        (unsigned long long)e->seq, (int)e->role,
			                        (long long)e->timestamp_ms, e->text);
			for (size_t t = 0; t < e->n_tags; t++)
				len += (size_t)snprintf(d + len, cap - len, "%s,", e->tags[t]);
			d[len++] = '\n';
			d[len] = '\0';
		}
		first += l->n_entries;
		if (l->n_entries == 0)
			break;
		hsamem_result_free(l);
	}
	*count = first;
	return d;
}

static uint32_t
revision_of(struct hsamem *c, const char *user)
{
	struct hsamem_stats *s = NULL;
	uint32_t rev = 0;
	CHECK_RET(hsamem_stats(c, user, &s), 0);
	if (s != NULL && s->n_memories == 1)
		rev = s->memories[0].spec.revision;
	hsamem_result_free(s);
	return rev;
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
	if (q != NULL && q->n_hits > 0)
		found = strstr(q->hits[0].text, "qk7") != NULL;
	hsamem_result_free(q);
	return found;
}

/* With the daemon stopped: the uid of user (0: none), its chunks and its term statistics. */
static uint64_t
stored_user(const char *state, const char *user, uint64_t *chunks, struct store_terms *t)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u = {0};
	CHECK_RET(store_open(state, NULL, &st), 0);
	if (st == NULL)
		return 0;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	if (store_user_get(&txn, user, &u) == 0) {
		*chunks = u.n_chunks;
		CHECK_RET(store_terms_get(&txn, u.uid, t), 0);
	}
	store_txn_abort(&txn);
	store_close(st);
	return u.uid;
}

static uint64_t
records_of(const char *state, uint64_t uid)
{
	struct store *st = NULL;
	uint64_t n = 1;
	CHECK_RET(store_open(state, NULL, &st), 0);
	if (st != NULL) {
		CHECK_RET(store_count_records(st, uid, &n), 0);
		store_close(st);
	}
	return n;
}

/* Re-encodes user to lexical revision 2, one step; returns the reply. */
static struct hsamem_reencode_info
step(struct hsamem *c, const char *user)
{
	struct hsamem_reencode_info r = {0};
	CHECK_RET(hsamem_reencode(c, user, "lexical", 2, &r), 0);
	return r;
}

static void
check_refusals(struct hsamem *c)
{
	struct hsamem_reencode_info r;
	CHECK_RET(hsamem_reencode(c, "alice", "nope", 0, &r), HSAMEM_EENCODER);
	CHECK(strstr(hsamem_last_message(c), "'nope' is not built into") != NULL);
	CHECK_RET(hsamem_reencode(c, "alice", "client", 0, &r), HSAMEM_EINVAL);
	CHECK(strstr(hsamem_last_message(c), "client encoder") != NULL);
	CHECK_RET(hsamem_reencode(c, "alice", "lexical", 9, &r), HSAMEM_EENCODER);
	CHECK_RET(hsamem_reencode(c, "nobody", "lexical", 0, &r), HSAMEM_ENOUSER);
	struct hsamem_spec cs = {.encoder = "client", .h_kv = 1, .d_h = 8, .h_q = 1, .d_r = 8};
	CHECK_RET(hsamem_create(c, "cl", &cs, NULL), 0);
	CHECK_RET(hsamem_reencode(c, "cl", "lexical", 0, &r), HSAMEM_ENOTSUP);
}

/* alice: rev 1 -> 2, with queries and appends between the steps. */
static void
reencode_live(struct hsamem *c)
{
	struct hsamem_reencode_info r;
	uint64_t n_before, n_after, steps = 1;
	char *before = entries_digest(c, "alice", &n_before);
	CHECK(n_before == N_ENTRIES);
	CHECK(!finds_code(c, "alice"));
	r = step(c, "alice");
	CHECK(!r.done && r.entries_done > 0 && r.entries_done < N_ENTRIES);
	CHECK(r.chunks_done > 0 && r.chunks_done < r.chunks_total);
	/* between steps: the old memory answers, as revision 1, and takes appends */
	CHECK(revision_of(c, "alice") == 1);
	CHECK(!finds_code(c, "alice"));
	fill(c, "alice", N_ENTRIES, N_ENTRIES + 30, -1);
	char *mid = entries_digest(c, "alice", &n_before);
	CHECK(n_before == N_ENTRIES + 30);
	CHECK(strncmp(mid, before, strlen(before)) == 0);
	do {
		r = step(c, "alice");
		steps++;
		if (!r.done && steps == 2)
			fill(c, "alice", N_ENTRIES + 30, N_ENTRIES + 40, -1);
	} while (!r.done && steps < 100);
	printf("  alice: re-encoded in %llu steps: %llu chunks, %llu tokens\n",
	       (unsigned long long)steps, (unsigned long long)r.chunks,
	       (unsigned long long)r.tokens);
	CHECK(r.done && r.switched && steps >= 3);
	CHECK(r.entries_total == N_ENTRIES + 40);
	char *after = entries_digest(c, "alice", &n_after);
	CHECK(n_after == N_ENTRIES + 40);
	CHECK(after != NULL && mid != NULL && strncmp(after, mid, strlen(mid)) == 0);
	CHECK(revision_of(c, "alice") == 2);
	CHECK(finds_code(c, "alice"));
	/* already there: done at once */
	CHECK_RET(hsamem_reencode(c, "alice", "lexical", 0, &r), 0);
	CHECK(r.done && !r.switched);
	free(before);
	free(mid);
	free(after);
}

/* bob: SIGKILL between steps; the old memory stays whole; the start removes the new one. */
static struct hsamem *
reencode_killed(struct hsamem *c, struct harness *h, uint64_t *bob_uid)
{
	uint64_t n, chunks = 0;
	struct store_terms t;
	char *before = entries_digest(c, "bob", &n), hidden[64];
	CHECK(!step(c, "bob").done);
	CHECK(!step(c, "bob").done);
	hsamem_close(c);
	CHECK_RET(harness_stop(h, SIGKILL), 128 + SIGKILL);
	*bob_uid = stored_user(h->state, "bob", &chunks, &t);
	snprintf(hidden, sizeof(hidden), "~reencode.%llu", (unsigned long long)*bob_uid);
	uint64_t half = stored_user(h->state, hidden, &chunks, &t);
	CHECK(half != 0 && chunks > 0 && records_of(h->state, half) > chunks);
	CHECK_RET(harness_start(h), 0);
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK(revision_of(c, "bob") == 1);
	char *after = entries_digest(c, "bob", &n);
	CHECK(before != NULL && after != NULL && strcmp(before, after) == 0);
	fill(c, "bob", N_ENTRIES, N_ENTRIES + 5, -1);
	hsamem_close(c);
	CHECK_RET(harness_stop(h, SIGTERM), 0);
	CHECK(records_of(h->state, half) == 0);
	CHECK(stored_user(h->state, hidden, &chunks, &t) == 0);
	CHECK_RET(harness_start(h), 0);
	CHECK_RET(hsamem_open(h->url, &c), 0);
	free(before);
	free(after);
	return c;
}

/* A memory of a revision the daemon does not serve (written into the store directly). */
static struct hsamem *
unserved(struct hsamem *c, struct harness *h)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u = {0}, a;
	struct hsamem_reencode_info r;
	hsamem_close(c);
	CHECK_RET(harness_stop(h, SIGTERM), 0);
	CHECK_RET(store_open(h->state, NULL, &st), 0);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_get(&txn, "alice", &a), 0);
	strcpy(u.name, "future");
	u.spec = a.spec;
	u.spec.revision = 99;
	CHECK_RET(store_user_create(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	store_close(st);
	CHECK_RET(harness_start(h), 0);
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_append_text(c, "future", HSAMEM_ROLE_USER, "hello", NULL),
	          HSAMEM_EENCODER);
	CHECK(strstr(hsamem_last_message(c), "hsamem reencode future --encoder lexical") != NULL);
	struct hsamem_query_result *q = NULL;
	CHECK_RET(hsamem_query_text(c, "future", "hello", 4, &q), HSAMEM_EENCODER);
	CHECK(strstr(hsamem_last_message(c), "hsamem reencode future --encoder lexical") != NULL);
	CHECK_RET(hsamem_reencode(c, "future", "lexical", 0, &r), 0);
	CHECK(r.done && r.switched && r.revision == 2);
	CHECK_RET(hsamem_append_text(c, "future", HSAMEM_ROLE_USER, "hello", NULL), 0);
	return c;
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	struct hsamem_spec rev1 = {.encoder = "lexical", .revision = 1};
	struct store_terms t = {0};
	uint64_t chunks = 0, alice_old, bob_uid;
	CHECK_RET(harness_init(&h), 0);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);
	CHECK_RET(hsamem_create(c, "alice", &rev1, NULL), 0);
	CHECK_RET(hsamem_create(c, "bob", &rev1, NULL), 0);
	fill(c, "alice", 0, N_ENTRIES, 1234);
	fill(c, "bob", 0, N_ENTRIES, -1);
	check_refusals(c);

	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	alice_old = stored_user(h.state, "alice", &chunks, &t);
	CHECK(alice_old != 0);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);

	reencode_live(c);
	c = reencode_killed(c, &h, &bob_uid);
	c = unserved(c, &h);

	/* the store: the new alice's statistics match its chunks; nothing is left of the old */
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	uint64_t alice_new = stored_user(h.state, "alice", &chunks, &t);
	CHECK(alice_new != 0 && alice_new != alice_old);
	CHECK(chunks > 0 && t.chunks == chunks);
	CHECK(records_of(h.state, alice_old) == 0);
	harness_fini(&h);
	return test_done("test_daemon_reencode");
}
