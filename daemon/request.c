/*
 * request.c: decoding a request into a job, and sizing and releasing its reply (request.h). This
 * file must not know which operation a job carries beyond finding it in the table (dispatch.c),
 * nor touch a socket (the caller sends the reply).
 */
#include <string.h>

#include "daemon.h"
#include "dispatch.h"
#include "hsamem_defs.h"
#include "job.h"
#include "request.h"
#include "wire.h"

/*
 * Unpacking cut every string field at its first NUL byte (wire.h): refuses a request whose
 * strings hold one, from the serialized bytes, before any handler sees the cut string. A user
 * field is a bad name ("victim\0/../x" must not act on "victim"); any other string is a bad
 * argument, since names, texts and tags are kept as C strings. Returns 0, or the job's error.
 */
static int
check_strings(struct job *job, const void *buf, size_t len)
{
	struct wire_nul at;
	int r = wire_find_nul(&hsamem__request__descriptor, buf, len, &at);
	if (r == 0)
		return 0;
	if (r < 0)
		return job_fail(job, HSAMEM_EPROTO, "request is not a valid hsamem message");
	if (strcmp(at.field->name, "user") == 0)
		return job_fail(job, HSAMEM_EBADNAME,
		                "%s: user name holds a NUL byte (at byte %zu)", at.path, at.offset);
	return job_fail(job, HSAMEM_EINVAL,
	                "%s holds a NUL byte (at byte %zu): strings may not hold NUL bytes",
	                at.path, at.offset);
}

int
req_decode(struct job *job, struct daemon *d, uint32_t conn, const void *buf, size_t len)
{
	memset(job, 0, sizeof(*job));
	job->d = d;
	job->conn = conn;
	job->t0_ns = now_ns();
	job->op = dispatch_invalid();
	arena_init(&job->arena);
	hsamem__reply__init(&job->reply);

	job->req = hsamem__request__unpack(NULL, len, buf);
	if (job->req == NULL)
		return job_fail(job, HSAMEM_EPROTO, "request is not a valid hsamem message");
	if (!job->req->has_version || job->req->version != HSAMEM_PROTOCOL_VERSION)
		return job_fail(
		        job, HSAMEM_EVERSION,
		        "protocol version %u is not supported; this daemon speaks version %d",
		        job->req->has_version ? job->req->version : 0, HSAMEM_PROTOCOL_VERSION);
	job->op = dispatch_find(job->req); /* named in the statistics even when refused below */
	int ret = check_strings(job, buf, len);
	if (ret != 0)
		return ret;
	if (job->op == dispatch_invalid())
		return job_fail(job, HSAMEM_EPROTO, "request names no operation this daemon knows");
	return 0;
}

size_t
req_reply_size(struct job *job)
{
	Hsamem__Reply *rep = &job->reply;
	uint64_t max = job->d->conf.max_message;

	rep->has_version = true;
	rep->version = HSAMEM_PROTOCOL_VERSION;
	rep->has_status = true;
	size_t size = hsamem__reply__get_packed_size(rep);
	if (size > max) {
		job_fail(job, HSAMEM_ETOOBIG,
		         "reply of %zu bytes exceeds max-message (%llu): ask for less", size,
		         (unsigned long long)max);
		rep->body_case = HSAMEM__REPLY__BODY__NOT_SET;
		size = hsamem__reply__get_packed_size(rep);
	}
	return size;
}

void
req_done(struct job *job)
{
	struct daemon *d = job->d;
	stats_record(&d->stats, job->op, now_ns() - job->t0_ns, job->reply.status != 0);
	if (job->req != NULL)
		hsamem__request__free_unpacked(job->req, NULL);
	job->req = NULL;
	arena_fini(&job->arena);
}
