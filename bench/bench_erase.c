/*
 * bench_erase.c: what a delete costs, hsamemd end to end over ipc with the lexical encoder. A
 * delete is answered once its records are removed and the store has overwritten every byte they
 * leave in data.mdb (hsamem(7), DELETE AND ERASURE), which reads the headers of the whole
 * store: so the cost follows the store's size more than the memory's.
 *
 *   for each store size (others' memories, filled first) and each memory size:
 *     fill a memory to that many MB of K/V and landmarks, delete it, time the delete
 *   then the append right after a delete, and query latency on another memory, for reference
 *
 * Usage: bench_erase [--store MB,...] [--sizes MB,...] [--runs N] [--json FILE]
 * The text is generated (sentences over a fixed vocabulary, as the tests do): no corpus needed.
 * Point HSAMEM_TOP_BUILDDIR at another build to time its hsamemd with the same client.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "hsamem.h"

#define MAX_LIST 8
#define BATCH    64

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static size_t
parse_list(const char *s, double *out)
{
	size_t n = 0;
	for (char *end; *s != '\0' && n < MAX_LIST; s = *end == ',' ? end + 1 : end) {
		out[n++] = strtod(s, &end);
		if (end == s)
			break;
	}
	return n;
}

/* Sentence seed of a fixed vocabulary: ordinary text for the lexical encoder. */
static void
sentence(uint64_t seed, char *buf, size_t len)
{
	static const char *const words[] = {
	        "river",   "morning", "people", "walked",  "along",     "quiet",  "road",
	        "market",  "opened",  "early",  "bread",   "children",  "played", "near",
	        "school",  "weather", "turned", "cold",    "evening",   "train",  "arrived",
	        "late",    "station", "garden", "flowers", "grew",      "tall",   "summer",
	        "letters", "written", "hand",   "old",     "friends",   "shared", "stories",
	        "the",     "of",      "and",    "a",       "mountains", "kernel", "driver",
	        "memory",  "page",    "device", "buffer",  "queue",     "thread", "lock"};
	size_t n = 0, nw = sizeof(words) / sizeof(words[0]);
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (int i = 0; i < 40 && n + 24 < len; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "",
		                      words[(x >> 33) % nw]);
	}
	snprintf(buf + n, len - n, " %llu.", (unsigned long long)seed);
}

static uint64_t
memory_bytes(struct hsamem *c, const char *user)
{
	struct hsamem_stats *s = NULL;
	uint64_t b = 0;
	if (hsamem_stats(c, user, &s) == 0 && s->n_memories == 1)
		b = s->memories[0].bytes;
	hsamem_result_free(s);
	return b;
}

/* Appends to user until its K/V and landmarks reach mb MB. */
static int
fill(struct hsamem *c, const char *user, double mb, uint64_t *seed)
{
	static char text[BATCH][400];
	struct hsamem_entry_in in[BATCH];
	uint64_t target = (uint64_t)(mb * 1e6), have = 0;
	struct hsamem_append_info info;
	while (have < target) {
		for (int i = 0; i < BATCH; i++) {
			sentence((*seed)++, text[i], sizeof(text[i]));
			in[i] = (struct hsamem_entry_in){.text = text[i], .role = HSAMEM_ROLE_USER};
		}
		int err = hsamem_append(c, user, in, BATCH, NULL, 0, 0, &info);
		if (err != 0) {
			fprintf(stderr, "append: %s\n", hsamem_last_message(c));
			return err;
		}
		/* 18 KiB a chunk of the lexical encoder; asked of the daemon now and then */
		have = info.chunks * 18432;
		if (have >= target)
			have = memory_bytes(c, user);
	}
	return 0;
}

/* The last erasure the daemon logged: its time and KiB written (none: -1). */
static void
last_erasure(const struct harness *h, double *ms, double *kib)
{
	FILE *f = fopen(h->log, "r");
	char line[512];
	*ms = *kib = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "store: erased in ");
		const char *w = p != NULL ? strstr(p, "dead, ") : NULL;
		if (p != NULL && w != NULL) {
			*ms = strtod(p + strlen("store: erased in "), NULL);
			*kib = strtod(w + strlen("dead, "), NULL);
		}
	}
	if (f != NULL)
		fclose(f);
}

static uint64_t
store_used(struct hsamem *c)
{
	struct hsamem_stats *s = NULL;
	uint64_t b = 0;
	if (hsamem_stats(c, NULL, &s) == 0)
		b = s->store_map_used;
	hsamem_result_free(s);
	return b;
}

static double
query_p50(struct hsamem *c, const char *user, int n)
{
	double t[64];
	n = n > 64 ? 64 : n;
	for (int i = 0; i < n; i++) {
		struct hsamem_query_result *r = NULL;
		double t0 = now_ms();
		hsamem_query_text(c, user, "the children played near the old station", 8, &r);
		t[i] = now_ms() - t0;
		hsamem_result_free(r);
	}
	qsort(t, (size_t)n, sizeof(double), cmp_double);
	return t[n / 2];
}

int
main(int argc, char **argv)
{
	double stores[MAX_LIST] = {0, 200}, sizes[MAX_LIST] = {1, 10, 50};
	size_t n_stores = 2, n_sizes = 3;
	int runs = 3, opt;
	const char *json = NULL;
	static const struct option longopts[] = {{"store", 1, NULL, 's'},
	                                         {"sizes", 1, NULL, 'm'},
	                                         {"runs", 1, NULL, 'r'},
	                                         {"json", 1, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	while ((opt = getopt_long(argc, argv, "s:m:r:j:", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': n_stores = parse_list(optarg, stores); break;
		case 'm': n_sizes = parse_list(optarg, sizes); break;
		case 'r': runs = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'j': json = optarg; break;
		default:
			fprintf(stderr, "usage: bench_erase [--store MB,...] [--sizes MB,...] "
			                "[--runs N] [--json FILE]\n");
			return 2;
		}
	}
	FILE *jf = json != NULL ? fopen(json, "w") : NULL;
	if (jf != NULL)
		fprintf(jf, "[");
	printf("| store MB (used) | memory MB | delete p50 ms | min | max | of it erasing, ms | "
	       "KiB written | append after, ms | query p50 ms |\n"
	       "|---|---|---|---|---|---|---|---|---|\n");
	bool first = true;
	for (size_t si = 0; si < n_stores; si++) {
		struct harness h;
		struct hsamem *c = NULL;
		uint64_t seed = 1;
		if (harness_init(&h) != 0)
			return 1;
		h.extra[0] = "-o"; /* after the harness's: the erasures' figures */
		h.extra[1] = "log-level=info";
		if (harness_start(&h) != 0 || hsamem_open(h.url, &c) != 0) {
			fprintf(stderr, "cannot start hsamemd\n");
			harness_dump_log(&h);
			harness_fini(&h);
			return 1;
		}
		hsamem_set_timeout(c, 600000);
		if (fill(c, "others", stores[si] > 0 ? stores[si] : 0.1, &seed) != 0)
			return 1;
		for (size_t mi = 0; mi < n_sizes; mi++) {
			double t[32], er[32], kib[32], after = 0;
			int n = runs > 32 ? 32 : runs;
			uint64_t used = 0;
			for (int r = 0; r < n; r++) {
				if (fill(c, "victim", sizes[mi], &seed) != 0)
					return 1;
				used = store_used(c);
				double t0 = now_ms();
				if (hsamem_delete(c, "victim", NULL) != 0) {
					fprintf(stderr, "delete: %s\n", hsamem_last_message(c));
					return 1;
				}
				t[r] = now_ms() - t0;
				last_erasure(&h, &er[r], &kib[r]);
				t0 = now_ms();
				hsamem_append_text(c, "others", HSAMEM_ROLE_USER, "one more line",
				                   NULL);
				after += now_ms() - t0;
			}
			qsort(t, (size_t)n, sizeof(double), cmp_double);
			qsort(er, (size_t)n, sizeof(double), cmp_double);
			qsort(kib, (size_t)n, sizeof(double), cmp_double);
			double q = query_p50(c, "others", 21);
			printf("| %.0f (%.0f) | %.0f | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f | "
			       "%.2f |\n",
			       stores[si], used / 1e6, sizes[mi], t[n / 2], t[0], t[n - 1],
			       er[n / 2], kib[n / 2], after / n, q);
			fflush(stdout);
			if (jf != NULL)
				fprintf(jf,
				        "%s{\"store_mb\":%.0f,\"store_used_mb\":%.1f,\"memory_mb\":"
				        "%.0f,"
				        "\"delete_p50_ms\":%.2f,\"delete_min_ms\":%.2f,"
				        "\"delete_max_ms\":%.2f,\"erase_p50_ms\":%.2f,"
				        "\"erase_kib_p50\":%.0f,\"append_after_ms\":%.2f,"
				        "\"query_p50_ms\":%.3f}",
				        first ? "" : ",", stores[si], used / 1e6, sizes[mi],
				        t[n / 2], t[0], t[n - 1], er[n / 2], kib[n / 2], after / n,
				        q);
			first = false;
		}
		hsamem_close(c);
		harness_fini(&h);
	}
	if (jf != NULL) {
		fprintf(jf, "]\n");
		fclose(jf);
	}
	return 0;
}
