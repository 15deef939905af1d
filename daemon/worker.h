/*
 * worker.h: a queue of jobs served by a fixed set of threads, in arrival order. The request workers
 * are one such pool (conf.workers threads, one job at a time); the group committer is another (one
 * thread, up to max-batch jobs at a time). The server's callbacks never block; they queue the
 * request here.
 */
#ifndef HSAMEM_WORKER_H
#define HSAMEM_WORKER_H

#include <stdbool.h>

struct job;
struct wrk_pool;

/*
 * Runs one job or a batch of them, linked through job->next (NULL-terminated, in arrival order).
 * It owns the jobs it is given.
 */
typedef void wrk_run_fn(void *arg, struct job *jobs);

/*
 * Starts `threads` threads, each taking up to `batch` (at least 1) queued jobs at a time and
 * passing them to run(arg, jobs); the threads are named name (at most 15 bytes are kept). Returns
 * 0, or a negative errno with nothing started.
 */
int wrk_start(unsigned threads, unsigned batch, wrk_run_fn *run, void *arg, const char *name,
              struct wrk_pool **out);
/* Queues a job; never blocks for long (takes a mutex). */
void wrk_submit(struct wrk_pool *p, struct job *job);
/* wrk_submit, unless the pool is stopping (its threads may be gone); whether it queued the job. */
bool wrk_submit_open(struct wrk_pool *p, struct job *job);
/* Runs what is queued, then joins the threads. NULL-safe. */
void wrk_stop(struct wrk_pool *p);

#endif
