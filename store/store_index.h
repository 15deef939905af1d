/*
 * store_index.h: the keys of the filter index's postings (store_index.c; the layout is
 * store_filter.h's INDEX), internal to store/.
 */
#ifndef HSAMEM_STORE_INDEX_H
#define HSAMEM_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "store.h"

#define POSTING_MAX (8 + 1 + 256 + 1 + 8) /* the longest term posting: a tag's */
#define POSTING_VAL 12                    /* u64 first_token, u32 n_tokens */

/* The key of a term's posting, (uid, kind, term, NUL, seq), in buf (POSTING_MAX bytes; the
 * caller checks that the term fits). */
MDB_val store_posting_key(uint8_t *buf, uint64_t uid, char kind, const char *term, size_t term_len,
                          uint64_t seq);

/* The key of a time posting: (uid, 'T', timestamp with its sign bit flipped so that big-endian
 * order is numeric order, seq). */
MDB_val store_time_key(uint8_t buf[25], uint64_t uid, int64_t ts, uint64_t seq);

/* Adds the postings of entry e of user uid (store_entry_put calls it). */
int store_filter_index(struct store_txn *txn, uint64_t uid, const struct store_entry *e);

/* Removes the postings of entry e (its record as stored) of user uid, before the entry is removed
 * or rewritten with other attributes. e's strings must not point into the map (copy them out of
 * a get first): the removal writes. */
int store_filter_unindex(struct store_txn *txn, uint64_t uid, const struct store_entry *e);

#endif
