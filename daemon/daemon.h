/*
 * daemon.h: the daemon object, what every module of hsamemd reaches through a job: the settings,
 * the store, the compute backends, the worker pool, the committer and the server, the access
 * policy and the request statistics. main.c fills it, module by module, and empties it in the
 * reverse order.
 */
#ifndef HSAMEM_DAEMON_H
#define HSAMEM_DAEMON_H

#include <stdatomic.h>
#include <stdint.h>

#include "acl.h"
#include "conf.h"
#include "stats.h"

struct audit;
struct commit;
struct gpu_backend;
struct server;
struct store;
struct words;
struct wrk_pool;

struct daemon {
	struct conf conf;
	char *conf_path;
	struct store *store;
	struct gpu_backend *cpu; /* always there: the fallback and the oracle */
	struct gpu_backend *gpu; /* the CUDA backend, or NULL */
	atomic_bool gpu_ok;      /* cleared for good by the first CUDA failure */
	struct wrk_pool *workers;
	struct commit *commit;
	struct server *server;
	struct stats stats;
	_Atomic uint64_t inflight; /* bytes held by requests in flight, at most max-inflight */
	struct acl_box acl;        /* the access policy, swapped on reload */
	int64_t started_ms;
	struct audit *audit; /* the audit trail and the slow-request log */
	struct words *words; /* the word indexes of memories' entries (words.h) */
};

#endif
