/*
 * ops_forget.c: forgetting entries, updating one, and the history of updates (hsamem(7),
 * FORGETTING). A forget runs in the committer's transaction like an append, so it is as durable
 * and crash-safe: a crash leaves the memory as before it or as after it.
 *
 * What a forget of entries first .. last does, in one transaction (store.h, FORGETTING):
 *   1. each entry not yet forgotten becomes a tombstone (seq, role, time and token range stay; its
 *      text, tags, scope and metadata go, with their filter postings) and its links record says it
 * was forgotten;
 *   2. in the chunks and the tail, the slots of its tokens become padding (token 0, no text): the
 *      chunk boundaries of the rest of the stream do not move, nor do the token ranges of the
 *      other entries; a hole is encoded as padding is (holes_encode);
 *   3. every sealed chunk that had such a slot is encoded again (K, V, landmark) and counted again
 *      in the term statistics without them; with an encoder that reads left context, so are the
 *      chunks whose context reached back into one of them;
 *   4. the store is marked for erasure: the committer scrubs data.mdb before the reply (store.h,
 *      ERASURE), and after the commit the backend drops its copies of the memory (the GPU's
 *      resident landmarks and cached K/V, overwritten as they go).
 * Client memories are refused: their tensors come from the client's model, which the daemon
 * cannot run again.
 *
 * Padding in place, rather than closing the gap: closing it would move the chunk boundaries of
 * everything after, and so every chunk of the memory would have to be encoded again; a hole
 * costs the chunks that held it, and each keeps its other tokens where they were said.
 *
 * The request may carry a filter over entries later (proto: ForgetRequest); it would pick the
 * seqs that forget_range is given one run at a time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "holes.h"
#include "hybrid.h"
#include "log.h"
#include "ops.h"
#include "ops_filter.h"
#include "store_index.h"

/* Entries one forget may name. */
#define FORGET_MAX OPS_MAX_ENTRIES

/* The work of one forget. */
struct forget {
	struct job *job;
	struct store_txn *txn;
	struct store_user *u;
	const struct enc_ops *enc;
	uint64_t first, last;              /* the entries */
	const struct store_filter *filter; /* of those, the ones that pass it; NULL: all */
	uint8_t *gone;                     /* bit seq - first: forgotten now */
	uint64_t entries;                  /* forgotten now */
	uint64_t chunks;                   /* encoded again */
	float *K, *V, *L;
	char *kv, *row;
	uint32_t *tok, *old, *ctx;
	struct store_tokref *refs;
};

static void
forget_fini(struct forget *f)
{
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

/* Step 1: tombstones. Sets [*lo, *hi) to the token positions of the entries forgotten now. */
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
		if ((ret = unindex(f, &e)) != 0)
			return ret;
		e.text = "";
		e.text_len = 0;
		e.tags = NULL;
		e.tags_len = 0;
		e.scope = NULL;
		e.scope_len = 0;
		e.meta = NULL;
		e.meta_len = 0;
		l.flags |= STORE_LINK_FORGOTTEN;
		if ((ret = store_entry_put(f->txn, f->u->uid, &e)) != 0 ||
		    (ret = store_link_put(f->txn, f->u->uid, seq, &l)) != 0)
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

/* The left context of chunk j: the last real tokens before it, from the chunks before (as they
 * are in this transaction: those before j were rewritten first). */
static int
context_of(struct forget *f, uint64_t j, size_t *n_ctx)
{
	size_t want = f->enc->context, n = 0;
	/* a run of chunks forgotten whole gives no context: look back a few at most */
	for (uint64_t back = 0; n < want && back < j && back < 4 + want / f->u->spec.S; back++) {
		struct store_chunk c;
		int ret = store_chunk_get(f->txn, f->u->uid, j - 1 - back, &c);
		if (ret != 0)
			return ret;
		for (uint32_t i = c.n_real; i-- > 0 && n < want;)
			if (c.tokens[i] != 0)
				f->ctx[want - 1 - n++] = c.tokens[i];
	}
	memmove(f->ctx, f->ctx + want - n, n * sizeof(uint32_t));
	*n_ctx = n;
	return 0;
}

/* Steps 2 and 3 for sealed chunk j; *changed: whether it held a forgotten token. With only, the
 * chunk is encoded again only when it changed (an encoder without left context). */
static int
forget_chunk(struct forget *f, uint64_t j, bool only, bool *changed)
{
	const struct hsa_spec *sp = &f->u->spec;
	size_t per = (size_t)sp->S * sp->h_kv * sp->d_h, n_ctx = 0, n_old;
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
	if (!*changed && only)
		return 0;
	if (f->enc->context > 0 && (ret = context_of(f, j, &n_ctx)) != 0)
		return ret;
	if ((ret = holes_encode(f->enc, sp, f->ctx, n_ctx, f->tok, n, f->K, f->V, f->L)) != 0)
		return job_fail(f->job, ret, "encoder %s failed on chunk %llu: %s", f->enc->name,
		                (unsigned long long)j, hsamem_strerror(ret));
	half_from_float_row(sp->dtype, f->K, f->kv, per);
	half_from_float_row(sp->dtype, f->V, f->kv + spec_kv_bytes(sp) / 2, per);
	half_from_float_row(sp->dtype, f->L, f->row, sp->d_r);
	struct store_chunk nc = {.n_tokens = sp->S, .n_real = n, .tokens = f->tok, .refs = f->refs};
	bool keep_kv = !(f->u->flags & STORE_USER_KV_COMPUTED); /* store.h, COMPUTED K/V */
	if ((ret = store_chunk_put(f->txn, f->u->uid, j, &nc)) != 0 ||
	    (keep_kv &&
	     (ret = store_kv_put(f->txn, f->u->uid, j, f->kv, spec_kv_bytes(sp))) != 0) ||
	    (ret = store_landmark_set(f->txn, f->u, j, f->row)) != 0)
		return ret;
	f->chunks++;
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

/* Forgets entries first .. last of u (checked by the caller) that pass filter (NULL: all);
 * *entries and *chunks get what it did. */
static int
forget_range(struct job *job, struct store_txn *txn, struct store_user *u, uint64_t first,
             uint64_t last, const struct store_filter *filter, uint64_t *entries, uint64_t *chunks)
{
	struct forget f = {
	        .job = job, .txn = txn, .u = u, .first = first, .last = last, .filter = filter};
	uint64_t lo, hi, S = u->spec.S;
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
	if ((ret = forget_init(&f)) != 0 || (ret = forget_entries(&f, &lo, &hi)) != 0 ||
	    f.entries == 0)
		goto out;
	uint64_t after = f.enc->context > 0 ? (f.enc->context + S - 1) / S : 0, touched = 0;
	bool any = false;
	for (uint64_t j = lo / S; j < u->n_chunks && (j * S < hi || (any && j <= touched + after));
	     j++) {
		/* encoded again when it changed, or its left context did */
		bool changed, context = any && j <= touched + after;
		if ((ret = forget_chunk(&f, j, !context, &changed)) != 0)
			goto out;
		if (changed) {
			any = true;
			touched = j;
		}
	}
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

/* The memory a forget or update changes, as it is in the committer's transaction. */
static int
forget_target(struct job *job, struct store_txn *txn, const char *name, uint64_t first,
              uint64_t last, struct store_user *u)
{
	int ret = ops_get_user(job, txn, name, u);
	if (ret != 0)
		return ret;
	if (first > last || last >= u->n_entries)
		return job_fail(job, HSAMEM_ENOTFOUND,
		                "'%s' has entries 0 to %lld; there is no entry %llu", name,
		                (long long)u->n_entries - 1,
		                (unsigned long long)(last >= u->n_entries ? last : first));
	return 0;
}

/* The request's filter into *flt and whether it has one; a filter must name a condition. */
static int
forget_filter(struct job *job, struct store_filter *flt, bool *has)
{
	const Hsamem__ForgetRequest *q = job->req->forget;
	*has = q->filter != NULL;
	if (!*has)
		return 0;
	int ret = ops_filter_from_proto(job, q->filter, flt);
	if (ret == 0 && store_filter_empty(flt))
		return job_fail(job, HSAMEM_EINVAL,
		                "forget: the filter names no condition (delete forgets a whole "
		                "memory)");
	return ret;
}

int
ops_prepare_forget(struct job *job)
{
	const Hsamem__ForgetRequest *q = job->req->forget;
	struct store_filter flt;
	bool has;
	int ret = ops_check_name(job, q->user);
	if (ret != 0 || (ret = forget_filter(job, &flt, &has)) != 0)
		return ret;
	if (has)
		return 0; /* the range is the memory's, or within it: checked when applied */
	uint64_t last = q->has_last ? q->last : q->first;
	if (!q->has_first)
		return job_fail(job, HSAMEM_EINVAL, "forget names no entry and no filter");
	if (last < q->first)
		return job_fail(job, HSAMEM_EINVAL,
		                "forget: entries %llu to %llu: the range is empty",
		                (unsigned long long)q->first, (unsigned long long)last);
	if (last - q->first >= FORGET_MAX)
		return job_fail(job, HSAMEM_ETOOBIG, "forget: at most %d entries at once",
		                FORGET_MAX);
	return 0;
}

int
ops_apply_forget(struct job *job, struct store_txn *txn)
{
	const Hsamem__ForgetRequest *q = job->req->forget;
	uint64_t first = q->first, last = q->has_last ? q->last : q->first, entries = 0, chunks = 0;
	struct store_filter flt;
	struct store_user u;
	bool has;
	int ret = forget_filter(job, &flt, &has);
	if (ret == 0 && has) {
		/* with a filter, the whole memory unless a range says otherwise */
		if ((ret = ops_get_user(job, txn, q->user, &u)) != 0)
			return ret;
		if (!q->has_last)
			last = u.n_entries > 0 ? u.n_entries - 1 : 0;
	}
	if (ret == 0 && (!has || u.n_entries > 0))
		ret = forget_target(job, txn, q->user, first, last, &u);
	if (ret == 0 && u.n_entries > 0)
		ret = forget_range(job, txn, &u, first, last, has ? &flt : NULL, &entries, &chunks);
	if (ret != 0)
		return ret;
	job->uid = u.uid;
	Hsamem__ForgetReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__forget_reply__init(r);
	r->has_entries = r->has_chunks = true;
	r->entries = entries;
	r->chunks = chunks;
	job->reply.body_case = HSAMEM__REPLY__BODY_FORGET;
	job->reply.forget = r;
	return 0;
}

void
ops_committed_forget(struct job *job)
{
	struct daemon *d = job->d;
	/* the memory's sealed chunks changed under the same uid: nothing cached of it may stay */
	if (job->reply.status == 0 && job->uid != 0 && d->gpu != NULL &&
	    d->gpu->ops->forget != NULL)
		d->gpu->ops->forget(d->gpu, job->uid);
}

/* ---- update ---- */

int
ops_prepare_update(struct job *job)
{
	const Hsamem__UpdateRequest *q = job->req->update;
	int ret = ops_check_name(job, q->user);
	if (ret != 0)
		return ret;
	if (!q->has_seq || q->entry == NULL)
		return job_fail(job, HSAMEM_EINVAL,
		                "update needs the entry it replaces and a new one");
	Hsamem__AppendRequest *a = arena_alloc(&job->arena, sizeof(*a));
	Hsamem__EntryIn **e = arena_alloc(&job->arena, sizeof(*e));
	if (a == NULL || e == NULL)
		return ops_oom(job);
	hsamem__append_request__init(a);
	a->user = q->user;
	a->has_create = true;
	a->create = false;
	e[0] = q->entry;
	a->entries = e;
	a->n_entries = 1;
	return ops_prepare_append_req(job, a);
}

int
ops_apply_update(struct job *job, struct store_txn *txn)
{
	const Hsamem__UpdateRequest *q = job->req->update;
	struct store_user u;
	struct store_link old, neu;
	uint64_t entries, chunks;
	int ret = forget_target(job, txn, q->user, q->seq, q->seq, &u);
	if (ret != 0 || (ret = store_link_get(txn, u.uid, q->seq, &old)) != 0)
		return ret;
	if (old.flags & STORE_LINK_FORGOTTEN)
		return job_fail(job, HSAMEM_EINVAL, "entry %llu of '%s' was forgotten",
		                (unsigned long long)q->seq, q->user);
	if (old.replaced_by != STORE_NO_SEQ)
		return job_fail(
		        job, HSAMEM_EINVAL,
		        "entry %llu of '%s' was already replaced by entry %llu: update that",
		        (unsigned long long)q->seq, q->user, (unsigned long long)old.replaced_by);
	if ((ret = ops_apply_append_req(job, txn, job->append)) != 0)
		return ret;
	uint64_t seq = job->reply.append->first_seq;
	old.replaced_by = seq;
	neu = (struct store_link){0, q->seq, STORE_NO_SEQ};
	if ((ret = store_link_put(txn, u.uid, q->seq, &old)) != 0 ||
	    (ret = store_link_put(txn, u.uid, seq, &neu)) != 0)
		return ret;
	if (!q->keep_history) {
		/* the memory as the append left it */
		if ((ret = store_user_get(txn, q->user, &u)) != 0 ||
		    (ret = forget_range(job, txn, &u, q->seq, q->seq, NULL, &entries, &chunks)) !=
		            0)
			return ret;
		job->uid = u.uid;
	}
	Hsamem__UpdateReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__update_reply__init(r);
	r->has_seq = r->has_replaces = r->has_forgotten = true;
	r->seq = seq;
	r->replaces = q->seq;
	r->forgotten = !q->keep_history;
	job->reply.body_case = HSAMEM__REPLY__BODY_UPDATE;
	job->reply.update = r;
	return 0;
}

/* ---- history ---- */

/* The most entries a history lists. */
#define HISTORY_MAX OPS_MAX_LIST

void
ops_history(struct job *job)
{
	const Hsamem__HistoryRequest *q = job->req->history;
	struct store_txn txn;
	struct store_user u;
	struct store_link l;
	uint64_t seq = q->seq, n = 0;
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		return;
	int ret = 0;
	if (!q->has_seq || seq >= u.n_entries) {
		job_fail(job, HSAMEM_ENOTFOUND, "'%s' has no entry %llu", q->user,
		         (unsigned long long)seq);
		goto out;
	}
	/* back to the first of the chain */
	for (; n < HISTORY_MAX && (ret = store_link_get(&txn, u.uid, seq, &l)) == 0 &&
	       l.replaces != STORE_NO_SEQ && l.replaces < seq;
	     n++)
		seq = l.replaces;
	Hsamem__HistoryReply *r = arena_alloc(&job->arena, sizeof(*r));
	Hsamem__Entry **e = arena_calloc(&job->arena, HISTORY_MAX, sizeof(*e));
	if (ret != 0 || r == NULL || e == NULL) {
		if (ret == 0)
			ops_oom(job);
		else
			job_fail(job, ret, "store: %s", hsamem_strerror(ret));
		goto out;
	}
	hsamem__history_reply__init(r);
	r->entries = e;
	for (;;) {
		if (ops_entry_to_proto(job, &txn, u.uid, seq, &e[r->n_entries]) != 0)
			goto out;
		const Hsamem__Entry *m = e[r->n_entries++];
		if (!m->has_replaced_by || m->replaced_by <= seq || r->n_entries == HISTORY_MAX)
			break;
		seq = m->replaced_by;
	}
	job->reply.body_case = HSAMEM__REPLY__BODY_HISTORY;
	job->reply.history = r;
out:
	store_txn_abort(&txn);
}
