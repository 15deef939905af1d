/*
 * test_store_filter.c: filters over entry records and the attrs index (store/store_filter.c)
 * against the real LMDB: what store_filter_match passes (scope, metadata, tags, roles, the time
 * range, together), the chunk mask of a filter over a memory whose entries cross chunk
 * boundaries and reach into the tail (by the postings of one condition, by the records of the
 * candidates of several), an entry rewritten with and without removing its postings first, and the
 * bounds store_attr_check puts on keys and values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsamem.h"
#include "store.h"
#include "store_filter.h"
#include "store_index.h"
#include "store_fixture.h"
#include "test.h"

#define CHUNK 16 /* the chunk size the masks below assume */

static void
test_match(void)
{
	const char scope[] = "agent=a\0session=1\0", meta[] = "lang=en\0", tags[] = "x\0y\0";
	struct store_entry e = {.role = 1,
	                        .timestamp_ms = 1000,
	                        .scope = scope,
	                        .scope_len = sizeof(scope) - 1,
	                        .meta = meta,
	                        .meta_len = sizeof(meta) - 1,
	                        .tags = tags,
	                        .tags_len = sizeof(tags) - 1};
	struct store_filter f = {0};

	CHECK(store_filter_empty(&f) && store_filter_empty(NULL) && store_filter_match(&f, &e));
	f.scope = "agent=a";
	f.scope_len = 8;
	CHECK(!store_filter_empty(&f) && store_filter_match(&f, &e));
	f.scope = "agent=a\0session=2";
	f.scope_len = 18;
	CHECK(!store_filter_match(&f, &e)); /* every pair must be there */
	f.scope = "agent=ab";
	f.scope_len = 9;
	CHECK(!store_filter_match(&f, &e)); /* equality, not a prefix */
	f = (struct store_filter){.roles = 1u << 1 | 1u << 2};
	CHECK(store_filter_match(&f, &e));
	f.roles = 1u << 2;
	CHECK(!store_filter_match(&f, &e));
	f = (struct store_filter){.has_since = true, .since_ms = 1000};
	CHECK(store_filter_match(&f, &e));
	f = (struct store_filter){.has_until = true, .until_ms = 1000};
	CHECK(!store_filter_match(&f, &e)); /* until is exclusive */
	f = (struct store_filter){.tags = "y\0x", .tags_len = 4, .meta = "lang=en", .meta_len = 8};
	CHECK(store_filter_match(&f, &e));
	f.tags = "y\0z";
	CHECK(!store_filter_match(&f, &e));
	e.scope_len = e.meta_len = e.tags_len = 0; /* an entry without any */
	f = (struct store_filter){.meta = "lang=en", .meta_len = 8};
	CHECK(!store_filter_match(&f, &e));

	CHECK(store_attr_check("agent", "x") == NULL);
	CHECK(store_attr_check("", "x") != NULL && store_attr_check("a b", "x") != NULL);
	CHECK(store_attr_check("a=b", "x") != NULL && store_attr_check("a", "") != NULL);
	char big[STORE_ATTR_VALUE_MAX + 2];
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK(store_attr_check("a", big) != NULL);
	big[STORE_ATTR_VALUE_MAX] = 0;
	CHECK(store_attr_check("a", big) == NULL);
	memset(big, 'k', STORE_ATTR_KEY_MAX + 1);
	big[STORE_ATTR_KEY_MAX + 1] = 0;
	CHECK(store_attr_check(big, "v") != NULL);
}

/* Writes entry seq: n tokens from token `first`, with the given scope (NULL: none) and role. */
static void
put_entry(struct store_txn *txn, uint64_t uid, uint64_t seq, uint64_t first, uint32_t n,
          const char *scope, uint32_t role)
{
	struct store_entry e = {.seq = seq,
	                        .role = role,
	                        .timestamp_ms = (int64_t)seq * 10,
	                        .first_token = first,
	                        .n_tokens = n,
	                        .text = "t",
	                        .text_len = 1,
	                        .scope = scope,
	                        .scope_len = scope != NULL ? (uint32_t)strlen(scope) + 1 : 0};
	CHECK_RET(store_entry_put(txn, uid, &e), 0);
}

static uint64_t
mask_of(struct store *st, struct store_user *u, const struct store_filter *f, uint64_t *allowed,
        uint64_t *entries)
{
	struct store_txn txn;
	uint64_t mask[2] = {~0ull, ~0ull};
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_filter_chunks(&txn, u, f, mask, allowed, entries), 0);
	store_txn_abort(&txn);
	return mask[0];
}

static void
test_chunks(void)
{
	struct store *st = open_store(new_dir("chunks"), NULL);
	struct store_user u = create_user(st, "alice", spec_of(16, HSA_F16));
	struct store_txn txn;
	uint64_t allowed, entries;

	/* entries 0 .. 4: 10 tokens each, in chunks 0, 0-1, 1, 1-2, 2-3; 3 sealed, 3 the tail */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	put_entry(&txn, u.uid, 0, 0, 10, "agent=a", 1);
	put_entry(&txn, u.uid, 1, 10, 10, "agent=b", 2);
	put_entry(&txn, u.uid, 2, 20, 10, "agent=a", 1);
	put_entry(&txn, u.uid, 3, 30, 10, NULL, 1);
	put_entry(&txn, u.uid, 4, 40, 10, "agent=b", 2);
	CHECK_RET(store_txn_commit(&txn), 0);
	u.n_entries = 5;
	u.n_tokens = 50;
	u.n_chunks = 3;
	u.spec.S = CHUNK; /* the store reads it from the user the caller gives */

	struct store_filter f = {.scope = "agent=a", .scope_len = 8};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0x3 && allowed == 2 && entries == 2);
	f.scope = "agent=b";
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0xf && allowed == 4 && entries == 2);
	f = (struct store_filter){.roles = 1u << 1}; /* a role: its postings */
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0x7 && entries == 3);
	f = (struct store_filter){.has_since = true, .since_ms = 30}; /* the time postings */
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0xe && allowed == 3 && entries == 2);
	f = (struct store_filter){
	        .has_since = true, .since_ms = 10, .has_until = true, .until_ms = 30};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0x3 && entries == 2);
	f.until_ms = 31; /* until is exclusive, since inclusive */
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0x7 && entries == 3);
	f = (struct store_filter){.has_until = true, .until_ms = 0};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0 && entries == 0);
	f = (struct store_filter){.scope = "agent=c", .scope_len = 8};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0 && allowed == 0 && entries == 0);

	/* postings alone decide a filter of one condition; with more, records are read */
	f = (struct store_filter){.scope = "agent=b", .scope_len = 8, .roles = 1u << 2};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0xf && entries == 2);
	f = (struct store_filter){.scope = "agent=a", .scope_len = 8, .roles = 1u << 2};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0 && entries == 0);
	f = (struct store_filter){.roles = 1u << 1 | 1u << 2}; /* two roles: both walked */
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0xf && entries == 5);

	/* an entry rewritten with another scope: its postings removed first (store_filter.h) */
	struct store_entry old;
	char copy[16];
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_get(&txn, u.uid, 4, &old), 0);
	memcpy(copy, old.scope, old.scope_len);
	old.scope = copy;
	CHECK_RET(store_filter_unindex(&txn, u.uid, &old), 0);
	put_entry(&txn, u.uid, 4, 40, 10, "agent=c", 2);
	CHECK_RET(store_txn_commit(&txn), 0);
	f = (struct store_filter){.scope = "agent=b", .scope_len = 8};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0x3 && entries == 1);
	f.scope = "agent=c";
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0xc && entries == 1);
	/* a posting left behind (no unindex) with more conditions: the record decides */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	put_entry(&txn, u.uid, 4, 40, 10, "agent=d", 2);
	CHECK_RET(store_txn_commit(&txn), 0);
	f = (struct store_filter){.scope = "agent=c", .scope_len = 8, .roles = 1u << 2};
	CHECK(mask_of(st, &u, &f, &allowed, &entries) == 0 && entries == 0);
	store_close(st);
}

int
main(void)
{
	if (fixture_start("test_store_filter") != 0)
		return 1;
	test_match();
	test_chunks();
	return fixture_end();
}
