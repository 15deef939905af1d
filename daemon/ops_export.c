/*
 * ops_export.c: a memory as a stream of ExportRecords, both ways: export serves the stream in
 * pages, import writes it back into a new memory, batch by batch.
 *
 * The stream is: the header, the tail, the entries in order, the chunks in order. The first page
 * (cursor 0) fixes its extent: the header, the tail and the reply's upto counts are read in one
 * transaction, and later pages only read entries and chunks below those counts, which never change
 * (a memory only grows). So a stream taken while appends go on is consistent: it is the memory as
 * it was at the first page. Cursor c >= 1 is entry c-1 while c-1 < upto_entries, then chunk
 * c-1-upto_entries.
 *
 * An import's first batch starts with the header: it creates the memory marked as importing
 * (invisible to every other operation) and remembers what the header promised. Each batch is one
 * write of the committer; the last one checks that the counts were met and clears the mark. A
 * memory left marked by a previous run is deleted at start (ops_import_cleanup).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"

#define EXPORT_FORMAT   1 /* the stream's header.format */
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
              Hsamem__ExportRecord **list, size_t *n, size_t *bytes)
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
	h->format = EXPORT_FORMAT;
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
	if (tail.n == 0)
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
	size_t kv_len;
	uint64_t cnt;
	int ret = store_chunk_get(txn, u->uid, j, &c);
	if (ret == 0)
		ret = store_kv_get(txn, u->uid, j, &kv, &kv_len);
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
	m->kv.data = arena_memdup(&job->arena, kv, kv_len);
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
	uint64_t cursor = q->cursor, upto_e = u.n_entries, upto_c = u.n_chunks;
	if (cursor != 0) {
		if (!q->has_upto_entries || !q->has_upto_chunks) {
			job_fail(job, HSAMEM_EINVAL,
			         "export: a cursor needs the first reply's counts");
			goto out;
		}
		upto_e = q->upto_entries;
		upto_c = q->upto_chunks;
		if (upto_e > u.n_entries || upto_c > u.n_chunks || cursor > 1 + upto_e + upto_c) {
			job_fail(job, HSAMEM_EINVAL,
			         "export: cursor or counts do not match the memory (was it "
			         "deleted?)");
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
	size_t cap = page / 64 + 4, n = 0, bytes = 0;
	Hsamem__ExportRecord **list = arena_calloc(&job->arena, cap, sizeof(*list));
	Hsamem__ExportReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (list == NULL || r == NULL) {
		ops_oom(job);
		goto out;
	}
	if (cursor == 0) {
		if (first_records(job, &txn, &u, list, &n, &bytes) != 0)
			goto out;
		cursor = 1;
	}
	uint64_t end = 1 + upto_e + upto_c;
	/* at least one record a page, whatever its size, so that the stream always advances */
	for (; cursor < end && n < cap && (n == 0 || bytes < page); cursor++) {
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
	r->next_cursor = cursor;
	r->done = cursor >= end;
	r->upto_entries = upto_e;
	r->upto_chunks = upto_c;
	job->reply.body_case = HSAMEM__REPLY__BODY_EXPORT;
	job->reply.export = r;
out:
	store_txn_abort(&txn);
}

/* ---- import ---- */

/* Imports in progress: what the header promised, checked when the last batch arrives. Only the
 * committer thread touches this table; a restart drops it and deletes half-imported memories. */
struct import_expect {
	uint64_t uid, entries, chunks, tokens;
};
static struct import_expect *imports;
static size_t n_imports;

static struct import_expect *
import_find(uint64_t uid)
{
	for (size_t i = 0; i < n_imports; i++)
		if (imports[i].uid == uid)
			return &imports[i];
	return NULL;
}

void
ops_import_forget(uint64_t uid)
{
	struct import_expect *e = import_find(uid);
	if (e != NULL)
		*e = imports[--n_imports];
}

int
ops_prepare_import(struct job *job)
{
	return ops_check_name(job, job->req->import->user);
}

static int
import_header(struct job *job, struct store_txn *txn, const Hsamem__ExportRecord__Header *h,
              struct store_user *u)
{
	const char *name = job->req->import->user;
	const struct enc_ops *enc;
	struct hsa_spec spec;
	char why[256];
	if (!h->has_format || h->format != EXPORT_FORMAT)
		return job_fail(job, HSAMEM_EIMPORT, "import: export format %u is not supported",
		                h->has_format ? h->format : 0);
	if (h->spec == NULL || h->spec->encoder == NULL)
		return job_fail(job, HSAMEM_EIMPORT, "import: the header has no spec");
	/* the stream's spec is taken as is: every shape must be present */
	const Hsamem__Spec *p = h->spec;
	memset(&spec, 0, sizeof(spec));
	if (strlen(p->encoder) > SPEC_NAME_MAX || p->tokenizer == NULL ||
	    strlen(p->tokenizer) > SPEC_NAME_MAX)
		return job_fail(job, HSAMEM_EIMPORT, "import: bad encoder or tokenizer name");
	strcpy(spec.encoder, p->encoder);
	strcpy(spec.tokenizer, p->tokenizer);
	spec.revision = p->revision;
	spec.S = p->chunk_size;
	spec.h_kv = p->h_kv;
	spec.d_h = p->d_h;
	spec.h_q = p->h_q;
	spec.d_r = p->d_r;
	spec.dtype = (enum hsa_dtype)p->dtype;
	spec.weighting = (enum hsa_weighting)p->weighting;
	spec.off_by_one = p->off_by_one;
	spec.top_k = p->top_k;
	if (spec_check(&spec, why, sizeof(why)) != 0)
		return job_fail(job, HSAMEM_EIMPORT, "import: %s", why);
	if (ops_encoder(job, &spec, &enc) != 0)
		return job->reply.status;
	/* An import that was abandoned (its client stopped sending) is replaced by a new one. */
	struct store_user old;
	int ret = store_user_get(txn, name, &old);
	if (ret == 0 && (old.flags & STORE_USER_IMPORTING)) {
		if ((ret = store_user_delete(txn, &old)) != 0)
			return ret;
		ops_import_forget(old.uid);
	} else if (ret == 0) {
		return job_fail(job, HSAMEM_EEXIST,
		                "user '%s' already has a memory: delete it first", name);
	} else if (ret != HSAMEM_ENOUSER) {
		return ret;
	}
	memset(u, 0, sizeof(*u));
	strcpy(u->name, name);
	u->spec = spec;
	u->created_ms = h->has_created_ms ? h->created_ms : now_ms();
	u->updated_ms = now_ms();
	u->flags = STORE_USER_IMPORTING;
	ret = store_user_create(txn, u);
	if (ret == HSAMEM_EEXIST)
		return job_fail(job, ret, "user '%s' already has a memory: delete it first", name);
	if (ret != 0)
		return ret;
	/* an expectation left by an aborted transaction may carry this fresh uid: drop it */
	ops_import_forget(u->uid);
	struct import_expect *grown = realloc(imports, (n_imports + 1) * sizeof(*imports));
	if (grown == NULL)
		return ops_oom(job);
	imports = grown;
	imports[n_imports++] = (struct import_expect){u->uid, h->entries, h->chunks, h->tokens};
	return 0;
}

static int
import_entry(struct job *job, struct store_txn *txn, struct store_user *u, const Hsamem__Entry *e,
             uint64_t max_tokens)
{
	char tags[OPS_MAX_TAGS * (OPS_MAX_TAG_BYTES + 1)];
	uint32_t tags_len = 0;
	size_t text_len = e->text != NULL ? strlen(e->text) : 0;
	if (!e->has_seq || e->seq != u->n_entries)
		return job_fail(job, HSAMEM_EIMPORT, "import: entry %llu is out of order",
		                (unsigned long long)e->seq);
	if (e->n_tags > OPS_MAX_TAGS || text_len > job->d->conf.max_entry ||
	    e->first_token > max_tokens || e->n_tokens > max_tokens - e->first_token)
		return job_fail(job, HSAMEM_EIMPORT, "import: entry %llu is malformed",
		                (unsigned long long)e->seq);
	for (size_t t = 0; t < e->n_tags; t++) {
		size_t l = strlen(e->tags[t]) + 1;
		if (l > OPS_MAX_TAG_BYTES + 1)
			return job_fail(job, HSAMEM_EIMPORT, "import: tag too long");
		memcpy(tags + tags_len, e->tags[t], l);
		tags_len += (uint32_t)l;
	}
	struct store_entry se = {
	        .seq = e->seq,
	        .role = e->has_role ? (uint32_t)e->role : 0,
	        .timestamp_ms = e->timestamp_ms,
	        .first_token = e->first_token,
	        .n_tokens = e->n_tokens,
	        .text = e->text != NULL ? e->text : "",
	        .text_len = (uint32_t)text_len,
	        .tags = tags,
	        .tags_len = tags_len,
	};
	u->n_entries++;
	return store_entry_put(txn, u->uid, &se);
}

/* Copies a record's token references, checking the counts and that they point at entries. */
static int
import_refs(struct job *job, uint32_t n, size_t n_entry, const uint64_t *entry, size_t n_off,
            const uint32_t *off, size_t n_len, const uint32_t *len, uint64_t n_entries,
            struct store_tokref *out)
{
	if (n_entry != n || n_off != n || n_len != n)
		return job_fail(job, HSAMEM_EIMPORT, "import: token references do not match");
	for (uint32_t i = 0; i < n; i++) {
		if (entry[i] >= n_entries && len[i] > 0)
			return job_fail(job, HSAMEM_EIMPORT, "import: a token refers to no entry");
		out[i] = (struct store_tokref){entry[i], off[i], len[i]};
	}
	return 0;
}

static int
import_chunk(struct job *job, struct store_txn *txn, struct store_user *u,
             const Hsamem__ExportRecord__ChunkRec *c, uint64_t n_entries_expected)
{
	const struct hsa_spec *spec = &u->spec;
	if (!c->has_index || c->index != u->n_chunks || c->n_tokens != spec->S ||
	    c->n_real > spec->S || c->kv.len != spec_kv_bytes(spec) ||
	    c->landmark.len != spec_landmark_bytes(spec))
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: chunk %llu is malformed or out of order",
		                (unsigned long long)c->index);
	struct store_tokref *refs = malloc(spec->S * sizeof(*refs));
	if (refs == NULL)
		return ops_oom(job);
	int ret = import_refs(job, spec->S, c->n_ref_entry, c->ref_entry, c->n_ref_off, c->ref_off,
	                      c->n_ref_len, c->ref_len, n_entries_expected, refs);
	if (ret == 0) {
		struct store_chunk sc = {.n_tokens = spec->S,
		                         .n_real = c->has_n_real ? c->n_real : spec->S,
		                         .tokens = c->tokens,
		                         .refs = refs};
		if ((ret = store_chunk_put(txn, u->uid, u->n_chunks, &sc)) == 0 &&
		    (ret = store_kv_put(txn, u->uid, u->n_chunks, c->kv.data, c->kv.len)) == 0 &&
		    (ret = store_landmark_put(txn, u, u->n_chunks, c->landmark.data)) == 0) {
			u->n_chunks++;
			if (sc.n_real < spec->S)
				u->n_padded++;
		}
	}
	free(refs);
	return ret;
}

/* Writes the stream's tail; *n gets its length. */
static int
import_tail(struct job *job, struct store_txn *txn, const struct store_user *u,
            const Hsamem__ExportRecord__Tail *t, uint64_t n_entries_expected, uint32_t *n)
{
	struct store_tokref *refs = malloc((t->n_tokens + 1) * sizeof(*refs));
	if (refs == NULL)
		return ops_oom(job);
	if (t->n_tokens >= u->spec.S) {
		free(refs);
		return job_fail(job, HSAMEM_EIMPORT, "import: tail is too long");
	}
	int ret =
	        import_refs(job, (uint32_t)t->n_tokens, t->n_ref_entry, t->ref_entry, t->n_ref_off,
	                    t->ref_off, t->n_ref_len, t->ref_len, n_entries_expected, refs);
	if (ret == 0) {
		struct store_tail nt = {
		        .n = (uint32_t)t->n_tokens, .tokens = t->tokens, .refs = refs};
		ret = store_tail_put(txn, u->uid, &nt);
	}
	free(refs);
	if (ret == 0)
		*n = (uint32_t)t->n_tokens;
	return ret;
}

int
ops_apply_import(struct job *job, struct store_txn *txn)
{
	const Hsamem__ImportRequest *q = job->req->import;
	struct store_user u;
	struct store_tail tail = {0};
	size_t i = 0;
	int ret;

	if (q->n_records > 0 && q->records[0]->rec_case == HSAMEM__EXPORT_RECORD__REC_HEADER) {
		if ((ret = import_header(job, txn, q->records[0]->header, &u)) != 0)
			return ret;
		i = 1;
	} else {
		ret = store_user_get(txn, q->user, &u);
		if (ret == HSAMEM_ENOUSER || (ret == 0 && !(u.flags & STORE_USER_IMPORTING)) ||
		    (ret == 0 && import_find(u.uid) == NULL))
			return job_fail(job, HSAMEM_EIMPORT,
			                "import: no import of '%s' in progress (the first batch "
			                "starts with the stream's header)",
			                q->user);
		if (ret != 0)
			return ret;
	}
	struct import_expect *x = import_find(u.uid);
	if ((ret = store_tail_get(txn, u.uid, &tail)) != 0)
		return ret;
	for (; i < q->n_records; i++) {
		const Hsamem__ExportRecord *r = q->records[i];
		switch (r->rec_case) {
		case HSAMEM__EXPORT_RECORD__REC_ENTRY:
			ret = import_entry(job, txn, &u, r->entry, x->tokens);
			break;
		case HSAMEM__EXPORT_RECORD__REC_CHUNK:
			ret = import_chunk(job, txn, &u, r->chunk, x->entries);
			break;
		case HSAMEM__EXPORT_RECORD__REC_TAIL:
			ret = import_tail(job, txn, &u, r->tail, x->entries, &tail.n);
			break;
		default:
			ret = job_fail(job, HSAMEM_EIMPORT,
			               "import: record %zu is of no known kind", i);
		}
		if (ret != 0)
			return ret;
	}
	u.n_tokens = u.n_chunks * u.spec.S + tail.n;
	job->uid = u.uid;
	bool done = q->has_last && q->last;
	if (done) {
		if (u.n_entries != x->entries || u.n_chunks != x->chunks || u.n_tokens != x->tokens)
			return job_fail(
			        job, HSAMEM_EIMPORT,
			        "import: the stream is incomplete: %llu/%llu entries, "
			        "%llu/%llu chunks, %llu/%llu tokens",
			        (unsigned long long)u.n_entries, (unsigned long long)x->entries,
			        (unsigned long long)u.n_chunks, (unsigned long long)x->chunks,
			        (unsigned long long)u.n_tokens, (unsigned long long)x->tokens);
		u.flags &= ~(uint32_t)STORE_USER_IMPORTING;
	}
	if ((ret = store_user_update(txn, &u)) != 0)
		return ret;
	Hsamem__ImportReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__import_reply__init(r);
	r->has_entries = r->has_chunks = r->has_done = true;
	r->entries = u.n_entries;
	r->chunks = u.n_chunks;
	r->done = done;
	job->reply.body_case = HSAMEM__REPLY__BODY_IMPORT;
	job->reply.import = r;
	return 0;
}

void
ops_committed_import(struct job *job)
{
	if (job->reply.import->done)
		ops_import_forget(job->uid);
}

struct cleanup {
	char (*names)[HSAMEM_NAME_MAX + 1];
	size_t n;
};

static int
cleanup_cb(const struct store_user *u, void *arg)
{
	struct cleanup *c = arg;
	if (!(u->flags & STORE_USER_IMPORTING))
		return 0;
	void *names = realloc(c->names, (c->n + 1) * sizeof(*c->names));
	if (names == NULL)
		return -ENOMEM;
	c->names = names;
	strcpy(c->names[c->n++], u->name);
	return 0;
}

int
ops_import_cleanup(struct store *store)
{
	struct cleanup c = {0};
	struct store_txn txn;
	int ret = store_txn_begin(store, &txn, true, NULL);
	if (ret != 0)
		return ret;
	ret = store_user_foreach(&txn, cleanup_cb, &c);
	for (size_t i = 0; i < c.n && ret == 0; i++) {
		struct store_user u;
		if ((ret = store_user_get(&txn, c.names[i], &u)) == 0)
			ret = store_user_delete(&txn, &u);
		log_notice("store: removed the unfinished import of user '%s'", c.names[i]);
	}
	if (ret == 0)
		ret = store_txn_commit(&txn);
	else
		store_txn_abort(&txn);
	free(c.names);
	return ret;
}
