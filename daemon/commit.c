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
 *                      +-- no room (map-max, disk full) --> abort, commit each job alone
 *
 * When the store has no room (store.h, ROOM), one job's failure must not fail the others: a
 * delete that would make room must not fail because an append in its batch found none. So the
 * jobs of such a batch are then committed one by one, and a job that finds no room gets one more
 * try after store_recycle() (LMDB reuses the pages a delete freed only after a later commit); a
 * delete that still finds none runs in steps (commit_reclaim_fn: ops_delete.c). A job that still
 * finds none fails with HSAMEM_EFULL and a message saying what is full and what to do; the others
 * go on.
 *
 * When the batch removed records (a delete, an abandoned import) or wrote and was aborted, the
 * store erases what they leave in data.mdb before any reply goes out (store_erase): a client
 * told that its memory is deleted finds nothing of it in the store's files.
 *
 * A job whose apply finds its preparation stale (COMMIT_AGAIN: a forget whose encoded chunks
 * another forget changed) is not applied; after the commit it goes back to the workers to be
 * prepared again (the again function given at start), rather than being redone here where every
 * other write would wait for it.
 *
 * The queue and the thread are a worker pool of one thread (worker.c). This file must not
 * interpret requests (the apply, reclaim and committed functions given at start do) nor touch the
 * socket (the job's finish does).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "commit.h"
#include "job.h"
#include "log.h"
#include "store.h"
#include "worker.h"

struct commit {
	struct store *store;
	commit_apply_fn *apply;
	commit_reclaim_fn *reclaim;
	commit_done_fn *committed;
	commit_again_fn *again;
	struct wrk_pool *pool;
	atomic_uint_fast64_t commits, applied;
	/* jobs per group commit: batches[i] counts those of at most 2^i jobs (commit.h) */
	atomic_uint_fast64_t batches[COMMIT_BATCH_BUCKETS], batch_jobs;
};

/* Applies every job of the batch into one write transaction. Returns 0 when the transaction can
 * be committed (some jobs may have failed alone or be marked to prepare again), a store_full() code
 * (HSAMEM_EFULL: grow and retry), or an error of the transaction itself. */
static int
apply_batch(struct commit *c, struct job *batch, struct store_txn *txn)
{
	for (struct job *j = batch; j != NULL; j = j->next) {
		struct store_txn nested;
		j->reply.status = 0;
		j->reply.message = NULL;
		j->again = false;
		int ret = store_txn_begin(c->store, &nested, true, txn);
		if (ret == 0) {
			ret = c->apply(j, &nested);
			if (ret == 0)
				ret = store_txn_commit(&nested);
			else
				store_txn_abort(&nested);
		}
		if (store_full(ret))
			return ret;
		if (ret == COMMIT_AGAIN)
			j->again = true; /* handed back after the commit (run_batch) */
		else if (ret != 0 && j->reply.status == 0)
			job_fail(j, ret, "store: %s", hsamem_strerror(ret));
	}
	return 0;
}

/* Applies and commits the jobs in one transaction, growing the map and running it again while
 * LMDB finds the map full below map-max. Returns 0, or the error of the transaction. */
static int
commit_jobs(struct commit *c, struct job *jobs)
{
	struct store_txn txn;
	int ret;
	for (;;) {
		if ((ret = store_txn_begin(c->store, &txn, true, NULL)) != 0)
			return ret;
		ret = apply_batch(c, jobs, &txn);
		if (ret == 0)
			ret = store_txn_commit(&txn);
		else
			store_txn_abort(&txn);
		if (ret != HSAMEM_EFULL || (ret = store_grow(c->store)) != 0)
			return ret;
	}
}

/*
 * The batch found no room (ret, a store_full() code). Commits its jobs one by one, so that a
 * delete is not failed by an append beside it; a job that finds no room alone gets one more try
 * after store_recycle(), which makes the pages freed by the commits before it (a delete's)
 * reusable, and then, if it can make room in steps (a delete), c->reclaim. Each job's reply says
 * how it ended.
 */
static void
commit_alone(struct commit *c, struct job *batch, int ret)
{
	bool tried = batch->next == NULL; /* a batch of one has just tried alone */
	char why[256];

	for (struct job *j = batch, *next; j != NULL; j = next, tried = false) {
		next = j->next;
		j->next = NULL;
		if (!tried)
			ret = commit_jobs(c, j);
		if (store_full(ret) && store_recycle(c->store) == 0)
			ret = commit_jobs(c, j);
		if (store_full(ret) && c->reclaim != NULL) {
			int r = c->reclaim(j);
			ret = r == HSAMEM_ENOTSUP ? ret : r;
		}
		j->next = next;
		if (store_full(ret)) {
			store_full_message(c->store, ret, why, sizeof(why));
			log_err("store: no room for a write: %s", why);
			job_fail(j, HSAMEM_EFULL, "%s", why);
		} else if (ret != 0 && j->reply.status == 0) {
			job_fail(j, ret, "store: commit failed: %s", hsamem_strerror(ret));
		}
	}
}

/* Notes the batch's size, and when its commit ended, for the slow-request log (job.h). */
static void
count_batch(struct commit *c, struct job *batch)
{
	uint64_t n = 0;
	int64_t now = now_ns();
	unsigned i = 0;
	for (struct job *j = batch; j != NULL; j = j->next, n++)
		j->t_commit_ns = now;
	while (i < COMMIT_BATCH_BUCKETS - 1 && (1ull << i) < n)
		i++;
	atomic_fetch_add_explicit(&c->batches[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->batch_jobs, n, memory_order_relaxed);
}

static void
run_batch(void *arg, struct job *batch)
{
	struct commit *c = arg;
	int ret = commit_jobs(c, batch);
	if (store_full(ret)) {
		commit_alone(c, batch, ret);
		ret = 0; /* each job's reply says how it ended */
	}
	atomic_fetch_add(&c->commits, 1);
	count_batch(c, batch);
	/* a delete is erased before it is answered (store.h, ERASURE); a no-op without one */
	store_erase(c->store, false);
	for (struct job *j = batch, *next; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		if (ret == 0 && j->again) { /* to be prepared anew: not answered yet */
			c->again(j);
			continue;
		}
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
             commit_reclaim_fn *reclaim, commit_done_fn *committed, commit_again_fn *again,
             struct commit **out)
{
	struct commit *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->store = store;
	c->apply = apply;
	c->reclaim = reclaim;
	c->committed = committed;
	c->again = again;
	int ret = wrk_start(1, max_batch, run_batch, c, "hsamemd-commit", &c->pool);
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

void
commit_batches(struct commit *c, uint64_t counts[COMMIT_BATCH_BUCKETS], uint64_t *jobs)
{
	for (unsigned i = 0; i < COMMIT_BATCH_BUCKETS; i++)
		counts[i] = atomic_load_explicit(&c->batches[i], memory_order_relaxed);
	*jobs = atomic_load_explicit(&c->batch_jobs, memory_order_relaxed);
}
