/*
 * client.c: the handle and transport of libhsamem, and the requests whose results are small.
 *
 * A handle is one NNG req0 socket with one dialer. The dialer is created (which checks the URL) by
 * hsamem_open() but started only by the first request, blocking, so that "nothing listens there"
 * is an immediate HSAMEM_ECONNECT instead of a wait for the timeout; after the first connection NNG
 * redials by itself. The req0 resend timer is switched off: NNG would otherwise send a request
 * again after a silence or a broken connection, and an append must never be applied twice. With it
 * off, a connection that breaks under a request fails that request at once with -ECONNRESET.
 *
 * Every reply is distrusted: it must decode, carry status 0 or a negative code, and carry the body
 * of the request it answers; result.c checks the sizes inside bodies.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "client_int.h"

#define DEFAULT_TIMEOUT_MS 30000
#define RECV_MAX_BYTES     (256u << 20)
#define SOCK_NAME          "hsamemd.sock"

const char *
hsamem_version(void)
{
	return PACKAGE_VERSION;
}

const char *
hsamem_role_name(enum hsamem_role role)
{
	switch (role) {
	case HSAMEM_ROLE_OTHER: return "other";
	case HSAMEM_ROLE_USER: return "user";
	case HSAMEM_ROLE_ASSISTANT: return "assistant";
	case HSAMEM_ROLE_SYSTEM: return "system";
	case HSAMEM_ROLE_TOOL: return "tool";
	}
	return NULL;
}

const char *
hsamem_dtype_name(enum hsamem_dtype dtype)
{
	switch (dtype) {
	case HSAMEM_DTYPE_DEFAULT: return NULL;
	case HSAMEM_F16: return "f16";
	case HSAMEM_BF16: return "bf16";
	case HSAMEM_F32: return "f32";
	}
	return NULL;
}

const char *
hsamem_weighting_name(enum hsamem_weighting weighting)
{
	switch (weighting) {
	case HSAMEM_WEIGHTING_DEFAULT: return NULL;
	case HSAMEM_SOFTMAX: return "softmax";
	case HSAMEM_STICKBREAK: return "stickbreak";
	}
	return NULL;
}

int
hsamem_default_url(char *buf, size_t size)
{
	const char *dir = getenv("RUNTIME_DIRECTORY");
	size_t dir_len;
	int n;

	if (dir == NULL || dir[0] == '\0')
		dir = getenv("XDG_RUNTIME_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	/* systemd joins several RuntimeDirectory= entries with ':'; the socket is in the first. */
	dir_len = strcspn(dir, ":");
	if (dir_len > (size_t)HSAMEM_URL_MAX)
		goto toolong;
	n = snprintf(buf, size, "ipc://%.*s/%s", (int)dir_len, dir, SOCK_NAME);
	if (n < 0 || (size_t)n >= size)
		goto toolong;
	return 0;
toolong:
	if (size > 0)
		buf[0] = '\0';
	return -ENAMETOOLONG;
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
	size_t len, i;

	if (user == NULL)
		return clib_fail(h, HSAMEM_EBADNAME, "no user name given");
	len = strlen(user);
	if (len == 0 || len > HSAMEM_NAME_MAX)
		return clib_fail(h, HSAMEM_EBADNAME, "a user name is 1 to %d bytes long",
		                 HSAMEM_NAME_MAX);
	if (user[0] == '.' || user[0] == '-')
		return clib_fail(h, HSAMEM_EBADNAME, "a user name does not start with '.' or '-'");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_.@:-", c) != NULL))
			return clib_fail(h, HSAMEM_EBADNAME,
			                 "a user name is made of A-Z a-z 0-9 _ . @ : - only");
	}
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

	if (url == NULL) {
		if ((err = hsamem_default_url(def, sizeof(def))) != 0)
			return HSAMEM_EINVAL;
		url = def;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
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
	if ((rv = nng_dialer_create(&h->dialer, h->sock, url)) != 0) {
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

void
hsamem_close(struct hsamem *h)
{
	if (h == NULL)
		return;
	nng_close(h->sock); /* closes the dialer and its pipes too */
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

const char *
hsamem_last_message(const struct hsamem *h)
{
	return h->msg;
}

static int
dial(struct hsamem *h)
{
	int rv;

	if (h->dialed)
		return 0;
	rv = nng_dialer_start(h->dialer, 0);
	if (rv != 0)
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

int
hsamem_ping(struct hsamem *h, struct hsamem_server **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__PingRequest ping = HSAMEM__PING_REQUEST__INIT;
	Hsamem__Reply *r;
	struct hsamem_server *s;
	struct arena a;
	int err;

	req.body_case = HSAMEM__REQUEST__BODY_PING;
	req.ping = &ping;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_PING, &r)) != 0)
		return err;
	if (out != NULL) {
		if ((s = arena_start(&a, h, sizeof(*s))) == NULL ||
		    (s->server_version = arena_strdup(&a, r->ping->server_version)) == NULL ||
		    (s->backend = arena_strdup(&a, r->ping->backend)) == NULL) {
			arena_abort(&a);
			err = clib_fail(h, -ENOMEM, "out of memory");
			goto done;
		}
		s->protocol_version = r->ping->protocol_version;
		s->uptime_ms = r->ping->uptime_ms;
		*out = s;
	}
done:
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
	struct hsamem_memory *m;
	struct arena a;
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
	if (out != NULL) {
		if ((m = arena_start(&a, h, sizeof(*m))) == NULL) {
			err = clib_fail(h, -ENOMEM, "out of memory");
			goto done;
		}
		if ((err = res_memory(&a, m, r->create)) != 0) {
			arena_abort(&a);
			goto done;
		}
		*out = m;
	}
done:
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
