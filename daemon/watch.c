/*
 * watch.c: the listener watchdog (watch.h). One thread: every WD_PERIOD_MS it probes each ipc://
 * address with a full SP handshake and waits for the connection to reach the socket (NNG's pipe
 * notification, srv_accepted): NNG 1.5 completes the handshake of a stuck listener at the
 * transport and then never hands the connection on. No request is sent, so workers busy with
 * long requests cannot make a healthy listener look stuck. When the connection does not arrive
 * within WD_TIMEOUT_MS while no other connection got through either, or the socket file is gone
 * or refuses, the server listens there afresh (srv_relisten): the new listener takes the path's
 * new connections, and the old one keeps those it had (listeners.c). So replacing a listener
 * that was only slow, on a busy daemon, costs its clients nothing, and a stuck listener is
 * replaced within WD_PERIOD_MS + WD_TIMEOUT_MS (0.7 s) of the connection that broke it.
 *
 * It owns its thread and nothing of the server's; it must not probe during srv_stop's drain
 * (main stops it first).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"
#include "job.h"
#include "log.h"
#include "probe.h"
#include "server.h"
#include "watch.h"

#include <nng/nng.h>

#define WD_PERIOD_MS  200
#define WD_TIMEOUT_MS 500
#define WD_SAY_EVERY  (60000 / WD_PERIOD_MS)
#define WD_STOP_MS    2000 /* wd_stop's wait for a thread caught in a listener's close (NNG) */

struct watchdog {
	struct server *srv;
	const struct conf *conf;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	bool stop;
	bool done; /* the thread has left wd_main */
	unsigned long replaced;
	unsigned *failing; /* per address: listening again failed so many times in a row */
};

/*
 * Connects to conf.listen[i] with a full handshake and waits until its listener hands a
 * connection to the socket; 0, or why it did not (-ETIMEDOUT: with *waiting the probe's
 * connection, left open). Any connection handed on meanwhile counts (a
 * flood of clients can slow the handshake, or fill the backlog, of a listener that accepts).
 */
static int
probe(struct watchdog *wd, unsigned i, int wait_ms, int *waiting)
{
	unsigned long before = srv_accepted(wd->srv, i);
	int64_t deadline = now_ms() + wait_ms;
	int fd, ret = probe_ipc_hello(wd->conf->listen[i] + 6, wait_ms, &fd);
	*waiting = -1;
	if (ret == 0) {
		ret = -ETIMEDOUT;
		while (now_ms() < deadline && ret != 0) {
			struct timespec ts = {0, 2000000};
			nanosleep(&ts, NULL);
			if (srv_accepted(wd->srv, i) != before)
				ret = 0;
		}
		if (ret == 0)
			close(fd);
		else
			*waiting =
			        fd; /* what tells a slow listener from a stuck one (listeners.c) */
	}
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		return ret; /* the socket file is gone, or another one took its place */
	if (ret == -EAGAIN || ret == -ENOMEM || ret == -EMFILE || ret == -ENFILE)
		return 0; /* a full backlog: busy (a stuck listener's backlog does not fill, NNG
		           * accepts at the transport); the others are our shortage */
	if (srv_accepted(wd->srv, i) == before)
		return ret;
	if (*waiting >= 0)
		close(*waiting);
	*waiting = -1;
	return 0;
}

/* Probes every ipc:// address once, and replaces the listeners that did not answer. */
static void
check_all(struct watchdog *wd)
{
	srv_sweep(wd->srv);
	for (unsigned i = 0; i < wd->conf->n_listen; i++) {
		const char *url = wd->conf->listen[i];
		if (strncmp(url, "ipc://", 6) != 0)
			continue;
		int waiting, ret = probe(wd, i, WD_TIMEOUT_MS, &waiting);
		if (ret == 0)
			continue;
		wd->replaced++;
		/* a path that cannot be listened on again is said once, then once a minute */
		bool say = wd->failing[i] % WD_SAY_EVERY == 0;
		if (say)
			log_warn("server: %s stopped accepting (%s); listening there again (%lu so "
			         "far)",
			         url,
			         ret == -ETIMEDOUT ? "a connection did not reach the socket"
			                           : strerror(-ret),
			         wd->replaced);
		if (srv_relisten(wd->srv, i, waiting) == 0)
			wd->failing[i] = 0;
		else if (wd->failing[i]++ == 0)
			log_err("server: cannot listen on %s again; retrying every %d ms", url,
			        WD_PERIOD_MS);
	}
}

static void *
wd_main(void *arg)
{
	struct watchdog *wd = arg;
	pthread_mutex_lock(&wd->mu);
	while (!wd->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += WD_PERIOD_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!wd->stop && pthread_cond_timedwait(&wd->cv, &wd->mu, &until) != ETIMEDOUT)
			;
		if (wd->stop)
			break;
		pthread_mutex_unlock(&wd->mu);
		check_all(wd);
		pthread_mutex_lock(&wd->mu);
	}
	wd->done = true;
	pthread_cond_broadcast(&wd->cv);
	pthread_mutex_unlock(&wd->mu);
	return NULL;
}

int
wd_start(struct server *srv, const struct conf *conf, struct watchdog **out)
{
	*out = NULL;
#if HSAMEM_NNG_LISTENER_BUG
	bool any = false;
	for (unsigned i = 0; i < conf->n_listen; i++)
		any |= strncmp(conf->listen[i], "ipc://", 6) == 0;
	if (!any)
		return 0;
	struct watchdog *wd = calloc(1, sizeof(*wd));
	if (wd == NULL || (wd->failing = calloc(conf->n_listen, sizeof(*wd->failing))) == NULL) {
		free(wd);
		return -ENOMEM;
	}
	wd->srv = srv;
	wd->conf = conf;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wd->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&wd->mu, NULL);
	int rv = pthread_create(&wd->thread, NULL, wd_main, wd);
	if (rv != 0) {
		pthread_cond_destroy(&wd->cv);
		pthread_mutex_destroy(&wd->mu);
		free(wd->failing);
		free(wd);
		return -rv;
	}
	log_debug("server: watching the ipc listeners (NNG %s stops accepting after a broken "
	          "handshake)",
	          nng_version());
	*out = wd;
#else
	(void)srv;
	(void)conf;
#endif
	return 0;
}

int
wd_stop(struct watchdog *wd)
{
	if (wd == NULL)
		return 0;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += WD_STOP_MS / 1000;
	pthread_mutex_lock(&wd->mu);
	wd->stop = true;
	pthread_cond_broadcast(&wd->cv);
	while (!wd->done && pthread_cond_timedwait(&wd->cv, &wd->mu, &until) != ETIMEDOUT)
		;
	bool done = wd->done;
	pthread_mutex_unlock(&wd->mu);
	if (!done) {
		/* the thread still uses wd and the server: both stay allocated until the exit */
		log_warn("server: the listener watchdog did not stop within %d ms (a listener's "
		         "close hangs in NNG); going on without it",
		         WD_STOP_MS);
		return -ETIMEDOUT;
	}
	pthread_join(wd->thread, NULL);
	pthread_cond_destroy(&wd->cv);
	pthread_mutex_destroy(&wd->mu);
	free(wd->failing);
	free(wd);
	return 0;
}
