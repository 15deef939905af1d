/*
 * ops.h: the operation handlers, which dispatch.c runs, and what they share (ops.c). Internal to
 * the daemon. A read handler answers its job; a write is prepared in a worker (returning 0 to have
 * it applied, or the job's error) and applied in the committer inside a nested write transaction
 * (returning 0, the job's error, or a store_full() code, which the committer handles: commit.h).
 */
#ifndef HSAMEM_OPS_H
#define HSAMEM_OPS_H

#include <pthread.h>

#include "backend.h"
#include "daemon.h"
#include "encoder.h"
#include "job.h"
#include "kvcalc.h"
#include "store.h"
#include "store_filter.h"

/* Limits on what one request may carry, beyond max-message. */
#define OPS_MAX_ENTRIES      100000 /* entries in one append */
#define OPS_MAX_TAGS         32     /* tags of one entry */
#define OPS_MAX_TAG_BYTES    256
#define OPS_MAX_QUERY_TOKENS 4096
#define OPS_MAX_LIST         1000 /* entries of one entries request */
#define OPS_MAX_CHUNK_LIST   256  /* chunks of one chunks request */
#define OPS_MAX_HITS_ENTRIES 64   /* covered entries returned per hit */

/* Fails the job for want of memory; returns -ENOMEM. */
int ops_oom(struct job *job);

/* Checks a user name from a request; fails the job with HSAMEM_EBADNAME (returned) if bad. */
int ops_check_name(struct job *job, const char *name);

/*
 * Looks a memory up for a read or write: fails the job with HSAMEM_ENOUSER when it does not exist
 * or is being imported.
 */
int ops_get_user(struct job *job, struct store_txn *txn, const char *name, struct store_user *u);

/*
 * The start of every read of one memory: checks the name, begins a read transaction into *txn and
 * reads the memory into *u. On success the transaction is open and the caller ends it; on failure
 * the job is failed (its code returned) and nothing is left open.
 */
int ops_read_user(struct job *job, const char *name, struct store_txn *txn, struct store_user *u);

/* The built-in encoder of memory u, checked against its spec's revision; NULL for client memories.
 * Fails the job with HSAMEM_EENCODER when the encoder is unknown or of a revision it does not
 * serve, with a message that names the re-encode that would rebuild the memory. */
int ops_encoder(struct job *job, const struct store_user *u, const struct enc_ops **out);

/* Conversions between the wire's Spec and hsa_spec. spec_from_proto fills missing fields from
 * the encoder's defaults and checks the result (failing the job with the reason). */
int ops_spec_from_proto(struct job *job, const Hsamem__Spec *in, struct hsa_spec *out);
Hsamem__Spec *ops_spec_to_proto(struct arena *a, const struct hsa_spec *spec);
Hsamem__MemoryInfo *ops_memory_info(struct job *job, const struct store_user *u);

/* Reads entry seq into a reply message allocated in the arena. */
int ops_entry_to_proto(struct job *job, struct store_txn *txn, uint64_t uid, uint64_t seq,
                       Hsamem__Entry **out);

/* The text of tokens [from, to) of a chunk or tail, from the entries the refs point to; pieces of
 * different entries are joined by a newline. Entries that do not pass f (NULL: none is left out)
 * contribute nothing. NULL on a store error. */
char *ops_tokens_text(struct job *job, struct store_txn *txn, uint64_t uid,
                      const struct store_tokref *refs, uint32_t from, uint32_t to,
                      const struct store_filter *f);

/* A chunk source over a read transaction; the mutex serialises the LMDB calls, since the backend
 * calls the source from several threads and a transaction must not be used concurrently. */
struct ops_source {
	struct hsa_source src;
	struct store_txn *txn;
	struct store_user user;
	size_t kv_bytes;
	pthread_mutex_t mu;
	/* a memory that keeps no K/V (kvcalc.h): its encoder, and the chunks computed so far */
	const struct enc_ops *kv_enc;
	struct kvc_cache kv_cache;
	int kv_err; /* kvc_encoder's answer: every read of K/V fails with it */
	/* the unsealed tail as a source of its own (ops_source_tail): its one chunk, in the spec's
	 * dtype, or NULL */
	struct hsa_source tail;
	void *tail_kv, *tail_lmk;
};
void ops_source_init(struct ops_source *s, struct store_txn *txn, const struct store_user *u);
void ops_source_fini(struct ops_source *s);

/*
 * Makes s->tail, a source of one chunk: the memory's unsealed tail (t->n >= 1 tokens, tail_keys =
 * t->n), encoded now by the memory's built-in encoder. The sealed chunks stay in s->src for the
 * daemon's backend; the tail, which changes with every append, is computed on the CPU backend
 * (ops_attend_tail), so no device cache ever holds it. Returns 0, -ENOMEM or the encoder's error.
 */
int ops_source_tail(struct ops_source *s, const struct enc_ops *enc, const struct store_tail *t);

/* Whether the daemon's backend for memories of spec is the GPU (else the CPU). */
bool ops_on_device(struct job *job, const struct hsa_spec *spec);

/* Runs the operator on the daemon's backend, falling back to the CPU if the GPU fails. */
int ops_attend(struct job *job, const struct hsa_spec *spec, const struct hsa_source *src,
               const struct hsa_query *q, struct hsa_result *res);
/* Runs the operator on the CPU backend: for a source that holds a tail (ops_source_tail). */
int ops_attend_tail(struct job *job, const struct hsa_spec *spec, const struct hsa_source *src,
                    const struct hsa_query *q, struct hsa_result *res);

/* Reads: ops_read.c */
void ops_ping(struct job *job);
void ops_users(struct job *job);
void ops_stats(struct job *job);
void ops_entries(struct job *job);
void ops_chunks(struct job *job);

/* The whole store: ops_copy.c */
void ops_backup(struct job *job);
void ops_compact(struct job *job);

/* Reads: ops_query.c */
void ops_query(struct job *job);
void ops_attend_request(struct job *job);
/* Fills a hit's text, covered entries (at most max_entries) and top tokens (none when attn is
 * NULL: else [G][S] of its kv head, rows stride apart) from a chunk's (or the tail's) records.
 * With a filter f (NULL: none), only what belongs to passing entries is shown. */
int ops_fill_hit(struct job *job, struct store_txn *txn, const struct store_user *u, Hsamem__Hit *h,
                 const uint32_t *tokens, const struct store_tokref *refs, uint32_t n_real,
                 const float *attn, uint32_t G, uint32_t stride, uint32_t max_entries,
                 const struct store_filter *f);
/* The stream's last tokens, at most want, in the snapshot txn: the tail's, preceded by the real
 * tokens of the last sealed chunk where the tail is shorter (the context of a model's question).
 * *out is in the job's arena. 0, -ENOMEM or a store error. */
int ops_query_context(struct job *job, struct store_txn *txn, const struct store_user *u,
                      size_t want, uint32_t **out, size_t *n_out);

/* Reads: ops_ask.c */
void ops_ask(struct job *job);

/* Writes to a memory's stream: ops_write.c */
int ops_prepare_create(struct job *job);
int ops_apply_create(struct job *job, struct store_txn *txn);
int ops_prepare_append(struct job *job);
int ops_apply_append(struct job *job, struct store_txn *txn);
int ops_prepare_flush(struct job *job);
int ops_apply_flush(struct job *job, struct store_txn *txn);
/* The same for an append q that another write makes (an update): prepare sets job->append. */
int ops_prepare_append_req(struct job *job, const Hsamem__AppendRequest *q);
int ops_apply_append_req(struct job *job, struct store_txn *txn, const Hsamem__AppendRequest *q);

/* Forget, update and history: ops_forget.c */
int ops_prepare_forget(struct job *job);
int ops_apply_forget(struct job *job, struct store_txn *txn);
void ops_committed_forget(struct job *job);
int ops_prepare_update(struct job *job);
int ops_apply_update(struct job *job, struct store_txn *txn);
void ops_history(struct job *job);

/* Delete: ops_delete.c */
int ops_prepare_delete(struct job *job);
int ops_apply_delete(struct job *job, struct store_txn *txn);
void ops_committed_delete(struct job *job);
/* A delete that found no room even alone: deletes the memory in steps of transactions of its own
 * (ops_delete.c). 0 when the memory is gone, else the error. */
int ops_reclaim_delete(struct job *job);

/* Export: ops_export.c; import: ops_import.c */
#define OPS_EXPORT_FORMAT 1 /* the format of the stream, in its header */
void ops_export(struct job *job);
int ops_prepare_import(struct job *job);
int ops_apply_import(struct job *job, struct store_txn *txn);
void ops_committed_import(struct job *job);
/* Forgets what an import in progress of memory uid promised (the memory was deleted). Committer
 * thread only. */
void ops_import_forget(uint64_t uid);
/* Deletes memories left half-imported by a previous run (at start, before serving). */
int ops_import_cleanup(struct store *store);

/* Re-encode: ops_reencode.c */
int ops_prepare_reencode(struct job *job);
int ops_apply_reencode(struct job *job, struct store_txn *txn);
void ops_committed_reencode(struct job *job);
/* Deletes the memory a re-encode of u is building, if any (u is being deleted). */
int ops_reencode_drop(struct store_txn *txn, const struct store_user *u);

#endif
