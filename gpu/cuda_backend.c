/*
 * cuda_backend.c: the CUDA backend's ops table, the batching of concurrent calls, and the
 * backend's life from alloc to free. The backend owns one device's state for hsamem
 * (cuda_state.h): a stream, the resident landmark matrices of recently queried memories, the
 * device and pinned host chunk caches, and the scratch buffers of a call. It never owns chunk
 * data of record: everything comes from the source during a call, and may be dropped at any time.
 *
 * Calls are batched: a caller queues its call, and whichever caller finds the device idle takes
 * every queued call and computes them together (cuda_attend), so calls from several clients that
 * arrive while the device is busy share its next pass. A pass makes each call's landmarks
 * resident (1 below) and pins them for the pass, then runs rounds: a round holds up to TOK_GROUP
 * query tokens of calls of one shape and k (one call's tokens may span rounds, several calls'
 * tokens share one), each run of tokens of one memory a segment, and every step after 1 runs
 * once per round for all its segments together:
 *
 *   1. residency (cuda_landmarks.c): the memory's landmark rows that are visible to the query
 *      and not yet on the device are copied from the source through two pinned staging buffers
 *      (host memcpy of one overlaps the DMA of the other) onto the end of its device matrix,
 *      which grows by doubling with a device-to-device copy: sealed chunks never change, so rows
 *      once loaded stay valid;
 *   2. (cuda_round.c) one upload of the round's fp32 queries, visibilities, attention queries,
 *      segments and each token's directory;
 *   3. selection (cuda_round.c, gpu/cuda_select.cu): scores of every landmark a token sees,
 *      against its own memory's matrix, as 32-bit keys: a segment of GEMM_TOKENS or more on f16
 *      landmarks by a cuBLAS GEMM of the queries split into f16 high and low parts, fp32
 *      accumulation; the others by a kernel of fp32 dot products (streaming the landmarks for few
 *      tokens); then a radix select of the k best per (token, kv head) with their weights;
 *   4. warm path: a kernel resolves the selected chunks through each memory's device directory
 *      (cuda_dir.h) to their slots, in the device cache or else in the pinned host cache (read in
 *      place over the bus), and counts those in neither; the in-chunk attention and fusion run on
 *      them, one download brings back selection, miss count and output, and the stream is
 *      synchronised once. With no miss the host then touches the selected chunks in its LRU
 *      (cuda_walk.c), leaves a gather running that copies the ones read from host slots into device
 *      slots, and the round is done. When misses are expected (a memory's directory is new or was
 *      emptied, or its last round missed) the round reads its selection back instead and goes
 *      straight to 5, wasting no pass;
 *   5. slow path (cuda_walk.c), when some chunk missed: each selected chunk is looked up in the
 *      device cache; misses get a device slot (or a place in device staging when the cache is full
 *      of this round's chunks) and are read from the pinned host cache, or from the source into it
 *      (or into pinned staging) by the copy pool's threads, woken while the selection ran, and the
 *      calling thread together: in parallel through the source's copy_kv where it has one; the
 *      directory updates and the gather list go up in one upload, and a gather kernel copies each
 *      run of batches of misses from mapped pinned memory as soon as its host copies are done;
 *      attention and fusion run again, and the stream is synchronised before the round ends, so the
 *      next round may reuse every buffer. Each call's share of the results is copied to its
 *      buffers.
 *
 * The warm path of a round of few tokens is thus one upload, seven kernels (score, three of the
 * select, resolve, attention, fusion), one download and one synchronisation; scratch buffers only
 * grow, so nothing is allocated once a shape has been seen.
 *
 * Memories the budget cannot hold, shapes the kernels do not cover, f32 memories and sources with
 * an unsealed tail (never cached: backend.h) are served by the CPU backend the backend was given,
 * so a resource shortfall never reads as a device failure. A CUDA error is logged with its
 * statement, file and line, fails the call with HSAMEM_EBACKEND and leaves the backend failed: the
 * daemon then serves on the CPU.
 *
 * A deleted memory is forgotten with its data overwritten (erase_locked): the device and pinned
 * host slots of its chunks, its landmark matrix and directory, and the staging buffers are
 * zeroed before the delete is answered, as the store erases its pages (store.h, ERASURE).
 *
 * Concurrency: one stream, one lock over the device state held by the caller computing a pass,
 * and the queue's own lock. A round that fails for a reason of its own (a source's error, a
 * shortfall) has its pass's calls computed again one by one, so each caller gets its own result
 * or error. The chunk caches are documented in cuda_cache.h, cuda_pool.h and cuda_dir.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_dir.h"
#include "cuda_landmarks.h"
#include "cuda_pool.h"
#include "cuda_round.h"
#include "cuda_state.h"
#include "hsamem_defs.h"
#include "log.h"

#define BATCH_CALLS 64 /* most calls computed together */

/* ---- calls and batches ---- */

/* Whether two calls can share a round: one shape, one k, probabilities asked of both or none,
 * a selection only asked of both or none. */
static bool
same_round(const struct call *a, const struct call *c)
{
	const struct hsa_spec *x = a->spec, *y = c->spec;

	return a->pool == c->pool && x->S == y->S && x->h_kv == y->h_kv && x->h_q == y->h_q &&
	       x->d_h == y->d_h && x->d_r == y->d_r && x->dtype == y->dtype &&
	       x->weighting == y->weighting && x->off_by_one == y->off_by_one &&
	       a->q->k == c->q->k && (a->res->attn != NULL) == (c->res->attn != NULL) &&
	       (a->res->out == NULL) == (c->res->out == NULL);
}

/*
 * Makes a call's landmarks resident and pins them to the batch, so that no other call of the
 * batch evicts them. -ENOMEM when the call does not fit the device (it is then served on the
 * CPU), or the source's error.
 */
static int
call_prepare(struct cuda_backend *b, struct call *c)
{
	const struct hsa_spec *sp = c->spec;
	uint64_t need = 0;
	int err;

	c->placed = 0;
	for (uint32_t t = 0; t < c->q->n; t++) {
		uint64_t v = c->q->pos[t] / sp->S;
		if (v > need)
			need = v;
	}
	if (need > c->src->n_chunks)
		need = c->src->n_chunks;
	if (need >= INT32_MAX)
		return -ENOMEM; /* beyond the 32-bit chunk indices of the kernels */
	/* a selection only reads no K/V: it needs no chunk pool */
	if (c->res->out != NULL && (c->pool = pool_get(b, spec_kv_bytes(sp))) == NULL)
		return -ENOMEM;
	if ((err = lmk_ensure(b, sp, c->src, need, &c->lmk)) != 0)
		return err;
	c->lmk->batch = b->batch;
	return 0;
}

/*
 * The rounds of the batch's prepared calls (err 0): each round takes the tokens of the first
 * call with tokens left and of the calls after it that can share its round, up to TOK_GROUP.
 * Returns the first round's error.
 */
static int
batch_rounds(struct cuda_backend *b, struct call *list)
{
	for (;;) {
		struct round r = {.b = b};
		struct call *lead = list;

		while (lead != NULL && (lead->err != 0 || lead->placed == lead->q->n))
			lead = lead->next;
		if (lead == NULL)
			return 0;
		r.spec = lead->spec;
		r.pool = lead->pool;
		r.k = lead->q->k;
		r.G = r.spec->h_q / r.spec->h_kv;
		r.d_rh = r.spec->d_r / r.spec->h_kv;
		r.attn = lead->res->attn != NULL;
		r.sel_only = lead->res->out == NULL;
		for (struct call *c = lead; c != NULL && r.nt < TOK_GROUP; c = c->next) {
			if (c->err != 0 || c->placed == c->q->n || !same_round(lead, c))
				continue;
			uint32_t m = c->q->n - c->placed;
			if (m > TOK_GROUP - r.nt)
				m = TOK_GROUP - r.nt;
			/* in place among the segments of its memory, so they score together */
			uint32_t at = r.n_seg;
			while (at > 0 && (uintptr_t)r.seg[at - 1].c->lmk > (uintptr_t)c->lmk)
				at--;
			memmove(&r.seg[at + 1], &r.seg[at], (r.n_seg - at) * sizeof(r.seg[0]));
			r.seg[at] = (struct seg){.c = c, .t0 = c->placed, .nt = m};
			r.n_seg++;
			r.nt += m;
			c->placed += m;
		}
		for (uint32_t i = 0, t = 0; i < r.n_seg; t += r.seg[i++].nt) {
			r.seg[i].rt0 = t;
			for (uint32_t x = 0; x < r.seg[i].nt; x++)
				r.tok[t + x] = r.seg[i].c;
		}
		int err = round_run(&r);
		if (err != 0)
			return err;
	}
}

static void forget_locked(struct cuda_backend *b, uint64_t uid);

/*
 * One pass over a batch: prepares its calls (each call's err) and runs their rounds. Returns 0,
 * or the first round's error; after a round's error the stream is drained and the memories of
 * the batch are forgotten, for a failed round may leave cache slots named for chunks whose copy
 * never ran.
 */
static int
batch_pass(struct cuda_backend *b, struct call *list)
{
	int err;

	b->batch++;
	for (struct call *c = list; c != NULL; c = c->next)
		if ((c->err = call_prepare(b, c)) == HSAMEM_EBACKEND)
			return HSAMEM_EBACKEND;
	if ((err = batch_rounds(b, list)) == 0 || err == HSAMEM_EBACKEND)
		return err;
	if (CU(cudaStreamSynchronize(b->st)) != 0)
		return HSAMEM_EBACKEND;
	for (struct call *c = list; c != NULL; c = c->next)
		forget_locked(b, c->src->uid);
	return err;
}

/*
 * Computes a batch of calls under the device lock, setting each call's err. When a round fails
 * for a reason of its own (a source's error, a shortfall), the batch's calls are computed again
 * one by one, so that each gets its own result or error.
 */
static void
batch_run(struct cuda_backend *b, struct call *list)
{
	uint64_t n = 0;
	int err;

	for (struct call *c = list; c != NULL; c = c->next)
		n++;
	pthread_mutex_lock(&b->mu);
	b->ctr.batches++;
	if (n > 1)
		b->ctr.batched_calls += n;
	if (n > b->ctr.max_batch)
		b->ctr.max_batch = n;
	err = b->failed ? HSAMEM_EBACKEND : CU(cudaSetDevice(b->device));
	if (err == 0)
		err = batch_pass(b, list);
	if (err != 0 && err != HSAMEM_EBACKEND && n == 1) {
		list->err = err;
	} else if (err != 0 && err != HSAMEM_EBACKEND) {
		for (struct call *c = list; c != NULL; c = c->next) {
			struct call *next = c->next;
			if (c->err != 0)
				continue; /* failed alone already */
			c->next = NULL;
			err = batch_pass(b, c);
			c->next = next;
			if (err == HSAMEM_EBACKEND)
				break;
			if (err != 0)
				c->err = err;
		}
	}
	if (err == HSAMEM_EBACKEND) {
		b->failed = true;
		for (struct call *c = list; c != NULL; c = c->next)
			c->err = HSAMEM_EBACKEND;
	}
	pthread_mutex_unlock(&b->mu);
}

/* ---- the backend ---- */

static bool
cuda_supports(struct gpu_backend *gb, const struct hsa_spec *sp)
{
	if (sp == NULL || !gpu_shape_ok(sp) || sp->dtype == HSA_F32)
		return false;
	return cuk_attend_smem(sp->S, sp->d_h, sp->h_q / sp->h_kv) <= cuk_attend_smem_max();
}

/* Serves a call on the CPU fallback; called without the lock. */
static int
cpu_serve(struct cuda_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
          const struct hsa_query *q, struct hsa_result *res)
{
	pthread_mutex_lock(&b->mu);
	b->ctr.cpu_fallbacks++;
	pthread_mutex_unlock(&b->mu);
	return gpu_attend(b->cpu, spec, src, q, res);
}

/*
 * The batcher. A call joins the queue; when no call is being computed, the first waiting caller
 * takes every queued call (up to BATCH_CALLS) and computes them together, then wakes them. Calls
 * that arrive meanwhile queue for the next batch, so calls batch exactly when they arrive
 * together, and a lone call pays only two uncontended locks.
 */
static int
cuda_attend(struct gpu_backend *gb, const struct hsa_spec *spec, const struct hsa_source *src,
            const struct hsa_query *q, struct hsa_result *res)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;
	struct call c = {.spec = spec, .src = src, .q = q, .res = res};
	int err;

	atomic_fetch_add_explicit(&b->calls, 1, memory_order_relaxed);
	if ((err = gpu_check_call(spec, src, q, res)) != 0)
		goto out;
	if (!cuda_supports(gb, spec) || gpu_source_sealed(src) < src->n_chunks ||
	    (res->out == NULL && res->attn != NULL)) {
		err = cpu_serve(b, spec, src, q, res);
		goto out;
	}
	pthread_mutex_lock(&b->qmu);
	*b->q_tail = &c;
	b->q_tail = &c.next;
	while (!c.done) {
		if (b->computing) {
			pthread_cond_wait(&b->qcv, &b->qmu);
			continue;
		}
		struct call *list = b->q_head, **end = &b->q_head;
		for (unsigned i = 0; *end != NULL && i < BATCH_CALLS; i++)
			end = &(*end)->next;
		b->q_head = *end;
		if (b->q_head == NULL)
			b->q_tail = &b->q_head;
		*end = NULL;
		b->computing = true;
		pthread_mutex_unlock(&b->qmu);
		batch_run(b, list);
		pthread_mutex_lock(&b->qmu);
		for (struct call *x = list, *next; x != NULL; x = next) {
			next = x->next;
			x->done = true;
		}
		b->computing = false;
		pthread_cond_broadcast(&b->qcv);
	}
	pthread_mutex_unlock(&b->qmu);
	err = c.err;
	if (err == -ENOMEM)
		err = cpu_serve(b, spec, src, q, res);
out:
	if (err != 0)
		atomic_fetch_add_explicit(&b->errors, 1, memory_order_relaxed);
	return err;
}

static void
forget_locked(struct cuda_backend *b, uint64_t uid)
{
	struct lmk *l = lmk_find(b, uid);

	if (l != NULL)
		lmk_drop(b, l);
	for (unsigned i = 0; i < b->n_pools; i++) {
		slot_cache_forget(&b->pools[i].dev, uid);
		slot_cache_forget(&b->pools[i].host, uid);
	}
}

/* The slots of a deleted memory, zeroed as the caches free them (erase_locked). */
struct zeroing {
	struct cuda_backend *b;
	struct pool *p;
	bool host;
	int err;
};

static void
zero_slot(uint32_t s, void *arg)
{
	struct zeroing *z = arg;

	if (z->host)
		memset(host_slot(z->p, s), 0, z->p->slot_bytes);
	else if (z->err == 0)
		z->err = CU(cudaMemsetAsync(dev_slot(z->p, s), 0, z->p->slot_bytes, z->b->st));
}

/*
 * Forgets a deleted memory and zeroes what held its data: its device and pinned host slots, its
 * landmarks and directory, and the staging buffers, which may hold its last chunks and
 * landmarks. The stream is drained first (a gather left running reads host slots) and at the
 * end, so that nothing is left when the delete is answered.
 */
static int
erase_locked(struct cuda_backend *b, uint64_t uid)
{
	struct lmk *l = lmk_find(b, uid);
	int err = CU(cudaStreamSynchronize(b->st));

	if (err == 0 && l != NULL)
		err = lmk_erase(b, l);
	for (unsigned i = 0; i < b->n_pools && err == 0; i++) {
		struct zeroing dev = {b, &b->pools[i], false, 0}, host = {b, &b->pools[i], true, 0};
		slot_cache_forget_each(&b->pools[i].dev, uid, zero_slot, &dev);
		slot_cache_forget_each(&b->pools[i].host, uid, zero_slot, &host);
		err = dev.err;
	}
	struct buf *staging[] = {&b->h_lmk[0], &b->h_lmk[1], &b->h_stage};
	for (size_t i = 0; i < sizeof(staging) / sizeof(staging[0]); i++)
		if (staging[i]->p != NULL)
			memset(staging[i]->p, 0, staging[i]->cap);
	if (err == 0 && b->d_stage.p != NULL)
		err = CU(cudaMemsetAsync(b->d_stage.p, 0, b->d_stage.cap, b->st));
	if (err == 0)
		err = CU(cudaStreamSynchronize(b->st));
	return err;
}

static void
cuda_forget(struct gpu_backend *gb, uint64_t uid)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	pthread_mutex_lock(&b->mu);
	if (b->failed || CU(cudaSetDevice(b->device)) != 0 || erase_locked(b, uid) != 0) {
		/* a failed device is not used again; its memory goes with the process */
		b->failed = true;
		forget_locked(b, uid);
	}
	pthread_mutex_unlock(&b->mu);
}

void
gpu_cuda_drop(struct gpu_backend *gb, unsigned what)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	pthread_mutex_lock(&b->mu);
	/* the stream may still read the scratch that the rebuild writes */
	if (!b->failed &&
	    (CU(cudaSetDevice(b->device)) != 0 || CU(cudaStreamSynchronize(b->st)) != 0))
		b->failed = true;
	if (what & GPU_CUDA_DROP_LANDMARKS)
		while (b->lru_head != NULL)
			lmk_drop(b, b->lru_head);
	for (unsigned i = 0; i < b->n_pools; i++) {
		if (what & GPU_CUDA_DROP_DEVICE_CHUNKS)
			slot_cache_clear(&b->pools[i].dev);
		if (what & GPU_CUDA_DROP_HOST_CHUNKS)
			slot_cache_clear(&b->pools[i].host);
	}
	/* a stale directory must not be used: failing to rebuild fails the backend */
	if ((what & (GPU_CUDA_DROP_DEVICE_CHUNKS | GPU_CUDA_DROP_HOST_CHUNKS)) && !b->failed &&
	    dirs_rebuild(b) != 0)
		b->failed = true;
	pthread_mutex_unlock(&b->mu);
}

void
gpu_cuda_counters(struct gpu_backend *gb, struct gpu_cuda_counters *out)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	pthread_mutex_lock(&b->mu);
	*out = b->ctr;
	out->dev_chunk_slots = out->host_chunk_slots = 0;
	for (unsigned i = 0; i < b->n_pools; i++) {
		out->dev_chunk_slots += b->pools[i].dev.n_slots;
		out->host_chunk_slots += b->pools[i].host.n_slots;
	}
	pthread_mutex_unlock(&b->mu);
}

static void
cuda_stats(struct gpu_backend *gb, struct gpu_stats *out)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "cuda");
	pthread_mutex_lock(&b->mu);
	snprintf(out->device, sizeof(out->device), "%s", b->name);
	out->mem_budget = b->budget;
	out->mem_used = b->lmk_bytes + b->chunk_bytes + b->scratch_bytes;
	out->resident_users = b->n_resident;
	out->lmk_hits = b->lmk_hits;
	out->lmk_misses = b->lmk_misses;
	out->chunk_hits = b->chunk_hits;
	out->chunk_misses = b->chunk_misses;
	pthread_mutex_unlock(&b->mu);
	out->calls = atomic_load_explicit(&b->calls, memory_order_relaxed);
	out->errors = atomic_load_explicit(&b->errors, memory_order_relaxed);
}

static void
cuda_free(struct gpu_backend *gb)
{
	struct cuda_backend *b = (struct cuda_backend *)gb;

	if (b == NULL)
		return;
	cudaSetDevice(b->device);
	if (b->st != NULL)
		cudaStreamSynchronize(b->st);
	while (b->lru_head != NULL)
		lmk_drop(b, b->lru_head);
	for (unsigned i = 0; i < b->n_pools; i++)
		pool_free_all(b, &b->pools[i]);
	struct buf *dev[] = {&b->d_q,     &b->d_keys, &b->d_selst,   &b->d_cand,
	                     &b->d_res,   &b->d_attn, &b->d_partial, &b->d_tab,
	                     &b->d_stage, &b->d_qh,   &b->d_gemm};
	for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
		buf_dev_release(dev[i]);
	struct buf *host[] = {&b->h_q,     &b->h_attn,   &b->h_sel,   &b->h_tab,
	                      &b->h_stage, &b->h_lmk[0], &b->h_lmk[1]};
	for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
		buf_host_release(host[i]);
	for (int i = 0; i < 2; i++)
		if (b->ev[i] != NULL)
			cudaEventDestroy(b->ev[i]);
	if (b->blas != NULL)
		cublasDestroy(b->blas);
	if (b->st != NULL)
		cudaStreamDestroy(b->st);
	cp_stop(&b->cp);
	free(b->miss);
	free(b->dset);
	free(b->dkey);
	free(b->which);
	free(b->kind);
	free(b->staged);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->qcv);
	pthread_mutex_destroy(&b->qmu);
	free(b);
}

static const struct gpu_ops cuda_ops = {
        .name = "cuda",
        .supports = cuda_supports,
        .attend = cuda_attend,
        .forget = cuda_forget,
        .stats = cuda_stats,
        .free = cuda_free,
};

int
gpu_cuda_backend_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out)
{
	struct cuda_backend *b;
	struct cudaDeviceProp prop;
	size_t free_b = 0, total_b = 0;
	int err;

	if (opts == NULL || out == NULL || opts->cpu == NULL)
		return HSAMEM_EINVAL;
	/* aligned as its members are: the copy pool keeps its counters a cache line apart */
	if ((b = aligned_alloc(_Alignof(struct cuda_backend), sizeof(*b))) == NULL)
		return -ENOMEM;
	memset(b, 0, sizeof(*b));
	cp_init(&b->cp);
	b->base.ops = &cuda_ops;
	b->device = opts->device;
	b->cpu = opts->cpu;
	pthread_mutex_init(&b->qmu, NULL);
	pthread_cond_init(&b->qcv, NULL);
	b->q_tail = &b->q_head;
	pthread_mutex_init(&b->mu, NULL);
	atomic_init(&b->calls, 0);
	atomic_init(&b->errors, 0);
	if ((err = CU(cudaSetDevice(opts->device))) != 0 ||
	    (err = CU(cudaGetDeviceProperties(&prop, opts->device))) != 0 ||
	    (err = CU(cudaMemGetInfo(&free_b, &total_b))) != 0 ||
	    (err = CU(cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking))) != 0 ||
	    (err = BLAS(cublasCreate(&b->blas))) != 0 ||
	    (err = BLAS(cublasSetStream(b->blas, b->st))) != 0 || (err = CU(cuk_init())) != 0 ||
	    (err = CU(cudaEventCreateWithFlags(&b->ev[0], cudaEventDisableTiming))) != 0 ||
	    (err = CU(cudaEventCreateWithFlags(&b->ev[1], cudaEventDisableTiming))) != 0)
		goto fail;
	if ((err = host_reserve(b, &b->h_lmk[0], LMK_STAGE_BYTES)) != 0 ||
	    (err = host_reserve(b, &b->h_lmk[1], LMK_STAGE_BYTES)) != 0)
		goto fail;
	snprintf(b->name, sizeof(b->name), "%.127s", prop.name);
	b->uva = prop.unifiedAddressing != 0;
	b->budget = opts->mem_budget != 0 ? opts->mem_budget : (uint64_t)free_b / 10 * 8;
	b->chunk_budget = b->budget / 2;
	b->host_budget = opts->host_cache;
	log_info("cuda: %s, budget %.1f GiB (chunk cache up to %.1f GiB), pinned host cache "
	         "%.1f GiB",
	         b->name, b->budget / 1073741824.0, b->chunk_budget / 1073741824.0,
	         b->host_budget / 1073741824.0);
	*out = &b->base;
	return 0;
fail:
	cuda_free(&b->base);
	return err == -ENOMEM ? HSAMEM_EBACKEND : err;
}
