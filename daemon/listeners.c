/*
 * listeners.c: the daemon's listeners (listeners.h), one per conf.listen address, and the
 * connections each has handed to the socket.
 *
 * Claiming a path: before an ipc:// path is listened on, whatever answers there is asked, with a
 * full handshake and a ping (probe.h): a live daemon is left alone and this one refuses to start, a
 * socket file nobody listens on is removed. NNG would otherwise find out itself, by connecting
 * and closing at once, which a listener of NNG 1.5 does not survive (watch.c).
 *
 * Replacing a stuck listener without breaking connections (NNG 1.5 only): an ipc:// listener is
 * bound beside its path (PATH.N~) and renamed onto it, so the path always names exactly one live
 * socket. To replace one, a new listener is bound beside the path and renamed over it: new
 * connections reach the new one at once, while the old one stays open, unreachable, with the
 * connections it had. Whether the old one was stuck or only slow, its last probe tells: the
 * watchdog hands over that connection, which reached it and waits to be handed on. A listener
 * that hands it on (or any other) within LSN_GRACE_MS was only slow and keeps its connections
 * until they close; one that does not is stuck and is closed, which also closes the connections
 * waiting in it, so their clients reconnect to the new listener. A retired listener without
 * connections is closed, and the oldest is closed anyway when LSN_SLOTS are in use. Closing one
 * removes only its own PATH.N~, long gone; the path itself is removed by lsn_unlink when the
 * daemon stops. A path too long for PATH.N~ is listened on directly and replaced by closing its
 * listener first. NNG 1.6 and later keep accepting, and their listeners are plain.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"
#include "listeners.h"
#include "log.h"
#include "peer.h"
#include "probe.h"

#include <nng/transport/ipc/ipc.h>

#define CLAIM_MS     2000 /* the wait for an answer from what listens on a path already */
#define LSN_SLOTS    64   /* listeners kept at once: the current ones and retired ones in use */
#define LSN_GRACE_MS 2000 /* a retired listener that hands on nothing meanwhile was stuck */

struct lsn_slot {
	nng_listener l;
	atomic_int id;       /* l's id; 0: the slot is free */
	atomic_long pipes;   /* its connections now open */
	atomic_ulong handed; /* connections it handed to the socket */
	atomic_bool retired; /* replaced: no new connection reaches it */
	unsigned addr;       /* its conf.listen index */
	unsigned long born;  /* creation order: the oldest retired one is closed first */
	/* retired, not judged yet: the probe's connection waiting in it, and the judgement's terms
	 */
	int probe_fd;
	unsigned long handed_mark;
	int64_t deadline_ms;
};

struct listeners {
	nng_socket sock;
	const struct conf *conf;
	struct lsn_slot slot[LSN_SLOTS];
	unsigned *current;      /* per address: the slot of its listener */
	bool *renamed;          /* per address: bound beside the path and renamed onto it */
	atomic_ulong *accepted; /* per address: connections its current listeners handed on */
	unsigned long born;
};

static void
on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct listeners *ls = arg;
	int id = nng_listener_id(nng_pipe_listener(p));
	for (unsigned s = 0; id > 0 && s < LSN_SLOTS; s++) {
		struct lsn_slot *sl = &ls->slot[s];
		if (atomic_load(&sl->id) != id)
			continue;
		if (ev == NNG_PIPE_EV_ADD_POST) {
			atomic_fetch_add(&sl->pipes, 1);
			atomic_fetch_add(&sl->handed, 1);
			if (!atomic_load(&sl->retired))
				atomic_fetch_add(&ls->accepted[sl->addr], 1);
		} else {
			atomic_fetch_sub(&sl->pipes, 1);
		}
		break;
	}
}

int
lsn_open(nng_socket sock, const struct conf *conf, struct listeners **out)
{
	struct listeners *ls = calloc(1, sizeof(*ls));
	size_t n = conf->n_listen + 1;
	int rv;
	*out = NULL;
	if (ls == NULL)
		return -ENOMEM;
	ls->sock = sock;
	ls->conf = conf;
	ls->current = calloc(n, sizeof(*ls->current));
	ls->renamed = calloc(n, sizeof(*ls->renamed));
	ls->accepted = calloc(n, sizeof(*ls->accepted));
	if (ls->current == NULL || ls->renamed == NULL || ls->accepted == NULL) {
		lsn_free(ls);
		return -ENOMEM;
	}
	if ((rv = nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, on_pipe, ls)) != 0 ||
	    (rv = nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, on_pipe, ls)) != 0) {
		log_err("server: cannot watch connections: %s", nng_strerror(rv));
		lsn_free(ls);
		return -EIO;
	}
	*out = ls;
	return 0;
}

/*
 * Before listening on an ipc:// path that exists: a daemon that answers there keeps it, and so
 * does anything else that accepts the connection; a socket file that refuses it was left by a
 * daemon that is gone, and is removed.
 */
static int
claim_ipc(const char *url)
{
	const char *path = url + 6;
	struct stat st;
	if (lstat(path, &st) != 0)
		return 0; /* nothing there, or NNG says why it cannot listen */
	if (!S_ISSOCK(st.st_mode)) {
		log_err("server: cannot listen on %s: %s exists and is not a socket", url, path);
		return -EEXIST;
	}
	int ret = probe_ipc(path, CLAIM_MS, true);
	switch (ret) {
	case -ENOENT: return 0;
	case -ECONNREFUSED:
		log_notice("server: removing %s: no daemon listens there any more", path);
		if (unlink(path) != 0 && errno != ENOENT) {
			log_err("server: cannot remove %s: %s", path, strerror(errno));
			return -errno;
		}
		return 0;
	case 0:
		log_err("server: another hsamemd answers on %s; leaving it alone (stop it, or give "
		        "this one another address with -l)",
		        url);
		return -EADDRINUSE;
	default:
		log_err("server: something listens on %s but does not answer as hsamemd (%s); "
		        "leaving it alone",
		        url, strerror(-ret));
		return -EADDRINUSE;
	}
}

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Closes the listener of slot s and frees the slot; its connections close with it. */
static void
slot_close(struct lsn_slot *sl)
{
	atomic_store(&sl->id, 0);
	nng_listener_close(sl->l);
	if (sl->probe_fd >= 0)
		close(sl->probe_fd);
	sl->probe_fd = -1;
}

/* A retired listener's fate (above): judged alive, judged stuck and closed, or not yet. */
static void
slot_judge(struct listeners *ls, struct lsn_slot *sl, int64_t now)
{
	if (atomic_load(&sl->id) == 0 || !atomic_load(&sl->retired))
		return;
	if (sl->probe_fd >= 0 && atomic_load(&sl->handed) != sl->handed_mark) {
		close(sl->probe_fd); /* it was only slow */
		sl->probe_fd = -1;
	} else if (sl->probe_fd >= 0 && now >= sl->deadline_ms) {
		log_notice("server: the replaced listener of %s handed on no connection in %d ms: "
		           "closing it, so that the clients waiting in it reconnect",
		           ls->conf->listen[sl->addr], LSN_GRACE_MS);
		slot_close(sl);
	} else if (sl->probe_fd < 0 && atomic_load(&sl->pipes) <= 0) {
		slot_close(sl);
	}
}

void
lsn_sweep(struct listeners *ls)
{
	int64_t now = mono_ms();
	for (unsigned s = 0; s < LSN_SLOTS; s++)
		slot_judge(ls, &ls->slot[s], now);
}

/* A free slot: retired ones without connections are closed; when none is free, the oldest
 * retired one is closed all the same. NULL only when every slot holds a current listener. */
static struct lsn_slot *
slot_take(struct listeners *ls)
{
	struct lsn_slot *free_slot = NULL, *oldest = NULL;
	lsn_sweep(ls);
	for (unsigned s = 0; s < LSN_SLOTS; s++) {
		struct lsn_slot *sl = &ls->slot[s];
		if (atomic_load(&sl->id) == 0) {
			if (free_slot == NULL)
				free_slot = sl;
		} else if (atomic_load(&sl->retired) &&
		           (oldest == NULL || sl->born < oldest->born)) {
			oldest = sl;
		}
	}
	if (free_slot == NULL && oldest != NULL) {
		log_warn("server: closing a replaced listener of %s that still has connections "
		         "(%d listeners kept at most)",
		         ls->conf->listen[oldest->addr], LSN_SLOTS);
		slot_close(oldest);
		free_slot = oldest;
	}
	return free_slot;
}

/*
 * Starts a listener for conf.listen[i] into slot sl. With beside, an ipc:// listener is bound at
 * PATH.N~ and renamed onto PATH (*renamed says whether it was); otherwise at the address itself.
 */
static int
start_one(struct listeners *ls, unsigned i, struct lsn_slot *sl, bool beside, bool *renamed)
{
	const char *url = ls->conf->listen[i];
	char tmp[6 + sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *at = url;
	nng_listener l;
	int rv, ret;

	*renamed = false;
	if (beside && strncmp(url, "ipc://", 6) == 0 &&
	    snprintf(tmp, sizeof(tmp), "%s.%lu~", url, ls->born + 1) < (int)sizeof(tmp)) {
		at = tmp;
		*renamed = true;
	}
	rv = nng_listener_create(&l, ls->sock, at);
	if (rv == 0 && (ret = peer_listener_setup(l, url, ls->conf)) != 0) {
		nng_listener_close(l);
		return ret;
	}
	if (rv == 0 && strncmp(url, "ipc://", 6) == 0)
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, (int)ls->conf->socket_mode);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv != 0) {
		log_err("server: cannot listen on %s: %s", url, nng_strerror(rv));
		return rv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL;
	}
	if (*renamed && rename(at + 6, url + 6) != 0) {
		ret = -errno;
		log_err("server: cannot listen on %s: renaming %s onto it: %s", url, at + 6,
		        strerror(errno));
		nng_listener_close(l); /* removes PATH.N~ */
		return ret;
	}
	sl->l = l;
	sl->addr = i;
	sl->born = ++ls->born;
	sl->probe_fd = -1;
	atomic_store(&sl->pipes, 0);
	atomic_store(&sl->handed, 0);
	atomic_store(&sl->retired, false);
	atomic_store(&sl->id, nng_listener_id(l));
	return 0;
}

int
lsn_start(struct listeners *ls)
{
	for (unsigned i = 0; i < ls->conf->n_listen; i++) {
		const char *url = ls->conf->listen[i];
		int ret;
		if (strncmp(url, "ipc://", 6) == 0 && (ret = claim_ipc(url)) != 0)
			return ret;
		struct lsn_slot *sl = slot_take(ls);
		if (sl == NULL)
			return -EMFILE;
		if ((ret = start_one(ls, i, sl, HSAMEM_NNG_LISTENER_BUG, &ls->renamed[i])) != 0)
			return ret;
		ls->current[i] = (unsigned)(sl - ls->slot);
		log_info("server: listening on %s", url);
	}
	return 0;
}

unsigned long
lsn_accepted(struct listeners *ls, unsigned i)
{
	return atomic_load(&ls->accepted[i]);
}

int
lsn_replace(struct listeners *ls, unsigned i, int probe_fd)
{
	struct lsn_slot *old = &ls->slot[ls->current[i]];
	bool renamed;
	int ret = -EMFILE;
	if (!ls->renamed[i]) {
		/* listened on directly: closing it frees the path (and removes the socket file) */
		slot_close(old);
	}
	struct lsn_slot *sl = slot_take(ls);
	if (sl == NULL || (ret = start_one(ls, i, sl, ls->renamed[i], &renamed)) != 0) {
		if (probe_fd >= 0)
			close(probe_fd);
		return ret; /* a renamed one keeps serving what it has; the watchdog tries again */
	}
	if (ls->renamed[i]) {
		old->probe_fd = probe_fd;
		old->handed_mark = atomic_load(&old->handed);
		old->deadline_ms = mono_ms() + LSN_GRACE_MS;
		atomic_store(&old->retired,
		             true); /* without a probe: kept until its connections go */
	} else if (probe_fd >= 0) {
		close(probe_fd);
	}
	ls->renamed[i] = renamed;
	ls->current[i] = (unsigned)(sl - ls->slot);
	return 0;
}

void
lsn_unlink(struct listeners *ls)
{
	for (unsigned i = 0; ls != NULL && i < ls->conf->n_listen; i++)
		if (ls->renamed[i]) {
			ls->renamed[i] = false;
			if (unlink(ls->conf->listen[i] + 6) != 0 && errno != ENOENT)
				log_warn("server: cannot remove %s: %s", ls->conf->listen[i] + 6,
				         strerror(errno));
		}
}

void
lsn_free(struct listeners *ls)
{
	if (ls == NULL)
		return;
	for (unsigned s = 0; s < LSN_SLOTS; s++)
		if (atomic_load(&ls->slot[s].id) != 0 && ls->slot[s].probe_fd >= 0)
			close(ls->slot[s].probe_fd);
	free(ls->current);
	free(ls->renamed);
	free(ls->accepted);
	free(ls);
}
