/*
 * hybrid.c: the lexical half of a model memory (hsa-small), and the fusion of its two rankings.
 *
 * A model's landmark tells paraphrases apart well and exact keys (codes, names, numbers) badly;
 * the lexical encoder's BM25 landmark does the reverse. So a memory of a model encoder also keeps,
 * per sealed chunk, the lexical encoder's landmark of the chunk's text (store.h, LEXICAL), and its
 * term statistics count lex1 ids. Query ranks by either landmark or by both fused (ops_query.c);
 * what follows the selection (fusion weights, in-chunk attention) is the model's.
 *
 * The chunk's text is its tokens decoded (byte-level BPE gives the bytes back exactly), tokenized
 * with lex1: a word cut by a chunk boundary counts as two pieces, one in each chunk. Where the
 * daemon serves the memory on the GPU, the lexical landmarks are ranked there too: resident under
 * the memory's twin uid (hybrid.h), scored and cut to the best by the backend's selection-only
 * call, which reads no K/V. On the CPU they are read in the query's snapshot at the question's
 * nonzero dimensions only, which is cheaper there than the backend's dense scoring. The best of
 * them are then scored again by the exact BM25 of their text (bm25.h), which the hashed landmark
 * only approximates.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bm25.h"
#include "half.h"
#include "hybrid.h"
#include "ops.h"
#include "sparse_rows.h"
#include "store_filter.h"
#include "tokenizer.h"

static const char *const mode_names[] = {"", "learned", "lexical", "hybrid"};

bool
hyb_wanted(const struct enc_ops *enc)
{
	return enc != NULL && enc->decode != NULL;
}

uint32_t
hyb_flags(const struct hsa_spec *spec)
{
	const struct enc_ops *enc = enc_find(spec->encoder);
	char why[256];
	if (!hyb_wanted(enc) || (enc->ready != NULL && enc->ready(why, sizeof(why)) != 0))
		return 0;
	return STORE_USER_LEXICAL;
}

int
hyb_mode_parse(const char *name, enum hyb_mode *out)
{
	if (name == NULL || *name == '\0') {
		*out = HYB_DEFAULT;
		return 0;
	}
	for (int m = HYB_LEARNED; m <= HYB_HYBRID; m++)
		if (strcmp(name, mode_names[m]) == 0) {
			*out = (enum hyb_mode)m;
			return 0;
		}
	return HSAMEM_EINVAL;
}

const char *
hyb_mode_name(enum hyb_mode m)
{
	return mode_names[m];
}

/* The lexical encoder and the spec of its landmarks here: its default, with room for the lex1
 * tokens of a chunk's text. */
static const struct enc_ops *
lex_spec(struct hsa_spec *spec)
{
	const struct enc_ops *lex = enc_find("lexical");
	lex->default_spec(spec);
	spec->S = HYB_LEX_MAX;
	return lex;
}

/* The lex1 ids of the text of a chunk's n_real tokens (decoded by enc): at most HYB_LEX_MAX
 * into ids, their number into *n_ids. lex1_tokenize's tokens, read one at a time. */
static int
chunk_terms(const struct enc_ops *enc, const uint32_t *tokens, uint32_t n_real, uint32_t *ids,
            size_t *n_ids)
{
	struct lex1_cursor c;
	struct enc_token tok;
	char *text = NULL;
	size_t n = 0;
	int ret = enc->decode(tokens, n_real, &text);
	if (ret == 0) {
		lex1_cursor_init(&c, text, strlen(text));
		while (n < HYB_LEX_MAX && lex1_next(&c, &tok))
			ids[n++] = tok.id;
	}
	*n_ids = n;
	free(text);
	return ret;
}

/* The lexical landmark (f32, d_r) and lex1 ids (at most HYB_LEX_MAX into ids) of a chunk's tokens.
 */
static int
chunk_lexical(const struct enc_ops *enc, const uint32_t *tokens, uint32_t n_real, float *L,
              uint32_t *ids, size_t *n_ids)
{
	struct hsa_spec spec;
	const struct enc_ops *lex = lex_spec(&spec);
	size_t per = (size_t)spec.S * spec.h_kv * spec.d_h, n = 0;
	float *K = malloc(2 * per * sizeof(float));
	int ret = -ENOMEM;
	if (K != NULL && (ret = chunk_terms(enc, tokens, n_real, ids, &n)) == 0 &&
	    (ret = lex->encode_chunk(&spec, NULL, 0, ids, n, K, K + per, L)) == 0)
		*n_ids = n;
	free(K);
	return ret;
}

size_t
hyb_row_bytes(void)
{
	struct hsa_spec spec;
	lex_spec(&spec);
	return spec.d_r * sizeof(uint16_t);
}

int
hyb_chunk_row(const struct enc_ops *enc, const uint32_t *tokens, uint32_t n_real, void *row,
              uint32_t *ids, size_t *n_ids)
{
	struct hsa_spec spec;
	lex_spec(&spec);
	float *L = malloc(spec.d_r * sizeof(float));
	int ret = L == NULL ? -ENOMEM : chunk_lexical(enc, tokens, n_real, L, ids, n_ids);
	if (ret == 0)
		half_from_float_row(HSA_F16, L, row, spec.d_r);
	free(L);
	return ret;
}

/* Writes chunk j's lexical landmark and counts its terms: put for a new chunk, set (replace)
 * for one encoded again, whose old tokens, if given, first leave the term statistics. */
static int
lexlm_write(struct store_txn *txn, const struct store_user *u, const struct enc_ops *enc,
            uint64_t j, const uint32_t *old, uint32_t n_old, const uint32_t *tokens,
            uint32_t n_real, bool replace)
{
	size_t rb = hyb_row_bytes(), n_ids = 0;
	uint16_t *row = malloc(rb);
	uint32_t ids[HYB_LEX_MAX];
	int ret = row == NULL ? -ENOMEM : 0;
	if (ret == 0 && old != NULL &&
	    ((ret = hyb_chunk_row(enc, old, n_old, row, ids, &n_ids)) != 0 ||
	     (ret = store_terms_sub(txn, u->uid, ids, n_ids)) != 0))
		goto out;
	if (ret == 0 && (ret = hyb_chunk_row(enc, tokens, n_real, row, ids, &n_ids)) == 0 &&
	    (ret = store_terms_add(txn, u->uid, ids, n_ids)) == 0)
		ret = replace ? store_lexlm_set(txn, u, j, row, rb)
		              : store_lexlm_put(txn, u, j, row, rb);
out:
	free(row);
	return ret;
}

int
hyb_seal(struct store_txn *txn, const struct store_user *u, const struct enc_ops *enc, uint64_t j,
         const uint32_t *tokens, uint32_t n_real)
{
	return lexlm_write(txn, u, enc, j, NULL, 0, tokens, n_real, false);
}

int
hyb_reseal(struct store_txn *txn, const struct store_user *u, const struct enc_ops *enc, uint64_t j,
           const uint32_t *old, uint32_t n_old, const uint32_t *tokens, uint32_t n_real)
{
	/* the old text's terms leave the statistics, the new text's come in */
	return lexlm_write(txn, u, enc, j, old, n_old, tokens, n_real, true);
}

void
hyb_forget_cached(struct daemon *d, uint64_t uid)
{
	words_drop(d->words, uid);
	if (d->gpu == NULL || d->gpu->ops->forget == NULL)
		return;
	d->gpu->ops->forget(d->gpu, uid);
	d->gpu->ops->forget(d->gpu, hyb_twin_uid(uid));
}

int
hyb_question_init(struct job *job, struct store_txn *txn, const struct store_user *u,
                  const char *text, struct hyb_question *q)
{
	struct hsa_spec spec;
	const struct enc_ops *lex = lex_spec(&spec);
	struct enc_token *toks = NULL;
	size_t d = spec.d_r, n = 0;
	q->qr = arena_calloc(&job->arena, d, sizeof(float));
	q->at = arena_calloc(&job->arena, d, sizeof(uint32_t));
	q->nz = 0;
	if (q->qr == NULL || q->at == NULL)
		return -ENOMEM;
	int ret = lex->tokenize(text, strlen(text), &toks, &n);
	if (ret != 0)
		return ret;
	uint32_t *tok = arena_calloc(&job->arena, n + 1, sizeof(*tok));
	if (tok == NULL)
		ret = -ENOMEM;
	for (size_t i = 0; ret == 0 && i < n; i++)
		tok[i] = toks[i].id;
	free(toks);
	/* one read of the statistics for the landmark's query and the exact pass */
	struct enc_stats st;
	float *qa = arena_calloc(&job->arena, (size_t)spec.h_q * spec.d_h, sizeof(float));
	if (ret == 0 && qa == NULL)
		ret = -ENOMEM;
	if (ret != 0 || (ret = bm25_stats(job, txn, u->uid, tok, n, &st)) != 0 ||
	    (ret = lex->encode_query_stats(&spec, &st, tok, n, q->qr, qa)) != 0 ||
	    (ret = bm25_question_init(job, &st, &q->bm)) != 0)
		return ret;
	for (size_t i = 0; i < d; i++)
		if (q->qr[i] != 0.0f)
			q->at[q->nz++] = (uint32_t)i;
	return 0;
}

/* Puts (j, s) into the best-first list out of *n <= depth hits, if it belongs there. */
static void
keep_best(struct hyb_hit *out, size_t *n, size_t depth, int64_t j, float s)
{
	size_t at = *n;
	if (at == depth && !(s > out[depth - 1].score))
		return;
	if (at < depth)
		(*n)++;
	else
		at = depth - 1;
	while (at > 0 && out[at - 1].score < s) {
		out[at] = out[at - 1];
		at--;
	}
	out[at] = (struct hyb_hit){j, s};
}

/* A lexical landmark (f16) scored at the question's nonzero dimensions: the same sum in the same
 * order as the dense product without its zero terms (landmarks are finite), at a small part of
 * its cost. */
static float
row_score(const struct hyb_question *q, const uint16_t *row, float scale)
{
	float s = 0;
	for (size_t i = 0; i < q->nz; i++)
		s += q->qr[q->at[i]] * half_f16_to_float(row[q->at[i]]);
	return s * scale;
}

/* row_score of each row of a sparse page (store.h, SPARSE PAGES) into out[0 .. sp->count): the
 * same products summed in the same order, so the same bits. The entries of the question's
 * elements are asked for before any is used, so that their cache misses overlap. */
static void
page_scores(const struct hyb_question *q, const struct store_sparse *sp, float scale, float *out)
{
	uint32_t lo = sp->row0;
	for (size_t i = 0; i < q->nz; i++)
		__builtin_prefetch(sp->entries + 3 * (size_t)sparse_rows_start(sp->starts,
		                                                               sp->start_bytes,
		                                                               q->at[i]));
	for (uint64_t r = 0; r < sp->count; r++)
		out[r] = 0;
	for (size_t i = 0; i < q->nz; i++) {
		uint32_t to = sparse_rows_start(sp->starts, sp->start_bytes, q->at[i] + 1);
		if (to > sp->n_entries)
			to = sp->n_entries;
		for (uint32_t y = sparse_rows_start(sp->starts, sp->start_bytes, q->at[i]); y < to;
		     y++) {
			const uint8_t *en = sp->entries + 3 * (size_t)y;
			if (en[0] < lo)
				continue;
			if (en[0] >= lo + sp->count)
				break;
			out[en[0] - lo] +=
			        q->qr[q->at[i]] * half_f16_to_float(sparse_rows_value(en));
		}
	}
	for (uint64_t r = 0; r < sp->count; r++)
		out[r] *= scale;
}

/*
 * On the CPU: every chunk's landmark read at the question's nonzero dimensions, the chunks the
 * mask leaves out not ranked.
 */
static int
rank_cpu(struct job *job, struct store_txn *txn, const struct store_user *u,
         const struct hsa_spec *spec, const struct hyb_question *q, const uint64_t *mask,
         size_t depth, struct hyb_hit *out, size_t *n)
{
	size_t d = spec->d_r, rb = d * sizeof(uint16_t), kept = 0;
	float scale = 1.0f / sqrtf((float)d);
	float *scores = arena_calloc(&job->arena, u->n_chunks + 1, sizeof(float));
	if (scores == NULL)
		return -ENOMEM;
	bool sparse = (u->flags & STORE_USER_LEXLM_SPARSE) != 0;
	for (uint64_t j = 0; j < u->n_chunks;) {
		const void *rows = NULL;
		struct store_sparse sp;
		uint64_t count;
		int ret = sparse ? store_lexlm_sparse(txn, u, j, rb, &sp)
		                 : store_lexlm_get(txn, u, j, rb, &rows, &count);
		if (ret != 0)
			return ret;
		if (sparse) {
			count = sp.count;
			page_scores(q, &sp, scale, scores + j);
		}
		for (uint64_t c = 0; c < count; c++, j++)
			if (!sparse)
				scores[j] = row_score(q, (const uint16_t *)rows + c * d, scale);
	}
	for (uint64_t j = 0; j < u->n_chunks; j++)
		if (mask == NULL || store_mask_test(mask, j))
			keep_best(out, &kept, depth, (int64_t)j, scores[j]);
	*n = kept;
	return 0;
}

/* The memory's lexical landmarks as a source for a selection only (backend.h): no K/V. */
struct lex_source {
	struct store_txn *txn;
	const struct store_user *u;
	size_t row_bytes;
};

static int
lex_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct lex_source *s = ctx;
	return store_lexlm_get(s->txn, s->u, first, s->row_bytes, rows, count);
}

static int
cmp_hit_chunk(const void *a, const void *b)
{
	int64_t x = ((const struct hyb_hit *)a)->chunk, y = ((const struct hyb_hit *)b)->chunk;
	return (x > y) - (x < y);
}

/* On the GPU: the backend ranks the lexical landmarks (resident on the device under the
 * memory's twin uid) and returns the best depth chunks among those the mask allows. */
static int
rank_device(struct job *job, struct store_txn *txn, const struct store_user *u,
            const struct hsa_spec *spec, const struct hyb_question *q, const uint64_t *mask,
            size_t depth, struct hyb_hit *out, size_t *n)
{
	struct lex_source ls = {txn, u, spec->d_r * sizeof(uint16_t)};
	struct hsa_source src = {.ctx = &ls,
	                         .uid = hyb_twin_uid(u->uid),
	                         .n_chunks = u->n_chunks,
	                         .landmarks = lex_landmarks};
	uint64_t pos = u->n_chunks * spec->S;
	uint32_t k = (uint32_t)depth;
	struct hsa_query hq = {.n = 1, .k = k, .pos = &pos, .qr = q->qr, .mask = mask};
	struct hsa_result res = {.sel = arena_calloc(&job->arena, k, sizeof(int64_t)),
	                         .score = arena_calloc(&job->arena, k, sizeof(float))};
	if (res.sel == NULL || res.score == NULL)
		return -ENOMEM;
	int ret = ops_attend(job, spec, &src, &hq, &res);
	if (ret != 0)
		return ret;
	for (*n = 0; *n < k && res.sel[*n] >= 0; (*n)++)
		out[*n] = (struct hyb_hit){res.sel[*n], res.score[*n]};
	return 0;
}

int
hyb_lexical_rank(struct job *job, struct store_txn *txn, const struct store_user *u,
                 const struct hyb_question *q, const uint64_t *mask, size_t depth,
                 struct hyb_hit *out, size_t *n)
{
	struct hsa_spec spec;
	lex_spec(&spec);
	*n = 0;
	if (depth == 0 || u->n_chunks == 0)
		return 0;
	if (depth > SPEC_TOPK_MAX)
		depth = SPEC_TOPK_MAX;
	if (ops_on_device(job, &spec))
		return rank_device(job, txn, u, &spec, q, mask, depth, out, n);
	return rank_cpu(job, txn, u, &spec, q, mask, depth, out, n);
}

/* The exact score of a chunk's tokens: their text's lex1 ids scored with tf as scratch. */
static int
exact_of(const struct enc_ops *enc, const struct hyb_question *q, const uint32_t *tokens,
         uint32_t n_real, uint32_t *tf, float *s)
{
	uint32_t ids[HYB_LEX_MAX];
	size_t n = 0;
	int ret = chunk_terms(enc, tokens, n_real, ids, &n);
	if (ret == 0)
		*s = bm25_score(&q->bm, ids, n, tf);
	return ret;
}

int
hyb_exact_score(struct job *job, struct store_txn *txn, const struct store_user *u,
                const struct enc_ops *enc, const struct hyb_question *q, uint64_t j, float *s)
{
	uint32_t S = u->spec.S, n_real;
	uint32_t *tf = arena_calloc(&job->arena, q->bm.n + 1, sizeof(*tf));
	uint32_t *tokens = arena_alloc(&job->arena, S * sizeof(*tokens));
	int ret = tf == NULL || tokens == NULL
	                  ? -ENOMEM
	                  : store_chunk_tokens(txn, u->uid, j, tokens, S, &n_real);
	return ret != 0 ? ret : exact_of(enc, q, tokens, n_real, tf, s);
}

static int
cmp_hit_score(const void *a, const void *b)
{
	const struct hyb_hit *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return (x->chunk > y->chunk) - (x->chunk < y->chunk);
}

/* The hits' tokens, read in the query's transaction, and what the threads score them with. */
struct hyb_exact {
	struct cpu_job pool;
	const struct enc_ops *enc;
	const struct hyb_question *q;
	const struct words_query *wq;
	struct hyb_hit *hits;
	size_t n;
	const uint32_t *tokens; /* hit i's at i * S */
	const uint32_t *n_real; /* NOT_READ: its entries' score is its own (words_chunk_covered) */
	uint32_t S;
};

/* Hits per piece: a piece of a few microseconds each would cost the pool's threads more in
 * waking and taking turns at its mutex than they save. */
#define EXACT_PIECE 8
#define NOT_READ    UINT32_MAX

static int
exact_piece(void *arg, size_t piece)
{
	struct hyb_exact *x = arg;
	uint32_t tf[OPS_MAX_QUERY_TOKENS];
	if (x->q->bm.n > OPS_MAX_QUERY_TOKENS)
		return HSAMEM_ETOOBIG;
	int ret = 0;
	for (size_t i = piece * EXACT_PIECE; ret == 0 && i < (piece + 1) * EXACT_PIECE && i < x->n;
	     i++) {
		float s = 0;
		if (x->n_real[i] != NOT_READ)
			ret = exact_of(x->enc, x->q, x->tokens + i * x->S, x->n_real[i], tf, &s);
		if (s > x->hits[i].score)
			x->hits[i].score = s;
		words_chunk_score(x->wq, x->hits[i].chunk, &x->hits[i].score);
	}
	return ret;
}

size_t
hyb_with_entries(struct hyb_hit *hits, size_t n, const struct bm25_hit *ent, size_t n_ent)
{
	size_t m = n;
	for (size_t i = 0; i < n; i++)
		hits[i].score = 0;
	for (size_t e = 0; e < n_ent; e++) {
		size_t i = 0;
		while (i < n && hits[i].chunk != ent[e].chunk)
			i++;
		if (i < n)
			hits[i].score = ent[e].score;
		else
			hits[m++] = (struct hyb_hit){ent[e].chunk, ent[e].score};
	}
	return m;
}

int
hyb_exact_start(struct job *job, struct store_txn *txn, const struct store_user *u,
                const struct enc_ops *enc, const struct hyb_question *q,
                const struct words_query *wq, struct hyb_hit *hits, size_t n,
                struct hyb_exact **out)
{
	uint32_t S = u->spec.S;
	struct hyb_exact *x = arena_calloc(&job->arena, 1, sizeof(*x));
	uint32_t *tokens = arena_alloc(&job->arena, (n * S + 1) * sizeof(uint32_t));
	uint32_t *n_real = arena_alloc(&job->arena, (n + 1) * sizeof(uint32_t));
	*out = NULL;
	if (x == NULL || tokens == NULL || n_real == NULL)
		return -ENOMEM;
	/* LMDB's transaction is this thread's: the reads here, the decoding and scoring on many */
	for (size_t i = 0; i < n; i++) {
		if (words_chunk_covered(wq, hits[i].chunk)) {
			n_real[i] = NOT_READ;
			continue;
		}
		int ret = store_chunk_tokens(txn, u->uid, (uint64_t)hits[i].chunk, tokens + i * S,
		                             S, &n_real[i]);
		if (ret != 0)
			return ret;
	}
	*x = (struct hyb_exact){.enc = enc,
	                        .q = q,
	                        .wq = wq,
	                        .hits = hits,
	                        .n = n,
	                        .tokens = tokens,
	                        .n_real = n_real,
	                        .S = S};
	gpu_cpu_start(job->d->cpu, &x->pool, exact_piece, x, (n + EXACT_PIECE - 1) / EXACT_PIECE);
	*out = x;
	return 0;
}

int
hyb_exact_finish(struct job *job, struct hyb_exact *x)
{
	int ret = gpu_cpu_wait(job->d->cpu, &x->pool);
	if (ret == 0)
		qsort(x->hits, x->n, sizeof(*x->hits), cmp_hit_score);
	return ret;
}

size_t
hyb_windows(struct hyb_hit *hits, size_t n, uint32_t back, const uint64_t *mask, uint64_t n_chunks,
            size_t depth, struct hyb_hit *out)
{
	size_t kept = 0;
	if (back == 0) {
		kept = n < depth ? n : depth;
		memmove(out, hits, kept * sizeof(*out));
		return kept;
	}
	/* windows j in [t, t + back] of each ranked t, in ascending order, each once */
	qsort(hits, n, sizeof(*hits), cmp_hit_chunk);
	int64_t next = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t j = hits[i].chunk > next ? hits[i].chunk : next;
		for (; j <= hits[i].chunk + (int64_t)back && j < (int64_t)n_chunks; j++) {
			if (mask != NULL && !store_mask_test(mask, (uint64_t)j))
				continue;
			float s = -INFINITY;
			for (size_t x = 0; x < n; x++)
				if (hits[x].chunk <= j && hits[x].chunk >= j - (int64_t)back &&
				    hits[x].score > s)
					s = hits[x].score;
			keep_best(out, &kept, depth, j, s);
		}
		next = j;
	}
	return kept;
}

struct fused {
	int64_t chunk;
	float score;
	float za, zb;
	size_t rank_a; /* SIZE_MAX: not in a */
};

static int
cmp_fused(const void *x, const void *y)
{
	const struct fused *a = x, *b = y;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	if (a->rank_a != b->rank_a)
		return a->rank_a < b->rank_a ? -1 : 1;
	return (a->chunk > b->chunk) - (a->chunk < b->chunk);
}

/*
 * A ranking's weight in the fusion is the cube of its first place's standard score (of at least
 * HYB_TOP_MIN): the best of 64 scores without a match in them stands about 2.4 standard
 * deviations above their mean (the expected largest of 64 normal draws), a clear match 4 to 8.
 * So a ranking that found nothing (the lexical one for a question that shares no rare word with
 * its answer) counts a fifth to a tenth of one that did, and of two that found something the
 * clearer leads. Measured against the equal sum and against the first place less 2 (linear) in
 * models/EVAL.md.
 */
#define HYB_TOP_MIN 0.1f

static float
weight(float top)
{
	float z = fmaxf(top, HYB_TOP_MIN);
	return z * z * z;
}

/*
 * The lexical ranking's weight is further scaled by its first place's own BM25 score: a standard
 * score says how far a match stands out among 64, not whether it is a match at all. A question
 * that shares only common words with its answer (a paraphrase) had a lexical first place of BM25
 * 2.1-4.6 in the measured memories, below 3.5 in four fifths of them, which can still stand 3
 * standard deviations out; one that shares a rare word with its answer scored 4.0-5.8, and more
 * as the memory grows (a rare word's idf grows with the chunk count, a common word's does not).
 * Below HYB_LEX_FULL + HYB_LEX_RAMP the weight falls linearly, to HYB_LEX_LEAST of itself at
 * HYB_LEX_FULL and below. At 4M tokens it tells them apart no more: filler chunks that hold
 * several of a question's common words score 3.1-8.0 there. Measured in models/EVAL.md ("The
 * lexical side gated by its first place's BM25").
 */
#define HYB_LEX_FULL  2.5f
#define HYB_LEX_RAMP  1.0f
#define HYB_LEX_LEAST 0.05f

static float
lexical_gate(float bm25)
{
	return fminf(fmaxf((bm25 - HYB_LEX_FULL) / HYB_LEX_RAMP, HYB_LEX_LEAST), 1.0f);
}

/* The mean and standard deviation of a ranking's scores (1 when they are all equal). */
static void
moments(const struct hyb_hit *h, size_t n, float *mean, float *sd)
{
	double s = 0, s2 = 0;
	for (size_t i = 0; i < n; i++) {
		s += h[i].score;
		s2 += (double)h[i].score * h[i].score;
	}
	double m = n ? s / (double)n : 0, v = n ? s2 / (double)n - m * m : 0;
	*mean = (float)m;
	*sd = v > 1e-12 ? (float)sqrt(v) : 1.0f;
}

size_t
hyb_fuse(const struct hyb_hit *a, size_t na, const struct hyb_hit *b, size_t nb, size_t k,
         struct hyb_hit *out)
{
	struct fused f[2 * HYB_DEPTH];
	float ma, sa, mb, sb;
	size_t n = 0;
	if (na > HYB_DEPTH)
		na = HYB_DEPTH;
	if (nb > HYB_DEPTH)
		nb = HYB_DEPTH;
	moments(a, na, &ma, &sa);
	moments(b, nb, &mb, &sb);
	/* a chunk a ranking does not hold scores at most its last: it gets the last's */
	float floor_a = na ? (a[na - 1].score - ma) / sa : 0;
	float floor_b = nb ? (b[nb - 1].score - mb) / sb : 0;
	for (size_t i = 0; i < na; i++)
		f[n++] = (struct fused){a[i].chunk, 0, (a[i].score - ma) / sa, floor_b, i};
	for (size_t i = 0; i < nb; i++) {
		size_t c = 0;
		while (c < n && f[c].chunk != b[i].chunk)
			c++;
		if (c == n)
			f[n++] = (struct fused){b[i].chunk, 0, floor_a, 0, SIZE_MAX};
		f[c].zb = (b[i].score - mb) / sb;
	}
	/* each ranking weighed by how far its first place stands above its mean, the lexical one
	 * also by its first place's BM25 */
	float wa = na ? weight((a[0].score - ma) / sa) : 0;
	float wb = nb ? weight((b[0].score - mb) / sb) * lexical_gate(b[0].score) : 0;
	for (size_t i = 0; i < n; i++)
		f[i].score = wa * f[i].za + wb * f[i].zb;
	qsort(f, n, sizeof(*f), cmp_fused);
	if (k > n)
		k = n;
	for (size_t i = 0; i < k; i++)
		out[i] = (struct hyb_hit){f[i].chunk, f[i].score};
	return k;
}

/* A source of some of a memory's sealed chunks, in ascending order: chunk i of it is chunk
 * chunks[i] of the memory. */
struct subset {
	struct hsa_source src;
	struct ops_source *base;
	const int64_t *chunks;
};

static int
subset_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct subset *s = ctx;
	int ret = s->base->src.landmarks(s->base, (uint64_t)s->chunks[first], rows, count);
	*count = 1;
	return ret;
}

static int
subset_chunk_kv(void *ctx, uint64_t j, const void **kv)
{
	struct subset *s = ctx;
	return s->base->src.chunk_kv(s->base, (uint64_t)s->chunks[j], kv);
}

static int
subset_copy_kv(void *ctx, uint64_t j, void *dst)
{
	struct subset *s = ctx;
	return s->base->src.copy_kv(s->base, (uint64_t)s->chunks[j], dst);
}

int
hyb_attend(struct job *job, struct ops_source *base, const int64_t *chunks, size_t n,
           const float *qr, const float *qa, struct hsa_result *res)
{
	const struct hsa_spec *spec = &base->user.spec;
	struct subset s = {.base = base, .chunks = chunks};
	uint64_t pos = (uint64_t)n * spec->S;
	struct hsa_query q = {.n = 1, .k = (uint32_t)n, .pos = &pos, .qr = qr, .qa = qa};
	s.src = (struct hsa_source){.ctx = &s,
	                            .uid = base->user.uid,
	                            .n_chunks = n,
	                            .landmarks = subset_landmarks,
	                            .chunk_kv = subset_chunk_kv,
	                            .copy_kv = subset_copy_kv};
	int ret = ops_attend_tail(job, spec, &s.src, &q, res);
	if (ret != 0)
		return ret;
	for (size_t i = 0; i < (size_t)spec->h_kv * n; i++)
		if (res->sel[i] >= 0)
			res->sel[i] = chunks[res->sel[i]];
	return 0;
}
