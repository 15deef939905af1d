/*
 * ops_delete.c: deleting a memory, everything of it: its records in the store (the committer's
 * nested transaction, which marks the store for erasure: the committer has every byte they
 * leave in data.mdb overwritten before the reply, store.h), and once that is durable, what the
 * daemon keeps of it elsewhere: an import in progress and the GPU backend's copies, which the
 * backend overwrites as it drops them. A half-imported memory can be deleted too.
 */
#include "ops.h"

int
ops_prepare_delete(struct job *job)
{
	return ops_check_name(job, job->req->delete_->user);
}

int
ops_apply_delete(struct job *job, struct store_txn *txn)
{
	const char *name = job->req->delete_->user;
	struct store_user u;
	int ret = store_user_get(txn, name, &u); /* half-imported memories can be deleted too */
	if (ret == HSAMEM_ENOUSER)
		return job_fail(job, ret, "no memory for user '%s'", name);
	if (ret != 0 || (ret = store_user_delete(txn, &u)) != 0)
		return ret;
	job->uid = u.uid;
	Hsamem__DeleteReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__delete_reply__init(r);
	r->has_entries = r->has_chunks = true;
	r->entries = u.n_entries;
	r->chunks = u.n_chunks;
	job->reply.body_case = HSAMEM__REPLY__BODY_DELETE;
	job->reply.delete_ = r;
	return 0;
}

void
ops_committed_delete(struct job *job)
{
	struct daemon *d = job->d;
	ops_import_forget(job->uid);
	if (d->gpu != NULL && d->gpu->ops->forget != NULL)
		d->gpu->ops->forget(d->gpu, job->uid);
}
