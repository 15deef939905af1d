/*
 * conn.h: the connections requests arrive on, as the rest of the daemon sees them: a number, and
 * whether the connection is still open. A connection is one NNG pipe, and its number is the pipe's
 * id: unique among the pipes of this process (NNG numbers them from a random start and gives a
 * number again only after 2^31 more connections), never 0. It lets an operation tie state that
 * spans several requests (an import) to the client that started it, without the client sending
 * anything for it: another client cannot borrow the number, since it is the daemon's own.
 */
#ifndef HSAMEM_CONN_H
#define HSAMEM_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct nng_msg;

/* The connection a received message came on; 0 when NNG does not say. */
uint32_t conn_of_msg(struct nng_msg *msg);

/* Whether connection id is still open. A connection that just closed may count as open for a
 * moment, until NNG has torn its pipe down. */
bool conn_open(uint32_t id);

#endif
