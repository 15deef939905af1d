/*
 * bench_corpus.h: what the daemon benchmarks on English text share (bench_corpus.c): the corpus
 * of bench/corpus.sh read into memory, one entry a line, a monotonic clock and quantiles.
 */
#ifndef HSAMEM_BENCH_CORPUS_H
#define HSAMEM_BENCH_CORPUS_H

#include <stddef.h>

/* The corpus's non-empty lines, after bench_read_lines. */
extern char **lines;
extern size_t n_lines;

/* Reads the lines of path; 0, or -1 when it cannot be read or holds none. */
int bench_read_lines(const char *path);

/* Seconds of the monotonic clock. */
double now_s(void);

/* Sorts v and returns its q-quantile (nearest rank). */
double pct(double *v, size_t n, double q);

#endif
