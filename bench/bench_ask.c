/*
 * bench_ask.c: the latency of ask (hsamem(7), ASKING) through hsamemd over ipc, on an hsa-small
 * memory of real English text (bench/corpus.sh) with one needle of the model's task "single" in
 * its middle, asked for by the task's question, so that the answer is the needle's number: 7
 * tokens and the end, 8 positions.
 *
 *   ask, N positions     p50 and p99 over --asks asks, each with --max-tokens N
 *   ask, 1 position      the same with --max-tokens 1: the fixed part (tokenizing, context,
 *                        reply); the difference over the positions is the cost of one position
 *   small memory         the same two on a memory of 4 chunks: what the ranking and attention
 *                        over the big memory's chunks add to a position, beside the model's
 *                        window
 *   query                p50 and p99 of 5 x --asks queries of the big memory (k 8, hybrid),
 *                        questions made from corpus lines
 *
 * --cold: the daemon with one worker, and before each timed ask an untimed one of the other
 * memory, so that no ask finds its window kept from the last (hsamem(7), ENCODERS): a worker's
 * first question to a memory.
 *
 * Usage: bench_ask --corpus FILE [--tokens N] [--asks N] [--max-tokens N] [--cold]
 * The daemon finds the model itself (run from the build tree). Figures belong in bench/RESULTS.md.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "harness.h"
#include "hsamem.h"

#define QUESTION "What is the special magic number for quiet-harbor mentioned in the provided text?"
#define NEEDLE   "One of the special magic numbers for quiet-harbor is: 4829301."

/* Appends corpus lines until the memory holds `tokens`, the needle halfway. */
static int
fill(struct hsamem *c, const char *user, uint64_t tokens)
{
	struct hsamem_spec spec = {.encoder = "hsa-small"};
	struct hsamem_append_info ai = {0};
	struct hsamem_entry_in in[64];
	size_t at = 0;
	int needle = 0;
	if (hsamem_create(c, user, &spec, NULL) != 0)
		return -1;
	while (ai.tokens < tokens) {
		size_t n = 0;
		for (; n < (tokens < 8192 ? 1u : 64u); n++) {
			const char *t = lines[at++ % n_lines];
			if (!needle && ai.tokens >= tokens / 2) {
				t = NEEDLE;
				needle = 1;
			}
			in[n] = (struct hsamem_entry_in){.text = t, .role = HSAMEM_ROLE_USER};
		}
		if (hsamem_append(c, user, in, n, NULL, 0, 0, &ai) != 0) {
			fprintf(stderr, "append: %s\n", hsamem_last_message(c));
			return -1;
		}
	}
	if (!needle && hsamem_append_text(c, user, HSAMEM_ROLE_USER, NEEDLE, NULL) != 0)
		return -1;
	return 0;
}

/* With --cold, the memory asked of before each timed ask, untimed, so that the daemon's one worker
 * keeps no window of the memory timed (hsamem(7), ENCODERS): each ask runs its whole window at
 * its first position, as a worker's first question to a memory does. */
static const char *cold_other;

/* p50 and p99 in ms of `asks` asks with max_tokens; the last answer to *last. */
static int
time_asks(struct hsamem *c, const char *user, uint32_t max_tokens, size_t asks, double *p50,
          double *p99, struct hsamem_ask_result **last)
{
	struct hsamem_ask opts = {.max_tokens = max_tokens}, one = {.max_tokens = 1};
	double *ms = calloc(asks, sizeof(double));
	if (ms == NULL)
		return -1;
	for (size_t i = 0; i < asks; i++) {
		struct hsamem_ask_result *r = NULL;
		if (cold_other != NULL) {
			if (hsamem_ask(c, strcmp(user, cold_other) != 0 ? cold_other : "big",
			               QUESTION, &one, &r) != 0) {
				fprintf(stderr, "ask: %s\n", hsamem_last_message(c));
				free(ms);
				return -1;
			}
			hsamem_result_free(r);
			r = NULL;
		}
		double t0 = now_s();
		if (hsamem_ask(c, user, QUESTION, &opts, &r) != 0) {
			fprintf(stderr, "ask: %s\n", hsamem_last_message(c));
			free(ms);
			return -1;
		}
		ms[i] = (now_s() - t0) * 1e3;
		if (i + 1 == asks && last != NULL)
			*last = r;
		else
			hsamem_result_free(r);
	}
	*p99 = pct(ms, asks, 0.99);
	*p50 = pct(ms, asks, 0.5);
	free(ms);
	return 0;
}

static int
report(struct hsamem *c, const char *user, uint32_t max_tokens, size_t asks)
{
	double a50, a99, b50, b99;
	struct hsamem_ask_result *r = NULL;
	if (time_asks(c, user, 1, asks, &b50, &b99, NULL) != 0 ||
	    time_asks(c, user, max_tokens, asks, &a50, &a99, &r) != 0)
		return -1;
	printf("%s: %llu sealed chunks; answer '%s' (%zu tokens, %u positions)\n", user,
	       (unsigned long long)r->searched, r->answer, r->n_tokens, r->positions);
	printf("  ask, %u positions: p50 %.1f ms, p99 %.1f ms\n", r->positions, a50, a99);
	printf("  ask, 1 position:  p50 %.1f ms, p99 %.1f ms\n", b50, b99);
	if (r->positions > 1)
		printf("  per further position: %.1f ms (p50s)\n",
		       (a50 - b50) / (double)(r->positions - 1));
	hsamem_result_free(r);
	return 0;
}

/* p50 and p99 of n queries (k 8, the memory's default mode) of user, each a question made from a
 * corpus line as bench_hsa_daemon makes them: what a query costs beside an ask. */
static int
time_queries(struct hsamem *c, const char *user, size_t n)
{
	double *ms = calloc(n, sizeof(double));
	if (ms == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char q[256];
		const char *line = lines[(i * 7919) % n_lines];
		struct hsamem_query_result *r = NULL;
		snprintf(q, sizeof(q), "What does the text say about %.40s?", line);
		double t0 = now_s();
		if (hsamem_query_text(c, user, q, 8, &r) != 0) {
			fprintf(stderr, "query: %s\n", hsamem_last_message(c));
			free(ms);
			return -1;
		}
		ms[i] = (now_s() - t0) * 1e3;
		hsamem_result_free(r);
	}
	printf("%s: query, k 8: p50 %.1f ms, p99 %.1f ms (%zu queries)\n", user, pct(ms, n, 0.5),
	       pct(ms, n, 0.99), n);
	free(ms);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"corpus", required_argument, NULL, 'c'},
	                                     {"tokens", required_argument, NULL, 'n'},
	                                     {"asks", required_argument, NULL, 'a'},
	                                     {"max-tokens", required_argument, NULL, 'm'},
	                                     {"cold", no_argument, NULL, 'C'},
	                                     {0}};
	const char *corpus = NULL;
	uint64_t tokens = 65536;
	size_t asks = 20;
	uint32_t max_tokens = 8;
	struct harness h;
	struct hsamem *c = NULL;
	int o, rc = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'c')
			corpus = optarg;
		else if (o == 'n')
			tokens = strtoull(optarg, NULL, 10);
		else if (o == 'a')
			asks = strtoul(optarg, NULL, 10);
		else if (o == 'm')
			max_tokens = (uint32_t)strtoul(optarg, NULL, 10);
		else if (o == 'C')
			cold_other = "small";
		else
			return 2;
	}
	if (corpus == NULL || bench_read_lines(corpus) != 0 || asks == 0) {
		fprintf(stderr, "usage: bench_ask --corpus FILE [--tokens N] [--asks N] "
		                "[--max-tokens N] [--cold]\n");
		return 2;
	}
	static const char *one_worker[] = {"-o", "workers=1", NULL};
	int ret = harness_init(&h);
	if (ret == 0 && cold_other != NULL)
		memcpy(h.extra, one_worker, sizeof(one_worker));
	if (ret != 0 || harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	double t0 = now_s();
	if (hsamem_open(h.url, &c) != 0 || hsamem_set_timeout(c, 600000) != 0 ||
	    fill(c, "small", 256) != 0 || fill(c, "big", tokens) != 0)
		goto out;
	printf("built the memories in %.0f s\n", now_s() - t0);
	if (report(c, "small", max_tokens, asks) != 0 || report(c, "big", max_tokens, asks) != 0 ||
	    time_queries(c, "big", 5 * asks) != 0)
		goto out;
	rc = 0;
out:
	hsamem_close(c);
	harness_fini(&h);
	return rc;
}
