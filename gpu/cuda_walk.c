/*
 * cuda_walk.c: the host's part in a round's chunks (cuda_walk.h). After a warm round, round_touch
 * looks every selected chunk up in the caches (most recent, and pinned for the round: cuda_cache.h)
 * and moves those the device read from host slots into device slots with a gather left running on
 * the stream. After a miss, walk_page_in runs the host's part of the slow path in three steps:
 *   1. each selected chunk is looked up in the device cache; a miss gets a device slot (or a place
 *      in device staging when the cache is full of this round's chunks) and is read from the
 *      pinned host cache, or from the source into it (or into pinned staging), by the copy pool's
 *      threads and the calling thread together, each copy published to the pool as the walk
 *      finds it;
 *   2. the chunk table and the directory updates are made;
 *   3. they go up in one upload, and a gather kernel copies each run of batches of misses from
 *      mapped pinned memory as soon as its host copies are done.
 * cuda_round.c then runs the attention again and synchronises.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "cuda_copy.h"
#include "cuda_dir.h"
#include "cuda_landmarks.h"
#include "cuda_pool.h"
#include "cuda_walk.h"
#include "hsamem_defs.h"
#include "log.h"

#define CP_PUBLISH     4                   /* jobs published at a time by a walk */
#define CP_BATCH_BYTES ((size_t)512 << 10) /* misses gathered by one launch */

/* One miss of the current round. */
struct miss {
	uint32_t dev_slot;  /* SLOT_NONE: device staging entry dst_stage */
	uint32_t host_slot; /* SLOT_NONE: pinned staging entry src_stage */
	uint32_t dst_stage, src_stage;
};

struct staged {
	uint64_t uid, j;
	uint32_t entry;
	bool used;
};

/* The device staging entry of chunk j of memory uid in this round, creating it; *fresh when new. */
static uint32_t
staged_entry(struct cuda_backend *b, uint64_t uid, uint64_t j, uint32_t *n_staged, bool *fresh)
{
	size_t mask = b->staged_cap - 1;
	size_t i = (size_t)((j ^ uid * 0xff51afd7ed558ccdull) * 0x9e3779b97f4a7c15ull >> 20) & mask;
	struct staged *e;

	for (; (e = &b->staged[i])->used; i = (i + 1) & mask) {
		if (e->uid == uid && e->j == j) {
			*fresh = false;
			return e->entry;
		}
	}
	*e = (struct staged){.uid = uid, .j = j, .entry = (*n_staged)++, .used = true};
	*fresh = true;
	return e->entry;
}

/* ---- the copy pool (cuda_copy.h) and the gathers ---- */

bool
copy_start(struct cuda_backend *b)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cp_start(&b->cp, cpus > 2 ? (unsigned)(cpus - 2) : 0);
}

/*
 * Launches one gather (copy list copies, readable by the device) for the jobs past those
 * gathered whose batches are copied: whole batches of the n published only, unless final (n is
 * every job). Returns 0, or the launch's error; *any says whether it launched.
 */
static int
gather_ready(struct cuda_backend *b, uint32_t n, bool final, const struct cuk_copy *copies,
             bool *any)
{
	uint32_t end = cp_copied(&b->cp, b->gathered, n, final);

	*any = end > b->gathered;
	if (!*any)
		return 0;
	int err = CU(cuk_gather(b->st, copies + b->gathered, end - b->gathered, b->cp.bytes));
	b->gathered = end;
	return err;
}

/*
 * Completes the copies of the round's n misses, all published, with the pool's threads when they
 * were woken or there are enough bytes to share, and launches a gather (copy list copies) for
 * every run of batches as soon as their copies are done. Returns the first error, a source's
 * included, once every job is through.
 */
static int
copy_run(struct cuda_backend *b, uint32_t n, uint32_t n_src, const struct cuk_copy *copies)
{
	struct cpool *cp = &b->cp;
	int err = 0;

	cp_close(cp, n, (size_t)n_src * cp->bytes >= CP_MIN_BYTES && copy_start(b));
	while (b->gathered < n && err == 0) {
		bool any = false;
		if ((err = gather_ready(b, n, true, copies, &any)) == 0 && !any && !cp_help(cp))
			cp_relax();
	}
	if (err != 0) {
		/* the helpers must be done with the jobs before the caller moves on */
		while (cp_help(cp))
			;
		return err;
	}
	return cp_error(cp);
}

/* ---- the walk ---- */

/*
 * Room for a round of n selection entries: the miss list, the directory updates (up to 2n keys
 * moved, n set), the copy jobs and the staging table.
 */
static int
round_scratch(struct cuda_backend *b, size_t n)
{
	if (b->miss_cap < n) {
		struct miss *m = realloc(b->miss, n * sizeof(*m));
		if (m == NULL)
			return -ENOMEM;
		b->miss = m;
		if (cp_reserve(&b->cp, n) != 0)
			return -ENOMEM;
		b->miss_cap = n;
	}
	if (b->dset_cap < 3 * n) {
		struct cuk_dir_set *d = realloc(b->dset, 3 * n * sizeof(*d));
		if (d == NULL)
			return -ENOMEM;
		b->dset = d;
		struct dir_key *k = realloc(b->dkey, 2 * n * sizeof(*k));
		if (k == NULL)
			return -ENOMEM;
		b->dkey = k;
		b->dset_cap = 3 * n;
	}
	b->n_clear = b->n_set = 0;
	return 0;
}

int
round_touch(struct round *r)
{
	struct cuda_backend *b = r->b;
	struct pool *p = r->pool;
	size_t n = round_n(r);
	const int64_t *sel = b->h_sel.p;
	uint32_t n_up = 0;
	bool ready = false; /* the round's scratch, at the first chunk to move */
	int err;

	for (size_t x = 0; x < n; x++) {
		bool again = false;
		if (sel[x] < 0)
			continue;
		const struct call *c = entry_call(r, x);
		uint64_t uid = c->src->uid, j = (uint64_t)sel[x];
		if (slot_cache_lookup(&p->dev, uid, j, b->epoch, &again) != SLOT_NONE) {
			if (!again)
				b->chunk_hits++;
			continue;
		}
		uint32_t h = slot_cache_lookup(&p->host, uid, j, b->epoch, &again);
		if (h == SLOT_NONE) {
			log_err("cuda: chunk %" PRIu64 " of memory %" PRIu64
			        " is in the device directory but in no cache",
			        j, uid);
			return HSAMEM_EINTERNAL;
		}
		if (again)
			continue;
		b->chunk_misses++;
		b->ctr.host_hits++;
		b->ctr.host_direct++;
		b->ctr.bytes_paged += p->kv_bytes;
		if (!ready && (err = round_scratch(b, n)) != 0)
			return err;
		ready = true;
		uint32_t d = pool_insert(b, p, false, uid, j);
		if (d == SLOT_NONE)
			continue; /* the device cache is full of this round's chunks */
		b->miss[n_up].host_slot = h;
		b->miss[n_up++].dev_slot = d;
		dir_set(b, c->lmk, j, dev_slot(p, d));
	}
	if (!ready || (n_up == 0 && b->n_clear == 0))
		return 0;
	size_t bytes = n_up * sizeof(struct cuk_copy) +
	               (size_t)(b->n_clear + b->n_set) * sizeof(struct cuk_dir_set);
	if ((err = host_reserve(b, &b->h_tab, bytes)) != 0 ||
	    (err = dev_reserve(b, &b->d_tab, bytes)) != 0)
		return err;
	struct cuk_copy *cp = b->h_tab.p;
	for (uint32_t i = 0; i < n_up; i++)
		cp[i] = (struct cuk_copy){.src = host_slot(p, b->miss[i].host_slot),
		                          .dst = dev_slot(p, b->miss[i].dev_slot)};
	uint32_t n_dir = dir_finish(b, p, (struct cuk_dir_set *)(cp + n_up));
	const struct cuk_copy *d_cp = b->d_tab.p;
	bytes = (char *)((struct cuk_dir_set *)(cp + n_up) + n_dir) - (char *)cp;
	if ((err = CU(cudaMemcpyAsync(b->d_tab.p, b->h_tab.p, bytes, cudaMemcpyHostToDevice,
	                              b->st))) != 0 ||
	    (err = CU(cuk_gather(b->st, d_cp, n_up, p->kv_bytes))) != 0 ||
	    (err = CU(cuk_dir_update(b->st, (const struct cuk_dir_set *)(d_cp + n_up), b->n_clear,
	                             n_dir))) != 0)
		return err;
	return 0;
}

/*
 * The slow path's table in pinned memory (h_tab): each selection entry's chunk address for the
 * kernels, then the misses' copies (the gathers' list), then the directory updates.
 */
struct walk {
	const void **ptr;             /* [n] */
	struct cuk_copy *hcp;         /* [n_miss], after ptr */
	const struct cuk_copy *d_hcp; /* hcp where the device reads it */
	uint32_t n_miss, n_src;       /* misses; of them, read from the source */
};

/*
 * Room for the slow path of a round of n selection entries: the round's scratch, the staging
 * table (emptied), each entry's place (none yet) and the pinned table.
 */
static int
walk_begin(struct cuda_backend *b, size_t n, struct walk *wk)
{
	int err;

	if ((err = round_scratch(b, n)) != 0)
		return err;
	size_t need_staged = 16;
	while (need_staged < 2 * n)
		need_staged <<= 1;
	if (b->staged_cap < need_staged) {
		struct staged *s = realloc(b->staged, need_staged * sizeof(*s));
		if (s == NULL)
			return -ENOMEM;
		b->staged = s;
		b->staged_cap = need_staged;
	}
	memset(b->staged, 0, b->staged_cap * sizeof(*b->staged));
	if (b->which_cap < n) {
		uint32_t *w = realloc(b->which, n * sizeof(uint32_t));
		if (w != NULL)
			b->which = w;
		uint8_t *kd = realloc(b->kind, n);
		if (kd != NULL)
			b->kind = kd;
		if (w == NULL || kd == NULL)
			return -ENOMEM;
		b->which_cap = n;
	}
	memset(b->kind, 0, n);

	/* table: [n] device pointers, the copies, the directory updates */
	size_t tab_cap = n * (8 + sizeof(struct cuk_copy) + 3 * sizeof(struct cuk_dir_set));
	if ((err = host_reserve(b, &b->h_tab, tab_cap)) != 0)
		return err;
	wk->ptr = b->h_tab.p;
	/* the gathers read their list where the walk writes it, in mapped pinned memory */
	wk->hcp = (struct cuk_copy *)(wk->ptr + n);
	wk->d_hcp = wk->hcp;
	if (!b->uva && (err = buf_mapped(wk->hcp, (const void **)&wk->d_hcp)) != 0)
		return err;
	return 0;
}

/* Step 1: where each selected chunk is or will be; each miss's copy published to the pool. */
static int
walk_chunks(struct round *r, struct walk *wk)
{
	struct cuda_backend *b = r->b;
	struct pool *p = r->pool;
	size_t n = round_n(r);
	const int64_t *sel = b->h_sel.p;
	uint32_t *which = b->which;
	uint8_t *kind = b->kind;
	struct cuk_copy *hcp = wk->hcp;
	const struct cuk_copy *d_hcp = wk->d_hcp;
	uint32_t n_miss = 0, n_dstage = 0, n_hstage = 0, n_src = 0;
	int err = 0;

	uint32_t batch = (uint32_t)(CP_BATCH_BYTES / p->kv_bytes);
	cp_begin(&b->cp, p->kv_bytes, batch, (uint32_t)n);
	b->gathered = 0;
	uint32_t walk_gather = 4 * b->cp.batch > n / 8 ? 4 * b->cp.batch : (uint32_t)(n / 8);
	for (uint32_t i = 0; i < r->n_seg; i++)
		r->seg[i].c->lmk->expect_miss = false;
	for (size_t x = 0; x < n; x++) {
		if (sel[x] < 0)
			continue;
		const struct call *c = entry_call(r, x);
		const struct hsa_source *src = c->src;
		uint64_t j = (uint64_t)sel[x];
		bool again = false, fresh = true;
		uint32_t s = slot_cache_lookup(&p->dev, src->uid, j, b->epoch, &again);
		if (s != SLOT_NONE) {
			kind[x] = 1;
			which[x] = s;
			if (!again) {
				b->chunk_hits++;
				dir_set(b, c->lmk, j, dev_slot(p, s));
			}
			continue;
		}
		s = pool_insert(b, p, false, src->uid, j);
		struct miss *m = &b->miss[n_miss];
		struct cp_job *jb = &b->cp.job[n_miss];
		m->dev_slot = s;
		if (s == SLOT_NONE) {
			/* device staging, for every entry left at the first one that needs it */
			if (n_dstage == 0 &&
			    (err = dev_reserve(b, &b->d_stage, (n - x) * p->slot_bytes)) != 0)
				goto out;
			m->dst_stage = staged_entry(b, src->uid, j, &n_dstage, &fresh);
			kind[x] = 2;
			which[x] = m->dst_stage;
			if (!fresh)
				continue;
		} else {
			kind[x] = 1;
			which[x] = s;
			dir_set(b, c->lmk, j, dev_slot(p, s));
		}
		b->chunk_misses++;
		c->lmk->expect_miss = true;
		m->host_slot = slot_cache_lookup(&p->host, src->uid, j, b->epoch, NULL);
		jb->src = NULL;
		jb->from = NULL;
		if (m->host_slot != SLOT_NONE) {
			b->ctr.host_hits++;
		} else {
			if (src->copy_kv != NULL) {
				jb->from = src;
				jb->j = j;
			} else if ((err = src->chunk_kv(src->ctx, j, &jb->src)) != 0) {
				goto out;
			} else if (jb->src == NULL) {
				err = HSAMEM_EINTERNAL;
				goto out;
			}
			b->ctr.source_reads++;
			n_src++;
			if (b->host_budget > 0)
				m->host_slot = pool_insert(b, p, true, src->uid, j);
		}
		if (m->host_slot == SLOT_NONE) {
			/* pinned staging, for every miss left at the first one that needs it */
			if (n_hstage == 0 &&
			    (err = host_reserve(b, &b->h_stage, (n - x) * p->slot_bytes)) != 0)
				goto out;
			m->src_stage = n_hstage++;
		}
		jb->dst = m->host_slot != SLOT_NONE
		                  ? host_slot(p, m->host_slot)
		                  : (char *)b->h_stage.p + (size_t)m->src_stage * p->slot_bytes;
		struct cuk_copy *cp = &hcp[n_miss];
		if (b->uva)
			cp->src = jb->dst;
		else if ((err = buf_mapped(jb->dst, &cp->src)) != 0)
			goto out;
		cp->dst = m->dev_slot != SLOT_NONE
		                  ? dev_slot(p, m->dev_slot)
		                  : (char *)b->d_stage.p + (size_t)m->dst_stage * p->slot_bytes;
		/* in fours: each publication takes the line from every spinning thread */
		if (++n_miss % CP_PUBLISH == 0)
			cp_publish(&b->cp, n_miss);
		/* a large round's first gathers go out while it walks, a few large launches */
		bool any;
		if (n_miss - b->gathered >= walk_gather &&
		    (err = gather_ready(b, n_miss, false, d_hcp, &any)) != 0)
			goto out;
	}
	wk->n_miss = n_miss;
	wk->n_src = n_src;
out:
	return err;
}

int
walk_page_in(struct round *r, uint64_t *t_finish)
{
	struct cuda_backend *b = r->b;
	struct pool *p = r->pool;
	size_t n = round_n(r);
	uint64_t t_walk = now_ns();
	struct walk wk;
	int err;

	if ((err = walk_begin(b, n, &wk)) != 0 || (err = walk_chunks(r, &wk)) != 0)
		return err;
	const void **ptr = wk.ptr;
	const uint32_t *which = b->which;
	const uint8_t *kind = b->kind;

	/* 2: the chunk table and the directory updates */
	for (size_t x = 0; x < n; x++)
		ptr[x] = kind[x] == 0   ? NULL
		         : kind[x] == 1 ? (const void *)dev_slot(p, which[x])
		                        : (const void *)((char *)b->d_stage.p +
		                                         (size_t)which[x] * p->slot_bytes);
	struct cuk_dir_set *ds = (struct cuk_dir_set *)(wk.hcp + wk.n_miss);
	uint32_t n_dir = dir_finish(b, p, ds);
	b->ctr.bytes_paged += (uint64_t)wk.n_miss * p->kv_bytes;

	/*
	 * 3: one upload of the table and the directory updates; the rest of the host copies, each
	 * batch's gather launched when it is complete (attention, fusion and the results back
	 * follow in round_attend)
	 */
	size_t tab_bytes = (char *)(ds + n_dir) - (char *)ptr;
	if ((err = dev_reserve(b, &b->d_tab, tab_bytes)) != 0)
		goto out;
	const struct cuk_copy *d_cp = (const struct cuk_copy *)((const void **)b->d_tab.p + n);
	if ((err = CU(cudaMemcpyAsync(b->d_tab.p, b->h_tab.p, tab_bytes, cudaMemcpyHostToDevice,
	                              b->st))) != 0 ||
	    (err = CU(cuk_dir_update(b->st, (const struct cuk_dir_set *)(d_cp + wk.n_miss),
	                             b->n_clear, n_dir))) != 0)
		goto out;
	uint64_t t_copy = now_ns();
	b->ctr.ns_walk += t_copy - t_walk;
	if ((err = copy_run(b, wk.n_miss, wk.n_src, wk.d_hcp)) != 0)
		goto out;
	*t_finish = now_ns();
	b->ctr.ns_copy += *t_finish - t_copy;
out:
	return err;
}
