/*
 * cuda_copy.c: the copy pool of cuda_copy.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_copy.h"

#define CP_OPEN UINT32_MAX /* n_jobs while the round's number of jobs is not known */

void
cp_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

bool
cp_help(struct cpool *cp)
{
	uint32_t i = atomic_fetch_add_explicit(&cp->next, 1, memory_order_relaxed);

	while (i >= atomic_load_explicit(&cp->n_avail, memory_order_acquire)) {
		if (i >= atomic_load_explicit(&cp->n_jobs, memory_order_acquire))
			return false;
		cp_relax();
	}
	const struct cp_job *jb = &cp->job[i];
	if (jb->src != NULL) {
		memcpy(jb->dst, jb->src, cp->bytes);
	} else if (jb->from != NULL) {
		int err = jb->from->copy_kv(jb->from->ctx, jb->j, jb->dst), none = 0;
		if (err != 0)
			atomic_compare_exchange_strong(&cp->err, &none, err);
	}
	atomic_fetch_add_explicit(&cp->done[i / cp->batch], 1, memory_order_release);
	return true;
}

static void *
cp_main(void *arg)
{
	struct cpool *cp = arg;
	uint64_t seen = 0;

	for (;;) {
		pthread_mutex_lock(&cp->mu);
		while (!cp->stop && cp->gen == seen)
			pthread_cond_wait(&cp->cv, &cp->mu);
		seen = cp->gen;
		bool stop = cp->stop;
		pthread_mutex_unlock(&cp->mu);
		if (stop)
			return NULL;
		while (cp_help(cp))
			;
		atomic_fetch_sub_explicit(&cp->active, 1, memory_order_release);
	}
}

void
cp_init(struct cpool *cp)
{
	memset(cp, 0, sizeof(*cp));
	atomic_init(&cp->n_avail, 0);
	atomic_init(&cp->n_jobs, 0);
	atomic_init(&cp->next, 0);
	atomic_init(&cp->active, 0);
	atomic_init(&cp->err, 0);
}

bool
cp_start(struct cpool *cp, unsigned threads)
{
	if (cp->started)
		return cp->n_th > 0;
	cp->started = true;
	if (threads > CP_THREADS)
		threads = CP_THREADS;
	pthread_mutex_init(&cp->mu, NULL);
	pthread_cond_init(&cp->cv, NULL);
	for (cp->n_th = 0; cp->n_th < threads; cp->n_th++)
		if (pthread_create(&cp->th[cp->n_th], NULL, cp_main, cp) != 0)
			break;
	return cp->n_th > 0;
}

void
cp_stop(struct cpool *cp)
{
	if (cp->started) {
		pthread_mutex_lock(&cp->mu);
		cp->stop = true;
		pthread_cond_broadcast(&cp->cv);
		pthread_mutex_unlock(&cp->mu);
		for (unsigned i = 0; i < cp->n_th; i++)
			pthread_join(cp->th[i], NULL);
		pthread_mutex_destroy(&cp->mu);
		pthread_cond_destroy(&cp->cv);
	}
	free(cp->job);
	free(cp->done);
	cp->job = NULL;
	cp->done = NULL;
	cp->cap = 0;
}

int
cp_reserve(struct cpool *cp, size_t n)
{
	if (cp->cap >= n)
		return 0;
	struct cp_job *jb = realloc(cp->job, n * sizeof(*jb));
	if (jb == NULL)
		return -ENOMEM;
	cp->job = jb;
	atomic_uint *dn = realloc(cp->done, n * sizeof(*dn));
	if (dn == NULL)
		return -ENOMEM;
	cp->done = dn;
	cp->cap = n;
	return 0;
}

/* Waits out the threads still in the last round's jobs, and opens the pool for new ones. */
static void
cp_reset(struct cpool *cp)
{
	while (atomic_load_explicit(&cp->active, memory_order_acquire) != 0)
		cp_relax();
	atomic_store_explicit(&cp->n_avail, 0, memory_order_relaxed);
	atomic_store_explicit(&cp->n_jobs, CP_OPEN, memory_order_relaxed);
	atomic_store_explicit(&cp->next, 0, memory_order_relaxed);
	atomic_store_explicit(&cp->err, 0, memory_order_relaxed);
}

/* Wakes the threads into the current jobs. */
static void
cp_rouse(struct cpool *cp)
{
	pthread_mutex_lock(&cp->mu);
	atomic_store_explicit(&cp->active, cp->n_th, memory_order_relaxed);
	cp->gen++;
	pthread_cond_broadcast(&cp->cv);
	pthread_mutex_unlock(&cp->mu);
}

void
cp_wake(struct cpool *cp)
{
	cp_reset(cp);
	if (cp->n_th > 0)
		cp_rouse(cp);
	cp->woken = true;
}

void
cp_begin(struct cpool *cp, size_t bytes, uint32_t batch, uint32_t n)
{
	if (!cp->woken)
		cp_reset(cp);
	cp->bytes = bytes;
	cp->batch = batch > 0 ? batch : 1;
	for (uint32_t i = 0; i < (n + cp->batch - 1) / cp->batch; i++)
		atomic_store_explicit(&cp->done[i], 0, memory_order_relaxed);
}

void
cp_publish(struct cpool *cp, uint32_t n)
{
	atomic_store_explicit(&cp->n_avail, n, memory_order_release);
}

void
cp_close(struct cpool *cp, uint32_t n, bool wake)
{
	cp_publish(cp, n);
	atomic_store_explicit(&cp->n_jobs, n, memory_order_release);
	/* late helpers: they find every job published */
	if (!cp->woken && wake && cp->n_th > 0)
		cp_rouse(cp);
	cp->woken = false;
}

void
cp_cancel(struct cpool *cp)
{
	atomic_store_explicit(&cp->n_jobs, atomic_load(&cp->n_avail), memory_order_release);
	cp->woken = false;
}

uint32_t
cp_copied(struct cpool *cp, uint32_t first, uint32_t n, bool final)
{
	uint32_t end = first;

	while (end < n) {
		uint32_t size = n - end < cp->batch ? n - end : cp->batch;
		if ((size < cp->batch && !final) ||
		    atomic_load_explicit(&cp->done[end / cp->batch], memory_order_acquire) < size)
			break;
		end += size;
	}
	return end;
}

int
cp_error(struct cpool *cp)
{
	return atomic_load(&cp->err);
}
