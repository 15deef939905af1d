/*
 * store_filter.c: filters over entry records and the attrs index (store_filter.h). It reads entry
 * records through store_codec.c and keeps its postings in the attrs database; it never decides
 * what a filter means for a reply (that is the daemon's), only which entries and chunks pass.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "hsamem_defs.h"
#include "store_fields.h"
#include "store_filter.h"
#include "store_index.h"
#include "store_int.h"

#define POSTING_MAX (8 + 1 + 256 + 1 + 8) /* the longest term: a tag */
#define POSTING_VAL 12                    /* u64 first_token, u32 n_tokens */

bool
store_filter_empty(const struct store_filter *f)
{
	return f == NULL || (f->scope_len == 0 && f->meta_len == 0 && f->tags_len == 0 &&
	                     f->roles == 0 && !f->has_since && !f->has_until);
}

/* Whether the NUL-separated list have[0 .. have_len) holds s. */
static bool
list_has(const char *have, uint32_t have_len, const char *s)
{
	for (uint32_t i = 0; i < have_len; i += (uint32_t)strlen(have + i) + 1)
		if (strcmp(have + i, s) == 0)
			return true;
	return false;
}

/* Whether every string of want is in have. */
static bool
list_all(const char *want, uint32_t want_len, const char *have, uint32_t have_len)
{
	for (uint32_t i = 0; i < want_len; i += (uint32_t)strlen(want + i) + 1)
		if (!list_has(have, have_len, want + i))
			return false;
	return true;
}

bool
store_filter_match(const struct store_filter *f, const struct store_entry *e)
{
	if (store_filter_empty(f))
		return true;
	if (f->roles != 0 && (e->role >= 32 || !((f->roles >> e->role) & 1)))
		return false;
	if ((f->has_since && e->timestamp_ms < f->since_ms) ||
	    (f->has_until && e->timestamp_ms >= f->until_ms))
		return false;
	return list_all(f->scope, f->scope_len, e->scope, e->scope_len) &&
	       list_all(f->meta, f->meta_len, e->meta, e->meta_len) &&
	       list_all(f->tags, f->tags_len, e->tags, e->tags_len);
}

const char *
store_attr_check(const char *key, const char *value)
{
	size_t kl = key != NULL ? strlen(key) : 0, vl = value != NULL ? strlen(value) : 0;
	if (kl == 0 || kl > STORE_ATTR_KEY_MAX)
		return "keys must be 1 to 32 bytes";
	for (size_t i = 0; i < kl; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return "keys may hold only letters, digits, '_', '.' and '-'";
	}
	if (vl == 0 || vl > STORE_ATTR_VALUE_MAX)
		return "values must be 1 to 128 bytes";
	return NULL;
}

static uint64_t
be64(const uint8_t *p)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

/* Marks the chunks of tokens [first, first + n) in the mask. */
static void
mark(const struct store_user *u, uint64_t first, uint32_t n, uint64_t *mask)
{
	if (n == 0)
		return;
	uint64_t S = u->spec.S, a = first / S, b = (first + n - 1) / S;
	for (uint64_t j = a; j <= b; j++) {
		uint64_t c = j < u->n_chunks ? j : u->n_chunks;
		mask[c / 64] |= 1ull << (c % 64);
	}
}

/* Marks the chunks of entry seq when it passes f. */
static int
offer(struct store_txn *txn, const struct store_user *u, const struct store_filter *f, uint64_t seq,
      uint64_t *mask, uint64_t *entries)
{
	struct store_entry e;
	int ret = store_entry_get(txn, u->uid, seq, &e);
	if (ret == HSAMEM_ENOTFOUND)
		return 0; /* removed since it was indexed */
	if (ret != 0 || !store_filter_match(f, &e))
		return ret;
	mark(u, e.first_token, e.n_tokens, mask);
	(*entries)++;
	return 0;
}

/* A walk over postings: keys from lo (inclusive) while they start with the first plen bytes of
 * lo and are shorter than hi (exclusive, NULL: the prefix only). */
struct walk {
	const struct store_user *u;
	const struct store_filter *f;
	bool trust; /* the postings alone decide: the filter is this one condition */
	uint64_t *mask, *entries;
};

static int
walk_range(struct store_txn *txn, struct walk *w, MDB_val lo, size_t plen, const MDB_val *hi)
{
	MDB_cursor *cur;
	MDB_val k = lo, v;
	int ret = 0, rc = mdb_cursor_open(txn->txn, txn->st->dbi[DB_ATTRS], &cur);
	if (rc != 0)
		return store_txn_fail(txn, store_lmdb_error("open index cursor", rc));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != lo.mv_size || memcmp(k.mv_data, lo.mv_data, plen) != 0 ||
		    (hi != NULL && memcmp(k.mv_data, hi->mv_data, hi->mv_size) >= 0))
			break;
		uint64_t seq = be64((const uint8_t *)k.mv_data + k.mv_size - 8);
		if (!w->trust) {
			ret = offer(txn, w->u, w->f, seq, w->mask, w->entries);
			continue;
		}
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		uint64_t first = rd_u64(&r);
		uint32_t n = rd_u32(&r);
		if (!rd_done(&r)) {
			ret = store_corrupt(txn, "index", w->u->uid, seq);
			break;
		}
		mark(w->u, first, n, w->mask);
		(*w->entries)++;
	}
	mdb_cursor_close(cur);
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = store_txn_fail(txn, store_lmdb_error("read index", rc));
	return ret;
}

static int
walk_term(struct store_txn *txn, struct walk *w, char kind, const char *term)
{
	uint8_t buf[POSTING_MAX];
	size_t tl = strlen(term);
	if (tl + 18 > sizeof(buf))
		return 0; /* longer than anything indexed: nothing passes */
	MDB_val lo = store_posting_key(buf, w->u->uid, kind, term, tl, 0);
	return walk_range(txn, w, lo, lo.mv_size - 8, NULL);
}

static int
walk_time(struct store_txn *txn, struct walk *w)
{
	uint8_t lb[25], hb[25];
	const struct store_filter *f = w->f;
	MDB_val lo = store_time_key(lb, w->u->uid, f->has_since ? f->since_ms : INT64_MIN, 0);
	store_time_key(hb, w->u->uid, f->has_until ? f->until_ms : INT64_MAX, 0);
	MDB_val h17 = {.mv_size = 17, .mv_data = hb};
	return walk_range(txn, w, lo, 9, f->has_until ? &h17 : NULL);
}

/* How many conditions f has (each pair, tag, the role set and the time range count one). */
static unsigned
conditions(const struct store_filter *f)
{
	unsigned n = (f->roles != 0) + (f->has_since || f->has_until);
	for (uint32_t i = 0; i < f->scope_len; i++)
		n += f->scope[i] == '\0';
	for (uint32_t i = 0; i < f->meta_len; i++)
		n += f->meta[i] == '\0';
	for (uint32_t i = 0; i < f->tags_len; i++)
		n += f->tags[i] == '\0';
	return n;
}

/* Offers the entries from seq `from` on through the index: the postings of the first pair or
 * tag the filter names, else its time range, else its roles'. */
static int
walk_index(struct store_txn *txn, struct walk *w)
{
	const struct store_filter *f = w->f;
	int ret = 0;
	w->trust = conditions(f) == 1;
	if (f->scope_len > 0)
		return walk_term(txn, w, 's', f->scope);
	if (f->meta_len > 0)
		return walk_term(txn, w, 'm', f->meta);
	if (f->tags_len > 0)
		return walk_term(txn, w, 't', f->tags);
	if (f->has_since || f->has_until)
		return walk_time(txn, w);
	for (uint32_t r = 0; ret == 0 && r < 10; r++) /* role codes 0 .. 9 are indexed */
		if ((f->roles >> r) & 1) {
			char role[2] = {(char)('0' + r), 0};
			ret = walk_term(txn, w, 'r', role);
		}
	return ret;
}

int
store_filter_chunks(struct store_txn *txn, const struct store_user *u, const struct store_filter *f,
                    uint64_t *mask, uint64_t *allowed, uint64_t *entries)
{
	uint8_t kb[8];
	MDB_val k = key_uid(kb, u->uid), v;
	uint64_t from = u->n_entries, n = 0;
	struct walk w = {.u = u, .f = f, .mask = mask, .entries = &n};
	int ret = store_txn_usable(txn, false, "filter");

	memset(mask, 0, (u->n_chunks / 64 + 1) * sizeof(uint64_t));
	if (ret == 0 && (ret = store_db_get(txn, DB_ATTRS, &k, &v, "read index")) == 0) {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		from = rd_u64(&r);
		if (!rd_done(&r))
			return store_corrupt(txn, "index", u->uid, 0);
	}
	if (ret < 0)
		return ret;
	/* entries older than the index are read one by one */
	ret = 0;
	for (uint64_t seq = 0; ret == 0 && seq < from && seq < u->n_entries; seq++)
		ret = offer(txn, u, f, seq, mask, &n);
	if (ret == 0 && from < u->n_entries)
		ret = walk_index(txn, &w);
	if (ret != 0)
		return ret;
	uint64_t bits = 0;
	for (uint64_t i = 0; i <= u->n_chunks / 64; i++)
		bits += (uint64_t)__builtin_popcountll(mask[i]);
	*allowed = bits;
	*entries = n;
	return 0;
}
