/*
 * bench_acl.c: what the access checks add to every request, measured in the daemon's own code:
 *
 *   peer lookup     peer_of_msg on a message received over a real ipc:// connection: the first
 *                   call of a connection reads its credentials from NNG (getsockopt), the next
 *                   ones come from the cache by pipe id
 *   identify        acl_identify + acl_may_use of a local uid under the default policy, with the
 *                   account cached, and with the account read each time (getpwuid_r and
 *                   getgrouplist: what a uid's first request in 30 seconds costs)
 *
 * Usage: bench_acl [--iters N]    Prints a table of nanoseconds per call (medians of 5 rounds).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "acl.h"
#include "conf.h"
#include "log.h"
#include "peer.h"

#define ROUNDS 5

static double
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double
median(double *v)
{
	qsort(v, ROUNDS, sizeof(*v), cmp_double);
	return v[ROUNDS / 2];
}

/* A message received over ipc, with its pipe still open (both sockets stay open). */
static int
received(const char *url, nng_socket *rep, nng_socket *req, nng_msg **out)
{
	nng_msg *m;
	if (nng_rep0_open(rep) != 0 || nng_req0_open(req) != 0 || nng_listen(*rep, url, NULL, 0) ||
	    nng_dial(*req, url, NULL, 0) != 0 || nng_msg_alloc(&m, 4) != 0)
		return -1;
	if (nng_sendmsg(*req, m, 0) != 0 || nng_recvmsg(*rep, out, 0) != 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"iters", required_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	double t[ROUNDS], first = 0, cached, id_hit, id_miss;
	char url[128], err[300];
	struct conf c;
	struct acl *acl;
	struct acl_id id;
	struct peer p;
	nng_socket rep, req;
	nng_msg *msg;
	double t0;
	int iters = 100000, opt;
	volatile int sink = 0;

	while ((opt = getopt_long(argc, argv, "n:", opts, NULL)) != -1)
		if (opt != 'n' || (iters = atoi(optarg)) <= 0) {
			fprintf(stderr, "usage: bench_acl [--iters N]\n");
			return 2;
		}
	log_set_level(LOG_ERR);
	/* a new connection each round: its first lookup reads NNG, the rest hit the cache */
	double t1[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		snprintf(url, sizeof(url), "ipc:///tmp/hsamem-bench-acl-%d-%d.sock", (int)getpid(),
		         r);
		if (received(url, &rep, &req, &msg) != 0) {
			fprintf(stderr, "bench_acl: cannot talk over %s\n", url);
			return 1;
		}
		t0 = now_ns();
		peer_of_msg(msg, &p);
		t1[r] = now_ns() - t0;
		t0 = now_ns();
		for (int i = 0; i < iters; i++)
			peer_of_msg(msg, &p);
		t[r] = (now_ns() - t0) / iters;
		nng_msg_free(msg);
		nng_close(req);
		nng_close(rep);
	}
	first = median(t1);
	cached = median(t);
	if (!p.has_creds) {
		fprintf(stderr, "bench_acl: no credentials read from the pipe\n");
		return 1;
	}

	if (conf_init(&c) != 0)
		return 1;
	struct acl_lines admin = {c.admin.v, c.admin.n}, allow = {c.allow.v, c.allow.n},
	                 secret = {c.secret.v, c.secret.n};
	if (acl_open(&admin, &allow, &secret, &acl, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_acl: %s\n", err);
		return 1;
	}
	struct peer local = {.transport = PEER_IPC, .has_creds = true, .uid = 65534, .gid = 65534};
	for (int r = 0; r < ROUNDS; r++) {
		t0 = now_ns();
		for (int i = 0; i < iters; i++) {
			acl_identify(acl, &local, NULL, 0, &id);
			sink += acl_may_use(acl, &id, "nobody:notes");
		}
		t[r] = (now_ns() - t0) / iters;
	}
	id_hit = median(t);
	/* a policy of its own for every call: the account is read from the database each time */
	for (int r = 0; r < ROUNDS; r++) {
		int n = iters / 100 > 0 ? iters / 100 : 1;
		double sum = 0;
		for (int i = 0; i < n; i++) {
			struct acl *fresh;
			if (acl_open(&admin, &allow, &secret, &fresh, err, sizeof(err)) != 0)
				return 1;
			t0 = now_ns();
			acl_identify(fresh, &local, NULL, 0, &id);
			sink += acl_may_use(fresh, &id, "nobody:notes");
			sum += now_ns() - t0;
			acl_put(fresh);
		}
		t[r] = sum / n;
	}
	id_miss = median(t);

	printf("| measure | ns per call |\n|---|---|\n");
	printf("| peer lookup, first message of a connection | %.0f |\n", first);
	printf("| peer lookup, cached | %.0f |\n", cached);
	printf("| identify + may_use, account cached | %.0f |\n", id_hit);
	printf("| identify + may_use, account read (getpwuid_r, getgrouplist) | %.0f |\n", id_miss);
	acl_put(acl);
	conf_fini(&c);
	return sink < 0;
}
