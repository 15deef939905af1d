/*
 * cuda_attend.cu: the CUDA backend's attention kernels: in-chunk attention for all query heads of
 * a kv head, and the fusion of the selected chunks' outputs by their weights; and cuk_init, which
 * readies the attention kernel for the device. Every launcher enqueues on the caller's stream and
 * returns the launch's error; nothing here allocates or synchronises.
 *
 * All arithmetic is fp32 on fp16/bf16 inputs. Results match the CPU backend to rounding: the order
 * of additions differs (tree reductions here, sequential there), never the math.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_dev.h"
#include "cuda_int.h"

/* ---- in-chunk attention ---- */

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

/*
 * One block per (rank, pair): stages the chunk's K and V of the pair's kv head and the queries of
 * its G heads in shared memory, then computes the logits, each head's softmax and the outputs, in
 * tiles of T heads by T positions or columns (cuk_attend picks T).
 *
 * It stays one function of some 160 lines: every phase reads the chunk staged in shared memory,
 * which lives only as long as the block. Split into kernels, each phase would read K or V from
 * global memory again and pay a launch, on the path of every call; the kernel is tuned as it is
 * (bench/bench_kernels.c times it).
 */
template <int DT, int T>
__global__ void __launch_bounds__(1024) attend_kernel(struct cuk_attend_args a)
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

	/*
	 * Logits in tiles of T heads by T positions (heads g, g + tg, ..., positions s, s + ts,
	 * ..., so a warp's rows of K are neighbours): each value read from shared memory serves T
	 * products. Odd and even elements add up apart, as the untiled loop did.
	 */
	const uint32_t tg = (G + T - 1) / T, ts = (S + T - 1) / T;
	for (uint32_t x = threadIdx.x; x < tg * ts; x += blockDim.x) {
		uint32_t gi[T], si[T];
		const float *q[T];
		const uint16_t *k[T];
		float ea[T][T], eb[T][T];
#pragma unroll
		for (int u = 0; u < T; u++) {
			gi[u] = x / ts + u * tg;
			si[u] = x % ts + u * ts;
			q[u] = qs + (size_t)(gi[u] < G ? gi[u] : gi[0]) * d_h;
			k[u] = Ks + (size_t)(si[u] < S ? si[u] : si[0]) * R;
#pragma unroll
			for (int v = 0; v < T; v++)
				ea[u][v] = eb[u][v] = 0.0f;
		}
		uint32_t c = 0;
		for (; c + 2 <= d_h; c += 2) {
			float kl[T], kh[T], ql[T], qh[T];
#pragma unroll
			for (int u = 0; u < T; u++) {
				uint32_t w = *(const uint32_t *)(k[u] + c);
				kl[u] = to_f<DT>((uint16_t)(w & 0xffff));
				kh[u] = to_f<DT>((uint16_t)(w >> 16));
				ql[u] = q[u][c];
				qh[u] = q[u][c + 1];
			}
#pragma unroll
			for (int u = 0; u < T; u++)
#pragma unroll
				for (int v = 0; v < T; v++) {
					ea[u][v] += ql[u] * kl[v];
					eb[u][v] += qh[u] * kh[v];
				}
		}
#pragma unroll
		for (int u = 0; u < T; u++)
#pragma unroll
			for (int v = 0; v < T; v++) {
				if (c < d_h)
					ea[u][v] += q[u][c] * to_f<DT>(k[v][c]);
				if (gi[u] < G && si[v] < S)
					lg[(size_t)gi[u] * S + si[v]] =
					        (ea[u][v] + eb[u][v]) * a.a_scale;
			}
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

	/* outputs in tiles of T heads by T columns (g, g + tg, ...; c, c + tc, ...) */
	float *o = a.partial + ((size_t)p * a.k + i) * G * d_h;
	const uint32_t tc = (d_h + T - 1) / T;
	for (uint32_t x = threadIdx.x; x < tg * tc; x += blockDim.x) {
		uint32_t gi[T], ci[T];
		const float *l[T];
		const uint16_t *v[T];
		float acc[T][T];
#pragma unroll
		for (int u = 0; u < T; u++) {
			gi[u] = x / tc + u * tg;
			ci[u] = x % tc + u * tc;
			l[u] = lg + (size_t)(gi[u] < G ? gi[u] : gi[0]) * S;
			v[u] = Vs + (ci[u] < d_h ? ci[u] : ci[0]);
#pragma unroll
			for (int w = 0; w < T; w++)
				acc[u][w] = 0.0f;
		}
		for (uint32_t s = 0; s < S; s++) {
			float lw[T], vw[T];
#pragma unroll
			for (int u = 0; u < T; u++) {
				lw[u] = l[u][s];
				vw[u] = to_f<DT>(v[u][(size_t)s * d_h]);
			}
#pragma unroll
			for (int u = 0; u < T; u++)
#pragma unroll
				for (int w = 0; w < T; w++)
					acc[u][w] += lw[u] * vw[w];
		}
#pragma unroll
		for (int u = 0; u < T; u++)
#pragma unroll
			for (int w = 0; w < T; w++)
				if (gi[u] < G && ci[w] < d_h)
					o[(size_t)gi[u] * d_h + ci[w]] = acc[u][w];
	}
}

__global__ void
fuse_kernel(struct cuk_fuse_args a)
{
	__shared__ float w[256]; /* SPEC_TOPK_MAX */
	uint32_t p = blockIdx.y, n = a.G * a.d_h;
	size_t at = (size_t)p * a.k;
	float *out = a.out + (size_t)p * n; /* pairs are (t, r) and heads r*G.. are contiguous */

	/* a rank with no chunk, or weight 0, adds nothing (its partial was never written) */
	for (uint32_t i = threadIdx.x; i < a.k; i += blockDim.x)
		w[i] = a.sel[at + i] < 0 ? 0.0f : a.weight[at + i];
	__syncthreads();
	for (uint32_t x = blockIdx.x * blockDim.x + threadIdx.x; x < n;
	     x += gridDim.x * blockDim.x) {
		const float *part = a.partial + at * n + x;
		float acc = 0.0f;
#pragma unroll 8
		for (uint32_t i = 0; i < a.k; i++) {
			float v = part[(size_t)i * n];
			acc += w[i] != 0.0f ? w[i] * v : 0.0f;
		}
		out[x] = acc;
	}
}

/* ---- launchers ---- */

/* The device's multiprocessors, for the attention's launch shape. */
static int n_sms = 132;

extern "C" cudaError_t
cuk_init(void)
{
	cudaError_t e;
	int v = (int)cuk_attend_smem_max(), dev = 0;

	if ((e = cudaGetDevice(&dev)) != cudaSuccess ||
	    (e = cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, dev)) !=
	            cudaSuccess)
		return e;

	if ((e = cudaFuncSetAttribute(attend_kernel<HSA_F16_CODE, 1>,
	                              cudaFuncAttributeMaxDynamicSharedMemorySize, v)) !=
	            cudaSuccess ||
	    (e = cudaFuncSetAttribute(attend_kernel<HSA_F16_CODE, 2>,
	                              cudaFuncAttributeMaxDynamicSharedMemorySize, v)) !=
	            cudaSuccess ||
	    (e = cudaFuncSetAttribute(attend_kernel<HSA_BF16_CODE, 1>,
	                              cudaFuncAttributeMaxDynamicSharedMemorySize, v)) !=
	            cudaSuccess)
		return e;
	return cudaFuncSetAttribute(attend_kernel<HSA_BF16_CODE, 2>,
	                            cudaFuncAttributeMaxDynamicSharedMemorySize, v);
}

extern "C" cudaError_t
cuk_attend(cudaStream_t st, const struct cuk_attend_args *a)
{
	dim3 grid(a->k, a->nt * a->h_kv);
	size_t smem = cuk_attend_smem(a->S, a->d_h, a->G);
	/*
	 * few blocks (one query token): wide ones, so each block's chains of work are short; many:
	 * narrower ones that work in 2 x 2 tiles, reading shared memory half as often
	 */
	bool few = (size_t)grid.x * grid.y <= (size_t)n_sms;
	if (a->dtype == HSA_F16_CODE && few)
		attend_kernel<HSA_F16_CODE, 1><<<grid, 1024, smem, st>>>(*a);
	else if (a->dtype == HSA_F16_CODE)
		attend_kernel<HSA_F16_CODE, 2><<<grid, 256, smem, st>>>(*a);
	else if (few)
		attend_kernel<HSA_BF16_CODE, 1><<<grid, 1024, smem, st>>>(*a);
	else
		attend_kernel<HSA_BF16_CODE, 2><<<grid, 256, smem, st>>>(*a);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_fuse(cudaStream_t st, const struct cuk_fuse_args *a)
{
	dim3 grid((a->G * a->d_h + 127) / 128, a->nt * a->h_kv);
	fuse_kernel<<<grid, 128, 0, st>>>(*a);
	return cudaGetLastError();
}
