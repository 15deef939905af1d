/*
 * bench_filter.c: what a filter costs a query (hsamem(7), SCOPES AND FILTERS), end to end over ipc
 * with the lexical encoder on the English corpus of bench/corpus.sh.
 *
 * The memory: --tokens tokens of the corpus, an entry a line, appended 64 a request; entries come
 * in sessions of 40 (session=0 .. 99 in turn, so one session holds about 1% of the entries, in
 * runs, as a chat app's sessions do), roles alternate user and assistant, timestamps one a second.
 * The same --queries questions (lines of the corpus, cut to 80 bytes) are then asked, k = 8, with:
 *
 *   none                   no filter (the baseline)
 *   session (1%)           scope session=7: the index's postings of one pair
 *   session + role         scope and role: one term's postings, the other checked per entry
 *   role (50%)             role=user: half the entries' postings are walked
 *   time range (1%)        since/until only: nothing indexed, every entry is read
 *
 * each in the entry view and the chunk view, p50 and p99 of the round trip, interleaved so that
 * every case sees the same page cache. The target (issue 12): a filter keeping 1% of the chunks
 * no slower than no filter.
 *
 * Usage: bench_filter --corpus FILE [--tokens N] [--queries N] [--json FILE]
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_corpus.h"
#include "harness.h"
#include "hsamem.h"

#define SESSIONS 100
#define RUN      40
#define N_CASES  5

struct fcase {
	const char *name;
	struct hsamem_filter f;
	double p50[2], p99[2]; /* entry view, chunk view */
	uint64_t allowed;
};

static const char *session7[] = {"session=7"};
static const enum hsamem_role user_role = HSAMEM_ROLE_USER;

static uint64_t
fill(struct hsamem *c, uint64_t target, uint64_t *n_entries, int64_t t0)
{
	struct hsamem_entry_in e[64];
	struct hsamem_attrs at[64];
	static char scope[64][24];
	static const char *sp[64][1];
	uint64_t tokens = 0, n = 0;
	double s0 = now_s();

	while (tokens < target) {
		for (int i = 0; i < 64; i++, n++) {
			snprintf(scope[i], sizeof(scope[i]), "session=%llu",
			         (unsigned long long)(n / RUN % SESSIONS));
			sp[i][0] = scope[i];
			at[i] = (struct hsamem_attrs){.scope = sp[i], .n_scope = 1};
			e[i] = (struct hsamem_entry_in){.text = lines[n % n_lines],
			                                .role = n % 2 ? HSAMEM_ROLE_ASSISTANT
			                                              : HSAMEM_ROLE_USER,
			                                .timestamp_ms = t0 + (int64_t)n * 1000};
		}
		struct hsamem_append_info ai;
		if (hsamem_append_attrs(c, "bench", e, at, 64, NULL, 0, 0, &ai) != 0) {
			fprintf(stderr, "bench_filter: append: %s\n", hsamem_last_message(c));
			exit(1);
		}
		tokens = ai.tokens;
	}
	fprintf(stderr, "fill: %llu tokens, %llu entries in %.1f s\n", (unsigned long long)tokens,
	        (unsigned long long)n, now_s() - s0);
	*n_entries = n;
	return tokens;
}

static void
measure(struct hsamem *c, struct fcase *cases, int queries)
{
	double *lat = calloc((size_t)queries * N_CASES * 2, sizeof(double));
	for (int q = 0; q < queries; q++) {
		char text[96];
		snprintf(text, sizeof(text), "%.80s", lines[(size_t)q * 104729 % n_lines]);
		for (int i = 0; i < N_CASES; i++)
			for (int view = 0; view < 2; view++) {
				struct hsamem_query qq = {.text = text, .top_k = 8};
				struct hsamem_recall o = {.filter = i == 0 ? NULL : &cases[i].f,
				                          .chunks_only = view == 1};
				struct hsamem_query_result *r = NULL;
				double s0 = now_s();
				if (hsamem_query_filtered(c, "bench", &qq, &o, &r) != 0) {
					fprintf(stderr, "bench_filter: query: %s\n",
					        hsamem_last_message(c));
					exit(1);
				}
				lat[((size_t)i * 2 + view) * queries + q] = (now_s() - s0) * 1e3;
				cases[i].allowed = r->filtered ? r->allowed : r->chunks;
				hsamem_result_free(r);
			}
	}
	for (int i = 0; i < N_CASES; i++)
		for (int view = 0; view < 2; view++) {
			double *v = lat + ((size_t)i * 2 + view) * queries;
			cases[i].p50[view] = pct(v, (size_t)queries, 0.5);
			cases[i].p99[view] = pct(v, (size_t)queries, 0.99);
		}
	free(lat);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"corpus", required_argument, NULL, 'c'},
	                                     {"tokens", required_argument, NULL, 't'},
	                                     {"queries", required_argument, NULL, 'q'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {0}};
	const char *corpus = NULL, *json = NULL;
	uint64_t target = 1000000, n_entries, chunks;
	int queries = 200, o;
	int64_t t0 = 1790000000000;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'c')
			corpus = optarg;
		else if (o == 't')
			target = strtoull(optarg, NULL, 10);
		else if (o == 'q')
			queries = atoi(optarg);
		else if (o == 'j')
			json = optarg;
		else
			return 2;
	}
	if (corpus == NULL || bench_read_lines(corpus) != 0 || queries < 1) {
		fprintf(stderr, "usage: bench_filter --corpus FILE [--tokens N] [--queries N] "
		                "[--json FILE]\n");
		return 2;
	}
	struct harness h;
	struct hsamem *c;
	if (harness_init(&h) != 0 || harness_start(&h) != 0 || hsamem_open(h.url, &c) != 0)
		return 1;
	uint64_t tokens = fill(c, target, &n_entries, t0);
	int64_t span = (int64_t)n_entries * 1000;
	struct fcase cases[N_CASES] = {
	        {.name = "none"},
	        {.name = "session (1%)", .f = {.scope = session7, .n_scope = 1}},
	        {.name = "session + role",
	         .f = {.scope = session7, .n_scope = 1, .roles = &user_role, .n_roles = 1}},
	        {.name = "role (50%)", .f = {.roles = &user_role, .n_roles = 1}},
	        {.name = "time range (1%)",
	         .f = {.has_since = true,
	               .since_ms = t0 + span / 2,
	               .has_until = true,
	               .until_ms = t0 + span / 2 + span / 100}},
	};
	measure(c, cases, 20); /* warm the page cache and the daemon */
	measure(c, cases, queries);
	chunks = cases[0].allowed;

	printf("filtered queries: %llu tokens, %llu entries, %llu chunks; k = 8, %d queries, "
	       "round trip over ipc\n\n",
	       (unsigned long long)tokens, (unsigned long long)n_entries,
	       (unsigned long long)chunks, queries);
	printf("| filter           | chunks kept | entry view p50 / p99 | chunk view p50 / p99 "
	       "|\n");
	printf("|------------------|-------------|----------------------|----------------------|"
	       "\n");
	for (int i = 0; i < N_CASES; i++)
		printf("| %-16s | %5.1f%%      | %6.2f / %6.2f ms     | %6.2f / %6.2f ms     |\n",
		       cases[i].name, 100.0 * (double)cases[i].allowed / (double)(chunks + 1),
		       cases[i].p50[0], cases[i].p99[0], cases[i].p50[1], cases[i].p99[1]);
	if (json != NULL) {
		FILE *f = fopen(json, "w");
		if (f == NULL)
			return 1;
		fprintf(f, "{\"tokens\":%llu,\"entries\":%llu,\"chunks\":%llu,\"cases\":[",
		        (unsigned long long)tokens, (unsigned long long)n_entries,
		        (unsigned long long)chunks);
		for (int i = 0; i < N_CASES; i++)
			fprintf(f,
			        "%s{\"filter\":\"%s\",\"allowed\":%llu,\"entries_p50_ms\":%.3f,"
			        "\"entries_p99_ms\":%.3f,\"chunks_p50_ms\":%.3f,\"chunks_p99_ms\":%"
			        ".3f}",
			        i ? "," : "", cases[i].name, (unsigned long long)cases[i].allowed,
			        cases[i].p50[0], cases[i].p99[0], cases[i].p50[1], cases[i].p99[1]);
		fprintf(f, "]}\n");
		fclose(f);
	}
	hsamem_close(c);
	harness_fini(&h);
	return 0;
}
