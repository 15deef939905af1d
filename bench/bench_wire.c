/*
 * bench_wire.c: what refusing NUL bytes on the wire costs the daemon: wire_find_nul() over a
 * serialized append request (proto/wire.h), beside hsamem__request__unpack() of the same bytes,
 * which the daemon does anyway. Shapes: many small entries (the walk's cost per field) and few
 * large ones (its cost per byte); best of --iters runs each.
 *
 * Usage: bench_wire [--iters N] [--json FILE]
 */
#include <getopt.h>
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
	printf("%-10s %-10s %-10s %-14s %-12s %s\n", "entries", "text", "MiB", "find_nul ms",
	       "unpack ms", "find_nul GB/s");
	if (json != NULL)
		fprintf(json, "[");
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		size_t size = 0;
		uint8_t *buf = pack_append(shapes[s][0], shapes[s][1], &size);
		double walk = 1e9, unpack = 1e9;
		if (buf == NULL)
			return 1;
		for (int i = 0; i < iters; i++) {
			double t = now_s();
			if (wire_find_nul(&hsamem__request__descriptor, buf, size, NULL) != 0)
				return 1;
			if ((t = now_s() - t) < walk)
				walk = t;
			t = now_s();
			Hsamem__Request *req = hsamem__request__unpack(NULL, size, buf);
			if ((t = now_s() - t) < unpack)
				unpack = t;
			hsamem__request__free_unpacked(req, NULL);
		}
		printf("%-10zu %-10zu %-10.1f %-14.3f %-12.3f %.1f\n", shapes[s][0], shapes[s][1],
		       (double)size / (1 << 20), walk * 1e3, unpack * 1e3,
		       (double)size / walk / 1e9);
		if (json != NULL)
			fprintf(json,
			        "%s{\"entries\":%zu,\"text\":%zu,\"bytes\":%zu,\"find_nul_ms\":%."
			        "3f,"
			        "\"unpack_ms\":%.3f}",
			        s > 0 ? "," : "", shapes[s][0], shapes[s][1], size, walk * 1e3,
			        unpack * 1e3);
		free(buf);
	}
	if (json != NULL) {
		fprintf(json, "]\n");
		fclose(json);
	}
	return 0;
}
