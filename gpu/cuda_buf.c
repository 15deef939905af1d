/*
 * cuda_buf.c: the scratch buffers of cuda_buf.h: growth by half again at least, rounded to 4 KiB,
 * and release. A shortfall of memory is an answer (-ENOMEM, and the backend serves the call on
 * the CPU), not a device failure; any other CUDA error is.
 */
#include "config.h"

#include <errno.h>

#include <cuda_runtime_api.h>

#include "cuda_buf.h"
#include "cuda_check.h"
#include "hsamem_defs.h"
#include "log.h"

int
buf_reserve(struct buf *x, size_t bytes, bool host, uint64_t *dev_bytes)
{
	cudaError_t e;
	void *p;

	if (x->cap >= bytes)
		return 0;
	if (bytes < x->cap + x->cap / 2)
		bytes = x->cap + x->cap / 2;
	bytes = (bytes + 4095) & ~(size_t)4095;
	if (x->p != NULL) {
		int err = host ? CU(cudaFreeHost(x->p)) : CU(cudaFree(x->p));
		x->p = NULL;
		if (!host)
			*dev_bytes -= x->cap;
		x->cap = 0;
		if (err != 0)
			return err;
	}
	e = host ? cudaHostAlloc(&p, bytes, cudaHostAllocMapped | cudaHostAllocPortable)
	         : cudaMalloc(&p, bytes);
	if (e == cudaErrorMemoryAllocation) {
		cudaGetLastError();
		log_warn("cuda: no %s memory for %zu bytes of scratch",
		         host ? "pinned host" : "device", bytes);
		return -ENOMEM;
	}
	if (CU(e) != 0)
		return HSAMEM_EBACKEND;
	x->p = p;
	x->cap = bytes;
	if (!host)
		*dev_bytes += bytes;
	return 0;
}

void
buf_dev_release(struct buf *x)
{
	if (x->p != NULL)
		cudaFree(x->p);
	x->p = NULL;
	x->cap = 0;
}

void
buf_host_release(struct buf *x)
{
	if (x->p != NULL)
		cudaFreeHost(x->p);
	x->p = NULL;
	x->cap = 0;
}

int
buf_mapped(const void *host, const void **dev)
{
	void *d = NULL;
	int err = CU(cudaHostGetDevicePointer(&d, (void *)host, 0));
	if (err == 0)
		*dev = d;
	return err;
}
