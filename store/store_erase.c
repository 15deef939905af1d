/*
 * store_erase.c: erasure (store.h, ERASURE): once a transaction that removed a memory has
 * committed, no byte of the store's files may still hold what it removed, nor may LMDB's buffers
 * in this process, so that a raw scan of data.mdb finds nothing of a deleted memory. It owns
 * the erase mark, the order of a scrub (the gate, LMDB's writer lock, the scrub of the pages by
 * store_pages.c, the reopening of the environment, the removal of the mark), and its
 * postponement while another process reads an old snapshot.
 *
 * WHY: LMDB 0.9 leaves deleted data in four places. (a) A page a transaction frees goes to the
 * free list as it is, and stays so until it is reused, if ever. (b) Pages are written from
 * buffers that LMDB reuses without clearing them, copying in only the used parts of a page: the
 * unused middle of a live page of any user (between the node pointers and the nodes) holds what
 * the buffer held before, often another user's records; deleting a node leaves its bytes there
 * too. (c) A value on overflow pages that fits one page gets such a buffer, and one rewritten in
 * place keeps the old value's end: the rest of its last page holds old bytes. (d) The buffers,
 * kept by the environment for later transactions, hold old pages, which pages of other users
 * later carry to the file through (b). A transaction that spilled pages and was aborted leaves
 * them past the last page in use. So deleting the records is not enough: the tester found 26
 * copies of a deleted memory's text in data.mdb after a delete and one more append.
 *
 * HOW (erase_run): with the gate held exclusively (no transaction of this process is open, and
 * the readers of store_kv_copy are reset, pinning no snapshot) and LMDB's writer lock held by
 * an idle write transaction (no page is reused meanwhile), store_pages_scrub zeroes every byte
 * of data.mdb that no live record uses: the dead pages, the unused bytes of live ones, the file
 * past the last page; it syncs. Then the environment is closed and opened again, which frees
 * LMDB's buffers (d); LMDB zeroes every buffer it allocates afresh. The meta pages hold roots
 * and counters, and lock.mdb the reader table: neither holds data.
 *
 *   mark (in the deleting txn) --commit--> scrub --sync--> reopen --> unmark (commit)
 *        \__ a stop anywhere here leaves the mark: the next start scrubs before serving
 *
 * THE MARK: the meta record "erase" is written by every transaction that removes a memory
 * (store_user_delete), so that it is durable with the delete, and removed by a complete scrub.
 * Transactions that wrote and were aborted (a refused import) want a scrub too, for their pages
 * stayed in LMDB's buffers, but need no mark: a stop frees the buffers. A scrub held back by a
 * reader of another process (a snapshot older than the delete: LMDB's own rule for reusing a
 * page) zeroes what it may, keeps the mark, and runs again after a later write once that reader
 * has moved on.
 *
 * COST: a scrub reads the header of every page of the store and the end of every overflow
 * value, and writes only pages that hold data; every transaction waits meanwhile. Reads and
 * writes between deletes cost nothing more than before. bench/RESULTS.md has figures.
 *
 * The committer calls store_erase, and the daemon's start before it, and the end of a backup
 * (store_copy.c); erase_mu runs them one at a time.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"
#include "store_fields.h"
#include "store_int.h"

#define MARK_KEY "erase"

int
store_erase_mark(struct store_txn *txn)
{
	MDB_val k = key_str(MARK_KEY);
	uint8_t one = 1;
	int ret = store_txn_usable(txn, true, "erase mark");
	if (ret == 0)
		ret = store_db_put(txn, DB_META, &k, &one, 1, "write the erase mark");
	if (ret == 0)
		atomic_store(&txn->st->erase_wanted, true);
	return ret;
}

void
store_erase_want(struct store *st)
{
	atomic_store(&st->erase_wanted, true);
}

struct oldest {
	int self;
	uint64_t txnid;
};

static int
reader_line(const char *line, void *arg)
{
	struct oldest *o = arg;
	int pid;
	unsigned long long tid, txnid;
	/* "pid thread txnid"; a reset reader shows "-", and reads nothing */
	if (sscanf(line, "%d %llx %llu", &pid, &tid, &txnid) == 3 && pid != o->self &&
	    txnid < o->txnid)
		o->txnid = txnid;
	return 0;
}

/*
 * The oldest snapshot that a reader of another live process reads (UINT64_MAX: none), once the
 * slots of dead processes are cleared. This process's own are left out: the scrub runs with the
 * gate held exclusively, when none is open (the readers of store_kv_copy are reset), and the first
 * look, before it, need not count them.
 */
static uint64_t
oldest_reader(struct store *st)
{
	struct oldest o = {(int)getpid(), UINT64_MAX};
	store_reader_check(st, NULL); /* a dead process's slot would hold it back for ever */
	if (mdb_reader_list(st->env, reader_line, &o) < 0)
		return 0; /* unknown: as if a reader read every snapshot */
	return o.txnid;
}

int
store_erase_marked(struct store *st, bool *present)
{
	struct store_txn txn;
	MDB_val k = key_str(MARK_KEY), v;
	int ret = store_txn_begin(st, &txn, false, NULL);
	if (ret != 0)
		return ret;
	ret = store_db_get(&txn, DB_META, &k, &v, "read the erase mark");
	store_txn_abort(&txn);
	if (ret < 0)
		return ret;
	*present = ret == 0;
	return 0;
}

/* Opens the environment at dir with the settings of the one closed. */
static int
env_open(const char *dir, unsigned flags, unsigned readers, size_t mapsize, MDB_env **out,
         MDB_dbi dbi[DB_COUNT])
{
	MDB_env *env;
	MDB_txn *t;
	int rc = mdb_env_create(&env);
	if (rc != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(env, DB_COUNT)) != 0 ||
	    (rc = mdb_env_set_maxreaders(env, readers)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, dir, flags, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t)) != 0) {
		mdb_env_close(env);
		return rc;
	}
	for (int i = 0; i < DB_COUNT && rc == 0; i++)
		rc = mdb_dbi_open(t, store_db_names[i], 0, &dbi[i]);
	if (rc == 0)
		rc = mdb_txn_commit(t); /* keeps the handles */
	else
		mdb_txn_abort(t);
	if (rc != 0) {
		mdb_env_close(env);
		return rc;
	}
	*out = env;
	return 0;
}

/*
 * Closes the environment and opens it again, which frees LMDB's page buffers. With the gate
 * held exclusively. Should the environment not open again (it just did: the directory would
 * have to be gone), st->env stays NULL and every transaction fails with HSAMEM_ESTORE.
 */
int
store_env_reopen(struct store *st)
{
	const char *path;
	unsigned flags, readers;
	MDB_envinfo info;
	MDB_dbi dbi[DB_COUNT];
	MDB_env *env = NULL;
	char *dir;
	int rc;
	if ((rc = mdb_env_get_path(st->env, &path)) != 0 ||
	    (rc = mdb_env_get_flags(st->env, &flags)) != 0 ||
	    (rc = mdb_env_get_maxreaders(st->env, &readers)) != 0 ||
	    (rc = mdb_env_info(st->env, &info)) != 0)
		return store_lmdb_error("erase: reopen", rc);
	if ((dir = strdup(path)) == NULL)
		return -ENOMEM;
	store_readers_close(st);
	mdb_env_close(st->env);
	st->env = NULL;
	for (int i = 0; i < 3; i++) {
		if ((rc = env_open(dir, flags, readers, info.me_mapsize, &env, dbi)) == 0)
			break;
		usleep(100000);
	}
	if (rc != 0) {
		log_msg(LOG_CRIT,
		        "store: %s: cannot open the store again after an erasure: %s; restart "
		        "hsamemd",
		        dir, mdb_strerror(rc));
		free(dir);
		return HSAMEM_ESTORE;
	}
	free(dir);
	st->env = env;
	memcpy(st->dbi, dbi, sizeof(dbi));
	return 0;
}

/*
 * Removes the mark, in a commit whose meta page is not synced (MDB_NOMETASYNC: consistent, not
 * durable): the next commit makes it durable, and should the daemon stop before, the next start
 * scrubs again, finding nothing more to clear. The scrub's writes were synced before.
 */
static int
unmark(struct store *st)
{
	MDB_val k = key_str(MARK_KEY);
	unsigned flags = 0;
	MDB_txn *t;
	int rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc != 0)
		return store_lmdb_error("erase: remove the mark", rc);
	if ((rc = mdb_del(t, st->dbi[DB_META], &k, NULL)) != 0) {
		mdb_txn_abort(t);
		return rc == MDB_NOTFOUND ? 0 : store_lmdb_error("erase: remove the mark", rc);
	}
	bool synced = mdb_env_get_flags(st->env, &flags) == 0 && !(flags & MDB_NOMETASYNC);
	if (synced)
		mdb_env_set_flags(st->env, MDB_NOMETASYNC, 1);
	rc = mdb_txn_commit(t);
	if (synced)
		mdb_env_set_flags(st->env, MDB_NOMETASYNC, 0);
	return rc == 0 ? 0 : store_lmdb_error("erase: remove the mark", rc);
}

static double
ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The scrub, the reopen and the removal of the mark, with the gate held exclusively. */
static int
erase_locked(struct store *st, struct store_scrub *sc)
{
	MDB_txn *w, *r;
	int rc = mdb_txn_begin(st->env, NULL, 0, &w); /* LMDB's writer lock: nothing is reused */
	if (rc != 0)
		return store_lmdb_error("erase: begin", rc);
	uint64_t oldest = oldest_reader(st); /* before r, whose own slot is no other's */
	if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &r)) != 0) {
		mdb_txn_abort(w);
		return store_lmdb_error("erase: begin", rc);
	}
	int ret = store_pages_scrub(st, r, oldest, sc);
	mdb_txn_abort(r);
	mdb_txn_abort(w);
	if (ret != 0 || (ret = store_env_reopen(st)) != 0)
		return ret;
	st->erase_waiting = sc->held > 0 ? oldest : 0;
	return sc->held > 0 ? 0 : unmark(st);
}

/*
 * store_erase with erase_mu held. A copy of the environment (store_copy.c: a backup) reads the
 * pages a scrub would clear and the environment a scrub reopens: while one runs, the erasure
 * waits, as for a reader of another process, and the copy's end runs it.
 */
static int
erase_serial(struct store *st, bool resume)
{
	bool want = atomic_exchange(&st->erase_wanted, false);
	struct store_scrub sc = {0};
	struct timespec t0;
	int ret;
	if (!want && resume && (ret = store_erase_marked(st, &want)) != 0)
		return ret;
	if (!want)
		return 0;
	if (st->erase_off) {
		log_err("store: erasure is off until restart (see the first error)");
		return HSAMEM_EINTERNAL;
	}
	if (st->env == NULL)
		return HSAMEM_ESTORE;
	if (st->erase_waiting != 0 && oldest_reader(st) == st->erase_waiting) {
		/* the reader that held the last one back is still there: not worth a scrub */
		atomic_store(&st->erase_wanted, true);
		return HSAMEM_EBUSY;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (store_gate_trylock(st) != 0) {
		atomic_store(&st->erase_wanted, true);
		log_info("store: erasure waits for the backup that is running");
		return HSAMEM_EBUSY;
	}
	ret = st->env != NULL ? erase_locked(st, &sc) : HSAMEM_ESTORE;
	store_gate_unlock(st);
	if (ret != 0) {
		log_err("store: erasure failed (%s); it runs again at the next delete or start",
		        hsamem_strerror(ret));
		return ret;
	}
	log_info("store: erased in %.1f ms: %llu of %llu pages live, %llu free; cleared %llu live "
	         "and %llu dead, %llu KiB written",
	         ms_since(&t0), (unsigned long long)sc.live, (unsigned long long)sc.pages,
	         (unsigned long long)sc.free, (unsigned long long)sc.cleaned,
	         (unsigned long long)sc.zeroed, (unsigned long long)(sc.bytes >> 10));
	if (sc.held == 0)
		return 0;
	atomic_store(&st->erase_wanted, true);
	log_warn("store: erasure held back: another process reads a snapshot from before the "
	         "delete; %llu pages wait for it",
	         (unsigned long long)sc.held);
	return HSAMEM_EBUSY;
}

int
store_erase(struct store *st, bool resume)
{
	pthread_mutex_lock(&st->erase_mu);
	int ret = erase_serial(st, resume);
	pthread_mutex_unlock(&st->erase_mu);
	return ret;
}
