/*
 * client_int.h: what the files of libhsamem share and nothing outside the library sees: the handle,
 * the request/reply exchange, and the conversions of replies into heap results.
 *
 * client.c owns the handle and the transport; auth.c what the client proves to the daemon and the
 * check of the default socket's directory; request.c builds each request and hands its reply to
 * result.c, which owns the arena of heap results and turns checked replies into result structs;
 * xfer.c runs export and import. Calls go one way only: request.c calls result.c and client.c,
 * result.c and xfer.c call client.c, client.c calls auth.c, and auth.c calls none of them. None
 * of them writes to stdout/stderr or exits.
 */
#ifndef HSAMEM_CLIENT_INT_H
#define HSAMEM_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "hsamem.h"
#include "hsamem.pb-c.h"

#define CLIB_MSG_MAX 512

struct hsamem {
	nng_socket sock;
	nng_dialer dialer;
	bool dialed; /* the dialer has connected once; NNG redials on its own since */
	bool search; /* opened with NULL: the first connection tries the default addresses, and
	              * only then creates the dialer (client.c) */
	int timeout_ms;
	char *url;
	bool auth_done;  /* clib_auth_dial succeeded once */
	uint8_t *secret; /* the shared secret sent with every request over tcp (auth.c), or NULL */
	size_t secret_len;
	char msg[CLIB_MSG_MAX];      /* hsamem_last_message() */
	hsamem_progress_fn progress; /* hsamem_set_progress(), called by xfer.c */
	void *progress_arg;
};

/* Sets the handle's last message (printf-style) and returns err, so that error paths read
 * `return clib_fail(h, HSAMEM_EPROTO, "...")`. */
int clib_fail(struct hsamem *h, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Checks a user name by the rule of HSAMEM_NAME_MAX; on failure sets the message. */
int clib_check_user(struct hsamem *h, const char *user);

/*
 * Sends req (its version is set here) and waits for the reply. On success *replyp is a reply with
 * status 0 whose body is want (free it with hsamem__reply__free_unpacked(r, NULL)); otherwise
 * returns the transport error or the reply's status, with the message set.
 */
int clib_rpc(struct hsamem *h, Hsamem__Request *req, Hsamem__Reply__BodyCase want,
             Hsamem__Reply **replyp);

/* auth.c: before the first connection, checks the default socket's private directory, or reads
 * the secret and sets up TLS from the environment (0, or the error with the message set); puts
 * the secret into each request; wipes and frees it. */
int clib_auth_dial(struct hsamem *h);
void clib_auth_request(struct hsamem *h, Hsamem__Request *req);
void clib_auth_free(struct hsamem *h);

/*
 * The heap results of replies (result.c). Each checks the reply's sizes against its counts (and
 * against the request: count asked for, attend's n and lengths), copies it into one arena and
 * returns 0 with *out set, or an error (-ENOMEM, HSAMEM_EPROTO) with the handle's message set and
 * nothing allocated. in is a body that clib_rpc() returned; it stays the caller's to free.
 */
int res_server(struct hsamem *h, const Hsamem__PingReply *in, struct hsamem_server **out);
int res_memory(struct hsamem *h, const Hsamem__MemoryInfo *in, struct hsamem_memory **out);
int res_query(struct hsamem *h, const Hsamem__QueryReply *in, struct hsamem_query_result **out);
int res_ask(struct hsamem *h, const Hsamem__AskReply *in, struct hsamem_ask_result **out);
int res_attend(struct hsamem *h, const Hsamem__AttendReply *in, const struct hsamem_attend *rq,
               struct hsamem_attend_result **out);
int res_history(struct hsamem *h, const Hsamem__HistoryReply *in, struct hsamem_history **out);
int res_entries(struct hsamem *h, const Hsamem__EntriesReply *in, uint32_t count,
                struct hsamem_entry_list **out);

/* The wire form of a list of "key=value" strings: pairs pointing into one copy of the strings. */
struct wire_attrs {
	Hsamem__Attr *pairs, **ptrs;
	char *buf;
	size_t n;
};

/* A filter on the wire (scope.c); free with clib_filter_free. NULL gives the empty message. */
struct wire_filter {
	Hsamem__Filter f;
	struct wire_attrs scope, meta;
	Hsamem__Role *roles;
};
int clib_filter_to_wire(struct hsamem *h, const struct hsamem_filter *f, struct wire_filter *w);
void clib_filter_free(struct wire_filter *w);

/* hsamem_ask() and hsamem_export_cb() with a filter (NULL: none). */
int clib_ask(struct hsamem *h, const char *user, const char *question,
             const struct hsamem_ask *opts, Hsamem__Filter *filter, struct hsamem_ask_result **out);
int clib_export(struct hsamem *h, const char *user, Hsamem__Filter *filter, hsamem_write_fn write,
                void *arg, struct hsamem_transfer *out);

/*
 * hsamem_append(), with decorate (may be NULL) called on each wire entry before it is sent
 * (scope.c adds scope and metadata).
 */
int clib_append(struct hsamem *h, const char *user, const struct hsamem_entry_in *entries,
                size_t n_entries, const struct hsamem_chunk_in *chunks, size_t n_chunks,
                unsigned flags, struct hsamem_append_info *out,
                void (*decorate)(Hsamem__EntryIn *we, size_t i, void *arg), void *arg);
int res_chunks(struct hsamem *h, const Hsamem__ChunksReply *in, uint32_t count,
               struct hsamem_chunk_list **out);
int res_users(struct hsamem *h, const Hsamem__UsersReply *in, struct hsamem_user_list **out);
int res_stats(struct hsamem *h, const Hsamem__StatsReply *in, struct hsamem_stats **out);
/* A heap result holding a copy of the string in. */
int res_text(struct hsamem *h, const char *in, char **out);

#endif
