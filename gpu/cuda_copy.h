/*
 * cuda_copy.h: the copy pool of the CUDA backend: threads that bring the chunks a round misses
 * into pinned memory beside the thread that walks the round. Plain C and pthreads, no CUDA: the
 * backend gathers each batch to the device once the pool says it is copied (cp_copied), and the
 * pool is tested on any host. One round at a time: the backend calls it under its lock.
 *
 * A ROUND
 *
 *     cp_wake (optional, early)  cp_begin  cp_publish ... cp_publish  cp_close  cp_help ...
 *                                                               \__ cp_cancel (no cp_close)
 *
 * cp_wake starts the threads spinning while the caller still waits for its selection; cp_begin
 * sets the size of a copy and the jobs of a batch (the threads read a job only once published);
 * the walk publishes jobs in order, n_avail at a time; cp_close gives their number, waking the
 * threads then if they were not woken and there are any; every thread, the caller too (cp_help),
 * takes the next job by an atomic index and counts it done in its batch. cp_cancel ends a round
 * that publishes no more: threads finish the published jobs and sleep. A new round waits for the
 * threads of the last one to be through (active).
 *
 * A job either copies bytes already looked up (src), or reads through its source's copy_kv
 * (from, j), which runs on many threads at once; the first error of the round is kept (cp_error).
 */
#ifndef HSAMEM_CUDA_COPY_H
#define HSAMEM_CUDA_COPY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define CP_THREADS 16 /* most threads of a pool */

struct cp_job {
	void *dst;
	const void *src;
	const struct hsa_source *from;
	uint64_t j;
};

struct cpool {
	pthread_t th[CP_THREADS];
	unsigned n_th;
	bool started, stop, woken;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t gen;
	struct cp_job *job; /* [cap] */
	atomic_uint *done;  /* [cap]: jobs done per batch */
	size_t cap;
	uint32_t batch; /* jobs a batch */
	size_t bytes;   /* a copy */
	/* what the threads spin on, what they take jobs by, and the rest, a cache line each */
	_Alignas(64) atomic_uint n_avail;
	atomic_uint n_jobs;
	_Alignas(64) atomic_uint next;
	_Alignas(64) atomic_uint active;
	atomic_int err;
};

/* Zeroes the pool; no thread runs until cp_start. */
void cp_init(struct cpool *cp);

/* Starts up to threads threads, once; false when there are none (the caller copies alone). */
bool cp_start(struct cpool *cp, unsigned threads);

/* Stops the threads and frees the pool's tables. */
void cp_stop(struct cpool *cp);

/* Room for n jobs. Only between rounds, or after cp_wake and before the first cp_publish. */
int cp_reserve(struct cpool *cp, size_t n);

void cp_wake(struct cpool *cp);
/* A round of up to n jobs of bytes each, batch jobs a batch. */
void cp_begin(struct cpool *cp, size_t bytes, uint32_t batch, uint32_t n);
/* Jobs 0 .. n-1 are filled in. */
void cp_publish(struct cpool *cp, uint32_t n);
/* The round has n jobs, all published; wake: let sleeping threads help (when there are any). */
void cp_close(struct cpool *cp, uint32_t n, bool wake);
void cp_cancel(struct cpool *cp);

/* Does the next job; false when none is left. */
bool cp_help(struct cpool *cp);

/*
 * The end of the run of batches from job first on whose copies are all done (first itself when
 * none is); only whole batches of the n jobs published unless final (n is every job).
 */
uint32_t cp_copied(struct cpool *cp, uint32_t first, uint32_t n, bool final);

/* The round's first error, once every job is through. */
int cp_error(struct cpool *cp);

/* A pause for spinning. */
void cp_relax(void);

#endif
