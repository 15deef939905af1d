/*
 * store.h: hsamem's persistent state in one LMDB environment (hsamem(7), STORE LAYOUT).
 *
 * Named databases, keys big-endian so that cursors walk a user's records in order:
 *   meta       "format" -> format version (u32)      "build" -> daemon version string
 *   users      name -> user record (uid, spec, counters)
 *   entries    (uid, seq)  -> entry (role, timestamp, token range, text, tags)
 *   chunks     (uid, j)    -> chunk (tokens and where each token's text lives)
 *   kv         (uid, j)    -> K|V of chunk j, one contiguous blob in the spec's dtype
 *   landmarks  (uid, page) -> landmarks of chunks page*per_page .. +per_page-1, contiguous
 *   tail       (uid)       -> the unsealed last tokens of the stream
 *   uids       "next"      -> the next user id (user ids are never reused)
 *   terms      (uid), (uid, token id) -> term statistics (TERMS below)
 *   attrs      (uid, kind, term, seq) -> postings of entries' scope, metadata, tags and roles
 *              (store_filter.h)
 *   links      (uid, seq)  -> what became of a forgotten or updated entry (FORGETTING below)
 * and, in landmarks under page numbers with the top bit set, lexical landmarks (LEXICAL below).
 * A user's records are a hard partition of every database by the uid prefix: no lookup ever crosses
 * it, and deleting the user removes every key with that prefix.
 *
 * TERMS
 * For ranking by BM25, a memory may keep term statistics: for each token id the number of its
 * chunks that hold it (document frequency), and the number of chunks and of real tokens counted.
 * The daemon adds every chunk of a memory with a built-in encoder in the write transaction that
 * stores the chunk, so they match the chunks of every snapshot. Keys are the token ids themselves
 * (32 bits, no further hashing). store_user_delete removes them with the rest.
 *
 * LEXICAL
 * A memory of a model encoder (hsa-small) flagged STORE_USER_LEXICAL keeps, beside each sealed
 * chunk's own landmark, a lexical landmark (the lexical encoder's, from the chunk's text), for
 * hybrid ranking. They are paged like the landmarks, under (uid, 2^63 | page), so every walk and
 * delete by uid takes them; their term statistics (TERMS) count lex1 ids, not the model's.
 *
 * COMPUTED K/V
 * A memory flagged STORE_USER_KV_COMPUTED has no kv records: its encoder's K and V are a pure
 * function of each slot's token (encoder.h, encode_kv: the lexical encoder's), so the daemon
 * computes them from the chunk's tokens when the chunk is read, and stores the tokens and the
 * landmark only. K|V are 16 KiB per 64-token chunk of a lexical memory: about 85% of what such a
 * memory stored. The flag is set when the memory is created and never changes while its uid
 * lives: a memory made before it keeps its kv records (and is read from them) until it is
 * re-encoded, which makes a new uid.
 *
 * SPARSE PAGES
 * A lexical landmark is a hashed bag of a chunk's words: about 200 of its 1,024 elements are not
 * zero. A memory flagged STORE_USER_LMK_SPARSE keeps its landmark pages (and one flagged
 * STORE_USER_LEXLM_SPARSE its lexical landmark pages) as their nonzero elements only, element by
 * element: for each element, the rows of the page where it is not zero and its values there
 * (store_codec.c has the layout), a third of the dense page. So a question that weighs a few
 * elements reads only theirs (store_landmarks_sparse gives that view). Rows must be of 2-byte
 * elements (f16, bf16) and pages of at most 256 rows; a zero is the bit pattern 0, and every
 * other pattern comes back as it was put. The gets still give dense rows: for such a memory they
 * are decoded into a buffer of the calling thread, valid until that thread's next get of a
 * sparse page (and never beyond the transaction). The flags are set when the memory is created
 * and never change while its uid lives: a memory made before them keeps dense pages until it is
 * re-encoded.
 *
 * FORMATS
 * 1: every memory has a kv record per sealed chunk. 2: a memory may be flagged
 * STORE_USER_KV_COMPUTED and have none. 3: token lists (chunks, the tail) are written packed
 * (store_codec.c), and a memory may have sparse landmark pages (SPARSE PAGES). store_open takes a
 * store of an older format and marks it 3, changing nothing else: every record of formats 1 and
 * 2 still reads as it is, and is rewritten packed only when it changes. A daemon that reads an
 * older format only refuses the store from then on, rather than failing on a record it cannot
 * read.
 *
 * TRANSACTIONS
 * A store_txn wraps one LMDB transaction with a sticky error (the first failure is kept, every
 * later operation is a no-op that returns it, and commit returns it): callers chain operations and
 * check once. One write transaction exists at a time (LMDB serialises them); write transactions may
 * nest (store_txn_begin with a parent) so that one request of a group commit can fail alone.
 * A read that finds nothing (HSAMEM_ENOUSER from store_user_get, HSAMEM_ENOTFOUND from the other
 * gets) is an answer, not a failure: the transaction stays usable. HSAMEM_EFULL in a nested
 * transaction is also kept by its parent, since the whole transaction must run again after
 * store_grow().
 *
 *   begin --> [ops...] --> commit --> done
 *                 \-----> abort ---> done        (commit after a failure aborts, returns it)
 *
 * Values read from a transaction (borrowed pointers: entry text, chunk tokens, K/V, landmarks)
 * point into LMDB's map and stay valid until the transaction ends or, for a write transaction,
 * until its next write. Copy out what must outlive it.
 *
 * MAP SIZE
 * The map starts at opts.map_size and doubles when a write fails with MDB_MAP_FULL, up to
 * opts.map_max: the write transaction fails with HSAMEM_EFULL, the caller aborts it, calls
 * store_grow() and runs the whole transaction again. store_grow() waits until no transaction of
 * this process is open (transactions hold a shared lock that store_grow takes exclusively). Stale
 * reader slots left by dead processes are cleared at open and whenever LMDB reports
 * MDB_READERS_FULL.
 *
 * ERASURE
 * LMDB never clears what it frees, and writes pages from buffers it does not clear, so deleted
 * records outlive their delete in data.mdb: in free pages, in the unused bytes of other users'
 * pages, and in LMDB's buffers. A write transaction that removes records marks the store
 * (store_erase_mark, durable with the removal; store_user_delete does it); once it has
 * committed, store_erase overwrites with zeros every byte of data.mdb that no live record uses,
 * syncs, reopens the environment to drop LMDB's buffers, and removes the mark. A mark left by a
 * process that stopped first is taken up by store_erase with resume. store_erase.c has the why
 * and the cost.
 *
 * FORGETTING AND HISTORY
 * A forgotten entry keeps its entries record as a tombstone: its seq, role, timestamp and token
 * range stay (positions in the stream do not move), its text and tags go. Its tokens, in the
 * chunks and the tail, become padding (token 0, no text), in their slots; the chunks' n_real
 * stays (slots of the stream, padding holes included). The daemon re-encodes the chunks that held
 * them (store_landmark_set rewrites a landmark in place) and takes them out of the term
 * statistics (store_terms_sub), and marks the store for erasure. The links database says which
 * entries were forgotten, and for an update which entry a new one replaces: numbers only.
 *
 * ROOM
 * A write finds no room in two ways, and fails its whole transaction (nothing is written): the
 * map is at opts.map_max (HSAMEM_EFULL, from store_grow), or the file system refuses to extend
 * the file: -ENOSPC (disk full), -EDQUOT (quota), -EFBIG (the process's file size limit). LMDB
 * reports a write cut short as EIO: a commit that fails so at the file size limit, or on a file
 * system with less than 1 MiB left, returns -EFBIG or -ENOSPC rather than HSAMEM_ESTORE.
 * store_full() tells these codes apart from the others; store_full_message() says which it was.
 * Deleting records frees their pages inside the file, which never shrinks, for later writes to
 * reuse. LMDB reuses a page only once no reader can still see it: from the second write
 * transaction after the one that freed it (and not while a reader begun before that one is
 * open). A write that fails for want of room commits nothing, so it moves nothing on:
 * store_recycle() commits a write of a page or two, after which the pages freed before it are
 * reusable by the next write. A delete needs room too: LMDB writes the list of the pages a
 * transaction frees (8 bytes a page) into pages an earlier commit freed, so a large user may not
 * be deletable in one transaction of a full store; store_user_delete_some() deletes it in steps,
 * with store_recycle() between them (the daemon's ops_delete.c).
 */
#ifndef HSAMEM_STORE_H
#define HSAMEM_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem_defs.h"
#include "spec.h"

#define STORE_FORMAT_VERSION 3
#define STORE_FORMAT_OLDEST  1 /* the oldest format store_open takes (FORMATS above) */

struct store;

struct store_opts {
	uint64_t map_size;    /* initial map size in bytes (0: 1 GiB) */
	uint64_t map_max;     /* largest map size (0: 1 TiB) */
	unsigned max_readers; /* concurrent read transactions (0: 126) */
	bool no_sync;         /* for benchmarks of the store alone: commits are not synced */
};

enum store_user_flags {
	STORE_USER_IMPORTING = 1u << 0,   /* an import is filling it; invisible to queries */
	STORE_USER_LEXICAL = 1u << 1,     /* keeps a lexical landmark per sealed chunk (LEXICAL) */
	STORE_USER_KV_COMPUTED = 1u << 2, /* keeps no K|V: computed from tokens (COMPUTED K/V) */
	STORE_USER_LMK_SPARSE = 1u << 3,  /* its landmark pages are sparse (SPARSE PAGES) */
	STORE_USER_LEXLM_SPARSE = 1u
	                          << 4, /* its lexical landmark pages are sparse (SPARSE PAGES) */
};

/* The memory header of one user (the users database). */
struct store_user {
	uint64_t uid;
	char name[HSAMEM_NAME_MAX + 1];
	struct hsa_spec spec;
	uint64_t n_entries;    /* entries appended; the next one gets seq n_entries */
	uint64_t n_tokens;     /* tokens in the stream: n_chunks * S + the tail's */
	uint64_t n_chunks;     /* sealed chunks */
	uint64_t n_padded;     /* of them, chunks sealed short by a flush (padded) */
	int64_t created_ms;    /* unix time of creation, ms */
	int64_t updated_ms;    /* unix time of the last append, ms */
	uint32_t lmk_per_page; /* landmarks per landmarks record, fixed at creation */
	uint32_t flags;        /* store_user_flags */
};

/* Where a token's text lives: bytes [off, off + len) of entry `entry`'s text (len 0: no text). */
struct store_tokref {
	uint64_t entry;
	uint32_t off;
	uint32_t len;
};

struct store_entry {
	uint64_t seq;
	uint32_t role;        /* hsamem role code */
	int64_t timestamp_ms; /* the client's timestamp */
	uint64_t first_token; /* position of its first token in the stream */
	uint32_t n_tokens;
	const char *text; /* not NUL-terminated; borrowed on get */
	uint32_t text_len;
	const char *tags; /* tags, each followed by a NUL; borrowed on get */
	uint32_t tags_len;
	/* scope and metadata: "key=value" strings, each followed by a NUL; borrowed on get
	 * (store_filter.h) */
	const char *scope;
	uint32_t scope_len;
	const char *meta;
	uint32_t meta_len;
};

/* A sealed chunk: S token slots, of which n_real are real and the rest padding (flushed chunk). */
struct store_chunk {
	uint32_t n_tokens;               /* S */
	uint32_t n_real;                 /* <= S */
	const uint32_t *tokens;          /* [n_tokens], borrowed on get; padding slots are 0 */
	const struct store_tokref *refs; /* [n_tokens], borrowed on get */
};

/* The totals of a memory's term statistics (TERMS above). */
struct store_terms {
	uint64_t chunks; /* chunks counted */
	uint64_t tokens; /* their real tokens */
};

/* What became of an entry (FORGETTING above): a missing record reads as flags 0, none, none. */
#define STORE_NO_SEQ         UINT64_MAX
#define STORE_LINK_FORGOTTEN 1u
struct store_link {
	uint32_t flags;       /* STORE_LINK_FORGOTTEN */
	uint64_t replaces;    /* the entry this one replaced (an update), or STORE_NO_SEQ */
	uint64_t replaced_by; /* the entry that replaced this one, or STORE_NO_SEQ */
};

/* The unsealed tail: fewer than S tokens. */
struct store_tail {
	uint32_t n;
	const uint32_t *tokens;          /* [n] */
	const struct store_tokref *refs; /* [n] */
};

struct store_info {
	uint64_t map_size; /* current map size */
	uint64_t map_used; /* bytes of the map in use */
	unsigned readers;  /* reader slots in use */
	unsigned max_readers;
	uint32_t format;
};

struct store_txn {
	struct store *st;
	void *txn; /* MDB_txn */
	struct store_txn *parent;
	int ret; /* sticky error */
	bool write;
	void *scratch; /* copies handed out by gets (aligned or decoded), freed when it ends */
};

/*
 * Opens (creating if need be) the store in directory dir, which must exist. Checks the format
 * version: HSAMEM_EFORMAT for a store of another format. Clears stale reader slots.
 */
int store_open(const char *dir, const struct store_opts *opts, struct store **out);
void store_close(struct store *st);

/* Doubles the map size (up to opts.map_max: HSAMEM_EFULL past it). See MAP SIZE above. */
int store_grow(struct store *st);

int store_info(struct store *st, struct store_info *out);

/* Whether ret says that the store has no room (see ROOM above). */
static inline bool
store_full(int ret)
{
	return ret == HSAMEM_EFULL || ret == -ENOSPC || ret == -EDQUOT || ret == -EFBIG;
}

/* Writes into buf (len bytes) a sentence for a client saying what is full (ret, a store_full()
 * code: the map at map-max, the disk, a quota or the file size limit), with the figures, and what
 * to do about it. */
void store_full_message(struct store *st, int ret, char *buf, size_t len);

/* Commits a write of a page or two so that the pages freed by the last commit become reusable by
 * the next write transaction (see ROOM above). Returns 0, or the commit's error (a store_full()
 * code when even that finds no room). */
int store_recycle(struct store *st);

/* Clears reader slots of dead processes; *cleared (may be NULL) gets their count. */
int store_reader_check(struct store *st, int *cleared);

/*
 * Begins a transaction into *txn (caller-owned storage). write: a write transaction; parent: NULL,
 * or an open write transaction to nest in (then write must be true).
 */
int store_txn_begin(struct store *st, struct store_txn *txn, bool write, struct store_txn *parent);
/* Commits (synced unless opts.no_sync); returns the sticky error, aborting instead if there
 * is one. */
int store_txn_commit(struct store_txn *txn);
/* Aborts; a no-op on a transaction that already ended. */
void store_txn_abort(struct store_txn *txn);

/* Users. get: HSAMEM_ENOUSER when absent. create: assigns u->uid and u->lmk_per_page;
 * HSAMEM_EEXIST when the name exists. update: rewrites the header (counters, flags). */
int store_user_get(struct store_txn *txn, const char *name, struct store_user *out);
int store_user_create(struct store_txn *txn, struct store_user *u);
int store_user_update(struct store_txn *txn, const struct store_user *u);
/* Moves memory u (the same uid as stored) to name, which must be free (HSAMEM_EEXIST), with u's
 * creation and update times and flags: its records stay where they are, under its uid. */
int store_user_rename(struct store_txn *txn, const struct store_user *u, const char *name);
/* Removes the user and every record with its uid, in every database, and marks the store for
 * erasure (store_erase_mark). */
int store_user_delete(struct store_txn *txn, const struct store_user *u);
/* Deletes at most max records of user uid's own databases (entries, chunks, K|V, landmarks, tail,
 * terms),
 * K|V first, and not the user record (store_user_delete removes it and what is left). *left
 * gets whether more may remain. For deleting a large memory in steps, each its own transaction,
 * when the store has no room to delete it in one (see ROOM above). */
int store_user_delete_some(struct store_txn *txn, uint64_t uid, uint64_t max, bool *left);
/* Calls cb for every user in name order; a non-zero return from cb stops and is returned. */
int store_user_foreach(struct store_txn *txn, int (*cb)(const struct store_user *u, void *arg),
                       void *arg);

/* Entries. get: HSAMEM_ENOTFOUND when seq does not exist. */
int store_entry_put(struct store_txn *txn, uint64_t uid, const struct store_entry *e);
int store_entry_get(struct store_txn *txn, uint64_t uid, uint64_t seq, struct store_entry *out);

/* The bytes of text that every user's entries hold (forgotten ones hold none): for the ratio of
 * the store's size to its text. Walks every entry record, about a millisecond per 10^5. */
int store_text_bytes(struct store_txn *txn, uint64_t *bytes);

/* Chunks (tokens and text references). get: HSAMEM_ENOTFOUND when chunk j does not exist. */
int store_chunk_put(struct store_txn *txn, uint64_t uid, uint64_t j, const struct store_chunk *c);
int store_chunk_get(struct store_txn *txn, uint64_t uid, uint64_t j, struct store_chunk *out);
/* Chunk j's first min(n_real, cap) tokens into tokens, their count into *n_real: its text without
 * the references, copied, for reading many chunks at once (the exact pass). HSAMEM_ENOTFOUND when
 * chunk j does not exist. */
int store_chunk_tokens(struct store_txn *txn, uint64_t uid, uint64_t j, uint32_t *tokens,
                       uint32_t cap, uint32_t *n_real);

/* K|V blobs. get borrows: *kv points into the map. */
int store_kv_put(struct store_txn *txn, uint64_t uid, uint64_t j, const void *kv, size_t len);
int store_kv_get(struct store_txn *txn, uint64_t uid, uint64_t j, const void **kv, size_t *len);
/*
 * Copies the K|V blob of chunk j into dst, which holds len bytes: HSAMEM_EFORMAT when the blob
 * has another size, HSAMEM_ENOTFOUND when there is none. Unlike the other calls it may run on many
 * threads at once, beside txn's own use: it reads through a read transaction of the calling
 * thread's own (the newest committed snapshot, which holds every chunk txn sees unless its user
 * was deleted since), kept until store_close. txn must stay open meanwhile: it keeps the map from
 * growing under the copy.
 */
int store_kv_copy(struct store_txn *txn, uint64_t uid, uint64_t j, void *dst, size_t len);

/*
 * Landmarks. put writes the landmark of chunk j (row_bytes = spec_landmark_bytes) into its page;
 * chunks are put in order (j == the number of landmarks stored so far). append puts the n
 * landmarks of chunks first .. first + n - 1 (rows, one after another) as n puts would, writing
 * each page they touch once: a page is rewritten whole at each write. get borrows the rows of
 * chunks first .. first + *count - 1, contiguous within one page (*count >= 1), for a user with
 * n_chunks sealed chunks; HSAMEM_ENOTFOUND when first >= n_chunks.
 */
int store_landmark_put(struct store_txn *txn, const struct store_user *u, uint64_t j,
                       const void *row);
int store_landmarks_append(struct store_txn *txn, const struct store_user *u, uint64_t first,
                           const void *rows, uint64_t n);
int store_landmarks_get(struct store_txn *txn, const struct store_user *u, uint64_t first,
                        const void **rows, uint64_t *count);
/*
 * The sparse view of the page of chunk first (SPARSE PAGES), borrowed from the map: rows first ..
 * first + count - 1 are rows row0 .. row0 + count - 1 of the page; element e (< dim) of a row is
 * the value of its entry among entries start(e) .. start(e + 1) - 1, zero when it has none. starts
 * holds dim + 1 little-endian starts of start_bytes bytes; an entry is 3 bytes: the row in the
 * page (u8), then the value (the element's 2 bytes as put). The entries of an element are in
 * increasing row order, and may name rows past row0 + count - 1 (not the memory's yet, or before
 * first): skip them. The starts are not checked: a reader takes an element's entries up to the
 * lesser of start(e + 1) and n_entries. HSAMEM_EINVAL for a memory whose pages are dense.
 */
struct store_sparse {
	uint64_t count;
	uint32_t row0, dim, start_bytes, n_entries;
	const uint8_t *starts, *entries;
};
int store_landmarks_sparse(struct store_txn *txn, const struct store_user *u, uint64_t first,
                           struct store_sparse *sp);
/* Rewrites the landmark of stored chunk j (a forget's re-encoding). HSAMEM_EINVAL when chunk j
 * has no landmark yet. */
int store_landmark_set(struct store_txn *txn, const struct store_user *u, uint64_t j,
                       const void *row);

/* Links (FORGETTING above). get gives the record, or the empty one when there is none. */
int store_link_get(struct store_txn *txn, uint64_t uid, uint64_t seq, struct store_link *out);
int store_link_put(struct store_txn *txn, uint64_t uid, uint64_t seq, const struct store_link *l);

/*
 * Lexical landmarks (LEXICAL above): as the landmarks, rows of row_bytes (f16, aligned to 2).
 */
int store_lexlm_put(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row,
                    size_t row_bytes);
int store_lexlm_append(struct store_txn *txn, const struct store_user *u, uint64_t first,
                       const void *rows, uint64_t n, size_t row_bytes);
int store_lexlm_get(struct store_txn *txn, const struct store_user *u, uint64_t first,
                    size_t row_bytes, const void **rows, uint64_t *count);
int store_lexlm_sparse(struct store_txn *txn, const struct store_user *u, uint64_t first,
                       size_t row_bytes, struct store_sparse *sp);
/* Rewrites lexical landmark j, which must exist (a forget's re-encoding). */
int store_lexlm_set(struct store_txn *txn, const struct store_user *u, uint64_t j, const void *row,
                    size_t row_bytes);

/* The tail. get on a user with no tail record gives n = 0. put with n = 0 deletes the record. */
int store_tail_get(struct store_txn *txn, uint64_t uid, struct store_tail *out);
int store_tail_put(struct store_txn *txn, uint64_t uid, const struct store_tail *t);

/*
 * Term statistics (TERMS above). add counts one chunk of n real tokens (at most 1024; token 0,
 * padding, is not a term): one more chunk for each distinct id, and the totals. get gives the
 * totals (zeros when nothing was counted); df writes the count of each of ids[0..n) to df
 * (0 for an id never counted).
 */
int store_terms_add(struct store_txn *txn, uint64_t uid, const uint32_t *tokens, size_t n);
/* Counts n_chunks chunks as as many calls of add would, with one update of each distinct id:
 * chunk c's n[c] tokens follow chunk c - 1's in tokens. */
int store_terms_add_chunks(struct store_txn *txn, uint64_t uid, const uint32_t *tokens,
                           const uint32_t *n, size_t n_chunks);
int store_terms_get(struct store_txn *txn, uint64_t uid, struct store_terms *out);
/* Takes out one chunk that add counted with these tokens (a forget re-counts it without the
 * forgotten ones); an id whose count falls to 0 loses its record. */
int store_terms_sub(struct store_txn *txn, uint64_t uid, const uint32_t *tokens, size_t n);
int store_terms_df(struct store_txn *txn, uint64_t uid, const uint32_t *ids, size_t n,
                   uint32_t *df);

/*
 * Erasure (ERASURE above). store_erase_mark records in write transaction txn, durably with it,
 * that records were removed; store_erase_want says that a write transaction was aborted after
 * writing (its pages stayed in LMDB's buffers), which needs a scrub but no mark.
 */
int store_erase_mark(struct store_txn *txn);
void store_erase_want(struct store *st);

/*
 * Runs the erasure that a mark or store_erase_want asked for since the last one (with resume,
 * also one that a mark left by an earlier process asks for), or does nothing (0). Waits until
 * no transaction of this process is open and holds new ones back meanwhile; call it with none
 * open, from one thread at a time, after the removing transaction has committed. 0 once done;
 * HSAMEM_EBUSY when a reader of another process still reads a snapshot older than the removal
 * (what it may read is left, and the next call after it has moved on erases it); another error
 * when it failed (logged; the mark stays, for the next call or start). HSAMEM_ESTORE when the
 * store could not be opened again: it is unusable until the daemon restarts.
 */
int store_erase(struct store *st, bool resume);

/*
 * BACKUP AND COMPACTION (store_copy.c has the how)
 * Both write LMDB's copy of one snapshot: compaction the compacting copy (the pages in use,
 * without the free ones), a backup the same when many pages are free, else the plain copy.
 * The copy's read transaction does not stop other transactions; while it runs, growth of the map
 * waits for it and an erasure is put off until it ends (it then runs).
 */
struct store_copy_info {
	uint64_t bytes;    /* the backup's data.mdb; the store's data.mdb after a compaction */
	uint64_t before;   /* compaction: data.mdb before */
	uint64_t ms;       /* the whole */
	uint64_t pause_ms; /* compaction: while every transaction waited */
};

/*
 * Writes a copy of the store into directory dir (an absolute path), which it creates, or which
 * must be empty, as dir/data.mdb: written under another name, synced, renamed, the directory
 * synced, at most rate bytes a second (0: as fast as it can). A store opened on dir is the store
 * as of the copy's snapshot. Errors: HSAMEM_EINVAL (a relative path), HSAMEM_EEXIST (dir is not
 * an empty directory), -errno (dir cannot be made or written), or the store's; nothing is left
 * in dir then.
 */
int store_backup(struct store *st, const char *dir, uint64_t rate, struct store_copy_info *out);

/*
 * Gives back the space of freed pages: copies the store compacted beside data.mdb while it
 * serves, then, with every transaction of this process held, copies again if anything was
 * committed meanwhile, and renames the copy over data.mdb and reopens the environment. A crash
 * leaves the old file or the new one. HSAMEM_EBUSY while a backup runs or another process has
 * the store open.
 */
int store_compact(struct store *st, struct store_copy_info *out);

/* For tests only: *n gets the number of records of user uid, its users record included, counted
 * by walking every database with a raw cursor. */
int store_count_records(struct store *st, uint64_t uid, uint64_t *n);

#endif
