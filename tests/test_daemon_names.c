/*
 * test_daemon_names.c: user names and strings as a hostile client sends them, byte by byte, on
 * the raw protocol and through libhsamem. protobuf-c packs a string only up to its first NUL, so
 * a NUL is sent by packing an X in its place and patching the packed bytes. Every operation that
 * names a user refuses a name with a NUL byte ("victim\0/../x" must not reach victim's memory),
 * with any control byte (0x01-0x1f, 0x7f) or of more than 64 bytes, with HSAMEM_EBADNAME; texts,
 * tags and import records with a NUL byte are refused with HSAMEM_EINVAL; and none of it changes
 * anything: victim's memory is as it was, and no other memory appears.
 */
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

#define N_OPS 11

static const Hsamem__Request__BodyCase ops[N_OPS] = {
        HSAMEM__REQUEST__BODY_CREATE, HSAMEM__REQUEST__BODY_APPEND, HSAMEM__REQUEST__BODY_FLUSH,
        HSAMEM__REQUEST__BODY_QUERY,  HSAMEM__REQUEST__BODY_ATTEND, HSAMEM__REQUEST__BODY_ENTRIES,
        HSAMEM__REQUEST__BODY_CHUNKS, HSAMEM__REQUEST__BODY_STATS,  HSAMEM__REQUEST__BODY_DELETE,
        HSAMEM__REQUEST__BODY_EXPORT, HSAMEM__REQUEST__BODY_IMPORT,
};

/* Sends len bytes on a fresh req0 socket; returns the decoded reply, or NULL. */
static Hsamem__Reply *
raw_call(const char *url, const void *buf, size_t len)
{
	Hsamem__Reply *rep = NULL;
	char *msg = NULL;
	size_t mlen = 0;
	nng_socket s;

	if (nng_req0_open(&s) != 0)
		return NULL;
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	if (nng_dial(s, url, NULL, 0) == 0 && nng_send(s, (void *)buf, len, 0) == 0 &&
	    nng_recv(s, &msg, &mlen, NNG_FLAG_ALLOC) == 0) {
		rep = hsamem__reply__unpack(NULL, mlen, (uint8_t *)msg);
		nng_free(msg, mlen);
	}
	nng_close(s);
	return rep;
}

/*
 * Packs a request of operation op for user, with what the operation needs besides (an entry of
 * text for an append, a question for a query), then turns its first X into a NUL byte when nul.
 */
static size_t
pack_op(Hsamem__Request__BodyCase op, const char *user, const char *text, bool nul, uint8_t *buf)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__CreateRequest cr = HSAMEM__CREATE_REQUEST__INIT;
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	Hsamem__FlushRequest fl = HSAMEM__FLUSH_REQUEST__INIT;
	Hsamem__QueryRequest qu = HSAMEM__QUERY_REQUEST__INIT;
	Hsamem__AttendRequest at = HSAMEM__ATTEND_REQUEST__INIT;
	Hsamem__EntriesRequest en = HSAMEM__ENTRIES_REQUEST__INIT;
	Hsamem__ChunksRequest ch = HSAMEM__CHUNKS_REQUEST__INIT;
	Hsamem__StatsRequest st = HSAMEM__STATS_REQUEST__INIT;
	Hsamem__DeleteRequest de = HSAMEM__DELETE_REQUEST__INIT;
	Hsamem__ExportRequest ex = HSAMEM__EXPORT_REQUEST__INIT;
	Hsamem__ImportRequest im = HSAMEM__IMPORT_REQUEST__INIT;
	Hsamem__EntryIn e = HSAMEM__ENTRY_IN__INIT, *ep = &e;
	Hsamem__ExportRecord r = HSAMEM__EXPORT_RECORD__INIT, *rp = &r;
	Hsamem__ExportRecord__Header hd = HSAMEM__EXPORT_RECORD__HEADER__INIT;

	req.has_version = 1;
	req.version = HSAMEM_PROTOCOL_VERSION;
	req.body_case = op;
	e.text = (char *)text;
	hd.has_format = 1;
	hd.format = 1;
	r.rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	r.header = &hd;
	switch (op) {
	case HSAMEM__REQUEST__BODY_CREATE: cr.user = (char *)user, req.create = &cr; break;
	case HSAMEM__REQUEST__BODY_APPEND:
		ap.user = (char *)user;
		ap.entries = &ep;
		ap.n_entries = 1;
		req.append = &ap;
		break;
	case HSAMEM__REQUEST__BODY_FLUSH: fl.user = (char *)user, req.flush = &fl; break;
	case HSAMEM__REQUEST__BODY_QUERY:
		qu.user = (char *)user;
		qu.text = (char *)text;
		req.query = &qu;
		break;
	case HSAMEM__REQUEST__BODY_ATTEND: at.user = (char *)user, req.attend = &at; break;
	case HSAMEM__REQUEST__BODY_ENTRIES: en.user = (char *)user, req.entries = &en; break;
	case HSAMEM__REQUEST__BODY_CHUNKS: ch.user = (char *)user, req.chunks = &ch; break;
	case HSAMEM__REQUEST__BODY_STATS: st.user = (char *)user, req.stats = &st; break;
	case HSAMEM__REQUEST__BODY_DELETE: de.user = (char *)user, req.delete_ = &de; break;
	case HSAMEM__REQUEST__BODY_EXPORT: ex.user = (char *)user, req.export = &ex; break;
	case HSAMEM__REQUEST__BODY_IMPORT:
		im.user = (char *)user;
		im.records = &rp;
		im.n_records = 1;
		req.import = &im;
		break;
	default: break;
	}
	size_t len = hsamem__request__pack(&req, buf);
	uint8_t *x = nul ? memchr(buf, 'X', len) : NULL;
	CHECK(!nul || x != NULL);
	if (x != NULL)
		*x = 0;
	return len;
}

/* Sends the request; checks its status, and that the message has want_msg in it. */
static void
expect(const char *url, const uint8_t *buf, size_t len, int status, const char *want_msg,
       const char *what)
{
	Hsamem__Reply *rep = raw_call(url, buf, len);
	CHECK(rep != NULL);
	if (rep == NULL)
		return;
	bool ok = rep->status == status &&
	          (*want_msg == '\0' ||
	           (rep->message != NULL && strstr(rep->message, want_msg) != NULL));
	if (!ok)
		fprintf(stderr, "%s: status %d (%s), expected %d with \"%s\"\n", what, rep->status,
		        rep->message != NULL ? rep->message : "", status, want_msg);
	CHECK(ok);
	hsamem__reply__free_unpacked(rep, NULL);
}

static void
test_raw_names(struct harness *h)
{
	static uint8_t buf[4096];
	char name[HSAMEM_NAME_MAX + 2], what[64];
	size_t len;

	for (int i = 0; i < N_OPS; i++) {
		snprintf(what, sizeof(what), "op %d, victim NUL", (int)ops[i]);
		/* "victim\0/../x": unpacked, it would be "victim", which exists */
		len = pack_op(ops[i], "victimX/../x", "victim", true, buf);
		expect(h->url, buf, len, HSAMEM_EBADNAME, "user name holds a NUL byte", what);
		/* "\0victim": unpacked, it would be "", which stats took for "every user" */
		len = pack_op(ops[i], "Xvictim", "victim", true, buf);
		expect(h->url, buf, len, HSAMEM_EBADNAME, "NUL", what);
		for (int b = 1; b <= 0x7f; b = b == 0x1f ? 0x7f : b + 1) {
			char ctl[8] = {'v', 'i', 'c', (char)b, 't', 'i', 'm', 0};
			snprintf(what, sizeof(what), "op %d, byte 0x%02x", (int)ops[i], b);
			len = pack_op(ops[i], ctl, "victim", false, buf);
			expect(h->url, buf, len, HSAMEM_EBADNAME, "control byte", what);
			ctl[0] = (char)b; /* at the start */
			len = pack_op(ops[i], ctl, "victim", false, buf);
			expect(h->url, buf, len, HSAMEM_EBADNAME, "control byte", what);
		}
		memset(name, 'v', sizeof(name));
		name[HSAMEM_NAME_MAX + 1] = '\0';
		snprintf(what, sizeof(what), "op %d, 65 bytes", (int)ops[i]);
		len = pack_op(ops[i], name, "victim", false, buf);
		expect(h->url, buf, len, HSAMEM_EBADNAME, "longer than 64 bytes", what);
		snprintf(what, sizeof(what), "op %d, bad byte", (int)ops[i]);
		len = pack_op(ops[i], "vic/tim", "victim", false, buf);
		expect(h->url, buf, len, HSAMEM_EBADNAME, "A-Z a-z 0-9", what);
	}
	/* a name of exactly 64 bytes is a name */
	memset(name, 'v', sizeof(name));
	name[HSAMEM_NAME_MAX] = '\0';
	len = pack_op(HSAMEM__REQUEST__BODY_APPEND, name, "sixty-four", false, buf);
	expect(h->url, buf, len, 0, "", "64 bytes");
	len = pack_op(HSAMEM__REQUEST__BODY_DELETE, name, NULL, false, buf);
	expect(h->url, buf, len, 0, "", "64 bytes, deleted");
}

/* Texts, tags and import records with a NUL byte: refused, nothing written. */
static void
test_raw_strings(struct harness *h)
{
	static uint8_t buf[4096];
	size_t len;

	len = pack_op(HSAMEM__REQUEST__BODY_APPEND, "victim", "injected Xtext", true, buf);
	expect(h->url, buf, len, HSAMEM_EINVAL, "append.entries[0].text holds a NUL byte",
	       "append text");
	len = pack_op(HSAMEM__REQUEST__BODY_QUERY, "victim", "Xquestion", true, buf);
	expect(h->url, buf, len, HSAMEM_EINVAL, "query.text holds a NUL byte", "query text");

	/* a tag, and an import's record */
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	Hsamem__EntryIn e = HSAMEM__ENTRY_IN__INIT, *ep = &e;
	char *tags[2] = {"fine", "bXd"};
	req.has_version = 1;
	req.version = HSAMEM_PROTOCOL_VERSION;
	req.body_case = HSAMEM__REQUEST__BODY_APPEND;
	req.append = &ap;
	ap.user = "victim";
	ap.entries = &ep;
	ap.n_entries = 1;
	e.text = "tagged";
	e.tags = tags;
	e.n_tags = 2;
	len = hsamem__request__pack(&req, buf);
	*(uint8_t *)memchr(buf, 'X', len) = 0;
	expect(h->url, buf, len, HSAMEM_EINVAL, "append.entries[0].tags[1] holds a NUL byte",
	       "tag");

	Hsamem__ImportRequest im = HSAMEM__IMPORT_REQUEST__INIT;
	Hsamem__ExportRecord r[2] = {HSAMEM__EXPORT_RECORD__INIT, HSAMEM__EXPORT_RECORD__INIT};
	Hsamem__ExportRecord *rp[2] = {&r[0], &r[1]};
	Hsamem__ExportRecord__Header hd = HSAMEM__EXPORT_RECORD__HEADER__INIT;
	Hsamem__Entry en = HSAMEM__ENTRY__INIT;
	hd.has_format = 1;
	hd.format = 1;
	r[0].rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	r[0].header = &hd;
	r[1].rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
	r[1].entry = &en;
	en.text = "imported Xtext";
	req.body_case = HSAMEM__REQUEST__BODY_IMPORT;
	req.import = &im;
	im.user = "newcomer";
	im.records = rp;
	im.n_records = 2;
	len = hsamem__request__pack(&req, buf);
	*(uint8_t *)memchr(buf, 'X', len) = 0;
	expect(h->url, buf, len, HSAMEM_EINVAL, "import.records[1].entry.text holds a NUL byte",
	       "import record");
}

/* The library refuses the same names before sending anything. */
static void
test_library_names(struct hsamem *c)
{
	char ctl[4] = {'a', 0, 'z', 0};
	for (int b = 1; b <= 0x7f; b = b == 0x1f ? 0x7f : b + 1) {
		ctl[1] = (char)b;
		CHECK_RET(hsamem_append_text(c, ctl, HSAMEM_ROLE_USER, "x", NULL), HSAMEM_EBADNAME);
		CHECK(strstr(hsamem_last_message(c), "control byte") != NULL);
		CHECK_RET(hsamem_delete(c, ctl, NULL), HSAMEM_EBADNAME);
	}
	CHECK_RET(hsamem_append_text(c, "victim/../x", HSAMEM_ROLE_USER, "x", NULL),
	          HSAMEM_EBADNAME);
	CHECK_RET(hsamem_append_text(c, "-victim", HSAMEM_ROLE_USER, "x", NULL), HSAMEM_EBADNAME);
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	struct hsamem_user_list *users = NULL;
	struct hsamem_entry_list *el = NULL;

	if (harness_init(&h) != 0)
		return 1;
	if (harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	CHECK_RET(hsamem_open(h.url, &c), 0);
	CHECK_RET(hsamem_append_text(c, "victim", HSAMEM_ROLE_USER, "the victim's own words", NULL),
	          0);
	test_raw_names(&h);
	test_raw_strings(&h);
	test_library_names(c);

	/* nothing changed: victim has its one entry, and is the only memory */
	CHECK_RET(hsamem_entries(c, "victim", 0, 10, &el), 0);
	CHECK(el != NULL && el->total == 1 && el->n_entries == 1 &&
	      strcmp(el->entries[0].text, "the victim's own words") == 0);
	CHECK_RET(hsamem_users(c, &users), 0);
	CHECK(users != NULL && users->n_users == 1 && strcmp(users->users[0].user, "victim") == 0);
	CHECK(harness_alive(&h));
	hsamem_result_free(users);
	hsamem_result_free(el);
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_names");
}
