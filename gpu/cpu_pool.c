/*
 * cpu_pool.c: the CPU backend's thread pool (cpu_pool.h). One mutex guards the list of jobs and
 * every job's counters; a piece runs with the mutex released.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_pool.h"

/*
 * A job lives where its caller keeps it. It is linked into the pool's list while it has unclaimed
 * pieces, and its caller returns from cpu_pool_wait only when every piece is done, so no pool
 * thread can touch it afterwards.
 */

static void
job_unlink(struct cpu_pool *p, struct cpu_job *j)
{
	for (struct cpu_job **pp = &p->jobs; *pp != NULL; pp = &(*pp)->link) {
		if (*pp == j) {
			*pp = j->link;
			return;
		}
	}
}

/* Claims the next piece of j and runs it; called and returns with p->mu held. */
static void
job_run_one(struct cpu_pool *p, struct cpu_job *j)
{
	size_t piece = j->next++;
	if (j->next == j->n_pieces)
		job_unlink(p, j);
	bool skip = j->err != 0;
	pthread_mutex_unlock(&p->mu);
	int err = skip ? 0 : j->fn(j->arg, piece);
	pthread_mutex_lock(&p->mu);
	if (err != 0 && j->err == 0)
		j->err = err;
	if (++j->done == j->n_pieces)
		pthread_cond_broadcast(&p->done);
}

static void *
pool_main(void *arg)
{
	struct cpu_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->jobs == NULL)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		job_run_one(p, p->jobs);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void
cpu_pool_start(struct cpu_pool *p, struct cpu_job *j, int (*fn)(void *, size_t), void *arg,
               size_t n_pieces)
{
	*j = (struct cpu_job){.fn = fn, .arg = arg, .n_pieces = n_pieces};
	if (p->n_threads == 0 || n_pieces <= 1)
		return;
	struct cpu_job **tail;
	j->queued = true;
	pthread_mutex_lock(&p->mu);
	for (tail = &p->jobs; *tail != NULL; tail = &(*tail)->link)
		;
	*tail = j;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
}

int
cpu_pool_wait(struct cpu_pool *p, struct cpu_job *j)
{
	if (!j->queued) {
		for (size_t i = 0; i < j->n_pieces; i++) {
			int err = j->fn(j->arg, i);
			if (err != 0)
				return err;
		}
		return 0;
	}
	pthread_mutex_lock(&p->mu);
	while (j->next < j->n_pieces)
		job_run_one(p, j);
	while (j->done < j->n_pieces)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return j->err;
}

int
cpu_pool_run(struct cpu_pool *p, int (*fn)(void *, size_t), void *arg, size_t n_pieces)
{
	struct cpu_job j;
	cpu_pool_start(p, &j, fn, arg, n_pieces);
	return cpu_pool_wait(p, &j);
}

void
cpu_pool_fini(struct cpu_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
}

int
cpu_pool_init(struct cpu_pool *p, unsigned n)
{
	sigset_t all, old;
	int err = 0;

	memset(p, 0, sizeof(*p));
	if (n > 0 && (p->threads = calloc(n, sizeof(pthread_t))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; p->n_threads < n; p->n_threads++) {
		int rc = pthread_create(&p->threads[p->n_threads], NULL, pool_main, p);
		if (rc != 0) {
			err = -rc;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0)
		cpu_pool_fini(p);
	return err;
}
