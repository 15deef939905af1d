/*
 * peer.h: who is at the other end of a request, as the transport tells it, and the transports'
 * own security: the private directory of the default ipc:// socket, and the TLS configuration of
 * a tls+tcp:// listener (the daemon's certificate, and the authority that must have signed every
 * client's). The policy (acl.h) turns a peer into an identity; this module decides nothing.
 *
 * peer_of_msg runs in the server's receive callback, so it must not block: it reads only what NNG
 * holds for the message's pipe (the Unix socket's SO_PEERCRED, the TLS verification, the remote
 * address), once per connection (a small cache by pipe id), and looks nothing up.
 */
#ifndef HSAMEM_PEER_H
#define HSAMEM_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

struct conf;

enum peer_transport { PEER_UNKNOWN, PEER_IPC, PEER_TCP, PEER_TLS };

#define PEER_CN_MAX   128
#define PEER_ADDR_MAX 64

struct peer {
	enum peer_transport transport; /* PEER_UNKNOWN: NNG could not say (the pipe is gone) */
	bool has_creds;                /* ipc: uid, gid and pid were read */
	uint32_t uid, gid;             /* ipc: the peer process's effective ids at connect */
	uint64_t pid;
	bool verified;            /* tls: the client's certificate was verified against tls-ca */
	char cn[PEER_CN_MAX];     /* tls: the certificate's common name, where NNG tells it */
	char addr[PEER_ADDR_MAX]; /* tcp, tls: the remote address and port, for the log */
};

/* What the transport tells of the sender of msg. Never fails: a peer NNG says nothing of is
 * PEER_UNKNOWN, which the policy refuses. */
void peer_of_msg(nng_msg *msg, struct peer *out);

/*
 * Prepares listener l of url before it starts: for the default ipc:// socket, creates and checks
 * its private directory (sockdir.h); for tls+tcp://, gives it the TLS configuration of c
 * (tls-cert, tls-key, tls-ca; client certificates required). Logs what went wrong and returns 0
 * or a negative code.
 */
int peer_listener_setup(nng_listener l, const char *url, const struct conf *c);

#endif
