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
 * with lex1: a word cut by a chunk boundary counts as two pieces, one in each chunk. Lexical
 * landmarks are scored here, on the CPU, one pass over the memory's pages in the read snapshot:
 * they are not the backend's landmarks (another shape, and not what its caches hold).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "hybrid.h"
#include "ops.h"

/* lex1 tokens of one chunk's text that the lexical landmark reads (64 BPE tokens make ~50) */
#define HYB_LEX_MAX 256

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

/* The lexical landmark (f32, d_r) and lex1 ids of a chunk's tokens; *ids is malloc'd. */
static int
chunk_lexical(const struct enc_ops *enc, const uint32_t *tokens, uint32_t n_real, float *L,
              uint32_t **ids, size_t *n_ids)
{
	struct hsa_spec spec;
	const struct enc_ops *lex = lex_spec(&spec);
	size_t per = (size_t)spec.S * spec.h_kv * spec.d_h, n = 0;
	struct enc_token *toks = NULL;
	char *text = NULL;
	float *K = malloc(2 * per * sizeof(float));
	uint32_t *out = malloc(HYB_LEX_MAX * sizeof(uint32_t));
	int ret = -ENOMEM;
	if (K == NULL || out == NULL)
		goto out;
	if ((ret = enc->decode(tokens, n_real, &text)) != 0 ||
	    (ret = lex->tokenize(text, strlen(text), &toks, &n)) != 0)
		goto out;
	if (n > HYB_LEX_MAX)
		n = HYB_LEX_MAX;
	for (size_t i = 0; i < n; i++)
		out[i] = toks[i].id;
	if ((ret = lex->encode_chunk(&spec, NULL, 0, out, n, K, K + per, L)) != 0)
		goto out;
	*ids = out;
	*n_ids = n;
	out = NULL;
out:
	free(out);
	free(toks);
	free(text);
	free(K);
	return ret;
}

/* Writes chunk j's lexical landmark and counts its terms: put for a new chunk, set (replace)
 * for one encoded again, whose old tokens, if given, first leave the term statistics. */
static int
lexlm_write(struct store_txn *txn, const struct store_user *u, const struct enc_ops *enc,
            uint64_t j, const uint32_t *old, uint32_t n_old, const uint32_t *tokens,
            uint32_t n_real, bool replace)
{
	struct hsa_spec spec;
	lex_spec(&spec);
	float *L = malloc(spec.d_r * sizeof(float));
	uint16_t *row = malloc(spec.d_r * sizeof(uint16_t));
	size_t rb = spec.d_r * sizeof(uint16_t), n_ids = 0;
	uint32_t *ids = NULL;
	int ret = -ENOMEM;
	if (L == NULL || row == NULL)
		goto out;
	if (old != NULL) {
		if ((ret = chunk_lexical(enc, old, n_old, L, &ids, &n_ids)) != 0 ||
		    (ret = store_terms_sub(txn, u->uid, ids, n_ids)) != 0)
			goto out;
		free(ids);
		ids = NULL;
	}
	if ((ret = chunk_lexical(enc, tokens, n_real, L, &ids, &n_ids)) != 0)
		goto out;
	half_from_float_row(HSA_F16, L, row, spec.d_r);
	ret = replace ? store_lexlm_set(txn, u, j, row, rb) : store_lexlm_put(txn, u, j, row, rb);
	if (ret == 0)
		ret = store_terms_add(txn, u->uid, ids, n_ids);
out:
	free(ids);
	free(row);
	free(L);
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

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* The lexical qr of a question, weighed by the memory's term statistics. */
static int
lexical_query(struct store_txn *txn, const struct store_user *u, const char *text, float *qr)
{
	struct hsa_spec spec;
	const struct enc_ops *lex = lex_spec(&spec);
	struct enc_token *toks = NULL;
	struct store_terms t;
	size_t n = 0, m = 0;
	int ret = lex->tokenize(text, strlen(text), &toks, &n);
	if (ret != 0)
		return ret;
	uint32_t *tok = malloc((3 * n + 1) * sizeof(uint32_t)), *ids = tok + n, *df = ids + n;
	float *qa = malloc((size_t)spec.h_q * spec.d_h * sizeof(float));
	if (tok == NULL || qa == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		tok[i] = ids[i] = toks[i].id;
	qsort(ids, n, sizeof(*ids), cmp_u32);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || ids[m - 1] != ids[i])
			ids[m++] = ids[i];
	if ((ret = store_terms_get(txn, u->uid, &t)) != 0 ||
	    (ret = store_terms_df(txn, u->uid, ids, m, df)) != 0)
		goto out;
	struct enc_stats st = {
	        .chunks = t.chunks, .tokens = t.tokens, .n = m, .ids = ids, .df = df};
	ret = lex->encode_query_stats(&spec, &st, tok, n, qr, qa);
out:
	free(qa);
	free(tok);
	free(toks);
	return ret;
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

/*
 * The lexical scores of every chunk. A question's lexical query has a few nonzero dimensions (its
 * terms' hashes), so each landmark is read at those only: the same sum in the same order as the
 * dense product, without its zero terms (landmarks are finite), at a small part of its cost.
 */
int
hyb_lexical_rank(struct job *job, struct store_txn *txn, const struct store_user *u,
                 const char *text, size_t depth, struct hyb_hit *out, size_t *n, float *scores_all)
{
	struct hsa_spec spec;
	lex_spec(&spec);
	size_t d = spec.d_r, rb = d * sizeof(uint16_t), kept = 0, nz = 0;
	float *qr = arena_calloc(&job->arena, d, sizeof(float));
	uint32_t *at = arena_calloc(&job->arena, d, sizeof(uint32_t));
	float scale = 1.0f / sqrtf((float)d);
	int ret;
	if (qr == NULL || at == NULL)
		return -ENOMEM;
	if ((ret = lexical_query(txn, u, text, qr)) != 0)
		return ret;
	for (size_t i = 0; i < d; i++)
		if (qr[i] != 0.0f)
			at[nz++] = (uint32_t)i;
	for (uint64_t j = 0; j < u->n_chunks && depth > 0;) {
		const void *rows;
		uint64_t count;
		if ((ret = store_lexlm_get(txn, u, j, rb, &rows, &count)) != 0)
			return ret;
		for (uint64_t c = 0; c < count; c++, j++) {
			const uint16_t *row = (const uint16_t *)rows + c * d;
			float s = 0;
			for (size_t i = 0; i < nz; i++)
				s += qr[at[i]] * half_f16_to_float(row[at[i]]);
			s *= scale;
			if (scores_all != NULL)
				scores_all[j] = s;
			keep_best(out, &kept, depth, (int64_t)j, s);
		}
	}
	*n = kept;
	return 0;
}

size_t
hyb_window_rank(const float *scores, uint64_t n, uint32_t back, size_t depth, struct hyb_hit *out)
{
	size_t kept = 0;
	for (uint64_t j = 0; j < n && depth > 0; j++) {
		float s = scores[j];
		for (uint64_t b = 1; b <= back && b <= j; b++)
			if (scores[j - b] > s)
				s = scores[j - b];
		keep_best(out, &kept, depth, (int64_t)j, s);
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

/* The mean and standard deviation of a ranking's scores (1 when they are all equal), and the
 * standard score of its last: what a chunk it does not hold gets. */
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
	for (size_t i = 0; i < n; i++)
		f[i].score = f[i].za + f[i].zb;
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
