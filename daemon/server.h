/*
 * server.h: the daemon's NNG socket and its request contexts. The contexts hold the jobs that the
 * workers and the committer borrow, so the server is opened before them and closed after them;
 * it takes requests only between srv_start and srv_stop, while they run.
 */
#ifndef HSAMEM_SERVER_H
#define HSAMEM_SERVER_H

struct daemon;
struct server;

/* Opens the rep0 socket and its conf.contexts contexts; nothing is received yet. */
int srv_open(struct daemon *d, struct server **out);
/* Listens on every conf.listen address and starts receiving. The workers and the committer must
 * run from now until srv_stop returns. On failure nothing is received: skip srv_stop. */
int srv_start(struct server *srv);
/* Stops receiving and waits up to drain_ms for the requests in flight to be answered. NULL-safe. */
void srv_stop(struct server *srv, unsigned drain_ms);
/* How many connections conf.listen[i]'s listener has handed to the socket (NNG's pipe
 * notification); the watchdog watches it grow. Any thread. */
unsigned long srv_accepted(struct server *srv, unsigned i);
/* Listens on conf.listen[i] afresh (lsn_replace: the old listener keeps its connections unless
 * it turns out stuck; probe_fd, or -1, is the watchdog's connection that it did not hand on): the
 * watchdog's remedy for a listener that stopped accepting (watch.h). Only between srv_start and
 * srv_stop, from one thread, as srv_sweep. 0, or the error of listening again (logged). */
int srv_relisten(struct server *srv, unsigned i, int probe_fd);
/* Closes the replaced listeners that turned out stuck or have no connection left (lsn_sweep). */
void srv_sweep(struct server *srv);
/* Closes the socket and frees the contexts. Call it after the workers and the committer have
 * stopped, so that no job can still reach a context. Waits at most 2 s for NNG to close the
 * socket; returns -ETIMEDOUT when it gave up (logged), 0 otherwise. Then a thread of NNG's may
 * still run: the caller must leave with _exit(). NULL-safe. */
int srv_close(struct server *srv);

#endif
