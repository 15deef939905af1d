/*
 * ops_recall.h: entry-level recall (hsamem(7), ENTRY RECALL): the entries of a query's selected
 * chunks ranked by the HSA evidence on their tokens (ops_recall.c).
 */
#ifndef HSAMEM_OPS_RECALL_H
#define HSAMEM_OPS_RECALL_H

#include <stdint.h>

#include "job.h"
#include "store.h"
#include "store_filter.h"

/* One selected chunk: its fusion weight and in-chunk attention ([G][S] rows stride apart). */
struct recall_chunk {
	uint64_t chunk; /* the tail is n_chunks */
	const struct store_tokref *refs;
	uint32_t n_real;
	float weight;
	const float *attn;
	uint32_t G, stride;
};

struct recall_opts {
	uint32_t max_hits; /* entries returned, context aside */
	uint32_t context;  /* passing entries shown around each hit, each side */
	bool has_min_score;
	float min_score;
	const struct store_filter *f;
};

/*
 * Scores every passing entry the chunks cover (the sum over chunks of weight times the attention
 * mass on its tokens, averaged over the query heads), and fills r->entries best first, each
 * followed by its context, and r->below_min_score. Fails the job on a store error.
 */
int ops_recall_entries(struct job *job, struct store_txn *txn, const struct store_user *u,
                       const struct recall_chunk *ch, size_t n_ch, const struct recall_opts *o,
                       Hsamem__QueryReply *r);

#endif
