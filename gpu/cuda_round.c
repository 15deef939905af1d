/*
 * cuda_round.c: a round on the device (cuda_round.h). It packs the round's queries,
 * visibilities, segments and directories into one upload; launches the selection (scores by
 * the kernel or, for a segment of GEMM_TOKENS or more on f16 landmarks, by a cuBLAS GEMM of the
 * queries split into f16 high and low parts; then the radix top-k); for a round that asks for
 * the selection only (backend.h), brings it back and stops there; otherwise takes the warm path
 * (resolve through the directories, attention, fusion, one download, one synchronisation) unless
 * misses are expected; hands the chunks to cuda_walk.c (a touch when all were resident, the slow
 * path otherwise); and scatters each call's share of the results. Scratch comes from the backend's
 * buffers, which only grow.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "cuda_landmarks.h"
#include "cuda_round.h"
#include "cuda_walk.h"
#include "hsamem_defs.h"

#define GEMM_TOKENS    8        /* a segment's tokens from which cuBLAS scores it */
#define GEMM_QUERY_MAX 60000.0f /* query elements cuBLAS's f16 split can carry */

/*
 * A round's results on the device (d_res), copied back at once: sel [n] int64, score [n],
 * weight [n], the miss count (16 bytes), out [n_out] floats.
 */
static size_t
res_out_off(size_t n)
{
	return n * 16 + 16;
}

static size_t
res_bytes(size_t n, size_t n_out)
{
	return res_out_off(n) + n_out * 4;
}

static size_t
al16(size_t x)
{
	return (x + 15) & ~(size_t)15;
}

/*
 * Packs the round's upload: fp32 queries, visibilities, attention queries, the segments, each
 * token's directory, and the chunk masks of the calls that have one (each token's first word,
 * then the words). Offsets of the parts after the first go to off[0..5].
 */
static size_t
pack_queries(struct round *r, void *dst, size_t off[6])
{
	const struct hsa_spec *sp = r->spec;
	uint32_t nt = r->nt;
	size_t n_qr = (size_t)nt * sp->d_r, n_qa = (size_t)nt * sp->h_q * sp->d_h;
	char *d = dst;

	off[0] = al16(n_qr * 4);
	off[1] = off[0] + al16((size_t)nt * 4);
	off[2] = off[1] + al16(n_qa * 4);
	off[3] = off[2] + al16((size_t)r->n_seg * sizeof(struct cuk_seg));
	uint32_t *vis = (uint32_t *)(d + off[0]);
	struct cuk_seg *cs = (struct cuk_seg *)(d + off[2]);
	void *const **dirs = (void *const **)(d + off[3]);

	bool split_ok[TOK_GROUP]; /* per device segment: its queries survive cuBLAS's f16 split */
	r->max_vis = 0;
	r->n_dseg = r->n_gemm = r->dseg_nt = 0;
	for (uint32_t i = 0; i < r->n_seg; i++) {
		struct seg *g = &r->seg[i];
		const struct call *c = g->c;
		const float *qr = c->q->qr + (size_t)g->t0 * sp->d_r;
		bool ok = sp->dtype == HSA_F16;
		g->len = 0;
		for (uint32_t t = 0; t < g->nt; t++) {
			uint64_t v = c->q->pos[g->t0 + t] / sp->S;
			if (v > c->src->n_chunks)
				v = c->src->n_chunks;
			vis[g->rt0 + t] = (uint32_t)v;
			dirs[g->rt0 + t] = (void *const *)c->lmk->dir;
			if (v > g->len)
				g->len = v;
		}
		for (size_t x = 0; ok && x < (size_t)g->nt * sp->d_r; x++)
			ok = fabsf(qr[x]) <= GEMM_QUERY_MAX; /* false for NaN too */
		if (g->len > r->max_vis)
			r->max_vis = g->len;
		/* segments of one memory are neighbours (batch_rounds): they score as one */
		struct cuk_seg *last = r->n_dseg > 0 ? &cs[r->n_dseg - 1] : NULL;
		if (last != NULL && last->lmk == c->lmk->dev) {
			last->nt += g->nt;
			if (g->len > last->len)
				last->len = (uint32_t)g->len;
			split_ok[r->n_dseg - 1] &= ok;
		} else {
			split_ok[r->n_dseg] = ok;
			cs[r->n_dseg++] = (struct cuk_seg){.lmk = c->lmk->dev,
			                                   .t0 = g->rt0,
			                                   .nt = g->nt,
			                                   .len = (uint32_t)g->len};
		}
		memcpy(d + (size_t)g->rt0 * sp->d_r * 4, qr, (size_t)g->nt * sp->d_r * 4);
		if (!r->sel_only)
			memcpy(d + off[1] + (size_t)g->rt0 * sp->h_q * sp->d_h * 4,
			       c->q->qa + (size_t)g->t0 * sp->h_q * sp->d_h,
			       (size_t)g->nt * sp->h_q * sp->d_h * 4);
	}
	/* many tokens on one memory: cuBLAS; the others: cuk_score */
	for (uint32_t i = 0; i < r->n_dseg; i++) {
		cs[i].gemm = split_ok[i] && cs[i].nt >= GEMM_TOKENS && cs[i].len > 0;
		if (cs[i].gemm)
			r->n_gemm++;
		else if (cs[i].nt > r->dseg_nt)
			r->dseg_nt = cs[i].nt;
	}
	off[4] = al16(off[3] + (size_t)nt * sizeof(void *));
	off[5] = off[4] + al16((size_t)nt * 4);
	uint32_t *moff = (uint32_t *)(d + off[4]), *words = (uint32_t *)(d + off[5]), nw = 0;
	r->masked = false;
	for (uint32_t i = 0; i < r->n_seg; i++) {
		const struct seg *g = &r->seg[i];
		const uint64_t *mask = g->c->q->mask;
		uint32_t w = (uint32_t)((g->len + 31) / 32);
		for (uint32_t t = 0; t < g->nt; t++)
			moff[g->rt0 + t] = mask != NULL ? nw : UINT32_MAX;
		if (mask == NULL)
			continue;
		memcpy(words + nw, mask, (size_t)w * 4); /* little-endian: u64 words as u32 pairs */
		nw += w;
		r->masked = true;
	}
	return off[5] + (size_t)nw * 4;
}

/* Room for the select state, which the kernels leave zero: zeroed whenever it is allocated. */
static int
selst_reserve(struct cuda_backend *b, uint32_t pairs)
{
	size_t cap = b->d_selst.cap, bytes = cuk_select_state_words(pairs) * 4;
	int err = dev_reserve(b, &b->d_selst, bytes);

	if (err == 0 && b->d_selst.cap != cap)
		err = CU(cudaMemsetAsync(b->d_selst.p, 0, b->d_selst.cap, b->st));
	return err;
}

/*
 * The segments cuBLAS scores (pack_queries chose them), one after the other through the same
 * scratch: the split queries, one GEMM over the kv heads, the keys (launches only).
 */
static int
round_gemm(struct round *r, const char *dq, const size_t off[6], uint64_t ld)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	const struct cuk_seg *cs = (const struct cuk_seg *)((const char *)b->h_q.p + off[2]);
	float alpha = 1.0f / sqrtf((float)r->d_rh), beta = 0.0f;
	int err;

	for (uint32_t i = 0; i < r->n_dseg; i++) {
		const struct cuk_seg *g = &cs[i];
		uint64_t ldc = ((uint64_t)g->len + 3) & ~(uint64_t)3;
		if (!g->gemm)
			continue;
		if ((err = dev_reserve(b, &b->d_qh, (size_t)2 * g->nt * sp->d_r * 2)) != 0 ||
		    (err = dev_reserve(b, &b->d_gemm, (size_t)sp->h_kv * 2 * g->nt * ldc * 4)) != 0)
			return err;
		struct cuk_gemm_args ga = {
		        .c = b->d_gemm.p,
		        .vis = (const uint32_t *)(dq + off[0]),
		        .keys = b->d_keys.p,
		        .len = g->len,
		        .ld = ld,
		        .ldc = ldc,
		        .lmk = g->lmk,
		        .qr = (const float *)dq,
		        .t0 = g->t0,
		        .nt = g->nt,
		        .h_kv = sp->h_kv,
		        .d_r = sp->d_r,
		        .d_rh = r->d_rh,
		        .r_scale = alpha,
		};
		if ((err = CU(cuk_split(b->st, (const float *)dq + (size_t)g->t0 * sp->d_r,
		                        b->d_qh.p, g->nt, sp->d_r))) != 0 ||
		    (err = BLAS(cublasGemmStridedBatchedEx(
		             b->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)g->len, (int)(2 * g->nt),
		             (int)r->d_rh, &alpha, g->lmk, CUDA_R_16F, (int)sp->d_r,
		             (long long)r->d_rh, b->d_qh.p, CUDA_R_16F, (int)sp->d_r,
		             (long long)r->d_rh, &beta, b->d_gemm.p, CUDA_R_32F, (int)ldc,
		             (long long)(ldc * 2 * g->nt), (int)sp->h_kv, CUBLAS_COMPUTE_32F,
		             CUBLAS_GEMM_DEFAULT))) != 0 ||
		    (err = CU(cuk_gemm_keys(b->st, &ga))) != 0)
			return err;
	}
	return 0;
}

/* Scores and the top-k of the round, with weights, into d_res (launches only). */
static int
round_select(struct round *r, const char *dq, const size_t off[6])
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	uint32_t nt = r->nt, h_kv = sp->h_kv, k = r->k, pairs = nt * h_kv;
	uint64_t len = r->max_vis, ld = (len + 3) & ~(uint64_t)3;
	int err;

	if ((err = dev_reserve(b, &b->d_res, res_bytes(round_n(r), round_n_out(r)))) != 0 ||
	    (err = selst_reserve(b, pairs)) != 0 ||
	    (len > 0 && ((err = dev_reserve(b, &b->d_keys, (size_t)pairs * ld * 4)) != 0 ||
	                 (err = dev_reserve(b, &b->d_cand, (size_t)pairs * len * 8)) != 0)))
		return err;
	struct cuk_score_args sa = {
	        .seg = (const struct cuk_seg *)(dq + off[2]),
	        .qr = (const float *)dq,
	        .vis = (const uint32_t *)(dq + off[0]),
	        .keys = b->d_keys.p,
	        .len = len,
	        .ld = ld,
	        .n_seg = r->n_dseg,
	        .seg_nt = r->dseg_nt,
	        .nt = nt,
	        .h_kv = h_kv,
	        .d_r = sp->d_r,
	        .d_rh = r->d_rh,
	        .dtype = sp->dtype,
	        .r_scale = 1.0f / sqrtf((float)r->d_rh),
	};
	int64_t *d_sel = b->d_res.p;
	struct cuk_select_args a = {
	        .keys = b->d_keys.p,
	        .vis = sa.vis,
	        .len = len,
	        .ld = ld,
	        .hist = b->d_selst.p,
	        .cand = b->d_cand.p,
	        .pairs = pairs,
	        .h_kv = h_kv,
	        .k = k,
	        .stickbreak = sp->weighting == HSA_STICKBREAK,
	        .sel = d_sel,
	        .score = (float *)(d_sel + (size_t)pairs * k),
	        .mask_off = r->masked ? (const uint32_t *)(dq + off[4]) : NULL,
	        .mask_words = (const uint32_t *)(dq + off[5]),
	};
	a.weight = a.score + (size_t)pairs * k;
	if ((len > 0 && r->n_gemm < r->n_dseg && (err = CU(cuk_score(b->st, &sa))) != 0) ||
	    (len > 0 && r->n_gemm > 0 && (err = round_gemm(r, dq, off, ld)) != 0) ||
	    (err = CU(cuk_select(b->st, &a))) != 0)
		return err;
	return 0;
}

/*
 * In-chunk attention over the chunk addresses in d_tab and the fusion into d_res's out, then the
 * copies back to the pinned h_sel (same layout as d_res): the whole of d_res (selection, miss
 * count, out) when with_sel, else only out; the probabilities to h_attn. Does not synchronise.
 */
static int
round_attention(struct round *r, const float *d_qa, bool with_sel)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	uint32_t nt = r->nt, h_kv = sp->h_kv, k = r->k;
	size_t n = round_n(r), part = n * r->G * sp->d_h * 4, n_out = round_n_out(r);
	size_t n_attn = (size_t)nt * sp->h_q * k * sp->S;
	char *res = b->d_res.p;
	int err;

	if ((err = dev_reserve(b, &b->d_partial, part)) != 0 ||
	    (r->attn && ((err = dev_reserve(b, &b->d_attn, n_attn * 4)) != 0 ||
	                 (err = host_reserve(b, &b->h_attn, n_attn * 4)) != 0)))
		return err;
	if (r->attn && (err = CU(cudaMemsetAsync(b->d_attn.p, 0, n_attn * 4, b->st))) != 0)
		return err;
	struct cuk_attend_args aa = {
	        .chunk = b->d_tab.p,
	        .qa = d_qa,
	        .partial = b->d_partial.p,
	        .attn = r->attn ? b->d_attn.p : NULL,
	        .nt = nt,
	        .S = sp->S,
	        .h_kv = h_kv,
	        .d_h = sp->d_h,
	        .G = r->G,
	        .k = k,
	        .dtype = sp->dtype,
	        .a_scale = 1.0f / sqrtf((float)sp->d_h),
	        .off_by_one = sp->off_by_one,
	};
	struct cuk_fuse_args fa = {
	        .partial = b->d_partial.p,
	        .sel = (const int64_t *)res,
	        .weight = (const float *)(res + n * 12),
	        .out = (float *)(res + res_out_off(n)),
	        .nt = nt,
	        .h_kv = h_kv,
	        .d_h = sp->d_h,
	        .G = r->G,
	        .k = k,
	};
	if ((err = CU(cuk_attend(b->st, &aa))) != 0 || (err = CU(cuk_fuse(b->st, &fa))) != 0)
		return err;
	size_t from = with_sel ? 0 : res_out_off(n);
	err = CU(cudaMemcpyAsync((char *)b->h_sel.p + from, res + from, res_bytes(n, n_out) - from,
	                         cudaMemcpyDeviceToHost, b->st));
	if (err == 0 && r->attn)
		err = CU(cudaMemcpyAsync(b->h_attn.p, b->d_attn.p, n_attn * 4,
		                         cudaMemcpyDeviceToHost, b->st));
	return err;
}

/*
 * The warm path: the selected chunks' addresses resolved through each token's memory's device
 * directory, attention and fusion on them, everything back, one synchronisation. *misses gets
 * the number of selected chunks that were not resident (their attention was skipped:
 * round_attend redoes it).
 */
static int
round_resolve(struct round *r, const char *dq, const size_t off[6], uint32_t *misses)
{
	struct cuda_backend *b = r->b;
	size_t n = round_n(r);
	char *res = b->d_res.p;
	int err;

	if ((err = dev_reserve(b, &b->d_tab, n * 8)) != 0)
		return err;
	struct cuk_resolve_args ra = {
	        .sel = (const int64_t *)res,
	        .dir = (void *const *const *)(dq + off[3]),
	        .chunk = b->d_tab.p,
	        .misses = (uint32_t *)(res + n * 16),
	        .n = (uint32_t)n,
	        .per_tok = r->spec->h_kv * r->k,
	};
	if ((err = CU(cuk_resolve(b->st, &ra))) != 0 ||
	    (err = round_attention(r, (const float *)(dq + off[1]), true)) != 0 ||
	    (err = CU(cudaStreamSynchronize(b->st))) != 0)
		return err;
	memcpy(misses, (const char *)b->h_sel.p + n * 16, sizeof(*misses));
	return 0;
}

/*
 * The selection of the round back to the host, one synchronisation: the start of the slow path
 * when misses are expected, which then costs no wasted pass through the directory.
 */
static int
round_fetch_sel(struct round *r)
{
	struct cuda_backend *b = r->b;
	size_t n = round_n(r);
	int err;

	if ((err = CU(cudaMemcpyAsync(b->h_sel.p, b->d_res.p, n * 16, cudaMemcpyDeviceToHost,
	                              b->st))) != 0)
		return err;
	return CU(cudaStreamSynchronize(b->st));
}

/* The round's results, from h_sel and h_attn, to each call's result at its tokens. */
static void
round_scatter(struct round *r)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	size_t n = round_n(r), per = (size_t)sp->h_kv * r->k, per_out = (size_t)sp->h_q * sp->d_h;
	size_t per_attn = (size_t)sp->h_q * r->k * sp->S;
	const char *hs = b->h_sel.p;

	for (uint32_t i = 0; i < r->n_seg; i++) {
		const struct seg *g = &r->seg[i];
		struct hsa_result *res = g->c->res;
		size_t at = g->rt0 * per, to = g->t0 * per, m = g->nt * per;
		memcpy(res->sel + to, hs + at * 8, m * 8);
		memcpy(res->score + to, hs + n * 8 + at * 4, m * 4);
		if (res->weight != NULL)
			memcpy(res->weight + to, hs + n * 12 + at * 4, m * 4);
		if (r->sel_only)
			continue;
		memcpy(res->out + g->t0 * per_out, hs + res_out_off(n) + g->rt0 * per_out * 4,
		       g->nt * per_out * 4);
		if (r->attn)
			memcpy(res->attn + g->t0 * per_attn,
			       (const float *)b->h_attn.p + g->rt0 * per_attn,
			       g->nt * per_attn * 4);
	}
}

/*
 * The slow path of a round, when some selected chunk was not resident: the walk finds or pages
 * in the round's selected chunks and updates the device directory (walk_page_in), then attention
 * and fusion run again and the stream is synchronised.
 */
static int
round_attend(struct round *r, const float *d_qa)
{
	struct cuda_backend *b = r->b;
	uint64_t t_finish;
	int err;

	if ((err = walk_page_in(r, &t_finish)) != 0 || (err = round_attention(r, d_qa, false)) != 0)
		return err;
	err = CU(cudaStreamSynchronize(b->st));
	b->ctr.ns_finish += now_ns() - t_finish;
	b->ctr.miss_rounds++;
	return err;
}

int
round_run(struct round *r)
{
	struct cuda_backend *b = r->b;
	const struct hsa_spec *sp = r->spec;
	size_t off[6], bytes, n = round_n(r), n_out = round_n_out(r);
	size_t bound = (size_t)r->nt * sp->d_r * 4 + (size_t)r->nt * 4 +
	               (size_t)r->nt * sp->h_q * sp->d_h * 4 +
	               (size_t)r->n_seg * sizeof(struct cuk_seg) + (size_t)r->nt * sizeof(void *) +
	               (size_t)r->nt * 4 + 96;
	for (uint32_t i = 0; i < r->n_seg; i++)
		if (r->seg[i].c->q->mask != NULL)
			bound += (size_t)(r->seg[i].c->src->n_chunks + 31) / 32 * 4;
	bool expect_miss = false;
	uint32_t misses = 0;
	int err;

	r->t_start = now_ns();
	b->epoch++;
	if ((err = host_reserve(b, &b->h_q, bound)) != 0 ||
	    (err = dev_reserve(b, &b->d_q, bound)) != 0 ||
	    (err = host_reserve(b, &b->h_sel, res_bytes(n, n_out))) != 0)
		return err;
	bytes = pack_queries(r, b->h_q.p, off);
	if ((err = CU(cudaMemcpyAsync(b->d_q.p, b->h_q.p, bytes, cudaMemcpyHostToDevice, b->st))) !=
	    0)
		return err;
	const char *dq = b->d_q.p;
	if ((err = round_select(r, dq, off)) != 0)
		return err;
	if (r->sel_only) {
		/* no chunk is read: the selection comes back, and the round is done */
		if ((err = round_fetch_sel(r)) == 0)
			round_scatter(r);
		return err;
	}
	for (uint32_t i = 0; i < r->n_seg; i++)
		expect_miss |= r->seg[i].c->lmk->expect_miss;
	if (expect_miss) {
		/* the copy pool wakes while the selection runs, ready for the misses */
		if (n * r->pool->kv_bytes >= CP_MIN_BYTES && copy_start(b))
			cp_wake(&b->cp);
		err = round_fetch_sel(r);
		misses = 1;
	} else {
		err = round_resolve(r, dq, off, &misses);
	}
	if (err == 0 && misses == 0) {
		err = round_touch(r);
	} else if (err == 0) {
		b->ctr.ns_select += now_ns() - r->t_start;
		err = round_attend(r, (const float *)(dq + off[1]));
	}
	cp_cancel(&b->cp);
	if (err == 0)
		round_scatter(r);
	return err;
}
