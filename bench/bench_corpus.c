/*
 * bench_corpus.c: the corpus reader, clock and quantiles of the daemon benchmarks on English text
 * (bench_corpus.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"

char **lines;
size_t n_lines;

double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
bench_read_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[1 << 16];
	size_t cap = 0;
	if (f == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		buf[strcspn(buf, "\n")] = '\0';
		if (buf[0] == '\0')
			continue;
		if (n_lines == cap &&
		    (lines = realloc(lines, (cap = cap * 2 + 4096) * sizeof(*lines))) == NULL)
			return -1;
		lines[n_lines++] = strdup(buf);
	}
	fclose(f);
	return n_lines > 0 ? 0 : -1;
}

static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double
pct(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), by_value);
	return n ? v[(size_t)(q * (double)(n - 1) + 0.5)] : 0;
}
