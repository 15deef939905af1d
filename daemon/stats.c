/*
 * stats.c: histogram arithmetic.
 */
#include <assert.h>
#include <math.h>

#include "stats.h"

void
stats_name(struct stats *s, unsigned op, const char *name)
{
	assert(op < STATS_MAX_OPS);
	s->names[op] = name;
	if (op >= s->n_ops)
		s->n_ops = op + 1;
}

double
stats_bound_ms(int i)
{
	return 0.01 * pow(10.0, (i + 1) / 10.0);
}

unsigned
stats_code_index(int status)
{
	return status <= -1001 && status > -1000 - STATS_CODES ? (unsigned)(-1000 - status) : 0;
}

void
stats_record(struct stats *s, unsigned op, int64_t ns, int status)
{
	assert(op < STATS_MAX_OPS);
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	if (status != 0) {
		atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->op_errors[op], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->codes[stats_code_index(status)], 1,
		                          memory_order_relaxed);
	}
	double ms = (double)ns / 1e6;
	int i = ms <= 0.01 ? 0 : (int)floor(10.0 * log10(ms / 0.01));
	if (i < 0)
		i = 0;
	if (i > STATS_BUCKETS)
		i = STATS_BUCKETS;
	atomic_fetch_add_explicit(&s->hist[op].counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->hist[op].sum_ns, ns > 0 ? (uint64_t)ns : 0,
	                          memory_order_relaxed);
}

uint64_t
stats_total(const struct stats_hist *h)
{
	uint64_t n = 0;
	for (int i = 0; i <= STATS_BUCKETS; i++)
		n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
	return n;
}

double
stats_quantile_ms(const struct stats_hist *h, double q)
{
	uint64_t total = stats_total(h), seen = 0;
	if (total == 0)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)total);
	for (int i = 0; i <= STATS_BUCKETS; i++) {
		seen += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		if (seen >= want)
			return stats_bound_ms(i < STATS_BUCKETS ? i : STATS_BUCKETS - 1);
	}
	return stats_bound_ms(STATS_BUCKETS - 1);
}
