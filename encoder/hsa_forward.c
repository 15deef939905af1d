/*
 * hsa_forward.c: the stages of the learned encoder on the CPU (hsa_forward.h): it owns the
 * per-call scratch, the order of the layers in each stage and the sparse HSA of the query path
 * (scores by one GEMM over the landmarks, then the ranking, top-k, fusion weights and in-chunk
 * softmax of common/hsa_math.c, so the model retrieves exactly as the daemon's operator does).
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hsa_forward.h"
#include "hsa_layers.h"
#include "hsa_math.h"
#include "hsamem_defs.h"

struct hsa_scratch {
	const struct hsa_model *m;
	uint32_t max_windows;
	struct hsa_work w;
	float *x;   /* [max_windows * 2S][D] the residual stream */
	float *e;   /* [max_windows * (S+1)][D] the chunk encoder's stream */
	float *kvl; /* [max_windows * (S+1)][2 h_kv d_h + d_r] */
	float *qr;  /* [2S][d_r] */
	float *qa;  /* [2S][h_q d_h] */
	float *o;   /* [2S][h_q d_h] */
	/*
	 * The query window of the last call (query_window), kept: for each attention layer of the
	 * query path (the lower blocks, the upper ones, the HSA block's SWA), the q, k and v of
	 * rows 0 .. n_kept - 1 of the window of tokens wtok.
	 */
	float *kept;    /* [layers][2S][3D] */
	uint32_t *wtok; /* [2S] */
	uint32_t n_kept;
};

/* The names of OpenBLAS's cores that have neither AVX nor FMA: the fallbacks of an unknown CPU. */
static bool
blas_core_generic(const char *name)
{
	static const char *const generic[] = {"Prescott",  "Core2",  "Penryn", "Dunnington",
	                                      "Nehalem",   "Atom",   "Katmai", "Coppermine",
	                                      "Northwood", "Banias", "Opteron"};
	for (size_t i = 0; i < sizeof(generic) / sizeof(generic[0]); i++)
		if (name != NULL && strcasecmp(name, generic[i]) == 0)
			return true;
	return false;
}

const char *
hsa_blas_core(void)
{
	return openblas_get_corename();
}

void
hsa_blas_select_core(char **argv)
{
	const char *core = NULL;
	if (getenv("OPENBLAS_CORETYPE") != NULL || !blas_core_generic(openblas_get_corename()))
		return;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		core = "SkylakeX";
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		core = "Haswell";
	else if (__builtin_cpu_supports("avx"))
		core = "Sandybridge";
	if (core == NULL || setenv("OPENBLAS_CORETYPE", core, 1) != 0)
		return;
	execv("/proc/self/exe", argv);
	unsetenv("OPENBLAS_CORETYPE"); /* not executed again: this process goes on as it is */
}

int
hsa_blas_threads(int n)
{
	int prev = openblas_get_num_threads();

	if (n <= 0)
		n = openblas_get_num_procs();
	openblas_set_num_threads(n);
	return prev;
}

int
hsa_scratch_alloc(const struct hsa_model *m, uint32_t max_windows, struct hsa_scratch **out)
{
	const struct hsa_config *c = &m->cfg;
	size_t win = 2 * (size_t)c->chunk, rows, erows, D = c->d_model, qd = c->h_q * c->d_h;
	struct hsa_scratch *s;

	if (max_windows == 0 || max_windows > (1u << 16))
		return HSAMEM_EINVAL;
	rows = max_windows * win;
	erows = max_windows * ((size_t)c->chunk + 1);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->max_windows = max_windows;
	s->x = malloc(rows * D * sizeof(float));
	s->e = malloc(erows * D * sizeof(float));
	s->kvl = malloc(erows * (2 * c->h_kv * c->d_h + c->d_r) * sizeof(float));
	s->qr = malloc(win * c->d_r * sizeof(float));
	s->qa = malloc(win * qd * sizeof(float));
	s->o = malloc(win * qd * sizeof(float));
	s->kept = malloc(((size_t)c->n_lower + c->n_upper + 1) * win * 3 * D * sizeof(float));
	s->wtok = malloc(win * sizeof(uint32_t));
	if (!s->x || !s->e || !s->kvl || !s->qr || !s->qa || !s->o || !s->kept || !s->wtok ||
	    hsa_work_init(&s->w, c, (uint32_t)rows)) {
		hsa_scratch_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void
hsa_scratch_free(struct hsa_scratch *s)
{
	if (!s)
		return;
	hsa_work_fini(&s->w);
	free(s->x);
	free(s->e);
	free(s->kvl);
	free(s->qr);
	free(s->qa);
	free(s->o);
	free(s->kept);
	free(s->wtok);
	free(s);
}

int
hsa_lower(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *tok, uint32_t n_windows,
          uint32_t n, float *H)
{
	const struct hsa_config *c = &m->cfg;
	size_t rows = (size_t)n_windows * n, D = c->d_model, r;

	if (s->m != m || n == 0 || n > 2 * c->chunk || n_windows == 0 || n_windows > s->max_windows)
		return HSAMEM_EINVAL;
	for (r = 0; r < rows; r++) {
		if (tok[r] >= c->vocab)
			return HSAMEM_EINVAL;
		memcpy(H + r * D, m->embed + (size_t)tok[r] * D, D * sizeof(float));
	}
	for (uint32_t i = 0; i < c->n_lower; i++)
		hsa_block(c, &s->w, &m->lower[i], H, n_windows, n, true);
	return 0;
}

int
hsa_encode_chunks(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *windows,
                  uint32_t n_windows, float *K, float *V, float *L)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t S = c->chunk, kd = c->h_kv * c->d_h, ld = 2 * kd + c->d_r, E = S + 1;
	size_t D = c->d_model;
	int rc;

	rc = hsa_lower(m, s, windows, n_windows, 2 * S, s->x);
	if (rc)
		return rc;
	for (uint32_t w = 0; w < n_windows; w++) {
		memcpy(s->e + (size_t)w * E * D, s->x + ((size_t)w * 2 * S + S) * D,
		       S * D * sizeof(float));
		memcpy(s->e + ((size_t)w * E + S) * D, m->summary, D * sizeof(float));
	}
	for (uint32_t i = 0; i < c->n_enc; i++)
		hsa_block(c, &s->w, &m->enc[i], s->e, n_windows, E, false);
	hsa_rmsnorm(s->e, D, s->e, D, n_windows * E, (uint32_t)D, m->enc_norm, c->eps);
	/* enc_k, enc_v and enc_lmk lie one after another in the arena: one GEMM for the three */
	hsa_gemm(s->e, D, n_windows * E, (uint32_t)D, m->enc_k, ld, 0.0f, s->kvl, ld);
	for (uint32_t w = 0; w < n_windows; w++) {
		for (uint32_t t = 0; t < S; t++) {
			const float *row = s->kvl + ((size_t)w * E + t) * ld;
			float *k = K + ((size_t)w * S + t) * kd;
			hsa_rmsnorm(row, c->d_h, k, c->d_h, c->h_kv, c->d_h, NULL, c->eps);
			memcpy(V + ((size_t)w * S + t) * kd, row + kd, kd * sizeof(float));
		}
		memcpy(L + (size_t)w * c->d_r, s->kvl + ((size_t)w * E + S) * ld + 2 * kd,
		       c->d_r * sizeof(float));
	}
	return 0;
}

/* Scratch of the sparse HSA of one call, sized for T positions, nc chunks and k selected. */
struct hsa_sel {
	float *dots, *a, *score, *w;
	struct hsa_cand *heap;
	int64_t *sel;
};

/* O[h] of one position and kv head r: the fused in-chunk attention over the n selected chunks. */
static void
hsa_fuse(const struct hsa_config *c, const struct hsa_memory *mem, const float *qa, uint32_t r,
         const struct hsa_sel *z, uint32_t n, float *O)
{
	uint32_t S = c->chunk, dh = c->d_h, hkv = c->h_kv, G = c->h_q / hkv;
	float scale = 1.0f / sqrtf((float)dh);

	for (uint32_t i = 0; i < n; i++) {
		const float *Kj = mem->K + (size_t)z->sel[i] * S * hkv * dh + (size_t)r * dh;
		const float *Vj = mem->V + (size_t)z->sel[i] * S * hkv * dh + (size_t)r * dh;
		for (uint32_t g = 0; g < G; g++) {
			uint32_t h = r * G + g;
			const float *q = qa + (size_t)h * dh;
			float *o = O + (size_t)h * dh;
			for (uint32_t t = 0; t < S; t++) {
				float d = 0;
				for (uint32_t e = 0; e < dh; e++)
					d += q[e] * Kj[(size_t)t * hkv * dh + e];
				z->a[t] = d;
			}
			hsa_chunk_softmax(z->a, S, scale, false);
			for (uint32_t t = 0; t < S; t++) {
				float p = z->w[i] * z->a[t];
				for (uint32_t e = 0; e < dh; e++)
					o[e] += p * Vj[(size_t)t * hkv * dh + e];
			}
		}
	}
}

/* Sparse HSA (hsamem(7), softmax weighting) of T positions: O [T][h_q][d_h], and out's extras. */
static int
hsa_sparse(const struct hsa_config *c, const float *qr, const float *qa, uint32_t T,
           const struct hsa_memory *mem, float *O, const struct hsa_query_out *out)
{
	uint32_t hkv = c->h_kv, drp = c->d_r / hkv, K = c->topk, S = c->chunk;
	uint64_t nc = mem->n_chunks;
	uint32_t k = nc < K ? (uint32_t)nc : K, size;
	float scale = 1.0f / sqrtf((float)drp);
	struct hsa_sel z = {0};
	int rc = -ENOMEM;

	memset(O, 0, (size_t)T * c->h_q * c->d_h * sizeof(float));
	if (nc > INT32_MAX)
		return HSAMEM_EINVAL;
	z.dots = malloc(((size_t)T * nc + 1) * sizeof(float));
	z.a = malloc(S * sizeof(float));
	z.score = malloc((k + 1) * sizeof(float));
	z.w = malloc((k + 1) * sizeof(float));
	z.heap = malloc((k + 1) * sizeof(*z.heap));
	z.sel = malloc((k + 1) * sizeof(*z.sel));
	if (!z.dots || !z.a || !z.score || !z.w || !z.heap || !z.sel)
		goto done;
	for (uint32_t r = 0; r < hkv; r++) {
		if (nc)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)nc,
			            (int)drp, 1.0f, qr + (size_t)r * drp, (int)c->d_r,
			            mem->L + (size_t)r * drp, (int)c->d_r, 0.0f, z.dots, (int)nc);
		for (uint32_t t = 0; t < T; t++) {
			const float *dots = z.dots + (size_t)t * nc;
			size_t base = ((size_t)t * hkv + r);
			size = 0;
			hsa_offer_scores(z.heap, &size, k, dots, nc, scale, 0);
			qsort(z.heap, size, sizeof(*z.heap), hsa_cand_cmp);
			for (uint32_t i = 0; i < size; i++) {
				z.sel[i] = z.heap[i].j;
				z.score[i] = z.heap[i].s;
			}
			hsa_fusion_weights(HSA_SOFTMAX, z.sel, z.score, size, z.w);
			if (out->scores)
				for (uint64_t j = 0; j < nc; j++)
					out->scores[base * nc + j] = dots[j] * scale;
			for (uint32_t i = 0; i < K; i++) {
				if (out->topk_idx)
					out->topk_idx[base * K + i] = i < size ? z.sel[i] : -1;
				if (out->topk_w)
					out->topk_w[base * K + i] = i < size ? z.w[i] : 0.0f;
			}
			hsa_fuse(c, mem, qa + (size_t)t * c->h_q * c->d_h, r, &z, size,
			         O + (size_t)t * c->h_q * c->d_h);
		}
	}
	rc = 0;
done:
	free(z.dots);
	free(z.a);
	free(z.score);
	free(z.w);
	free(z.heap);
	free(z.sel);
	return rc;
}

/*
 * The window (n tokens, n <= 2S) through the lower and upper stacks and the HSA block's SWA
 * sub-layer, into rows r0 .. n-1 of s->x. The window of the scratch's last call is kept
 * (s->kept): every attention here is causal, so a row depends on the rows before it only, and the
 * rows up to where the two windows first differ are that call's, with their q, k and v at every
 * layer. Only the rows from there on are run: one of an answer's positions runs one new row, and
 * the queries of one memory, whose windows share its last S tokens, run the question's rows
 * only. r0 is at most first, the first row whose X the caller reads.
 */
static int
query_window(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win, uint32_t n,
             uint32_t first)
{
	const struct hsa_config *c = &m->cfg;
	size_t D = c->d_model, layer = 2 * (size_t)c->chunk * 3 * D;
	uint32_t r0 = 0;

	if (s->m != m || n == 0 || n > 2 * c->chunk || first >= n)
		return HSAMEM_EINVAL;
	for (uint32_t r = 0; r < n; r++)
		if (win[r] >= c->vocab)
			return HSAMEM_EINVAL;
	while (r0 < s->n_kept && r0 < n && s->wtok[r0] == win[r0])
		r0++;
	if (r0 > first)
		r0 = first;
	s->n_kept = 0; /* until the rows below are whole */
	float *x = s->x + r0 * D, *kept = s->kept;
	uint32_t rows = n - r0;
	for (uint32_t r = r0; r < n; r++)
		memcpy(s->x + r * D, m->embed + (size_t)win[r] * D, D * sizeof(float));
	for (uint32_t i = 0; i < c->n_lower; i++, kept += layer) {
		const struct hsa_block_w *b = &m->lower[i];
		hsa_attn_rows(c, &s->w, &b->attn, b->attn_norm, x, kept, r0, n);
		hsa_mlp_sublayer(c, &s->w, b->mlp_norm, b->w13, b->w2, x, rows);
	}
	for (uint32_t i = 0; i < c->n_upper; i++, kept += layer) {
		const struct hsa_block_w *b = &m->upper[i];
		hsa_attn_rows(c, &s->w, &b->attn, b->attn_norm, x, kept, r0, n);
		hsa_mlp_sublayer(c, &s->w, b->mlp_norm, b->w13, b->w2, x, rows);
	}
	hsa_attn_rows(c, &s->w, &m->hsa_swa, m->hsa_swa_norm, x, kept, r0, n);
	memcpy(s->wtok, win, n * sizeof(*win));
	s->n_kept = n;
	return 0;
}

/* The window through the model up to the HSA sub-layer's queries of positions first .. n-1: X
 * stays in s->x, qr and qa in s->qr and s->qa. */
static int
query_heads(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win, uint32_t n,
            uint32_t first, float *hidden)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t D = c->d_model, T, qd = c->h_q * c->d_h;
	float *X;
	int rc;

	if (first >= n)
		return HSAMEM_EINVAL;
	rc = query_window(m, s, win, n, first);
	if (rc)
		return rc;
	T = n - first;
	X = s->x + (size_t)first * D;
	if (hidden)
		memcpy(hidden, X, (size_t)T * D * sizeof(float));
	hsa_rmsnorm(X, D, s->w.xn, D, T, D, m->ret_norm, c->eps);
	hsa_gemm(s->w.xn, D, T, D, m->ret_q, c->d_r, 0.0f, s->qr, c->d_r);
	hsa_rmsnorm(X, D, s->w.xn, D, T, D, m->hsa_norm, c->eps);
	hsa_gemm(s->w.xn, D, T, D, m->hsa_q, qd, 0.0f, s->qa, qd);
	hsa_rmsnorm(s->qa, c->d_h, s->qa, c->d_h, T * c->h_q, c->d_h, NULL, c->eps);
	return 0;
}

int
hsa_query_heads(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win, uint32_t n,
                uint32_t first, float *qr, float *qa)
{
	const struct hsa_config *c = &m->cfg;
	int rc = query_heads(m, s, win, n, first, NULL);

	if (rc)
		return rc;
	memcpy(qr, s->qr, (size_t)(n - first) * c->d_r * sizeof(float));
	memcpy(qa, s->qa, (size_t)(n - first) * c->h_q * c->d_h * sizeof(float));
	return 0;
}

int
hsa_query_logits(const struct hsa_model *m, struct hsa_scratch *s, uint32_t n, uint32_t first,
                 const float *O, float *logits)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t D = c->d_model, T = n - first, qd = c->h_q * c->d_h;
	float *X = s->x + (size_t)first * D;

	if (first >= n || n > 2 * c->chunk)
		return HSAMEM_EINVAL;
	hsa_gemm(O, qd, T, qd, m->hsa_o, D, 1.0f, X, D);
	hsa_mlp_sublayer(c, &s->w, m->hsa_mlp_norm, m->hsa_w13, m->hsa_w2, X, T);
	hsa_rmsnorm(X, D, s->w.xn, D, T, D, m->final_norm, c->eps);
	hsa_gemm(s->w.xn, D, T, D, m->embed, c->vocab, 0.0f, logits, c->vocab);
	return 0;
}

int
hsa_query(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win, uint32_t n,
          uint32_t first, const struct hsa_memory *mem, const struct hsa_query_out *out)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t T, qd = c->h_q * c->d_h;
	int rc;

	if (first >= n || (mem->n_chunks && (!mem->K || !mem->V || !mem->L)))
		return HSAMEM_EINVAL;
	rc = query_heads(m, s, win, n, first, out->hidden);
	if (rc)
		return rc;
	T = n - first;
	if (out->qr)
		memcpy(out->qr, s->qr, (size_t)T * c->d_r * sizeof(float));
	if (out->qa)
		memcpy(out->qa, s->qa, (size_t)T * qd * sizeof(float));
	rc = hsa_sparse(c, s->qr, s->qa, T, mem, s->o, out);
	if (rc)
		return rc;
	if (out->hsa_out)
		memcpy(out->hsa_out, s->o, (size_t)T * qd * sizeof(float));
	if (!out->logits)
		return 0;
	return hsa_query_logits(m, s, n, first, s->o, out->logits);
}

int
hsa_generate(const struct hsa_runtime *rt, const struct hsa_model *m, struct hsa_scratch *s,
             const uint32_t *ctx, uint32_t n_ctx, const uint32_t *q, uint32_t n_q,
             const struct hsa_memory *mem, uint32_t max_new, uint32_t *ans, uint32_t *n_ans)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t cap = 2 * c->chunk, total = n_ctx + n_q, got = 0, n;
	uint32_t *all = malloc(((size_t)total + max_new + 1) * sizeof(*all));
	float *logits = malloc((size_t)c->vocab * sizeof(float));
	int rc = -ENOMEM;

	if (!all || !logits)
		goto done;
	rc = HSAMEM_EINVAL;
	if (n_q == 0 || n_ctx > c->chunk)
		goto done;
	memcpy(all, ctx, (size_t)n_ctx * sizeof(*all));
	memcpy(all + n_ctx, q, (size_t)n_q * sizeof(*all));
	rc = 0;
	while (got < max_new) {
		struct hsa_query_out out = {.logits = logits};
		uint32_t best = 0;
		n = total < cap ? total : cap;
		rc = rt->query(m, s, all + total - n, n, n - 1, mem, &out);
		if (rc)
			break;
		for (uint32_t v = 1; v < c->vocab; v++)
			if (logits[v] > logits[best])
				best = v;
		if (best == c->eos_id)
			break;
		ans[got++] = best;
		all[total++] = best;
	}
	if (!rc)
		*n_ans = got;
done:
	free(all);
	free(logits);
	return rc;
}

static const struct hsa_runtime cpu_runtime = {
        .name = "cpu",
        .scratch_alloc = hsa_scratch_alloc,
        .scratch_free = hsa_scratch_free,
        .encode_chunks = hsa_encode_chunks,
        .query = hsa_query,
};

const struct hsa_runtime *
hsa_runtime_cpu(void)
{
	return &cpu_runtime;
}
