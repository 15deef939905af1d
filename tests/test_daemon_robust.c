/*
 * test_daemon_robust.c: what a daemon must survive. Garbage, truncated messages, wrong protocol
 * versions, wrong dimensions, oversized fields, unknown users and bad names each get an error reply
 * (or, for a message over max-message, a dropped connection) and the daemon keeps serving; 16
 * clients appending at once lose nothing; SIGKILL in the middle of a stream of appends loses no
 * append that was acknowledged.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "harness.h"
#include "hsamem.h"
#include "hsamem.pb-c.h"
#include "test.h"

/* A datagram socket standing in for systemd's: NOTIFY_SOCKET points the daemon at it. */
static int
notify_listen(struct harness *h)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(h->dir) + sizeof("/notify") > sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, h->dir);
	strcat(sa.sun_path, "/notify");
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	return fd;
}

/* Waits up to 10 s for the next datagram and compares it. */
static bool
notify_expect(int fd, const char *want)
{
	char buf[256];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (fd < 0 || poll(&p, 1, 10000) != 1)
		return false;
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (strcmp(buf, want) != 0)
		fprintf(stderr, "notify: got %s, expected %s\n", buf, want);
	return strcmp(buf, want) == 0;
}

/* Sends raw bytes on a fresh req0 socket; returns the decoded reply (or NULL: no reply / not
 * decodable). */
static Hsamem__Reply *
raw_call(const char *url, const void *buf, size_t len, int timeout_ms)
{
	nng_socket s;
	Hsamem__Reply *rep = NULL;
	char *msg = NULL;
	size_t mlen = 0;
	if (nng_req0_open(&s) != 0)
		return NULL;
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	if (nng_dial(s, url, NULL, 0) == 0 && nng_send(s, (void *)buf, len, 0) == 0 &&
	    nng_recv(s, &msg, &mlen, NNG_FLAG_ALLOC) == 0) {
		rep = hsamem__reply__unpack(NULL, mlen, (uint8_t *)msg);
		nng_free(msg, mlen);
	}
	nng_close(s);
	return rep;
}

/*
 * Offers a message of len bytes on a bare connection to the daemon's ipc socket, written as NNG's
 * ipc transport frames it (8 bytes of greeting, 0 'S' 'P' 0 and the protocol, req0 = 0x30; then
 * a type byte 1 and the length, 8 bytes big-endian, before the bytes). Returns whether the daemon
 * closed the connection without a reply, having taken no more of the message than the socket
 * buffers hold (it hangs up on the length, before it reads the bytes). No NNG client is involved:
 * NNG 1.5's nng_close can wait forever on a pipe its peer dropped in the middle of a send, which
 * would hang the test, not the daemon.
 */
static bool
offer_oversized(const char *url, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	uint8_t hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0}, peer[8], head[9] = {1}, buf[4096];
	bool closed = false;
	int fd;

	if (strncmp(url, "ipc://", 6) != 0 ||
	    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6) >= (int)sizeof(sa.sun_path) ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < 8; i++)
		head[1 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	memset(buf, 0, sizeof(buf));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    send(fd, hello, sizeof(hello), MSG_NOSIGNAL) == (ssize_t)sizeof(hello) &&
	    recv(fd, peer, sizeof(peer), MSG_WAITALL) == (ssize_t)sizeof(peer) &&
	    send(fd, head, sizeof(head), MSG_NOSIGNAL) == (ssize_t)sizeof(head)) {
		/* as much of the message as the daemon takes before it hangs up */
		size_t sent = 0;
		while (sent < len) {
			ssize_t n =
			        send(fd, buf, len - sent < sizeof(buf) ? len - sent : sizeof(buf),
			             MSG_NOSIGNAL);
			if (n <= 0)
				break;
			sent += (size_t)n;
		}
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		closed = (n == 0 || (n < 0 && errno == ECONNRESET)) && sent < len / 4;
	}
	close(fd);
	return closed;
}

static Hsamem__Reply *
call(const char *url, Hsamem__Request *req)
{
	size_t len = hsamem__request__get_packed_size(req);
	uint8_t *buf = malloc(len + 1);
	hsamem__request__pack(req, buf);
	Hsamem__Reply *rep = raw_call(url, buf, len, 5000);
	free(buf);
	return rep;
}

static void
expect_status(Hsamem__Reply *rep, int status, const char *what)
{
	CHECK(rep != NULL);
	if (rep == NULL)
		return;
	if (rep->status != status)
		fprintf(stderr, "%s: status %d (%s), expected %d\n", what, rep->status,
		        rep->message ? rep->message : "", status);
	CHECK(rep->status == status);
	CHECK(rep->status == 0 || (rep->message != NULL && *rep->message != '\0'));
	hsamem__reply__free_unpacked(rep, NULL);
}

static void
check_serving(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_server *s = NULL;
	CHECK(harness_alive(h));
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_ping(c, &s), 0);
	hsamem_result_free(s);
	hsamem_close(c);
}

/* Random bytes of many lengths: each an error reply (EPROTO or EVERSION). */
static void
send_junk(struct harness *h)
{
	uint8_t junk[4096];
	unsigned x = 12345;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (uint8_t)(x >> 16);
	}
	for (size_t len = 0; len < sizeof(junk); len = len * 2 + 1) {
		Hsamem__Reply *rep = raw_call(h->url, junk, len, 5000);
		CHECK(rep != NULL && rep->status != 0);
		if (rep != NULL)
			hsamem__reply__free_unpacked(rep, NULL);
	}
}

/* A valid append of one entry for "mallory", which the cases below spoil one field at a time. */
struct append_req {
	Hsamem__Request req;
	Hsamem__AppendRequest ap;
	Hsamem__EntryIn e, *ep;
};

static void
append_req_init(struct append_req *a)
{
	*a = (struct append_req){.req = HSAMEM__REQUEST__INIT,
	                         .ap = HSAMEM__APPEND_REQUEST__INIT,
	                         .e = HSAMEM__ENTRY_IN__INIT};
	a->ep = &a->e;
	a->req.has_version = true;
	a->req.version = HSAMEM_PROTOCOL_VERSION;
	a->req.body_case = HSAMEM__REQUEST__BODY_APPEND;
	a->req.append = &a->ap;
	a->ap.user = "mallory";
	a->ap.entries = &a->ep;
	a->ap.n_entries = 1;
	a->e.text = "a perfectly ordinary entry that will be cut short";
}

/* A valid append, truncated at every length: each gets a reply. */
static void
send_truncated(struct harness *h, Hsamem__Request *req)
{
	size_t len = hsamem__request__get_packed_size(req);
	uint8_t *buf = malloc(len);
	hsamem__request__pack(req, buf);
	for (size_t cut = 1; cut < len; cut++) {
		Hsamem__Reply *rep = raw_call(h->url, buf, cut, 5000);
		CHECK(rep != NULL);
		if (rep != NULL)
			hsamem__reply__free_unpacked(rep, NULL);
	}
	free(buf);
}

/* Appends with a wrong or missing version, no body, bad names and bad entries. */
static void
send_bad_appends(struct harness *h, struct append_req *a)
{
	Hsamem__Request *req = &a->req;

	/* wrong or missing version */
	req->version = 2;
	expect_status(call(h->url, req), HSAMEM_EVERSION, "version 2");
	req->has_version = false;
	expect_status(call(h->url, req), HSAMEM_EVERSION, "no version");
	req->has_version = true;
	req->version = HSAMEM_PROTOCOL_VERSION;

	/* no operation */
	Hsamem__Request empty = HSAMEM__REQUEST__INIT;
	empty.has_version = true;
	empty.version = 1;
	expect_status(call(h->url, &empty), HSAMEM_EPROTO, "no body");

	/* bad user names */
	const char *bad_names[] = {
	        "",
	        "-x",
	        ".hidden",
	        "a/b",
	        "sp ace",
	        "tab\t",
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		a->ap.user = (char *)bad_names[i];
		expect_status(call(h->url, req), HSAMEM_EBADNAME, "bad name");
	}
	a->ap.user = NULL;
	expect_status(call(h->url, req), HSAMEM_EBADNAME, "no name");
	a->ap.user = "mallory";

	/* an unknown role, an empty entry, no entries, an oversized entry (max-entry is
	 * 64K here) */
	a->e.has_role = true;
	a->e.role = 77;
	expect_status(call(h->url, req), HSAMEM_EINVAL, "unknown role");
	a->e.has_role = false;
	a->e.text = "";
	expect_status(call(h->url, req), HSAMEM_EINVAL, "empty entry");
	a->ap.n_entries = 0;
	expect_status(call(h->url, req), HSAMEM_EINVAL, "no entries");
	a->ap.n_entries = 1;
	char *big = malloc(70000);
	memset(big, 'w', 69999);
	big[69999] = '\0';
	a->e.text = big;
	expect_status(call(h->url, req), HSAMEM_ETOOBIG, "oversized entry");
	a->e.text = NULL;
	free(big);
}

/*
 * Queries of an unknown user, without text, with a huge k, and of too many tokens (refused with
 * the limit named, never cut short: as token ids and as text within max-entry alike); the append
 * a makes mallory exist.
 */
static void
send_bad_queries(struct harness *h, struct append_req *a)
{
	/* unknown users */
	Hsamem__QueryRequest qq = HSAMEM__QUERY_REQUEST__INIT;
	Hsamem__Request q = HSAMEM__REQUEST__INIT;
	q.has_version = true;
	q.version = 1;
	q.body_case = HSAMEM__REQUEST__BODY_QUERY;
	q.query = &qq;
	qq.user = "nobody";
	qq.text = "anything at all";
	expect_status(call(h->url, &q), HSAMEM_ENOUSER, "unknown user");
	qq.user = "mallory";
	qq.text = NULL;
	a->e.text = "mallory exists now";
	expect_status(call(h->url, &a->req), 0, "append");
	expect_status(call(h->url, &q), HSAMEM_EINVAL, "query without text");
	qq.text = "exists";
	qq.has_top_k = true;
	qq.top_k = 100000;
	expect_status(call(h->url, &q), HSAMEM_EINVAL, "huge k");
	qq.has_top_k = false;

	/* a question of more than 4096 tokens */
	uint32_t ids[4097];
	for (size_t i = 0; i < 4097; i++)
		ids[i] = 1000 + (uint32_t)i;
	qq.text = NULL;
	qq.tokens = ids;
	qq.n_tokens = 4096;
	expect_status(call(h->url, &q), 0, "4096 query tokens");
	qq.n_tokens = 4097;
	Hsamem__Reply *rep = call(h->url, &q);
	CHECK(rep != NULL && rep->status == HSAMEM_ETOOBIG && rep->message != NULL &&
	      strstr(rep->message, "4096") != NULL);
	if (rep != NULL)
		hsamem__reply__free_unpacked(rep, NULL);
	char *words = malloc(5000 * 5 + 1);
	for (size_t i = 0; i < 5000; i++)
		memcpy(words + 5 * i, "word ", 5);
	words[5000 * 5] = '\0';
	qq.tokens = NULL;
	qq.n_tokens = 0;
	qq.text = words;
	expect_status(call(h->url, &q), HSAMEM_ETOOBIG, "a question of 5000 words");
	free(words);
}

static void
test_bad_messages(struct harness *h)
{
	struct append_req a;

	send_junk(h);
	append_req_init(&a);
	send_truncated(h, &a.req);
	send_bad_appends(h, &a);

	/* a message over max-message (1M here) is dropped with its connection, unread; the
	 * daemon goes on */
	CHECK(offer_oversized(h->url, 16u << 20));
	check_serving(h);

	send_bad_queries(h, &a);
	check_serving(h);
}

/* A client memory, and requests whose tensors do not fit its spec. */
static void
test_wrong_dimensions(struct harness *h)
{
	struct hsamem *c;
	struct hsamem_spec spec = {.encoder = "client",
	                           .chunk_size = 4,
	                           .h_kv = 1,
	                           .d_h = 8,
	                           .h_q = 2,
	                           .d_r = 8,
	                           .dtype = HSAMEM_F32};
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_create(c, "model", &spec, NULL), 0);
	float k[4 * 8] = {0}, v[4 * 8] = {0}, l[8] = {0};
	uint32_t tokens[4] = {1, 2, 3, 4};
	struct hsamem_entry_in e = {.tokens = tokens, .n_tokens = 4};
	struct hsamem_chunk_in ok = {k, sizeof(k), v, sizeof(v), l, sizeof(l)};
	struct hsamem_chunk_in short_k = {k, sizeof(k) - 4, v, sizeof(v), l, sizeof(l)};
	struct hsamem_chunk_in long_l = {k, sizeof(k), v, sizeof(v), k, sizeof(k)};
	CHECK_RET(hsamem_append(c, "model", &e, 1, &short_k, 1, 0, NULL), HSAMEM_ESPEC);
	CHECK_RET(hsamem_append(c, "model", &e, 1, &long_l, 1, 0, NULL), HSAMEM_ESPEC);
	/* four tokens seal one chunk: no tensors, or two, is wrong */
	CHECK_RET(hsamem_append(c, "model", &e, 1, NULL, 0, 0, NULL), HSAMEM_ESPEC);
	struct hsamem_chunk_in two[2] = {ok, ok};
	CHECK_RET(hsamem_append(c, "model", &e, 1, two, 2, 0, NULL), HSAMEM_ESPEC);
	CHECK_RET(hsamem_append(c, "model", &e, 1, &ok, 1, 0, NULL), 0);
	/* text entries are refused by a client memory, and text queries too */
	struct hsamem_entry_in te = {.text = "words"};
	CHECK_RET(hsamem_append(c, "model", &te, 1, NULL, 0, 0, NULL), HSAMEM_EINVAL);
	struct hsamem_query_result *r = NULL;
	CHECK_RET(hsamem_query_text(c, "model", "words", 3, &r), HSAMEM_ENOTSUP);
	/* attend with queries of the wrong size */
	float qr[8] = {0}, qa[16] = {0};
	struct hsamem_attend a = {.n = 1, .qr = qr, .qr_len = 7, .qa = qa, .qa_len = 16};
	struct hsamem_attend_result *ar = NULL;
	CHECK(hsamem_attend(c, "model", &a, &ar) != 0);
	a.qr_len = 8;
	a.qa_len = 15;
	CHECK(hsamem_attend(c, "model", &a, &ar) != 0);
	a.qa_len = 16;
	CHECK_RET(hsamem_attend(c, "model", &a, &ar), 0);
	CHECK(ar != NULL && ar->selected[0] == 0);
	hsamem_result_free(ar);
	/* a built-in memory refuses token ids and tensors */
	CHECK_RET(hsamem_append(c, "lex", &te, 1, NULL, 0, 0, NULL), 0);
	CHECK_RET(hsamem_append(c, "lex", &e, 1, NULL, 0, 0, NULL), HSAMEM_ENOTSUP);
	/* a spec that does not fit the built-in encoder is refused, not coerced */
	struct hsamem_spec wrong = {.encoder = "lexical", .d_r = 7};
	CHECK_RET(hsamem_create(c, "lex2", &wrong, NULL), HSAMEM_ESPEC);
	struct hsamem_spec nodims = {.encoder = "client", .h_kv = 1};
	CHECK_RET(hsamem_create(c, "lex3", &nodims, NULL), HSAMEM_EINVAL);
	struct hsamem_spec noenc = {.encoder = "nonesuch"};
	CHECK_RET(hsamem_create(c, "lex4", &noenc, NULL), HSAMEM_EENCODER);
	hsamem_close(c);
	check_serving(h);
}

#define WRITERS    16
#define PER_WRITER 40

struct writer {
	const char *url;
	int id;
	int failures;
	atomic_bool *stop;
	/* acknowledged appends: seq and the text's number */
	uint64_t acked_seq[4096];
	unsigned acked_n[4096];
	unsigned n_acked;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct hsamem *c;
	char text[128];
	if (hsamem_open(w->url, &c) != 0) {
		w->failures++;
		return NULL;
	}
	hsamem_set_timeout(c, 10000);
	for (unsigned i = 0; w->n_acked < 4096; i++) {
		if (w->stop == NULL && i == PER_WRITER)
			break;
		if (w->stop != NULL && atomic_load(w->stop))
			break;
		uint64_t seq;
		snprintf(text, sizeof(text), "writer %d says number %u of the stream", w->id, i);
		int ret = hsamem_append_text(c, "shared", HSAMEM_ROLE_USER, text, &seq);
		if (ret == 0) {
			w->acked_seq[w->n_acked] = seq;
			w->acked_n[w->n_acked++] = i;
		} else if (w->stop == NULL) {
			w->failures++;
		} else {
			break; /* the daemon was killed */
		}
	}
	hsamem_close(c);
	return NULL;
}

/* Checks that every acknowledged append of the writers is in the memory with its text. */
static void
check_acked(struct harness *h, struct writer *w, int n_writers)
{
	struct hsamem *c;
	struct hsamem_entry_list *el = NULL;
	char want[128];
	unsigned missing = 0, total = 0;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	for (int i = 0; i < n_writers; i++)
		for (unsigned a = 0; a < w[i].n_acked; a++, total++) {
			if (hsamem_entries(c, "shared", w[i].acked_seq[a], 1, &el) != 0 ||
			    el->n_entries != 1) {
				missing++;
			} else {
				snprintf(want, sizeof(want),
				         "writer %d says number %u of the stream", w[i].id,
				         w[i].acked_n[a]);
				missing += strcmp(el->entries[0].text, want) != 0;
			}
			hsamem_result_free(el);
			el = NULL;
		}
	if (missing)
		fprintf(stderr, "%u of %u acknowledged appends missing\n", missing, total);
	CHECK(missing == 0 && total > 0);
	hsamem_close(c);
}

static void
test_concurrent_writers(struct harness *h)
{
	static struct writer w[WRITERS];
	pthread_t t[WRITERS];
	struct hsamem *c;
	for (int i = 0; i < WRITERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].url = h->url;
		w[i].id = i;
		pthread_create(&t[i], NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < WRITERS; i++)
		CHECK(w[i].failures == 0 && w[i].n_acked == PER_WRITER);
	CHECK_RET(hsamem_open(h->url, &c), 0);
	struct hsamem_stats *st = NULL;
	CHECK_RET(hsamem_stats(c, "shared", &st), 0);
	CHECK(st != NULL && st->n_memories == 1 && st->memories[0].entries == WRITERS * PER_WRITER);
	/* group commit: fewer commits than appends when 16 clients write at once */
	CHECK(st != NULL && st->commits < st->committed_appends);
	hsamem_result_free(st);
	hsamem_close(c);
	check_acked(h, w, WRITERS);
}

static void
test_sigkill(struct harness *h)
{
	static struct writer w[4];
	pthread_t t[4];
	atomic_bool stop = false;
	struct hsamem *c;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK_RET(hsamem_delete(c, "shared", NULL), 0);
	hsamem_close(c);
	for (int i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].url = h->url;
		w[i].id = i;
		w[i].stop = &stop;
		pthread_create(&t[i], NULL, writer_main, &w[i]);
	}
	struct timespec ts = {0, 700 * 1000000};
	nanosleep(&ts, NULL);
	CHECK_RET(harness_stop(h, SIGKILL), 128 + SIGKILL);
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	unsigned acked = 0;
	for (int i = 0; i < 4; i++)
		acked += w[i].n_acked;
	fprintf(stderr, "sigkill: %u appends acknowledged before the kill\n", acked);
	CHECK(acked > 0);
	CHECK_RET(harness_start(h), 0);
	check_acked(h, w, 4);
}

int
main(void)
{
	struct harness h;
	if (harness_init(&h) != 0)
		return 1;
	h.extra[0] = "-o";
	h.extra[1] = "max-entry=64K";
	h.extra[2] = "-o";
	h.extra[3] = "max-message=1M";
	/* a 1 MiB map grows several times under the writers below */
	h.extra[4] = "-o";
	h.extra[5] = "map-size=1M";
	int notify = notify_listen(&h);
	if (harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	CHECK(notify_expect(notify, "READY=1"));
	kill(h.pid, SIGHUP);
	CHECK(notify_expect(notify, "RELOADING=1"));
	CHECK(notify_expect(notify, "READY=1"));
	test_bad_messages(&h);
	test_wrong_dimensions(&h);
	test_concurrent_writers(&h);
	test_sigkill(&h);
	check_serving(&h);
	CHECK(notify_expect(notify, "READY=1")); /* the restart after SIGKILL */
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	CHECK(notify_expect(notify, "STOPPING=1"));
	close(notify);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_robust");
}
