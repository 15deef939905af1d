/*
 * dispatch.c: the table of operations, and the three places that run a job through it: the
 * workers (read, or prepare and hand to the committer), and the committer (apply, then committed
 * once the group commit is durable). This is the only list of operations in the daemon; adding
 * one is adding a row, which says who may run it. Before any handler runs, the worker asks the
 * policy (acl.h) whether the request's identity may: the memory the request names, or an
 * administrator. A refusal reads the same whether or not the memory exists, since the store is
 * not looked at. This file must not interpret requests beyond the memory they name (the handlers
 * do).
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "acl.h"
#include "commit.h"
#include "daemon.h"
#include "dispatch.h"
#include "ops.h"
#include "stats.h"
#include "worker.h"

/* Who may run an operation. */
enum access {
	ACC_ANY,    /* every identified peer: ping, and users (which lists what the peer may use) */
	ACC_MEMORY, /* whoever may use the memory the request names */
	ACC_STATS,  /* the same with a memory named; administrators without one (global stats) */
	ACC_ADMIN,  /* administrators: what changes or shows the whole store */
};

struct op_def {
	Hsamem__Request__BodyCase body; /* the request that names it */
	const char *name;               /* in the statistics */
	enum access access;
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
#define READ(req, name, access, read) \
	{HSAMEM__REQUEST__BODY_##req, name, ACC_##access, read, NULL, NULL, NULL, NULL}
#define WRITE(req, name, access, prepare, apply, committed, reclaim) \
	{HSAMEM__REQUEST__BODY_##req, name, ACC_##access, NULL, prepare, apply, committed, reclaim}
/* clang-format on */

/* In the order of the statistics reply; "invalid" is last and counts what names no operation.
 * Export is a read of one memory, as entries and chunks are; a backup of every memory needs the
 * list of them, which only administrators see. */
static const struct op_def ops[] = {
        READ(PING, "ping", ANY, ops_ping),
        WRITE(CREATE, "create", MEMORY, ops_prepare_create, ops_apply_create, NULL, NULL),
        WRITE(APPEND, "append", MEMORY, ops_prepare_append, ops_apply_append, NULL, NULL),
        WRITE(FLUSH, "flush", MEMORY, ops_prepare_flush, ops_apply_flush, NULL, NULL),
        READ(QUERY, "query", MEMORY, ops_query),
        READ(ATTEND, "attend", MEMORY, ops_attend_request),
        READ(ENTRIES, "entries", MEMORY, ops_entries),
        READ(CHUNKS, "chunks", MEMORY, ops_chunks),
        READ(USERS, "users", ANY, ops_users),
        READ(STATS, "stats", STATS, ops_stats),
        WRITE(DELETE, "delete", ADMIN, ops_prepare_delete, ops_apply_delete, ops_committed_delete,
              ops_reclaim_delete),
        READ(EXPORT, "export", MEMORY, ops_export),
        WRITE(IMPORT, "import", ADMIN, ops_prepare_import, ops_apply_import, ops_committed_import,
              NULL),
        WRITE(REENCODE, "reencode", MEMORY, ops_prepare_reencode, ops_apply_reencode,
              ops_committed_reencode, NULL),
        READ(BACKUP, "backup", ADMIN, ops_backup),
        READ(COMPACT, "compact", ADMIN, ops_compact),
        READ(ASK, "ask", MEMORY, ops_ask),
        WRITE(FORGET, "forget", MEMORY, ops_prepare_forget, ops_apply_forget, ops_committed_forget,
              NULL),
        WRITE(UPDATE, "update", MEMORY, ops_prepare_update, ops_apply_update, ops_committed_forget,
              NULL),
        READ(HISTORY, "history", MEMORY, ops_history),
        {HSAMEM__REQUEST__BODY__NOT_SET, "invalid", ACC_ADMIN, NULL, NULL, NULL, NULL, NULL},
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

/* The memory a request names, or NULL. */
static const char *
memory_of(const Hsamem__Request *r)
{
	switch (r->body_case) {
	case HSAMEM__REQUEST__BODY_CREATE: return r->create->user;
	case HSAMEM__REQUEST__BODY_APPEND: return r->append->user;
	case HSAMEM__REQUEST__BODY_FLUSH: return r->flush->user;
	case HSAMEM__REQUEST__BODY_QUERY: return r->query->user;
	case HSAMEM__REQUEST__BODY_ATTEND: return r->attend->user;
	case HSAMEM__REQUEST__BODY_ENTRIES: return r->entries->user;
	case HSAMEM__REQUEST__BODY_CHUNKS: return r->chunks->user;
	case HSAMEM__REQUEST__BODY_STATS: return r->stats->user;
	case HSAMEM__REQUEST__BODY_DELETE: return r->delete_->user;
	case HSAMEM__REQUEST__BODY_EXPORT: return r->export->user;
	case HSAMEM__REQUEST__BODY_IMPORT: return r->import->user;
	case HSAMEM__REQUEST__BODY_REENCODE: return r->reencode->user;
	case HSAMEM__REQUEST__BODY_ASK: return r->ask->user;
	case HSAMEM__REQUEST__BODY_FORGET: return r->forget->user;
	case HSAMEM__REQUEST__BODY_UPDATE: return r->update->user;
	case HSAMEM__REQUEST__BODY_HISTORY: return r->history->user;
	default: return NULL;
	}
}

/* A name from a request as it may be shown in the log and in the reply. */
static const char *
printable(const char *name)
{
	size_t n = strlen(name);
	if (n > HSAMEM_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@:-") != n)
		return "(an invalid name)";
	return name;
}

/*
 * Identifies the job's sender and judges the request by the current policy, which the job keeps
 * (job->acl) until its handler has run: the users and stats handlers filter by it. A refusal
 * fails the job with HSAMEM_EPERM and is logged. The secret the request carried is wiped.
 */
static bool
access_ok(struct job *job, const struct op_def *op)
{
	Hsamem__Request *r = job->req;
	struct acl_id *id = &job->id;
	const char *name = memory_of(r);
	bool admin_op, ok;

	if (name != NULL && *name == '\0')
		name = NULL;
	admin_op = op->access == ACC_ADMIN || (op->access == ACC_STATS && name == NULL);
	job->acl = acl_box_get(&job->d->acl);
	acl_identify(job->acl, &job->peer, r->has_secret ? r->secret.data : NULL,
	             r->has_secret ? r->secret.len : 0, id);
	if (r->has_secret && r->secret.data != NULL)
		explicit_bzero(r->secret.data, r->secret.len);
	if (admin_op)
		ok = id->admin;
	else if (op->access == ACC_ANY)
		ok = id->kind != ACL_NOBODY;
	else
		ok = acl_may_use(job->acl, id, name);
	if (ok)
		return true;
	if (name != NULL)
		name = printable(name);
	acl_log_denied(job->acl, id, op->name, name, admin_op);
	if (id->kind == ACL_NOBODY)
		job_fail(job, HSAMEM_EPERM, "permission denied: %s", id->who);
	else if (admin_op)
		job_fail(job, HSAMEM_EPERM,
		         "permission denied: %s is not an administrator of this daemon, which %s%s "
		         "needs",
		         id->who, op->name, op->access == ACC_STATS ? " without a memory" : "");
	else
		job_fail(job, HSAMEM_EPERM, "permission denied: %s may not use memory '%s'",
		         id->who, name != NULL ? name : "(none named)");
	return false;
}

void
dispatch_run(void *arg, struct job *jobs)
{
	for (struct job *job = jobs, *next; job != NULL; job = next) {
		const struct op_def *op = &ops[job->op];
		bool commit = false;
		next = job->next;
		job->next = NULL;
		job->t_work_ns = now_ns();
		assert(op->read != NULL || op->prepare != NULL);
		if (job->tries > 0 || access_ok(job, op)) {
			if (op->read != NULL)
				op->read(job);
			else
				commit = op->prepare(job) == 0;
		}
		acl_put(job->acl);
		job->acl = NULL;
		if (commit) {
			job->t_submit_ns = now_ns();
			commit_submit(job->d->commit, job);
		} else
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

void
dispatch_again(struct job *job)
{
	job->again = false;
	job->tries++;
	job->reply.body_case = HSAMEM__REPLY__BODY__NOT_SET; /* an update's append, undone */
	if (!wrk_submit_open(job->d->workers, job)) {
		job_fail(job, HSAMEM_EBUSY, "the daemon is stopping: %s was not done; retry",
		         ops[job->op].name);
		job->finish(job);
	}
}

const char *
dispatch_name(unsigned op)
{
	return op < N_OPS ? ops[op].name : "invalid";
}

bool
dispatch_is_write(unsigned op)
{
	return op < N_OPS && ops[op].prepare != NULL;
}

bool
dispatch_is_append(unsigned op)
{
	return op < N_OPS && ops[op].body == HSAMEM__REQUEST__BODY_APPEND;
}

const char *
dispatch_memory(const struct job *job)
{
	const char *name = job->req != NULL ? memory_of(job->req) : NULL;
	return name != NULL && *name != '\0' ? printable(name) : NULL;
}
