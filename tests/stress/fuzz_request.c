/*
 * fuzz_request.c: a libFuzzer target over the daemon's request path. Each input is one or more
 * Requests (fuzz.h); each goes the way hsamemd takes a message from its socket: req_decode, the
 * request workers (dispatch_run), for a write the group committer and its synced commit, then the
 * reply sized against max-message and packed. The store is a real LMDB store in a temporary
 * directory; the daemon's modules are compiled into this program with the same sanitizers.
 *
 * Beyond what AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer catch, every request
 * must be answered, and its reply must decode again, carry status 0 or an error with a message,
 * and never an internal error (HSAMEM_ESTORE, HSAMEM_EINTERNAL): bad bytes are the client's fault.
 * A violation aborts with the request's operation and the reply's message.
 *
 * Every input starts from an empty store: after an input, the memories it left (half-imported
 * ones too) are deleted through the delete operation, sent together (the committer takes those
 * queued as one batch, erased once), and each delete must succeed. LMDB is linked in statically
 * with the allocator of fuzz_lmdb.c, which keeps its large lists for reuse (that file says why).
 * Each input comes on a connection of its own (conn.h, answered here without NNG), closed when
 * the next begins. Commits are not synced (store_opts.no_sync): a crash of the host is not what
 * this looks for. The access policy is the default one (acl.h), and an input's requests come
 * from a local peer as server.c would note it: root, an administrator, for an input of even length,
 * nobody (which may use the memories "nobody" and "nobody:*" only) for one of odd length, so that
 * the refusals are fuzzed too and an input always takes the same way; the wipe comes from root.
 * User ids, the request statistics and the table of imports in progress live on across inputs, as
 * they do in hsamemd.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined when configure finds it (--enable-fuzz);
 * tests/stress/README.md says how to run it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "backend.h"
#include "commit.h"
#include "conn.h"
#include "daemon.h"
#include "dispatch.h"
#include "fuzz.h"
#include "job.h"
#include "log.h"
#include "ops.h"
#include "request.h"
#include "store.h"
#include "worker.h"

/* A job run from here: the fuzzer's thread waits for its finish, which may come from a worker or
 * from the committer. */
struct fuzz_job {
	struct job job;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int status;
	char what[64];
};

static struct daemon d;
static char dir[256];
/* Each input is one client connection (conn.h): its own number, and the inputs before it have
 * closed theirs. The wipe after an input comes on a connection of its own. */
static uint32_t conn_now;
static bool verbose;     /* HSAMEM_FUZZ_VERBOSE: print each request's outcome */
static uint32_t uid_now; /* the peer of the input being run */

static void
fail(const char *what, const char *why, const char *msg)
{
	fprintf(stderr, "fuzz_request: %s: %s (%s)\n", what, why, msg != NULL ? msg : "no message");
	abort();
}

/* The job's finish: what job_send (server.c) does, with the checks of a client in place of the
 * socket. */
static void
fuzz_finish(struct job *job)
{
	struct fuzz_job *f = (struct fuzz_job *)job;
	Hsamem__Reply *back;
	size_t size = req_reply_size(job);
	uint8_t *buf = malloc(size + 1);
	int status = job->reply.status;

	if (buf == NULL)
		fail(f->what, "out of memory for the reply", NULL);
	if (hsamem__reply__pack(&job->reply, buf) != size)
		fail(f->what, "the reply packs to another size than it announced",
		     job->reply.message);
	if ((back = hsamem__reply__unpack(NULL, size, buf)) == NULL)
		fail(f->what, "the reply does not decode", job->reply.message);
	if (!back->has_status || back->status != status || !back->has_version ||
	    back->version != HSAMEM_PROTOCOL_VERSION)
		fail(f->what, "the reply's status or version is wrong", back->message);
	if (status > 0 || (status != 0 && (back->message == NULL || back->message[0] == '\0')))
		fail(f->what, "an error reply without a message, or a positive status",
		     back->message);
	if (status == HSAMEM_ESTORE || status == HSAMEM_EINTERNAL)
		fail(f->what, "request bytes made an internal error", back->message);
	if (verbose)
		fprintf(stderr, "fuzz_request: %s: %d %s\n", f->what, status,
		        back->message != NULL ? back->message : "");
	hsamem__reply__free_unpacked(back, NULL);
	free(buf);
	req_done(job);

	pthread_mutex_lock(&f->mu);
	f->status = status;
	f->done = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Starts one request on the daemon's path; wait_request waits for its reply. */
static void
start_request(struct fuzz_job *f, const uint8_t *buf, size_t len)
{
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->done = false;
	int ret = req_decode(&f->job, &d, conn_now, buf, len);
	f->job.peer = (struct peer){
	        .transport = PEER_IPC, .has_creds = true, .uid = uid_now, .gid = uid_now, .pid = 1};
	snprintf(f->what, sizeof(f->what), "%s request of %zu bytes", d.stats.names[f->job.op],
	         len);
	f->job.finish = fuzz_finish;
	if (ret == 0)
		wrk_submit(d.workers, &f->job);
	else
		fuzz_finish(&f->job);
}

/* Waits for the reply of a request started; returns its status. */
static int
wait_request(struct fuzz_job *f)
{
	pthread_mutex_lock(&f->mu);
	while (!f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	return f->status;
}

static int
run_request(const uint8_t *buf, size_t len)
{
	struct fuzz_job f;
	start_request(&f, buf, len);
	return wait_request(&f);
}

struct names {
	char (*name)[HSAMEM_NAME_MAX + 1];
	size_t n;
};

static int
collect(const struct store_user *u, void *arg)
{
	struct names *l = arg;
	void *grown = realloc(l->name, (l->n + 1) * sizeof(*l->name));
	if (grown == NULL)
		return -1;
	l->name = grown;
	memcpy(l->name[l->n++], u->name, sizeof(u->name));
	return 0;
}

/*
 * Deletes every memory of the store (half-imported ones too) through the delete operation, all
 * the deletes at once, as clients of their own would send them: the committer takes those queued
 * together as one batch, and erases once for the batch (store_erase.c) instead of once for each.
 */
static void
wipe(void)
{
	struct names l = {0};
	struct store_txn txn;
	struct fuzz_job *f;
	uint8_t(*buf)[256];
	size_t *len;
	if (store_txn_begin(d.store, &txn, false, NULL) != 0 ||
	    store_user_foreach(&txn, collect, &l) != 0)
		fail("wipe", "cannot list the memories", NULL);
	store_txn_abort(&txn);
	if (l.n == 0)
		return;
	f = calloc(l.n, sizeof(*f));
	buf = calloc(l.n, sizeof(*buf));
	len = calloc(l.n, sizeof(*len));
	if (f == NULL || buf == NULL || len == NULL)
		fail("wipe", "out of memory", NULL);
	for (size_t i = 0; i < l.n; i++) {
		Hsamem__Request req = HSAMEM__REQUEST__INIT;
		Hsamem__DeleteRequest del = HSAMEM__DELETE_REQUEST__INIT;
		req.has_version = true;
		req.version = HSAMEM_PROTOCOL_VERSION;
		req.body_case = HSAMEM__REQUEST__BODY_DELETE;
		req.delete_ = &del;
		del.user = l.name[i];
		len[i] = hsamem__request__pack(&req, buf[i]);
	}
	for (size_t i = 0; i < l.n; i++)
		start_request(&f[i], buf[i], len[i]);
	for (size_t i = 0; i < l.n; i++)
		if (wait_request(&f[i]) != 0)
			fail("wipe", "a memory could not be deleted", l.name[i]);
	free(len);
	free(buf);
	free(f);
	free(l.name);
}

static void
stop(void)
{
	char cmd[300];
	wrk_stop(d.workers);
	commit_stop(d.commit);
	gpu_free(d.cpu);
	store_close(d.store);
	acl_box_fini(&d.acl);
	conf_fini(&d.conf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "fuzz_request: cannot remove %s\n", dir);
}

/* conn.h without NNG: only the input being run has its connection open. */
bool
conn_open(uint32_t id)
{
	return id != 0 && id == conn_now;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char err[200];
	struct store_opts so = {.no_sync = true};

	snprintf(dir, sizeof(dir), "%s/hsamem-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL || conf_init(&d.conf) != 0 ||
	    conf_set(&d.conf, "workers=2", err, sizeof(err)) != 0 ||
	    conf_set(&d.conf, "cpu-threads=1", err, sizeof(err)) != 0 ||
	    conf_set(&d.conf, "max-message=4M", err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_request: cannot set up in %s\n", dir);
		exit(1);
	}
	verbose = getenv("HSAMEM_FUZZ_VERBOSE") != NULL;
	log_set_level(verbose ? LOG_INFO : LOG_CRIT); /* fuzzed requests make a lot of log */
	so.map_size = d.conf.map_size;
	so.map_max = d.conf.map_max;
	d.started_ms = now_ms();
	if (store_open(dir, &so, &d.store) != 0 || gpu_cpu_alloc(1, &d.cpu) != 0) {
		fprintf(stderr, "fuzz_request: cannot open the store in %s\n", dir);
		exit(1);
	}
	struct acl_lines admin = {d.conf.admin.v, d.conf.admin.n},
	                 allow = {d.conf.allow.v, d.conf.allow.n}, secret = {0};
	struct acl *acl;
	acl_box_init(&d.acl);
	if (acl_open(&admin, &allow, &secret, &acl, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_request: cannot open the access policy: %s\n", err);
		exit(1);
	}
	acl_box_set(&d.acl, acl);
	dispatch_init(&d.stats);
	if (commit_start(d.store, d.conf.max_batch, dispatch_apply, dispatch_reclaim,
	                 dispatch_committed, dispatch_again, &d.commit) != 0 ||
	    wrk_start(d.conf.workers, 1, dispatch_run, NULL, "hsamemd-worker", &d.workers) != 0) {
		fprintf(stderr, "fuzz_request: cannot start the workers\n");
		exit(1);
	}
	atexit(stop);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	conn_now = conn_now + 1 ? conn_now + 1 : 1;
	uid_now = size % 2 == 0 ? 0 : 65534;
	for (int i = 0; i < FUZZ_MAX_REQUESTS; i++) {
		const uint8_t *sep = memmem(p, (size_t)(end - p), FUZZ_SEP, FUZZ_SEP_LEN);
		const uint8_t *stop_at = sep != NULL ? sep : end;
		run_request(p, (size_t)(stop_at - p));
		if (sep == NULL)
			break;
		p = sep + FUZZ_SEP_LEN;
	}
	conn_now = conn_now + 1 ? conn_now + 1 : 1;
	uid_now = 0;
	wipe();
	return 0;
}
