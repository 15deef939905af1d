/*
 * stats.h: request counters and latency histograms, updated lock-free by every worker.
 * Buckets are log-spaced, ten per decade from 10 us to 10 s, so a percentile read from them is
 * within about 26% of the true value; benchmarks that need exact figures time on the client.
 * Operations are known here by number; the table of dispatch.c gives each histogram its name at
 * start.
 */
#ifndef HSAMEM_STATS_H
#define HSAMEM_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Histograms kept: one per operation, numbered as in dispatch.c (which checks that they fit). */
#define STATS_MAX_OPS 24

#define STATS_BUCKETS 60

/* Error kinds counted: index 0 is a system error (a negated errno), index i the code -1000 - i
 * (HSAMEM_EPROTO is 1); codes past the table count as a system error would. */
#define STATS_CODES 32

struct stats_hist {
	atomic_uint_fast64_t counts[STATS_BUCKETS + 1]; /* the last one: above 10 s */
	atomic_uint_fast64_t sum_ns;                    /* of every latency recorded */
};

struct stats {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t op_errors[STATS_MAX_OPS]; /* failed requests of each operation */
	atomic_uint_fast64_t codes[STATS_CODES];       /* failed requests by error kind */
	unsigned n_ops;                                /* histograms named: 0 .. n_ops - 1 */
	const char *names[STATS_MAX_OPS];              /* their names, in the stats reply */
	struct stats_hist hist[STATS_MAX_OPS];
};

/* Names histogram op (< STATS_MAX_OPS), before requests are recorded; name must outlive s. */
void stats_name(struct stats *s, unsigned op, const char *name);

/* Counts a request of op that took ns and ended with status (0, or its error code). */
void stats_record(struct stats *s, unsigned op, int64_t ns, int status);
/* The index in codes[] that status (an error code) counts under. */
unsigned stats_code_index(int status);
/* Upper bound of bucket i in milliseconds. */
double stats_bound_ms(int i);
/* Requests of op recorded so far, and the q-quantile (0 < q < 1) in ms (0 when none). */
uint64_t stats_total(const struct stats_hist *h);
double stats_quantile_ms(const struct stats_hist *h, double q);

#endif
