/*
 * ops_query.c: the two operations that run HSA attention over a memory.
 *
 * attend: the client brings its model's queries (qr, qa) and positions; the backend selects and
 * fuses chunks exactly as hsamem(7) states, and the reply carries the outputs, the selection, the
 * weights and, on request, the in-chunk attention.
 *
 * query: text in, chunks out, for memories with a built-in encoder. The question is encoded into
 * one query token placed after the whole stream, so every sealed chunk is visible; the unsealed
 * tail goes to the backend as one more chunk of the source (encoded on the fly,
 * ops_source_add_tail) so that what was just appended can be found before it seals. The selections
 * of the kv heads are merged into one list and weighted by the reference math (hsa_math.h). Each
 * hit carries the chunk's text, the entries it covers and the tokens the in-chunk attention weighs
 * most. An encoder that reads the stream before the question (encode_query_ctx: hsa-small) gets
 * the stream's last tokens, the tail's and the last sealed chunk's, as its context; the tail is
 * then in the question's own window and is not ranked: such memories rank sealed chunks only
 * (models/README.md, "Query path"). Such a memory ranked lexical or hybrid (hybrid.h) ranks its
 * lexical landmarks while the model encodes the question (enc_meanwhile: on the GPU, or on a
 * thread of its own on the CPU), then the learned landmarks, fuses the two rankings and attends
 * to the fused selection only. Every lexical ranking (a lexical memory's of revision 2, a model
 * memory's lexical side) ends with the exact pass (bm25.h): the landmarks' best chunks scored
 * again by the exact BM25 of their own words, a model memory's on the CPU backend's threads while
 * the device ranks the learned landmarks.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "hsa_math.h"
#include "hybrid.h"
#include "log.h"
#include "ops.h"
#include "ops_filter.h"
#include "ops_recall.h"
#include "words.h"

#define TOP_TOKENS 6

/*
 * Where a query's time goes, logged at debug level (hsamemd -v): the time since the last mark,
 * under the name of the stage it closes, the first ("received") from the request's arrival
 * (its decoding, the policy's check, the hand-over to this worker). Nothing is measured at other
 * levels.
 */
#define STAGES_MAX 12 /* bench_hsa_daemon's report reads as many */
struct stages {
	bool on;
	int n;
	int64_t last;
	const char *name[STAGES_MAX];
	int64_t ns[STAGES_MAX];
};

static void
stage(struct stages *t, const char *name)
{
	if (!t->on || t->n == STAGES_MAX)
		return;
	int64_t now = now_ns();
	t->name[t->n] = name;
	t->ns[t->n++] = now - t->last;
	t->last = now;
}

/* A stage that ran inside another (in the shadow of the device's work): its own time, which
 * the enclosing stage's includes. */
static void
stage_inside(struct stages *t, const char *name, int64_t ns)
{
	if (!t->on || t->n == STAGES_MAX)
		return;
	t->name[t->n] = name;
	t->ns[t->n++] = ns;
}

static void
stages_start(struct stages *t, int64_t arrival_ns)
{
	*t = (struct stages){.on = log_level() >= LOG_DEBUG, .last = arrival_ns};
	stage(t, "received");
}

static void
stages_log(const struct stages *t, const char *user)
{
	char line[384];
	size_t at = 0;
	if (!t->on)
		return;
	for (int i = 0; i < t->n && at < sizeof(line); i++)
		at += (size_t)snprintf(line + at, sizeof(line) - at, " %s %.3f", t->name[i],
		                       (double)t->ns[i] / 1e6);
	log_debug("query: '%s' stages (ms):%s", user, line);
}

/* ---- attend ---- */

void
ops_attend_request(struct job *job)
{
	const Hsamem__AttendRequest *q = job->req->attend;
	struct store_txn txn;
	struct store_user u;
	struct ops_source src;
	int ret;
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		return;
	const struct hsa_spec *spec = &u.spec;
	uint32_t n = q->has_n ? q->n : 0, k = q->top_k != 0 ? q->top_k : spec->top_k;
	if (n == 0 || n > OPS_MAX_QUERY_TOKENS) {
		job_fail(job, HSAMEM_EINVAL, "n: 1 to %d query tokens", OPS_MAX_QUERY_TOKENS);
		goto out;
	}
	if (k > SPEC_TOPK_MAX) {
		job_fail(job, HSAMEM_EINVAL, "top_k: at most %d", SPEC_TOPK_MAX);
		goto out;
	}
	size_t qr_len = (size_t)n * spec->d_r * 4, qa_len = (size_t)n * spec->h_q * spec->d_h * 4;
	if (!q->has_qr || q->qr.len != qr_len) {
		job_fail(job, HSAMEM_ESPEC, "qr must be %zu bytes (n=%u x d_r=%u f32), got %zu",
		         qr_len, n, spec->d_r, q->has_qr ? q->qr.len : 0);
		goto out;
	}
	if (!q->has_qa || q->qa.len != qa_len) {
		job_fail(job, HSAMEM_ESPEC,
		         "qa must be %zu bytes (n=%u x h_q=%u x d_h=%u f32), got %zu", qa_len, n,
		         spec->h_q, spec->d_h, q->has_qa ? q->qa.len : 0);
		goto out;
	}
	if (q->n_positions != 0 && q->n_positions != n) {
		job_fail(job, HSAMEM_EINVAL, "positions: give none or one per query token (%u)", n);
		goto out;
	}
	size_t n_sel = (size_t)n * spec->h_kv * k;
	size_t n_out = (size_t)n * spec->h_q * spec->d_h;
	size_t n_attn = q->want_attention ? (size_t)n * spec->h_q * k * spec->S : 0;
	if ((n_out + n_attn + 3 * n_sel) * 4 > job->d->conf.max_message) {
		job_fail(job, HSAMEM_ETOOBIG,
		         "the reply would exceed max-message: ask for fewer "
		         "query tokens, a smaller k, or no attention");
		goto out;
	}
	uint64_t *pos = arena_calloc(&job->arena, n, sizeof(uint64_t));
	float *qr = arena_alloc(&job->arena, qr_len), *qa = arena_alloc(&job->arena, qa_len);
	struct hsa_result res = {
	        .out = arena_calloc(&job->arena, n_out, 4),
	        .sel = arena_calloc(&job->arena, n_sel, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, n_sel, 4),
	        .weight = arena_calloc(&job->arena, n_sel, 4),
	        .attn = n_attn ? arena_calloc(&job->arena, n_attn, 4) : NULL,
	};
	Hsamem__AttendReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (!pos || !qr || !qa || !res.out || !res.sel || !res.score || !res.weight || !r ||
	    (n_attn && !res.attn)) {
		ops_oom(job);
		goto out;
	}
	/* the bytes of a protobuf field need not be aligned for floats: copy them */
	memcpy(qr, q->qr.data, qr_len);
	memcpy(qa, q->qa.data, qa_len);
	for (uint32_t i = 0; i < n; i++)
		pos[i] = q->n_positions && q->positions[i] != 0 ? q->positions[i]
		                                                : u.n_chunks * spec->S;
	struct hsa_query hq = {.n = n, .k = k, .pos = pos, .qr = qr, .qa = qa};
	ops_source_init(&src, &txn, &u);
	ret = ops_attend(job, spec, &src.src, &hq, &res);
	ops_source_fini(&src);
	if (ret != 0) {
		job_fail(job, ret, "attend failed: %s", hsamem_strerror(ret));
		goto out;
	}
	hsamem__attend_reply__init(r);
	r->has_n = r->has_k = r->has_output = r->has_weights = r->has_scores = true;
	r->n = n;
	r->k = k;
	r->output = (ProtobufCBinaryData){n_out * 4, (uint8_t *)res.out};
	r->selected = res.sel;
	r->n_selected = n_sel;
	r->weights = (ProtobufCBinaryData){n_sel * 4, (uint8_t *)res.weight};
	r->scores = (ProtobufCBinaryData){n_sel * 4, (uint8_t *)res.score};
	if (n_attn) {
		r->has_attention = true;
		r->attention = (ProtobufCBinaryData){n_attn * 4, (uint8_t *)res.attn};
	}
	job->reply.body_case = HSAMEM__REPLY__BODY_ATTEND;
	job->reply.attend = r;
out:
	store_txn_abort(&txn);
}

/* ---- query ---- */

struct candidate {
	int64_t chunk; /* the tail is n_chunks */
	float score;
	const float *attn; /* [G][S] of this chunk for one kv head, rows `stride` apart */
	uint32_t stride;
	float lexical; /* a model memory ranked lexical or hybrid: its lexical score */
	float rank;    /* and what ranked it */
};

static int
cmp_candidate(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/* The TOP_TOKENS slots of a chunk with the most attention (averaged over the query heads of the
 * kv head), among its n_real real tokens. */
static size_t
top_tokens(const float *attn, uint32_t G, uint32_t stride, uint32_t n_real, const bool *ok,
           uint32_t *slot, float *weight)
{
	size_t n = 0;
	for (uint32_t s = 0; s < n_real; s++) {
		if (ok != NULL && !ok[s])
			continue;
		float w = 0;
		for (uint32_t g = 0; g < G; g++)
			w += attn[(size_t)g * stride + s];
		w /= (float)G;
		size_t at = n < TOP_TOKENS ? n++ : TOP_TOKENS;
		if (at == TOP_TOKENS && w <= weight[TOP_TOKENS - 1])
			continue;
		if (at == TOP_TOKENS)
			at = TOP_TOKENS - 1;
		while (at > 0 && weight[at - 1] < w) {
			weight[at] = weight[at - 1];
			slot[at] = slot[at - 1];
			at--;
		}
		weight[at] = w;
		slot[at] = s;
	}
	return n;
}

int
ops_fill_hit(struct job *job, struct store_txn *txn, const struct store_user *u, Hsamem__Hit *h,
             const uint32_t *tokens, const struct store_tokref *refs, uint32_t n_real,
             const float *attn, uint32_t G, uint32_t stride, uint32_t max_entries,
             const struct store_filter *f)
{
	bool *ok = NULL, pass = true;
	h->text = ops_tokens_text(job, txn, u->uid, refs, 0, n_real, f);
	h->has_n_tokens = true;
	h->n_tokens = n_real;
	if (h->text == NULL)
		return ops_oom(job);
	/* covered entries, in order, each once */
	h->entries = arena_calloc(&job->arena, max_entries + 1, sizeof(*h->entries));
	if (h->entries == NULL)
		return ops_oom(job);
	if (!store_filter_empty(f) && (ok = arena_calloc(&job->arena, n_real + 1, 1)) == NULL)
		return ops_oom(job);
	uint64_t last = UINT64_MAX;
	for (uint32_t s = 0; s < n_real; s++) {
		if (refs[s].entry != last) {
			last = refs[s].entry;
			if (ops_entry_passes(job, txn, u->uid, f, last, &pass) != 0)
				return job->reply.status;
			if (pass && h->n_entries < max_entries) {
				if (ops_entry_to_proto(job, txn, u->uid, last,
				                       &h->entries[h->n_entries]) != 0)
					return job->reply.status;
				h->n_entries++;
			}
		}
		if (ok != NULL)
			ok[s] = pass;
	}
	uint32_t slot[TOP_TOKENS];
	float weight[TOP_TOKENS];
	size_t n = attn != NULL ? top_tokens(attn, G, stride, n_real, ok, slot, weight) : 0;
	h->top_tokens = arena_calloc(&job->arena, n + 1, sizeof(*h->top_tokens));
	if (h->top_tokens == NULL)
		return ops_oom(job);
	for (size_t i = 0; i < n; i++) {
		Hsamem__TokenWeight *t = arena_alloc(&job->arena, sizeof(*t));
		if (t == NULL)
			return ops_oom(job);
		hsamem__token_weight__init(t);
		t->has_index = t->has_id = t->has_weight = true;
		t->index = slot[i];
		t->id = tokens[slot[i]];
		t->weight = weight[i];
		t->text = ops_tokens_text(job, txn, u->uid, refs, slot[i], slot[i] + 1, NULL);
		h->top_tokens[h->n_top_tokens++] = t;
	}
	return 0;
}

/*
 * The selections of all kv heads as one list: a chunk chosen by several heads keeps its best score
 * and the attention of the first head that chose it. Returns the number of candidates.
 */
static size_t
merge_heads(const struct hsa_spec *spec, uint32_t k, const struct hsa_result *res,
            struct candidate *cand)
{
	uint32_t G = spec->h_q / spec->h_kv, S = spec->S;
	size_t n = 0;
	for (uint32_t r = 0; r < spec->h_kv; r++)
		for (uint32_t i = 0; i < k; i++) {
			size_t at = (size_t)r * k + i, c;
			if (res->sel[at] < 0)
				continue;
			for (c = 0; c < n && cand[c].chunk != res->sel[at]; c++)
				;
			if (c == n)
				cand[n++] = (struct candidate){
				        .chunk = res->sel[at],
				        .score = res->score[at],
				        .attn = res->attn ? res->attn + ((size_t)r * G * k + i) * S
				                          : NULL,
				        .stride = k * S};
			else if (res->score[at] > cand[c].score)
				cand[c].score = res->score[at];
		}
	return n;
}

/*
 * The unsealed tail as one more candidate, index n_chunks: the CPU backend runs the operator on
 * the tail's own one-chunk source (ops_source_tail) with the same query. It keeps its best score
 * over the kv heads and that head's attention (the first head on a tie), as merge_heads does.
 */
static int
tail_candidate(struct job *job, const struct hsa_spec *spec, struct ops_source *src,
               const float *qr, const float *qa, struct candidate *out)
{
	uint32_t S = spec->S;
	uint64_t pos = S;
	struct hsa_query q = {.n = 1, .k = 1, .pos = &pos, .qr = qr, .qa = qa};
	struct hsa_result res = {
	        .out = arena_calloc(&job->arena, (size_t)spec->h_q * spec->d_h, 4),
	        .sel = arena_calloc(&job->arena, spec->h_kv, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, spec->h_kv, 4),
	        .weight = arena_calloc(&job->arena, spec->h_kv, 4),
	        .attn = arena_calloc(&job->arena, (size_t)spec->h_q * S, 4),
	};
	if (!res.out || !res.sel || !res.score || !res.weight || !res.attn)
		return ops_oom(job);
	int ret = ops_attend_tail(job, spec, &src->tail, &q, &res);
	if (ret != 0)
		return job_fail(job, ret, "query failed on the tail: %s", hsamem_strerror(ret));
	uint32_t best = 0, G = spec->h_q / spec->h_kv;
	for (uint32_t r = 1; r < spec->h_kv; r++)
		if (res.score[r] > res.score[best])
			best = r;
	*out = (struct candidate){.chunk = (int64_t)src->user.n_chunks,
	                          .score = res.score[best],
	                          .attn = res.attn + (size_t)best * G * S,
	                          .stride = S};
	return 0;
}

/*
 * The question of the query request as token ids: its text tokenized, or the ids it gives. A
 * question of more than OPS_MAX_QUERY_TOKENS tokens is refused, never cut short. On success *ids is
 * malloc'd (the caller frees it); on failure the job is failed and its code returned.
 */
static int
query_tokens(struct job *job, const struct enc_ops *enc, uint32_t **ids, size_t *n)
{
	const Hsamem__QueryRequest *q = job->req->query;
	bool has_text = q->text != NULL && *q->text != '\0';
	struct enc_token *toks = NULL;
	size_t n_tok;
	int ret = 0;
	if (has_text == (q->n_tokens > 0))
		return job_fail(job, HSAMEM_EINVAL,
		                "a query is text, or token ids of the memory's tokenizer");
	if (has_text) {
		size_t text_len = strlen(q->text);
		char *text = q->text;
		if (text_len > job->d->conf.max_entry)
			return job_fail(job, HSAMEM_ETOOBIG, "query text exceeds max-entry");
		/* a model's question is tokenized as it was trained (hsa-small: after a space) */
		if (enc->query_prefix != NULL &&
		    asprintf(&text, "%s%s", enc->query_prefix, q->text) < 0)
			return ops_oom(job);
		ret = enc->tokenize(text, strlen(text), &toks, &n_tok);
		if (text != q->text)
			free(text);
		if (ret != 0)
			return job_fail(job, ret, "tokenizer failed");
	} else {
		n_tok = q->n_tokens;
	}
	uint32_t max = enc->max_query != 0 ? enc->max_query : OPS_MAX_QUERY_TOKENS;
	if (n_tok > max) {
		ret = job_fail(job, HSAMEM_ETOOBIG,
		               "the query has %zu tokens; encoder %s takes at most %u", n_tok,
		               enc->name, max);
		goto out;
	}
	if ((*ids = malloc((n_tok + 1) * sizeof(uint32_t))) == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	for (size_t i = 0; i < n_tok; i++)
		(*ids)[i] = has_text ? toks[i].id : q->tokens[i];
	*n = n_tok;
out:
	free(toks);
	return ret;
}

int
ops_query_context(struct job *job, struct store_txn *txn, const struct store_user *u, size_t want,
                  uint32_t **out, size_t *n_out)
{
	size_t n_ctx = 0;
	uint32_t *ctx = arena_calloc(&job->arena, want + 1, sizeof(*ctx));
	struct store_tail tail = {0};
	struct store_chunk prev;
	if (ctx == NULL)
		return -ENOMEM;
	int ret = store_tail_get(txn, u->uid, &tail);
	if (ret != 0)
		return ret;
	size_t from_tail = tail.n < want ? tail.n : want;
	if (from_tail < want && u->n_chunks > 0) {
		if ((ret = store_chunk_get(txn, u->uid, u->n_chunks - 1, &prev)) != 0)
			return ret;
		n_ctx = want - from_tail < prev.n_real ? want - from_tail : prev.n_real;
		memcpy(ctx, prev.tokens + prev.n_real - n_ctx, n_ctx * sizeof(*ctx));
	}
	if (from_tail > 0)
		memcpy(ctx + n_ctx, tail.tokens + tail.n - from_tail, from_tail * sizeof(*ctx));
	*out = ctx;
	*n_out = n_ctx + from_tail;
	return 0;
}

/* Encodes the question after the stream's last query_context tokens (encode_query_ctx), with
 * mw (may be NULL) in the shadow of the encoder's work. */
static int
encode_query_ctx(struct job *job, struct store_txn *txn, const struct store_user *u,
                 const struct enc_ops *enc, const uint32_t *tok, size_t n, float *qr, float *qa,
                 const struct enc_meanwhile *mw)
{
	uint32_t *ctx;
	size_t n_ctx;
	int ret = ops_query_context(job, txn, u, enc->query_context, &ctx, &n_ctx);
	if (ret != 0 && mw != NULL)
		mw->fn(mw->arg);
	return ret != 0 ? ret : enc->encode_query_ctx(&u->spec, ctx, n_ctx, tok, n, qr, qa, mw);
}

/*
 * Encodes the question, weighed by the memory's term statistics where the encoder asks for them
 * (store.h, TERMS): the document frequencies of its distinct tokens, read in the query's snapshot
 * into *st (bm25_stats; st->n is 0 where the encoder takes none), which the exact pass uses too.
 * mw (may be NULL) is run once, in the shadow of the encoder's work where it has some elsewhere.
 */
static int
encode_query(struct job *job, struct store_txn *txn, const struct store_user *u,
             const struct enc_ops *enc, const uint32_t *tok, size_t n, float *qr, float *qa,
             const struct enc_meanwhile *mw, struct enc_stats *st)
{
	*st = (struct enc_stats){0};
	if (enc->encode_query_ctx != NULL)
		return encode_query_ctx(job, txn, u, enc, tok, n, qr, qa, mw);
	if (mw != NULL)
		mw->fn(mw->arg);
	if (enc->encode_query_stats == NULL)
		return enc->encode_query(&u->spec, tok, n, qr, qa);
	int ret = bm25_stats(job, txn, u->uid, tok, n, st);
	return ret != 0 ? ret : enc->encode_query_stats(&u->spec, st, tok, n, qr, qa);
}

/* What a query request asks of its reply beyond the candidates. */
struct query_view {
	uint32_t k, max_entries;
	bool chunks; /* the chunk view only: no entry view */
	struct recall_opts recall;
	uint64_t *mask; /* NULL: no filter */
	uint64_t allowed;
};

/*
 * The reply of a query from its candidates, ranked best first and cut to k: their fusion weights,
 * and per hit its chunk's (or the tail's) text, entries and most attended tokens.
 */
static void
query_reply(struct job *job, struct store_txn *txn, const struct store_user *u,
            const struct store_tail *tail, const struct candidate *cand, size_t n_cand,
            const struct query_view *v, enum hyb_mode mode, bool model)
{
	uint32_t k = v->k, max_entries = v->max_entries;
	const struct store_filter *f = v->recall.f;
	uint32_t G = u->spec.h_q / u->spec.h_kv;
	int ret;
	float *scores = arena_calloc(&job->arena, n_cand + 1, 4);
	float *weights = arena_calloc(&job->arena, n_cand + 1, 4);
	int64_t *chunks = arena_calloc(&job->arena, n_cand + 1, sizeof(int64_t));
	Hsamem__QueryReply *r = arena_alloc(&job->arena, sizeof(*r));
	Hsamem__Hit **hits = arena_calloc(&job->arena, n_cand + 1, sizeof(*hits));
	if (!scores || !weights || !chunks || !r || !hits) {
		ops_oom(job);
		return;
	}
	for (size_t i = 0; i < n_cand; i++) {
		scores[i] = cand[i].score;
		chunks[i] = cand[i].chunk;
	}
	hsa_fusion_weights(u->spec.weighting, chunks, scores, (uint32_t)n_cand, weights);

	hsamem__query_reply__init(r);
	r->has_allowed = v->mask != NULL;
	r->allowed = v->allowed;
	struct recall_chunk *rc = arena_calloc(&job->arena, n_cand + 1, sizeof(*rc));
	if (rc == NULL) {
		ops_oom(job);
		return;
	}
	for (size_t i = 0; i < n_cand; i++) {
		Hsamem__Hit *h = arena_alloc(&job->arena, sizeof(*h));
		if (h == NULL) {
			ops_oom(job);
			return;
		}
		hsamem__hit__init(h);
		h->has_chunk = h->has_score = h->has_weight = h->has_tail = true;
		h->chunk = (uint64_t)cand[i].chunk;
		h->score = cand[i].score;
		h->weight = weights[i];
		h->tail = cand[i].chunk == (int64_t)u->n_chunks;
		h->has_rank_score = true;
		h->rank_score = cand[i].score;
		if (model && mode != HYB_LEARNED) {
			h->has_lexical_score = true;
			h->lexical_score = cand[i].lexical;
			h->rank_score = cand[i].rank;
		}
		/* the tail's tokens, or the sealed chunk's */
		struct store_chunk c = {
		        .n_real = tail->n, .tokens = tail->tokens, .refs = tail->refs};
		if (!h->tail && (ret = store_chunk_get(txn, u->uid, h->chunk, &c)) != 0) {
			job_fail(job, ret, "store: cannot read chunk %llu: %s",
			         (unsigned long long)h->chunk, hsamem_strerror(ret));
			return;
		}
		rc[i] = (struct recall_chunk){h->chunk,     c.refs, c.n_real,      weights[i],
		                              cand[i].attn, G,      cand[i].stride};
		if (ops_fill_hit(job, txn, u, h, c.tokens, c.refs, c.n_real, cand[i].attn, G,
		                 cand[i].stride, max_entries, f) != 0)
			return;
		hits[r->n_hits++] = h;
	}
	r->hits = hits;
	if (!v->chunks && ops_recall_entries(job, txn, u, rc, n_cand, &v->recall, r) != 0)
		return;
	if (!v->chunks && r->n_entries == 0)
		job->reply.message =
		        (char *)(v->mask != NULL && v->allowed == 0 ? "no entry passes the filter"
		                 : r->below_min_score > 0 ? "no entry scored above min-score"
		                                          : "no entry found");
	else if (v->mask != NULL && v->allowed == 0)
		job->reply.message = (char *)"no entry passes the filter";
	r->has_chunks = r->has_k = true;
	r->chunks = u->n_chunks;
	r->k = k;
	r->mode = (char *)hyb_mode_name(mode);
	job->reply.body_case = HSAMEM__REPLY__BODY_QUERY;
	job->reply.query = r;
}

/*
 * The ranking a query asks for, checked against the memory: a lexical memory ranks lexically
 * only; a model memory (hsa-small) ranks in any mode, hybrid by default, but lexically only
 * with its lexical landmarks (a memory made before them has none: learned by default).
 */
static int
query_mode(struct job *job, const struct store_user *u, const struct enc_ops *enc,
           enum hyb_mode *out)
{
	const char *name = job->req->query->mode;
	if (hyb_mode_parse(name, out) != 0)
		return job_fail(job, HSAMEM_EINVAL, "mode: learned, lexical or hybrid, not '%s'",
		                name);
	if (!hyb_wanted(enc)) {
		if (*out == HYB_LEARNED || *out == HYB_HYBRID)
			return job_fail(job, HSAMEM_EINVAL,
			                "mode %s: the memory of '%s' (encoder %s) has no learned "
			                "landmarks and ranks lexically only: use mode lexical",
			                name, u->name, enc->name);
		*out = HYB_LEXICAL;
		return 0;
	}
	bool has_lex = (u->flags & STORE_USER_LEXICAL) != 0;
	if (*out == HYB_DEFAULT)
		*out = has_lex ? HYB_HYBRID : HYB_LEARNED;
	if (*out != HYB_LEARNED && !has_lex)
		return job_fail(
		        job, HSAMEM_ENOTSUP,
		        "mode %s: the memory of '%s' has no lexical landmarks (made before "
		        "hybrid ranking, or imported): 'hsamem reencode %s --encoder %s' adds "
		        "them; mode learned works meanwhile",
		        name, u->name, u->name, enc->name);
	return 0;
}

/* The learned ranking of a model memory, best first, HYB_DEPTH deep at most, among the chunks
 * mask allows (NULL: all): a selection only (backend.h), which reads no chunk's K/V; the fused
 * selection is attended to afterwards (hyb_attend). */
static int
learned_rank(struct job *job, struct ops_source *src, const float *qr, const float *qa,
             const uint64_t *mask, struct hyb_hit *out, size_t *n)
{
	const struct hsa_spec *spec = &src->user.spec;
	uint32_t k = HYB_DEPTH;
	size_t n_sel = (size_t)spec->h_kv * k;
	uint64_t pos = src->user.n_chunks * spec->S;
	struct hsa_query hq = {.n = 1, .k = k, .pos = &pos, .qr = qr, .qa = qa, .mask = mask};
	struct hsa_result res = {
	        .sel = arena_calloc(&job->arena, n_sel, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, n_sel, 4),
	};
	struct candidate *cand = arena_calloc(&job->arena, n_sel + 1, sizeof(*cand));
	if (!res.sel || !res.score || !cand)
		return -ENOMEM;
	int ret = ops_attend(job, spec, &src->src, &hq, &res);
	if (ret != 0)
		return ret;
	size_t m = merge_heads(spec, k, &res, cand);
	qsort(cand, m, sizeof(*cand), cmp_candidate);
	*n = m < HYB_DEPTH ? m : HYB_DEPTH;
	for (size_t i = 0; i < *n; i++)
		out[i] = (struct hyb_hit){cand[i].chunk, cand[i].score};
	return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/*
 * The lexical side of a model memory's ranking (lexical or hybrid): the question weighed by the
 * memory's term statistics and its ranking over the lexical landmarks, run in the shadow of the
 * question's encoding by the model (enc_meanwhile), which it does not need.
 */
struct lexical_side {
	struct job *job;
	struct ops_source *src;
	const struct enc_ops *enc;
	enum hyb_mode mode;
	uint32_t k;
	const uint64_t *mask;
	const uint32_t *ids; /* the question's tokens, decoded when the request has no text */
	size_t n_tok;
	struct hyb_question hq;
	struct hyb_hit *lex; /* best first */
	size_t n_lex;
	struct hyb_hit *exact; /* the chunks scored exactly, each with its own score, any order */
	size_t n_exact;
	struct hyb_exact *pass; /* the exact pass, started; lexical_side_finish waits for it */
	struct words_query *wq; /* the memory's word index, open; lexical_side_finish closes it */
	uint32_t back;          /* the windows' reach: of the model's context, in chunks */
	size_t depth;
	int ret;
	bool undecodable; /* ret is the encoder's failure to decode ids */
	int64_t ns;       /* its time, of which: */
	int64_t ns_terms; /* the question's terms and their statistics */
	int64_t ns_rank;  /* the landmarks' ranking */
	int64_t ns_ent;   /* the entries' ranking (words_rank) */
	int64_t ns_wait;  /* the wait for the exact pass, after the learned ranking (not in ns) */
};

/* Whether a query's chunks made of entries score as their entries (words_chunk_score): where its
 * question is text. A question of token ids is a runtime's, whose unit is the chunk: its own
 * tokens must find the chunk they came from, whatever entries hold them. */
static bool
by_entries(const struct job *job)
{
	const char *text = job->req->query->text;
	return text != NULL && *text != '\0';
}

static void
lexical_side_run(void *arg)
{
	struct lexical_side *ls = arg;
	struct job *job = ls->job;
	const struct store_user *u = &ls->src->user;
	int64_t t0 = now_ns();
	/* hybrid: the lexical side over the windows the model reads */
	uint32_t S = u->spec.S;
	ls->back = ls->mode == HYB_HYBRID ? (ls->enc->context + S - 1) / S : 0;
	ls->depth = ls->k > HYB_DEPTH ? ls->k : HYB_DEPTH;
	const char *text = job->req->query->text;
	char *decoded = NULL;
	struct bm25_hit *ent = arena_calloc(&job->arena, WORDS_ENTRY_DEPTH, sizeof(*ent));
	size_t n_ent = 0;
	ls->exact =
	        arena_calloc(&job->arena, ls->depth + WORDS_ENTRY_DEPTH + 1, sizeof(*ls->exact));
	if (ls->exact == NULL || ent == NULL ||
	    (ls->lex = arena_calloc(&job->arena, ls->depth + 1, sizeof(*ls->lex))) == NULL) {
		ls->ret = -ENOMEM;
	} else if ((text == NULL || *text == '\0') &&
	           (ls->ret = ls->enc->decode(ls->ids, ls->n_tok, &decoded)) != 0) {
		ls->undecodable = true;
	} else {
		ls->ret =
		        hyb_question_init(job, ls->src->txn, u, decoded ? decoded : text, &ls->hq);
		if (ls->ret == 0)
			ls->ret = words_open(job, ls->src->txn, u, &ls->hq.bm, &ls->wq);
		ls->ns_terms = now_ns() - t0;
		if (ls->ret == 0)
			ls->ret = hyb_lexical_rank(job, ls->src->txn, u, &ls->hq, ls->mask,
			                           ls->depth, ls->exact, &ls->n_exact);
		ls->ns_rank = now_ns() - t0 - ls->ns_terms;
		if (ls->ret == 0)
			ls->ret = words_rank(job, ls->wq, ls->src->txn, ls->mask, false,
			                     WORDS_ENTRY_DEPTH, ent, &n_ent);
		ls->ns_ent = now_ns() - t0 - ls->ns_terms - ls->ns_rank;
		if (ls->ret == 0) {
			/* a chunk made of entries scores as its entries, on the pass's threads */
			ls->n_exact = hyb_with_entries(ls->exact, ls->n_exact, ent, n_ent);
			ls->ret = hyb_exact_start(job, ls->src->txn, u, ls->enc, &ls->hq,
			                          by_entries(job) ? ls->wq : NULL, ls->exact,
			                          ls->n_exact, &ls->pass);
		}
	}
	free(decoded);
	ls->ns = now_ns() - t0;
}

/*
 * The lexical side's ranking, once its exact pass (on the CPU backend's threads, while the query's
 * thread waited for the device) is done: the windows ranked; then the word index let go. Called
 * after lexical_side_run on every path, since the pass uses the job's arena, the side's question
 * and the index.
 */
static void
lexical_side_finish(struct lexical_side *ls)
{
	if (ls->pass != NULL) {
		int64_t t0 = now_ns();
		ls->ret = hyb_exact_finish(ls->job, ls->pass);
		ls->pass = NULL;
		if (ls->ret == 0)
			ls->n_lex = hyb_windows(ls->exact, ls->n_exact, ls->back, ls->mask,
			                        ls->src->user.n_chunks, ls->depth, ls->lex);
		ls->ns_wait = now_ns() - t0;
	}
	words_close(ls->wq);
	ls->wq = NULL;
}

/* The lexical side's failure, if any, as the query's. Returns its code. */
static int
lexical_side_check(const struct lexical_side *ls)
{
	if (ls->ret == 0)
		return 0;
	if (ls->undecodable)
		return job_fail(ls->job, ls->ret, "encoder %s cannot decode the query",
		                ls->enc->name);
	if (ls->ret == -ENOMEM)
		return ops_oom(ls->job);
	return job_fail(ls->job, ls->ret, "lexical ranking failed: %s", hsamem_strerror(ls->ret));
}

/*
 * Of chunk j in the result of hyb_attend over n chunks: the best score of the kv heads and that
 * head's in-chunk attention (the first head on a tie), as merge_heads keeps. Returns the score.
 */
static float
attended(const struct hsa_spec *spec, const struct hsa_result *res, size_t n, int64_t j,
         const float **attn, uint32_t *stride)
{
	uint32_t G = spec->h_q / spec->h_kv, S = spec->S;
	float best = -INFINITY;
	for (uint32_t r = 0; r < spec->h_kv; r++)
		for (size_t i = 0; i < n; i++) {
			size_t at = (size_t)r * n + i;
			if (res->sel[at] != j || !(res->score[at] > best))
				continue;
			best = res->score[at];
			*attn = res->attn + ((size_t)r * G * n + i) * S;
			*stride = (uint32_t)(n * S);
		}
	return best;
}

/* Chunk j's exact lexical score: the lexical side's where it scored j, else computed. */
static int
exact_score(struct job *job, struct ops_source *src, const struct lexical_side *ls, int64_t j,
            float *s)
{
	for (size_t i = 0; i < ls->n_exact; i++)
		if (ls->exact[i].chunk == j) {
			*s = ls->exact[i].score;
			return 0;
		}
	return hyb_exact_score(job, src->txn, &src->user, ls->enc, &ls->hq, (uint64_t)j, s);
}

/*
 * The candidates of a model memory ranked lexical or hybrid, from the lexical side's ranking
 * (and the learned one's): the selection, in its order, each with the model's landmark score and
 * in-chunk attention over the selection alone (hyb_attend).
 */
static int
query_ranked(struct job *job, struct ops_source *src, struct lexical_side *ls, const float *qr,
             const float *qa, struct candidate *cand, size_t *n_cand, struct stages *t)
{
	const struct store_user *u = &src->user;
	const struct hsa_spec *spec = &u->spec;
	uint32_t S = spec->S, k = ls->k;
	size_t n_learn = 0, n = 0;
	struct hyb_hit *learn = arena_calloc(&job->arena, HYB_DEPTH, sizeof(*learn));
	struct hyb_hit *sel = arena_calloc(&job->arena, k + 1, sizeof(*sel));
	int64_t *chunks = arena_calloc(&job->arena, k + 1, sizeof(int64_t));
	int ret;
	if (!learn || !sel || !chunks) {
		lexical_side_finish(ls);
		return ops_oom(job);
	}
	/* the learned ranking on the device while the CPU's threads end the exact pass */
	ret = ls->mode == HYB_HYBRID ? learned_rank(job, src, qr, qa, ls->mask, learn, &n_learn)
	                             : 0;
	lexical_side_finish(ls);
	stage_inside(t, "lexical", ls->ns);
	stage_inside(t, "terms", ls->ns_terms);
	stage_inside(t, "landmarks", ls->ns_rank);
	stage_inside(t, "entries", ls->ns_ent);
	stage_inside(t, "wait", ls->ns_wait);
	if (ret != 0)
		return job_fail(job, ret, "query failed: %s", hsamem_strerror(ret));
	if ((ret = lexical_side_check(ls)) != 0)
		return ret;
	if (ls->mode == HYB_HYBRID) {
		stage(t, "learned");
		n = hyb_fuse(learn, n_learn, ls->lex, ls->n_lex, k, sel);
	} else {
		n = ls->n_lex < k ? ls->n_lex : k;
		memcpy(sel, ls->lex, n * sizeof(*sel));
	}
	if (n == 0) {
		*n_cand = 0;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		chunks[i] = sel[i].chunk;
	qsort(chunks, n, sizeof(*chunks), cmp_i64);
	/* what the reply shows: scores, weights and in-chunk attention, no fused output */
	size_t n_sel = (size_t)spec->h_kv * n;
	struct hsa_result res = {
	        .sel = arena_calloc(&job->arena, n_sel, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, n_sel, 4),
	        .weight = arena_calloc(&job->arena, n_sel, 4),
	        .attn = arena_calloc(&job->arena, (size_t)spec->h_q * n * S, 4),
	};
	if (!res.sel || !res.score || !res.weight || !res.attn)
		return ops_oom(job);
	if ((ret = hyb_attend(job, src, chunks, n, qr, qa, &res)) != 0)
		return job_fail(job, ret, "query failed: %s", hsamem_strerror(ret));
	stage(t, "attend");
	/* in the selection's order: the best head's score and attention, as merge_heads keeps */
	for (size_t c = 0; c < n; c++) {
		struct candidate *o = &cand[c];
		*o = (struct candidate){.chunk = sel[c].chunk};
		o->score = attended(spec, &res, n, sel[c].chunk, &o->attn, &o->stride);
		if ((ret = exact_score(job, src, ls, sel[c].chunk, &o->lexical)) != 0)
			return job_fail(job, ret, "lexical ranking failed: %s",
			                hsamem_strerror(ret));
		o->rank = sel[c].score;
	}
	stage(t, "scores");
	*n_cand = n;
	return 0;
}

/*
 * The unsealed tail as a candidate (tail_candidate) where the query lets it compete: asked for
 * (include_tail, the default), allowed by the filter, not in the question's own window (an
 * encoder without encode_query_ctx) and not empty. *has says whether it is one. Returns 0, or the
 * code of the failed job.
 */
static int
query_tail(struct job *job, const struct enc_ops *enc, struct ops_source *src,
           struct store_tail *tail, const uint64_t *mask, const float *qr, const float *qa,
           struct candidate *out, bool *has)
{
	const Hsamem__QueryRequest *q = job->req->query;
	const struct store_user *u = &src->user;
	int ret;
	*has = false;
	if ((q->has_include_tail && !q->include_tail) || enc->encode_query_ctx != NULL ||
	    (mask != NULL && !store_mask_test(mask, u->n_chunks)) ||
	    store_tail_get(src->txn, u->uid, tail) != 0 || tail->n == 0)
		return 0;
	if ((ret = ops_source_tail(src, enc, tail)) != 0)
		return job_fail(job, ret, "encoder %s failed on the tail", enc->name);
	if ((ret = tail_candidate(job, &u->spec, src, qr, qa, out)) != 0)
		return ret;
	*has = true;
	return 0;
}

/* Whether a memory's lexical ranking takes the exact pass (bm25.h): the lexical encoder's BM25
 * revisions, 2 and later (revision 1 weighs by a rarity prior and keeps its own ranking). */
static bool
exact_pass(const struct enc_ops *enc, const struct hsa_spec *spec)
{
	return strcmp(enc->name, "lexical") == 0 && spec->revision >= 2;
}

/*
 * Chunk j's exact BM25 for question bq into *score, read in src's transaction (tok and tf:
 * scratch of S tokens and of bq's terms), or 0 where cover covers it (words_chunk_covered: its
 * entries' score will replace it). Returns 0, or the code of the failed job.
 */
static int
chunk_bm25(struct job *job, struct ops_source *src, const struct words_query *cover,
           const struct bm25_question *bq, int64_t j, uint32_t *tok, uint32_t *tf, float *score)
{
	uint32_t n_real;
	*score = 0;
	if (words_chunk_covered(cover, j))
		return 0;
	int ret = store_chunk_tokens(src->txn, src->user.uid, (uint64_t)j, tok, src->user.spec.S,
	                             &n_real);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read chunk %lld: %s", (long long)j,
		                hsamem_strerror(ret));
	*score = bm25_score(bq, tok, n_real, tf);
	return 0;
}

/*
 * A lexical memory's candidates (exact_pass) into all, their count into *n: the best depth
 * chunks of its landmarks (a selection only, merged over the kv heads), the tail where it
 * competes (*has_tail) and the chunks of the best entries (words_rank), each scored by the better
 * of its exact BM25 and its best entry's (bm25.h); a chunk made of entries scores as its entries
 * where the question is text (words_chunk_score; such a chunk is not read). wq: the memory's
 * word index, open. Returns 0, or the code of the failed job.
 */
static int
exact_candidates(struct job *job, const struct enc_ops *enc, struct ops_source *src,
                 struct store_tail *tail, const struct bm25_question *bq, struct words_query *wq,
                 const float *qr, const float *qa, const uint64_t *mask, bool searched,
                 uint32_t depth, struct candidate *all, size_t *n, bool *has_tail)
{
	const struct store_user *u = &src->user;
	const struct hsa_spec *spec = &u->spec;
	const struct words_query *cover = by_entries(job) ? wq : NULL;
	size_t n_sel = (size_t)spec->h_kv * depth, n_ent = 0;
	struct bm25_hit *ent = arena_calloc(&job->arena, WORDS_ENTRY_DEPTH, sizeof(*ent));
	struct hsa_result sel = {.sel = arena_calloc(&job->arena, n_sel, sizeof(int64_t)),
	                         .score = arena_calloc(&job->arena, n_sel, 4)};
	uint32_t *tf = arena_calloc(&job->arena, bq->n + 1, sizeof(*tf));
	uint32_t *tok = arena_alloc(&job->arena, spec->S * sizeof(*tok));
	int ret;
	*n = 0;
	if (!ent || !sel.sel || !sel.score || !tf || !tok)
		return ops_oom(job);
	if (searched) {
		uint64_t pos = u->n_chunks * spec->S;
		struct hsa_query hq = {
		        .n = 1, .k = depth, .pos = &pos, .qr = qr, .qa = qa, .mask = mask};
		if ((ret = ops_attend(job, spec, &src->src, &hq, &sel)) != 0)
			return job_fail(job, ret, "query failed: %s", hsamem_strerror(ret));
		*n = merge_heads(spec, depth, &sel, all);
		for (size_t i = 0; i < *n; i++)
			if ((ret = chunk_bm25(job, src, cover, bq, all[i].chunk, tok, tf,
			                      &all[i].score)) != 0)
				return ret;
	}
	if ((ret = query_tail(job, enc, src, tail, mask, qr, qa, &all[*n], has_tail)) != 0)
		return ret;
	if (*has_tail)
		all[(*n)++].score = bm25_score(bq, tail->tokens, tail->n, tf);
	/* the best entries' chunks join, each scoring the better of its own and its entry's */
	if ((ret = words_rank(job, wq, src->txn, mask, *has_tail, WORDS_ENTRY_DEPTH, ent,
	                      &n_ent)) != 0)
		return ret == -ENOMEM ? ops_oom(job)
		                      : job_fail(job, ret, "lexical ranking failed: %s",
		                                 hsamem_strerror(ret));
	for (size_t e = 0, i; e < n_ent; e++) {
		for (i = 0; i < *n && all[i].chunk != ent[e].chunk; i++)
			;
		if (i == *n) {
			if (!searched || ent[e].chunk == (int64_t)u->n_chunks)
				continue; /* the tail is in all where it competes */
			all[i] = (struct candidate){.chunk = ent[e].chunk};
			if ((ret = chunk_bm25(job, src, cover, bq, all[i].chunk, tok, tf,
			                      &all[i].score)) != 0)
				return ret;
			(*n)++;
		}
		if (ent[e].score > all[i].score)
			all[i].score = ent[e].score;
	}
	for (size_t i = 0; i < *n; i++)
		words_chunk_score(cover, all[i].chunk, &all[i].score);
	return 0;
}

/*
 * A lexical memory's query (exact_pass): its candidates (exact_candidates), the best k of them
 * attended to alone (hyb_attend, query_tail). A candidate's score is its exact one, so that the
 * fusion weights and the entries follow the ranking. Returns 0, or the code of the failed job.
 */
#define EXACT_DEPTH 64
static int
query_exact(struct job *job, const struct enc_ops *enc, struct ops_source *src,
            struct store_tail *tail, const struct enc_stats *st, const float *qr, const float *qa,
            const uint64_t *mask, bool searched, uint32_t k, struct candidate *cand, size_t *n_cand)
{
	const struct store_user *u = &src->user;
	const struct hsa_spec *spec = &u->spec;
	uint32_t S = spec->S;
	uint32_t depth = k > EXACT_DEPTH ? k : EXACT_DEPTH;
	if (depth > SPEC_TOPK_MAX)
		depth = SPEC_TOPK_MAX;
	size_t n_sel = (size_t)spec->h_kv * depth, n = 0, n_sealed = 0;
	struct bm25_question bq;
	struct candidate *all =
	        arena_calloc(&job->arena, n_sel + WORDS_ENTRY_DEPTH + 2, sizeof(*all));
	int64_t *chunks = arena_calloc(&job->arena, k + 1, sizeof(int64_t));
	struct words_query *wq = NULL;
	bool has_tail = false;
	int ret;
	*n_cand = 0;
	if (!all || !chunks || bm25_question_init(job, st, &bq) != 0)
		return ops_oom(job);
	if ((ret = words_open(job, src->txn, u, &bq, &wq)) != 0)
		return ret == -ENOMEM ? ops_oom(job)
		                      : job_fail(job, ret, "lexical ranking failed: %s",
		                                 hsamem_strerror(ret));
	ret = exact_candidates(job, enc, src, tail, &bq, wq, qr, qa, mask, searched, depth, all, &n,
	                       &has_tail);
	words_close(wq);
	if (ret != 0)
		return ret;
	qsort(all, n, sizeof(*all), cmp_candidate);
	if (n > k)
		n = k;
	for (size_t i = 0; i < n; i++)
		if (all[i].chunk < (int64_t)u->n_chunks)
			chunks[n_sealed++] = all[i].chunk;
	qsort(chunks, n_sealed, sizeof(*chunks), cmp_i64);
	/* what the reply shows of the sealed ones: their in-chunk attention (the tail has its own)
	 */
	size_t n_at = (size_t)spec->h_kv * n_sealed;
	struct hsa_result res = {
	        .sel = arena_calloc(&job->arena, n_at + 1, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, n_at + 1, 4),
	        .weight = arena_calloc(&job->arena, n_at + 1, 4),
	        .attn = arena_calloc(&job->arena, (size_t)spec->h_q * n_sealed * S + 1, 4),
	};
	if (!res.sel || !res.score || !res.weight || !res.attn)
		return ops_oom(job);
	if (n_sealed > 0 && (ret = hyb_attend(job, src, chunks, n_sealed, qr, qa, &res)) != 0)
		return job_fail(job, ret, "query failed: %s", hsamem_strerror(ret));
	for (size_t c = 0; c < n; c++) {
		struct candidate *o = &cand[c];
		*o = (struct candidate){.chunk = all[c].chunk,
		                        .score = all[c].score,
		                        .attn = all[c].attn,
		                        .stride = all[c].stride,
		                        .rank = all[c].score};
		if (o->chunk != (int64_t)u->n_chunks)
			attended(spec, &res, n_sealed, o->chunk, &o->attn, &o->stride);
	}
	*n_cand = n;
	return 0;
}

void
ops_query(struct job *job)
{
	const Hsamem__QueryRequest *q = job->req->query;
	struct store_txn txn;
	struct store_user u;
	struct store_tail tail = {0};
	struct ops_source src;
	const struct enc_ops *enc;
	uint32_t *ids = NULL;
	size_t n_tok = 0;
	struct stages t;
	int ret;
	stages_start(&t, job->t0_ns);
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		return;
	ops_source_init(&src, &txn, &u);
	if (ops_encoder(job, &u, &enc) != 0)
		goto out;
	const struct hsa_spec *spec = &u.spec;
	if (enc == NULL) {
		job_fail(job, HSAMEM_ENOTSUP,
		         "the memory of '%s' is a client memory: use attend with your model's "
		         "queries",
		         q->user);
		goto out;
	}
	uint32_t k = q->top_k != 0 ? q->top_k : spec->top_k;
	uint32_t max_entries = q->has_max_entries ? q->max_entries : 8;
	if (k > SPEC_TOPK_MAX || max_entries > OPS_MAX_HITS_ENTRIES) {
		job_fail(job, HSAMEM_EINVAL, "top_k: at most %d; max_entries: at most %d",
		         SPEC_TOPK_MAX, OPS_MAX_HITS_ENTRIES);
		goto out;
	}
	struct store_filter filter;
	struct query_view view = {
	        .k = k,
	        .max_entries = max_entries,
	        .chunks = q->has_chunks && q->chunks,
	        .recall = {.max_hits = q->max_hits != 0 ? q->max_hits : k,
	                   .context = q->context,
	                   .has_min_score = q->has_min_score,
	                   .min_score = q->min_score,
	                   .f = &filter},
	};
	if (q->context > 8 || q->max_hits > OPS_MAX_LIST ||
	    (q->has_min_score && !isfinite(q->min_score))) {
		job_fail(job, HSAMEM_EINVAL,
		         "context: at most 8 entries; max_hits: at most %d; min_score: a number",
		         OPS_MAX_LIST);
		goto out;
	}
	if (ops_filter_from_proto(job, q->filter, &filter) != 0 ||
	    ops_filter_mask(job, &txn, &u, &filter, &view.mask, &view.allowed) != 0)
		goto out;
	enum hyb_mode mode;
	if (query_mode(job, &u, enc, &mode) != 0 || query_tokens(job, enc, &ids, &n_tok) != 0)
		goto out;
	bool model = hyb_wanted(enc);
	uint32_t S = spec->S;
	float *qr = arena_calloc(&job->arena, spec->d_r, 4);
	float *qa = arena_calloc(&job->arena, (size_t)spec->h_q * spec->d_h, 4);
	size_t n_sel = (size_t)spec->h_kv * k;
	struct hsa_result res = {
	        .out = arena_calloc(&job->arena, (size_t)spec->h_q * spec->d_h, 4),
	        .sel = arena_calloc(&job->arena, n_sel, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, n_sel, 4),
	        .weight = arena_calloc(&job->arena, n_sel, 4),
	        .attn = arena_calloc(&job->arena, (size_t)spec->h_q * k * S, 4),
	};
	struct candidate *cand = arena_calloc(&job->arena, n_sel + 1, sizeof(*cand));
	if (!qr || !qa || !res.out || !res.sel || !res.score || !res.weight || !res.attn || !cand) {
		ops_oom(job);
		goto out;
	}
	stage(&t, "prepare");
	/* a model memory ranked lexical or hybrid: the lexical side while the model encodes */
	bool ranked = model && mode != HYB_LEARNED, searched = u.n_chunks > 0 && view.allowed > 0;
	struct lexical_side ls = {.job = job,
	                          .src = &src,
	                          .enc = enc,
	                          .mode = mode,
	                          .k = k,
	                          .mask = view.mask,
	                          .ids = ids,
	                          .n_tok = n_tok};
	struct enc_meanwhile mw = {lexical_side_run, &ls};
	struct enc_stats st;
	ret = encode_query(job, &txn, &u, enc, ids, n_tok, qr, qa, ranked && searched ? &mw : NULL,
	                   &st);
	if (ret != 0) {
		lexical_side_finish(&ls);
		job_fail(job, ret, "encoder %s failed on the query", enc->name);
		goto out;
	}
	stage(&t, "question");

	size_t n_cand = 0;
	if (ranked) {
		/* ranked by the lexical landmarks, or both: already in order */
		if (searched && query_ranked(job, &src, &ls, qr, qa, cand, &n_cand, &t) != 0)
			goto out;
		query_reply(job, &txn, &u, &tail, cand, n_cand, &view, mode, model);
		stage(&t, "reply");
		stages_log(&t, q->user);
		goto out;
	}
	if (exact_pass(enc, spec)) {
		if (query_exact(job, enc, &src, &tail, &st, qr, qa, view.mask, searched, k, cand,
		                &n_cand) != 0)
			goto out;
		stage(&t, "rank");
		query_reply(job, &txn, &u, &tail, cand, n_cand, &view, mode, model);
		stage(&t, "reply");
		stages_log(&t, q->user);
		goto out;
	}
	if (searched) {
		/* after the whole stream: every sealed chunk is visible */
		uint64_t pos = u.n_chunks * S;
		struct hsa_query hq = {
		        .n = 1, .k = k, .pos = &pos, .qr = qr, .qa = qa, .mask = view.mask};
		if ((ret = ops_attend(job, spec, &src.src, &hq, &res)) != 0) {
			job_fail(job, ret, "query failed: %s", hsamem_strerror(ret));
			goto out;
		}
		n_cand = merge_heads(spec, k, &res, cand);
		stage(&t, "rank");
	}
	/* The tail, if asked for, competes as chunk n_chunks; a tail that cannot be read is left
	 * out, as if there were none. */
	bool has_tail;
	if (query_tail(job, enc, &src, &tail, view.mask, qr, qa, &cand[n_cand], &has_tail) != 0)
		goto out;
	n_cand += has_tail;
	qsort(cand, n_cand, sizeof(*cand), cmp_candidate);
	query_reply(job, &txn, &u, &tail, cand, n_cand < k ? n_cand : k, &view, mode, model);
	stage(&t, "reply");
	stages_log(&t, q->user);
out:
	ops_source_fini(&src);
	free(ids);
	store_txn_abort(&txn);
}
