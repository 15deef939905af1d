/*
 * test_daemon_full.c: a store with no room left, for real, three ways: the map at a small
 * map-max; the state directory on a tmpfs of a few MiB (mounted in a mount namespace of this
 * test's own, which needs root: skipped otherwise); and the daemon under a file size limit
 * (RLIMIT_FSIZE). Each time appends fail with HSAMEM_EFULL and a message that says what is full,
 * the daemon lives on and serves reads, a memory too large to delete in one transaction of the
 * full store is deleted (in steps), the next append after a delete succeeds (no restart), and a
 * delete succeeds while other clients keep appending into the full store.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "harness.h"
#include "hsamem.h"
#include "test.h"

#define TEXT_BYTES  (2u << 10)
#define MAX_APPENDS 20000 /* a store of 32 MiB is full long before */

static char text[TEXT_BYTES + 1];

/* One append of the text: to a lexical memory, or to a client memory with a chunk of 64 tokens
 * and its K, V (16 KiB, lexical's shapes) and landmark. */
static int
append_one(struct hsamem *c, const char *user, bool client)
{
	static uint16_t kv[2][64 * 64], lmk[1024];
	static uint32_t tok[64];
	if (!client)
		return hsamem_append_text(c, user, HSAMEM_ROLE_USER, text, NULL);
	for (int i = 0; i < 64 * 64; i++)
		kv[0][i] = kv[1][i] = (uint16_t)(0x3c00 + i % 61); /* finite f16 */
	for (int i = 0; i < 1024; i++)
		lmk[i] = 0x3c00;
	for (int i = 0; i < 64; i++)
		tok[i] = (uint32_t)i + 1;
	struct hsamem_chunk_in ch = {kv[0], sizeof(kv[0]), kv[1], sizeof(kv[1]), lmk, sizeof(lmk)};
	struct hsamem_entry_in e = {.text = text, .tokens = tok, .n_tokens = 64};
	return hsamem_append(c, user, &e, 1, &ch, 1, HSAMEM_APPEND_NO_CREATE, NULL);
}

/* Appends texts to user until the store is full; returns how many fit, and checks that the
 * failure is HSAMEM_EFULL with want in its message. */
static int
fill(struct hsamem *c, const char *user, const char *want, bool client)
{
	int n = 0, ret = 0;
	while (n < MAX_APPENDS && (ret = append_one(c, user, client)) == 0)
		n++;
	if (ret != HSAMEM_EFULL || strstr(hsamem_last_message(c), want) == NULL)
		fprintf(stderr,
		        "fill %s: %d appends, then %d (%s); expected HSAMEM_EFULL with \"%s\"\n",
		        user, n, ret, hsamem_last_message(c), want);
	CHECK_RET(ret, HSAMEM_EFULL);
	CHECK(strstr(hsamem_last_message(c), want) != NULL);
	CHECK(strstr(hsamem_last_message(c), "delete memories") != NULL);
	return n;
}

struct appender {
	const char *url;
	atomic_bool *stop;
	int ok, full, other;
};

static void *
appender_main(void *arg)
{
	struct appender *a = arg;
	struct hsamem *c;
	if (hsamem_open(a->url, &c) != 0) {
		a->other++;
		return NULL;
	}
	while (!atomic_load(a->stop)) {
		int ret = hsamem_append_text(c, "bob", HSAMEM_ROLE_USER, text, NULL);
		if (ret == 0)
			a->ok++;
		else if (ret == HSAMEM_EFULL)
			a->full++;
		else
			a->other++;
	}
	hsamem_close(c);
	return NULL;
}

/* Whether the daemon's log has needle in it. */
static bool
log_has(struct harness *h, const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(h->log, "r");
	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	if (f != NULL)
		fclose(f);
	return found;
}

/* The store of the daemon in h runs full (want: what the message says); then deletes make room. */
static void
run_full(struct harness *h, const char *want)
{
	struct hsamem *c;
	struct hsamem_entry_list *el = NULL;
	struct appender a[3];
	pthread_t t[3];
	atomic_bool stop = false;

	/* alice stores K|V (a client memory: a lexical one computes them and stores none), so that
	 * the full store cannot delete her in one transaction */
	struct hsamem_spec spec = {.encoder = "client",
	                           .chunk_size = 64,
	                           .h_kv = 1,
	                           .d_h = 64,
	                           .h_q = 1,
	                           .d_r = 1024,
	                           .dtype = HSAMEM_F16};
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_create(c, "alice", &spec, NULL), 0);
	int n = fill(c, "alice", want, true);
	CHECK(n > 0);
	/* full, yet serving: reads, and appends refused again */
	CHECK_RET(hsamem_entries(c, "alice", 0, 1, &el), 0);
	hsamem_result_free(el);
	CHECK_RET(hsamem_ping(c, NULL), 0);
	CHECK_RET(append_one(c, "alice", true), HSAMEM_EFULL);
	/* and the single pages left where no K|V value fits, taken by bob's small records */
	fill(c, "bob", want, false);

	/* the next append after a delete finds the room the delete made; at 32 MiB, LMDB has no
	 * room to delete alice in one transaction: the daemon deletes her in steps */
	CHECK_RET(hsamem_delete(c, "alice", NULL), 0);
	CHECK(log_has(h, "deleted user 'alice' in"));
	CHECK_RET(hsamem_append_text(c, "carol", HSAMEM_ROLE_USER, text, NULL), 0);
	int m = 1 + fill(c, "carol", want, false);
	fprintf(stderr, "%s: %d appends fit, %d after the delete\n", want, n, m);
	CHECK(m >= n / 2);

	/* a delete is not failed by the appends beside it in the full store */
	for (int i = 0; i < 3; i++) {
		a[i] = (struct appender){.url = h->url, .stop = &stop};
		pthread_create(&t[i], NULL, appender_main, &a[i]);
	}
	for (int i = 0; i < 3; i++)
		while (a[i].full + a[i].ok + a[i].other == 0 && harness_alive(h))
			sched_yield();
	CHECK_RET(hsamem_delete(c, "carol", NULL), 0);
	atomic_store(&stop, true);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK(a[i].other == 0);
	}
	CHECK_RET(hsamem_append_text(c, "dave", HSAMEM_ROLE_USER, "room again", NULL), 0);
	CHECK(harness_alive(h));
	hsamem_close(c);
}

static bool
start(struct harness *h)
{
	if (harness_start(h) == 0)
		return true;
	harness_dump_log(h);
	CHECK(false);
	return false;
}

static void
finish(struct harness *h)
{
	if (harness_alive(h))
		CHECK_RET(harness_stop(h, SIGTERM), 0);
	if (test_failures)
		harness_dump_log(h);
}

static void
test_map_max(void)
{
	struct harness h;
	if (harness_init(&h) != 0) {
		CHECK(false);
		return;
	}
	h.extra[0] = "-o";
	h.extra[1] = "map-size=1M";
	h.extra[2] = "-o";
	h.extra[3] = "map-max=32M";
	if (start(&h))
		run_full(&h, "map-max reached");
	finish(&h);
	harness_fini(&h);
}

/* A tmpfs of 32 MiB as the state directory, in a mount namespace of the test's own. Returns false
 * (skipped) where that cannot be had. */
static bool
test_disk_full(void)
{
	struct harness h;
	bool ran = false;
	if (harness_init(&h) != 0) {
		CHECK(false);
		return false;
	}
	if (mkdir(h.state, 0700) != 0 || unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("hsamem-test", h.state, "tmpfs", 0, "size=32m,mode=0700") != 0) {
		fprintf(stderr, "disk full: no tmpfs of our own (%s): skipped\n", strerror(errno));
		harness_fini(&h);
		return false;
	}
	if (start(&h)) {
		run_full(&h, "disk full");
		ran = true;
	}
	finish(&h);
	umount2(h.state, MNT_DETACH);
	harness_fini(&h);
	return ran;
}

/* The daemon under a file size limit of 32 MiB: its writes fail with EFBIG (it ignores SIGXFSZ). */
static void
test_file_size_limit(void)
{
	struct harness h;
	struct rlimit old, lim;
	if (harness_init(&h) != 0 || getrlimit(RLIMIT_FSIZE, &old) != 0) {
		CHECK(false);
		return;
	}
	lim = old;
	lim.rlim_cur = 32u << 20;
	if (old.rlim_max != RLIM_INFINITY && old.rlim_max < lim.rlim_cur)
		lim.rlim_cur = old.rlim_max;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0); /* the daemon inherits it */
	bool started = start(&h);
	setrlimit(RLIMIT_FSIZE, &old);
	if (started)
		run_full(&h, "file size limit reached");
	finish(&h);
	harness_fini(&h);
}

int
main(void)
{
	for (size_t i = 0; i < TEXT_BYTES; i++) /* words of 6 letters, all different */
		text[i] = (i % 7 == 6) ? ' ' : (char)('a' + (i * 7919 + i / 7 * 31) % 26);
	test_map_max();
	test_file_size_limit();
	if (!test_disk_full())
		fprintf(stderr, "test_daemon_full: the disk-full case did not run\n");
	return test_done("test_daemon_full");
}
