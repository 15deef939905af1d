/*
 * bench_gpu_e2e.c: bench_gpu's end-to-end part (the measures are listed in bench_gpu.c): hsamemd
 * started on the store the GPU part measured, driven through libhsamem over ipc by one client, by
 * 16 at once and beside an appender; and the daemon's own append rate into a memory of its own.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gpu.h"
#include "harness.h"
#include "hsamem.h"

/* ---- end to end ---- */

static double
e2e_attend(struct hsamem *c, const char *user, struct qset *q, bool check)
{
	struct hsamem_attend a = {.n = q->n,
	                          .qr = q->qr,
	                          .qr_len = 0,
	                          .qa = q->qa,
	                          .positions = q->pos,
	                          .top_k = K_SEL};
	struct hsa_spec sp = bench_spec();
	a.qr_len = (size_t)q->n * sp.d_r;
	a.qa_len = (size_t)q->n * sp.h_q * sp.d_h;
	struct hsamem_attend_result *r = NULL;
	double t0 = now_s();
	int err = hsamem_attend(c, user, &a, &r);
	double dt = now_s() - t0;
	if (err != 0) {
		fprintf(stderr, "bench_gpu: hsamem_attend: %s (%s)\n", hsamem_strerror(err),
		        hsamem_last_message(c));
		exit(1);
	}
	(void)check;
	hsamem_result_free(r);
	return dt;
}

struct load {
	const char *url;
	struct qset *q;
	atomic_bool *stop;
	uint64_t done;
	bool appender;
	uint64_t n_chunks;
};

static void *
load_main(void *arg)
{
	struct load *l = arg;
	struct hsamem *c = NULL;
	struct hsa_spec sp = bench_spec();

	if (hsamem_open(l->url, &c) != 0)
		return NULL;
	if (l->appender) {
		size_t kvb = spec_kv_bytes(&sp) / 2, lb = spec_landmark_bytes(&sp);
		uint16_t *k = malloc(kvb), *v = malloc(kvb), *lm = malloc(lb);
		uint32_t tok[64];
		fill_kv(sp.dtype, k, kvb / 2);
		fill_kv(sp.dtype, v, kvb / 2);
		fill_f(sp.dtype, lm, sp.d_r, 2.0);
		for (int i = 0; i < 64; i++)
			tok[i] = (uint32_t)i + 1;
		while (!atomic_load(l->stop)) {
			struct hsamem_chunk_in ch = {k, kvb, v, kvb, lm, lb};
			struct hsamem_entry_in e = {.tokens = tok, .n_tokens = sp.S};
			if (hsamem_append(c, "bench", &e, 1, &ch, 1, HSAMEM_APPEND_NO_CREATE,
			                  NULL) != 0)
				break;
			l->done++;
		}
		free(k);
		free(v);
		free(lm);
	} else {
		for (uint64_t i = 0; !atomic_load(l->stop); i++) {
			e2e_attend(c, "bench", &l->q[i % N_SETS], false);
			l->done++;
		}
	}
	hsamem_close(c);
	return NULL;
}

static void
run_load(const char *url, struct qset *q, int n_q, bool appender, double secs, double *qps,
         double *aps)
{
	struct load l[17];
	pthread_t th[17];
	atomic_bool stop = false;
	int n = n_q + (appender ? 1 : 0);

	for (int i = 0; i < n; i++) {
		l[i] = (struct load){.url = url, .q = q, .stop = &stop, .appender = i == n_q};
		pthread_create(&th[i], NULL, load_main, &l[i]);
	}
	double t0 = now_s();
	struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	uint64_t nq = 0, na = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (l[i].appender)
			na += l[i].done;
		else
			nq += l[i].done;
	}
	double dt = now_s() - t0;
	*qps = nq / dt;
	*aps = na / dt;
}

static int
start_daemon(struct harness *h)
{
	static char hc[64];
	snprintf(hc, sizeof(hc), "host-cache=%" PRIu64, host_cache);
	h->extra[0] = "-o";
	h->extra[1] = hc;
	h->extra[2] = "-o";
	h->extra[3] = "workers=16";
	h->extra[4] = NULL;
	int err = harness_start(h);
	if (err != 0) {
		harness_dump_log(h);
		return err;
	}
	return 0;
}

int
e2e_part(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks)
{
	uint64_t tokens = n_chunks * sp->S;
	struct hsamem *c = NULL;
	struct hsamem_server *srv = NULL;
	struct qset q1[N_SETS], q32[N_SETS];
	double *t = malloc(sizeof(double) * (iters + 64));
	int err;

	if ((err = start_daemon(h)) != 0)
		return err;
	if ((err = hsamem_open(h->url, &c)) != 0 || (err = hsamem_ping(c, &srv)) != 0)
		return err;
	printf("  daemon backend: %s\n", srv->backend);
	const char *req = getenv("HSAMEM_REQUIRE_GPU");
	if (strncmp(srv->backend, "cuda", 4) != 0 && req != NULL && strcmp(req, "1") == 0) {
		fprintf(stderr, "bench_gpu: the daemon is not serving on the GPU\n");
		harness_dump_log(h);
		return 1;
	}
	hsamem_result_free(srv);
	for (int i = 0; i < N_SETS; i++) {
		qset_make(&q1[i], sp, 1, n_chunks);
		qset_make(&q32[i], sp, 32, n_chunks);
	}
	/* cold: the first call after a start */
	t[0] = e2e_attend(c, "bench", &q1[0], true) * 1e6;
	emit("e2e", tokens, "attend n=1 cold (after start)", t[0], "us");

	for (int i = 0; i < iters; i++) {
		double t0 = now_s();
		struct hsamem_server *s = NULL;
		hsamem_ping(c, &s);
		t[i] = (now_s() - t0) * 1e6;
		hsamem_result_free(s);
	}
	double ping = pct(t, iters, 50);
	emit("e2e", tokens, "ping round trip p50", ping, "us");
	for (int i = 0; i < N_SETS; i++)
		e2e_attend(c, "bench", &q1[i], false);
	for (int i = 0; i < iters; i++)
		t[i] = e2e_attend(c, "bench", &q1[i % N_SETS], false) * 1e6;
	emit("e2e", tokens, "attend n=1 warm p50", pct(t, iters, 50), "us");
	emit("e2e", tokens, "attend n=1 warm p99", pct(t, iters, 99), "us");
	int it32 = iters / 4 > 20 ? iters / 4 : 20;
	for (int i = 0; i < N_SETS; i++)
		e2e_attend(c, "bench", &q32[i], false);
	for (int i = 0; i < it32; i++)
		t[i] = e2e_attend(c, "bench", &q32[i % N_SETS], false) * 1e6;
	emit("e2e", tokens, "attend n=32 warm p50", pct(t, it32, 50), "us");
	emit("e2e", tokens, "attend n=32 warm p99", pct(t, it32, 99), "us");
	for (int i = 0; i < 20; i++) {
		qset_fresh(&q1[5], sp);
		t[i] = e2e_attend(c, "bench", &q1[5], false) * 1e6;
	}
	emit("e2e", tokens, "attend n=1 new queries p50", pct(t, 20, 50), "us");

	double qps, aps;
	run_load(h->url, q1, 16, false, 3.0, &qps, &aps);
	emit("e2e", tokens, "queries/s, 16 clients (n=1, warm)", qps, "1/s");
	run_load(h->url, q1, 16, true, 3.0, &qps, &aps);
	emit("e2e", tokens, "queries/s, 16 clients + 1 appender", qps, "1/s");
	emit("e2e", tokens, "appends/s (1 chunk each) meanwhile", aps, "1/s");
	hsamem_close(c);

	/* cold again: restart the daemon (nothing resident, the page cache warm) */
	harness_stop(h, SIGTERM);
	if ((err = start_daemon(h)) != 0)
		return err;
	hsamem_open(h->url, &c);
	t[0] = e2e_attend(c, "bench", &q1[7], false) * 1e6;
	emit("e2e", tokens, "attend n=1 cold (after restart)", t[0], "us");
	hsamem_close(c);
	harness_stop(h, SIGTERM);
	for (int i = 0; i < N_SETS; i++) {
		qset_free(&q1[i]);
		qset_free(&q32[i]);
	}
	free(t);
	return 0;
}

/* The daemon's own append rate for client chunks, 32 chunks (1 MiB for the client spec)
 * a request. */
int
append_rate(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks)
{
	struct hsamem *c = NULL;
	struct hsamem_spec hs = {.encoder = "client",
	                         .chunk_size = sp->S,
	                         .h_kv = sp->h_kv,
	                         .d_h = sp->d_h,
	                         .h_q = sp->h_q,
	                         .d_r = sp->d_r,
	                         .dtype = HSAMEM_F16,
	                         .weighting = HSAMEM_SOFTMAX,
	                         .top_k = K_SEL};
	size_t half = spec_kv_bytes(sp) / 2, lb = spec_landmark_bytes(sp);
	uint16_t *k = malloc(32 * half), *v = malloc(32 * half), *lm = malloc(32 * lb);
	uint32_t *tok = malloc(32 * sp->S * 4);
	int err;

	if ((err = start_daemon(h)) != 0)
		return err;
	hsamem_open(h->url, &c);
	if ((err = hsamem_create(c, "fill", &hs, NULL)) != 0)
		return err;
	fill_kv(sp->dtype, k, 32 * half / 2);
	fill_kv(sp->dtype, v, 32 * half / 2);
	fill_f(sp->dtype, lm, 32 * sp->d_r, 2.0);
	for (uint32_t i = 0; i < 32 * sp->S; i++)
		tok[i] = i + 1;
	struct hsamem_chunk_in ch[32];
	for (int i = 0; i < 32; i++)
		ch[i] = (struct hsamem_chunk_in){(char *)k + i * half, half,
		                                 (char *)v + i * half, half,
		                                 (char *)lm + i * lb,  lb};
	double t0 = now_s();
	for (uint64_t j = 0; j < n_chunks; j += 32) {
		struct hsamem_entry_in e = {.tokens = tok, .n_tokens = 32 * sp->S};
		if ((err = hsamem_append(c, "fill", &e, 1, ch, 32, HSAMEM_APPEND_NO_CREATE, NULL)))
			return err;
	}
	double dt = now_s() - t0;
	emit("e2e", n_chunks * sp->S, "daemon append rate (32 chunks/req)",
	     n_chunks * (2 * half + lb) / dt / 1e9, "GB/s");
	emit("e2e", n_chunks * sp->S, "daemon append, 16M tokens would take",
	     262144.0 / n_chunks * dt, "s");
	hsamem_close(c);
	harness_stop(h, SIGTERM);
	free(k);
	free(v);
	free(lm);
	free(tok);
	return 0;
}
