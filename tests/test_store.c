/*
 * test_store.c: the store's environment and transactions (store/store.c) against the real LMDB:
 * the sticky error and nested transactions, the map full and grown (by us, behind open
 * transactions, and by another process), reopening and the format check, corrupt and foreign
 * files, reader slots left by the dead, store_kv_copy from many threads beside a writer, and a
 * store with no room (store_room.c, store_recycle, deleting in steps), and the term statistics
 * of many chunks counted at once as chunk by chunk. test_store_codec.c tests the records.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "hsamem.h"
#include "store.h"
#include "store_fixture.h"
#include "test.h"

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

/* The format record of the store at dir, read with LMDB directly (0: none). */
static uint32_t
raw_format(const char *dir)
{
	MDB_val k = {6, "format"}, v;
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	uint32_t format = 0;
	if (mdb_env_create(&env) != 0)
		return 0;
	if (mdb_env_set_maxdbs(env, 16) == 0 && mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &t) == 0) {
		if (mdb_dbi_open(t, "meta", 0, &dbi) == 0 && mdb_get(t, dbi, &k, &v) == 0 &&
		    v.mv_size == 4)
			format = (uint32_t)((const uint8_t *)v.mv_data)[0] |
			         (uint32_t)((const uint8_t *)v.mv_data)[1] << 8;
		mdb_txn_abort(t);
	}
	mdb_env_close(env);
	return format;
}

static void
be_key(uint8_t key[16], uint64_t uid, uint64_t n)
{
	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(uid >> (56 - 8 * i));
		key[8 + i] = (uint8_t)(n >> (56 - 8 * i));
	}
}

/* Writes the low bytes of x at p, little-endian; returns the end. */
static uint8_t *
put_le(uint8_t *p, uint64_t x, int bytes)
{
	for (int i = 0; i < bytes; i++)
		*p++ = (uint8_t)(x >> (8 * i));
	return p;
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
	uint8_t key[16], format[4] = {4, 0, 0, 0};

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

	/* Another format version (a newer one, 0), or a malformed one, is refused; format 1 is
	 * taken and marked 3 (store.h, FORMATS), and opens as 3 from then on. */
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 4), 0);
	CHECK_RET(store_open(dir, NULL, &none), HSAMEM_EFORMAT);
	CHECK(none == NULL);
	format[0] = 0;
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 4), 0);
	CHECK_RET(store_open(dir, NULL, &none), HSAMEM_EFORMAT);
	format[0] = 1;
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 2), 0); /* short */
	CHECK_RET(store_open(dir, NULL, &none), HSAMEM_EFORMAT);
	CHECK_RET(raw_put(dir, "meta", "format", 6, format, 4), 0);
	st = open_store(dir, NULL);
	store_close(st);
	CHECK(raw_format(dir) == 3);
	CHECK(create_user(st = open_store(dir, NULL), "carl", spec_of(16, HSA_F16)).uid ==
	      u.uid + 2);
	store_close(st);
	CHECK(raw_format(dir) == 3);

	/* A chunk and a tail as formats 1 and 2 wrote them (unpacked token lists) still read. */
	uint8_t old[8 + 2 * 20], *o = old;
	uint32_t old_tok[2] = {7, 70000};
	struct store_tokref old_ref[2] = {{5, 0, 4}, {6, 9, 3}};
	o = put_le(o, 2, 4);
	o = put_le(o, 2, 4);
	for (int i = 0; i < 2; i++)
		o = put_le(o, old_tok[i], 4);
	for (int i = 0; i < 2; i++)
		o = put_le(put_le(put_le(o, old_ref[i].entry, 8), old_ref[i].off, 4),
		           old_ref[i].len, 4);
	be_key(key, u.uid, 9);
	CHECK_RET(raw_put(dir, "chunks", key, 16, old, sizeof(old)), 0);
	CHECK_RET(raw_put(dir, "tail", key, 8, old + 4, sizeof(old) - 4), 0);
	st = open_store(dir, NULL);
	struct store_tail tg;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_chunk_get(&txn, u.uid, 9, &cg), 0);
	CHECK(cg.n_tokens == 2 && cg.n_real == 2 && memcmp(cg.tokens, old_tok, 8) == 0);
	CHECK(memcmp(cg.refs, old_ref, sizeof(old_ref)) == 0);
	uint32_t tk[2], n_real;
	CHECK_RET(store_chunk_tokens(&txn, u.uid, 9, tk, 2, &n_real), 0);
	CHECK(n_real == 2 && memcmp(tk, old_tok, 8) == 0);
	CHECK_RET(store_tail_get(&txn, u.uid, &tg), 0);
	CHECK(tg.n == 2 && memcmp(tg.tokens, old_tok, 8) == 0 &&
	      memcmp(tg.refs, old_ref, sizeof(old_ref)) == 0);
	store_txn_abort(&txn);
	store_close(st);

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
	CHECK_RET(store_chunk_tokens(&txn, u.uid, 0, tk, 2, &n_real), HSAMEM_EFORMAT);
	store_txn_abort(&txn);
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

static int
put_kv(struct store *st, uint64_t uid, uint64_t j, const uint8_t *blob, size_t len)
{
	struct store_txn txn;
	store_txn_begin(st, &txn, true, NULL);
	store_kv_put(&txn, uid, j, blob, len);
	return store_txn_commit(&txn);
}

/* ROOM: a store at map-max says so; the pages that deleting a user frees are reused by later
 * writes once a commit after the delete moved LMDB on (store_recycle), not by the write right
 * after it; a user too large to delete in one transaction of the full store is deleted in steps
 * (store_user_delete_some); which codes mean "no room", and what their messages say. */
static void
test_room(void)
{
	const char *dir = new_dir("room");
	struct store_opts opts = {.map_size = 1 << 20, .map_max = 1 << 20};
	struct store *st = open_store(dir, &opts);
	struct store_user u = create_user(st, "small", spec_of(8, HSA_F16)), got;
	static uint8_t blob[16 << 10];
	struct store_txn txn;
	uint64_t n = 0, m = 0, steps = 0, step = 16;
	bool left = true;
	char msg[256];
	int ret;

	while ((ret = put_kv(st, u.uid, n, blob, sizeof(blob))) == 0)
		n++;
	CHECK_RET(ret, HSAMEM_EFULL);
	CHECK_RET(store_grow(st), HSAMEM_EFULL);
	CHECK(n > 16);
	store_full_message(st, HSAMEM_EFULL, msg, sizeof(msg));
	CHECK(strstr(msg, "map-max reached") != NULL && strstr(msg, "1 MiB") != NULL);
	/* a delete in one transaction needs a few free pages (for the list of those it frees, and
	 * its erase mark): deleting a blob and moving LMDB on gives them */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_delete_some(&txn, u.uid, 1, &left), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK_RET(store_recycle(st), 0);
	n--;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_get(&txn, "small", &got), 0);
	CHECK_RET(store_user_delete(&txn, &got), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	/* LMDB reuses a page from the second commit after the one that freed it */
	CHECK_RET(put_kv(st, 99, 0, blob, sizeof(blob)), HSAMEM_EFULL);
	CHECK_RET(store_recycle(st), 0);
	while (m < n && put_kv(st, 99, m, blob, sizeof(blob)) == 0)
		m++;
	CHECK(m >= n / 2);
	store_close(st);

	/* 8 MiB full of one user: its delete lists more freed pages than there is room for */
	dir = new_dir("room-steps");
	opts.map_size = opts.map_max = 8 << 20;
	st = open_store(dir, &opts);
	u = create_user(st, "large", spec_of(8, HSA_F16));
	for (n = 0; put_kv(st, u.uid, n, blob, sizeof(blob)) == 0;)
		n++;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_delete(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), HSAMEM_EFULL);
	left = true;
	while (left && steps < 1000) {
		bool more = true;
		steps++;
		CHECK_RET(store_recycle(st), 0);
		CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
		ret = store_user_delete_some(&txn, u.uid, step, &more);
		if ((ret = ret == 0 ? store_txn_commit(&txn) : (store_txn_abort(&txn), ret)) == 0) {
			left = more;
			step *= 2;
		} else {
			CHECK_RET(ret, HSAMEM_EFULL);
			step = step > 1 ? step / 2 : 1;
		}
	}
	uint64_t records = 0;
	CHECK_RET(store_count_records(st, u.uid, &records), 0);
	CHECK(!left && records == 1); /* the user record is all that is left */
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_delete(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	CHECK_RET(store_count_records(st, u.uid, &records), 0);
	CHECK(records == 0);
	CHECK_RET(store_recycle(st), 0);
	for (m = 0; m < n && put_kv(st, 99, m, blob, sizeof(blob)) == 0;)
		m++;
	fprintf(stderr, "room: %llu blobs fit, %llu after a delete in %llu steps\n",
	        (unsigned long long)n, (unsigned long long)m, (unsigned long long)steps);
	CHECK(m >= n / 2);

	CHECK(store_full(HSAMEM_EFULL) && store_full(-ENOSPC) && store_full(-EDQUOT) &&
	      store_full(-EFBIG));
	CHECK(!store_full(0) && !store_full(HSAMEM_ESTORE) && !store_full(-EIO));
	store_full_message(st, -ENOSPC, msg, sizeof(msg));
	CHECK(strstr(msg, "disk full") != NULL && strstr(msg, dir) != NULL);
	store_full_message(st, -EDQUOT, msg, sizeof(msg));
	CHECK(strstr(msg, "quota") != NULL);
	store_full_message(st, -EFBIG, msg, sizeof(msg));
	CHECK(strstr(msg, "file size limit") != NULL);
	store_close(st);
}

/* store_terms_add_chunks counts as many store_terms_add calls would: the same df of every id
 * (ids repeated within a chunk and across chunks, padding), the same totals; an oversized chunk
 * is refused. */
static void
test_terms(void)
{
	struct store *st = open_store(new_dir("terms"), NULL);
	struct store_txn txn;
	uint32_t tok[3 * 40], n[3] = {40, 0, 37};
	uint64_t r = 7;
	for (size_t i = 0; i < 77; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		tok[i] = (uint32_t)(r >> 33) % 23; /* 0 is padding */
	}
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_terms_add_chunks(&txn, 1, tok, n, 3), 0);
	CHECK_RET(store_terms_add(&txn, 2, tok, 40), 0);
	CHECK_RET(store_terms_add(&txn, 2, tok + 40, 0), 0);
	CHECK_RET(store_terms_add(&txn, 2, tok + 40, 37), 0);
	CHECK_RET(store_terms_add_chunks(&txn, 3, tok, n, 0), 0);
	CHECK_RET(store_txn_commit(&txn), 0);

	struct store_terms a, b, none;
	uint32_t ids[24], df_a[24], df_b[24];
	for (uint32_t i = 0; i < 24; i++)
		ids[i] = i;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_terms_get(&txn, 1, &a), 0);
	CHECK_RET(store_terms_get(&txn, 2, &b), 0);
	CHECK_RET(store_terms_get(&txn, 3, &none), 0);
	CHECK(a.chunks == 3 && a.chunks == b.chunks && a.tokens == b.tokens && a.tokens > 60);
	CHECK(none.chunks == 0 && none.tokens == 0);
	CHECK_RET(store_terms_df(&txn, 1, ids, 24, df_a), 0);
	CHECK_RET(store_terms_df(&txn, 2, ids, 24, df_b), 0);
	for (uint32_t i = 0; i < 24; i++)
		CHECK(df_a[i] == df_b[i] && df_a[i] <= 2);
	CHECK(df_a[0] == 0 && df_a[23] == 0);
	store_txn_abort(&txn);

	uint32_t big[2] = {1, 1025};
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_terms_add_chunks(&txn, 4, tok, big, 2), HSAMEM_EINVAL);
	store_txn_abort(&txn);
	store_close(st);
}

int
main(void)
{
	if (fixture_start("test_store") != 0)
		return 1;

	test_sticky();
	test_nested();
	test_growth();
	test_reopen();
	test_readers();
	test_kv_copy();
	test_room();
	test_terms();

	return fixture_end();
}
