/*
 * churn.c: many threads opening and closing connections to the real hsamemd at once. Each thread
 * loops for the set time: hsamem_open, a ping on one loop in two (a handle that never connected
 * is closed too), hsamem_close. A monitor thread watches every thread's current step: one that
 * stays in a call longer than --hang-ms is a hang (the run ends at once with the step named;
 * HSAMEM_STRESS_GDB=1 prints this process's stacks first). At the end the descriptors of this
 * process and of the daemon must be back to at most their counts before the run (within 10 s),
 * and the daemon must still answer and exit on SIGTERM within 5 s.
 *
 *   churn [--threads N] [--seconds S] [--hang-ms MS]
 *
 * Prints one summary line (opens, pings, closes, the slowest close, descriptors); exits 1 on any
 * violation. The defaults make the short run of `make check`; tests/stress/README.md gives the
 * long one.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"
#include "stress.h"

#define MAX_THREADS 1024

enum step { STEP_IDLE, STEP_OPEN, STEP_PING, STEP_CLOSE, STEP_DONE };
static const char *const step_names[] = {"idle", "hsamem_open", "hsamem_ping", "hsamem_close",
                                         "done"};

struct worker {
	pthread_t thread;
	const char *url;
	int64_t until_ms;
	atomic_int step;
	atomic_llong since_ms;
	unsigned long opens, pings, ping_errors, closes;
	int64_t slowest_close_ms;
	uint64_t rng;
	char first_error[200];
};

static void
set_step(struct worker *w, enum step s)
{
	atomic_store(&w->since_ms, st_now_ms());
	atomic_store(&w->step, s);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	while (st_now_ms() < w->until_ms) {
		struct hsamem *h = NULL;
		set_step(w, STEP_OPEN);
		if (hsamem_open(w->url, &h) != 0)
			continue;
		w->opens++;
		if (st_below(&w->rng, 2) == 0) {
			struct hsamem_server *s = NULL;
			set_step(w, STEP_PING);
			hsamem_set_timeout(h, 10000);
			if (hsamem_ping(h, &s) == 0) {
				w->pings++;
				hsamem_result_free(s);
			} else if (w->ping_errors++ == 0) {
				snprintf(w->first_error, sizeof(w->first_error), "%s",
				         hsamem_last_message(h));
			}
		}
		set_step(w, STEP_CLOSE);
		int64_t t0 = st_now_ms();
		hsamem_close(h);
		int64_t dt = st_now_ms() - t0;
		if (dt > w->slowest_close_ms)
			w->slowest_close_ms = dt;
		w->closes++;
	}
	set_step(w, STEP_DONE);
	return NULL;
}

static int
own_fds(void)
{
	struct st_proc p;
	return st_proc_sample(getpid(), &p) == 0 ? p.fds : -1;
}

/* Watches the workers until they are all done; returns the index of one that hung, or -1. */
static int
monitor(struct worker *w, unsigned n, unsigned hang_ms)
{
	for (;;) {
		unsigned done = 0;
		for (unsigned i = 0; i < n; i++) {
			int s = atomic_load(&w[i].step);
			if (s == STEP_DONE) {
				done++;
				continue;
			}
			if (s != STEP_IDLE && st_now_ms() - atomic_load(&w[i].since_ms) > hang_ms)
				return (int)i;
		}
		if (done == n)
			return -1;
		st_sleep_ms(100);
	}
}

static int
check_daemon(struct harness *h, int fds_before)
{
	struct st_proc p = {0};
	int64_t until = st_now_ms() + 10000;
	while (st_proc_sample(h->pid, &p) == 0 && p.fds > fds_before && st_now_ms() < until)
		st_sleep_ms(100);
	if (p.fds > fds_before) {
		fprintf(stderr, "churn: the daemon holds %d descriptors, %d before the run\n",
		        p.fds, fds_before);
		return 1;
	}
	struct hsamem *c = NULL;
	struct hsamem_server *s = NULL;
	int ret = hsamem_open(h->url, &c);
	if (ret == 0)
		ret = hsamem_ping(c, &s);
	hsamem_result_free(s);
	hsamem_close(c);
	if (ret != 0) {
		fprintf(stderr, "churn: the daemon no longer answers: %s\n", hsamem_strerror(ret));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"threads", required_argument, NULL, 't'},
	        {"seconds", required_argument, NULL, 's'},
	        {"hang-ms", required_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	unsigned threads = 32, seconds = 4, hang_ms = 10000;
	int opt, bad = 0;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': seconds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'H': hang_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr,
			        "usage: churn [--threads N] [--seconds S] [--hang-ms MS]\n");
			return 2;
		}
	}
	if (threads < 1 || threads > MAX_THREADS || seconds < 1) {
		fprintf(stderr, "churn: --threads 1 to %d, --seconds at least 1\n", MAX_THREADS);
		return 2;
	}

	struct harness h;
	struct st_proc before;
	static struct worker w[MAX_THREADS];
	if (harness_init(&h) != 0 || harness_start(&h) != 0 ||
	    st_proc_sample(h.pid, &before) != 0) {
		fprintf(stderr, "churn: cannot start hsamemd\n");
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	int own_before = own_fds();
	int64_t until = st_now_ms() + (int64_t)seconds * 1000;
	for (unsigned i = 0; i < threads; i++) {
		w[i].url = h.url;
		w[i].until_ms = until;
		w[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			fprintf(stderr, "churn: cannot start thread %u\n", i);
			return 1;
		}
	}
	int hung = monitor(w, threads, hang_ms);
	if (hung >= 0) {
		fprintf(stderr, "churn: thread %d hung in %s for over %u ms\n", hung,
		        step_names[atomic_load(&w[hung].step)], hang_ms);
		if (getenv("HSAMEM_STRESS_GDB") != NULL) {
			char cmd[100];
			snprintf(cmd, sizeof(cmd), "gdb -p %d -batch -ex 'thread apply all bt' >&2",
			         (int)getpid());
			if (system(cmd) != 0)
				fprintf(stderr, "churn: gdb failed\n");
		}
		harness_fini(&h);
		_exit(1);
	}
	unsigned long opens = 0, pings = 0, ping_errors = 0, closes = 0;
	int64_t slowest = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(w[i].thread, NULL);
		opens += w[i].opens;
		pings += w[i].pings;
		ping_errors += w[i].ping_errors;
		closes += w[i].closes;
		if (w[i].slowest_close_ms > slowest)
			slowest = w[i].slowest_close_ms;
	}
	int own_after = own_fds();
	for (int64_t t = st_now_ms() + 10000; own_after > own_before && st_now_ms() < t;
	     own_after = own_fds())
		st_sleep_ms(100);
	/* fewer is no leak: a descriptor NNG held at the start may be closed by now */
	bad |= own_after > own_before;
	if (own_after > own_before)
		fprintf(stderr, "churn: this process holds %d descriptors, %d before the run\n",
		        own_after, own_before);
	bad |= check_daemon(&h, before.fds);
	bad |= ping_errors != 0;
	for (unsigned i = 0, shown = 0; i < threads && shown < 3; i++)
		if (w[i].ping_errors != 0 && ++shown)
			fprintf(stderr, "churn: thread %u: %lu pings failed, the first: %s\n", i,
			        w[i].ping_errors, w[i].first_error);
	int64_t stop_ms = 0;
	int status = st_stop(&h, SIGTERM, 10000, &stop_ms);
	if (status != 0 || stop_ms < 0 || stop_ms > 5000) {
		fprintf(stderr, "churn: SIGTERM: exit status %d after %lld ms\n", status,
		        (long long)stop_ms);
		bad = 1;
	}
	printf("churn: %u threads, %u s: %lu opens, %lu pings (%lu failed), %lu closes, slowest "
	       "close %lld ms; descriptors here %d -> %d, daemon %d before; stop %lld ms: %s\n",
	       threads, seconds, opens, pings, ping_errors, closes, (long long)slowest, own_before,
	       own_after, before.fds, (long long)stop_ms, bad ? "FAILED" : "ok");
	if (bad)
		harness_dump_log(&h);
	harness_fini(&h);
	return bad;
}
