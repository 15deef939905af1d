/*
 * bench_hsa_daemon.c: hsamemd end to end with the learned encoder hsa-small, over ipc, on real
 * English text (bench/corpus.sh).
 *
 *   ingest, 1 client     tokens/s into one memory, appends of --batch entries, up to --tokens
 *   ingest, N clients    tokens/s into --clients memories at once (default 2; --tokens / 4 each)
 *   query, 1 client      p50 and p99 over --queries questions on the --tokens memory
 *   ping, 1 client       p50 and p99 of as many pings: the request's way in and out alone
 *   query, N clients     --clients connections asking 4 x --queries questions of the --tokens
 *                        memory between them at once: queries/s together, p50 and p99 of each
 *                        query; two rounds, the second on a daemon warmed by the first
 *   query encoding       the model's part of a query alone (encode_query_ctx in this process:
 *                        the 64-token context and the question through the model), p50
 *   query, CPU           with --cpu-cores N: the same queries on the same store after the daemon
 *                        is restarted on its CPU backend (gpu=off), held to the first N cores of
 *                        this process's set; for a CPU figure of a memory that the GPU filled in
 *                        seconds where the CPU would take many minutes
 *   stages               with --trace: the daemon logs at debug level, and each query's stages
 *                        (ops_query.c: received, prepare, question, lexical, learned, attend,
 *                        scores, reply) are reported as p50, p90, p99 and the largest from its
 *                        log, with the device caches' hits and misses over the same queries
 *
 * Usage: bench_hsa_daemon --corpus FILE [--tokens N] [--queries N] [--batch N] [--clients N]
 *                         [--cpu-cores N] [--trace]
 * HSAMEM_TOP_SRCDIR (default .) locates models/hsa-small for the in-process measure; the daemon
 * finds it itself (run from the build tree). Timing figures belong in bench/RESULTS.md.
 */
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "encoder.h"
#include "harness.h"
#include "hsamem.h"

struct ingest {
	const char *url, *user;
	size_t from, batch;
	uint64_t tokens, want;
	double seconds;
	int failed;
};

static void *
ingest_main(void *arg)
{
	struct ingest *g = arg;
	struct hsamem *c;
	struct hsamem_spec spec = {.encoder = "hsa-small"};
	struct hsamem_entry_in in[256];
	if (hsamem_open(g->url, &c) != 0 || hsamem_create(c, g->user, &spec, NULL) != 0) {
		g->failed = 1;
		return NULL;
	}
	hsamem_set_timeout(c, -1);
	double t0 = now_s();
	for (size_t i = g->from; g->tokens < g->want && !g->failed;) {
		size_t n = 0;
		for (; n < g->batch && n < 256; n++, i++)
			in[n] = (struct hsamem_entry_in){.text = lines[i % n_lines]};
		struct hsamem_append_info ai;
		if (hsamem_append(c, g->user, in, n, NULL, 0, 0, &ai) != 0) {
			fprintf(stderr, "append: %s\n", hsamem_last_message(c));
			g->failed = 1;
		}
		g->tokens = ai.tokens;
	}
	g->seconds = now_s() - t0;
	hsamem_close(c);
	return NULL;
}

static double
ingest(const char *url, const char *const *users, int n, uint64_t want, size_t batch)
{
	struct ingest *g = calloc((size_t)n, sizeof(*g));
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	uint64_t tokens = 0;
	double worst = 0;
	int failed = 0;
	if (g == NULL || t == NULL) {
		free(g);
		free(t);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		g[i] = (struct ingest){url, users[i], (size_t)i * 50021, batch, 0, want, 0, 0};
		pthread_create(&t[i], NULL, ingest_main, &g[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		failed |= g[i].failed;
		tokens += g[i].tokens;
		worst = g[i].seconds > worst ? g[i].seconds : worst;
	}
	free(g);
	free(t);
	return failed ? -1 : (double)tokens / worst;
}

/* A question from a corpus line: its first eight words, at most 40 bytes of them. */
static void
question(size_t i, char *q, size_t len)
{
	const char *s = lines[(i * 7919) % n_lines];
	size_t words = 0, n = 0;
	for (; s[n] != '\0' && n < 40; n++)
		if (s[n] == ' ' && ++words == 8)
			break;
	snprintf(q, len, "What does the text say about %.*s?", (int)n, s);
}

/* Questions from..from+n-1 asked of user's memory on c, each one's latency into ms[i]; the first
 * failures said on stderr. Returns the count of failed queries. */
static size_t
ask(struct hsamem *c, const char *user, size_t from, size_t n, double *ms)
{
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		char q[256];
		struct hsamem_query_result *r = NULL;
		question(from + i, q, sizeof(q));
		double t0 = now_s();
		if (hsamem_query_text(c, user, q, 8, &r) != 0 && failed++ < 3)
			fprintf(stderr, "query: %s\n", hsamem_last_message(c));
		ms[i] = (now_s() - t0) * 1e3;
		hsamem_result_free(r);
	}
	return failed;
}

static void
query_latency(const char *url, const char *user, size_t nq)
{
	struct hsamem *c;
	double *v = calloc(nq, sizeof(double));
	if (v == NULL || hsamem_open(url, &c) != 0)
		return;
	size_t failed = ask(c, user, 0, nq, v);
	double p50 = pct(v, nq, 0.5), p99 = pct(v, nq, 0.99);
	printf("query, 1 client, k 8: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu queries, %zu "
	       "failed)\n",
	       p50, p99, v[nq - 1], nq, failed);
	/* the request's way in and out alone: a ping does no work in the daemon */
	for (size_t i = 0; i < nq; i++) {
		struct hsamem_server *srv = NULL;
		double t0 = now_s();
		hsamem_ping(c, &srv);
		v[i] = (now_s() - t0) * 1e3;
		hsamem_result_free(srv);
	}
	printf("ping, 1 client: p50 %.3f ms, p99 %.3f ms\n", pct(v, nq, 0.5), pct(v, nq, 0.99));
	hsamem_close(c);
	free(v);
}

struct asker {
	const char *url, *user;
	size_t from, n; /* questions from..from+n-1 */
	double *ms;     /* n latencies */
	size_t failed;
};

static void *
asker_main(void *arg)
{
	struct asker *a = arg;
	struct hsamem *c;
	if (hsamem_open(a->url, &c) != 0) {
		a->failed = a->n;
		return NULL;
	}
	a->failed = ask(c, a->user, a->from, a->n, a->ms);
	hsamem_close(c);
	return NULL;
}

/* nq questions asked of one memory by n clients at once. */
static void
query_together(const char *url, const char *user, size_t nq, int n, int round)
{
	struct asker *a = calloc((size_t)n, sizeof(*a));
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	double *v = calloc(nq, sizeof(double));
	size_t failed = 0, per = nq / (size_t)n;
	if (a == NULL || t == NULL || v == NULL || per == 0)
		goto out;
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		a[i] = (struct asker){url, user, (size_t)i * per, per, v + (size_t)i * per, 0};
		pthread_create(&t[i], NULL, asker_main, &a[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		failed += a[i].failed;
	}
	double secs = now_s() - t0;
	size_t done = per * (size_t)n;
	printf("query, %d clients, one memory, round %d: %.0f queries/s together, p50 %.2f ms, p99 "
	       "%.2f ms (%zu queries, %zu failed)\n",
	       n, round, (double)done / secs, pct(v, done, 0.5), pct(v, done, 0.99), done, failed);
out:
	free(a);
	free(t);
	free(v);
}

/* The stages of the queries that the daemon logged (--trace) from byte from of its log on:
 * "query: 'USER' stages (ms): NAME MS NAME MS ...", p50, p90, p99 and the largest of each name. */
static void
stage_report(const char *log, long from)
{
	enum { NAMES = 12, MAX = 4096 };
	char names[NAMES][16], line[1024];
	double *v[NAMES] = {0};
	size_t n[NAMES] = {0}, n_names = 0;
	FILE *f = fopen(log, "r");
	if (f == NULL || fseek(f, from, SEEK_SET) != 0) {
		if (f != NULL)
			fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "stages (ms):");
		if (p == NULL)
			continue;
		p += strlen("stages (ms):");
		char name[16];
		double ms;
		int used;
		while (sscanf(p, " %15s %lf%n", name, &ms, &used) == 2) {
			p += used;
			size_t i = 0;
			while (i < n_names && strcmp(names[i], name) != 0)
				i++;
			if (i == n_names) {
				if (n_names == NAMES)
					continue;
				snprintf(names[n_names++], sizeof(names[0]), "%s", name);
			}
			if (v[i] == NULL && (v[i] = calloc(MAX, sizeof(double))) == NULL)
				continue;
			if (n[i] < MAX)
				v[i][n[i]++] = ms;
		}
	}
	fclose(f);
	printf("  stages in the daemon (ms), p50 / p90 / p99 / max:");
	for (size_t i = 0; i < n_names; i++) {
		printf(" %s %.3f / %.3f / %.3f / %.3f", names[i], pct(v[i], n[i], 0.5),
		       pct(v[i], n[i], 0.9), pct(v[i], n[i], 0.99), pct(v[i], n[i], 1.0));
		free(v[i]);
	}
	printf("\n");
}

/* The lines of the daemon's log that contain what. */
static void
log_lines(const char *log, const char *what)
{
	char line[1024];
	FILE *f = fopen(log, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, what) != NULL)
			printf("  daemon: %s", line);
	if (f != NULL)
		fclose(f);
}

static long
log_size(const struct harness *h)
{
	FILE *f = fopen(h->log, "r");
	long n = f != NULL && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
	if (f != NULL)
		fclose(f);
	return n;
}

/* Where the daemon stood before some queries (--trace): its log's size and its device caches'
 * counters (landmark hits and misses, chunk hits and misses; 0 on the CPU backend). */
struct mark {
	long log;
	uint64_t cache[4];
	bool have_cache;
};

static bool
cache_counts(const char *url, uint64_t v[4])
{
	struct hsamem *c;
	struct hsamem_stats *s = NULL;
	if (hsamem_open(url, &c) != 0)
		return false;
	bool ok = hsamem_stats(c, NULL, &s) == 0;
	if (ok) {
		v[0] = s->landmark_hits;
		v[1] = s->landmark_misses;
		v[2] = s->chunk_hits;
		v[3] = s->chunk_misses;
	}
	hsamem_result_free(s);
	hsamem_close(c);
	return ok;
}

static struct mark
mark_take(const struct harness *h)
{
	struct mark m = {.log = log_size(h)};
	m.have_cache = cache_counts(h->url, m.cache);
	return m;
}

/* The stages of the queries since m, and what they did to the device caches: a tail that comes
 * with misses is the chunks' and landmarks' first way onto the device. */
static void
mark_report(const struct harness *h, const struct mark *m)
{
	uint64_t now[4];
	stage_report(h->log, m->log);
	if (m->have_cache && cache_counts(h->url, now))
		printf("  device caches over these queries: landmarks %llu hits, %llu misses; "
		       "chunks %llu hits, %llu misses\n",
		       (unsigned long long)(now[0] - m->cache[0]),
		       (unsigned long long)(now[1] - m->cache[1]),
		       (unsigned long long)(now[2] - m->cache[2]),
		       (unsigned long long)(now[3] - m->cache[3]));
}

/* The daemon restarted on the same store on its CPU backend, held to the first n cores of this
 * process's set (the daemon's threads are started after the affinity is set, and inherit it). */
static int
restart_on_cpu(struct harness *h, int n, bool trace)
{
	cpu_set_t all, some;
	if (sched_getaffinity(0, sizeof(all), &all) != 0)
		return -1;
	CPU_ZERO(&some);
	for (int c = 0, k = 0; c < CPU_SETSIZE && k < n; c++)
		if (CPU_ISSET(c, &all)) {
			CPU_SET(c, &some);
			k++;
		}
	if (harness_stop(h, SIGTERM) != 0 || sched_setaffinity(0, sizeof(some), &some) != 0)
		return -1;
	static const char *cpu[] = {"-o", "gpu=off", "-v", NULL};
	memcpy(h->extra, cpu, sizeof(cpu));
	if (!trace)
		h->extra[2] = NULL;
	int ret = harness_start(h);
	sched_setaffinity(0, sizeof(all), &all);
	return ret;
}

/* The model's share of a query, in this process: the window's forward pass alone. */
static void
query_encoding(size_t nq)
{
	char dir[1024], why[600];
	const char *top = getenv("HSAMEM_TOP_SRCDIR");
	snprintf(dir, sizeof(dir), "%s/models/hsa-small", top ? top : ".");
	if (enc_load(dir, why, sizeof(why)) != 0) {
		fprintf(stderr, "%s\n", why);
		return;
	}
	const struct enc_ops *enc = enc_find("hsa-small");
	struct hsa_spec spec;
	struct enc_token *ctx_t = NULL, *q_t = NULL;
	size_t n_ctx = 0, n_q = 0;
	uint32_t ctx[64], q[64];
	float qr[128], qa[512];
	double *v = calloc(nq, sizeof(double));
	enc->default_spec(&spec);
	for (size_t i = 0; v != NULL && i < nq; i++) {
		char text[256];
		question(i, text + 1, sizeof(text) - 1);
		text[0] = ' ';
		const char *s = lines[i % n_lines];
		enc->tokenize(s, strlen(s), &ctx_t, &n_ctx);
		enc->tokenize(text, strlen(text), &q_t, &n_q);
		n_ctx = n_ctx < 64 ? n_ctx : 64;
		n_q = n_q < 62 ? n_q : 62;
		for (size_t j = 0; j < n_ctx; j++)
			ctx[j] = ctx_t[j].id;
		for (size_t j = 0; j < n_q; j++)
			q[j] = q_t[j].id;
		double t0 = now_s();
		enc->encode_query_ctx(&spec, ctx, n_ctx, q, n_q, qr, qa, NULL);
		v[i] = (now_s() - t0) * 1e3;
		free(ctx_t);
		free(q_t);
	}
	if (v != NULL) {
		double p50 = pct(v, nq, 0.5), p99 = pct(v, nq, 0.99);
		printf("query encoding alone (model forward, 1 thread): p50 %.1f ms, p99 %.1f ms\n",
		       p50, p99);
	}
	free(v);
	enc_unload();
}

int
main(int argc, char **argv)
{
	const char *corpus = NULL;
	uint64_t tokens = 65536;
	size_t queries = 200, batch = 32;
	int clients = 2, cpu_cores = 0;
	bool trace = false;
	enc_prepare_cpu(argv); /* for the query encoding in this process */
	static const struct option opts[] = {{"corpus", required_argument, NULL, 'c'},
	                                     {"tokens", required_argument, NULL, 't'},
	                                     {"queries", required_argument, NULL, 'q'},
	                                     {"batch", required_argument, NULL, 'b'},
	                                     {"clients", required_argument, NULL, 'n'},
	                                     {"cpu-cores", required_argument, NULL, 'C'},
	                                     {"trace", no_argument, NULL, 'T'},
	                                     {NULL, 0, NULL, 0}};
	for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		if (o == 'c')
			corpus = optarg;
		else if (o == 't')
			tokens = strtoull(optarg, NULL, 10);
		else if (o == 'q')
			queries = strtoull(optarg, NULL, 10);
		else if (o == 'b')
			batch = strtoull(optarg, NULL, 10);
		else if (o == 'n')
			clients = atoi(optarg);
		else if (o == 'C')
			cpu_cores = atoi(optarg);
		else if (o == 'T')
			trace = true;
		else
			return 2;
	}
	if (corpus == NULL || bench_read_lines(corpus) != 0 || queries == 0 || batch == 0 ||
	    clients < 1 || clients > 64 || cpu_cores < 0) {
		fprintf(stderr, "usage: bench_hsa_daemon --corpus FILE [--tokens N] [--queries N] "
		                "[--batch N] [--clients N] [--cpu-cores N] [--trace]\n");
		return 2;
	}
	struct harness h;
	int ok = harness_init(&h) == 0;
	if (ok && trace)
		h.extra[0] = "-v";
	if (!ok || harness_start(&h) != 0) {
		fprintf(stderr, "cannot start hsamemd\n");
		return 1;
	}
	const char *one[] = {"q"}, *many[64];
	char names[64][8];
	for (int i = 0; i < clients; i++) {
		snprintf(names[i], sizeof(names[i]), "w%d", i + 1);
		many[i] = names[i];
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	double r1 = ingest(h.url, one, 1, tokens, batch);
	printf("ingest, 1 client, %zu entries an append: %.0f tokens/s (%llu tokens)\n", batch, r1,
	       (unsigned long long)tokens);
	double r2 = ingest(h.url, many, clients, tokens / 4, batch);
	printf("ingest, %d clients, %d memories: %.0f tokens/s together\n", clients, clients, r2);
	struct mark m = trace ? mark_take(&h) : (struct mark){0};
	query_latency(h.url, "q", queries);
	if (trace)
		mark_report(&h, &m);
	if (clients > 1) /* twice: a tail that the second round lacks is the daemon warming up */
		for (int round = 1; round <= 2; round++) {
			if (trace)
				m = mark_take(&h);
			query_together(h.url, "q", queries * 4, clients, round);
			if (trace)
				mark_report(&h, &m);
		}
	if (trace) /* when the pool of GPU query scratches was ready (hsa_small.c) */
		log_lines(h.log, "query scratches made");
	if (cpu_cores > 0) {
		if (restart_on_cpu(&h, cpu_cores, trace) != 0) {
			fprintf(stderr, "cannot restart hsamemd on the CPU\n");
			harness_fini(&h);
			return 1;
		}
		printf("the daemon restarted on its CPU backend, %d cores:\n", cpu_cores);
		if (trace)
			m = mark_take(&h);
		query_latency(h.url, "q", queries);
		if (trace)
			mark_report(&h, &m);
	}
	harness_fini(&h);
	query_encoding(queries);
	return r1 > 0 && r2 > 0 ? 0 : 1;
}
