/*
 * store_terms.c: a memory's term statistics (store.h, TERMS), the corpus figures a BM25 ranking
 * needs: for every token id, in how many sealed chunks it occurs (its document frequency), and
 * how many chunks and real tokens were counted. The daemon adds a chunk in the transaction that
 * seals it (or imports it), so the figures always match the chunks that the same snapshot holds,
 * after a crash too; they go with the memory on delete, since their keys start with its uid.
 *
 * RECORDS (in the terms database; keys big-endian, values little-endian):
 *   (uid)      -> u64 chunks, u64 tokens     the totals (tokens: non-zero ones); absent: none
 *   (uid, id)  -> u32 df                     one per distinct token id counted, while df > 0
 * A forget (store_terms_sub) takes a chunk out before it is counted again without the forgotten
 * tokens; an id whose count falls to 0 loses its record, so that no id of a forgotten entry stays.
 * A token id is its own key: no second hash, so two ids share a count only where the tokenizer
 * already gave them the same id. A memory holds one record per distinct token, a few hundred
 * thousand for a large one; the chunks one write seals update each distinct id of theirs once
 * (store_terms_add_chunks).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "store.h"
#include "store_fields.h"
#include "store_int.h"

/* The largest chunk whose ids are sorted on the stack (SPEC's S is at most 1024). */
#define IDS_MAX 1024

static MDB_val
key_term(uint8_t buf[12], uint64_t uid, uint32_t id)
{
	key_uid(buf, uid);
	for (int i = 0; i < 4; i++)
		buf[8 + i] = (uint8_t)(id >> (24 - 8 * i));
	return (MDB_val){.mv_size = 12, .mv_data = buf};
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* The real tokens of tokens[0, n) (0 is padding) into ids, sorted; their count. */
static size_t
sorted_ids(const uint32_t *tokens, size_t n, uint32_t *ids)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (tokens[i] != 0)
			ids[m++] = tokens[i];
	qsort(ids, m, sizeof(*ids), cmp_u32);
	return m;
}

int
store_terms_get(struct store_txn *txn, uint64_t uid, struct store_terms *out)
{
	uint8_t kb[8];
	MDB_val k = key_uid(kb, uid), v;
	int ret = store_txn_usable(txn, false, "terms get");

	memset(out, 0, sizeof(*out));
	if (ret != 0 || (ret = store_db_get(txn, DB_TERMS, &k, &v, "read terms")) < 0)
		return ret;
	if (ret == NOTFOUND)
		return 0;
	struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
	out->chunks = rd_u64(&r);
	out->tokens = rd_u64(&r);
	if (!rd_done(&r))
		return store_corrupt(txn, "terms", uid, 0);
	return 0;
}

int
store_terms_df(struct store_txn *txn, uint64_t uid, const uint32_t *ids, size_t n, uint32_t *df)
{
	uint8_t kb[12];
	int ret = store_txn_usable(txn, false, "terms df");

	for (size_t i = 0; ret == 0 && i < n; i++) {
		MDB_val k = key_term(kb, uid, ids[i]), v;
		df[i] = 0;
		if ((ret = store_db_get(txn, DB_TERMS, &k, &v, "read terms")) < 0)
			return ret;
		if (ret == NOTFOUND) {
			ret = 0;
			continue;
		}
		if (v.mv_size != 4)
			return store_corrupt(txn, "term", uid, ids[i]);
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + 4, false};
		df[i] = rd_u32(&r);
	}
	return ret;
}

/* Adds n to the count of id. */
static int
df_add(struct store_txn *txn, uint64_t uid, uint32_t id, uint32_t n)
{
	uint8_t kb[12], vb[4];
	MDB_val k = key_term(kb, uid, id), v;
	uint32_t df = 0;
	int ret = store_db_get(txn, DB_TERMS, &k, &v, "read terms");

	if (ret < 0)
		return ret;
	if (ret == 0) {
		if (v.mv_size != 4)
			return store_corrupt(txn, "term", uid, id);
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + 4, false};
		df = rd_u32(&r);
	}
	put_u32(vb, df > UINT32_MAX - n ? UINT32_MAX : df + n);
	return store_db_put(txn, DB_TERMS, &k, vb, 4, "write terms");
}

int
store_terms_add(struct store_txn *txn, uint64_t uid, const uint32_t *tokens, size_t n)
{
	uint32_t one = (uint32_t)n;

	if (n > IDS_MAX)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	return store_terms_add_chunks(txn, uid, tokens, &one, 1);
}

int
store_terms_add_chunks(struct store_txn *txn, uint64_t uid, const uint32_t *tokens,
                       const uint32_t *n, size_t n_chunks)
{
	uint8_t kb[8], vb[16];
	struct store_terms t;
	size_t total = 0, m = 0, real = 0;
	int ret = store_txn_usable(txn, true, "terms add");

	if (ret != 0)
		return ret;
	for (size_t c = 0; c < n_chunks; c++) {
		if (n[c] > IDS_MAX)
			return store_txn_fail(txn, HSAMEM_EINVAL);
		total += n[c];
	}
	/* each chunk's distinct ids, then all of them sorted: one update of each distinct id */
	uint32_t *ids = malloc((total + 1) * sizeof(*ids));
	if (ids == NULL)
		return store_txn_fail(txn, -ENOMEM);
	for (size_t c = 0, at = 0; c < n_chunks; at += n[c++]) {
		uint32_t *own = ids + m;
		size_t k = sorted_ids(tokens + at, n[c], own), d = 0;
		real += k;
		for (size_t i = 0; i < k; i++)
			if (d == 0 || own[i] != own[d - 1])
				own[d++] = own[i];
		m += d;
	}
	qsort(ids, m, sizeof(*ids), cmp_u32);
	for (size_t i = 0, j; i < m && ret == 0; i = j) {
		for (j = i + 1; j < m && ids[j] == ids[i]; j++)
			;
		ret = df_add(txn, uid, ids[i], (uint32_t)(j - i));
	}
	free(ids);
	if (ret != 0 || (ret = store_terms_get(txn, uid, &t)) != 0)
		return ret;
	put_u64(put_u64(vb, t.chunks + n_chunks), t.tokens + real);
	MDB_val k = key_uid(kb, uid);
	return store_db_put(txn, DB_TERMS, &k, vb, sizeof(vb), "write terms");
}

/* Takes one from the count of id; the record goes at 0. */
static int
df_drop(struct store_txn *txn, uint64_t uid, uint32_t id)
{
	uint8_t kb[12], vb[4];
	MDB_val k = key_term(kb, uid, id), v;
	int ret = store_db_get(txn, DB_TERMS, &k, &v, "read terms"), rc;

	if (ret < 0)
		return ret;
	if (ret == NOTFOUND || v.mv_size != 4)
		return store_corrupt(txn, "term", uid, id);
	struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + 4, false};
	uint32_t df = rd_u32(&r);
	if (df > 1) {
		put_u32(vb, df - 1);
		return store_db_put(txn, DB_TERMS, &k, vb, 4, "write terms");
	}
	if ((rc = mdb_del(txn->txn, txn->st->dbi[DB_TERMS], &k, NULL)) != 0)
		return store_txn_fail(txn, store_lmdb_error("delete term", rc));
	return 0;
}

int
store_terms_sub(struct store_txn *txn, uint64_t uid, const uint32_t *tokens, size_t n)
{
	uint32_t ids[IDS_MAX];
	uint8_t kb[8], vb[16];
	struct store_terms t;
	int ret = store_txn_usable(txn, true, "terms sub");

	if (ret != 0)
		return ret;
	if (n > IDS_MAX)
		return store_txn_fail(txn, HSAMEM_EINVAL);
	size_t m = sorted_ids(tokens, n, ids);
	for (size_t i = 0; i < m; i++)
		if ((i == 0 || ids[i] != ids[i - 1]) && (ret = df_drop(txn, uid, ids[i])) != 0)
			return ret;
	if ((ret = store_terms_get(txn, uid, &t)) != 0)
		return ret;
	if (t.chunks == 0 || t.tokens < m)
		return store_corrupt(txn, "terms", uid, 0);
	put_u64(put_u64(vb, t.chunks - 1), t.tokens - m);
	MDB_val k = key_uid(kb, uid);
	return store_db_put(txn, DB_TERMS, &k, vb, sizeof(vb), "write terms");
}
