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
 *   queue --take--> apply each (nested txn) --commit (sync)--> erase --> committed each --> replies
 *                      |                         |
 *                      +-- HSAMEM_EFULL ---------+--> abort, store_grow, apply the batch again
 *
 * When the batch removed records (a delete, an abandoned import) or wrote and was aborted, the
 * store erases what they leave in data.mdb before any reply goes out (store_erase): a client
 * told that its memory is deleted finds nothing of it in the store's files.
 *
 * The queue and the thread are a worker pool of one thread (worker.c). This file must not
 * interpret requests (the apply and committed functions given at start do) nor touch the socket
 * (the job's finish does).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "commit.h"
#include "job.h"
#include "log.h"
#include "store.h"
#include "worker.h"

struct commit {
	struct store *store;
	commit_apply_fn *apply;
	commit_done_fn *committed;
	struct wrk_pool *pool;
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
		int ret = store_txn_begin(c->store, &nested, true, txn);
		if (ret == 0) {
			ret = c->apply(j, &nested);
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
run_batch(void *arg, struct job *batch)
{
	struct commit *c = arg;
	struct store_txn txn;
	int ret;
	for (;;) {
		ret = store_txn_begin(c->store, &txn, true, NULL);
		if (ret != 0)
			break;
		ret = apply_batch(c, batch, &txn);
		if (ret == 0)
			ret = store_txn_commit(&txn);
		else
			store_txn_abort(&txn);
		if (ret != HSAMEM_EFULL)
			break;
		if ((ret = store_grow(c->store)) != 0) {
			log_err("store: map is full and cannot grow further (map-max)");
			ret = HSAMEM_EFULL;
			break;
		}
	}
	atomic_fetch_add(&c->commits, 1);
	/* a delete is erased before it is answered (store.h, ERASURE); a no-op without one */
	store_erase(c->store, false);
	for (struct job *j = batch, *next; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		if (ret != 0 && j->reply.status == 0)
			job_fail(j, ret, "store: commit failed: %s", hsamem_strerror(ret));
		if (j->reply.status == 0)
			atomic_fetch_add(&c->applied, 1);
		c->committed(j, ret);
		j->finish(j);
	}
}

int
commit_start(struct store *store, unsigned max_batch, commit_apply_fn *apply,
             commit_done_fn *committed, struct commit **out)
{
	struct commit *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->store = store;
	c->apply = apply;
	c->committed = committed;
	int ret = wrk_start(1, max_batch, run_batch, c, &c->pool);
	if (ret != 0) {
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void
commit_submit(struct commit *c, struct job *job)
{
	wrk_submit(c->pool, job);
}

void
commit_stop(struct commit *c)
{
	if (c == NULL)
		return;
	wrk_stop(c->pool);
	free(c);
}

void
commit_counters(struct commit *c, uint64_t *commits, uint64_t *applied)
{
	*commits = atomic_load(&c->commits);
	*applied = atomic_load(&c->applied);
}
