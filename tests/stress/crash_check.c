/*
 * crash_check.c: what a crash trial checks after the daemon was killed or stopped (crash.h): the
 * acknowledged appends against the restarted daemon, the imported and deleted memories against the
 * source memory, and the stopped daemon's store straight from LMDB.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "crash.h"
#include "hsamem.h"
#include "store.h"

void
cr_violation(struct cr_run *r, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&r->mu);
	r->violations++;
	fprintf(stderr, "VIOLATION (trial %u): ", r->trial);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&r->mu);
}

int
cr_ack_add(struct cr_writer *w, uint64_t seq, uint64_t n, uint32_t count, unsigned trial)
{
	if (w->n_acks == w->cap_acks) {
		size_t cap = w->cap_acks ? w->cap_acks * 2 : 256;
		struct cr_ack *grown = realloc(w->acks, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		w->acks = grown;
		w->cap_acks = cap;
	}
	w->acks[w->n_acks++] = (struct cr_ack){seq, n, count, trial};
	return 0;
}

/* Checks the acknowledged appends acks[from ..] of writer w, reading its entries page by page. */
static void
check_writer(struct cr_run *r, struct hsamem *c, struct cr_writer *w, size_t from)
{
	struct hsamem_entry_list *page = NULL;
	uint64_t page_first = 0;
	char want[1024];
	unsigned reported = 0;

	for (size_t a = from; a < w->n_acks; a++) {
		const struct cr_ack *ack = &w->acks[a];
		for (uint32_t i = 0; i < ack->count; i++) {
			uint64_t seq = ack->seq + i;
			if (page == NULL || seq < page_first ||
			    seq >= page_first + page->n_entries) {
				hsamem_result_free(page);
				page = NULL;
				page_first = seq;
				int ret = hsamem_entries(c, w->user, seq, 1000, &page);
				if (ret != 0 && ret != HSAMEM_ENOUSER) {
					cr_violation(r, "%s: entries from %llu: %s", w->user,
					             (unsigned long long)seq, hsamem_strerror(ret));
					return;
				}
			}
			st_entry_text(want, sizeof(want), w->user, ack->n + i, CR_WORDS);
			bool ok = page != NULL && seq - page_first < page->n_entries &&
			          page->entries[seq - page_first].seq == seq &&
			          strcmp(page->entries[seq - page_first].text, want) == 0;
			r->entries_checked++;
			r->entries_lost += !ok;
			if (!ok && reported++ < 5)
				cr_violation(
				        r,
				        "acknowledged append lost: %s seq %llu (acknowledged in "
				        "trial %u) should read \"%.40s...\"",
				        w->user, (unsigned long long)seq, ack->trial, want);
		}
	}
	hsamem_result_free(page);
}

void
cr_check_appends(struct cr_run *r, struct hsamem *c, bool all)
{
	for (unsigned i = 0; i < r->o.writers; i++)
		check_writer(r, c, &r->w[i], all ? 0 : r->w[i].trial_first);
}

void
cr_check_writer(struct cr_run *r, struct hsamem *c, struct cr_writer *w)
{
	check_writer(r, c, w, 0);
}

/* Compares the last entry and the last chunk (with its tensors) of user and of "src". */
static int
same_ends(struct hsamem *c, const char *user, const struct cr_source *s, char *why, size_t len)
{
	struct hsamem_entry_list *e1 = NULL, *e2 = NULL;
	struct hsamem_chunk_list *c1 = NULL, *c2 = NULL;
	int same = -1;
	if (hsamem_entries(c, user, s->entries - 1, 1, &e1) != 0 ||
	    hsamem_entries(c, "src", s->entries - 1, 1, &e2) != 0 || e1->n_entries != 1 ||
	    e2->n_entries != 1 || strcmp(e1->entries[0].text, e2->entries[0].text) != 0) {
		snprintf(why, len, "its last entry differs from the source's");
		goto out;
	}
	if (s->chunks > 0) {
		if (hsamem_chunks(c, user, s->chunks - 1, 1, HSAMEM_CHUNKS_TENSORS, &c1) != 0 ||
		    hsamem_chunks(c, "src", s->chunks - 1, 1, HSAMEM_CHUNKS_TENSORS, &c2) != 0 ||
		    c1->n_chunks != 1 || c2->n_chunks != 1 ||
		    c1->chunks[0].k_size != c2->chunks[0].k_size ||
		    memcmp(c1->chunks[0].k, c2->chunks[0].k, c1->chunks[0].k_size) != 0 ||
		    memcmp(c1->chunks[0].v, c2->chunks[0].v, c1->chunks[0].k_size) != 0 ||
		    c1->chunks[0].landmark_size != c2->chunks[0].landmark_size ||
		    memcmp(c1->chunks[0].landmark, c2->chunks[0].landmark,
		           c1->chunks[0].landmark_size) != 0) {
			snprintf(why, len, "its last chunk differs from the source's");
			goto out;
		}
	}
	same = 1;
out:
	hsamem_result_free(e1);
	hsamem_result_free(e2);
	hsamem_result_free(c1);
	hsamem_result_free(c2);
	return same;
}

int
cr_same_as_source(struct cr_run *r, struct hsamem *c, const char *user, bool full, char *why,
                  size_t why_len)
{
	struct hsamem_stats *st = NULL;
	const struct cr_source *s = &r->src;
	int ret = hsamem_stats(c, user, &st), same = -1;
	if (ret == HSAMEM_ENOUSER)
		return 0;
	if (ret != 0 || st->n_memories != 1) {
		snprintf(why, why_len, "stats of %s: %s", user, hsamem_strerror(ret));
		goto out;
	}
	const struct hsamem_memory *m = &st->memories[0];
	if (m->entries != s->entries || m->chunks != s->chunks || m->tokens != s->tokens ||
	    m->tail_tokens != s->tail_tokens) {
		snprintf(why, why_len,
		         "%s holds %llu entries, %llu chunks, %llu tokens; the source %llu, %llu, "
		         "%llu",
		         user, (unsigned long long)m->entries, (unsigned long long)m->chunks,
		         (unsigned long long)m->tokens, (unsigned long long)s->entries,
		         (unsigned long long)s->chunks, (unsigned long long)s->tokens);
		goto out;
	}
	if (same_ends(c, user, s, why, why_len) != 1)
		goto out;
	if (full) {
		struct st_buf b = {0};
		r->import_full_checks++;
		ret = st_export(c, user, &b);
		if (ret != 0 || b.len != s->stream.len || memcmp(b.data, s->stream.data, b.len)) {
			snprintf(why, why_len,
			         "its export (%s, %zu bytes) differs from the source's",
			         hsamem_strerror(ret), b.len);
			st_buf_free(&b);
			goto out;
		}
		st_buf_free(&b);
	}
	same = 1;
out:
	hsamem_result_free(st);
	return same;
}

void
cr_check_objects(struct cr_run *r, struct hsamem *c)
{
	char why[300];
	for (size_t i = 0; i < r->n_objs; i++) {
		struct cr_obj *o = &r->objs[i];
		if (o->gone || (o->trial != r->trial && !o->delete_tried))
			continue;
		int same = cr_same_as_source(r, c, o->name, st_below(&r->rng, 4) == 0, why,
		                             sizeof(why));
		if (same < 0) {
			r->objects_bad++;
			cr_violation(r, "%s is neither complete nor absent after %s: %s", o->name,
			             o->delete_tried ? "a delete" : "an import", why);
			o->gone = true;
		} else if (same == 1) {
			if (o->delete_acked) {
				r->objects_bad++;
				cr_violation(r, "%s: its acknowledged delete was undone", o->name);
			}
			if (!o->import_acked && !o->present)
				r->unacked_present++;
			o->present = true;
			o->delete_tried = o->delete_acked = false;
		} else {
			if (o->import_acked && !o->delete_tried) {
				r->objects_bad++;
				cr_violation(r, "%s: its acknowledged import was lost", o->name);
			}
			o->gone = true;
			o->present = false;
		}
	}
}

/* ---- the store, read straight from LMDB ---- */

struct scan_user {
	uint64_t uid, entries, chunks, pages, kv; /* kv: the K/V records it must have */
	char name[HSAMEM_NAME_MAX + 1];
	uint64_t seen[5];
};

struct scan {
	struct scan_user *u;
	size_t n, cap;
};

static int
scan_collect(const struct store_user *u, void *arg)
{
	struct scan *s = arg;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct scan_user *grown = realloc(s->u, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		s->u = grown;
		s->cap = cap;
	}
	struct scan_user *x = &s->u[s->n++];
	memset(x, 0, sizeof(*x));
	x->uid = u->uid;
	x->entries = u->n_entries;
	x->chunks = u->n_chunks;
	x->pages = (u->n_chunks + u->lmk_per_page - 1) / u->lmk_per_page;
	/* a lexical memory computes its K/V from the tokens and stores none (store.h) */
	x->kv = (u->flags & STORE_USER_KV_COMPUTED) ? 0 : u->n_chunks;
	/* a model memory's lexical landmarks are paged beside its own (store.h, LEXICAL) */
	if (u->flags & STORE_USER_LEXICAL)
		x->pages *= 2;
	memcpy(x->name, u->name, sizeof(x->name));
	return 0;
}

static struct scan_user *
scan_find(struct scan *s, uint64_t uid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->u[i].uid == uid)
			return &s->u[i];
	return NULL;
}

/* Counts the records of database name by the uid their key starts with. */
static int
scan_db(struct cr_run *r, MDB_txn *t, const char *name, int which, struct scan *s)
{
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t orphans = 0, first_orphan = 0;
	int rc = mdb_dbi_open(t, name, 0, &dbi);
	if (rc == 0)
		rc = mdb_cursor_open(t, dbi, &cur);
	if (rc != 0)
		return rc;
	struct scan_user *last = NULL;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		uint64_t uid = 0;
		const uint8_t *p = k.mv_data;
		r->scan_records++;
		for (size_t i = 0; i < 8 && i < k.mv_size; i++)
			uid = uid << 8 | p[i];
		if (last == NULL || last->uid != uid)
			last = scan_find(s, uid);
		if (last == NULL && orphans++ == 0)
			first_orphan = uid;
		else if (last != NULL)
			last->seen[which]++;
	}
	mdb_cursor_close(cur);
	if (orphans > 0)
		cr_violation(r, "store: %llu records of database %s belong to no memory (uid %llu)",
		             (unsigned long long)orphans, name, (unsigned long long)first_orphan);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

void
cr_scan_store(struct cr_run *r)
{
	static const char *const dbs[5] = {"entries", "chunks", "kv", "landmarks", "tail"};
	struct scan s = {0};
	struct store *st = NULL;
	struct store_txn txn;
	MDB_env *env = NULL;
	MDB_txn *t = NULL;
	int rc;

	r->scans++;
	/* the users through the store's own decoding, then every record through LMDB alone */
	if ((rc = store_open(r->h.state, NULL, &st)) != 0 ||
	    (rc = store_txn_begin(st, &txn, false, NULL)) != 0) {
		cr_violation(r, "store: cannot open %s: %s", r->h.state, hsamem_strerror(rc));
		store_close(st);
		return;
	}
	rc = store_user_foreach(&txn, scan_collect, &s);
	store_txn_abort(&txn);
	store_close(st);
	if (rc != 0) {
		cr_violation(r, "store: cannot list the memories: %s", hsamem_strerror(rc));
		goto out;
	}
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
	    (rc = mdb_env_open(env, r->h.state, MDB_RDONLY | MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t)) != 0) {
		cr_violation(r, "store: LMDB cannot read %s: %s", r->h.state, mdb_strerror(rc));
		goto out;
	}
	for (int i = 0; i < 5; i++)
		if ((rc = scan_db(r, t, dbs[i], i, &s)) != 0) {
			cr_violation(r, "store: cannot read database %s: %s", dbs[i],
			             mdb_strerror(rc));
			goto out;
		}
	for (size_t i = 0; i < s.n; i++) {
		const struct scan_user *u = &s.u[i];
		if (u->seen[0] != u->entries || u->seen[1] != u->chunks || u->seen[2] != u->kv ||
		    u->seen[3] != u->pages || u->seen[4] > 1)
			cr_violation(
			        r,
			        "store: %s counts %llu entries and %llu chunks (%llu landmark "
			        "pages, %llu K/V) but has %llu entry, %llu chunk, %llu K/V, %llu "
			        "landmark, %llu tail records",
			        u->name, (unsigned long long)u->entries,
			        (unsigned long long)u->chunks, (unsigned long long)u->pages,
			        (unsigned long long)u->kv, (unsigned long long)u->seen[0],
			        (unsigned long long)u->seen[1], (unsigned long long)u->seen[2],
			        (unsigned long long)u->seen[3], (unsigned long long)u->seen[4]);
	}
out:
	if (t != NULL)
		mdb_txn_abort(t);
	if (env != NULL)
		mdb_env_close(env);
	free(s.u);
}
