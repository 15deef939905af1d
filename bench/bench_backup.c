/*
 * bench_backup.c: a hot backup of a large store while the daemon serves (hsamemd(8), OPERATIONS).
 *
 *   fill           a client memory of client-spec chunks (32 KiB of K/V each) until data.mdb holds
 *                  --mib MiB, 32 chunks an append
 *   query, idle    attend (k 8, one token) latency p50/p99 for --seconds, nothing else running
 *   backup         hsamem_backup() of the whole store into a fresh directory: MB/s of the copy,
 *                  while one client attends without pause, whose p50/p99 during the copy are set
 *                  beside the idle ones
 *
 * Usage: bench_backup [--mib N] [--seconds S]   (defaults: 2048 MiB, 3 s)
 * The daemon is started on a temporary socket and state directory, as the tests do; the copy
 * goes into that directory too, so both are on one disk.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"
#include "hsamem.h"

#define S    64
#define H_KV 1
#define D_H  128
#define H_Q  16
#define D_R  128
#define PER  32 /* chunks an append */

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Latencies of one query loop, in ms. */
struct lat {
	double *ms;
	size_t n, cap;
};

static void
lat_add(struct lat *l, double ms)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 4096;
		if ((l->ms = realloc(l->ms, l->cap * sizeof(double))) == NULL)
			exit(1);
	}
	l->ms[l->n++] = ms;
}

static double
lat_pct(struct lat *l, double p)
{
	if (l->n == 0)
		return 0;
	qsort(l->ms, l->n, sizeof(double), cmp_double);
	size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
	return l->ms[i];
}

struct query_loop {
	const char *url;
	atomic_bool stop;
	struct lat lat;
	int err;
};

/* Attends with random queries until stop, recording each call's latency. */
static void *
query_main(void *arg)
{
	struct query_loop *q = arg;
	struct hsamem *c = NULL;
	float qr[H_KV * D_R], qa[H_Q * D_H];
	unsigned seed = 7;

	if ((q->err = hsamem_open(q->url, &c)) != 0)
		return NULL;
	while (!atomic_load(&q->stop)) {
		for (size_t i = 0; i < sizeof(qr) / sizeof(qr[0]); i++)
			qr[i] = (float)rand_r(&seed) / (float)RAND_MAX - 0.5f;
		for (size_t i = 0; i < sizeof(qa) / sizeof(qa[0]); i++)
			qa[i] = (float)rand_r(&seed) / (float)RAND_MAX - 0.5f;
		struct hsamem_attend a = {.n = 1,
		                          .qr = qr,
		                          .qr_len = sizeof(qr) / sizeof(qr[0]),
		                          .qa = qa,
		                          .qa_len = sizeof(qa) / sizeof(qa[0]),
		                          .top_k = 8};
		struct hsamem_attend_result *r = NULL;
		double t0 = now_s();
		if ((q->err = hsamem_attend(c, "big", &a, &r)) != 0)
			break;
		lat_add(&q->lat, (now_s() - t0) * 1e3);
		hsamem_result_free(r);
	}
	hsamem_close(c);
	return NULL;
}

static uint64_t
file_bytes(const char *dir, const char *name)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Appends chunks of random K/V until data.mdb reaches want bytes. */
static int
fill(struct hsamem *c, const struct harness *h, uint64_t want)
{
	size_t half = (size_t)S * H_KV * D_H * 2, lb = D_R * 2;
	uint16_t *k = malloc(PER * half), *v = malloc(PER * half), *lm = malloc(PER * lb);
	uint32_t *tok = malloc(PER * S * sizeof(uint32_t));
	struct hsamem_chunk_in ch[PER];
	uint64_t chunks = 0, bytes;
	unsigned seed = 1;
	int err = 0;
	double t0 = now_s();

	if (k == NULL || v == NULL || lm == NULL || tok == NULL)
		return -ENOMEM;
	/* f16 values in [-1, 1): random mantissas, exponents up to 0 */
	for (size_t i = 0; i < PER * half / 2; i++) {
		k[i] = (uint16_t)((rand_r(&seed) & 0x83ff) |
		                  (uint16_t)((rand_r(&seed) % 15) << 10));
		v[i] = (uint16_t)((rand_r(&seed) & 0x83ff) |
		                  (uint16_t)((rand_r(&seed) % 15) << 10));
	}
	for (size_t i = 0; i < PER * lb / 2; i++)
		lm[i] = (uint16_t)((rand_r(&seed) & 0x83ff) |
		                   (uint16_t)((rand_r(&seed) % 15) << 10));
	for (uint32_t i = 0; i < PER * S; i++)
		tok[i] = i + 1;
	for (int i = 0; i < PER; i++)
		ch[i] = (struct hsamem_chunk_in){(char *)k + i * half, half,
		                                 (char *)v + i * half, half,
		                                 (char *)lm + i * lb,  lb};
	while ((bytes = file_bytes(h->state, "data.mdb")) < want) {
		struct hsamem_entry_in e = {.tokens = tok, .n_tokens = PER * S};
		if ((err = hsamem_append(c, "big", &e, 1, ch, PER, HSAMEM_APPEND_NO_CREATE, NULL)))
			break;
		chunks += PER;
		if (chunks % (PER * 256) == 0)
			fprintf(stderr, "\rfill: %llu MiB of %llu",
			        (unsigned long long)(bytes >> 20),
			        (unsigned long long)(want >> 20));
	}
	double dt = now_s() - t0;
	fprintf(stderr, "\n");
	printf("fill: %llu chunks (%llu tokens), data.mdb %.0f MiB, %.1f s, %.0f MB/s of K/V\n",
	       (unsigned long long)chunks, (unsigned long long)chunks * S,
	       (double)file_bytes(h->state, "data.mdb") / 1048576.0, dt,
	       (double)chunks * (2 * half + lb) / dt / 1e6);
	free(k);
	free(v);
	free(lm);
	free(tok);
	return err;
}

/* Runs the query loop for secs seconds, or until *done becomes true when done is given. */
static int
measure(const char *url, double secs, struct lat *out, int (*during)(void *), void *arg)
{
	struct query_loop q = {.url = url};
	pthread_t th;
	int err = 0;

	atomic_init(&q.stop, false);
	pthread_create(&th, NULL, query_main, &q);
	if (during != NULL) {
		struct timespec warm = {0, 200 * 1000 * 1000};
		nanosleep(&warm, NULL);
		err = during(arg);
	} else {
		struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
		nanosleep(&ts, NULL);
	}
	atomic_store(&q.stop, true);
	pthread_join(th, NULL);
	*out = q.lat;
	return err != 0 ? err : q.err;
}

struct backup_call {
	const char *url;
	char path[600];
	struct hsamem_backup_info info;
	double secs;
};

static int
backup_run(void *arg)
{
	struct backup_call *b = arg;
	struct hsamem *c = NULL;
	int err = hsamem_open(b->url, &c);
	if (err != 0)
		return err;
	hsamem_set_timeout(c, 600000);
	double t0 = now_s();
	err = hsamem_backup(c, b->path, &b->info);
	b->secs = now_s() - t0;
	hsamem_close(c);
	return err;
}

int
main(int argc, char **argv)
{
	uint64_t mib = 2048;
	double secs = 3;
	static const struct option opts[] = {
	        {"mib", required_argument, NULL, 'm'},
	        {"seconds", required_argument, NULL, 's'},
	        {NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'm': mib = strtoull(optarg, NULL, 10); break;
		case 's': secs = atof(optarg); break;
		default: fprintf(stderr, "usage: bench_backup [--mib N] [--seconds S]\n"); return 2;
		}
	}

	struct harness h;
	struct hsamem *c = NULL;
	struct hsamem_spec hs = {.encoder = "client",
	                         .chunk_size = S,
	                         .h_kv = H_KV,
	                         .d_h = D_H,
	                         .h_q = H_Q,
	                         .d_r = D_R,
	                         .dtype = HSAMEM_F16,
	                         .weighting = HSAMEM_SOFTMAX,
	                         .top_k = 8};
	int err;
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		fprintf(stderr, "bench_backup: the daemon did not start\n");
		return 1;
	}
	if ((err = hsamem_open(h.url, &c)) != 0 ||
	    (err = hsamem_create(c, "big", &hs, NULL)) != 0 ||
	    (err = fill(c, &h, mib << 20)) != 0) {
		fprintf(stderr, "bench_backup: %s\n", hsamem_strerror(err));
		harness_fini(&h);
		return 1;
	}
	hsamem_close(c);

	struct lat idle = {0}, busy = {0};
	struct backup_call b = {.url = h.url};
	snprintf(b.path, sizeof(b.path), "%s/backup", h.dir);
	if ((err = measure(h.url, secs, &idle, NULL, NULL)) != 0 ||
	    (err = measure(h.url, 0, &busy, backup_run, &b)) != 0) {
		fprintf(stderr, "bench_backup: %s\n", hsamem_strerror(err));
		harness_fini(&h);
		return 1;
	}
	printf("backup: %.0f MiB copied in %.2f s (daemon: %llu ms): %.0f MB/s\n",
	       (double)b.info.bytes / 1048576.0, b.secs, (unsigned long long)b.info.ms,
	       (double)b.info.bytes / b.secs / 1e6);
	double i50 = lat_pct(&idle, 0.5), i99 = lat_pct(&idle, 0.99);
	double b50 = lat_pct(&busy, 0.5), b99 = lat_pct(&busy, 0.99);
	printf("attend (k 8, 1 token), idle:          p50 %.3f ms, p99 %.3f ms (%zu calls)\n", i50,
	       i99, idle.n);
	printf("attend (k 8, 1 token), during backup: p50 %.3f ms, p99 %.3f ms (%zu calls): "
	       "p99 x%.2f\n",
	       b50, b99, busy.n, i99 > 0 ? b99 / i99 : 0);
	free(idle.ms);
	free(busy.ms);
	harness_stop(&h, SIGTERM);
	harness_fini(&h);
	return 0;
}
