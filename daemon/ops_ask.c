/*
 * ops_ask.c: ask, answers from memory (hsamem(7), ASKING; experimental). For a memory whose
 * built-in encoder is a language model (answer_open: hsa-small), the model answers the question
 * greedily, one token at a time, with HSA over the memory at every generated position: the model
 * gives the position's retrieval and attention queries, the daemon's backend ranks every sealed
 * chunk by its landmark, takes the top-k and fuses attention over their stored K/V (ops_attend,
 * as query and attend do, so a CUDA backend serves it from its caches), and the model turns the
 * fused output into the next token. The question is placed after the stream's last tokens, as a
 * query's (ops_query_context), so the unsealed tail is in the model's own window and only sealed
 * chunks are ranked (models/README.md, "Query path").
 *
 * With a filter (hsamem(7), SCOPES AND FILTERS) only chunks holding a passing entry are ranked,
 * the question gets no stream context (the last tokens may belong to entries the filter leaves
 * out), and the chunks named show only passing entries.
 *
 * The reply names the chunks the answer drew on most: each chunk's fusion weight summed over the
 * positions the answer was predicted from (and averaged over the kv heads), the ASK_DRAWN
 * heaviest, with their text and entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_filter.h"

#define ASK_DEFAULT_TOKENS 32
#define ASK_MAX_TOKENS     64
#define ASK_DRAWN          3 /* chunks named in the reply */

/* A chunk's fusion weight summed over the answer's positions. */
struct drawn {
	int64_t chunk;
	float weight;
};

struct ask {
	const struct enc_ops *enc;
	struct enc_answer *a;
	uint32_t *tokens; /* the answer so far */
	uint32_t n_tokens, positions;
	bool complete;
	struct drawn *drawn; /* distinct chunks selected so far */
	size_t n_drawn;
	struct store_filter filter;
	uint64_t *mask; /* the filter's chunk mask; NULL: none */
	uint64_t allowed;
};

static int
cmp_drawn(const void *x, const void *y)
{
	const struct drawn *a = x, *b = y;
	if (a->weight != b->weight)
		return a->weight > b->weight ? -1 : 1;
	return a->chunk < b->chunk ? -1 : a->chunk > b->chunk;
}

/* Adds one position's selection (every kv head's) to the chunks' summed weights. */
static void
add_weights(struct ask *ak, const struct hsa_spec *spec, const struct hsa_result *res)
{
	for (size_t i = 0; i < (size_t)spec->h_kv * spec->top_k; i++) {
		size_t c;
		if (res->sel[i] < 0)
			continue;
		for (c = 0; c < ak->n_drawn && ak->drawn[c].chunk != res->sel[i]; c++)
			;
		if (c == ak->n_drawn)
			ak->drawn[ak->n_drawn++] = (struct drawn){res->sel[i], 0};
		ak->drawn[c].weight += res->weight[i] / (float)spec->h_kv;
	}
}

/* Generates the answer: per position the model's queries, the backend's HSA, the next token. */
static int
generate(struct job *job, struct ops_source *src, struct ask *ak, uint32_t max_tokens)
{
	const struct hsa_spec *spec = &src->user.spec;
	size_t n_out = (size_t)spec->h_q * spec->d_h, n_sel = (size_t)spec->h_kv * spec->top_k;
	float *qr = arena_calloc(&job->arena, spec->d_r, 4);
	float *qa = arena_calloc(&job->arena, n_out, 4);
	struct hsa_result res = {
	        .out = arena_calloc(&job->arena, n_out, 4),
	        .sel = arena_calloc(&job->arena, n_sel, sizeof(int64_t)),
	        .score = arena_calloc(&job->arena, n_sel, 4),
	        .weight = arena_calloc(&job->arena, n_sel, 4),
	};
	uint64_t pos = src->user.n_chunks * spec->S;
	struct hsa_query hq = {
	        .n = 1, .k = spec->top_k, .pos = &pos, .qr = qr, .qa = qa, .mask = ak->mask};
	int ret;
	if (!qr || !qa || !res.out || !res.sel || !res.score || !res.weight)
		return ops_oom(job);
	while (!ak->complete) {
		uint32_t tok;
		if ((ret = ak->enc->answer_step(ak->a, qr, qa)) != 0)
			return job_fail(job, ret, "encoder %s failed on the answer", ak->enc->name);
		/* no sealed chunk: the HSA output is zero (nothing to attend to) */
		memset(res.out, 0, n_out * 4);
		if (src->user.n_chunks > 0 && ak->allowed > 0) {
			if ((ret = ops_attend(job, spec, &src->src, &hq, &res)) != 0)
				return job_fail(job, ret, "ask failed: %s", hsamem_strerror(ret));
			add_weights(ak, spec, &res);
		}
		ak->positions++;
		if ((ret = ak->enc->answer_next(ak->a, res.out, &tok, &ak->complete)) != 0)
			return job_fail(job, ret, "encoder %s failed on the answer", ak->enc->name);
		if (!ak->complete)
			ak->tokens[ak->n_tokens++] = tok;
		if (ak->n_tokens == max_tokens)
			break;
	}
	return 0;
}

/* The question's tokens as the model was trained on them (after the encoder's prefix). */
static int
question_tokens(struct job *job, const struct enc_ops *enc, const char *text, uint32_t **ids,
                size_t *n)
{
	struct enc_token *toks = NULL;
	char *q = NULL;
	size_t n_tok;
	if (strlen(text) > job->d->conf.max_entry)
		return job_fail(job, HSAMEM_ETOOBIG, "the question exceeds max-entry");
	if (asprintf(&q, "%s%s", enc->query_prefix != NULL ? enc->query_prefix : "", text) < 0)
		return ops_oom(job);
	int ret = enc->tokenize(q, strlen(q), &toks, &n_tok);
	free(q);
	if (ret != 0)
		return job_fail(job, ret, "tokenizer failed");
	if (enc->max_query != 0 && n_tok > enc->max_query) {
		free(toks);
		return job_fail(job, HSAMEM_ETOOBIG,
		                "the question has %zu tokens; encoder %s takes at most %u", n_tok,
		                enc->name, enc->max_query);
	}
	*ids = arena_calloc(&job->arena, n_tok + 1, sizeof(uint32_t));
	if (*ids == NULL) {
		free(toks);
		return ops_oom(job);
	}
	for (size_t i = 0; i < n_tok; i++)
		(*ids)[i] = toks[i].id;
	*n = n_tok;
	free(toks);
	return 0;
}

/* The reply: the answer, its tokens, and the chunks it drew on most with their entries. */
static void
ask_reply(struct job *job, struct store_txn *txn, const struct store_user *u, struct ask *ak,
          uint32_t max_entries)
{
	Hsamem__AskReply *r = arena_alloc(&job->arena, sizeof(*r));
	size_t n = ak->n_drawn < ASK_DRAWN ? ak->n_drawn : ASK_DRAWN;
	Hsamem__Hit **hits = arena_calloc(&job->arena, n + 1, sizeof(*hits));
	char *text = NULL;
	int ret;
	if (r == NULL || hits == NULL) {
		ops_oom(job);
		return;
	}
	if ((ret = ak->enc->decode(ak->tokens, ak->n_tokens, &text)) != 0) {
		job_fail(job, ret, "encoder %s cannot decode the answer", ak->enc->name);
		return;
	}
	hsamem__ask_reply__init(r);
	r->answer = arena_strndup(&job->arena, text, strlen(text));
	free(text);
	if (r->answer == NULL) {
		ops_oom(job);
		return;
	}
	qsort(ak->drawn, ak->n_drawn, sizeof(*ak->drawn), cmp_drawn);
	for (size_t i = 0; i < n; i++) {
		Hsamem__Hit *h = arena_alloc(&job->arena, sizeof(*h));
		struct store_chunk c;
		if (h == NULL) {
			ops_oom(job);
			return;
		}
		hsamem__hit__init(h);
		h->has_chunk = h->has_weight = h->has_tail = true;
		h->chunk = (uint64_t)ak->drawn[i].chunk;
		h->weight = ak->drawn[i].weight;
		if ((ret = store_chunk_get(txn, u->uid, h->chunk, &c)) != 0) {
			job_fail(job, ret, "store: cannot read chunk %llu: %s",
			         (unsigned long long)h->chunk, hsamem_strerror(ret));
			return;
		}
		if (ops_fill_hit(job, txn, u, h, c.tokens, c.refs, c.n_real, NULL, 0, 0,
		                 max_entries, &ak->filter) != 0)
			return;
		hits[r->n_chunks++] = h;
	}
	r->chunks = hits;
	r->tokens = ak->tokens;
	r->n_tokens = ak->n_tokens;
	r->has_experimental = r->has_complete = r->has_positions = r->has_searched = true;
	r->experimental = true;
	r->complete = ak->complete;
	r->positions = ak->positions;
	r->searched = u->n_chunks;
	r->encoder = (char *)ak->enc->name;
	job->reply.body_case = HSAMEM__REPLY__BODY_ASK;
	job->reply.ask = r;
}

void
ops_ask(struct job *job)
{
	const Hsamem__AskRequest *q = job->req->ask;
	struct store_txn txn;
	struct store_user u;
	struct ops_source src;
	struct ask ak = {0};
	uint32_t *ctx = NULL, *ids = NULL;
	size_t n_ctx = 0, n_ids = 0;
	int ret;
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		return;
	ops_source_init(&src, &txn, &u);
	if (ops_encoder(job, &u, &ak.enc) != 0)
		goto out;
	if (ak.enc == NULL || ak.enc->answer_open == NULL || ak.enc->decode == NULL) {
		job_fail(job, HSAMEM_ENOTSUP,
		         "ask needs a memory whose encoder is a language model (hsa-small); the "
		         "memory of '%s' is of encoder %s",
		         q->user, u.spec.encoder);
		goto out;
	}
	uint32_t max_tokens = q->max_tokens != 0 ? q->max_tokens : ASK_DEFAULT_TOKENS;
	uint32_t max_entries = q->has_max_entries ? q->max_entries : 8;
	if (q->text == NULL || *q->text == '\0' || max_tokens > ASK_MAX_TOKENS ||
	    max_entries > OPS_MAX_HITS_ENTRIES) {
		job_fail(job, HSAMEM_EINVAL,
		         "ask: a question, max_tokens at most %d, max_entries at most %d",
		         ASK_MAX_TOKENS, OPS_MAX_HITS_ENTRIES);
		goto out;
	}
	if (ops_filter_from_proto(job, q->filter, &ak.filter) != 0 ||
	    ops_filter_mask(job, &txn, &u, &ak.filter, &ak.mask, &ak.allowed) != 0)
		goto out;
	if (question_tokens(job, ak.enc, q->text, &ids, &n_ids) != 0)
		goto out;
	ak.tokens = arena_calloc(&job->arena, max_tokens + 1, sizeof(uint32_t));
	ak.drawn = arena_calloc(&job->arena, (size_t)(max_tokens + 1) * u.spec.h_kv * u.spec.top_k,
	                        sizeof(*ak.drawn));
	if (ak.tokens == NULL || ak.drawn == NULL) {
		ops_oom(job);
		goto out;
	}
	/* with a filter, the stream's last tokens may belong to entries it leaves out: no context
	 */
	if (ak.mask == NULL &&
	    (ret = ops_query_context(job, &txn, &u, ak.enc->query_context, &ctx, &n_ctx)) != 0) {
		job_fail(job, ret, "store: cannot read the stream's last tokens");
		goto out;
	}
	ret = ak.enc->answer_open(&u.spec, ctx, n_ctx, ids, n_ids, max_tokens, &ak.a);
	if (ret != 0) {
		job_fail(job, ret, "encoder %s cannot answer", ak.enc->name);
		goto out;
	}
	if (generate(job, &src, &ak, max_tokens) == 0)
		ask_reply(job, &txn, &u, &ak, max_entries);
out:
	if (ak.enc != NULL && ak.a != NULL)
		ak.enc->answer_close(ak.a);
	ops_source_fini(&src);
	store_txn_abort(&txn);
}
