/*
 * hsamem_defs.h: what every part of hsamem shares, the daemon, its store, backends and encoders,
 * and libhsamem's callers alike: the protocol version, the rule for user names, and the error codes
 * with their one strerror. Installed beside hsamem.h, which includes it; nothing here needs a
 * connection.
 *
 * Error codes follow one scheme everywhere: 0 is success, -1 to -999 are negated errno values
 * (-ENOMEM, -ETIMEDOUT, ...), and hsamem's own codes run from -1000 down. The daemon sends the same
 * codes in its replies, so an error raised in the store reaches a client unchanged.
 */
#ifndef HSAMEM_DEFS_H
#define HSAMEM_DEFS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol version the daemon and libhsamem speak; the daemon refuses requests of any other
 * version. */
#define HSAMEM_PROTOCOL_VERSION 1

/* The longest user name, in bytes. A user name is 1 to 64 bytes, each one of A-Z a-z 0-9 _ . @ : -
 * (ASCII, whatever the locale), and does not start with '.' or '-'. So a name holds no NUL byte, no
 * control byte (0x00-0x1f, 0x7f), no '/', no space and no byte above 0x7f. hsamem_name_check()
 * applies the rule. */
#define HSAMEM_NAME_MAX 64

enum hsamem_error {
	HSAMEM_OK = 0,
	/* The message could not be decoded, or lacks a field that the operation needs. */
	HSAMEM_EPROTO = -1001,
	/* The request's protocol version is not one the daemon speaks. */
	HSAMEM_EVERSION = -1002,
	/* An argument is out of its range or malformed; the reply's message names it. Never used
	 * for something that does not exist: that is HSAMEM_ENOUSER or HSAMEM_ENOTFOUND. */
	HSAMEM_EINVAL = -1003,
	/* The user has no memory (a memory being imported counts as none); for a later page of an
	 * export, the memory the export began with was deleted (even if the user has a new one). */
	HSAMEM_ENOUSER = -1004,
	/* The user already has a memory (create), or the import target exists. */
	HSAMEM_EEXIST = -1005,
	/* The request does not fit the memory's spec: a dimension, dtype or count differs. */
	HSAMEM_ESPEC = -1006,
	/* What a request carries (the message, a text, its entries or tags), or the reply it would
	 * get, is larger than the daemon accepts. A count asked of a listing is HSAMEM_EINVAL. */
	HSAMEM_ETOOBIG = -1007,
	/* The user name is not valid (see HSAMEM_NAME_MAX). */
	HSAMEM_EBADNAME = -1008,
	/* The store (LMDB) failed; the daemon log has the details. Nothing was written. */
	HSAMEM_ESTORE = -1009,
	/* The state directory holds a store of another format version, or a corrupt record. */
	HSAMEM_EFORMAT = -1010,
	/* Busy for now, try again later: the memory is being imported (for an import: by another
	 * connection), the store has no free reader slot, or the requests in flight hold the memory
	 * that max-inflight allows. */
	HSAMEM_EBUSY = -1011,
	/* The library could not reach the daemon at the given address. */
	HSAMEM_ECONNECT = -1012,
	/* The compute backend failed; the daemon retries on the CPU. */
	HSAMEM_EBACKEND = -1013,
	/* The memory's encoder is not available in this daemon. */
	HSAMEM_EENCODER = -1014,
	/* The operation does not apply to this memory (a text query on a client memory). */
	HSAMEM_ENOTSUP = -1015,
	/* An export stream is malformed, truncated or of an unknown version. */
	HSAMEM_EIMPORT = -1016,
	/* The store has no room: its map is at map-max, or the file system of the state directory
	 * is full, over quota or at the daemon's file size limit. The message says which and what
	 * to do; nothing was written. Deleting memories makes room (hsamem(7), STORE LAYOUT). */
	HSAMEM_EFULL = -1017,
	/* A bug: an internal invariant failed. The daemon log has the details. */
	HSAMEM_EINTERNAL = -1018,
	/* The user's memory exists, but the entry, chunk or record asked for does not. */
	HSAMEM_ENOTFOUND = -1019,
	/* The daemon's access policy does not let this client do this: use the memory, run an
	 * administrator's operation, or talk to this address without a valid shared secret or
	 * certificate. The same whether or not the memory exists. A code of hsamem's own, not
	 * -EACCES, so that it is never taken for a local file's permissions. */
	HSAMEM_EPERM = -1020,
};

/*
 * Checks the user name of len bytes at name against the rule of HSAMEM_NAME_MAX, byte by byte: a
 * NUL byte inside the len bytes is an error, not the end of the name. Returns 0 when the name is
 * valid; otherwise HSAMEM_EBADNAME, and, when why is not NULL, *why gets a static sentence saying
 * what is wrong ("user name holds a control byte"). The daemon and libhsamem apply this same
 * function, so a name that passes here is never refused as a name by either. Needs no connection.
 */
int hsamem_name_check(const char *name, size_t len, const char **why);

/*
 * Returns a static, human-readable message for an error code (hsamem's own codes and negated errno
 * values alike). Never returns NULL; unknown codes give "unknown error".
 */
const char *hsamem_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
