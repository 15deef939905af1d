/*
 * listeners.h: the daemon's listeners, one per conf.listen address (listeners.c), and the
 * replacement of one that stopped accepting, which keeps the connections it had.
 */
#ifndef HSAMEM_LISTENERS_H
#define HSAMEM_LISTENERS_H

#include <nng/nng.h>

struct conf;
struct listeners;

/* Prepares the listeners of sock (nothing listens yet) and starts counting its connections. */
int lsn_open(nng_socket sock, const struct conf *conf, struct listeners **out);
/* Listens on every conf.listen address; an ipc:// path where something answers is refused. */
int lsn_start(struct listeners *ls);
/* How many connections conf.listen[i]'s current listener has handed to the socket. Any thread. */
unsigned long lsn_accepted(struct listeners *ls, unsigned i);
/* Listens on conf.listen[i] afresh; the old listener keeps the connections it accepted until
 * lsn_sweep judges it stuck (NNG 1.5: with a path too long to bind beside, it is closed first).
 * probe_fd (or -1) is the watchdog's connection that the old listener did not hand on in time;
 * it is closed here or later. One thread at a time, as lsn_sweep. */
int lsn_replace(struct listeners *ls, unsigned i, int probe_fd);
/* Closes the replaced listeners that turned out stuck, or have no connection left. */
void lsn_sweep(struct listeners *ls);
/* Removes the ipc:// socket files that lsn_start or lsn_replace renamed into place: at the stop. */
void lsn_unlink(struct listeners *ls);
/* After the socket has closed (which closes every listener). NULL-safe. */
void lsn_free(struct listeners *ls);

#endif
