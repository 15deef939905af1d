/*
 * worker.h: a fixed pool of threads running queued jobs in arrival order. The server's callbacks
 * never block; they queue the request here.
 */
#ifndef HSAMEM_WORKER_H
#define HSAMEM_WORKER_H

struct wrk_pool;
struct job;

int wrk_start(unsigned threads, void (*run)(struct job *job), struct wrk_pool **out);
/* Queues a job; never blocks for long (takes a mutex). */
void wrk_submit(struct wrk_pool *p, struct job *job);
/* Runs what is queued, then joins the threads. NULL-safe. */
void wrk_stop(struct wrk_pool *p);

#endif
