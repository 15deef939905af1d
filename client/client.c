/*
 * client.c: the handle and transport of libhsamem: opening and closing a connection, the exchange
 * of one request for one checked reply (clib_rpc()), and the handle's last message. It knows no
 * request in particular: request.c and xfer.c build them, result.c converts the replies.
 *
 * A handle is one NNG req0 socket with one dialer. The dialer is created (which checks the URL) by
 * hsamem_open() but started only by the first request, blocking, so that "nothing listens there"
 * is an immediate HSAMEM_ECONNECT instead of a wait for the timeout; after the first connection NNG
 * redials by itself. A handle opened without a URL has no dialer until that first request, which
 * tries the default addresses in turn (search()): the per-user socket of sockdir.h when a socket
 * is there, then the system service's; the one that accepts is the handle's from then on, so the
 * search costs one stat() and one connect per address, once per handle. The req0 resend timer is
 * switched off: NNG would otherwise send a request again after a silence or a broken connection,
 * and an append must never be applied twice. With it off, a connection that breaks under a request
 * fails that request at once with -ECONNRESET.
 *
 * hsamem_close() waits at most CLOSE_WAIT_MS for NNG: nng_close of NNG 1.5 can wait forever (its
 * reaper stuck on a pipe; seen with many threads opening and closing handles at once), so it runs
 * in a thread of its own, which finishes the close, or is left to it, after the handle is gone.
 * A first connection refused because the daemon's backlog is full (NNG_EAGAIN, a crowd of clients
 * connecting at once) is tried again within the handle's timeout.
 *
 * Every reply is distrusted: it must decode, carry status 0 or a negative code, and carry the body
 * of the request it answers; result.c checks the sizes inside bodies.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "client_int.h"
#include "sockdir.h"

#define DEFAULT_TIMEOUT_MS 30000
#define RECV_MAX_BYTES     (256u << 20)
#define CLOSE_WAIT_MS      2000

/* A socket being closed by a thread of its own; freed by the last of it and hsamem_close. */
struct closing {
	nng_socket sock;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	bool done, abandoned;
};

const char *
hsamem_version(void)
{
	return PACKAGE_VERSION;
}

int
hsamem_default_url(char *buf, size_t size)
{
	/* the daemon's own rule (sockdir.h) */
	return sockdir_default_url(buf, size);
}

int
clib_fail(struct hsamem *h, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
	return err;
}

/* The daemon's message is shown on terminals: control characters from a confused or hostile peer
 * must not reach them. */
static void
set_message(struct hsamem *h, const char *text)
{
	size_t i;

	if (text == NULL)
		text = "";
	for (i = 0; text[i] != '\0' && i + 1 < sizeof(h->msg); i++) {
		unsigned char c = (unsigned char)text[i];
		h->msg[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	h->msg[i] = '\0';
}

int
clib_check_user(struct hsamem *h, const char *user)
{
	const char *why = NULL;

	if (user == NULL)
		return clib_fail(h, HSAMEM_EBADNAME, "no user name given");
	if (hsamem_name_check(user, strlen(user), &why) != 0)
		return clib_fail(h, HSAMEM_EBADNAME, "%s", why);
	return 0;
}

/* NNG's errors in the terms of hsamem.h. dialing: whether the error came from a connection
 * attempt, where everything short of out-of-memory means "cannot reach the daemon". */
static int
map_nng(int rv, bool dialing)
{
	switch (rv) {
	case NNG_ENOMEM: return -ENOMEM;
	case NNG_ETIMEDOUT: return -ETIMEDOUT;
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP: return dialing ? HSAMEM_ECONNECT : HSAMEM_EINVAL;
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECLOSED:
	case NNG_ECONNABORTED: return dialing ? HSAMEM_ECONNECT : -ECONNRESET;
	}
	return HSAMEM_ECONNECT;
}

static int
apply_timeout(struct hsamem *h, int ms)
{
	int rv;

	if ((rv = nng_socket_set_ms(h->sock, NNG_OPT_SENDTIMEO, ms)) != 0 ||
	    (rv = nng_socket_set_ms(h->sock, NNG_OPT_RECVTIMEO, ms)) != 0)
		return map_nng(rv, false);
	h->timeout_ms = ms;
	return 0;
}

int
hsamem_open(const char *url, struct hsamem **hp)
{
	char def[HSAMEM_URL_MAX];
	struct hsamem *h;
	int rv, err;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	if (url == NULL) {
		/* the first address to try, until the first connection finds the daemon */
		h->search = true;
		url = hsamem_default_url(def, sizeof(def)) == 0 ? def : SOCKDIR_SYSTEM_URL;
	}
	err = -ENOMEM;
	if ((h->url = strdup(url)) == NULL)
		goto fail_h;
	if ((rv = nng_req0_open(&h->sock)) != 0) {
		err = map_nng(rv, false);
		goto fail_url;
	}
	/* Set before the dialer exists, so that it inherits them. */
	if ((rv = nng_socket_set_size(h->sock, NNG_OPT_RECVMAXSZ, RECV_MAX_BYTES)) != 0 ||
	    (rv = nng_socket_set_ms(h->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0) {
		err = map_nng(rv, false);
		goto fail_sock;
	}
	if ((err = apply_timeout(h, DEFAULT_TIMEOUT_MS)) != 0)
		goto fail_sock;
	if (!h->search && (rv = nng_dialer_create(&h->dialer, h->sock, url)) != 0) {
		err = rv == NNG_ENOMEM ? -ENOMEM : HSAMEM_EINVAL;
		goto fail_sock;
	}
	*hp = h;
	return 0;

fail_sock:
	nng_close(h->sock);
fail_url:
	free(h->url);
fail_h:
	free(h);
	return err;
}

static void
closing_free(struct closing *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void *
closing_main(void *arg)
{
	struct closing *c = arg;
	nng_close(c->sock); /* closes the dialer and its pipes too */
	pthread_mutex_lock(&c->mu);
	c->done = true;
	bool orphan = c->abandoned;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (orphan)
		closing_free(c);
	return NULL;
}

/* Closes sock, waiting at most CLOSE_WAIT_MS; past that the close goes on without the caller. */
static void
close_bounded(nng_socket sock)
{
	struct closing *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	pthread_t t;

	if (c == NULL) {
		nng_close(sock);
		return;
	}
	c->sock = sock;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&t, NULL, closing_main, c) != 0) {
		nng_close(sock);
		closing_free(c);
		return;
	}
	pthread_detach(t);
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += CLOSE_WAIT_MS / 1000;
	pthread_mutex_lock(&c->mu);
	while (!c->done)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
			break;
	bool done = c->done;
	c->abandoned = !done;
	pthread_mutex_unlock(&c->mu);
	if (done)
		closing_free(c);
}

void
hsamem_close(struct hsamem *h)
{
	if (h == NULL)
		return;
	close_bounded(h->sock);
	clib_auth_free(h);
	free(h->url);
	free(h);
}

int
hsamem_set_timeout(struct hsamem *h, int timeout_ms)
{
	if (timeout_ms < -1)
		return clib_fail(h, HSAMEM_EINVAL, "timeout must be -1 or at least 0 ms");
	return apply_timeout(h, timeout_ms);
}

const char *
hsamem_url(const struct hsamem *h)
{
	return h->url;
}

void
hsamem_set_progress(struct hsamem *h, hsamem_progress_fn fn, void *arg)
{
	h->progress = fn;
	h->progress_arg = arg;
}

const char *
hsamem_last_message(const struct hsamem *h)
{
	return h->msg;
}

/* Starts the dialer, blocking: 0 or NNG's error. NNG_EAGAIN (the daemon's backlog is full) is
 * tried again after 1, 2, 4 ... 64 ms, within the handle's timeout. */
static int
start_dialer(struct hsamem *h)
{
	int64_t waited = 0;
	int rv;

	for (long ms = 1;; ms = ms < 64 ? ms * 2 : ms) {
		rv = nng_dialer_start(h->dialer, 0);
		if (rv != NNG_EAGAIN || (h->timeout_ms >= 0 && waited + ms > h->timeout_ms))
			return rv;
		struct timespec ts = {0, ms * 1000000};
		nanosleep(&ts, NULL);
		waited += ms;
	}
}

/*
 * Tries one default address (a handle opened with NULL): checks it as dial() does, skips it when
 * no socket is there, else connects. 0 when connected (h->url is then url); otherwise the
 * reason, appended to tried.
 */
static int
try_default(struct hsamem *h, const char *url, char *tried, size_t size)
{
	struct stat st;
	size_t used = strlen(tried);
	const char *why;
	char *copy;
	int rv, err = HSAMEM_ECONNECT;

	if ((copy = strdup(url)) == NULL)
		return -ENOMEM;
	free(h->url);
	h->url = copy;
	h->msg[0] = '\0';
	/* the private directory's check first: one of another uid is reported as such */
	if (clib_auth_dial(h) != 0) {
		why = h->msg;
		goto fail;
	}
	if (stat(url + strlen("ipc://"), &st) != 0 || !S_ISSOCK(st.st_mode)) {
		why = "no socket there";
		goto fail;
	}
	if ((rv = nng_dialer_create(&h->dialer, h->sock, url)) != 0) {
		why = nng_strerror(rv);
		err = rv == NNG_ENOMEM ? -ENOMEM : HSAMEM_ECONNECT;
		goto fail;
	}
	if ((rv = start_dialer(h)) == 0)
		return 0;
	nng_dialer_close(h->dialer);
	why = nng_strerror(rv);
	err = map_nng(rv, true);
fail:
	snprintf(tried + used, size - used, "%s%s (%s)", used > 0 ? "; " : "", url, why);
	return err;
}

/* The first connection of a handle opened with NULL: the per-user address (sockdir.h), then the
 * system service's; the first with a daemon that accepts the connection is kept. */
static int
search(struct hsamem *h)
{
	char user[HSAMEM_URL_MAX], tried[CLIB_MSG_MAX] = "";
	const char *urls[2];
	int n = 0, err = HSAMEM_ECONNECT;

	if (sockdir_default_url(user, sizeof(user)) == 0 && strcmp(user, SOCKDIR_SYSTEM_URL) != 0)
		urls[n++] = user;
	urls[n++] = SOCKDIR_SYSTEM_URL;
	for (int i = 0; i < n; i++) {
		if ((err = try_default(h, urls[i], tried, sizeof(tried))) == 0) {
			h->search = false;
			h->dialed = true;
			return 0;
		}
		if (err == -ENOMEM)
			return clib_fail(h, err, "out of memory");
	}
	return clib_fail(h, err,
	                 "no daemon at the default addresses: %s. Choose the daemon with "
	                 "HSAMEM_SOCKET=URL (or hsamem -s URL)",
	                 tried);
}

static int
dial(struct hsamem *h)
{
	int rv;

	if (h->dialed)
		return 0;
	if (h->search)
		return search(h);
	if ((rv = clib_auth_dial(h)) != 0)
		return rv;
	if ((rv = start_dialer(h)) != 0)
		return clib_fail(h, map_nng(rv, true), "cannot connect to %s: %s", h->url,
		                 nng_strerror(rv));
	h->dialed = true;
	return 0;
}

int
clib_rpc(struct hsamem *h, Hsamem__Request *req, Hsamem__Reply__BodyCase want,
         Hsamem__Reply **replyp)
{
	Hsamem__Reply *r = NULL;
	nng_msg *m = NULL;
	size_t len;
	int rv, err;

	h->msg[0] = '\0';
	if ((err = dial(h)) != 0)
		return err;
	req->has_version = 1;
	req->version = HSAMEM_PROTOCOL_VERSION;
	clib_auth_request(h, req);
	len = hsamem__request__get_packed_size(req);
	if ((rv = nng_msg_alloc(&m, len)) != 0)
		return clib_fail(h, map_nng(rv, false), "request of %zu bytes: %s", len,
		                 nng_strerror(rv));
	hsamem__request__pack(req, nng_msg_body(m));
	if ((rv = nng_sendmsg(h->sock, m, 0)) != 0) {
		nng_msg_free(m); /* still ours when the send failed */
		return clib_fail(h, map_nng(rv, false), "sending to %s: %s", h->url,
		                 nng_strerror(rv));
	}
	if ((rv = nng_recvmsg(h->sock, &m, 0)) != 0)
		return clib_fail(h, map_nng(rv, false), "waiting for %s: %s", h->url,
		                 nng_strerror(rv));
	r = hsamem__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (r == NULL)
		return clib_fail(h, HSAMEM_EPROTO, "the reply does not decode");
	if (r->has_version && r->version != HSAMEM_PROTOCOL_VERSION) {
		err = clib_fail(h, HSAMEM_EVERSION,
		                "the daemon speaks protocol %u, this library %d", r->version,
		                HSAMEM_PROTOCOL_VERSION);
		goto fail;
	}
	set_message(h, r->message);
	if (r->has_status && r->status != 0) {
		err = r->status;
		if (err > 0)
			err = clib_fail(h, HSAMEM_EPROTO, "the reply's status %d is positive", err);
		else if (h->msg[0] == '\0')
			set_message(h, hsamem_strerror(err));
		goto fail;
	}
	/* Every body is a message pointer; the union's first member reads any of them. */
	if (r->body_case != want || r->ping == NULL) {
		err = clib_fail(h, HSAMEM_EPROTO, "the reply has body %d, expected %d",
		                (int)r->body_case, (int)want);
		goto fail;
	}
	*replyp = r;
	return 0;

fail:
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}
