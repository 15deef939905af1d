/*
 * ops.c: dispatch of a request to its handler, the small read operations (ping, users, stats,
 * entries, chunks), and the helpers the other handlers share: name checks, memory lookup, spec
 * conversion, entry and text rendering, the chunk source over a read transaction.
 *
 * Every number, size and string of a request is checked here or in the handler before use; a bad
 * one fails the job with a message naming it, and nothing is written.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "ops.h"

int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
job_fail(struct job *job, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	job->reply.status = status;
	job->reply.message = arena_strndup(&job->arena, msg, strlen(msg));
	job->reply.body_case = HSAMEM__REPLY__BODY__NOT_SET;
	return status;
}

int
ops_oom(struct job *job)
{
	return job_fail(job, -ENOMEM, "out of memory");
}

int
ops_check_name(struct job *job, const char *name)
{
	if (name == NULL || *name == '\0')
		return job_fail(job, HSAMEM_EBADNAME, "user name is missing");
	size_t n = strlen(name);
	if (n > HSAMEM_NAME_MAX)
		return job_fail(job, HSAMEM_EBADNAME, "user name is longer than %d bytes",
		                HSAMEM_NAME_MAX);
	if (name[0] == '.' || name[0] == '-')
		return job_fail(job, HSAMEM_EBADNAME, "user name must not start with '.' or '-'");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (!isalnum(ch) && strchr("_.@:-", ch) == NULL)
			return job_fail(job, HSAMEM_EBADNAME,
			                "user name may hold only letters, digits and _.@:-");
	}
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
ops_encoder(struct job *job, const struct hsa_spec *spec, const struct enc_ops **out)
{
	if (strcmp(spec->encoder, "client") == 0) {
		*out = NULL;
		return 0;
	}
	const struct enc_ops *enc = enc_find(spec->encoder);
	if (enc == NULL)
		return job_fail(job, HSAMEM_EENCODER, "encoder '%s' is not built into this daemon",
		                spec->encoder);
	if (enc->revision != spec->revision)
		return job_fail(job, HSAMEM_EENCODER,
		                "memory was encoded by %s revision %u; this daemon has revision %u",
		                spec->encoder, spec->revision, enc->revision);
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
	char why[256];

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
		if (in->has_revision && enc != NULL && in->revision != enc->revision)
			return job_fail(job, HSAMEM_EENCODER,
			                "spec: encoder %s is at revision %u, not %u", enc->name,
			                enc->revision, in->revision);
		if (in->has_revision && enc == NULL)
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
	*out = m;
	return 0;
}

char *
ops_tokens_text(struct job *job, struct store_txn *txn, uint64_t uid,
                const struct store_tokref *refs, uint32_t from, uint32_t to)
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
		    store_entry_get(txn, uid, refs[i].entry, &e) == 0 && hi <= e.text_len) {
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

static int
source_chunk_kv(void *ctx, uint64_t j, const void **kv)
{
	struct ops_source *s = ctx;
	size_t len = 0;
	pthread_mutex_lock(&s->mu);
	int ret = store_kv_get(s->txn, s->user.uid, j, kv, &len);
	pthread_mutex_unlock(&s->mu);
	if (ret == 0 && len != s->kv_bytes) {
		log_err("store: chunk %llu of user %s holds %zu bytes of K/V, expected %zu",
		        (unsigned long long)j, s->user.name, len, s->kv_bytes);
		ret = HSAMEM_EFORMAT;
	}
	return ret;
}

static int
source_copy_kv(void *ctx, uint64_t j, void *dst)
{
	struct ops_source *s = ctx;
	int ret = store_kv_copy(s->txn, s->user.uid, j, dst, s->kv_bytes);

	if (ret == HSAMEM_EFORMAT)
		log_err("store: chunk %llu of user %s does not hold %zu bytes of K/V",
		        (unsigned long long)j, s->user.name, s->kv_bytes);
	return ret;
}

void
ops_source_init(struct ops_source *s, struct store_txn *txn, const struct store_user *u)
{
	memset(s, 0, sizeof(*s));
	s->txn = txn;
	s->user = *u;
	s->kv_bytes = spec_kv_bytes(&u->spec);
	pthread_mutex_init(&s->mu, NULL);
	s->src.ctx = s;
	s->src.uid = u->uid;
	s->src.n_chunks = u->n_chunks;
	s->src.landmarks = source_landmarks;
	s->src.chunk_kv = source_chunk_kv;
	s->src.copy_kv = source_copy_kv;
}

void
ops_source_fini(struct ops_source *s)
{
	pthread_mutex_destroy(&s->mu);
}

struct gpu_backend *
daemon_backend(struct daemon *d, const struct hsa_spec *spec)
{
	if (d->gpu != NULL && atomic_load(&d->gpu_ok) && d->gpu->ops->supports(d->gpu, spec))
		return d->gpu;
	return d->cpu;
}

void
daemon_gpu_failed(struct daemon *d, int err)
{
	if (atomic_exchange(&d->gpu_ok, false))
		log_err("gpu: backend failed (%s); serving on the CPU from now on",
		        hsamem_strerror(err));
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

void
ops_fuse_weights(const struct hsa_spec *spec, const float *score, const int64_t *chunk, size_t n,
                 float *weight)
{
	if (n == 0)
		return;
	if (spec->weighting == HSA_SOFTMAX) {
		float max = -INFINITY;
		double sum = 0;
		for (size_t i = 0; i < n; i++)
			max = score[i] > max ? score[i] : max;
		for (size_t i = 0; i < n; i++)
			sum += exp((double)score[i] - max);
		for (size_t i = 0; i < n; i++)
			weight[i] = (float)(exp((double)score[i] - max) / sum);
		return;
	}
	/* stick-breaking, most recent (highest chunk index) first */
	bool done[SPEC_TOPK_MAX + 1] = {false};
	double rest = 1.0;
	for (size_t step = 0; step < n && step <= SPEC_TOPK_MAX; step++) {
		size_t best = n;
		for (size_t i = 0; i < n; i++)
			if (!done[i] && (best == n || chunk[i] > chunk[best]))
				best = i;
		double sig = 1.0 / (1.0 + exp(-(double)score[best]));
		weight[best] = (float)(sig * rest);
		rest *= 1.0 - sig;
		done[best] = true;
	}
}

/* ---- small reads ---- */

static void
op_ping(struct job *job)
{
	struct daemon *d = job->d;
	Hsamem__PingReply *p = arena_alloc(&job->arena, sizeof(*p));
	if (p == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__ping_reply__init(p);
	p->server_version = PACKAGE_VERSION;
	p->has_protocol_version = p->has_uptime_ms = true;
	p->protocol_version = HSAMEM_PROTOCOL_VERSION;
	p->uptime_ms = (uint64_t)(now_ms() - d->started_ms);
	struct gpu_stats gs;
	struct gpu_backend *b = d->gpu != NULL && atomic_load(&d->gpu_ok) ? d->gpu : d->cpu;
	b->ops->stats(b, &gs);
	char buf[200];
	snprintf(buf, sizeof(buf), "%s: %s", gs.name, gs.device);
	p->backend = arena_strndup(&job->arena, buf, strlen(buf));
	job->reply.body_case = HSAMEM__REPLY__BODY_PING;
	job->reply.ping = p;
}

struct users_walk {
	struct job *job;
	Hsamem__MemoryInfo **list;
	size_t n, cap;
	const char *only;
	uint64_t tokens, chunks, users;
};

static int
users_cb(const struct store_user *u, void *arg)
{
	struct users_walk *w = arg;
	if (u->flags & STORE_USER_IMPORTING)
		return 0;
	w->users++;
	w->tokens += u->n_tokens;
	w->chunks += u->n_chunks;
	if (w->only != NULL && strcmp(w->only, u->name) != 0)
		return 0;
	if (w->list == NULL)
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		Hsamem__MemoryInfo **nl = arena_calloc(&w->job->arena, cap, sizeof(*nl));
		if (nl == NULL)
			return -ENOMEM;
		if (w->n > 0)
			memcpy(nl, w->list, w->n * sizeof(*nl));
		w->list = nl;
		w->cap = cap;
	}
	if ((w->list[w->n] = ops_memory_info(w->job, u)) == NULL)
		return -ENOMEM;
	w->n++;
	return 0;
}

static int
walk_users(struct job *job, struct store_txn *txn, struct users_walk *w, const char *only,
           bool collect)
{
	memset(w, 0, sizeof(*w));
	w->job = job;
	w->only = only;
	if (collect && (w->list = arena_calloc(&job->arena, 64, sizeof(*w->list))) == NULL)
		return ops_oom(job);
	w->cap = 64;
	int ret = store_user_foreach(txn, users_cb, w);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot list users: %s", hsamem_strerror(ret));
	return 0;
}

static void
op_users(struct job *job, struct store_txn *txn)
{
	struct users_walk w;
	if (walk_users(job, txn, &w, NULL, true) != 0)
		return;
	Hsamem__UsersReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__users_reply__init(r);
	r->users = w.list;
	r->n_users = w.n;
	job->reply.body_case = HSAMEM__REPLY__BODY_USERS;
	job->reply.users = r;
}

static void
op_stats(struct job *job, struct store_txn *txn)
{
	struct daemon *d = job->d;
	const char *only = job->req->stats->user;
	if (only != NULL && *only == '\0')
		only = NULL;
	if (only != NULL) {
		struct store_user u;
		if (ops_check_name(job, only) != 0 || ops_get_user(job, txn, only, &u) != 0)
			return;
	}
	struct users_walk w;
	if (walk_users(job, txn, &w, only, true) != 0)
		return;
	Hsamem__StatsReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__stats_reply__init(r);
	struct store_info si = {0};
	store_info(d->store, &si);
	struct gpu_stats gs;
	struct gpu_backend *b = d->gpu != NULL && atomic_load(&d->gpu_ok) ? d->gpu : d->cpu;
	b->ops->stats(b, &gs);
	char buf[200];
	snprintf(buf, sizeof(buf), "%s: %s", gs.name, gs.device);
	uint64_t commits = 0, applied = 0;
	commit_counters(d->commit, &commits, &applied);

	r->has_users = r->has_tokens = r->has_chunks = true;
	r->users = w.users;
	r->tokens = w.tokens;
	r->chunks = w.chunks;
	r->has_store_map_size = r->has_store_map_used = true;
	r->store_map_size = si.map_size;
	r->store_map_used = si.map_used;
	r->backend = arena_strndup(&job->arena, buf, strlen(buf));
	r->has_gpu_mem_used = r->has_gpu_mem_budget = r->has_gpu_resident_users = true;
	r->gpu_mem_used = gs.mem_used;
	r->gpu_mem_budget = gs.mem_budget;
	r->gpu_resident_users = gs.resident_users;
	r->has_landmark_hits = r->has_landmark_misses = true;
	r->has_chunk_hits = r->has_chunk_misses = true;
	r->landmark_hits = gs.lmk_hits;
	r->landmark_misses = gs.lmk_misses;
	r->chunk_hits = gs.chunk_hits;
	r->chunk_misses = gs.chunk_misses;
	r->has_requests = r->has_errors = r->has_commits = r->has_committed_appends = true;
	r->requests = atomic_load(&d->stats.requests);
	r->errors = atomic_load(&d->stats.errors);
	r->commits = commits;
	r->committed_appends = applied;
	r->has_uptime_ms = true;
	r->uptime_ms = (uint64_t)(now_ms() - d->started_ms);
	r->memories = w.list;
	r->n_memories = w.n;

	r->latency = arena_calloc(&job->arena, OP_COUNT, sizeof(*r->latency));
	if (r->latency == NULL) {
		ops_oom(job);
		return;
	}
	for (int op = 0; op < OP_COUNT; op++) {
		const struct stats_hist *h = &d->stats.hist[op];
		uint64_t total = stats_total(h);
		if (total == 0)
			continue;
		Hsamem__Histogram *hm = arena_alloc(&job->arena, sizeof(*hm));
		double *bounds = arena_calloc(&job->arena, STATS_BUCKETS, sizeof(double));
		uint64_t *counts = arena_calloc(&job->arena, STATS_BUCKETS + 1, sizeof(uint64_t));
		if (hm == NULL || bounds == NULL || counts == NULL) {
			ops_oom(job);
			return;
		}
		hsamem__histogram__init(hm);
		hm->name = (char *)stats_op_name(op);
		for (int i = 0; i < STATS_BUCKETS; i++)
			bounds[i] = stats_bound_ms(i);
		for (int i = 0; i <= STATS_BUCKETS; i++)
			counts[i] = atomic_load(&h->counts[i]);
		hm->bounds_ms = bounds;
		hm->n_bounds_ms = STATS_BUCKETS;
		hm->counts = counts;
		hm->n_counts = STATS_BUCKETS + 1;
		hm->has_total = hm->has_p50_ms = hm->has_p99_ms = true;
		hm->total = total;
		hm->p50_ms = stats_quantile_ms(h, 0.50);
		hm->p99_ms = stats_quantile_ms(h, 0.99);
		r->latency[r->n_latency++] = hm;
	}
	job->reply.body_case = HSAMEM__REPLY__BODY_STATS;
	job->reply.stats = r;
}

static void
op_entries(struct job *job, struct store_txn *txn)
{
	const Hsamem__EntriesRequest *q = job->req->entries;
	struct store_user u;
	if (ops_check_name(job, q->user) != 0 || ops_get_user(job, txn, q->user, &u) != 0)
		return;
	uint32_t count = q->has_count ? q->count : 100;
	if (count > OPS_MAX_LIST) {
		job_fail(job, HSAMEM_EINVAL, "count: at most %d entries per request", OPS_MAX_LIST);
		return;
	}
	uint64_t first = q->first < u.n_entries ? q->first : u.n_entries;
	uint64_t end = u.n_entries - first < count ? u.n_entries : first + count;
	Hsamem__EntriesReply *r = arena_alloc(&job->arena, sizeof(*r));
	Hsamem__Entry **list = arena_calloc(&job->arena, end - first + 1, sizeof(*list));
	if (r == NULL || list == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__entries_reply__init(r);
	for (uint64_t s = first; s < end; s++)
		if (ops_entry_to_proto(job, txn, u.uid, s, &list[r->n_entries++]) != 0)
			return;
	r->entries = list;
	r->has_total = true;
	r->total = u.n_entries;
	job->reply.body_case = HSAMEM__REPLY__BODY_ENTRIES;
	job->reply.entries = r;
}

static void
op_chunks(struct job *job, struct store_txn *txn)
{
	const Hsamem__ChunksRequest *q = job->req->chunks;
	struct store_user u;
	if (ops_check_name(job, q->user) != 0 || ops_get_user(job, txn, q->user, &u) != 0)
		return;
	uint32_t count = q->has_count ? q->count : 16;
	if (count > OPS_MAX_CHUNK_LIST) {
		job_fail(job, HSAMEM_EINVAL, "count: at most %d chunks per request",
		         OPS_MAX_CHUNK_LIST);
		return;
	}
	uint64_t first = q->first < u.n_chunks ? q->first : u.n_chunks;
	uint64_t end = u.n_chunks - first < count ? u.n_chunks : first + count;
	size_t kv_bytes = spec_kv_bytes(&u.spec), half = kv_bytes / 2;
	size_t lmk_bytes = spec_landmark_bytes(&u.spec);
	if (q->tensors && (end - first) * (kv_bytes + lmk_bytes) > job->d->conf.max_message / 2) {
		job_fail(job, HSAMEM_ETOOBIG, "count: %llu chunks with tensors exceed max-message",
		         (unsigned long long)(end - first));
		return;
	}
	Hsamem__ChunksReply *r = arena_alloc(&job->arena, sizeof(*r));
	Hsamem__Chunk **list = arena_calloc(&job->arena, end - first + 1, sizeof(*list));
	if (r == NULL || list == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__chunks_reply__init(r);
	for (uint64_t j = first; j < end; j++) {
		struct store_chunk c;
		int ret = store_chunk_get(txn, u.uid, j, &c);
		Hsamem__Chunk *m = arena_alloc(&job->arena, sizeof(*m));
		if (ret != 0) {
			job_fail(job, ret, "store: cannot read chunk %llu: %s",
			         (unsigned long long)j, hsamem_strerror(ret));
			return;
		}
		if (m == NULL) {
			ops_oom(job);
			return;
		}
		hsamem__chunk__init(m);
		m->has_index = m->has_n_real = m->has_first_entry = m->has_last_entry = true;
		m->index = j;
		m->n_real = c.n_real;
		m->tokens = arena_memdup(&job->arena, c.tokens, c.n_tokens * sizeof(uint32_t));
		m->n_tokens = c.n_tokens;
		m->first_entry = c.n_real > 0 ? c.refs[0].entry : 0;
		m->last_entry = c.n_real > 0 ? c.refs[c.n_real - 1].entry : 0;
		m->text = ops_tokens_text(job, txn, u.uid, c.refs, 0, c.n_real);
		if (m->tokens == NULL || m->text == NULL) {
			ops_oom(job);
			return;
		}
		if (q->tensors) {
			const void *kv, *row;
			size_t len;
			uint64_t cnt;
			if ((ret = store_kv_get(txn, u.uid, j, &kv, &len)) != 0 ||
			    (ret = store_landmarks_get(txn, &u, j, &row, &cnt)) != 0) {
				job_fail(job, ret, "store: cannot read tensors of chunk %llu: %s",
				         (unsigned long long)j, hsamem_strerror(ret));
				return;
			}
			if (len != kv_bytes) {
				job_fail(job, HSAMEM_EFORMAT, "store: chunk %llu has a corrupt K/V",
				         (unsigned long long)j);
				return;
			}
			m->has_k = m->has_v = m->has_landmark = true;
			m->k.data = arena_memdup(&job->arena, kv, half);
			m->k.len = half;
			m->v.data = arena_memdup(&job->arena, (const char *)kv + half, half);
			m->v.len = half;
			m->landmark.data = arena_memdup(&job->arena, row, lmk_bytes);
			m->landmark.len = lmk_bytes;
			if (m->k.data == NULL || m->v.data == NULL || m->landmark.data == NULL) {
				ops_oom(job);
				return;
			}
		}
		list[r->n_chunks++] = m;
	}
	r->chunks = list;
	r->has_total = true;
	r->total = u.n_chunks;
	job->reply.body_case = HSAMEM__REPLY__BODY_CHUNKS;
	job->reply.chunks = r;
}

/* Runs a read handler inside a read transaction. */
static void
with_read_txn(struct job *job, void (*fn)(struct job *job, struct store_txn *txn))
{
	struct store_txn txn;
	int ret = store_txn_begin(job->d->store, &txn, false, NULL);
	if (ret != 0) {
		job_fail(job, ret, "store: cannot begin a read: %s", hsamem_strerror(ret));
		return;
	}
	fn(job, &txn);
	store_txn_abort(&txn);
}

void
ops_run(struct job *job)
{
	switch (job->op) {
	case OP_PING: op_ping(job); break;
	case OP_USERS: with_read_txn(job, op_users); break;
	case OP_STATS: with_read_txn(job, op_stats); break;
	case OP_ENTRIES: with_read_txn(job, op_entries); break;
	case OP_CHUNKS: with_read_txn(job, op_chunks); break;
	case OP_QUERY: ops_query(job); break;
	case OP_ATTEND: ops_attend_request(job); break;
	case OP_EXPORT: ops_export(job); break;
	/* writes: prepared here, applied by the committer, which then sends the reply */
	case OP_CREATE: ops_prepare_create(job); return;
	case OP_APPEND: ops_prepare_append(job); return;
	case OP_FLUSH: ops_prepare_flush(job); return;
	case OP_DELETE: ops_prepare_delete(job); return;
	case OP_IMPORT: ops_prepare_import(job); return;
	default: job_fail(job, HSAMEM_EPROTO, "unknown operation"); break;
	}
	job->finish(job);
}
