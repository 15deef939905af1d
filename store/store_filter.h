/*
 * store_filter.h: which entries a reading operation sees (hsamem(7), SCOPES AND FILTERS), and the
 * index that finds them without reading every entry.
 *
 * A filter is a conjunction: every scope pair, every metadata pair and every tag it names must be
 * in the entry, its role among the roles named (none named: any), its timestamp in [since, until).
 * store_filter_match says whether one entry record passes; a filter over a memory becomes a mask
 * of its chunks (store_filter_chunks): a chunk is allowed when it holds a token of a passing entry.
 * The forget operation evaluates the same filter over entry records (store_filter_match) to find
 * what to remove.
 *
 * INDEX
 * store_entry_put adds postings for each entry it writes, in the attrs database, each valued with
 * the entry's token range (u64 first_token, u32 n_tokens):
 *     (uid, kind, term, NUL, seq)      kind 's' scope "k=v", 'm' meta "k=v", 't' tag, 'r' role
 *     (uid, 'T', timestamp, seq)       the timestamp big-endian with its sign bit flipped
 * and (uid) -> u64 the first seq indexed (entries older than the index, written before it existed,
 * are read one by one). A filter walks the postings of one of its conditions (a scope pair, else a
 * metadata pair, else a tag, else its time range, else its roles); when that is its only condition
 * the postings' token ranges make the mask without reading an entry, else each candidate's record
 * is read and matched. Whoever removes an entry or rewrites it with other attributes removes its
 * postings first (store_filter_unindex, store_index.h): a posting left behind can only let a chunk
 * compete that then shows nothing, since what is shown is always matched against the entry records.
 */
#ifndef HSAMEM_STORE_FILTER_H
#define HSAMEM_STORE_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define STORE_ATTRS_MAX      8   /* scope pairs, and metadata pairs, of one entry or filter */
#define STORE_ATTR_KEY_MAX   32  /* bytes of a key: [A-Za-z0-9_.-] */
#define STORE_ATTR_VALUE_MAX 128 /* bytes of a value: no NUL */

struct store_filter {
	const char *scope; /* "key=value" strings, each followed by a NUL; all required */
	uint32_t scope_len;
	const char *meta; /* the same, over the entry's metadata */
	uint32_t meta_len;
	const char *tags; /* tags, each followed by a NUL; all required */
	uint32_t tags_len;
	uint32_t roles; /* bit r set: role r passes; 0: any role */
	bool has_since, has_until;
	int64_t since_ms, until_ms; /* timestamp_ms >= since_ms, < until_ms */
};

/* Whether f passes every entry (no condition given). */
bool store_filter_empty(const struct store_filter *f);

/* Whether entry e passes f. */
bool store_filter_match(const struct store_filter *f, const struct store_entry *e);

/*
 * Whether key=value may be stored: key of 1 to STORE_ATTR_KEY_MAX bytes of [A-Za-z0-9_.-], value
 * of 1 to STORE_ATTR_VALUE_MAX bytes. Returns NULL, or a static sentence saying what is wrong.
 */
const char *store_attr_check(const char *key, const char *value);

/*
 * The chunks of user u that hold a token of an entry passing f, as a bit mask: bit j of
 * mask[j / 64] for j in 0 .. u->n_chunks (n_chunks: the unsealed tail). mask has
 * u->n_chunks / 64 + 1 words, cleared here. *allowed gets the number of bits set, *entries the
 * number of passing entries. Returns 0 or the transaction's error.
 */
int store_filter_chunks(struct store_txn *txn, const struct store_user *u,
                        const struct store_filter *f, uint64_t *mask, uint64_t *allowed,
                        uint64_t *entries);

static inline bool
store_mask_test(const uint64_t *mask, uint64_t j)
{
	return (mask[j / 64] >> (j % 64)) & 1;
}

#endif
