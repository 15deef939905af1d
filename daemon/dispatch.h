/*
 * dispatch.h: the operations of the protocol, in one table (dispatch.c): for each, the request that
 * names it, its name in the statistics, and its handlers. A read is answered by a worker; a write
 * is prepared by a worker, applied by the committer and, once durable, followed up (job.h has the
 * job's life). An operation is known everywhere else by its number, the job's op: its row in the
 * table and the index of its latency histogram.
 */
#ifndef HSAMEM_DISPATCH_H
#define HSAMEM_DISPATCH_H

#include "hsamem.pb-c.h"

struct job;
struct stats;
struct store_txn;

/* The operation req names, or dispatch_invalid() when it names none this daemon knows. */
unsigned dispatch_find(const Hsamem__Request *req);
/* The number under which requests that name no operation are counted ("invalid"). */
unsigned dispatch_invalid(void);
/* Names the latency histogram of every operation, in the order the stats reply lists them. */
void dispatch_init(struct stats *stats);

/*
 * The workers' run function (worker.h): runs each job's operation. A read is answered at once
 * (job->finish called); a write is prepared and handed to the committer, or answered at once when
 * its request is refused.
 */
void dispatch_run(void *arg, struct job *jobs);
/* The committer's functions (commit.h): apply a prepared write, run one that found no room in
 * steps (HSAMEM_ENOTSUP for an operation that cannot make room: all but delete), and follow up
 * after the group commit. */
int dispatch_apply(struct job *job, struct store_txn *txn);
int dispatch_reclaim(struct job *job);
void dispatch_committed(struct job *job, int status);
/* The committer's again function (commit.h, COMMIT_AGAIN): the job back to the workers, which
 * prepare it again without judging its access anew (it was allowed, and its secret is wiped). */
void dispatch_again(struct job *job);

/* For the audit trail and the metrics: op's name ("invalid" past the table), whether it writes
 * (goes through the committer), whether it is an append. */
const char *dispatch_name(unsigned op);
bool dispatch_is_write(unsigned op);
bool dispatch_is_append(unsigned op);
/* The memory the job's request names, as it may be logged ("(an invalid name)" for one that is
 * not a valid name), or NULL when it names none. */
const char *dispatch_memory(const struct job *job);

#endif
