/*
 * commit.c: the group committer, the one thread that writes the store.
 *
 * Workers queue prepared write jobs (appends, creates, flushes, deletes, imports). The committer
 * takes everything queued, up to max_batch jobs, and applies them in one write transaction, each
 * in a nested transaction of its own so that a bad request fails alone. One synced commit then
 * makes the whole batch durable, and only then are the replies sent. While a commit is syncing,
 * new jobs queue up and form the next batch: the more clients write at once, the more each commit
 * carries.
 *
 *   queue --take--> apply each (nested txn) --commit (sync)--> replies
 *                      |                         |
 *                      +-- HSAMEM_EFULL ---------+--> abort, store_grow, apply the batch again
 *
 * This file must not interpret requests (ops.c does) nor touch the socket (the job's finish does).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"

struct commit {
	struct daemon *d;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	bool stopping;
	unsigned max_batch;
	atomic_uint_fast64_t commits, applied;
};

/* Applies every job of the batch into one write transaction. Returns 0 when the transaction can
 * be committed (some jobs may have failed alone), HSAMEM_EFULL to grow and retry, or an error of
 * the transaction itself. */
static int
apply_batch(struct commit *c, struct job *batch, struct store_txn *txn)
{
	for (struct job *j = batch; j != NULL; j = j->next) {
		struct store_txn nested;
		j->reply.status = 0;
		j->reply.message = NULL;
		int ret = store_txn_begin(c->d->store, &nested, true, txn);
		if (ret == 0) {
			ret = ops_apply(j, &nested);
			if (ret == 0)
				ret = store_txn_commit(&nested);
			else
				store_txn_abort(&nested);
		}
		if (ret == HSAMEM_EFULL)
			return ret;
		if (ret != 0 && j->reply.status == 0)
			job_fail(j, ret, "store: %s", hsamem_strerror(ret));
	}
	return 0;
}

static void
run_batch(struct commit *c, struct job *batch)
{
	struct store_txn txn;
	int ret;
	for (;;) {
		ret = store_txn_begin(c->d->store, &txn, true, NULL);
		if (ret != 0)
			break;
		ret = apply_batch(c, batch, &txn);
		if (ret == 0)
			ret = store_txn_commit(&txn);
		else
			store_txn_abort(&txn);
		if (ret != HSAMEM_EFULL)
			break;
		if ((ret = store_grow(c->d->store)) != 0) {
			log_err("store: map is full and cannot grow further (map-max)");
			ret = HSAMEM_EFULL;
			break;
		}
	}
	atomic_fetch_add(&c->commits, 1);
	for (struct job *j = batch, *next; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		if (ret != 0 && j->reply.status == 0)
			job_fail(j, ret, "store: commit failed: %s", hsamem_strerror(ret));
		if (j->reply.status == 0)
			atomic_fetch_add(&c->applied, 1);
		ops_committed(j, ret);
		j->finish(j);
	}
}

static void *
commit_main(void *arg)
{
	struct commit *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->head == NULL)
			break;
		struct job *batch = c->head, *last = batch;
		for (unsigned n = 1; n < c->max_batch && last->next != NULL; n++)
			last = last->next;
		c->head = last->next;
		if (c->head == NULL)
			c->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&c->mu);
		run_batch(c, batch);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
commit_start(struct daemon *d, unsigned max_batch, struct commit **out)
{
	struct commit *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->d = d;
	c->max_batch = max_batch;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	int ret = pthread_create(&c->thread, NULL, commit_main, c);
	if (ret != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return -ret;
	}
	*out = c;
	return 0;
}

void
commit_submit(struct commit *c, struct job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->tail != NULL)
		c->tail->next = job;
	else
		c->head = job;
	c->tail = job;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void
commit_stop(struct commit *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void
commit_counters(struct commit *c, uint64_t *commits, uint64_t *applied)
{
	*commits = atomic_load(&c->commits);
	*applied = atomic_load(&c->applied);
}
