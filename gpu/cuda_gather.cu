/*
 * cuda_gather.cu: the CUDA backend's gathers: the copy of missing chunks from mapped pinned host
 * memory into device slots, and the device directory of resident chunks (resolving a selection
 * through it, and updating it). Every launcher enqueues on the caller's stream and returns the
 * launch's error; nothing here allocates or synchronises.
 */
#include <stdint.h>

#include "cuda_int.h"

/* ---- gather ---- */

/*
 * Each chunk is copied by GATHER_PARTS(bytes) blocks of GATHER_THREADS threads, GATHER_PART bytes
 * each, every thread issuing its four 16-byte loads before the first store: reads of mapped host
 * memory cross PCIe and are slow to return, so the more of them in flight the better.
 */
#define GATHER_THREADS 128u
#define GATHER_PART    (GATHER_THREADS * 4u * 16u)

__global__ void
__launch_bounds__(GATHER_THREADS)
        gather_kernel(const struct cuk_copy *copies, size_t bytes, uint32_t parts)
{
	const struct cuk_copy c = copies[blockIdx.x / parts];
	uint32_t part = blockIdx.x % parts;
	size_t n16 = bytes / 16, b16 = (size_t)part * (GATHER_PART / 16);
	size_t e16 = b16 + GATHER_PART / 16 < n16 ? b16 + GATHER_PART / 16 : n16;
	const uint4 *s = (const uint4 *)c.src;
	uint4 *d = (uint4 *)c.dst;
	size_t x = b16 + threadIdx.x;

	if (x + 3 * GATHER_THREADS < e16) {
		uint4 v0 = s[x], v1 = s[x + GATHER_THREADS], v2 = s[x + 2 * GATHER_THREADS],
		      v3 = s[x + 3 * GATHER_THREADS];
		d[x] = v0;
		d[x + GATHER_THREADS] = v1;
		d[x + 2 * GATHER_THREADS] = v2;
		d[x + 3 * GATHER_THREADS] = v3;
	} else {
		for (; x < e16; x += GATHER_THREADS)
			d[x] = s[x];
	}
	if (part == parts - 1)
		for (size_t b = n16 * 16 + threadIdx.x * 4; b < bytes; b += GATHER_THREADS * 4)
			*(uint32_t *)((char *)c.dst + b) =
			        *(const uint32_t *)((const char *)c.src + b);
}

/* ---- the device directory ---- */

#define DIR_THREADS 1024u

__global__ void
__launch_bounds__(DIR_THREADS) resolve_kernel(struct cuk_resolve_args a)
{
	__shared__ uint32_t n_miss;
	uint32_t mine = 0;

	if (threadIdx.x == 0)
		n_miss = 0;
	__syncthreads();
	for (uint32_t x = threadIdx.x; x < a.n; x += DIR_THREADS) {
		int64_t j = a.sel[x];
		const void *p = j >= 0 ? a.dir[x / a.per_tok][j] : NULL;
		mine += j >= 0 && p == NULL;
		a.chunk[x] = p;
	}
	for (int o = 16; o > 0; o >>= 1)
		mine += __shfl_xor_sync(0xffffffffu, mine, o);
	if (threadIdx.x % 32 == 0 && mine != 0)
		atomicAdd(&n_miss, mine);
	__syncthreads();
	if (threadIdx.x == 0)
		*a.misses = n_miss;
}

__global__ void
__launch_bounds__(DIR_THREADS)
        dir_update_kernel(const struct cuk_dir_set *sets, uint32_t n_clear, uint32_t n)
{
	for (uint32_t x = threadIdx.x; x < n_clear; x += DIR_THREADS)
		*sets[x].at = sets[x].val;
	__syncthreads();
	for (uint32_t x = n_clear + threadIdx.x; x < n; x += DIR_THREADS)
		*sets[x].at = sets[x].val;
}

/* ---- launchers ---- */

extern "C" cudaError_t
cuk_gather(cudaStream_t st, const struct cuk_copy *copies, uint32_t n, size_t bytes)
{
	if (n == 0)
		return cudaSuccess;
	uint32_t parts = (uint32_t)((bytes + GATHER_PART - 1) / GATHER_PART);
	if (parts == 0)
		parts = 1;
	gather_kernel<<<n * parts, GATHER_THREADS, 0, st>>>(copies, bytes, parts);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_resolve(cudaStream_t st, const struct cuk_resolve_args *a)
{
	resolve_kernel<<<1, DIR_THREADS, 0, st>>>(*a);
	return cudaGetLastError();
}

extern "C" cudaError_t
cuk_dir_update(cudaStream_t st, const struct cuk_dir_set *sets, uint32_t n_clear, uint32_t n)
{
	if (n == 0)
		return cudaSuccess;
	dir_update_kernel<<<1, DIR_THREADS, 0, st>>>(sets, n_clear, n);
	return cudaGetLastError();
}
