/*
 * test_store.c: the LMDB store against the real LMDB, each case in its own directory under a
 * temporary root (mkdtemp in $TMPDIR or /tmp), removed at the end. TEST_VERBOSE=1 shows the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "hsamem.h"
#include "log.h"
#include "store.h"
#include "test.h"

static char root[4096];

/* A fresh, empty directory for one case. */
static const char *
new_dir(const char *name)
{
	static char path[4200];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	if (mkdir(path, 0700) != 0) {
		perror(path);
		exit(1);
	}
	return path;
}

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static struct hsa_spec
spec_of(uint32_t d_r, enum hsa_dtype dtype)
{
	return (struct hsa_spec){.encoder = "client",
	                         .revision = 3,
	                         .tokenizer = "bytes",
	                         .S = 4,
	                         .h_kv = 1,
	                         .d_h = 4,
	                         .h_q = 2,
	                         .d_r = d_r,
	                         .dtype = dtype,
	                         .weighting = HSA_STICKBREAK,
	                         .off_by_one = true,
	                         .top_k = 8};
}

static bool
spec_eq(const struct hsa_spec *a, const struct hsa_spec *b)
{
	return strcmp(a->encoder, b->encoder) == 0 && a->revision == b->revision &&
	       strcmp(a->tokenizer, b->tokenizer) == 0 && a->S == b->S && a->h_kv == b->h_kv &&
	       a->d_h == b->d_h && a->h_q == b->h_q && a->d_r == b->d_r && a->dtype == b->dtype &&
	       a->weighting == b->weighting && a->off_by_one == b->off_by_one &&
	       a->top_k == b->top_k;
}

static struct store *
open_store(const char *dir, const struct store_opts *opts)
{
	struct store *st = NULL;
	int ret = store_open(dir, opts, &st);
	CHECK_RET(ret, 0);
	if (ret != 0)
		exit(test_done("test_store"));
	return st;
}

static struct store_user
create_user(struct store *st, const char *name, struct hsa_spec spec)
{
	struct store_user u = {.spec = spec, .created_ms = 1700000000000};
	struct store_txn txn;
	snprintf(u.name, sizeof(u.name), "%s", name);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	return u;
}

static uint64_t
count(struct store *st, uint64_t uid)
{
	uint64_t n = UINT64_MAX;
	CHECK_RET(store_count_records(st, uid, &n), 0);
	return n;
}

/* Writes into the store at dir with LMDB directly, the store being closed. */
static int
raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	int rc = mdb_env_create(&env);

	if (rc != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(env, 16)) == 0 &&
	    (rc = mdb_env_open(env, dir, 0, 0600)) == 0 &&
	    (rc = mdb_txn_begin(env, NULL, 0, &t)) == 0) {
		if ((rc = mdb_dbi_open(t, db, 0, &dbi)) == 0 &&
		    (rc = mdb_put(t, dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(t);
		else
			mdb_txn_abort(t);
	}
	mdb_env_close(env);
	return rc;
}

static void
be_key(uint8_t key[16], uint64_t uid, uint64_t n)
{
	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(uid >> (56 - 8 * i));
		key[8 + i] = (uint8_t)(n >> (56 - 8 * i));
	}
}

/* A child process opens dir, begins a read transaction and dies without ending it. */
static void
leave_stale_reader(const char *dir)
{
	int status = -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *t;
		int rc = mdb_env_create(&env);
		if (rc == 0 && (rc = mdb_env_set_maxdbs(env, 16)) == 0 &&
		    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) == 0)
			rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
		if (rc != 0)
			fprintf(stderr, "stale reader: %s\n", mdb_strerror(rc));
		_exit(rc == 0 ? 0 : 1);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static unsigned
readers(struct store *st)
{
	struct store_info info = {0};
	CHECK_RET(store_info(st, &info), 0);
	return info.readers;
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
	CHECK(count(st, u.uid) == 1 + 3 + 1 + 3);

	/* Malformed records are refused, each failing its transaction. */
	struct store_entry bad_tags = {.seq = 9, .tags = "x", .tags_len = 1};
	struct store_entry bad_text = {.seq = 9, .text_len = 4};
	struct store_chunk bad_real = {4, 5, tokens, refs}, empty = {0, 0, tokens, refs};
	struct store_tail bad_tail = {2, NULL, refs};
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, u.uid, &bad_tags), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, u.uid, &bad_text), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_chunk_put(&txn, u.uid, 5, &bad_real), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_chunk_put(&txn, u.uid, 5, &empty), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_kv_put(&txn, u.uid, 5, NULL, 4), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_tail_put(&txn, u.uid, &bad_tail), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	CHECK(count(st, u.uid) == 1 + 3 + 1 + 3);

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
	const uint64_t per_user = 1 + 3 * N_RECORDS + (N_RECORDS + 63) / 64 + 1;

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

/* ---- transactions ---- */

static bool
has_entry(struct store *st, uint64_t uid, uint64_t seq)
{
	struct store_txn txn;
	struct store_entry e;
	int ret;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	ret = store_entry_get(&txn, uid, seq, &e);
	store_txn_abort(&txn);
	return ret == 0;
}

static struct store_entry
entry(uint64_t seq)
{
	return (struct store_entry){.seq = seq, .text = "x", .text_len = 1};
}

static void
test_sticky(void)
{
	struct store *st = open_store(new_dir("sticky"), NULL);
	struct store_txn txn, child;
	struct store_entry e0 = entry(0), e1 = entry(1), got;
	struct store_chunk bad = {0};
	struct store_user u;

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, 1, &e0), 0);
	CHECK_RET(store_entry_get(&txn, 1, 5, &got), HSAMEM_ENOTFOUND);
	CHECK(txn.ret == 0);
	CHECK_RET(store_chunk_put(&txn, 1, 0, &bad), HSAMEM_EINVAL);
	CHECK(txn.ret == HSAMEM_EINVAL);
	CHECK_RET(store_entry_put(&txn, 1, &e1), HSAMEM_EINVAL); /* a no-op now */
	CHECK_RET(store_entry_get(&txn, 1, 0, &got), HSAMEM_EINVAL);
	CHECK_RET(store_user_get(&txn, "x", &u), HSAMEM_EINVAL);
	CHECK_RET(store_txn_begin(st, &child, true, &txn), HSAMEM_EINVAL);
	CHECK_RET(store_txn_commit(&child), HSAMEM_EINVAL);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EINVAL);
	store_txn_abort(&txn); /* after the end: a no-op */
	CHECK(!has_entry(st, 1, 0) && !has_entry(st, 1, 1));

	/* Misuse: writing in a read transaction, using one that ended, nesting in a read one. */
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_entry_put(&txn, 1, &e0), HSAMEM_EINTERNAL);
	CHECK_RET(store_txn_begin(st, &child, true, &txn), HSAMEM_EINTERNAL);
	store_txn_abort(&child);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EINTERNAL);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK_RET(store_entry_put(&txn, 1, &e0), HSAMEM_EINTERNAL);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EINTERNAL);
	CHECK(readers(st) == 0);
	store_close(st);
}

static void
test_nested(void)
{
	struct store *st = open_store(new_dir("nested"), NULL);
	struct store_txn txn, child;
	struct store_entry e[4] = {entry(0), entry(1), entry(2), entry(3)}, got;
	struct store_chunk bad = {0};

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, 1, &e[0]), 0);
	CHECK_RET(store_txn_begin(st, &child, true, &txn), 0);
	CHECK_RET(store_entry_get(&child, 1, 0, &got), 0); /* the parent's work is visible */
	CHECK_RET(store_entry_put(&child, 1, &e[1]), 0);
	store_txn_abort(&child);
	CHECK_RET(store_entry_get(&txn, 1, 1, &got), HSAMEM_ENOTFOUND);
	CHECK_RET(store_txn_begin(st, &child, true, &txn), 0);
	CHECK_RET(store_entry_put(&child, 1, &e[2]), 0);
	CHECK_RET(store_txn_commit(&child), 0);
	CHECK_RET(store_txn_begin(st, &child, true, &txn), 0);
	CHECK_RET(store_entry_put(&child, 1, &e[3]), 0);
	CHECK_RET(store_chunk_put(&child, 1, 0, &bad), HSAMEM_EINVAL);
	CHECK_RET(store_txn_commit(&child), HSAMEM_EINVAL); /* fails alone */
	CHECK(txn.ret == 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK(has_entry(st, 1, 0) && !has_entry(st, 1, 1) && has_entry(st, 1, 2));
	CHECK(!has_entry(st, 1, 3));
	store_close(st);
}

/* ---- the map ---- */

static int
put_blob(struct store *st, uint64_t j, const uint8_t *blob, size_t len)
{
	struct store_txn txn;
	store_txn_begin(st, &txn, true, NULL);
	store_kv_put(&txn, 7, j, blob, len);
	return store_txn_commit(&txn);
}

struct grower {
	struct store *st;
	atomic_int done;
	int ret;
};

static void *
grow_thread(void *arg)
{
	struct grower *g = arg;
	g->ret = store_grow(g->st);
	atomic_store(&g->done, 1);
	return NULL;
}

static void *
end_txn_thread(void *arg)
{
	struct store_txn *txn = arg;
	struct store_entry e;
	store_entry_get(txn, 1, 0, &e);
	store_txn_abort(txn);
	return NULL;
}

static void
test_growth(void)
{
	const char *dir = new_dir("growth");
	struct store_opts opts = {.map_size = 256 << 10, .map_max = 1 << 20};
	struct store *st = open_store(dir, &opts);
	struct store_info info;
	struct store_txn txn, child;
	static uint8_t blob[16 << 10];
	uint64_t j = 0;
	int grown = 0, ret, bad = 0;

	CHECK_RET(store_info(st, &info), 0);
	CHECK(info.map_size == 256 << 10 && info.map_used > 0 &&
	      info.format == STORE_FORMAT_VERSION);
	/* Write until full, grow, run the failed transaction again; until the map cannot grow. */
	for (;;) {
		memset(blob, (int)j, sizeof(blob));
		if ((ret = put_blob(st, j, blob, sizeof(blob))) == 0) {
			j++;
			continue;
		}
		CHECK_RET(ret, HSAMEM_EFULL);
		if ((ret = store_grow(st)) != 0)
			break;
		grown++;
		CHECK_RET(put_blob(st, j, blob, sizeof(blob)), 0);
		j++;
	}
	CHECK_RET(ret, HSAMEM_EFULL);
	CHECK(grown == 2 && j > 32);
	CHECK_RET(store_info(st, &info), 0);
	CHECK(info.map_size == 1 << 20);
	CHECK_RET(store_grow(st), HSAMEM_EFULL);

	/* A full map in a nested transaction fails its parent too. */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_txn_begin(st, &child, true, &txn), 0);
	store_kv_put(&child, 7, j, blob, sizeof(blob));
	CHECK_RET(store_txn_commit(&child), HSAMEM_EFULL);
	CHECK(txn.ret == HSAMEM_EFULL);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EFULL);

	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	for (uint64_t i = 0; i < j; i++) {
		const void *kv;
		size_t len;
		bad += store_kv_get(&txn, 7, i, &kv, &len) != 0 || len != sizeof(blob) ||
		       ((const uint8_t *)kv)[len - 1] != (uint8_t)i;
	}
	CHECK(bad == 0);
	store_txn_abort(&txn);
	store_close(st);

	/* Growth waits for every open transaction, whichever thread ends it. */
	opts.map_max = 8 << 20;
	st = open_store(dir, &opts);
	CHECK_RET(store_info(st, &info), 0);
	CHECK(info.map_size == 1 << 20); /* the grown size outlives a reopen */
	struct grower g = {.st = st};
	pthread_t th;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK(pthread_create(&th, NULL, grow_thread, &g) == 0);
	usleep(100000);
	CHECK(atomic_load(&g.done) == 0);
	pthread_t ender;
	CHECK(pthread_create(&ender, NULL, end_txn_thread, &txn) == 0);
	pthread_join(ender, NULL);
	pthread_join(th, NULL);
	CHECK(atomic_load(&g.done) == 1 && g.ret == 0);
	CHECK_RET(store_info(st, &info), 0);
	CHECK(info.map_size == 2 << 20);

	/* Another process grows the map past ours and fills it: we adopt its size. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct store_opts big = {.map_size = 2 << 20, .map_max = 8 << 20};
		struct store *cst;
		memset(blob, 0xee, sizeof(blob));
		if (store_open(dir, &big, &cst) != 0 || store_grow(cst) != 0)
			_exit(1);
		for (uint64_t i = 1000; i < 1120; i++)
			if (put_blob(cst, i, blob, sizeof(blob)) != 0)
				_exit(2);
		store_close(cst);
		_exit(0);
	}
	int status = -1;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	const void *kv;
	size_t len;
	CHECK_RET(store_kv_get(&txn, 7, 1119, &kv, &len), 0);
	CHECK(len == sizeof(blob) && ((const uint8_t *)kv)[0] == 0xee);
	store_txn_abort(&txn);
	CHECK_RET(store_info(st, &info), 0);
	CHECK(info.map_size == 4 << 20);
	store_close(st);
}

/* ---- open, reopen, format ---- */

static void
test_reopen(void)
{
	const char *dir = new_dir("reopen");
	struct store *st = open_store(dir, NULL), *none = NULL;
	struct store_user u = create_user(st, "alice", spec_of(16, HSA_F16)), got;
	struct store_entry e = entry(0), eg;
	uint32_t tokens[4] = {1, 2, 3, 4};
	struct store_tokref refs[4] = {{0}};
	struct store_chunk c = {4, 4, tokens, refs}, cg;
	struct store_txn txn;
	uint8_t key[16], format[4] = {2, 0, 0, 0};

	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_entry_put(&txn, u.uid, &e), 0);
	CHECK_RET(store_chunk_put(&txn, u.uid, 0, &c), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	store_close(st);

	st = open_store(dir, NULL);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, "alice", &got), 0);
	CHECK(got.uid == u.uid && spec_eq(&got.spec, &u.spec));
	CHECK_RET(store_entry_get(&txn, u.uid, 0, &eg), 0);
	CHECK(eg.text_len == 1 && eg.text[0] == 'x');
	store_txn_abort(&txn);
	CHECK(create_user(st, "bob", spec_of(16, HSA_F16)).uid == u.uid + 1);
	store_close(st);

	/* Another format version, or a malformed one, is refused. */
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 4), 0);
	CHECK_RET(store_open(dir, NULL, &none), HSAMEM_EFORMAT);
	CHECK(none == NULL);
	format[0] = 1;
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 2), 0); /* short */
	CHECK_RET(store_open(dir, NULL, &none), HSAMEM_EFORMAT);
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 4), 0);

	/* Corrupt records. */
	be_key(key, u.uid, 0);
	CHECK_RET(raw_put(dir, "chunks", key, 16, "short", 5), 0);
	CHECK_RET(raw_put(dir, "entries", key, 16, "short", 5), 0);
	CHECK_RET(raw_put(dir, "users", "carol", 5, "short", 5), 0);
	st = open_store(dir, NULL);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_chunk_get(&txn, u.uid, 0, &cg), HSAMEM_EFORMAT);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EFORMAT);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_entry_get(&txn, u.uid, 0, &eg), HSAMEM_EFORMAT);
	store_txn_abort(&txn);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, "carol", &got), HSAMEM_EFORMAT);
	store_txn_abort(&txn);
	store_close(st);

	/* Not a store at all; no directory; a map larger than its maximum. */
	const char *junk = new_dir("junk");
	char path[4300];
	uint8_t garbage[8192];
	memset(garbage, 0xab, sizeof(garbage));
	snprintf(path, sizeof(path), "%s/data.mdb", junk);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && write(fd, garbage, sizeof(garbage)) == (ssize_t)sizeof(garbage));
	close(fd);
	CHECK_RET(store_open(junk, NULL, &none), HSAMEM_EFORMAT);
	snprintf(path, sizeof(path), "%s/missing", root);
	CHECK_RET(store_open(path, NULL, &none), -ENOENT);
	struct store_opts opts = {.map_size = 2 << 20, .map_max = 1 << 20};
	CHECK_RET(store_open(dir, &opts, &none), HSAMEM_EINVAL);
	CHECK(none == NULL);
	store_close(NULL);
}

/* ---- reader slots ---- */

static void
test_readers(void)
{
	const char *dir = new_dir("readers");
	struct store_opts opts = {.max_readers = 2};
	struct store *st = open_store(dir, &opts);
	struct store_txn txn, a, b;
	struct store_info info;
	int cleared = -1;

	CHECK_RET(store_info(st, &info), 0);
	CHECK(info.max_readers == 2 && info.readers == 0);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK(readers(st) == 1);
	store_txn_abort(&txn);
	CHECK(readers(st) == 0);

	leave_stale_reader(dir);
	CHECK(readers(st) == 1);
	CHECK_RET(store_reader_check(st, &cleared), 0);
	CHECK(cleared == 1 && readers(st) == 0);
	CHECK_RET(store_reader_check(st, NULL), 0);

	/* Every slot held by the dead: a read transaction clears them and goes on. */
	leave_stale_reader(dir);
	leave_stale_reader(dir);
	CHECK(readers(st) == 2);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK(readers(st) == 1);
	store_txn_abort(&txn);

	/* Every slot held by the living: busy. */
	CHECK_RET(store_txn_begin(st, &a, false, NULL), 0);
	CHECK_RET(store_txn_begin(st, &b, false, NULL), 0);
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), HSAMEM_EBUSY);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EBUSY);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0); /* writers need no slot */
	CHECK_RET(store_txn_commit(&txn), 0);
	store_txn_abort(&a);
	store_txn_abort(&b);

	/* A stale slot does not survive a reopen. */
	leave_stale_reader(dir);
	store_close(st);
	st = open_store(dir, &opts);
	CHECK(readers(st) == 0);
	store_close(st);
}

/*
 * store_kv_copy: the blob, its errors, and eight threads copying at once beside the reader that
 * opened the call while a writer commits more chunks; the threads' readers end with the store.
 */
#define COPY_THREADS 8
#define COPY_CHUNKS  64
#define COPY_BYTES   (32u << 10)

struct copy_arg {
	struct store_txn *txn;
	int bad;
};

static void *
copy_main(void *p)
{
	struct copy_arg *a = p;
	static _Thread_local uint8_t buf[COPY_BYTES];

	for (int round = 0; round < 50; round++)
		for (uint64_t j = 0; j < COPY_CHUNKS; j++)
			a->bad += store_kv_copy(a->txn, 7, j, buf, COPY_BYTES) != 0 ||
			          buf[0] != (uint8_t)j || buf[COPY_BYTES - 1] != (uint8_t)(j * 7);
	return NULL;
}

static void
test_kv_copy(void)
{
	struct store *st = open_store(new_dir("kv_copy"), NULL);
	static uint8_t blob[COPY_BYTES], got[COPY_BYTES];
	struct store_txn txn, w;
	pthread_t th[COPY_THREADS];
	struct copy_arg arg[COPY_THREADS];

	for (uint64_t j = 0; j < COPY_CHUNKS; j++) {
		memset(blob, (int)j, sizeof(blob));
		blob[COPY_BYTES - 1] = (uint8_t)(j * 7);
		CHECK_RET(put_blob(st, j, blob, sizeof(blob)), 0);
	}
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_kv_copy(&txn, 7, 5, got, COPY_BYTES), 0);
	CHECK(got[0] == 5 && got[COPY_BYTES - 1] == 35);
	CHECK_RET(store_kv_copy(&txn, 7, 5, got, COPY_BYTES - 1), HSAMEM_EFORMAT);
	CHECK_RET(store_kv_copy(&txn, 7, COPY_CHUNKS + 100, got, COPY_BYTES), HSAMEM_ENOTFOUND);
	CHECK_RET(store_kv_copy(&txn, 8, 0, got, COPY_BYTES), HSAMEM_ENOTFOUND);
	for (int i = 0; i < COPY_THREADS; i++) {
		arg[i] = (struct copy_arg){&txn, 0};
		pthread_create(&th[i], NULL, copy_main, &arg[i]);
	}
	for (uint64_t j = COPY_CHUNKS; j < COPY_CHUNKS + 20; j++) {
		memset(blob, (int)j, sizeof(blob));
		CHECK_RET(store_txn_begin(st, &w, true, NULL), 0);
		CHECK_RET(store_kv_put(&w, 7, j, blob, sizeof(blob)), 0);
		CHECK_RET(store_txn_commit(&w), 0);
	}
	for (int i = 0; i < COPY_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(arg[i].bad == 0);
	}
	/* a chunk committed after txn began is there too: the copy reads the newest snapshot */
	CHECK_RET(store_kv_copy(&txn, 7, COPY_CHUNKS + 3, got, COPY_BYTES), 0);
	CHECK(got[0] == COPY_CHUNKS + 3);
	CHECK_RET(store_txn_commit(&txn), 0);
	store_close(st);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/test_store.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(getenv("TEST_VERBOSE") != NULL ? LOG_DEBUG : LOG_CRIT);

	test_users();
	test_records();
	test_landmarks();
	test_partition();
	test_sticky();
	test_nested();
	test_growth();
	test_reopen();
	test_readers();
	test_kv_copy();

	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return test_done("test_store");
}
