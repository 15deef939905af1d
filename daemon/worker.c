/*
 * worker.c: the queue is a singly linked list through job->next; the pool owns no job, it only
 * passes each batch to run(). A thread takes at most `batch` jobs and leaves the rest queued, so
 * that jobs which arrive while a batch runs form the next one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "job.h"
#include "worker.h"

struct wrk_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	bool stopping;
	unsigned batch;
	wrk_run_fn *run;
	void *arg;
	unsigned n_threads;
	pthread_t threads[];
};

static void *
wrk_main(void *arg)
{
	struct wrk_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->head == NULL)
			break;
		struct job *first = p->head, *last = first;
		for (unsigned n = 1; n < p->batch && last->next != NULL; n++)
			last = last->next;
		p->head = last->next;
		if (p->head == NULL)
			p->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&p->mu);
		p->run(p->arg, first);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
wrk_start(unsigned threads, unsigned batch, wrk_run_fn *run, void *arg, const char *name,
          struct wrk_pool **out)
{
	struct wrk_pool *p = calloc(1, sizeof(*p) + threads * sizeof(pthread_t));
	if (p == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->batch = batch > 0 ? batch : 1;
	p->run = run;
	p->arg = arg;
	for (; p->n_threads < threads; p->n_threads++) {
		int ret = pthread_create(&p->threads[p->n_threads], NULL, wrk_main, p);
		if (ret != 0) {
			wrk_stop(p);
			return -ret;
		}
		/* what top -H and perf show; a name too long is only cut */
		pthread_setname_np(p->threads[p->n_threads], name);
	}
	*out = p;
	return 0;
}

/* Puts job at the end of the queue and wakes a worker; p->mu held. */
static void
enqueue(struct wrk_pool *p, struct job *job)
{
	job->next = NULL;
	if (p->tail != NULL)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->cv);
}

void
wrk_submit(struct wrk_pool *p, struct job *job)
{
	pthread_mutex_lock(&p->mu);
	enqueue(p, job);
	pthread_mutex_unlock(&p->mu);
}

bool
wrk_submit_open(struct wrk_pool *p, struct job *job)
{
	bool open;
	pthread_mutex_lock(&p->mu);
	open = !p->stopping;
	if (open)
		enqueue(p, job);
	pthread_mutex_unlock(&p->mu);
	return open;
}

void
wrk_stop(struct wrk_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
