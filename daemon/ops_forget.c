/*
 * ops_forget.c: the requests that forget: forget (entries by range or by filter), update (a new
 * entry that replaces one, which it forgets unless the history is kept) and history (the chain of
 * updates); hsamem(7), FORGETTING. The work over the memory is forget.c's: in the worker that
 * prepares the request, the chunks it changes are encoded (forget_pre_encode); in the committer,
 * the forget is applied with them (forget_range). Client memories are refused: their tensors
 * come from the client's model, which the daemon cannot run again.
 */
#include <stdlib.h>
#include <string.h>

#include "forget.h"
#include "hybrid.h"
#include "ops.h"
#include "ops_filter.h"

/* Entries one forget may name. */
#define FORGET_MAX OPS_MAX_ENTRIES

/* The memory a forget or update changes, as it is in the committer's transaction. */
static int
forget_target(struct job *job, struct store_txn *txn, const char *name, uint64_t first,
              uint64_t last, struct store_user *u)
{
	int ret = ops_get_user(job, txn, name, u);
	if (ret != 0)
		return ret;
	if (first > last || last >= u->n_entries)
		return job_fail(job, HSAMEM_ENOTFOUND,
		                "'%s' has entries 0 to %lld; there is no entry %llu", name,
		                (long long)u->n_entries - 1,
		                (unsigned long long)(last >= u->n_entries ? last : first));
	return 0;
}

/* The request's filter into *flt and whether it has one; a filter must name a condition. */
static int
forget_filter(struct job *job, struct store_filter *flt, bool *has)
{
	const Hsamem__ForgetRequest *q = job->req->forget;
	*has = q->filter != NULL;
	if (!*has)
		return 0;
	int ret = ops_filter_from_proto(job, q->filter, flt);
	if (ret == 0 && store_filter_empty(flt))
		return job_fail(job, HSAMEM_EINVAL,
		                "forget: the filter names no condition (delete forgets a whole "
		                "memory)");
	return ret;
}

int
ops_prepare_forget(struct job *job)
{
	const Hsamem__ForgetRequest *q = job->req->forget;
	struct store_filter flt;
	bool has;
	int ret = ops_check_name(job, q->user);
	if (ret != 0 || (ret = forget_filter(job, &flt, &has)) != 0)
		return ret;
	if (has) /* the range is the memory's, or within it: checked when applied */
		return forget_pre_encode(job, q->user, q->first, q->last, !q->has_last, &flt);
	uint64_t last = q->has_last ? q->last : q->first;
	if (!q->has_first)
		return job_fail(job, HSAMEM_EINVAL, "forget names no entry and no filter");
	if (last < q->first)
		return job_fail(job, HSAMEM_EINVAL,
		                "forget: entries %llu to %llu: the range is empty",
		                (unsigned long long)q->first, (unsigned long long)last);
	if (last - q->first >= FORGET_MAX)
		return job_fail(job, HSAMEM_ETOOBIG, "forget: at most %d entries at once",
		                FORGET_MAX);
	return forget_pre_encode(job, q->user, q->first, last, false, NULL);
}

int
ops_apply_forget(struct job *job, struct store_txn *txn)
{
	const Hsamem__ForgetRequest *q = job->req->forget;
	uint64_t first = q->first, last = q->has_last ? q->last : q->first, entries = 0, chunks = 0;
	struct store_filter flt;
	struct store_user u;
	bool has;
	int ret = forget_filter(job, &flt, &has);
	if (ret == 0 && has) {
		/* with a filter, the whole memory unless a range says otherwise */
		if ((ret = ops_get_user(job, txn, q->user, &u)) != 0)
			return ret;
		if (!q->has_last)
			last = u.n_entries > 0 ? u.n_entries - 1 : 0;
	}
	if (ret == 0 && (!has || u.n_entries > 0))
		ret = forget_target(job, txn, q->user, first, last, &u);
	if (ret == 0 && u.n_entries > 0)
		ret = forget_range(job, txn, &u, first, last, has ? &flt : NULL, &entries, &chunks);
	if (ret != 0)
		return ret;
	job->uid = u.uid;
	Hsamem__ForgetReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__forget_reply__init(r);
	r->has_entries = r->has_chunks = true;
	r->entries = entries;
	r->chunks = chunks;
	job->reply.body_case = HSAMEM__REPLY__BODY_FORGET;
	job->reply.forget = r;
	return 0;
}

void
ops_committed_forget(struct job *job)
{
	struct daemon *d = job->d;
	/* the memory's sealed chunks changed under the same uid: nothing cached of it may stay */
	if (job->reply.status == 0 && job->uid != 0)
		hyb_forget_cached(d, job->uid);
}

/* ---- update ---- */

int
ops_prepare_update(struct job *job)
{
	const Hsamem__UpdateRequest *q = job->req->update;
	int ret = ops_check_name(job, q->user);
	if (ret != 0)
		return ret;
	if (!q->has_seq || q->entry == NULL)
		return job_fail(job, HSAMEM_EINVAL,
		                "update needs the entry it replaces and a new one");
	Hsamem__AppendRequest *a = arena_alloc(&job->arena, sizeof(*a));
	Hsamem__EntryIn **e = arena_alloc(&job->arena, sizeof(*e));
	if (a == NULL || e == NULL)
		return ops_oom(job);
	hsamem__append_request__init(a);
	a->user = q->user;
	a->has_create = true;
	a->create = false;
	e[0] = q->entry;
	a->entries = e;
	a->n_entries = 1;
	if ((ret = ops_prepare_append_req(job, a)) != 0 || q->keep_history)
		return ret;
	/* the entry it replaces, forgotten after the append (ops_apply_update) */
	return forget_pre_encode(job, q->user, q->seq, q->seq, false, NULL);
}

int
ops_apply_update(struct job *job, struct store_txn *txn)
{
	const Hsamem__UpdateRequest *q = job->req->update;
	struct store_user u;
	struct store_link old, neu;
	uint64_t entries, chunks;
	int ret = forget_target(job, txn, q->user, q->seq, q->seq, &u);
	if (ret != 0 || (ret = store_link_get(txn, u.uid, q->seq, &old)) != 0)
		return ret;
	if (old.flags & STORE_LINK_FORGOTTEN)
		return job_fail(job, HSAMEM_EINVAL, "entry %llu of '%s' was forgotten",
		                (unsigned long long)q->seq, q->user);
	if (old.replaced_by != STORE_NO_SEQ)
		return job_fail(
		        job, HSAMEM_EINVAL,
		        "entry %llu of '%s' was already replaced by entry %llu: update that",
		        (unsigned long long)q->seq, q->user, (unsigned long long)old.replaced_by);
	if ((ret = ops_apply_append_req(job, txn, job->append)) != 0)
		return ret;
	uint64_t seq = job->reply.append->first_seq;
	old.replaced_by = seq;
	neu = (struct store_link){0, q->seq, STORE_NO_SEQ};
	if ((ret = store_link_put(txn, u.uid, q->seq, &old)) != 0 ||
	    (ret = store_link_put(txn, u.uid, seq, &neu)) != 0)
		return ret;
	if (!q->keep_history) {
		/* the memory as the append left it */
		if ((ret = store_user_get(txn, q->user, &u)) != 0 ||
		    (ret = forget_range(job, txn, &u, q->seq, q->seq, NULL, &entries, &chunks)) !=
		            0)
			return ret;
		job->uid = u.uid;
	}
	Hsamem__UpdateReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__update_reply__init(r);
	r->has_seq = r->has_replaces = r->has_forgotten = true;
	r->seq = seq;
	r->replaces = q->seq;
	r->forgotten = !q->keep_history;
	job->reply.body_case = HSAMEM__REPLY__BODY_UPDATE;
	job->reply.update = r;
	return 0;
}

/* ---- history ---- */

/* The most entries a history lists. */
#define HISTORY_MAX OPS_MAX_LIST

void
ops_history(struct job *job)
{
	const Hsamem__HistoryRequest *q = job->req->history;
	struct store_txn txn;
	struct store_user u;
	struct store_link l;
	uint64_t seq = q->seq, n = 0;
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		return;
	int ret = 0;
	if (!q->has_seq || seq >= u.n_entries) {
		job_fail(job, HSAMEM_ENOTFOUND, "'%s' has no entry %llu", q->user,
		         (unsigned long long)seq);
		goto out;
	}
	/* back to the first of the chain */
	for (; n < HISTORY_MAX && (ret = store_link_get(&txn, u.uid, seq, &l)) == 0 &&
	       l.replaces != STORE_NO_SEQ && l.replaces < seq;
	     n++)
		seq = l.replaces;
	Hsamem__HistoryReply *r = arena_alloc(&job->arena, sizeof(*r));
	Hsamem__Entry **e = arena_calloc(&job->arena, HISTORY_MAX, sizeof(*e));
	if (ret != 0 || r == NULL || e == NULL) {
		if (ret == 0)
			ops_oom(job);
		else
			job_fail(job, ret, "store: %s", hsamem_strerror(ret));
		goto out;
	}
	hsamem__history_reply__init(r);
	r->entries = e;
	for (;;) {
		if (ops_entry_to_proto(job, &txn, u.uid, seq, &e[r->n_entries]) != 0)
			goto out;
		const Hsamem__Entry *m = e[r->n_entries++];
		if (!m->has_replaced_by || m->replaced_by <= seq || r->n_entries == HISTORY_MAX)
			break;
		seq = m->replaced_by;
	}
	job->reply.body_case = HSAMEM__REPLY__BODY_HISTORY;
	job->reply.history = r;
out:
	store_txn_abort(&txn);
}
