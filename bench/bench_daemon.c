/*
 * bench_daemon.c: hsamemd end to end over ipc, with the lexical encoder, on real English text.
 *
 *   append, 1 client, one entry a request   tokens/s and appends/s (every append a synced commit)
 *   append, 8 clients, one entry a request  the same, with group commit sharing the syncs
 *   append, 1 client, 64 entries a request  the fill rate up to the memory size
 *   query latency, 1 client                 p50 and p99 on a memory of --tokens tokens
 *   query throughput, 8 clients             queries/s
 *   ping, 1 client                          the round trip floor of the transport
 *   export and import, 1 client             MB/s of the stream of the query memory, through
 *                                           a temporary file (import checks every record)
 *
 * Usage: bench_daemon --corpus FILE [--tokens N] [--queries N] [--seconds S] [--json FILE]
 * The corpus has one entry per line (bench/corpus.sh makes one). The daemon is started on a
 * temporary socket and state directory, as the tests do.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "hsamem.h"

struct corpus {
	char **lines;
	size_t n;
};

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
load_corpus(const char *path, struct corpus *c)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t len;
	if (f == NULL) {
		perror(path);
		return -1;
	}
	memset(c, 0, sizeof(*c));
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (c->n == alloc) {
			alloc = alloc ? alloc * 2 : 4096;
			c->lines = realloc(c->lines, alloc * sizeof(char *));
		}
		c->lines[c->n++] = strdup(line);
	}
	free(line);
	fclose(f);
	return c->n > 0 ? 0 : -1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
quantile(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(double), cmp_double);
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i];
}

struct load {
	const char *url;
	const struct corpus *corpus;
	const char *user;
	int id, mode; /* 0: append one entry a request, 1: query */
	double seconds;
	uint64_t ops, errors;
};

static void *
load_main(void *arg)
{
	struct load *l = arg;
	struct hsamem *c;
	if (hsamem_open(l->url, &c) != 0) {
		l->errors++;
		return NULL;
	}
	double end = now_s() + l->seconds;
	size_t i = (size_t)l->id * 7919;
	while (now_s() < end) {
		const char *text = l->corpus->lines[i++ % l->corpus->n];
		if (l->mode == 0) {
			struct hsamem_entry_in e = {.text = text, .role = HSAMEM_ROLE_USER};
			struct hsamem_append_info ai;
			if (hsamem_append(c, l->user, &e, 1, NULL, 0, 0, &ai) == 0) {
				l->ops++;
			} else {
				l->errors++;
			}
		} else {
			struct hsamem_query_result *r = NULL;
			char q[160];
			snprintf(q, sizeof(q), "%.80s", text);
			if (hsamem_query_text(c, l->user, q, 8, &r) == 0)
				l->ops++;
			else
				l->errors++;
			hsamem_result_free(r);
		}
	}
	hsamem_close(c);
	return NULL;
}

/* Runs n clients for the given seconds; returns operations per second. */
static double
run_clients(const char *url, const struct corpus *corpus, const char *user, int mode, int n,
            double seconds, uint64_t *errors)
{
	struct load l[64];
	pthread_t t[64];
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		l[i] = (struct load){.url = url,
		                     .corpus = corpus,
		                     .user = user,
		                     .id = i,
		                     .mode = mode,
		                     .seconds = seconds};
		pthread_create(&t[i], NULL, load_main, &l[i]);
	}
	uint64_t ops = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ops += l[i].ops;
		*errors += l[i].errors;
	}
	return (double)ops / (now_s() - t0);
}

static uint64_t
memory_tokens(struct hsamem *c, const char *user)
{
	struct hsamem_stats *st = NULL;
	uint64_t n = 0;
	if (hsamem_stats(c, user, &st) == 0 && st->n_memories == 1)
		n = st->memories[0].tokens;
	hsamem_result_free(st);
	return n;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"corpus", required_argument, NULL, 'c'},
	                                     {"tokens", required_argument, NULL, 't'},
	                                     {"queries", required_argument, NULL, 'q'},
	                                     {"seconds", required_argument, NULL, 's'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *corpus_path = NULL, *json = NULL;
	uint64_t target = 1000000;
	int queries = 1000, opt;
	double seconds = 5;
	while ((opt = getopt_long(argc, argv, "c:t:q:s:j:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': corpus_path = optarg; break;
		case 't': target = strtoull(optarg, NULL, 10); break;
		case 'q': queries = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'j': json = optarg; break;
		default:
			fprintf(stderr,
			        "usage: bench_daemon --corpus FILE [--tokens N] [--queries N] "
			        "[--seconds S] [--json FILE]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	struct corpus corpus;
	if (corpus_path == NULL || load_corpus(corpus_path, &corpus) != 0) {
		fprintf(stderr, "bench_daemon: --corpus FILE with one entry per line is needed "
		                "(bench/corpus.sh makes one)\n");
		return 2;
	}
	struct harness h;
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	struct hsamem *c;
	uint64_t errors = 0;
	hsamem_open(h.url, &c);
	hsamem_set_timeout(c, 120000);

	/* appends, one entry a request */
	double a1 = run_clients(h.url, &corpus, "append1", 0, 1, seconds, &errors);
	double tok1 = (double)memory_tokens(c, "append1") / seconds;
	double a8 = run_clients(h.url, &corpus, "append8", 0, 8, seconds, &errors);
	double tok8 = (double)memory_tokens(c, "append8") / seconds;
	fprintf(stderr, "append: 1 client %.0f appends/s, 8 clients %.0f appends/s\n", a1, a8);

	/* fill the query memory in batches of 64 entries */
	struct hsamem_entry_in batch[64];
	size_t next = 0;
	uint64_t tokens = 0, batches = 0;
	double t0 = now_s();
	while (tokens < target) {
		for (int i = 0; i < 64; i++)
			batch[i] = (struct hsamem_entry_in){.text = corpus.lines[next++ % corpus.n],
			                                    .role = HSAMEM_ROLE_USER};
		struct hsamem_append_info ai;
		if (hsamem_append(c, "bench", batch, 64, NULL, 0, 0, &ai) != 0) {
			fprintf(stderr, "bench_daemon: append failed: %s\n",
			        hsamem_last_message(c));
			errors++;
			break;
		}
		tokens = ai.tokens;
		batches++;
	}
	double fill_s = now_s() - t0, fill_rate = (double)tokens / fill_s;
	fprintf(stderr, "fill: %llu tokens in %.1f s (%.0f tokens/s)\n", (unsigned long long)tokens,
	        fill_s, fill_rate);

	/* ping and query latency, one client */
	double *lat = malloc((size_t)(queries > 1000 ? queries : 1000) * sizeof(double));
	for (int i = 0; i < 1000; i++) {
		struct hsamem_server *s = NULL;
		double s0 = now_s();
		hsamem_ping(c, &s);
		lat[i] = (now_s() - s0) * 1e3;
		hsamem_result_free(s);
	}
	double ping50 = quantile(lat, 1000, 0.5);
	for (int i = 0; i < queries; i++) {
		char q[160];
		struct hsamem_query_result *r = NULL;
		snprintf(q, sizeof(q), "%.80s", corpus.lines[(size_t)i * 104729 % next]);
		double s0 = now_s();
		if (hsamem_query_text(c, "bench", q, 8, &r) != 0)
			errors++;
		lat[i] = (now_s() - s0) * 1e3;
		hsamem_result_free(r);
	}
	double q50 = quantile(lat, (size_t)queries, 0.5),
	       q99 = quantile(lat, (size_t)queries, 0.99);
	double qps8 = run_clients(h.url, &corpus, "bench", 1, 8, seconds, &errors);
	uint64_t chunks = tokens / 64;

	/* export the query memory to a file, and import it as another user */
	struct hsamem_transfer tx = {0}, rx = {0};
	FILE *xf = tmpfile();
	double e0 = now_s(), export_s = 0, import_s = 0;
	if (xf == NULL || hsamem_export(c, "bench", fileno(xf), &tx) != 0) {
		fprintf(stderr, "bench_daemon: export failed: %s\n", hsamem_last_message(c));
		errors++;
	} else {
		export_s = now_s() - e0;
		rewind(xf);
		e0 = now_s();
		if (hsamem_import(c, "bench-copy", fileno(xf), &rx) != 0) {
			fprintf(stderr, "bench_daemon: import failed: %s\n",
			        hsamem_last_message(c));
			errors++;
		}
		import_s = now_s() - e0;
	}
	if (xf != NULL)
		fclose(xf);
	double mb = (double)tx.bytes / 1e6;

	printf("| measure | value |\n|---|---|\n");
	printf("| append, 1 client, 1 entry/request | %.0f appends/s, %.0f tokens/s |\n", a1, tok1);
	printf("| append, 8 clients, 1 entry/request | %.0f appends/s, %.0f tokens/s |\n", a8,
	       tok8);
	printf("| append, 1 client, 64 entries/request | %.0f tokens/s |\n", fill_rate);
	printf("| memory for queries | %llu tokens, %llu chunks |\n", (unsigned long long)tokens,
	       (unsigned long long)chunks);
	printf("| query latency, 1 client, k=8 | p50 %.3f ms, p99 %.3f ms (%d queries) |\n", q50,
	       q99, queries);
	printf("| query throughput, 8 clients | %.0f queries/s |\n", qps8);
	printf("| ping round trip, 1 client | p50 %.3f ms |\n", ping50);
	printf("| export, 1 client | %.1f MB/s (%.1f MB in %.2f s) |\n",
	       export_s > 0 ? mb / export_s : 0, mb, export_s);
	printf("| import, 1 client | %.1f MB/s (%.1f MB in %.2f s) |\n",
	       import_s > 0 ? mb / import_s : 0, mb, import_s);
	printf("| errors | %llu |\n", (unsigned long long)errors);
	if (json != NULL) {
		FILE *f = fopen(json, "w");
		if (f != NULL) {
			fprintf(f,
			        "{\"append1_per_s\": %.1f, \"append1_tokens_per_s\": %.1f, "
			        "\"append8_per_s\": %.1f, \"append8_tokens_per_s\": %.1f, "
			        "\"fill_tokens_per_s\": %.1f, \"tokens\": %llu, "
			        "\"query_p50_ms\": %.4f, \"query_p99_ms\": %.4f, "
			        "\"query8_per_s\": %.1f, \"ping_p50_ms\": %.4f, "
			        "\"export_mb\": %.2f, \"export_s\": %.3f, \"import_s\": %.3f, "
			        "\"errors\": %llu}\n",
			        a1, tok1, a8, tok8, fill_rate, (unsigned long long)tokens, q50, q99,
			        qps8, ping50, mb, export_s, import_s, (unsigned long long)errors);
			fclose(f);
		}
	}
	free(lat);
	hsamem_close(c);
	harness_fini(&h);
	return errors == 0 ? 0 : 1;
}
