/*
 * store.c: the LMDB store (store.h): the environment, its named databases, the layout of every
 * record, the transaction wrapper and the growth of the map.
 *
 * It checks the shape of what it stores (sizes, the order of landmarks, that a record decodes) and
 * never its meaning: whether tokens fit a spec or counters add up is the daemon's business. It
 * keeps no transaction open beyond one call of its own, and logs only what no caller is expected to
 * handle: "not found", "exists" and "map full" are answers, LMDB failures are logged.
 *
 * RECORDS are fixed-layout little-endian; strings and byte arrays carry their lengths:
 *   user       u64 uid, u8 len + encoder, u8 len + tokenizer, u32 revision S h_kv d_h h_q d_r,
 *              u8 dtype weighting off_by_one, u32 top_k,
 *              u64 n_entries n_tokens n_chunks n_padded, i64 created_ms updated_ms,
 *              u32 lmk_per_page flags
 *   entry      u32 role n_tokens, i64 timestamp_ms, u64 first_token, u32 text_len tags_len,
 *              text, tags
 *   chunk      u32 n_tokens n_real, then the token list: n x u32 token,
 *              n x (u64 entry, u32 off, u32 len)
 *   tail       u32 n, then the token list
 *   kv         the caller's bytes
 *   landmarks  rows 0 .. n-1 of the page, back to back
 *   meta       "format": u32, "build": the daemon's name and version
 *   uids       "next": u64
 *
 * TRANSACTIONS (the lifecycle is drawn in store.h)
 *   begin:  top level: enter the gate shared, mdb_txn_begin;  nested: mdb_txn_begin in the parent
 *   op:     a no-op returning txn->ret once set; a failure sets it (txn_fail)
 *   commit: with txn->ret set, abort; else mdb_txn_commit;  then txn_end
 *   abort:  mdb_txn_abort; then txn_end
 *   txn_end frees the scratch copies, and leaves the gate (top level) or hands HSAMEM_EFULL up to
 *   the parent (nested): a full map fails the whole transaction, which must run again after growth.
 *
 * INVARIANTS
 *  1. Every key of entries, chunks, kv, landmarks and tail starts with the user's big-endian uid;
 *     every lookup builds its key from one uid, so no operation crosses users.
 *  2. A landmarks record holds rows 0 .. n-1 of its page, n = size / row bytes <= lmk_per_page;
 *     rows are appended in chunk order, so a page is full before the next one exists.
 *  3. mdb_env_set_mapsize runs only with the gate held exclusively: no transaction of this process
 *     is open. The gate is a counter under a mutex rather than a rwlock because a read transaction
 *     (MDB_NOTLS) may end on another thread than the one that began it.
 *  4. Pointers handed out are aligned for their element type: borrowed from the map when they are
 *     (large values live on page-aligned overflow pages), else copied into the transaction's
 *     scratch list, which lives until the transaction ends.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"

#ifndef PACKAGE_STRING
#define PACKAGE_STRING "hsamem"
#endif

#define DEFAULT_MAP_SIZE    (1ull << 30)
#define DEFAULT_MAP_MAX     (1ull << 40)
#define DEFAULT_READERS     126
#define LANDMARK_PAGE_BYTES 65536
#define NOTFOUND            1 /* internal result of db_get: no such key */

enum { DB_META, DB_USERS, DB_ENTRIES, DB_CHUNKS, DB_KV, DB_LANDMARKS, DB_TAIL, DB_UIDS, DB_COUNT };

static const char *const db_names[DB_COUNT] = {"meta", "users",     "entries", "chunks",
                                               "kv",   "landmarks", "tail",    "uids"};

/* The databases whose keys start with a uid (invariant 1). */
static const int user_dbs[] = {DB_ENTRIES, DB_CHUNKS, DB_KV, DB_LANDMARKS, DB_TAIL};

struct store {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	uint64_t map_max;
	pthread_mutex_t gate_mu; /* the gate: invariant 3 */
	pthread_cond_t gate_cv;
	unsigned gate_shared;   /* top-level transactions open */
	bool gate_exclusive;    /* store_grow holds the gate or waits for it */
	uint64_t serial;        /* of this store among those opened by the process, from 1 */
	struct reader *readers; /* of store_kv_copy's threads, under gate_mu */
};

/*
 * A read transaction of one thread's own, for store_kv_copy: begun at the thread's first copy
 * from a store, renewed for each copy and reset after it, aborted by store_close. A thread knows
 * its reader by the store's serial number, which is never reused, so a thread that outlives a
 * store never touches that store's reader again.
 */
struct reader {
	struct reader *next;
	MDB_txn *txn;
};

static _Thread_local struct {
	uint64_t serial;
	MDB_txn *txn;
} my_reader;

static atomic_uint_fast64_t store_serials;

/* A copy of a value made for alignment or decoding (invariant 4). */
struct scratch {
	struct scratch *next;
	max_align_t data[];
};

/* ---- the gate ---- */

static void
gate_enter(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	while (st->gate_exclusive)
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	st->gate_shared++;
	pthread_mutex_unlock(&st->gate_mu);
}

static void
gate_leave(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	if (--st->gate_shared == 0)
		pthread_cond_broadcast(&st->gate_cv);
	pthread_mutex_unlock(&st->gate_mu);
}

/* New transactions wait from the moment store_grow asks, so a stream of readers cannot
 * starve it. */
static void
gate_lock_exclusive(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	while (st->gate_exclusive)
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	st->gate_exclusive = true;
	while (st->gate_shared > 0)
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	pthread_mutex_unlock(&st->gate_mu);
}

static void
gate_unlock_exclusive(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	st->gate_exclusive = false;
	pthread_cond_broadcast(&st->gate_cv);
	pthread_mutex_unlock(&st->gate_mu);
}

/* ---- errors ---- */

/* An LMDB return code as an hsamem one; logged unless it is the caller's to handle (map full). */
static int
mdb_error(const char *op, int rc)
{
	int ret = HSAMEM_ESTORE;
	if (rc == MDB_MAP_FULL)
		return HSAMEM_EFULL;
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE)
		ret = HSAMEM_EFORMAT;
	else if (rc == MDB_READERS_FULL)
		ret = HSAMEM_EBUSY;
	else if (rc == ENOMEM)
		ret = -ENOMEM;
	log_msg(rc == MDB_READERS_FULL ? LOG_WARNING : LOG_ERR, "store: %s: %s", op,
	        mdb_strerror(rc));
	return ret;
}

/* Keeps the first failure of txn and returns ret. */
static int
txn_fail(struct store_txn *txn, int ret)
{
	if (ret < 0 && txn->ret == 0)
		txn->ret = ret;
	return ret;
}

/* 0 when txn can run an operation (a write one if write), else the error the operation returns. */
static int
txn_usable(struct store_txn *txn, bool write, const char *op)
{
	if (txn->ret != 0)
		return txn->ret;
	if (txn->txn == NULL || (write && !txn->write)) {
		log_err("store: %s on a %s transaction", op,
		        txn->txn == NULL ? "finished" : "read");
		return txn_fail(txn, HSAMEM_EINTERNAL);
	}
	return 0;
}

static int
corrupt(struct store_txn *txn, const char *what, uint64_t uid, uint64_t n)
{
	log_err("store: user %llu: %s %llu is corrupt", (unsigned long long)uid, what,
	        (unsigned long long)n);
	return txn_fail(txn, HSAMEM_EFORMAT);
}

/* ---- keys and little-endian fields ---- */

static MDB_val
key_uid(uint8_t buf[8], uint64_t uid)
{
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(uid >> (56 - 8 * i));
	return (MDB_val){.mv_size = 8, .mv_data = buf};
}

static MDB_val
key_uid_n(uint8_t buf[16], uint64_t uid, uint64_t n)
{
	key_uid(buf, uid);
	key_uid(buf + 8, n);
	return (MDB_val){.mv_size = 16, .mv_data = buf};
}

static MDB_val
key_str(const char *s)
{
	return (MDB_val){.mv_size = strlen(s), .mv_data = (void *)s};
}

static uint8_t *
put_uint(uint8_t *p, uint64_t x, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(x >> (8 * i));
	return p + bytes;
}

#define put_u8(p, x)  put_uint(p, x, 1)
#define put_u32(p, x) put_uint(p, x, 4)
#define put_u64(p, x) put_uint(p, x, 8)

static uint8_t *
put_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n > 0)
		memcpy(p, src, n);
	return p + n;
}

/* A reader over one value: reading past its end marks it short and yields zeros. */
struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static const uint8_t *
rd_take(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

static uint64_t
rd_uint(struct rd *r, int bytes)
{
	const uint8_t *p = rd_take(r, (size_t)bytes);
	uint64_t x = 0;
	for (int i = 0; p != NULL && i < bytes; i++)
		x |= (uint64_t)p[i] << (8 * i);
	return x;
}

#define rd_u8(r)  ((uint8_t)rd_uint(r, 1))
#define rd_u32(r) ((uint32_t)rd_uint(r, 4))
#define rd_u64(r) rd_uint(r, 8)

/* True when the whole value was read, no more and no less. */
static bool
rd_done(const struct rd *r)
{
	return !r->bad && r->p == r->end;
}

/* ---- LMDB access through a transaction ---- */

static int
db_get(struct store_txn *txn, int db, MDB_val *k, MDB_val *v, const char *op)
{
	int rc = mdb_get(txn->txn, txn->st->dbi[db], k, v);
	if (rc == MDB_NOTFOUND)
		return NOTFOUND;
	return rc == 0 ? 0 : txn_fail(txn, mdb_error(op, rc));
}

/* Reserves len bytes under k; *p gets where to write them. */
static int
db_reserve(struct store_txn *txn, int db, MDB_val *k, size_t len, uint8_t **p, const char *op)
{
	MDB_val v = {.mv_size = len};
	int rc = mdb_put(txn->txn, txn->st->dbi[db], k, &v, MDB_RESERVE);
	if (rc != 0)
		return txn_fail(txn, mdb_error(op, rc));
	*p = v.mv_data;
	return 0;
}

static int
db_put(struct store_txn *txn, int db, MDB_val *k, const void *data, size_t len, const char *op)
{
	MDB_val v = {.mv_size = len, .mv_data = (void *)data};
	int rc = mdb_put(txn->txn, txn->st->dbi[db], k, &v, 0);
	return rc == 0 ? 0 : txn_fail(txn, mdb_error(op, rc));
}

static void *
scratch_alloc(struct store_txn *txn, size_t len)
{
	struct scratch *s = malloc(sizeof(*s) + len);
	if (s == NULL)
		return NULL;
	s->next = txn->scratch;
	txn->scratch = s;
	return s->data;
}

/* p, or a copy of its len bytes when p is not aligned to align. NULL when out of memory. */
static const void *
aligned(struct store_txn *txn, const void *p, size_t len, size_t align)
{
	if ((uintptr_t)p % align == 0)
		return p;
	void *copy = scratch_alloc(txn, len);
	if (copy != NULL)
		memcpy(copy, p, len);
	return copy;
}

/* ---- the environment ---- */

int
store_reader_check(struct store *st, int *cleared)
{
	int dead = 0;
	int rc = mdb_reader_check(st->env, &dead);
	if (rc != 0)
		return mdb_error("check readers", rc);
	if (dead > 0)
		log_notice("store: cleared %d stale reader slot%s", dead, dead == 1 ? "" : "s");
	if (cleared != NULL)
		*cleared = dead;
	return 0;
}

/*
 * Opened without a size, LMDB maps the size recorded in the file, which keeps earlier growth. A
 * new store takes the configured size; an existing one the larger of the two.
 */
static int
adopt_configured_size(struct store *st, uint64_t map_size)
{
	MDB_envinfo info;
	int rc = mdb_env_info(st->env, &info);
	if (rc == 0 && (info.me_last_txnid == 0 || info.me_mapsize < map_size))
		rc = mdb_env_set_mapsize(st->env, (size_t)map_size);
	return rc;
}

static int
open_error(const char *dir, const char *op, int rc)
{
	if (rc > 0 &&
	    rc != ENOMEM) { /* a system error: the directory is missing, unreadable, ... */
		log_err("store: %s: %s: %s", dir, op, strerror(rc));
		return -rc;
	}
	return mdb_error(op, rc);
}

/* Within the first write transaction: checks the format version, or writes it into a new store. */
static int
check_format(struct store *st, MDB_txn *t, const char *dir)
{
	MDB_val k = key_str("format"), v;
	int rc = mdb_get(t, st->dbi[DB_META], &k, &v);
	if (rc == 0) {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		uint32_t format = rd_u32(&r);
		if (!rd_done(&r)) {
			log_err("store: %s: the format version record is malformed", dir);
			return HSAMEM_EFORMAT;
		}
		if (format != STORE_FORMAT_VERSION) {
			log_err("store: %s holds a store of format %u; this build reads format %u",
			        dir, format, STORE_FORMAT_VERSION);
			return HSAMEM_EFORMAT;
		}
	} else if (rc == MDB_NOTFOUND) {
		MDB_stat users;
		uint8_t buf[4];
		if ((rc = mdb_stat(t, st->dbi[DB_USERS], &users)) != 0)
			return mdb_error("open", rc);
		if (users.ms_entries > 0) {
			log_err("store: %s has users but no format version", dir);
			return HSAMEM_EFORMAT;
		}
		put_u32(buf, STORE_FORMAT_VERSION);
		v = (MDB_val){.mv_size = 4, .mv_data = buf};
		if ((rc = mdb_put(t, st->dbi[DB_META], &k, &v, 0)) != 0)
			return mdb_error("write format version", rc);
	} else {
		return mdb_error("read format version", rc);
	}
	k = key_str("build");
	v = key_str(PACKAGE_STRING);
	rc = mdb_put(t, st->dbi[DB_META], &k, &v, 0);
	return rc == 0 ? 0 : mdb_error("write build", rc);
}

static int
open_dbs(struct store *st, const char *dir)
{
	MDB_txn *t;
	int ret, rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc != 0)
		return open_error(dir, "begin transaction", rc);
	for (int i = 0; i < DB_COUNT; i++) {
		if ((rc = mdb_dbi_open(t, db_names[i], MDB_CREATE, &st->dbi[i])) != 0) {
			ret = mdb_error(db_names[i], rc);
			goto abort;
		}
	}
	if ((ret = check_format(st, t, dir)) != 0)
		goto abort;
	rc = mdb_txn_commit(t);
	return rc == 0 ? 0 : open_error(dir, "commit", rc);
abort:
	mdb_txn_abort(t);
	return ret;
}

int
store_open(const char *dir, const struct store_opts *opts, struct store **out)
{
	struct store_opts o = opts != NULL ? *opts : (struct store_opts){0};
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (o.no_sync ? MDB_NOSYNC : 0);
	struct store *st;
	int ret, rc;

	o.map_size = o.map_size != 0 ? o.map_size : DEFAULT_MAP_SIZE;
	o.map_max = o.map_max != 0 ? o.map_max : DEFAULT_MAP_MAX;
	o.max_readers = o.max_readers != 0 ? o.max_readers : DEFAULT_READERS;
	if (o.map_size > o.map_max || o.map_size > SIZE_MAX) {
		log_err("store: map size %llu is above the largest map size %llu",
		        (unsigned long long)o.map_size, (unsigned long long)o.map_max);
		return HSAMEM_EINVAL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	st->map_max = o.map_max;
	st->serial = atomic_fetch_add(&store_serials, 1) + 1;
	if (pthread_mutex_init(&st->gate_mu, NULL) != 0) {
		ret = -ENOMEM;
		goto fail_free;
	}
	if (pthread_cond_init(&st->gate_cv, NULL) != 0) {
		ret = -ENOMEM;
		goto fail_mutex;
	}
	if ((rc = mdb_env_create(&st->env)) != 0) {
		ret = open_error(dir, "create environment", rc);
		goto fail_cond;
	}
	if ((rc = mdb_env_set_maxdbs(st->env, DB_COUNT)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, o.max_readers)) != 0 ||
	    (rc = mdb_env_open(st->env, dir, flags, 0600)) != 0 ||
	    (rc = adopt_configured_size(st, o.map_size)) != 0) {
		ret = open_error(dir, "open environment", rc);
		goto fail_env;
	}
	if ((ret = store_reader_check(st, NULL)) != 0 || (ret = open_dbs(st, dir)) != 0)
		goto fail_env;
	*out = st;
	return 0;

fail_env:
	mdb_env_close(st->env);
fail_cond:
	pthread_cond_destroy(&st->gate_cv);
fail_mutex:
	pthread_mutex_destroy(&st->gate_mu);
fail_free:
	free(st);
	return ret;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->gate_shared > 0)
		log_err("store: closed with %u transactions open", st->gate_shared);
	for (struct reader *r = st->readers, *next; r != NULL; r = next) {
		next = r->next;
		mdb_txn_abort(r->txn);
		free(r);
	}
	mdb_env_close(st->env);
	pthread_cond_destroy(&st->gate_cv);
	pthread_mutex_destroy(&st->gate_mu);
	free(st);
}

/* "512 KiB", "64 MiB": sizes for the log. */
static const char *
size_str(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= 1 << 20)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
	return buf;
}

int
store_grow(struct store *st)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), cur, next;
	MDB_envinfo info;
	char size[32];
	int ret = 0, rc;

	gate_lock_exclusive(st);
	if ((rc = mdb_env_info(st->env, &info)) != 0) {
		ret = mdb_error("grow map", rc);
		goto out;
	}
	cur = info.me_mapsize;
	next = cur > st->map_max / 2 ? st->map_max : cur * 2;
	next -= next % page;
	if (next <= cur || next > SIZE_MAX) {
		log_warn("store: map is full at its largest size, %s",
		         size_str(size, sizeof(size), cur));
		ret = HSAMEM_EFULL;
		goto out;
	}
	if ((rc = mdb_env_set_mapsize(st->env, (size_t)next)) != 0) {
		ret = mdb_error("grow map", rc);
		goto out;
	}
	log_notice("store: map grown to %s", size_str(size, sizeof(size), next));
out:
	gate_unlock_exclusive(st);
	return ret;
}

static int
count_reader(const char *line, void *arg)
{
	int pid;
	if (sscanf(line, "%d", &pid) == 1) /* skips the heading and "(no active readers)" */
		++*(unsigned *)arg;
	return 0;
}

int
store_info(struct store *st, struct store_info *out)
{
	MDB_envinfo info;
	MDB_stat stat;
	unsigned readers = 0, max_readers = 0;
	int rc;

	gate_enter(st);
	if ((rc = mdb_env_info(st->env, &info)) == 0 && (rc = mdb_env_stat(st->env, &stat)) == 0 &&
	    (rc = mdb_reader_list(st->env, count_reader, &readers)) >= 0)
		rc = mdb_env_get_maxreaders(st->env, &max_readers);
	gate_leave(st);
	if (rc != 0)
		return mdb_error("info", rc);
	*out = (struct store_info){
	        .map_size = info.me_mapsize,
	        .map_used = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize,
	        .readers = readers,
	        .max_readers = max_readers,
	        .format = STORE_FORMAT_VERSION,
	};
	return 0;
}

/* ---- transactions ---- */

/* Another process grew the map past ours: adopt its size (invariant 3). */
static int
adopt_map_size(struct store *st)
{
	gate_lock_exclusive(st);
	int rc = mdb_env_set_mapsize(st->env, 0);
	gate_unlock_exclusive(st);
	if (rc == 0)
		log_notice("store: map grown by another process");
	return rc;
}

int
store_txn_begin(struct store *st, struct store_txn *txn, bool write, struct store_txn *parent)
{
	unsigned flags = write ? 0 : MDB_RDONLY;
	MDB_txn *t = NULL;
	int rc;

	*txn = (struct store_txn){.st = st, .parent = parent, .write = write};
	if (parent != NULL) {
		if (!write || !parent->write || parent->txn == NULL) {
			log_err("store: nested transaction in a read or finished one");
			return txn->ret = HSAMEM_EINTERNAL;
		}
		if (parent->ret != 0)
			return txn->ret = parent->ret;
		rc = mdb_txn_begin(st->env, parent->txn, 0, &t);
	} else {
		gate_enter(st);
		rc = mdb_txn_begin(st->env, NULL, flags, &t);
		if (rc == MDB_READERS_FULL && store_reader_check(st, NULL) == 0) {
			rc = mdb_txn_begin(st->env, NULL, flags, &t);
		} else if (rc == MDB_MAP_RESIZED) {
			gate_leave(st);
			rc = adopt_map_size(st);
			gate_enter(st);
			if (rc == 0)
				rc = mdb_txn_begin(st->env, NULL, flags, &t);
		}
		if (rc != 0)
			gate_leave(st);
	}
	if (rc != 0)
		return txn->ret = mdb_error("begin transaction", rc);
	txn->txn = t;
	return 0;
}

static void
txn_end(struct store_txn *txn)
{
	txn->txn = NULL;
	while (txn->scratch != NULL) {
		struct scratch *s = txn->scratch;
		txn->scratch = s->next;
		free(s);
	}
	if (txn->parent == NULL)
		gate_leave(txn->st);
	else if (txn->ret == HSAMEM_EFULL)
		txn_fail(txn->parent, HSAMEM_EFULL);
}

int
store_txn_commit(struct store_txn *txn)
{
	if (txn->txn == NULL)
		return txn->ret != 0 ? txn->ret : txn_usable(txn, false, "commit");
	if (txn->ret != 0) {
		store_txn_abort(txn);
		return txn->ret;
	}
	int rc = mdb_txn_commit(txn->txn);
	if (rc != 0)
		txn->ret = mdb_error("commit", rc);
	txn_end(txn);
	return txn->ret;
}

void
store_txn_abort(struct store_txn *txn)
{
	if (txn->txn == NULL)
		return;
	mdb_txn_abort(txn->txn);
	txn_end(txn);
}

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
	int ret = db_reserve(txn, DB_USERS, k, len, &p, "write user");
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
		return txn_fail(txn, ret);
	if ((ret = db_get(txn, DB_USERS, &k, &v, "read user")) != 0)
		return ret;
	return txn_fail(txn, user_decode(&k, &v, u));
}

int
store_user_get(struct store_txn *txn, const char *name, struct store_user *out)
{
	int ret = txn_usable(txn, false, "user get");
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
	int ret = txn_usable(txn, true, "user create");

	if (ret != 0 || (ret = user_read(txn, u->name, &stored)) < 0)
		return ret;
	if (ret == 0)
		return txn_fail(txn, HSAMEM_EEXIST);
	if (spec_check(&u->spec, NULL, 0) != 0)
		return txn_fail(txn, HSAMEM_EINVAL);
	if ((ret = db_get(txn, DB_UIDS, &k, &v, "read next uid")) < 0)
		return ret;
	if (ret == NOTFOUND) {
		nu.uid = 1;
	} else {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		nu.uid = rd_u64(&r);
		if (!rd_done(&r) || nu.uid == 0)
			return corrupt(txn, "next uid", 0, nu.uid);
	}
	put_u64(next, nu.uid + 1);
	if ((ret = db_put(txn, DB_UIDS, &k, next, sizeof(next), "write next uid")) != 0)
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
	return ret == NOTFOUND ? txn_fail(txn, HSAMEM_ENOUSER) : ret;
}

int
store_user_update(struct store_txn *txn, const struct store_user *u)
{
	struct store_user stored;
	MDB_val k;
	int ret = txn_usable(txn, true, "user update");

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

/* Visits every record of db whose key starts with uid: deletes it, or with n, counts it. */
static int
walk_prefix(struct store_txn *txn, int db, uint64_t uid, uint64_t *n)
{
	uint8_t prefix[8];
	MDB_val k = key_uid(prefix, uid), v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->st->dbi[db], &cur);

	if (rc != 0)
		return txn_fail(txn, mdb_error(db_names[db], rc));
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, prefix, 8) == 0) {
		/* After a delete the cursor rests on the next record, which MDB_NEXT returns. */
		if (n != NULL)
			++*n;
		else
			rc = mdb_cursor_del(cur, 0);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return txn_fail(txn, mdb_error(db_names[db], rc));
	return 0;
}

int
store_user_delete(struct store_txn *txn, const struct store_user *u)
{
	struct store_user stored;
	MDB_val k;
	int ret = txn_usable(txn, true, "user delete"), rc;

	if (ret != 0 || (ret = user_same(txn, u, &stored)) != 0)
		return ret;
	user_key(u->name, &k);
	if ((rc = mdb_del(txn->txn, txn->st->dbi[DB_USERS], &k, NULL)) != 0)
		return txn_fail(txn, mdb_error("delete user", rc));
	for (size_t i = 0; i < sizeof(user_dbs) / sizeof(user_dbs[0]); i++)
		if ((ret = walk_prefix(txn, user_dbs[i], stored.uid, NULL)) != 0)
			return ret;
	return 0;
}

int
store_user_foreach(struct store_txn *txn, int (*cb)(const struct store_user *u, void *arg),
                   void *arg)
{
	struct store_user u;
	MDB_cursor *cur;
	MDB_val k, v;
	int ret = txn_usable(txn, false, "user foreach"), rc;

	if (ret != 0)
		return ret;
	if ((rc = mdb_cursor_open(txn->txn, txn->st->dbi[DB_USERS], &cur)) != 0)
		return txn_fail(txn, mdb_error("list users", rc));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((ret = user_decode(&k, &v, &u)) != 0)
			txn_fail(txn, ret);
		else
			ret = cb(&u, arg);
	}
	mdb_cursor_close(cur);
	if (ret == 0 && rc != MDB_NOTFOUND)
		ret = txn_fail(txn, mdb_error("list users", rc));
	return ret;
}

/* ---- entries ---- */

#define ENTRY_HEADER 32

int
store_entry_put(struct store_txn *txn, uint64_t uid, const struct store_entry *e)
{
	uint8_t kb[16], *p;
	MDB_val k = key_uid_n(kb, uid, e->seq);
	int ret = txn_usable(txn, true, "entry put");

	if (ret != 0)
		return ret;
	if ((e->text_len > 0 && e->text == NULL) || (e->tags_len > 0 && e->tags == NULL) ||
	    (e->tags_len > 0 && e->tags[e->tags_len - 1] != '\0'))
		return txn_fail(txn, HSAMEM_EINVAL);
	ret = db_reserve(txn, DB_ENTRIES, &k, ENTRY_HEADER + (size_t)e->text_len + e->tags_len, &p,
	                 "write entry");
	if (ret != 0)
		return ret;
	p = put_u32(put_u32(p, e->role), e->n_tokens);
	p = put_u64(put_u64(p, (uint64_t)e->timestamp_ms), e->first_token);
	p = put_u32(put_u32(p, e->text_len), e->tags_len);
	put_bytes(put_bytes(p, e->text, e->text_len), e->tags, e->tags_len);
	return 0;
}

int
store_entry_get(struct store_txn *txn, uint64_t uid, uint64_t seq, struct store_entry *out)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, seq), v;
	struct store_entry e = {.seq = seq};
	int ret = txn_usable(txn, false, "entry get");

	if (ret != 0 || (ret = db_get(txn, DB_ENTRIES, &k, &v, "read entry")) < 0)
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
	if (!rd_done(&r) || (e.tags_len > 0 && e.tags[e.tags_len - 1] != '\0'))
		return corrupt(txn, "entry", uid, seq);
	*out = e;
	return 0;
}

/* ---- chunks and the tail: token lists ---- */

#define TOKEN_BYTES 20 /* u32 token + u64 entry + u32 off + u32 len */

static uint8_t *
put_tokens(uint8_t *p, uint32_t n, const uint32_t *tokens, const struct store_tokref *refs)
{
	for (uint32_t i = 0; i < n; i++)
		p = put_u32(p, tokens[i]);
	for (uint32_t i = 0; i < n; i++)
		p = put_u32(put_u32(put_u64(p, refs[i].entry), refs[i].off), refs[i].len);
	return p;
}

/* Decodes n tokens from r into scratch copies. -ENOMEM, or 0 (r->bad tells a short record). */
static int
rd_tokens(struct store_txn *txn, struct rd *r, uint32_t n, const uint32_t **tokens,
          const struct store_tokref **refs)
{
	if ((size_t)(r->end - r->p) != (size_t)n * TOKEN_BYTES || n == 0) {
		r->bad = true;
		return 0;
	}
	struct store_tokref *rf = scratch_alloc(txn, (size_t)n * (sizeof(*rf) + sizeof(uint32_t)));
	if (rf == NULL)
		return txn_fail(txn, -ENOMEM);
	uint32_t *tk = (uint32_t *)(rf + n);
	for (uint32_t i = 0; i < n; i++)
		tk[i] = rd_u32(r);
	for (uint32_t i = 0; i < n; i++) {
		rf[i].entry = rd_u64(r);
		rf[i].off = rd_u32(r);
		rf[i].len = rd_u32(r);
	}
	*tokens = tk;
	*refs = rf;
	return 0;
}

int
store_chunk_put(struct store_txn *txn, uint64_t uid, uint64_t j, const struct store_chunk *c)
{
	uint8_t kb[16], *p;
	MDB_val k = key_uid_n(kb, uid, j);
	int ret = txn_usable(txn, true, "chunk put");

	if (ret != 0)
		return ret;
	if (c->n_tokens == 0 || c->n_real > c->n_tokens || c->tokens == NULL || c->refs == NULL)
		return txn_fail(txn, HSAMEM_EINVAL);
	ret = db_reserve(txn, DB_CHUNKS, &k, 8 + (size_t)c->n_tokens * TOKEN_BYTES, &p,
	                 "write chunk");
	if (ret == 0)
		put_tokens(put_u32(put_u32(p, c->n_tokens), c->n_real), c->n_tokens, c->tokens,
		           c->refs);
	return ret;
}

int
store_chunk_get(struct store_txn *txn, uint64_t uid, uint64_t j, struct store_chunk *out)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, j), v;
	struct store_chunk c;
	int ret = txn_usable(txn, false, "chunk get");

	if (ret != 0 || (ret = db_get(txn, DB_CHUNKS, &k, &v, "read chunk")) < 0)
		return ret;
	if (ret == NOTFOUND)
		return HSAMEM_ENOTFOUND;
	struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
	c.n_tokens = rd_u32(&r);
	c.n_real = rd_u32(&r);
	if ((ret = rd_tokens(txn, &r, c.n_tokens, &c.tokens, &c.refs)) != 0)
		return ret;
	if (!rd_done(&r) || c.n_real > c.n_tokens)
		return corrupt(txn, "chunk", uid, j);
	*out = c;
	return 0;
}

int
store_tail_put(struct store_txn *txn, uint64_t uid, const struct store_tail *t)
{
	uint8_t kb[8], *p;
	MDB_val k = key_uid(kb, uid);
	int ret = txn_usable(txn, true, "tail put"), rc;

	if (ret != 0)
		return ret;
	if (t->n == 0) {
		rc = mdb_del(txn->txn, txn->st->dbi[DB_TAIL], &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return txn_fail(txn, mdb_error("delete tail", rc));
		return 0;
	}
	if (t->tokens == NULL || t->refs == NULL)
		return txn_fail(txn, HSAMEM_EINVAL);
	ret = db_reserve(txn, DB_TAIL, &k, 4 + (size_t)t->n * TOKEN_BYTES, &p, "write tail");
	if (ret == 0)
		put_tokens(put_u32(p, t->n), t->n, t->tokens, t->refs);
	return ret;
}

int
store_tail_get(struct store_txn *txn, uint64_t uid, struct store_tail *out)
{
	uint8_t kb[8];
	MDB_val k = key_uid(kb, uid), v;
	struct store_tail t = {0};
	int ret = txn_usable(txn, false, "tail get");

	if (ret != 0 || (ret = db_get(txn, DB_TAIL, &k, &v, "read tail")) < 0)
		return ret;
	if (ret == 0) {
		struct rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, false};
		t.n = rd_u32(&r);
		if ((ret = rd_tokens(txn, &r, t.n, &t.tokens, &t.refs)) != 0)
			return ret;
		if (!rd_done(&r))
			return corrupt(txn, "tail", uid, 0);
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
	int ret = txn_usable(txn, true, "kv put");

	if (ret != 0)
		return ret;
	if (kv == NULL || len == 0)
		return txn_fail(txn, HSAMEM_EINVAL);
	return db_put(txn, DB_KV, &k, kv, len, "write kv");
}

int
store_kv_get(struct store_txn *txn, uint64_t uid, uint64_t j, const void **kv, size_t *len)
{
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, j), v;
	const void *p;
	int ret = txn_usable(txn, false, "kv get");

	if (ret != 0 || (ret = db_get(txn, DB_KV, &k, &v, "read kv")) < 0)
		return ret;
	if (ret == NOTFOUND)
		return HSAMEM_ENOTFOUND;
	if ((p = aligned(txn, v.mv_data, v.mv_size, 8)) == NULL)
		return txn_fail(txn, -ENOMEM);
	*kv = p;
	*len = v.mv_size;
	return 0;
}

int
store_kv_copy(struct store_txn *txn, uint64_t uid, uint64_t j, void *dst, size_t len)
{
	struct store *st = txn->st;
	uint8_t kb[16];
	MDB_val k = key_uid_n(kb, uid, j), v;
	int rc, ret;

	if (txn->txn == NULL) {
		log_err("store: kv copy under a finished transaction");
		return HSAMEM_EINTERNAL;
	}
	if (my_reader.serial != st->serial) {
		struct reader *r = malloc(sizeof(*r));
		if (r == NULL)
			return -ENOMEM;
		if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &r->txn)) != 0) {
			free(r);
			return mdb_error("begin a reader", rc);
		}
		pthread_mutex_lock(&st->gate_mu);
		r->next = st->readers;
		st->readers = r;
		pthread_mutex_unlock(&st->gate_mu);
		my_reader.serial = st->serial;
		my_reader.txn = r->txn;
	} else if ((rc = mdb_txn_renew(my_reader.txn)) != 0) {
		return mdb_error("renew a reader", rc);
	}
	rc = mdb_get(my_reader.txn, st->dbi[DB_KV], &k, &v);
	if (rc == MDB_NOTFOUND)
		ret = HSAMEM_ENOTFOUND;
	else if (rc != 0)
		ret = mdb_error("read kv", rc);
	else if (v.mv_size != len)
		ret = HSAMEM_EFORMAT;
	else
		ret = 0;
	if (ret == 0)
		memcpy(dst, v.mv_data, len);
	mdb_txn_reset(my_reader.txn);
	return ret;
}

/* ---- landmarks ---- */

int
store_landmark_put(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row)
{
	size_t rb = spec_landmark_bytes(&u->spec), have;
	uint32_t per_page = u->lmk_per_page;
	uint8_t kb[16], *page;
	MDB_val k, v = {0};
	int ret = txn_usable(txn, true, "landmark put");

	if (ret != 0)
		return ret;
	if (row == NULL || rb == 0 || per_page == 0)
		return txn_fail(txn, HSAMEM_EINVAL);
	k = key_uid_n(kb, u->uid, j / per_page);
	if ((ret = db_get(txn, DB_LANDMARKS, &k, &v, "read landmarks")) < 0)
		return ret;
	have = ret == NOTFOUND ? 0 : v.mv_size;
	if (have % rb != 0 || have / rb > per_page)
		return corrupt(txn, "landmarks page", u->uid, j / per_page);
	if (have != (j % per_page) * rb) /* not the next landmark (invariant 2) */
		return txn_fail(txn, HSAMEM_EINVAL);
	/* The old rows are copied out first: the put may move or free the pages they live on. */
	if ((page = malloc(have + rb)) == NULL)
		return txn_fail(txn, -ENOMEM);
	put_bytes(put_bytes(page, v.mv_data, have), row, rb);
	ret = db_put(txn, DB_LANDMARKS, &k, page, have + rb, "write landmarks");
	free(page);
	return ret;
}

int
store_landmarks_get(struct store_txn *txn, const struct store_user *u, uint64_t first,
                    const void **rows, uint64_t *count)
{
	size_t rb = spec_landmark_bytes(&u->spec);
	uint32_t per_page = u->lmk_per_page;
	uint64_t page, slot, stored, n;
	uint8_t kb[16];
	MDB_val k, v = {0};
	const void *p;
	int ret = txn_usable(txn, false, "landmarks get");

	if (ret != 0)
		return ret;
	if (rb == 0 || per_page == 0)
		return txn_fail(txn, HSAMEM_EINVAL);
	if (first >= u->n_chunks)
		return HSAMEM_ENOTFOUND;
	page = first / per_page;
	slot = first % per_page;
	k = key_uid_n(kb, u->uid, page);
	if ((ret = db_get(txn, DB_LANDMARKS, &k, &v, "read landmarks")) < 0)
		return ret;
	stored = ret == NOTFOUND ? 0 : v.mv_size / rb;
	if ((ret == 0 && v.mv_size % rb != 0) || stored > per_page || slot >= stored)
		return corrupt(txn, "landmarks page", u->uid, page);
	n = stored - slot;
	if (n > u->n_chunks - first)
		n = u->n_chunks - first;
	p = aligned(txn, (const uint8_t *)v.mv_data + slot * rb, n * rb,
	            spec_elem_size(u->spec.dtype));
	if (p == NULL)
		return txn_fail(txn, -ENOMEM);
	*rows = p;
	*count = n;
	return 0;
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
		ret = walk_prefix(&txn, user_dbs[i], uid, &c.n);
	store_txn_abort(&txn);
	if (ret == 0)
		*n = c.n;
	return ret;
}
