/*
 * request.c: the requests of libhsamem, one function each: checks the caller's arguments, builds
 * the protocol request (pointing into the caller's memory where packing only reads it), makes the
 * exchange through clib_rpc() and hands the reply to result.c, which turns it into the result.
 *
 * Small results (append, flush, delete) are copied here into the caller's struct; heap results
 * come whole from a res_*() or not at all. Export and import, which take many requests, are in
 * xfer.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

int
hsamem_ping(struct hsamem *h, struct hsamem_server **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__PingRequest ping = HSAMEM__PING_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	req.body_case = HSAMEM__REQUEST__BODY_PING;
	req.ping = &ping;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_PING, &r)) != 0)
		return err;
	if (out != NULL)
		err = res_server(h, r->ping, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

/* Fills a protocol spec from the public one; only the fields the caller set travel, so that the
 * daemon applies its defaults to the rest. */
static void
spec_to_wire(Hsamem__Spec *w, const struct hsamem_spec *s)
{
	if (s->encoder != NULL && s->encoder[0] != '\0')
		w->encoder = (char *)s->encoder;
	if (s->tokenizer != NULL && s->tokenizer[0] != '\0')
		w->tokenizer = (char *)s->tokenizer;
#define SET(wf, v)                                                                                 \
	do {                                                                                       \
		if ((v) != 0) {                                                                    \
			w->has_##wf = 1;                                                           \
			w->wf = (v);                                                               \
		}                                                                                  \
	} while (0)
	SET(revision, s->revision);
	SET(chunk_size, s->chunk_size);
	SET(h_kv, s->h_kv);
	SET(d_h, s->d_h);
	SET(h_q, s->h_q);
	SET(d_r, s->d_r);
	SET(dtype, (Hsamem__DType)s->dtype);
	SET(weighting, (Hsamem__Weighting)s->weighting);
	SET(off_by_one, s->off_by_one);
	SET(top_k, s->top_k);
#undef SET
}

int
hsamem_create(struct hsamem *h, const char *user, const struct hsamem_spec *spec,
              struct hsamem_memory **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__CreateRequest cr = HSAMEM__CREATE_REQUEST__INIT;
	Hsamem__Spec ws = HSAMEM__SPEC__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	cr.user = (char *)user;
	if (spec != NULL) {
		spec_to_wire(&ws, spec);
		cr.spec = &ws;
	}
	req.body_case = HSAMEM__REQUEST__BODY_CREATE;
	req.create = &cr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_CREATE, &r)) != 0)
		return err;
	if (out != NULL)
		err = res_memory(h, r->create, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

/* Points a protocol chunk at the caller's tensors (packing only reads them). */
static void
chunk_to_wire(Hsamem__ChunkIn *w, const struct hsamem_chunk_in *c)
{
	w->has_k = 1;
	w->k.data = (uint8_t *)c->k;
	w->k.len = c->k_size;
	w->has_v = 1;
	w->v.data = (uint8_t *)c->v;
	w->v.len = c->v_size;
	w->has_landmark = 1;
	w->landmark.data = (uint8_t *)c->landmark;
	w->landmark.len = c->landmark_size;
}

int
hsamem_append(struct hsamem *h, const char *user, const struct hsamem_entry_in *entries,
              size_t n_entries, const struct hsamem_chunk_in *chunks, size_t n_chunks,
              unsigned flags, struct hsamem_append_info *out)
{
	return clib_append(h, user, entries, n_entries, chunks, n_chunks, flags, out, NULL, NULL);
}

int
clib_append(struct hsamem *h, const char *user, const struct hsamem_entry_in *entries,
            size_t n_entries, const struct hsamem_chunk_in *chunks, size_t n_chunks, unsigned flags,
            struct hsamem_append_info *out,
            void (*decorate)(Hsamem__EntryIn *we, size_t i, void *arg), void *arg)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AppendRequest ar = HSAMEM__APPEND_REQUEST__INIT;
	Hsamem__EntryIn *we = NULL, **wep = NULL;
	Hsamem__ChunkIn *wc = NULL, **wcp = NULL;
	Hsamem__AppendReply *ap;
	Hsamem__Reply *r;
	size_t i;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (n_entries == 0 || entries == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "an append needs at least one entry");
	if (n_chunks > 0 && chunks == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "n_chunks is %zu but chunks is NULL", n_chunks);
	err = clib_fail(h, -ENOMEM, "out of memory");
	if ((we = calloc(n_entries, sizeof(*we))) == NULL ||
	    (wep = calloc(n_entries, sizeof(*wep))) == NULL)
		goto done;
	if (n_chunks > 0 && ((wc = calloc(n_chunks, sizeof(*wc))) == NULL ||
	                     (wcp = calloc(n_chunks, sizeof(*wcp))) == NULL))
		goto done;
	for (i = 0; i < n_entries; i++) {
		const struct hsamem_entry_in *e = &entries[i];

		hsamem__entry_in__init(&we[i]);
		if (e->n_tokens > 0 && e->tokens == NULL) {
			err = clib_fail(h, HSAMEM_EINVAL, "entry %zu: n_tokens without tokens", i);
			goto done;
		}
		if (e->n_tags > 0 && e->tags == NULL) {
			err = clib_fail(h, HSAMEM_EINVAL, "entry %zu: n_tags without tags", i);
			goto done;
		}
		we[i].text = (char *)e->text;
		we[i].n_tokens = e->n_tokens;
		we[i].tokens = (uint32_t *)e->tokens;
		if (e->role != HSAMEM_ROLE_OTHER) {
			we[i].has_role = 1;
			we[i].role = (Hsamem__Role)e->role;
		}
		if (e->timestamp_ms != 0) {
			we[i].has_timestamp_ms = 1;
			we[i].timestamp_ms = e->timestamp_ms;
		}
		we[i].n_tags = e->n_tags;
		we[i].tags = (char **)e->tags;
		if (decorate != NULL)
			decorate(&we[i], i, arg);
		wep[i] = &we[i];
	}
	for (i = 0; i < n_chunks; i++) {
		hsamem__chunk_in__init(&wc[i]);
		chunk_to_wire(&wc[i], &chunks[i]);
		wcp[i] = &wc[i];
	}
	ar.user = (char *)user;
	ar.n_entries = n_entries;
	ar.entries = wep;
	ar.n_chunks = n_chunks;
	ar.chunks = wcp;
	if (flags & HSAMEM_APPEND_NO_CREATE) {
		ar.has_create = 1;
		ar.create = 0;
	}
	req.body_case = HSAMEM__REQUEST__BODY_APPEND;
	req.append = &ar;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_APPEND, &r)) != 0)
		goto done;
	ap = r->append;
	if (ap->count != n_entries) {
		err = clib_fail(h, HSAMEM_EPROTO, "the daemon appended %u entries of %zu",
		                ap->count, n_entries);
	} else if (out != NULL) {
		out->first_seq = ap->first_seq;
		out->count = ap->count;
		out->tokens = ap->tokens;
		out->chunks = ap->chunks;
		out->sealed = ap->sealed;
		out->created = ap->created;
	}
	hsamem__reply__free_unpacked(r, NULL);
done:
	free(wcp);
	free(wc);
	free(wep);
	free(we);
	return err;
}

int
hsamem_append_text(struct hsamem *h, const char *user, enum hsamem_role role, const char *text,
                   uint64_t *seq)
{
	struct hsamem_entry_in e = {.text = text, .role = role};
	struct hsamem_append_info info;
	int err;

	if (text == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "no text given");
	if ((err = hsamem_append(h, user, &e, 1, NULL, 0, 0, &info)) != 0)
		return err;
	if (seq != NULL)
		*seq = info.first_seq;
	return 0;
}

int
hsamem_flush(struct hsamem *h, const char *user, const struct hsamem_chunk_in *chunk,
             struct hsamem_flush_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__FlushRequest fr = HSAMEM__FLUSH_REQUEST__INIT;
	Hsamem__ChunkIn wc = HSAMEM__CHUNK_IN__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	fr.user = (char *)user;
	if (chunk != NULL) {
		chunk_to_wire(&wc, chunk);
		fr.chunk = &wc;
	}
	req.body_case = HSAMEM__REQUEST__BODY_FLUSH;
	req.flush = &fr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_FLUSH, &r)) != 0)
		return err;
	if (out != NULL) {
		out->chunks = r->flush->chunks;
		out->sealed = r->flush->sealed;
	}
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_delete(struct hsamem *h, const char *user, struct hsamem_delete_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__DeleteRequest dr = HSAMEM__DELETE_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	dr.user = (char *)user;
	req.body_case = HSAMEM__REQUEST__BODY_DELETE;
	req.delete_ = &dr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_DELETE, &r)) != 0)
		return err;
	if (out != NULL) {
		out->entries = r->delete_->entries;
		out->chunks = r->delete_->chunks;
	}
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_forget(struct hsamem *h, const char *user, uint64_t first, uint64_t last,
              struct hsamem_forget_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ForgetRequest fr = HSAMEM__FORGET_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	fr.user = (char *)user;
	fr.has_first = fr.has_last = true;
	fr.first = first;
	fr.last = last;
	req.body_case = HSAMEM__REQUEST__BODY_FORGET;
	req.forget = &fr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_FORGET, &r)) != 0)
		return err;
	if (out != NULL) {
		out->entries = r->forget->entries;
		out->chunks = r->forget->chunks;
	}
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_update(struct hsamem *h, const char *user, uint64_t seq, enum hsamem_role role,
              const char *text, bool keep_history, struct hsamem_update_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__UpdateRequest ur = HSAMEM__UPDATE_REQUEST__INIT;
	Hsamem__EntryIn e = HSAMEM__ENTRY_IN__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (text == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "no text given");
	e.text = (char *)text;
	e.has_role = true;
	e.role = (Hsamem__Role)role;
	ur.user = (char *)user;
	ur.has_seq = ur.has_keep_history = true;
	ur.seq = seq;
	ur.keep_history = keep_history;
	ur.entry = &e;
	req.body_case = HSAMEM__REQUEST__BODY_UPDATE;
	req.update = &ur;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_UPDATE, &r)) != 0)
		return err;
	if (out != NULL) {
		out->seq = r->update->seq;
		out->replaces = r->update->replaces;
		out->forgotten = r->update->forgotten;
	}
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_history(struct hsamem *h, const char *user, uint64_t seq, struct hsamem_history **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__HistoryRequest hr = HSAMEM__HISTORY_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	hr.user = (char *)user;
	hr.has_seq = true;
	hr.seq = seq;
	req.body_case = HSAMEM__REQUEST__BODY_HISTORY;
	req.history = &hr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_HISTORY, &r)) != 0)
		return err;
	err = res_history(h, r->history, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_backup(struct hsamem *h, const char *path, struct hsamem_backup_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__BackupRequest br = HSAMEM__BACKUP_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if (h == NULL || path == NULL)
		return HSAMEM_EINVAL;
	br.path = (char *)path;
	req.body_case = HSAMEM__REQUEST__BODY_BACKUP;
	req.backup = &br;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_BACKUP, &r)) != 0)
		return err;
	if (out != NULL)
		*out = (struct hsamem_backup_info){r->backup->bytes, r->backup->ms};
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_compact(struct hsamem *h, struct hsamem_compact_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__CompactRequest cr = HSAMEM__COMPACT_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if (h == NULL)
		return HSAMEM_EINVAL;
	req.body_case = HSAMEM__REQUEST__BODY_COMPACT;
	req.compact = &cr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_COMPACT, &r)) != 0)
		return err;
	if (out != NULL)
		*out = (struct hsamem_compact_info){r->compact->bytes_before,
		                                    r->compact->bytes_after, r->compact->ms,
		                                    r->compact->pause_ms};
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_reencode(struct hsamem *h, const char *user, const char *encoder, uint32_t revision,
                struct hsamem_reencode_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ReencodeRequest rr = HSAMEM__REENCODE_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (encoder == NULL || out == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "reencode: encoder and out are required");
	rr.user = (char *)user;
	rr.encoder = (char *)encoder;
	rr.has_revision = revision != 0;
	rr.revision = revision;
	req.body_case = HSAMEM__REQUEST__BODY_REENCODE;
	req.reencode = &rr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_REENCODE, &r)) != 0)
		return err;
	const Hsamem__ReencodeReply *p = r->reencode;
	memset(out, 0, sizeof(*out));
	out->done = p->done;
	out->switched = p->switched;
	out->entries_done = p->entries_done;
	out->entries_total = p->entries_total;
	out->chunks_done = p->chunks_done;
	out->chunks_total = p->chunks_total;
	out->tokens_done = p->tokens_done;
	out->tokens_total = p->tokens_total;
	out->chunks = p->chunks;
	out->tokens = p->tokens;
	snprintf(out->encoder, sizeof(out->encoder), "%s", p->encoder != NULL ? p->encoder : "");
	out->revision = p->revision;
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}

int
hsamem_query(struct hsamem *h, const char *user, const struct hsamem_query *q,
             struct hsamem_query_result **out)
{
	return hsamem_query_mode(h, user, q, NULL, out);
}

int
hsamem_query_mode(struct hsamem *h, const char *user, const struct hsamem_query *q,
                  const char *mode, struct hsamem_query_result **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__QueryRequest qr = HSAMEM__QUERY_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (q == NULL || (q->text == NULL && q->n_tokens == 0))
		return clib_fail(h, HSAMEM_EINVAL, "a query needs text or tokens");
	if (q->n_tokens > 0 && q->tokens == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "n_tokens without tokens");
	qr.user = (char *)user;
	qr.text = (char *)q->text;
	qr.n_tokens = q->n_tokens;
	qr.tokens = (uint32_t *)q->tokens;
	qr.has_top_k = q->top_k != 0;
	qr.top_k = q->top_k;
	if (q->max_entries != 0) {
		qr.has_max_entries = 1;
		qr.max_entries = q->max_entries;
	}
	if (q->no_tail) {
		qr.has_include_tail = 1;
		qr.include_tail = 0;
	}
	qr.has_chunks = qr.chunks = 1; /* the chunk view, as before 1.4 */
	qr.mode = (char *)mode;
	req.body_case = HSAMEM__REQUEST__BODY_QUERY;
	req.query = &qr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_QUERY, &r)) != 0)
		return err;
	err = res_query(h, r->query, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_ask(struct hsamem *h, const char *user, const char *question, const struct hsamem_ask *opts,
           struct hsamem_ask_result **out)
{
	return clib_ask(h, user, question, opts, NULL, out);
}

int
clib_ask(struct hsamem *h, const char *user, const char *question, const struct hsamem_ask *opts,
         Hsamem__Filter *filter, struct hsamem_ask_result **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AskRequest ar = HSAMEM__ASK_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (question == NULL || *question == '\0' || out == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "ask: a question and out are required");
	ar.user = (char *)user;
	ar.text = (char *)question;
	ar.filter = filter;
	if (opts != NULL) {
		ar.has_max_tokens = opts->max_tokens != 0;
		ar.max_tokens = opts->max_tokens;
		if (opts->max_entries != 0) {
			ar.has_max_entries = 1;
			ar.max_entries = opts->max_entries;
		}
	}
	req.body_case = HSAMEM__REQUEST__BODY_ASK;
	req.ask = &ar;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_ASK, &r)) != 0)
		return err;
	err = res_ask(h, r->ask, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_query_text(struct hsamem *h, const char *user, const char *text, uint32_t top_k,
                  struct hsamem_query_result **out)
{
	struct hsamem_query q = {.text = text, .top_k = top_k};

	if (text == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "no query text given");
	return hsamem_query(h, user, &q, out);
}

/* The request's f32 arrays as little-endian bytes: the caller's own memory on a little-endian
 * host, a converted copy (to be freed) elsewhere. */
static int
f32_to_wire(ProtobufCBinaryData *b, const float *f, size_t n, void **copy)
{
	*copy = NULL;
	b->len = n * 4;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	b->data = (uint8_t *)f;
#else
	uint8_t *p;
	if ((p = malloc(n * 4 + 1)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		p[4 * i] = u;
		p[4 * i + 1] = u >> 8;
		p[4 * i + 2] = u >> 16;
		p[4 * i + 3] = u >> 24;
	}
	b->data = p;
	*copy = p;
#endif
	return 0;
}

int
hsamem_attend(struct hsamem *h, const char *user, const struct hsamem_attend *at,
              struct hsamem_attend_result **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AttendRequest ar = HSAMEM__ATTEND_REQUEST__INIT;
	void *qr_copy = NULL, *qa_copy = NULL;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (at == NULL || at->n == 0 || at->qr == NULL || at->qa == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "attend needs n >= 1, qr and qa");
	if (at->qr_len == 0 || at->qr_len % at->n != 0 || at->qa_len == 0 ||
	    at->qa_len % at->n != 0)
		return clib_fail(h, HSAMEM_EINVAL, "qr_len and qa_len must be multiples of n (%u)",
		                 at->n);
	if (at->qr_len > SIZE_MAX / 4 || at->qa_len > SIZE_MAX / 4)
		return clib_fail(h, HSAMEM_ETOOBIG, "queries too large");
	if ((err = f32_to_wire(&ar.qr, at->qr, at->qr_len, &qr_copy)) != 0 ||
	    (err = f32_to_wire(&ar.qa, at->qa, at->qa_len, &qa_copy)) != 0) {
		err = clib_fail(h, err, "out of memory");
		goto done;
	}
	ar.user = (char *)user;
	ar.has_n = 1;
	ar.n = at->n;
	ar.has_qr = ar.has_qa = 1;
	if (at->positions != NULL) {
		ar.n_positions = at->n;
		ar.positions = (uint64_t *)at->positions;
	}
	ar.has_top_k = at->top_k != 0;
	ar.top_k = at->top_k;
	ar.has_want_attention = at->want_attention;
	ar.want_attention = at->want_attention;
	req.body_case = HSAMEM__REQUEST__BODY_ATTEND;
	req.attend = &ar;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_ATTEND, &r)) != 0)
		goto done;
	err = res_attend(h, r->attend, at, out);
	hsamem__reply__free_unpacked(r, NULL);
done:
	free(qr_copy);
	free(qa_copy);
	return err;
}

int
hsamem_entries(struct hsamem *h, const char *user, uint64_t first, uint32_t count,
               struct hsamem_entry_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__EntriesRequest er = HSAMEM__ENTRIES_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	er.user = (char *)user;
	er.has_first = 1;
	er.first = first;
	er.has_count = count != 0;
	er.count = count;
	req.body_case = HSAMEM__REQUEST__BODY_ENTRIES;
	req.entries = &er;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_ENTRIES, &r)) != 0)
		return err;
	err = res_entries(h, r->entries, count, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_chunks(struct hsamem *h, const char *user, uint64_t first, uint32_t count, unsigned flags,
              struct hsamem_chunk_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ChunksRequest cr = HSAMEM__CHUNKS_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	cr.user = (char *)user;
	cr.has_first = 1;
	cr.first = first;
	cr.has_count = count != 0;
	cr.count = count;
	cr.has_tensors = (flags & HSAMEM_CHUNKS_TENSORS) != 0;
	cr.tensors = cr.has_tensors;
	req.body_case = HSAMEM__REQUEST__BODY_CHUNKS;
	req.chunks = &cr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_CHUNKS, &r)) != 0)
		return err;
	err = res_chunks(h, r->chunks, count, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_users(struct hsamem *h, struct hsamem_user_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__UsersRequest ur = HSAMEM__USERS_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	req.body_case = HSAMEM__REQUEST__BODY_USERS;
	req.users = &ur;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_USERS, &r)) != 0)
		return err;
	err = res_users(h, r->users, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

/* Sends a stats request (with the Prometheus text when prometheus); *r: the reply to free. */
static int
stats_rpc(struct hsamem *h, const char *user, bool prometheus, Hsamem__Reply **r)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__StatsRequest sr = HSAMEM__STATS_REQUEST__INIT;
	int err;

	if (user != NULL && (err = clib_check_user(h, user)) != 0)
		return err;
	sr.user = (char *)user;
	sr.has_prometheus = prometheus;
	sr.prometheus = prometheus;
	req.body_case = HSAMEM__REQUEST__BODY_STATS;
	req.stats = &sr;
	return clib_rpc(h, &req, HSAMEM__REPLY__BODY_STATS, r);
}

int
hsamem_stats(struct hsamem *h, const char *user, struct hsamem_stats **out)
{
	Hsamem__Reply *r;
	int err;

	if ((err = stats_rpc(h, user, false, &r)) != 0)
		return err;
	err = res_stats(h, r->stats, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_stats_prometheus(struct hsamem *h, const char *user, char **out)
{
	Hsamem__Reply *r;
	int err;

	if ((err = stats_rpc(h, user, true, &r)) != 0)
		return err;
	if (r->stats->prometheus == NULL)
		err = clib_fail(h, HSAMEM_ENOTSUP,
		                "the daemon does not render metrics (an hsamemd older than this "
		                "library)");
	else
		err = res_text(h, r->stats->prometheus, out);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}
