/*
 * ops.c: what the operation handlers share: name checks, memory lookup, spec conversion, entry and
 * text rendering, the chunk source over a read transaction (and the unsealed tail, encoded on the
 * spot, as its last chunk), and running the HSA operator on the daemon's backend. The handlers
 * themselves are in ops_read.c, ops_query.c, ops_write.c, ops_delete.c and ops_export.c;
 * dispatch.c says which runs for which request.
 *
 * Every number, size and string of a request is checked here or in the handler before use; a bad
 * one fails the job with a message naming it, and nothing is written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "log.h"
#include "ops.h"
#include "holes.h"

int
ops_oom(struct job *job)
{
	return job_fail(job, -ENOMEM, "out of memory");
}

int
ops_check_name(struct job *job, const char *name)
{
	const char *why = NULL;
	if (name == NULL)
		return job_fail(job, HSAMEM_EBADNAME, "user name is missing");
	/* the server refused NUL bytes on the wire (wire.h): strlen is the name's length */
	if (hsamem_name_check(name, strlen(name), &why) != 0)
		return job_fail(job, HSAMEM_EBADNAME, "%s (the rule is in hsamem(7))", why);
	return 0;
}

int
ops_get_user(struct job *job, struct store_txn *txn, const char *name, struct store_user *u)
{
	int ret = store_user_get(txn, name, u);
	if (ret == HSAMEM_ENOUSER || (ret == 0 && (u->flags & STORE_USER_IMPORTING)))
		return job_fail(job, HSAMEM_ENOUSER, "no memory for user '%s'", name);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read user '%s': %s", name,
		                hsamem_strerror(ret));
	return 0;
}

int
ops_read_user(struct job *job, const char *name, struct store_txn *txn, struct store_user *u)
{
	int ret = ops_check_name(job, name);
	if (ret != 0)
		return ret;
	if ((ret = store_txn_begin(job->d->store, txn, false, NULL)) != 0)
		return job_fail(job, ret, "store: cannot begin a read: %s", hsamem_strerror(ret));
	if ((ret = ops_get_user(job, txn, name, u)) != 0)
		store_txn_abort(txn);
	return ret;
}

int
ops_encoder(struct job *job, const struct store_user *u, const struct enc_ops **out)
{
	const struct hsa_spec *spec = &u->spec;
	if (strcmp(spec->encoder, "client") == 0) {
		*out = NULL;
		return 0;
	}
	/* the text is kept: the memory can be rebuilt with an encoder this daemon has */
	const struct enc_ops *enc = enc_find(spec->encoder);
	char why[600];
	if (enc == NULL)
		return job_fail(
		        job, HSAMEM_EENCODER,
		        "the memory of '%s' was encoded by %s, which is not built into this "
		        "daemon: rebuild it from its text with `hsamem reencode %s --encoder "
		        "%s`",
		        u->name, spec->encoder, u->name, enc_default()->name);
	if (enc->ready != NULL && enc->ready(why, sizeof(why)) != 0)
		return job_fail(job, HSAMEM_EENCODER, "%s", why);
	if (!enc_serves(enc, spec->revision))
		return job_fail(
		        job, HSAMEM_EENCODER,
		        "the memory of '%s' was encoded by %s revision %u; this daemon's %s "
		        "serves revisions %u to %u: rebuild it from its text with `hsamem "
		        "reencode %s --encoder %s`",
		        u->name, spec->encoder, spec->revision, enc->name,
		        enc->min_revision != 0 ? enc->min_revision : enc->revision, enc->revision,
		        u->name, enc->name);
	*out = enc;
	return 0;
}

int
ops_spec_from_proto(struct job *job, const Hsamem__Spec *in, struct hsa_spec *out)
{
	struct hsa_spec s;
	const char *encoder = in != NULL && in->encoder != NULL && *in->encoder != '\0'
	                              ? in->encoder
	                              : enc_default()->name;
	const struct enc_ops *enc = NULL;
	char why[600];
	int ret;

	memset(&s, 0, sizeof(s));
	if (strlen(encoder) > SPEC_NAME_MAX)
		return job_fail(job, HSAMEM_EINVAL, "spec: encoder name is too long");
	if (strcmp(encoder, "client") == 0) {
		/* the client's model decides the shapes: they must all be given */
		if (in == NULL || !in->has_h_kv || !in->has_d_h || !in->has_h_q || !in->has_d_r)
			return job_fail(job, HSAMEM_EINVAL,
			                "spec: a client memory needs h_kv, d_h, h_q and d_r");
		strcpy(s.encoder, "client");
		s.S = 64;
		s.dtype = HSA_F16;
		s.weighting = HSA_SOFTMAX;
		s.top_k = 8;
	} else {
		if ((enc = enc_find(encoder)) == NULL)
			return job_fail(job, HSAMEM_EENCODER,
			                "encoder '%s' is not built into this daemon", encoder);
		if (enc->ready != NULL && enc->ready(why, sizeof(why)) != 0)
			return job_fail(job, HSAMEM_EENCODER, "%s", why);
		enc->default_spec(&s);
	}
	if (in != NULL) {
		/* A built-in encoder fixes its shapes: a different one is refused, not coerced. */
#define SHAPE(field, has, val)                                                                     \
	if (in->has) {                                                                             \
		if (enc != NULL && s.field != (val))                                               \
			return job_fail(job, HSAMEM_ESPEC,                                         \
			                "spec: encoder %s has " #field " %u, not %u", enc->name,   \
			                (unsigned)s.field, (unsigned)(val));                       \
		s.field = (val);                                                                   \
	}
		SHAPE(S, has_chunk_size, in->chunk_size)
		SHAPE(h_kv, has_h_kv, in->h_kv)
		SHAPE(d_h, has_d_h, in->d_h)
		SHAPE(h_q, has_h_q, in->h_q)
		SHAPE(d_r, has_d_r, in->d_r)
		SHAPE(dtype, has_dtype, (enum hsa_dtype)in->dtype)
#undef SHAPE
		/* an older revision that the encoder still serves may be asked for by name */
		if (in->has_revision && enc != NULL && !enc_serves(enc, in->revision))
			return job_fail(job, HSAMEM_EENCODER,
			                "spec: encoder %s is at revision %u, not %u", enc->name,
			                enc->revision, in->revision);
		if (in->has_revision)
			s.revision = in->revision;
		if (in->tokenizer != NULL && *in->tokenizer != '\0') {
			if (enc != NULL && strcmp(in->tokenizer, s.tokenizer) != 0)
				return job_fail(job, HSAMEM_ESPEC,
				                "spec: encoder %s uses tokenizer %s", enc->name,
				                s.tokenizer);
			if (strlen(in->tokenizer) > SPEC_NAME_MAX)
				return job_fail(job, HSAMEM_EINVAL,
				                "spec: tokenizer name too long");
			strcpy(s.tokenizer, in->tokenizer);
		}
		if (in->has_weighting && in->weighting != HSAMEM__WEIGHTING__WEIGHTING_UNSET)
			s.weighting = (enum hsa_weighting)in->weighting;
		if (in->has_off_by_one)
			s.off_by_one = in->off_by_one;
		if (in->has_top_k)
			s.top_k = in->top_k;
	}
	if (spec_check(&s, why, sizeof(why)) != 0)
		return job_fail(job, HSAMEM_EINVAL, "%s", why);
	if (enc != NULL && (ret = enc->check_spec(&s, why, sizeof(why))) != 0)
		return job_fail(job, ret, "spec: %s", why);
	*out = s;
	return 0;
}

Hsamem__Spec *
ops_spec_to_proto(struct arena *a, const struct hsa_spec *s)
{
	Hsamem__Spec *p = arena_alloc(a, sizeof(*p));
	if (p == NULL)
		return NULL;
	hsamem__spec__init(p);
	p->encoder = arena_strndup(a, s->encoder, strlen(s->encoder));
	p->tokenizer = arena_strndup(a, s->tokenizer, strlen(s->tokenizer));
	p->has_revision = p->has_chunk_size = p->has_h_kv = p->has_d_h = p->has_h_q = true;
	p->has_d_r = p->has_dtype = p->has_weighting = p->has_off_by_one = p->has_top_k = true;
	p->revision = s->revision;
	p->chunk_size = s->S;
	p->h_kv = s->h_kv;
	p->d_h = s->d_h;
	p->h_q = s->h_q;
	p->d_r = s->d_r;
	p->dtype = (Hsamem__DType)s->dtype;
	p->weighting = (Hsamem__Weighting)s->weighting;
	p->off_by_one = s->off_by_one;
	p->top_k = s->top_k;
	return p->encoder != NULL && p->tokenizer != NULL ? p : NULL;
}

Hsamem__MemoryInfo *
ops_memory_info(struct job *job, const struct store_user *u)
{
	Hsamem__MemoryInfo *m = arena_alloc(&job->arena, sizeof(*m));
	if (m == NULL)
		return NULL;
	hsamem__memory_info__init(m);
	m->user = arena_strndup(&job->arena, u->name, strlen(u->name));
	m->spec = ops_spec_to_proto(&job->arena, &u->spec);
	m->has_entries = m->has_tokens = m->has_chunks = m->has_tail_tokens = true;
	m->has_bytes = m->has_created_ms = m->has_updated_ms = true;
	m->entries = u->n_entries;
	m->tokens = u->n_tokens;
	m->chunks = u->n_chunks;
	m->tail_tokens = (uint32_t)(u->n_tokens - u->n_chunks * u->spec.S);
	m->bytes = u->n_chunks * (spec_kv_bytes(&u->spec) + spec_landmark_bytes(&u->spec));
	m->created_ms = u->created_ms;
	m->updated_ms = u->updated_ms;
	return m->user != NULL && m->spec != NULL ? m : NULL;
}

/* A stored "key=value" list as Attr messages in the arena. */
static int
attrs_to_proto(struct job *job, const char *list, uint32_t len, Hsamem__Attr ***out, size_t *n_out)
{
	size_t n = 0;
	for (uint32_t i = 0; i < len; i++)
		n += list[i] == '\0';
	Hsamem__Attr **v = arena_calloc(&job->arena, n + 1, sizeof(*v));
	if (v == NULL)
		return ops_oom(job);
	n = 0;
	for (uint32_t i = 0; i < len; i += (uint32_t)strlen(list + i) + 1) {
		const char *eq = strchr(list + i, '=');
		Hsamem__Attr *a = arena_alloc(&job->arena, sizeof(*a));
		if (a == NULL || eq == NULL)
			return a == NULL ? ops_oom(job)
			                 : job_fail(job, HSAMEM_EFORMAT, "bad attribute");
		hsamem__attr__init(a);
		a->key = arena_strndup(&job->arena, list + i, (size_t)(eq - (list + i)));
		a->value = arena_strndup(&job->arena, eq + 1, strlen(eq + 1));
		if (a->key == NULL || a->value == NULL)
			return ops_oom(job);
		v[n++] = a;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int
ops_entry_to_proto(struct job *job, struct store_txn *txn, uint64_t uid, uint64_t seq,
                   Hsamem__Entry **out)
{
	struct store_entry e;
	int ret = store_entry_get(txn, uid, seq, &e);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read entry %llu: %s",
		                (unsigned long long)seq, hsamem_strerror(ret));
	Hsamem__Entry *m = arena_alloc(&job->arena, sizeof(*m));
	if (m == NULL)
		return ops_oom(job);
	hsamem__entry__init(m);
	m->has_seq = m->has_role = m->has_timestamp_ms = true;
	m->has_first_token = m->has_n_tokens = true;
	m->seq = e.seq;
	m->role = (Hsamem__Role)e.role;
	m->timestamp_ms = e.timestamp_ms;
	m->first_token = e.first_token;
	m->n_tokens = e.n_tokens;
	m->text = arena_strndup(&job->arena, e.text, e.text_len);
	size_t n_tags = 0;
	for (uint32_t i = 0; i < e.tags_len; i++)
		n_tags += e.tags[i] == '\0';
	m->tags = arena_calloc(&job->arena, n_tags + 1, sizeof(char *));
	if (m->text == NULL || m->tags == NULL)
		return ops_oom(job);
	for (uint32_t i = 0; i < e.tags_len; i += (uint32_t)strlen(e.tags + i) + 1)
		m->tags[m->n_tags++] = arena_strndup(&job->arena, e.tags + i, strlen(e.tags + i));
	if (attrs_to_proto(job, e.scope, e.scope_len, &m->scope, &m->n_scope) != 0 ||
	    attrs_to_proto(job, e.meta, e.meta_len, &m->meta, &m->n_meta) != 0)
		return job->reply.status;
	struct store_link l;
	if ((ret = store_link_get(txn, uid, seq, &l)) != 0)
		return job_fail(job, ret, "store: cannot read entry %llu: %s",
		                (unsigned long long)seq, hsamem_strerror(ret));
	m->has_forgotten = (l.flags & STORE_LINK_FORGOTTEN) != 0;
	m->forgotten = m->has_forgotten;
	m->has_replaces = l.replaces != STORE_NO_SEQ;
	m->replaces = m->has_replaces ? l.replaces : 0;
	m->has_replaced_by = l.replaced_by != STORE_NO_SEQ;
	m->replaced_by = m->has_replaced_by ? l.replaced_by : 0;
	*out = m;
	return 0;
}

char *
ops_tokens_text(struct job *job, struct store_txn *txn, uint64_t uid,
                const struct store_tokref *refs, uint32_t from, uint32_t to,
                const struct store_filter *f)
{
	size_t cap = 256, len = 0;
	char *buf = malloc(cap), *out = NULL;
	if (buf == NULL)
		return NULL;
	for (uint32_t i = from; i < to;) {
		/* one piece: the run of tokens from the same entry */
		uint32_t j = i;
		while (j + 1 < to && refs[j + 1].entry == refs[i].entry)
			j++;
		uint32_t lo = refs[i].off, hi = refs[j].off + refs[j].len;
		struct store_entry e;
		if (refs[i].len + refs[j].len > 0 && hi > lo &&
		    store_entry_get(txn, uid, refs[i].entry, &e) == 0 && hi <= e.text_len &&
		    store_filter_match(f, &e)) {
			size_t need = len + (hi - lo) + 2;
			if (need > cap) {
				cap = need * 2;
				char *nb = realloc(buf, cap);
				if (nb == NULL)
					goto done;
				buf = nb;
			}
			if (len > 0)
				buf[len++] = '\n';
			memcpy(buf + len, e.text + lo, hi - lo);
			len += hi - lo;
		}
		i = j + 1;
	}
	out = arena_strndup(&job->arena, buf, len);
done:
	free(buf);
	return out;
}

/* ---- the chunk source over a read transaction ---- */

static int
source_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct ops_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	int ret = store_landmarks_get(s->txn, &s->user, first, rows, count);
	pthread_mutex_unlock(&s->mu);
	return ret;
}

/* A memory with sparse landmark pages (store.h, SPARSE PAGES): the backend's sparse view of them,
 * which is the store's own. */
static int
source_landmarks_sparse(void *ctx, uint64_t first, struct hsa_sparse_rows *out)
{
	struct ops_source *s = ctx;
	struct store_sparse sp;
	pthread_mutex_lock(&s->mu);
	int ret = store_landmarks_sparse(s->txn, &s->user, first, &sp);
	pthread_mutex_unlock(&s->mu);
	if (ret == 0)
		*out = (struct hsa_sparse_rows){.count = sp.count,
		                                .row0 = sp.row0,
		                                .start_bytes = sp.start_bytes,
		                                .n_entries = sp.n_entries,
		                                .starts = sp.starts,
		                                .entries = sp.entries};
	return ret;
}

static int
source_chunk_kv(void *ctx, uint64_t j, const void **kv)
{
	struct ops_source *s = ctx;
	size_t len = 0;
	int ret = s->kv_err;
	if (ret != 0)
		return ret;
	pthread_mutex_lock(&s->mu);
	if (s->kv_enc != NULL)
		ret = kvc_cache_get(&s->kv_cache, s->txn, &s->user, s->kv_enc, j, kv);
	else if ((ret = store_kv_get(s->txn, s->user.uid, j, kv, &len)) == 0 && len != s->kv_bytes)
		ret = HSAMEM_EFORMAT;
	pthread_mutex_unlock(&s->mu);
	if (ret == HSAMEM_EFORMAT && s->kv_enc == NULL)
		log_err("store: chunk %llu of user %s holds %zu bytes of K/V, expected %zu",
		        (unsigned long long)j, s->user.name, len, s->kv_bytes);
	return ret;
}

/* copy_kv of a memory that keeps no K/V: the tokens are read under the lock, the K/V computed
 * outside it, so that the backend's threads compute in parallel. */
static int
source_compute_kv(struct ops_source *s, uint64_t j, void *dst)
{
	uint32_t tok[1024]; /* S <= 1024 (spec.c) */
	struct store_chunk c;
	pthread_mutex_lock(&s->mu);
	int ret = store_chunk_get(s->txn, s->user.uid, j, &c);
	if (ret == 0 && c.n_tokens > sizeof(tok) / sizeof(tok[0]))
		ret = HSAMEM_EFORMAT;
	if (ret == 0)
		memcpy(tok, c.tokens, c.n_tokens * sizeof(uint32_t));
	pthread_mutex_unlock(&s->mu);
	return ret != 0 ? ret : kvc_compute(s->kv_enc, &s->user.spec, tok, c.n_tokens, dst);
}

static int
source_copy_kv(void *ctx, uint64_t j, void *dst)
{
	struct ops_source *s = ctx;
	if (s->kv_err != 0)
		return s->kv_err;
	if (s->kv_enc != NULL)
		return source_compute_kv(s, j, dst);
	int ret = store_kv_copy(s->txn, s->user.uid, j, dst, s->kv_bytes);

	if (ret == HSAMEM_EFORMAT)
		log_err("store: chunk %llu of user %s does not hold %zu bytes of K/V",
		        (unsigned long long)j, s->user.name, s->kv_bytes);
	return ret;
}

/* The tail's own source: one chunk, held in memory (ops_source_tail). */
static int
tail_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct ops_source *s = ctx;
	if (first != 0)
		return HSAMEM_ENOTFOUND;
	*rows = s->tail_lmk;
	*count = 1;
	return 0;
}

static int
tail_chunk_kv(void *ctx, uint64_t j, const void **kv)
{
	struct ops_source *s = ctx;
	if (j != 0)
		return HSAMEM_ENOTFOUND;
	*kv = s->tail_kv;
	return 0;
}

static int
tail_copy_kv(void *ctx, uint64_t j, void *dst)
{
	struct ops_source *s = ctx;
	if (j != 0)
		return HSAMEM_ENOTFOUND;
	memcpy(dst, s->tail_kv, s->kv_bytes);
	return 0;
}

void
ops_source_init(struct ops_source *s, struct store_txn *txn, const struct store_user *u)
{
	memset(s, 0, sizeof(*s));
	s->txn = txn;
	s->user = *u;
	s->kv_bytes = spec_kv_bytes(&u->spec);
	s->kv_err = kvc_encoder(u, &s->kv_enc);
	pthread_mutex_init(&s->mu, NULL);
	s->src.ctx = s;
	s->src.uid = u->uid;
	s->src.n_chunks = u->n_chunks;
	s->src.landmarks = source_landmarks;
	if (u->flags & STORE_USER_LMK_SPARSE)
		s->src.landmarks_sparse = source_landmarks_sparse;
	s->src.chunk_kv = source_chunk_kv;
	s->src.copy_kv = source_copy_kv;
}

int
ops_source_tail(struct ops_source *s, const struct enc_ops *enc, const struct store_tail *t)
{
	const struct hsa_spec *spec = &s->user.spec;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	float *K = malloc(per * sizeof(float)), *V = malloc(per * sizeof(float));
	float *L = malloc(spec->d_r * sizeof(float));
	char *kv = malloc(s->kv_bytes), *lmk = malloc(spec_landmark_bytes(spec));
	int ret = -ENOMEM;

	if (K == NULL || V == NULL || L == NULL || kv == NULL || lmk == NULL)
		goto out;
	/* as the query always encoded it: without left context (forgotten tokens: holes) */
	if ((ret = holes_encode(enc, spec, NULL, 0, t->tokens, t->n, K, V, L)) != 0)
		goto out;
	half_from_float_row(spec->dtype, K, kv, per);
	half_from_float_row(spec->dtype, V, kv + s->kv_bytes / 2, per);
	half_from_float_row(spec->dtype, L, lmk, spec->d_r);
	s->tail_kv = kv;
	s->tail_lmk = lmk;
	kv = lmk = NULL;
	s->tail = (struct hsa_source){.ctx = s,
	                              .uid = s->user.uid,
	                              .n_chunks = 1,
	                              .tail_keys = t->n,
	                              .landmarks = tail_landmarks,
	                              .chunk_kv = tail_chunk_kv,
	                              .copy_kv = tail_copy_kv};
out:
	free(lmk);
	free(kv);
	free(L);
	free(V);
	free(K);
	return ret;
}

void
ops_source_fini(struct ops_source *s)
{
	free(s->tail_lmk);
	free(s->tail_kv);
	kvc_cache_fini(&s->kv_cache);
	pthread_mutex_destroy(&s->mu);
}

static struct gpu_backend *
daemon_backend(struct daemon *d, const struct hsa_spec *spec)
{
	if (d->gpu != NULL && atomic_load(&d->gpu_ok) && d->gpu->ops->supports(d->gpu, spec))
		return d->gpu;
	return d->cpu;
}

static void
daemon_gpu_failed(struct daemon *d, int err)
{
	if (atomic_exchange(&d->gpu_ok, false))
		log_err("gpu: backend failed (%s); serving on the CPU from now on",
		        hsamem_strerror(err));
}

bool
ops_on_device(struct job *job, const struct hsa_spec *spec)
{
	return daemon_backend(job->d, spec) != job->d->cpu;
}

int
ops_attend(struct job *job, const struct hsa_spec *spec, const struct hsa_source *src,
           const struct hsa_query *q, struct hsa_result *res)
{
	struct daemon *d = job->d;
	struct gpu_backend *b = daemon_backend(d, spec);
	int ret = gpu_attend(b, spec, src, q, res);
	if (ret == HSAMEM_EBACKEND && b != d->cpu) {
		daemon_gpu_failed(d, ret);
		ret = gpu_attend(d->cpu, spec, src, q, res);
	}
	return ret;
}

int
ops_attend_tail(struct job *job, const struct hsa_spec *spec, const struct hsa_source *src,
                const struct hsa_query *q, struct hsa_result *res)
{
	return gpu_attend(job->d->cpu, spec, src, q, res);
}
