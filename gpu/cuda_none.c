/*
 * cuda_none.c: the CUDA backend's extra entry points (cuda_backend.h) in a build without CUDA, so
 * that the tests and benchmarks link everywhere. No backend ever exists here (gpu_cuda_alloc()
 * answers -ENODEV), so none of these is ever reached with one.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cuda_backend.h"

int
gpu_cuda_backend_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out)
{
	return -ENODEV;
}

void
gpu_cuda_drop(struct gpu_backend *b, unsigned what)
{
}

void
gpu_cuda_counters(struct gpu_backend *b, struct gpu_cuda_counters *out)
{
	memset(out, 0, sizeof(*out));
}
