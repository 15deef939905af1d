/*
 * hsa_layers.c: the learned encoder's building blocks on the CPU. The GEMMs (every linear layer,
 * which is nearly all of the arithmetic) go to OpenBLAS; the small operations (RMSNorm, RoPE,
 * softmax, SiLU and attention over at most 2S positions, about 1% of the arithmetic but a fifth
 * of a chunk's time while its dot products were single chains) are plain loops here, because a
 * BLAS call per 64x64 head would cost more in overhead than it saves.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hsa_layers.h"

int
hsa_work_init(struct hsa_work *w, const struct hsa_config *c, uint32_t rows_max)
{
	size_t r = rows_max, D = c->d_model, half = c->d_head / 2, np = 2 * (size_t)c->chunk + 1;
	size_t p, i;

	memset(w, 0, sizeof(*w));
	w->rows_max = rows_max;
	w->xn = malloc(r * D * sizeof(float));
	w->qkv = malloc(r * 3 * D * sizeof(float));
	w->att = malloc(r * D * sizeof(float));
	w->h13 = malloc(r * 2 * c->d_mlp * sizeof(float));
	w->sc = malloc(np * sizeof(float));
	w->cos = malloc(np * half * sizeof(float));
	w->sin = malloc(np * half * sizeof(float));
	if (!w->xn || !w->qkv || !w->att || !w->h13 || !w->sc || !w->cos || !w->sin) {
		hsa_work_fini(w);
		return -ENOMEM;
	}
	/* As the reference computes them: the frequency and the angle rounded to fp32. */
	for (i = 0; i < half; i++) {
		float f = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / c->d_head));
		for (p = 0; p < np; p++) {
			float a = (float)p * f;
			w->cos[p * half + i] = cosf(a);
			w->sin[p * half + i] = sinf(a);
		}
	}
	return 0;
}

void
hsa_work_fini(struct hsa_work *w)
{
	free(w->xn);
	free(w->qkv);
	free(w->att);
	free(w->h13);
	free(w->sc);
	free(w->cos);
	free(w->sin);
	memset(w, 0, sizeof(*w));
}

void
hsa_gemm(const float *X, size_t ldx, uint32_t rows, uint32_t in, const float *W, uint32_t out,
         float beta, float *Y, size_t ldy)
{
	if (!rows || !out)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out, (int)in, 1.0f, X,
	            (int)ldx, W, (int)in, beta, Y, (int)ldy);
}

void
hsa_rmsnorm(const float *x, size_t ldx, float *y, size_t ldy, uint32_t rows, uint32_t d,
            const float *w, float eps)
{
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + r * ldx;
		float *yr = y + r * ldy, ss = 0, inv;
		for (uint32_t i = 0; i < d; i++)
			ss += xr[i] * xr[i];
		inv = 1.0f / sqrtf(ss / (float)d + eps);
		for (uint32_t i = 0; i < d; i++)
			yr[i] = xr[i] * inv * (w ? w[i] : 1.0f);
	}
}

/* Rotates the pairs (i, i + dh/2) of one head vector by the angles of position p. */
static void
rope(float *x, uint32_t dh, const float *cos, const float *sin)
{
	uint32_t h = dh / 2;

	for (uint32_t i = 0; i < h; i++) {
		float a = x[i], b = x[i + h];
		x[i] = a * cos[i] - b * sin[i];
		x[i + h] = a * sin[i] + b * cos[i];
	}
}

/* Softmax attention of one head at one position over keys 0 .. m-1, into o. */
/* A dot product in eight partial sums, which the compiler keeps in vector lanes: one running sum
 * is a chain of dependent additions that it may not reorder. */
static float
dot(const float *a, const float *b, uint32_t n)
{
	float acc[8] = {0}, s = 0;
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8)
		for (uint32_t j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		s += a[i] * b[i];
	return s +
	       (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
}

static void
attend(const float *q, const float *k, const float *v, size_t ld, uint32_t m, uint32_t dh,
       float *sc, float *o)
{
	float scale = 1.0f / sqrtf((float)dh), mx = -INFINITY, sum = 0;

	for (uint32_t u = 0; u < m; u++) {
		sc[u] = dot(q, k + u * ld, dh) * scale;
		if (sc[u] > mx)
			mx = sc[u];
	}
	for (uint32_t u = 0; u < m; u++)
		sum += sc[u] = expf(sc[u] - mx);
	memset(o, 0, dh * sizeof(float));
	for (uint32_t u = 0; u < m; u++) {
		float p = sc[u] / sum;
		for (uint32_t i = 0; i < dh; i++)
			o[i] += p * v[u * ld + i];
	}
}

void
hsa_attn_sublayer(const struct hsa_config *c, struct hsa_work *w, const struct hsa_attn_w *a,
                  const float *norm, float *x, uint32_t nw, uint32_t n, bool causal)
{
	uint32_t D = c->d_model, dh = c->d_head, H = c->n_heads, rows = nw * n, half = dh / 2;
	size_t ld = 3 * (size_t)D;

	hsa_rmsnorm(x, D, w->xn, D, rows, D, norm, c->eps);
	hsa_gemm(w->xn, D, rows, D, a->wqkv, 3 * D, 0.0f, w->qkv, ld);
	for (uint32_t r = 0; r < rows; r++) {
		uint32_t p = r % n;
		for (uint32_t h = 0; h < H; h++) {
			float *q = w->qkv + r * ld + h * dh, *k = q + D;
			hsa_rmsnorm(q, dh, q, dh, 1, dh, a->q_norm, c->eps);
			hsa_rmsnorm(k, dh, k, dh, 1, dh, a->k_norm, c->eps);
			rope(q, dh, w->cos + p * half, w->sin + p * half);
			rope(k, dh, w->cos + p * half, w->sin + p * half);
		}
	}
	for (uint32_t win = 0; win < nw; win++) {
		const float *base = w->qkv + (size_t)win * n * ld;
		for (uint32_t t = 0; t < n; t++)
			for (uint32_t h = 0; h < H; h++)
				attend(base + t * ld + h * dh, base + D + h * dh,
				       base + 2 * D + h * dh, ld, causal ? t + 1 : n, dh, w->sc,
				       w->att + ((size_t)win * n + t) * D + h * dh);
	}
	hsa_gemm(w->att, D, rows, D, a->wo, D, 1.0f, x, D);
}

void
hsa_attn_rows(const struct hsa_config *c, struct hsa_work *w, const struct hsa_attn_w *a,
              const float *norm, float *x, float *qkv, uint32_t r0, uint32_t n)
{
	uint32_t D = c->d_model, dh = c->d_head, H = c->n_heads, rows = n - r0, half = dh / 2;
	size_t ld = 3 * (size_t)D;

	hsa_rmsnorm(x, D, w->xn, D, rows, D, norm, c->eps);
	hsa_gemm(w->xn, D, rows, D, a->wqkv, 3 * D, 0.0f, qkv + r0 * ld, ld);
	for (uint32_t p = r0; p < n; p++) {
		for (uint32_t h = 0; h < H; h++) {
			float *q = qkv + p * ld + h * dh, *k = q + D;
			hsa_rmsnorm(q, dh, q, dh, 1, dh, a->q_norm, c->eps);
			hsa_rmsnorm(k, dh, k, dh, 1, dh, a->k_norm, c->eps);
			rope(q, dh, w->cos + p * half, w->sin + p * half);
			rope(k, dh, w->cos + p * half, w->sin + p * half);
		}
	}
	for (uint32_t t = r0; t < n; t++)
		for (uint32_t h = 0; h < H; h++)
			attend(qkv + t * ld + h * dh, qkv + D + h * dh, qkv + 2 * D + h * dh, ld,
			       t + 1, dh, w->sc, w->att + (size_t)(t - r0) * D + h * dh);
	hsa_gemm(w->att, D, rows, D, a->wo, D, 1.0f, x, D);
}

void
hsa_mlp_sublayer(const struct hsa_config *c, struct hsa_work *w, const float *norm,
                 const float *w13, const float *w2, float *x, uint32_t rows)
{
	uint32_t D = c->d_model, F = c->d_mlp;

	hsa_rmsnorm(x, D, w->xn, D, rows, D, norm, c->eps);
	hsa_gemm(w->xn, D, rows, D, w13, 2 * F, 0.0f, w->h13, 2 * (size_t)F);
	for (uint32_t r = 0; r < rows; r++) {
		float *g = w->h13 + (size_t)r * 2 * F;
		for (uint32_t i = 0; i < F; i++)
			g[i] = g[i] / (1.0f + expf(-g[i])) * g[F + i];
	}
	hsa_gemm(w->h13, 2 * (size_t)F, rows, F, w2, D, 1.0f, x, D);
}

void
hsa_block(const struct hsa_config *c, struct hsa_work *w, const struct hsa_block_w *b, float *x,
          uint32_t nw, uint32_t n, bool causal)
{
	hsa_attn_sublayer(c, w, &b->attn, b->attn_norm, x, nw, n, causal);
	hsa_mlp_sublayer(c, w, b->mlp_norm, b->w13, b->w2, x, nw * n);
}
