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

/* What a run measured: the table and the JSON are made from it. */
struct figures {
	double a1, tok1, a8, tok8; /* appends/s and tokens/s of 1 and 8 appending clients */
	double fill_rate;          /* tokens/s of the fill, 64 entries a request */
	double store_mb;           /* what the fill added to the store */
	uint64_t tokens;           /* in the query memory */
	size_t lines;              /* corpus lines appended to it */
	double ping50, q50, q99;   /* ms */
	double q_first;            /* ms: the first query, which makes the word index */
	double qps8;               /* queries/s of 8 clients */
	double mb, export_s, import_s;
	uint64_t errors;
};

/* Appends, one entry a request, from 1 client and then 8, each to a user of its own. */
static void
measure_appends(const char *url, struct hsamem *c, const struct corpus *corpus, double seconds,
                struct figures *f)
{
	f->a1 = run_clients(url, corpus, "append1", 0, 1, seconds, &f->errors);
	f->tok1 = (double)memory_tokens(c, "append1") / seconds;
	f->a8 = run_clients(url, corpus, "append8", 0, 8, seconds, &f->errors);
	f->tok8 = (double)memory_tokens(c, "append8") / seconds;
	fprintf(stderr, "append: 1 client %.0f appends/s, 8 clients %.0f appends/s\n", f->a1,
	        f->a8);
}

/* The bytes of the daemon's store in use (0 where stats fail). */
static uint64_t
store_used(struct hsamem *c)
{
	struct hsamem_stats *s = NULL;
	uint64_t used = hsamem_stats(c, NULL, &s) == 0 && s != NULL ? s->store_map_used : 0;
	hsamem_result_free(s);
	return used;
}

/* Fills the query memory "bench" up to target tokens, in batches of 64 entries, and measures
 * how much the store grew by. */
static void
fill_memory(struct hsamem *c, const struct corpus *corpus, uint64_t target, struct figures *f)
{
	struct hsamem_entry_in batch[64];
	size_t next = 0;
	uint64_t tokens = 0, batches = 0, used0 = store_used(c);
	double t0 = now_s();
	while (tokens < target) {
		for (int i = 0; i < 64; i++)
			batch[i] =
			        (struct hsamem_entry_in){.text = corpus->lines[next++ % corpus->n],
			                                 .role = HSAMEM_ROLE_USER};
		struct hsamem_append_info ai;
		if (hsamem_append(c, "bench", batch, 64, NULL, 0, 0, &ai) != 0) {
			fprintf(stderr, "bench_daemon: append failed: %s\n",
			        hsamem_last_message(c));
			f->errors++;
			break;
		}
		tokens = ai.tokens;
		batches++;
	}
	double fill_s = now_s() - t0;
	f->fill_rate = (double)tokens / fill_s;
	f->tokens = tokens;
	f->lines = next;
	f->store_mb = (double)(store_used(c) - used0) / 1e6;
	fprintf(stderr, "fill: %llu tokens in %.1f s (%.0f tokens/s), store %.1f MB more\n",
	        (unsigned long long)tokens, fill_s, f->fill_rate, f->store_mb);
}

/* Ping and query latency of one client: 1000 pings, then queries queries of the memory. */
static void
measure_latency(struct hsamem *c, const struct corpus *corpus, int queries, struct figures *f)
{
	double *lat = malloc((size_t)(queries > 1000 ? queries : 1000) * sizeof(double));
	for (int i = 0; i < 1000; i++) {
		struct hsamem_server *s = NULL;
		double s0 = now_s();
		hsamem_ping(c, &s);
		lat[i] = (now_s() - s0) * 1e3;
		hsamem_result_free(s);
	}
	f->ping50 = quantile(lat, 1000, 0.5);
	/* questions from the lines the memory holds (the corpus, cycled, where it filled it all) */
	size_t held = f->lines < corpus->n ? f->lines : corpus->n;
	for (int i = 0; i < queries; i++) {
		char q[160];
		struct hsamem_query_result *r = NULL;
		snprintf(q, sizeof(q), "%.80s", corpus->lines[(size_t)i * 104729 % held]);
		double s0 = now_s();
		if (hsamem_query_text(c, "bench", q, 8, &r) != 0)
			f->errors++;
		lat[i] = (now_s() - s0) * 1e3;
		hsamem_result_free(r);
	}
	f->q_first = queries > 0 ? lat[0] : 0;
	f->q50 = quantile(lat, (size_t)queries, 0.5);
	f->q99 = quantile(lat, (size_t)queries, 0.99);
	free(lat);
}

/* Exports the query memory to a temporary file and imports it as another user. */
static void
measure_transfer(struct hsamem *c, struct figures *f)
{
	struct hsamem_transfer tx = {0}, rx = {0};
	FILE *xf = tmpfile();
	double e0 = now_s();
	if (xf == NULL || hsamem_export(c, "bench", fileno(xf), &tx) != 0) {
		fprintf(stderr, "bench_daemon: export failed: %s\n", hsamem_last_message(c));
		f->errors++;
	} else {
		f->export_s = now_s() - e0;
		rewind(xf);
		e0 = now_s();
		if (hsamem_import(c, "bench-copy", fileno(xf), &rx) != 0) {
			fprintf(stderr, "bench_daemon: import failed: %s\n",
			        hsamem_last_message(c));
			f->errors++;
		}
		f->import_s = now_s() - e0;
	}
	if (xf != NULL)
		fclose(xf);
	f->mb = (double)tx.bytes / 1e6;
}

static void
print_table(const struct figures *f, int queries)
{
	uint64_t chunks = f->tokens / 64;

	printf("| measure | value |\n|---|---|\n");
	printf("| append, 1 client, 1 entry/request | %.0f appends/s, %.0f tokens/s |\n", f->a1,
	       f->tok1);
	printf("| append, 8 clients, 1 entry/request | %.0f appends/s, %.0f tokens/s |\n", f->a8,
	       f->tok8);
	printf("| append, 1 client, 64 entries/request | %.0f tokens/s |\n", f->fill_rate);
	printf("| memory for queries | %llu tokens, %llu chunks |\n", (unsigned long long)f->tokens,
	       (unsigned long long)chunks);
	printf("| store used by it | %.1f MB, %.0f bytes a token |\n", f->store_mb,
	       f->tokens ? f->store_mb * 1e6 / (double)f->tokens : 0);
	printf("| query latency, 1 client, k=8 | p50 %.3f ms, p99 %.3f ms (%d queries) |\n", f->q50,
	       f->q99, queries);
	printf("| first query after the fill (makes the word index) | %.3f ms |\n", f->q_first);
	printf("| query throughput, 8 clients | %.0f queries/s |\n", f->qps8);
	printf("| ping round trip, 1 client | p50 %.3f ms |\n", f->ping50);
	printf("| export, 1 client | %.1f MB/s (%.1f MB in %.2f s) |\n",
	       f->export_s > 0 ? f->mb / f->export_s : 0, f->mb, f->export_s);
	printf("| import, 1 client | %.1f MB/s (%.1f MB in %.2f s) |\n",
	       f->import_s > 0 ? f->mb / f->import_s : 0, f->mb, f->import_s);
	printf("| errors | %llu |\n", (unsigned long long)f->errors);
}

static void
write_json(const char *json, const struct figures *f)
{
	FILE *out = fopen(json, "w");
	if (out == NULL)
		return;
	fprintf(out,
	        "{\"append1_per_s\": %.1f, \"append1_tokens_per_s\": %.1f, "
	        "\"append8_per_s\": %.1f, \"append8_tokens_per_s\": %.1f, "
	        "\"fill_tokens_per_s\": %.1f, \"tokens\": %llu, "
	        "\"query_p50_ms\": %.4f, \"query_p99_ms\": %.4f, \"query_first_ms\": %.4f, "
	        "\"query8_per_s\": %.1f, \"ping_p50_ms\": %.4f, "
	        "\"export_mb\": %.2f, \"export_s\": %.3f, \"import_s\": %.3f, "
	        "\"errors\": %llu}\n",
	        f->a1, f->tok1, f->a8, f->tok8, f->fill_rate, (unsigned long long)f->tokens, f->q50,
	        f->q99, f->q_first, f->qps8, f->ping50, f->mb, f->export_s, f->import_s,
	        (unsigned long long)f->errors);
	fclose(out);
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
	struct figures f = {0};
	hsamem_open(h.url, &c);
	hsamem_set_timeout(c, 120000);

	measure_appends(h.url, c, &corpus, seconds, &f);
	fill_memory(c, &corpus, target, &f);
	measure_latency(c, &corpus, queries, &f);
	f.qps8 = run_clients(h.url, &corpus, "bench", 1, 8, seconds, &f.errors);
	measure_transfer(c, &f);

	print_table(&f, queries);
	if (json != NULL)
		write_json(json, &f);
	hsamem_close(c);
	harness_fini(&h);
	return f.errors == 0 ? 0 : 1;
}
