/*
 * ops_recall.c: entry-level recall (hsamem(7), ENTRY RECALL). A query selects chunks; here each
 * entry that the selected chunks cover is scored by the HSA evidence on its own tokens: for each
 * chunk, its fusion weight times the in-chunk attention mass on the entry's tokens (the mean over
 * the query heads of the kv head that chose it), summed over the chunks that hold its tokens, so
 * an entry split across two chunks is one hit with the evidence of both. Only entries passing the
 * query's filter are scored or shown, context included.
 */
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_filter.h"
#include "ops_recall.h"

#define CONTEXT_MAX  8
#define CONTEXT_SCAN 64 /* entries looked at on each side for context that passes the filter */

struct scored {
	uint64_t seq;
	float score;
	uint64_t chunks[4]; /* the first chunks holding it */
	uint32_t n_chunks;
};

static int
cmp_scored(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Adds the evidence of one chunk to the list (linear search: at most k * S entries). */
static void
add_chunk(const struct recall_chunk *c, struct scored *sc, size_t *n)
{
	for (uint32_t s = 0; s < c->n_real; s++) {
		float a = 0;
		for (uint32_t g = 0; c->attn != NULL && g < c->G; g++)
			a += c->attn[(size_t)g * c->stride + s];
		a = c->G > 0 ? a / (float)c->G : 0;
		uint64_t seq = c->refs[s].entry;
		size_t i = *n;
		while (i > 0 && sc[i - 1].seq != seq)
			i--;
		if (i == 0) {
			i = (*n)++;
			sc[i] = (struct scored){.seq = seq};
		} else
			i--;
		sc[i].score += c->weight * a;
		if ((sc[i].n_chunks == 0 || sc[i].chunks[sc[i].n_chunks - 1] != c->chunk) &&
		    sc[i].n_chunks < 4)
			sc[i].chunks[sc[i].n_chunks++] = c->chunk;
	}
}

static int
push_hit(struct job *job, struct store_txn *txn, const struct store_user *u, Hsamem__QueryReply *r,
         const struct scored *s, uint64_t seq, bool context)
{
	Hsamem__EntryHit *h = arena_alloc(&job->arena, sizeof(*h));
	if (h == NULL)
		return ops_oom(job);
	hsamem__entry_hit__init(h);
	if (ops_entry_to_proto(job, txn, u->uid, seq, &h->entry) != 0)
		return job->reply.status;
	h->has_context = context;
	h->context = context;
	if (s != NULL) {
		h->has_score = true;
		h->score = s->score;
		h->chunks = arena_memdup(&job->arena, s->chunks, sizeof(s->chunks));
		if (h->chunks == NULL)
			return ops_oom(job);
		h->n_chunks = s->n_chunks;
	}
	r->entries[r->n_entries++] = h;
	return 0;
}

/* Whether seq is already shown. */
static bool
shown(const Hsamem__QueryReply *r, uint64_t seq)
{
	for (size_t i = 0; i < r->n_entries; i++)
		if (r->entries[i]->entry->seq == seq)
			return true;
	return false;
}

/* Up to o->context passing entries on one side (dir -1 or +1) of seq, nearest first. */
static int
push_context(struct job *job, struct store_txn *txn, const struct store_user *u,
             const struct recall_opts *o, Hsamem__QueryReply *r, uint64_t seq, int dir)
{
	uint32_t got = 0;
	bool pass;
	for (uint64_t i = 1; i <= CONTEXT_SCAN && got < o->context; i++) {
		if ((dir < 0 && i > seq) || (dir > 0 && seq + i >= u->n_entries))
			break;
		uint64_t s = dir < 0 ? seq - i : seq + i;
		if (ops_entry_passes(job, txn, u->uid, o->f, s, &pass) != 0)
			return job->reply.status;
		if (!pass || shown(r, s))
			continue;
		if (push_hit(job, txn, u, r, NULL, s, true) != 0)
			return job->reply.status;
		got++;
	}
	return 0;
}

int
ops_recall_entries(struct job *job, struct store_txn *txn, const struct store_user *u,
                   const struct recall_chunk *ch, size_t n_ch, const struct recall_opts *o,
                   Hsamem__QueryReply *r)
{
	size_t cap = 1, n = 0, kept = 0;
	for (size_t i = 0; i < n_ch; i++)
		cap += ch[i].n_real;
	struct scored *sc = arena_calloc(&job->arena, cap, sizeof(*sc));
	if (sc == NULL)
		return ops_oom(job);
	for (size_t i = 0; i < n_ch; i++)
		add_chunk(&ch[i], sc, &n);
	/* drop what fails the filter or the threshold */
	for (size_t i = 0; i < n; i++) {
		bool pass;
		if (ops_entry_passes(job, txn, u->uid, o->f, sc[i].seq, &pass) != 0)
			return job->reply.status;
		if (!pass)
			continue;
		if (o->has_min_score && sc[i].score < o->min_score) {
			r->below_min_score++;
			continue;
		}
		sc[kept++] = sc[i];
	}
	r->has_below_min_score = o->has_min_score;
	qsort(sc, kept, sizeof(*sc), cmp_scored);
	if (kept > o->max_hits)
		kept = o->max_hits;
	uint32_t ctx = o->context < CONTEXT_MAX ? o->context : CONTEXT_MAX;
	r->entries =
	        arena_calloc(&job->arena, kept * (1 + 2 * (size_t)ctx) + 1, sizeof(*r->entries));
	if (r->entries == NULL)
		return ops_oom(job);
	for (size_t i = 0; i < kept; i++) {
		if (shown(r, sc[i].seq))
			continue; /* shown as context of a better hit */
		if (push_hit(job, txn, u, r, &sc[i], sc[i].seq, false) != 0 ||
		    (ctx > 0 && (push_context(job, txn, u, o, r, sc[i].seq, -1) != 0 ||
		                 push_context(job, txn, u, o, r, sc[i].seq, +1) != 0)))
			return job->reply.status;
	}
	return 0;
}
