/*
 * test_store_erase.c: erasure (store.h, ERASURE) against the real LMDB. Two users write
 * interleaved records in many transactions (entries short and long, chunks, K|V blobs, landmark
 * pages, a tail rewritten again and again), each record carrying patterns of its user; user A
 * is deleted; every file of the store is then searched, byte for byte, for A's patterns: before
 * store_erase they are there (so the search can fail), after it none is, while every record of
 * B reads back as written, also after more writes to B (LMDB's buffers no longer hold A) and
 * after a reopen. The same after a stop between the delete and the erasure (the mark), with a
 * reader of another process holding an old snapshot (held back, then done once it has gone),
 * and after a nested transaction that wrote A's records and was aborted; a process that died in
 * a read transaction holds nothing back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "hsamem.h"
#include "store_fixture.h"

#define ROUNDS 40                   /* transactions of each user */
#define NT     16                   /* tokens of a chunk */
#define D_R    64                   /* landmark floats */
#define KV     (2 * NT * 2 * 8 * 4) /* K|V bytes: NT tokens, h_kv 2, d_h 8, f32 */

/* ---- what each user writes: records made of its patterns ---- */

struct who {
	const char *name;
	char tag;        /* 'A' or 'B': in every pattern */
	uint32_t token0; /* its token ids: token0 + i */
	struct store_user u;
};

/* The text of entry i: short ones, one that fills a single overflow page, and a long one. */
static size_t
entry_text(const struct who *w, uint64_t i, char *buf, size_t cap)
{
	size_t len = i % 7 == 3 ? 3000 : i % 11 == 5 ? 20000 : 40 + i % 50;
	int n = snprintf(buf, cap, "%s zebra%cmarker entry %llu ", w->name, w->tag,
	                 (unsigned long long)i);
	for (size_t j = (size_t)n; j < len; j++)
		buf[j] = (char)('a' + (j * 7 + (unsigned)w->tag) % 26);
	memcpy(buf + len - 12, w->tag == 'A' ? "zebraAmarker" : "ordinaryBobs", 12);
	return len;
}

static void
fill_tokens(const struct who *w, uint64_t j, uint32_t *tokens, struct store_tokref *refs,
            uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		tokens[i] = w->token0 + (uint32_t)(j * NT + i) % 4096;
		refs[i] = (struct store_tokref){j, i, 1};
	}
}

/* The K|V of chunk j: "KVA!" / "KVB!" and the chunk's number, again and again. */
static void
fill_kv(const struct who *w, uint64_t j, uint8_t *kv)
{
	for (size_t o = 0; o + 8 <= KV; o += 8) {
		memcpy(kv + o, "KV?!", 4);
		kv[o + 2] = (uint8_t)w->tag;
		uint32_t x = (uint32_t)(j * 1000 + o);
		memcpy(kv + o + 4, &x, 4);
	}
}

static void
fill_landmark(const struct who *w, uint64_t j, float *row)
{
	for (int i = 0; i < D_R; i++)
		row[i] = (float)(w->tag * 1000 + (int)j) + (float)i / 128.0f;
}

/* Alice's records carry A patterns, Bob's B ones. */
static void
init_users(struct who users[2])
{
	users[0] = (struct who){.name = "alice", .tag = 'A', .token0 = 0xa0a00000u};
	users[1] = (struct who){.name = "bob", .tag = 'B', .token0 = 0xb0b00000u};
}

static void
create(struct store *st, struct who *w)
{
	struct store_txn txn;
	w->u = (struct store_user){.spec = {.encoder = "client",
	                                    .revision = 1,
	                                    .tokenizer = "bytes",
	                                    .S = NT,
	                                    .h_kv = 2,
	                                    .d_h = 8,
	                                    .h_q = 2,
	                                    .d_r = D_R,
	                                    .dtype = HSA_F32,
	                                    .weighting = HSA_STICKBREAK,
	                                    .top_k = 8}};
	snprintf(w->u.name, sizeof(w->u.name), "%s", w->name);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &w->u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
}

/* Round i of w: an entry, a chunk with its K|V and landmark, and the tail rewritten thrice. */
static int
write_round(struct store_txn *txn, struct who *w, uint64_t i)
{
	static char text[20000];
	uint32_t tokens[NT];
	struct store_tokref refs[NT];
	uint8_t kv[KV];
	float row[D_R];
	struct store_entry e = {.seq = i, .role = 1, .first_token = i * NT, .n_tokens = NT};
	e.text = text;
	e.text_len = (uint32_t)entry_text(w, i, text, sizeof(text));
	fill_tokens(w, i, tokens, refs, NT);
	fill_kv(w, i, kv);
	fill_landmark(w, i, row);
	struct store_chunk c = {NT, NT, tokens, refs};
	int ret = store_entry_put(txn, w->u.uid, &e);
	if (ret == 0)
		ret = store_chunk_put(txn, w->u.uid, i, &c);
	if (ret == 0)
		ret = store_kv_put(txn, w->u.uid, i, kv, sizeof(kv));
	if (ret == 0)
		ret = store_landmark_put(txn, &w->u, i, row);
	for (uint32_t n = NT - 1; ret == 0 && n > NT - 4; n--) {
		struct store_tail t = {n, tokens, refs};
		ret = store_tail_put(txn, w->u.uid, &t);
	}
	if (ret == 0) {
		w->u.n_entries = w->u.n_chunks = i + 1;
		w->u.n_tokens = (i + 1) * NT + NT - 3;
		ret = store_user_update(txn, &w->u);
	}
	return ret;
}

/* Rounds from .. to - 1 of each of the users, interleaved, a transaction each. */
static void
write_rounds(struct store *st, struct who *users, int n_users, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		for (int k = 0; k < n_users; k++) {
			struct store_txn txn;
			CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
			CHECK_RET(write_round(&txn, &users[k], i), 0);
			CHECK_RET(store_txn_commit(&txn), 0);
		}
}

/* Every record of w's first n rounds reads back as written. */
static void
check_user(struct store *st, struct who *w, uint64_t n)
{
	static char text[20000];
	struct store_txn txn;
	struct store_user u;
	bool same = true;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, w->name, &u), 0);
	CHECK(u.uid == w->u.uid && u.n_entries == n && u.n_chunks == n);
	for (uint64_t i = 0; i < n && same; i++) {
		struct store_entry e;
		struct store_chunk c;
		uint32_t tokens[NT];
		struct store_tokref refs[NT];
		uint8_t kv[KV];
		float row[D_R];
		const void *got, *rows;
		size_t len, tl = entry_text(w, i, text, sizeof(text));
		uint64_t count;
		fill_tokens(w, i, tokens, refs, NT);
		fill_kv(w, i, kv);
		fill_landmark(w, i, row);
		same = store_entry_get(&txn, u.uid, i, &e) == 0 && e.text_len == tl &&
		       memcmp(e.text, text, tl) == 0 && store_chunk_get(&txn, u.uid, i, &c) == 0 &&
		       memcmp(c.tokens, tokens, sizeof(tokens)) == 0 &&
		       store_kv_get(&txn, u.uid, i, &got, &len) == 0 && len == KV &&
		       memcmp(got, kv, KV) == 0 &&
		       store_landmarks_get(&txn, &u, i, &rows, &count) == 0 &&
		       memcmp(rows, row, sizeof(row)) == 0;
	}
	CHECK(same);
	store_txn_abort(&txn);
}

static void
delete_user(struct store *st, struct who *w)
{
	struct store_txn txn, nested;
	struct store_user u;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_txn_begin(st, &nested, true, &txn), 0); /* as the committer does */
	CHECK_RET(store_user_get(&nested, w->name, &u), 0);
	CHECK_RET(store_user_delete(&nested, &u), 0);
	CHECK_RET(store_txn_commit(&nested), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
}

/* ---- searching the files ---- */

static size_t
count_in(const uint8_t *buf, size_t len, const void *pat, size_t plen)
{
	size_t n = 0;
	for (const uint8_t *p = buf; len >= plen;) {
		const uint8_t *q = memmem(p, len, pat, plen);
		if (q == NULL)
			break;
		n++;
		len -= (size_t)(q - p) + 1;
		p = q + 1;
	}
	return n;
}

/* How often A's patterns occur in the files of dir: its text, token ids, K|V and landmarks. */
static size_t
traces_of_a(const char *dir)
{
	static const char *files[] = {"data.mdb", "lock.mdb"};
	uint32_t tokens[3] = {0xa0a00000u + 17, 0xa0a00000u + 18, 0xa0a00000u + 19};
	float row[4] = {(float)('A' * 1000 + 5), (float)('A' * 1000 + 5) + 1.0f / 128,
	                (float)('A' * 1000 + 5) + 2.0f / 128, (float)('A' * 1000 + 5) + 3.0f / 128};
	size_t n = 0;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char path[4300];
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
		int fd = open(path, O_RDONLY);
		CHECK(fd >= 0 && fstat(fd, &sb) == 0);
		uint8_t *buf = malloc((size_t)sb.st_size + 1);
		CHECK(buf != NULL && read(fd, buf, (size_t)sb.st_size) == sb.st_size);
		close(fd);
		n += count_in(buf, (size_t)sb.st_size, "zebraAmarker", 12);
		n += count_in(buf, (size_t)sb.st_size, tokens, sizeof(tokens));
		n += count_in(buf, (size_t)sb.st_size, "KVA!", 4);
		n += count_in(buf, (size_t)sb.st_size, row, sizeof(row));
		free(buf);
	}
	return n;
}

/* ---- the cases ---- */

static void
test_delete(void)
{
	const char *dir = new_dir("delete");
	struct store *st = open_store(dir, NULL);
	struct who users[2];
	init_users(users);
	create(st, &users[0]);
	create(st, &users[1]);
	write_rounds(st, users, 2, 0, ROUNDS);
	CHECK_RET(store_erase(st, false), 0); /* nothing to do yet */
	CHECK(traces_of_a(dir) > 0);
	delete_user(st, &users[0]);
	CHECK(traces_of_a(dir) > 0); /* LMDB freed, but did not clear */
	CHECK_RET(store_erase(st, false), 0);
	CHECK_RET(traces_of_a(dir), 0);
	check_user(st, &users[1], ROUNDS);
	/* LMDB's buffers were dropped: B's next pages carry nothing of A */
	write_rounds(st, &users[1], 1, ROUNDS, 2 * ROUNDS);
	CHECK_RET(traces_of_a(dir), 0);
	check_user(st, &users[1], 2 * ROUNDS);
	store_close(st);
	st = open_store(dir, NULL);
	check_user(st, &users[1], 2 * ROUNDS);
	CHECK_RET(store_erase(st, true), 0); /* no mark left */
	store_close(st);
}

/* A stop between the delete and its erasure: the mark makes the next start erase. */
static void
test_resume(void)
{
	const char *dir = new_dir("resume");
	struct store *st = open_store(dir, NULL);
	struct who users[2];
	init_users(users);
	create(st, &users[0]);
	create(st, &users[1]);
	write_rounds(st, users, 2, 0, ROUNDS);
	delete_user(st, &users[0]);
	store_close(st);
	CHECK(traces_of_a(dir) > 0);
	st = open_store(dir, NULL);
	CHECK_RET(store_erase(st, false), 0); /* this process deleted nothing */
	CHECK(traces_of_a(dir) > 0);
	CHECK_RET(store_erase(st, true), 0);
	CHECK_RET(traces_of_a(dir), 0);
	check_user(st, &users[1], ROUNDS);
	store_close(st);
}

/* A child process holds a read transaction from before the delete until told to end it. */
static pid_t
old_reader(const char *dir, int *done)
{
	int to_child[2], to_parent[2];
	char c;
	CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *t;
		int rc = mdb_env_create(&env);
		if (rc == 0 && (rc = mdb_env_set_maxdbs(env, 16)) == 0 &&
		    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) == 0)
			rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
		if (write(to_parent[1], rc == 0 ? "r" : "x", 1) != 1 ||
		    read(to_child[0], &c, 1) != 1)
			_exit(2);
		mdb_txn_abort(t);
		mdb_env_close(env);
		_exit(0);
	}
	CHECK(pid > 0 && read(to_parent[0], &c, 1) == 1 && c == 'r');
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	*done = to_child[1];
	return pid;
}

static void
test_held_back(void)
{
	const char *dir = new_dir("held");
	struct store *st = open_store(dir, NULL);
	struct who users[2];
	init_users(users);
	int done, status = -1;
	create(st, &users[0]);
	create(st, &users[1]);
	write_rounds(st, users, 2, 0, ROUNDS);
	pid_t pid = old_reader(dir, &done);
	delete_user(st, &users[0]);
	write_rounds(st, &users[1], 1, ROUNDS, ROUNDS + 4);
	CHECK_RET(store_erase(st, false), HSAMEM_EBUSY);
	CHECK(traces_of_a(dir) > 0); /* the reader's snapshot may still read them */
	CHECK_RET(store_erase(st, false), HSAMEM_EBUSY);
	check_user(st, &users[1], ROUNDS + 4);
	CHECK(write(done, "d", 1) == 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(done);
	CHECK_RET(store_erase(st, false), 0);
	CHECK_RET(traces_of_a(dir), 0);
	check_user(st, &users[1], ROUNDS + 4);
	store_close(st);
}

/* A process that died in a read transaction leaves its reader slot: it holds nothing back. */
static void
test_dead_reader(void)
{
	const char *dir = new_dir("dead");
	struct store *st = open_store(dir, NULL);
	struct who users[2];
	int status = -1;
	init_users(users);
	create(st, &users[0]);
	create(st, &users[1]);
	write_rounds(st, users, 2, 0, ROUNDS);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *t;
		int rc = mdb_env_create(&env);
		if (rc == 0 && (rc = mdb_env_set_maxdbs(env, 16)) == 0 &&
		    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) == 0)
			rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
		_exit(rc == 0 ? 0 : 1); /* without ending it */
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);
	delete_user(st, &users[0]);
	CHECK_RET(store_erase(st, false), 0);
	CHECK_RET(traces_of_a(dir), 0);
	check_user(st, &users[1], ROUNDS);
	store_close(st);
}

/* A nested transaction wrote A's records and was aborted: its pages stayed in LMDB's buffers. */
static void
test_aborted(void)
{
	const char *dir = new_dir("aborted");
	struct store *st = open_store(dir, NULL);
	struct who users[2];
	init_users(users);
	struct store_txn txn, nested;
	create(st, &users[0]);
	create(st, &users[1]);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_txn_begin(st, &nested, true, &txn), 0);
	for (uint64_t i = 0; i < ROUNDS; i++)
		CHECK_RET(write_round(&nested, &users[0], i), 0);
	store_txn_abort(&nested);
	CHECK_RET(write_round(&txn, &users[1], 0), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	store_erase_want(st);
	CHECK_RET(store_erase(st, false), 0);
	write_rounds(st, &users[1], 1, 1, ROUNDS);
	CHECK_RET(traces_of_a(dir), 0);
	check_user(st, &users[1], ROUNDS);
	store_close(st);
}

int
main(void)
{
	if (fixture_start("test_store_erase") != 0)
		return 1;
	test_delete();
	test_resume();
	test_held_back();
	test_dead_reader();
	test_aborted();
	return fixture_end();
}
