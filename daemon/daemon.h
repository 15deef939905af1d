/*
 * daemon.h: the daemon object and the job, the unit of work that carries one request from the
 * socket to a worker (and for writes on to the committer) and its reply back.
 *
 * A job's life (the owner of each step in brackets):
 *
 *   RECV --(request arrived: server)--> WORK --(ops_run: worker)--> SEND --(sent: server)--> RECV
 *                                         |                          ^
 *                                         +--(write op: committer)---+  ops_apply, one group commit
 *
 * Invariants:
 *  1. A job belongs to exactly one thread at a time: the server's callback, one worker, or the
 *     committer. Handing it on (wrk_submit, commit_submit, job_finish) gives it away.
 *  2. A write is acknowledged (its reply sent) only after the group commit that holds it returned
 *     from a synced commit.
 *  3. Everything the reply points to lives in the job's arena until the reply has been packed.
 */
#ifndef HSAMEM_DAEMON_H
#define HSAMEM_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "conf.h"
#include "encoder.h"
#include "hsamem.pb-c.h"
#include "stats.h"
#include "store.h"

struct server;
struct commit;
struct wrk_pool;

struct daemon {
	struct conf conf;
	char *conf_path;
	struct store *store;
	struct gpu_backend *cpu; /* always there: the fallback and the oracle */
	struct gpu_backend *gpu; /* the CUDA backend, or NULL */
	atomic_bool gpu_ok;      /* cleared for good by the first CUDA failure */
	struct wrk_pool *workers;
	struct commit *commit;
	struct server *server;
	struct stats stats;
	int64_t started_ms;
};

/* Prepared data of one entry of an append (tokenised by a worker before the group commit). */
struct job_entry {
	const Hsamem__EntryIn *in;
	uint32_t *tokens;
	uint32_t *off, *len; /* byte range of each token in the entry's text (len 0: none) */
	size_t n;
};

struct job {
	struct daemon *d;
	Hsamem__Request *req; /* unpacked request, freed when the reply is sent */
	Hsamem__Reply reply;
	struct arena arena; /* the reply's memory */
	int64_t t0_ns;      /* arrival, for the latency histograms */
	enum stats_op op;
	void (*finish)(struct job *job); /* packs and sends the reply (set by the server) */
	struct job *next;                /* the committer's queue */
	/* write operations: prepared by the worker, applied by the committer */
	const struct enc_ops *enc;
	struct hsa_spec spec;      /* create: the spec to create with */
	struct job_entry *entries; /* in the arena */
	size_t n_entries;
	uint64_t uid; /* the memory a delete or import wrote, for the work after commit */
};

/* Sets the reply's status and message (printf-style). Returns status, for
 * `return job_fail(...)`. */
int job_fail(struct job *job, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The backend to run a memory's query on: the GPU one while it works and supports the spec. */
struct gpu_backend *daemon_backend(struct daemon *d, const struct hsa_spec *spec);
/* Reports a failure of the GPU backend: it is disabled and the CPU serves from now on. */
void daemon_gpu_failed(struct daemon *d, int err);

/* ops.c: runs a request in a worker. Read requests are answered at once (job->finish called);
 * write requests are prepared and handed to the committer. */
void ops_run(struct job *job);
/* ops.c, in the committer: applies a prepared write inside txn (a nested transaction). Returns 0,
 * or the job's error (its reply already says why), or HSAMEM_EFULL to have the batch grown and
 * rerun. */
int ops_apply(struct job *job, struct store_txn *txn);
/* ops.c, in the committer after the group commit: status is the commit's outcome. */
void ops_committed(struct job *job, int status);

/* commit.c: the group committer, the only writer of the store. */
int commit_start(struct daemon *d, unsigned max_batch, struct commit **out);
void commit_submit(struct commit *c, struct job *job);
/* Applies what is queued, then stops the thread. */
void commit_stop(struct commit *c);
void commit_counters(struct commit *c, uint64_t *commits, uint64_t *applied);

int64_t now_ms(void);
int64_t now_ns(void);

#endif
