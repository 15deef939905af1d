/*
 * client_int.h: what the files of libhsamem share and nothing outside the library sees: the handle,
 * the request/reply exchange, and the arena that holds a heap result.
 *
 * client.c owns the handle and the transport; result.c turns checked replies into result structs;
 * xfer.c runs export and import. None of them writes to stdout/stderr or exits.
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
	int timeout_ms;
	char *url;
	char msg[CLIB_MSG_MAX]; /* hsamem_last_message() */
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

/*
 * The arena of a heap result: blocks chained from the first, whose data begins with the result
 * struct itself, so that hsamem_result_free() finds the chain from the pointer it is given.
 */
struct arena_blk;
struct arena {
	struct arena_blk *first;
	struct arena_blk *cur;
	struct hsamem *h; /* where conversions report what was wrong */
};

/* Starts an arena whose first allocation, returned, is a zeroed result struct of size bytes. On
 * failure (NULL) the arena is empty and arena_abort() is harmless. */
void *arena_start(struct arena *a, struct hsamem *h, size_t size);
/* Zeroed memory of n * size bytes, aligned for any type; NULL on overflow or out of memory. */
void *arena_calloc(struct arena *a, size_t n, size_t size);
/* A copy of s (NULL gives ""), or NULL on out of memory. */
char *arena_strdup(struct arena *a, const char *s);
/* Frees everything of an arena that was not handed out (on an error path). */
void arena_abort(struct arena *a);

/*
 * Conversions of reply parts into result structs in the arena. Each returns 0, or -ENOMEM or
 * HSAMEM_EPROTO with the handle's message set. in may be NULL (an absent part reads as zeros).
 */
int res_memory(struct arena *a, struct hsamem_memory *out, const Hsamem__MemoryInfo *in);
int res_entry(struct arena *a, struct hsamem_entry *out, const Hsamem__Entry *in);

#endif
