/*
 * err.c: one strerror for hsamem's error codes and negated errno values, shared by the daemon and
 * libhsamem.
 */
#include <string.h>

#include "hsamem_defs.h"

const char *
hsamem_strerror(int err)
{
	switch (err) {
	case HSAMEM_OK: return "success";
	case HSAMEM_EPROTO: return "malformed message";
	case HSAMEM_EVERSION: return "unsupported protocol version";
	case HSAMEM_EINVAL: return "invalid argument";
	case HSAMEM_ENOUSER: return "no such user";
	case HSAMEM_EEXIST: return "user already exists";
	case HSAMEM_ESPEC: return "request does not fit the memory's spec";
	case HSAMEM_ETOOBIG: return "message or field too large";
	case HSAMEM_EBADNAME: return "invalid user name";
	case HSAMEM_ESTORE: return "store failure";
	case HSAMEM_EFORMAT: return "store format mismatch or corrupt record";
	case HSAMEM_EBUSY: return "busy: being imported, or no free reader slot";
	case HSAMEM_ECONNECT: return "cannot connect to the daemon";
	case HSAMEM_EBACKEND: return "compute backend failure";
	case HSAMEM_EENCODER: return "encoder not available";
	case HSAMEM_ENOTSUP: return "operation not supported by this memory";
	case HSAMEM_EIMPORT: return "malformed export stream";
	case HSAMEM_EFULL: return "store is full: map-max reached or disk full";
	case HSAMEM_EINTERNAL: return "internal error";
	case HSAMEM_ENOTFOUND: return "no such entry or chunk";
	case HSAMEM_EPERM: return "permission denied by the daemon's access policy";
	}
	if (err < 0 && err > -1000)
		return strerror(-err);
	return "unknown error";
}
