/*
 * request.h: a request's way into a job and its reply's way out, whatever carried the bytes. The
 * server's contexts (server.c) use it for every message of the socket, and the fuzz target of
 * tests/stress feeds it bytes without a socket, so both run the same decoding and the same checks.
 */
#ifndef HSAMEM_REQUEST_H
#define HSAMEM_REQUEST_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct job;

/*
 * Makes *job a fresh job of daemon d for the len bytes at buf (which the job does not keep), that
 * arrived on connection conn (conn.h; 0: unknown): decodes the request, checks its protocol
 * version and finds its operation. Returns 0 when the
 * job is to be run (wrk_submit), or the error its reply already holds (not a valid message,
 * another protocol version, no operation this daemon knows): then only the reply is to be sent.
 * job->finish is left for the caller to set.
 */
int req_decode(struct job *job, struct daemon *d, uint32_t conn, const void *buf, size_t len);

/* Completes the job's reply (version, status) and returns its packed size; a reply that would
 * exceed max-message is replaced by an HSAMEM_ETOOBIG error first. */
size_t req_reply_size(struct job *job);

/* Records the job's latency and outcome, and frees its request and its reply's memory: call it
 * once the reply is packed (or could not be). */
void req_done(struct job *job);

#endif
