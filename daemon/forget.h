/*
 * forget.h: the work of a forget over one memory (forget.c), in two parts: the worker that
 * prepares the request encodes the chunks it changes, from a snapshot; the committer applies it
 * in its transaction, with those tensors where the memory is still as the worker saw it.
 */
#ifndef HSAMEM_FORGET_H
#define HSAMEM_FORGET_H

#include <stdbool.h>
#include <stdint.h>

struct job;
struct store_filter;
struct store_txn;
struct store_user;

/* What a worker encoded for a forget (in the job's arena; job->fpre). */
struct forget_pre;

/*
 * In a worker: walks the forget of entries first .. last of memory `name` (to_end: first to the
 * memory's last entry) that pass filter (NULL: all) over a snapshot of the memory, and encodes
 * the chunks it would encode again, all in one batch, into job->fpre. The snapshot's read
 * transaction ends before the encoder runs. Leaves job->fpre NULL where the committer is to
 * decide (no such memory or entries, a client memory, nothing to encode, too many chunks).
 * Returns 0, or fails the job (the encoder failed, out of memory) and returns its code.
 */
int forget_pre_encode(struct job *job, const char *name, uint64_t first, uint64_t last, bool to_end,
                      const struct store_filter *filter);

/*
 * In the committer: forgets entries first .. last of u (checked by the caller) that pass filter
 * (NULL: all), in txn, taking the chunks job->fpre holds where their windows are unchanged;
 * updates u. *entries and *chunks get what it did (chunks: encoded again). Returns 0, or the
 * job's error (a client memory, the encoder failed), or the store's.
 */
int forget_range(struct job *job, struct store_txn *txn, struct store_user *u, uint64_t first,
                 uint64_t last, const struct store_filter *filter, uint64_t *entries,
                 uint64_t *chunks);

#endif
