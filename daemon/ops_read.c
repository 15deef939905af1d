/*
 * ops_read.c: the small reads: ping, users, stats (the daemon's counters and every operation's
 * latency histogram), entries and chunks (ranges of a memory's records). Each answers at once,
 * those that read the store within one read transaction; none writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "config.h"
#include "metrics.h"
#include "ops.h"
#include "ops_filter.h"

/* The counters of the backend that serves now, and its "name: device" in the arena. */
static char *
backend_stats(struct job *job, struct gpu_stats *gs)
{
	struct daemon *d = job->d;
	struct gpu_backend *b = d->gpu != NULL && atomic_load(&d->gpu_ok) ? d->gpu : d->cpu;
	char buf[200];
	b->ops->stats(b, gs);
	snprintf(buf, sizeof(buf), "%s: %s", gs->name, gs->device);
	return arena_strndup(&job->arena, buf, strlen(buf));
}

void
ops_ping(struct job *job)
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
	p->backend = backend_stats(job, &gs);
	job->reply.body_case = HSAMEM__REPLY__BODY_PING;
	job->reply.ping = p;
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
	/* what the peer may not use is neither listed nor counted */
	if (!w->job->id.admin && !acl_may_use(w->job->acl, &w->job->id, u->name))
		return 0;
	w->users++;
	w->tokens += u->n_tokens;
	w->chunks += u->n_chunks;
	if (w->only != NULL && strcmp(w->only, u->name) != 0)
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap * 2;
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
walk_users(struct job *job, struct store_txn *txn, struct users_walk *w, const char *only)
{
	memset(w, 0, sizeof(*w));
	w->job = job;
	w->only = only;
	if ((w->list = arena_calloc(&job->arena, 64, sizeof(*w->list))) == NULL)
		return ops_oom(job);
	w->cap = 64;
	int ret = store_user_foreach(txn, users_cb, w);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot list users: %s", hsamem_strerror(ret));
	return 0;
}

static void
users_in(struct job *job, struct store_txn *txn)
{
	struct users_walk w;
	if (walk_users(job, txn, &w, NULL) != 0)
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

/* The latency histogram of every operation that has served a request. */
static int
latency(struct job *job, Hsamem__StatsReply *r)
{
	const struct stats *st = &job->d->stats;
	r->latency = arena_calloc(&job->arena, st->n_ops, sizeof(*r->latency));
	if (r->latency == NULL)
		return ops_oom(job);
	for (unsigned op = 0; op < st->n_ops; op++) {
		const struct stats_hist *h = &st->hist[op];
		uint64_t total = stats_total(h);
		if (total == 0)
			continue;
		Hsamem__Histogram *hm = arena_alloc(&job->arena, sizeof(*hm));
		double *bounds = arena_calloc(&job->arena, STATS_BUCKETS, sizeof(double));
		uint64_t *counts = arena_calloc(&job->arena, STATS_BUCKETS + 1, sizeof(uint64_t));
		if (hm == NULL || bounds == NULL || counts == NULL)
			return ops_oom(job);
		hsamem__histogram__init(hm);
		hm->name = (char *)st->names[op];
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
	return 0;
}

/* The metrics endpoint's text, of the memories the reply lists (metrics.h). */
static int
prometheus(struct job *job, struct store_txn *txn, const char *only, Hsamem__StatsReply *r)
{
	char *text;
	size_t len;
	int ret = metrics_render(job->d, txn, job->acl, &job->id, only, &text, &len);
	if (ret != 0)
		return job_fail(job, ret, "metrics: cannot render: %s", hsamem_strerror(ret));
	r->prometheus = arena_strndup(&job->arena, text, len);
	free(text);
	return r->prometheus == NULL ? ops_oom(job) : 0;
}

static void
stats_in(struct job *job, struct store_txn *txn)
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
	if (walk_users(job, txn, &w, only) != 0)
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
	r->backend = backend_stats(job, &gs);
	uint64_t commits = 0, applied = 0;
	commit_counters(d->commit, &commits, &applied);

	r->has_users = r->has_tokens = r->has_chunks = true;
	r->users = w.users;
	r->tokens = w.tokens;
	r->chunks = w.chunks;
	r->has_store_map_size = r->has_store_map_used = true;
	r->store_map_size = si.map_size;
	r->store_map_used = si.map_used;
	/* the whole store's, like the map's: for the administrator's view of every memory */
	if (only == NULL && store_text_bytes(txn, &r->text_bytes) == 0)
		r->has_text_bytes = true;
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

	if (latency(job, r) != 0)
		return;
	if (job->req->stats->has_prometheus && job->req->stats->prometheus &&
	    prometheus(job, txn, only, r) != 0)
		return;
	job->reply.body_case = HSAMEM__REPLY__BODY_STATS;
	job->reply.stats = r;
}

static void
entries_in(struct job *job, struct store_txn *txn)
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
	struct store_filter f;
	bool pass = true;
	if (ops_filter_from_proto(job, q->filter, &f) != 0)
		return;
	hsamem__entries_reply__init(r);
	for (uint64_t s = first; s < end; s++)
		if (ops_entry_passes(job, txn, u.uid, &f, s, &pass) != 0 ||
		    (pass && ops_entry_to_proto(job, txn, u.uid, s, &list[r->n_entries++]) != 0))
			return;
	r->entries = list;
	r->has_total = true;
	r->total = u.n_entries;
	job->reply.body_case = HSAMEM__REPLY__BODY_ENTRIES;
	job->reply.entries = r;
}

static void
chunks_in(struct job *job, struct store_txn *txn)
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
		m->text = ops_tokens_text(job, txn, u.uid, c.refs, 0, c.n_real, NULL);
		if (m->tokens == NULL || m->text == NULL) {
			ops_oom(job);
			return;
		}
		if (q->tensors) {
			const void *kv, *row;
			uint64_t cnt;
			void *buf = arena_alloc(&job->arena, kv_bytes); /* computed K/V */
			if (buf == NULL) {
				ops_oom(job);
				return;
			}
			if ((ret = kvc_get(txn, &u, j, buf, &kv)) != 0 ||
			    (ret = store_landmarks_get(txn, &u, j, &row, &cnt)) != 0) {
				job_fail(job, ret, "store: cannot read tensors of chunk %llu: %s",
				         (unsigned long long)j, hsamem_strerror(ret));
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

void
ops_users(struct job *job)
{
	with_read_txn(job, users_in);
}

void
ops_stats(struct job *job)
{
	with_read_txn(job, stats_in);
}

void
ops_entries(struct job *job)
{
	with_read_txn(job, entries_in);
}

void
ops_chunks(struct job *job)
{
	with_read_txn(job, chunks_in);
}
