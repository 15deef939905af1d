/*
 * hsa_cuda_query.c: the query path of the learned encoder on a CUDA GPU (hsa_cuda.h), as
 * hsa_forward.c runs it on the CPU: the window through the lower and upper stacks and the HSA
 * block's SWA sub-layer, the retrieval and attention queries, the sparse HSA over a memory's
 * chunks (scores by one fp32 GEMM over the landmarks, then top-k, fusion weights and in-chunk
 * attention in hsa_cuda_kernels.cu), the output block and the logits; and the runtime table.
 *
 * The memory (struct hsa_memory) is in host memory: its landmarks are uploaded whole, and only
 * the chunks that the top-k selects are copied to the device for the fusion, so a call moves
 * 128 floats a chunk plus 8 chunks a position. (The daemon runs HSA over its own stored chunks
 * on its backend; this path serves hsa_generate and the tests.)
 */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <string.h>

#include "hsa_cuda.h"
#include "hsa_cuda_int.h"
#include "hsa_cuda_kernels.h"
#include "hsamem_defs.h"
#include "log.h"

/* The window through the model up to the queries of positions first .. n-1, on the stream. */
static int
heads(struct hc_scratch *s, const uint32_t *win, uint32_t n, uint32_t first)
{
	const struct hsa_model *m = s->m;
	const struct hsa_config *c = &m->cfg;
	uint32_t D = c->d_model, T = n - first, qd = c->h_q * c->d_h;
	struct hc_bufs *d = &s->bufs;
	float *X = d->x + (size_t)first * D;
	int rc;

	s->q_n = 0;
	if (first >= n)
		return HSAMEM_EINVAL;
	rc = hc_lower(s, win, 1, n);
	for (uint32_t i = 0; i < c->n_upper && !rc; i++)
		rc = hc_block(s, &m->upper[i], d->x, 1, n, true);
	if (!rc)
		rc = hc_attn(s, &m->hsa_swa, m->hsa_swa_norm, d->x, 1, n, true);
	if (!rc)
		rc = CU(hk_rmsnorm(s->st, X, D, T, D, WF(s, m->ret_norm), c->eps, NULL, 0, d->xn,
		                   D));
	if (!rc)
		rc = hc_gemm(s, d->xn, D, T, D, m->ret_q, c->d_r, 0.0f, d->qr, c->d_r);
	if (!rc)
		rc = CU(hk_rmsnorm(s->st, X, D, T, D, WF(s, m->hsa_norm), c->eps, NULL, 0, d->xn,
		                   D));
	if (!rc)
		rc = hc_gemm(s, d->xn, D, T, D, m->hsa_q, qd, 0.0f, d->qa, qd);
	if (!rc)
		rc = CU(hk_rmsnorm(s->st, d->qa, c->d_h, T * c->h_q, c->d_h, NULL, c->eps, d->qa,
		                   c->d_h, NULL, 0));
	if (!rc) {
		s->q_n = n;
		s->q_first = first;
	}
	return rc;
}

/* From the HSA output in bufs.o on: the output block and the logits into bufs.logits. */
static int
logits(struct hc_scratch *s, uint32_t n, uint32_t first)
{
	const struct hsa_model *m = s->m;
	const struct hsa_config *c = &m->cfg;
	uint32_t D = c->d_model, T = n - first, qd = c->h_q * c->d_h;
	struct hc_bufs *d = &s->bufs;
	float *X = d->x + (size_t)first * D;
	int rc;

	if (s->q_n == 0 || s->q_n != n || s->q_first != first)
		return HSAMEM_EINVAL;
	s->q_n = 0; /* X changes below: once per heads() */
	rc = CU(hk_to_bf16(s->st, d->o, (uint64_t)T * qd, d->ob));
	if (!rc)
		rc = hc_gemm(s, d->ob, qd, T, qd, m->hsa_o, D, 1.0f, X, D);
	if (!rc)
		rc = hc_mlp(s, m->hsa_mlp_norm, m->hsa_w13, m->hsa_w2, X, T);
	if (!rc)
		rc = CU(hk_rmsnorm(s->st, X, D, T, D, WF(s, m->final_norm), c->eps, NULL, 0, d->xn,
		                   D));
	if (!rc)
		rc = hc_gemm(s, d->xn, D, T, D, m->embed, c->vocab, 0.0f, d->logits, c->vocab);
	return rc;
}

static int
d2h(struct hc_scratch *s, void *dst, const void *src, size_t bytes)
{
	return dst ? CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->st)) : 0;
}

/*
 * The window through heads() as one CUDA graph: a window is about 45 small kernels and GEMMs,
 * whose launches cost more than their work. A graph is made for each window length n and first
 * position a scratch sees (a question's length varies, so a few dozen at most; the least recently
 * used of HC_HEADS_GRAPHS is replaced), and reads its tokens from the pinned s->win, which holds
 * the window when it is made and at each launch. NULL when no graph can be made (s->heads_failed:
 * not tried again; the kernels are then launched one by one).
 */
static cudaGraphExec_t
heads_graph(struct hc_scratch *s, uint32_t n, uint32_t first)
{
	cudaGraph_t g = NULL;
	cudaGraphExec_t exec = NULL;
	int rc;

	unsigned at = 0;
	for (unsigned i = 0; i < HC_HEADS_GRAPHS; i++) {
		if (s->heads[i].exec && s->heads[i].n == n && s->heads[i].first == first) {
			s->heads[i].used = ++s->heads_clock;
			return s->heads[i].exec;
		}
		if (s->heads[i].used < s->heads[at].used)
			at = i; /* an empty slot has used 0 */
	}
	if (s->heads_failed)
		return NULL;
	rc = CU(cudaSetDevice(s->g->device));
	if (!rc)
		rc = CU(cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal));
	if (!rc) {
		int run = heads(s, s->win, n, first);
		/* the capture ends whatever happened inside it */
		rc = CU(cudaStreamEndCapture(s->st, &g));
		rc = run ? run : rc;
	}
	if (!rc)
		rc = CU(cudaGraphInstantiate(&exec, g, 0));
	if (g)
		cudaGraphDestroy(g);
	s->q_n = 0;
	if (rc) {
		(void)cudaGetLastError();
		s->heads_failed = true;
		log_notice("hsa-small: the query window runs without a CUDA graph (it could not be "
		           "made)");
		return NULL;
	}
	if (s->heads[at].exec)
		cudaGraphExecDestroy(s->heads[at].exec);
	s->heads[at].n = n;
	s->heads[at].first = first;
	s->heads[at].exec = exec;
	s->heads[at].used = ++s->heads_clock;
	return exec;
}

int
hsa_cuda_query_prepare(const struct hsa_model *m, struct hsa_scratch *ss, uint32_t n_lo,
                       uint32_t n_hi)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	if (s->m != m || n_lo == 0 || n_hi > 2 * m->cfg.chunk)
		return HSAMEM_EINVAL;
	for (uint32_t n = n_lo; n <= n_hi && !s->heads_failed; n++)
		heads_graph(s, n, n - 1);
	return s->heads_failed ? HSAMEM_EBACKEND : 0;
}

int
hsa_cuda_query_heads_start(const struct hsa_model *m, struct hsa_scratch *ss, const uint32_t *win,
                           uint32_t n, uint32_t first)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	const struct hsa_config *c = &m->cfg;
	size_t T = n - first, qd = c->h_q * c->d_h;
	cudaGraphExec_t exec;
	int rc = 0;

	s->q_n = 0;
	if (s->m != m || first >= n || n > 2 * c->chunk)
		return HSAMEM_EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (win[i] >= c->vocab)
			return HSAMEM_EINVAL;
	memcpy(s->win, win, n * sizeof(*win));
	if ((exec = heads_graph(s, n, first)) == NULL) {
		rc = heads(s, win, n, first);
	} else {
		rc = CU(cudaSetDevice(s->g->device));
		if (!rc)
			rc = CU(cudaGraphLaunch(exec, s->st));
	}
	/* into pinned memory, so that nothing here waits for the device */
	if (!rc)
		rc = d2h(s, s->qout, s->bufs.qr, T * c->d_r * sizeof(float));
	if (!rc)
		rc = d2h(s, s->qout + T * c->d_r, s->bufs.qa, T * qd * sizeof(float));
	if (!rc) {
		s->q_n = n;
		s->q_first = first;
	}
	return rc;
}

int
hsa_cuda_query_heads_finish(const struct hsa_model *m, struct hsa_scratch *ss, float *qr, float *qa)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	const struct hsa_config *c = &m->cfg;
	size_t T = s->q_n - s->q_first, qd = c->h_q * c->d_h;
	int rc;

	if (s->m != m || s->q_n == 0)
		return HSAMEM_EINVAL;
	if ((rc = hc_sync(s)) != 0) {
		s->q_n = 0;
		return rc;
	}
	/* what heads() leaves (q_n, q_first) stays for logits() */
	if (qr != NULL)
		memcpy(qr, s->qout, T * c->d_r * sizeof(float));
	if (qa != NULL)
		memcpy(qa, s->qout + T * c->d_r, T * qd * sizeof(float));
	return 0;
}

int
hsa_cuda_query_heads(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win,
                     uint32_t n, uint32_t first, float *qr, float *qa)
{
	int rc = hsa_cuda_query_heads_start(m, s, win, n, first);
	return rc ? rc : hsa_cuda_query_heads_finish(m, s, qr, qa);
}

int
hsa_cuda_query_logits(const struct hsa_model *m, struct hsa_scratch *ss, uint32_t n, uint32_t first,
                      const float *O, float *out)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	const struct hsa_config *c = &m->cfg;
	size_t T = n - first;
	int rc;

	if (s->m != m || first >= n || n > 2 * c->chunk)
		return HSAMEM_EINVAL;
	rc = CU(cudaSetDevice(s->g->device));
	if (!rc)
		rc = CU(cudaMemcpyAsync(s->bufs.o, O, T * c->h_q * c->d_h * sizeof(float),
		                        cudaMemcpyHostToDevice, s->st));
	if (!rc)
		rc = logits(s, n, first);
	if (!rc)
		rc = d2h(s, out, s->bufs.logits, T * c->vocab * sizeof(float));
	return rc ? rc : hc_sync(s);
}

/* Room for nc chunks' landmarks and scores. */
static int
mem_room(struct hc_scratch *s, uint64_t nc)
{
	const struct hsa_config *c = &s->m->cfg;
	int rc = 0;

	if (nc <= s->mem_cap)
		return 0;
	cudaFree(s->bufs.Lm);
	cudaFree(s->bufs.dots);
	s->bufs.Lm = s->bufs.dots = NULL;
	s->mem_cap = 0;
	rc = CU(cudaMalloc((void **)&s->bufs.Lm, nc * c->d_r * sizeof(float)));
	if (!rc)
		rc = CU(cudaMalloc((void **)&s->bufs.dots,
		                   nc * c->h_kv * 2 * c->chunk * sizeof(float)));
	if (!rc)
		s->mem_cap = nc;
	return rc;
}

/* Copies the chunks that the top-k selected to bufs.Ksel and Vsel (waits for the selection). */
static int
gather_selected(struct hc_scratch *s, const struct hsa_memory *mem, uint32_t T)
{
	const struct hsa_config *c = &s->m->cfg;
	size_t per = (size_t)c->chunk * c->h_kv * c->d_h, slots = (size_t)T * c->h_kv * c->topk;
	int rc = CU(cudaMemcpyAsync(s->hidx, s->bufs.idx, slots * sizeof(int64_t),
	                            cudaMemcpyDeviceToHost, s->st));

	if (!rc)
		rc = hc_sync(s);
	for (size_t i = 0; i < slots && !rc; i++) {
		int64_t j = s->hidx[i];
		if (j < 0)
			continue;
		if ((uint64_t)j >= mem->n_chunks)
			return HSAMEM_EBACKEND;
		rc = CU(cudaMemcpyAsync(s->bufs.Ksel + i * per, mem->K + (size_t)j * per,
		                        per * sizeof(float), cudaMemcpyHostToDevice, s->st));
		if (!rc)
			rc = CU(cudaMemcpyAsync(s->bufs.Vsel + i * per, mem->V + (size_t)j * per,
			                        per * sizeof(float), cudaMemcpyHostToDevice,
			                        s->st));
	}
	return rc;
}

/* Sparse HSA of T positions into bufs.o, and out's scores and selection. */
static int
sparse(struct hc_scratch *s, const struct hsa_memory *mem, uint32_t T,
       const struct hsa_query_out *out)
{
	const struct hsa_config *c = &s->m->cfg;
	uint32_t hkv = c->h_kv, drp = c->d_r / hkv, K = c->topk, qd = c->h_q * c->d_h;
	uint64_t nc = mem->n_chunks;
	size_t sel = (size_t)T * hkv * K;
	const float one = 1.0f, zero = 0.0f;
	int rc;

	if (nc == 0) {
		for (size_t i = 0; i < sel; i++) {
			if (out->topk_idx)
				out->topk_idx[i] = -1;
			if (out->topk_w)
				out->topk_w[i] = 0.0f;
		}
		return CU(cudaMemsetAsync(s->bufs.o, 0, (size_t)T * qd * sizeof(float), s->st));
	}
	if (nc > INT32_MAX)
		return HSAMEM_EINVAL;
	rc = mem_room(s, nc);
	if (!rc)
		rc = CU(cudaMemcpyAsync(s->bufs.Lm, mem->L, nc * c->d_r * sizeof(float),
		                        cudaMemcpyHostToDevice, s->st));
	/* dots [r][t][j] = qr[t][r] . L[j][r], fp32 so that the ranking is the CPU's */
	for (uint32_t r = 0; r < hkv && !rc; r++)
		rc = BLAS(cublasSgemm(s->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)nc, (int)T, (int)drp,
		                      &one, s->bufs.Lm + (size_t)r * drp, (int)c->d_r,
		                      s->bufs.qr + (size_t)r * drp, (int)c->d_r, &zero,
		                      s->bufs.dots + (size_t)r * T * nc, (int)nc));
	if (!rc)
		rc = CU(hk_topk(s->st, s->bufs.dots, T, hkv, nc, K, 1.0f / sqrtf((float)drp),
		                s->bufs.idx, s->bufs.tw));
	if (!rc)
		rc = gather_selected(s, mem, T);
	if (!rc)
		rc = CU(hk_fuse(s->st, s->bufs.qa, s->bufs.Ksel, s->bufs.Vsel, s->bufs.idx,
		                s->bufs.tw, T, hkv, c->h_q, c->d_h, c->chunk, K,
		                1.0f / sqrtf((float)c->d_h), s->bufs.o));
	for (uint32_t r = 0; r < hkv && !rc && out->scores; r++)
		rc = CU(cudaMemcpy2DAsync(out->scores + (size_t)r * nc, hkv * nc * sizeof(float),
		                          s->bufs.dots + (size_t)r * T * nc, nc * sizeof(float),
		                          nc * sizeof(float), T, cudaMemcpyDeviceToHost, s->st));
	if (!rc)
		rc = d2h(s, out->topk_idx, s->bufs.idx, sel * sizeof(int64_t));
	if (!rc)
		rc = d2h(s, out->topk_w, s->bufs.tw, sel * sizeof(float));
	return rc;
}

static int
hc_query(const struct hsa_model *m, struct hsa_scratch *ss, const uint32_t *win, uint32_t n,
         uint32_t first, const struct hsa_memory *mem, const struct hsa_query_out *out)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	const struct hsa_config *c = &m->cfg;
	size_t T = n - first, qd = c->h_q * c->d_h, f = sizeof(float);
	int rc;

	if (s->m != m || first >= n || (mem->n_chunks && (!mem->K || !mem->V || !mem->L)))
		return HSAMEM_EINVAL;
	rc = heads(s, win, n, first);
	if (!rc)
		rc = d2h(s, out->hidden, s->bufs.x + (size_t)first * c->d_model,
		         T * c->d_model * f);
	if (!rc)
		rc = d2h(s, out->qr, s->bufs.qr, T * c->d_r * f);
	if (!rc)
		rc = d2h(s, out->qa, s->bufs.qa, T * qd * f);
	if (!rc)
		rc = sparse(s, mem, (uint32_t)T, out);
	if (!rc)
		rc = d2h(s, out->hsa_out, s->bufs.o, T * qd * f);
	if (!rc && out->logits) {
		rc = logits(s, n, first);
		if (!rc)
			rc = d2h(s, out->logits, s->bufs.logits, T * c->vocab * f);
	}
	return rc ? rc : hc_sync(s);
}

static const struct hsa_runtime cuda_runtime = {
        .name = "cuda",
        .scratch_alloc = hc_scratch_alloc,
        .scratch_free = hc_scratch_free,
        .encode_chunks = hc_encode_chunks,
        .query = hc_query,
};

const struct hsa_runtime *
hsa_runtime_cuda(void)
{
	return &cuda_runtime;
}
