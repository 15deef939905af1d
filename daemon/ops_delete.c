/*
 * ops_delete.c: deleting a memory, everything of it: its records in the store (the committer's
 * nested transaction, which marks the store for erasure: the committer has every byte they
 * leave in data.mdb overwritten before the reply, store.h), and once that is durable, what the
 * daemon keeps of it elsewhere: an import in progress and the GPU backend's copies, which the
 * backend overwrites as it drops them. A half-imported memory can be deleted too.
 *
 * A store with no room at all (store.h, ROOM) may not even have the room that deleting a large
 * memory in one transaction takes: LMDB writes the list of the pages a transaction frees (8 bytes
 * a page) into pages that an earlier commit freed. Then the committer calls ops_reclaim_delete,
 * which deletes the memory in steps of transactions of its own:
 *
 *   hide (flag it as an import in progress: every reader finds no memory, and a restart removes
 *   what is left) --> delete up to n records, n = 16, doubling up to 65536 while steps succeed,
 *   halving when one finds no room --> ... --> none left: delete the user record
 *
 * with store_recycle() before each step, so that each step can use the pages the one before freed.
 * Each step marks the store for erasure as a whole delete does, and the committer erases once the
 * last step is durable.
 */
#include <stdbool.h>

#include "hybrid.h"
#include "log.h"
#include "ops.h"

#define RECLAIM_FIRST 16
#define RECLAIM_MOST  65536

int
ops_prepare_delete(struct job *job)
{
	return ops_check_name(job, job->req->delete_->user);
}

/* The reply of a delete of u. */
static int
delete_reply(struct job *job, const struct store_user *u)
{
	job->uid = u->uid;
	Hsamem__DeleteReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__delete_reply__init(r);
	r->has_entries = r->has_chunks = true;
	r->entries = u->n_entries;
	r->chunks = u->n_chunks;
	job->reply.body_case = HSAMEM__REPLY__BODY_DELETE;
	job->reply.delete_ = r;
	return 0;
}

int
ops_apply_delete(struct job *job, struct store_txn *txn)
{
	const char *name = job->req->delete_->user;
	struct store_user u;
	int ret = store_user_get(txn, name, &u); /* half-imported memories can be deleted too */
	if (ret == HSAMEM_ENOUSER)
		return job_fail(job, ret, "no memory for user '%s'", name);
	/* and the memory a re-encode of it is building */
	if (ret != 0 || (ret = ops_reencode_drop(txn, &u)) != 0 ||
	    (ret = store_user_delete(txn, &u)) != 0)
		return ret;
	return delete_reply(job, &u);
}

/* One step of a delete in steps: hides the memory (max == 0), deletes up to max of its records,
 * or, when none are left, the memory itself. Its own transaction, after store_recycle(). */
static int
reclaim_step(struct store *st, const char *name, uint64_t max, struct store_user *u, bool *left)
{
	struct store_txn txn;
	int ret = store_recycle(st);

	if (ret != 0 || (ret = store_txn_begin(st, &txn, true, NULL)) != 0)
		return ret;
	if ((ret = store_user_get(&txn, name, u)) == 0 && max == 0) {
		u->flags |= STORE_USER_IMPORTING;
		ret = store_user_update(&txn, u);
	} else if (ret == 0 && *left) {
		ret = store_user_delete_some(&txn, u->uid, max, left);
	} else if (ret == 0) {
		ret = store_user_delete(&txn, u);
	}
	if (ret != 0) {
		store_txn_abort(&txn);
		return ret;
	}
	return store_txn_commit(&txn);
}

int
ops_reclaim_delete(struct job *job)
{
	const char *name = job->req->delete_->user;
	struct store *st = job->d->store;
	struct store_user u;
	uint64_t n = RECLAIM_FIRST, steps = 0;
	bool left = true;
	int ret = reclaim_step(st, name, 0, &u, &left);

	if (ret == HSAMEM_ENOUSER)
		return job_fail(job, ret, "no memory for user '%s'", name);
	if (ret != 0)
		return ret; /* the committer says there is no room even to begin */
	log_notice("store: deleting user '%s' in steps: no room to delete it at once", name);
	for (;;) {
		bool more = left;
		ret = reclaim_step(st, name, n, &u, &more);
		steps++;
		if (ret == 0 && !left)
			break; /* the user record itself went */
		if (ret == 0) {
			left = more;
			n = n < RECLAIM_MOST ? 2 * n : n;
		} else if (store_full(ret) && n > 1) {
			n /= 2;
		} else {
			log_err("store: deleting user '%s' stopped after %llu steps: %s; it stays "
			        "hidden, and a delete or a restart removes the rest",
			        name, (unsigned long long)steps, hsamem_strerror(ret));
			return ret;
		}
	}
	log_notice("store: deleted user '%s' in %llu steps", name, (unsigned long long)steps);
	job->reply.status = 0;
	job->reply.message = NULL;
	return delete_reply(job, &u);
}

void
ops_committed_delete(struct job *job)
{
	struct daemon *d = job->d;
	ops_import_forget(job->uid);
	hyb_forget_cached(d, job->uid);
}
