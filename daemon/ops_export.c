/*
 * ops_export.c: a memory as a stream of ExportRecords, served in pages (ops_import.c writes such a
 * stream back as a new memory).
 *
 * The stream is: the header, the tail, the entries in order, the chunks in order. The first page
 * (cursor 0) fixes its extent: the header, the tail and the reply's upto counts are read in one
 * transaction, and later pages only read entries and chunks below those counts, which never change
 * while the memory lives (a memory only grows). Each page is a read transaction of its own, so a
 * later page must also be of the same memory: the first reply's memory_id is the memory's uid,
 * which is never given again, and a page asked with another one than the user's memory now has
 * fails with HSAMEM_ENOUSER (the memory the stream is of no longer exists, exactly as when its user
 * was deleted and not created again). So a stream taken while appends, deletes and creates go on
 * is the memory as it was at the first page, or an error, never a mix. Cursor c >= 1 is entry c-1
 * while c-1 < upto_entries, then chunk c-1-upto_entries.
 */
#include <string.h>

#include "ops.h"
#include "ops_filter.h"

#define EXPORT_MIN_PAGE (64u << 10)

static Hsamem__ExportRecord *
new_record(struct job *job)
{
	Hsamem__ExportRecord *r = arena_alloc(&job->arena, sizeof(*r));
	if (r != NULL)
		hsamem__export_record__init(r);
	return r;
}

/* Splits token references into the record's three parallel arrays. */
static int
split_refs(struct job *job, const struct store_tokref *refs, uint32_t n, uint64_t **entry,
           uint32_t **off, uint32_t **len)
{
	*entry = arena_calloc(&job->arena, n + 1, sizeof(uint64_t));
	*off = arena_calloc(&job->arena, n + 1, sizeof(uint32_t));
	*len = arena_calloc(&job->arena, n + 1, sizeof(uint32_t));
	if (*entry == NULL || *off == NULL || *len == NULL)
		return ops_oom(job);
	for (uint32_t i = 0; i < n; i++) {
		(*entry)[i] = refs[i].entry;
		(*off)[i] = refs[i].off;
		(*len)[i] = refs[i].len;
	}
	return 0;
}

static int
first_records(struct job *job, struct store_txn *txn, const struct store_user *u,
              Hsamem__ExportRecord **list, size_t *n, size_t *bytes, bool with_tail)
{
	struct store_tail tail;
	int ret = store_tail_get(txn, u->uid, &tail);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read the tail: %s", hsamem_strerror(ret));
	Hsamem__ExportRecord *r = new_record(job);
	Hsamem__ExportRecord__Header *h = arena_alloc(&job->arena, sizeof(*h));
	if (r == NULL || h == NULL)
		return ops_oom(job);
	hsamem__export_record__header__init(h);
	h->has_format = h->has_entries = h->has_chunks = h->has_tokens = h->has_created_ms = true;
	h->format = OPS_EXPORT_FORMAT;
	h->spec = ops_spec_to_proto(&job->arena, &u->spec);
	h->entries = u->n_entries;
	h->chunks = u->n_chunks;
	h->tokens = u->n_tokens;
	h->created_ms = u->created_ms;
	if (h->spec == NULL)
		return ops_oom(job);
	r->rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	r->header = h;
	list[(*n)++] = r;
	if (tail.n == 0 || !with_tail)
		return 0;
	Hsamem__ExportRecord *tr = new_record(job);
	Hsamem__ExportRecord__Tail *t = arena_alloc(&job->arena, sizeof(*t));
	if (tr == NULL || t == NULL)
		return ops_oom(job);
	hsamem__export_record__tail__init(t);
	t->tokens = arena_memdup(&job->arena, tail.tokens, tail.n * sizeof(uint32_t));
	t->n_tokens = t->n_ref_entry = t->n_ref_off = t->n_ref_len = tail.n;
	if (t->tokens == NULL ||
	    split_refs(job, tail.refs, tail.n, &t->ref_entry, &t->ref_off, &t->ref_len) != 0)
		return ops_oom(job);
	tr->rec_case = HSAMEM__EXPORT_RECORD__REC_TAIL;
	tr->tail = t;
	list[(*n)++] = tr;
	*bytes += tail.n * 20;
	return 0;
}

static int
chunk_record(struct job *job, struct store_txn *txn, const struct store_user *u, uint64_t j,
             Hsamem__ExportRecord **out)
{
	struct store_chunk c;
	const void *kv, *row;
	size_t kv_len = spec_kv_bytes(&u->spec);
	uint64_t cnt;
	void *buf = arena_alloc(&job->arena, kv_len); /* K/V computed (kvcalc.h) go here */
	if (buf == NULL)
		return ops_oom(job);
	int ret = store_chunk_get(txn, u->uid, j, &c);
	if (ret == 0)
		ret = kvc_get(txn, u, j, buf, &kv);
	if (ret == 0)
		ret = store_landmarks_get(txn, u, j, &row, &cnt);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read chunk %llu: %s",
		                (unsigned long long)j, hsamem_strerror(ret));
	Hsamem__ExportRecord *r = new_record(job);
	Hsamem__ExportRecord__ChunkRec *m = arena_alloc(&job->arena, sizeof(*m));
	if (r == NULL || m == NULL)
		return ops_oom(job);
	hsamem__export_record__chunk_rec__init(m);
	m->has_index = m->has_n_real = m->has_kv = m->has_landmark = true;
	m->index = j;
	m->n_real = c.n_real;
	m->tokens = arena_memdup(&job->arena, c.tokens, c.n_tokens * sizeof(uint32_t));
	m->n_tokens = m->n_ref_entry = m->n_ref_off = m->n_ref_len = c.n_tokens;
	m->kv.data = kv == buf ? buf : arena_memdup(&job->arena, kv, kv_len);
	m->kv.len = kv_len;
	m->landmark.len = spec_landmark_bytes(&u->spec);
	m->landmark.data = arena_memdup(&job->arena, row, m->landmark.len);
	if (m->tokens == NULL || m->kv.data == NULL || m->landmark.data == NULL ||
	    split_refs(job, c.refs, c.n_tokens, &m->ref_entry, &m->ref_off, &m->ref_len) != 0)
		return ops_oom(job);
	r->rec_case = HSAMEM__EXPORT_RECORD__REC_CHUNK;
	r->chunk = m;
	*out = r;
	return 0;
}

void
ops_export(struct job *job)
{
	const Hsamem__ExportRequest *q = job->req->export;
	struct store_txn txn;
	struct store_user u;
	if (ops_read_user(job, q->user, &txn, &u) != 0)
		return;
	struct store_filter filter;
	if (ops_filter_from_proto(job, q->filter, &filter) != 0)
		goto out;
	/* filtered: a listing of the passing entries, without the chunks and the tail, whose
	 * tokens belong to other entries too */
	bool listing = !store_filter_empty(&filter);
	uint64_t cursor = q->cursor, upto_e = u.n_entries, upto_c = listing ? 0 : u.n_chunks;
	if (cursor != 0) {
		if (!q->has_upto_entries || !q->has_upto_chunks || !q->has_memory_id) {
			job_fail(job, HSAMEM_EPROTO,
			         "export: a cursor needs the first reply's counts and memory_id");
			goto out;
		}
		if (q->memory_id != u.uid) {
			job_fail(job, HSAMEM_ENOUSER,
			         "export: the memory of '%s' was deleted since the export began "
			         "(the user's memory now is another one): start the export again",
			         q->user);
			goto out;
		}
		upto_e = q->upto_entries;
		upto_c = q->upto_chunks;
		if (upto_e > u.n_entries || upto_c > u.n_chunks || cursor > 1 + upto_e + upto_c) {
			job_fail(job, HSAMEM_EINVAL,
			         "export: the cursor or the counts are not the first reply's");
			goto out;
		}
	}
	size_t page = q->has_max_bytes ? q->max_bytes : 4u << 20;
	if (page < EXPORT_MIN_PAGE)
		page = EXPORT_MIN_PAGE;
	if (page > job->d->conf.max_message / 2)
		page = job->d->conf.max_message / 2;
	size_t record_bytes =
	        spec_kv_bytes(&u.spec) + spec_landmark_bytes(&u.spec) + u.spec.S * 20 + 64;
	/* room for a full page's records (65,540 pointers for 4 MiB, zeroed), or for those left
	 * when fewer: one a cursor step, and the first two */
	uint64_t end = 1 + upto_e + upto_c, left = end - (cursor == 0 ? 1 : cursor) + 2;
	size_t cap = page / 64 + 4, n = 0, bytes = 0;
	if (cap > left)
		cap = (size_t)left;
	Hsamem__ExportRecord **list = arena_calloc(&job->arena, cap, sizeof(*list));
	Hsamem__ExportReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (list == NULL || r == NULL) {
		ops_oom(job);
		goto out;
	}
	if (cursor == 0) {
		if (first_records(job, &txn, &u, list, &n, &bytes, !listing) != 0)
			goto out;
		cursor = 1;
	}
	/* at least one record a page, whatever its size, so that the stream always advances */
	for (; cursor < end && n < cap && (n == 0 || bytes < page); cursor++) {
		bool pass = true;
		if (cursor - 1 < upto_e &&
		    ops_entry_passes(job, &txn, u.uid, &filter, cursor - 1, &pass) != 0)
			goto out;
		if (!pass)
			continue;
		if (cursor - 1 < upto_e) {
			Hsamem__ExportRecord *rec = new_record(job);
			if (rec == NULL) {
				ops_oom(job);
				goto out;
			}
			rec->rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
			if (ops_entry_to_proto(job, &txn, u.uid, cursor - 1, &rec->entry) != 0)
				goto out;
			bytes += strlen(rec->entry->text) + 48;
			list[n++] = rec;
		} else {
			if (chunk_record(job, &txn, &u, cursor - 1 - upto_e, &list[n]) != 0)
				goto out;
			n++;
			bytes += record_bytes;
		}
	}
	hsamem__export_reply__init(r);
	r->records = list;
	r->n_records = n;
	r->has_next_cursor = r->has_done = r->has_upto_entries = r->has_upto_chunks = true;
	r->has_memory_id = true;
	r->memory_id = u.uid;
	r->next_cursor = cursor;
	r->done = cursor >= end;
	r->upto_entries = upto_e;
	r->upto_chunks = upto_c;
	job->reply.body_case = HSAMEM__REPLY__BODY_EXPORT;
	job->reply.export = r;
out:
	store_txn_abort(&txn);
}
