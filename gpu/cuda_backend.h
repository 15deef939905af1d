/*
 * cuda_backend.h: the CUDA backend's entry points beyond backend.h. gpu_cuda_alloc() (gpu/cuda.c)
 * reaches the backend through gpu_cuda_backend_alloc(); the tests and benchmarks also use
 * gpu_cuda_drop() to make a memory cold again and gpu_cuda_counters() for figures backend.h's
 * stats do not carry. Declared in every build; defined only where the CUDA backend is built
 * (HAVE_CUDA_BACKEND).
 */
#ifndef HSAMEM_CUDA_BACKEND_H
#define HSAMEM_CUDA_BACKEND_H

#include <stdint.h>

#include "backend.h"
#include "cuda_counters.h"

/* Creates the backend on a device that gpu_cuda_probe() found. See gpu_cuda_alloc(). */
int gpu_cuda_backend_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out);

enum gpu_cuda_drop_what {
	GPU_CUDA_DROP_LANDMARKS = 1u << 0,     /* every resident landmark matrix */
	GPU_CUDA_DROP_DEVICE_CHUNKS = 1u << 1, /* the device chunk cache */
	GPU_CUDA_DROP_HOST_CHUNKS = 1u << 2,   /* the pinned host chunk cache */
};

/* Empties the caches named in what (gpu_cuda_drop_what), for every memory. */
void gpu_cuda_drop(struct gpu_backend *b, unsigned what);

/* The backend's counters (cuda_counters.h), and its chunk slots as they stand. */
void gpu_cuda_counters(struct gpu_backend *b, struct gpu_cuda_counters *out);

#endif
