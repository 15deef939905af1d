/*
 * commit.h: the group committer, the only writer of the store. Workers hand it prepared write jobs;
 * it applies them in group commits and answers each once its commit is durable (job.h, invariant
 * 2). It knows no operation: the functions that apply a job and that follow its commit are given
 * at start.
 */
#ifndef HSAMEM_COMMIT_H
#define HSAMEM_COMMIT_H

#include <stdint.h>

struct commit;
struct job;
struct store;
struct store_txn;

/*
 * Applies a prepared write inside txn (a nested transaction of the group commit). Returns 0, or
 * the job's error (its reply already says why, or the committer says "store: ..."), or a
 * store_full() code: HSAMEM_EFULL to have the map grown and the whole batch run again, or no room
 * at all (commit.c says what the committer does then).
 */
typedef int commit_apply_fn(struct job *job, struct store_txn *txn);
/*
 * What an apply function returns for a job whose preparation went stale: what the worker
 * computed from its snapshot no longer fits the memory (a forget's encoded chunks, after another
 * forget of the memory). Nothing of the job is applied (its nested transaction is aborted); after
 * the group commit, the committer hands it to the again function given at start, to be prepared
 * anew, instead of answering it.
 */
#define COMMIT_AGAIN 1

/* Runs after the group commit that held the job, before the reply is sent; status is the
 * commit's outcome (0: durable). */
typedef void commit_done_fn(struct job *job, int status);
/*
 * Runs a write that found no room even in a transaction of its own, in steps of transactions of
 * its own (a delete, which makes room in pieces). Returns 0 when the write is done and durable,
 * HSAMEM_ENOTSUP for a write that cannot be run so, or its error.
 */
typedef int commit_reclaim_fn(struct job *job);
/* Takes back a job whose apply returned COMMIT_AGAIN, to prepare it again; it owns the job from
 * then on (and calls its finish in the end). */
typedef void commit_again_fn(struct job *job);

/* Starts the committer's thread; batches hold at most max_batch jobs. Returns 0 or a negative
 * errno. */
int commit_start(struct store *store, unsigned max_batch, commit_apply_fn *apply,
                 commit_reclaim_fn *reclaim, commit_done_fn *committed, commit_again_fn *again,
                 struct commit **out);
/* Queues a prepared job; the committer owns it from now on and calls its finish. */
void commit_submit(struct commit *c, struct job *job);
/* Applies what is queued, then stops the thread. NULL-safe. */
void commit_stop(struct commit *c);
/* Buckets of the batch-size histogram: at most 1, 2, 4, ... 2^16 jobs (max-batch's limit). */
#define COMMIT_BATCH_BUCKETS 17

/* Group commits run so far, and jobs they applied without error. */
void commit_counters(struct commit *c, uint64_t *commits, uint64_t *applied);

/* The batch-size histogram: counts[i] group commits of at most 2^i jobs (not cumulative), and
 * the jobs of all of them. */
void commit_batches(struct commit *c, uint64_t counts[COMMIT_BATCH_BUCKETS], uint64_t *jobs);

#endif
