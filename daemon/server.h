/*
 * server.h: the daemon's NNG socket and its request contexts.
 */
#ifndef HSAMEM_SERVER_H
#define HSAMEM_SERVER_H

struct daemon;
struct server;

/* Opens the rep0 socket, listens on every conf.listen address, and starts receiving. */
int srv_start(struct daemon *d, struct server **out);
/* Stops receiving, waits up to drain_ms for requests in flight to be answered, closes. NULL-safe.
 * The workers and the committer must still run while it drains. */
void srv_stop(struct server *srv, unsigned drain_ms);

#endif
