/*
 * test_client.c: libhsamem without a daemon: error strings, the default address and the check
 * of its private directory, a dead address, the shared secret (sent over tcp, never over ipc),
 * and a fake daemon (an NNG rep0 socket in a thread, answering with replies each case crafts) that
 * checks what the library sends and feeds it broken replies, which must come back as
 * HSAMEM_EPROTO and never as a crash. Export/import paging and batching run against it too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "harness.h"
#include "hsamem.h"
#include "hsamem.pb-c.h"
#include "test.h"

/* ---- the fake daemon ---- */

typedef void (*handler_fn)(const Hsamem__Request *req);

static nng_socket srv;
static handler_fn handler;
static uint8_t *reply_buf; /* what the handler packed */
static size_t reply_len;
static int bad_versions; /* requests without version 1 or with no body */
static int with_secret;  /* requests that carried a secret */
static char last_secret[64];
static atomic_int requests_seen;

static void
reply(Hsamem__Reply *r)
{
	reply_len = hsamem__reply__get_packed_size(r);
	reply_buf = malloc(reply_len);
	hsamem__reply__pack(r, reply_buf);
}

static void
reply_raw(const void *data, size_t len)
{
	reply_buf = malloc(len + 1);
	memcpy(reply_buf, data, len);
	reply_len = len;
}

static void *
server_main(void *arg)
{
	nng_msg *m;
	Hsamem__Request *req;

	(void)arg;
	while (nng_recvmsg(srv, &m, 0) == 0) {
		atomic_fetch_add(&requests_seen, 1);
		req = hsamem__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		nng_msg_free(m);
		if (req == NULL || !req->has_version || req->version != HSAMEM_PROTOCOL_VERSION ||
		    req->body_case == HSAMEM__REQUEST__BODY__NOT_SET)
			bad_versions++;
		if (req != NULL && req->has_secret) {
			with_secret++;
			snprintf(last_secret, sizeof(last_secret), "%.*s", (int)req->secret.len,
			         (const char *)req->secret.data);
		}
		reply_buf = NULL;
		if (req != NULL && handler != NULL)
			handler(req);
		hsamem__request__free_unpacked(req, NULL);
		if (reply_buf == NULL)
			continue; /* no answer: the client times out */
		nng_msg_alloc(&m, reply_len);
		memcpy(nng_msg_body(m), reply_buf, reply_len);
		free(reply_buf);
		if (nng_sendmsg(srv, m, 0) != 0)
			nng_msg_free(m);
	}
	return NULL;
}

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- checks that need no daemon ---- */

static void
test_strerror(void)
{
	const char *seen[-HSAMEM_EPERM - 1000];
	int n = 0;

	CHECK(strcmp(hsamem_strerror(0), "success") == 0);
	/* Every code has its own message. */
	for (int e = HSAMEM_EPROTO; e >= HSAMEM_EPERM; e--) {
		const char *m = hsamem_strerror(e);
		CHECK(m != NULL && strcmp(m, "unknown error") != 0);
		for (int i = 0; i < n; i++)
			CHECK(strcmp(seen[i], m) != 0);
		seen[n++] = m;
	}
	CHECK(strcmp(hsamem_strerror(-ENOENT), strerror(ENOENT)) == 0);
	CHECK(strcmp(hsamem_strerror(-ETIMEDOUT), strerror(ETIMEDOUT)) == 0);
	CHECK(strcmp(hsamem_strerror(5), "unknown error") == 0);
	CHECK(strcmp(hsamem_strerror(-5000), "unknown error") == 0);
	CHECK(strcmp(hsamem_strerror(HSAMEM_EPERM - 1), "unknown error") == 0);
}

static void
test_names(void)
{
	CHECK(strcmp(hsamem_role_name(HSAMEM_ROLE_ASSISTANT), "assistant") == 0);
	CHECK(strcmp(hsamem_role_name(HSAMEM_ROLE_OTHER), "other") == 0);
	CHECK(hsamem_role_name((enum hsamem_role)9) == NULL);
	CHECK(strcmp(hsamem_dtype_name(HSAMEM_BF16), "bf16") == 0);
	CHECK(hsamem_dtype_name(HSAMEM_DTYPE_DEFAULT) == NULL);
	CHECK(strcmp(hsamem_weighting_name(HSAMEM_STICKBREAK), "stickbreak") == 0);
	CHECK(hsamem_version()[0] != '\0');
}

/* The rule of user names, byte by byte, as hsamem_name_check() (which the daemon applies too)
 * says it: every byte value in the middle of a name, at its start, and the lengths. */
static void
test_name_rule(void)
{
	char name[HSAMEM_NAME_MAX + 2];
	const char *why;

	for (int b = 0; b < 256; b++) {
		char mid[3] = {'a', (char)b, 'z'}, first[2] = {(char)b, 'z'};
		bool ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
		          (b >= '0' && b <= '9') || (b != 0 && strchr("_.@:-", b) != NULL);
		why = NULL;
		CHECK_RET(hsamem_name_check(mid, 3, &why), ok ? 0 : HSAMEM_EBADNAME);
		CHECK(ok == (why == NULL));
		if (b == 0)
			CHECK(why != NULL && strstr(why, "NUL") != NULL);
		else if (b < 0x20 || b == 0x7f)
			CHECK(why != NULL && strstr(why, "control byte") != NULL);
		else if (!ok)
			CHECK(why != NULL && strstr(why, "A-Z a-z 0-9 _ . @ : -") != NULL);
		CHECK_RET(hsamem_name_check(first, 2, NULL),
		          ok && b != '.' && b != '-' ? 0 : HSAMEM_EBADNAME);
	}
	/* a NUL inside the length is seen, not taken for the end */
	CHECK_RET(hsamem_name_check("victim\0/../x", 12, &why), HSAMEM_EBADNAME);
	CHECK(strstr(why, "NUL") != NULL);
	CHECK_RET(hsamem_name_check("victim", 6, NULL), 0);
	CHECK_RET(hsamem_name_check("", 0, &why), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_name_check(NULL, 3, NULL), HSAMEM_EBADNAME);
	memset(name, 'n', sizeof(name));
	CHECK_RET(hsamem_name_check(name, HSAMEM_NAME_MAX, NULL), 0);
	CHECK_RET(hsamem_name_check(name, HSAMEM_NAME_MAX + 1, &why), HSAMEM_EBADNAME);
	CHECK(strstr(why, "longer than 64 bytes") != NULL);
}

static void
test_default_url(void)
{
	char buf[HSAMEM_URL_MAX], want[HSAMEM_URL_MAX], small[12];

	setenv("RUNTIME_DIRECTORY", "/run/hsamemd", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "ipc:///run/hsamemd/hsamemd.sock") == 0);
	setenv("RUNTIME_DIRECTORY", "/run/a:/run/b", 1);
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "ipc:///run/a/hsamemd.sock") == 0);
	setenv("RUNTIME_DIRECTORY", "", 1);
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "ipc:///run/user/1000/hsamemd.sock") == 0);
	unsetenv("RUNTIME_DIRECTORY");
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "ipc:///run/user/1000/hsamemd.sock") == 0);
	/* without a runtime directory: a private directory of this uid, never /tmp itself */
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("TMPDIR");
	snprintf(want, sizeof(want), "ipc:///tmp/hsamem-%u/hsamemd.sock", (unsigned)geteuid());
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, want) == 0);
	setenv("XDG_RUNTIME_DIR", "", 1);
	setenv("TMPDIR", "relative", 1);
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, want) == 0);
	setenv("TMPDIR", "/var/tmp", 1);
	snprintf(want, sizeof(want), "ipc:///var/tmp/hsamem-%u/hsamemd.sock", (unsigned)geteuid());
	CHECK_RET(hsamem_default_url(buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, want) == 0);
	CHECK_RET(hsamem_default_url(small, sizeof(small)), -ENAMETOOLONG);
	CHECK(small[0] == '\0');
	unsetenv("TMPDIR");
}

/* The client connects to the private directory's socket only when the directory is its own and
 * closed to others: another user could have made it and be listening there. */
static void
test_private_dir(void)
{
	char tmp[] = "/tmp/hsamem-test-priv-XXXXXX", dir[128], sock[160];
	struct hsamem *h = NULL;
	nng_socket s;

	if (mkdtemp(tmp) == NULL) {
		CHECK(0);
		return;
	}
	setenv("TMPDIR", tmp, 1);
	snprintf(dir, sizeof(dir), "%s/hsamem-%u", tmp, (unsigned)geteuid());
	snprintf(sock, sizeof(sock), "ipc://%s/hsamemd.sock", dir);
	CHECK_RET(hsamem_open(NULL, &h), 0);
	if (h == NULL)
		goto out;
	CHECK(strcmp(hsamem_url(h), sock) == 0);
	hsamem_set_timeout(h, 2000);
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT);
	CHECK(strstr(hsamem_last_message(h), "does not exist") != NULL);

	/* someone listens there, in a directory others may write to: refused before connecting */
	CHECK(mkdir(dir, 0777) == 0 && chmod(dir, 0777) == 0);
	if (nng_rep0_open(&s) != 0 || nng_listen(s, sock, NULL, 0) != 0) {
		CHECK(0);
		goto out;
	}
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT);
	CHECK(strstr(hsamem_last_message(h), "mode 0777") != NULL);
	/* the same by its URL, as the Python client passes it */
	hsamem_close(h);
	CHECK_RET(hsamem_open(sock, &h), 0);
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT);
	CHECK(strstr(hsamem_last_message(h), "must be 0700") != NULL);
	if (geteuid() == 0) { /* owned by another uid */
		CHECK(chmod(dir, 0700) == 0 && chown(dir, 65534, 65534) == 0);
		CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT);
		CHECK(strstr(hsamem_last_message(h), "belongs to uid 65534") != NULL);
	}
	nng_close(s);
out:
	hsamem_close(h);
	unsetenv("TMPDIR");
	snprintf(sock, sizeof(sock), "rm -rf '%s'", tmp);
	CHECK(system(sock) == 0);
}

/*
 * hsamem_open(NULL) with a real daemon: found at the per-user address ($XDG_RUNTIME_DIR here);
 * with nothing there, or a socket nobody listens on, the failure lists every address tried and
 * says how to choose one.
 */
static void
test_default_search(void)
{
	char empty[] = "/tmp/hsamem-test-search-XXXXXX", want[400], stale[300];
	struct harness d;
	struct hsamem *h = NULL;
	struct stat st;
	const char *m;

	if (harness_init(&d) != 0 || mkdtemp(empty) == NULL) {
		CHECK(0);
		return;
	}
	unsetenv("RUNTIME_DIRECTORY");
	unsetenv("HSAMEM_SOCKET");
	if (harness_start(&d) != 0) {
		CHECK(0);
		harness_dump_log(&d);
		goto out;
	}
	/* the daemon's socket is DIR/hsamemd.sock: DIR is the per-user runtime directory */
	setenv("XDG_RUNTIME_DIR", d.dir, 1);
	CHECK_RET(hsamem_open(NULL, &h), 0);
	CHECK_RET(hsamem_ping(h, NULL), 0);
	CHECK(h != NULL && strcmp(hsamem_url(h), d.url) == 0);
	CHECK_RET(hsamem_ping(h, NULL), 0); /* found once, kept */
	hsamem_close(h);
	h = NULL;

	/* nothing at the per-user address */
	setenv("XDG_RUNTIME_DIR", empty, 1);
	snprintf(want, sizeof(want), "ipc://%s/hsamemd.sock (no socket there)", empty);
	CHECK_RET(hsamem_open(NULL, &h), 0);
	hsamem_set_timeout(h, 2000);
	if (stat("/run/hsamem/hsamemd.sock", &st) == 0) {
		printf("test_client: a system service listens; its fallback is not checked\n");
		goto out;
	}
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT);
	m = hsamem_last_message(h);
	CHECK(strstr(m, want) != NULL);
	CHECK(strstr(m, "ipc:///run/hsamem/hsamemd.sock (no socket there)") != NULL);
	CHECK(strstr(m, "HSAMEM_SOCKET") != NULL && strstr(m, "-s URL") != NULL);

	/* a socket file that nobody listens on any more (bound, never listened): tried, refused */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(stale, sizeof(stale), "ipc://%s/hsamemd.sock", empty);
	CHECK(strlen(stale + 6) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, stale + 6, strlen(stale + 6) + 1);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT); /* the search runs again */
	m = hsamem_last_message(h);
	CHECK(strstr(m, stale) != NULL && strstr(m, want) == NULL);
	CHECK(strstr(m, "refused") != NULL);
out:
	hsamem_close(h);
	unsetenv("XDG_RUNTIME_DIR");
	harness_fini(&d);
	snprintf(want, sizeof(want), "rm -rf '%s'", empty);
	CHECK(system(want) == 0);
}

static void
test_open_errors(void)
{
	struct hsamem *h = NULL;
	char url[128];
	double t0;
	int err;

	CHECK_RET(hsamem_open("nosuchtransport://x", &h), HSAMEM_EINVAL);
	CHECK_RET(hsamem_open("not a url", &h), HSAMEM_EINVAL);
	hsamem_close(NULL);
	hsamem_result_free(NULL);

	snprintf(url, sizeof(url), "ipc:///tmp/hsamem-test-dead-%d.sock", (int)getpid());
	CHECK_RET(hsamem_open(url, &h), 0);
	if (h == NULL)
		return;
	CHECK(strcmp(hsamem_url(h), url) == 0);
	CHECK_RET(hsamem_set_timeout(h, -2), HSAMEM_EINVAL);
	CHECK_RET(hsamem_set_timeout(h, 300), 0);
	t0 = now_ms();
	err = hsamem_ping(h, NULL);
	CHECK(err == HSAMEM_ECONNECT || err == -ETIMEDOUT);
	CHECK(now_ms() - t0 < 2000);
	CHECK(hsamem_last_message(h)[0] != '\0');
	/* A second try dials again and fails the same way. */
	err = hsamem_ping(h, NULL);
	CHECK(err == HSAMEM_ECONNECT || err == -ETIMEDOUT);
	/* Names are checked before anything is sent. */
	CHECK_RET(hsamem_delete(h, "-bad", NULL), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_delete(h, "", NULL), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_delete(h, "a b", NULL), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_append(h, "alice", NULL, 0, NULL, 0, 0, NULL), HSAMEM_EINVAL);
	hsamem_close(h);
}

/* ---- against the fake daemon ---- */

static void
h_ping(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__PingReply p = HSAMEM__PING_REPLY__INIT;

	p.server_version = "9.9";
	p.has_protocol_version = 1;
	p.protocol_version = 1;
	p.backend = "cpu";
	p.has_uptime_ms = 1;
	p.uptime_ms = 1234;
	r.has_status = 1;
	r.body_case = HSAMEM__REPLY__BODY_PING;
	r.ping = &p;
	reply(&r);
}

static void
h_nouser(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;

	r.has_status = 1;
	r.status = HSAMEM_ENOUSER;
	r.message = "no such user 'bob'\x1b[31m";
	reply(&r);
}

static void
h_positive(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;

	r.has_status = 1;
	r.status = 7;
	reply(&r);
}

static void
h_garbage(const Hsamem__Request *req)
{
	reply_raw("\xff\xff\xff\xff\x0f garbage", 14);
}

static void
h_silent(const Hsamem__Request *req)
{
	(void)req;
}

static Hsamem__Reply *
ok_reply(Hsamem__Reply *r, Hsamem__Reply__BodyCase body, void *msg)
{
	r->has_status = 1;
	r->status = 0;
	r->body_case = body;
	r->ping = msg;
	return r;
}

static int query_bad_index;

static void
h_query(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__QueryReply q = HSAMEM__QUERY_REPLY__INIT;
	Hsamem__Hit hit = HSAMEM__HIT__INIT, tail = HSAMEM__HIT__INIT, *hits[2] = {&hit, &tail};
	Hsamem__Entry e = HSAMEM__ENTRY__INIT, *ents[1] = {&e};
	Hsamem__TokenWeight tw = HSAMEM__TOKEN_WEIGHT__INIT, *tws[1] = {&tw};
	char *tags[1] = {"travel"};

	CHECK(req->body_case == HSAMEM__REQUEST__BODY_QUERY);
	CHECK(strcmp(req->query->user, "alice") == 0);
	CHECK(strcmp(req->query->text, "where is the cat") == 0);
	CHECK(req->query->has_top_k && req->query->top_k == 2);
	hit.chunk = 3;
	hit.has_chunk = 1;
	hit.score = 1.5f;
	hit.has_score = 1;
	hit.weight = 0.75f;
	hit.has_weight = 1;
	hit.text = "the cat sat on the mat";
	hit.n_tokens = 64;
	hit.has_n_tokens = 1;
	hit.n_entries = 1;
	hit.entries = ents;
	e.seq = 17;
	e.has_seq = 1;
	e.role = 42; /* a role from a newer daemon */
	e.has_role = 1;
	e.text = "I saw the cat sat on the mat";
	e.n_tags = 1;
	e.tags = tags;
	tw.index = query_bad_index ? 64 : 5;
	tw.has_index = 1;
	tw.id = 99;
	tw.has_id = 1;
	tw.text = "cat";
	tw.weight = 0.5f;
	tw.has_weight = 1;
	hit.n_top_tokens = 1;
	hit.top_tokens = tws;
	tail.chunk = 10;
	tail.has_chunk = 1;
	tail.tail = 1;
	tail.has_tail = 1;
	tail.n_tokens = 12;
	tail.has_n_tokens = 1;
	q.n_hits = 2;
	q.hits = hits;
	q.chunks = 10;
	q.has_chunks = 1;
	q.k = 2;
	q.has_k = 1;
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_QUERY, &q));
}

static void
test_query(struct hsamem *h)
{
	struct hsamem_query_result *res = NULL;

	handler = h_query;
	query_bad_index = 0;
	CHECK_RET(hsamem_query_text(h, "alice", "where is the cat", 2, &res), 0);
	if (res != NULL) {
		CHECK(res->n_hits == 2 && res->k == 2 && res->chunks == 10);
		CHECK(res->hits[0].chunk == 3 && !res->hits[0].tail);
		CHECK_NEAR(res->hits[0].weight, 0.75, 1e-6);
		CHECK(strcmp(res->hits[0].text, "the cat sat on the mat") == 0);
		CHECK(res->hits[0].n_entries == 1 && res->hits[0].entries[0].seq == 17);
		CHECK(res->hits[0].entries[0].role == HSAMEM_ROLE_OTHER);
		CHECK(res->hits[0].entries[0].n_tags == 1);
		CHECK(strcmp(res->hits[0].entries[0].tags[0], "travel") == 0);
		CHECK(res->hits[0].n_top_tokens == 1 && res->hits[0].top_tokens[0].index == 5);
		CHECK(strcmp(res->hits[0].top_tokens[0].text, "cat") == 0);
		CHECK(res->hits[1].tail && res->hits[1].chunk == 10);
		CHECK(strcmp(res->hits[1].text, "") == 0); /* absent text reads "" */
		CHECK(res->hits[1].n_entries == 0 && res->hits[1].n_top_tokens == 0);
	}
	hsamem_result_free(res);
	res = NULL;
	query_bad_index = 1;
	CHECK_RET(hsamem_query_text(h, "alice", "where is the cat", 2, &res), HSAMEM_EPROTO);
	CHECK(res == NULL);
}

/* Which field of the attend reply to break. */
static int attend_break;

static void
h_attend(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__AttendReply a = HSAMEM__ATTEND_REPLY__INIT;
	const Hsamem__AttendRequest *q = req->attend;
	/* n = 2, h_kv = 1, k = 2, h_q = 2, d_h = 2, S = 4 */
	static float output[8] = {1, 2, 3, 4, 5, 6, 7, 8}, weights[4] = {0.6f, 0.4f, 1, 0};
	static float scores[4] = {3, 2, 1, -1}, attention[2 * 2 * 2 * 4];
	int64_t selected[4] = {4, 1, 0, -1};

	CHECK(req->body_case == HSAMEM__REQUEST__BODY_ATTEND);
	CHECK(q->n == 2 && q->qr.len == 4 * 4 && q->qa.len == 8 * 4);
	CHECK(q->n_positions == 2 && q->positions[0] == 320 && q->positions[1] == 0);
	CHECK(memcmp(q->qa.data, "\x00\x00\x80\x3f", 4) == 0); /* 1.0f, little-endian */
	a.has_n = a.has_k = 1;
	a.n = 2;
	a.k = 2;
	a.has_output = a.has_weights = a.has_scores = 1;
	a.output.data = (uint8_t *)output;
	a.output.len = attend_break == 1 ? 28 : 32;
	a.weights.data = (uint8_t *)weights;
	a.weights.len = attend_break == 2 ? 12 : 16;
	a.scores.data = (uint8_t *)scores;
	a.scores.len = attend_break == 5 ? 15 : 16;
	a.n_selected = attend_break == 3 ? 3 : 4;
	a.selected = selected;
	if (attend_break == 4)
		selected[1] = -7;
	if (q->want_attention) {
		a.has_attention = 1;
		a.attention.data = (uint8_t *)attention;
		a.attention.len = sizeof(attention);
	}
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_ATTEND, &a));
}

static void
test_attend(struct hsamem *h)
{
	float qr[4] = {1, 0, 0, 1}, qa[8] = {1, 0, 0, 1, 1, 0, 0, 1};
	uint64_t pos[2] = {320, 0};
	struct hsamem_attend a = {.n = 2,
	                          .qr = qr,
	                          .qr_len = 4,
	                          .qa = qa,
	                          .qa_len = 8,
	                          .positions = pos,
	                          .want_attention = true};
	struct hsamem_attend_result *res = NULL;

	handler = h_attend;
	attend_break = 0;
	CHECK_RET(hsamem_attend(h, "rt", &a, &res), 0);
	if (res != NULL) {
		CHECK(res->n == 2 && res->k == 2 && res->h_kv == 1);
		CHECK(res->output_len == 8 && res->output[7] == 8);
		CHECK(res->selected_len == 4 && res->selected[0] == 4 && res->selected[3] == -1);
		CHECK_NEAR(res->weights[1], 0.4, 1e-6);
		CHECK(res->scores[3] == -1);
		CHECK(res->attention != NULL && res->attention_len == 32);
	}
	hsamem_result_free(res);
	for (attend_break = 1; attend_break <= 5; attend_break++) {
		res = NULL;
		CHECK_RET(hsamem_attend(h, "rt", &a, &res), HSAMEM_EPROTO);
		CHECK(res == NULL);
	}
	a.qa_len = 7; /* not a multiple of n */
	CHECK_RET(hsamem_attend(h, "rt", &a, &res), HSAMEM_EINVAL);
}

static int chunks_break;

static void
h_chunks(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__ChunksReply cr = HSAMEM__CHUNKS_REPLY__INIT;
	Hsamem__Chunk c = HSAMEM__CHUNK__INIT, *cs[1] = {&c};
	uint32_t toks[4] = {10, 11, 12, 0};
	uint8_t kv[16] = {1, 2, 3};

	CHECK(req->chunks->tensors && req->chunks->first == 5 && req->chunks->count == 1);
	c.index = 5;
	c.has_index = 1;
	c.n_tokens = 4;
	c.tokens = toks;
	c.has_n_real = 1;
	c.n_real = chunks_break == 1 ? 5 : 3;
	c.text = "abc";
	c.has_k = c.has_v = c.has_landmark = 1;
	c.k.data = c.v.data = c.landmark.data = kv;
	c.k.len = 16;
	c.v.len = chunks_break == 2 ? 8 : 16;
	c.landmark.len = 4;
	cr.n_chunks = 1;
	cr.chunks = cs;
	cr.total = 9;
	cr.has_total = 1;
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_CHUNKS, &cr));
}

static void
test_chunks(struct hsamem *h)
{
	struct hsamem_chunk_list *l = NULL;

	handler = h_chunks;
	chunks_break = 0;
	CHECK_RET(hsamem_chunks(h, "alice", 5, 1, HSAMEM_CHUNKS_TENSORS, &l), 0);
	if (l != NULL) {
		CHECK(l->n_chunks == 1 && l->total == 9 && l->chunks[0].n_real == 3);
		CHECK(l->chunks[0].tokens[2] == 12 && l->chunks[0].k_size == 16);
		CHECK(l->chunks[0].landmark_size == 4 && ((uint8_t *)l->chunks[0].k)[1] == 2);
	}
	hsamem_result_free(l);
	for (chunks_break = 1; chunks_break <= 2; chunks_break++)
		CHECK_RET(hsamem_chunks(h, "alice", 5, 1, HSAMEM_CHUNKS_TENSORS, &l),
		          HSAMEM_EPROTO);
}

static void
h_stats_bad(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__StatsReply s = HSAMEM__STATS_REPLY__INIT;
	Hsamem__Histogram hg = HSAMEM__HISTOGRAM__INIT, *hgs[1] = {&hg};
	double bounds[2] = {1, 10};
	uint64_t counts[2] = {5, 6}; /* should be 3 */

	hg.name = "query";
	hg.n_bounds_ms = 2;
	hg.bounds_ms = bounds;
	hg.n_counts = 2;
	hg.counts = counts;
	s.n_latency = 1;
	s.latency = hgs;
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_STATS, &s));
}

static void
h_append(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__AppendReply a = HSAMEM__APPEND_REPLY__INIT;
	const Hsamem__AppendRequest *q = req->append;

	CHECK(req->body_case == HSAMEM__REQUEST__BODY_APPEND);
	CHECK(q->n_entries == 2 && strcmp(q->entries[0]->text, "hello") == 0);
	CHECK(q->entries[1]->n_tokens == 3 && q->entries[1]->tokens[2] == 7);
	CHECK(q->entries[0]->role == HSAMEM__ROLE__ROLE_ASSISTANT);
	CHECK(q->entries[0]->n_tags == 1 && strcmp(q->entries[0]->tags[0], "t1") == 0);
	CHECK(q->has_create && !q->create);
	a.first_seq = 40;
	a.has_first_seq = 1;
	a.count = strcmp(q->user, "liar") == 0 ? 1 : 2;
	a.has_count = 1;
	a.tokens = 100;
	a.has_tokens = 1;
	a.chunks = 1;
	a.has_chunks = 1;
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_APPEND, &a));
}

static void
test_append(struct hsamem *h)
{
	const char *tags[1] = {"t1"};
	uint32_t toks[3] = {5, 6, 7};
	struct hsamem_entry_in e[2] = {
	        {.text = "hello", .role = HSAMEM_ROLE_ASSISTANT, .tags = tags, .n_tags = 1},
	        {.tokens = toks, .n_tokens = 3},
	};
	struct hsamem_append_info info = {0};

	handler = h_append;
	CHECK_RET(hsamem_append(h, "alice", e, 2, NULL, 0, HSAMEM_APPEND_NO_CREATE, &info), 0);
	CHECK(info.first_seq == 40 && info.count == 2 && info.tokens == 100);
	CHECK_RET(hsamem_append(h, "liar", e, 2, NULL, 0, HSAMEM_APPEND_NO_CREATE, &info),
	          HSAMEM_EPROTO);
}

/* Names that break the rule are refused before anything is sent, by every operation. */
static void
test_bad_names(struct hsamem *h)
{
	char name[HSAMEM_NAME_MAX + 2], ctl[4] = {'a', 0, 'z', 0};
	int before = atomic_load(&requests_seen);

	handler = h_ping;
	for (int b = 1; b <= 0x7f; b = b == 0x1f ? 0x7f : b + 1) {
		ctl[1] = (char)b;
		CHECK_RET(hsamem_delete(h, ctl, NULL), HSAMEM_EBADNAME);
		CHECK(strstr(hsamem_last_message(h), "control byte") != NULL);
		CHECK_RET(hsamem_append_text(h, ctl, HSAMEM_ROLE_USER, "x", NULL), HSAMEM_EBADNAME);
		CHECK_RET(hsamem_entries(h, ctl, 0, 1, NULL), HSAMEM_EBADNAME);
	}
	memset(name, 'n', sizeof(name));
	name[HSAMEM_NAME_MAX + 1] = '\0';
	CHECK_RET(hsamem_flush(h, name, NULL, NULL), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_create(h, "-dash", NULL, NULL), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_query_text(h, "a/b", "x", 1, NULL), HSAMEM_EBADNAME);
	CHECK_RET(hsamem_import(h, "", 0, NULL), HSAMEM_EBADNAME);
	CHECK(atomic_load(&requests_seen) == before);
}

/* ---- export and import ---- */

#define BIG_KV (3u << 20)

static uint8_t *big_kv;
static int export_mode; /* 0: good, 1: no progress */
static int import_batches, import_last, import_records, import_entries;

static void
h_export(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__ExportReply ex = HSAMEM__EXPORT_REPLY__INIT;
	Hsamem__ExportRecord recs[3], *rp[3];
	Hsamem__ExportRecord__Header hd = HSAMEM__EXPORT_RECORD__HEADER__INIT;
	Hsamem__Entry e = HSAMEM__ENTRY__INIT;
	Hsamem__ExportRecord__ChunkRec c1 = HSAMEM__EXPORT_RECORD__CHUNK_REC__INIT, c2;
	Hsamem__ExportRecord__Tail tail = HSAMEM__EXPORT_RECORD__TAIL__INIT;
	const Hsamem__ExportRequest *q = req->export;

	for (int i = 0; i < 3; i++) {
		hsamem__export_record__init(&recs[i]);
		rp[i] = &recs[i];
	}
	c2 = c1;
	ex.records = rp;
	ex.upto_entries = 1;
	ex.has_upto_entries = 1;
	ex.upto_chunks = 2;
	ex.has_upto_chunks = 1;
	if (q->cursor == 0) {
		CHECK(!q->has_upto_entries || q->upto_entries == 0);
		hd.format = 1;
		hd.has_format = 1;
		hd.entries = 1;
		hd.has_entries = 1;
		hd.chunks = 2;
		hd.has_chunks = 1;
		recs[0].rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
		recs[0].header = &hd;
		e.text = "first entry";
		recs[1].rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
		recs[1].entry = &e;
		ex.n_records = 2;
		ex.next_cursor = export_mode == 1 ? 0 : 77;
		ex.has_next_cursor = 1;
	} else if (q->cursor == 77) {
		CHECK(q->upto_entries == 1 && q->upto_chunks == 2);
		c1.index = 0;
		c1.has_index = 1;
		c1.has_kv = c2.has_kv = 1;
		c1.kv.data = c2.kv.data = big_kv;
		c1.kv.len = c2.kv.len = BIG_KV;
		c2.index = 1;
		c2.has_index = 1;
		recs[0].rec_case = recs[1].rec_case = HSAMEM__EXPORT_RECORD__REC_CHUNK;
		recs[0].chunk = &c1;
		recs[1].chunk = &c2;
		recs[2].rec_case = HSAMEM__EXPORT_RECORD__REC_TAIL;
		recs[2].tail = &tail;
		ex.n_records = 3;
		ex.done = 1;
		ex.has_done = 1;
	} else {
		CHECK(!"unexpected cursor");
	}
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_EXPORT, &ex));
}

static void
h_import(const Hsamem__Request *req)
{
	Hsamem__Reply r = HSAMEM__REPLY__INIT;
	Hsamem__ImportReply ir = HSAMEM__IMPORT_REPLY__INIT;
	const Hsamem__ImportRequest *q = req->import;

	CHECK(req->body_case == HSAMEM__REQUEST__BODY_IMPORT);
	CHECK(strcmp(q->user, "bob") == 0);
	import_batches++;
	import_last += q->last;
	for (size_t i = 0; i < q->n_records; i++) {
		if (q->records[i]->rec_case == HSAMEM__EXPORT_RECORD__REC_ENTRY)
			import_entries++;
		if (q->records[i]->rec_case == HSAMEM__EXPORT_RECORD__REC_CHUNK)
			CHECK(q->records[i]->chunk->kv.len == BIG_KV &&
			      q->records[i]->chunk->kv.data[BIG_KV - 1] == 0x5a);
	}
	import_records += (int)q->n_records;
	ir.entries = (uint64_t)import_entries;
	ir.has_entries = 1;
	ir.chunks = 2;
	ir.has_chunks = 1;
	ir.done = q->last;
	ir.has_done = 1;
	reply(ok_reply(&r, HSAMEM__REPLY__BODY_IMPORT, &ir));
}

/* Writes to fd a stream of a header and an entry whose text holds a NUL byte: packed with an X
 * where the NUL goes, then patched (protobuf-c packs a string up to its first NUL). */
static void
write_nul_stream(int fd)
{
	Hsamem__ExportRecord hr = HSAMEM__EXPORT_RECORD__INIT, er = HSAMEM__EXPORT_RECORD__INIT;
	Hsamem__ExportRecord__Header hd = HSAMEM__EXPORT_RECORD__HEADER__INIT;
	Hsamem__Entry e = HSAMEM__ENTRY__INIT;
	Hsamem__ExportRecord *recs[2] = {&hr, &er};
	uint8_t buf[256];

	hd.has_format = 1;
	hd.format = 1;
	hr.rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	hr.header = &hd;
	e.text = "hello Xworld";
	er.rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
	er.entry = &e;
	for (int i = 0; i < 2; i++) {
		size_t len = hsamem__export_record__pack(recs[i], buf + 4);
		uint8_t *x = memchr(buf + 4, 'X', len);
		if (x != NULL)
			*x = 0;
		for (int b = 0; b < 4; b++)
			buf[b] = (uint8_t)(len >> (8 * b));
		CHECK(write(fd, buf, len + 4) == (ssize_t)(len + 4));
	}
}

static void
test_transfer(struct hsamem *h)
{
	struct hsamem_transfer t = {0};
	FILE *f = tmpfile(), *trunc = tmpfile();
	char *buf;
	long len;

	big_kv = calloc(1, BIG_KV);
	big_kv[BIG_KV - 1] = 0x5a;
	handler = h_export;
	export_mode = 0;
	CHECK_RET(hsamem_export(h, "alice", fileno(f), &t), 0);
	CHECK(t.records == 5 && t.entries == 1 && t.chunks == 2 && t.requests == 2);
	CHECK((long)t.bytes == ftell(f) || lseek(fileno(f), 0, SEEK_CUR) == (off_t)t.bytes);

	/* Two 3 MiB chunks cannot share a 4 MiB batch: two batches, only the second marked last. */
	handler = h_import;
	lseek(fileno(f), 0, SEEK_SET);
	memset(&t, 0, sizeof(t));
	CHECK_RET(hsamem_import(h, "bob", fileno(f), &t), 0);
	CHECK(import_records == 5 && import_batches == 2 && import_last == 1);
	CHECK(t.records == 5 && t.requests == 2 && t.entries == 1 && t.chunks == 2);

	/* The same stream cut short: refused, and nothing is ever marked last. */
	len = lseek(fileno(f), 0, SEEK_END);
	buf = malloc((size_t)len);
	lseek(fileno(f), 0, SEEK_SET);
	CHECK(read(fileno(f), buf, (size_t)len) == len);
	CHECK(write(fileno(trunc), buf, (size_t)len - 10) == len - 10);
	lseek(fileno(trunc), 0, SEEK_SET);
	import_last = 0;
	CHECK_RET(hsamem_import(h, "bob", fileno(trunc), NULL), HSAMEM_EIMPORT);
	CHECK(import_last == 0);
	CHECK(strstr(hsamem_last_message(h), "record 3") != NULL);

	/* A record whose string holds a NUL byte (which decoding would cut at) is refused before
	 * anything of the stream is sent. */
	ftruncate(fileno(trunc), 0);
	lseek(fileno(trunc), 0, SEEK_SET);
	write_nul_stream(fileno(trunc));
	lseek(fileno(trunc), 0, SEEK_SET);
	import_batches = 0;
	CHECK_RET(hsamem_import(h, "bob", fileno(trunc), NULL), HSAMEM_EIMPORT);
	CHECK(strstr(hsamem_last_message(h), "record 1") != NULL &&
	      strstr(hsamem_last_message(h), "entry.text holds a NUL byte") != NULL);
	CHECK(import_batches == 0);

	/* A stream that does not start with a header. */
	ftruncate(fileno(trunc), 0);
	lseek(fileno(trunc), 0, SEEK_SET);
	CHECK(write(fileno(trunc), "\x02\x00\x00\x00\x12\x00", 6) == 6);
	lseek(fileno(trunc), 0, SEEK_SET);
	CHECK_RET(hsamem_import(h, "bob", fileno(trunc), NULL), HSAMEM_EIMPORT);
	/* An empty one. */
	ftruncate(fileno(trunc), 0);
	lseek(fileno(trunc), 0, SEEK_SET);
	CHECK_RET(hsamem_import(h, "bob", fileno(trunc), NULL), HSAMEM_EIMPORT);

	/* A daemon whose cursor does not move must not loop the client forever. */
	handler = h_export;
	export_mode = 1;
	CHECK_RET(hsamem_export(h, "alice", fileno(trunc), NULL), HSAMEM_EPROTO);
	/* A write that fails stops the export with its error. */
	export_mode = 0;
	CHECK_RET(hsamem_export(h, "alice", -1, NULL), -EBADF);

	free(buf);
	free(big_kv);
	fclose(f);
	fclose(trunc);
}

/* Over tcp:// the secret travels with every request, as HSAMEM_SECRET_FILE or HSAMEM_SECRET
 * says, without its final newline. */
static void
test_secret(void)
{
	char url[64], path[] = "/tmp/hsamem-test-secret-XXXXXX";
	struct hsamem *h = NULL;
	nng_listener l;
	int port = 0, fd;

	if (nng_listener_create(&l, srv, "tcp://127.0.0.1:0") != 0 ||
	    nng_listener_start(l, 0) != 0 ||
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0) {
		CHECK(0);
		return;
	}
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	handler = h_ping;
	CHECK_RET(hsamem_open(url, &h), 0);
	hsamem_set_timeout(h, 5000);
	CHECK_RET(hsamem_ping(h, NULL), 0);
	CHECK_RET(hsamem_ping(h, NULL), 0);
	CHECK(with_secret == 2 && strcmp(last_secret, "fake-secret-0123456789") == 0);
	hsamem_close(h);

	fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, "from-a-file-0123456789\n", 23) == 23);
	close(fd);
	setenv("HSAMEM_SECRET_FILE", path, 1);
	CHECK_RET(hsamem_open(url, &h), 0);
	CHECK_RET(hsamem_ping(h, NULL), 0);
	CHECK(with_secret == 3 && strcmp(last_secret, "from-a-file-0123456789") == 0);
	hsamem_close(h);
	setenv("HSAMEM_SECRET_FILE", "/nonexistent/secret", 1);
	CHECK_RET(hsamem_open(url, &h), 0);
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_ECONNECT);
	CHECK(strstr(hsamem_last_message(h), "HSAMEM_SECRET_FILE") != NULL);
	hsamem_close(h);
	unsetenv("HSAMEM_SECRET_FILE");
	unsetenv("HSAMEM_SECRET");
	unlink(path);
}

static void
test_fake_daemon(void)
{
	struct hsamem_server *s = NULL;
	struct hsamem_stats *st = NULL;
	struct hsamem *h;
	pthread_t thr;
	char url[128];

	snprintf(url, sizeof(url), "ipc:///tmp/hsamem-test-client-%d.sock", (int)getpid());
	if (nng_rep0_open(&srv) != 0 || nng_listen(srv, url, NULL, 0) != 0) {
		fprintf(stderr, "test_client: cannot listen on %s; fake daemon tests skipped\n",
		        url);
		return;
	}
	pthread_create(&thr, NULL, server_main, NULL);
	setenv("HSAMEM_SECRET", "fake-secret-0123456789", 1);
	CHECK_RET(hsamem_open(url, &h), 0);
	hsamem_set_timeout(h, 5000);

	handler = h_ping;
	CHECK_RET(hsamem_ping(h, &s), 0);
	if (s != NULL) {
		CHECK(strcmp(s->server_version, "9.9") == 0 && strcmp(s->backend, "cpu") == 0);
		CHECK(s->protocol_version == 1 && s->uptime_ms == 1234);
	}
	hsamem_result_free(s);

	handler = h_nouser;
	CHECK_RET(hsamem_delete(h, "bob", NULL), HSAMEM_ENOUSER);
	CHECK(strncmp(hsamem_last_message(h), "no such user 'bob'", 18) == 0);
	CHECK(strchr(hsamem_last_message(h), '\x1b') == NULL);
	handler = h_positive;
	CHECK_RET(hsamem_delete(h, "bob", NULL), HSAMEM_EPROTO);
	handler = h_garbage;
	CHECK_RET(hsamem_ping(h, NULL), HSAMEM_EPROTO);
	handler = h_ping; /* the right reply to the wrong question */
	CHECK_RET(hsamem_delete(h, "bob", NULL), HSAMEM_EPROTO);
	handler = h_stats_bad;
	CHECK_RET(hsamem_stats(h, NULL, &st), HSAMEM_EPROTO);
	CHECK(st == NULL);

	test_query(h);
	test_attend(h);
	test_chunks(h);
	test_append(h);
	test_bad_names(h);
	test_transfer(h);

	/* No reply in time: -ETIMEDOUT, and the handle goes on working. */
	handler = h_silent;
	hsamem_set_timeout(h, 200);
	CHECK_RET(hsamem_ping(h, NULL), -ETIMEDOUT);
	handler = h_ping;
	CHECK_RET(hsamem_ping(h, NULL), 0);

	CHECK(bad_versions == 0);
	CHECK(with_secret == 0); /* HSAMEM_SECRET is set, but never sent over ipc */
	hsamem_close(h);
	test_secret();
	nng_close(srv);
	pthread_join(thr, NULL);
}

int
main(void)
{
	test_strerror();
	test_names();
	test_name_rule();
	test_default_url();
	test_private_dir();
	test_default_search();
	test_open_errors();
	test_fake_daemon();
	return test_done("test_client");
}
