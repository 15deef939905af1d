/*
 * load.c: many clients at once against the real hsamemd, each on a connection of its own, mixing
 * appends, queries, entry and chunk reads, statistics, user lists and exports for a set time,
 * while the daemon's resident memory, open descriptors and threads are sampled from /proc every
 * second. Every request must succeed; once the clients have closed their connections the daemon's
 * descriptors must return to what they were before (within 10 s); at the end it must exit cleanly
 * on SIGTERM within 5 s.
 *
 *   load [--clients N] [--seconds S] [--users U] [--seed X] [--verbose]
 *
 * Prints one summary line (requests, rate, latency per operation as the clients saw it, peak RSS,
 * descriptors before, at peak and after); exits 1 on any violation. The defaults make a short run
 * for `make check`; tests/stress/README.md gives the long one.
 */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"
#include "stress.h"

#define MAX_CLIENTS 1024
#define N_BUCKETS   80 /* latency buckets: 10 us * 2^(i/4) */

enum op {
	OP_APPEND,
	OP_QUERY,
	OP_ENTRIES,
	OP_CHUNKS,
	OP_STATS,
	OP_USERS,
	OP_EXPORT,
	OP_DELETE,
	N_OPS
};
static const char *const op_names[N_OPS] = {"append", "query", "entries", "chunks",
                                            "stats",  "users", "export",  "delete"};
/* out of 100; deletes come from appends (a memory appended to past ROTATE entries) */
static const unsigned op_weight[N_OPS] = {35, 25, 15, 8, 8, 5, 4, 0};
#define ROTATE 2000

struct opts {
	unsigned clients, seconds, users;
	uint64_t seed;
	bool verbose;
};

struct client {
	pthread_t thread;
	unsigned id;
	uint64_t rng;
	uint64_t count[N_OPS], errors[N_OPS];
	uint64_t hist[N_OPS][N_BUCKETS];
};

static struct opts o;
static struct harness h;
static atomic_bool stop;
static atomic_uint violations;

static void __attribute__((format(printf, 1, 2))) violation(const char *fmt, ...)
{
	va_list ap;
	if (atomic_fetch_add(&violations, 1) >= 10)
		return; /* counted, not printed */
	fprintf(stderr, "VIOLATION: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
bucket(int64_t us)
{
	int b = us <= 10 ? 0 : (int)(4.0 * log2((double)us / 10.0));
	return b < N_BUCKETS ? b : N_BUCKETS - 1;
}

static double
bucket_ms(int b)
{
	return 0.01 * pow(2.0, (b + 1) / 4.0);
}

/* The memories read from (fixed, made by setup) and the memories appended to, o.users of each. */
static char read_names[64][16], write_names[64][16];

static const char *
reader_of(uint64_t k)
{
	return read_names[k % o.users];
}

static const char *
writer_of(uint64_t k)
{
	return write_names[k % o.users];
}

/* Runs one operation; returns its status (HSAMEM_ENOUSER is fine for a memory appended to, which
 * another client may have just deleted). */
static int
run_op(struct client *c, struct hsamem *hc, enum op *op)
{
	char text[1024];
	const char *user = reader_of(st_rand(&c->rng));
	bool may_be_gone = false;
	void *res = NULL;
	int ret;
	switch (*op) {
	case OP_APPEND: {
		struct hsamem_append_info info;
		struct hsamem_entry_in e = {.text = text, .role = HSAMEM_ROLE_USER};
		user = writer_of(c->id);
		st_entry_text(text, sizeof(text), user, st_rand(&c->rng), 40);
		ret = hsamem_append(hc, user, &e, 1, NULL, 0, 0, &info);
		if (ret == 0 && info.first_seq >= ROTATE) {
			*op = OP_DELETE;
			ret = hsamem_delete(hc, user, NULL);
			may_be_gone = true;
		}
		break;
	}
	case OP_QUERY:
		if (st_below(&c->rng, 2)) {
			user = writer_of(st_rand(&c->rng));
			may_be_gone = true;
		}
		ret = hsamem_query_text(hc, user, "harbour lantern ember", 0,
		                        (struct hsamem_query_result **)&res);
		break;
	case OP_ENTRIES:
		ret = hsamem_entries(hc, user, st_below(&c->rng, 100), 50,
		                     (struct hsamem_entry_list **)&res);
		break;
	case OP_CHUNKS:
		ret = hsamem_chunks(hc, user, st_below(&c->rng, 20), 4, HSAMEM_CHUNKS_TENSORS,
		                    (struct hsamem_chunk_list **)&res);
		break;
	case OP_STATS:
		ret = hsamem_stats(hc, st_below(&c->rng, 2) ? user : NULL,
		                   (struct hsamem_stats **)&res);
		break;
	case OP_USERS: ret = hsamem_users(hc, (struct hsamem_user_list **)&res); break;
	default: {
		struct st_buf b = {0};
		ret = st_export(hc, user, &b);
		st_buf_free(&b);
	}
	}
	hsamem_result_free(res);
	if (ret == HSAMEM_ENOUSER && may_be_gone)
		ret = 0;
	if (ret != 0)
		violation("%s of %s failed: %s", op_names[*op], user, hsamem_strerror(ret));
	return ret;
}

static void *
client_main(void *arg)
{
	struct client *c = arg;
	struct hsamem *hc = NULL;
	if (hsamem_open(h.url, &hc) != 0) {
		violation("client %u cannot open a handle", c->id);
		return NULL;
	}
	hsamem_set_timeout(hc, 30000);
	while (!atomic_load(&stop)) {
		unsigned pick = (unsigned)st_below(&c->rng, 100), op = 0;
		while (pick >= op_weight[op]) {
			pick -= op_weight[op];
			op++;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		enum op done = (enum op)op;
		int ret = run_op(c, hc, &done);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		int64_t us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
		c->count[done]++;
		c->errors[done] += ret != 0;
		c->hist[done][bucket(us)]++;
	}
	hsamem_close(hc);
	return NULL;
}

/* The memories the clients read: 100 entries each, a few chunks. Those they append to grow from
 * nothing and are deleted (by the client whose append passes ROTATE entries) to bound the store. */
static int
setup(void)
{
	struct hsamem *c;
	char text[1024];
	int ret = hsamem_open(h.url, &c);
	for (unsigned u = 0; u < o.users && ret == 0; u++) {
		snprintf(read_names[u], sizeof(read_names[u]), "read%u", u);
		snprintf(write_names[u], sizeof(write_names[u]), "write%u", u);
		for (int i = 0; i < 100 && ret == 0; i++) {
			st_entry_text(text, sizeof(text), read_names[u], (uint64_t)i, 40);
			ret = hsamem_append_text(c, read_names[u], HSAMEM_ROLE_USER, text, NULL);
		}
	}
	if (ret != 0)
		fprintf(stderr, "load: setup failed: %s\n", hsamem_strerror(ret));
	hsamem_close(c);
	return ret;
}

struct samples {
	struct st_proc start, end;
	long rss_peak_kib, anon_peak_kib;
	int fds_peak, threads_peak;
};

static void
sample_into(struct samples *s, const struct st_proc *p)
{
	if (p->rss_kib > s->rss_peak_kib)
		s->rss_peak_kib = p->rss_kib;
	if (p->anon_kib > s->anon_peak_kib)
		s->anon_peak_kib = p->anon_kib;
	if (p->fds > s->fds_peak)
		s->fds_peak = p->fds;
	if (p->threads > s->threads_peak)
		s->threads_peak = p->threads;
	s->end = *p;
}

/* Samples the daemon every second until the deadline. */
static void
sample_until(struct samples *s, int64_t deadline)
{
	for (unsigned second = 1; st_now_ms() < deadline; second++) {
		struct st_proc p;
		int64_t next = st_now_ms() + 1000;
		st_sleep_ms((int)(next > deadline ? deadline - st_now_ms() : 1000));
		if (st_proc_sample(h.pid, &p) != 0) {
			violation("the daemon is gone");
			return;
		}
		sample_into(s, &p);
		if (o.verbose)
			printf("%4u s: rss %ld MiB (anon %ld, file %ld; hwm %ld), %d fds, %d "
			       "threads\n",
			       second, p.rss_kib >> 10, p.anon_kib >> 10, p.file_kib >> 10,
			       p.hwm_kib >> 10, p.fds, p.threads);
	}
}

/* Waits up to 10 s for the daemon's descriptors to come back to base; returns the last count. */
static int
fds_settle(int base, int64_t *ms)
{
	int64_t t0 = st_now_ms();
	struct st_proc p = {0};
	do {
		if (st_proc_sample(h.pid, &p) != 0)
			return -1;
		if (p.fds <= base)
			break;
		st_sleep_ms(50);
	} while (st_now_ms() - t0 < 10000);
	*ms = st_now_ms() - t0;
	return p.fds;
}

static void
report(struct client *cl, const struct samples *s, int fds_after, int64_t settle_ms,
       int64_t exit_ms, int64_t run_ms)
{
	uint64_t total = 0, errors = 0, count[N_OPS] = {0}, hist[N_OPS][N_BUCKETS] = {{0}};
	char ops[1024];
	size_t len = 0;
	for (unsigned i = 0; i < o.clients; i++)
		for (int op = 0; op < N_OPS; op++) {
			count[op] += cl[i].count[op];
			errors += cl[i].errors[op];
			for (int b = 0; b < N_BUCKETS; b++)
				hist[op][b] += cl[i].hist[op][b];
		}
	for (int op = 0; op < N_OPS; op++) {
		double p50 = 0, p99 = 0;
		uint64_t acc = 0;
		total += count[op];
		for (int b = 0; b < N_BUCKETS && count[op]; b++) {
			acc += hist[op][b];
			if (p50 == 0 && acc * 2 >= count[op])
				p50 = bucket_ms(b);
			if (p99 == 0 && acc * 100 >= count[op] * 99)
				p99 = bucket_ms(b);
		}
		len += (size_t)snprintf(ops + len, sizeof(ops) - len,
		                        "%s%s %llu (p50 %.1f ms, p99 %.0f ms)", op ? ", " : "",
		                        op_names[op], (unsigned long long)count[op], p50, p99);
	}
	printf("load: %u clients for %.0f s: %llu requests (%.0f/s), %llu errors; %s; daemon RSS "
	       "%ld MiB at start (%ld anonymous), %ld MiB at peak (%ld anonymous; VmHWM %ld), %ld "
	       "MiB at the end (%ld anonymous); fds %d before, %d at peak, %d after the clients "
	       "closed (%lld ms); threads at peak %d; SIGTERM exit %lld ms; %u violations\n",
	       o.clients, run_ms / 1000.0, (unsigned long long)total,
	       total * 1000.0 / (double)(run_ms ? run_ms : 1), (unsigned long long)errors, ops,
	       s->start.rss_kib >> 10, s->start.anon_kib >> 10, s->rss_peak_kib >> 10,
	       s->anon_peak_kib >> 10, s->end.hwm_kib >> 10, s->end.rss_kib >> 10,
	       s->end.anon_kib >> 10, s->start.fds, s->fds_peak, fds_after, (long long)settle_ms,
	       s->threads_peak, (long long)exit_ms, atomic_load(&violations));
}

static int
parse(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"clients", required_argument, NULL, 'c'},
	        {"seconds", required_argument, NULL, 's'},
	        {"users", required_argument, NULL, 'u'},
	        {"seed", required_argument, NULL, 'S'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int opt;
	o = (struct opts){.clients = 16,
	                  .seconds = 5,
	                  .users = 8,
	                  .seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32};
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': o.clients = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o.seconds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'u': o.users = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': o.seed = strtoull(optarg, NULL, 0); break;
		case 'v': o.verbose = true; break;
		case 'h':
			printf("usage: load [--clients N] [--seconds S] [--users U] [--seed X] "
			       "[--verbose]\nSee tests/stress/README.md.\n");
			return 0;
		default: return 2;
		}
	}
	if (optind < argc || o.clients < 1 || o.clients > MAX_CLIENTS || o.users < 1 ||
	    o.users > 64 || o.seconds < 1) {
		fprintf(stderr, "usage: load [--clients N] [--seconds S] [--users U] [--seed X] "
		                "[--verbose]\n");
		return 2;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	static struct client cl[MAX_CLIENTS];
	struct samples s = {0};
	int64_t settle_ms = 0, exit_ms = -1;
	int ret = parse(argc, argv);
	if (ret >= 0)
		return ret;
	if (harness_init(&h) != 0)
		return 1;
	h.extra[0] = "-o";
	h.extra[1] = "gpu=off";
	if (harness_start(&h) != 0 || setup() != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	/* the descriptors of a daemon that serves no connection */
	st_sleep_ms(500);
	if (st_proc_sample(h.pid, &s.start) != 0)
		return 1;
	sample_into(&s, &s.start);

	int64_t t0 = st_now_ms();
	for (unsigned i = 0; i < o.clients; i++) {
		cl[i].id = i;
		cl[i].rng = o.seed * 0x9e3779b97f4a7c15ull + i + 1;
		pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
	}
	sample_until(&s, t0 + (int64_t)o.seconds * 1000);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < o.clients; i++)
		pthread_join(cl[i].thread, NULL);
	int64_t run_ms = st_now_ms() - t0;

	int fds_after = fds_settle(s.start.fds, &settle_ms);
	/* fewer is no leak: the watchdog's probe of the listener may hold two of the base's */
	if (fds_after > s.start.fds)
		violation(
		        "the daemon holds %d descriptors 10 s after the clients closed, %d before",
		        fds_after, s.start.fds);
	struct st_proc last;
	if (st_proc_sample(h.pid, &last) == 0)
		sample_into(&s, &last);
	if (harness_alive(&h)) {
		ret = st_stop(&h, SIGTERM, 10000, &exit_ms);
		if (ret != 0 || exit_ms < 0 || exit_ms > 5000)
			violation("the daemon's exit after SIGTERM: status %d after %lld ms (-1: "
			          "hung, "
			          "killed after 10 s)",
			          ret, (long long)exit_ms);
	} else {
		violation("the daemon died under load");
	}
	report(cl, &s, fds_after, settle_ms, exit_ms, run_ms);
	if (atomic_load(&violations))
		harness_dump_log(&h);
	harness_fini(&h);
	return atomic_load(&violations) ? 1 : 0;
}
