/*
 * cpu_pool.h: the CPU backend's thread pool. A caller hands it a call's independent pieces
 * (cpu_pool_run); the pool's threads and the caller itself work through them, and the caller
 * returns when all are done. Calls of several callers may be queued at once: each caller works on
 * its own call's pieces too, so a call always makes progress even while the pool's threads serve
 * another caller's call.
 */
#ifndef HSAMEM_CPU_POOL_H
#define HSAMEM_CPU_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* One call's pieces: the caller's (on its stack, or wherever cpu_pool_start's caller keeps it
 * until cpu_pool_wait); every field is the pool's, guarded by its mutex. */
struct cpu_job {
	int (*fn)(void *arg, size_t piece);
	void *arg;
	size_t n_pieces;
	size_t next; /* first unclaimed piece */
	size_t done; /* pieces finished */
	int err;     /* first error; the pieces not yet started are skipped */
	bool queued; /* handed to the helpers (else the caller runs every piece in cpu_pool_wait) */
	struct cpu_job *link;
};

/* Embedded in its owner; its fields are the pool's. */
struct cpu_pool {
	pthread_mutex_t mu;
	pthread_cond_t work;  /* a job was queued, or stop */
	pthread_cond_t done;  /* some job's last piece finished */
	struct cpu_job *jobs; /* jobs with unclaimed pieces, oldest first */
	bool stop;
	unsigned n_threads; /* helpers; callers work on their own jobs too */
	pthread_t *threads;
};

/*
 * Starts n helper threads (0: none; every call then runs on its caller) with every signal
 * blocked: signals are the daemon's main thread's. Returns 0, -ENOMEM or the negated error of
 * pthread_create (nothing is left running then).
 */
int cpu_pool_init(struct cpu_pool *p, unsigned n);

/* Stops and joins the helpers. No call may be running. */
void cpu_pool_fini(struct cpu_pool *p);

/*
 * Runs fn(arg, piece) for every piece in 0 .. n_pieces-1, on the helpers and the calling thread,
 * in no particular order and possibly at once. Returns 0, or the first error a piece returned;
 * pieces not yet started when a piece fails are skipped.
 */
int cpu_pool_run(struct cpu_pool *p, int (*fn)(void *arg, size_t piece), void *arg,
                 size_t n_pieces);

/*
 * cpu_pool_run in two halves, so that the caller does other work while the helpers run the
 * pieces: cpu_pool_start queues them and returns at once; cpu_pool_wait, which must follow before
 * j, fn's arg or anything the pieces use goes away, runs the pieces still unclaimed on the caller
 * and returns when all are done, with cpu_pool_run's result.
 */
void cpu_pool_start(struct cpu_pool *p, struct cpu_job *j, int (*fn)(void *arg, size_t piece),
                    void *arg, size_t n_pieces);
int cpu_pool_wait(struct cpu_pool *p, struct cpu_job *j);

#endif
