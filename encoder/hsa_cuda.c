/*
 * hsa_cuda.c: the learned encoder on a CUDA GPU (hsa_cuda.h): the device copy of the weights,
 * the per-call scratch (stream, cuBLAS handle, buffers), the linear layers as cuBLAS GEMMs and the
 * order of the layers in the lower stack and the chunk encoder, which is hsa_forward.c's on the
 * CPU. The query path is in hsa_cuda_query.c, the small operations in hsa_cuda_kernels.cu.
 *
 * Weights: the fp32 arena of the loaded model (its values are bf16 widened, so narrowing back is
 * exact) is uploaded twice, as bf16 for the GEMMs and as fp32 for the gains and the summary
 * vector; a tensor's device address is its offset in the arena, so wq|wk|wv, w1|w3 and
 * enc_k|enc_v|enc_lmk stay one matrix each, as on the CPU.
 *
 * GEMMs: Y [rows][out] = X [rows][in] W^T with W [out][in] row-major is, for column-major cuBLAS,
 * Y^T = W^T' X^T: cublasGemmEx(OP_T, OP_N, out, rows, in) with bf16 A and B, fp32 C and
 * CUBLAS_COMPUTE_32F, which runs on the tensor cores. Activations that feed a GEMM are written in
 * bf16 by the kernel that makes them; the residual stream and everything else stays fp32.
 */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hsa_cuda.h"
#include "hsa_cuda_int.h"
#include "hsa_cuda_kernels.h"
#include "hsamem_defs.h"
#include "log.h"
#include "why.h"

int
hc_cu(int e, const char *what, int line)
{
	if (e == cudaSuccess)
		return 0;
	log_err("hsa-small: CUDA: %s failed (line %d): %s", what, line,
	        cudaGetErrorString((cudaError_t)e));
	return HSAMEM_EBACKEND;
}

int
hc_blas(int e, const char *what, int line)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return 0;
	log_err("hsa-small: cuBLAS: %s failed (line %d): %s", what, line,
	        cublasGetStatusString((cublasStatus_t)e));
	return HSAMEM_EBACKEND;
}

/* The shared memory hk_attend asks for on a window of n positions. */
static size_t
attend_bytes(const struct hsa_config *c)
{
	size_t n = 2 * (size_t)c->chunk + 1, dh = c->d_head;

	return (n * (dh + 1) + n * dh + 4 * (dh + n)) * sizeof(float);
}

/* Whether the kernels can run this model on device dev; a sentence in why when not. */
static int
fits(const struct hsa_config *c, int dev, char *why, size_t why_len)
{
	struct cudaDeviceProp p;
	int rc = CU(cudaGetDeviceProperties(&p, dev));

	if (rc)
		return why_fail(why, why_len, rc, "cannot read the properties of CUDA device %d",
		                dev);
	if (c->d_head % 2 || c->d_h == 0 || c->h_kv == 0 || c->h_q % c->h_kv || c->d_r % c->h_kv ||
	    c->topk > 64 || c->n_heads * c->d_head != c->d_model)
		return why_fail(why, why_len, HSAMEM_EBACKEND,
		                "the GPU runtime does not support this model's shape");
	if (attend_bytes(c) > p.sharedMemPerBlockOptin)
		return why_fail(
		        why, why_len, HSAMEM_EBACKEND,
		        "a window of %u tokens needs %zu bytes of shared memory; CUDA device "
		        "%d has %zu",
		        2 * c->chunk, attend_bytes(c), dev, p.sharedMemPerBlockOptin);
	return 0;
}

/* The RoPE tables [2S + 1][d_head / 2], as hsa_work_init computes them. */
static int
upload_rope(struct hsa_gpu *g, const struct hsa_config *c)
{
	size_t half = c->d_head / 2, np = 2 * (size_t)c->chunk + 1,
	       bytes = np * half * sizeof(float);
	float *cs = malloc(bytes), *sn = malloc(bytes);
	int rc = -ENOMEM;

	if (cs && sn) {
		for (size_t i = 0; i < half; i++) {
			float f = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / c->d_head));
			for (size_t p = 0; p < np; p++) {
				cs[p * half + i] = cosf((float)p * f);
				sn[p * half + i] = sinf((float)p * f);
			}
		}
		rc = CU(cudaMalloc((void **)&g->cos, bytes));
		if (!rc)
			rc = CU(cudaMalloc((void **)&g->sin, bytes));
		if (!rc)
			rc = CU(cudaMemcpy(g->cos, cs, bytes, cudaMemcpyHostToDevice));
		if (!rc)
			rc = CU(cudaMemcpy(g->sin, sn, bytes, cudaMemcpyHostToDevice));
	}
	free(cs);
	free(sn);
	return rc;
}

/* The arena as bf16 (round to nearest even; exact for widened bf16) and as fp32. */
static int
upload_weights(struct hsa_gpu *g, const struct hsa_model *m)
{
	size_t n = m->n_params;
	uint16_t *b = malloc(n * sizeof(*b));
	int rc = -ENOMEM;

	if (b) {
		for (size_t i = 0; i < n; i++) {
			uint32_t u;
			memcpy(&u, &m->arena[i], sizeof(u));
			b[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
		}
		rc = CU(cudaMalloc(&g->wb, n * sizeof(*b)));
		if (!rc)
			rc = CU(cudaMalloc((void **)&g->wf, n * sizeof(float)));
		if (!rc)
			rc = CU(cudaMemcpy(g->wb, b, n * sizeof(*b), cudaMemcpyHostToDevice));
		if (!rc)
			rc = CU(cudaMemcpy(g->wf, m->arena, n * sizeof(float),
			                   cudaMemcpyHostToDevice));
	}
	free(b);
	return rc;
}

int
hsa_cuda_attach(struct hsa_model *m, int device, char *why, size_t why_len)
{
	struct hsa_gpu *g;
	int n = 0, rc;

	hsa_cuda_detach(m);
	/* without a driver this fails and leaves n alone: no device */
	if (cudaGetDeviceCount(&n) != cudaSuccess || device < 0 || device >= n) {
		(void)cudaGetLastError();
		return why_fail(why, why_len, HSAMEM_EBACKEND, "no CUDA device %d (%d usable)",
		                device, n);
	}
	if ((rc = CU(cudaSetDevice(device))) != 0)
		return why_fail(why, why_len, rc, "cannot use CUDA device %d", device);
	if ((rc = fits(&m->cfg, device, why, why_len)) != 0)
		return rc;
	if (!(g = calloc(1, sizeof(*g))))
		return -ENOMEM;
	g->device = device;
	m->gpu = g;
	rc = upload_weights(g, m);
	if (!rc)
		rc = upload_rope(g, &m->cfg);
	if (rc) {
		hsa_cuda_detach(m);
		return why_fail(why, why_len, rc,
		                "cannot upload the model's weights to CUDA device %d", device);
	}
	return 0;
}

void
hsa_cuda_detach(struct hsa_model *m)
{
	struct hsa_gpu *g = m ? m->gpu : NULL;

	if (!g)
		return;
	if (cudaSetDevice(g->device) == cudaSuccess) {
		cudaFree(g->wb);
		cudaFree(g->wf);
		cudaFree(g->cos);
		cudaFree(g->sin);
	}
	free(g);
	m->gpu = NULL;
}

void
hc_scratch_free(struct hsa_scratch *ss)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	void **bufs;

	if (!s)
		return;
	if (cudaSetDevice(s->g->device) == cudaSuccess) {
		bufs = (void **)&s->bufs;
		for (size_t i = 0; i < sizeof(s->bufs) / sizeof(void *); i++)
			cudaFree(bufs[i]);
		for (unsigned i = 0; i < HC_HEADS_GRAPHS; i++)
			if (s->heads[i].exec)
				cudaGraphExecDestroy(s->heads[i].exec);
		if (s->h)
			cublasDestroy(s->h);
		if (s->st)
			cudaStreamDestroy(s->st);
		cudaFree(s->blas_ws);
		cudaFreeHost(s->win);
		cudaFreeHost(s->qout);
	}
	free(s->hidx);
	free(s);
}

/* cuBLAS's workspace of a scratch: what it takes by itself on Hopper, given once so that it
 * allocates nothing while a graph is captured. */
#define BLAS_WORKSPACE (32u << 20)

/* cudaMalloc into *p unless an earlier step failed. */
static void
dalloc(int *rc, void *p, size_t bytes)
{
	if (!*rc)
		*rc = CU(cudaMalloc((void **)p, bytes ? bytes : 1));
}

int
hc_scratch_alloc(const struct hsa_model *m, uint32_t max_windows, struct hsa_scratch **out)
{
	const struct hsa_config *c = &m->cfg;
	size_t S = c->chunk, D = c->d_model, rows = (size_t)max_windows * 2 * S,
	       kd = c->h_kv * c->d_h;
	size_t erows = (size_t)max_windows * (S + 1), qd = c->h_q * c->d_h, win = 2 * S;
	size_t sel = win * c->h_kv * c->topk, f = sizeof(float), b = 2;
	struct hc_scratch *s;
	int rc;

	if (!m->gpu)
		return HSAMEM_EBACKEND;
	if (max_windows == 0 || max_windows > (1u << 16))
		return HSAMEM_EINVAL;
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	s->m = m;
	s->g = m->gpu;
	s->max_windows = max_windows;
	rc = CU(cudaSetDevice(s->g->device));
	if (!rc)
		rc = CU(cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking));
	if (!rc)
		rc = BLAS(cublasCreate(&s->h));
	if (!rc)
		rc = BLAS(cublasSetStream(s->h, s->st));
	dalloc(&rc, &s->blas_ws, BLAS_WORKSPACE);
	if (!rc)
		rc = BLAS(cublasSetWorkspace(s->h, s->blas_ws, BLAS_WORKSPACE));
	if (!rc)
		rc = CU(cudaHostAlloc((void **)&s->win, win * sizeof(uint32_t),
		                      cudaHostAllocDefault));
	if (!rc)
		rc = CU(cudaHostAlloc((void **)&s->qout, win * (c->d_r + qd) * f,
		                      cudaHostAllocDefault));
	dalloc(&rc, &s->bufs.tok, rows * sizeof(uint32_t));
	dalloc(&rc, &s->bufs.x, rows * D * f);
	dalloc(&rc, &s->bufs.xn, rows * D * b);
	dalloc(&rc, &s->bufs.qkv, rows * 3 * D * f);
	dalloc(&rc, &s->bufs.att, rows * D * b);
	dalloc(&rc, &s->bufs.h13, rows * 2 * c->d_mlp * f);
	dalloc(&rc, &s->bufs.g13, rows * c->d_mlp * b);
	dalloc(&rc, &s->bufs.e, erows * D * f);
	dalloc(&rc, &s->bufs.kvl, erows * (2 * kd + c->d_r) * f);
	dalloc(&rc, &s->bufs.K, (size_t)max_windows * S * kd * f);
	dalloc(&rc, &s->bufs.V, (size_t)max_windows * S * kd * f);
	dalloc(&rc, &s->bufs.L, (size_t)max_windows * c->d_r * f);
	dalloc(&rc, &s->bufs.qr, win * c->d_r * f);
	dalloc(&rc, &s->bufs.qa, win * qd * f);
	dalloc(&rc, &s->bufs.o, win * qd * f);
	dalloc(&rc, &s->bufs.ob, win * qd * b);
	dalloc(&rc, &s->bufs.logits, win * c->vocab * f);
	dalloc(&rc, &s->bufs.tw, sel * f);
	dalloc(&rc, &s->bufs.idx, sel * sizeof(int64_t));
	dalloc(&rc, &s->bufs.Ksel, sel * S * kd * f);
	dalloc(&rc, &s->bufs.Vsel, sel * S * kd * f);
	if (!rc && !(s->hidx = malloc(sel * sizeof(int64_t))))
		rc = -ENOMEM;
	if (rc) {
		hc_scratch_free((struct hsa_scratch *)s);
		return rc;
	}
	*out = (struct hsa_scratch *)s;
	return 0;
}

/* Y [rows][out] (ldy) = X [rows][in] (bf16, ldx) W^T + beta Y, W [out][in] bf16 on the device. */
int
hc_gemm(struct hc_scratch *s, const void *X, size_t ldx, uint32_t rows, uint32_t in, const float *W,
        uint32_t out, float beta, float *Y, size_t ldy)
{
	const float alpha = 1.0f;

	if (!rows || !out)
		return 0;
	return BLAS(cublasGemmEx(s->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)out, (int)rows, (int)in,
	                         &alpha, WB(s, W), CUDA_R_16BF, (int)in, X, CUDA_R_16BF, (int)ldx,
	                         &beta, Y, CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
	                         CUBLAS_GEMM_DEFAULT));
}

/* x += Attention(a, RMSNorm_norm(x)) over nw windows of n positions (hsa_attn_sublayer). */
int
hc_attn(struct hc_scratch *s, const struct hsa_attn_w *a, const float *norm, float *x, uint32_t nw,
        uint32_t n, bool causal)
{
	const struct hsa_config *c = &s->m->cfg;
	uint32_t D = c->d_model, rows = nw * n;
	struct hc_bufs *d = &s->bufs;
	int rc = CU(hk_rmsnorm(s->st, x, D, rows, D, WF(s, norm), c->eps, NULL, 0, d->xn, D));

	if (!rc)
		rc = hc_gemm(s, d->xn, D, rows, D, a->wqkv, 3 * D, 0.0f, d->qkv, 3 * D);
	if (!rc)
		rc = CU(hk_qk_rope(s->st, d->qkv, 3 * D, rows, n, c->n_heads, c->d_head, D,
		                   WF(s, a->q_norm), WF(s, a->k_norm), s->g->cos, s->g->sin,
		                   c->eps));
	if (!rc)
		rc = CU(hk_attend(s->st, d->qkv, 3 * D, nw, n, c->n_heads, c->d_head, D, causal,
		                  d->att));
	if (!rc)
		rc = hc_gemm(s, d->att, D, rows, D, a->wo, D, 1.0f, x, D);
	return rc;
}

/* x += w2 (silu(w1 z) * (w3 z)), z = RMSNorm_norm(x), over rows rows (hsa_mlp_sublayer). */
int
hc_mlp(struct hc_scratch *s, const float *norm, const float *w13, const float *w2, float *x,
       uint32_t rows)
{
	const struct hsa_config *c = &s->m->cfg;
	uint32_t D = c->d_model, F = c->d_mlp;
	struct hc_bufs *d = &s->bufs;
	int rc = CU(hk_rmsnorm(s->st, x, D, rows, D, WF(s, norm), c->eps, NULL, 0, d->xn, D));

	if (!rc)
		rc = hc_gemm(s, d->xn, D, rows, D, w13, 2 * F, 0.0f, d->h13, 2 * (size_t)F);
	if (!rc)
		rc = CU(hk_silu_mul(s->st, d->h13, rows, F, d->g13));
	if (!rc)
		rc = hc_gemm(s, d->g13, F, rows, F, w2, D, 1.0f, x, D);
	return rc;
}

int
hc_block(struct hc_scratch *s, const struct hsa_block_w *b, float *x, uint32_t nw, uint32_t n,
         bool causal)
{
	int rc = hc_attn(s, &b->attn, b->attn_norm, x, nw, n, causal);

	return rc ? rc : hc_mlp(s, b->mlp_norm, b->w13, b->w2, x, nw * n);
}

/* The lower stack into s->bufs.x, on the stream; nothing is waited for. */
int
hc_lower(struct hc_scratch *s, const uint32_t *tok, uint32_t nw, uint32_t n)
{
	const struct hsa_config *c = &s->m->cfg;
	size_t rows = (size_t)nw * n;
	int rc;

	if (n == 0 || n > 2 * c->chunk || nw == 0 || nw > s->max_windows)
		return HSAMEM_EINVAL;
	for (size_t r = 0; r < rows; r++)
		if (tok[r] >= c->vocab)
			return HSAMEM_EINVAL;
	rc = CU(cudaSetDevice(s->g->device));
	if (!rc)
		rc = CU(cudaMemcpyAsync(s->bufs.tok, tok, rows * sizeof(*tok),
		                        cudaMemcpyHostToDevice, s->st));
	if (!rc)
		rc = CU(hk_embed(s->st, s->bufs.tok, (uint32_t)rows, WB(s, s->m->embed), c->d_model,
		                 s->bufs.x));
	for (uint32_t i = 0; i < c->n_lower && !rc; i++)
		rc = hc_block(s, &s->m->lower[i], s->bufs.x, nw, n, true);
	return rc;
}

/* Waits for the stream; a kernel's failure shows here. */
int
hc_sync(struct hc_scratch *s)
{
	return CU(cudaStreamSynchronize(s->st));
}

int
hsa_cuda_lower(const struct hsa_model *m, struct hsa_scratch *ss, const uint32_t *tok,
               uint32_t n_windows, uint32_t n, float *H)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	int rc = s->m == m ? hc_lower(s, tok, n_windows, n) : HSAMEM_EINVAL;

	if (!rc)
		rc = CU(cudaMemcpyAsync(H, s->bufs.x,
		                        (size_t)n_windows * n * m->cfg.d_model * sizeof(float),
		                        cudaMemcpyDeviceToHost, s->st));
	return rc ? rc : hc_sync(s);
}

int
hc_encode_chunks(const struct hsa_model *m, struct hsa_scratch *ss, const uint32_t *windows,
                 uint32_t nw, float *K, float *V, float *L)
{
	struct hc_scratch *s = (struct hc_scratch *)ss;
	const struct hsa_config *c = &m->cfg;
	uint32_t S = c->chunk, D = c->d_model, kd = c->h_kv * c->d_h, ld = 2 * kd + c->d_r;
	uint32_t erows = nw * (S + 1);
	struct hc_bufs *d = &s->bufs;
	int rc = s->m == m ? hc_lower(s, windows, nw, 2 * S) : HSAMEM_EINVAL;

	if (!rc)
		rc = CU(hk_enc_gather(s->st, d->x, WF(s, m->summary), nw, S, D, d->e));
	for (uint32_t i = 0; i < c->n_enc && !rc; i++)
		rc = hc_block(s, &m->enc[i], d->e, nw, S + 1, false);
	if (!rc)
		rc = CU(hk_rmsnorm(s->st, d->e, D, erows, D, WF(s, m->enc_norm), c->eps, NULL, 0,
		                   d->xn, D));
	/* enc_k, enc_v and enc_lmk lie one after another in the arena: one GEMM for the three */
	if (!rc)
		rc = hc_gemm(s, d->xn, D, erows, D, m->enc_k, ld, 0.0f, d->kvl, ld);
	if (!rc)
		rc = CU(hk_kvl_split(s->st, d->kvl, ld, nw, S, c->h_kv, c->d_h, c->d_r, c->eps,
		                     d->K, d->V, d->L));
	if (!rc)
		rc = CU(cudaMemcpyAsync(K, d->K, (size_t)nw * S * kd * sizeof(float),
		                        cudaMemcpyDeviceToHost, s->st));
	if (!rc)
		rc = CU(cudaMemcpyAsync(V, d->V, (size_t)nw * S * kd * sizeof(float),
		                        cudaMemcpyDeviceToHost, s->st));
	if (!rc)
		rc = CU(cudaMemcpyAsync(L, d->L, (size_t)nw * c->d_r * sizeof(float),
		                        cudaMemcpyDeviceToHost, s->st));
	return rc ? rc : hc_sync(s);
}
