/*
 * store_links.c: the links database (store.h, FORGETTING AND HISTORY): for an entry that was
 * forgotten or takes part in an update, what became of it. It holds numbers only, never text,
 * so that what it says of a forgotten entry (that it was, and which entry replaced it) gives
 * nothing of what the entry said. Most entries have no record; a missing one reads as "kept,
 * replaces nothing, replaced by nothing".
 *
 * RECORD (keys big-endian, values little-endian):
 *   (uid, seq) -> u32 flags, u64 replaces, u64 replaced_by     (STORE_NO_SEQ: none)
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <lmdb.h>

#include "store.h"
#include "store_fields.h"
#include "store_int.h"

#define LINK_BYTES 20

int
store_link_get(struct store_txn *txn, uint64_t uid, uint64_t seq, struct store_link *out)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, seq), v;
	int ret = store_txn_usable(txn, false, "link get");

	if (ret != 0 || (ret = store_db_get(txn, DB_LINKS, &k, &v, "read link")) < 0)
		return ret;
	if (ret == NOTFOUND) {
		*out = (struct store_link){0, STORE_NO_SEQ, STORE_NO_SEQ};
		return 0;
	}
	if (v.mv_size != LINK_BYTES)
		return store_corrupt(txn, "link", uid, seq);
	struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
	out->flags = rd_u32(&r);
	out->replaces = rd_u64(&r);
	out->replaced_by = rd_u64(&r);
	return 0;
}

int
store_link_put(struct store_txn *txn, uint64_t uid, uint64_t seq, const struct store_link *l)
{
	uint8_t kb[16], vb[LINK_BYTES];
	MDB_val k = key_uid_n(kb, uid, seq);
	int ret = store_txn_usable(txn, true, "link put");

	if (ret != 0)
		return ret;
	put_u64(put_u64(put_u32(vb, l->flags), l->replaces), l->replaced_by);
	return store_db_put(txn, DB_LINKS, &k, vb, sizeof(vb), "write link");
}
