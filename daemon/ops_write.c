/*
 * ops_write.c: the writes to a memory's stream: create, append and flush.
 *
 * Each write is split in two. ops_prepare_* runs in a worker: it checks everything that does not
 * depend on the store's current state (names, sizes, roles, tensor byte counts) and tokenises the
 * text; dispatch.c then queues the job to the committer. ops_apply_* runs in the committer, inside
 * a nested write transaction: it reads the memory as it is now, checks what depends on it (chunk
 * counts, the encoder the worker used), writes, and fills the reply. A failure there aborts only
 * that job's nested transaction. Sealing the chunks the tokens fill is seal.c's; an encoder that
 * is a model encodes them in prepare, outside the committer (seal_pre_encode).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid.h"
#include "layout.h"
#include "ops.h"
#include "ops_filter.h"
#include "seal.h"

/* Checks the byte counts of a client chunk's tensors against the spec. */
static int
check_chunk_in(struct job *job, const struct hsa_spec *spec, const Hsamem__ChunkIn *c, size_t i)
{
	size_t half = spec_kv_bytes(spec) / 2, lmk = spec_landmark_bytes(spec);
	if (c == NULL || !c->has_k || !c->has_v || !c->has_landmark)
		return job_fail(job, HSAMEM_ESPEC, "chunk %zu: k, v and landmark are required", i);
	if (c->k.len != half || c->v.len != half)
		return job_fail(job, HSAMEM_ESPEC,
		                "chunk %zu: k and v must be %zu bytes each "
		                "(S=%u x h_kv=%u x d_h=%u %s), got %zu and %zu",
		                i, half, spec->S, spec->h_kv, spec->d_h,
		                spec_dtype_name(spec->dtype), c->k.len, c->v.len);
	if (c->landmark.len != lmk)
		return job_fail(job, HSAMEM_ESPEC,
		                "chunk %zu: landmark must be %zu bytes (d_r=%u %s), got %zu", i,
		                lmk, spec->d_r, spec_dtype_name(spec->dtype), c->landmark.len);
	return 0;
}

/* ---- create ---- */

int
ops_prepare_create(struct job *job)
{
	const Hsamem__CreateRequest *q = job->req->create;
	int ret = ops_check_name(job, q->user);
	if (ret == 0)
		ret = ops_spec_from_proto(job, q->spec, &job->spec);
	return ret;
}

int
ops_apply_create(struct job *job, struct store_txn *txn)
{
	const Hsamem__CreateRequest *q = job->req->create;
	struct store_user u;
	memset(&u, 0, sizeof(u));
	strcpy(u.name, q->user);
	u.spec = job->spec;
	u.flags = layout_flags(&u.spec);
	u.created_ms = u.updated_ms = now_ms();
	int ret = store_user_create(txn, &u);
	if (ret == HSAMEM_EEXIST)
		return job_fail(job, ret, "user '%s' already has a memory", q->user);
	if (ret != 0)
		return ret;
	Hsamem__MemoryInfo *m = ops_memory_info(job, &u);
	if (m == NULL)
		return ops_oom(job);
	job->reply.body_case = HSAMEM__REPLY__BODY_CREATE;
	job->reply.create = m;
	return 0;
}

/* ---- append ---- */

/*
 * The spec and encoder an append is tokenised with: the memory's, or the default encoder's when
 * the append creates the memory. The committer checks that the memory did not change meanwhile.
 */
static int
prepare_target(struct job *job, const Hsamem__AppendRequest *q)
{
	struct store_txn txn;
	struct store_user u;
	int ret = store_txn_begin(job->d->store, &txn, false, NULL);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot begin a read: %s", hsamem_strerror(ret));
	ret = store_user_get(&txn, q->user, &u);
	store_txn_abort(&txn);
	if (ret == HSAMEM_ENOUSER) {
		if (q->has_create && !q->create)
			return job_fail(job, ret, "no memory for user '%s'", q->user);
		job->enc = enc_default();
		job->enc->default_spec(&job->spec);
		return 0;
	}
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read user '%s': %s", q->user,
		                hsamem_strerror(ret));
	if (u.flags & STORE_USER_IMPORTING)
		return job_fail(job, HSAMEM_EBUSY, "user '%s' is being imported", q->user);
	job->spec = u.spec;
	return ops_encoder(job, &u, &job->enc);
}

/* Checks entry i of an append and tokenises it (built-in encoders) into job->entries[i]. */
static int
prepare_entry(struct job *job, const Hsamem__AppendRequest *q, size_t i)
{
	const Hsamem__EntryIn *e = q->entries[i];
	struct job_entry *je = &job->entries[i];
	uint64_t max_entry = job->d->conf.max_entry;
	size_t text_len = e->text != NULL ? strlen(e->text) : 0;
	int ret;

	je->in = e;
	if (e->has_role &&
	    (e->role < HSAMEM__ROLE__ROLE_OTHER || e->role > HSAMEM__ROLE__ROLE_TOOL))
		return job_fail(job, HSAMEM_EINVAL, "entry %zu: unknown role %d", i, (int)e->role);
	if (e->n_tags > OPS_MAX_TAGS)
		return job_fail(job, HSAMEM_ETOOBIG, "entry %zu: at most %d tags", i, OPS_MAX_TAGS);
	for (size_t t = 0; t < e->n_tags; t++)
		if (strlen(e->tags[t]) > OPS_MAX_TAG_BYTES || e->tags[t][0] == '\0')
			return job_fail(job, HSAMEM_EINVAL, "entry %zu: tags must be 1 to %d bytes",
			                i, OPS_MAX_TAG_BYTES);
	char what[32];
	snprintf(what, sizeof(what), "entry %zu scope", i);
	if ((ret = ops_scope_check(job, e->scope, e->n_scope, what)) != 0 ||
	    (ret = ops_attrs_pack(job, e->scope, e->n_scope, what, &je->scope, &je->scope_len)) !=
	            0)
		return ret;
	snprintf(what, sizeof(what), "entry %zu meta", i);
	if ((ret = ops_attrs_pack(job, e->meta, e->n_meta, what, &je->meta, &je->meta_len)) != 0)
		return ret;
	if (text_len > max_entry)
		return job_fail(job, HSAMEM_ETOOBIG,
		                "entry %zu: text of %zu bytes exceeds max-entry (%llu)", i,
		                text_len, (unsigned long long)max_entry);
	if (job->enc != NULL) {
		struct enc_token *toks = NULL;
		if (e->n_tokens > 0)
			return job_fail(job, HSAMEM_ENOTSUP,
			                "entry %zu: memory of '%s' uses the %s encoder: send text, "
			                "not token ids",
			                i, q->user, job->enc->name);
		if ((ret = job->enc->tokenize(e->text ? e->text : "", text_len, &toks, &je->n)) !=
		    0)
			return job_fail(job, ret, "entry %zu: tokenizer failed", i);
		je->tokens = arena_calloc(&job->arena, je->n + 1, sizeof(uint32_t));
		je->off = arena_calloc(&job->arena, je->n + 1, sizeof(uint32_t));
		je->len = arena_calloc(&job->arena, je->n + 1, sizeof(uint32_t));
		if (je->tokens && je->off && je->len)
			for (size_t t = 0; t < je->n; t++) {
				je->tokens[t] = toks[t].id;
				je->off[t] = toks[t].off;
				je->len[t] = toks[t].len;
			}
		free(toks);
		if (!je->tokens || !je->off || !je->len)
			return ops_oom(job);
	} else {
		if (e->n_tokens == 0)
			return job_fail(job, HSAMEM_EINVAL,
			                "entry %zu: client memories take token ids", i);
		if (e->n_tokens > max_entry)
			return job_fail(job, HSAMEM_ETOOBIG, "entry %zu: too many tokens", i);
		je->n = e->n_tokens;
		je->tokens = e->tokens;
		je->off = je->len = arena_calloc(&job->arena, je->n, sizeof(uint32_t));
		if (je->off == NULL)
			return ops_oom(job);
	}
	if (je->n == 0)
		return job_fail(job, HSAMEM_EINVAL, "entry %zu has no tokens", i);
	return 0;
}

int
ops_prepare_append(struct job *job)
{
	return ops_prepare_append_req(job, job->req->append);
}

int
ops_prepare_append_req(struct job *job, const Hsamem__AppendRequest *q)
{
	int ret = ops_check_name(job, q->user);
	if (ret != 0)
		return ret;
	if (q->n_entries == 0)
		return job_fail(job, HSAMEM_EINVAL, "append carries no entry");
	if (q->n_entries > OPS_MAX_ENTRIES)
		return job_fail(job, HSAMEM_ETOOBIG, "append carries %zu entries; at most %d",
		                q->n_entries, OPS_MAX_ENTRIES);
	if ((ret = prepare_target(job, q)) != 0)
		return ret;
	job->entries = arena_calloc(&job->arena, q->n_entries, sizeof(*job->entries));
	if (job->entries == NULL)
		return ops_oom(job);
	job->n_entries = q->n_entries;
	job->append = q;
	for (size_t i = 0; i < q->n_entries; i++)
		if ((ret = prepare_entry(job, q, i)) != 0)
			return ret;
	if (job->enc != NULL && q->n_chunks > 0)
		return job_fail(job, HSAMEM_EINVAL,
		                "chunk tensors are only sent to client memories");
	for (size_t i = 0; i < q->n_chunks; i++)
		if ((ret = check_chunk_in(job, &job->spec, q->chunks[i], i)) != 0)
			return ret;
	return seal_pre_encode(job, q->user, false);
}

/*
 * A re-encode swapped the memory while the write was queued (ops_reencode.c): the write goes to
 * the new memory, its entries tokenised again by the new encoder, here in the committer.
 */
static int
retarget(struct job *job, const struct store_user *u)
{
	int ret = ops_encoder(job, u, &job->enc);
	if (ret != 0 || job->enc == NULL)
		return ret != 0 ? ret
		                : job_fail(job, HSAMEM_ESPEC, "the memory was replaced; retry");
	job->spec = u->spec;
	if (job->append == NULL)
		return 0;
	for (size_t i = 0; i < job->n_entries; i++)
		if ((ret = prepare_entry(job, job->append, i)) != 0)
			return ret;
	return 0;
}

/* The memory an append or flush writes to, as it is now; checks the encoder the worker used. */
static int
write_target(struct job *job, struct store_txn *txn, const char *name, bool create,
             struct store_user *u, bool *created)
{
	int ret = store_user_get(txn, name, u);
	*created = false;
	if (ret == HSAMEM_ENOUSER && create) {
		memset(u, 0, sizeof(*u));
		strcpy(u->name, name);
		u->spec = job->spec;
		u->flags = layout_flags(&u->spec);
		u->created_ms = now_ms();
		if ((ret = store_user_create(txn, u)) != 0)
			return ret;
		*created = true;
		return 0;
	}
	if (ret == HSAMEM_ENOUSER)
		return job_fail(job, ret, "no memory for user '%s'", name);
	if (ret != 0)
		return ret;
	if (u->flags & STORE_USER_IMPORTING)
		return job_fail(job, HSAMEM_EBUSY, "user '%s' is being imported", name);
	if (strcmp(u->spec.encoder, job->spec.encoder) == 0 &&
	    u->spec.revision == job->spec.revision && u->spec.S == job->spec.S)
		return 0;
	if (job->enc == NULL || strcmp(u->spec.encoder, "client") == 0)
		return job_fail(
		        job, HSAMEM_ESPEC,
		        "the memory of '%s' was replaced while the append was queued; retry", name);
	return retarget(job, u);
}

int
ops_apply_append(struct job *job, struct store_txn *txn)
{
	return ops_apply_append_req(job, txn, job->append);
}

int
ops_apply_append_req(struct job *job, struct store_txn *txn, const Hsamem__AppendRequest *q)
{
	struct store_user u;
	struct store_tail tail;
	struct sealer s;
	bool created;
	int ret = write_target(job, txn, q->user, !(q->has_create && !q->create), &u, &created);
	if (ret != 0)
		return ret;
	const uint32_t S = u.spec.S;
	const uint64_t n_tokens0 = u.n_tokens;
	size_t tail_n = (size_t)(u.n_tokens - u.n_chunks * S), total = tail_n;
	for (size_t i = 0; i < job->n_entries; i++)
		total += job->entries[i].n;
	size_t n_seal = total / S;
	if (job->enc == NULL && q->n_chunks != n_seal)
		return job_fail(job, HSAMEM_ESPEC,
		                "this append seals %zu chunk(s) (tail %zu + %zu new tokens, S=%u) "
		                "but carries tensors for %zu",
		                n_seal, tail_n, total - tail_n, S, q->n_chunks);
	if ((ret = store_tail_get(txn, u.uid, &tail)) != 0)
		return ret;
	if (tail.n != tail_n)
		return job_fail(job, HSAMEM_EFORMAT, "store: tail of '%s' is inconsistent",
		                q->user);

	uint32_t *buf = malloc(total * sizeof(uint32_t));
	struct store_tokref *refs = malloc(total * sizeof(struct store_tokref));
	if (buf == NULL || refs == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	if (tail_n > 0) { /* an empty tail has no arrays */
		memcpy(buf, tail.tokens, tail_n * sizeof(uint32_t));
		memcpy(refs, tail.refs, tail_n * sizeof(struct store_tokref));
	}

	uint64_t first_seq = u.n_entries;
	int64_t now = now_ms();
	size_t n = tail_n;
	for (size_t i = 0; i < job->n_entries; i++) {
		const struct job_entry *je = &job->entries[i];
		const Hsamem__EntryIn *e = je->in;
		char tags[OPS_MAX_TAGS * (OPS_MAX_TAG_BYTES + 1)];
		uint32_t tags_len = 0;
		for (size_t t = 0; t < e->n_tags; t++) {
			size_t l = strlen(e->tags[t]) + 1;
			memcpy(tags + tags_len, e->tags[t], l);
			tags_len += (uint32_t)l;
		}
		struct store_entry se = {
		        .seq = u.n_entries,
		        .role = e->has_role ? (uint32_t)e->role : 0,
		        .timestamp_ms =
		                e->has_timestamp_ms && e->timestamp_ms != 0 ? e->timestamp_ms : now,
		        .first_token = u.n_tokens,
		        .n_tokens = (uint32_t)je->n,
		        .text = e->text != NULL ? e->text : "",
		        .text_len = e->text != NULL ? (uint32_t)strlen(e->text) : 0,
		        .tags = tags,
		        .tags_len = tags_len,
		        .scope = je->scope,
		        .scope_len = je->scope_len,
		        .meta = je->meta,
		        .meta_len = je->meta_len,
		};
		if ((ret = store_entry_put(txn, u.uid, &se)) != 0)
			goto out;
		for (size_t t = 0; t < je->n; t++, n++) {
			buf[n] = je->tokens[t];
			refs[n] = (struct store_tokref){u.n_entries, je->off[t], je->len[t]};
		}
		u.n_entries++;
		u.n_tokens += je->n;
	}

	if ((ret = seal_init(&s, job, txn, &u, job->enc)) != 0)
		goto out;
	seal_use_pre(&s, job->pre, n_tokens0, n_seal);
	size_t at = 0;
	for (size_t c = 0; c < n_seal && ret == 0; c++, at += S)
		ret = seal_chunk(&s, buf, refs, at, S, job->enc == NULL ? q->chunks[c] : NULL);
	if (ret == 0)
		ret = seal_flush(&s);
	seal_fini(&s);
	if (ret != 0)
		goto out;
	struct store_tail nt = {.n = (uint32_t)(total - at), .tokens = buf + at, .refs = refs + at};
	u.updated_ms = now;
	if ((ret = store_tail_put(txn, u.uid, &nt)) != 0 || (ret = store_user_update(txn, &u)) != 0)
		goto out;

	Hsamem__AppendReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	hsamem__append_reply__init(r);
	r->has_first_seq = r->has_count = r->has_tokens = r->has_chunks = true;
	r->has_sealed = r->has_created = true;
	r->first_seq = first_seq;
	r->count = (uint32_t)job->n_entries;
	r->tokens = u.n_tokens;
	r->chunks = u.n_chunks;
	r->sealed = (uint32_t)n_seal;
	r->created = created;
	job->reply.body_case = HSAMEM__REPLY__BODY_APPEND;
	job->reply.append = r;
out:
	free(buf);
	free(refs);
	return ret;
}

/* ---- flush ---- */

int
ops_prepare_flush(struct job *job)
{
	const Hsamem__FlushRequest *q = job->req->flush;
	struct store_txn txn;
	struct store_user u;
	int ret = ops_read_user(job, q->user, &txn, &u);
	if (ret != 0)
		return ret;
	store_txn_abort(&txn);
	if ((ret = ops_encoder(job, &u, &job->enc)) != 0)
		return ret;
	job->spec = u.spec;
	if (q->chunk == NULL)
		return seal_pre_encode(job, q->user, true);
	if (job->enc != NULL)
		return job_fail(job, HSAMEM_EINVAL,
		                "chunk tensors are only sent to client memories");
	return check_chunk_in(job, &u.spec, q->chunk, 0);
}

int
ops_apply_flush(struct job *job, struct store_txn *txn)
{
	const Hsamem__FlushRequest *q = job->req->flush;
	struct store_user u;
	struct store_tail tail;
	struct sealer s;
	bool created, sealed = false;
	int ret = write_target(job, txn, q->user, false, &u, &created);
	if (ret != 0 || (ret = store_tail_get(txn, u.uid, &tail)) != 0)
		return ret;
	if (tail.n == 0 && q->chunk != NULL)
		return job_fail(job, HSAMEM_EINVAL, "the tail is empty: no chunk to seal");
	if (tail.n > 0 && job->enc == NULL && q->chunk == NULL)
		return job_fail(job, HSAMEM_ESPEC,
		                "flushing a client memory seals %u tail token(s) into a padded "
		                "chunk: send its tensors",
		                tail.n);
	if (tail.n > 0) {
		/* tail's tokens point into the map: copy them before writing */
		uint32_t *buf = malloc(tail.n * sizeof(uint32_t));
		struct store_tokref *refs = malloc(tail.n * sizeof(struct store_tokref));
		if (buf == NULL || refs == NULL || seal_init(&s, job, txn, &u, job->enc) != 0) {
			free(buf);
			free(refs);
			return ops_oom(job);
		}
		memcpy(buf, tail.tokens, tail.n * sizeof(uint32_t));
		memcpy(refs, tail.refs, tail.n * sizeof(struct store_tokref));
		seal_use_pre(&s, job->pre, u.n_tokens, 1);
		ret = seal_chunk(&s, buf, refs, 0, tail.n, q->chunk);
		if (ret == 0)
			ret = seal_flush(&s);
		seal_fini(&s);
		free(buf);
		free(refs);
		if (ret != 0)
			return ret;
		struct store_tail empty = {0};
		u.n_tokens = u.n_chunks * u.spec.S;
		u.updated_ms = now_ms();
		if ((ret = store_tail_put(txn, u.uid, &empty)) != 0 ||
		    (ret = store_user_update(txn, &u)) != 0)
			return ret;
		sealed = true;
	}
	Hsamem__FlushReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__flush_reply__init(r);
	r->has_chunks = r->has_sealed = true;
	r->chunks = u.n_chunks;
	r->sealed = sealed;
	job->reply.body_case = HSAMEM__REPLY__BODY_FLUSH;
	job->reply.flush = r;
	return 0;
}
