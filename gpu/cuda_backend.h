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

/* Creates the backend on a device that gpu_cuda_probe() found. See gpu_cuda_alloc(). */
int gpu_cuda_backend_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out);

enum gpu_cuda_drop_what {
	GPU_CUDA_DROP_LANDMARKS = 1u << 0,     /* every resident landmark matrix */
	GPU_CUDA_DROP_DEVICE_CHUNKS = 1u << 1, /* the device chunk cache */
	GPU_CUDA_DROP_HOST_CHUNKS = 1u << 2,   /* the pinned host chunk cache */
};

/* Empties the caches named in what (gpu_cuda_drop_what), for every memory. */
void gpu_cuda_drop(struct gpu_backend *b, unsigned what);

struct gpu_cuda_counters {
	uint64_t host_hits;    /* device misses found in the pinned host cache */
	uint64_t host_direct;  /* of them, read by the device in place (then copied to it) */
	uint64_t source_reads; /* device misses read from the source */
	uint64_t bytes_paged;  /* chunk bytes copied host to device */
	uint64_t lmk_bytes_loaded;
	uint64_t lmk_evictions; /* landmark matrices evicted for room */
	uint64_t cpu_fallbacks; /* calls served by the backend's CPU fallback */
	uint64_t dev_chunk_slots, host_chunk_slots;
	/* batching of concurrent calls */
	uint64_t batches;       /* passes of the batcher: calls that ran together on the device */
	uint64_t batched_calls; /* calls that shared their pass with at least one other */
	uint64_t max_batch;     /* most calls in one pass */
	/* where the time of rounds with misses goes, in nanoseconds, summed over those rounds */
	uint64_t miss_rounds;
	uint64_t ns_select; /* from the round's start until its selection is on the host */
	uint64_t ns_walk;   /* the host's walk: cache lookups, source lookups, tables */
	uint64_t ns_copy;   /* host copies into pinned memory and the gathers' launches */
	uint64_t ns_finish; /* attention again, results back, the last synchronisation */
};

void gpu_cuda_counters(struct gpu_backend *b, struct gpu_cuda_counters *out);

#endif
