/*
 * bench_forget.c: what forgetting one entry costs, hsamemd end to end over ipc. It fills a
 * memory to --tokens tokens (lexical by default; --encoder hsa-small needs HSAMEM_MODEL_DIR) with
 * the lines of a corpus file, one entry each (bench/corpus.sh makes one; any text file does),
 * prints the store's size against the tokens and the text (hsamem stats' figures),
 * then forgets --n entries picked evenly through the memory, one request each, and prints the
 * latency quantiles of the forget, of the erasure the daemon logged for each (the scrub of
 * data.mdb, hsamem(7), DELETE AND ERASURE), and of the rest (the re-encoding, the commit).
 * Meanwhile another client appends a short entry to another memory (lexical) every 5 ms, and the
 * latency of those appends is printed too: what a forget holds up of the other writes, which go
 * through the same group commit.
 *
 * Usage: bench_forget CORPUS [--tokens N] [--n N] [--encoder NAME]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "harness.h"
#include "hsamem.h"

#define BATCH     64
#define MAX_N     1000
#define MAX_OTHER 100000

/* The other client: appends to memory "o" until stop, each append's latency in ms. */
struct other {
	const char *url;
	atomic_bool stop;
	double ms[MAX_OTHER];
	size_t n;
	int err;
};

static void *
other_main(void *arg)
{
	struct other *o = arg;
	struct hsamem *c = NULL;
	if ((o->err = hsamem_open(o->url, &c)) != 0)
		return NULL;
	while (!atomic_load(&o->stop) && o->n < MAX_OTHER && o->err == 0) {
		double t = now_s();
		o->err = hsamem_append_text(c, "o", HSAMEM_ROLE_USER, "another memory's entry",
		                            NULL);
		o->ms[o->n++] = (now_s() - t) * 1e3;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	hsamem_close(c);
	return NULL;
}

/* The time of the last erasure the daemon logged (-1: none). */
static double
last_erasure(const struct harness *h)
{
	FILE *f = fopen(h->log, "r");
	char line[512];
	double ms = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "store: erased in ");
		if (p != NULL)
			ms = strtod(p + strlen("store: erased in "), NULL);
	}
	if (f != NULL)
		fclose(f);
	return ms;
}

static uint64_t text_bytes; /* of the entries fill appended */

static int
fill(struct hsamem *c, const char *user, const char *encoder, uint64_t tokens, uint64_t *entries)
{
	struct hsamem_entry_in in[BATCH];
	struct hsamem_append_info info = {0};
	size_t next = 0;
	int err;
	if (strcmp(encoder, "lexical") != 0) {
		struct hsamem_spec spec = {0};
		spec.encoder = encoder;
		if ((err = hsamem_create(c, user, &spec, NULL)) != 0)
			return err;
	}
	while (info.tokens < tokens) {
		for (int i = 0; i < BATCH; i++, next++) {
			in[i] = (struct hsamem_entry_in){.text = lines[next % n_lines],
			                                 .role = HSAMEM_ROLE_USER};
			text_bytes += strlen(in[i].text);
		}
		if ((err = hsamem_append(c, user, in, BATCH, NULL, 0, 0, &info)) != 0)
			return err;
	}
	*entries = info.first_seq + BATCH;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"tokens", required_argument, NULL, 't'},
	                                     {"n", required_argument, NULL, 'n'},
	                                     {"encoder", required_argument, NULL, 'e'},
	                                     {0}};
	uint64_t tokens = 1000000, entries = 0;
	size_t n = 20;
	const char *encoder = "lexical";
	double total[MAX_N], scrub[MAX_N], rest[MAX_N];
	static struct other other;
	pthread_t ot;
	bool other_on = false;
	struct harness h;
	struct hsamem *c = NULL;
	int o, rv = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 't')
			tokens = strtoull(optarg, NULL, 10);
		else if (o == 'n')
			n = strtoul(optarg, NULL, 10);
		else if (o == 'e')
			encoder = optarg;
		else
			return 2;
	}
	if (optind != argc - 1 || n == 0 || n > MAX_N) {
		fprintf(stderr,
		        "usage: bench_forget CORPUS [--tokens N] [--n 1..%d] [--encoder E]\n",
		        MAX_N);
		return 2;
	}
	if (bench_read_lines(argv[optind]) != 0 || n_lines == 0)
		return 1;
	if (harness_init(&h) != 0)
		return 1;
	h.extra[0] = "-o"; /* the erasure's line is an info one */
	h.extra[1] = "log-level=info";
	if (harness_start(&h) != 0 || hsamem_open(h.url, &c) != 0)
		goto out;
	double t0 = now_s();
	if (fill(c, "m", encoder, tokens, &entries) != 0) {
		fprintf(stderr, "fill: %s\n", hsamem_last_message(c));
		goto out;
	}
	printf("filled %llu entries, %llu+ tokens (%s) in %.1f s\n", (unsigned long long)entries,
	       (unsigned long long)tokens, encoder, now_s() - t0);
	struct hsamem_stats *st = NULL;
	if (hsamem_stats(c, NULL, &st) != 0) {
		fprintf(stderr, "stats: %s\n", hsamem_last_message(c));
		goto out;
	}
	printf("store: %.1f MB used for %llu tokens, %.1f MB of text: %.1f bytes a token, "
	       "%.2f times the text\n",
	       (double)st->store_map_used / 1e6, (unsigned long long)st->tokens,
	       (double)text_bytes / 1e6, (double)st->store_map_used / (double)st->tokens,
	       (double)st->store_map_used / (double)text_bytes);
	hsamem_result_free(st);
	other.url = h.url;
	if (pthread_create(&ot, NULL, other_main, &other) != 0)
		goto out;
	other_on = true;
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = (entries - 1) * (2 * i + 1) / (2 * n);
		struct hsamem_forget_info f;
		double t = now_s();
		if (hsamem_forget(c, "m", seq, seq, &f) != 0) {
			fprintf(stderr, "forget %llu: %s\n", (unsigned long long)seq,
			        hsamem_last_message(c));
			goto out;
		}
		total[i] = (now_s() - t) * 1e3;
		scrub[i] = last_erasure(&h);
		rest[i] = total[i] - scrub[i];
	}
	atomic_store(&other.stop, true);
	pthread_join(ot, NULL);
	other_on = false;
	if (other.err != 0 || other.n == 0) {
		fprintf(stderr, "the other client's appends failed: %s\n",
		        hsamem_strerror(other.err));
		goto out;
	}
	printf("| %s, %llu tokens | p50 (ms) | p90 (ms) | max (ms) |\n", encoder,
	       (unsigned long long)tokens);
	printf("|---|---|---|---|\n");
	printf("| forget one entry | %.1f | %.1f | %.1f |\n", pct(total, n, 0.5),
	       pct(total, n, 0.9), pct(total, n, 1.0));
	printf("| of it the erasure | %.1f | %.1f | %.1f |\n", pct(scrub, n, 0.5),
	       pct(scrub, n, 0.9), pct(scrub, n, 1.0));
	printf("| the rest | %.1f | %.1f | %.1f |\n", pct(rest, n, 0.5), pct(rest, n, 0.9),
	       pct(rest, n, 1.0));
	printf("| another memory's append, meanwhile (%zu) | %.1f | %.1f | %.1f |\n", other.n,
	       pct(other.ms, other.n, 0.5), pct(other.ms, other.n, 0.9),
	       pct(other.ms, other.n, 1.0));
	rv = 0;
out:
	if (other_on) {
		atomic_store(&other.stop, true);
		pthread_join(ot, NULL);
	}
	if (rv != 0)
		harness_dump_log(&h);
	hsamem_close(c);
	harness_fini(&h);
	return rv;
}
