/*
 * cuda_select.cu: the CUDA backend's selection kernels: landmark scores (beside cuBLAS's, for many
 * tokens) and the top-k over them with visibility, ties and NaN as hsamem(7) and the CPU backend
 * rank them, with the selection's fusion weights. cuda_attend.cu holds the attention,
 * cuda_gather.cu the gathers. Every launcher enqueues on the caller's stream and returns the
 * launch's error; nothing here allocates or synchronises.
 *
 * All arithmetic is fp32 on fp16/bf16 inputs (cuBLAS multiplies f16 landmarks by the queries'
 * f16 high and low parts, products exact in fp32). Results match the CPU backend to rounding:
 * the order of additions differs (tree reductions here, sequential there), never the math.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_dev.h"
#include "cuda_int.h"

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

/* A score as a 32-bit key: NaN ranks as -inf, -0 as +0; never 0 (0 is "not visible"). */
__device__ static inline uint32_t
score_key(float s)
{
	if (isnan(s))
		s = -INFINITY;
	s += 0.0f; /* -0 ranks as +0, as in the CPU's comparisons */
	return score_bits(s);
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

/*
 * Scoring: a block stages SC_ROWS landmark rows of one kv head of one segment's memory, SC_COLS
 * columns at a time, in shared memory (rows padded to an odd number of words: no bank
 * conflicts), with the segment's queries beside them; thread (row, sub) accumulates the dot
 * products of its row with tokens sub, sub + SC_SUBS, ... (TPT of them) in fp32.
 */
#define SC_ROWS    64u
#define SC_COLS    128u
#define SC_SUBS    4u
#define SC_THREADS (SC_ROWS * SC_SUBS)
#define SC_W       (SC_COLS / 2 + 1) /* words per staged row */
#define SC_TOK     CUK_SEG_TOKENS

template <int DT, int TPT>
__global__ void
__launch_bounds__(SC_THREADS) score_kernel(struct cuk_score_args a)
{
	__shared__ uint32_t tile[SC_ROWS * SC_W];
	__shared__ __align__(16) float qs[SC_TOK * SC_COLS];
	const struct cuk_seg sg = a.seg[blockIdx.z];
	uint32_t r = blockIdx.y, tid = threadIdx.x, lr = tid % SC_ROWS, sub = tid / SC_ROWS;
	uint64_t row0 = (uint64_t)blockIdx.x * SC_ROWS;
	if (row0 >= sg.len || sg.gemm)
		return;
	const uint16_t *base = sg.lmk + (size_t)r * a.d_rh;
	const float *qr = a.qr + (size_t)sg.t0 * a.d_r;
	const uint32_t *vis = a.vis + sg.t0;
	uint32_t *keys = a.keys + (size_t)sg.t0 * a.h_kv * a.ld;
	bool vec = a.d_r % 8 == 0 && a.d_rh % 8 == 0;
	float acc[TPT];

#pragma unroll
	for (int j = 0; j < TPT; j++)
		acc[j] = 0.0f;
	for (uint32_t c0 = 0; c0 < a.d_rh; c0 += SC_COLS) {
		uint32_t w = a.d_rh - c0 < SC_COLS ? a.d_rh - c0 : SC_COLS, we = (w + 1) & ~1u;
		__syncthreads();
		if (vec) {
			uint32_t per = w / 8;
			for (uint32_t x = tid; x < SC_ROWS * per; x += SC_THREADS) {
				uint32_t i = x / per, c = (x % per) * 8;
				uint4 v = make_uint4(0, 0, 0, 0);
				if (row0 + i < sg.len)
					v = *(const uint4 *)(base + (row0 + i) * a.d_r + c0 + c);
				uint32_t *d = tile + i * SC_W + c / 2;
				d[0] = v.x;
				d[1] = v.y;
				d[2] = v.z;
				d[3] = v.w;
			}
		} else {
			uint16_t *t16 = (uint16_t *)tile;
			for (uint32_t x = tid; x < SC_ROWS * we; x += SC_THREADS) {
				uint32_t i = x / we, c = x % we;
				uint16_t v = 0;
				if (c < w && row0 + i < sg.len)
					v = base[(row0 + i) * a.d_r + c0 + c];
				t16[i * SC_W * 2 + c] = v;
			}
		}
		for (uint32_t x = tid; x < sg.nt * we; x += SC_THREADS) {
			uint32_t t = x / we, c = x % we;
			qs[t * SC_COLS + c] =
			        c < w ? qr[(size_t)t * a.d_r + (size_t)r * a.d_rh + c0 + c] : 0.0f;
		}
		__syncthreads();
		const uint32_t *kr = tile + lr * SC_W;
		for (uint32_t c = 0; c < we; c += 2) {
			uint32_t kw = kr[c / 2];
			float k0 = to_f<DT>((uint16_t)(kw & 0xffff)),
			      k1 = to_f<DT>((uint16_t)(kw >> 16));
#pragma unroll
			for (int j = 0; j < TPT; j++) {
				uint32_t t = sub + SC_SUBS * j;
				if (t < sg.nt) {
					float2 qv = *(const float2 *)(qs + t * SC_COLS + c);
					acc[j] = fmaf(qv.x, k0, acc[j]);
					acc[j] = fmaf(qv.y, k1, acc[j]);
				}
			}
		}
	}
	uint64_t row = row0 + lr;
	if (row >= sg.len)
		return;
#pragma unroll
	for (int j = 0; j < TPT; j++) {
		uint32_t t = sub + SC_SUBS * j;
		if (t < sg.nt)
			keys[((size_t)t * a.h_kv + r) * a.ld + row] =
			        row < vis[t] ? score_key(acc[j] * a.r_scale) : 0u;
	}
}

/*
 * Scoring for segments of few tokens (at most GV_TOK), where reading the landmarks is all the
 * cost: no staging, every lane streams 16 bytes of a row at a time. LPR lanes hold one row of
 * one kv head (PIECES pieces of 8 elements each), so a warp scores 32 / LPR rows a step,
 * GV_UNROLL steps in flight; each lane keeps its query elements of every token in registers, and
 * the row's lanes add their partial dot products by shuffles. The landmark bytes then move at
 * close to the memory's rate.
 */
#define GV_TOK     4u
#define GV_THREADS 256u
#define GV_UNROLL  4u
#define GV_BLOCKS  1024u /* per (kv head, segment): enough to fill the device several times */

template <int DT, int NT, int LPR, int PIECES>
__global__ void
__launch_bounds__(GV_THREADS) score_gv_kernel(struct cuk_score_args a)
{
	const struct cuk_seg sg = a.seg[blockIdx.z];
	const uint32_t r = blockIdx.y, lane = threadIdx.x % 32, sub = lane % LPR;
	const uint32_t rows_step = 32 / LPR;
	const uint64_t warp = ((uint64_t)blockIdx.x * GV_THREADS + threadIdx.x) / 32;
	const uint64_t n_warps = (uint64_t)gridDim.x * GV_THREADS / 32;
	const uint16_t *base = sg.lmk + (size_t)r * a.d_rh + sub * 8;
	float q[NT][PIECES][8];
	uint32_t vis[NT];

	if (sg.nt > NT || sg.gemm)
		return; /* the launcher sends such segments to score_kernel, or cuBLAS has them */
#pragma unroll
	for (int t = 0; t < NT; t++) {
		vis[t] = (uint32_t)t < sg.nt ? a.vis[sg.t0 + t] : 0;
		const float *qt = a.qr + (size_t)(sg.t0 + t) * a.d_r + (size_t)r * a.d_rh + sub * 8;
#pragma unroll
		for (int pc = 0; pc < PIECES; pc++)
#pragma unroll
			for (int e = 0; e < 8; e++)
				q[t][pc][e] = (uint32_t)t < sg.nt ? qt[pc * LPR * 8 + e] : 0.0f;
	}
	for (uint64_t row0 = warp * rows_step * GV_UNROLL; row0 < sg.len;
	     row0 += n_warps * rows_step * GV_UNROLL) {
		uint4 v[GV_UNROLL][PIECES];
#pragma unroll
		for (uint32_t u = 0; u < GV_UNROLL; u++) {
			uint64_t row = row0 + u * rows_step + lane / LPR;
#pragma unroll
			for (int pc = 0; pc < PIECES; pc++)
				v[u][pc] = row < sg.len ? *(const uint4 *)(base + row * a.d_r +
				                                           pc * LPR * 8)
				                        : make_uint4(0, 0, 0, 0);
		}
#pragma unroll
		for (uint32_t u = 0; u < GV_UNROLL; u++) {
			uint64_t row = row0 + u * rows_step + lane / LPR;
			float acc[NT];
#pragma unroll
			for (int t = 0; t < NT; t++)
				acc[t] = 0.0f;
#pragma unroll
			for (int pc = 0; pc < PIECES; pc++) {
				uint32_t w[4] = {v[u][pc].x, v[u][pc].y, v[u][pc].z, v[u][pc].w};
#pragma unroll
				for (int e = 0; e < 4; e++) {
					float k0 = to_f<DT>((uint16_t)(w[e] & 0xffff));
					float k1 = to_f<DT>((uint16_t)(w[e] >> 16));
#pragma unroll
					for (int t = 0; t < NT; t++) {
						acc[t] = fmaf(q[t][pc][2 * e], k0, acc[t]);
						acc[t] = fmaf(q[t][pc][2 * e + 1], k1, acc[t]);
					}
				}
			}
#pragma unroll
			for (int t = 0; t < NT; t++)
#pragma unroll
				for (int o = LPR / 2; o > 0; o >>= 1)
					acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
			if (sub == 0 && row < sg.len) {
#pragma unroll
				for (int t = 0; t < NT; t++)
					if ((uint32_t)t < sg.nt)
						a.keys[((size_t)(sg.t0 + t) * a.h_kv + r) * a.ld +
						       row] =
						        row < vis[t] ? score_key(acc[t] * a.r_scale)
						                     : 0u;
			}
		}
	}
}

/* The split of a segment's fp32 queries into f16 high and low parts, for cuBLAS. */
__global__ void
split_kernel(const float *qr, uint16_t *qh, uint32_t nt, uint32_t d_r)
{
	size_t n = (size_t)nt * d_r;

	for (size_t x = (size_t)blockIdx.x * blockDim.x + threadIdx.x; x < n;
	     x += (size_t)gridDim.x * blockDim.x) {
		float q = qr[x];
		__half hi = __float2half_rn(q);
		qh[x] = __half_as_ushort(hi);
		qh[n + x] = __half_as_ushort(__float2half_rn(q - __half2float(hi)));
	}
}

/*
 * cuBLAS's two products of each row, high and low, added into the token's keys. A row whose
 * products are not finite (a landmark holding inf or NaN, where the low part's zero times inf
 * would be NaN) is scored again here as cuk_score does, so such rows rank as the CPU ranks them.
 */
template <int DT>
__global__ void
gemm_keys_kernel(struct cuk_gemm_args a)
{
	uint64_t row = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	uint32_t t = blockIdx.y, r = blockIdx.z;

	if (row >= a.len)
		return;
	const float *c = a.c + (size_t)r * a.ldc * 2 * a.nt;
	float hi = c[(size_t)t * a.ldc + row], lo = c[(size_t)(a.nt + t) * a.ldc + row],
	      s = hi + lo;
	if (!isfinite(hi) || !isfinite(lo)) {
		const uint16_t *l = a.lmk + row * a.d_r + (size_t)r * a.d_rh;
		const float *q = a.qr + (size_t)(a.t0 + t) * a.d_r + (size_t)r * a.d_rh;
		float acc = 0.0f;
		for (uint32_t x = 0; x < a.d_rh; x++)
			acc = fmaf(q[x], to_f<DT>(l[x]), acc);
		s = acc * a.r_scale;
	}
	a.keys[((size_t)(a.t0 + t) * a.h_kv + r) * a.ld + row] =
	        row < a.vis[a.t0 + t] ? score_key(s) : 0u;
}

/* Keys per block of the histogram and collection passes. */
#define SEL_SLICE   4096u
#define SEL_THREADS 256u

extern "C" size_t
cuk_select_state_words(uint32_t pairs)
{
	return (size_t)pairs * CUK_HIST_BINS + pairs;
}

/* The keys a pair's selection reads: those of the chunks its token sees. */
__device__ static inline uint64_t
pair_len(const struct cuk_select_args &a, uint32_t p)
{
	uint64_t v = a.vis[p / a.h_kv];
	return v < a.len ? v : a.len;
}

/* Clears the keys of the chunks a pair's token's mask leaves out (cuk_select_args.mask_off). */
__global__ void
__launch_bounds__(SEL_THREADS) mask_kernel(struct cuk_select_args a)
{
	uint32_t p = blockIdx.y, mo = a.mask_off[p / a.h_kv];
	uint64_t len = pair_len(a, p), i = (uint64_t)blockIdx.x * SEL_SLICE + threadIdx.x;
	uint64_t e = (uint64_t)(blockIdx.x + 1) * SEL_SLICE;
	uint32_t *keys = (uint32_t *)a.keys + (size_t)p * a.ld;

	if (mo == 0xffffffffu)
		return;
	for (; i < e && i < len; i += SEL_THREADS)
		if (!((a.mask_words[mo + i / 32] >> (i % 32)) & 1u))
			keys[i] = 0;
}

/* The histogram of the top bits of the visible keys, per pair. */
__global__ void
__launch_bounds__(SEL_THREADS) hist_kernel(struct cuk_select_args a)
{
	__shared__ uint32_t h[CUK_HIST_BINS];
	uint32_t p = blockIdx.y, tid = threadIdx.x;
	uint64_t b0 = (uint64_t)blockIdx.x * SEL_SLICE, len = pair_len(a, p);
	uint64_t e = b0 + SEL_SLICE < len ? b0 + SEL_SLICE : len;
	const uint4 *k4 = (const uint4 *)(a.keys + (size_t)p * a.ld);

	if (b0 >= len)
		return;
	for (uint32_t i = tid; i < CUK_HIST_BINS; i += SEL_THREADS)
		h[i] = 0;
	__syncthreads();
	for (uint64_t i = b0 / 4 + tid; i * 4 < e; i += SEL_THREADS) {
		uint4 v = k4[i];
		uint32_t kv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
		for (int m = 0; m < 4; m++)
			if (i * 4 + m < e && kv[m] != 0)
				atomicAdd(&h[kv[m] >> (32 - CUK_HIST_BITS)], 1u);
	}
	__syncthreads();
	uint32_t *hg = a.hist + (size_t)p * CUK_HIST_BINS;
	for (uint32_t i = tid; i < CUK_HIST_BINS; i += SEL_THREADS)
		if (h[i] != 0)
			atomicAdd(&hg[i], h[i]);
}

/* Exclusive prefix sum over the block (SEL_THREADS threads); *total gets the sum. */
__device__ static uint32_t
block_excl_scan(uint32_t v, uint32_t *total)
{
	__shared__ uint32_t wsum[SEL_THREADS / 32];
	uint32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32, x = v;

	for (int o = 1; o < 32; o <<= 1) {
		uint32_t y = __shfl_up_sync(0xffffffffu, x, o);
		if (lane >= (uint32_t)o)
			x += y;
	}
	if (lane == 31)
		wsum[warp] = x;
	__syncthreads();
	uint32_t before = 0, all = 0;
	for (uint32_t w = 0; w < SEL_THREADS / 32; w++) {
		if (w < warp)
			before += wsum[w];
		all += wsum[w];
	}
	__syncthreads();
	*total = all;
	return before + x - v;
}

/* Appends the pair's keys at or above the bin of its k-th best to its candidates. */
__global__ void
__launch_bounds__(SEL_THREADS) collect_kernel(struct cuk_select_args a)
{
	__shared__ uint32_t thr_s;
	uint32_t p = blockIdx.y, tid = threadIdx.x, lane = tid % 32;
	const uint32_t *hg = a.hist + (size_t)p * CUK_HIST_BINS;
	uint32_t *count = a.hist + (size_t)a.pairs * CUK_HIST_BINS + p;
	const uint32_t per = CUK_HIST_BINS / SEL_THREADS;
	uint64_t len = pair_len(a, p), b0 = (uint64_t)blockIdx.x * SEL_SLICE;

	if (b0 >= len)
		return;
	/* thread tid holds bins top - per * tid - m, m < per: highest bins first */
	uint32_t loc[CUK_HIST_BINS / SEL_THREADS], sum = 0, total;
	uint32_t top = CUK_HIST_BINS - 1 - per * tid;
#pragma unroll
	for (uint32_t m = 0; m < per; m++) {
		loc[m] = hg[top - m];
		sum += loc[m];
	}
	if (tid == 0)
		thr_s = 1; /* fewer than k visible: every visible key */
	__syncthreads();
	uint32_t ex = block_excl_scan(sum, &total);
	if (ex < a.k && ex + sum >= a.k) {
		uint32_t c = ex;
#pragma unroll
		for (uint32_t m = 0; m < per; m++) {
			c += loc[m];
			if (c >= a.k) {
				thr_s = (top - m) << (32 - CUK_HIST_BITS);
				break;
			}
		}
	}
	__syncthreads();
	uint32_t thr = thr_s > 0 ? thr_s : 1;

	uint64_t e = b0 + SEL_SLICE < len ? b0 + SEL_SLICE : len;
	const uint32_t *keys = a.keys + (size_t)p * a.ld;
	uint64_t *cand = a.cand + (size_t)p * a.len;
	for (uint64_t i0 = b0; i0 < e; i0 += SEL_THREADS) {
		uint64_t i = i0 + tid;
		uint32_t key = i < e ? keys[i] : 0u;
		bool take = key >= thr;
		uint32_t m = __ballot_sync(0xffffffffu, take);
		if (m == 0)
			continue;
		uint32_t leader = __ffs(m) - 1, at = 0;
		if (lane == leader)
			at = atomicAdd(count, __popc(m));
		at = __shfl_sync(0xffffffffu, at, leader);
		if (take)
			cand[at + __popc(m & ((1u << lane) - 1u))] =
			        ((uint64_t)key << 32) | (uint64_t)(0xffffffffu - (uint32_t)i);
	}
}

/*
 * One block per pair: the exact k-th best candidate by radix passes of 8 bits over the 64-bit
 * (score, index) keys, which are all distinct, stopping at the first pass where the k-th and the
 * next differ; then the k best sorted, the selection and its weights. Leaves the pair's histogram
 * and count zero for the next call.
 *
 * It stays one function of some 140 lines: its phases hand each other the block's shared memory
 * (the digit histogram, the candidates kept, the sorted keys) across barriers. As kernels of their
 * own, each phase would pay a launch and a round trip of the candidates through global memory, on
 * the path of every call; the kernel is tuned as it is (bench/bench_kernels.c times it).
 */
__global__ void
__launch_bounds__(SEL_THREADS) final_kernel(struct cuk_select_args a)
{
	__shared__ uint32_t h[256];
	__shared__ uint64_t keys[256];
	__shared__ uint64_t prefix_s;
	__shared__ uint32_t want_s, done_s, n_top;
	uint32_t p = blockIdx.x, tid = threadIdx.x, lane = tid % 32;
	uint32_t *count = a.hist + (size_t)a.pairs * CUK_HIST_BINS + p;
	uint32_t m = a.len > 0 ? *count : 0;
	const uint64_t *cand = a.cand + (size_t)p * a.len;
	uint64_t T = 1; /* the candidates >= T are the selection */

	if (m > a.k) {
		uint64_t prefix = 0, mask = 0;
		uint32_t want = a.k;
		for (int shift = 56; shift >= 0; shift -= 8) {
			h[tid] = 0;
			__syncthreads();
			for (uint32_t i = tid; i < m; i += SEL_THREADS) {
				uint64_t key = cand[i];
				if ((key & mask) == prefix)
					atomicAdd(&h[(uint32_t)(key >> shift) & 255u], 1u);
			}
			__syncthreads();
			if (tid < 32) {
				/* lane l holds digits 255 - 8l - j, j < 8: highest first */
				uint32_t s = 0;
				for (uint32_t j = 0; j < 8; j++)
					s += h[255 - 8 * lane - j];
				uint32_t x = s;
				for (int o = 1; o < 32; o <<= 1) {
					uint32_t y = __shfl_up_sync(0xffffffffu, x, o);
					if (lane >= (uint32_t)o)
						x += y;
				}
				uint32_t c = x - s;
				if (c < want && x >= want) {
					for (uint32_t j = 0; j < 8; j++) {
						uint32_t d = 255 - 8 * lane - j;
						if (c + h[d] >= want) {
							prefix_s = prefix | ((uint64_t)d << shift);
							want_s = want - c;
							done_s = h[d] == want - c;
							break;
						}
						c += h[d];
					}
				}
			}
			__syncthreads();
			prefix = prefix_s;
			mask |= (uint64_t)255 << shift;
			want = want_s;
			bool done = done_s != 0;
			__syncthreads();
			if (done)
				break;
		}
		T = prefix;
	}
	uint32_t P = 2;
	while (P < a.k)
		P <<= 1;
	if (tid == 0)
		n_top = 0;
	for (uint32_t i = tid; i < P; i += SEL_THREADS)
		keys[i] = 0;
	__syncthreads();
	for (uint32_t i = tid; i < m; i += SEL_THREADS) {
		uint64_t key = cand[i];
		if (key >= T)
			keys[atomicAdd(&n_top, 1u)] = key;
	}
	__syncthreads();
	bitonic_desc(keys, P);

	/* the selection, best first, and its weights */
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
			float w = m == -INFINITY  ? 0.0f
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
	uint32_t *hg = a.hist + (size_t)p * CUK_HIST_BINS;
	for (uint32_t i = tid; i < CUK_HIST_BINS; i += SEL_THREADS)
		hg[i] = 0;
	if (tid == 0)
		*count = 0;
}

/* ---- launchers ---- */

/* The streaming kernel for NT tokens at most, if d_rh is one it covers. */
template <int DT, int NT>
static bool
score_gv(cudaStream_t st, const struct cuk_score_args *a)
{
	uint64_t rows_per_block = (uint64_t)GV_THREADS / 32 * GV_UNROLL;
	unsigned blocks = (unsigned)((a->len + rows_per_block - 1) / rows_per_block);
	if (blocks > GV_BLOCKS)
		blocks = GV_BLOCKS;
	dim3 grid(blocks, a->h_kv, a->n_seg);

	switch (a->d_rh) {
	case 32: score_gv_kernel<DT, NT, 4, 1><<<grid, GV_THREADS, 0, st>>>(*a); return true;
	case 64: score_gv_kernel<DT, NT, 8, 1><<<grid, GV_THREADS, 0, st>>>(*a); return true;
	case 128: score_gv_kernel<DT, NT, 16, 1><<<grid, GV_THREADS, 0, st>>>(*a); return true;
	case 256: score_gv_kernel<DT, NT, 32, 1><<<grid, GV_THREADS, 0, st>>>(*a); return true;
	case 512: /* more pieces a lane: fewer tokens, or the registers spill */
		if constexpr (NT <= 2) {
			score_gv_kernel<DT, NT, 32, 2><<<grid, GV_THREADS, 0, st>>>(*a);
			return true;
		}
		return false;
	case 1024:
		if constexpr (NT <= 1) {
			score_gv_kernel<DT, NT, 32, 4><<<grid, GV_THREADS, 0, st>>>(*a);
			return true;
		}
		return false;
	default: return false;
	}
}

template <int DT>
static bool
score_gv_any(cudaStream_t st, const struct cuk_score_args *a)
{
	if (a->d_r % 8 != 0)
		return false;
	if (a->seg_nt <= 1)
		return score_gv<DT, 1>(st, a);
	if (a->seg_nt <= 2)
		return score_gv<DT, 2>(st, a);
	if (a->seg_nt <= GV_TOK)
		return score_gv<DT, GV_TOK>(st, a);
	return false;
}

extern "C" cudaError_t
cuk_score(cudaStream_t st, const struct cuk_score_args *a)
{
	if (a->len == 0)
		return cudaSuccess;
	if (a->seg_nt > SC_TOK || a->n_seg == 0)
		return cudaErrorInvalidValue;
	if (a->dtype == HSA_F16_CODE ? score_gv_any<HSA_F16_CODE>(st, a)
	                             : score_gv_any<HSA_BF16_CODE>(st, a))
		return cudaGetLastError();
	dim3 grid((unsigned)((a->len + SC_ROWS - 1) / SC_ROWS), a->h_kv, a->n_seg);
	uint32_t tpt = (a->seg_nt + SC_SUBS - 1) / SC_SUBS;
#define SC_LAUNCH(DT)                                                                              \
	do {                                                                                       \
		if (tpt <= 1)                                                                      \
			score_kernel<DT, 1><<<grid, SC_THREADS, 0, st>>>(*a);                      \
		else if (tpt <= 2)                                                                 \
			score_kernel<DT, 2><<<grid, SC_THREADS, 0, st>>>(*a);                      \
		else if (tpt <= 4)                                                                 \
			score_kernel<DT, 4><<<grid, SC_THREADS, 0, st>>>(*a);                      \
		else                                                                               \
			score_kernel<DT, 8><<<grid, SC_THREADS, 0, st>>>(*a);                      \
	} while (0)
	if (a->dtype == HSA_F16_CODE)
		SC_LAUNCH(HSA_F16_CODE);
	else
		SC_LAUNCH(HSA_BF16_CODE);
#undef SC_LAUNCH
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_select(cudaStream_t st, const struct cuk_select_args *a)
{
	cudaError_t e;

	if (a->len > 0) {
		dim3 grid((unsigned)((a->len + SEL_SLICE - 1) / SEL_SLICE), a->pairs);
		if (a->mask_off != NULL) {
			mask_kernel<<<grid, SEL_THREADS, 0, st>>>(*a);
			if ((e = cudaGetLastError()) != cudaSuccess)
				return e;
		}
		hist_kernel<<<grid, SEL_THREADS, 0, st>>>(*a);
		if ((e = cudaGetLastError()) != cudaSuccess)
			return e;
		collect_kernel<<<grid, SEL_THREADS, 0, st>>>(*a);
		if ((e = cudaGetLastError()) != cudaSuccess)
			return e;
	}
	final_kernel<<<a->pairs, SEL_THREADS, 0, st>>>(*a);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_split(cudaStream_t st, const float *qr, uint16_t *qh, uint32_t nt, uint32_t d_r)
{
	size_t n = (size_t)nt * d_r;
	split_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(qr, qh, nt, d_r);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_gemm_keys(cudaStream_t st, const struct cuk_gemm_args *a)
{
	if (a->len == 0)
		return cudaSuccess;
	dim3 grid((unsigned)((a->len + 255) / 256), a->nt, a->h_kv);
	gemm_keys_kernel<HSA_F16_CODE><<<grid, 256, 0, st>>>(*a);
	return cudaGetLastError();
}
