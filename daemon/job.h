/*
 * job.h: the job, the unit of work that carries one request from the socket to a worker (and for
 * writes on to the committer) and its reply back, and the clocks that time and stamp it.
 *
 * A job's life:
 *
 *   RECV --arrived--> WORK --read-------------------------------> SEND --sent--> RECV
 *     \                 \                                          ^
 *      \                 +--write--> COMMIT --commit synced--------+
 *       +--------------------bad request--------------------------+
 *
 * The transitions and the function that performs each:
 *   RECV -> WORK     on_recv (server.c): req_decode (request.c) decodes the request and finds its
 *                    operation; peer_of_msg (peer.c) notes who sent it; wrk_submit.
 *   RECV -> SEND     on_recv: a request that cannot be decoded or names no operation is answered.
 *   WORK -> SEND     dispatch_run (a worker): the access check (acl.c), then the operation's read,
 *                    then job->finish; also a request the policy refuses, and a write whose
 *                    prepare fails.
 *   WORK -> COMMIT   dispatch_run: the operation's prepare, then commit_submit.
 *   COMMIT -> SEND   run_batch (the committer, commit.c): the operation's apply in a nested
 *                    transaction of the group commit, the synced commit, the operation's
 *                    committed, then job->finish.
 *   SEND -> RECV     ctx_callback (server.c), once nng has taken or dropped the reply.
 *
 * Invariants:
 *  1. A job belongs to exactly one thread at a time: the server's callback, one worker, or the
 *     committer. Handing it on (wrk_submit, commit_submit, job->finish) gives it away.
 *  2. A write is acknowledged (its reply sent) only after the group commit that holds it returned
 *     from a synced commit.
 *  3. Everything the reply points to lives in the job's arena until the reply has been packed.
 *  4. job->next links the jobs of a queue (worker.c) and of the batch the committer holds; no
 *     operation's handler uses it.
 */
#ifndef HSAMEM_JOB_H
#define HSAMEM_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "arena.h"
#include "hsamem.pb-c.h"
#include "spec.h"

struct daemon;
struct enc_ops;
struct seal_pre;
struct forget_pre;

/* Prepared data of one entry of an append (tokenised by a worker before the group commit). */
struct job_entry {
	const Hsamem__EntryIn *in;
	uint32_t *tokens;
	uint32_t *off, *len; /* byte range of each token in the entry's text (len 0: none) */
	size_t n;
	char *scope, *meta; /* "key=value" lists (store_filter.h), in the job's arena */
	uint32_t scope_len, meta_len;
};

struct job {
	struct daemon *d;
	Hsamem__Request *req;     /* unpacked request, freed when the reply is sent */
	ProtobufCAllocator alloc; /* req's allocator (request.c): at most alloc_left more bytes */
	uint64_t alloc_left;
	bool alloc_over;  /* the allocator refused for want of alloc_left */
	uint64_t charged; /* bytes charged to the daemon's requests in flight (request.c) */
	Hsamem__Reply reply;
	struct arena arena; /* the reply's memory */
	int64_t t0_ns;      /* arrival, for the latency histograms */
	/* when a worker took it, handed it to the committer, and its group commit ended (0: not
	 * there), for the slow-request log (audit.h) */
	int64_t t_work_ns, t_submit_ns, t_commit_ns;
	unsigned op;                     /* the operation, an index into the table of dispatch.c */
	uint32_t conn;                   /* the connection it came on (conn.h) */
	void (*finish)(struct job *job); /* packs and sends the reply (set by the server) */
	struct peer peer; /* who sent it, as the transport tells (set by the server) */
	struct acl *acl;  /* the policy the job was judged by, while a worker has it */
	struct acl_id id; /* who sent it, as the policy sees it (dispatch.c) */
	struct job *next; /* the queue or batch that holds the job */
	/* write operations: prepared by the worker, applied by the committer */
	const struct enc_ops *enc;
	struct hsa_spec spec;      /* create: the spec to create with */
	struct job_entry *entries; /* in the arena */
	size_t n_entries;
	uint64_t uid;         /* the memory a delete or import wrote, for the work after commit */
	struct seal_pre *pre; /* append, flush: chunks the worker encoded (seal.h), or NULL */
	/* forget, update: chunks the worker encoded again (forget.c), or NULL */
	struct forget_pre *fpre;
	/* set by the committer when the job is to be prepared again (commit.h, COMMIT_AGAIN); the
	 * times it was */
	bool again;
	unsigned tries;
	/* append, update: the append it makes (the request's, or one an update built) */
	const Hsamem__AppendRequest *append;
};

/* Sets the reply's status and message (printf-style). Returns status, for
 * `return job_fail(...)`. */
int job_fail(struct job *job, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Wall-clock milliseconds, for the timestamps that are stored; monotonic nanoseconds, for
 * latencies. */
int64_t now_ms(void);
int64_t now_ns(void);

#endif
