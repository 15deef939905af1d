/*
 * probe.h: asks an ipc:// socket whether an hsamemd answers there, as a client would, with a
 * bounded wait: a plain Unix socket that completes NNG's SP handshake as a req0 peer and,
 * when asked, sends a ping and waits for its reply. The server uses it before it listens (is
 * another daemon alive on this path?), the watchdog to tell a listener that stopped accepting.
 */
#ifndef HSAMEM_PROBE_H
#define HSAMEM_PROBE_H

#include <stdbool.h>

/*
 * Connects to the Unix socket at path and completes the SP handshake within timeout_ms; with
 * ping, then sends a ping request and waits, in the same time, for a reply that decodes. A probe
 * never leaves a connection half-way through the handshake unless the peer did not answer it.
 * Returns 0 when a rep0 socket answered (and, with ping, replied), -ENOENT or -ECONNREFUSED when
 * nothing listens at path, -ETIMEDOUT when something accepted the connection but did not answer
 * in time, -EAGAIN when its backlog is full, -EPROTO when the peer is no SP rep0 socket or its
 * reply does not decode, another -errno for other failures (-ENAMETOOLONG, -EACCES, ...).
 */
int probe_ipc(const char *path, unsigned timeout_ms, bool ping);

/* The handshake alone, the connection left open: 0 with *fdp set (close it), or an error as
 * probe_ipc's. NNG 1.5 completes the handshake even on a listener that stopped accepting: what
 * tells is whether the connection then reaches the socket (srv_accepted). */
int probe_ipc_hello(const char *path, unsigned timeout_ms, int *fdp);

#endif
