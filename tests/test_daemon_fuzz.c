/*
 * test_daemon_fuzz.c: thousands of well-formed but hostile requests of every kind against the real
 * hsamemd: extreme and inconsistent numbers, names, sizes and counts, NaN and infinite tensors,
 * import streams of random records, and the same requests with random bytes flipped. Every request
 * must get a reply, the daemon must stay up, and the memories that were there before (a lexical
 * one holding a fact, a client one holding chunks) must answer as before. Requests only reach
 * those two memories unaltered: a request with flipped bytes names only the fuzzer's own users.
 *
 * HSAMEM_FUZZ_SEED picks another sequence; HSAMEM_FUZZ_ROUNDS another length (default 3000).
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "harness.h"
#include "hsamem.h"
#include "hsamem.pb-c.h"
#include "test.h"

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t
pick(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* A number from the edges where bugs live, or a random one. */
static uint64_t
edgy(void)
{
	static const uint64_t v[] = {0,          1,
	                             2,          3,
	                             4,          7,
	                             8,          15,
	                             16,         63,
	                             64,         65,
	                             127,        255,
	                             256,        257,
	                             1000,       1024,
	                             4096,       4097,
	                             65535,      65536,
	                             1u << 20,   INT32_MAX,
	                             UINT32_MAX, (uint64_t)INT64_MAX,
	                             UINT64_MAX};
	return pick(4) == 0 ? rnd() : v[pick(sizeof(v) / sizeof(v[0]))];
}

static uint32_t
edgy32(void)
{
	return (uint32_t)edgy();
}

/* Everything a request points to lives here until the round ends. */
static void *pool[4096];
static size_t n_pool;

static void *
take(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (n_pool < sizeof(pool) / sizeof(pool[0]))
		pool[n_pool++] = p;
	return p;
}

static void
release(void)
{
	while (n_pool > 0)
		free(pool[--n_pool]);
}

/* Set while generating a request whose bytes will then be flipped: flipped bytes can forge any
 * request, a delete included, so such a request must not name the memories checked at the end. */
static bool protect;

static char *
some_name(void)
{
	static const char *const names[] = {"victim", "model", "fuzz", "fuzz2", "",    "-x",
	                                    ".x",     "a b",   "a/b",  "\x01",  "名前"};
	if (protect)
		return pick(2) ? "fuzz" : "fuzz2";
	if (pick(8) == 0) {
		size_t n = (size_t)pick(100);
		char *s = take(n + 1);
		memset(s, 'a' + (int)pick(26), n);
		return s;
	}
	return (char *)names[pick(sizeof(names) / sizeof(names[0]))];
}

static char *
some_text(void)
{
	static const char *const texts[] = {"",
	                                    " ",
	                                    "the blue vault",
	                                    "Alice's cat",
	                                    "\xff\xfe\xfd",
	                                    "é 名 🙂",
	                                    "a\tb\nc",
	                                    "0123456789"};
	if (pick(4) == 0) {
		size_t n = (size_t)pick(pick(10) == 0 ? 70000 : 300);
		char *s = take(n + 1);
		for (size_t i = 0; i < n; i++)
			s[i] = (char)(1 + pick(255));
		return s;
	}
	return (char *)texts[pick(sizeof(texts) / sizeof(texts[0]))];
}

/* Random bytes, or floats with NaN and infinities among them. */
static ProtobufCBinaryData
some_bytes(size_t exact)
{
	size_t n = exact != 0 && pick(3) != 0 ? exact : (size_t)pick(pick(8) == 0 ? 300000 : 600);
	uint8_t *p = take(n);
	if (pick(2) == 0) {
		for (size_t i = 0; i + 4 <= n; i += 4) {
			float f = (float)((int64_t)pick(2000) - 1000) / 100.0f;
			uint64_t r = pick(40);
			if (r == 0)
				f = NAN;
			else if (r == 1)
				f = INFINITY;
			else if (r == 2)
				f = -INFINITY;
			else if (r == 3)
				f = 1e30f;
			memcpy(p + i, &f, 4);
		}
	} else {
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)rnd();
	}
	return (ProtobufCBinaryData){n, p};
}

static uint32_t *
some_u32s(size_t *n)
{
	*n = (size_t)pick(pick(6) == 0 ? 5000 : 80);
	uint32_t *t = take(*n * 4);
	for (size_t i = 0; i < *n; i++)
		t[i] = edgy32();
	return t;
}

static uint64_t *
some_u64s(size_t n)
{
	uint64_t *t = take(n * 8);
	for (size_t i = 0; i < n; i++)
		t[i] = pick(3) == 0 ? edgy() : pick(10);
	return t;
}

static Hsamem__Spec *
some_spec(void)
{
	static const char *const enc[] = {"lexical", "client", "", "nonesuch", "learned"};
	Hsamem__Spec *s = take(sizeof(*s));
	hsamem__spec__init(s);
	s->encoder = (char *)enc[pick(5)];
	s->tokenizer = pick(3) == 0 ? some_name() : NULL;
#define MAYBE(f) s->has_##f = pick(2), s->f = pick(2) ? edgy32() : (uint32_t)pick(130)
	MAYBE(revision);
	MAYBE(chunk_size);
	MAYBE(h_kv);
	MAYBE(d_h);
	MAYBE(h_q);
	MAYBE(d_r);
	MAYBE(top_k);
#undef MAYBE
	s->has_dtype = pick(2);
	s->dtype = (Hsamem__DType)pick(6);
	s->has_weighting = pick(2);
	s->weighting = (Hsamem__Weighting)pick(5);
	s->has_off_by_one = pick(2);
	s->off_by_one = pick(2);
	return s;
}

static Hsamem__ChunkIn *
some_chunk(void)
{
	Hsamem__ChunkIn *c = take(sizeof(*c));
	hsamem__chunk_in__init(c);
	/* the client memory "model": S 4, h_kv 2, d_h 8, f16: k and v 128 bytes, landmark 16 */
	c->has_k = pick(8) != 0;
	c->k = some_bytes(128);
	c->has_v = pick(8) != 0;
	c->v = some_bytes(128);
	c->has_landmark = pick(8) != 0;
	c->landmark = some_bytes(16);
	return c;
}

static Hsamem__Entry *
some_entry(void)
{
	Hsamem__Entry *e = take(sizeof(*e));
	hsamem__entry__init(e);
	e->has_seq = pick(6) != 0;
	e->seq = pick(2) ? edgy() : pick(4);
	e->has_role = pick(2);
	e->role = (Hsamem__Role)pick(8);
	e->has_first_token = e->has_n_tokens = pick(2);
	e->first_token = edgy();
	e->n_tokens = edgy32();
	e->text = pick(4) ? some_text() : NULL;
	e->n_tags = (size_t)pick(3);
	e->tags = take(e->n_tags * sizeof(char *));
	for (size_t i = 0; i < e->n_tags; i++)
		e->tags[i] = some_text();
	return e;
}

static Hsamem__ExportRecord *
some_record(void)
{
	Hsamem__ExportRecord *r = take(sizeof(*r));
	hsamem__export_record__init(r);
	switch (pick(4)) {
	case 0: {
		Hsamem__ExportRecord__Header *h = take(sizeof(*h));
		hsamem__export_record__header__init(h);
		h->has_format = pick(4) != 0;
		h->format = pick(3) ? 1 : edgy32();
		h->spec = pick(6) ? some_spec() : NULL;
		h->has_entries = h->has_chunks = h->has_tokens = pick(2);
		h->entries = pick(2) ? edgy() : pick(3);
		h->chunks = pick(2) ? edgy() : pick(3);
		h->tokens = pick(2) ? edgy() : pick(200);
		r->rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
		r->header = h;
		break;
	}
	case 1:
		r->rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
		r->entry = some_entry();
		break;
	case 2: {
		Hsamem__ExportRecord__ChunkRec *c = take(sizeof(*c));
		hsamem__export_record__chunk_rec__init(c);
		c->has_index = pick(6) != 0;
		c->index = pick(2) ? edgy() : pick(3);
		c->tokens = some_u32s(&c->n_tokens);
		c->has_n_real = pick(2);
		c->n_real = edgy32();
		c->n_ref_entry = pick(2) ? c->n_tokens : (size_t)pick(70);
		c->ref_entry = some_u64s(c->n_ref_entry);
		c->n_ref_off = pick(2) ? c->n_tokens : (size_t)pick(70);
		c->ref_off = take(c->n_ref_off * 4);
		c->n_ref_len = pick(2) ? c->n_tokens : (size_t)pick(70);
		c->ref_len = take(c->n_ref_len * 4);
		for (size_t i = 0; i < c->n_ref_len; i++)
			c->ref_len[i] = edgy32();
		c->has_kv = c->has_landmark = pick(4) != 0;
		c->kv = some_bytes(pick(2) ? 32768 : 256);
		c->landmark = some_bytes(pick(2) ? 2048 : 16);
		r->rec_case = HSAMEM__EXPORT_RECORD__REC_CHUNK;
		r->chunk = c;
		break;
	}
	default: {
		Hsamem__ExportRecord__Tail *t = take(sizeof(*t));
		hsamem__export_record__tail__init(t);
		t->tokens = some_u32s(&t->n_tokens);
		t->n_ref_entry = pick(2) ? t->n_tokens : (size_t)pick(70);
		t->ref_entry = some_u64s(t->n_ref_entry);
		t->n_ref_off = t->n_ref_len = pick(2) ? t->n_tokens : (size_t)pick(70);
		t->ref_off = take(t->n_ref_off * 4);
		t->ref_len = take(t->n_ref_len * 4);
		r->rec_case = HSAMEM__EXPORT_RECORD__REC_TAIL;
		r->tail = t;
		break;
	}
	}
	return r;
}

/* A ping. */
static void
some_ping(Hsamem__Request *req)
{
	Hsamem__PingRequest *p = take(sizeof(*p));
	hsamem__ping_request__init(p);
	req->body_case = HSAMEM__REQUEST__BODY_PING;
	req->ping = p;
}

/* A create of "fuzz" or any name, with a spec or none. */
static void
some_create(Hsamem__Request *req)
{
	Hsamem__CreateRequest *c = take(sizeof(*c));
	hsamem__create_request__init(c);
	c->user = pick(2) ? "fuzz" : some_name();
	c->spec = pick(5) ? some_spec() : NULL;
	req->body_case = HSAMEM__REQUEST__BODY_CREATE;
	req->create = c;
}

/* An append of a few entries (now and then hundreds) and chunks to any name. */
static void
some_append(Hsamem__Request *req)
{
	Hsamem__AppendRequest *a = take(sizeof(*a));
	hsamem__append_request__init(a);
	a->user = some_name();
	a->n_entries = (size_t)pick(pick(10) == 0 ? 300 : 4);
	a->entries = take(a->n_entries * sizeof(*a->entries));
	for (size_t i = 0; i < a->n_entries; i++) {
		Hsamem__EntryIn *e = take(sizeof(*e));
		hsamem__entry_in__init(e);
		e->text = pick(4) ? some_text() : NULL;
		if (pick(3) == 0)
			e->tokens = some_u32s(&e->n_tokens);
		e->has_role = pick(2);
		e->role = (Hsamem__Role)pick(7);
		e->has_timestamp_ms = pick(2);
		e->timestamp_ms = (int64_t)edgy();
		e->n_tags = (size_t)pick(pick(8) == 0 ? 40 : 3);
		e->tags = take(e->n_tags * sizeof(char *));
		for (size_t t = 0; t < e->n_tags; t++)
			e->tags[t] = some_text();
		a->entries[i] = e;
	}
	a->n_chunks = (size_t)pick(4);
	a->chunks = take(a->n_chunks * sizeof(*a->chunks));
	for (size_t i = 0; i < a->n_chunks; i++)
		a->chunks[i] = some_chunk();
	a->has_create = pick(2);
	a->create = pick(2);
	req->body_case = HSAMEM__REQUEST__BODY_APPEND;
	req->append = a;
}

/* A flush of any name, with a chunk or none. */
static void
some_flush(Hsamem__Request *req)
{
	Hsamem__FlushRequest *f = take(sizeof(*f));
	hsamem__flush_request__init(f);
	f->user = some_name();
	f->chunk = pick(2) ? some_chunk() : NULL;
	req->body_case = HSAMEM__REQUEST__BODY_FLUSH;
	req->flush = f;
}

/* A query of any name, by text or tokens, with any k and entry limit. */
static void
some_query(Hsamem__Request *req)
{
	Hsamem__QueryRequest *q = take(sizeof(*q));
	hsamem__query_request__init(q);
	q->user = some_name();
	q->text = pick(4) ? some_text() : NULL;
	if (pick(3) == 0)
		q->tokens = some_u32s(&q->n_tokens);
	q->has_top_k = pick(2);
	q->top_k = pick(2) ? edgy32() : (uint32_t)pick(300);
	q->has_max_entries = pick(2);
	q->max_entries = pick(2) ? edgy32() : (uint32_t)pick(70);
	q->has_include_tail = pick(2);
	q->include_tail = pick(2);
	req->body_case = HSAMEM__REQUEST__BODY_QUERY;
	req->query = q;
}

/* An attend of "model" (unless protected) or any name, with tensors that fit it or not. */
static void
some_attend(Hsamem__Request *req)
{
	Hsamem__AttendRequest *a = take(sizeof(*a));
	hsamem__attend_request__init(a);
	a->user = pick(2) && !protect ? "model" : some_name();
	a->has_n = pick(8) != 0;
	a->n = pick(2) ? (uint32_t)(1 + pick(4)) : edgy32();
	a->n_positions = pick(2) && a->n <= 8 ? a->n : (size_t)pick(6);
	a->positions = some_u64s(a->n_positions);
	/* the model's spec: qr n x 16 bytes, qa n x 4 x 8 x 4 bytes */
	a->has_qr = a->has_qa = pick(8) != 0;
	a->qr = some_bytes((size_t)a->n * 16 * (a->n <= 4));
	a->qa = some_bytes((size_t)a->n * 128 * (a->n <= 4));
	a->has_top_k = pick(2);
	a->top_k = pick(2) ? edgy32() : (uint32_t)pick(300);
	a->has_want_attention = pick(2);
	a->want_attention = pick(2);
	req->body_case = HSAMEM__REQUEST__BODY_ATTEND;
	req->attend = a;
}

/* A listing of any name's entries from anywhere. */
static void
some_entries(Hsamem__Request *req)
{
	Hsamem__EntriesRequest *e = take(sizeof(*e));
	hsamem__entries_request__init(e);
	e->user = some_name();
	e->has_first = e->has_count = pick(2);
	e->first = edgy();
	e->count = edgy32();
	req->body_case = HSAMEM__REQUEST__BODY_ENTRIES;
	req->entries = e;
}

/* A listing of any name's chunks, with tensors or without. */
static void
some_chunks(Hsamem__Request *req)
{
	Hsamem__ChunksRequest *c = take(sizeof(*c));
	hsamem__chunks_request__init(c);
	c->user = some_name();
	c->has_first = c->has_count = pick(2);
	c->first = edgy();
	c->count = edgy32();
	c->has_tensors = pick(2);
	c->tensors = pick(2);
	req->body_case = HSAMEM__REQUEST__BODY_CHUNKS;
	req->chunks = c;
}

/* Stats of any name or of all. */
static void
some_stats(Hsamem__Request *req)
{
	Hsamem__StatsRequest *s = take(sizeof(*s));
	hsamem__stats_request__init(s);
	s->user = pick(2) ? some_name() : NULL;
	req->body_case = HSAMEM__REQUEST__BODY_STATS;
	req->stats = s;
}

/* A delete, of the fuzzer's own users only. */
static void
some_delete(Hsamem__Request *req)
{
	Hsamem__DeleteRequest *d = take(sizeof(*d));
	hsamem__delete_request__init(d);
	d->user = pick(2) ? "fuzz" : "fuzz2"; /* never the memories checked at the end */
	req->body_case = HSAMEM__REQUEST__BODY_DELETE;
	req->delete_ = d;
}

/* An export of any name from any cursor, with any limits. */
static void
some_export(Hsamem__Request *req)
{
	Hsamem__ExportRequest *e = take(sizeof(*e));
	hsamem__export_request__init(e);
	e->user = some_name();
	e->has_cursor = pick(2);
	e->cursor = pick(2) ? edgy() : pick(20);
	e->has_max_bytes = pick(2);
	e->max_bytes = edgy32();
	e->has_upto_entries = e->has_upto_chunks = pick(2);
	e->upto_entries = pick(2) ? edgy() : pick(10);
	e->upto_chunks = pick(2) ? edgy() : pick(10);
	req->body_case = HSAMEM__REQUEST__BODY_EXPORT;
	req->export = e;
}

/* An import of a few random records into "fuzz2" or any name. */
static void
some_import(Hsamem__Request *req)
{
	Hsamem__ImportRequest *im = take(sizeof(*im));
	hsamem__import_request__init(im);
	im->user = pick(2) ? "fuzz2" : some_name();
	im->n_records = (size_t)pick(6);
	im->records = take(im->n_records * sizeof(*im->records));
	for (size_t i = 0; i < im->n_records; i++)
		im->records[i] = some_record();
	im->has_last = pick(2);
	im->last = pick(2);
	req->body_case = HSAMEM__REQUEST__BODY_IMPORT;
	req->import = im;
}

/* A listing of the users. */
static void
some_users(Hsamem__Request *req)
{
	Hsamem__UsersRequest *u = take(sizeof(*u));
	hsamem__users_request__init(u);
	req->body_case = HSAMEM__REQUEST__BODY_USERS;
	req->users = u;
}

/* One random request of a random kind. */
static void
some_request(Hsamem__Request *req)
{
	static void (*const kinds[])(Hsamem__Request *) = {
	        some_ping,   some_create,  some_append, some_flush, some_query,
	        some_attend, some_entries, some_chunks, some_stats, some_delete,
	        some_export, some_import,  some_users};

	hsamem__request__init(req);
	req->has_version = pick(40) != 0;
	req->version = pick(40) ? HSAMEM_PROTOCOL_VERSION : edgy32();
	kinds[pick(sizeof(kinds) / sizeof(kinds[0]))](req);
}

/* Sends bytes; true when a reply that decodes came back. */
static bool
exchange(nng_socket s, const uint8_t *buf, size_t len)
{
	char *msg = NULL;
	size_t mlen = 0;
	if (nng_send(s, (void *)buf, len, 0) != 0 || nng_recv(s, &msg, &mlen, NNG_FLAG_ALLOC) != 0)
		return false;
	Hsamem__Reply *rep = hsamem__reply__unpack(NULL, mlen, (uint8_t *)msg);
	nng_free(msg, mlen);
	if (rep == NULL)
		return false;
	hsamem__reply__free_unpacked(rep, NULL);
	return true;
}

static int
setup(struct hsamem *c)
{
	struct hsamem_spec spec = {.encoder = "client",
	                           .chunk_size = 4,
	                           .h_kv = 2,
	                           .d_h = 8,
	                           .h_q = 4,
	                           .d_r = 8,
	                           .dtype = HSAMEM_F16};
	uint16_t k[64] = {0}, v[64] = {0}, l[8] = {0};
	uint32_t tokens[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	struct hsamem_entry_in e = {.tokens = tokens, .n_tokens = 12};
	struct hsamem_chunk_in ch[3];
	for (int i = 0; i < 64; i++)
		k[i] = v[i] = (uint16_t)(0x3c00 + i); /* 1.0 and up, f16 */
	for (int j = 0; j < 3; j++)
		ch[j] = (struct hsamem_chunk_in){k, sizeof(k), v, sizeof(v), l, sizeof(l)};
	int ret = hsamem_create(c, "model", &spec, NULL);
	if (ret == 0)
		ret = hsamem_append(c, "model", &e, 1, ch, 3, HSAMEM_APPEND_NO_CREATE, NULL);
	if (ret == 0)
		ret = hsamem_append_text(c, "victim", HSAMEM_ROLE_USER,
		                         "The zebrafish gate code is quixotic.", NULL);
	return ret;
}

static void
check_intact(struct hsamem *c)
{
	struct hsamem_query_result *r = NULL;
	/* the fuzz texts share no word with the fact, and appends cannot remove it */
	CHECK_RET(hsamem_query_text(c, "victim", "zebrafish gate code", 3, &r), 0);
	CHECK(r != NULL && r->n_hits >= 1 && strstr(r->hits[0].text, "quixotic") != NULL);
	hsamem_result_free(r);
	float qr[8] = {1, 0, 0, 0, 1, 0, 0, 0}, qa[32] = {0};
	struct hsamem_attend a = {.n = 1, .qr = qr, .qr_len = 8, .qa = qa, .qa_len = 32};
	struct hsamem_attend_result *ar = NULL;
	CHECK_RET(hsamem_attend(c, "model", &a, &ar), 0);
	CHECK(ar != NULL && ar->selected_len == 16 && ar->selected[0] >= 0);
	hsamem_result_free(ar);
	struct hsamem_entry_list *el = NULL;
	/* appends may have added entries; the first one stays as it was */
	CHECK_RET(hsamem_entries(c, "model", 0, 1, &el), 0);
	CHECK(el != NULL && el->n_entries == 1 && el->entries[0].n_tokens == 12 && el->total >= 1);
	hsamem_result_free(el);
}

int
main(void)
{
	const char *seed = getenv("HSAMEM_FUZZ_SEED"), *rounds_env = getenv("HSAMEM_FUZZ_ROUNDS");
	unsigned rounds = rounds_env != NULL ? (unsigned)atoi(rounds_env) : 3000;
	struct harness h;
	struct hsamem *c;
	nng_socket s;
	rng_state = seed != NULL ? strtoull(seed, NULL, 0) | 1 : 0x9e3779b97f4a7c15ull;
	if (harness_init(&h) != 0)
		return 1;
	h.extra[0] = "-o";
	h.extra[1] = "max-message=4M";
	if (harness_start(&h) != 0 || hsamem_open(h.url, &c) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	CHECK_RET(setup(c), 0);
	CHECK(nng_req0_open(&s) == 0);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 10000);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	CHECK(nng_dial(s, h.url, NULL, 0) == 0);

	unsigned no_reply = 0;
	for (unsigned i = 0; i < rounds; i++) {
		Hsamem__Request req;
		protect = pick(4) == 0;
		some_request(&req);
		size_t len = hsamem__request__get_packed_size(&req);
		uint8_t *buf = take(len + 16);
		hsamem__request__pack(&req, buf);
		if (protect && len > 0) { /* flip a few bytes, or cut it short */
			for (uint64_t f = 1 + pick(4); f > 0; f--)
				buf[pick(len)] ^= (uint8_t)(1u << pick(8));
			if (pick(3) == 0)
				len = (size_t)pick(len);
		}
		if (len <= (4u << 20) && !exchange(s, buf, len)) {
			/* a request the daemon could not answer: reconnect and count it */
			fprintf(stderr,
			        "fuzz: round %u: no reply to a request of kind %d, %zu bytes\n", i,
			        (int)req.body_case, len);
			no_reply++;
			nng_close(s);
			nng_req0_open(&s);
			nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 10000);
			nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
			nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
			nng_dial(s, h.url, NULL, 0);
		}
		release();
		if (i % 500 == 499 && !harness_alive(&h)) {
			fprintf(stderr, "fuzz: the daemon died by round %u\n", i);
			break;
		}
	}
	if (no_reply)
		fprintf(stderr, "fuzz: %u requests got no reply\n", no_reply);
	CHECK(no_reply == 0);
	CHECK(harness_alive(&h));
	check_intact(c);
	nng_close(s);
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_fuzz");
}
