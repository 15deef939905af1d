/*
 * request.c: decoding a request into a job, and sizing and releasing its reply (request.h). This
 * file must not know which operation a job carries beyond finding it in the table (dispatch.c)
 * and the counts its limits put on a request's repeated fields, nor touch a socket (the caller
 * sends the reply).
 *
 * Decoding is bounded before it starts. protobuf-c's unpack allocates a struct for every
 * sub-message and a copy of every string before anyone can count them, up to ~70 times the
 * message's size for empty entries; so one walk of the serialized bytes (wire_scan) first refuses
 * a request whose counts break a limit of hsamem(7), and works out what its unpack will allocate.
 * That much plus the message's size is then charged to the daemon's budget of bytes in flight
 * (max-inflight) until the reply is sent; a request the budget cannot take now is refused with
 * HSAMEM_EBUSY rather than held: holding it would keep its message and a context while it waits,
 * so memory would be bounded by nothing better than contexts x max-message, whereas a refusal
 * frees both at once and the client may try again. The unpack itself runs on an allocator that
 * fails past what the walk foresaw (plus a little), so that what the walk cannot see (a
 * non-repeated sub-message sent many times, merged by unpack) cannot go past it either.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <string.h>

#include "daemon.h"
#include "audit.h"
#include "dispatch.h"
#include "hsamem_defs.h"
#include "job.h"
#include "ops.h"
#include "request.h"
#include "wire.h"

/* Slack of the decoding allocator over what the walk foresaw. */
#define REQ_ALLOC_SLACK (64u << 10)
/* A request that held this much is followed by a malloc_trim (req_done). */
#define REQ_TRIM_MIN (16u << 20)

/*
 * Unpacking cuts every string field at its first NUL byte (wire.h): refuses a request whose
 * strings hold one, from the serialized bytes, before any handler sees the cut string. A user
 * field is a bad name ("victim\0/../x" must not act on "victim"); any other string is a bad
 * argument, since names, texts and tags are kept as C strings. Returns 0, or the job's error.
 */
static int
check_strings(struct job *job, const struct wire_scan *s)
{
	if (!s->has_nul)
		return 0;
	if (strcmp(s->nul.field->name, "user") == 0)
		return job_fail(job, HSAMEM_EBADNAME,
		                "%s: user name holds a NUL byte (at byte %zu)", s->nul.path,
		                s->nul.offset);
	return job_fail(job, HSAMEM_EINVAL,
	                "%s holds a NUL byte (at byte %zu): strings may not hold NUL bytes",
	                s->nul.path, s->nul.offset);
}

/* The repeated fields whose counts the limits of hsamem(7) bound, counted over the whole request
 * by the walk (per entry limits are checked again, entry by entry, by the handlers). */
enum { C_ENTRIES, C_TAGS, C_RECORDS, C_ENTRY_TAGS, C_QUERY_TOKENS, C_POSITIONS, C_N };

static void
count_fields(struct wire_count *c)
{
	c[C_ENTRIES].max = OPS_MAX_ENTRIES;
	c[C_TAGS].max = (uint64_t)OPS_MAX_ENTRIES * OPS_MAX_TAGS;
	c[C_QUERY_TOKENS].max = c[C_POSITIONS].max = OPS_MAX_QUERY_TOKENS;
	c[C_ENTRIES].field = protobuf_c_message_descriptor_get_field_by_name(
	        &hsamem__append_request__descriptor, "entries");
	c[C_TAGS].field = protobuf_c_message_descriptor_get_field_by_name(
	        &hsamem__entry_in__descriptor, "tags");
	c[C_RECORDS].field = protobuf_c_message_descriptor_get_field_by_name(
	        &hsamem__import_request__descriptor, "records");
	c[C_ENTRY_TAGS].field =
	        protobuf_c_message_descriptor_get_field_by_name(&hsamem__entry__descriptor, "tags");
	c[C_QUERY_TOKENS].field = protobuf_c_message_descriptor_get_field_by_name(
	        &hsamem__query_request__descriptor, "tokens");
	c[C_POSITIONS].field = protobuf_c_message_descriptor_get_field_by_name(
	        &hsamem__attend_request__descriptor, "positions");
}

/* Refuses counts past the limits (one request carries one operation: the counts are its). A
 * walk that stopped at a limit counted up to one past it: "more than". */
static int
check_counts(struct job *job, const struct wire_count *c, bool stopped)
{
	const char *more = stopped ? "more than " : "";
	unsigned long long n;
	if ((n = c[C_ENTRIES].n) > OPS_MAX_ENTRIES)
		return job_fail(job, HSAMEM_ETOOBIG,
		                "append: %s%llu entries exceed the limit of %d entries an append",
		                more, n - (stopped ? 1 : 0), OPS_MAX_ENTRIES);
	if ((n = c[C_TAGS].n) > (unsigned long long)c[C_ENTRIES].n * OPS_MAX_TAGS)
		return job_fail(
		        job, HSAMEM_ETOOBIG,
		        "append: %s%llu tags on %llu entries exceed the limit of %d tags an "
		        "entry",
		        more, n - (stopped ? 1 : 0), (unsigned long long)c[C_ENTRIES].n,
		        OPS_MAX_TAGS);
	if ((n = c[C_ENTRY_TAGS].n) > (unsigned long long)c[C_RECORDS].n * OPS_MAX_TAGS)
		return job_fail(
		        job, HSAMEM_ETOOBIG,
		        "import: %s%llu tags on %llu records exceed the limit of %d tags an "
		        "entry",
		        more, n - (stopped ? 1 : 0), (unsigned long long)c[C_RECORDS].n,
		        OPS_MAX_TAGS);
	if ((n = c[C_QUERY_TOKENS].n) > OPS_MAX_QUERY_TOKENS)
		return job_fail(job, HSAMEM_ETOOBIG,
		                "query: %s%llu tokens exceed the limit of %d query tokens", more,
		                n - (stopped ? 1 : 0), OPS_MAX_QUERY_TOKENS);
	if ((n = c[C_POSITIONS].n) > OPS_MAX_QUERY_TOKENS)
		return job_fail(job, HSAMEM_ETOOBIG,
		                "attend: %s%llu positions exceed the limit of %d query tokens",
		                more, n - (stopped ? 1 : 0), OPS_MAX_QUERY_TOKENS);
	return 0;
}

/* Charges bytes to the daemon's budget of requests in flight: 0, or the job's error. */
static int
charge(struct job *job, uint64_t bytes)
{
	struct daemon *d = job->d;
	uint64_t max = conf_max_inflight(&d->conf), used = atomic_load(&d->inflight);

	if (bytes > max)
		return job_fail(job, HSAMEM_ETOOBIG,
		                "request would hold more than max-inflight (%llu bytes) decoded: "
		                "send less at once",
		                (unsigned long long)max);
	do {
		if (used + bytes > max)
			return job_fail(job, HSAMEM_EBUSY,
			                "daemon busy: requests in flight hold %llu bytes, and this "
			                "one would take %llu more, past max-inflight (%llu): try "
			                "again later",
			                (unsigned long long)used, (unsigned long long)bytes,
			                (unsigned long long)max);
	} while (!atomic_compare_exchange_weak(&d->inflight, &used, used + bytes));
	job->charged = bytes;
	return 0;
}

/* The decoding allocator: malloc and free, counted against job->alloc_left. */
static void *
req_alloc(void *data, size_t size)
{
	struct job *job = data;
	uint64_t cost = wire_alloc_cost(size);
	if (cost > job->alloc_left) {
		job->alloc_over = true;
		return NULL;
	}
	job->alloc_left -= cost;
	return malloc(size);
}

static void
req_free(void *data, void *ptr)
{
	free(ptr);
}

/* Walks the request, checks what it holds, charges it and unpacks it. 0, or the job's error. */
static int
decode(struct job *job, const void *buf, size_t len)
{
	struct wire_count counts[C_N] = {{0}};
	struct wire_scan s = {.counts = counts, .n_counts = C_N};
	int ret;

	count_fields(counts);
	/* the walk stops as soon as the request cannot fit max-inflight */
	uint64_t max = conf_max_inflight(&job->d->conf);
	s.max_unpacked = len < max ? max - len + 1 : 1;
	int walked = wire_scan(&hsamem__request__descriptor, buf, len, &s);
	if (walked < 0)
		return job_fail(job, HSAMEM_EPROTO, "request is not a valid hsamem message");
	if ((ret = check_counts(job, counts, walked == 1)) != 0 ||
	    (ret = charge(job, len + s.unpacked)) != 0)
		return ret;
	job->alloc = (ProtobufCAllocator){req_alloc, req_free, job};
	job->alloc_left = s.unpacked + REQ_ALLOC_SLACK;
	job->req = hsamem__request__unpack(&job->alloc, len, buf);
	if (job->req == NULL && job->alloc_over)
		return job_fail(job, HSAMEM_ETOOBIG,
		                "request takes more than %llu bytes to decode: a field that may "
		                "appear once was sent many times",
		                (unsigned long long)(s.unpacked + REQ_ALLOC_SLACK));
	if (job->req == NULL)
		return job_fail(job, HSAMEM_EPROTO, "request is not a valid hsamem message");
	if (!job->req->has_version || job->req->version != HSAMEM_PROTOCOL_VERSION)
		return job_fail(
		        job, HSAMEM_EVERSION,
		        "protocol version %u is not supported; this daemon speaks version %d",
		        job->req->has_version ? job->req->version : 0, HSAMEM_PROTOCOL_VERSION);
	job->op = dispatch_find(job->req); /* named in the statistics even when refused below */
	return check_strings(job, &s);
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

	int ret = decode(job, buf, len);
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
	int64_t elapsed = now_ns() - job->t0_ns;
	stats_record(&d->stats, job->op, elapsed, job->reply.status);
	audit_job(d->audit, job, elapsed);
	if (job->req != NULL)
		hsamem__request__free_unpacked(job->req, &job->alloc);
	job->req = NULL;
	arena_fini(&job->arena);
	if (job->charged > 0)
		atomic_fetch_sub(&d->inflight, job->charged);
	/* glibc keeps what a large request freed in its arenas (the decoding thread's, mostly):
	 * give it back to the system, so that one hostile request leaves nothing resident. Blocks
	 * of 1 MiB or more are mapped on their own (main.c); this is for the many small ones. */
	if (job->charged >= REQ_TRIM_MIN)
		malloc_trim(0);
	job->charged = 0;
}
