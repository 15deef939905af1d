/*
 * test_store_codec.c: the store's records (store/store_codec.c) against the real LMDB: users
 * (create, get, update, foreach, the refusals), entries, chunks, the tail and K|V blobs written and
 * read back, malformed records refused, landmark pages and their runs, sparse landmark pages, token
 * lists packed, and users as partitions of the same databases, deleted whole. test_store.c tests
 * the environment and the transactions.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsamem.h"
#include "store.h"
#include "store_fixture.h"
#include "test.h"

static uint64_t
count(struct store *st, uint64_t uid)
{
	uint64_t n = UINT64_MAX;
	CHECK_RET(store_count_records(st, uid, &n), 0);
	return n;
}

/* ---- users ---- */

static int
collect_name(const struct store_user *u, void *arg)
{
	char *names = arg;
	strcat(names, u->name);
	strcat(names, ",");
	return strcmp(u->name, "carol") == 0 ? 7 : 0;
}

static void
test_users(void)
{
	struct store *st = open_store(new_dir("users"), NULL);
	struct store_user a = create_user(st, "alice", spec_of(16, HSA_F16)), b, got;
	struct store_txn txn;
	char names[256] = "";

	CHECK(a.uid == 1 && a.lmk_per_page == 2048);
	b = create_user(st, "bob", spec_of(4096, HSA_F32));
	CHECK(b.uid == 2 && b.lmk_per_page == 4);
	CHECK(create_user(st, "c", spec_of(48, HSA_F16)).lmk_per_page == 512);
	CHECK(create_user(st, "d", spec_of(8192, HSA_F32)).lmk_per_page == 2);
	CHECK(create_user(st, "e", spec_of(1, HSA_F16)).lmk_per_page == 32768);

	/* Refusals: each one fails its transaction. */
	struct store_user bad = {.spec = spec_of(16, HSA_F16)};
	strcpy(bad.name, "alice");
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &bad), HSAMEM_EEXIST);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EEXIST);
	bad.name[0] = '\0';
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &bad), HSAMEM_EBADNAME);
	store_txn_abort(&txn);
	memset(bad.name, 'x', HSAMEM_NAME_MAX);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &bad), 0); /* the longest name */
	CHECK_RET(store_txn_commit(&txn), 0);
	strcpy(bad.name, "frank");
	bad.spec.S = 0;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &bad), HSAMEM_EINVAL);
	store_txn_abort(&txn);

	/* Get: every field back; an absent user leaves the transaction usable. */
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, "nobody", &got), HSAMEM_ENOUSER);
	CHECK_RET(store_user_get(&txn, "frank", &got), HSAMEM_ENOUSER);
	char long_name[HSAMEM_NAME_MAX + 2];
	memset(long_name, 'x', HSAMEM_NAME_MAX + 1);
	long_name[HSAMEM_NAME_MAX + 1] = '\0';
	CHECK_RET(store_user_get(&txn, long_name, &got), HSAMEM_EBADNAME);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, "alice", &got), 0);
	CHECK(strcmp(got.name, "alice") == 0 && got.uid == a.uid && spec_eq(&got.spec, &a.spec));
	CHECK(got.lmk_per_page == 2048 && got.created_ms == 1700000000000 && got.n_entries == 0);
	CHECK_RET(store_txn_commit(&txn), 0);

	/* Update rewrites counters and flags, and nothing fixed at creation. */
	got.n_entries = 5;
	got.n_tokens = 77;
	got.n_chunks = 19;
	got.n_padded = 2;
	got.updated_ms = -42;
	got.flags = STORE_USER_IMPORTING;
	got.spec.revision = 99;
	got.created_ms = 1;
	got.lmk_per_page = 8;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_update(&txn, &got), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, "alice", &got), 0);
	CHECK(got.n_entries == 5 && got.n_tokens == 77 && got.n_chunks == 19 && got.n_padded == 2);
	CHECK(got.updated_ms == -42 && got.flags == STORE_USER_IMPORTING);
	CHECK(got.spec.revision == 3 && got.created_ms == 1700000000000 &&
	      got.lmk_per_page == 2048);
	store_txn_abort(&txn);

	/* Update of an unknown user, or with another user's uid. */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	strcpy(got.name, "nobody");
	CHECK_RET(store_user_update(&txn, &got), HSAMEM_ENOUSER);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_ENOUSER);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	strcpy(got.name, "bob");
	CHECK_RET(store_user_update(&txn, &got), HSAMEM_ENOUSER);
	store_txn_abort(&txn);

	/* Foreach in name order; a callback's non-zero return stops it. */
	create_user(st, "carol", spec_of(16, HSA_BF16));
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_foreach(&txn, collect_name, names), 7);
	CHECK(strcmp(names, "alice,bob,c,carol,") == 0);
	CHECK(txn.ret == 0);
	store_txn_abort(&txn);
	store_close(st);
}

/* ---- records ---- */

/* Malformed records are refused, each failing its transaction. */
static void
refuse_malformed(struct store *st, uint64_t uid, const uint32_t *tokens,
                 const struct store_tokref *refs)
{
	struct store_txn txn;
	struct store_entry bad_tags = {.seq = 9, .tags = "x", .tags_len = 1};
	struct store_entry bad_text = {.seq = 9, .text_len = 4};
	struct store_chunk bad_real = {4, 5, tokens, refs}, empty = {0, 0, tokens, refs};
	struct store_tail bad_tail = {2, NULL, refs};

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, uid, &bad_tags), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, uid, &bad_text), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_chunk_put(&txn, uid, 5, &bad_real), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_chunk_put(&txn, uid, 5, &empty), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_kv_put(&txn, uid, 5, NULL, 4), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_tail_put(&txn, uid, &bad_tail), HSAMEM_EINVAL);
	store_txn_abort(&txn);
}

static void
test_records(void)
{
	struct store *st = open_store(new_dir("records"), NULL);
	struct store_user u = create_user(st, "alice", spec_of(16, HSA_F16));
	static char big[100000];
	const char tags[] = "work\0urgent\0";
	struct store_entry e0 = {.seq = 0,
	                         .role = 2,
	                         .timestamp_ms = -5,
	                         .first_token = 0,
	                         .n_tokens = 3,
	                         .text = "hello",
	                         .text_len = 5,
	                         .tags = tags,
	                         .tags_len = sizeof(tags) - 1};
	struct store_entry e1 = {.seq = 1, .role = 1, .first_token = 3}, e2, got;
	uint32_t tokens[4] = {11, 12, 13, 0}, tk3[3] = {7, 8, 9};
	struct store_tokref refs[4] = {{0, 0, 2}, {0, 2, 3}, {2, 0, 70000}, {0, 0, 0}};
	struct store_chunk c = {4, 3, tokens, refs}, cg;
	struct store_tail t = {3, tk3, refs}, tg;
	uint8_t kv_small[3] = {1, 2, 3}, kv_mid[10], *kv_big = malloc(200000);
	const void *kv;
	size_t len;
	struct store_txn txn;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < 200000; i++)
		kv_big[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof(kv_mid); i++)
		kv_mid[i] = (uint8_t)(100 + i);
	e2 = (struct store_entry){.seq = 2, .n_tokens = 9, .text = big, .text_len = sizeof(big)};

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, u.uid, &e0), 0);
	CHECK_RET(store_entry_put(&txn, u.uid, &e1), 0);
	CHECK_RET(store_entry_put(&txn, u.uid, &e2), 0);
	CHECK_RET(store_chunk_put(&txn, u.uid, 0, &c), 0);
	CHECK_RET(store_kv_put(&txn, u.uid, 0, kv_small, sizeof(kv_small)), 0);
	CHECK_RET(store_kv_put(&txn, u.uid, 1, kv_mid, sizeof(kv_mid)), 0);
	CHECK_RET(store_kv_put(&txn, u.uid, 2, kv_big, 200000), 0);
	CHECK_RET(store_tail_get(&txn, u.uid, &tg), 0);
	CHECK(tg.n == 0 && tg.tokens == NULL);
	CHECK_RET(store_tail_put(&txn, u.uid, &t), 0);
	/* Read back within the writing transaction. */
	CHECK_RET(store_entry_get(&txn, u.uid, 0, &got), 0);
	CHECK(got.text_len == 5 && memcmp(got.text, "hello", 5) == 0);
	CHECK_RET(store_txn_commit(&txn), 0);

	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_entry_get(&txn, u.uid, 0, &got), 0);
	CHECK(got.seq == 0 && got.role == 2 && got.timestamp_ms == -5 && got.n_tokens == 3);
	CHECK(got.text_len == 5 && memcmp(got.text, "hello", 5) == 0);
	CHECK(got.tags_len == sizeof(tags) - 1 && memcmp(got.tags, tags, sizeof(tags) - 1) == 0);
	CHECK_RET(store_entry_get(&txn, u.uid, 1, &got), 0);
	CHECK(got.seq == 1 && got.role == 1 && got.first_token == 3 && got.text_len == 0);
	CHECK(got.tags_len == 0);
	CHECK_RET(store_entry_get(&txn, u.uid, 2, &got), 0);
	CHECK(got.text_len == sizeof(big) && memcmp(got.text, big, sizeof(big)) == 0);
	CHECK_RET(store_entry_get(&txn, u.uid, 3, &got), HSAMEM_ENOTFOUND); /* absent: not sticky */
	CHECK_RET(store_entry_get(&txn, u.uid + 1, 0, &got), HSAMEM_ENOTFOUND);

	CHECK_RET(store_chunk_get(&txn, u.uid, 0, &cg), 0);
	CHECK(cg.n_tokens == 4 && cg.n_real == 3);
	CHECK((uintptr_t)cg.tokens % _Alignof(uint32_t) == 0);
	CHECK((uintptr_t)cg.refs % _Alignof(struct store_tokref) == 0);
	CHECK(memcmp(cg.tokens, tokens, sizeof(tokens)) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(cg.refs[i].entry == refs[i].entry && cg.refs[i].off == refs[i].off &&
		      cg.refs[i].len == refs[i].len);
	CHECK_RET(store_chunk_get(&txn, u.uid, 1, &cg), HSAMEM_ENOTFOUND);
	/* the tokens alone: the real ones, at most cap */
	uint32_t tk[4] = {0}, n_real = 9;
	CHECK_RET(store_chunk_tokens(&txn, u.uid, 0, tk, 4, &n_real), 0);
	CHECK(n_real == 3 && memcmp(tk, tokens, 3 * sizeof(uint32_t)) == 0);
	CHECK_RET(store_chunk_tokens(&txn, u.uid, 0, tk, 2, &n_real), 0);
	CHECK(n_real == 2 && memcmp(tk, tokens, 2 * sizeof(uint32_t)) == 0);
	CHECK_RET(store_chunk_tokens(&txn, u.uid, 1, tk, 4, &n_real), HSAMEM_ENOTFOUND);

	CHECK_RET(store_kv_get(&txn, u.uid, 0, &kv, &len), 0);
	CHECK(len == 3 && memcmp(kv, kv_small, 3) == 0 && (uintptr_t)kv % 8 == 0);
	CHECK_RET(store_kv_get(&txn, u.uid, 1, &kv, &len), 0);
	CHECK(len == 10 && memcmp(kv, kv_mid, 10) == 0 && (uintptr_t)kv % 8 == 0);
	CHECK_RET(store_kv_get(&txn, u.uid, 2, &kv, &len), 0);
	CHECK(len == 200000 && memcmp(kv, kv_big, 200000) == 0 && (uintptr_t)kv % 8 == 0);
	CHECK_RET(store_kv_get(&txn, u.uid, 3, &kv, &len), HSAMEM_ENOTFOUND);

	CHECK_RET(store_tail_get(&txn, u.uid, &tg), 0);
	CHECK(tg.n == 3 && memcmp(tg.tokens, tk3, sizeof(tk3)) == 0 && tg.refs[2].len == 70000);
	CHECK(txn.ret == 0);
	CHECK_RET(store_txn_commit(&txn), 0);

	/* An empty tail deletes the record; deleting an absent one is fine. */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	t.n = 0;
	CHECK_RET(store_tail_put(&txn, u.uid, &t), 0);
	CHECK_RET(store_tail_put(&txn, u.uid, &t), 0);
	CHECK_RET(store_tail_get(&txn, u.uid, &tg), 0);
	CHECK(tg.n == 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	/* the index (store_filter.h): its start, a role and a time posting per entry, e0's two
	 * tags */
	CHECK(count(st, u.uid) == 1 + 3 + 1 + 3 + 1 + 3 + 3 + 2);

	refuse_malformed(st, u.uid, tokens, refs);
	CHECK(count(st, u.uid) == 1 + 3 + 1 + 3 + 1 + 3 + 3 + 2);

	free(kv_big);
	store_close(st);
}

/* ---- landmarks ---- */

static void
fill_row(uint8_t *row, size_t rb, uint64_t uid, uint64_t j)
{
	for (size_t i = 0; i < rb; i++)
		row[i] = (uint8_t)(uid * 101 + j * 31 + i);
}

static bool
row_ok(const uint8_t *row, size_t rb, uint64_t uid, uint64_t j)
{
	uint8_t want[16384];
	fill_row(want, rb, uid, j);
	return memcmp(row, want, rb) == 0;
}

/* Every first of u gives a contiguous run that ends at its page's end or at n_chunks. */
static void
check_landmarks(struct store *st, const struct store_user *u)
{
	size_t rb = spec_landmark_bytes(&u->spec), align = spec_elem_size(u->spec.dtype);
	struct store_txn txn;
	const void *rows;
	uint64_t n;
	int bad = 0;

	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	for (uint64_t first = 0; first < u->n_chunks; first++) {
		uint64_t want = u->lmk_per_page - first % u->lmk_per_page;
		if (want > u->n_chunks - first)
			want = u->n_chunks - first;
		if (store_landmarks_get(&txn, u, first, &rows, &n) != 0 || n != want ||
		    (uintptr_t)rows % align != 0) {
			bad++;
			continue;
		}
		for (uint64_t i = 0; i < n; i++)
			bad += !row_ok((const uint8_t *)rows + i * rb, rb, u->uid, first + i);
	}
	CHECK(bad == 0);
	CHECK_RET(store_landmarks_get(&txn, u, u->n_chunks, &rows, &n), HSAMEM_ENOTFOUND);
	CHECK(txn.ret == 0);
	store_txn_abort(&txn);
}

static void
put_landmarks(struct store *st, const struct store_user *u, uint64_t from, uint64_t to)
{
	size_t rb = spec_landmark_bytes(&u->spec);
	uint8_t row[16384];
	struct store_txn txn;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	for (uint64_t j = from; j < to; j++) {
		fill_row(row, rb, u->uid, j);
		store_landmark_put(&txn, u, j, row);
	}
	CHECK_RET(store_txn_commit(&txn), 0);
}

static void
test_landmarks(void)
{
	struct store *st = open_store(new_dir("landmarks"), NULL);
	struct store_user big = create_user(st, "big", spec_of(4096, HSA_F32));   /* 4 a page */
	struct store_user small = create_user(st, "small", spec_of(16, HSA_F16)); /* 2048 a page */
	struct store_txn txn;
	const void *rows;
	uint8_t row[16384] = {0};
	uint64_t n;

	put_landmarks(st, &big, 0, 3);
	put_landmarks(st, &big, 3, 11); /* pages 0, 1 full, page 2 holds 3 */
	big.n_chunks = 11;
	check_landmarks(st, &big);
	big.n_chunks = 6; /* rows stored but not sealed yet are not handed out */
	check_landmarks(st, &big);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_landmarks_get(&txn, &big, 4, &rows, &n), 0);
	CHECK(n == 2);
	store_txn_abort(&txn);
	big.n_chunks = 11;

	/* Out of order: a gap, a landmark already stored, one into a full page. */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_landmark_put(&txn, &big, 13, row), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_landmark_put(&txn, &big, 9, row), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_landmark_put(&txn, &big, 5, row), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_landmark_put(&txn, &big, 11, NULL), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	check_landmarks(st, &big);

	/* A sealed chunk without its landmark is a corrupt store. */
	big.n_chunks = 12;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_landmarks_get(&txn, &big, 11, &rows, &n), HSAMEM_EFORMAT);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EFORMAT);

	/* Small rows: the first page is a large record, the second a small one. */
	put_landmarks(st, &small, 0, 2100);
	small.n_chunks = 2100;
	check_landmarks(st, &small);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_landmarks_get(&txn, &small, 0, &rows, &n), 0);
	CHECK(n == 2048);
	CHECK_RET(store_landmarks_get(&txn, &small, 2047, &rows, &n), 0);
	CHECK(n == 1);
	CHECK_RET(store_landmarks_get(&txn, &small, 2048, &rows, &n), 0);
	CHECK(n == 52);
	store_txn_abort(&txn);
	CHECK(count(st, big.uid) == 1 + 3 && count(st, small.uid) == 1 + 2);
	store_close(st);
}

/* ---- sparse landmark pages (store.h, SPARSE PAGES) ---- */

#define SP_DIM 1024

/* Row j of version v: a few dozen elements set, one dense row, one empty row, -0.0 kept. */
static void
sparse_row(uint16_t *row, uint64_t j, unsigned v)
{
	for (size_t e = 0; e < SP_DIM; e++)
		row[e] = j == 5 || (e * 7 + j + v) % 23 == 0 ? (uint16_t)((j * 31 + e + v) | 1) : 0;
	if (j == 6)
		memset(row, 0, SP_DIM * 2);
	if (j == 7)
		row[3] = 0x8000;
}

struct page_check {
	struct store_txn *txn;
	const struct store_user *u;
	uint64_t first;
	int bad;
};

/* Rows first .. of u's landmark page against sparse_row (version 0), borrowed from a get. */
static void *
check_sparse_page(void *arg)
{
	struct page_check *c = arg;
	const void *rows;
	uint64_t n;
	uint16_t want[SP_DIM];
	if (store_landmarks_get(c->txn, c->u, c->first, &rows, &n) != 0 || n == 0) {
		c->bad++;
		return NULL;
	}
	for (uint64_t i = 0; i < n; i++) {
		sparse_row(want, c->first + i, 0);
		c->bad += memcmp((const uint16_t *)rows + i * SP_DIM, want, sizeof(want)) != 0;
	}
	return NULL;
}

static void
test_sparse_landmarks(void)
{
	struct store *st = open_store(new_dir("sparse"), NULL);
	struct store_user u = {.spec = spec_of(SP_DIM, HSA_F16),
	                       .flags = STORE_USER_LMK_SPARSE | STORE_USER_LEXLM_SPARSE};
	struct store_user dense = create_user(st, "dense", spec_of(SP_DIM, HSA_F16));
	struct store_txn txn;
	uint16_t row[SP_DIM], want[SP_DIM];
	const void *rows;
	uint64_t n;
	int bad = 0;

	snprintf(u.name, sizeof(u.name), "sparse");
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &u), 0);
	/* pages of 32: two full, one of 6; the first rows one by one, the rest in runs that
	 * cross pages (the sealer's appends), onto a page that has rows and onto new ones */
	static uint16_t run[60][SP_DIM];
	for (uint64_t j = 0; j < 10; j++) {
		sparse_row(row, j, 0);
		CHECK_RET(store_landmark_put(&txn, &u, j, row), 0);
		CHECK_RET(store_lexlm_put(&txn, &u, j, row, sizeof(row)), 0);
	}
	for (uint64_t j = 10; j < 70; j++)
		sparse_row(run[j - 10], j, 0);
	CHECK_RET(store_landmarks_append(&txn, &u, 10, run, 60), 0);
	CHECK_RET(store_lexlm_append(&txn, &u, 10, run, 25, sizeof(row)), 0);
	CHECK_RET(store_lexlm_append(&txn, &u, 35, run[25], 35, sizeof(row)), 0);
	CHECK_RET(store_landmarks_append(&txn, &u, 71, run, 1), HSAMEM_EINVAL); /* a gap */
	store_txn_abort(&txn); /* a failed put fails its transaction: again, without the gap */
	u = (struct store_user){.spec = spec_of(SP_DIM, HSA_F16),
	                        .flags = STORE_USER_LMK_SPARSE | STORE_USER_LEXLM_SPARSE};
	snprintf(u.name, sizeof(u.name), "sparse");
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &u), 0);
	for (uint64_t j = 0; j < 10; j++) {
		sparse_row(row, j, 0);
		CHECK_RET(store_landmark_put(&txn, &u, j, row), 0);
		CHECK_RET(store_lexlm_put(&txn, &u, j, row, sizeof(row)), 0);
	}
	CHECK_RET(store_landmarks_append(&txn, &u, 10, run, 60), 0);
	CHECK_RET(store_lexlm_append(&txn, &u, 10, run, 25, sizeof(row)), 0);
	CHECK_RET(store_lexlm_append(&txn, &u, 35, run[25], 35, sizeof(row)), 0);
	for (uint64_t j = 0; j < 70; j++) {
		sparse_row(row, j, 0);
		CHECK_RET(store_landmark_put(&txn, &dense, j, row), 0);
	}
	CHECK_RET(store_txn_commit(&txn), 0);
	u.n_chunks = dense.n_chunks = 70;

	/* every run reads back bit for bit, from the sparse column and the lexical one */
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	for (uint64_t first = 0; first < 70; first++) {
		uint64_t want_n = u.lmk_per_page - first % u.lmk_per_page;
		if (want_n > 70 - first)
			want_n = 70 - first;
		for (int col = 0; col < 2; col++) {
			if ((col == 0 ? store_landmarks_get(&txn, &u, first, &rows, &n)
			              : store_lexlm_get(&txn, &u, first, sizeof(row), &rows, &n)) !=
			            0 ||
			    n != want_n) {
				bad++;
				continue;
			}
			for (uint64_t i = 0; i < n; i++) {
				sparse_row(want, first + i, 0);
				bad += memcmp((const uint16_t *)rows + i * SP_DIM, want,
				              sizeof(want)) != 0;
			}
		}
	}
	CHECK(bad == 0);
	CHECK(u.lmk_per_page == 32);

	/* rows borrowed by one thread stay while another thread reads another page */
	struct page_check main_c = {&txn, &u, 3, 0}, other = {&txn, &u, 40, 0};
	pthread_t t;
	CHECK_RET(store_landmarks_get(&txn, &u, 3, &rows, &n), 0);
	CHECK(pthread_create(&t, NULL, check_sparse_page, &other) == 0 &&
	      pthread_join(t, NULL) == 0);
	for (uint64_t i = 0; i < n; i++) {
		sparse_row(want, 3 + i, 0);
		main_c.bad += memcmp((const uint16_t *)rows + i * SP_DIM, want, sizeof(want)) != 0;
	}
	CHECK(main_c.bad == 0 && other.bad == 0);
	store_txn_abort(&txn);

	/* a page grown row by row holds the bytes that encoding its rows at once gives: setting a
	 * row to its own value encodes the page again from its decoded rows */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	for (uint64_t j = 0; j < 70; j += 32) {
		struct store_sparse a, b;
		uint8_t *copy = NULL;
		size_t len = 0;
		CHECK_RET(store_landmarks_sparse(&txn, &u, j, &a), 0);
		len = ((size_t)a.dim + 1) * a.start_bytes + 3 * (size_t)a.n_entries;
		CHECK((copy = malloc(len)) != NULL);
		memcpy(copy, a.starts, ((size_t)a.dim + 1) * a.start_bytes);
		memcpy(copy + ((size_t)a.dim + 1) * a.start_bytes, a.entries,
		       3 * (size_t)a.n_entries);
		sparse_row(row, j, 0);
		CHECK_RET(store_landmark_set(&txn, &u, j, row), 0);
		CHECK_RET(store_landmarks_sparse(&txn, &u, j, &b), 0);
		CHECK(b.n_entries == a.n_entries && b.start_bytes == a.start_bytes &&
		      memcmp(copy, b.starts, ((size_t)b.dim + 1) * b.start_bytes) == 0 &&
		      memcmp(copy + ((size_t)b.dim + 1) * b.start_bytes, b.entries,
		             3 * (size_t)b.n_entries) == 0);
		free(copy);
	}
	store_txn_abort(&txn);

	/* a row rewritten in place (a forget's re-encoding), in a full page and in the last one */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	sparse_row(row, 40, 1);
	CHECK_RET(store_landmark_set(&txn, &u, 40, row), 0);
	sparse_row(row, 69, 1);
	CHECK_RET(store_lexlm_set(&txn, &u, 69, row, sizeof(row)), 0);
	CHECK_RET(store_landmark_set(&txn, &u, 70, row), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	sparse_row(row, 40, 1);
	CHECK_RET(store_landmark_set(&txn, &u, 40, row), 0);
	sparse_row(row, 69, 1);
	CHECK_RET(store_lexlm_set(&txn, &u, 69, row, sizeof(row)), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	bad = 0;
	for (uint64_t j = 32; j < 70; j++) {
		CHECK_RET(store_landmarks_get(&txn, &u, j, &rows, &n), 0);
		sparse_row(want, j, j == 40);
		bad += memcmp(rows, want, sizeof(want)) != 0;
		CHECK_RET(store_lexlm_get(&txn, &u, j, sizeof(row), &rows, &n), 0);
		sparse_row(want, j, j == 69);
		bad += memcmp(rows, want, sizeof(want)) != 0;
	}
	CHECK(bad == 0);
	store_txn_abort(&txn);
	store_close(st);
}

/* ---- token lists ---- */

/* Chunks and tails of every kind of slot come back as they were put: tokens of both widths,
 * references that go back, jump ahead, repeat, pad, and reach the ends of their ranges. */
static void
test_token_lists(void)
{
	struct store *st = open_store(new_dir("tokens"), NULL);
	struct store_user u = create_user(st, "alice", spec_of(16, HSA_F16));
	struct store_txn txn;
	enum { N = 64 };
	uint32_t tok[N];
	struct store_tokref ref[N];
	struct store_chunk c = {N, 60, tok, ref}, got;
	struct store_tail t = {N, tok, ref}, tg;
	int bad = 0;

	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < N; i++) {
			tok[i] = round == 1 ? 0xfffffff0u + i % 16 : i * 977 % 65536;
			ref[i] = (struct store_tokref){10 + i / 5, (i % 5) * 6, 5};
		}
		ref[7] = (struct store_tokref){0, 0, 0}; /* padding */
		ref[8] = (struct store_tokref){UINT64_MAX, UINT32_MAX, UINT32_MAX};
		ref[9] = (struct store_tokref){3, 0, 0};           /* back to an older entry */
		ref[10] = (struct store_tokref){3, 0, 0};          /* the same slot again */
		ref[11] = (struct store_tokref){1ull << 40, 7, 0}; /* far ahead */
		if (round == 2)
			for (uint32_t i = 0; i < N; i++)
				ref[i].entry = 5; /* one entry, offsets that go back */
		CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
		CHECK_RET(store_chunk_put(&txn, u.uid, (uint64_t)round, &c), 0);
		CHECK_RET(store_tail_put(&txn, u.uid, &t), 0);
		CHECK_RET(store_txn_commit(&txn), 0);
		CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
		CHECK_RET(store_chunk_get(&txn, u.uid, (uint64_t)round, &got), 0);
		CHECK_RET(store_tail_get(&txn, u.uid, &tg), 0);
		bad += got.n_tokens != N || got.n_real != 60 ||
		       memcmp(got.tokens, tok, sizeof(tok)) || memcmp(got.refs, ref, sizeof(ref));
		bad += tg.n != N || memcmp(tg.tokens, tok, sizeof(tok)) ||
		       memcmp(tg.refs, ref, sizeof(ref));
		store_txn_abort(&txn);
	}
	CHECK(bad == 0);
	store_close(st);
}

/* ---- users as partitions; delete ---- */

#define N_RECORDS 1000

static void
put_user_records(struct store_txn *txn, const struct store_user *u, uint64_t i)
{
	char text[64];
	uint8_t kv[600], row[1024];
	uint32_t tokens[4];
	struct store_tokref refs[4] = {{i, 0, 1}, {i, 1, 1}, {i, 2, 1}, {i, 3, 1}};
	struct store_chunk c = {4, 4, tokens, refs};
	struct store_tail t = {2, tokens, refs};
	int n = snprintf(text, sizeof(text), "%s %llu", u->name, (unsigned long long)i);
	struct store_entry e = {.seq = i, .text = text, .text_len = (uint32_t)n};

	for (int k = 0; k < 4; k++)
		tokens[k] = (uint32_t)(u->uid * 100000 + i * 4 + (uint64_t)k);
	memset(kv, (int)(u->uid * 16 + i % 16), sizeof(kv));
	fill_row(row, spec_landmark_bytes(&u->spec), u->uid, i);
	store_entry_put(txn, u->uid, &e);
	store_chunk_put(txn, u->uid, i, &c);
	store_kv_put(txn, u->uid, i, kv, sizeof(kv));
	store_landmark_put(txn, u, i, row);
	store_tail_put(txn, u->uid, &t);
}

/* Every record of u reads back as u's own. */
static void
check_user_records(struct store *st, struct store_user *u)
{
	struct store_txn txn;
	struct store_entry e;
	struct store_chunk c;
	struct store_tail t;
	const void *kv;
	size_t len;
	char text[64];
	int bad = 0;

	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	for (uint64_t i = 0; i < N_RECORDS; i++) {
		int n = snprintf(text, sizeof(text), "%s %llu", u->name, (unsigned long long)i);
		bad += store_entry_get(&txn, u->uid, i, &e) != 0 || e.text_len != (uint32_t)n ||
		       memcmp(e.text, text, (size_t)n) != 0;
		bad += store_chunk_get(&txn, u->uid, i, &c) != 0 ||
		       c.tokens[3] != u->uid * 100000 + i * 4 + 3 || c.refs[0].entry != i;
		bad += store_kv_get(&txn, u->uid, i, &kv, &len) != 0 || len != 600 ||
		       ((const uint8_t *)kv)[599] != (uint8_t)(u->uid * 16 + i % 16);
	}
	bad += store_tail_get(&txn, u->uid, &t) != 0 || t.n != 2 ||
	       t.tokens[0] != u->uid * 100000 + (N_RECORDS - 1) * 4;
	CHECK(bad == 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	u->n_chunks = N_RECORDS;
	check_landmarks(st, u);
}

static void
test_partition(void)
{
	struct store *st = open_store(new_dir("partition"), NULL);
	struct store_user alice = create_user(st, "alice", spec_of(256, HSA_F32)); /* 64 a page */
	struct store_user bob = create_user(st, "bob", spec_of(256, HSA_F32));
	struct store_user again, got;
	struct store_txn txn;
	struct store_entry e;
	/* the records, and the index: its start, a role and a time posting per entry */
	const uint64_t per_user = 1 + 3 * N_RECORDS + (N_RECORDS + 63) / 64 + 1 + 1 + 2 * N_RECORDS;

	for (uint64_t i = 0; i < N_RECORDS; i += 100) {
		CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
		for (uint64_t k = i; k < i + 100; k++) {
			put_user_records(&txn, &alice, k);
			put_user_records(&txn, &bob, k);
		}
		CHECK_RET(store_txn_commit(&txn), 0);
	}
	check_user_records(st, &alice);
	check_user_records(st, &bob);
	CHECK(count(st, alice.uid) == per_user && count(st, bob.uid) == per_user);
	CHECK(count(st, 99) == 0);

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_delete(&txn, &alice), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK(count(st, alice.uid) == 0);
	CHECK(count(st, bob.uid) == per_user);
	check_user_records(st, &bob);

	/* The name comes back as a new, empty user; the old header no longer names anyone. */
	again = create_user(st, "alice", spec_of(256, HSA_F32));
	CHECK(again.uid > bob.uid);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_get(&txn, again.uid, 0, &e), HSAMEM_ENOTFOUND);
	CHECK_RET(store_user_delete(&txn, &alice), HSAMEM_ENOUSER);
	store_txn_abort(&txn);
	CHECK(count(st, again.uid) == 1);

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_delete(&txn, &bob), 0);
	CHECK_RET(store_user_get(&txn, "bob", &got), HSAMEM_ENOUSER);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK(count(st, bob.uid) == 0 && count(st, again.uid) == 1);
	store_close(st);
}

int
main(void)
{
	if (fixture_start("test_store_codec") != 0)
		return 1;

	test_users();
	test_records();
	test_landmarks();
	test_sparse_landmarks();
	test_token_lists();
	test_partition();

	return fixture_end();
}
