/*
 * conn.c: connection numbers and liveness, read from NNG's pipes (conn.h says why pipes). Owns no
 * state: NNG keeps the pipes; this file only asks it. It must not hold a pipe, which would keep a
 * closed connection from being torn down.
 */
#include <nng/nng.h>

#include "conn.h"

uint32_t
conn_of_msg(struct nng_msg *msg)
{
	int id = nng_pipe_id(nng_msg_get_pipe(msg));
	return id > 0 ? (uint32_t)id : 0;
}

bool
conn_open(uint32_t id)
{
	if (id == 0 || id > INT32_MAX)
		return false;
	/* nng_pipe_socket finds the pipe by id, and gives the unset socket once it is gone */
	nng_pipe p = NNG_PIPE_INITIALIZER;
	p.id = id;
	return nng_socket_id(nng_pipe_socket(p)) > 0;
}
