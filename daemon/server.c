/*
 * server.c: the NNG side. One rep0 socket, listening on every configured address, served by
 * conf.contexts contexts; each context embeds the job it carries, one request at a time, through
 * the job's life of job.h. A context's own states:
 *
 *   RECV --recv done--> WORK --job->finish--> SEND --send done--> RECV
 *     \                                          \
 *      +--cancelled (stopping)--> DONE            +--stopping--> DONE
 *
 * WORK covers the job's WORK and COMMIT, while a worker or the committer holds it. The aio
 * callbacks never block: they decode a request and queue it to the workers, or hand a packed
 * reply to nng. This file owns the socket and the contexts; the decoding of a request (which
 * refuses one whose strings hold a NUL byte, wire.h) and the sizing of its reply are request.c's.
 * It must not interpret requests (the handlers do; dispatch.c says which).
 *
 * Listeners are listeners.c's: srv_relisten() replaces one that stopped accepting (watch.c).
 * Closing the socket is bounded (SRV_CLOSE_MS): NNG
 * 1.5's nng_close can wait forever, and by then every acknowledged request is durable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "conn.h"
#include "daemon.h"
#include "job.h"
#include "listeners.h"
#include "log.h"
#include "peer.h"
#include "request.h"
#include "server.h"
#include "worker.h"

#define SRV_CLOSE_MS 2000 /* the wait for nng_close at the end */

enum ctx_state { CTX_RECV, CTX_WORK, CTX_SEND, CTX_DONE };

struct srv_ctx {
	struct server *srv;
	nng_ctx ctx;
	nng_aio *aio;
#define SRV_CLOSE_MS 2000 /* the wait for nng_close at the end */

	enum ctx_state state;
	struct job job;
};

struct server {
	struct daemon *d;
	nng_socket sock;
	bool sock_open;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	unsigned n_ctx, n_done;
	struct srv_ctx *ctxs;
	struct listeners *lis;
	bool closed; /* the closing thread finished (under mu) */
};

static void
ctx_done(struct srv_ctx *c)
{
	struct server *srv = c->srv;
	pthread_mutex_lock(&srv->mu);
	c->state = CTX_DONE;
	srv->n_done++;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

/* Arms the next receive, unless the server is stopping. */
static void
ctx_recv(struct srv_ctx *c)
{
	pthread_mutex_lock(&c->srv->mu);
	bool stopping = c->srv->stopping;
	if (!stopping) {
		c->state = CTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
	}
	pthread_mutex_unlock(&c->srv->mu);
	if (stopping)
		ctx_done(c);
}

/* Packs the job's reply and sends it; called by whichever thread finished the job. */
static void
job_send(struct job *job)
{
	struct srv_ctx *c = (struct srv_ctx *)((char *)job - offsetof(struct srv_ctx, job));
	nng_msg *msg = NULL;

	size_t size = req_reply_size(job);
	if (nng_msg_alloc(&msg, size) == 0)
		hsamem__reply__pack(&job->reply, nng_msg_body(msg));
	else
		log_err("server: out of memory for a reply of %zu bytes", size);
	req_done(job);

	if (msg == NULL) { /* the client times out; the context lives on */
		ctx_recv(c);
		return;
	}
	pthread_mutex_lock(&c->srv->mu);
	c->state = CTX_SEND;
	pthread_mutex_unlock(&c->srv->mu);
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

/* A request arrived: decode it and queue it, or answer a malformed one at once. */
static void
on_recv(struct srv_ctx *c)
{
	struct job *job = &c->job;
	nng_msg *msg = nng_aio_get_msg(c->aio);
	pthread_mutex_lock(&c->srv->mu);
	c->state = CTX_WORK;
	pthread_mutex_unlock(&c->srv->mu);

	int ret = req_decode(job, c->srv->d, conn_of_msg(msg), nng_msg_body(msg), nng_msg_len(msg));
	peer_of_msg(msg, &job->peer);
	nng_msg_free(msg);
	job->finish = job_send;
	if (ret == 0)
		wrk_submit(job->d->workers, job);
	else
		job_send(job);
}

static void
ctx_callback(void *arg)
{
	struct srv_ctx *c = arg;
	int rv = nng_aio_result(c->aio);
	switch (c->state) {
	case CTX_RECV:
		if (rv == 0) {
			on_recv(c);
		} else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			ctx_done(c);
		} else {
			log_warn("server: receive failed: %s", nng_strerror(rv));
			ctx_recv(c);
		}
		break;
	case CTX_SEND:
		if (rv != 0) {
			/* the peer went away: the message is still ours */
			nng_msg_free(nng_aio_get_msg(c->aio));
			if (rv != NNG_ECLOSED)
				log_debug("server: reply not delivered: %s", nng_strerror(rv));
		}
		ctx_recv(c);
		break;
	default: log_err("server: callback in unexpected state %d", c->state); break;
	}
}

int
srv_open(struct daemon *d, struct server **out)
{
	struct server *srv = calloc(1, sizeof(*srv));
	int ret = -EIO, rv;
	if (srv == NULL)
		return -ENOMEM;
	srv->d = d;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	if ((rv = nng_rep0_open(&srv->sock)) != 0) {
		log_err("server: cannot open the socket: %s", nng_strerror(rv));
		goto fail;
	}
	srv->sock_open = true;
	/* The transports read a message's length first and drop a connection that announces more
	 * than this, before they allocate or read any of it; listeners take it from the socket. */
	if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, (size_t)d->conf.max_message)) !=
	    0) {
		log_err("server: cannot limit messages to max-message: %s", nng_strerror(rv));
		goto fail;
	}
	srv->ctxs = calloc(d->conf.contexts, sizeof(*srv->ctxs));
	if (srv->ctxs == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	if ((ret = lsn_open(srv->sock, &d->conf, &srv->lis)) != 0)
		goto fail;
	for (; srv->n_ctx < d->conf.contexts; srv->n_ctx++) {
		struct srv_ctx *c = &srv->ctxs[srv->n_ctx];
		c->srv = srv;
		if ((rv = nng_aio_alloc(&c->aio, ctx_callback, c)) != 0)
			goto fail_nng;
		if ((rv = nng_ctx_open(&c->ctx, srv->sock)) != 0) {
			nng_aio_free(c->aio);
			goto fail_nng;
		}
	}
	*out = srv;
	return 0;

fail_nng:
	log_err("server: cannot set up contexts: %s", nng_strerror(rv));
fail:
	srv_close(srv);
	return ret;
}

int
srv_start(struct server *srv)
{
	int ret = lsn_start(srv->lis);
	if (ret != 0)
		return ret;
	for (unsigned i = 0; i < srv->n_ctx; i++)
		ctx_recv(&srv->ctxs[i]);
	return 0;
}

void
srv_stop(struct server *srv, unsigned drain_ms)
{
	if (srv == NULL)
		return;
	/* Stop taking requests: new clients find no socket file, the receives are cancelled, and
	 * contexts busy with a request finish it. */
	lsn_unlink(srv->lis);
	pthread_mutex_lock(&srv->mu);
	srv->stopping = true;
	for (unsigned i = 0; i < srv->n_ctx; i++)
		if (srv->ctxs[i].state == CTX_RECV)
			nng_aio_cancel(srv->ctxs[i].aio);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += drain_ms / 1000;
	until.tv_nsec += (long)(drain_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (srv->n_done < srv->n_ctx)
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until) == ETIMEDOUT)
			break;
	if (srv->n_done < srv->n_ctx)
		log_warn("server: %u requests still in flight after %u ms",
		         srv->n_ctx - srv->n_done, drain_ms);
	pthread_mutex_unlock(&srv->mu);
}

unsigned long
srv_accepted(struct server *srv, unsigned i)
{
	return lsn_accepted(srv->lis, i);
}

int
srv_relisten(struct server *srv, unsigned i, int probe_fd)
{
	return lsn_replace(srv->lis, i, probe_fd);
}

void
srv_sweep(struct server *srv)
{
	lsn_sweep(srv->lis);
}

/* The closing thread: closing the socket aborts what is still pending, and nng_aio_stop waits for
 * the callbacks. Either can wait forever in NNG 1.5; srv_close waits for this thread a while. */
static void *
close_main(void *arg)
{
	struct server *srv = arg;
	if (srv->sock_open)
		nng_close(srv->sock);
	for (unsigned i = 0; i < srv->n_ctx; i++) {
		nng_aio_stop(srv->ctxs[i].aio);
		nng_aio_free(srv->ctxs[i].aio);
	}
	pthread_mutex_lock(&srv->mu);
	srv->closed = true;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	return NULL;
}

int
srv_close(struct server *srv)
{
	pthread_t t;
	bool closed;

	if (srv == NULL)
		return 0;
	lsn_unlink(srv->lis);
	pthread_mutex_lock(&srv->mu);
	srv->stopping = true;
	pthread_mutex_unlock(&srv->mu);
	if (pthread_create(&t, NULL, close_main, srv) != 0) {
		close_main(srv);
	} else {
		pthread_detach(t);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += SRV_CLOSE_MS / 1000;
		pthread_mutex_lock(&srv->mu);
		while (!srv->closed)
			if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until) == ETIMEDOUT)
				break;
		closed = srv->closed;
		pthread_mutex_unlock(&srv->mu);
		if (!closed) {
			/* the closing thread still uses srv: it stays allocated until the exit */
			log_warn("server: the socket did not close within %d ms (NNG); going on "
			         "without "
			         "it: every acknowledged request is already durable",
			         SRV_CLOSE_MS);
			return -ETIMEDOUT;
		}
	}
	lsn_free(srv->lis);
	free(srv->ctxs);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	return 0;
}
