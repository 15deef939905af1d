/*
 * dispatch.c: the table of operations, and the three places that run a job through it: the
 * workers (read, or prepare and hand to the committer), and the committer (apply, then committed
 * once the group commit is durable). This is the only list of operations in the daemon; adding
 * one is adding a row. This file must not interpret requests (the handlers do).
 */
#include <assert.h>
#include <stddef.h>

#include "commit.h"
#include "daemon.h"
#include "dispatch.h"
#include "ops.h"
#include "stats.h"

struct op_def {
	Hsamem__Request__BodyCase body; /* the request that names it */
	const char *name;               /* in the statistics */
	/* a read: answers the job in a worker (its reply is sent after) */
	void (*read)(struct job *job);
	/* a write: checks and prepares the job in a worker; 0 hands it to the committer, an error
	 * (the job failed) answers it at once */
	int (*prepare)(struct job *job);
	/* a write: applies it in the committer (commit_apply_fn) */
	int (*apply)(struct job *job, struct store_txn *txn);
	/* optional: after the group commit made the job's write durable, before its reply */
	void (*committed)(struct job *job);
	/* optional: a write that makes room, run in steps of its own transactions when it found no
	 * room even alone (commit_reclaim_fn) */
	int (*reclaim)(struct job *job);
};

/* clang-format off */
#define READ(req, name, read) {HSAMEM__REQUEST__BODY_##req, name, read, NULL, NULL, NULL, NULL}
#define WRITE(req, name, prepare, apply, committed, reclaim) \
	{HSAMEM__REQUEST__BODY_##req, name, NULL, prepare, apply, committed, reclaim}
/* clang-format on */

/* In the order of the statistics reply; "invalid" is last and counts what names no operation. */
static const struct op_def ops[] = {
        READ(PING, "ping", ops_ping),
        WRITE(CREATE, "create", ops_prepare_create, ops_apply_create, NULL, NULL),
        WRITE(APPEND, "append", ops_prepare_append, ops_apply_append, NULL, NULL),
        WRITE(FLUSH, "flush", ops_prepare_flush, ops_apply_flush, NULL, NULL),
        READ(QUERY, "query", ops_query),
        READ(ATTEND, "attend", ops_attend_request),
        READ(ENTRIES, "entries", ops_entries),
        READ(CHUNKS, "chunks", ops_chunks),
        READ(USERS, "users", ops_users),
        READ(STATS, "stats", ops_stats),
        WRITE(DELETE, "delete", ops_prepare_delete, ops_apply_delete, ops_committed_delete,
              ops_reclaim_delete),
        READ(EXPORT, "export", ops_export),
        WRITE(IMPORT, "import", ops_prepare_import, ops_apply_import, ops_committed_import, NULL),
        {HSAMEM__REQUEST__BODY__NOT_SET, "invalid", NULL, NULL, NULL, NULL, NULL},
};

#define N_OPS (sizeof(ops) / sizeof(ops[0]))
_Static_assert(N_OPS <= STATS_MAX_OPS, "stats.h keeps fewer histograms than there are operations");

unsigned
dispatch_find(const Hsamem__Request *req)
{
	for (unsigned i = 0; i < N_OPS - 1; i++)
		if (ops[i].body == req->body_case)
			return i;
	return N_OPS - 1;
}

unsigned
dispatch_invalid(void)
{
	return N_OPS - 1;
}

void
dispatch_init(struct stats *stats)
{
	for (unsigned i = 0; i < N_OPS; i++)
		stats_name(stats, i, ops[i].name);
}

void
dispatch_run(void *arg, struct job *jobs)
{
	for (struct job *job = jobs, *next; job != NULL; job = next) {
		const struct op_def *op = &ops[job->op];
		next = job->next;
		job->next = NULL;
		assert(op->read != NULL || op->prepare != NULL);
		if (op->read != NULL) {
			op->read(job);
		} else if (op->prepare(job) == 0) {
			commit_submit(job->d->commit, job);
			continue;
		}
		job->finish(job);
	}
}

int
dispatch_apply(struct job *job, struct store_txn *txn)
{
	const struct op_def *op = &ops[job->op];
	assert(op->apply != NULL);
	return op->apply(job, txn);
}

int
dispatch_reclaim(struct job *job)
{
	const struct op_def *op = &ops[job->op];
	return op->reclaim != NULL ? op->reclaim(job) : HSAMEM_ENOTSUP;
}

void
dispatch_committed(struct job *job, int status)
{
	const struct op_def *op = &ops[job->op];
	if (status == 0 && job->reply.status == 0 && op->committed != NULL)
		op->committed(job);
}
