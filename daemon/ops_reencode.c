/*
 * ops_reencode.c: rebuilding a memory from its kept text with another built-in encoder, or another
 * revision of the same one (hsamem(7), RE-ENCODING), while the memory goes on serving.
 *
 * The new memory is built beside the old one, under a hidden name that no user name can take
 * ("~reencode.<old uid>": '~' is outside the name rule) and flagged STORE_USER_IMPORTING, so that
 * no operation sees it and a start removes it as it removes an unfinished import
 * (ops_import_cleanup). The client drives the work in steps, one request each; each step is a
 * write of the committer that copies the next entries (text, role, timestamp, tags, as they are),
 * tokenises them with the new encoder, seals the chunks they fill, and stops after a budget of
 * tokens, so that no step holds the store's only writer for long. Steps keep no state in the
 * daemon: the hidden memory itself says how far it got, so any step may be the first after a
 * restart of the client, a lost reply or a second client driving the same re-encode.
 *
 *   no hidden memory --step--> hidden, entries [0, k) --step--> ... --step (caught up)--> swapped
 *
 * Appends go on to the old memory meanwhile, and the steps catch up with them. The step that has
 * copied the last entry swaps the memories in its own transaction: it deletes the old memory
 * (which marks the store for erasure, store.h) and moves the new one to the user's name. Since
 * the committer is the only writer and runs one transaction at a time, no append falls between
 * the last copy and the swap; an append queued with the old encoder's tokens is tokenised again
 * by the committer (ops_write.c). A crash before the swap's commit leaves the old memory and a
 * hidden memory that the next start removes; after it, only the new memory.
 *
 * A flush padded the old memory's chunk where an entry does not start right after the one before
 * it (and after the last entry, where the memory's tokens go past it): the rebuild flushes at the
 * same places, so that a conversation's turns that a client sealed apart stay apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid.h"
#include "layout.h"
#include "ops.h"
#include "seal.h"

/* Tokens a step encodes before it stops (it finishes the entry it is in); fewer for a model
 * (enc_ops.encode_chunks: hsa-small), whose chunks cost milliseconds each in the committer. */
#define STEP_TOKENS       8192
#define STEP_TOKENS_MODEL 1024

/* The token stream of the new memory in one step: its tail, then the entries the step adds;
 * tokens [at, n) are not sealed yet. */
struct rstream {
	uint32_t *tok;
	struct store_tokref *refs;
	size_t n, cap, at;
};

/* One step: the old memory, the new one (both as this transaction sees them). */
struct step {
	struct job *job;
	struct store_txn *txn;
	struct store_user old, neu;
	struct sealer s;
	bool sealing; /* s is initialised */
	struct rstream st;
	uint64_t old_end; /* where the old memory's copied entries end in its stream */
	char *text;       /* a copy of the entry being copied */
	size_t text_cap;
};

static void
hidden_name(char *buf, size_t len, uint64_t uid)
{
	snprintf(buf, len, "~reencode.%llu", (unsigned long long)uid);
}

int
ops_reencode_drop(struct store_txn *txn, const struct store_user *u)
{
	char name[HSAMEM_NAME_MAX + 1];
	struct store_user h;
	hidden_name(name, sizeof(name), u->uid);
	int ret = store_user_get(txn, name, &h);
	if (ret == HSAMEM_ENOUSER)
		return 0;
	return ret != 0 ? ret : store_user_delete(txn, &h);
}

int
ops_prepare_reencode(struct job *job)
{
	const Hsamem__ReencodeRequest *q = job->req->reencode;
	const char *name = q->encoder != NULL ? q->encoder : "";
	char why[600];
	int ret = ops_check_name(job, q->user);
	if (ret != 0)
		return ret;
	if (strcmp(name, "client") == 0)
		return job_fail(job, HSAMEM_EINVAL,
		                "reencode: the client encoder is the client's model, not the "
		                "daemon's: it cannot encode text (export the memory and import it "
		                "with your model's tensors)");
	if ((job->enc = enc_find(name)) == NULL)
		return job_fail(job, HSAMEM_EENCODER,
		                "reencode: encoder '%s' is not built into this daemon (its default "
		                "encoder is %s)",
		                name, enc_default()->name);
	uint32_t rev = q->has_revision && q->revision != 0 ? q->revision : job->enc->revision;
	if (!enc_serves(job->enc, rev))
		return job_fail(
		        job, HSAMEM_EENCODER,
		        "reencode: this daemon's %s has revisions %u to %u, not %u", job->enc->name,
		        job->enc->min_revision != 0 ? job->enc->min_revision : job->enc->revision,
		        job->enc->revision, rev);
	if (job->enc->ready != NULL && job->enc->ready(why, sizeof(why)) != 0)
		return job_fail(job, HSAMEM_EENCODER, "reencode: %s", why);
	job->enc->default_spec(&job->spec);
	job->spec.revision = rev;
	if (job->enc->check_spec(&job->spec, why, sizeof(why)) != 0)
		return job_fail(job, HSAMEM_ESPEC, "reencode: %s", why);
	return 0;
}

/* Appends n tokens of entry seq to the stream. */
static int
stream_add(struct step *p, uint64_t seq, const struct enc_token *t, size_t n)
{
	struct rstream *st = &p->st;
	if (st->n + n > st->cap) {
		size_t cap = (st->n + n) * 2;
		uint32_t *tok = realloc(st->tok, cap * sizeof(*tok));
		if (tok != NULL)
			st->tok = tok;
		struct store_tokref *refs = realloc(st->refs, cap * sizeof(*refs));
		if (refs != NULL)
			st->refs = refs;
		if (tok == NULL || refs == NULL)
			return ops_oom(p->job);
		st->cap = cap;
	}
	for (size_t i = 0; i < n; i++, st->n++) {
		st->tok[st->n] = t[i].id;
		st->refs[st->n] = (struct store_tokref){seq, t[i].off, t[i].len};
	}
	return 0;
}

/* Seals the full chunks of the stream, and with pad what is left as a padded chunk (a flush). */
static int
stream_seal(struct step *p, bool pad)
{
	struct rstream *st = &p->st;
	uint32_t S = p->neu.spec.S;
	int ret = 0;
	for (; ret == 0 && st->n - st->at >= S; st->at += S)
		ret = seal_chunk(&p->s, st->tok, st->refs, st->at, S, NULL);
	if (ret == 0 && pad && st->n > st->at) {
		ret = seal_chunk(&p->s, st->tok, st->refs, st->at, (uint32_t)(st->n - st->at),
		                 NULL);
		st->at = st->n;
	}
	return ret;
}

static uint64_t
stream_pos(const struct step *p)
{
	return p->neu.n_chunks * p->neu.spec.S + (p->st.n - p->st.at);
}

/* Copies entry seq of the old memory into the new one, tokenised by the new encoder. */
static int
copy_entry(struct step *p, uint64_t seq, size_t *tokens)
{
	struct store_entry e;
	struct enc_token *toks = NULL;
	size_t n = 0;
	int ret = store_entry_get(p->txn, p->old.uid, seq, &e);
	if (ret != 0)
		return ret;
	/* the entry is borrowed from the map until the next write: copy it */
	size_t need = (size_t)e.text_len + e.tags_len + e.scope_len + e.meta_len + 1;
	if (need > p->text_cap) {
		char *t = realloc(p->text, need);
		if (t == NULL)
			return ops_oom(p->job);
		p->text = t;
		p->text_cap = need;
	}
	struct store_link l;
	if ((ret = store_link_get(p->txn, p->old.uid, seq, &l)) != 0)
		return ret;
	if (l.flags & STORE_LINK_FORGOTTEN) {
		/* its number stays, with nothing in the stream (hsamem(7), FORGETTING) */
		e.seq = p->neu.n_entries;
		e.first_token = stream_pos(p);
		e.n_tokens = 0;
		if ((ret = store_entry_put(p->txn, p->neu.uid, &e)) == 0 &&
		    (ret = store_link_put(p->txn, p->neu.uid, e.seq, &l)) == 0)
			p->neu.n_entries++;
		return ret;
	}
	memcpy(p->text, e.text, e.text_len);
	if (e.tags_len > 0)
		memcpy(p->text + e.text_len, e.tags, e.tags_len);
	if (e.scope_len > 0)
		memcpy(p->text + e.text_len + e.tags_len, e.scope, e.scope_len);
	if (e.meta_len > 0)
		memcpy(p->text + e.text_len + e.tags_len + e.scope_len, e.meta, e.meta_len);
	e.text = p->text;
	e.tags = p->text + e.text_len;
	e.scope = e.tags + e.tags_len;
	e.meta = e.scope + e.scope_len;
	/* where a flush padded the old memory's last chunk, flush the new one */
	if (e.first_token != p->old_end && (ret = stream_seal(p, true)) != 0)
		return ret;
	p->old_end = e.first_token + e.n_tokens;
	if ((ret = p->s.enc->tokenize(e.text, e.text_len, &toks, &n)) != 0)
		return job_fail(p->job, ret, "reencode: the %s tokenizer failed on entry %llu",
		                p->s.enc->name, (unsigned long long)seq);
	if (n == 0)
		ret = job_fail(
		        p->job, HSAMEM_EINVAL,
		        "reencode: entry %llu of '%s' has no tokens for encoder %s; a memory "
		        "cannot hold an empty entry",
		        (unsigned long long)seq, p->old.name, p->s.enc->name);
	if (ret == 0 && n > UINT32_MAX - 1)
		ret = job_fail(p->job, HSAMEM_ETOOBIG, "reencode: entry %llu has too many tokens",
		               (unsigned long long)seq);
	e.seq = p->neu.n_entries;
	e.first_token = stream_pos(p);
	e.n_tokens = (uint32_t)n;
	if (ret == 0 && (ret = store_entry_put(p->txn, p->neu.uid, &e)) == 0 &&
	    (ret = stream_add(p, e.seq, toks, n)) == 0) {
		p->neu.n_entries++;
		*tokens += n;
		ret = stream_seal(p, false);
	}
	free(toks);
	return ret;
}

/* The new memory: found, or created (hidden); one of another target is replaced. */
static int
step_target(struct step *p)
{
	char name[HSAMEM_NAME_MAX + 1];
	hidden_name(name, sizeof(name), p->old.uid);
	int ret = store_user_get(p->txn, name, &p->neu);
	if (ret == 0 && (strcmp(p->neu.spec.encoder, p->job->spec.encoder) != 0 ||
	                 p->neu.spec.revision != p->job->spec.revision ||
	                 (p->neu.flags & LAYOUT_FLAGS) != layout_flags(&p->job->spec))) {
		if ((ret = store_user_delete(p->txn, &p->neu)) != 0)
			return ret;
		ret = HSAMEM_ENOUSER;
	}
	if (ret != HSAMEM_ENOUSER)
		return ret;
	memset(&p->neu, 0, sizeof(p->neu));
	strcpy(p->neu.name, name);
	p->neu.spec = p->job->spec;
	p->neu.created_ms = p->old.created_ms;
	p->neu.flags = STORE_USER_IMPORTING | layout_flags(&p->neu.spec);
	return store_user_create(p->txn, &p->neu);
}

/* Loads the new memory's tail into the stream, and where the copied entries end in the old one. */
static int
step_load(struct step *p)
{
	struct store_tail tail;
	struct store_entry e;
	int ret = store_tail_get(p->txn, p->neu.uid, &tail);
	if (ret != 0)
		return ret;
	if (tail.n > 0) {
		p->st.tok = malloc(tail.n * sizeof(uint32_t));
		p->st.refs = malloc(tail.n * sizeof(struct store_tokref));
		if (p->st.tok == NULL || p->st.refs == NULL)
			return ops_oom(p->job);
		memcpy(p->st.tok, tail.tokens, tail.n * sizeof(uint32_t));
		memcpy(p->st.refs, tail.refs, tail.n * sizeof(struct store_tokref));
		p->st.n = p->st.cap = tail.n;
	}
	p->old_end = 0;
	if (p->neu.n_entries > 0) {
		ret = store_entry_get(p->txn, p->old.uid, p->neu.n_entries - 1, &e);
		p->old_end = e.first_token + e.n_tokens;
	}
	return ret;
}

/* Writes the landmarks sealed, what the step leaves unsealed as the new memory's tail, and its
 * header. */
static int
step_save(struct step *p)
{
	struct store_tail t = {.n = (uint32_t)(p->st.n - p->st.at),
	                       .tokens = p->st.tok + p->st.at,
	                       .refs = p->st.refs + p->st.at};
	int ret = seal_flush(&p->s);
	if (ret != 0)
		return ret;
	ret = store_tail_put(p->txn, p->neu.uid, &t);
	p->neu.n_tokens = stream_pos(p);
	p->neu.updated_ms = p->old.updated_ms;
	return ret != 0 ? ret : store_user_update(p->txn, &p->neu);
}

/* The new memory has every entry of the old one: swap them. */
static int
step_swap(struct step *p)
{
	int ret;
	/* a flush after the old memory's last entry */
	if (p->old.n_entries > 0 && p->old.n_tokens != p->old_end &&
	    (ret = stream_seal(p, true)) != 0)
		return ret;
	if ((ret = step_save(p)) != 0 || (ret = store_user_delete(p->txn, &p->old)) != 0)
		return ret;
	p->neu.flags &= ~(uint32_t)STORE_USER_IMPORTING;
	return store_user_rename(p->txn, &p->neu, p->old.name);
}

static int
step_reply(struct step *p, bool done, bool switched)
{
	struct job *job = p->job;
	Hsamem__ReencodeReply *r = arena_alloc(&job->arena, sizeof(*r));
	char *enc = arena_alloc(&job->arena, sizeof(p->neu.spec.encoder));
	if (r == NULL || enc == NULL)
		return ops_oom(job);
	hsamem__reencode_reply__init(r);
	strcpy(enc, p->neu.spec.encoder);
	r->has_done = r->has_switched = r->has_entries_done = r->has_entries_total = true;
	r->has_chunks_done = r->has_chunks_total = r->has_tokens_done = r->has_tokens_total = true;
	r->has_chunks = r->has_tokens = r->has_revision = true;
	r->done = done;
	r->switched = switched;
	r->entries_done = done ? p->old.n_entries : p->neu.n_entries;
	r->entries_total = p->old.n_entries;
	r->tokens_done = done ? p->old.n_tokens : p->old_end;
	r->tokens_total = p->old.n_tokens;
	r->chunks_done = r->tokens_done / p->old.spec.S;
	r->chunks_total = p->old.n_chunks;
	r->chunks = p->neu.n_chunks;
	r->tokens = p->neu.n_tokens;
	r->encoder = enc;
	r->revision = p->neu.spec.revision;
	job->reply.body_case = HSAMEM__REPLY__BODY_REENCODE;
	job->reply.reencode = r;
	return 0;
}

static int
step_run(struct step *p)
{
	size_t tokens = 0;
	int ret = step_target(p);
	if (ret != 0 || (ret = step_load(p)) != 0 ||
	    (ret = seal_init(&p->s, p->job, p->txn, &p->neu, p->job->enc)) != 0)
		return ret;
	p->sealing = true;
	size_t budget = p->job->enc->encode_chunks != NULL ? STEP_TOKENS_MODEL : STEP_TOKENS;
	while (ret == 0 && p->neu.n_entries < p->old.n_entries && tokens < budget)
		ret = copy_entry(p, p->neu.n_entries, &tokens);
	if (ret != 0)
		return ret;
	if (p->neu.n_entries < p->old.n_entries)
		return (ret = step_save(p)) != 0 ? ret : step_reply(p, false, false);
	if ((ret = step_swap(p)) != 0)
		return ret;
	p->job->uid = p->old.uid; /* for the backend to forget, once durable */
	return step_reply(p, true, true);
}

int
ops_apply_reencode(struct job *job, struct store_txn *txn)
{
	const char *name = job->req->reencode->user;
	struct step p = {.job = job, .txn = txn};
	int ret = store_user_get(txn, name, &p.old);
	if (ret == HSAMEM_ENOUSER || (ret == 0 && (p.old.flags & STORE_USER_IMPORTING)))
		return job_fail(job, HSAMEM_ENOUSER, "no memory for user '%s'", name);
	if (ret != 0)
		return ret;
	if (strcmp(p.old.spec.encoder, "client") == 0)
		return job_fail(job, HSAMEM_ENOTSUP,
		                "reencode: the memory of '%s' is a client memory: its entries hold "
		                "your model's token ids, which no built-in encoder reads",
		                name);
	/* the same encoder and revision: nothing to do, unless the memory is laid out as an older
	 * daemon made it (layout_flags: without the lexical landmarks that memories of its
	 * encoder keep now, with K/V that its encoder computes now, with dense landmark pages) */
	if (strcmp(p.old.spec.encoder, job->spec.encoder) == 0 &&
	    p.old.spec.revision == job->spec.revision &&
	    (p.old.flags & LAYOUT_FLAGS) == layout_flags(&p.old.spec)) {
		/* nothing to do; a re-encode to it that was under way is dropped */
		p.neu = p.old;
		p.old_end = p.old.n_tokens;
		return (ret = ops_reencode_drop(txn, &p.old)) != 0 ? ret
		                                                   : step_reply(&p, true, false);
	}
	ret = step_run(&p);
	if (p.sealing)
		seal_fini(&p.s);
	free(p.st.tok);
	free(p.st.refs);
	free(p.text);
	return ret;
}

void
ops_committed_reencode(struct job *job)
{
	struct daemon *d = job->d;
	if (!job->reply.reencode->switched)
		return;
	hyb_forget_cached(d, job->uid);
}
