/*
 * test_daemon_scopes.c: scopes, metadata and filters (hsamem(7), SCOPES AND FILTERS) and the entry
 * view of query (ENTRY RECALL), through the real daemon, the real store and libhsamem, on the CPU
 * backend (test_cuda covers the device's mask).
 *
 * Three agents' entries are interleaved in the first half of one memory, so those chunks hold
 * entries of several agents, and follow each other in runs of one agent in the second half, so
 * those chunks hold one agent's; each agent has a code word of its own. Scope isolation: with an
 * agent's filter, no hit of either view ever shows another agent's entry, text or code word,
 * whatever the question (the other agents' code words included), and the k selected chunks are k
 * (not fewer), each holding an entry of the agent's (the filter is applied before ranking). A
 * filter that excludes every chunk answers with nothing and says so. The entry view: the entry
 * holding the answer ranks first, entries are not repeated, scores descend, context entries are the
 * filter's neighbours, and min-score drops what it must and says so. Roles, time ranges, tags and
 * metadata filter as documented; bad filters and bad scopes are refused and change nothing; the
 * index survives SIGKILL; re-encoding keeps scopes and metadata.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hsamem.h"
#include "test.h"

#define N_ROUNDS 120 /* entries per agent */

static const char *const agents[3] = {"agent=red", "agent=green", "agent=blue"};
static const char *const codes[3] = {"zanzibar", "quixotic", "marmalade"};
static const char *const words[] = {"river",  "mountain", "ledger",  "window", "garden", "engine",
                                    "harbor", "signal",   "lantern", "meadow", "copper", "thunder"};

static int
agent_of(const struct hsamem_attrs *a)
{
	for (size_t i = 0; i < a->n_scope; i++)
		for (int g = 0; g < 3; g++)
			if (strcmp(a->scope[i], agents[g]) == 0)
				return g;
	return -1;
}

/* The second half's entries, per agent, kept until the end (texts copied). */
static struct {
	char text[N_ROUNDS / 2][256];
	struct hsamem_entry_in e[N_ROUNDS / 2];
	struct hsamem_attrs at[N_ROUNDS / 2];
	int n;
} block[3];

static void
block_add(const struct hsamem_entry_in *e, const struct hsamem_attrs *at)
{
	for (int g = 0; g < 3; g++) {
		int n = block[g].n++;
		snprintf(block[g].text[n], sizeof(block[g].text[n]), "%s", e[g].text);
		block[g].e[n] = e[g];
		block[g].e[n].text = block[g].text[n];
		block[g].at[n] = at[g];
	}
}

static void
block_flush(struct hsamem *c)
{
	for (int g = 0; g < 3; g++)
		CHECK_RET(hsamem_append_attrs(c, "mem", block[g].e, block[g].at, (size_t)block[g].n,
		                              NULL, 0, 0, NULL),
		          0);
}

static void
fill(struct hsamem *c)
{
	char text[3][256];
	struct hsamem_entry_in e[3];
	struct hsamem_attrs at[3];
	static const char *scope[N_ROUNDS][3][2];
	const char *meta[3][1] = {{"src=mail"}, {"src=chat"}, {"src=chat"}};
	static const char *tags[] = {"fact"};
	uint64_t r = 7;

	for (int i = 0; i < N_ROUNDS; i++) {
		memset(e, 0, sizeof(e));
		for (int g = 0; g < 3; g++) {
			int len = 0;
			for (int w = 0; w < 6; w++) {
				r = r * 6364136223846793005ull + 1442695040888963407ull;
				len += snprintf(text[g] + len, sizeof(text[g]) - (size_t)len, "%s ",
				                words[(r >> 33) % 12]);
			}
			if (i % 40 == 17) /* the code word, three times per agent */
				snprintf(text[g] + len, sizeof(text[g]) - (size_t)len,
				         "the code word of this agent is %s", codes[g]);
			scope[i][g][0] = agents[g];
			scope[i][g][1] = i < N_ROUNDS / 2 ? "session=one" : "session=two";
			at[g] = (struct hsamem_attrs){scope[i][g], 2, meta[g], 1};
			e[g].text = text[g];
			e[g].role = g == 0 ? HSAMEM_ROLE_USER : HSAMEM_ROLE_ASSISTANT;
			e[g].timestamp_ms = 1700000000000 + (int64_t)i * 60000;
			e[g].tags = tags;
			e[g].n_tags = i % 40 == 17;
		}
		if (i < N_ROUNDS / 2) {
			CHECK_RET(hsamem_append_attrs(c, "mem", e, at, 3, NULL, 0, 0, NULL), 0);
			continue;
		}
		/* the second half: each agent's entries in a run of its own, so that some chunks
		 * hold one agent's entries only (appended as the rounds go: held back until then)
		 */
		block_add(e, at);
	}
	block_flush(c);
}

/* Every entry and text shown by res belongs to agent g. */
static void
check_isolated(const struct hsamem_query_result *res, int g)
{
	for (size_t i = 0; i < res->n_entry_hits; i++)
		CHECK(agent_of(&res->entry_hits[i].attrs) == g);
	for (size_t i = 0; i < res->n_hits; i++) {
		const struct hsamem_hit *h = &res->hits[i];
		for (int o = 0; o < 3; o++)
			if (o != g)
				CHECK(strstr(h->text, codes[o]) == NULL);
		for (size_t j = 0; j < h->n_entries; j++)
			CHECK(strstr(h->entries[j].text, codes[(g + 1) % 3]) == NULL &&
			      strstr(h->entries[j].text, codes[(g + 2) % 3]) == NULL);
		for (size_t j = 0; j < h->n_top_tokens; j++)
			for (int o = 0; o < 3; o++)
				if (o != g && h->top_tokens[j].text != NULL)
					CHECK(strstr(codes[o], h->top_tokens[j].text) == NULL ||
					      strlen(h->top_tokens[j].text) < 4);
	}
}

static void
test_isolation(struct hsamem *c)
{
	struct hsamem_query_result *res;
	char question[128];

	for (int g = 0; g < 3; g++) {
		const char *scope[] = {agents[g]};
		struct hsamem_filter f = {.scope = scope, .n_scope = 1};
		for (int q = 0; q < 3; q++) {
			snprintf(question, sizeof(question), "what is the code word %s", codes[q]);
			for (int view = 0; view < 2; view++) {
				struct hsamem_query qq = {.text = question, .top_k = 8};
				struct hsamem_recall o = {
				        .filter = &f, .chunks_only = view == 1, .context = 2};
				CHECK_RET(hsamem_query_filtered(c, "mem", &qq, &o, &res), 0);
				check_isolated(res, g);
				/* a mask, not a post-filter: k chunks whenever k are allowed,
				 * each holding an entry of the agent's */
				CHECK(res->filtered && res->allowed >= 8 && res->n_hits == 8);
				CHECK(res->allowed < res->chunks);
				for (size_t i = 0; i < res->n_hits; i++)
					CHECK(res->hits[i].n_entries > 0 &&
					      res->hits[i].text[0] != '\0');
				if (q == g && view == 0) {
					CHECK(res->n_entry_hits > 0 &&
					      strstr(res->entry_hits[0].entry.text, codes[g]) !=
					              NULL);
				}
				hsamem_result_free(res);
			}
		}
		/* listing and the chunk of every hit: the same rule */
		struct hsamem_entry_list *l;
		CHECK_RET(hsamem_entries_filtered(c, "mem", 0, 1000, &f, &l), 0);
		CHECK(l->n_entries == N_ROUNDS);
		for (size_t i = 0; i < l->n_entries; i++)
			CHECK(agent_of(&l->attrs[i]) == g);
		hsamem_result_free(l);
	}
}

static void
expect_nothing(struct hsamem *c, const struct hsamem_filter *f, const char *why)
{
	struct hsamem_query_result *res;
	struct hsamem_query q = {.text = "code word zanzibar river", .top_k = 8};
	struct hsamem_recall o = {.filter = f};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), 0);
	CHECK(res->filtered && res->allowed == 0 && res->n_hits == 0 && res->n_entry_hits == 0);
	CHECK(strstr(hsamem_last_message(c), "no entry passes the filter") != NULL);
	if (res->n_hits != 0)
		fprintf(stderr, "%s: %zu hits\n", why, res->n_hits);
	hsamem_result_free(res);
}

static void
test_excludes_all(struct hsamem *c)
{
	const char *nobody[] = {"agent=nobody"}, *both[] = {"agent=red", "agent=green"};
	const char *tag[] = {"nonesuch"}, *meta[] = {"src=fax"};
	enum hsamem_role tool = HSAMEM_ROLE_TOOL;
	expect_nothing(c, &(struct hsamem_filter){.scope = nobody, .n_scope = 1}, "scope");
	expect_nothing(c, &(struct hsamem_filter){.scope = both, .n_scope = 2}, "two agents");
	expect_nothing(c, &(struct hsamem_filter){.tags = tag, .n_tags = 1}, "tag");
	expect_nothing(c, &(struct hsamem_filter){.meta = meta, .n_meta = 1}, "meta");
	expect_nothing(c, &(struct hsamem_filter){.roles = &tool, .n_roles = 1}, "role");
	expect_nothing(c, &(struct hsamem_filter){.has_since = true, .since_ms = 1800000000000},
	               "time");
	struct hsamem_entry_list *l;
	CHECK_RET(hsamem_entries_filtered(c, "mem", 0, 1000,
	                                  &(struct hsamem_filter){.scope = nobody, .n_scope = 1},
	                                  &l),
	          0);
	CHECK(l->n_entries == 0 && l->total == 3 * N_ROUNDS);
	hsamem_result_free(l);
}

static void
test_fields(struct hsamem *c)
{
	struct hsamem_entry_list *l;
	enum hsamem_role user = HSAMEM_ROLE_USER;
	const char *tag[] = {"fact"}, *meta[] = {"src=chat"}, *sess[] = {"session=two"};

	CHECK_RET(hsamem_entries_filtered(c, "mem", 0, 1000,
	                                  &(struct hsamem_filter){.roles = &user, .n_roles = 1},
	                                  &l),
	          0);
	CHECK(l->n_entries == N_ROUNDS);
	for (size_t i = 0; i < l->n_entries; i++)
		CHECK(l->entries[i].role == HSAMEM_ROLE_USER && agent_of(&l->attrs[i]) == 0);
	hsamem_result_free(l);
	/* [since, until): rounds 10 .. 19 of three agents */
	struct hsamem_filter t = {.has_since = true,
	                          .since_ms = 1700000000000 + 10 * 60000,
	                          .has_until = true,
	                          .until_ms = 1700000000000 + 20 * 60000};
	CHECK_RET(hsamem_entries_filtered(c, "mem", 0, 1000, &t, &l), 0);
	CHECK(l->n_entries == 30 && l->entries[0].seq == 30 && l->entries[29].seq == 59);
	hsamem_result_free(l);
	struct hsamem_filter f = {.tags = tag, .n_tags = 1, .meta = meta, .n_meta = 1};
	CHECK_RET(hsamem_entries_filtered(c, "mem", 0, 1000, &f, &l), 0);
	CHECK(l->n_entries == 6); /* green's and blue's code words */
	for (size_t i = 0; i < l->n_entries; i++)
		CHECK(strstr(l->entries[i].text, "code word") != NULL &&
		      agent_of(&l->attrs[i]) != 0 && l->attrs[i].n_meta == 1);
	hsamem_result_free(l);
	f = (struct hsamem_filter){.scope = sess, .n_scope = 1, .tags = tag, .n_tags = 1};
	CHECK_RET(hsamem_entries_filtered(c, "mem", 0, 1000, &f, &l), 0);
	CHECK(l->n_entries == 3 * 1); /* round 97 of each agent */
	hsamem_result_free(l);
}

static void
test_entry_view(struct hsamem *c)
{
	struct hsamem_query_result *res;
	struct hsamem_query q = {.text = "what is the code word marmalade", .top_k = 8};
	const char *blue[] = {"agent=blue"};
	struct hsamem_filter f = {.scope = blue, .n_scope = 1};
	struct hsamem_recall o = {.filter = &f, .context = 1};

	/* the answer first; each entry once; scores descending; context: blue neighbours */
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), 0);
	CHECK(res->n_entry_hits > 1 && !res->entry_hits[0].context);
	CHECK(strstr(res->entry_hits[0].entry.text, "marmalade") != NULL);
	float last = 1e30f;
	uint64_t prev_hit = UINT64_MAX;
	for (size_t i = 0; i < res->n_entry_hits; i++) {
		const struct hsamem_entry_hit *h = &res->entry_hits[i];
		for (size_t j = 0; j < i; j++)
			CHECK(res->entry_hits[j].entry.seq != h->entry.seq);
		if (h->context) {
			/* the nearest blue entry on one side not shown yet: 1 apart in
			 * blue's run, 3 where the agents are interleaved */
			uint64_t d = h->entry.seq > prev_hit ? h->entry.seq - prev_hit
			                                     : prev_hit - h->entry.seq;
			CHECK(d >= 1 && d <= 3 * (i + 1));
			CHECK(agent_of(&h->attrs) == 2);
			continue;
		}
		CHECK(h->score <= last && h->score > 0 && h->n_chunks >= 1);
		last = h->score;
		prev_hit = h->entry.seq;
	}
	float top = res->entry_hits[0].score;
	hsamem_result_free(res);

	/* min-score: only what reaches it, and the count of the rest */
	o = (struct hsamem_recall){.filter = &f, .has_min_score = true, .min_score = top};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), 0);
	CHECK(res->n_entry_hits >= 1 && res->entry_hits[0].score >= top);
	hsamem_result_free(res);
	o.min_score = top * 2 + 1;
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), 0);
	CHECK(res->n_entry_hits == 0 && res->below_min_score > 0);
	CHECK(strstr(hsamem_last_message(c), "min-score") != NULL);
	hsamem_result_free(res);

	/* max_hits bounds the entries; no filter: any agent's */
	o = (struct hsamem_recall){.max_hits = 2};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), 0);
	CHECK(res->n_entry_hits == 2 && !res->filtered);
	hsamem_result_free(res);
}

/* Re-encoding keeps each entry's scope and metadata, and the index answers for the new memory. */
static void
test_reencode(struct hsamem *c)
{
	struct hsamem_spec old = {.encoder = "lexical", .revision = 1};
	struct hsamem_reencode_info ri = {0};
	struct hsamem_entry_list *l;
	const char *scope[2][1] = {{"agent=x"}, {"agent=y"}}, *meta[] = {"k=v"};
	char text[2][64];
	struct hsamem_entry_in e[2];
	struct hsamem_attrs at[2];

	CHECK_RET(hsamem_create(c, "re", &old, NULL), 0);
	for (int i = 0; i < 50; i++) {
		for (int g = 0; g < 2; g++) {
			snprintf(text[g], sizeof(text[g]), "entry %d of agent %c, about %s", i,
			         'x' + g, words[(i + g) % 12]);
			e[g] = (struct hsamem_entry_in){.text = text[g]};
			at[g] = (struct hsamem_attrs){scope[g], 1, meta, (size_t)g};
		}
		CHECK_RET(hsamem_append_attrs(c, "re", e, at, 2, NULL, 0, 0, NULL), 0);
	}
	for (int i = 0; i < 100 && !ri.done; i++)
		CHECK_RET(hsamem_reencode(c, "re", "lexical", 0, &ri), 0);
	CHECK(ri.done && ri.revision > 1);
	struct hsamem_filter f = {.scope = scope[1], .n_scope = 1};
	CHECK_RET(hsamem_entries_filtered(c, "re", 0, 1000, &f, &l), 0);
	CHECK(l->n_entries == 50);
	for (size_t i = 0; i < l->n_entries; i++)
		CHECK(agent_of(&l->attrs[i]) == -1 && l->attrs[i].n_scope == 1 &&
		      strcmp(l->attrs[i].scope[0], "agent=y") == 0 && l->attrs[i].n_meta == 1 &&
		      strcmp(l->attrs[i].meta[0], "k=v") == 0);
	hsamem_result_free(l);
	struct hsamem_query_result *res;
	struct hsamem_query q = {.text = "about river", .top_k = 4};
	struct hsamem_recall o = {.filter = &f};
	CHECK_RET(hsamem_query_filtered(c, "re", &q, &o, &res), 0);
	CHECK(res->n_entry_hits > 0);
	for (size_t i = 0; i < res->n_entry_hits; i++)
		CHECK(strstr(res->entry_hits[i].entry.text, "agent y") != NULL);
	hsamem_result_free(res);
	CHECK_RET(hsamem_delete(c, "re", NULL), 0);
}

static void
test_refusals(struct hsamem *c)
{
	struct hsamem_query_result *res = NULL;
	struct hsamem_query q = {.text = "code"};
	const char *bad_key[] = {"ag ent=x"}, *no_value[] = {"agent="}, *dup[] = {"a=1", "a=2"};
	const char *many[9] = {"a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "i=1"};
	struct hsamem_filter f = {.scope = bad_key, .n_scope = 1};
	struct hsamem_recall o = {.filter = &f};

	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), HSAMEM_EINVAL);
	f = (struct hsamem_filter){.meta = no_value, .n_meta = 1};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), HSAMEM_EINVAL);
	f = (struct hsamem_filter){.scope = many, .n_scope = 9};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), HSAMEM_ETOOBIG);
	f = (struct hsamem_filter){
	        .has_since = true, .since_ms = 5, .has_until = true, .until_ms = 5};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), HSAMEM_EINVAL);
	enum hsamem_role r = (enum hsamem_role)9;
	f = (struct hsamem_filter){.roles = &r, .n_roles = 1};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), HSAMEM_EINVAL);
	o = (struct hsamem_recall){.context = 9};
	CHECK_RET(hsamem_query_filtered(c, "mem", &q, &o, &res), HSAMEM_EINVAL);

	/* a bad scope fails the whole append: nothing of it is stored */
	struct hsamem_memory *m;
	struct hsamem_entry_in e[2] = {{.text = "fine"}, {.text = "not fine"}};
	struct hsamem_attrs at[2] = {{0}, {.scope = dup, .n_scope = 2}};
	CHECK_RET(hsamem_append_attrs(c, "mem", e, at, 2, NULL, 0, 0, NULL), HSAMEM_EINVAL);
	CHECK(strstr(hsamem_last_message(c), "given twice") != NULL);
	at[1] = (struct hsamem_attrs){.scope = many, .n_scope = 9};
	CHECK_RET(hsamem_append_attrs(c, "mem", e, at, 2, NULL, 0, 0, NULL), HSAMEM_ETOOBIG);
	CHECK_RET(hsamem_create(c, "mem", NULL, &m), HSAMEM_EEXIST);
	struct hsamem_entry_list *l;
	CHECK_RET(hsamem_entries(c, "mem", 0, 1, &l), 0);
	CHECK(l->total == 3 * N_ROUNDS);
	hsamem_result_free(l);
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;

	CHECK_RET(harness_init(&h), 0);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);
	fill(c);
	test_isolation(c);
	test_excludes_all(c);
	test_fields(c);
	test_entry_view(c);
	test_refusals(c);
	test_reencode(c);

	/* the index is durable with the entries: after SIGKILL, the same answers */
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGKILL), 128 + SIGKILL);
	CHECK_RET(harness_start(&h), 0);
	CHECK_RET(hsamem_open(h.url, &c), 0);
	test_isolation(c);
	test_fields(c);

	hsamem_close(c);
	if (test_failures > 0)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_scopes");
}
