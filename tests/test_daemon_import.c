/*
 * test_daemon_import.c: imports and exports that cannot mix or lie, against the real hsamemd.
 * Hand-made import streams, each broken in one way, are refused with a message that names the
 * fault, and leave nothing behind (checked through the daemon, and in the store once it stopped):
 * a header naming the lexical encoder with other shapes, NaN and infinite K, V and landmarks in
 * every dtype, unknown roles, entries whose token counts do not add up, text references outside
 * an entry's text or to no entry. The same stream unbroken is imported, which shows that each
 * refusal is the fault's. An import belongs to the connection that started it: a second import of
 * the user, or another connection's batch, is refused while it is open, and the next import
 * replaces it once that connection has closed. An export whose user is deleted and created again
 * between two pages fails with HSAMEM_ENOUSER, through the protocol and through libhsamem.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "harness.h"
#include "hsamem.h"
#include "hsamem.pb-c.h"
#include "store.h"
#include "test.h"

#define NO_REPLY 1 /* a status no reply has: the request got no answer */

/* ---- a raw connection: one req socket, one pipe, for as many requests as it takes ---- */

static int
conn_dial(const char *url, nng_socket *s)
{
	if (nng_req0_open(s) != 0)
		return -1;
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 20000);
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 20000);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 0);
	if (nng_dial(*s, url, NULL, 0) != 0) {
		nng_close(*s);
		return -1;
	}
	return 0;
}

static Hsamem__Reply *
call(nng_socket s, Hsamem__Request *req)
{
	Hsamem__Reply *rep = NULL;
	req->has_version = true;
	req->version = HSAMEM_PROTOCOL_VERSION;
	size_t len = hsamem__request__get_packed_size(req), mlen = 0;
	uint8_t *buf = malloc(len + 1);
	char *msg = NULL;
	if (buf == NULL)
		return NULL;
	hsamem__request__pack(req, buf);
	if (nng_send(s, buf, len, 0) == 0 && nng_recv(s, &msg, &mlen, NNG_FLAG_ALLOC) == 0) {
		rep = hsamem__reply__unpack(NULL, mlen, (uint8_t *)msg);
		nng_free(msg, mlen);
	}
	free(buf);
	return rep;
}

/* The reply's status; its message goes to msg (when it fails, or msg is asked for). */
static int
status_of(Hsamem__Reply *rep, char *msg, size_t len)
{
	int st = rep == NULL ? NO_REPLY : rep->status;
	if (msg != NULL)
		snprintf(msg, len, "%s", rep != NULL && rep->message ? rep->message : "(none)");
	if (rep != NULL && rep->status != 0)
		fprintf(stderr, "    daemon says: %s\n", rep->message ? rep->message : "");
	hsamem__reply__free_unpacked(rep, NULL);
	return st;
}

static int
import_call(nng_socket s, const char *user, Hsamem__ExportRecord **recs, size_t n, bool last,
            char *msg, size_t len)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ImportRequest im = HSAMEM__IMPORT_REQUEST__INIT;
	im.user = (char *)user;
	im.records = recs;
	im.n_records = n;
	im.has_last = true;
	im.last = last;
	req.body_case = HSAMEM__REQUEST__BODY_IMPORT;
	req.import = &im;
	Hsamem__Reply *rep = call(s, &req);
	if (rep != NULL && rep->status == 0 &&
	    (rep->body_case != HSAMEM__REPLY__BODY_IMPORT || rep->import->done != last))
		fprintf(stderr, "    import reply without the body or done flag expected\n");
	return status_of(rep, msg, len);
}

static Hsamem__Reply *
export_call(nng_socket s, const char *user, uint64_t cursor, const Hsamem__ExportReply *first,
            bool with_id)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ExportRequest ex = HSAMEM__EXPORT_REQUEST__INIT;
	ex.user = (char *)user;
	ex.has_cursor = ex.has_max_bytes = true;
	ex.cursor = cursor;
	ex.max_bytes = 64 << 10;
	if (first != NULL) {
		ex.has_upto_entries = ex.has_upto_chunks = true;
		ex.upto_entries = first->upto_entries;
		ex.upto_chunks = first->upto_chunks;
		ex.has_memory_id = with_id;
		ex.memory_id = first->memory_id;
	}
	req.body_case = HSAMEM__REQUEST__BODY_EXPORT;
	req.export = &ex;
	return call(s, &req);
}

/* ---- a small client memory's stream: S = 4, h_kv = h_q = 1, d_h = d_r = 2 ---- */

#define S   4
#define NKV (2 * S * 2) /* K|V elements */
#define NL  2           /* landmark elements */

struct stream {
	Hsamem__Spec spec;
	Hsamem__ExportRecord__Header hdr;
	Hsamem__Entry ent[2];
	Hsamem__ExportRecord__ChunkRec chunk;
	Hsamem__ExportRecord__Tail tail;
	Hsamem__ExportRecord rec[5]; /* header, entry 0, entry 1, chunk, tail */
	Hsamem__ExportRecord *all[5];
	uint32_t tokens[S], ref_off[S], ref_len[S], tail_tokens[2], tail_off[2], tail_len[2];
	uint64_t ref_entry[S], tail_entry[2];
	uint8_t kv[NKV * 4], lmk[NL * 4];
	Hsamem__DType dtype;
};

/* Element i of a tensor, as raw bits of the dtype (little-endian host). */
static void
put(struct stream *s, uint8_t *t, size_t i, uint32_t bits)
{
	if (s->dtype == HSAMEM__DTYPE__DTYPE_F32)
		memcpy(t + 4 * i, &bits, 4);
	else
		memcpy(t + 2 * i, &(uint16_t){(uint16_t)bits}, 2);
}

/* Finite values, the edges included: largest, smallest subnormal, -0, 1. */
static uint32_t
finite_bits(Hsamem__DType t, size_t i)
{
	static const uint32_t f16[] = {0x7bff, 0x0001, 0x8000, 0x3c00, 0xfbff};
	static const uint32_t bf16[] = {0x7f7f, 0x0001, 0x8000, 0x3f80, 0xff7f};
	static const uint32_t f32[] = {0x7f7fffff, 0x00000001, 0x80000000, 0x3f800000, 0xff7fffff};
	const uint32_t *v = t == HSAMEM__DTYPE__DTYPE_F16    ? f16
	                    : t == HSAMEM__DTYPE__DTYPE_BF16 ? bf16
	                                                     : f32;
	return v[i % 5];
}

/*
 * Two entries, "hello" (3 tokens) and "world!" (3 tokens); one chunk of 4 tokens; a tail of 2.
 * The tail comes after the header, as the daemon's export sends it.
 */
static void
stream_init(struct stream *s, Hsamem__DType dtype)
{
	static const uint32_t off[S] = {0, 1, 2, 0}, len[S] = {1, 1, 3, 2};
	memset(s, 0, sizeof(*s));
	s->dtype = dtype;
	hsamem__spec__init(&s->spec);
	s->spec.encoder = "client";
	s->spec.has_revision = s->spec.has_chunk_size = s->spec.has_h_kv = s->spec.has_d_h = true;
	s->spec.has_h_q = s->spec.has_d_r = s->spec.has_dtype = s->spec.has_top_k = true;
	s->spec.chunk_size = S;
	s->spec.h_kv = s->spec.h_q = 1;
	s->spec.d_h = s->spec.d_r = 2;
	s->spec.dtype = dtype;
	s->spec.top_k = 4;
	hsamem__export_record__header__init(&s->hdr);
	s->hdr.has_format = s->hdr.has_entries = s->hdr.has_chunks = s->hdr.has_tokens = true;
	s->hdr.format = 1;
	s->hdr.spec = &s->spec;
	s->hdr.entries = 2;
	s->hdr.chunks = 1;
	s->hdr.tokens = S + 2;
	for (int e = 0; e < 2; e++) {
		hsamem__entry__init(&s->ent[e]);
		s->ent[e].has_seq = s->ent[e].has_role = s->ent[e].has_first_token = true;
		s->ent[e].has_n_tokens = true;
		s->ent[e].seq = (uint64_t)e;
		s->ent[e].role = e == 0 ? HSAMEM__ROLE__ROLE_USER : HSAMEM__ROLE__ROLE_ASSISTANT;
		s->ent[e].first_token = 3 * (uint64_t)e;
		s->ent[e].n_tokens = 3;
		s->ent[e].text = e == 0 ? "hello" : "world!";
	}
	hsamem__export_record__chunk_rec__init(&s->chunk);
	s->chunk.has_index = s->chunk.has_n_real = s->chunk.has_kv = s->chunk.has_landmark = true;
	s->chunk.n_real = S;
	s->chunk.n_tokens = s->chunk.n_ref_entry = s->chunk.n_ref_off = s->chunk.n_ref_len = S;
	s->chunk.tokens = s->tokens;
	s->chunk.ref_entry = s->ref_entry;
	s->chunk.ref_off = s->ref_off;
	s->chunk.ref_len = s->ref_len;
	for (int i = 0; i < S; i++) {
		s->tokens[i] = 100u + (uint32_t)i;
		s->ref_entry[i] = i < 3 ? 0 : 1;
		s->ref_off[i] = off[i];
		s->ref_len[i] = len[i];
	}
	size_t elem = dtype == HSAMEM__DTYPE__DTYPE_F32 ? 4 : 2;
	for (size_t i = 0; i < NKV; i++)
		put(s, s->kv, i, finite_bits(dtype, i));
	for (size_t i = 0; i < NL; i++)
		put(s, s->lmk, i, finite_bits(dtype, i + 3));
	s->chunk.kv = (ProtobufCBinaryData){NKV * elem, s->kv};
	s->chunk.landmark = (ProtobufCBinaryData){NL * elem, s->lmk};
	hsamem__export_record__tail__init(&s->tail);
	s->tail.n_tokens = s->tail.n_ref_entry = s->tail.n_ref_off = s->tail.n_ref_len = 2;
	s->tail.tokens = s->tail_tokens;
	s->tail.ref_entry = s->tail_entry;
	s->tail.ref_off = s->tail_off;
	s->tail.ref_len = s->tail_len;
	for (int i = 0; i < 2; i++) {
		s->tail_tokens[i] = 200u + (uint32_t)i;
		s->tail_entry[i] = 1;
		s->tail_off[i] = 2 + 2 * (uint32_t)i;
		s->tail_len[i] = 2;
	}
	for (int i = 0; i < 5; i++) {
		hsamem__export_record__init(&s->rec[i]);
		s->all[i] = &s->rec[i];
	}
	s->rec[0].rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	s->rec[0].header = &s->hdr;
	s->rec[1].rec_case = s->rec[2].rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
	s->rec[1].entry = &s->ent[0];
	s->rec[2].entry = &s->ent[1];
	s->rec[3].rec_case = HSAMEM__EXPORT_RECORD__REC_CHUNK;
	s->rec[3].chunk = &s->chunk;
	s->rec[4].rec_case = HSAMEM__EXPORT_RECORD__REC_TAIL;
	s->rec[4].tail = &s->tail;
	/* the daemon's order: header, tail, entries, chunks */
	s->all[1] = &s->rec[4];
	s->all[2] = &s->rec[1];
	s->all[3] = &s->rec[2];
	s->all[4] = &s->rec[3];
}

/* Whether user has no memory, as every read sees it. */
static bool
no_memory(struct hsamem *c, const char *user)
{
	struct hsamem_entry_list *l = NULL;
	int ret = hsamem_entries(c, user, 0, 1, &l);
	hsamem_result_free(l);
	return ret == HSAMEM_ENOUSER;
}

/* Imports s as user in one batch; expects status and a message holding want. */
static void
expect_refused(nng_socket s, struct hsamem *c, struct stream *st, const char *user, int status,
               const char *want)
{
	char msg[512];
	CHECK_RET(import_call(s, user, st->all, 5, true, msg, sizeof(msg)), status);
	if (strstr(msg, want) == NULL)
		fprintf(stderr, "%s: message \"%s\" does not say \"%s\"\n", user, msg, want);
	CHECK(strstr(msg, want) != NULL);
	CHECK(no_memory(c, user));
}

static const Hsamem__DType dtypes[] = {HSAMEM__DTYPE__DTYPE_F16, HSAMEM__DTYPE__DTYPE_BF16,
                                       HSAMEM__DTYPE__DTYPE_F32};

static void
test_good_streams(nng_socket s, struct hsamem *c)
{
	struct stream st;
	char name[32];
	for (size_t d = 0; d < 3; d++) {
		snprintf(name, sizeof(name), "good%zu", d);
		stream_init(&st, dtypes[d]);
		CHECK_RET(import_call(s, name, st.all, 5, true, NULL, 0), 0);
		struct hsamem_entry_list *l = NULL;
		CHECK_RET(hsamem_entries(c, name, 0, 10, &l), 0);
		CHECK(l != NULL && l->n_entries == 2 && strcmp(l->entries[1].text, "world!") == 0);
		hsamem_result_free(l);
	}
	/* in two batches, the tail last */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	Hsamem__ExportRecord *b1[] = {&st.rec[0], &st.rec[1], &st.rec[2]};
	Hsamem__ExportRecord *b2[] = {&st.rec[3], &st.rec[4]};
	CHECK_RET(import_call(s, "good3", b1, 3, false, NULL, 0), 0);
	CHECK(no_memory(c, "good3"));
	CHECK_RET(import_call(s, "good3", b2, 2, true, NULL, 0), 0);
	CHECK(!no_memory(c, "good3"));
}

static void
test_not_finite(nng_socket s, struct hsamem *c)
{
	/* NaN, +infinity, -infinity of f16, bf16, f32 */
	static const uint32_t bad[3][3] = {{0x7e00, 0x7c00, 0xfc00},
	                                   {0x7fc0, 0x7f80, 0xff80},
	                                   {0x7fc00000, 0x7f800000, 0xff800000}};
	struct stream st;
	char name[32];
	for (size_t d = 0; d < 3; d++)
		for (size_t k = 0; k < 3; k++) {
			snprintf(name, sizeof(name), "nan%zu%zu", d, k);
			stream_init(&st, dtypes[d]);
			if (k == 2) /* in the landmark */
				put(&st, st.lmk, 1, bad[d][k]);
			else /* in K, or in V */
				put(&st, st.kv, k == 0 ? 0 : NKV - 1, bad[d][k]);
			expect_refused(s, c, &st, name, HSAMEM_EIMPORT, "not finite");
		}
	/* a later batch that fails takes the whole import with it */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	put(&st, st.kv, 5, 0x7e00);
	Hsamem__ExportRecord *b1[] = {&st.rec[0], &st.rec[1], &st.rec[2]};
	Hsamem__ExportRecord *b2[] = {&st.rec[3], &st.rec[4]};
	char msg[512];
	CHECK_RET(import_call(s, "nanlate", b1, 3, false, NULL, 0), 0);
	CHECK_RET(import_call(s, "nanlate", b2, 2, true, msg, sizeof(msg)), HSAMEM_EIMPORT);
	CHECK(strstr(msg, "not finite") != NULL && strstr(msg, "abandoned") != NULL);
	CHECK_RET(import_call(s, "nanlate", b2, 2, true, msg, sizeof(msg)), HSAMEM_EIMPORT);
	CHECK(strstr(msg, "no import") != NULL);
	CHECK(no_memory(c, "nanlate"));
}

static void
test_inconsistent(nng_socket s, struct hsamem *c)
{
	struct stream st;
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.ent[1].role = (Hsamem__Role)7;
	expect_refused(s, c, &st, "badrole", HSAMEM_EIMPORT, "unknown role 7");

	/* the entries hold 5 tokens, the chunk and the tail 6 */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.ent[1].n_tokens = 2;
	expect_refused(s, c, &st, "badcount", HSAMEM_EIMPORT, "the entries hold 5 tokens");
	/* an entry that does not start where the one before it ended */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.ent[1].first_token = 2;
	expect_refused(s, c, &st, "badfirst", HSAMEM_EIMPORT, "end at token 3");
	/* a gap that no padding explains */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.ent[1].first_token = 5;
	expect_refused(s, c, &st, "badgap", HSAMEM_EIMPORT, "end at token 3");
	/* a padded chunk, but no gap after it: the counts add up, the positions do not */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.chunk.n_real = 3;
	st.tokens[3] = 0;
	st.ref_entry[3] = st.ref_off[3] = st.ref_len[3] = 0;
	st.ent[1].n_tokens = 2;
	expect_refused(s, c, &st, "badend", HSAMEM_EIMPORT, "the last entry ends at token 5");
	/* more chunks than the tokens allow */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.hdr.chunks = 2;
	expect_refused(s, c, &st, "badhdr", HSAMEM_EIMPORT, "do not add up");
	/* n_real past S */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.chunk.n_real = S + 1;
	expect_refused(s, c, &st, "badreal", HSAMEM_EIMPORT, "5 real tokens");

	/* text ranges: past the end of "hello", to an entry not sent, in the tail */
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.ref_off[2] = 4;
	expect_refused(s, c, &st, "badrange", HSAMEM_EIMPORT, "whose text has 5 bytes");
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.ref_entry[3] = 9;
	expect_refused(s, c, &st, "badentry", HSAMEM_EIMPORT, "refers to entry 9");
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.tail_len[1] = 3;
	expect_refused(s, c, &st, "badtail", HSAMEM_EIMPORT, "the tail: token 1");
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	st.tail_off[0] = 0xffffffffu;
	expect_refused(s, c, &st, "badtail2", HSAMEM_EIMPORT, "the tail: token 0");
}

/* The hostile header: the lexical encoder's name and revision, shapes that would make each chunk
 * 512 MiB. The same spec is refused by create, and nothing of it exists after. */
static void
test_lexical_shapes(nng_socket s, struct hsamem *c)
{
	char msg[512];
	CHECK_RET(hsamem_append_text(c, "lexsrc", HSAMEM_ROLE_USER, "a few words to export", NULL),
	          0);
	Hsamem__Reply *rep = export_call(s, "lexsrc", 0, NULL, false);
	CHECK(rep != NULL && rep->status == 0 && rep->export->n_records > 0);
	if (rep == NULL || rep->status != 0 || rep->export->n_records == 0) {
		hsamem__reply__free_unpacked(rep, NULL);
		return;
	}
	Hsamem__ExportRecord *hdr = rep->export->records[0];
	Hsamem__Spec *sp = hdr->header->spec;
	CHECK(strcmp(sp->encoder, "lexical") == 0);
	sp->chunk_size = 1024;
	sp->h_kv = 64;
	sp->h_q = 64;
	sp->d_h = 1024;
	sp->d_r = 8192;
	sp->dtype = HSAMEM__DTYPE__DTYPE_F32;
	hdr->header->entries = hdr->header->chunks = hdr->header->tokens = 0;
	CHECK_RET(import_call(s, "huge", &hdr, 1, false, msg, sizeof(msg)), HSAMEM_ESPEC);
	CHECK(strstr(msg, "import: header: spec: encoder lexical has") != NULL);

	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__CreateRequest cr = HSAMEM__CREATE_REQUEST__INIT;
	cr.user = "huge";
	cr.spec = sp;
	req.body_case = HSAMEM__REQUEST__BODY_CREATE;
	req.create = &cr;
	CHECK_RET(status_of(call(s, &req), NULL, 0), HSAMEM_ESPEC);
	hsamem__reply__free_unpacked(rep, NULL);

	/* no memory, not even a hidden one: an append creates the default memory, and writes a
	 * little */
	CHECK(no_memory(c, "huge"));
	char text[6001];
	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = i % 6 == 5 ? ' ' : (char)('a' + i % 7);
	text[sizeof(text) - 1] = '\0';
	CHECK_RET(hsamem_append_text(c, "huge", HSAMEM_ROLE_USER, text, NULL), 0);
	Hsamem__StatsRequest sr = HSAMEM__STATS_REQUEST__INIT;
	sr.user = "huge";
	req.body_case = HSAMEM__REQUEST__BODY_STATS;
	req.stats = &sr;
	rep = call(s, &req);
	CHECK(rep != NULL && rep->status == 0 && rep->stats->n_memories == 1);
	if (rep != NULL && rep->status == 0 && rep->stats->n_memories == 1) {
		const Hsamem__MemoryInfo *m = rep->stats->memories[0];
		CHECK(m->spec->h_kv == 1 && m->spec->d_h == 64 && m->chunks >= 10);
		CHECK(m->bytes < (1u << 20) && rep->stats->store_map_used < (64u << 20));
	}
	hsamem__reply__free_unpacked(rep, NULL);
}

static void
test_ownership(const char *url, struct hsamem *c)
{
	nng_socket a, b;
	struct stream st;
	char msg[512];
	if (conn_dial(url, &a) != 0 || conn_dial(url, &b) != 0) {
		CHECK(!"cannot connect");
		return;
	}
	stream_init(&st, HSAMEM__DTYPE__DTYPE_F16);
	Hsamem__ExportRecord *b1[] = {&st.rec[0], &st.rec[1]};
	Hsamem__ExportRecord *b2[] = {&st.rec[2], &st.rec[3], &st.rec[4]};
	CHECK_RET(import_call(a, "owned", b1, 2, false, NULL, 0), 0);
	/* another connection can neither start a second import of the user nor continue this one */
	CHECK_RET(import_call(b, "owned", st.all, 5, true, msg, sizeof(msg)), HSAMEM_EBUSY);
	CHECK(strstr(msg, "another connection") != NULL);
	CHECK_RET(import_call(b, "owned", b2, 3, true, msg, sizeof(msg)), HSAMEM_EBUSY);
	CHECK(strstr(msg, "belongs to the connection that started it") != NULL);
	/* the owner may start over, and finishes with its own records */
	CHECK_RET(import_call(a, "owned", b1, 2, false, NULL, 0), 0);
	CHECK_RET(import_call(a, "owned", b2, 3, true, NULL, 0), 0);
	struct hsamem_entry_list *l = NULL;
	CHECK_RET(hsamem_entries(c, "owned", 0, 10, &l), 0);
	CHECK(l != NULL && l->n_entries == 2 && strcmp(l->entries[0].text, "hello") == 0);
	hsamem_result_free(l);
	CHECK_RET(import_call(b, "owned", st.all, 5, true, NULL, 0), HSAMEM_EEXIST);

	/* once the owner's connection is gone, the next import replaces its import */
	CHECK_RET(import_call(a, "orphan", b1, 2, false, NULL, 0), 0);
	nng_close(a);
	int ret = HSAMEM_EBUSY;
	for (int i = 0; i < 100 && ret == HSAMEM_EBUSY; i++) {
		if ((ret = import_call(b, "orphan", st.all, 5, true, NULL, 0)) == HSAMEM_EBUSY)
			usleep(50 * 1000);
	}
	CHECK_RET(ret, 0);
	CHECK(!no_memory(c, "orphan"));
	nng_close(b);
}

static void
fill(struct hsamem *c, const char *user)
{
	static const char *const words[] = {"river", "stone", "lamp",  "quiet", "garden",
	                                    "north", "paper", "cloud", "mill",  "bridge"};
	char text[400];
	for (unsigned e = 0; e < 40; e++) {
		size_t n = 0;
		for (unsigned w = 0; w < 40; w++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s ",
			                      words[(e * 7 + w * 3 + w / 4) % 10]);
		CHECK_RET(hsamem_append_text(c, user, HSAMEM_ROLE_USER, text, NULL), 0);
	}
}

static void
test_export_raw(nng_socket s, struct hsamem *c)
{
	char msg[512];
	fill(c, "exp");
	Hsamem__Reply *first = export_call(s, "exp", 0, NULL, false);
	CHECK(first != NULL && first->status == 0 && !first->export->done &&
	      first->export->has_memory_id);
	if (first == NULL || first->status != 0 || first->export->done)
		goto out;
	uint64_t next = first->export->next_cursor;
	/* the same memory: the next page comes */
	CHECK_RET(status_of(export_call(s, "exp", next, first->export, true), NULL, 0), 0);
	/* a cursor without the memory's id is refused */
	CHECK_RET(status_of(export_call(s, "exp", next, first->export, false), msg, sizeof(msg)),
	          HSAMEM_EPROTO);
	/* deleted and created again, as large as before: the next page is refused */
	CHECK_RET(hsamem_delete(c, "exp", NULL), 0);
	fill(c, "exp");
	CHECK_RET(status_of(export_call(s, "exp", next, first->export, true), msg, sizeof(msg)),
	          HSAMEM_ENOUSER);
	CHECK(strstr(msg, "was deleted since the export began") != NULL);
out:
	hsamem__reply__free_unpacked(first, NULL);
}

/* Copies a memory page by page: each page of the export is imported as one batch (libhsamem
 * would send batches of 4 MiB, past this daemon's max-message). */
static int
copy_memory(nng_socket s, const char *from, const char *to, size_t *batches)
{
	Hsamem__Reply *first = export_call(s, from, 0, NULL, false), *page = NULL;
	int ret = first == NULL ? NO_REPLY : first->status;
	for (const Hsamem__ExportReply *p = ret == 0 ? first->export : NULL; p != NULL;) {
		if ((ret = import_call(s, to, p->records, p->n_records, p->done, NULL, 0)) != 0)
			break;
		++*batches;
		if (p->done)
			break;
		uint64_t next = p->next_cursor;
		hsamem__reply__free_unpacked(page, NULL);
		page = export_call(s, from, next, first->export, true);
		ret = page == NULL ? NO_REPLY : page->status;
		p = ret == 0 ? page->export : NULL;
	}
	hsamem__reply__free_unpacked(page, NULL);
	hsamem__reply__free_unpacked(first, NULL);
	return ret;
}

/* A memory with a padded chunk (a flush) between full ones, and a tail: the real tokens of its
 * chunks and tail add up to its entries' only when the padding is left out. */
static void
test_roundtrip_padded(nng_socket s, struct hsamem *c)
{
	struct hsamem_flush_info fi = {0};
	struct hsamem_entry_list *a = NULL, *b = NULL;
	size_t batches = 0;
	fill(c, "padded");
	CHECK_RET(hsamem_append_text(c, "padded", HSAMEM_ROLE_USER, "one more line", NULL), 0);
	CHECK_RET(hsamem_flush(c, "padded", NULL, &fi), 0);
	CHECK(fi.sealed);
	fill(c, "padded");
	CHECK_RET(hsamem_append_text(c, "padded", HSAMEM_ROLE_USER, "and another", NULL), 0);
	CHECK_RET(copy_memory(s, "padded", "padded2", &batches), 0);
	CHECK(batches > 2);
	CHECK_RET(hsamem_entries(c, "padded", 60, 30, &a), 0);
	CHECK_RET(hsamem_entries(c, "padded2", 60, 30, &b), 0);
	CHECK(a != NULL && b != NULL && a->total == 82 && b->total == 82 &&
	      a->n_entries == b->n_entries);
	for (size_t i = 0; a != NULL && b != NULL && i < a->n_entries && i < b->n_entries; i++)
		CHECK(strcmp(a->entries[i].text, b->entries[i].text) == 0 &&
		      a->entries[i].first_token == b->entries[i].first_token);
	hsamem_result_free(a);
	hsamem_result_free(b);
}

struct swap {
	struct hsamem *other;
	size_t calls;
};

/* The export's write: after the first piece, the user is deleted and created again. */
static int
swap_write(void *arg, const void *buf, size_t len)
{
	struct swap *w = arg;
	(void)buf;
	(void)len;
	if (w->calls++ == 0 && w->other != NULL) {
		CHECK_RET(hsamem_delete(w->other, "exp2", NULL), 0);
		fill(w->other, "exp2");
	}
	return 0;
}

static void
test_export_library(const char *url, struct hsamem *c)
{
	struct hsamem *other = NULL;
	struct hsamem_transfer t = {0};
	struct swap w = {0};
	CHECK_RET(hsamem_open(url, &other), 0);
	fill(c, "exp2");
	/* undisturbed, the export takes several pages (max-message is 256 KiB) */
	CHECK_RET(hsamem_export_cb(c, "exp2", swap_write, &w, &t), 0);
	CHECK(t.entries == 40 && t.requests > 2);
	w.other = other;
	w.calls = 0;
	CHECK_RET(hsamem_export_cb(c, "exp2", swap_write, &w, &t), HSAMEM_ENOUSER);
	CHECK(strstr(hsamem_last_message(c), "was deleted since the export began") != NULL);
	hsamem_close(other);
}

static const char *const refused[] = {"nan00",    "nan01",    "nan02",    "nan10",   "nan11",
                                      "nan12",    "nan20",    "nan21",    "nan22",   "nanlate",
                                      "badrole",  "badcount", "badfirst", "badhdr",  "badreal",
                                      "badrange", "badentry", "badtail",  "badtail2"};

/* In the store itself: no refused import left a memory, hidden or not. */
static int
store_cb(const struct store_user *u, void *arg)
{
	(void)arg;
	CHECK(!(u->flags & STORE_USER_IMPORTING));
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcmp(u->name, refused[i]) == 0)
			fprintf(stderr, "store: the refused import of '%s' left a memory\n",
			        u->name);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		CHECK(strcmp(u->name, refused[i]) != 0);
	return 0;
}

static void
check_store(struct harness *h)
{
	struct store *st = NULL;
	struct store_opts so = {0};
	struct store_txn txn;
	CHECK_RET(harness_stop(h, SIGTERM), 0);
	CHECK_RET(store_open(h->state, &so, &st), 0);
	if (st == NULL)
		return;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_foreach(&txn, store_cb, NULL), 0);
	store_txn_abort(&txn);
	store_close(st);
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	nng_socket s;
	if (harness_init(&h) != 0)
		return 1;
	h.extra[0] = "-o";
	h.extra[1] = "max-message=256K";
	if (harness_start(&h) != 0 || hsamem_open(h.url, &c) != 0 || conn_dial(h.url, &s) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		fprintf(stderr, "test_daemon_import: cannot start hsamemd\n");
		return 1;
	}
	test_good_streams(s, c);
	test_not_finite(s, c);
	test_inconsistent(s, c);
	test_lexical_shapes(s, c);
	test_ownership(h.url, c);
	test_roundtrip_padded(s, c);
	test_export_raw(s, c);
	test_export_library(h.url, c);
	nng_close(s);
	hsamem_close(c);
	check_store(&h);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_import");
}
