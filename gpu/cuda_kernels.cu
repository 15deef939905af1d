/*
 * cuda_kernels.cu: the CUDA backend's own kernels (the scoring GEMM is cuBLAS's): top-k over
 * landmark scores with visibility, ties and NaN as HSA.md and the CPU backend rank them; in-chunk
 * attention for all query heads of a kv head; fusion of the selected chunks' outputs; the gather
 * of missing chunks from mapped pinned host memory. Every launcher enqueues on the caller's stream
 * and returns the launch's error; nothing here allocates or synchronises.
 *
 * All arithmetic is fp32 on fp16/bf16 inputs. Results match the CPU backend to rounding: the
 * order of additions differs (tree reductions here, sequential there), never the math.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_int.h"

#define HSA_F16_CODE  1 /* enum hsa_dtype, without including C headers into device code */
#define HSA_BF16_CODE 2

/* ---- top-k ---- */

__device__ static inline uint32_t
score_bits(float s)
{
	uint32_t b = __float_as_uint(s);
	return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ static inline float
bits_score(uint32_t u)
{
	return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

__device__ static inline uint64_t
make_key(float s, uint64_t j)
{
	if (isnan(s))
		s = -INFINITY;
	s += 0.0f; /* -0 ranks as +0, as in the CPU's comparisons */
	return ((uint64_t)score_bits(s) << 32) | (uint64_t)(0xffffffffu - (uint32_t)j);
}

/* Sorts n (a power of two) keys in shared memory, largest first. */
__device__ static void
bitonic_desc(uint64_t *s, uint32_t n)
{
	for (uint32_t size = 2; size <= n; size <<= 1) {
		for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
			for (uint32_t i = threadIdx.x; i < n / 2; i += blockDim.x) {
				uint32_t lo = 2 * stride * (i / stride) + (i % stride);
				uint32_t hi = lo + stride;
				uint64_t a = s[lo], b = s[hi];
				bool desc = (lo & size) == 0;
				if ((a < b) == desc) {
					s[lo] = b;
					s[hi] = a;
				}
			}
			__syncthreads();
		}
	}
}

__global__ void
topk_kernel(struct cuk_topk_args a)
{
	extern __shared__ uint64_t keys[];
	uint32_t g = blockIdx.x, p = blockIdx.y, t = p / a.h_kv, r = p % a.h_kv;
	uint64_t base = (uint64_t)g * a.group;

	for (uint32_t i = threadIdx.x; i < a.group; i += blockDim.x) {
		uint64_t at = base + i, key = 0;
		if (at < a.len) {
			if (a.scores != NULL) {
				if (at < a.vis[t]) {
					size_t col = (size_t)r * a.nsplit * a.nt + t;
					float c0 = a.scores[col * a.ld + at], d = c0;
					/* an infinite first part is the limit; the others only add NaN */
					if (!isinf(c0))
						for (uint32_t sp = 1; sp < a.nsplit; sp++)
							d += a.scores[(col + (size_t)sp * a.nt) *
							              a.ld + at];
					key = make_key(d * a.unscale[p] * a.r_scale, at);
				}
			} else {
				key = a.keys_in[(size_t)p * a.len + at];
			}
		}
		keys[i] = key;
	}
	__syncthreads();
	bitonic_desc(keys, a.group);

	if (a.n_groups > 1) {
		for (uint32_t i = threadIdx.x; i < a.k; i += blockDim.x)
			a.keys_out[((size_t)p * a.n_groups + g) * a.k + i] = keys[i];
		return;
	}

	/* final: the selection, best first, and its weights */
	__shared__ float sc[256];
	__shared__ int64_t jj[256];
	__shared__ float wv[256];
	__shared__ uint32_t order[256];
	__shared__ uint32_t kk_s;
	size_t out = (size_t)p * a.k;
	if (threadIdx.x == 0)
		kk_s = 0;
	__syncthreads();
	for (uint32_t i = threadIdx.x; i < a.k; i += blockDim.x) {
		uint64_t key = keys[i];
		sc[i] = key != 0 ? bits_score((uint32_t)(key >> 32)) : -INFINITY;
		jj[i] = key != 0 ? (int64_t)(0xffffffffu - (uint32_t)key) : -1;
		if (key != 0)
			atomicMax(&kk_s, i + 1);
	}
	__syncthreads();
	uint32_t kk = kk_s;
	if (a.stickbreak) {
		/* most recent first: position of each selected chunk by decreasing index */
		for (uint32_t i = threadIdx.x; i < kk; i += blockDim.x) {
			uint32_t pos = 0;
			for (uint32_t m = 0; m < kk; m++)
				pos += jj[m] > jj[i];
			order[pos] = i;
		}
		__syncthreads();
		if (threadIdx.x == 0) {
			float rest = 1.0f;
			for (uint32_t n = 0; n < kk; n++) {
				uint32_t at = order[n];
				float x = sc[at], e = expf(-fabsf(x));
				float sig = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
				float sig_neg = x >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
				a.weight[out + at] = sig * rest;
				rest *= sig_neg;
			}
		}
	} else if (threadIdx.x == 0 && kk > 0) {
		float m = sc[0], sum = 0.0f;
		for (uint32_t i = 0; i < kk; i++) {
			float w = m == -INFINITY ? 0.0f
			          : m == INFINITY ? (sc[i] == INFINITY ? 1.0f : 0.0f)
			                          : expf(sc[i] - m);
			wv[i] = w;
			sum += w;
		}
		for (uint32_t i = 0; i < kk; i++)
			a.weight[out + i] = m == -INFINITY ? 0.0f : wv[i] / sum;
	}
	for (uint32_t i = threadIdx.x; i < a.k; i += blockDim.x) {
		a.sel[out + i] = jj[i];
		a.score[out + i] = sc[i];
		if (i >= kk)
			a.weight[out + i] = 0.0f;
	}
}

/* ---- in-chunk attention ---- */

template <int DT>
__device__ static inline float
to_f(uint16_t u)
{
	if (DT == HSA_F16_CODE)
		return __half2float(__ushort_as_half(u));
	return __bfloat162float(__ushort_as_bfloat16(u));
}

/* K rows in shared memory are padded to an even length whose half is odd: no bank conflicts. */
__host__ __device__ static inline uint32_t
k_row(uint32_t d_h)
{
	uint32_t r = (d_h + 1) & ~1u;
	return (r / 2) % 2 == 1 ? r : r + 2;
}

/* Shared memory of the attention kernel: q and logits (fp32), then K and V, each 16-aligned. */
__host__ __device__ static inline size_t
al16(size_t x)
{
	return (x + 15) & ~(size_t)15;
}

size_t
cuk_attend_smem(uint32_t S, uint32_t d_h, uint32_t G)
{
	return al16((size_t)G * d_h * 4 + (size_t)G * S * 4) + al16((size_t)S * k_row(d_h) * 2) +
	       (size_t)S * d_h * 2;
}

size_t
cuk_attend_smem_max(void)
{
	return 200 * 1024;
}

template <int DT>
__global__ void
attend_kernel(struct cuk_attend_args a)
{
	extern __shared__ float smem[];
	uint32_t i = blockIdx.x, p = blockIdx.y, t = p / a.h_kv, r = p % a.h_kv;
	const uint16_t *kv = (const uint16_t *)a.chunk[(size_t)p * a.k + i];
	if (kv == NULL)
		return;
	uint32_t S = a.S, d_h = a.d_h, G = a.G, R = k_row(d_h);
	float *qs = smem, *lg = qs + (size_t)G * d_h;
	uint16_t *Ks = (uint16_t *)((char *)smem + al16((size_t)G * d_h * 4 + (size_t)G * S * 4));
	uint16_t *Vs = (uint16_t *)((char *)Ks + al16((size_t)S * R * 2));
	size_t stride = (size_t)a.h_kv * d_h, h0 = (size_t)t * a.h_kv * G + (size_t)r * G;
	const uint16_t *K = kv + (size_t)r * d_h, *V = K + (size_t)S * stride;

	for (uint32_t x = threadIdx.x; x < G * d_h; x += blockDim.x)
		qs[x] = a.qa[h0 * d_h + x];
	if (d_h % 8 == 0) {
		uint32_t per = d_h / 8;
		for (uint32_t x = threadIdx.x; x < S * per; x += blockDim.x) {
			uint32_t s = x / per, c = (x % per) * 8;
			uint4 kw = *(const uint4 *)(K + s * stride + c);
			uint4 vw = *(const uint4 *)(V + s * stride + c);
			uint32_t *kd = (uint32_t *)(Ks + (size_t)s * R + c);
			kd[0] = kw.x;
			kd[1] = kw.y;
			kd[2] = kw.z;
			kd[3] = kw.w;
			*(uint4 *)(Vs + (size_t)s * d_h + c) = vw;
		}
	} else {
		for (uint32_t x = threadIdx.x; x < S * d_h; x += blockDim.x) {
			uint32_t s = x / d_h, c = x % d_h;
			Ks[(size_t)s * R + c] = K[s * stride + c];
			Vs[(size_t)s * d_h + c] = V[s * stride + c];
		}
	}
	__syncthreads();

	for (uint32_t x = threadIdx.x; x < G * S; x += blockDim.x) {
		uint32_t g = x / S, s = x % S;
		const float *q = qs + (size_t)g * d_h;
		const uint16_t *k = Ks + (size_t)s * R;
		float acc0 = 0.0f, acc1 = 0.0f;
		uint32_t c = 0;
		for (; c + 2 <= d_h; c += 2) {
			uint32_t w = *(const uint32_t *)(k + c);
			acc0 += q[c] * to_f<DT>((uint16_t)(w & 0xffff));
			acc1 += q[c + 1] * to_f<DT>((uint16_t)(w >> 16));
		}
		if (c < d_h)
			acc0 += q[c] * to_f<DT>(k[c]);
		lg[x] = (acc0 + acc1) * a.a_scale;
	}
	__syncthreads();

	uint32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
	for (uint32_t g = warp; g < G; g += n_warps) {
		float *l = lg + (size_t)g * S, m = -INFINITY, sum = 0.0f;
		for (uint32_t s = lane; s < S; s += 32)
			m = fmaxf(m, l[s]);
		for (int o = 16; o > 0; o >>= 1)
			m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
		if (a.off_by_one && m < 0.0f)
			m = 0.0f;
		for (uint32_t s = lane; s < S; s += 32) {
			float e = expf(l[s] - m);
			l[s] = e;
			sum += e;
		}
		for (int o = 16; o > 0; o >>= 1)
			sum += __shfl_xor_sync(0xffffffffu, sum, o);
		if (a.off_by_one)
			sum += expf(-m);
		float inv = 1.0f / sum;
		float *at = a.attn != NULL ? a.attn + ((h0 + g) * a.k + i) * S : NULL;
		for (uint32_t s = lane; s < S; s += 32) {
			l[s] *= inv;
			if (at != NULL)
				at[s] = l[s];
		}
	}
	__syncthreads();

	float *o = a.partial + ((size_t)p * a.k + i) * G * d_h;
	for (uint32_t x = threadIdx.x; x < G * d_h; x += blockDim.x) {
		uint32_t g = x / d_h, c = x % d_h;
		const float *l = lg + (size_t)g * S;
		float acc = 0.0f;
		for (uint32_t s = 0; s < S; s++)
			acc += l[s] * to_f<DT>(Vs[(size_t)s * d_h + c]);
		o[x] = acc;
	}
}

__global__ void
fuse_kernel(struct cuk_fuse_args a)
{
	uint32_t p = blockIdx.x, n = a.G * a.d_h;
	size_t at = (size_t)p * a.k;
	float *out = a.out + (size_t)p * n; /* pairs are (t, r) and heads r*G.. are contiguous */

	for (uint32_t x = threadIdx.x; x < n; x += blockDim.x) {
		float acc = 0.0f;
		for (uint32_t i = 0; i < a.k; i++) {
			float w = a.weight[at + i];
			if (a.sel[at + i] < 0 || w == 0.0f)
				continue;
			acc += w * a.partial[(at + i) * n + x];
		}
		out[x] = acc;
	}
}

/* ---- gather ---- */

__global__ void
gather_kernel(const struct cuk_copy *copies, size_t bytes)
{
	const struct cuk_copy c = copies[blockIdx.x];
	size_t n16 = bytes / 16;
	const uint4 *s = (const uint4 *)c.src;
	uint4 *d = (uint4 *)c.dst;

	/* four loads in flight per thread before the first store: PCIe reads are slow to return */
	size_t x = threadIdx.x, step = blockDim.x;
	for (; x + 3 * step < n16; x += 4 * step) {
		uint4 v0 = s[x], v1 = s[x + step], v2 = s[x + 2 * step], v3 = s[x + 3 * step];
		d[x] = v0;
		d[x + step] = v1;
		d[x + 2 * step] = v2;
		d[x + 3 * step] = v3;
	}
	for (; x < n16; x += step)
		d[x] = s[x];
	for (size_t b = n16 * 16 + threadIdx.x * 4; b < bytes; b += step * 4)
		*(uint32_t *)((char *)c.dst + b) = *(const uint32_t *)((const char *)c.src + b);
}

/* ---- launchers ---- */

extern "C" cudaError_t
cuk_init(void)
{
	cudaError_t e;
	int v = (int)cuk_attend_smem_max();

	if ((e = cudaFuncSetAttribute(attend_kernel<HSA_F16_CODE>,
	                              cudaFuncAttributeMaxDynamicSharedMemorySize, v)) != cudaSuccess)
		return e;
	return cudaFuncSetAttribute(attend_kernel<HSA_BF16_CODE>,
	                            cudaFuncAttributeMaxDynamicSharedMemorySize, v);
}

extern "C" cudaError_t
cuk_topk(cudaStream_t st, const struct cuk_topk_args *a)
{
	uint32_t threads = a->group / 2 < 1024 ? a->group / 2 : 1024;
	if (threads < 256)
		threads = 256;
	dim3 grid(a->n_groups, a->nt * a->h_kv);
	topk_kernel<<<grid, threads, a->group * sizeof(uint64_t), st>>>(*a);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_attend(cudaStream_t st, const struct cuk_attend_args *a)
{
	dim3 grid(a->k, a->nt * a->h_kv);
	size_t smem = cuk_attend_smem(a->S, a->d_h, a->G);
	if (a->dtype == HSA_F16_CODE)
		attend_kernel<HSA_F16_CODE><<<grid, 256, smem, st>>>(*a);
	else
		attend_kernel<HSA_BF16_CODE><<<grid, 256, smem, st>>>(*a);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_fuse(cudaStream_t st, const struct cuk_fuse_args *a)
{
	fuse_kernel<<<a->nt * a->h_kv, 256, 0, st>>>(*a);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_gather(cudaStream_t st, const struct cuk_copy *copies, uint32_t n, size_t bytes)
{
	if (n == 0)
		return cudaSuccess;
	gather_kernel<<<n, 256, 0, st>>>(copies, bytes);
	return cudaGetLastError();
}
