/*
 * server.h: the daemon's NNG socket and its request contexts.
 */
#ifndef HSAMEM_SERVER_H
#define HSAMEM_SERVER_H

struct daemon;
struct server;

/* Opens the rep0 socket, listens on every conf.listen address, and starts receiving. */
int srv_start(struct daemon *d, struct server **out);
/* Stops receiving and waits up to drain_ms for the requests in flight to be answered. The
 * workers and the committer must still run while it drains. NULL-safe. */
void srv_drain(struct server *srv, unsigned drain_ms);
/* Closes the socket and frees the contexts. Call it after the workers and the committer have
 * stopped, so that no job can still reach a context. NULL-safe. */
void srv_close(struct server *srv);

#endif
