/*
 * bench_reencode.c: the rate of a re-encode (hsamem(7), RE-ENCODING) through the real daemon: a
 * lexical revision 1 memory of about TOKENS tokens (argument 1, default 1,000,000) re-encoded to
 * revision 2, step by step as hsamem reencode drives it. Prints the memory's tokens re-encoded
 * per second, the steps and their latency (each step is one write of the daemon's only writer:
 * what an append queued behind it waits at most), as a table, or as JSON with --json.
 * HSAMEM_TOP_BUILDDIR picks the hsamemd to time, as for the other benchmarks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "hsamem.h"

#define BATCH 500

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const words[] = {"maintenance", "inspection", "reservoir", "turbine",
                                    "generator",   "pipeline",   "schedule",  "operator",
                                    "pressure",    "coolant",    "valves",    "report"};

/* Fills user with entries of about 40 tokens until it holds tokens tokens. */
static int
fill(struct hsamem *c, const char *user, uint64_t tokens)
{
	static char texts[BATCH][400];
	struct hsamem_entry_in e[BATCH];
	struct hsamem_append_info a = {0};
	uint64_t r = 88172645463325252ull, i = 0;
	while (a.tokens < tokens) {
		for (int n = 0; n < BATCH; n++, i++) {
			size_t len = (size_t)snprintf(texts[n], sizeof(texts[n]),
			                              "note %llu:", (unsigned long long)i);
			for (int w = 0; w < 38; w++) {
				r ^= r << 13, r ^= r >> 7, r ^= r << 17;
				len += (size_t)snprintf(texts[n] + len, sizeof(texts[n]) - len,
				                        " %s", words[r % 12]);
			}
			e[n] = (struct hsamem_entry_in){.text = texts[n], .role = HSAMEM_ROLE_USER};
		}
		int err = hsamem_append(c, user, e, BATCH, NULL, 0, 0, &a);
		if (err != 0)
			return err;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	bool json = argc > 1 && strcmp(argv[argc - 1], "--json") == 0;
	uint64_t tokens = argc > 1 + json ? strtoull(argv[1], NULL, 10) : 1000000;
	struct hsamem_spec rev1 = {.encoder = "lexical", .revision = 1};
	struct hsamem_reencode_info r = {0};
	struct hsamem *c = NULL;
	struct harness h;
	double worst = 0, t0, t;
	unsigned steps = 0;
	int err = 0;

	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	if ((err = hsamem_open(h.url, &c)) != 0 || (err = hsamem_set_timeout(c, 600000)) != 0 ||
	    (err = hsamem_create(c, "bench", &rev1, NULL)) != 0 ||
	    (err = fill(c, "bench", tokens)) != 0)
		goto out;
	t0 = now_s();
	do {
		t = now_s();
		if ((err = hsamem_reencode(c, "bench", "lexical", 2, &r)) != 0)
			goto out;
		t = now_s() - t;
		worst = t > worst ? t : worst;
		steps++;
	} while (!r.done);
	t = now_s() - t0;
	if (json)
		printf("{\"tokens\":%llu,\"entries\":%llu,\"seconds\":%.3f,\"tokens_per_s\":%.0f,"
		       "\"steps\":%u,\"step_mean_ms\":%.1f,\"step_max_ms\":%.1f}\n",
		       (unsigned long long)r.tokens_total, (unsigned long long)r.entries_total, t,
		       (double)r.tokens_total / t, steps, t * 1e3 / steps, worst * 1e3);
	else
		printf("%-10s %-9s %-9s %-12s %-6s %-12s %-11s\n%-10llu %-9llu %-9.2f %-12.0f %-6u "
		       "%-12.1f %-11.1f\n",
		       "tokens", "entries", "seconds", "tokens/s", "steps", "step mean ms",
		       "step max ms", (unsigned long long)r.tokens_total,
		       (unsigned long long)r.entries_total, t, (double)r.tokens_total / t, steps,
		       t * 1e3 / steps, worst * 1e3);
out:
	if (err != 0)
		fprintf(stderr, "bench_reencode: %s: %s\n", hsamem_strerror(err),
		        c != NULL ? hsamem_last_message(c) : "");
	hsamem_close(c);
	harness_fini(&h);
	return err != 0;
}
