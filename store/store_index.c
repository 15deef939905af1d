/*
 * store_index.c: the postings of the filter index (store_filter.h, INDEX): their keys, and their
 * writing and removal with each entry record (store_entry_put calls store_filter_index). It writes
 * and names postings and reads nothing else; store_filter.c walks them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "hsamem_defs.h"
#include "store_fields.h"
#include "store_index.h"
#include "store_int.h"

/* The key of a term's posting: (uid, kind, term, NUL, seq). */
MDB_val
store_posting_key(uint8_t *buf, uint64_t uid, char kind, const char *term, size_t term_len,
                  uint64_t seq)
{
	key_uid(buf, uid);
	buf[8] = (uint8_t)kind;
	memcpy(buf + 9, term, term_len);
	buf[9 + term_len] = 0;
	key_uid(buf + 10 + term_len, seq);
	return (MDB_val){.mv_size = 18 + term_len, .mv_data = buf};
}

/* The key of a time posting: (uid, 'T', timestamp with its sign bit flipped so that big-endian
 * order is numeric order, seq). */
MDB_val
store_time_key(uint8_t buf[25], uint64_t uid, int64_t ts, uint64_t seq)
{
	key_uid(buf, uid);
	buf[8] = 'T';
	key_uid(buf + 9, (uint64_t)ts ^ (1ull << 63));
	key_uid(buf + 17, seq);
	return (MDB_val){.mv_size = 25, .mv_data = buf};
}

/* Puts (value: the entry's token range) or deletes each posting of the entry. */
static int
post(struct store_txn *txn, MDB_val *k, const uint8_t *val, bool del)
{
	if (!del)
		return store_db_put(txn, DB_ATTRS, k, val, POSTING_VAL, "write index");
	int rc = mdb_del(txn->txn, txn->st->dbi[DB_ATTRS], k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_txn_fail(txn, store_lmdb_error("delete index", rc));
	return 0;
}

static int
post_list(struct store_txn *txn, uint64_t uid, char kind, const char *list, uint32_t len,
          uint64_t seq, const uint8_t *val, bool del)
{
	uint8_t buf[POSTING_MAX];
	int ret = 0;
	for (uint32_t i = 0; ret == 0 && i < len; i += (uint32_t)strlen(list + i) + 1) {
		size_t tl = strlen(list + i);
		if (tl + 18 > sizeof(buf))
			continue; /* longer than any filter term may be */
		MDB_val k = store_posting_key(buf, uid, kind, list + i, tl, seq);
		ret = post(txn, &k, val, del);
	}
	return ret;
}

static int
post_all(struct store_txn *txn, uint64_t uid, const struct store_entry *e, bool del)
{
	uint8_t val[POSTING_VAL], tb[25];
	char role[2] = {(char)('0' + (e->role % 10)), 0};
	MDB_val tk = store_time_key(tb, uid, e->timestamp_ms, e->seq);
	put_u32(put_u64(val, e->first_token), e->n_tokens);
	int ret = post_list(txn, uid, 'r', role, 2, e->seq, val, del);
	if (ret == 0)
		ret = post_list(txn, uid, 's', e->scope, e->scope_len, e->seq, val, del);
	if (ret == 0)
		ret = post_list(txn, uid, 'm', e->meta, e->meta_len, e->seq, val, del);
	if (ret == 0)
		ret = post_list(txn, uid, 't', e->tags, e->tags_len, e->seq, val, del);
	if (ret == 0)
		ret = post(txn, &tk, val, del);
	return ret;
}

int
store_filter_index(struct store_txn *txn, uint64_t uid, const struct store_entry *e)
{
	uint8_t kb[8], vb[8];
	MDB_val k = key_uid(kb, uid), v;
	int ret = store_db_get(txn, DB_ATTRS, &k, &v, "read index");

	if (ret == NOTFOUND) {
		put_u64(vb, e->seq);
		ret = store_db_put(txn, DB_ATTRS, &k, vb, sizeof(vb), "write index");
	}
	return ret < 0 ? ret : post_all(txn, uid, e, false);
}

int
store_filter_unindex(struct store_txn *txn, uint64_t uid, const struct store_entry *e)
{
	int ret = store_txn_usable(txn, true, "unindex");
	return ret != 0 ? ret : post_all(txn, uid, e, true);
}
