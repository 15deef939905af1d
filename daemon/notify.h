/*
 * notify.h: the sd_notify protocol spoken directly over $NOTIFY_SOCKET (an AF_UNIX datagram socket,
 * possibly abstract), so that hsamemd runs as a Type=notify service without libsystemd.
 */
#ifndef HSAMEM_NOTIFY_H
#define HSAMEM_NOTIFY_H

/* Sends one state string such as "READY=1" or "STOPPING=1". A no-op returning 0 when
 * $NOTIFY_SOCKET is unset; a negative errno when sending fails. */
int notify_send(const char *state);

#endif
