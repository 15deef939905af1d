/*
 * cuda_counters.h: the figures the CUDA backend counts beyond backend.h's stats, which the tests
 * and benchmarks read through gpu_cuda_counters() (cuda_backend.h). A header of its own because
 * the backend's state (cuda_state.h) keeps them as they are handed out, and that header must not
 * depend on the backend's entry points. Declared in every build.
 */
#ifndef HSAMEM_CUDA_COUNTERS_H
#define HSAMEM_CUDA_COUNTERS_H

#include <stdint.h>

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

#endif
