/*
 * hsa_cuda_kernels.cu: the learned encoder's small operations on the GPU (hsa_cuda_kernels.h):
 * RMSNorm, the per-head norms with RoPE, attention over a window, SiLU gating, the chunk
 * encoder's gathers and the sparse HSA step of the query path (top-k, fusion). cuBLAS does every
 * linear layer (hsa_cuda.c); these are the rest, about 5% of the arithmetic. They are written
 * here because no library offers them fused on this layout (one window-sized attention per block,
 * RMSNorm and RoPE of head-major rows), and they mirror the CPU reference (hsa_layers.c,
 * hsa_forward.c, common/hsa_math.c) operation by operation, all arithmetic in fp32.
 *
 * Shapes are small and fixed by the model (windows of at most 2S = 128 positions, heads of 64),
 * so each kernel is plain: one block per row, window (or a part of one, when there are few) or
 * (position, head), shared-memory reductions over a power-of-two block, and loops bounded by the
 * sizes passed in.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "hsa_cuda_kernels.h"

#define ROW_THREADS  128 /* a row kernel's block; a power of two */
#define HEAD_THREADS 64  /* a head kernel's block; a power of two */
#define ATT_WARPS    4
/* k_attend over fewer than ATT_FEW_BLOCKS (window, head) blocks: a position a warp, ATT_WARPS a
 * block */
#define ATT_FEW_BLOCKS 256
#define ATT_LOADS      8 /* k_attend: loads a thread has in flight */

typedef __nv_bfloat16 bf16;

static int
launched(void)
{
	return (int)cudaGetLastError();
}

/* The sum of v over the block (blockDim.x a multiple of 32, at most 1024), in every thread: each
 * warp's by shuffles, then those of the warps (through sh, blockDim.x / 32 floats); two barriers
 * where a tree in shared memory took one a level. */
__device__ static float
block_sum(float v, float *sh)
{
	unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;

	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if (warps == 1)
		return v;
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < warps ? sh[lane] : 0.0f;
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	__syncthreads(); /* sh is free for the caller's next sum */
	return v;
}

__global__ static void
k_embed(const uint32_t *tok, uint64_t total, const bf16 *embed, uint32_t D, float *x)
{
	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < total;
	     i += (uint64_t)gridDim.x * blockDim.x) {
		uint64_t r = i / D, c = i % D;
		x[i] = __bfloat162float(embed[(uint64_t)tok[r] * D + c]);
	}
}

static unsigned
grid_for(uint64_t total)
{
	uint64_t b = (total + 255) / 256;
	return (unsigned)(b < 65535 * 16 ? (b ? b : 1) : 65535 * 16);
}

extern "C" int
hk_embed(void *st, const uint32_t *tok, uint32_t rows, const void *embed, uint32_t D, float *x)
{
	uint64_t total = (uint64_t)rows * D;

	k_embed<<<grid_for(total), 256, 0, (cudaStream_t)st>>>(tok, total, (const bf16 *)embed, D,
	                                                       x);
	return launched();
}

__global__ static void
k_rmsnorm(const float *x, uint32_t ldx, uint32_t d, const float *w, float eps, float *yf,
          uint32_t ldyf, bf16 *yb, uint32_t ldyb)
{
	__shared__ float sh[ROW_THREADS];
	const float *xr = x + (uint64_t)blockIdx.x * ldx;
	float ss = 0, inv;

	for (uint32_t i = threadIdx.x; i < d; i += blockDim.x)
		ss += xr[i] * xr[i];
	ss = block_sum(ss, sh);
	inv = 1.0f / sqrtf(ss / (float)d + eps);
	for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
		float y = xr[i] * inv * (w ? w[i] : 1.0f);
		if (yf)
			yf[(uint64_t)blockIdx.x * ldyf + i] = y;
		if (yb)
			yb[(uint64_t)blockIdx.x * ldyb + i] = __float2bfloat16(y);
	}
}

extern "C" int
hk_rmsnorm(void *st, const float *x, uint32_t ldx, uint32_t rows, uint32_t d, const float *w,
           float eps, float *yf, uint32_t ldyf, void *yb, uint32_t ldyb)
{
	if (!rows)
		return 0;
	k_rmsnorm<<<rows, ROW_THREADS, 0, (cudaStream_t)st>>>(x, ldx, d, w, eps, yf, ldyf,
	                                                      (bf16 *)yb, ldyb);
	return launched();
}

/* Block (row, head, q or k); dynamic shared memory: dh floats. */
__global__ static void
k_qk_rope(float *qkv, uint32_t ld, uint32_t n, uint32_t dh, uint32_t D, const float *qn,
          const float *kn, const float *cos, const float *sin, float eps)
{
	__shared__ float sh[HEAD_THREADS];
	extern __shared__ float vec[];
	uint32_t r = blockIdx.x, h = blockIdx.y, half = dh / 2, p = r % n;
	float *base = qkv + (uint64_t)r * ld + blockIdx.z * D + h * dh;
	const float *g = blockIdx.z ? kn : qn;
	float ss = 0, inv;

	for (uint32_t i = threadIdx.x; i < dh; i += blockDim.x)
		ss += base[i] * base[i];
	ss = block_sum(ss, sh);
	inv = 1.0f / sqrtf(ss / (float)dh + eps);
	for (uint32_t i = threadIdx.x; i < dh; i += blockDim.x)
		vec[i] = base[i] * inv * g[i];
	__syncthreads();
	for (uint32_t i = threadIdx.x; i < half; i += blockDim.x) {
		float a = vec[i], b = vec[i + half], c = cos[p * half + i], s = sin[p * half + i];
		base[i] = a * c - b * s;
		base[i + half] = a * s + b * c;
	}
}

extern "C" int
hk_qk_rope(void *st, float *qkv, uint32_t ld, uint32_t rows, uint32_t n, uint32_t H, uint32_t dh,
           uint32_t D, const float *qn, const float *kn, const float *cos, const float *sin,
           float eps)
{
	dim3 grid(rows, H, 2);

	if (!rows)
		return 0;
	k_qk_rope<<<grid, HEAD_THREADS, dh * sizeof(float), (cudaStream_t)st>>>(
	        qkv, ld, n, dh, D, qn, kn, cos, sin, eps);
	return launched();
}

/*
 * Block (window, head, positions): the keys its positions see, K [kn][dh + 1] (padded against
 * bank conflicts) and V [kn][dh], in shared memory, then each warp takes positions t = t0 + warp,
 * t0 + warp + ATT_WARPS, ... below t1: scores of its keys, softmax by warp shuffles, and the
 * weighted sum of V, one output dimension per lane. A block takes per positions of its window
 * (blockIdx.z-th), all of them when the grid has blocks enough without splitting, else one a
 * warp: a query's window is latency, not arithmetic, and a warp's positions run one after the
 * other.
 */
__global__ static void
k_attend(const float *qkv, uint32_t ld, uint32_t n, uint32_t per, uint32_t dh, uint32_t D,
         int causal, bf16 *out)
{
	extern __shared__ float smem[];
	float *Ks = smem, *Vs = Ks + n * (dh + 1);
	uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32, h = blockIdx.y;
	float *qw = Vs + n * dh + warp * (dh + n), *pw = qw + dh;
	uint64_t row0 = (uint64_t)blockIdx.x * n;
	uint32_t t0 = blockIdx.z * per, t1 = t0 + per < n ? t0 + per : n;
	uint32_t kn = causal ? t1 : n;
	float scale = 1.0f / sqrtf((float)dh);

	/* ATT_LOADS rows' elements in flight a thread before any is stored: one at a time, the
	 * loop waited for each load in turn, most of a query window's attention */
	for (uint32_t i0 = threadIdx.x; i0 < kn * dh; i0 += ATT_LOADS * blockDim.x) {
		float kr[ATT_LOADS], vr[ATT_LOADS];
#pragma unroll
		for (uint32_t j = 0; j < ATT_LOADS; j++) {
			uint32_t i = i0 + j * blockDim.x, u = i / dh, e = i % dh;
			const float *src = qkv + (row0 + u) * ld + h * dh + e;
			kr[j] = i < kn * dh ? src[D] : 0.0f;
			vr[j] = i < kn * dh ? src[2 * D] : 0.0f;
		}
#pragma unroll
		for (uint32_t j = 0; j < ATT_LOADS; j++) {
			uint32_t i = i0 + j * blockDim.x, u = i / dh, e = i % dh;
			if (i < kn * dh) {
				Ks[u * (dh + 1) + e] = kr[j];
				Vs[u * dh + e] = vr[j];
			}
		}
	}
	__syncthreads();
	for (uint32_t t = t0 + warp; t < t1; t += ATT_WARPS) {
		uint32_t m = causal ? t + 1 : n;
		float mx = -INFINITY, sum = 0;
		for (uint32_t e = lane; e < dh; e += 32)
			qw[e] = qkv[(row0 + t) * ld + h * dh + e];
		__syncwarp();
		/* four partial sums a dot product, so that a lane's additions do not wait on one
		 * another one by one (the same in every kernel that attends: encoding and query) */
		for (uint32_t u = lane; u < m; u += 32) {
			const float *k = Ks + u * (dh + 1);
			float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
			uint32_t e = 0;
			for (; e + 4 <= dh; e += 4) {
				d0 += qw[e] * k[e];
				d1 += qw[e + 1] * k[e + 1];
				d2 += qw[e + 2] * k[e + 2];
				d3 += qw[e + 3] * k[e + 3];
			}
			for (; e < dh; e++)
				d0 += qw[e] * k[e];
			pw[u] = ((d0 + d1) + (d2 + d3)) * scale;
			mx = fmaxf(mx, pw[u]);
		}
		for (int o = 16; o > 0; o >>= 1)
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
		for (uint32_t u = lane; u < m; u += 32) {
			pw[u] = expf(pw[u] - mx);
			sum += pw[u];
		}
		for (int o = 16; o > 0; o >>= 1)
			sum += __shfl_xor_sync(0xffffffffu, sum, o);
		__syncwarp();
		for (uint32_t e = lane; e < dh; e += 32) {
			float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
			uint32_t u = 0;
			for (; u + 4 <= m; u += 4) {
				a0 += pw[u] * Vs[u * dh + e];
				a1 += pw[u + 1] * Vs[(u + 1) * dh + e];
				a2 += pw[u + 2] * Vs[(u + 2) * dh + e];
				a3 += pw[u + 3] * Vs[(u + 3) * dh + e];
			}
			for (; u < m; u++)
				a0 += pw[u] * Vs[u * dh + e];
			float acc = (a0 + a1) + (a2 + a3);
			out[(row0 + t) * D + h * dh + e] = __float2bfloat16(acc / sum);
		}
		__syncwarp();
	}
}

extern "C" int
hk_attend(void *st, const float *qkv, uint32_t ld, uint32_t nw, uint32_t n, uint32_t H, uint32_t dh,
          uint32_t D, int causal, void *out)
{
	size_t bytes = ((size_t)n * (dh + 1) + (size_t)n * dh + ATT_WARPS * ((size_t)dh + n)) *
	               sizeof(float);
	cudaError_t e;
	/* a few windows (a query's one) leave most of the GPU idle with a block per head: their
	 * positions are split over blocks, each loading only the keys its positions see */
	uint32_t per = (uint64_t)nw * H < ATT_FEW_BLOCKS ? ATT_WARPS : n;

	if (!nw || !n)
		return 0;
	dim3 grid(nw, H, (n + per - 1) / per);
	e = cudaFuncSetAttribute(k_attend, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
	if (e != cudaSuccess)
		return (int)e;
	k_attend<<<grid, ATT_WARPS * 32, bytes, (cudaStream_t)st>>>(qkv, ld, n, per, dh, D, causal,
	                                                            (bf16 *)out);
	return launched();
}

__global__ static void
k_silu_mul(const float *h13, uint64_t total, uint32_t F, bf16 *g)
{
	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < total;
	     i += (uint64_t)gridDim.x * blockDim.x) {
		uint64_t r = i / F, c = i % F;
		float a = h13[r * 2 * F + c], b = h13[r * 2 * F + F + c];
		g[i] = __float2bfloat16(a / (1.0f + expf(-a)) * b);
	}
}

extern "C" int
hk_silu_mul(void *st, const float *h13, uint32_t rows, uint32_t F, void *g)
{
	uint64_t total = (uint64_t)rows * F;

	k_silu_mul<<<grid_for(total), 256, 0, (cudaStream_t)st>>>(h13, total, F, (bf16 *)g);
	return launched();
}

__global__ static void
k_enc_gather(const float *x, const float *summary, uint64_t total, uint32_t S, uint32_t D, float *e)
{
	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < total;
	     i += (uint64_t)gridDim.x * blockDim.x) {
		uint64_t w = i / ((uint64_t)(S + 1) * D), rem = i % ((uint64_t)(S + 1) * D);
		uint64_t s = rem / D, c = rem % D;
		e[i] = s < S ? x[(w * 2 * S + S + s) * D + c] : summary[c];
	}
}

extern "C" int
hk_enc_gather(void *st, const float *x, const float *summary, uint32_t nw, uint32_t S, uint32_t D,
              float *e)
{
	uint64_t total = (uint64_t)nw * (S + 1) * D;

	k_enc_gather<<<grid_for(total), 256, 0, (cudaStream_t)st>>>(x, summary, total, S, D, e);
	return launched();
}

/* Block: one row (window w, position s) of kvl. */
__global__ static void
k_kvl_split(const float *kvl, uint32_t ld, uint32_t S, uint32_t hkv, uint32_t dh, uint32_t dr,
            float eps, float *K, float *V, float *L)
{
	__shared__ float sh[HEAD_THREADS];
	uint32_t w = blockIdx.x / (S + 1), s = blockIdx.x % (S + 1), kd = hkv * dh;
	const float *row = kvl + (uint64_t)blockIdx.x * ld;

	if (s == S) {
		for (uint32_t i = threadIdx.x; i < dr; i += blockDim.x)
			L[(uint64_t)w * dr + i] = row[2 * kd + i];
		return;
	}
	uint64_t o = ((uint64_t)w * S + s) * kd;
	for (uint32_t j = 0; j < hkv; j++) {
		float ss = 0, inv;
		for (uint32_t i = threadIdx.x; i < dh; i += blockDim.x)
			ss += row[j * dh + i] * row[j * dh + i];
		ss = block_sum(ss, sh);
		inv = 1.0f / sqrtf(ss / (float)dh + eps);
		for (uint32_t i = threadIdx.x; i < dh; i += blockDim.x)
			K[o + j * dh + i] = row[j * dh + i] * inv;
	}
	for (uint32_t i = threadIdx.x; i < kd; i += blockDim.x)
		V[o + i] = row[kd + i];
}

extern "C" int
hk_kvl_split(void *st, const float *kvl, uint32_t ld, uint32_t nw, uint32_t S, uint32_t hkv,
             uint32_t dh, uint32_t dr, float eps, float *K, float *V, float *L)
{
	if (!nw)
		return 0;
	k_kvl_split<<<nw *(S + 1), HEAD_THREADS, 0, (cudaStream_t)st>>>(kvl, ld, S, hkv, dh, dr,
	                                                                eps, K, V, L);
	return launched();
}

__global__ static void
k_to_bf16(const float *x, uint64_t n, bf16 *y)
{
	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
	     i += (uint64_t)gridDim.x * blockDim.x)
		y[i] = __float2bfloat16(x[i]);
}

extern "C" int
hk_to_bf16(void *st, const float *x, uint64_t n, void *y)
{
	k_to_bf16<<<grid_for(n), 256, 0, (cudaStream_t)st>>>(x, n, (bf16 *)y);
	return launched();
}

/* hsa_math.c's order: a higher score first, then the lower index. */
__device__ static bool
ranks_before(float as, int64_t aj, float bs, int64_t bj)
{
	return as > bs || (as == bs && aj < bj);
}

/*
 * Block (t, r): k rounds, each finding the best candidate ranked after the previous pick (every
 * thread over its share of the row, then a tree over the block), so the picks come out in
 * ranking order without marking anything.
 */
__global__ static void
k_topk(float *dots, uint32_t T, uint32_t hkv, uint64_t nc, uint32_t K, float scale, int64_t *idx,
       float *w)
{
	__shared__ float bs[ROW_THREADS];
	__shared__ int64_t bj[ROW_THREADS];
	__shared__ float pick_s[64];
	__shared__ int64_t pick_j[64];
	uint32_t t = blockIdx.x, r = blockIdx.y, k = nc < K ? (uint32_t)nc : K;
	float *row = dots + ((uint64_t)r * T + t) * nc;
	float prev_s = INFINITY;
	int64_t prev_j = -1;

	for (uint64_t j = threadIdx.x; j < nc; j += blockDim.x)
		row[j] *= scale;
	__syncthreads();
	for (uint32_t i = 0; i < k; i++) {
		float best_s = -INFINITY;
		int64_t best_j = -1;
		for (uint64_t j = threadIdx.x; j < nc; j += blockDim.x) {
			float s = isnan(row[j]) ? -INFINITY : row[j];
			if (!ranks_before(prev_s, prev_j, s, (int64_t)j))
				continue; /* ranked at or before the previous pick */
			if (best_j < 0 || ranks_before(s, (int64_t)j, best_s, best_j)) {
				best_s = s;
				best_j = (int64_t)j;
			}
		}
		bs[threadIdx.x] = best_s;
		bj[threadIdx.x] = best_j;
		__syncthreads();
		for (unsigned h = blockDim.x / 2; h > 0; h >>= 1) {
			if (threadIdx.x < h) {
				float os = bs[threadIdx.x + h];
				int64_t oj = bj[threadIdx.x + h];
				if (oj >= 0 &&
				    (bj[threadIdx.x] < 0 ||
				     ranks_before(os, oj, bs[threadIdx.x], bj[threadIdx.x]))) {
					bs[threadIdx.x] = os;
					bj[threadIdx.x] = oj;
				}
			}
			__syncthreads();
		}
		prev_s = bs[0];
		prev_j = bj[0];
		if (threadIdx.x == 0) {
			pick_s[i] = prev_s;
			pick_j[i] = prev_j;
		}
		__syncthreads();
	}
	if (threadIdx.x != 0)
		return;
	/* hsa_fusion_weights, softmax: pick_s[0] is the largest */
	uint64_t o = ((uint64_t)t * hkv + r) * K;
	float m = k ? pick_s[0] : 0, sum = 0;
	for (uint32_t i = 0; i < K; i++) {
		float v = 0;
		if (i < k && m != -INFINITY)
			v = m == INFINITY ? (pick_s[i] == INFINITY ? 1.0f : 0.0f)
			                  : expf(pick_s[i] - m);
		w[o + i] = v;
		idx[o + i] = i < k ? pick_j[i] : -1;
		sum += v;
	}
	for (uint32_t i = 0; i < k && sum > 0; i++)
		w[o + i] /= sum;
}

extern "C" int
hk_topk(void *st, float *dots, uint32_t T, uint32_t hkv, uint64_t nc, uint32_t K, float scale,
        int64_t *idx, float *w)
{
	dim3 grid(T, hkv);

	if (K > 64)
		return (int)cudaErrorInvalidValue;
	if (!T || !hkv)
		return 0;
	k_topk<<<grid, ROW_THREADS, 0, (cudaStream_t)st>>>(dots, T, hkv, nc, K, scale, idx, w);
	return launched();
}

/* Block (t, h); dynamic shared memory: S + dh floats. */
__global__ static void
k_fuse(const float *qa, const float *Ksel, const float *Vsel, const int64_t *idx, const float *w,
       uint32_t hkv, uint32_t hq, uint32_t dh, uint32_t S, uint32_t K, float scale, float *O)
{
	extern __shared__ float fs[];
	float *a = fs, *q = fs + S;
	uint32_t t = blockIdx.x, h = blockIdx.y, r = h / (hq / hkv), row = hkv * dh;
	uint64_t slot0 = ((uint64_t)t * hkv + r) * K;
	float *o = O + ((uint64_t)t * hq + h) * dh;

	for (uint32_t e = threadIdx.x; e < dh; e += blockDim.x) {
		q[e] = qa[((uint64_t)t * hq + h) * dh + e];
		o[e] = 0;
	}
	__syncthreads();
	for (uint32_t i = 0; i < K && idx[slot0 + i] >= 0; i++) {
		const float *Kj = Ksel + (slot0 + i) * S * row + r * dh;
		const float *Vj = Vsel + (slot0 + i) * S * row + r * dh;
		float mx = -INFINITY, sum = 0, wi = w[slot0 + i];
		for (uint32_t s = threadIdx.x; s < S; s += blockDim.x) {
			float d = 0;
			for (uint32_t e = 0; e < dh; e++)
				d += q[e] * Kj[(uint64_t)s * row + e];
			a[s] = d * scale;
		}
		__syncthreads();
		/* hsa_chunk_softmax, each thread over the S scores (S is small) */
		for (uint32_t s = 0; s < S; s++)
			mx = fmaxf(mx, a[s]);
		for (uint32_t s = 0; s < S; s++)
			sum += expf(a[s] - mx);
		for (uint32_t e = threadIdx.x; e < dh; e += blockDim.x) {
			float acc = 0;
			for (uint32_t s = 0; s < S; s++)
				acc += wi * (expf(a[s] - mx) / sum) * Vj[(uint64_t)s * row + e];
			o[e] += acc;
		}
		__syncthreads();
	}
}

extern "C" int
hk_fuse(void *st, const float *qa, const float *Ksel, const float *Vsel, const int64_t *idx,
        const float *w, uint32_t T, uint32_t hkv, uint32_t hq, uint32_t dh, uint32_t S, uint32_t K,
        float scale, float *O)
{
	dim3 grid(T, hq);

	if (!T)
		return 0;
	k_fuse<<<grid, HEAD_THREADS, ((size_t)S + dh) * sizeof(float), (cudaStream_t)st>>>(
	        qa, Ksel, Vsel, idx, w, hkv, hq, dh, S, K, scale, O);
	return launched();
}
