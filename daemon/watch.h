/*
 * watch.h: the listener watchdog. NNG before 1.6.0 (Debian 12 ships 1.5.2) stops accepting on a
 * listener for good when a client connects and closes before the SP handshake is done (nanomsg/nng
 * issue 1518): the daemon goes on running and answers the connections it has, but no new one. The
 * watchdog probes each ipc:// listener a few times a second with a full handshake (probe.h) and
 * has the server replace one that does not answer (srv_relisten). Built only where configure
 * found an NNG without the fix (HSAMEM_NNG_LISTENER_BUG); elsewhere wd_start does nothing.
 */
#ifndef HSAMEM_WATCH_H
#define HSAMEM_WATCH_H

struct conf;
struct server;
struct watchdog;

/* Starts watching conf's ipc:// listeners of srv, which listens already (srv_start). *out is
 * NULL when there is nothing to watch. */
int wd_start(struct server *srv, const struct conf *conf, struct watchdog **out);
/*
 * Stops the watchdog and waits for its thread, at most 2 s (a listener's close can hang in NNG
 * 1.5); call it before srv_stop. 0, or -ETIMEDOUT when the thread is still running: it then
 * still uses the server, which must not be closed (main leaves with _exit). NULL-safe.
 */
int wd_stop(struct watchdog *wd);

#endif
