/*
 * bench_wire.c: what the daemon's walk of a request before its unpack costs: wire_scan() over a
 * serialized append request (proto/wire.h), finding NUL bytes, counting entries and tags and
 * bounding what unpack will allocate, beside hsamem__request__unpack() of the same bytes, which
 * the daemon does anyway. Shapes: many small entries (the walk's cost per field) and few large
 * ones (its cost per byte); best of --iters runs each. Then a hostile append (31 million empty
 * entries, 59 MiB) walked to its end and walked as the daemon does, stopping at the entry limit;
 * and what glibc keeps resident after a request that unpacks to ~120 MB is freed, and what
 * malloc_trim(0) costs to give it back.
 *
 * Usage: bench_wire [--iters N] [--json FILE]
 */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsamem.pb-c.h"
#include "wire.h"

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Packs an append of n entries of len bytes of text each; *size gets its size. */
static uint8_t *
pack_append(size_t n, size_t len, size_t *size)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	Hsamem__EntryIn *e = calloc(n, sizeof(*e)), **ep = calloc(n, sizeof(*ep));
	char *text = malloc(len + 1);
	uint8_t *buf = NULL;

	if (e == NULL || ep == NULL || text == NULL)
		goto out;
	for (size_t i = 0; i < len; i++)
		text[i] = (char)('a' + i % 26);
	text[len] = '\0';
	for (size_t i = 0; i < n; i++) {
		hsamem__entry_in__init(&e[i]);
		e[i].text = text;
		ep[i] = &e[i];
	}
	req.has_version = 1;
	req.version = 1;
	req.body_case = HSAMEM__REQUEST__BODY_APPEND;
	req.append = &ap;
	ap.user = "alice";
	ap.entries = ep;
	ap.n_entries = n;
	*size = hsamem__request__get_packed_size(&req);
	if ((buf = malloc(*size)) != NULL)
		hsamem__request__pack(&req, buf);
out:
	free(text);
	free(ep);
	free(e);
	return buf;
}

/* Walks buf as the daemon does: the counts it checks, stopping at the entry limit when asked. */
static int
scan(const uint8_t *buf, size_t size, uint64_t max_entries, struct wire_scan *s)
{
	static struct wire_count counts[2];
	counts[0] = (struct wire_count){protobuf_c_message_descriptor_get_field_by_name(
	                                        &hsamem__append_request__descriptor, "entries"),
	                                max_entries, 0};
	counts[1] = (struct wire_count){protobuf_c_message_descriptor_get_field_by_name(
	                                        &hsamem__entry_in__descriptor, "tags"),
	                                0, 0};
	*s = (struct wire_scan){.counts = counts, .n_counts = 2};
	return wire_scan(&hsamem__request__descriptor, buf, size, s);
}

/* An append of n entries whose bytes are entry (elen of them), packed by hand. */
static uint8_t *
pack_raw(size_t n, const uint8_t *entry, size_t elen, size_t *size)
{
	size_t body = 7 + n * (2 + elen), at = 0;
	uint8_t *buf = malloc(body + 16);
	if (buf == NULL || elen > 127)
		return NULL;
	buf[at++] = 0x08;
	buf[at++] = 0x01;
	buf[at++] = 0x62;
	size_t v = body;
	for (; v >= 0x80; v >>= 7)
		buf[at++] = (uint8_t)(v | 0x80);
	buf[at++] = (uint8_t)v;
	memcpy(buf + at,
	       "\x0a\x05"
	       "alice",
	       7);
	at += 7;
	for (size_t i = 0; i < n; i++) {
		buf[at++] = 0x12;
		buf[at++] = (uint8_t)elen;
		memcpy(buf + at, entry, elen);
		at += elen;
	}
	*size = at;
	return buf;
}

static long
rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	if (f != NULL)
		fclose(f);
	return kb;
}

struct unpack_job {
	const uint8_t *buf;
	size_t size;
	Hsamem__Request *req;
};

static void *
unpack_main(void *arg)
{
	struct unpack_job *j = arg;
	j->req = hsamem__request__unpack(NULL, j->size, j->buf);
	return NULL;
}

/* The hostile append walked, and the memory a large unpack leaves behind (trim_*). */
static int
hostile(FILE *json)
{
	struct wire_scan s;
	size_t size;
	uint8_t tags[96];
	for (int i = 0; i < 32; i++)
		memcpy(tags + 3 * i, "\x2a\x01t", 3);

	uint8_t *buf = pack_raw(31000000, NULL, 0, &size);
	if (buf == NULL)
		return 1;
	double t = now_s();
	if (scan(buf, size, 0, &s) != 0)
		return 1;
	double full = now_s() - t;
	t = now_s();
	if (scan(buf, size, 100000, &s) != 1)
		return 1;
	double stopped = now_s() - t;
	scan(buf, size, 0, &s);
	printf("\nhostile append, 31M empty entries, %.1f MiB\n", (double)size / (1 << 20));
	printf("  walked to the end: %.1f ms (%.1f ms per MiB), unpack would allocate %.0f MiB\n",
	       full * 1e3, full * 1e3 / ((double)size / (1 << 20)), (double)s.unpacked / (1 << 20));
	printf("  stopped at 100000 entries: %.3f ms\n", stopped * 1e3);
	free(buf);

	/* a request that unpacks to ~120 MB, unpacked in another thread (its own arena, as in the
	 * daemon, where nng's thread unpacks and a worker frees) */
	struct unpack_job j = {.buf = pack_raw(50000, tags, sizeof(tags), &j.size)};
	pthread_t th;
	if (j.buf == NULL)
		return 1;
	long before = rss_kb();
	pthread_create(&th, NULL, unpack_main, &j);
	pthread_join(th, NULL);
	long peak = rss_kb();
	hsamem__request__free_unpacked(j.req, NULL);
	long freed = rss_kb();
	t = now_s();
	malloc_trim(0);
	double trim = now_s() - t;
	long trimmed = rss_kb();
	printf("\nunpack of 50000 entries of 32 tags (%.1f MiB): resident +%ld MiB unpacked, "
	       "+%ld MiB once freed, +%ld MiB after malloc_trim(0), which took %.2f ms\n",
	       (double)j.size / (1 << 20), (peak - before) >> 10, (freed - before) >> 10,
	       (trimmed - before) >> 10, trim * 1e3);
	if (json != NULL)
		fprintf(json,
		        ",{\"hostile_bytes\":%zu,\"walk_full_ms\":%.3f,\"walk_stopped_ms\":%.3f,"
		        "\"kept_kb\":%ld,\"trimmed_kb\":%ld,\"trim_ms\":%.3f}",
		        size, full * 1e3, stopped * 1e3, freed - before, trimmed - before,
		        trim * 1e3);
	free((void *)j.buf);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"iters", required_argument, NULL, 'i'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {0}};
	static const size_t shapes[][2] = {{100000, 40}, {10000, 1000}, {1000, 60000}};
	FILE *json = NULL;
	int iters = 20, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'i' && (iters = atoi(optarg)) > 0)
			continue;
		if (c == 'j' && (json = fopen(optarg, "w")) != NULL)
			continue;
		fprintf(stderr, "usage: bench_wire [--iters N] [--json FILE]\n");
		return 2;
	}
	printf("%-10s %-10s %-10s %-14s %-12s %-12s %s\n", "entries", "text", "MiB", "scan ms",
	       "unpack ms", "scan GB/s", "scan ms/MiB");
	if (json != NULL)
		fprintf(json, "[");
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		size_t size = 0;
		uint8_t *buf = pack_append(shapes[s][0], shapes[s][1], &size);
		double walk = 1e9, unpack = 1e9;
		if (buf == NULL)
			return 1;
		for (int i = 0; i < iters; i++) {
			struct wire_scan sc;
			double t = now_s();
			if (scan(buf, size, 100000, &sc) != 0)
				return 1;
			if ((t = now_s() - t) < walk)
				walk = t;
			t = now_s();
			Hsamem__Request *req = hsamem__request__unpack(NULL, size, buf);
			if ((t = now_s() - t) < unpack)
				unpack = t;
			hsamem__request__free_unpacked(req, NULL);
		}
		printf("%-10zu %-10zu %-10.1f %-14.3f %-12.3f %-12.1f %.3f\n", shapes[s][0],
		       shapes[s][1], (double)size / (1 << 20), walk * 1e3, unpack * 1e3,
		       (double)size / walk / 1e9, walk * 1e3 / ((double)size / (1 << 20)));
		if (json != NULL)
			fprintf(json,
			        "%s{\"entries\":%zu,\"text\":%zu,\"bytes\":%zu,\"scan_ms\":%."
			        "3f,"
			        "\"unpack_ms\":%.3f}",
			        s > 0 ? "," : "", shapes[s][0], shapes[s][1], size, walk * 1e3,
			        unpack * 1e3);
		free(buf);
	}
	if (hostile(json) != 0)
		return 1;
	if (json != NULL) {
		fprintf(json, "]\n");
		fclose(json);
	}
	return 0;
}
