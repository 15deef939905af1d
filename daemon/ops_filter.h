/*
 * ops_filter.h: scopes, metadata and filters between the wire and the store (ops_filter.c).
 * Each function fails the job (and returns its code) on bad input or a store error.
 */
#ifndef HSAMEM_OPS_FILTER_H
#define HSAMEM_OPS_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "job.h"
#include "store.h"
#include "store_filter.h"

/* n pairs as "key=value" strings each followed by a NUL, in the arena; checked (what names them
 * in the message). */
int ops_attrs_pack(struct job *job, Hsamem__Attr *const *a, size_t n, const char *what, char **list,
                   uint32_t *len);

/* Fails the job when a key appears twice among the pairs (a scope names each key once). */
int ops_scope_check(struct job *job, Hsamem__Attr *const *a, size_t n, const char *what);

/* A request's filter, checked; NULL gives the empty filter. Strings live in the job's arena. */
int ops_filter_from_proto(struct job *job, const Hsamem__Filter *pf, struct store_filter *out);

/*
 * The chunk mask of filter f over memory u (store_filter_chunks), in the arena: *mask is NULL
 * for the empty filter (everything allowed). *allowed: chunks allowed, the tail counted.
 */
int ops_filter_mask(struct job *job, struct store_txn *txn, const struct store_user *u,
                    const struct store_filter *f, uint64_t **mask, uint64_t *allowed);

/* Whether entry seq passes f (an entry that no longer exists does not). */
int ops_entry_passes(struct job *job, struct store_txn *txn, uint64_t uid,
                     const struct store_filter *f, uint64_t seq, bool *pass);

#endif
