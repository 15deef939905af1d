/*
 * store_int.h: what the parts of the store share, internal to store/. store.c owns the LMDB
 * environment, the gate, the readers and the transactions with their sticky error, and the
 * helpers below, through which every record operation reaches LMDB; store_codec.c owns the
 * records: their layouts and the record operations of store.h, built on these helpers;
 * store_erase.c and store_pages.c own erasure (store.h, ERASURE).
 */
#ifndef HSAMEM_STORE_INT_H
#define HSAMEM_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#define NOTFOUND 1 /* internal result of store_db_get: no such key */

enum {
	DB_META,
	DB_USERS,
	DB_ENTRIES,
	DB_CHUNKS,
	DB_KV,
	DB_LANDMARKS,
	DB_TAIL,
	DB_UIDS,
	DB_TERMS,
	DB_ATTRS,
	DB_LINKS,
	DB_COUNT
};

extern const char *const store_db_names[DB_COUNT];

struct reader;
struct store_txn;

struct store {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	uint64_t map_max;
	pthread_mutex_t gate_mu; /* the gate: store.c's invariant 3 */
	pthread_cond_t gate_cv;
	unsigned gate_shared;     /* top-level transactions open */
	bool gate_exclusive;      /* store_grow holds the gate or waits for it */
	unsigned copying;         /* copies of the environment running (store_copy.c) */
	pthread_mutex_t erase_mu; /* one store_erase at a time */
	uint64_t serial;          /* of this store among those opened by the process, from 1 */
	struct reader *readers;   /* of store_kv_copy's threads, under gate_mu */
	/* erasure (store_erase.c); env is NULL only after an environment could not be reopened */
	atomic_bool erase_wanted; /* a transaction removed records, or an erasure is owed */
	bool erase_off;           /* the pages did not read as expected: no erasure until restart */
	uint64_t erase_waiting;   /* the snapshot of another process that held the last one back */
};

/* Takes the gate exclusively (no transaction of this process is open, new ones wait), and gives
 * it back: store_grow's and store_erase's. */
void store_gate_lock(struct store *st);
void store_gate_unlock(struct store *st);

/* The same, unless a copy runs: then HSAMEM_EBUSY at once, and nothing held. Erasure's and
 * compaction's, which would otherwise stop every transaction until the copy ends. */
int store_gate_trylock(struct store *st);

/* A copy of the environment (store_copy.c) begins and ends: while one runs, the map is not
 * moved (growth waits) nor the environment reopened (erasure waits). Enter fails with
 * HSAMEM_ESTORE when the environment was lost. */
int store_copy_enter(struct store *st);
void store_copy_leave(struct store *st);

/* Closes the environment and opens it again with the same settings (store_erase.c), with the
 * gate held exclusively; on failure env stays NULL and HSAMEM_ESTORE comes back. */
int store_env_reopen(struct store *st);

/* Whether the erase mark is in the store (store_erase.c). */
int store_erase_marked(struct store *st, bool *present);

/* Aborts the readers of store_kv_copy and gives the store a new serial number, so that no thread
 * uses them again; with the gate held exclusively, before the environment closes. */
void store_readers_close(struct store *st);

/* What a scrub of the pages found and did (store_pages.c). */
struct store_scrub {
	uint64_t pages;      /* up to the last page in use, the meta pages included */
	uint64_t live, free; /* pages in use; pages on the free list */
	uint64_t cleaned;    /* live pages and overflow runs whose unused bytes were cleared */
	uint64_t zeroed;     /* dead pages overwritten, and pages' worth past the last in use */
	uint64_t held;       /* dead pages holding data that another process may still read */
	uint64_t bytes;      /* written */
};

/*
 * Overwrites with zeros every byte of data.mdb that no live record uses (store_erase.c says
 * why and how), reading the pages of r's snapshot, which must be the newest: the caller holds
 * LMDB's writer lock and the gate exclusively. Dead pages that a reader of a snapshot older
 * than oldest may use (UINT64_MAX: no reader) are left, and counted in held. Writes nothing
 * when the pages do not read as expected: HSAMEM_EINTERNAL, logged, and st->erase_off set.
 */
int store_pages_scrub(struct store *st, MDB_txn *r, uint64_t oldest, struct store_scrub *out);

/* An LMDB return code as an hsamem one; logged unless it is the caller's to handle (map full).
 * ENOSPC, EDQUOT and EFBIG come back negated (store.h, ROOM). */
int store_lmdb_error(const char *op, int rc);

/* After LMDB failed a write with EIO: ENOSPC when the file system has (almost) no room left,
 * EFBIG when the file reached the file size limit (LMDB reports a write cut short as EIO), else
 * EIO. store_room.c. */
int store_short_write(struct store *st);

/* "512 KiB", "64 MiB": sizes for the log and for messages. store_room.c. */
const char *store_size_str(char *buf, size_t len, uint64_t bytes);

/* Keeps the first failure of txn and returns ret. */
int store_txn_fail(struct store_txn *txn, int ret);

/* 0 when txn can run an operation (a write one if write), else the error the operation returns. */
int store_txn_usable(struct store_txn *txn, bool write, const char *op);

/* Logs that record (what, n) of user uid is corrupt; fails txn with HSAMEM_EFORMAT. */
int store_corrupt(struct store_txn *txn, const char *what, uint64_t uid, uint64_t n);

/* The value of k in db: 0 and *v (borrowed), NOTFOUND, or a (sticky) error. */
int store_db_get(struct store_txn *txn, int db, MDB_val *k, MDB_val *v, const char *op);

/* Reserves len bytes under k; *p gets where to write them. */
int store_db_reserve(struct store_txn *txn, int db, MDB_val *k, size_t len, uint8_t **p,
                     const char *op);

int store_db_put(struct store_txn *txn, int db, MDB_val *k, const void *data, size_t len,
                 const char *op);

/* len bytes, aligned for any type, that live until txn ends; NULL when out of memory. */
void *store_scratch_alloc(struct store_txn *txn, size_t len);

/* p, or a copy of its len bytes when p is not aligned to align. NULL when out of memory. */
const void *store_aligned(struct store_txn *txn, const void *p, size_t len, size_t align);

#endif
