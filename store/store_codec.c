/*
 * store_codec.c: the records of the LMDB store (store.h): their keys and layouts, and the
 * operations on users, entries, chunks, the tail, K|V blobs and landmark pages, each a few LMDB
 * calls through a transaction of store.c (store_int.h), whose sticky error they keep.
 *
 * It checks the shape of what it stores (sizes, the order of landmarks, that a record decodes) and
 * never its meaning: whether tokens fit a spec or counters add up is the daemon's business. A
 * record that does not decode is logged as corrupt and fails the transaction (HSAMEM_EFORMAT).
 *
 * RECORDS are fixed-layout little-endian; strings and byte arrays carry their lengths:
 *   user       u64 uid, u8 len + encoder, u8 len + tokenizer, u32 revision S h_kv d_h h_q d_r,
 *              u8 dtype weighting off_by_one, u32 top_k,
 *              u64 n_entries n_tokens n_chunks n_padded, i64 created_ms updated_ms,
 *              u32 lmk_per_page flags
 *   entry      u32 role n_tokens, i64 timestamp_ms, u64 first_token, u32 text_len tags_len,
 *              text, tags, and when the entry has scope or metadata (older records end
 *              before): u32 scope_len meta_len, scope, meta (store_filter.h)
 *   chunk      u32 n_tokens | PACKED, u32 n_real, then the token list (TOKEN LISTS)
 *   tail       u32 n | PACKED, then the token list
 *   kv         the caller's bytes
 *   landmarks  rows 0 .. n-1 of the page, back to back; a sparse page (SPARSE PAGES): u32 n,
 *              u32 dim, u32 entries, then start[dim + 1] (u16 when entries <= 65535, else u32),
 *              then the entries, 3 bytes each: u8 row, u16 value; element e's entries are
 *              start[e] .. start[e + 1] - 1, in increasing row order
 *   meta       "format": u32, "build": the daemon's name and version (written at open, store.c),
 *              "erase": u8 1, while an erasure is owed (store_erase.c)
 *   uids       "next": u64
 *   terms      store_terms.c's
 *   links      store_links.c's: forgotten entries and the chains of updates
 *
 * TOKEN LISTS give each slot of a chunk or the tail its token and its text reference (entry,
 * off, len). Written packed: u8 width (2 when every token is below 65536, else 4), the n tokens
 * in that width, then for each slot three LEB128 varints against the slot before it (entry 0,
 * end 0 before the first): zigzag(entry - its entry), zigzag(off - start), start being the end
 * (off + len) of the slot before when the entry is the same and 0 otherwise, and len. A word of
 * running text costs 3 bytes of reference instead of 16, and a lexical chunk about 450 bytes
 * instead of 1,288. A list of store format 2 and before (the count without PACKED) is n x u32
 * token, then n x (u64 entry, u32 off, u32 len); it still reads.
 *
 * INVARIANTS (3 and 4, of the environment and the transactions, are store.c's)
 *  1. Every key of entries, chunks, kv, landmarks, tail, terms and links starts with the user's
 * big-endian uid; every lookup builds its key from one uid, so no operation crosses users.
 *  2. A landmarks record holds rows 0 .. n-1 of its page, n = size / row bytes <= lmk_per_page;
 *     rows are appended in chunk order, so a page is full before the next one exists.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "log.h"
#include "sparse_rows.h"
#include "store.h"
#include "store_fields.h"
#include "store_index.h"
#include "store_int.h"

#define LANDMARK_PAGE_BYTES 65536

/* The databases whose keys start with a uid (invariant 1). */
static const int user_dbs[] = {DB_ENTRIES, DB_CHUNKS, DB_KV,    DB_LANDMARKS,
                               DB_TAIL,    DB_TERMS,  DB_ATTRS, DB_LINKS};

/* ---- users ---- */

static uint32_t
landmarks_per_page(const struct hsa_spec *spec)
{
	size_t row = spec_landmark_bytes(spec), fit = LANDMARK_PAGE_BYTES / row;
	uint32_t n = 1;
	while ((size_t)n * 2 <= fit)
		n *= 2;
	return n;
}

static int
user_key(const char *name, MDB_val *k)
{
	size_t len = strnlen(name, HSAMEM_NAME_MAX + 1);
	if (len == 0 || len > HSAMEM_NAME_MAX)
		return HSAMEM_EBADNAME;
	*k = (MDB_val){.mv_size = len, .mv_data = (void *)name};
	return 0;
}

static int
user_write(struct store_txn *txn, MDB_val *k, const struct store_user *u)
{
	const struct hsa_spec *s = &u->spec;
	size_t enc = strlen(s->encoder), tok = strlen(s->tokenizer);
	size_t len = 8 + 1 + enc + 1 + tok + 6 * 4 + 3 + 4 + 6 * 8 + 2 * 4;
	uint8_t *p;
	int ret = store_db_reserve(txn, DB_USERS, k, len, &p, "write user");
	if (ret != 0)
		return ret;
	p = put_u64(p, u->uid);
	p = put_bytes(put_u8(p, (uint8_t)enc), s->encoder, enc);
	p = put_bytes(put_u8(p, (uint8_t)tok), s->tokenizer, tok);
	p = put_u32(put_u32(put_u32(p, s->revision), s->S), s->h_kv);
	p = put_u32(put_u32(put_u32(p, s->d_h), s->h_q), s->d_r);
	p = put_u8(put_u8(put_u8(p, (uint8_t)s->dtype), (uint8_t)s->weighting), s->off_by_one);
	p = put_u32(p, s->top_k);
	p = put_u64(put_u64(put_u64(put_u64(p, u->n_entries), u->n_tokens), u->n_chunks),
	            u->n_padded);
	p = put_u64(put_u64(p, (uint64_t)u->created_ms), (uint64_t)u->updated_ms);
	put_u32(put_u32(p, u->lmk_per_page), u->flags);
	return 0;
}

static void
rd_string(struct rd *r, char *dst, size_t cap)
{
	size_t len = rd_u8(r);
	const uint8_t *p = len < cap ? rd_take(r, len) : NULL;
	if (p == NULL) {
		r->bad = true;
		return;
	}
	memcpy(dst, p, len);
	dst[len] = '\0';
}

static int
user_decode(const MDB_val *k, const MDB_val *v, struct store_user *out)
{
	struct rd r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size, false};
	struct store_user u = {0};
	struct hsa_spec *s = &u.spec;

	if (k->mv_size == 0 || k->mv_size > HSAMEM_NAME_MAX)
		return HSAMEM_EFORMAT;
	memcpy(u.name, k->mv_data, k->mv_size);
	u.uid = rd_u64(&r);
	rd_string(&r, s->encoder, sizeof(s->encoder));
	rd_string(&r, s->tokenizer, sizeof(s->tokenizer));
	s->revision = rd_u32(&r);
	s->S = rd_u32(&r);
	s->h_kv = rd_u32(&r);
	s->d_h = rd_u32(&r);
	s->h_q = rd_u32(&r);
	s->d_r = rd_u32(&r);
	s->dtype = (enum hsa_dtype)rd_u8(&r);
	s->weighting = (enum hsa_weighting)rd_u8(&r);
	s->off_by_one = rd_u8(&r) != 0;
	s->top_k = rd_u32(&r);
	u.n_entries = rd_u64(&r);
	u.n_tokens = rd_u64(&r);
	u.n_chunks = rd_u64(&r);
	u.n_padded = rd_u64(&r);
	u.created_ms = (int64_t)rd_u64(&r);
	u.updated_ms = (int64_t)rd_u64(&r);
	u.lmk_per_page = rd_u32(&r);
	u.flags = rd_u32(&r);
	if (!rd_done(&r) || spec_check(s, NULL, 0) != 0 || u.lmk_per_page == 0) {
		log_err("store: the record of user %.*s is corrupt", (int)k->mv_size,
		        (const char *)k->mv_data);
		return HSAMEM_EFORMAT;
	}
	*out = u;
	return 0;
}

/* The record of user name: 0 and *u, NOTFOUND, or a (sticky) error. */
static int
user_read(struct store_txn *txn, const char *name, struct store_user *u)
{
	MDB_val k, v;
	int ret = user_key(name, &k);
	if (ret != 0)
		return store_txn_fail(txn, ret);
	if ((ret = store_db_get(txn, DB_USERS, &k, &v, "read user")) != 0)
		return ret;
	return store_txn_fail(txn, user_decode(&k, &v, u));
}

int
store_user_get(struct store_txn *txn, const char *name, struct store_user *out)
{
	int ret = store_txn_usable(txn, false, "user get");
	if (ret == 0)
		ret = user_read(txn, name, out);
	return ret == NOTFOUND ? HSAMEM_ENOUSER : ret;
}

int
store_user_create(struct store_txn *txn, struct store_user *u)
{
	MDB_val k = key_str("next"), v, name;
	struct store_user stored, nu = *u;
	uint8_t next[8];
	int ret = store_txn_usable(txn, true, "user create");

	if (ret != 0 || (ret = user_read(txn, u->name, &stored)) < 0)
		return ret;
	if (ret == 0)
		return store_txn_fail(txn, HSAMEM_EEXIST);
	if (spec_check(&u->spec, NULL, 0) != 0)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	if ((ret = store_db_get(txn, DB_UIDS, &k, &v, "read next uid")) < 0)
		return ret;
	if (ret == NOTFOUND) {
		nu.uid = 1;
	} else {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		nu.uid = rd_u64(&r);
		if (!rd_done(&r) || nu.uid == 0)
			return store_corrupt(txn, "next uid", 0, nu.uid);
	}
	put_u64(next, nu.uid + 1);
	if ((ret = store_db_put(txn, DB_UIDS, &k, next, sizeof(next), "write next uid")) != 0)
		return ret;
	nu.lmk_per_page = landmarks_per_page(&u->spec);
	user_key(u->name, &name);
	if ((ret = user_write(txn, &name, &nu)) != 0)
		return ret;
	u->uid = nu.uid;
	u->lmk_per_page = nu.lmk_per_page;
	return 0;
}

/* The stored record of u, which must be the same user (same uid), not one created since. */
static int
user_same(struct store_txn *txn, const struct store_user *u, struct store_user *stored)
{
	int ret = user_read(txn, u->name, stored);
	if (ret == 0 && stored->uid != u->uid)
		ret = NOTFOUND;
	return ret == NOTFOUND ? store_txn_fail(txn, HSAMEM_ENOUSER) : ret;
}

int
store_user_update(struct store_txn *txn, const struct store_user *u)
{
	struct store_user stored;
	MDB_val k;
	int ret = store_txn_usable(txn, true, "user update");

	if (ret != 0 || (ret = user_same(txn, u, &stored)) != 0)
		return ret;
	/* The spec, uid, page size and creation time are fixed at creation. */
	stored.n_entries = u->n_entries;
	stored.n_tokens = u->n_tokens;
	stored.n_chunks = u->n_chunks;
	stored.n_padded = u->n_padded;
	stored.updated_ms = u->updated_ms;
	stored.flags = u->flags;
	user_key(u->name, &k);
	return user_write(txn, &k, &stored);
}

int
store_user_rename(struct store_txn *txn, const struct store_user *u, const char *name)
{
	struct store_user stored, other;
	MDB_val k;
	int ret = store_txn_usable(txn, true, "user rename"), rc;

	if (ret != 0 || (ret = user_same(txn, u, &stored)) != 0)
		return ret;
	if ((ret = user_read(txn, name, &other)) < 0)
		return ret;
	if (ret == 0)
		return store_txn_fail(txn, HSAMEM_EEXIST);
	user_key(u->name, &k);
	if ((rc = mdb_del(txn->txn, txn->st->dbi[DB_USERS], &k, NULL)) != 0)
		return store_txn_fail(txn, store_lmdb_error("rename user", rc));
	stored.created_ms = u->created_ms;
	stored.updated_ms = u->updated_ms;
	stored.flags = u->flags;
	user_key(name, &k);
	return user_write(txn, &k, &stored);
}

/* Visits every record of db whose key starts with uid: deletes it, or with n, counts it. With
 * budget, deletes at most *budget records, and takes those it deleted off *budget. */
static int
walk_prefix(struct store_txn *txn, int db, uint64_t uid, uint64_t *n, uint64_t *budget)
{
	uint8_t prefix[8];
	MDB_val k = key_uid(prefix, uid), v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->st->dbi[db], &cur);

	if (rc != 0)
		return store_txn_fail(txn, store_lmdb_error(store_db_names[db], rc));
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, prefix, 8) == 0 &&
	       (budget == NULL || *budget > 0)) {
		/* After a delete the cursor rests on the next record, which MDB_NEXT returns. */
		if (n != NULL)
			++*n;
		else if ((rc = mdb_cursor_del(cur, 0)) == 0 && budget != NULL)
			--*budget;
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_txn_fail(txn, store_lmdb_error(store_db_names[db], rc));
	return 0;
}

int
store_user_delete(struct store_txn *txn, const struct store_user *u)
{
	struct store_user stored;
	MDB_val k;
	int ret = store_txn_usable(txn, true, "user delete"), rc;

	if (ret != 0 || (ret = user_same(txn, u, &stored)) != 0)
		return ret;
	user_key(u->name, &k);
	if ((rc = mdb_del(txn->txn, txn->st->dbi[DB_USERS], &k, NULL)) != 0)
		return store_txn_fail(txn, store_lmdb_error("delete user", rc));
	for (size_t i = 0; i < sizeof(user_dbs) / sizeof(user_dbs[0]); i++)
		if ((ret = walk_prefix(txn, user_dbs[i], stored.uid, NULL, NULL)) != 0)
			return ret;
	return store_erase_mark(txn);
}

int
store_user_delete_some(struct store_txn *txn, uint64_t uid, uint64_t max, bool *left)
{
	/* the largest records first: they free the most room per record */
	static const int order[] = {DB_KV,   DB_LANDMARKS, DB_CHUNKS, DB_ENTRIES,
	                            DB_TAIL, DB_TERMS,     DB_ATTRS,  DB_LINKS};
	uint64_t budget = max;
	int ret = store_txn_usable(txn, true, "user delete some");

	for (size_t i = 0; ret == 0 && i < sizeof(order) / sizeof(order[0]); i++)
		ret = walk_prefix(txn, order[i], uid, NULL, &budget);
	if (ret == 0) /* the budget ran out: there may be more */
		*left = budget == 0;
	return ret == 0 && budget < max ? store_erase_mark(txn) : ret;
}

int
store_user_foreach(struct store_txn *txn, int (*cb)(const struct store_user *u, void *arg),
                   void *arg)
{
	struct store_user u;
	MDB_cursor *cur;
	MDB_val k, v;
	int ret = store_txn_usable(txn, false, "user foreach"), rc;

	if (ret != 0)
		return ret;
	if ((rc = mdb_cursor_open(txn->txn, txn->st->dbi[DB_USERS], &cur)) != 0)
		return store_txn_fail(txn, store_lmdb_error("list users", rc));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((ret = user_decode(&k, &v, &u)) != 0)
			store_txn_fail(txn, ret);
		else
			ret = cb(&u, arg);
	}
	mdb_cursor_close(cur);
	if (ret == 0 && rc != MDB_NOTFOUND)
		ret = store_txn_fail(txn, store_lmdb_error("list users", rc));
	return ret;
}

/* ---- entries ---- */

#define ENTRY_HEADER 32

/* A list of strings each followed by a NUL (tags, scope, metadata): len 0, or ends with a NUL. */
static bool
nul_list_ok(const char *s, uint32_t len)
{
	return len == 0 || (s != NULL && s[len - 1] == '\0');
}

int
store_entry_put(struct store_txn *txn, uint64_t uid, const struct store_entry *e)
{
	uint8_t kb[16], *p;
	MDB_val k = key_uid_n(kb, uid, e->seq);
	int ret = store_txn_usable(txn, true, "entry put");

	if (ret != 0)
		return ret;
	if ((e->text_len > 0 && e->text == NULL) || !nul_list_ok(e->tags, e->tags_len) ||
	    !nul_list_ok(e->scope, e->scope_len) || !nul_list_ok(e->meta, e->meta_len))
		return store_txn_fail(txn, HSAMEM_EINVAL);
	size_t attrs = e->scope_len + e->meta_len > 0 ? 8 + (size_t)e->scope_len + e->meta_len : 0;
	ret = store_db_reserve(txn, DB_ENTRIES, &k,
	                       ENTRY_HEADER + (size_t)e->text_len + e->tags_len + attrs, &p,
	                       "write entry");
	if (ret != 0)
		return ret;
	p = put_u32(put_u32(p, e->role), e->n_tokens);
	p = put_u64(put_u64(p, (uint64_t)e->timestamp_ms), e->first_token);
	p = put_u32(put_u32(p, e->text_len), e->tags_len);
	p = put_bytes(put_bytes(p, e->text, e->text_len), e->tags, e->tags_len);
	if (attrs > 0) {
		p = put_u32(put_u32(p, e->scope_len), e->meta_len);
		put_bytes(put_bytes(p, e->scope, e->scope_len), e->meta, e->meta_len);
	}
	return store_filter_index(txn, uid, e);
}

int
store_entry_get(struct store_txn *txn, uint64_t uid, uint64_t seq, struct store_entry *out)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, seq), v;
	struct store_entry e = {.seq = seq};
	int ret = store_txn_usable(txn, false, "entry get");

	if (ret != 0 || (ret = store_db_get(txn, DB_ENTRIES, &k, &v, "read entry")) < 0)
		return ret;
	if (ret == NOTFOUND)
		return HSAMEM_ENOTFOUND;
	struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
	e.role = rd_u32(&r);
	e.n_tokens = rd_u32(&r);
	e.timestamp_ms = (int64_t)rd_u64(&r);
	e.first_token = rd_u64(&r);
	e.text_len = rd_u32(&r);
	e.tags_len = rd_u32(&r);
	e.text = (const char *)rd_take(&r, e.text_len);
	e.tags = (const char *)rd_take(&r, e.tags_len);
	if (!r.bad && r.p != r.end) {
		e.scope_len = rd_u32(&r);
		e.meta_len = rd_u32(&r);
		e.scope = (const char *)rd_take(&r, e.scope_len);
		e.meta = (const char *)rd_take(&r, e.meta_len);
	}
	if (!rd_done(&r) || !nul_list_ok(e.tags, e.tags_len) ||
	    !nul_list_ok(e.scope, e.scope_len) || !nul_list_ok(e.meta, e.meta_len))
		return store_corrupt(txn, "entry", uid, seq);
	*out = e;
	return 0;
}

int
store_text_bytes(struct store_txn *txn, uint64_t *bytes)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t sum = 0;
	int ret = store_txn_usable(txn, false, "text bytes"), rc;
	if (ret != 0)
		return ret;
	if ((rc = mdb_cursor_open(txn->txn, txn->st->dbi[DB_ENTRIES], &cur)) != 0)
		return store_txn_fail(txn, store_lmdb_error("entries", rc));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		rd_take(&r, 24); /* role, n_tokens, timestamp_ms, first_token */
		uint32_t len = rd_u32(&r);
		sum += r.bad ? 0 : len;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return store_txn_fail(txn, store_lmdb_error("entries", rc));
	*bytes = sum;
	return 0;
}

/* ---- chunks and the tail: token lists ---- */

#define TOKEN_BYTES 20          /* a slot of an unpacked list: u32 token + u64 entry + 2 x u32 */
#define PACKED      0x80000000u /* in a list's count: the list is packed (TOKEN LISTS) */
#define VARINT_MAX  10          /* the bytes of a 64-bit LEB128 varint, at most */

/* Writes x as a LEB128 varint at p, or only counts its bytes when p is NULL; returns the end. */
static uint8_t *
put_varint(uint8_t *p, uint64_t x, size_t *n)
{
	do {
		uint8_t b = (uint8_t)(x & 0x7f);
		x >>= 7;
		if (p != NULL)
			*p++ = b | (x != 0 ? 0x80 : 0);
		(*n)++;
	} while (x != 0);
	return p;
}

static uint64_t
rd_varint(struct rd *r)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		const uint8_t *b = rd_take(r, 1);
		if (b == NULL)
			return 0;
		if (shift == 63 && *b > 1)
			break; /* past 64 bits */
		x |= (uint64_t)(*b & 0x7f) << shift;
		if (!(*b & 0x80))
			return x;
	}
	r->bad = true;
	return 0;
}

static uint64_t
zigzag(int64_t x)
{
	return ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);
}

static int64_t
unzigzag(uint64_t x)
{
	return (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
}

/* Packs a token list at p (TOKEN LISTS), or only counts its bytes when p is NULL; returns them. */
static size_t
pack_tokens(uint8_t *p, uint32_t n, const uint32_t *tokens, const struct store_tokref *refs)
{
	size_t len = 1;
	uint8_t width = 2;
	for (uint32_t i = 0; i < n; i++)
		if (tokens[i] > UINT16_MAX)
			width = 4;
	if (p != NULL)
		p = put_u8(p, width);
	for (uint32_t i = 0; i < n; i++)
		if (p != NULL)
			p = put_uint(p, tokens[i], width);
	len += (size_t)n * width;
	uint64_t entry = 0, end = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t start = refs[i].entry == entry ? end : 0;
		p = put_varint(p, zigzag((int64_t)(refs[i].entry - entry)), &len);
		p = put_varint(p, zigzag((int64_t)refs[i].off - (int64_t)start), &len);
		p = put_varint(p, refs[i].len, &len);
		entry = refs[i].entry;
		end = (uint64_t)refs[i].off + refs[i].len;
	}
	return len;
}

/* Reads the first keep of a list's n token ids into out and passes over the others: the ids come
 * before the references, 4 bytes each in an unpacked list, in a packed one the width its first
 * byte gives. r->bad tells a short list or a bad width. */
static void
rd_token_ids(struct rd *r, uint32_t n, bool packed, uint32_t *out, uint32_t keep)
{
	uint8_t width = packed ? rd_u8(r) : 4;
	if (width != 2 && width != 4) {
		r->bad = true;
		return;
	}
	for (uint32_t i = 0; i < keep && !r->bad; i++)
		out[i] = (uint32_t)rd_uint(r, width);
	rd_take(r, (size_t)(n - keep) * width);
}

/* Decodes n slots of a token list from r into scratch copies, packed or not; -ENOMEM, or 0
 * (r->bad tells a short or malformed list). */
static int
rd_tokens(struct store_txn *txn, struct rd *r, uint32_t n, bool packed, const uint32_t **tokens,
          const struct store_tokref **refs)
{
	if (n == 0 || (!packed && (size_t)(r->end - r->p) != (size_t)n * TOKEN_BYTES)) {
		r->bad = true;
		return 0;
	}
	struct store_tokref *rf =
	        store_scratch_alloc(txn, (size_t)n * (sizeof(*rf) + sizeof(uint32_t)));
	if (rf == NULL)
		return store_txn_fail(txn, -ENOMEM);
	uint32_t *tk = (uint32_t *)(rf + n);
	rd_token_ids(r, n, packed, tk, n);
	if (!packed) {
		for (uint32_t i = 0; i < n; i++) {
			rf[i].entry = rd_u64(r);
			rf[i].off = rd_u32(r);
			rf[i].len = rd_u32(r);
		}
	} else {
		uint64_t entry = 0, end = 0;
		for (uint32_t i = 0; i < n && !r->bad; i++) {
			uint64_t e = entry + (uint64_t)unzigzag(rd_varint(r));
			int64_t off = (int64_t)(e == entry ? end : 0) + unzigzag(rd_varint(r));
			uint64_t len = rd_varint(r);
			if (off < 0 || off > UINT32_MAX || len > UINT32_MAX)
				r->bad = true;
			rf[i] = (struct store_tokref){e, (uint32_t)off, (uint32_t)len};
			entry = e;
			end = (uint64_t)off + len;
		}
	}
	*tokens = tk;
	*refs = rf;
	return 0;
}

/* Reads a list's count: *packed tells whether the list is packed. */
static uint32_t
rd_count(struct rd *r, bool *packed)
{
	uint32_t n = rd_u32(r);
	*packed = (n & PACKED) != 0;
	return n & ~PACKED;
}

int
store_chunk_put(struct store_txn *txn, uint64_t uid, uint64_t j, const struct store_chunk *c)
{
	uint8_t kb[16], *p;
	MDB_val k = key_uid_n(kb, uid, j);
	int ret = store_txn_usable(txn, true, "chunk put");

	if (ret != 0)
		return ret;
	if (c->n_tokens == 0 || c->n_tokens >= PACKED || c->n_real > c->n_tokens ||
	    c->tokens == NULL || c->refs == NULL)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	size_t len = pack_tokens(NULL, c->n_tokens, c->tokens, c->refs);
	ret = store_db_reserve(txn, DB_CHUNKS, &k, 8 + len, &p, "write chunk");
	if (ret == 0)
		pack_tokens(put_u32(put_u32(p, c->n_tokens | PACKED), c->n_real), c->n_tokens,
		            c->tokens, c->refs);
	return ret;
}

/* A reader over chunk j's record; HSAMEM_ENOTFOUND when chunk j does not exist. */
static int
chunk_record(struct store_txn *txn, uint64_t uid, uint64_t j, struct rd *r)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, j), v;
	int ret = store_txn_usable(txn, false, "chunk get");

	if (ret != 0 || (ret = store_db_get(txn, DB_CHUNKS, &k, &v, "read chunk")) < 0)
		return ret;
	if (ret == NOTFOUND)
		return HSAMEM_ENOTFOUND;
	*r = (struct rd){v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
	return 0;
}

int
store_chunk_get(struct store_txn *txn, uint64_t uid, uint64_t j, struct store_chunk *out)
{
	struct store_chunk c;
	struct rd r;
	int ret = chunk_record(txn, uid, j, &r);
	if (ret != 0)
		return ret;
	bool packed;
	c.n_tokens = rd_count(&r, &packed);
	c.n_real = rd_u32(&r);
	if ((ret = rd_tokens(txn, &r, c.n_tokens, packed, &c.tokens, &c.refs)) != 0)
		return ret;
	if (!rd_done(&r) || c.n_real > c.n_tokens)
		return store_corrupt(txn, "chunk", uid, j);
	*out = c;
	return 0;
}

int
store_chunk_tokens(struct store_txn *txn, uint64_t uid, uint64_t j, uint32_t *tokens, uint32_t cap,
                   uint32_t *n_real)
{
	struct rd r;
	int ret = chunk_record(txn, uid, j, &r);
	if (ret != 0)
		return ret;
	bool packed;
	uint32_t n = rd_count(&r, &packed), real = rd_u32(&r), keep = real < cap ? real : cap;
	if (r.bad || n == 0 || real > n ||
	    (!packed && (size_t)(r.end - r.p) < (size_t)n * TOKEN_BYTES))
		return store_corrupt(txn, "chunk", uid, j);
	/* the tokens come first, then the references (TOKEN LISTS), which stay unread */
	rd_token_ids(&r, n, packed, tokens, keep);
	if (r.bad)
		return store_corrupt(txn, "chunk", uid, j);
	*n_real = keep;
	return 0;
}

int
store_tail_put(struct store_txn *txn, uint64_t uid, const struct store_tail *t)
{
	uint8_t kb[8], *p;
	MDB_val k = key_uid(kb, uid);
	int ret = store_txn_usable(txn, true, "tail put"), rc;

	if (ret != 0)
		return ret;
	if (t->n == 0) {
		rc = mdb_del(txn->txn, txn->st->dbi[DB_TAIL], &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_txn_fail(txn, store_lmdb_error("delete tail", rc));
		return 0;
	}
	if (t->tokens == NULL || t->refs == NULL || t->n >= PACKED)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	size_t len = pack_tokens(NULL, t->n, t->tokens, t->refs);
	ret = store_db_reserve(txn, DB_TAIL, &k, 4 + len, &p, "write tail");
	if (ret == 0)
		pack_tokens(put_u32(p, t->n | PACKED), t->n, t->tokens, t->refs);
	return ret;
}

int
store_tail_get(struct store_txn *txn, uint64_t uid, struct store_tail *out)
{
	uint8_t kb[8];
	MDB_val k = key_uid(kb, uid), v;
	struct store_tail t = {0};
	int ret = store_txn_usable(txn, false, "tail get");

	if (ret != 0 || (ret = store_db_get(txn, DB_TAIL, &k, &v, "read tail")) < 0)
		return ret;
	if (ret == 0) {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		bool packed;
		t.n = rd_count(&r, &packed);
		if ((ret = rd_tokens(txn, &r, t.n, packed, &t.tokens, &t.refs)) != 0)
			return ret;
		if (!rd_done(&r))
			return store_corrupt(txn, "tail", uid, 0);
	}
	*out = t;
	return 0;
}

/* ---- K|V ---- */

int
store_kv_put(struct store_txn *txn, uint64_t uid, uint64_t j, const void *kv, size_t len)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, j);
	int ret = store_txn_usable(txn, true, "kv put");

	if (ret != 0)
		return ret;
	if (kv == NULL || len == 0)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	return store_db_put(txn, DB_KV, &k, kv, len, "write kv");
}

int
store_kv_get(struct store_txn *txn, uint64_t uid, uint64_t j, const void **kv, size_t *len)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, j), v;
	const void *p;
	int ret = store_txn_usable(txn, false, "kv get");

	if (ret != 0 || (ret = store_db_get(txn, DB_KV, &k, &v, "read kv")) < 0)
		return ret;
	if (ret == NOTFOUND)
		return HSAMEM_ENOTFOUND;
	if ((p = store_aligned(txn, v.mv_data, v.mv_size, 8)) == NULL)
		return store_txn_fail(txn, -ENOMEM);
	*kv = p;
	*len = v.mv_size;
	return 0;
}

/* ---- landmarks ---- */

/* Lexical landmarks (store_lexlm_put) live in the landmarks database under page numbers with
 * the top bit set: the same uid prefix, so every walk and delete by uid takes them too. */
#define LEXLM_PAGE (1ull << 63)

#define SPARSE_ROWS_MAX 256 /* rows of a sparse page: u8 row numbers */

/* Whether user u keeps the pages of column base sparse (store.h, SPARSE PAGES). */
static bool
column_sparse(const struct store_user *u, uint64_t base)
{
	return (u->flags &
	        (base == LEXLM_PAGE ? STORE_USER_LEXLM_SPARSE : STORE_USER_LMK_SPARSE)) != 0;
}

/* Parses a sparse page (store.h, SPARSE PAGES; the layout above) of rows of dim elements and
 * checks its frame: whole, at most per_page rows, a table that starts at 0 and ends at the
 * entries' count. Its readers take an element's entries from start(e) to the lesser of
 * start(e + 1) and n_entries, and check each entry's row where they use it: a page whose table
 * goes back or whose rows are out of range reads wrong, never out of the record. */
static bool
sparse_parse(const MDB_val *v, uint32_t per_page, uint32_t dim, struct store_sparse *sp,
             uint32_t *n_rows)
{
	struct rd r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size, false};
	uint32_t n = rd_u32(&r), d = rd_u32(&r), entries = rd_u32(&r);
	sp->dim = dim;
	sp->n_entries = entries;
	sp->start_bytes = entries <= UINT16_MAX ? 2 : 4;
	sp->starts = rd_take(&r, ((size_t)dim + 1) * sp->start_bytes);
	sp->entries = rd_take(&r, (size_t)entries * 3);
	if (!rd_done(&r) || n > per_page || d != dim ||
	    sparse_rows_start(sp->starts, sp->start_bytes, 0) != 0 ||
	    sparse_rows_start(sp->starts, sp->start_bytes, dim) != entries)
		return false;
	*n_rows = n;
	return true;
}

/* The calling thread's buffer of decoded rows (store.h, SPARSE PAGES), freed with the thread: zeros
 * but for the set elements listed in at (byte offsets). A thread decodes page after page into
 * the same buffer, and clearing what the last page set costs far less than clearing the rows. */
struct dense {
	uint32_t *at;
	size_t n_at, cap_at, cap;
	uint8_t *rows;
};

static pthread_key_t dense_key;
static pthread_once_t dense_once = PTHREAD_ONCE_INIT;

static void
dense_free(void *arg)
{
	struct dense *d = arg;
	free(d->at);
	free(d->rows);
	free(d);
}

static void
dense_key_init(void)
{
	pthread_key_create(&dense_key, dense_free);
}

/* The calling thread's buffer, of at least len bytes and at entries; NULL when there is no
 * memory. */
static struct dense *
dense_buffer(size_t len, size_t entries)
{
	pthread_once(&dense_once, dense_key_init);
	struct dense *d = pthread_getspecific(dense_key);
	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL || pthread_setspecific(dense_key, d) != 0) {
			free(d);
			return NULL;
		}
	}
	if (d->cap < len) {
		uint8_t *rows = calloc(1, len);
		if (rows == NULL)
			return NULL;
		free(d->rows);
		d->rows = rows;
		d->cap = len;
		d->n_at = 0;
	}
	if (d->cap_at < entries) {
		uint32_t *at = realloc(d->at, entries * sizeof(*at));
		if (at == NULL)
			return NULL;
		d->at = at;
		d->cap_at = entries;
	}
	return d;
}

/* Rows row0 .. row0 + n - 1 of a parsed page (of n_rows rows) into d's dense rows of rb bytes.
 * false when an entry names a row past the page's. */
static bool
sparse_decode(const struct store_sparse *sp, uint32_t n_rows, uint32_t row0, uint32_t n, size_t rb,
              struct dense *d)
{
	for (size_t i = 0; i < d->n_at; i++)
		memset(d->rows + d->at[i], 0, 2);
	d->n_at = 0;
	for (uint32_t e = 0; e < sp->dim; e++) {
		uint32_t to = sparse_rows_start(sp->starts, sp->start_bytes, e + 1);
		if (to > sp->n_entries)
			to = sp->n_entries;
		for (uint32_t x = sparse_rows_start(sp->starts, sp->start_bytes, e); x < to; x++) {
			const uint8_t *en = sp->entries + 3 * (size_t)x;
			if (en[0] >= n_rows)
				return false;
			if (en[0] < row0 || en[0] >= row0 + n)
				continue;
			size_t at = (size_t)(en[0] - row0) * rb + 2 * (size_t)e;
			memcpy(d->rows + at, en + 1, 2);
			d->at[d->n_at++] = (uint32_t)at;
		}
	}
	return true;
}

/* Encodes n dense rows of rb bytes as a sparse page into a buffer of its own (*len bytes); NULL
 * when there is no memory. */
static uint8_t *
sparse_encode(const uint8_t *rows, uint32_t n, size_t rb, size_t *len)
{
	uint32_t dim = (uint32_t)(rb / 2), entries = 0;
	for (size_t i = 0; i < (size_t)n * dim; i++)
		entries += rows[2 * i] != 0 || rows[2 * i + 1] != 0;
	uint32_t w = entries <= UINT16_MAX ? 2 : 4;
	*len = 12 + ((size_t)dim + 1) * w + (size_t)entries * 3;
	uint8_t *out = malloc(*len);
	if (out == NULL)
		return NULL;
	uint8_t *p = put_u32(put_u32(put_u32(out, n), dim), entries);
	uint8_t *en = p + ((size_t)dim + 1) * w;
	uint32_t at = 0;
	for (uint32_t e = 0; e < dim; e++) {
		p = put_uint(p, at, (int)w);
		for (uint32_t row = 0; row < n; row++) {
			const uint8_t *x = rows + (size_t)row * rb + 2 * (size_t)e;
			if (x[0] != 0 || x[1] != 0) {
				en = put_bytes(put_u8(en, row), x, 2);
				at++;
			}
		}
	}
	put_uint(p, at, (int)w);
	return out;
}

/*
 * A sparse page of n_rows rows (parsed into sp) with n more rows, rows n_rows .. n_rows + n - 1
 * (rb bytes each, at rows), in a new buffer of *len bytes: each element's entries copied as they
 * are, the new rows' entries after them where they are not zero. The bytes sparse_encode would give
 * for the page's rows and the new ones, at the cost of a copy of the page rather than a decode and
 * a scan of all its rows. NULL with *bad set when the page's table or rows are out of order
 * (corrupt), NULL alone when there is no memory.
 */
static uint8_t *
sparse_append(const struct store_sparse *sp, uint32_t n_rows, const uint8_t *rows, uint32_t n,
              size_t rb, size_t *len, bool *bad)
{
	uint32_t dim = sp->dim, add = 0;
	for (size_t i = 0; i < (size_t)n * dim; i++)
		add += rows[2 * i] != 0 || rows[2 * i + 1] != 0;
	uint32_t entries = sp->n_entries + add, w = entries <= UINT16_MAX ? 2 : 4, at = 0;
	*len = 12 + ((size_t)dim + 1) * w + (size_t)entries * 3;
	uint8_t *out = malloc(*len);
	if (out == NULL)
		return NULL;
	uint8_t *p = put_u32(put_u32(put_u32(out, n_rows + n), dim), entries);
	uint8_t *en = p + ((size_t)dim + 1) * w;
	for (uint32_t e = 0; e < dim; e++) {
		uint32_t from = sparse_rows_start(sp->starts, sp->start_bytes, e),
		         to = sparse_rows_start(sp->starts, sp->start_bytes, e + 1);
		if (to < from || to > sp->n_entries)
			goto corrupt;
		p = put_uint(p, at, (int)w);
		memcpy(en, sp->entries + 3 * (size_t)from, 3 * (size_t)(to - from));
		for (uint32_t y = 0; y < to - from; y++)
			if (en[3 * (size_t)y] >= n_rows)
				goto corrupt;
		en += 3 * (size_t)(to - from);
		at += to - from;
		for (uint32_t r = 0; r < n; r++) {
			const uint8_t *x = rows + (size_t)r * rb + 2 * (size_t)e;
			if (x[0] != 0 || x[1] != 0) {
				en = put_bytes(put_u8(en, n_rows + r), x, 2);
				at++;
			}
		}
	}
	put_uint(p, at, (int)w);
	return out;
corrupt:
	free(out);
	*bad = true;
	return NULL;
}

/*
 * Writes rows j .. j + n - 1 of a landmarks column, all in j's page: appended as the next rows
 * (append: invariant 2), or one row (n = 1) in place of a row the column has (a forget's
 * re-encoding). The page's rows are copied out first (and a sparse page's decoded, unless rows are
 * only appended to it): the put may move or free the pages they live on.
 */
static int
landmark_write(struct store_txn *txn, const struct store_user *u, uint64_t base, size_t rb,
               uint64_t j, const void *row, uint32_t n, bool append)
{
	uint32_t per_page = u->lmk_per_page, n_rows = 0;
	bool sparse = column_sparse(u, base);
	uint8_t kb[16], *page, *put;
	MDB_val k, v = {0};
	struct store_sparse sp;
	int ret = store_txn_usable(txn, true, append ? "landmark put" : "landmark set");

	if (ret != 0)
		return ret;
	if (row == NULL || rb == 0 || per_page == 0 || n == 0 || (!append && n != 1) ||
	    j % per_page + n > per_page || (sparse && (rb % 2 != 0 || per_page > SPARSE_ROWS_MAX)))
		return store_txn_fail(txn, HSAMEM_EINVAL);
	k = key_uid_n(kb, u->uid, base | (j / per_page));
	if ((ret = store_db_get(txn, DB_LANDMARKS, &k, &v, "read landmarks")) < 0)
		return ret;
	bool found = ret != NOTFOUND;
	size_t have = !found ? 0 : v.mv_size, at = (j % per_page) * rb;
	if (sparse && found) {
		if (!sparse_parse(&v, per_page, (uint32_t)(rb / 2), &sp, &n_rows))
			return store_corrupt(txn, "landmarks page", u->uid, j / per_page);
		have = (size_t)n_rows * rb;
	}
	if ((!append && !found) || have % rb != 0 || have / rb > per_page)
		return store_corrupt(txn, "landmarks page", u->uid, j / per_page);
	if (append ? have != at : at >= have)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	size_t size = append ? have + n * rb : have;
	if (sparse && append && have > 0) {
		bool bad = false;
		if ((put = sparse_append(&sp, n_rows, row, n, rb, &size, &bad)) == NULL)
			return bad ? store_corrupt(txn, "landmarks page", u->uid, j / per_page)
			           : store_txn_fail(txn, -ENOMEM);
		ret = store_db_put(txn, DB_LANDMARKS, &k, put, size, "write landmarks");
		free(put);
		return ret;
	}
	if ((page = malloc(size)) == NULL)
		return store_txn_fail(txn, -ENOMEM);
	if (sparse && have > 0) {
		struct dense *d =
		        dense_buffer(have, sparse_rows_start(sp.starts, sp.start_bytes, sp.dim));
		if (d == NULL || !sparse_decode(&sp, n_rows, 0, n_rows, rb, d)) {
			free(page);
			return d == NULL
			               ? store_txn_fail(txn, -ENOMEM)
			               : store_corrupt(txn, "landmarks page", u->uid, j / per_page);
		}
		memcpy(page, d->rows, have);
	} else if (have > 0) {
		memcpy(page, v.mv_data, have);
	}
	memcpy(page + at, row, n * rb);
	put = page;
	if (sparse && (put = sparse_encode(page, (uint32_t)(size / rb), rb, &size)) == NULL) {
		free(page);
		return store_txn_fail(txn, -ENOMEM);
	}
	ret = store_db_put(txn, DB_LANDMARKS, &k, put, size, "write landmarks");
	if (put != page)
		free(put);
	free(page);
	return ret;
}

int
store_landmark_set(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row)
{
	return landmark_write(txn, u, 0, spec_landmark_bytes(&u->spec), j, row, 1, false);
}

int
store_lexlm_set(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row,
                size_t row_bytes)
{
	return landmark_write(txn, u, LEXLM_PAGE, row_bytes, j, row, 1, false);
}

/*
 * Reads the page of chunk first of column base: the dense rows from first to the page's end (or
 * n_chunks) into *rows, or, when sp is not NULL, the sparse page's view into *sp. *count: how many
 * rows.
 */
static int
landmarks_read(struct store_txn *txn, const struct store_user *u, uint64_t base, size_t rb,
               size_t align, uint64_t first, const void **rows, struct store_sparse *sp,
               uint64_t *count)
{
	uint32_t per_page = u->lmk_per_page, n_rows = 0;
	bool sparse = column_sparse(u, base);
	uint64_t page, slot, stored, n;
	uint8_t kb[16];
	MDB_val k, v = {0};
	struct store_sparse view;
	const void *p;
	int ret = store_txn_usable(txn, false, "landmarks get");

	if (ret != 0)
		return ret;
	if (rb == 0 || per_page == 0 || (sparse && (rb % 2 != 0 || per_page > SPARSE_ROWS_MAX)) ||
	    (sp != NULL && !sparse))
		return store_txn_fail(txn, HSAMEM_EINVAL);
	if (first >= u->n_chunks)
		return HSAMEM_ENOTFOUND;
	page = first / per_page;
	slot = first % per_page;
	k = key_uid_n(kb, u->uid, base | page);
	if ((ret = store_db_get(txn, DB_LANDMARKS, &k, &v, "read landmarks")) < 0)
		return ret;
	if (ret == NOTFOUND)
		stored = 0;
	else if (sparse)
		stored = sparse_parse(&v, per_page, (uint32_t)(rb / 2), &view, &n_rows)
		                 ? n_rows
		                 : UINT64_MAX;
	else
		stored = v.mv_size % rb == 0 ? v.mv_size / rb : UINT64_MAX;
	if (stored > per_page || slot >= stored)
		return store_corrupt(txn, "landmarks page", u->uid, page);
	n = stored - slot;
	if (n > u->n_chunks - first)
		n = u->n_chunks - first;
	*count = n;
	if (sp != NULL) {
		*sp = view;
		sp->row0 = (uint32_t)slot;
		sp->count = n;
		return 0;
	}
	if (sparse) {
		struct dense *d = dense_buffer(
		        n * rb, sparse_rows_start(view.starts, view.start_bytes, view.dim));
		if (d == NULL)
			return store_txn_fail(txn, -ENOMEM);
		if (!sparse_decode(&view, n_rows, (uint32_t)slot, (uint32_t)n, rb, d))
			return store_corrupt(txn, "landmarks page", u->uid, page);
		p = d->rows;
	} else {
		p = store_aligned(txn, (const uint8_t *)v.mv_data + slot * rb, n * rb, align);
	}
	if (p == NULL)
		return store_txn_fail(txn, -ENOMEM);
	*rows = p;
	return 0;
}

/* Appends rows first .. first + n - 1 of a column, page by page. */
static int
landmarks_append(struct store_txn *txn, const struct store_user *u, uint64_t base, size_t rb,
                 uint64_t first, const void *rows, uint64_t n)
{
	uint32_t per_page = u->lmk_per_page;
	int ret = 0;
	if (per_page == 0)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	while (n > 0 && ret == 0) {
		uint64_t m = per_page - first % per_page < n ? per_page - first % per_page : n;
		ret = landmark_write(txn, u, base, rb, first, rows, (uint32_t)m, true);
		first += m;
		rows = (const uint8_t *)rows + m * rb;
		n -= m;
	}
	return ret;
}

int
store_landmark_put(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row)
{
	return landmarks_append(txn, u, 0, spec_landmark_bytes(&u->spec), j, row, 1);
}

int
store_landmarks_append(struct store_txn *txn, const struct store_user *u, uint64_t first,
                       const void *rows, uint64_t n)
{
	return landmarks_append(txn, u, 0, spec_landmark_bytes(&u->spec), first, rows, n);
}

int
store_landmarks_get(struct store_txn *txn, const struct store_user *u, uint64_t first,
                    const void **rows, uint64_t *count)
{
	return landmarks_read(txn, u, 0, spec_landmark_bytes(&u->spec),
	                      spec_elem_size(u->spec.dtype), first, rows, NULL, count);
}

int
store_landmarks_sparse(struct store_txn *txn, const struct store_user *u, uint64_t first,
                       struct store_sparse *sp)
{
	uint64_t count;
	return landmarks_read(txn, u, 0, spec_landmark_bytes(&u->spec), 2, first, NULL, sp, &count);
}

int
store_lexlm_put(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row,
                size_t row_bytes)
{
	return landmarks_append(txn, u, LEXLM_PAGE, row_bytes, j, row, 1);
}

int
store_lexlm_append(struct store_txn *txn, const struct store_user *u, uint64_t first,
                   const void *rows, uint64_t n, size_t row_bytes)
{
	return landmarks_append(txn, u, LEXLM_PAGE, row_bytes, first, rows, n);
}

int
store_lexlm_get(struct store_txn *txn, const struct store_user *u, uint64_t first, size_t row_bytes,
                const void **rows, uint64_t *count)
{
	return landmarks_read(txn, u, LEXLM_PAGE, row_bytes, 2, first, rows, NULL, count);
}

int
store_lexlm_sparse(struct store_txn *txn, const struct store_user *u, uint64_t first,
                   size_t row_bytes, struct store_sparse *sp)
{
	uint64_t count;
	return landmarks_read(txn, u, LEXLM_PAGE, row_bytes, 2, first, NULL, sp, &count);
}

/* ---- tests ---- */

struct count {
	uint64_t uid, n;
};

static int
count_user(const struct store_user *u, void *arg)
{
	struct count *c = arg;
	c->n += u->uid == c->uid;
	return 0;
}

int
store_count_records(struct store *st, uint64_t uid, uint64_t *n)
{
	struct store_txn txn;
	struct count c = {uid, 0};
	int ret = store_txn_begin(st, &txn, false, NULL);

	if (ret == 0)
		ret = store_user_foreach(&txn, count_user, &c);
	for (size_t i = 0; ret == 0 && i < sizeof(user_dbs) / sizeof(user_dbs[0]); i++)
		ret = walk_prefix(&txn, user_dbs[i], uid, &c.n, NULL);
	store_txn_abort(&txn);
	if (ret == 0)
		*n = c.n;
	return ret;
}
