/*
 * ops_copy.c: the store's backup and compaction (hsamemd(8), OPERATIONS), for administrators
 * (dispatch.c). Each runs in the worker that took the request, for as long as the copy takes,
 * through store_backup and store_compact (store_copy.c), which keep the other requests going
 * beside it; this file checks the request, says in the reply's message what went wrong in words
 * an operator can act on, and reports the sizes and times.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "ops.h"

/* The store's error, as the operator sees it. */
static void
copy_failed(struct job *job, const char *what, const char *path, int ret)
{
	if (ret == HSAMEM_EINVAL)
		job_fail(job, ret, "'%s' is not an absolute path on the daemon's side", path);
	else if (ret == HSAMEM_EEXIST)
		job_fail(job, ret, "'%s' exists and is not an empty directory", path);
	else if (ret == HSAMEM_EBUSY)
		job_fail(
		        job, ret,
		        "busy: a backup or compaction is running, or another process has the store "
		        "open; try again after it");
	else if (ret < 0 && ret > -4096 && path != NULL)
		job_fail(job, HSAMEM_EINVAL, "%s: %s", path, strerror(-ret));
	else if (ret < 0 && ret > -4096)
		job_fail(job, HSAMEM_ESTORE, "%s: %s", what, strerror(-ret));
	else
		job_fail(job, ret, "%s failed: %s", what, hsamem_strerror(ret));
}

void
ops_backup(struct job *job)
{
	const char *path = job->req->backup->path;
	struct store_copy_info info;
	int ret;

	if (path == NULL || path[0] == '\0') {
		job_fail(job, HSAMEM_EINVAL, "no directory named");
		return;
	}
	if ((ret = store_backup(job->d->store, path, job->d->conf.backup_rate, &info)) != 0) {
		copy_failed(job, "backup", path, ret);
		return;
	}
	Hsamem__BackupReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__backup_reply__init(r);
	r->has_bytes = r->has_ms = true;
	r->bytes = info.bytes;
	r->ms = info.ms;
	job->reply.body_case = HSAMEM__REPLY__BODY_BACKUP;
	job->reply.backup = r;
}

void
ops_compact(struct job *job)
{
	struct store_copy_info info;
	int ret = store_compact(job->d->store, &info);
	if (ret != 0) {
		copy_failed(job, "compact", NULL, ret);
		return;
	}
	Hsamem__CompactReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL) {
		ops_oom(job);
		return;
	}
	hsamem__compact_reply__init(r);
	r->has_bytes_before = r->has_bytes_after = r->has_ms = r->has_pause_ms = true;
	r->bytes_before = info.before;
	r->bytes_after = info.bytes;
	r->ms = info.ms;
	r->pause_ms = info.pause_ms;
	job->reply.body_case = HSAMEM__REPLY__BODY_COMPACT;
	job->reply.compact = r;
}
