/*
 * ops_write.c: create, append, flush, delete and import.
 *
 * Each write is split in two. ops_prepare_* runs in a worker: it checks everything that does not
 * depend on the store's current state (names, sizes, roles, tensor byte counts) and tokenises the
 * text, then queues the job to the committer. ops_apply runs in the committer, inside a nested
 * write transaction: it reads the memory as it is now, checks what depends on it (chunk counts,
 * import order), writes, and fills the reply. A failure there aborts only that job's nested
 * transaction.
 *
 * The stream of a memory: entries add tokens to the tail; every S tokens seal a chunk (tokens, text
 * references, K|V, landmark), and the tail keeps the rest. A flush seals a short tail as a padded
 * chunk, so the next token starts the next chunk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "log.h"
#include "ops.h"

/* ---- sealing ---- */

struct sealer {
	struct job *job;
	struct store_txn *txn;
	struct store_user *u;
	const struct enc_ops *enc;
	float *K, *V, *L; /* encoder outputs, fp32 */
	void *kv, *row;   /* the same in the spec's dtype */
	uint32_t *tokens; /* [S] padded */
	struct store_tokref *refs;
	uint32_t *ctx; /* [enc->context] */
};

static void
sealer_fini(struct sealer *s)
{
	free(s->K);
	free(s->V);
	free(s->L);
	free(s->kv);
	free(s->row);
	free(s->tokens);
	free(s->refs);
	free(s->ctx);
}

static int
sealer_init(struct sealer *s, struct job *job, struct store_txn *txn, struct store_user *u,
            const struct enc_ops *enc)
{
	const struct hsa_spec *spec = &u->spec;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	memset(s, 0, sizeof(*s));
	s->job = job;
	s->txn = txn;
	s->u = u;
	s->enc = enc;
	s->K = malloc(per * sizeof(float));
	s->V = malloc(per * sizeof(float));
	s->L = malloc(spec->d_r * sizeof(float));
	s->kv = malloc(spec_kv_bytes(spec));
	s->row = malloc(spec_landmark_bytes(spec));
	s->tokens = malloc(spec->S * sizeof(uint32_t));
	s->refs = malloc(spec->S * sizeof(struct store_tokref));
	s->ctx = malloc(((enc != NULL ? enc->context : 0) + 1) * sizeof(uint32_t));
	if (!s->K || !s->V || !s->L || !s->kv || !s->row || !s->tokens || !s->refs || !s->ctx) {
		sealer_fini(s);
		return ops_oom(job);
	}
	return 0;
}

/*
 * The encoder's left context of a chunk that starts at buf[at]: the tokens before it, from the
 * buffer and, where the buffer does not reach back far enough, from the last sealed chunk.
 */
static size_t
gather_context(struct sealer *s, const uint32_t *buf, size_t at)
{
	size_t want = s->enc->context, n = 0;
	if (want == 0)
		return 0;
	if (at < want && s->u->n_chunks > 0) {
		struct store_chunk prev;
		if (store_chunk_get(s->txn, s->u->uid, s->u->n_chunks - 1, &prev) == 0) {
			size_t from_prev = want - at < prev.n_real ? want - at : prev.n_real;
			memcpy(s->ctx, prev.tokens + prev.n_real - from_prev,
			       from_prev * sizeof(uint32_t));
			n = from_prev;
		}
	}
	size_t from_buf = at < want ? at : want;
	memcpy(s->ctx + n, buf + at - from_buf, from_buf * sizeof(uint32_t));
	return n + from_buf;
}

/*
 * Seals chunk u->n_chunks from n_real tokens at buf[at] (n_real < S: padded). Client memories
 * pass the tensors in `in`; built-in ones are encoded here.
 */
static int
seal(struct sealer *s, const uint32_t *buf, const struct store_tokref *refs, size_t at,
     uint32_t n_real, const Hsamem__ChunkIn *in)
{
	struct store_user *u = s->u;
	const struct hsa_spec *spec = &u->spec;
	size_t kv_bytes = spec_kv_bytes(spec), half = kv_bytes / 2;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;

	memset(s->tokens, 0, spec->S * sizeof(uint32_t));
	memset(s->refs, 0, spec->S * sizeof(struct store_tokref));
	memcpy(s->tokens, buf + at, n_real * sizeof(uint32_t));
	memcpy(s->refs, refs + at, n_real * sizeof(struct store_tokref));
	if (s->enc != NULL) {
		size_t n_ctx = gather_context(s, buf, at);
		int ret = s->enc->encode_chunk(spec, s->ctx, n_ctx, s->tokens, n_real, s->K, s->V,
		                               s->L);
		if (ret != 0)
			return job_fail(s->job, ret, "encoder %s failed on chunk %llu: %s",
			                s->enc->name, (unsigned long long)u->n_chunks,
			                hsamem_strerror(ret));
		half_from_float_row(spec->dtype, s->K, s->kv, per);
		half_from_float_row(spec->dtype, s->V, (char *)s->kv + half, per);
		half_from_float_row(spec->dtype, s->L, s->row, spec->d_r);
	} else {
		memcpy(s->kv, in->k.data, half);
		memcpy((char *)s->kv + half, in->v.data, half);
		memcpy(s->row, in->landmark.data, spec_landmark_bytes(spec));
	}
	struct store_chunk c = {
	        .n_tokens = spec->S, .n_real = n_real, .tokens = s->tokens, .refs = s->refs};
	int ret;
	if ((ret = store_chunk_put(s->txn, u->uid, u->n_chunks, &c)) != 0 ||
	    (ret = store_kv_put(s->txn, u->uid, u->n_chunks, s->kv, kv_bytes)) != 0 ||
	    (ret = store_landmark_put(s->txn, u, u->n_chunks, s->row)) != 0)
		return ret;
	u->n_chunks++;
	if (n_real < spec->S)
		u->n_padded++;
	return 0;
}

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

void
ops_prepare_create(struct job *job)
{
	const Hsamem__CreateRequest *q = job->req->create;
	if (ops_check_name(job, q->user) != 0 || ops_spec_from_proto(job, q->spec, &job->spec) != 0)
		goto reply;
	commit_submit(job->d->commit, job);
	return;
reply:
	job->finish(job);
}

static int
apply_create(struct job *job, struct store_txn *txn)
{
	const Hsamem__CreateRequest *q = job->req->create;
	struct store_user u;
	memset(&u, 0, sizeof(u));
	strcpy(u.name, q->user);
	u.spec = job->spec;
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

void
ops_prepare_append(struct job *job)
{
	const Hsamem__AppendRequest *q = job->req->append;
	struct daemon *d = job->d;
	struct store_txn txn;
	struct store_user u;
	int ret;

	if (ops_check_name(job, q->user) != 0)
		goto reply;
	if (q->n_entries == 0) {
		job_fail(job, HSAMEM_EINVAL, "append carries no entry");
		goto reply;
	}
	if (q->n_entries > OPS_MAX_ENTRIES) {
		job_fail(job, HSAMEM_ETOOBIG, "append carries %zu entries; at most %d",
		         q->n_entries, OPS_MAX_ENTRIES);
		goto reply;
	}
	/* Which encoder tokenises depends on the memory; the committer checks it did not change. */
	if ((ret = store_txn_begin(d->store, &txn, false, NULL)) != 0) {
		job_fail(job, ret, "store: cannot begin a read: %s", hsamem_strerror(ret));
		goto reply;
	}
	ret = store_user_get(&txn, q->user, &u);
	store_txn_abort(&txn);
	if (ret == HSAMEM_ENOUSER) {
		if (q->has_create && !q->create) {
			job_fail(job, ret, "no memory for user '%s'", q->user);
			goto reply;
		}
		job->enc = enc_default();
		job->enc->default_spec(&job->spec);
	} else if (ret != 0) {
		job_fail(job, ret, "store: cannot read user '%s': %s", q->user,
		         hsamem_strerror(ret));
		goto reply;
	} else if (u.flags & STORE_USER_IMPORTING) {
		job_fail(job, HSAMEM_EBUSY, "user '%s' is being imported", q->user);
		goto reply;
	} else {
		job->spec = u.spec;
		if (ops_encoder(job, &u.spec, &job->enc) != 0)
			goto reply;
	}

	job->entries = arena_calloc(&job->arena, q->n_entries, sizeof(*job->entries));
	if (job->entries == NULL) {
		ops_oom(job);
		goto reply;
	}
	job->n_entries = q->n_entries;
	for (size_t i = 0; i < q->n_entries; i++) {
		const Hsamem__EntryIn *e = q->entries[i];
		struct job_entry *je = &job->entries[i];
		size_t text_len = e->text != NULL ? strlen(e->text) : 0;
		je->in = e;
		if (e->has_role &&
		    (e->role < HSAMEM__ROLE__ROLE_OTHER || e->role > HSAMEM__ROLE__ROLE_TOOL)) {
			job_fail(job, HSAMEM_EINVAL, "entry %zu: unknown role %d", i, (int)e->role);
			goto reply;
		}
		if (e->n_tags > OPS_MAX_TAGS) {
			job_fail(job, HSAMEM_ETOOBIG, "entry %zu: at most %d tags", i,
			         OPS_MAX_TAGS);
			goto reply;
		}
		for (size_t t = 0; t < e->n_tags; t++)
			if (strlen(e->tags[t]) > OPS_MAX_TAG_BYTES || e->tags[t][0] == '\0') {
				job_fail(job, HSAMEM_EINVAL,
				         "entry %zu: tags must be 1 to %d bytes", i,
				         OPS_MAX_TAG_BYTES);
				goto reply;
			}
		if (text_len > d->conf.max_entry) {
			job_fail(job, HSAMEM_ETOOBIG,
			         "entry %zu: text of %zu bytes exceeds max-entry (%llu)", i,
			         text_len, (unsigned long long)d->conf.max_entry);
			goto reply;
		}
		if (job->enc != NULL) {
			struct enc_token *toks = NULL;
			if (e->n_tokens > 0) {
				job_fail(
				        job, HSAMEM_ENOTSUP,
				        "entry %zu: memory of '%s' uses the %s encoder: send text, "
				        "not token ids",
				        i, q->user, job->enc->name);
				goto reply;
			}
			if ((ret = job->enc->tokenize(e->text ? e->text : "", text_len, &toks,
			                              &je->n)) != 0) {
				job_fail(job, ret, "entry %zu: tokenizer failed", i);
				goto reply;
			}
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
			if (!je->tokens || !je->off || !je->len) {
				ops_oom(job);
				goto reply;
			}
		} else {
			if (e->n_tokens == 0) {
				job_fail(job, HSAMEM_EINVAL,
				         "entry %zu: client memories take token ids", i);
				goto reply;
			}
			if (e->n_tokens > d->conf.max_entry) {
				job_fail(job, HSAMEM_ETOOBIG, "entry %zu: too many tokens", i);
				goto reply;
			}
			je->n = e->n_tokens;
			je->tokens = e->tokens;
			je->off = je->len = arena_calloc(&job->arena, je->n, sizeof(uint32_t));
			if (je->off == NULL) {
				ops_oom(job);
				goto reply;
			}
		}
		if (je->n == 0) {
			job_fail(job, HSAMEM_EINVAL, "entry %zu has no tokens", i);
			goto reply;
		}
	}
	if (job->enc != NULL && q->n_chunks > 0) {
		job_fail(job, HSAMEM_EINVAL, "chunk tensors are only sent to client memories");
		goto reply;
	}
	for (size_t i = 0; i < q->n_chunks; i++)
		if (check_chunk_in(job, &job->spec, q->chunks[i], i) != 0)
			goto reply;
	commit_submit(d->commit, job);
	return;
reply:
	job->finish(job);
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
	if (strcmp(u->spec.encoder, job->spec.encoder) != 0 ||
	    u->spec.revision != job->spec.revision || u->spec.S != job->spec.S)
		return job_fail(
		        job, HSAMEM_ESPEC,
		        "the memory of '%s' was replaced while the append was queued; retry", name);
	return 0;
}

static int
apply_append(struct job *job, struct store_txn *txn)
{
	const Hsamem__AppendRequest *q = job->req->append;
	struct store_user u;
	struct store_tail tail;
	struct sealer s;
	bool created;
	int ret = write_target(job, txn, q->user, !(q->has_create && !q->create), &u, &created);
	if (ret != 0)
		return ret;
	const uint32_t S = u.spec.S;
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

	if ((ret = sealer_init(&s, job, txn, &u, job->enc)) != 0)
		goto out;
	size_t at = 0;
	for (size_t c = 0; c < n_seal && ret == 0; c++, at += S)
		ret = seal(&s, buf, refs, at, S, job->enc == NULL ? q->chunks[c] : NULL);
	sealer_fini(&s);
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

void
ops_prepare_flush(struct job *job)
{
	const Hsamem__FlushRequest *q = job->req->flush;
	struct store_txn txn;
	struct store_user u;
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		goto reply;
	store_txn_abort(&txn);
	if (ops_encoder(job, &u.spec, &job->enc) != 0)
		goto reply;
	job->spec = u.spec;
	if (q->chunk != NULL &&
	    (job->enc != NULL || check_chunk_in(job, &u.spec, q->chunk, 0) != 0)) {
		if (job->enc != NULL)
			job_fail(job, HSAMEM_EINVAL,
			         "chunk tensors are only sent to client memories");
		goto reply;
	}
	commit_submit(job->d->commit, job);
	return;
reply:
	job->finish(job);
}

static int
apply_flush(struct job *job, struct store_txn *txn)
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
		if (buf == NULL || refs == NULL || sealer_init(&s, job, txn, &u, job->enc) != 0) {
			free(buf);
			free(refs);
			return ops_oom(job);
		}
		memcpy(buf, tail.tokens, tail.n * sizeof(uint32_t));
		memcpy(refs, tail.refs, tail.n * sizeof(struct store_tokref));
		ret = seal(&s, buf, refs, 0, tail.n, q->chunk);
		sealer_fini(&s);
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

/* ---- delete ---- */

void
ops_prepare_delete(struct job *job)
{
	if (ops_check_name(job, job->req->delete_->user) != 0) {
		job->finish(job);
		return;
	}
	commit_submit(job->d->commit, job);
}

/* Imports in progress: what the header promised, checked when the last batch arrives. Only the
 * committer thread touches this table; a restart drops it and deletes half-imported memories. */
struct import_expect {
	uint64_t uid, entries, chunks, tokens;
};
static struct import_expect *imports;
static size_t n_imports;

static struct import_expect *
import_find(uint64_t uid)
{
	for (size_t i = 0; i < n_imports; i++)
		if (imports[i].uid == uid)
			return &imports[i];
	return NULL;
}

static void
import_forget(uint64_t uid)
{
	struct import_expect *e = import_find(uid);
	if (e != NULL)
		*e = imports[--n_imports];
}

static int
apply_delete(struct job *job, struct store_txn *txn)
{
	const char *name = job->req->delete_->user;
	struct store_user u;
	int ret = store_user_get(txn, name, &u); /* half-imported memories can be deleted too */
	if (ret == HSAMEM_ENOUSER)
		return job_fail(job, ret, "no memory for user '%s'", name);
	if (ret != 0 || (ret = store_user_delete(txn, &u)) != 0)
		return ret;
	job->uid = u.uid;
	Hsamem__DeleteReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__delete_reply__init(r);
	r->has_entries = r->has_chunks = true;
	r->entries = u.n_entries;
	r->chunks = u.n_chunks;
	job->reply.body_case = HSAMEM__REPLY__BODY_DELETE;
	job->reply.delete_ = r;
	return 0;
}

/* ---- import ---- */

void
ops_prepare_import(struct job *job)
{
	const Hsamem__ImportRequest *q = job->req->import;
	if (ops_check_name(job, q->user) != 0) {
		job->finish(job);
		return;
	}
	commit_submit(job->d->commit, job);
}

static int
import_header(struct job *job, struct store_txn *txn, const Hsamem__ExportRecord__Header *h,
              struct store_user *u)
{
	const char *name = job->req->import->user;
	const struct enc_ops *enc;
	struct hsa_spec spec;
	char why[256];
	if (!h->has_format || h->format != 1)
		return job_fail(job, HSAMEM_EIMPORT, "import: export format %u is not supported",
		                h->has_format ? h->format : 0);
	if (h->spec == NULL || h->spec->encoder == NULL)
		return job_fail(job, HSAMEM_EIMPORT, "import: the header has no spec");
	/* the stream's spec is taken as is: every shape must be present */
	const Hsamem__Spec *p = h->spec;
	memset(&spec, 0, sizeof(spec));
	if (strlen(p->encoder) > SPEC_NAME_MAX || p->tokenizer == NULL ||
	    strlen(p->tokenizer) > SPEC_NAME_MAX)
		return job_fail(job, HSAMEM_EIMPORT, "import: bad encoder or tokenizer name");
	strcpy(spec.encoder, p->encoder);
	strcpy(spec.tokenizer, p->tokenizer);
	spec.revision = p->revision;
	spec.S = p->chunk_size;
	spec.h_kv = p->h_kv;
	spec.d_h = p->d_h;
	spec.h_q = p->h_q;
	spec.d_r = p->d_r;
	spec.dtype = (enum hsa_dtype)p->dtype;
	spec.weighting = (enum hsa_weighting)p->weighting;
	spec.off_by_one = p->off_by_one;
	spec.top_k = p->top_k;
	if (spec_check(&spec, why, sizeof(why)) != 0)
		return job_fail(job, HSAMEM_EIMPORT, "import: %s", why);
	if (ops_encoder(job, &spec, &enc) != 0)
		return job->reply.status;
	/* An import that was abandoned (its client stopped sending) is replaced by a new one. */
	struct store_user old;
	int ret = store_user_get(txn, name, &old);
	if (ret == 0 && (old.flags & STORE_USER_IMPORTING)) {
		if ((ret = store_user_delete(txn, &old)) != 0)
			return ret;
		import_forget(old.uid);
	} else if (ret == 0) {
		return job_fail(job, HSAMEM_EEXIST,
		                "user '%s' already has a memory: delete it first", name);
	} else if (ret != HSAMEM_ENOUSER) {
		return ret;
	}
	memset(u, 0, sizeof(*u));
	strcpy(u->name, name);
	u->spec = spec;
	u->created_ms = h->has_created_ms ? h->created_ms : now_ms();
	u->updated_ms = now_ms();
	u->flags = STORE_USER_IMPORTING;
	ret = store_user_create(txn, u);
	if (ret == HSAMEM_EEXIST)
		return job_fail(job, ret, "user '%s' already has a memory: delete it first", name);
	if (ret != 0)
		return ret;
	/* an expectation left by an aborted transaction may carry this fresh uid: drop it */
	import_forget(u->uid);
	struct import_expect *grown = realloc(imports, (n_imports + 1) * sizeof(*imports));
	if (grown == NULL)
		return ops_oom(job);
	imports = grown;
	imports[n_imports++] = (struct import_expect){u->uid, h->entries, h->chunks, h->tokens};
	return 0;
}

static int
import_entry(struct job *job, struct store_txn *txn, struct store_user *u, const Hsamem__Entry *e,
             uint64_t max_tokens)
{
	char tags[OPS_MAX_TAGS * (OPS_MAX_TAG_BYTES + 1)];
	uint32_t tags_len = 0;
	size_t text_len = e->text != NULL ? strlen(e->text) : 0;
	if (!e->has_seq || e->seq != u->n_entries)
		return job_fail(job, HSAMEM_EIMPORT, "import: entry %llu is out of order",
		                (unsigned long long)e->seq);
	if (e->n_tags > OPS_MAX_TAGS || text_len > job->d->conf.max_entry ||
	    e->first_token > max_tokens || e->n_tokens > max_tokens - e->first_token)
		return job_fail(job, HSAMEM_EIMPORT, "import: entry %llu is malformed",
		                (unsigned long long)e->seq);
	for (size_t t = 0; t < e->n_tags; t++) {
		size_t l = strlen(e->tags[t]) + 1;
		if (l > OPS_MAX_TAG_BYTES + 1)
			return job_fail(job, HSAMEM_EIMPORT, "import: tag too long");
		memcpy(tags + tags_len, e->tags[t], l);
		tags_len += (uint32_t)l;
	}
	struct store_entry se = {
	        .seq = e->seq,
	        .role = e->has_role ? (uint32_t)e->role : 0,
	        .timestamp_ms = e->timestamp_ms,
	        .first_token = e->first_token,
	        .n_tokens = e->n_tokens,
	        .text = e->text != NULL ? e->text : "",
	        .text_len = (uint32_t)text_len,
	        .tags = tags,
	        .tags_len = tags_len,
	};
	u->n_entries++;
	return store_entry_put(txn, u->uid, &se);
}

/* Copies a record's token references, checking the counts and that they point at entries. */
static int
import_refs(struct job *job, uint32_t n, size_t n_entry, const uint64_t *entry, size_t n_off,
            const uint32_t *off, size_t n_len, const uint32_t *len, uint64_t n_entries,
            struct store_tokref *out)
{
	if (n_entry != n || n_off != n || n_len != n)
		return job_fail(job, HSAMEM_EIMPORT, "import: token references do not match");
	for (uint32_t i = 0; i < n; i++) {
		if (entry[i] >= n_entries && len[i] > 0)
			return job_fail(job, HSAMEM_EIMPORT, "import: a token refers to no entry");
		out[i] = (struct store_tokref){entry[i], off[i], len[i]};
	}
	return 0;
}

static int
import_chunk(struct job *job, struct store_txn *txn, struct store_user *u,
             const Hsamem__ExportRecord__ChunkRec *c, uint64_t n_entries_expected)
{
	const struct hsa_spec *spec = &u->spec;
	if (!c->has_index || c->index != u->n_chunks || c->n_tokens != spec->S ||
	    c->n_real > spec->S || c->kv.len != spec_kv_bytes(spec) ||
	    c->landmark.len != spec_landmark_bytes(spec))
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: chunk %llu is malformed or out of order",
		                (unsigned long long)c->index);
	struct store_tokref *refs = malloc(spec->S * sizeof(*refs));
	if (refs == NULL)
		return ops_oom(job);
	int ret = import_refs(job, spec->S, c->n_ref_entry, c->ref_entry, c->n_ref_off, c->ref_off,
	                      c->n_ref_len, c->ref_len, n_entries_expected, refs);
	if (ret == 0) {
		struct store_chunk sc = {.n_tokens = spec->S,
		                         .n_real = c->has_n_real ? c->n_real : spec->S,
		                         .tokens = c->tokens,
		                         .refs = refs};
		if ((ret = store_chunk_put(txn, u->uid, u->n_chunks, &sc)) == 0 &&
		    (ret = store_kv_put(txn, u->uid, u->n_chunks, c->kv.data, c->kv.len)) == 0 &&
		    (ret = store_landmark_put(txn, u, u->n_chunks, c->landmark.data)) == 0) {
			u->n_chunks++;
			if (sc.n_real < spec->S)
				u->n_padded++;
		}
	}
	free(refs);
	return ret;
}

static int
apply_import(struct job *job, struct store_txn *txn)
{
	const Hsamem__ImportRequest *q = job->req->import;
	struct store_user u;
	struct store_tail tail = {0};
	size_t i = 0;
	int ret;

	if (q->n_records > 0 && q->records[0]->rec_case == HSAMEM__EXPORT_RECORD__REC_HEADER) {
		if ((ret = import_header(job, txn, q->records[0]->header, &u)) != 0)
			return ret;
		i = 1;
	} else {
		ret = store_user_get(txn, q->user, &u);
		if (ret == HSAMEM_ENOUSER || (ret == 0 && !(u.flags & STORE_USER_IMPORTING)) ||
		    (ret == 0 && import_find(u.uid) == NULL))
			return job_fail(job, HSAMEM_EIMPORT,
			                "import: no import of '%s' in progress (the first batch "
			                "starts with the stream's header)",
			                q->user);
		if (ret != 0)
			return ret;
	}
	struct import_expect *x = import_find(u.uid);
	if ((ret = store_tail_get(txn, u.uid, &tail)) != 0)
		return ret;
	for (; i < q->n_records; i++) {
		const Hsamem__ExportRecord *r = q->records[i];
		switch (r->rec_case) {
		case HSAMEM__EXPORT_RECORD__REC_ENTRY:
			ret = import_entry(job, txn, &u, r->entry, x->tokens);
			break;
		case HSAMEM__EXPORT_RECORD__REC_CHUNK:
			ret = import_chunk(job, txn, &u, r->chunk, x->entries);
			break;
		case HSAMEM__EXPORT_RECORD__REC_TAIL: {
			const Hsamem__ExportRecord__Tail *t = r->tail;
			struct store_tokref *refs = malloc((t->n_tokens + 1) * sizeof(*refs));
			if (refs == NULL)
				return ops_oom(job);
			if (t->n_tokens >= u.spec.S) {
				free(refs);
				return job_fail(job, HSAMEM_EIMPORT, "import: tail is too long");
			}
			ret = import_refs(job, (uint32_t)t->n_tokens, t->n_ref_entry, t->ref_entry,
			                  t->n_ref_off, t->ref_off, t->n_ref_len, t->ref_len,
			                  x->entries, refs);
			if (ret == 0) {
				struct store_tail nt = {.n = (uint32_t)t->n_tokens,
				                        .tokens = t->tokens,
				                        .refs = refs};
				ret = store_tail_put(txn, u.uid, &nt);
				tail.n = nt.n;
			}
			free(refs);
			break;
		}
		default:
			ret = job_fail(job, HSAMEM_EIMPORT,
			               "import: record %zu is of no known kind", i);
		}
		if (ret != 0)
			return ret;
	}
	u.n_tokens = u.n_chunks * u.spec.S + tail.n;
	job->uid = u.uid;
	bool done = q->has_last && q->last;
	if (done) {
		if (u.n_entries != x->entries || u.n_chunks != x->chunks || u.n_tokens != x->tokens)
			return job_fail(
			        job, HSAMEM_EIMPORT,
			        "import: the stream is incomplete: %llu/%llu entries, "
			        "%llu/%llu chunks, %llu/%llu tokens",
			        (unsigned long long)u.n_entries, (unsigned long long)x->entries,
			        (unsigned long long)u.n_chunks, (unsigned long long)x->chunks,
			        (unsigned long long)u.n_tokens, (unsigned long long)x->tokens);
		u.flags &= ~(uint32_t)STORE_USER_IMPORTING;
	}
	if ((ret = store_user_update(txn, &u)) != 0)
		return ret;
	Hsamem__ImportReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__import_reply__init(r);
	r->has_entries = r->has_chunks = r->has_done = true;
	r->entries = u.n_entries;
	r->chunks = u.n_chunks;
	r->done = done;
	job->reply.body_case = HSAMEM__REPLY__BODY_IMPORT;
	job->reply.import = r;
	return 0;
}

int
ops_apply(struct job *job, struct store_txn *txn)
{
	switch (job->op) {
	case OP_CREATE: return apply_create(job, txn);
	case OP_APPEND: return apply_append(job, txn);
	case OP_FLUSH: return apply_flush(job, txn);
	case OP_DELETE: return apply_delete(job, txn);
	case OP_IMPORT: return apply_import(job, txn);
	default: return job_fail(job, HSAMEM_EINTERNAL, "not a write");
	}
}

void
ops_committed(struct job *job, int status)
{
	struct daemon *d = job->d;
	if (status != 0 || job->reply.status != 0)
		return;
	if (job->op == OP_DELETE) {
		import_forget(job->uid);
		if (d->gpu != NULL && d->gpu->ops->forget != NULL)
			d->gpu->ops->forget(d->gpu, job->uid);
	}
	if (job->op == OP_IMPORT && job->reply.import->done)
		import_forget(job->uid);
}

struct cleanup {
	char (*names)[HSAMEM_NAME_MAX + 1];
	size_t n;
};

static int
cleanup_cb(const struct store_user *u, void *arg)
{
	struct cleanup *c = arg;
	if (!(u->flags & STORE_USER_IMPORTING))
		return 0;
	void *names = realloc(c->names, (c->n + 1) * sizeof(*c->names));
	if (names == NULL)
		return -ENOMEM;
	c->names = names;
	strcpy(c->names[c->n++], u->name);
	return 0;
}

int
ops_cleanup_imports(struct daemon *d)
{
	struct cleanup c = {0};
	struct store_txn txn;
	int ret = store_txn_begin(d->store, &txn, true, NULL);
	if (ret != 0)
		return ret;
	ret = store_user_foreach(&txn, cleanup_cb, &c);
	for (size_t i = 0; i < c.n && ret == 0; i++) {
		struct store_user u;
		if ((ret = store_user_get(&txn, c.names[i], &u)) == 0)
			ret = store_user_delete(&txn, &u);
		log_notice("store: removed the unfinished import of user '%s'", c.names[i]);
	}
	if (ret == 0)
		ret = store_txn_commit(&txn);
	else
		store_txn_abort(&txn);
	free(c.names);
	return ret;
}
