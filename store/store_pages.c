/*
 * store_pages.c: the scrub of data.mdb's pages for erasure (store_erase.c says why and when):
 * it reads LMDB's pages with pread() and overwrites with zeros, by pwrite() at pgno * page size,
 * every byte that no live record uses. It must never change a byte that LMDB reads.
 *
 * It reads the meta page of the snapshot, lists the free pages (the free database, dbi 0, read
 * through a cursor, as mdb_stat does), and walks every B-tree from its root: the free
 * database's, the main one's, and each named database's, named by the main one. It reads the
 * branch and leaf pages and the overflow runs of one page, and checks what it reads against
 * LMDB's own accounting: the meta page against mdb_stat, each tree's branch and leaf pages and
 * depth against its record (overflow pages: at most as many), every page's own number and type,
 * its bounds, its nodes filling its node area exactly, no page reached twice or both free and
 * live. Only when every check has passed does it write (scrub_run):
 *   - live branch and leaf pages: the unused middle (between mp_lower and mp_upper) and the
 *     padding byte after each node of odd size;
 *   - overflow runs of one page: every byte past the end of the value (walk_overflow says why
 *     longer runs need nothing);
 *   - free pages, unless a reader may still use them: a page whose freeing transaction is not
 *     older than the oldest reader of another process (LMDB's own rule before reusing one);
 *   - the file past the last page in use;
 * skipping bytes already zero; and syncs. A page neither live nor free is never written. A
 * failed check writes nothing and turns erasure off until restart: a store that this code
 * misreads must not be written.
 *
 * It reads LMDB 0.9's page layout (mdb.c, data version 1), mirrored below, for LMDB exports no
 * page-level interface; the checks above are what make that safe. Pages are read, not mapped: in
 * a virtual machine a first touch of a mapped page costs several times a read of it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"
#include "store_int.h"

#if MDB_VERSION_MAJOR != 0 || MDB_VERSION_MINOR != 9
#error "store_pages.c reads the page layout of LMDB 0.9"
#endif

/* ---- LMDB 0.9's page layout (mdb.c) ---- */

typedef size_t lm_pgno; /* pgno_t and txnid_t: MDB_ID */

struct lm_page { /* MDB_page without mp_ptrs */
	union {
		lm_pgno pgno;
		void *next;
	} p;
	uint16_t pad;
	uint16_t flags;
	union {
		struct {
			uint16_t lower, upper;
		} pb;
		uint32_t pages;
	} u;
};

struct lm_node { /* MDB_node without mn_data */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	uint16_t lo, hi;
#else
	uint16_t hi, lo;
#endif
	uint16_t flags;
	uint16_t ksize;
};

struct lm_db { /* MDB_db */
	uint32_t pad;
	uint16_t flags;
	uint16_t depth;
	lm_pgno branch, leaf, overflow;
	size_t entries;
	lm_pgno root;
};

struct lm_meta { /* MDB_meta */
	uint32_t magic;
	uint32_t version;
	void *address;
	size_t mapsize;
	struct lm_db dbs[2]; /* the free database, the main one */
	lm_pgno last_pg;
	lm_pgno txnid;
};

#define LM_HDR        sizeof(struct lm_page) /* PAGEHDRSZ */
#define LM_NODESIZE   sizeof(struct lm_node) /* NODESIZE */
#define LM_P_BRANCH   0x01
#define LM_P_LEAF     0x02
#define LM_P_OVERFLOW 0x04
#define LM_P_META     0x08
#define LM_P_LEAF2    0x20
#define LM_F_BIGDATA  0x01
#define LM_F_SUBDATA  0x02
#define LM_F_DUPDATA  0x04
#define LM_MAGIC      0xBEEFC0DEu
#define LM_VERSION    1
#define LM_INVALID    (~(lm_pgno)0)
#define LM_METAS      2

_Static_assert(LM_NODESIZE == 8, "MDB_node's header is 8 bytes");
_Static_assert(sizeof(lm_pgno) != 8 || LM_HDR == 16, "MDB_page's header is 16 bytes");

#define EVEN(n) (((n) + 1u) & ~(size_t)1)

/* ---- a scrub ---- */

#define MAX_NEST 64 /* pages being walked at once: the depths of a tree and of the trees in it */

struct fix_ov {
	lm_pgno pgno; /* a one-page overflow run */
	size_t end;   /* where its value ends, from the page's start */
};

struct scrub {
	struct store *st;
	int fd;
	size_t psize;
	lm_pgno last;       /* the last page in use */
	lm_pgno file_pages; /* pages the file holds: fewer when the last ones are free */
	off_t file_size;
	uint8_t *live, *free, *pinned; /* bitmaps over pages 0 .. last */
	uint64_t n_live, n_free;
	uint8_t *page[MAX_NEST]; /* the pages being walked, one per nesting level */
	uint8_t *one;            /* a page read on its own */
	lm_pgno *fix;            /* live branch and leaf pages with bytes to clear */
	size_t n_fix, cap_fix;
	struct fix_ov *ov; /* one-page overflow runs with bytes to clear past their value */
	size_t n_ov, cap_ov;
	const char *tree; /* the tree being walked, for the log */
	/* what it wrote, and what it had to leave (struct store_scrub) */
	uint64_t cleaned, zeroed, held, bytes;
};

/* A tree being walked: its page counts, and the nesting level of its root. */
struct walk {
	struct lm_db count;
	unsigned base;
};

static bool
bit(const uint8_t *bm, lm_pgno p)
{
	return bm[p / 8] >> (p % 8) & 1;
}

static void
bit_set(uint8_t *bm, lm_pgno p)
{
	bm[p / 8] |= (uint8_t)(1u << (p % 8));
}

static const uint8_t zeros[65536];

static bool
all_zero(const uint8_t *p, size_t len)
{
	for (size_t n; len > 0; p += n, len -= n) {
		n = len < sizeof(zeros) ? len : sizeof(zeros);
		if (memcmp(p, zeros, n) != 0) /* glibc's compares many bytes at a time */
			return false;
	}
	return true;
}

/* Logs why the pages cannot be read as LMDB 0.9's; erasure is off until restart. */
static int
bad_page(struct scrub *s, lm_pgno p, const char *why)
{
	log_err("store: erasure: page %zu of the %s database %s; nothing is erased, and erasure is "
	        "off until restart",
	        (size_t)p, s->tree, why);
	s->st->erase_off = true;
	return HSAMEM_EINTERNAL;
}

/* Reads len bytes at off (pages are read, not mapped: a first touch of a mapped page costs
 * more than a read of it). */
static int
read_at(struct scrub *s, void *buf, size_t len, off_t off)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = pread(s->fd, (uint8_t *)buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;
			log_err("store: erasure: cannot read data.mdb: %s",
			        n < 0 ? strerror(err) : "short file");
			return -err;
		}
		got += (size_t)n;
	}
	return 0;
}

static int
read_page(struct scrub *s, lm_pgno p, uint8_t *buf)
{
	if (p >= s->file_pages)
		return bad_page(s, p, "is past the end of the file");
	return read_at(s, buf, s->psize, (off_t)(p * s->psize));
}

static int
grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 256;
	void *a = realloc(*arr, c * size);
	if (a == NULL)
		return -ENOMEM;
	*arr = a;
	*cap = c;
	return 0;
}

/* Marks pages p .. p + n - 1 live: each within the file, reached once, not free. */
static int
mark_live(struct scrub *s, lm_pgno p, lm_pgno n)
{
	if (p < LM_METAS || p > s->last || n > s->last - p + 1 || p + n > s->file_pages)
		return bad_page(s, p, "is out of range");
	for (lm_pgno i = p; i < p + n; i++) {
		if (bit(s->live, i))
			return bad_page(s, i, "is reached twice");
		if (bit(s->free, i))
			return bad_page(s, i, "is both free and in use");
		bit_set(s->live, i);
	}
	s->n_live += n;
	return 0;
}

/*
 * The overflow run of a value of dsize bytes: its first OVPAGES pages are live. Only a run of one
 * page is read: its buffer may be one that LMDB reused, so the rest of the page after the value
 * may hold old bytes. A longer run was a new buffer whose last page LMDB zeroed before the value
 * was copied in (mdb_page_malloc), so nothing follows the value, except where the record was
 * rewritten in place by a shorter value in the same transaction: then the same record's earlier
 * value, and pages of the run past what the value needs. Both belong to the same memory and are
 * freed, and erased, with it; the pages are neither live nor free here, so they are left alone.
 */
static int
walk_overflow(struct scrub *s, lm_pgno p, size_t dsize, struct lm_db *count)
{
	lm_pgno n = (LM_HDR - 1 + dsize) / s->psize + 1; /* OVPAGES */
	int ret = mark_live(s, p, n);
	if (ret != 0)
		return ret;
	count->overflow += n;
	if (n > 1)
		return 0;
	if ((ret = read_page(s, p, s->one)) != 0)
		return ret;
	const struct lm_page *h = (const struct lm_page *)s->one;
	if (h->p.pgno != p || (h->flags & ~0xc010u) != LM_P_OVERFLOW || h->u.pages < 1)
		return bad_page(s, p, "is not the overflow run of its value");
	size_t end = LM_HDR + dsize;
	if (all_zero(s->one + end, s->psize - end))
		return 0;
	if ((ret = grow((void **)&s->ov, &s->cap_ov, s->n_ov, sizeof(*s->ov))) != 0)
		return ret;
	s->ov[s->n_ov++] = (struct fix_ov){p, end};
	return 0;
}

static int walk_tree(struct scrub *s, const struct lm_db *db, const char *name, unsigned nest);

/* Bytes of node n, without the padding byte that follows a node of odd size (mdb_node_add). */
static size_t
node_size(const struct lm_node *n, bool leaf)
{
	size_t sz = LM_NODESIZE + n->ksize;
	if (leaf)
		sz += n->flags & LM_F_BIGDATA ? sizeof(lm_pgno) : (n->lo | (size_t)n->hi << 16);
	return sz;
}

static const struct lm_node *
node_at(const uint8_t *pg, unsigned i, uint16_t *off)
{
	memcpy(off, pg + LM_HDR + 2 * i, 2);
	return (const struct lm_node *)(pg + *off);
}

/* Whether the page has bytes to clear: its unused middle, or a node's padding byte. */
static bool
page_dirty(const uint8_t *pg, unsigned lower, unsigned upper, unsigned nkeys, bool leaf)
{
	if (!all_zero(pg + lower, upper - lower))
		return true;
	for (unsigned i = 0; i < nkeys; i++) {
		uint16_t off;
		size_t sz = node_size(node_at(pg, i, &off), leaf);
		if (sz % 2 && pg[off + sz] != 0)
			return true;
	}
	return false;
}

/* Checks the page's layout: its nodes fill [upper, psize) exactly, one after another. */
static int
check_nodes(struct scrub *s, lm_pgno p, const uint8_t *pg, unsigned upper, unsigned nkeys,
            bool leaf)
{
	size_t sum = 0;
	for (unsigned i = 0; i < nkeys; i++) {
		uint16_t off;
		const struct lm_node *n = node_at(pg, i, &off);
		if (off < upper || off > s->psize - LM_NODESIZE || off % 2)
			return bad_page(s, p, "has a node outside its node area");
		size_t sz = node_size(n, leaf);
		if (EVEN(sz) > s->psize - off)
			return bad_page(s, p, "has a node past its end");
		sum += EVEN(sz);
	}
	if (sum != s->psize - upper)
		return bad_page(s, p, "has nodes that do not fill its node area");
	return 0;
}

static int
walk_leaf_node(struct scrub *s, lm_pgno p, const struct lm_node *n, struct walk *w, unsigned nest)
{
	const uint8_t *data = (const uint8_t *)n + LM_NODESIZE + n->ksize;
	size_t dsize = n->lo | (size_t)n->hi << 16;
	if (n->flags & LM_F_DUPDATA)
		return bad_page(s, p, "holds sorted duplicates, which the store does not use");
	if (n->flags & LM_F_BIGDATA) {
		lm_pgno ov;
		memcpy(&ov, data, sizeof(ov));
		return walk_overflow(s, ov, dsize, &w->count);
	}
	if (n->flags & LM_F_SUBDATA) {
		struct lm_db db;
		char name[64];
		if (dsize != sizeof(db))
			return bad_page(s, p, "names a database with a record of another size");
		memcpy(&db, data, sizeof(db));
		snprintf(name, sizeof(name), "%.*s", n->ksize < 63 ? (int)n->ksize : 63,
		         (const char *)n + LM_NODESIZE);
		const char *tree = s->tree;
		int ret = walk_tree(s, &db, name, nest + 1);
		s->tree = tree;
		return ret;
	}
	return 0;
}

/* Walks page p and what it leads to; nest: the nesting level, whose page buffer it uses. */
static int
walk_page(struct scrub *s, lm_pgno p, struct walk *w, unsigned nest)
{
	int ret;
	if (nest >= MAX_NEST)
		return bad_page(s, p, "is deeper than any tree");
	if (s->page[nest] == NULL && (s->page[nest] = malloc(s->psize)) == NULL)
		return -ENOMEM;
	uint8_t *pg = s->page[nest];
	if ((ret = mark_live(s, p, 1)) != 0 || (ret = read_page(s, p, pg)) != 0)
		return ret;
	const struct lm_page *h = (const struct lm_page *)pg;
	unsigned type =
	        h->flags & (LM_P_BRANCH | LM_P_LEAF | LM_P_OVERFLOW | LM_P_META | LM_P_LEAF2);
	unsigned lower = h->u.pb.lower, upper = h->u.pb.upper;
	if (h->p.pgno != p || (type != LM_P_BRANCH && type != LM_P_LEAF))
		return bad_page(s, p, "is not the branch or leaf page its parent names");
	if (lower < LM_HDR || lower > upper || upper > s->psize || (lower - LM_HDR) % 2)
		return bad_page(s, p, "has bounds out of order");
	bool leaf = type == LM_P_LEAF;
	unsigned nkeys = (lower - (unsigned)LM_HDR) / 2;
	if ((ret = check_nodes(s, p, pg, upper, nkeys, leaf)) != 0)
		return ret;
	if (leaf)
		w->count.leaf++;
	else
		w->count.branch++;
	if (nest - w->base + 1 > w->count.depth)
		w->count.depth = (uint16_t)(nest - w->base + 1);
	if (page_dirty(pg, lower, upper, nkeys, leaf)) {
		if ((ret = grow((void **)&s->fix, &s->cap_fix, s->n_fix, sizeof(*s->fix))) != 0)
			return ret;
		s->fix[s->n_fix++] = p;
	}
	for (unsigned i = 0; i < nkeys && ret == 0; i++) {
		uint16_t off;
		const struct lm_node *n = node_at(pg, i, &off);
		if (leaf) {
			ret = walk_leaf_node(s, p, n, w, nest);
		} else {
			lm_pgno child = n->lo | (lm_pgno)n->hi << 16;
			if (sizeof(lm_pgno) > 4)
				child |= (lm_pgno)n->flags << 16 << 16;
			ret = walk_page(s, child, w, nest + 1);
		}
	}
	return ret;
}

/* Walks the tree of db, and checks its page counts against LMDB's. */
static int
walk_tree(struct scrub *s, const struct lm_db *db, const char *name, unsigned nest)
{
	struct walk w = {.base = nest};
	s->tree = name;
	if (db->flags & MDB_DUPSORT)
		return bad_page(s, db->root, "is the root of a database of sorted duplicates");
	if (db->root == LM_INVALID)
		return db->branch || db->leaf || db->overflow ? bad_page(s, 0, "has no root") : 0;
	int ret = walk_page(s, db->root, &w, nest);
	if (ret != 0)
		return ret;
	s->tree = name;
	/* LMDB counts a run's pages, which may be more than its value needs (walk_overflow) */
	if (w.count.branch != db->branch || w.count.leaf != db->leaf ||
	    w.count.overflow > db->overflow || w.count.depth != db->depth) {
		log_err("store: erasure: the %s database has %zu branch, %zu leaf and %zu overflow "
		        "pages of depth %u, but LMDB counts %zu, %zu and %zu of depth %u",
		        name, (size_t)w.count.branch, (size_t)w.count.leaf,
		        (size_t)w.count.overflow, w.count.depth, (size_t)db->branch,
		        (size_t)db->leaf, (size_t)db->overflow, db->depth);
		return bad_page(s, db->root, "roots a tree that LMDB counts otherwise");
	}
	return 0;
}

/* ---- what is free, what is current ---- */

/* Lists the free pages: those freed by a transaction that a reader may still need are pinned. */
static int
collect_free(struct scrub *s, MDB_txn *r, uint64_t oldest)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int ret = 0, rc = mdb_cursor_open(r, 0, &cur);
	if (rc != 0)
		return store_lmdb_error("erase: read the free list", rc);
	s->tree = "free";
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		lm_pgno txnid, n, p;
		if (k.mv_size != sizeof(txnid) || v.mv_size < sizeof(n)) {
			ret = bad_page(s, 0, "holds a record of another size");
			break;
		}
		memcpy(&txnid, k.mv_data, sizeof(txnid));
		memcpy(&n, v.mv_data, sizeof(n));
		if (n > v.mv_size / sizeof(p) - 1) {
			ret = bad_page(s, 0, "holds a page list longer than its record");
			break;
		}
		for (lm_pgno i = 1; i <= n && ret == 0; i++) {
			memcpy(&p, (const uint8_t *)v.mv_data + i * sizeof(p), sizeof(p));
			if (p < LM_METAS || p > s->last || bit(s->free, p)) {
				ret = bad_page(s, p, "is listed free twice or out of range");
				break;
			}
			bit_set(s->free, p);
			if (txnid >= oldest)
				bit_set(s->pinned, p);
			s->n_free++;
		}
	}
	mdb_cursor_close(cur);
	if (ret == 0 && rc != MDB_NOTFOUND)
		ret = store_lmdb_error("erase: read the free list", rc);
	return ret;
}

/* The meta page of r's snapshot, checked against LMDB's own figures. */
static int
read_meta(struct scrub *s, MDB_txn *r, struct lm_meta *m)
{
	MDB_stat fs, ms;
	int ret, rc;
	s->tree = "meta";
	for (lm_pgno i = 0;; i++) {
		if (i == LM_METAS)
			return bad_page(s, 0, "is no meta page of the current transaction");
		if ((ret = read_page(s, i, s->one)) != 0)
			return ret;
		memcpy(m, s->one + LM_HDR, sizeof(*m));
		if (m->magic == LM_MAGIC && m->version == LM_VERSION && m->txnid == mdb_txn_id(r))
			break;
	}
	if ((rc = mdb_stat(r, 0, &fs)) != 0 || (rc = mdb_stat(r, 1, &ms)) != 0)
		return store_lmdb_error("erase: stat", rc);
	if (m->dbs[0].pad != s->psize || m->last_pg != s->last ||
	    m->dbs[0].branch != fs.ms_branch_pages || m->dbs[0].leaf != fs.ms_leaf_pages ||
	    m->dbs[0].overflow != fs.ms_overflow_pages || m->dbs[0].entries != fs.ms_entries ||
	    m->dbs[1].branch != ms.ms_branch_pages || m->dbs[1].leaf != ms.ms_leaf_pages ||
	    m->dbs[1].overflow != ms.ms_overflow_pages || m->dbs[1].entries != ms.ms_entries)
		return bad_page(s, 0, "does not match what LMDB reports");
	return 0;
}

/* ---- the writes ---- */

static int
write_at(struct scrub *s, const void *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(s->fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;
			log_err("store: erasure: cannot write data.mdb: %s", strerror(err));
			return -err;
		}
		s->bytes += (size_t)n;
		buf = (const uint8_t *)buf + (buf == zeros ? 0 : n);
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int
write_zeros(struct scrub *s, off_t off, size_t len)
{
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? len : sizeof(zeros);
		int ret = write_at(s, zeros, n, off);
		if (ret != 0)
			return ret;
		off += (off_t)n;
		len -= n;
	}
	return 0;
}

/* A live branch or leaf page with its unused middle and padding bytes cleared. */
static int
clean_page(struct scrub *s, lm_pgno p)
{
	uint8_t *buf = s->one;
	int ret = read_page(s, p, buf);
	if (ret != 0)
		return ret;
	const struct lm_page *h = (const struct lm_page *)buf;
	unsigned lower = h->u.pb.lower, upper = h->u.pb.upper, nkeys = (lower - LM_HDR) / 2;
	bool leaf = (h->flags & LM_P_LEAF) != 0;
	memset(buf + lower, 0, upper - lower);
	for (unsigned i = 0; i < nkeys; i++) {
		uint16_t off;
		size_t sz = node_size(node_at(buf, i, &off), leaf);
		if (sz % 2)
			buf[off + sz] = 0;
	}
	s->cleaned++;
	return write_at(s, buf, s->psize, (off_t)(p * s->psize));
}

/* Whether page p is free, and not held back by a reader. */
static bool
erasable(const struct scrub *s, lm_pgno p)
{
	return p <= s->last && p < s->file_pages && bit(s->free, p) && !bit(s->pinned, p);
}

/*
 * Zeroes the free pages that hold data, read and written by runs of consecutive ones (a deleted
 * memory's pages mostly are); counts the pages a reader holds back. A page that is neither live
 * nor free (walk_overflow) is left as it is.
 */
static int
zero_free(struct scrub *s)
{
	static uint8_t buf[sizeof(zeros)];
	lm_pgno per = sizeof(buf) / s->psize;
	int ret = 0;
	for (lm_pgno p = LM_METAS; p <= s->last && p < s->file_pages; p++)
		if (bit(s->free, p) && bit(s->pinned, p)) {
			if ((ret = read_page(s, p, s->one)) != 0)
				return ret;
			s->held += !all_zero(s->one, s->psize);
		}
	for (lm_pgno p = LM_METAS; p <= s->last && ret == 0;) {
		lm_pgno n = 0;
		while (n < per && erasable(s, p + n))
			n++;
		if (n == 0) {
			p++;
			continue;
		}
		if ((ret = read_at(s, buf, n * s->psize, (off_t)(p * s->psize))) != 0)
			break;
		for (lm_pgno i = 0, k; i < n && ret == 0; i = k) {
			for (k = i; k < n && !all_zero(buf + k * s->psize, s->psize); k++)
				s->zeroed++;
			if (k > i) /* pages i .. k - 1 hold data */
				ret = write_zeros(s, (off_t)((p + i) * s->psize),
				                  (k - i) * s->psize);
			else
				k++;
		}
		p += n;
	}
	return ret;
}

/* Zeroes what the file holds past the last page in use (pages of an aborted transaction). */
static int
zero_past_end(struct scrub *s)
{
	static uint8_t buf[65536];
	off_t off = (off_t)((s->last + 1) * s->psize);
	while (off < s->file_size) {
		size_t n = s->file_size - off < (off_t)sizeof(buf) ? (size_t)(s->file_size - off)
		                                                   : sizeof(buf);
		int ret = read_at(s, buf, n, off);
		if (ret == 0 && !all_zero(buf, n)) {
			ret = write_zeros(s, off, n);
			s->zeroed += (n + s->psize - 1) / s->psize;
		}
		if (ret != 0)
			return ret;
		off += (off_t)n;
	}
	return 0;
}

/* Reads every page it needs (the plan), and only then writes: a check that fails writes
 * nothing. */
static int
scrub_run(struct scrub *s, MDB_txn *r, uint64_t oldest)
{
	struct lm_meta m;
	int ret;
	if ((ret = read_meta(s, r, &m)) != 0 || (ret = collect_free(s, r, oldest)) != 0 ||
	    (ret = walk_tree(s, &m.dbs[0], "free", 0)) != 0 ||
	    (ret = walk_tree(s, &m.dbs[1], "main", 0)) != 0)
		return ret;
	for (size_t i = 0; i < s->n_fix && ret == 0; i++)
		ret = clean_page(s, s->fix[i]);
	for (size_t i = 0; i < s->n_ov && ret == 0; i++) {
		s->cleaned++;
		ret = write_zeros(s, (off_t)(s->ov[i].pgno * s->psize + s->ov[i].end),
		                  s->psize - s->ov[i].end);
	}
	if (ret == 0)
		ret = zero_free(s);
	if (ret == 0)
		ret = zero_past_end(s);
	if (ret == 0 && s->bytes > 0 && fdatasync(s->fd) != 0) {
		log_err("store: erasure: cannot sync data.mdb: %s", strerror(errno));
		ret = -errno;
	}
	return ret;
}

int
store_pages_scrub(struct store *st, MDB_txn *r, uint64_t oldest, struct store_scrub *out)
{
	struct scrub s = {.st = st, .tree = "meta"};
	MDB_envinfo info;
	MDB_stat es;
	struct stat sb;
	int ret, rc;
	if ((rc = mdb_env_info(st->env, &info)) != 0 || (rc = mdb_env_stat(st->env, &es)) != 0 ||
	    (rc = mdb_env_get_fd(st->env, &s.fd)) != 0)
		return store_lmdb_error("erase", rc);
	if (fstat(s.fd, &sb) != 0) {
		log_err("store: erasure: cannot stat data.mdb: %s", strerror(errno));
		return -errno;
	}
	s.psize = es.ms_psize;
	s.last = info.me_last_pgno;
	s.file_size = sb.st_size;
	s.file_pages = (lm_pgno)(sb.st_size / (off_t)s.psize);
	if (s.psize < 512 || (s.psize & (s.psize - 1)) || s.psize > sizeof(zeros) ||
	    s.last < LM_METAS - 1 || s.file_pages < LM_METAS)
		return bad_page(&s, 0, "and the file do not have the expected sizes");
	size_t bm = s.last / 8 + 1;
	if ((s.live = calloc(3, bm)) == NULL || (s.one = malloc(s.psize)) == NULL) {
		free(s.live);
		return -ENOMEM;
	}
	s.free = s.live + bm;
	s.pinned = s.free + bm;
	ret = scrub_run(&s, r, oldest);
	if (ret == 0)
		*out = (struct store_scrub){.pages = s.last + 1,
		                            .live = s.n_live,
		                            .free = s.n_free,
		                            .cleaned = s.cleaned,
		                            .zeroed = s.zeroed,
		                            .held = s.held,
		                            .bytes = s.bytes};
	for (int i = 0; i < MAX_NEST; i++)
		free(s.page[i]);
	free(s.one);
	free(s.live);
	free(s.fix);
	free(s.ov);
	return ret;
}
