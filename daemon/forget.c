/*
 * forget.c: the work of a forget over one memory (forget.h; hsamem(7), FORGETTING), for the
 * handlers of ops_forget.c (forget, and update, which forgets the entry it replaces). A forget
 * runs in the committer's transaction like an append, so it is as durable and crash-safe: a
 * crash leaves the memory as before it or as after it.
 *
 * What a forget of entries first .. last does, in one transaction (store.h, FORGETTING):
 *   1. each entry not yet forgotten becomes a tombstone (seq, role, time and token range stay; its
 *      text, tags, scope and metadata go, with their filter postings) and its links record says it
 *      was forgotten;
 *   2. in the chunks and the tail, the slots of its tokens become padding (token 0, no text): the
 *      chunk boundaries of the rest of the stream do not move, nor do the token ranges of the
 *      other entries; a hole is encoded as padding is (holes.h);
 *   3. every sealed chunk that had such a slot is encoded again (K, V, landmark) and counted again
 *      in the term statistics without them (a model memory's lexical landmark too: hyb_reseal);
 *      with an encoder that reads left context, so are the chunks whose context reached back
 *      into one of them;
 *   4. the store is marked for erasure: the committer scrubs data.mdb before the reply (store.h,
 *      ERASURE), and after the commit the backend drops its copies of the memory (the GPU's
 *      resident landmarks and cached K/V, overwritten as they go).
 *
 * Encoding is the costly part (a model: tens of milliseconds a chunk on a CPU), and the committer
 * is where every write of every memory waits. So the worker that prepares a forget walks steps 1
 * to 3 first, reading only, over a snapshot of the memory: it finds the chunks of step 3, their
 * tokens after the forget and their left context (their windows), and encodes them all in one
 * call of the encoder (holes_encode_batch; forget_pre_encode), after its read transaction ended.
 * The committer then walks the steps again in its transaction and takes a chunk's tensors from
 * the worker's only when the chunk's window there is the very one the worker encoded: slots,
 * tokens and context compared (pre_take). Appends and flushes leave the chunks sealed before
 * alone; a chunk they sealed since the snapshot, whose context held a forgotten token, is
 * encoded in the committer (one or two chunks at most). Another forget of the memory that got in
 * between may have changed the chunks, their context or which are to be encoded: then nothing of
 * this forget is applied, and it goes back to a worker to be prepared anew from a fresh snapshot
 * (COMMIT_AGAIN, commit.h); after FORGET_TRIES such rounds the committer encodes what changed
 * itself, slower but never wrong. A lexical memory takes the same route; its encoder is cheap
 * either way.
 *
 * Padding in place, rather than closing the gap: closing it would move the chunk boundaries of
 * everything after, and so every chunk of the memory would have to be encoded again; a hole
 * costs the chunks that held it, and each keeps its other tokens where they were said.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "half.h"
#include "holes.h"
#include "hybrid.h"
#include "log.h"
#include "ops.h"
#include "forget.h"
#include "store_index.h"

/* Chunks of one holes_encode_batch call in a worker (their fp32 outputs: about 2 MB), and the
 * most a worker encodes for one forget (their f16 tensors wait in the job: about 17 KB a chunk);
 * a forget that changes more is encoded in the committer. */
#define FORGET_PRE_SLICE 64
#define FORGET_PRE_MAX   4096
/* How often a forget is prepared again when another forget changed its chunks meanwhile, before
 * the committer encodes them itself. */
#define FORGET_TRIES 2

/* A chunk the worker encoded again: its window and its tensors in the spec's dtype. */
struct forget_pre_chunk {
	uint64_t j;
	uint32_t n, n_ctx;
	uint32_t *tok, *ctx; /* n slots (0: a hole), n_ctx tokens of context */
	char *kv, *lmk;
};

/* What the worker encoded for a forget of memory uid with enc, in the job's arena, by chunk. */
struct forget_pre {
	uint64_t uid;
	const struct enc_ops *enc;
	uint64_t n_chunks; /* the memory's when the worker walked it */
	size_t n;
	struct forget_pre_chunk *c;
};

/* The work of one forget: applied in the committer's transaction, or walked read-only in a
 * worker (dry) to collect the windows to encode. */
struct forget {
	struct job *job;
	struct store_txn *txn;
	struct store_user *u;
	const struct enc_ops *enc;
	uint64_t first, last;              /* the entries */
	const struct store_filter *filter; /* of those, the ones that pass it; NULL: all */
	bool dry;                          /* a worker's walk: nothing written */
	const struct forget_pre *pre;      /* the committer's: the worker's chunks, or NULL */
	size_t pre_next;                   /* the next of them to look at */
	uint8_t *gone;                     /* bit seq - first: forgotten now */
	uint64_t entries;                  /* forgotten now */
	uint64_t chunks;                   /* encoded again */
	float *K, *V, *L;
	char *kv, *row;
	uint32_t *tok, *old, *ctx;
	struct store_tokref *refs;
	/* the chunks walked, from j0 on, as they are after the forget: the context of those after
	 */
	uint64_t j0;
	uint32_t *done, *done_n;
	size_t n_done, cap_done;
	/* dry: the windows to encode (chunk, slots, context) */
	struct forget_pre_chunk *win;
	size_t n_win, cap_win;
};

static void
forget_fini(struct forget *f)
{
	for (size_t i = 0; i < f->n_win; i++) {
		free(f->win[i].tok);
		free(f->win[i].ctx);
	}
	free(f->win);
	free(f->done);
	free(f->done_n);
	free(f->K);
	free(f->V);
	free(f->L);
	free(f->kv);
	free(f->row);
	free(f->tok);
	free(f->old);
	free(f->ctx);
	free(f->refs);
	free(f->gone);
}

static int
forget_init(struct forget *f)
{
	const struct hsa_spec *sp = &f->u->spec;
	size_t per = (size_t)sp->S * sp->h_kv * sp->d_h;
	f->K = malloc(per * sizeof(float));
	f->V = malloc(per * sizeof(float));
	f->L = malloc(sp->d_r * sizeof(float));
	f->kv = malloc(spec_kv_bytes(sp));
	f->row = malloc(spec_landmark_bytes(sp));
	f->tok = malloc(sp->S * sizeof(uint32_t));
	f->old = malloc(sp->S * sizeof(uint32_t));
	f->ctx = malloc((f->enc->context + 1) * sizeof(uint32_t));
	f->refs = malloc(sp->S * sizeof(struct store_tokref));
	f->gone = calloc((f->last - f->first) / 8 + 1, 1);
	if (!f->K || !f->V || !f->L || !f->kv || !f->row || !f->tok || !f->old || !f->ctx ||
	    !f->refs || !f->gone)
		return ops_oom(f->job);
	return 0;
}

/* Removes entry e's filter postings (its tags, scope and metadata are in their keys); from a
 * copy of its strings, which point into the map, since the removal writes (store_index.h). */
static int
unindex(struct forget *f, const struct store_entry *e)
{
	struct store_entry c = *e;
	size_t n = (size_t)e->tags_len + e->scope_len + e->meta_len;
	char *buf = malloc(n + 1);
	if (buf == NULL)
		return -ENOMEM;
	c.text = NULL;
	c.text_len = 0;
	c.tags = e->tags_len > 0 ? memcpy(buf, e->tags, e->tags_len) : NULL;
	c.scope = e->scope_len > 0 ? memcpy(buf + e->tags_len, e->scope, e->scope_len) : NULL;
	c.meta = e->meta_len > 0 ? memcpy(buf + e->tags_len + e->scope_len, e->meta, e->meta_len)
	                         : NULL;
	int ret = store_filter_unindex(f->txn, f->u->uid, &c);
	free(buf);
	return ret;
}

/* Entry e becomes a tombstone: its strings and postings go, its links record says forgotten. */
static int
tombstone(struct forget *f, struct store_entry *e, struct store_link *l)
{
	int ret = unindex(f, e);
	if (ret != 0)
		return ret;
	e->text = "";
	e->text_len = 0;
	e->tags = NULL;
	e->tags_len = 0;
	e->scope = NULL;
	e->scope_len = 0;
	e->meta = NULL;
	e->meta_len = 0;
	l->flags |= STORE_LINK_FORGOTTEN;
	if ((ret = store_entry_put(f->txn, f->u->uid, e)) != 0)
		return ret;
	return store_link_put(f->txn, f->u->uid, e->seq, l);
}

/* Step 1: tombstones (dry: only which entries). Sets [*lo, *hi) to the token positions of the
 * entries forgotten now. */
static int
forget_entries(struct forget *f, uint64_t *lo, uint64_t *hi)
{
	*lo = UINT64_MAX;
	*hi = 0;
	for (uint64_t seq = f->first; seq <= f->last; seq++) {
		struct store_entry e;
		struct store_link l;
		int ret = store_entry_get(f->txn, f->u->uid, seq, &e);
		if (ret == 0)
			ret = store_link_get(f->txn, f->u->uid, seq, &l);
		if (ret != 0)
			return ret;
		if ((l.flags & STORE_LINK_FORGOTTEN) ||
		    (f->filter != NULL && !store_filter_match(f->filter, &e)))
			continue;
		*lo = e.first_token < *lo ? e.first_token : *lo;
		*hi = e.first_token + e.n_tokens > *hi ? e.first_token + e.n_tokens : *hi;
		if (!f->dry && (ret = tombstone(f, &e, &l)) != 0)
			return ret;
		f->gone[(seq - f->first) / 8] |= (uint8_t)(1u << (seq - f->first) % 8);
		f->entries++;
	}
	return 0;
}

/* Blanks the slots of forgotten entries among n tokens; whether any was. */
static bool
blank(const struct forget *f, uint32_t *tok, struct store_tokref *refs, uint32_t n)
{
	bool any = false;
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] != 0 && refs[i].entry >= f->first && refs[i].entry <= f->last &&
		    (f->gone[(refs[i].entry - f->first) / 8] >> (refs[i].entry - f->first) % 8 &
		     1)) {
			tok[i] = 0;
			refs[i] = (struct store_tokref){0, 0, 0};
			any = true;
		}
	return any;
}

/* The real tokens of tok[0, n) into out; their count. */
static size_t
real_tokens(const uint32_t *tok, uint32_t n, uint32_t *out)
{
	size_t m = 0;
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] != 0)
			out[m++] = tok[i];
	return m;
}

/* Notes chunk j's tokens after the forget (f->tok, n of them), the context of the chunks after;
 * j is the next after the last noted. */
static int
note_done(struct forget *f, uint64_t j, uint32_t n)
{
	size_t S = f->u->spec.S;
	if (f->n_done == 0)
		f->j0 = j;
	if (f->n_done == f->cap_done) {
		size_t cap = f->cap_done > 0 ? 2 * f->cap_done : 16;
		uint32_t *d = realloc(f->done, cap * S * sizeof(uint32_t));
		if (d != NULL)
			f->done = d;
		uint32_t *dn = d != NULL ? realloc(f->done_n, cap * sizeof(uint32_t)) : NULL;
		if (dn == NULL)
			return ops_oom(f->job);
		f->done_n = dn;
		f->cap_done = cap;
	}
	memcpy(f->done + f->n_done * S, f->tok, n * sizeof(uint32_t));
	f->done_n[f->n_done++] = n;
	return 0;
}

/* The left context of chunk j: the last real tokens before it, from the chunks before as they
 * are after the forget (those walked before j as noted, the earlier ones as stored), not past a
 * flush's padded chunk; seal.c's gather_context follows the same rule. */
static int
context_of(struct forget *f, uint64_t j, size_t *n_ctx)
{
	size_t want = f->enc->context, n = 0, S = f->u->spec.S;
	/* a run of chunks forgotten whole gives no context: look back a few at most */
	for (uint64_t back = 0; n < want && back < j && back < 4 + want / S; back++) {
		uint64_t k = j - 1 - back;
		const uint32_t *tok;
		uint32_t n_real;
		if (f->n_done > 0 && k >= f->j0 && k - f->j0 < f->n_done) {
			tok = f->done + (k - f->j0) * S;
			n_real = f->done_n[k - f->j0];
		} else {
			struct store_chunk c;
			int ret = store_chunk_get(f->txn, f->u->uid, k, &c);
			if (ret != 0)
				return ret;
			tok = c.tokens;
			n_real = c.n_real;
		}
		for (uint32_t i = n_real; i-- > 0 && n < want;)
			if (tok[i] != 0)
				f->ctx[want - 1 - n++] = tok[i];
		if (n_real < S)
			break;
	}
	memmove(f->ctx, f->ctx + want - n, n * sizeof(uint32_t));
	*n_ctx = n;
	return 0;
}

/* Dry: notes chunk j's window (f->tok, n slots; f->ctx, n_ctx) for the worker to encode. */
static int
note_window(struct forget *f, uint64_t j, uint32_t n, size_t n_ctx)
{
	if (f->n_win == f->cap_win) {
		size_t cap = f->cap_win > 0 ? 2 * f->cap_win : 8;
		struct forget_pre_chunk *w = realloc(f->win, cap * sizeof(*w));
		if (w == NULL)
			return ops_oom(f->job);
		f->win = w;
		f->cap_win = cap;
	}
	struct forget_pre_chunk *w = &f->win[f->n_win];
	*w = (struct forget_pre_chunk){.j = j, .n = n, .n_ctx = (uint32_t)n_ctx};
	w->tok = malloc(n * sizeof(uint32_t) + 1);
	w->ctx = malloc(n_ctx * sizeof(uint32_t) + 1);
	f->n_win++; /* freed with the others even when a copy failed */
	if (w->tok == NULL || w->ctx == NULL)
		return ops_oom(f->job);
	memcpy(w->tok, f->tok, n * sizeof(uint32_t));
	if (n_ctx > 0)
		memcpy(w->ctx, f->ctx, n_ctx * sizeof(uint32_t));
	return 0;
}

/* Committer: whether the worker encoded chunk j from this very window (f->tok, n slots; f->ctx,
 * n_ctx): 1, its tensors copied to f->kv and f->row; 0 when the worker had no part in it (no
 * tensors, or a chunk sealed since its snapshot); -1 when its part went stale (another forget
 * changed the chunk, its context or the chunks to encode). */
static int
pre_take(struct forget *f, uint64_t j, uint32_t n, size_t n_ctx)
{
	const struct forget_pre *p = f->pre;
	const struct hsa_spec *sp = &f->u->spec;
	if (p == NULL || j >= p->n_chunks)
		return 0;
	while (f->pre_next < p->n && p->c[f->pre_next].j < j)
		f->pre_next++;
	const struct forget_pre_chunk *c = f->pre_next < p->n ? &p->c[f->pre_next] : NULL;
	if (c == NULL || c->j != j || c->n != n || c->n_ctx != n_ctx ||
	    memcmp(c->tok, f->tok, n * sizeof(uint32_t)) != 0 ||
	    (n_ctx > 0 && memcmp(c->ctx, f->ctx, n_ctx * sizeof(uint32_t)) != 0)) {
		log_debug("forget: chunk %llu of '%s' changed while the forget was prepared",
		          (unsigned long long)j, f->u->name);
		return -1;
	}
	memcpy(f->kv, c->kv, spec_kv_bytes(sp));
	memcpy(f->row, c->lmk, spec_landmark_bytes(sp));
	return 1;
}

/* Step 3's encoding of chunk j (its window in f->tok and f->ctx) into f->kv and f->row: the
 * worker's tensors when it encoded this window; COMMIT_AGAIN, to have the forget prepared anew,
 * when its tensors went stale (a few times at most); else encoded here. */
static int
encode_here(struct forget *f, uint64_t j, uint32_t n, size_t n_ctx)
{
	const struct hsa_spec *sp = &f->u->spec;
	size_t per = (size_t)sp->S * sp->h_kv * sp->d_h;
	int took = pre_take(f, j, n, n_ctx);
	if (took > 0)
		return 0;
	if (took < 0 && f->job->tries < FORGET_TRIES)
		return COMMIT_AGAIN;
	int ret = holes_encode(f->enc, sp, f->ctx, n_ctx, f->tok, n, f->K, f->V, f->L);
	if (ret != 0)
		return job_fail(f->job, ret, "encoder %s failed on chunk %llu: %s", f->enc->name,
		                (unsigned long long)j, hsamem_strerror(ret));
	half_from_float_row(sp->dtype, f->K, f->kv, per);
	half_from_float_row(sp->dtype, f->V, f->kv + spec_kv_bytes(sp) / 2, per);
	half_from_float_row(sp->dtype, f->L, f->row, sp->d_r);
	return 0;
}

/* Steps 2 and 3 for sealed chunk j; *changed: whether it held a forgotten token. With only, the
 * chunk is encoded again only when it changed (an encoder without left context). Dry: its
 * window is noted instead. */
static int
forget_chunk(struct forget *f, uint64_t j, bool only, bool *changed)
{
	const struct hsa_spec *sp = &f->u->spec;
	size_t n_ctx = 0, n_old;
	struct store_chunk c;
	int ret = store_chunk_get(f->txn, f->u->uid, j, &c);
	if (ret != 0)
		return ret;
	uint32_t n = c.n_real;
	memset(f->tok, 0, sp->S * sizeof(uint32_t));
	memset(f->refs, 0, sp->S * sizeof(struct store_tokref));
	memcpy(f->tok, c.tokens, n * sizeof(uint32_t));
	memcpy(f->refs, c.refs, n * sizeof(struct store_tokref));
	n_old = real_tokens(f->tok, n, f->old);
	*changed = blank(f, f->tok, f->refs, n);
	if (f->enc->context > 0 && (ret = note_done(f, j, n)) != 0)
		return ret;
	if (!*changed && only)
		return 0;
	if (f->enc->context > 0 && (ret = context_of(f, j, &n_ctx)) != 0)
		return ret;
	f->chunks++;
	if (f->dry)
		return note_window(f, j, n, n_ctx);
	if ((ret = encode_here(f, j, n, n_ctx)) != 0)
		return ret;
	struct store_chunk nc = {.n_tokens = sp->S, .n_real = n, .tokens = f->tok, .refs = f->refs};
	bool keep_kv = !(f->u->flags & STORE_USER_KV_COMPUTED); /* store.h, COMPUTED K/V */
	if ((ret = store_chunk_put(f->txn, f->u->uid, j, &nc)) != 0 ||
	    (keep_kv &&
	     (ret = store_kv_put(f->txn, f->u->uid, j, f->kv, spec_kv_bytes(sp))) != 0) ||
	    (ret = store_landmark_set(f->txn, f->u, j, f->row)) != 0)
		return ret;
	if (!*changed)
		return 0;
	/* counted again without them: f->old holds the real tokens before, f->tok's are after */
	size_t n_new = real_tokens(f->tok, n, f->tok);
	if (f->u->flags & STORE_USER_LEXICAL) /* its lexical landmark and terms (hybrid.h) */
		return hyb_reseal(f->txn, f->u, f->enc, j, f->old, (uint32_t)n_old, f->tok,
		                  (uint32_t)n_new);
	if ((ret = store_terms_sub(f->txn, f->u->uid, f->old, n_old)) != 0)
		return ret;
	return store_terms_add(f->txn, f->u->uid, f->tok, n_new);
}

/* Step 2 for the tail. */
static int
forget_tail(struct forget *f)
{
	struct store_tail t;
	int ret = store_tail_get(f->txn, f->u->uid, &t);
	if (ret != 0 || t.n == 0)
		return ret;
	memcpy(f->tok, t.tokens, t.n * sizeof(uint32_t));
	memcpy(f->refs, t.refs, t.n * sizeof(struct store_tokref));
	if (!blank(f, f->tok, f->refs, t.n))
		return 0;
	struct store_tail nt = {.n = t.n, .tokens = f->tok, .refs = f->refs};
	return store_tail_put(f->txn, f->u->uid, &nt);
}

/* Steps 1 to 3 over f's memory (dry: read only, the windows noted). */
static int
forget_walk(struct forget *f)
{
	uint64_t lo, hi, S = f->u->spec.S;
	int ret;
	if ((ret = forget_init(f)) != 0 || (ret = forget_entries(f, &lo, &hi)) != 0 ||
	    f->entries == 0)
		return ret;
	uint64_t after = f->enc->context > 0 ? (f->enc->context + S - 1) / S : 0, touched = 0;
	bool any = false;
	for (uint64_t j = lo / S;
	     j < f->u->n_chunks && (j * S < hi || (any && j <= touched + after)); j++) {
		/* encoded again when it changed, or its left context did */
		bool changed, context = any && j <= touched + after;
		if ((ret = forget_chunk(f, j, !context, &changed)) != 0)
			return ret;
		if (changed) {
			any = true;
			touched = j;
		}
	}
	return 0;
}

int
forget_range(struct job *job, struct store_txn *txn, struct store_user *u, uint64_t first,
             uint64_t last, const struct store_filter *filter, uint64_t *entries, uint64_t *chunks)
{
	struct forget f = {
	        .job = job, .txn = txn, .u = u, .first = first, .last = last, .filter = filter};
	int ret = ops_encoder(job, u, &f.enc);
	if (ret != 0)
		return ret;
	if (f.enc == NULL)
		return job_fail(
		        job, HSAMEM_ENOTSUP,
		        "the memory of '%s' holds a client model's tensors, which the daemon "
		        "cannot compute again without the entry: forget is for memories of a "
		        "built-in encoder",
		        u->name);
	if (job->fpre != NULL && job->fpre->uid == u->uid && job->fpre->enc == f.enc)
		f.pre = job->fpre;
	if ((ret = forget_walk(&f)) != 0 || f.entries == 0)
		goto out;
	if ((ret = forget_tail(&f)) != 0 || (ret = store_erase_mark(txn)) != 0)
		goto out;
	u->updated_ms = now_ms();
	ret = store_user_update(txn, u);
out:
	*entries = f.entries;
	*chunks = f.chunks;
	forget_fini(&f);
	return ret;
}

/* ---- the worker's part ---- */

/* The tensors of pre's windows, in the spec's dtype; one encoder call per
 * FORGET_PRE_SLICE windows. */
static int
pre_slices(struct job *job, const struct enc_ops *enc, const struct hsa_spec *sp,
           struct forget_pre *pre)
{
	const struct forget_pre_chunk *w = pre->c;
	size_t n = pre->n;
	size_t per = (size_t)sp->S * sp->h_kv * sp->d_h,
	       m = n < FORGET_PRE_SLICE ? n : FORGET_PRE_SLICE;
	float *K = malloc(m * per * sizeof(float)), *V = malloc(m * per * sizeof(float));
	float *L = malloc(m * sp->d_r * sizeof(float));
	struct holes_chunk *hc = malloc(m * sizeof(*hc));
	int ret = 0;
	if (K == NULL || V == NULL || L == NULL || hc == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	for (size_t c0 = 0; c0 < n && ret == 0; c0 += m) {
		size_t k = n - c0 < m ? n - c0 : m;
		for (size_t i = 0; i < k; i++)
			hc[i] = (struct holes_chunk){w[c0 + i].ctx, w[c0 + i].n_ctx, w[c0 + i].tok,
			                             w[c0 + i].n};
		if ((ret = holes_encode_batch(enc, sp, hc, k, K, V, L)) != 0) {
			job_fail(job, ret, "encoder %s failed on %zu chunk(s): %s", enc->name, k,
			         hsamem_strerror(ret));
			break;
		}
		for (size_t i = 0; i < k; i++) {
			struct forget_pre_chunk *c = &pre->c[c0 + i];
			half_from_float_row(sp->dtype, K + i * per, c->kv, per);
			half_from_float_row(sp->dtype, V + i * per, c->kv + spec_kv_bytes(sp) / 2,
			                    per);
			half_from_float_row(sp->dtype, L + i * sp->d_r, c->lmk, sp->d_r);
		}
	}
out:
	free(hc);
	free(L);
	free(V);
	free(K);
	return ret;
}

/* The windows f noted, into the job's arena as a forget_pre (their tensors still to come). */
static struct forget_pre *
pre_alloc(struct job *job, const struct forget *f)
{
	const struct hsa_spec *sp = &f->u->spec;
	struct forget_pre *pre = arena_alloc(&job->arena, sizeof(*pre));
	if (pre == NULL || (pre->c = arena_calloc(&job->arena, f->n_win, sizeof(*pre->c))) == NULL)
		return NULL;
	pre->uid = f->u->uid;
	pre->enc = f->enc;
	pre->n_chunks = f->u->n_chunks;
	pre->n = f->n_win;
	for (size_t i = 0; i < f->n_win; i++) {
		const struct forget_pre_chunk *w = &f->win[i];
		struct forget_pre_chunk *c = &pre->c[i];
		*c = *w;
		c->tok = arena_alloc(&job->arena, w->n * sizeof(uint32_t) + 1);
		c->ctx = arena_alloc(&job->arena, w->n_ctx * sizeof(uint32_t) + 1);
		c->kv = arena_alloc(&job->arena, spec_kv_bytes(sp));
		c->lmk = arena_alloc(&job->arena, spec_landmark_bytes(sp));
		if (c->tok == NULL || c->ctx == NULL || c->kv == NULL || c->lmk == NULL)
			return NULL;
		memcpy(c->tok, w->tok, w->n * sizeof(uint32_t));
		memcpy(c->ctx, w->ctx, w->n_ctx * sizeof(uint32_t));
	}
	return pre;
}

/* The encoder of u when it can serve now, quietly: NULL lets the committer say why not. */
static const struct enc_ops *
pre_encoder(const struct store_user *u)
{
	const struct enc_ops *enc = enc_find(u->spec.encoder);
	if (enc == NULL || (enc->ready != NULL && enc->ready(NULL, 0) != 0) ||
	    !enc_serves(enc, u->spec.revision))
		return NULL;
	return enc;
}

int
forget_pre_encode(struct job *job, const char *name, uint64_t first, uint64_t last, bool to_end,
                  const struct store_filter *filter)
{
	struct store_txn txn;
	struct store_user u;
	struct forget f = {.job = job, .txn = &txn, .u = &u, .filter = filter, .dry = true};
	int ret = store_txn_begin(job->d->store, &txn, false, NULL);
	job->fpre = NULL;
	if (ret != 0)
		return job_fail(job, ret, "store: cannot begin a read: %s", hsamem_strerror(ret));
	if (store_user_get(&txn, name, &u) != 0 || u.n_entries == 0 ||
	    (f.enc = pre_encoder(&u)) == NULL) {
		store_txn_abort(&txn);
		return 0;
	}
	f.first = first;
	f.last = to_end ? u.n_entries - 1 : last;
	if (f.first <= f.last && f.last < u.n_entries)
		ret = forget_walk(&f);
	store_txn_abort(&txn);
	if (ret != 0 && job->reply.status == 0)
		ret = 0; /* the store's error: the committer meets it too, and says so */
	if (ret != 0 || f.n_win == 0 || f.n_win > FORGET_PRE_MAX)
		goto out;
	struct forget_pre *pre = pre_alloc(job, &f);
	if (pre == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	if ((ret = pre_slices(job, f.enc, &u.spec, pre)) == 0)
		job->fpre = pre;
out:
	forget_fini(&f);
	return ret;
}
