/*
 * cuda.c: finding CUDA devices, and the one door to the CUDA backend. Plain C against the CUDA
 * runtime API, so the daemon can probe and report devices in every build; it owns no device state.
 *
 * "No device" is a normal outcome, never an error: a build without CUDA, a host without the driver
 * (cudaGetDeviceCount then fails with cudaErrorInsufficientDriver and leaves the count alone), or a
 * host without a GPU all give 0 devices and a sentence saying why, and the daemon serves on the
 * CPU.
 *
 * The backend itself lives in its own sources, which define gpu_cuda_backend_alloc(); a build that
 * compiles them defines HAVE_CUDA_BACKEND. Without them gpu_cuda_alloc() answers -ENODEV even where
 * a device is present.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "backend.h"
#include "hsamem_defs.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#ifdef HAVE_CUDA_BACKEND
/* In gpu/cuda_backend.c: creates the backend on a device the probe found. */
int gpu_cuda_backend_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out);
#endif

#ifndef HAVE_CUDA

int
gpu_cuda_probe(char *desc, size_t desc_len)
{
	if (desc != NULL && desc_len > 0)
		snprintf(desc, desc_len, "CUDA support not built");
	return 0;
}

int
gpu_cuda_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out)
{
	return -ENODEV;
}

#else

int
gpu_cuda_probe(char *desc, size_t desc_len)
{
	struct cudaDeviceProp prop;
	cudaError_t e;
	int count = 0;
	char dummy[1];

	if (desc == NULL || desc_len == 0) {
		desc = dummy;
		desc_len = sizeof(dummy);
	}
	e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess) {
		snprintf(desc, desc_len, "no CUDA device: %s (%s)", cudaGetErrorString(e),
		         cudaGetErrorName(e));
		cudaGetLastError(); /* a failed probe must not look like a later call's error */
		return 0;
	}
	if (count <= 0) {
		snprintf(desc, desc_len, "no CUDA device present");
		return 0;
	}
	e = cudaGetDeviceProperties(&prop, 0);
	if (e != cudaSuccess) {
		snprintf(desc, desc_len, "CUDA device 0 unusable: %s (%s)", cudaGetErrorString(e),
		         cudaGetErrorName(e));
		cudaGetLastError();
		return 0;
	}
	snprintf(desc, desc_len, "%s, compute capability %d.%d, %.1f GiB (device 0 of %d)",
	         prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30), count);
	return count;
}

int
gpu_cuda_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out)
{
	int n;

	if (opts == NULL || out == NULL)
		return HSAMEM_EINVAL;
	n = gpu_cuda_probe(NULL, 0);
	if (n <= 0 || opts->device < 0 || opts->device >= n)
		return -ENODEV;
#ifdef HAVE_CUDA_BACKEND
	return gpu_cuda_backend_alloc(opts, out);
#else
	return -ENODEV;
#endif
}

#endif
