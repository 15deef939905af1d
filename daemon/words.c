/*
 * words.c: the in-memory word index of memories' entries and BM25 over entries (words.h).
 *
 * One index a memory: its entries (sequence number, token range, length in terms, or none for a
 * document or an entry without text) in the order of their sequence numbers, and per term the
 * indexed entries that hold it with their counts, in a table open addressed by term id.
 * Postings only grow; an entry's index in the entries array is its posting's name, so that a
 * posting is 8 bytes. An index is guarded by its own lock: a query that finds it behind its
 * snapshot holds it for writing while it brings it up, then, like every other, for reading from
 * words_open to words_close, while it ranks entries and scores chunks (the exact pass's threads
 * read it under the query's hold). A query waiting to bring it up goes before queries that come
 * after it, so that a stream of overlapping readers cannot keep it waiting; a query holds one
 * index at a time, so that nothing waits on a lock while it holds another. The set of indexes has a
 * mutex of its own and a count of the queries that use each index, so that a drop frees one only
 * once the last query lets go of it.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "daemon.h"
#include "job.h"
#include "store.h"
#include "store_filter.h"
#include "tokenizer.h"
#include "words.h"

struct w_entry {
	uint64_t seq;
	uint64_t first_token;
	uint32_t n_tokens;
	uint32_t dl; /* its length in terms; W_UNINDEXED: a document or an entry without text, kept
	              * so that a chunk's entries are known (words_chunk_score) */
};

#define W_UNINDEXED UINT32_MAX

struct w_posting {
	uint32_t entry; /* index into the entries */
	uint16_t tf;    /* (at most 65535) */
	uint16_t dl; /* the entry's length in terms (at most 65535), so that a sum reads no entry */
};

struct w_term {
	uint32_t id;
	uint32_t n, cap; /* cap 0: an empty slot */
	struct w_posting *p;
};

struct w_index {
	uint64_t uid;
	int64_t created_ms; /* with uid, which memory it is (a uid may be given again) */
	unsigned refs; /* queries using it, and 1 while the set holds it (under the set's lock) */
	uint64_t used; /* the set's clock at its last use (under the set's lock) */
	size_t bytes;  /* what it holds, as last told to the set (under the set's lock) */
	pthread_rwlock_t lock;
	/* the rest under lock */
	uint64_t next_seq;   /* entries below it are indexed, or were left out */
	struct w_entry *ent; /* in the order of their sequence numbers, so of their tokens */
	size_t n_ent, cap_ent;
	size_t n_indexed; /* of them, those not W_UNINDEXED: BM25's count of documents */
	struct w_term *terms;
	uint32_t mask, n_terms; /* the table holds mask + 1 slots, at most half full */
	size_t n_postings;
	uint32_t *scratch; /* an entry's term ids, while it is indexed */
	size_t cap_scratch;
};

struct words {
	pthread_mutex_t lock;
	struct w_index **idx;
	size_t n, cap;
	uint64_t clock;
	size_t bytes;
};

struct words *
words_new(void)
{
	struct words *w = calloc(1, sizeof(*w));
	if (w != NULL)
		pthread_mutex_init(&w->lock, NULL);
	return w;
}

static void
index_free(struct w_index *x)
{
	if (x->terms != NULL)
		for (uint32_t i = 0; i <= x->mask; i++)
			free(x->terms[i].p);
	free(x->terms);
	free(x->ent);
	free(x->scratch);
	pthread_rwlock_destroy(&x->lock);
	free(x);
}

void
words_free(struct words *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		index_free(w->idx[i]);
	free(w->idx);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Lets go of x (under the set's lock); the last user frees it. */
static void
unref_locked(struct w_index *x)
{
	if (--x->refs == 0)
		index_free(x);
}

/* Takes the i-th index out of the set (under its lock). */
static void
remove_locked(struct words *w, size_t i)
{
	struct w_index *x = w->idx[i];
	w->bytes -= x->bytes;
	w->idx[i] = w->idx[--w->n];
	unref_locked(x);
}

void
words_drop(struct words *w, uint64_t uid)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->n; i++)
		if (w->idx[i]->uid == uid) {
			remove_locked(w, i);
			break;
		}
	pthread_mutex_unlock(&w->lock);
}

/* The index of memory u, made empty where there is none (or another memory's of its uid), with
 * one more user; NULL when out of memory. */
static struct w_index *
index_get(struct words *w, const struct store_user *u)
{
	struct w_index *x = NULL;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->n; i++)
		if (w->idx[i]->uid == u->uid) {
			if (w->idx[i]->created_ms == u->created_ms)
				x = w->idx[i];
			else
				remove_locked(w, i);
			break;
		}
	if (x == NULL &&
	    (w->n < w->cap ||
	     (w->idx = reallocarray(w->idx, w->cap = 2 * w->cap + 4, sizeof(*w->idx))) != NULL) &&
	    (x = calloc(1, sizeof(*x))) != NULL) {
		x->uid = u->uid;
		x->created_ms = u->created_ms;
		x->refs = 1;
		x->bytes = sizeof(*x);
		pthread_rwlockattr_t at;
		pthread_rwlockattr_init(&at);
		pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&x->lock, &at);
		pthread_rwlockattr_destroy(&at);
		w->idx[w->n++] = x;
		w->bytes += x->bytes;
	}
	if (x != NULL) {
		x->refs++;
		x->used = ++w->clock;
	}
	pthread_mutex_unlock(&w->lock);
	return x;
}

/* Lets go of x after a query that left it holding `bytes`; drops the least recently used other
 * indexes while all of them pass WORDS_BYTES_MAX. */
static void
index_put(struct words *w, struct w_index *x, size_t bytes)
{
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->n; i++)
		if (w->idx[i] == x) { /* (not dropped meanwhile) */
			w->bytes += bytes - x->bytes;
			x->bytes = bytes;
			break;
		}
	while (w->bytes > WORDS_BYTES_MAX) {
		size_t lru = w->n;
		for (size_t i = 0; i < w->n; i++)
			if (w->idx[i] != x && (lru == w->n || w->idx[i]->used < w->idx[lru]->used))
				lru = i;
		if (lru == w->n)
			break;
		remove_locked(w, lru);
	}
	unref_locked(x);
	pthread_mutex_unlock(&w->lock);
}

static inline uint32_t
slot_of(uint32_t id, uint32_t mask)
{
	return (uint32_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 40) & mask;
}

/* Term id's slot in x: its own, or the empty one where it would go. */
static struct w_term *
term_slot(const struct w_index *x, uint32_t id)
{
	uint32_t h = slot_of(id, x->mask);
	while (x->terms[h].cap != 0 && x->terms[h].id != id)
		h = (h + 1) & x->mask;
	return &x->terms[h];
}

/* Room for one more term: the table doubled where it would be more than half full. */
static int
terms_room(struct w_index *x)
{
	if (x->terms != NULL && 2 * (x->n_terms + 1) <= x->mask + 1)
		return 0;
	uint32_t mask = x->terms != NULL ? 2 * x->mask + 1 : 1023;
	struct w_term *t = calloc((size_t)mask + 1, sizeof(*t)), *old = x->terms;
	if (t == NULL)
		return -ENOMEM;
	uint32_t old_mask = x->mask;
	x->terms = t;
	x->mask = mask;
	if (old != NULL) {
		for (uint32_t i = 0; i <= old_mask; i++)
			if (old[i].cap != 0)
				*term_slot(x, old[i].id) = old[i];
		free(old);
	}
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Entry e of dl terms (or W_UNINDEXED) at the end of x's entries; its index into *id. */
static int
add_entry(struct w_index *x, const struct store_entry *e, uint32_t dl, uint32_t *id)
{
	if (x->n_ent == x->cap_ent) {
		size_t cap = x->cap_ent ? 2 * x->cap_ent : 256;
		struct w_entry *p = reallocarray(x->ent, cap, sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		x->ent = p;
		x->cap_ent = cap;
	}
	if (x->n_ent >= UINT32_MAX)
		return -ENOMEM;
	*id = (uint32_t)x->n_ent;
	x->ent[x->n_ent++] = (struct w_entry){e->seq, e->first_token, e->n_tokens, dl};
	if (dl != W_UNINDEXED)
		x->n_indexed++;
	return 0;
}

/* Indexes entry e (a text of at most WORDS_ENTRY_CHUNKS chunks' tokens); x's lock is held for
 * writing. */
static int
index_entry(struct w_index *x, const struct store_entry *e)
{
	struct lex1_cursor c;
	struct enc_token t;
	size_t n = 0;
	lex1_cursor_init(&c, e->text, e->text_len);
	while (lex1_next(&c, &t)) {
		if (!bm25_is_term(t.id))
			continue;
		if (n == x->cap_scratch) {
			size_t cap = x->cap_scratch ? 2 * x->cap_scratch : 256;
			uint32_t *p = reallocarray(x->scratch, cap, sizeof(*p));
			if (p == NULL)
				return -ENOMEM;
			x->scratch = p;
			x->cap_scratch = cap;
		}
		x->scratch[n++] = t.id;
	}
	uint32_t id, dl = n < W_UNINDEXED ? (uint32_t)n : W_UNINDEXED - 1;
	int ret = add_entry(x, e, dl, &id);
	if (ret != 0 || n == 0)
		return ret;
	qsort(x->scratch, n, sizeof(*x->scratch), cmp_u32);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && x->scratch[j] == x->scratch[i]; j++)
			;
		if ((ret = terms_room(x)) != 0)
			return ret;
		struct w_term *s = term_slot(x, x->scratch[i]);
		if (s->n == s->cap) {
			uint32_t cap = s->cap ? 2 * s->cap : 2;
			struct w_posting *p = reallocarray(s->p, cap, sizeof(*p));
			if (p == NULL)
				return -ENOMEM;
			if (s->cap == 0) {
				s->id = x->scratch[i];
				x->n_terms++;
			}
			s->p = p;
			s->cap = cap;
		}
		uint32_t tf = (uint32_t)(j - i);
		s->p[s->n++] = (struct w_posting){id, (uint16_t)(tf < UINT16_MAX ? tf : UINT16_MAX),
		                                  (uint16_t)(dl < UINT16_MAX ? dl : UINT16_MAX)};
		x->n_postings++;
	}
	return 0;
}

/* Brings x up to txn's snapshot of memory u: the entries appended since it was last brought.
 * Called with x's lock held for writing. */
static int
catch_up(struct w_index *x, struct store_txn *txn, const struct store_user *u)
{
	for (; x->next_seq < u->n_entries; x->next_seq++) {
		struct store_entry e;
		int ret = store_entry_get(txn, u->uid, x->next_seq, &e);
		if (ret == HSAMEM_ENOTFOUND)
			continue;
		if (ret != 0)
			return ret;
		uint32_t id;
		if (e.n_tokens == 0)
			continue;
		ret = e.text_len > 0 && e.n_tokens <= (uint64_t)WORDS_ENTRY_CHUNKS * u->spec.S
		              ? index_entry(x, &e)
		              : add_entry(x, &e, W_UNINDEXED, &id);
		if (ret != 0)
			return ret;
	}
	return 0;
}

static size_t
index_bytes(const struct w_index *x)
{
	return sizeof(*x) + x->cap_ent * sizeof(*x->ent) +
	       (x->terms != NULL ? ((size_t)x->mask + 1) * sizeof(*x->terms) : 0) +
	       x->n_postings * sizeof(struct w_posting) + x->cap_scratch * sizeof(uint32_t);
}

/* An entry being scored, in an open-addressed table by its index + 1 (0: an empty slot). */
struct sum {
	uint32_t entry1;
	float s;
};

/* Whether x ranks before y: the higher score, on a tie the earlier entry. */
static inline bool
before(struct sum x, struct sum y)
{
	return x.s > y.s || (x.s == y.s && x.entry1 < y.entry1);
}

/* A heap whose root is the worst of h[0, n) (before() reversed), restored below i. */
static void
sift_down(struct sum *h, size_t n, size_t i)
{
	for (;;) {
		size_t w = i, l = 2 * i + 1, r = l + 1;
		if (l < n && before(h[w], h[l]))
			w = l;
		if (r < n && before(h[w], h[r]))
			w = r;
		if (w == i)
			return;
		struct sum t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

/* The best m of the n sums in a (m <= n), into a[0, m), best first: a heap of the best so far,
 * not a sort of all (a common word's entries number thousands, of which a ranking reads a few). */
static void
best_of(struct sum *a, size_t n, size_t m)
{
	for (size_t i = m / 2; i-- > 0;)
		sift_down(a, m, i);
	for (size_t i = m; i < n; i++)
		if (before(a[i], a[0])) {
			a[0] = a[i];
			sift_down(a, m, 0);
		}
	for (size_t k = m; k > 1; k--) {
		struct sum t = a[0];
		a[0] = a[k - 1];
		a[k - 1] = t;
		sift_down(a, k - 1, 0);
	}
}

/* A question's term as the index weighs it: its postings (NULL: no entry holds it) and idf. */
struct w_qterm {
	const struct w_term *s;
	float idf;
};

/* A memory's index held for reading for one question (words.h). */
struct words_query {
	struct words *w;
	struct w_index *x;
	const struct store_user *u;
	struct w_qterm *qt;   /* the question's terms, in its order */
	struct w_qterm *rare; /* those the index holds, rarest first */
	size_t n_qt, n_rare;
	size_t n_read; /* of rare, the first n_read: those whose postings are summed */
	float scale;   /* BM25_SCALE over the question's idf sum, 0 where it has none */
};

/*
 * BM25's idf of a term that n of x's indexed entries hold, as SQLite FTS5 weighs it: ln((N - n +
 * 0.5) / (n + 0.5)), and 1e-6 where that is not positive (a term in half of the entries or more
 * tells none apart). Not the chunks' ln(1 + ...), which keeps a common word weighing: summed
 * over a short entry it would put any entry full of "the" and "do" above a fact that shares one
 * rare word with the question.
 */
static float
entry_idf(const struct w_index *x, uint32_t n)
{
	double N = (double)x->n_indexed, v = log((N - n + 0.5) / (n + 0.5));
	return v > 1e-6 ? (float)v : 1e-6f;
}

/*
 * The count of term s in entry i of n_ent (0: none). Its postings ascend by entry, spread about
 * evenly over the entries: the search starts where an even spread puts entry i and gallops to
 * bracket it, then halves the bracket, a few reads of a common term's long list where a binary
 * search of all of it takes a dozen, each a cache miss.
 */
static uint32_t
tf_in(const struct w_term *s, uint32_t i, size_t n_ent)
{
	uint32_t n = s->n, lo = 0, hi = n, step = 1;
	if (n == 0)
		return 0;
	uint32_t g = (uint32_t)((uint64_t)i * n / (n_ent > i ? n_ent : (size_t)i + 1));
	if (s->p[g].entry < i) { /* the first posting at or past i lies in (g, n] */
		lo = g + 1;
		for (hi = lo; hi < n && s->p[hi].entry < i; step *= 2) {
			lo = hi + 1;
			hi = n - lo > step ? lo + step : n;
		}
	} else { /* in [0, g] */
		for (hi = g; hi > 0; step *= 2) {
			uint32_t m = hi > step ? hi - step : 0;
			if (s->p[m].entry < i) {
				lo = m + 1;
				break;
			}
			hi = m;
		}
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->p[mid].entry < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->p[lo].entry == i ? s->p[lo].tf : 0;
}

/* Entry i's BM25 over the terms t[from, to) (x's lock held). */
static float
entry_sum(const struct w_index *x, const struct w_qterm *t, size_t from, size_t to, uint32_t i)
{
	float s = 0;
	for (size_t k = from; k < to; k++) {
		uint32_t tf = t[k].s != NULL ? tf_in(t[k].s, i, x->n_ent) : 0;
		if (tf > 0)
			s += bm25_summand(t[k].idf, tf, x->ent[i].dl);
	}
	return s;
}

/* Whether entry e is in txn's snapshot as it was indexed: the same token range, its text kept. */
static int
in_snapshot(struct store_txn *txn, uint64_t uid, const struct w_entry *e, bool *yes)
{
	struct store_entry se;
	int ret = store_entry_get(txn, uid, e->seq, &se);
	*yes = ret == 0 && se.text_len > 0 && se.first_token == e->first_token &&
	       se.n_tokens == e->n_tokens;
	return ret == HSAMEM_ENOTFOUND ? 0 : ret;
}

/* The index of memory u brought up to txn's snapshot, held for reading, into *out (NULL when out
 * of memory). Returns 0 or an error; index_close lets it go whatever this returned, where *out is
 * not NULL. */
static int
index_open(struct job *job, struct store_txn *txn, const struct store_user *u, struct w_index **out)
{
	struct w_index *x = *out = index_get(job->d->words, u);
	if (x == NULL)
		return -ENOMEM;
	int ret = 0;
	pthread_rwlock_rdlock(&x->lock);
	if (x->next_seq < u->n_entries) {
		pthread_rwlock_unlock(&x->lock);
		pthread_rwlock_wrlock(&x->lock);
		ret = catch_up(x, txn, u);
		pthread_rwlock_unlock(&x->lock);
		pthread_rwlock_rdlock(&x->lock);
	}
	return ret;
}

/* Lets go of x after index_open returned ret. An index whose catch-up failed half way holds some
 * of an entry's postings: the next query makes it anew. */
static void
index_close(struct words *w, struct w_index *x, const struct store_user *u, int ret)
{
	size_t bytes = index_bytes(x);
	bool broken = ret != 0 && x->next_seq < u->n_entries;
	pthread_rwlock_unlock(&x->lock);
	index_put(w, x, bytes);
	if (broken)
		words_drop(w, u->uid);
}

/* wq's question as its index weighs it: each term's postings and idf, the idf sum's scale, the
 * terms the index holds rarest first, and of them those whose postings fit WORDS_POSTINGS_MAX. */
static int
question_terms(struct job *job, struct words_query *wq, const struct bm25_question *q)
{
	const struct w_index *x = wq->x;
	float sum = 0;
	wq->qt = arena_calloc(&job->arena, q->n + 1, sizeof(*wq->qt));
	wq->rare = arena_calloc(&job->arena, q->n + 1, sizeof(*wq->rare));
	if (wq->qt == NULL || wq->rare == NULL)
		return -ENOMEM;
	wq->n_qt = q->n;
	for (size_t i = 0; i < q->n; i++) {
		const struct w_term *s = x->terms != NULL ? term_slot(x, q->ids[i]) : NULL;
		struct w_qterm t = {s != NULL && s->cap != 0 ? s : NULL, 0};
		t.idf = entry_idf(x, t.s != NULL ? t.s->n : 0);
		sum += t.idf;
		wq->qt[i] = t;
		if (t.s == NULL)
			continue;
		size_t j = wq->n_rare++;
		for (; j > 0 && wq->rare[j - 1].s->n > t.s->n; j--)
			wq->rare[j] = wq->rare[j - 1];
		wq->rare[j] = t;
	}
	for (size_t used = 0;
	     wq->n_read < wq->n_rare && used + wq->rare[wq->n_read].s->n <= WORDS_POSTINGS_MAX;)
		used += wq->rare[wq->n_read++].s->n;
	wq->scale = sum > 0 ? BM25_SCALE / sum : 0;
	return 0;
}

int
words_open(struct job *job, struct store_txn *txn, const struct store_user *u,
           const struct bm25_question *q, struct words_query **out)
{
	struct words *w = job->d->words;
	*out = NULL;
	if (w == NULL || q->n == 0 || u->n_entries == 0)
		return 0;
	struct words_query *wq = arena_calloc(&job->arena, 1, sizeof(*wq));
	if (wq == NULL)
		return -ENOMEM;
	*wq = (struct words_query){.w = w, .u = u};
	int ret = index_open(job, txn, u, &wq->x);
	if (wq->x == NULL)
		return ret;
	if (ret == 0)
		ret = question_terms(job, wq, q);
	if (ret != 0) {
		index_close(w, wq->x, u, ret);
		return ret;
	}
	*out = wq;
	return 0;
}

void
words_close(struct words_query *wq)
{
	if (wq != NULL)
		index_close(wq->w, wq->x, wq->u, 0);
}

static int
cmp_sum(const void *a, const void *b)
{
	const struct sum *x = a, *y = b;
	return before(*x, *y) ? -1 : before(*y, *x);
}

/*
 * The entries that wq's rarer terms find, each with its BM25 over those terms, into *tab (the
 * job's arena), their count into *m; entries past the snapshot's count (an index ahead of the
 * snapshot) left out.
 */
static int
found_entries(struct job *job, const struct words_query *wq, struct sum **tab, size_t *m)
{
	const struct w_index *x = wq->x;
	size_t used = 0;
	*m = 0;
	for (size_t t = 0; t < wq->n_read; t++)
		used += wq->rare[t].s->n;
	if (used == 0)
		return 0;
	/* the entries the snapshot holds: those below the first of a later sequence number */
	size_t lo = 0, hi = x->n_ent;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (x->ent[mid].seq < wq->u->n_entries)
			lo = mid + 1;
		else
			hi = mid;
	}
	const uint32_t held = (uint32_t)lo;
	uint32_t slots = 16;
	while (slots < 2 * used)
		slots *= 2;
	struct sum *h = arena_calloc(&job->arena, slots, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	for (size_t t = 0; t < wq->n_read; t++) {
		const struct w_term *s = wq->rare[t].s;
		float idf = wq->rare[t].idf;
		/* (postings are in the order of the entries) */
		for (uint32_t i = 0; i < s->n && s->p[i].entry < held; i++) {
			const struct w_posting *p = &s->p[i];
			uint32_t at = slot_of(p->entry, slots - 1);
			while (h[at].entry1 != 0 && h[at].entry1 != p->entry + 1)
				at = (at + 1) & (slots - 1);
			h[at].entry1 = p->entry + 1;
			h[at].s += bm25_summand(idf, p->tf, p->dl);
		}
	}
	for (uint32_t i = 0; i < slots; i++)
		if (h[i].entry1 != 0)
			h[(*m)++] = h[i];
	*tab = h;
	return 0;
}

/* The chunk that holds the most of entry e (of S tokens a chunk; the first of them on a tie). */
static uint64_t
owner_chunk(const struct w_entry *e, uint64_t S)
{
	uint64_t end = e->first_token + e->n_tokens, c0 = e->first_token / S, c1 = (end - 1) / S;
	if (c0 == c1)
		return c0;
	uint64_t best = c0, most = (c0 + 1) * S - e->first_token;
	if (c1 - c0 >= 2 && S > most)
		best = c0 + 1, most = S;
	return end - c1 * S > most ? c1 : best;
}

int
words_rank(struct job *job, struct words_query *wq, struct store_txn *txn, const uint64_t *mask,
           bool tail, size_t depth, struct bm25_hit *out, size_t *n)
{
	*n = 0;
	if (wq == NULL || depth == 0)
		return 0;
	const struct w_index *x = wq->x;
	const struct store_user *u = wq->u;
	const uint64_t S = u->spec.S;
	struct sum *tab = NULL;
	size_t m;
	int ret = found_entries(job, wq, &tab, &m);
	if (ret != 0 || m == 0)
		return ret;
	/* best first, in batches while the ranking wants more (a filter may allow few): the first
	 * WORDS_ENTRY_WHOLE with the common terms' share, so that their scores are their whole
	 * BM25, then at most WORDS_ENTRY_READ in all as the rarer terms rank them */
	for (size_t from = 0, batch; *n < depth && from < m && from < WORDS_ENTRY_READ;
	     from += batch) {
		batch = from == 0 ? WORDS_ENTRY_WHOLE : WORDS_ENTRY_READ - from;
		if (batch > m - from)
			batch = m - from;
		best_of(tab + from, m - from, batch);
		if (from == 0) {
			for (size_t i = 0; i < batch; i++)
				tab[i].s += entry_sum(x, wq->rare, wq->n_read, wq->n_rare,
				                      tab[i].entry1 - 1);
			qsort(tab, batch, sizeof(*tab), cmp_sum);
		}
		/* each to the chunk that holds most of it, where allowed, once a chunk (a ranking
		 * of chunks that gave an entry to both of its two would hold it twice), while the
		 * snapshot holds it */
		for (size_t i = from; i < from + batch && *n < depth; i++) {
			const struct w_entry *e = &x->ent[tab[i].entry1 - 1];
			uint64_t c = owner_chunk(e, S);
			if (c > u->n_chunks || (c == u->n_chunks && !tail) ||
			    (mask != NULL && !store_mask_test(mask, c)))
				continue;
			bool dup = false, yes = false;
			for (size_t k = 0; k < *n && !dup; k++)
				dup = out[k].chunk == (int64_t)c;
			if (dup)
				continue;
			if ((ret = in_snapshot(txn, u->uid, e, &yes)) != 0)
				return ret;
			if (yes)
				out[(*n)++] = (struct bm25_hit){(int64_t)c, wq->scale * tab[i].s};
		}
	}
	return 0;
}

/* The index of the first of x's entries that ends after token pos. */
static size_t
first_after(const struct w_index *x, uint64_t pos)
{
	size_t lo = 0, hi = x->n_ent;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->ent[mid].first_token + x->ent[mid].n_tokens <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Of sealed chunk c of wq's memory, the run of x's entries in it, [*a, *b), up to the first that
 * wq's snapshot lacks, and whether they cover it: whether all of them, and one at least, are
 * indexed (a document or an entry without text holds words the index does not know; a flush's
 * padding, tokens of no entry, holds none).
 */
static bool
chunk_entries(const struct words_query *wq, uint64_t c, size_t *a, size_t *b)
{
	const struct w_index *x = wq->x;
	const uint64_t S = wq->u->spec.S, hi = (c + 1) * S;
	bool covered = false;
	size_t i = *a = first_after(x, c * S);
	for (; i < x->n_ent && x->ent[i].first_token < hi; i++) {
		if (x->ent[i].seq >= wq->u->n_entries)
			break;
		if (x->ent[i].dl == W_UNINDEXED) {
			covered = false;
			break;
		}
		covered = true;
	}
	*b = i;
	return covered;
}

static bool
sealed(const struct words_query *wq, int64_t chunk)
{
	return wq != NULL && chunk >= 0 && (uint64_t)chunk < wq->u->n_chunks;
}

bool
words_chunk_covered(const struct words_query *wq, int64_t chunk)
{
	size_t a, b;
	return sealed(wq, chunk) && chunk_entries(wq, (uint64_t)chunk, &a, &b);
}

void
words_chunk_score(const struct words_query *wq, int64_t chunk, float *score)
{
	if (!sealed(wq, chunk))
		return;
	const struct w_index *x = wq->x;
	const uint64_t S = wq->u->spec.S;
	size_t a, b;
	bool covered = chunk_entries(wq, (uint64_t)chunk, &a, &b);
	float best = 0;
	for (size_t i = a; i < b; i++)
		if (owner_chunk(&x->ent[i], S) == (uint64_t)chunk) {
			float es = wq->scale * entry_sum(x, wq->qt, 0, wq->n_qt, (uint32_t)i);
			if (es > best)
				best = es;
		}
	*score = covered || best > *score ? best : *score;
}
