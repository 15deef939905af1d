/*
 * ops_import.c: an export stream (ops_export.c) written back as a new memory, batch by batch.
 * hsamem(7), EXPORT STREAMS, says what clients are promised.
 *
 * The first batch starts with the header: it creates the memory marked as importing (invisible to
 * every other operation) and records the import in a table: who started it, what its header
 * promised. Each batch is one write of the committer, applied in a transaction of its own inside
 * the job's. Every record is checked against the memory's spec and against what the store holds
 * before it is written; a batch that fails takes its import with it (the memory is deleted in the
 * job's transaction), so a refused stream leaves nothing behind, not even in the store's free
 * pages: the store erases what it wrote (store.h, ERASURE). The last batch checks that the
 * stream adds up and clears the mark. A memory left marked by a previous run is deleted at start
 * (ops_import_cleanup).
 *
 * An import belongs to the connection that sent its header (conn.h: the NNG pipe, which the daemon
 * knows without the client's help and no other client can claim). Only that connection may send
 * the later batches or start the import over; another import of the same user is refused with
 * HSAMEM_EBUSY while the connection is open, and replaces the import once it has closed. A token
 * handed out by the daemon would do as well, but every client would have to carry it, and it
 * would take a timeout to tell an abandoned import from a slow one: a closed connection says so by
 * itself.
 *
 * Invariants:
 *  1. The table is touched only by the committer thread, and changed only by an apply that
 *     succeeded, by a failed batch that deletes its memory (which only marks the entry, since
 *     the group commit may still be run again, see commit.c), and after a group commit (which
 *     drops the marked entries and the finished import). A group commit that fails leaves
 *     entries the store does not match: a header replaces them, and (3) holds.
 *  2. A record is checked against the store as the batch's transaction sees it (the entries
 *     imported so far, the memory's counters), and against the header's counts as upper bounds;
 *     the last batch holds the store to them exactly.
 *  3. The sums of the tokens of the entries and of the real (unpadded) tokens of the chunks
 *     imported so far are a cache, stamped with the entry and chunk counts it covers; a batch
 *     that finds the store at other counts sums the entries and chunks again.
 *
 * Token positions: an entry's first_token is its place in the stream, where a flush's padding
 * counts (as in the memory's token count, chunks * S + tail). So the entries follow each other
 * without a gap, except that one may start at the next chunk boundary after a padded chunk; their
 * token counts add up to the real tokens of the chunks and the tail, and the last one ends where
 * the real tokens do.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "half.h"
#include "log.h"
#include "hybrid.h"
#include "layout.h"
#include "ops.h"
#include "ops_filter.h"

struct import {
	uint64_t uid;
	uint32_t conn;                    /* the connection that sent the header */
	uint64_t entries, chunks, tokens; /* what the header promised */
	/* sums over what is stored, for these counts (invariant 3) */
	uint64_t at_entries, at_chunks;
	uint64_t entry_tokens; /* tokens of entries [0, at_entries) */
	uint64_t real;         /* real tokens of chunks [0, at_chunks) */
	bool abandoned;        /* a failed batch deleted the memory: dropped after the commit */
};
static struct import *imports;
static size_t n_imports;

/* One batch being applied: the memory as its transaction sees it, and a copy of its import. */
struct batch {
	struct job *job;
	struct store_txn *txn;
	struct store_user u;
	struct import x;
	uint64_t replaced;  /* a dead import the header replaced (0: none) */
	uint64_t entry_end; /* where the last entry ends in the stream, padding counted */
	uint32_t tail_n;
	uint64_t text_seq; /* the last entry whose text length was looked up, + 1 (0: none) */
	uint32_t text_len;
};

static struct import *
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
	struct import *e = import_find(uid);
	if (e != NULL)
		*e = imports[--n_imports];
}

/* Records x in the table, over an entry of the same uid (one left by an aborted transaction, whose
 * uid was given again). */
static int
import_publish(const struct import *x)
{
	struct import *e = import_find(x->uid);
	if (e == NULL) {
		struct import *grown = realloc(imports, (n_imports + 1) * sizeof(*imports));
		if (grown == NULL)
			return -ENOMEM;
		imports = grown;
		e = &imports[n_imports++];
	}
	*e = *x;
	return 0;
}

int
ops_prepare_import(struct job *job)
{
	return ops_check_name(job, job->req->import->user);
}

/* Checks the header and builds the memory's spec with the same check as create. */
static int
header_spec(struct job *job, const Hsamem__ExportRecord__Header *h, struct hsa_spec *spec)
{
	const Hsamem__Spec *p = h->spec;
	if (!h->has_format || h->format != OPS_EXPORT_FORMAT)
		return job_fail(job, HSAMEM_EIMPORT, "import: export format %u is not supported",
		                h->has_format ? h->format : 0);
	if (p == NULL || p->encoder == NULL || *p->encoder == '\0')
		return job_fail(job, HSAMEM_EIMPORT, "import: the header has no spec");
	/* the stream's shapes are taken as they are, never from an encoder's defaults */
	if (!p->has_chunk_size || !p->has_h_kv || !p->has_d_h || !p->has_h_q || !p->has_d_r ||
	    !p->has_dtype)
		return job_fail(job, HSAMEM_EIMPORT, "import: the header's spec lacks a shape");
	if (!h->has_entries || !h->has_chunks || !h->has_tokens)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: the header lacks the stream's counts");
	/* a built-in encoder's shapes, tokenizer and revision are its own, as for create */
	if (ops_spec_from_proto(job, p, spec) != 0)
		return job_fail(job, job->reply.status, "import: header: %s", job->reply.message);
	if (h->tokens / spec->S != h->chunks || h->entries > h->tokens)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: the header's counts do not add up: %llu entries, %llu "
		                "chunks of %u tokens and a tail cannot hold %llu tokens",
		                (unsigned long long)h->entries, (unsigned long long)h->chunks,
		                spec->S, (unsigned long long)h->tokens);
	return 0;
}

/* The first batch: creates the memory, marked as importing, in place of a dead import. */
static int
import_begin(struct batch *b, const Hsamem__ExportRecord__Header *h)
{
	struct job *job = b->job;
	const char *name = job->req->import->user;
	struct store_user old, *u = &b->u;
	struct hsa_spec spec;
	int ret = header_spec(job, h, &spec);
	if (ret != 0)
		return ret;
	ret = store_user_get(b->txn, name, &old);
	if (ret == 0 && (old.flags & STORE_USER_IMPORTING)) {
		const struct import *o = import_find(old.uid);
		if (o != NULL && o->conn != job->conn && conn_open(o->conn))
			return job_fail(
			        job, HSAMEM_EBUSY,
			        "import: user '%s' is being imported by another connection: "
			        "wait until that import ends, or delete the user to end it",
			        name);
		if ((ret = store_user_delete(b->txn, &old)) != 0)
			return ret;
		b->replaced = old.uid;
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
	u->flags = STORE_USER_IMPORTING | layout_flags(&spec);
	if ((ret = store_user_create(b->txn, u)) != 0)
		return ret;
	b->x = (struct import){.uid = u->uid,
	                       .conn = job->conn,
	                       .entries = h->entries,
	                       .chunks = h->chunks,
	                       .tokens = h->tokens};
	return 0;
}

/* Sums the tokens of the entries and the real tokens of the chunks stored (invariant 3). */
static int
count_again(struct batch *b)
{
	uint64_t tokens = 0, real = 0;
	int ret = 0;
	for (uint64_t i = 0; i < b->u.n_entries && ret == 0; i++) {
		struct store_entry e;
		if ((ret = store_entry_get(b->txn, b->u.uid, i, &e)) == 0)
			tokens += e.n_tokens;
	}
	for (uint64_t j = 0; j < b->u.n_chunks && ret == 0; j++) {
		struct store_chunk c;
		if ((ret = store_chunk_get(b->txn, b->u.uid, j, &c)) == 0)
			real += c.n_real;
	}
	if (ret != 0)
		return ret;
	log_info("import: counted the entries and chunks of user '%s' again after a failed commit",
	         b->u.name);
	b->x.entry_tokens = tokens;
	b->x.real = real;
	b->x.at_entries = b->u.n_entries;
	b->x.at_chunks = b->u.n_chunks;
	return 0;
}

/* A later batch: finds the import, which must be this connection's. */
static int
import_resume(struct batch *b)
{
	struct job *job = b->job;
	const char *name = job->req->import->user;
	int ret = store_user_get(b->txn, name, &b->u);
	if (ret != 0 && ret != HSAMEM_ENOUSER)
		return ret;
	const struct import *x =
	        ret == 0 && (b->u.flags & STORE_USER_IMPORTING) ? import_find(b->u.uid) : NULL;
	if (x == NULL)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: no import of '%s' is in progress (the first batch starts "
		                "with the stream's header)",
		                name);
	if (x->conn != job->conn)
		return job_fail(job, HSAMEM_EBUSY,
		                "import: the import of '%s' belongs to the connection that started "
		                "it",
		                name);
	b->x = *x;
	if (b->x.at_entries == b->u.n_entries && b->x.at_chunks == b->u.n_chunks)
		return 0;
	return count_again(b);
}

/* The text length of entry seq, which the batch has imported. */
static int
text_len(struct batch *b, uint64_t seq, uint32_t *len)
{
	if (b->text_seq != seq + 1) {
		struct store_entry e;
		int ret = store_entry_get(b->txn, b->u.uid, seq, &e);
		if (ret != 0)
			return ret;
		b->text_seq = seq + 1;
		b->text_len = e.text_len;
	}
	*len = b->text_len;
	return 0;
}

/*
 * Checks the text reference of token slot i of a chunk or the tail (where: which, for the
 * message): a real token names an entry imported so far and a byte range inside its text; a
 * padding slot (real false) is empty.
 */
static int
check_ref(struct batch *b, const char *where, uint32_t i, bool real, const struct store_tokref *r)
{
	uint32_t len;
	int ret;
	if (!real) {
		if (r->entry != 0 || r->off != 0 || r->len != 0)
			return job_fail(b->job, HSAMEM_EIMPORT,
			                "import: %s: padding slot %u refers to text", where, i);
		return 0;
	}
	if (r->entry >= b->u.n_entries)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: %s: token %u refers to entry %llu, which the stream has "
		                "not sent before it",
		                where, i, (unsigned long long)r->entry);
	if ((ret = text_len(b, r->entry, &len)) != 0)
		return ret;
	if (r->off > len || r->len > len - r->off)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: %s: token %u refers to bytes %u to %llu of entry %llu, "
		                "whose text has %u bytes",
		                where, i, r->off, (unsigned long long)r->off + r->len,
		                (unsigned long long)r->entry, len);
	return 0;
}

static int
import_entry(struct batch *b, const Hsamem__Entry *e)
{
	struct job *job = b->job;
	uint64_t seq = b->u.n_entries;
	size_t text_len = e->text != NULL ? strlen(e->text) : 0;
	char tags[OPS_MAX_TAGS * (OPS_MAX_TAG_BYTES + 1)];
	uint32_t tags_len = 0;
	if (!e->has_seq || e->seq != seq)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: entry %llu is out of order (%llu next)",
		                (unsigned long long)e->seq, (unsigned long long)seq);
	if (seq >= b->x.entries)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: entry %llu is past the header's %llu entries",
		                (unsigned long long)seq, (unsigned long long)b->x.entries);
	if (e->has_role &&
	    (e->role < HSAMEM__ROLE__ROLE_OTHER || e->role > HSAMEM__ROLE__ROLE_TOOL))
		return job_fail(job, HSAMEM_EIMPORT, "import: entry %llu has an unknown role %d",
		                (unsigned long long)seq, (int)e->role);
	if (e->n_tags > OPS_MAX_TAGS || text_len > job->d->conf.max_entry)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: entry %llu has more than %d tags or a text past max-entry",
		                (unsigned long long)seq, OPS_MAX_TAGS);
	/* right after the entry before, or at the next chunk after a flush padded the last one */
	uint64_t end = b->entry_end, S = b->u.spec.S, padded = end % S ? end - end % S + S : end;
	if (!e->has_first_token || (e->first_token != end && e->first_token != padded) ||
	    !e->has_n_tokens || e->n_tokens == 0 || e->first_token > b->x.tokens ||
	    e->n_tokens > b->x.tokens - e->first_token)
		return job_fail(job, HSAMEM_EIMPORT,
		                "import: entry %llu holds tokens %llu to %llu, but the entries "
		                "before it end at token %llu and the stream has %llu",
		                (unsigned long long)seq, (unsigned long long)e->first_token,
		                (unsigned long long)e->first_token + e->n_tokens,
		                (unsigned long long)end, (unsigned long long)b->x.tokens);
	for (size_t t = 0; t < e->n_tags; t++) {
		size_t l = strlen(e->tags[t]) + 1;
		if (l < 2 || l > OPS_MAX_TAG_BYTES + 1)
			return job_fail(job, HSAMEM_EIMPORT,
			                "import: entry %llu: tags must be 1 to %d bytes",
			                (unsigned long long)seq, OPS_MAX_TAG_BYTES);
		memcpy(tags + tags_len, e->tags[t], l);
		tags_len += (uint32_t)l;
	}
	char *scope = NULL, *meta = NULL;
	uint32_t scope_len = 0, meta_len = 0;
	int ret;
	if ((ret = ops_scope_check(job, e->scope, e->n_scope, "import: entry scope")) != 0 ||
	    (ret = ops_attrs_pack(job, e->scope, e->n_scope, "import: entry scope", &scope,
	                          &scope_len)) != 0 ||
	    (ret = ops_attrs_pack(job, e->meta, e->n_meta, "import: entry meta", &meta,
	                          &meta_len)) != 0)
		return ret;
	struct store_entry se = {
	        .seq = seq,
	        .role = e->has_role ? (uint32_t)e->role : 0,
	        .scope = scope,
	        .scope_len = scope_len,
	        .meta = meta,
	        .meta_len = meta_len,
	        .timestamp_ms = e->timestamp_ms,
	        .first_token = e->first_token,
	        .n_tokens = e->n_tokens,
	        .text = e->text != NULL ? e->text : "",
	        .text_len = (uint32_t)text_len,
	        .tags = tags,
	        .tags_len = tags_len,
	};
	b->u.n_entries++;
	b->entry_end = e->first_token + e->n_tokens;
	b->x.entry_tokens += e->n_tokens;
	b->x.at_entries = b->u.n_entries;
	return store_entry_put(b->txn, b->u.uid, &se);
}

/* Copies n token references out of a record's three parallel arrays, checking each. */
static int
import_refs(struct batch *b, const char *where, uint32_t n, uint32_t n_real, size_t n_entry,
            const uint64_t *entry, size_t n_off, const uint32_t *off, size_t n_len,
            const uint32_t *len, struct store_tokref *out)
{
	if (n_entry != n || n_off != n || n_len != n)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: %s: %u tokens need as many text references", where, n);
	for (uint32_t i = 0; i < n; i++) {
		out[i] = (struct store_tokref){entry[i], off[i], len[i]};
		int ret = check_ref(b, where, i, i < n_real, &out[i]);
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* Checks a chunk's shape and tensors (before its references, which cost store reads). */
static int
check_chunk(struct batch *b, const Hsamem__ExportRecord__ChunkRec *c, const char *where)
{
	const struct hsa_spec *spec = &b->u.spec;
	size_t elem = spec_elem_size(spec->dtype);
	uint32_t n_real = c->has_n_real ? c->n_real : spec->S;
	if (!c->has_index || c->index != b->u.n_chunks)
		return job_fail(b->job, HSAMEM_EIMPORT, "import: %s is out of order (%llu next)",
		                where, (unsigned long long)b->u.n_chunks);
	if (b->u.n_chunks >= b->x.chunks)
		return job_fail(b->job, HSAMEM_EIMPORT, "import: %s is past the header's %llu",
		                where, (unsigned long long)b->x.chunks);
	if (c->n_tokens != spec->S || n_real == 0 || n_real > spec->S)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: %s has %zu token slots and %u real tokens; chunk_size "
		                "is %u",
		                where, c->n_tokens, n_real, spec->S);
	if (c->kv.len != spec_kv_bytes(spec) || c->landmark.len != spec_landmark_bytes(spec))
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: %s: K|V must be %zu bytes and the landmark %zu (the "
		                "spec's shapes), not %zu and %zu",
		                where, spec_kv_bytes(spec), spec_landmark_bytes(spec), c->kv.len,
		                c->landmark.len);
	if (!half_row_finite(spec->dtype, c->kv.data, c->kv.len / elem) ||
	    !half_row_finite(spec->dtype, c->landmark.data, c->landmark.len / elem))
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: %s: %s holds a value that is not finite (NaN or "
		                "infinity)",
		                where,
		                half_row_finite(spec->dtype, c->kv.data, c->kv.len / elem)
		                        ? "the landmark"
		                        : "K|V");
	return 0;
}

/* A built-in encoder's memory keeps term statistics (store.h, TERMS), and a model's also its
 * chunks' lexical landmarks (hybrid.c). A stream carries neither: they are made again from the
 * chunks' tokens, as the seals made them. */
static int
import_terms(struct batch *b, uint64_t j, const uint32_t *tokens, uint32_t n_real)
{
	if (strcmp(b->u.spec.encoder, "client") == 0)
		return 0;
	if (b->u.flags & STORE_USER_LEXICAL)
		return hyb_seal(b->txn, &b->u, enc_find(b->u.spec.encoder), j, tokens, n_real);
	return store_terms_add(b->txn, b->u.uid, tokens, n_real);
}

static int
import_chunk(struct batch *b, const Hsamem__ExportRecord__ChunkRec *c)
{
	const struct hsa_spec *spec = &b->u.spec;
	uint64_t j = b->u.n_chunks;
	char where[48];
	snprintf(where, sizeof(where), "chunk %llu", (unsigned long long)j);
	int ret = check_chunk(b, c, where);
	if (ret != 0)
		return ret;
	uint32_t n_real = c->has_n_real ? c->n_real : spec->S;
	struct store_tokref *refs = malloc(spec->S * sizeof(*refs));
	if (refs == NULL)
		return ops_oom(b->job);
	ret = import_refs(b, where, spec->S, n_real, c->n_ref_entry, c->ref_entry, c->n_ref_off,
	                  c->ref_off, c->n_ref_len, c->ref_len, refs);
	for (uint32_t i = n_real; ret == 0 && i < spec->S; i++)
		if (c->tokens[i] != 0)
			ret = job_fail(b->job, HSAMEM_EIMPORT,
			               "import: %s: padding slot %u holds a token", where, i);
	if (ret == 0) {
		struct store_chunk sc = {
		        .n_tokens = spec->S, .n_real = n_real, .tokens = c->tokens, .refs = refs};
		/* a memory whose encoder computes K/V from the tokens keeps the stream's none
		 * (store.h, COMPUTED K/V): they were checked for shape only */
		bool keep_kv = !(b->u.flags & STORE_USER_KV_COMPUTED);
		if ((ret = store_chunk_put(b->txn, b->u.uid, j, &sc)) == 0 &&
		    (!keep_kv ||
		     (ret = store_kv_put(b->txn, b->u.uid, j, c->kv.data, c->kv.len)) == 0) &&
		    (ret = store_landmark_put(b->txn, &b->u, j, c->landmark.data)) == 0 &&
		    (ret = import_terms(b, j, c->tokens, n_real)) == 0) {
			b->u.n_chunks++;
			b->u.n_padded += n_real < spec->S;
			b->x.real += n_real;
			b->x.at_chunks = b->u.n_chunks;
		}
	}
	free(refs);
	return ret;
}

/* Writes the stream's tail. Its references are checked by the last batch, since the tail may come
 * before the entries it refers to. */
static int
import_tail(struct batch *b, const Hsamem__ExportRecord__Tail *t)
{
	uint32_t n = (uint32_t)t->n_tokens;
	if (t->n_tokens >= b->u.spec.S)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: the tail has %zu tokens; it must be shorter than "
		                "chunk_size (%u)",
		                t->n_tokens, b->u.spec.S);
	if (t->n_ref_entry != n || t->n_ref_off != n || t->n_ref_len != n)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: the tail: %u tokens need as many text references", n);
	struct store_tokref *refs = malloc((n + 1) * sizeof(*refs));
	if (refs == NULL)
		return ops_oom(b->job);
	for (uint32_t i = 0; i < n; i++)
		refs[i] = (struct store_tokref){t->ref_entry[i], t->ref_off[i], t->ref_len[i]};
	struct store_tail nt = {.n = n, .tokens = t->tokens, .refs = refs};
	int ret = store_tail_put(b->txn, b->u.uid, &nt);
	free(refs);
	if (ret == 0)
		b->tail_n = n;
	return ret;
}

static int
import_records(struct batch *b, size_t from)
{
	const Hsamem__ImportRequest *q = b->job->req->import;
	int ret = 0;
	for (size_t i = from; i < q->n_records && ret == 0; i++) {
		const Hsamem__ExportRecord *r = q->records[i];
		switch (r->rec_case) {
		case HSAMEM__EXPORT_RECORD__REC_ENTRY: ret = import_entry(b, r->entry); break;
		case HSAMEM__EXPORT_RECORD__REC_CHUNK: ret = import_chunk(b, r->chunk); break;
		case HSAMEM__EXPORT_RECORD__REC_TAIL: ret = import_tail(b, r->tail); break;
		case HSAMEM__EXPORT_RECORD__REC_HEADER:
			ret = job_fail(b->job, HSAMEM_EIMPORT,
			               "import: record %zu of the batch is a second header", i);
			break;
		default:
			ret = job_fail(b->job, HSAMEM_EIMPORT,
			               "import: record %zu of the batch is of no known kind", i);
		}
	}
	return ret;
}

/* The last batch: the stream must be what its header promised, and add up. */
static int
import_finish(struct batch *b)
{
	const struct store_user *u = &b->u;
	const struct import *x = &b->x;
	struct store_tail tail;
	int ret;
	if (u->n_entries != x->entries || u->n_chunks != x->chunks || u->n_tokens != x->tokens)
		return job_fail(
		        b->job, HSAMEM_EIMPORT,
		        "import: the stream is incomplete: %llu/%llu entries, %llu/%llu chunks, "
		        "%llu/%llu tokens",
		        (unsigned long long)u->n_entries, (unsigned long long)x->entries,
		        (unsigned long long)u->n_chunks, (unsigned long long)x->chunks,
		        (unsigned long long)u->n_tokens, (unsigned long long)x->tokens);
	if (x->entry_tokens != x->real + b->tail_n)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: the entries hold %llu tokens, but the chunks and the tail "
		                "%llu (%llu real tokens in chunks, %u in the tail)",
		                (unsigned long long)x->entry_tokens,
		                (unsigned long long)(x->real + b->tail_n),
		                (unsigned long long)x->real, b->tail_n);
	/* the real tokens end at the stream's end, or before the last chunk's padding */
	uint64_t end = u->n_tokens;
	if (b->tail_n == 0 && u->n_chunks > 0) {
		struct store_chunk last;
		if ((ret = store_chunk_get(b->txn, u->uid, u->n_chunks - 1, &last)) != 0)
			return ret;
		end -= u->spec.S - last.n_real;
	}
	if (b->entry_end != end)
		return job_fail(b->job, HSAMEM_EIMPORT,
		                "import: the last entry ends at token %llu, but the stream's real "
		                "tokens at %llu",
		                (unsigned long long)b->entry_end, (unsigned long long)end);
	if ((ret = store_tail_get(b->txn, u->uid, &tail)) != 0)
		return ret;
	for (uint32_t i = 0; i < tail.n; i++)
		if ((ret = check_ref(b, "the tail", i, true, &tail.refs[i])) != 0)
			return ret;
	b->u.flags &= ~(uint32_t)STORE_USER_IMPORTING;
	return 0;
}

/* The batch's records, in the batch's own transaction b->txn, from the memory as it was. */
static int
import_batch(struct batch *b, size_t from, bool last)
{
	struct store_tail tail;
	struct store_entry e;
	int ret = store_tail_get(b->txn, b->u.uid, &tail);
	if (ret != 0)
		return ret;
	b->tail_n = tail.n;
	if (b->u.n_entries > 0) {
		if ((ret = store_entry_get(b->txn, b->u.uid, b->u.n_entries - 1, &e)) != 0)
			return ret;
		b->entry_end = e.first_token + e.n_tokens;
	}
	if ((ret = import_records(b, from)) != 0)
		return ret;
	b->u.n_tokens = b->u.n_chunks * b->u.spec.S + b->tail_n;
	if (last && (ret = import_finish(b)) != 0)
		return ret;
	return store_user_update(b->txn, &b->u);
}

/* A batch of a started import failed: delete the memory, so that a refused stream leaves nothing,
 * and say so. The job's transaction commits the delete. */
static int
import_abandon(struct batch *b, struct store_txn *txn, int err)
{
	struct job *job = b->job;
	int status = job->reply.status != 0 ? job->reply.status : err;
	const char *why = job->reply.message != NULL ? job->reply.message : hsamem_strerror(err);
	struct store_user u;
	int ret = store_user_get(txn, b->u.name, &u);
	if (ret != 0 || (ret = store_user_delete(txn, &u)) != 0)
		return ret;
	struct import *x = import_find(u.uid);
	if (x != NULL)
		x->abandoned = true;
	job_fail(job, status, "%s; the import of '%s' is abandoned", why, u.name);
	return 0;
}

static int
import_reply(struct batch *b, bool done)
{
	struct job *job = b->job;
	Hsamem__ImportReply *r = arena_alloc(&job->arena, sizeof(*r));
	if (r == NULL)
		return ops_oom(job);
	hsamem__import_reply__init(r);
	r->has_entries = r->has_chunks = r->has_done = true;
	r->entries = b->u.n_entries;
	r->chunks = b->u.n_chunks;
	r->done = done;
	job->uid = b->u.uid;
	job->reply.body_case = HSAMEM__REPLY__BODY_IMPORT;
	job->reply.import = r;
	return 0;
}

/*
 * Applies one batch. Its records go into a transaction nested in the job's: when one is refused,
 * a first batch leaves nothing (the job's transaction is aborted), and a later batch abandons its
 * import (the job's transaction deletes the memory; the job fails, but that is committed).
 */
int
ops_apply_import(struct job *job, struct store_txn *txn)
{
	const Hsamem__ImportRequest *q = job->req->import;
	const Hsamem__ExportRecord *first = q->n_records > 0 ? q->records[0] : NULL;
	bool header = first != NULL && first->rec_case == HSAMEM__EXPORT_RECORD__REC_HEADER;
	bool last = q->has_last && q->last;
	struct store_txn own;
	struct batch b = {.job = job, .txn = &own};
	int ret = store_txn_begin(job->d->store, &own, true, txn);
	if (ret != 0)
		return ret;
	ret = header ? import_begin(&b, first->header) : import_resume(&b);
	if (ret != 0) {
		store_txn_abort(&own);
		return ret;
	}
	if ((ret = import_batch(&b, header ? 1 : 0, last)) == 0) {
		ret = store_txn_commit(&own);
	} else {
		store_txn_abort(&own);
		/* what it wrote is in LMDB's buffers; a later batch's abandon also marks */
		store_erase_want(job->d->store);
	}
	if (ret == 0 && (ret = import_publish(&b.x)) == 0) {
		if (b.replaced != 0)
			ops_import_forget(b.replaced);
		return import_reply(&b, last);
	}
	if (store_full(ret) || header)
		return ret;
	return import_abandon(&b, txn, ret);
}

void
ops_committed_import(struct job *job)
{
	for (size_t i = 0; i < n_imports;)
		if (imports[i].abandoned)
			imports[i] = imports[--n_imports];
		else
			i++;
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
		/* a re-encode's hidden memory (ops_reencode.c) is named ~reencode.<uid> */
		log_notice("store: removed the unfinished %s '%s'",
		           c.names[i][0] == '~' ? "re-encode" : "import of user", c.names[i]);
	}
	if (ret == 0)
		ret = store_txn_commit(&txn);
	else
		store_txn_abort(&txn);
	free(c.names);
	return ret;
}
