/*
 * cpu.c: the CPU backend. HSA attention exactly as hsamem(7) states it, in fp32, on a pool of
 * threads of its own (cpu_pool.h). It owns that pool and nothing else: no cache and no state
 * between calls but two counters; every landmark and K/V is read from the source during the call,
 * so the unsealed tail of a source (backend.h) needs no care beyond leaving its padding keys out.
 * It is the oracle that the CUDA backend is tested against and the daemon's fallback. The formulas
 * are the reference math's (hsa_math.h) and the inner loops the kernels' (cpu_kernels.h); this file
 * cuts a call into pieces and moves the data between them. Speed comes from streaming the
 * landmarks once (converted to f32 in blocks that stay in L1, or in registers on the way into the
 * dot products) rather than from cleverness. The one exception is a sparse query (a lexical
 * question weighs a few dozen of 1,024 elements): it reads only its elements, from the source's
 * sparse form where it has one (backend.h, hsa_sparse_rows) and from the dense rows otherwise,
 * with the same sums either way (dots_sparse).
 *
 * One attend() call works through its tokens in groups of up to TOK_GROUP, each in two phases:
 *
 *   1. scoring: the group's visible chunks are cut into ranges (and its tokens into subgroups when
 *      there are few chunks); each piece scores its chunks and keeps a bounded heap of its own best
 *      k per (token, kv head), so no piece waits for another;
 *   2. attention: per (token, kv head) the pieces' heaps are merged into the top-k, weighted,
 *      and the selected chunks are attended to one by one.
 *
 * The pieces of both phases go to the pool.
 *
 * Invariants:
 *   1. A chunk's score depends only on the chunk and the query, never on which piece scored it, and
 *      the ranking (score, then lower index) is a strict total order: results are bit-identical
 *      whatever the number of threads or the lengths of the source's landmark runs.
 *   2. Scores that are NaN rank as -inf; every visible chunk stays a candidate, whatever its score,
 *      unless the query's mask leaves it out (then it is never one).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_kernels.h"
#include "cpu_pool.h"
#include "half.h"
#include "hsa_math.h"
#include "hsamem_defs.h"
#include "sparse_rows.h"

#define TOK_GROUP        64         /* most tokens scored together, per pass over the landmarks */
#define HEAP_BYTES       (16 << 20) /* the heaps' memory, which may shrink a group */
#define BLOCK_FLOATS     4096       /* rows converted at once: 16 KiB, they stay in L1 */
#define SCORE_MIN_CHUNKS 2048       /* fewest chunks worth a scoring piece of their own */
#define SCORE_MIN_WORK   (1 << 18)  /* fewest landmark elements worth more than one piece */
#define ATTEND_MIN_WORK  (1 << 18)  /* fewest attention multiply-adds worth more than one piece */
#define PREFETCH_BYTES   32768      /* of one chunk's K, and of its V, asked for ahead of use */
#define THREADS_MAX      256
#define SPARSE_Q_SHARE   4 /* a query is sparse when at most 1/4 of each head's elements are set */
#define SPARSE_Q_MAX     256 /* and at most this many */

/* ---- the backend ---- */

struct cpu_backend {
	struct gpu_backend base;
	const struct cpu_kernels *kern;
	unsigned threads;
	struct cpu_pool pool;
	atomic_uint_fast64_t calls;
	atomic_uint_fast64_t errors;
};

/* One attend() call, shared by its pieces. The fields below "group" change per token group. */
struct call {
	const struct cpu_kernels *kern;
	const struct hsa_spec *spec;
	const struct hsa_source *src;
	const struct hsa_query *q;
	struct hsa_result *res;
	uint32_t G, d_rh, k;
	size_t esz;
	float r_scale, a_scale; /* 1/sqrt(d_r/h_kv), 1/sqrt(d_h) */
	uint64_t *vis;          /* [n] visible chunks per token */
	uint64_t *cands;        /* [n] of them, those the query's mask allows */
	uint32_t group;         /* tokens per group */
	struct hsa_cand *heaps; /* [ranges][group][h_kv][k] */
	uint32_t *heap_size;    /* [ranges][group][h_kv] */

	/* a sparse query (score_sparse): per token and kv head, its nonzero elements */
	uint32_t *nz_n;  /* [n][h_kv] how many, NULL when the query is dense */
	uint32_t *nz_at; /* [n][h_kv][nz_cap] which, increasing */
	float *nz_q;     /* [n][h_kv][nz_cap] their values */
	uint32_t nz_cap;

	/* group */
	uint32_t t0, nt;    /* tokens t0 .. t0+nt-1 */
	uint64_t max_vis;   /* most chunks any token of the group sees */
	size_t n_ranges;    /* chunk ranges of the scoring phase */
	size_t n_subgroups; /* token subgroups of the scoring phase */
	size_t n_attend;    /* pieces of the attention phase */
};

static inline size_t
heap_slot(const struct call *c, size_t range, uint32_t t, uint32_t r)
{
	return (range * c->group + (t - c->t0)) * c->spec->h_kv + r;
}

/* Element x (2 bytes at p) of a 2-byte dtype as a float. */
static inline float
elem16(enum hsa_dtype dtype, const uint8_t *p)
{
	uint16_t h = (uint16_t)(p[0] | p[1] << 8);
	return dtype == HSA_BF16 ? half_bf16_to_float(h) : half_f16_to_float(h);
}

/*
 * Sees whether every token's retrieval query is sparse (at most 1/SPARSE_Q_SHARE of each head's
 * elements set) for landmarks of a 2-byte dtype, and if so lists its nonzero elements
 * (c->nz_*). Returns 0 (c->nz_n NULL: a dense query) or -ENOMEM.
 */
static int
sparse_query(struct call *c)
{
	const struct hsa_spec *sp = c->spec;
	uint32_t cap =
	        c->d_rh / SPARSE_Q_SHARE < SPARSE_Q_MAX ? c->d_rh / SPARSE_Q_SHARE : SPARSE_Q_MAX;
	size_t heads = (size_t)c->q->n * sp->h_kv;
	if (c->esz != 2 || cap == 0)
		return 0;
	for (size_t h = 0; h < heads; h++) {
		const float *qr = c->q->qr + h * c->d_rh;
		uint32_t n = 0;
		for (uint32_t e = 0; e < c->d_rh && n <= cap; e++)
			n += qr[e] != 0;
		if (n > cap)
			return 0;
	}
	c->nz_n = malloc(heads * sizeof(uint32_t));
	c->nz_at = malloc(heads * cap * sizeof(uint32_t));
	c->nz_q = malloc(heads * cap * sizeof(float));
	if (c->nz_n == NULL || c->nz_at == NULL || c->nz_q == NULL)
		return -ENOMEM;
	c->nz_cap = cap;
	for (size_t h = 0; h < heads; h++) {
		const float *qr = c->q->qr + h * c->d_rh;
		uint32_t n = 0;
		for (uint32_t e = 0; e < c->d_rh; e++)
			if (qr[e] != 0) {
				c->nz_at[h * cap + n] = e;
				c->nz_q[h * cap + n++] = qr[e];
			}
		c->nz_n[h] = n;
	}
	return 0;
}

/*
 * The dots of m rows with a sparse query's head (n elements at[], values q[]), into sc: from the
 * sparse block when sr is not NULL, else from the dense rows. Either way each row's dot sums the
 * same products in the same order (increasing element; the zeros left out add nothing), so that a
 * memory scores bit for bit alike whichever way it is stored.
 */
static void
dots_sparse(const struct call *c, const struct hsa_sparse_rows *sr, const uint8_t *rows, uint32_t r,
            const uint32_t *at, const float *q, uint32_t n, size_t m, float *sc)
{
	enum hsa_dtype dt = c->spec->dtype;
	if (sr == NULL) {
		for (size_t i = 0; i < m; i++) {
			const uint8_t *row = rows + (i * c->spec->d_r + (size_t)r * c->d_rh) * 2;
			float s = 0;
			for (uint32_t x = 0; x < n; x++)
				s += q[x] * elem16(dt, row + 2 * (size_t)at[x]);
			sc[i] = s;
		}
		return;
	}
	/* Each element's entries are a few bytes somewhere in the block: ask for all of them before
	 * using any, so that their cache misses overlap instead of following one another. */
	uint32_t lo = sr->row0, w = sr->start_bytes, from[SPARSE_Q_MAX], to[SPARSE_Q_MAX];
	for (uint32_t x = 0; x < n; x++)
		__builtin_prefetch(sr->starts + ((size_t)r * c->d_rh + at[x]) * w);
	for (uint32_t x = 0; x < n; x++) {
		size_t e = (size_t)r * c->d_rh + at[x];
		from[x] = sparse_rows_start(sr->starts, w, e);
		to[x] = sparse_rows_start(sr->starts, w, e + 1);
		if (to[x] > sr->n_entries)
			to[x] = sr->n_entries;
		__builtin_prefetch(sr->entries + 3 * (size_t)from[x]);
	}
	for (size_t i = 0; i < m; i++)
		sc[i] = 0;
	for (uint32_t x = 0; x < n; x++) {
		for (uint32_t y = from[x]; y < to[x]; y++) {
			const uint8_t *en = sr->entries + 3 * (size_t)y;
			if (en[0] < lo)
				continue;
			if (en[0] >= lo + m)
				break;
			sc[en[0] - lo] += q[x] * elem16(dt, en + 1);
		}
	}
}

/* score_piece for a sparse query: chunks lo .. hi - 1 of range, tokens ta .. tb - 1. */
static int
score_sparse(struct call *c, size_t range, uint64_t lo, uint64_t hi, uint32_t ta, uint32_t tb)
{
	const struct hsa_spec *sp = c->spec;
	const struct hsa_source *src = c->src;
	float *sc = NULL;
	uint64_t cap = 0;
	int err = 0;
	for (uint64_t j = lo; j < hi;) {
		struct hsa_sparse_rows sr;
		const void *rows = NULL;
		uint64_t count = 0;
		if (src->landmarks_sparse != NULL)
			err = src->landmarks_sparse(src->ctx, j, &sr);
		else
			err = src->landmarks(src->ctx, j, &rows, &count);
		if (src->landmarks_sparse != NULL)
			count = sr.count;
		if (err == 0 && (count == 0 || (src->landmarks_sparse == NULL && rows == NULL)))
			err = HSAMEM_EINTERNAL;
		if (err != 0)
			break;
		if (count > hi - j)
			count = hi - j;
		if (count > cap) {
			float *more = realloc(sc, count * sizeof(float));
			if (more == NULL) {
				err = -ENOMEM;
				break;
			}
			sc = more;
			cap = count;
		}
		for (uint32_t t = ta; t < tb; t++) {
			if (c->vis[t] <= j)
				continue;
			size_t m = c->vis[t] - j < count ? (size_t)(c->vis[t] - j) : (size_t)count;
			for (uint32_t r = 0; r < sp->h_kv; r++) {
				size_t h = (size_t)t * sp->h_kv + r,
				       slot = heap_slot(c, range, t, r);
				struct hsa_cand *heap = c->heaps + slot * c->k;
				dots_sparse(c, src->landmarks_sparse != NULL ? &sr : NULL, rows, r,
				            c->nz_at + h * c->nz_cap, c->nz_q + h * c->nz_cap,
				            c->nz_n[h], m, sc);
				if (c->q->mask != NULL)
					hsa_offer_scores_masked(heap, &c->heap_size[slot], c->k, sc,
					                        m, c->r_scale, (int64_t)j,
					                        c->q->mask);
				else
					hsa_offer_scores(heap, &c->heap_size[slot], c->k, sc, m,
					                 c->r_scale, (int64_t)j);
			}
		}
		j += count;
	}
	free(sc);
	return err;
}

/* Scoring piece: the chunks of one range against the tokens of one subgroup. */
static int
score_piece(void *arg, size_t piece)
{
	struct call *c = arg;
	const struct hsa_spec *sp = c->spec;
	const struct hsa_source *src = c->src;
	size_t range = piece % c->n_ranges, sub = piece / c->n_ranges;
	uint64_t lo = c->max_vis * range / c->n_ranges, hi = c->max_vis * (range + 1) / c->n_ranges;
	uint32_t ta = c->t0 + (uint32_t)(c->nt * sub / c->n_subgroups);
	uint32_t tb = c->t0 + (uint32_t)(c->nt * (sub + 1) / c->n_subgroups);
	size_t d_r = sp->d_r, block = BLOCK_FLOATS / d_r > 0 ? BLOCK_FLOATS / d_r : 1;
	float *buf = NULL, *sc;
	uint64_t sub_vis = 0;
	int err = 0;

	for (uint32_t t = ta; t < tb; t++) {
		for (uint32_t r = 0; r < sp->h_kv; r++)
			c->heap_size[heap_slot(c, range, t, r)] = 0;
		if (c->vis[t] > sub_vis)
			sub_vis = c->vis[t];
	}
	if (hi > sub_vis)
		hi = sub_vis;
	if (lo >= hi)
		return 0;
	if (c->nz_n != NULL)
		return score_sparse(c, range, lo, hi, ta, tb);
	if ((buf = malloc((block * d_r + block) * sizeof(float))) == NULL)
		return -ENOMEM;
	sc = buf + block * d_r;

	for (uint64_t j = lo; j < hi;) {
		const void *rows = NULL;
		uint64_t count = 0;
		if ((err = src->landmarks(src->ctx, j, &rows, &count)) != 0)
			goto out;
		if (rows == NULL || count == 0) {
			err = HSAMEM_EINTERNAL;
			goto out;
		}
		if (count > hi - j)
			count = hi - j;
		bool direct = sp->dtype == HSA_F32 && ((uintptr_t)rows & 3) == 0;
		bool fused = sp->dtype != HSA_F32 && c->kern->dots16 != NULL &&
		             ((uintptr_t)rows & 1) == 0;
		for (uint64_t off = 0; off < count; off += block) {
			uint64_t jb = j + off;
			size_t nb = count - off < block ? (size_t)(count - off) : block;
			const char *raw = (const char *)rows + off * d_r * c->esz;
			const float *lm = (const float *)raw;
			if (!direct && !fused) {
				c->kern->cvt(sp->dtype, raw, buf, nb * d_r);
				lm = buf;
			}
			for (uint32_t t = ta; t < tb; t++) {
				if (c->vis[t] <= jb)
					continue;
				size_t m = c->vis[t] - jb < nb ? (size_t)(c->vis[t] - jb) : nb;
				const float *qr = c->q->qr + (size_t)t * d_r;
				for (uint32_t r = 0; r < sp->h_kv; r++) {
					size_t slot = heap_slot(c, range, t, r);
					struct hsa_cand *h = c->heaps + slot * c->k;
					if (fused)
						c->kern->dots16(sp->dtype, qr + r * c->d_rh,
						                (const uint16_t *)raw + r * c->d_rh,
						                d_r, m, c->d_rh, sc);
					else
						c->kern->dots(qr + r * c->d_rh, lm + r * c->d_rh,
						              d_r, m, c->d_rh, sc);
					if (c->q->mask != NULL)
						hsa_offer_scores_masked(h, &c->heap_size[slot],
						                        c->k, sc, m, c->r_scale,
						                        (int64_t)jb, c->q->mask);
					else
						hsa_offer_scores(h, &c->heap_size[slot], c->k, sc,
						                 m, c->r_scale, (int64_t)jb);
				}
			}
		}
		j += count;
	}
out:
	free(buf);
	return err;
}

/* Scratch of one attention piece. */
struct attend_scratch {
	struct hsa_cand *cand; /* [ranges * k] */
	float *logits;         /* [G][S] */
	float *rows;           /* [key_block][d_h] */
	size_t key_block;
};

/*
 * The rows of one chunk's K or V for kv head r, keys s0 .. s0+nb-1, as floats: straight from the
 * source when they are f32 and aligned, else converted into the scratch. Returns the rows; *ld is
 * the distance between them.
 */
static const float *
chunk_rows(const struct call *c, struct attend_scratch *sc, const char *base, uint32_t s0,
           size_t nb, size_t *ld)
{
	const struct hsa_spec *sp = c->spec;
	size_t stride = (size_t)sp->h_kv * sp->d_h;

	if (sp->dtype == HSA_F32 && ((uintptr_t)base & 3) == 0) {
		*ld = stride;
		return (const float *)base + s0 * stride;
	}
	for (size_t i = 0; i < nb; i++)
		c->kern->cvt(sp->dtype, base + (s0 + i) * stride * c->esz, sc->rows + i * sp->d_h,
		             sp->d_h);
	*ld = sp->d_h;
	return sc->rows;
}

/*
 * Asks the memory system for kv head r's K and V rows of a chunk before they are needed: they are
 * short runs far apart (one per key), which the hardware prefetcher does not foresee, so without
 * this every row would cost a full memory latency. Capped so that a large chunk does not flush
 * what it is about to use.
 */
static void
chunk_prefetch(const struct call *c, const void *kv, uint32_t r)
{
	const struct hsa_spec *sp = c->spec;
	size_t row = (size_t)sp->d_h * c->esz, stride = (size_t)sp->h_kv * row;
	const char *K = (const char *)kv + r * row, *V = K + (size_t)sp->S * stride;
	size_t n = PREFETCH_BYTES / row < sp->S ? PREFETCH_BYTES / row : sp->S;

	for (size_t s = 0; s < n; s++) {
		for (size_t off = 0; off < row; off += 64) {
			__builtin_prefetch(K + s * stride + off, 0, 3);
			__builtin_prefetch(V + s * stride + off, 0, 3);
		}
	}
}

/* The keys of chunk j that its softmax runs over: all S, but only the real ones of the tail. */
static inline uint32_t
chunk_keys(const struct call *c, int64_t j)
{
	if ((uint64_t)j >= gpu_source_sealed(c->src))
		return c->src->tail_keys;
	return c->spec->S;
}

/*
 * Attention inside selected chunk kv (rank i, weight w) for the query heads of kv head r, over its
 * first n keys.
 */
static void
attend_chunk(const struct call *c, struct attend_scratch *sc, uint32_t t, uint32_t r, uint32_t i,
             const void *kv, float w, uint32_t n)
{
	const struct hsa_spec *sp = c->spec;
	uint32_t S = sp->S, d_h = sp->d_h, G = c->G;
	size_t head0 = (size_t)t * sp->h_q + (size_t)r * G, ld;
	const float *rows;
	const char *K = (const char *)kv + (size_t)r * d_h * c->esz;
	const char *V = K + (size_t)S * sp->h_kv * d_h * c->esz;
	bool fused = sp->dtype != HSA_F32 && c->kern->dots16 != NULL && ((uintptr_t)K & 1) == 0;

	for (uint32_t s0 = 0; s0 < n; s0 += (uint32_t)sc->key_block) {
		size_t nb = n - s0 < sc->key_block ? n - s0 : sc->key_block;
		if (fused) {
			const uint16_t *kh = (const uint16_t *)K + (size_t)s0 * sp->h_kv * d_h;
			for (uint32_t g = 0; g < G; g++)
				c->kern->dots16(sp->dtype, c->q->qa + (head0 + g) * d_h, kh,
				                (size_t)sp->h_kv * d_h, nb, d_h,
				                sc->logits + (size_t)g * S + s0);
			continue;
		}
		rows = chunk_rows(c, sc, K, s0, nb, &ld);
		for (uint32_t g = 0; g < G; g++)
			c->kern->dots(c->q->qa + (head0 + g) * d_h, rows, ld, nb, d_h,
			              sc->logits + (size_t)g * S + s0);
	}
	/* Probabilities past n stay as attend_pair cleared them: zero. */
	for (uint32_t g = 0; g < G; g++) {
		float *p = sc->logits + (size_t)g * S;
		hsa_chunk_softmax(p, n, c->a_scale, sp->off_by_one);
		if (c->res->attn != NULL)
			memcpy(c->res->attn + ((head0 + g) * c->k + i) * S, p, n * sizeof(float));
	}
	if (w == 0.0f || c->res->out == NULL)
		return; /* nothing to fuse, or no output asked for */
	for (uint32_t s0 = 0; s0 < n; s0 += (uint32_t)sc->key_block) {
		size_t nb = n - s0 < sc->key_block ? n - s0 : sc->key_block;
		rows = chunk_rows(c, sc, V, s0, nb, &ld);
		for (uint32_t g = 0; g < G; g++) {
			c->kern->wsum(sc->logits + (size_t)g * S + s0, rows, ld, nb, d_h, w,
			              c->res->out + (head0 + g) * d_h);
		}
	}
}

/*
 * From rank *i on, the next selected chunk worth attending to: its K/V are fetched and prefetched
 * and *i names it; *i = kk when none is left.
 */
static int
next_chunk(const struct call *c, uint32_t r, size_t at, uint32_t kk, uint32_t *i, const void **kv)
{
	const struct hsa_result *res = c->res;

	for (; *i < kk; (*i)++) {
		if (res->weight[at + *i] == 0.0f && res->attn == NULL)
			continue; /* contributes nothing, and nothing is to be shown */
		int err = c->src->chunk_kv(c->src->ctx, (uint64_t)res->sel[at + *i], kv);
		if (err != 0)
			return err;
		if (*kv == NULL)
			return HSAMEM_EINTERNAL;
		chunk_prefetch(c, *kv, r);
		return 0;
	}
	return 0;
}

/* Everything for one (token, kv head): merge the pieces' heaps, weight, attend, fuse. */
static int
attend_pair(const struct call *c, struct attend_scratch *sc, uint32_t t, uint32_t r)
{
	const struct hsa_spec *sp = c->spec;
	struct hsa_result *res = c->res;
	uint32_t k = c->k, kk = c->cands[t] < k ? (uint32_t)c->cands[t] : k;
	size_t at = ((size_t)t * sp->h_kv + r) * k, head0 = (size_t)t * sp->h_q + (size_t)r * c->G;
	size_t n = 0;

	if (kk > 0) {
		for (size_t p = 0; p < c->n_ranges; p++) {
			size_t slot = heap_slot(c, p, t, r);
			memcpy(sc->cand + n, c->heaps + slot * k,
			       c->heap_size[slot] * sizeof(struct hsa_cand));
			n += c->heap_size[slot];
		}
		if (n < kk)
			return HSAMEM_EINTERNAL;
		qsort(sc->cand, n, sizeof(struct hsa_cand), hsa_cand_cmp);
	}
	for (uint32_t i = 0; i < k; i++) {
		res->sel[at + i] = i < kk ? sc->cand[i].j : -1;
		res->score[at + i] = i < kk ? sc->cand[i].s : -INFINITY;
		if (res->weight != NULL)
			res->weight[at + i] = 0.0f;
	}
	if (res->weight != NULL)
		hsa_fusion_weights(sp->weighting, res->sel + at, res->score + at, kk,
		                   res->weight + at);
	if (res->out == NULL && res->attn == NULL)
		return 0; /* selection only */

	if (res->out != NULL)
		memset(res->out + head0 * sp->d_h, 0, (size_t)c->G * sp->d_h * sizeof(float));
	if (res->attn != NULL)
		memset(res->attn + head0 * k * sp->S, 0, (size_t)c->G * k * sp->S * sizeof(float));
	/* Each chunk's rows are on their way while the one before is worked on. */
	uint32_t i = 0, i_next;
	const void *kv = NULL, *kv_next = NULL;
	int err = next_chunk(c, r, at, kk, &i, &kv);
	while (err == 0 && i < kk) {
		i_next = i + 1;
		if ((err = next_chunk(c, r, at, kk, &i_next, &kv_next)) != 0)
			break;
		attend_chunk(c, sc, t, r, i, kv, res->weight[at + i],
		             chunk_keys(c, res->sel[at + i]));
		i = i_next;
		kv = kv_next;
	}
	return err;
}

/* Attention piece: a run of the group's (token, kv head) pairs. */
static int
attend_piece(void *arg, size_t piece)
{
	struct call *c = arg;
	const struct hsa_spec *sp = c->spec;
	size_t pairs = (size_t)c->nt * sp->h_kv;
	size_t a = pairs * piece / c->n_attend, b = pairs * (piece + 1) / c->n_attend;
	struct attend_scratch sc = {0};
	int err = 0;

	sc.key_block = BLOCK_FLOATS / sp->d_h > 0 ? BLOCK_FLOATS / sp->d_h : 1;
	if (sc.key_block > sp->S)
		sc.key_block = sp->S;
	sc.cand = malloc(c->n_ranges * c->k * sizeof(struct hsa_cand));
	sc.logits = malloc((size_t)c->G * sp->S * sizeof(float));
	sc.rows = malloc(sc.key_block * sp->d_h * sizeof(float));
	if (sc.cand == NULL || sc.logits == NULL || sc.rows == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t pr = a; pr < b && err == 0; pr++)
		err = attend_pair(c, &sc, c->t0 + (uint32_t)(pr / sp->h_kv),
		                  (uint32_t)(pr % sp->h_kv));
out:
	free(sc.rows);
	free(sc.logits);
	free(sc.cand);
	return err;
}

/* Cuts the current token group into pieces for both phases. */
static void
call_plan(struct call *c, unsigned threads)
{
	const struct hsa_spec *sp = c->spec;
	uint64_t work = 0, kk_sum = 0;

	c->max_vis = 0;
	for (uint32_t t = c->t0; t < c->t0 + c->nt; t++) {
		uint64_t v = c->vis[t];
		if (v > c->max_vis)
			c->max_vis = v;
		work += v * sp->d_r;
		kk_sum += v < c->k ? v : c->k;
	}

	c->n_ranges = 1;
	c->n_subgroups = 1;
	if (threads > 1 && work >= SCORE_MIN_WORK) {
		uint64_t by_chunks = c->max_vis / SCORE_MIN_CHUNKS;
		c->n_ranges = by_chunks < 1 ? 1 : by_chunks < threads ? by_chunks : threads;
		size_t per = (threads + c->n_ranges - 1) / c->n_ranges;
		c->n_subgroups = per < c->nt ? per : c->nt;
	}

	uint64_t attend_work = c->res->out != NULL    ? kk_sum * sp->h_q * sp->S * sp->d_h * 2
	                       : c->res->attn != NULL ? kk_sum * sp->h_q * sp->S * sp->d_h
	                                              : 0;
	size_t pairs = (size_t)c->nt * sp->h_kv;
	c->n_attend = 1;
	if (threads > 1 && attend_work >= ATTEND_MIN_WORK)
		c->n_attend = pairs < 4 * (size_t)threads ? pairs : 4 * (size_t)threads;
}

static bool
cpu_supports(struct gpu_backend *b, const struct hsa_spec *spec)
{
	return spec != NULL && gpu_shape_ok(spec);
}

static int
cpu_attend(struct gpu_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
           const struct hsa_query *q, struct hsa_result *res)
{
	struct cpu_backend *cb = (struct cpu_backend *)b;
	struct call c = {0};
	int err;

	if ((err = gpu_check_call(spec, src, q, res)) != 0)
		goto out;
	c.kern = cb->kern;
	c.spec = spec;
	c.src = src;
	c.q = q;
	c.res = res;
	c.G = spec->h_q / spec->h_kv;
	c.d_rh = spec->d_r / spec->h_kv;
	c.k = q->k;
	c.esz = spec_elem_size(spec->dtype);
	c.r_scale = 1.0f / sqrtf((float)c.d_rh);
	c.a_scale = 1.0f / sqrtf((float)spec->d_h);

	/* Groups as large as the heaps' budget allows: larger ones read the landmarks
	 * fewer times. */
	size_t per_token = (size_t)cb->threads * spec->h_kv * c.k * sizeof(struct hsa_cand);
	size_t group = HEAP_BYTES / per_token;
	group = group < 1 ? 1 : group > TOK_GROUP ? TOK_GROUP : group;
	c.group = group < q->n ? (uint32_t)group : q->n;
	size_t slots = (size_t)cb->threads * c.group * spec->h_kv;
	c.vis = malloc(q->n * sizeof(uint64_t));
	c.cands = malloc(q->n * sizeof(uint64_t));
	c.heaps = malloc(slots * c.k * sizeof(struct hsa_cand));
	c.heap_size = malloc(slots * sizeof(uint32_t));
	if (c.vis == NULL || c.cands == NULL || c.heaps == NULL || c.heap_size == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t t = 0; t < q->n; t++) {
		uint64_t v = q->pos[t] / spec->S;
		c.vis[t] = v < src->n_chunks ? v : src->n_chunks;
		c.cands[t] = hsa_mask_count(q->mask, c.vis[t]);
	}
	if ((err = sparse_query(&c)) != 0)
		goto out;

	for (c.t0 = 0; c.t0 < q->n; c.t0 += c.nt) {
		c.nt = q->n - c.t0 < c.group ? q->n - c.t0 : c.group;
		call_plan(&c, cb->threads);
		if (c.max_vis > 0) {
			err = cpu_pool_run(&cb->pool, score_piece, &c, c.n_ranges * c.n_subgroups);
			if (err != 0)
				goto out;
		}
		if ((err = cpu_pool_run(&cb->pool, attend_piece, &c, c.n_attend)) != 0)
			goto out;
	}
out:
	free(c.nz_q);
	free(c.nz_at);
	free(c.nz_n);
	free(c.heap_size);
	free(c.heaps);
	free(c.cands);
	free(c.vis);
	atomic_fetch_add_explicit(&cb->calls, 1, memory_order_relaxed);
	if (err != 0)
		atomic_fetch_add_explicit(&cb->errors, 1, memory_order_relaxed);
	return err;
}

static void
cpu_forget(struct gpu_backend *b, uint64_t uid)
{
	/* Nothing is cached. */
}

static void
cpu_stats(struct gpu_backend *b, struct gpu_stats *out)
{
	struct cpu_backend *cb = (struct cpu_backend *)b;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "cpu");
	snprintf(out->device, sizeof(out->device), "%u threads, %s kernels", cb->threads,
	         cb->kern->name);
	out->calls = atomic_load_explicit(&cb->calls, memory_order_relaxed);
	out->errors = atomic_load_explicit(&cb->errors, memory_order_relaxed);
}

static void
cpu_free(struct gpu_backend *b)
{
	struct cpu_backend *cb = (struct cpu_backend *)b;

	if (cb == NULL)
		return;
	cpu_pool_fini(&cb->pool);
	free(cb);
}

static const struct gpu_ops cpu_ops = {
        .name = "cpu",
        .supports = cpu_supports,
        .attend = cpu_attend,
        .forget = cpu_forget,
        .stats = cpu_stats,
        .free = cpu_free,
};

void
gpu_cpu_start(struct gpu_backend *cpu, struct cpu_job *j, int (*fn)(void *arg, size_t piece),
              void *arg, size_t n_pieces)
{
	cpu_pool_start(&((struct cpu_backend *)cpu)->pool, j, fn, arg, n_pieces);
}

int
gpu_cpu_wait(struct gpu_backend *cpu, struct cpu_job *j)
{
	return cpu_pool_wait(&((struct cpu_backend *)cpu)->pool, j);
}

int
gpu_cpu_alloc(unsigned threads, struct gpu_backend **out)
{
	struct cpu_backend *cb;
	int err;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 1 ? 1 : (unsigned)n;
	}
	if (threads > THREADS_MAX)
		threads = THREADS_MAX;
	if ((cb = calloc(1, sizeof(*cb))) == NULL)
		return -ENOMEM;
	cb->base.ops = &cpu_ops;
	cb->kern = cpu_kernels_pick();
	cb->threads = threads;
	atomic_init(&cb->calls, 0);
	atomic_init(&cb->errors, 0);
	if ((err = cpu_pool_init(&cb->pool, threads - 1)) != 0)
		goto fail;
	*out = &cb->base;
	return 0;
fail:
	free(cb);
	return err;
}
