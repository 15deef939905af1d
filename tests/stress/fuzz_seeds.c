/*
 * fuzz_seeds.c: writes the seed corpus of the fuzz target (fuzz_request.c) into a directory: a few
 * small inputs that reach every operation with requests that succeed, in the orders that make them
 * interesting (create, append, then read; an import in one batch and in two), and a few that fail
 * early. The fuzzer mutates from there.
 *
 *   fuzz_seeds DIR      (DIR is created if need be)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "hsamem.pb-c.h"
#include "hsamem_defs.h"

static uint8_t input[65536];
static size_t input_len;
static const char *out_dir;
static int n_written;

/* Adds a request to the input being built. */
static void
add(Hsamem__Request *req)
{
	size_t len = hsamem__request__get_packed_size(req);
	if (input_len + FUZZ_SEP_LEN + len > sizeof(input)) {
		fprintf(stderr, "fuzz_seeds: a seed is too large\n");
		exit(1);
	}
	if (input_len > 0) {
		memcpy(input + input_len, FUZZ_SEP, FUZZ_SEP_LEN);
		input_len += FUZZ_SEP_LEN;
	}
	input_len += hsamem__request__pack(req, input + input_len);
}

/* Writes the input built so far as DIR/NAME and starts the next one. */
static void
emit(const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(input, 1, input_len, f) != input_len || fclose(f) != 0) {
		fprintf(stderr, "fuzz_seeds: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	input_len = 0;
	n_written++;
}

static Hsamem__Request
request(Hsamem__Request__BodyCase body)
{
	Hsamem__Request r = HSAMEM__REQUEST__INIT;
	r.has_version = true;
	r.version = HSAMEM_PROTOCOL_VERSION;
	r.body_case = body;
	return r;
}

static void
simple(Hsamem__Request__BodyCase body, void *msg)
{
	Hsamem__Request r = request(body);
	switch (body) {
	case HSAMEM__REQUEST__BODY_PING: r.ping = msg; break;
	case HSAMEM__REQUEST__BODY_USERS: r.users = msg; break;
	case HSAMEM__REQUEST__BODY_STATS: r.stats = msg; break;
	case HSAMEM__REQUEST__BODY_CREATE: r.create = msg; break;
	case HSAMEM__REQUEST__BODY_APPEND: r.append = msg; break;
	case HSAMEM__REQUEST__BODY_FLUSH: r.flush = msg; break;
	case HSAMEM__REQUEST__BODY_QUERY: r.query = msg; break;
	case HSAMEM__REQUEST__BODY_ATTEND: r.attend = msg; break;
	case HSAMEM__REQUEST__BODY_ENTRIES: r.entries = msg; break;
	case HSAMEM__REQUEST__BODY_CHUNKS: r.chunks = msg; break;
	case HSAMEM__REQUEST__BODY_DELETE: r.delete_ = msg; break;
	case HSAMEM__REQUEST__BODY_EXPORT: r.export = msg; break;
	case HSAMEM__REQUEST__BODY_IMPORT: r.import = msg; break;
	default: break;
	}
	add(&r);
}

static void
seeds_small(void)
{
	Hsamem__PingRequest ping = HSAMEM__PING_REQUEST__INIT;
	Hsamem__UsersRequest users = HSAMEM__USERS_REQUEST__INIT;
	Hsamem__StatsRequest stats = HSAMEM__STATS_REQUEST__INIT;
	simple(HSAMEM__REQUEST__BODY_PING, &ping);
	emit("ping");
	simple(HSAMEM__REQUEST__BODY_USERS, &users);
	emit("users");
	simple(HSAMEM__REQUEST__BODY_STATS, &stats);
	emit("stats");
	/* refused before any operation runs */
	Hsamem__Request r = request(HSAMEM__REQUEST__BODY__NOT_SET);
	r.version = 2;
	add(&r);
	emit("version-2");
	static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0x08, 0x01, 0x62, 0x03};
	memcpy(input, junk, sizeof(junk));
	input_len = sizeof(junk);
	emit("junk");
}

/* A memory of the built-in lexical encoder: append (enough words to seal chunks), then every read
 * of it, a flush and a delete. */
static void
seed_lexical(void)
{
	static char long_text[4096];
	const char *tags[] = {"work", "notes"};
	long_text[0] = '\0';
	for (int i = 0; i < 90; i++) {
		char w[32];
		snprintf(w, sizeof(w), "%sword%d", i ? " " : "", i % 37);
		strcat(long_text, w);
	}
	Hsamem__EntryIn e[3] = {HSAMEM__ENTRY_IN__INIT, HSAMEM__ENTRY_IN__INIT,
	                        HSAMEM__ENTRY_IN__INIT};
	Hsamem__EntryIn *ep[3] = {&e[0], &e[1], &e[2]};
	e[0].text = "Alice keeps the spare key under the blue flower pot.";
	e[0].has_role = true;
	e[0].role = HSAMEM__ROLE__ROLE_USER;
	e[0].tags = (char **)tags;
	e[0].n_tags = 2;
	e[1].text = long_text;
	e[1].has_role = true;
	e[1].role = HSAMEM__ROLE__ROLE_ASSISTANT;
	e[2].text = "é 名 🙂 and the quick brown fox";
	e[2].has_timestamp_ms = true;
	e[2].timestamp_ms = 1700000000000;
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	ap.user = "alice";
	ap.entries = ep;
	ap.n_entries = 3;
	simple(HSAMEM__REQUEST__BODY_APPEND, &ap);

	Hsamem__QueryRequest q = HSAMEM__QUERY_REQUEST__INIT;
	q.user = "alice";
	q.text = "where is the key";
	q.has_top_k = true;
	q.top_k = 2;
	simple(HSAMEM__REQUEST__BODY_QUERY, &q);
	Hsamem__EntriesRequest en = HSAMEM__ENTRIES_REQUEST__INIT;
	en.user = "alice";
	simple(HSAMEM__REQUEST__BODY_ENTRIES, &en);
	Hsamem__ChunksRequest ch = HSAMEM__CHUNKS_REQUEST__INIT;
	ch.user = "alice";
	simple(HSAMEM__REQUEST__BODY_CHUNKS, &ch);
	Hsamem__StatsRequest st = HSAMEM__STATS_REQUEST__INIT;
	st.user = "alice";
	simple(HSAMEM__REQUEST__BODY_STATS, &st);
	Hsamem__ExportRequest ex = HSAMEM__EXPORT_REQUEST__INIT;
	ex.user = "alice";
	simple(HSAMEM__REQUEST__BODY_EXPORT, &ex);
	Hsamem__FlushRequest fl = HSAMEM__FLUSH_REQUEST__INIT;
	fl.user = "alice";
	simple(HSAMEM__REQUEST__BODY_FLUSH, &fl);
	Hsamem__DeleteRequest del = HSAMEM__DELETE_REQUEST__INIT;
	del.user = "alice";
	simple(HSAMEM__REQUEST__BODY_DELETE, &del);
	emit("lexical");

	/* an explicit lexical spec, and a query on a memory with only its tail */
	Hsamem__Spec spec = HSAMEM__SPEC__INIT;
	spec.encoder = "lexical";
	spec.has_weighting = spec.has_top_k = true;
	spec.weighting = HSAMEM__WEIGHTING__WEIGHTING_STICKBREAK;
	spec.top_k = 3;
	Hsamem__CreateRequest cr = HSAMEM__CREATE_REQUEST__INIT;
	cr.user = "bob";
	cr.spec = &spec;
	simple(HSAMEM__REQUEST__BODY_CREATE, &cr);
	ap.user = "bob";
	ap.n_entries = 1;
	simple(HSAMEM__REQUEST__BODY_APPEND, &ap);
	q.user = "bob";
	simple(HSAMEM__REQUEST__BODY_QUERY, &q);
	emit("lexical-spec");
}

/* The shape of the client memories below: S 4, one K/V head of 8, two query heads, d_r 8, f32. */
#define S   4
#define D_H 8
#define D_R 8

static Hsamem__Spec
client_spec(void)
{
	Hsamem__Spec spec = HSAMEM__SPEC__INIT;
	spec.encoder = "client";
	spec.tokenizer = "";
	spec.has_chunk_size = spec.has_h_kv = spec.has_d_h = spec.has_h_q = spec.has_d_r = true;
	spec.has_dtype = spec.has_weighting = spec.has_top_k = true;
	spec.chunk_size = S;
	spec.h_kv = 1;
	spec.d_h = D_H;
	spec.h_q = 2;
	spec.d_r = D_R;
	spec.dtype = HSAMEM__DTYPE__DTYPE_F32;
	spec.weighting = HSAMEM__WEIGHTING__WEIGHTING_SOFTMAX;
	spec.top_k = 2;
	return spec;
}

static float kbuf[S * D_H], vbuf[S * D_H], lbuf[D_R], kvbuf[2 * S * D_H];

/* A client memory: create, append tokens with the chunk they seal, attend, read it back, flush the
 * tail with its padded chunk, export. */
static void
seed_client(void)
{
	for (int i = 0; i < S * D_H; i++) {
		kbuf[i] = (float)(i % 7) / 7.0f;
		vbuf[i] = (float)(i % 5) - 2.0f;
	}
	for (int i = 0; i < D_R; i++)
		lbuf[i] = (float)i / D_R;
	Hsamem__Spec spec = client_spec();
	Hsamem__CreateRequest cr = HSAMEM__CREATE_REQUEST__INIT;
	cr.user = "model";
	cr.spec = &spec;
	simple(HSAMEM__REQUEST__BODY_CREATE, &cr);

	uint32_t tokens[5] = {11, 12, 13, 14, 15};
	Hsamem__EntryIn e = HSAMEM__ENTRY_IN__INIT, *ep = &e;
	e.tokens = tokens;
	e.n_tokens = 5;
	e.text = "five tokens";
	Hsamem__ChunkIn c = HSAMEM__CHUNK_IN__INIT, *cp = &c;
	c.has_k = c.has_v = c.has_landmark = true;
	c.k = (ProtobufCBinaryData){sizeof(kbuf), (uint8_t *)kbuf};
	c.v = (ProtobufCBinaryData){sizeof(vbuf), (uint8_t *)vbuf};
	c.landmark = (ProtobufCBinaryData){sizeof(lbuf), (uint8_t *)lbuf};
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	ap.user = "model";
	ap.entries = &ep;
	ap.n_entries = 1;
	ap.chunks = &cp;
	ap.n_chunks = 1;
	simple(HSAMEM__REQUEST__BODY_APPEND, &ap);

	float qr[2 * D_R], qa[2 * 2 * D_H];
	uint64_t pos[2] = {0, 5};
	for (size_t i = 0; i < sizeof(qr) / sizeof(qr[0]); i++)
		qr[i] = (float)i / 8.0f;
	for (size_t i = 0; i < sizeof(qa) / sizeof(qa[0]); i++)
		qa[i] = 1.0f - (float)i / 16.0f;
	Hsamem__AttendRequest at = HSAMEM__ATTEND_REQUEST__INIT;
	at.user = "model";
	at.has_n = at.has_qr = at.has_qa = at.has_want_attention = true;
	at.n = 2;
	at.qr = (ProtobufCBinaryData){sizeof(qr), (uint8_t *)qr};
	at.qa = (ProtobufCBinaryData){sizeof(qa), (uint8_t *)qa};
	at.positions = pos;
	at.n_positions = 2;
	at.want_attention = true;
	simple(HSAMEM__REQUEST__BODY_ATTEND, &at);

	Hsamem__ChunksRequest ch = HSAMEM__CHUNKS_REQUEST__INIT;
	ch.user = "model";
	ch.has_tensors = true;
	ch.tensors = true;
	simple(HSAMEM__REQUEST__BODY_CHUNKS, &ch);
	Hsamem__FlushRequest fl = HSAMEM__FLUSH_REQUEST__INIT;
	fl.user = "model";
	fl.chunk = &c;
	simple(HSAMEM__REQUEST__BODY_FLUSH, &fl);
	Hsamem__ExportRequest ex = HSAMEM__EXPORT_REQUEST__INIT;
	ex.user = "model";
	simple(HSAMEM__REQUEST__BODY_EXPORT, &ex);
	emit("client");
}

/* An import of a client memory: one entry of 5 tokens, one chunk, a tail of one token. In one
 * batch, then in two (the memory appears with the second). */
static void
seed_import(void)
{
	Hsamem__Spec spec = client_spec();
	Hsamem__ExportRecord__Header h = HSAMEM__EXPORT_RECORD__HEADER__INIT;
	h.has_format = h.has_entries = h.has_chunks = h.has_tokens = h.has_created_ms = true;
	h.format = 1;
	h.spec = &spec;
	h.entries = 1;
	h.chunks = 1;
	h.tokens = S + 1;
	h.created_ms = 1700000000000;
	Hsamem__Entry e = HSAMEM__ENTRY__INIT;
	e.has_seq = e.has_first_token = e.has_n_tokens = true;
	e.seq = 0;
	e.first_token = 0;
	e.n_tokens = S + 1;
	e.text = "imported";
	uint32_t tokens[S] = {21, 22, 23, 24}, tail_tokens[1] = {25};
	uint64_t ref_entry[S] = {0};
	uint32_t ref_off[S] = {0, 1, 2, 3}, ref_len[S] = {1, 1, 1, 1};
	Hsamem__ExportRecord__ChunkRec c = HSAMEM__EXPORT_RECORD__CHUNK_REC__INIT;
	c.has_index = c.has_n_real = c.has_kv = c.has_landmark = true;
	c.index = 0;
	c.n_real = S;
	c.tokens = tokens;
	c.n_tokens = S;
	c.ref_entry = ref_entry;
	c.n_ref_entry = S;
	c.ref_off = ref_off;
	c.n_ref_off = S;
	c.ref_len = ref_len;
	c.n_ref_len = S;
	memcpy(kvbuf, kbuf, sizeof(kbuf));
	memcpy(kvbuf + S * D_H, vbuf, sizeof(vbuf));
	c.kv = (ProtobufCBinaryData){sizeof(kvbuf), (uint8_t *)kvbuf};
	c.landmark = (ProtobufCBinaryData){sizeof(lbuf), (uint8_t *)lbuf};
	Hsamem__ExportRecord__Tail t = HSAMEM__EXPORT_RECORD__TAIL__INIT;
	t.tokens = tail_tokens;
	t.n_tokens = 1;
	t.ref_entry = ref_entry;
	t.n_ref_entry = 1;
	t.ref_off = ref_off + 3;
	t.n_ref_off = 1;
	t.ref_len = ref_len;
	t.n_ref_len = 1;

	Hsamem__ExportRecord r[4] = {HSAMEM__EXPORT_RECORD__INIT, HSAMEM__EXPORT_RECORD__INIT,
	                             HSAMEM__EXPORT_RECORD__INIT, HSAMEM__EXPORT_RECORD__INIT};
	Hsamem__ExportRecord *rp[4] = {&r[0], &r[1], &r[2], &r[3]};
	r[0].rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	r[0].header = &h;
	r[1].rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
	r[1].entry = &e;
	r[2].rec_case = HSAMEM__EXPORT_RECORD__REC_CHUNK;
	r[2].chunk = &c;
	r[3].rec_case = HSAMEM__EXPORT_RECORD__REC_TAIL;
	r[3].tail = &t;
	Hsamem__ImportRequest im = HSAMEM__IMPORT_REQUEST__INIT;
	im.user = "restored";
	im.records = rp;
	im.n_records = 4;
	im.has_last = true;
	im.last = true;
	simple(HSAMEM__REQUEST__BODY_IMPORT, &im);
	Hsamem__EntriesRequest en = HSAMEM__ENTRIES_REQUEST__INIT;
	en.user = "restored";
	simple(HSAMEM__REQUEST__BODY_ENTRIES, &en);
	emit("import");

	im.n_records = 2;
	im.last = false;
	simple(HSAMEM__REQUEST__BODY_IMPORT, &im);
	im.records = rp + 2;
	im.last = true;
	simple(HSAMEM__REQUEST__BODY_IMPORT, &im);
	Hsamem__ChunksRequest ch = HSAMEM__CHUNKS_REQUEST__INIT;
	ch.user = "restored";
	ch.has_tensors = true;
	ch.tensors = true;
	simple(HSAMEM__REQUEST__BODY_CHUNKS, &ch);
	emit("import-two-batches");
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seeds DIR\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "fuzz_seeds: cannot create %s: %s\n", out_dir, strerror(errno));
		return 1;
	}
	seeds_small();
	seed_lexical();
	seed_client();
	seed_import();
	printf("fuzz_seeds: %d seeds in %s\n", n_written, out_dir);
	return 0;
}
