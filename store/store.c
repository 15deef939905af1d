/*
 * store.c: the LMDB store's environment and transactions (store.h): the environment and its
 * named databases, the format version, the growth of the map and the write that lets freed pages
 * be reused (store_recycle; store_room.c says what is full), the gate that keeps growth away
 * from open transactions, the per-thread readers of store_kv_copy, and the transaction wrapper
 * with its sticky error. The records (their keys and layouts, and the operations on users,
 * entries, chunks, the tail, K|V and landmarks) are store_codec.c's, which reaches LMDB only
 * through the helpers of store_int.h defined here. Erasure (store.h, ERASURE) is store_erase.c's
 * and store_pages.c's: they take the gate here, and close and reopen the environment.
 *
 * It keeps no transaction open beyond one call of its own, and logs only what no caller is
 * expected to handle: "not found", "exists" and "map full" are answers, LMDB failures are logged.
 *
 * TRANSACTIONS (the lifecycle is drawn in store.h)
 *   begin:  top level: enter the gate shared, mdb_txn_begin;  nested: mdb_txn_begin in the parent
 *   op:     a no-op returning txn->ret once set; a failure sets it (store_txn_fail)
 *   commit: with txn->ret set, abort; else mdb_txn_commit;  then txn_end
 *   abort:  mdb_txn_abort; then txn_end
 *   txn_end frees the scratch copies, and leaves the gate (top level) or hands HSAMEM_EFULL (or
 *   another store_full() code) up to the parent (nested): a full map fails the whole transaction,
 *   which must run again after growth.
 *
 * INVARIANTS (1 and 2, of the records, are store_codec.c's)
 *  3. mdb_env_set_mapsize, and the reopening of the environment by store_erase.c and
 *     store_copy.c, run only with the gate held exclusively: no transaction of this process is
 *     open, nor a copy (store_copy.c), whose read transaction holds no place in the gate so that
 *     transactions go on beside it: growth waits for the copies to end, erasure and compaction
 *     do not start while one runs. A reopening that fails
 *     leaves env NULL, and every entry point here then fails with HSAMEM_ESTORE. The gate is a
 * counter under a mutex rather than a rwlock because a read transaction (MDB_NOTLS) may end on
 * another thread than the one that began it.
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
#include "store_fields.h"
#include "store_int.h"

#ifndef PACKAGE_STRING
#define PACKAGE_STRING "hsamem"
#endif

#define DEFAULT_MAP_SIZE (1ull << 30)
#define DEFAULT_MAP_MAX  (1ull << 40)
#define DEFAULT_READERS  126

const char *const store_db_names[DB_COUNT] = {"meta",  "users",     "entries", "chunks",
                                              "kv",    "landmarks", "tail",    "uids",
                                              "terms", "attrs",     "links"};

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
/* Waits for the copies too (store_copy.c): a remap under a copy would pull its pages away. */
static void
gate_lock_exclusive(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	while (st->gate_exclusive || st->copying > 0)
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

void
store_gate_lock(struct store *st)
{
	gate_lock_exclusive(st);
}

int
store_gate_trylock(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	while (st->gate_exclusive)
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	if (st->copying > 0) {
		pthread_mutex_unlock(&st->gate_mu);
		return HSAMEM_EBUSY;
	}
	st->gate_exclusive = true;
	while (st->gate_shared > 0)
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	pthread_mutex_unlock(&st->gate_mu);
	return 0;
}

void
store_gate_unlock(struct store *st)
{
	gate_unlock_exclusive(st);
}

int
store_copy_enter(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	while (st->gate_exclusive)
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	int ret = st->env != NULL ? 0 : HSAMEM_ESTORE;
	if (ret == 0)
		st->copying++;
	pthread_mutex_unlock(&st->gate_mu);
	return ret;
}

void
store_copy_leave(struct store *st)
{
	pthread_mutex_lock(&st->gate_mu);
	if (--st->copying == 0)
		pthread_cond_broadcast(&st->gate_cv);
	pthread_mutex_unlock(&st->gate_mu);
}

/* ---- errors ---- */

int
store_lmdb_error(const char *op, int rc)
{
	int ret = HSAMEM_ESTORE;
	if (rc == MDB_MAP_FULL)
		return HSAMEM_EFULL;
	if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG) { /* store.h, ROOM */
		log_err("store: %s: the file system refused to extend the store: %s", op,
		        strerror(rc));
		return -rc;
	}
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

int
store_txn_fail(struct store_txn *txn, int ret)
{
	if (ret < 0 && txn->ret == 0)
		txn->ret = ret;
	return ret;
}

int
store_txn_usable(struct store_txn *txn, bool write, const char *op)
{
	if (txn->ret != 0)
		return txn->ret;
	if (txn->txn == NULL || (write && !txn->write)) {
		log_err("store: %s on a %s transaction", op,
		        txn->txn == NULL ? "finished" : "read");
		return store_txn_fail(txn, HSAMEM_EINTERNAL);
	}
	return 0;
}

int
store_corrupt(struct store_txn *txn, const char *what, uint64_t uid, uint64_t n)
{
	log_err("store: user %llu: %s %llu is corrupt", (unsigned long long)uid, what,
	        (unsigned long long)n);
	return store_txn_fail(txn, HSAMEM_EFORMAT);
}

/* ---- LMDB access through a transaction ---- */

int
store_db_get(struct store_txn *txn, int db, MDB_val *k, MDB_val *v, const char *op)
{
	int rc = mdb_get(txn->txn, txn->st->dbi[db], k, v);
	if (rc == MDB_NOTFOUND)
		return NOTFOUND;
	return rc == 0 ? 0 : store_txn_fail(txn, store_lmdb_error(op, rc));
}

int
store_db_reserve(struct store_txn *txn, int db, MDB_val *k, size_t len, uint8_t **p, const char *op)
{
	MDB_val v = {.mv_size = len};
	int rc = mdb_put(txn->txn, txn->st->dbi[db], k, &v, MDB_RESERVE);
	if (rc != 0)
		return store_txn_fail(txn, store_lmdb_error(op, rc));
	*p = v.mv_data;
	return 0;
}

int
store_db_put(struct store_txn *txn, int db, MDB_val *k, const void *data, size_t len,
             const char *op)
{
	MDB_val v = {.mv_size = len, .mv_data = (void *)data};
	int rc = mdb_put(txn->txn, txn->st->dbi[db], k, &v, 0);
	return rc == 0 ? 0 : store_txn_fail(txn, store_lmdb_error(op, rc));
}

void *
store_scratch_alloc(struct store_txn *txn, size_t len)
{
	struct scratch *s = malloc(sizeof(*s) + len);
	if (s == NULL)
		return NULL;
	s->next = txn->scratch;
	txn->scratch = s;
	return s->data;
}

const void *
store_aligned(struct store_txn *txn, const void *p, size_t len, size_t align)
{
	if ((uintptr_t)p % align == 0)
		return p;
	void *copy = store_scratch_alloc(txn, len);
	if (copy != NULL)
		memcpy(copy, p, len);
	return copy;
}

/* ---- the environment ---- */

int
store_reader_check(struct store *st, int *cleared)
{
	int dead = 0;
	if (st->env == NULL)
		return HSAMEM_ESTORE;
	int rc = mdb_reader_check(st->env, &dead);
	if (rc != 0)
		return store_lmdb_error("check readers", rc);
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
	return store_lmdb_error(op, rc);
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
		if (format < STORE_FORMAT_OLDEST || format > STORE_FORMAT_VERSION) {
			log_err("store: %s holds a store of format %u; this build reads formats %u "
			        "to %u",
			        dir, format, STORE_FORMAT_OLDEST, STORE_FORMAT_VERSION);
			return HSAMEM_EFORMAT;
		}
		if (format < STORE_FORMAT_VERSION) { /* store.h, FORMATS: nothing else changes */
			uint8_t buf[4];
			put_u32(buf, STORE_FORMAT_VERSION);
			v = (MDB_val){.mv_size = 4, .mv_data = buf};
			if ((rc = mdb_put(t, st->dbi[DB_META], &k, &v, 0)) != 0)
				return store_lmdb_error("write format version", rc);
			log_notice("store: %s: format %u is now format %u; its memories keep what "
			           "they store until they are re-encoded",
			           dir, format, STORE_FORMAT_VERSION);
		}
	} else if (rc == MDB_NOTFOUND) {
		MDB_stat users;
		uint8_t buf[4];
		if ((rc = mdb_stat(t, st->dbi[DB_USERS], &users)) != 0)
			return store_lmdb_error("open", rc);
		if (users.ms_entries > 0) {
			log_err("store: %s has users but no format version", dir);
			return HSAMEM_EFORMAT;
		}
		put_u32(buf, STORE_FORMAT_VERSION);
		v = (MDB_val){.mv_size = 4, .mv_data = buf};
		if ((rc = mdb_put(t, st->dbi[DB_META], &k, &v, 0)) != 0)
			return store_lmdb_error("write format version", rc);
	} else {
		return store_lmdb_error("read format version", rc);
	}
	k = key_str("build");
	v = key_str(PACKAGE_STRING);
	rc = mdb_put(t, st->dbi[DB_META], &k, &v, 0);
	return rc == 0 ? 0 : store_lmdb_error("write build", rc);
}

static int
open_dbs(struct store *st, const char *dir)
{
	MDB_txn *t;
	int ret, rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc != 0)
		return open_error(dir, "begin transaction", rc);
	for (int i = 0; i < DB_COUNT; i++) {
		if ((rc = mdb_dbi_open(t, store_db_names[i], MDB_CREATE, &st->dbi[i])) != 0) {
			ret = store_lmdb_error(store_db_names[i], rc);
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
	if (pthread_mutex_init(&st->erase_mu, NULL) != 0) {
		ret = -ENOMEM;
		goto fail_cond;
	}
	if ((rc = mdb_env_create(&st->env)) != 0) {
		ret = open_error(dir, "create environment", rc);
		goto fail_erase;
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
fail_erase:
	pthread_mutex_destroy(&st->erase_mu);
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
	store_readers_close(st);
	mdb_env_close(st->env);
	pthread_mutex_destroy(&st->erase_mu);
	pthread_cond_destroy(&st->gate_cv);
	pthread_mutex_destroy(&st->gate_mu);
	free(st);
}

int
store_grow(struct store *st)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), cur, next;
	MDB_envinfo info;
	char size[32];
	int ret = 0, rc;

	gate_lock_exclusive(st);
	if (st->env == NULL) {
		ret = HSAMEM_ESTORE;
		goto out;
	}
	if ((rc = mdb_env_info(st->env, &info)) != 0) {
		ret = store_lmdb_error("grow map", rc);
		goto out;
	}
	cur = info.me_mapsize;
	next = cur > st->map_max / 2 ? st->map_max : cur * 2;
	next -= next % page;
	if (next <= cur || next > SIZE_MAX) {
		log_warn("store: map is full at its largest size, %s",
		         store_size_str(size, sizeof(size), cur));
		ret = HSAMEM_EFULL;
		goto out;
	}
	if ((rc = mdb_env_set_mapsize(st->env, (size_t)next)) != 0) {
		ret = store_lmdb_error("grow map", rc);
		goto out;
	}
	log_notice("store: map grown to %s", store_size_str(size, sizeof(size), next));
out:
	gate_unlock_exclusive(st);
	return ret;
}

int
store_recycle(struct store *st)
{
	struct store_txn txn;
	MDB_val k = key_str("build"), v = key_str(PACKAGE_STRING);
	int ret = store_txn_begin(st, &txn, true, NULL);

	if (ret != 0)
		return ret;
	/* the same value again: a write of a page or two, which moves LMDB's transaction id on */
	store_db_put(&txn, DB_META, &k, v.mv_data, v.mv_size, "recycle freed pages");
	return store_txn_commit(&txn);
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
	if (st->env == NULL) {
		gate_leave(st);
		return HSAMEM_ESTORE;
	}
	if ((rc = mdb_env_info(st->env, &info)) == 0 && (rc = mdb_env_stat(st->env, &stat)) == 0 &&
	    (rc = mdb_reader_list(st->env, count_reader, &readers)) >= 0)
		rc = mdb_env_get_maxreaders(st->env, &max_readers);
	gate_leave(st);
	if (rc != 0)
		return store_lmdb_error("info", rc);
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
		if (st->env == NULL) { /* lost by a failed reopen (store_erase.c) */
			gate_leave(st);
			return txn->ret = HSAMEM_ESTORE;
		}
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
		return txn->ret = store_lmdb_error("begin transaction", rc);
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
	else if (store_full(txn->ret))
		store_txn_fail(txn->parent, txn->ret);
}

int
store_txn_commit(struct store_txn *txn)
{
	if (txn->txn == NULL)
		return txn->ret != 0 ? txn->ret : store_txn_usable(txn, false, "commit");
	if (txn->ret != 0) {
		store_txn_abort(txn);
		return txn->ret;
	}
	int rc = mdb_txn_commit(txn->txn);
	if (rc == EIO) /* or a write cut short by a full disk */
		rc = store_short_write(txn->st);
	if (rc != 0)
		txn->ret = store_lmdb_error("commit", rc);
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

/* ---- the readers of store_kv_copy ---- */

void
store_readers_close(struct store *st)
{
	for (struct reader *r = st->readers, *next; r != NULL; r = next) {
		next = r->next;
		mdb_txn_abort(r->txn);
		free(r);
	}
	st->readers = NULL;
	st->serial = atomic_fetch_add(&store_serials, 1) + 1;
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
			return store_lmdb_error("begin a reader", rc);
		}
		pthread_mutex_lock(&st->gate_mu);
		r->next = st->readers;
		st->readers = r;
		pthread_mutex_unlock(&st->gate_mu);
		my_reader.serial = st->serial;
		my_reader.txn = r->txn;
	} else if ((rc = mdb_txn_renew(my_reader.txn)) != 0) {
		return store_lmdb_error("renew a reader", rc);
	}
	rc = mdb_get(my_reader.txn, st->dbi[DB_KV], &k, &v);
	if (rc == MDB_NOTFOUND)
		ret = HSAMEM_ENOTFOUND;
	else if (rc != 0)
		ret = store_lmdb_error("read kv", rc);
	else if (v.mv_size != len)
		ret = HSAMEM_EFORMAT;
	else
		ret = 0;
	if (ret == 0)
		memcpy(dst, v.mv_data, len);
	mdb_txn_reset(my_reader.txn);
	return ret;
}
