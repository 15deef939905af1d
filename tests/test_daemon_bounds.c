/*
 * test_daemon_bounds.c: what a hostile request may cost the daemon in memory. Requests built by
 * hand as raw bytes go over a real NNG req0 socket to the real daemon, whose peak resident size
 * (VmHWM, reset through /proc/PID/clear_refs before each case) is then held to a stated bound:
 *
 *   - an append of 31 million empty entries (a 59 MiB message; unpacked, over 4 GiB), of 15.5
 *     million entries with an empty tag each, and of one entry with 20 million tags are refused
 *     with HSAMEM_ETOOBIG before they are unpacked: the peak is the message itself, which the
 *     transport holds, plus 24 MiB;
 *   - an append within the count limits whose unpacking would pass max-inflight (100000 entries of
 *     32 one-byte tags, ~10 MB that unpack to ~250 MB) is refused the same way, naming
 *     max-inflight; one half its size (~130 MB unpacked) is unpacked and refused by its handler,
 *     and the memory goes back (malloc_trim) to within 32 MiB of where it was;
 *   - 16 clients sending the 59 MiB append at once: the peak stays within the 16 messages plus
 *     64 MiB (under 1 GiB over the idle daemon; this daemon has no caches: gpu=off);
 *   - 16 clients sending the half-size heavy append at once: what is unpacked at a time stays
 *     within max-inflight, and those the budget cannot take get HSAMEM_EBUSY.
 *
 * After each case the daemon answers, and nothing was written.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "harness.h"
#include "hsamem.h"
#include "hsamem.pb-c.h"
#include "test.h"

#define MiB             (1ull << 20)
#define MAX_INFLIGHT_MB 160

static struct harness h;

/* A field of the daemon's /proc/PID/status, in bytes ("VmHWM", "VmRSS"); 0 if unreadable. */
static uint64_t
proc_kb(const char *key)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)h.pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':')
			sscanf(line + strlen(key) + 1, "%llu", &kb);
	fclose(f);
	return (uint64_t)kb << 10;
}

/* Resets the daemon's VmHWM to its VmRSS; returns that. */
static uint64_t
reset_peak(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)h.pid);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("5", f);
		fclose(f);
	}
	return proc_kb("VmRSS");
}

static void
expect_peak_under(uint64_t base, uint64_t bound, const char *what)
{
	uint64_t peak = proc_kb("VmHWM");
	printf("%s: peak %llu MiB over a base of %llu MiB (bound: base + %llu MiB)\n", what,
	       (unsigned long long)(peak / MiB), (unsigned long long)(base / MiB),
	       (unsigned long long)(bound / MiB));
	CHECK(peak > 0 && peak <= base + bound);
}

/* Appends a varint; returns the new end. */
static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	return p;
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;
	for (; v >= 0x80; v >>= 7)
		n++;
	return n;
}

/* A Request of version 1 holding an append for "alice" of n copies of the EntryIn whose bytes are
 * entry (elen of them), as a client would send it: entries are field 2 of AppendRequest, the
 * append is field 12 of Request. Sets *len. */
static uint8_t *
hostile_append(uint64_t n, const uint8_t *entry, size_t elen, size_t *len)
{
	uint64_t one = 1 + varint_len(elen) + elen;
	uint64_t body = 7 + n * one;
	*len = 2 + 1 + varint_len(body) + body;
	uint8_t *buf = malloc(*len), *p = buf;
	if (buf == NULL)
		return NULL;
	*p++ = 0x08; /* version = 1 */
	*p++ = 0x01;
	*p++ = 0x62; /* append */
	p = put_varint(p, body);
	memcpy(p,
	       "\x0a\x05"
	       "alice",
	       7);
	p += 7;
	for (uint64_t i = 0; i < n; i++) {
		*p++ = 0x12;
		p = put_varint(p, elen);
		memcpy(p, entry, elen);
		p += elen;
	}
	return buf;
}

/* An EntryIn of t one-byte tags ("t", field 5) and nothing else; its bytes in buf. */
static size_t
entry_with_tags(uint8_t *buf, unsigned t)
{
	for (unsigned i = 0; i < t; i++)
		memcpy(buf + 3 * i, "\x2a\x01t", 3);
	return 3 * (size_t)t;
}

static void *
close_main(void *arg)
{
	nng_socket s = {.id = (uint32_t)(uintptr_t)arg};
	nng_close(s);
	return NULL;
}

/* Closes s in a thread of its own, not waited for: NNG 1.5's nng_close can wait forever (its
 * reaper stuck; seen here with sixteen senders closing at once on a loaded machine), which would
 * hang the test, not the daemon. The client library bounds its close the same way. */
static void
close_detached(nng_socket s)
{
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, close_main, (void *)(uintptr_t)s.id) != 0)
		nng_close(s);
	pthread_attr_destroy(&a);
}

/* Sends the len bytes at buf on a fresh req0 socket; the reply's status (its message copied to
 * why), or 1 when no reply came. */
static int
send_raw(const uint8_t *buf, size_t len, char *why, size_t why_len)
{
	nng_socket s;
	nng_msg *msg = NULL;
	int status = 1;

	why[0] = '\0';
	if (nng_req0_open(&s) != 0)
		return 1;
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 20000);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000);
	if (nng_dial(s, h.url, NULL, 0) == 0 && nng_msg_alloc(&msg, len) == 0) {
		memcpy(nng_msg_body(msg), buf, len);
		if (nng_sendmsg(s, msg, 0) != 0)
			nng_msg_free(msg);
		else if (nng_recvmsg(s, &msg, 0) == 0) {
			Hsamem__Reply *rep =
			        hsamem__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
			if (rep != NULL) {
				status = rep->status;
				snprintf(why, why_len, "%s", rep->message ? rep->message : "");
				hsamem__reply__free_unpacked(rep, NULL);
			}
			nng_msg_free(msg);
		}
	}
	close_detached(s);
	return status;
}

/* Sends it and expects status with a message holding want. */
static void
expect_refused(const uint8_t *buf, size_t len, int status, const char *want)
{
	char why[512];
	int got = send_raw(buf, len, why, sizeof(why));
	if (got != status || strstr(why, want) == NULL)
		fprintf(stderr, "status %d (%s), expected %d (%s)\n", got, why, status, want);
	CHECK(got == status && strstr(why, want) != NULL);
}

/* The daemon answers a ping, holds no memory (nothing was written), and its resident size came
 * back to within slack of base. */
static void
check_after(uint64_t base, uint64_t slack, const char *what)
{
	struct hsamem *c;
	struct hsamem_server *srv = NULL;
	struct hsamem_user_list *users = NULL;

	CHECK(harness_alive(&h));
	CHECK_RET(hsamem_open(h.url, &c), 0);
	CHECK_RET(hsamem_ping(c, &srv), 0);
	CHECK_RET(hsamem_users(c, &users), 0);
	CHECK(users != NULL && users->n_users == 0);
	hsamem_result_free(users);
	hsamem_result_free(srv);
	hsamem_close(c);
	/* nng frees a closed connection's pipe in its own time: give it up to 3 s */
	uint64_t rss = proc_kb("VmRSS");
	int waited = 0;
	for (; rss > base + slack && waited < 3000; waited += 10) {
		nng_msleep(10);
		rss = proc_kb("VmRSS");
	}
	printf("%s: resident %llu MiB after %d ms, base %llu MiB\n", what,
	       (unsigned long long)(rss / MiB), waited, (unsigned long long)(base / MiB));
	CHECK(rss <= base + slack);
}

static void
test_count_limits(void)
{
	uint8_t entry[4 * 32];
	size_t len;

	/* 31 million empty entries: 59 MiB */
	uint8_t *buf = hostile_append(31000000, NULL, 0, &len);
	CHECK(buf != NULL && len > 59 * MiB);
	uint64_t base = reset_peak();
	expect_refused(buf, len, HSAMEM_ETOOBIG,
	               "append: more than 100000 entries exceed the limit");
	expect_peak_under(base, len + 24 * MiB, "31M empty entries");
	check_after(base, 8 * MiB, "31M empty entries");
	free(buf);

	/* 15.5 million entries of an empty tag each */
	buf = hostile_append(15500000, (const uint8_t *)"\x2a\x00", 2, &len);
	base = reset_peak();
	expect_refused(buf, len, HSAMEM_ETOOBIG,
	               "append: more than 100000 entries exceed the limit");
	expect_peak_under(base, len + 24 * MiB, "15.5M entries with a tag");
	check_after(base, 8 * MiB, "15.5M entries with a tag");
	free(buf);

	/* one entry of 20 million empty tags */
	uint8_t *tags = malloc(40000000);
	CHECK(tags != NULL);
	for (size_t i = 0; tags != NULL && i < 20000000; i++)
		memcpy(tags + 2 * i, "\x2a\x00", 2);
	buf = hostile_append(1, tags, 40000000, &len);
	free(tags);
	base = reset_peak();
	expect_refused(buf, len, HSAMEM_ETOOBIG,
	               "tags on 1 entries exceed the limit of 32 tags an entry");
	expect_peak_under(base, len + 24 * MiB, "one entry of 20M tags");
	check_after(base, 8 * MiB, "one entry of 20M tags");
	free(buf);

	/* within the counts, but its unpacking would hold more than max-inflight */
	buf = hostile_append(100000, entry, entry_with_tags(entry, 32), &len);
	base = reset_peak();
	expect_refused(buf, len, HSAMEM_ETOOBIG, "more than max-inflight");
	expect_peak_under(base, len + 24 * MiB, "100000 entries of 32 tags");
	check_after(base, 8 * MiB, "100000 entries of 32 tags");
	free(buf);

	/* half of it is unpacked (the handler refuses entries without text); the memory goes
	 * back */
	buf = hostile_append(50000, entry, entry_with_tags(entry, 32), &len);
	base = reset_peak();
	expect_refused(buf, len, HSAMEM_EINVAL, "entry 0 has no tokens");
	expect_peak_under(base, len + MAX_INFLIGHT_MB * MiB + 24 * MiB, "50000 entries of 32 tags");
	check_after(base, 32 * MiB, "50000 entries of 32 tags");
	free(buf);
}

struct sender {
	pthread_t t;
	const uint8_t *buf;
	size_t len;
	int status;
	char why[512];
};

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	s->status = send_raw(s->buf, s->len, s->why, sizeof(s->why));
	return NULL;
}

/* 16 clients send buf at once; returns how many got status (the others, those of busy). */
static void
send_16(const uint8_t *buf, size_t len, int status, int *n_status, int *n_busy)
{
	struct sender s[16];
	*n_status = *n_busy = 0;
	for (int i = 0; i < 16; i++) {
		s[i] = (struct sender){.buf = buf, .len = len};
		CHECK_RET(pthread_create(&s[i].t, NULL, sender_main, &s[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(s[i].t, NULL);
		*n_status += s[i].status == status;
		*n_busy += s[i].status == HSAMEM_EBUSY;
		if (s[i].status != status && s[i].status != HSAMEM_EBUSY)
			fprintf(stderr, "client %d: status %d (%s)\n", i, s[i].status, s[i].why);
	}
}

static void
test_concurrent(void)
{
	uint8_t entry[4 * 32];
	size_t len;
	int n_refused, n_busy;

	uint8_t *buf = hostile_append(31000000, NULL, 0, &len);
	uint64_t base = reset_peak();
	send_16(buf, len, HSAMEM_ETOOBIG, &n_refused, &n_busy);
	CHECK(n_refused == 16);
	expect_peak_under(base, 16 * len + 64 * MiB, "16 x 31M empty entries");
	CHECK(proc_kb("VmHWM") < base + (1ull << 30));
	/* under load, one message's worth has been seen to stay resident for seconds (not
	 * understood: see bench/RESULTS.md); more than one would fail */
	check_after(base, len + 8 * MiB, "16 x 31M empty entries");
	free(buf);

	buf = hostile_append(50000, entry, entry_with_tags(entry, 32), &len);
	base = reset_peak();
	send_16(buf, len, HSAMEM_EINVAL, &n_refused, &n_busy);
	printf("16 x 50000 entries of 32 tags: %d unpacked, %d busy\n", n_refused, n_busy);
	CHECK(n_refused >= 1 && n_refused + n_busy == 16);
	/* the messages, what max-inflight lets be unpacked at once, the allocator's slack */
	expect_peak_under(base, 16 * len + MAX_INFLIGHT_MB * MiB + 64 * MiB,
	                  "16 x 50000 entries of 32 tags");
	check_after(base, 32 * MiB, "16 x 50000 entries of 32 tags");
	free(buf);
}

int
main(void)
{
	if (harness_init(&h) != 0)
		return 99;
	h.extra[0] = "-o";
	h.extra[1] = "gpu=off";
	h.extra[2] = "-o";
	h.extra[3] = "max-inflight=160M";
	h.extra[4] = "-o";
	h.extra[5] = "workers=2";
	if (harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 99;
	}
	test_count_limits();
	test_concurrent();
	if (test_failures > 0)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_bounds");
}
