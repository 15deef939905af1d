/*
 * main.c: hsamemd's start and stop. Modules start in dependency order and stop in exactly the
 * reverse order, on failure as after a clean stop (one ladder in main):
 *
 *   start                                       stop
 *   config                                      conf_fini
 *   access policy (acl_open, into d.acl)        acl_box_fini
 *   log level, signal mask                      -
 *   state directory lock                        close
 *   store (and the cleanup of lost imports)     store_close
 *   word indexes (words_new: empty)             words_free
 *   CPU backend                                 gpu_free(cpu)
 *   CUDA backend, when usable                   gpu_free(gpu)
 *   encoders' files (enc_load: model-dir)       enc_unload    (a failure is logged, not fatal)
 *   the operations' statistics (dispatch_init)  -
 *   server: socket and contexts (srv_open)      srv_close     (the contexts hold the jobs)
 *   committer                                   commit_stop   (applies what is queued)
 *   workers                                     wrk_stop      (run what is queued)
 *   server: listen and receive (srv_start)      srv_stop      (answers what is in flight)
 *   listener watchdog (wd_start)                wd_stop       (bounded, as srv_close)
 *
 * A second daemon never disturbs a first: on the same state directory the lock refuses it before
 * anything else; on the same ipc:// path srv_start asks the path with a full handshake and a ping
 * and refuses. srv_close waits a bounded time for NNG (nng_close can hang in NNG 1.5); when it
 * gives up, every acknowledged request is durable already (the committer has stopped), the rest
 * of the ladder runs, and the process leaves with _exit() past NNG's threads. Whatever else a
 * stop might wait on, it has STOP_LIMIT_MS from the signal (stop_deadline) before the process
 * leaves as it stands.
 *
 * Signals are blocked in every thread and taken synchronously here: SIGHUP reloads the config
 * file, SIGTERM and SIGINT drain the requests in flight and close. Threads that libraries start
 * before main (OpenBLAS starts its pool in a constructor) do not block them, and the kernel may
 * hand them such a signal while main is not waiting for one; their default action would kill
 * the daemon, so a handler there passes the signal on to main (forward_signal).
 */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "backend.h"
#include "commit.h"
#include "config.h"
#include "daemon.h"
#include "dispatch.h"
#include "encoder.h"
#include "job.h"
#include "log.h"
#include "metrics_http.h"
#include "notify.h"
#include "ops.h"
#include "server.h"
#include "store.h"
#include "watch.h"
#include "words.h"
#include "worker.h"

/* A stop's budget after SIGTERM: the requests in flight get DRAIN_MS to be answered, and the
 * whole stop STOP_LIMIT_MS, past which the process leaves whatever it still waits for
 * (stop_deadline). systemd, and anything that restarts the daemon, waits no longer than that. */
#define DRAIN_MS      2500
#define STOP_LIMIT_MS 4500

/* The stop's deadline, from the signal on. Every acknowledged request is durable at any moment
 * (a write is answered after its commit), so leaving now loses nothing that was acknowledged:
 * what is cut short is what a SIGKILL would cut, and the next start finishes it (an erasure
 * owed) or undoes it (an unfinished import), as after a crash. */
static void *
stop_deadline(void *arg)
{
	(void)arg;
	struct timespec left = {STOP_LIMIT_MS / 1000, (long)(STOP_LIMIT_MS % 1000) * 1000000};
	while (nanosleep(&left, &left) != 0 && errno == EINTR)
		;
	log_warn("hsamemd: not stopped within %d ms of the signal; leaving now (every acknowledged "
	         "request is durable)",
	         STOP_LIMIT_MS);
	_exit(0);
	return NULL;
}

static void
start_stop_deadline(void)
{
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, stop_deadline, NULL) != 0)
		log_warn("hsamemd: cannot start the stop's deadline; the stop is not bounded");
	pthread_attr_destroy(&attr);
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "Usage: hsamemd [OPTION]...\n"
	        "The hsamem daemon: keeps each user's token history as HSA chunk memory in LMDB\n"
	        "and answers hsamem clients over NNG. Runs in the foreground.\n"
	        "\n"
	        "  -l, --listen URL     listen on URL: ipc://, tcp:// (with a secret) or\n"
	        "                       tls+tcp://; repeatable (default:\n"
	        "                       ipc://$RUNTIME_DIRECTORY/hsamemd.sock, else in\n"
	        "                       $XDG_RUNTIME_DIR, else in a private /tmp/hsamem-UID)\n"
	        "  -d, --state-dir DIR  keep the store in DIR (default: $STATE_DIRECTORY, else\n"
	        "                       $XDG_STATE_HOME/hsamem, else ~/.local/state/hsamem)\n"
	        "  -c, --config FILE    read settings from FILE (default: %s, if present)\n"
	        "  -o KEY=VALUE         set one setting; wins over the file; repeatable\n"
	        "  -p, --print-config   print the effective settings and exit\n"
	        "      --check-config   check the settings and exit\n"
	        "  -v, --verbose        log at debug level\n"
	        "  -h, --help           print this help and exit\n"
	        "  -V, --version        print the version and exit\n"
	        "\n"
	        "Signals: SIGHUP reloads the config file (log-level and the access policy\n"
	        "apply at once, other settings at the next start); SIGTERM and SIGINT answer\n"
	        "the requests in flight and exit.\n"
	        "Exit status: 0 after a clean stop, 1 when the daemon could not start or failed,\n"
	        "2 for a usage or configuration error. See hsamemd(8) and hsamem.conf(5).\n",
	        SYSCONFDIR "/hsamem.conf");
}

/* Creates dir and its parents, mode 0700 for what it creates. */
static int
mkdir_p(const char *dir)
{
	char path[4096];
	if (strlen(dir) >= sizeof(path))
		return -ENAMETOOLONG;
	strcpy(path, dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Takes the state directory for this process: a second daemon on the same store would break the
 * single-writer rule the committer relies on. The lock lives as long as the descriptor.
 */
static int
lock_state_dir(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/hsamemd.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_err("store: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		log_err("store: %s is in use by another hsamemd; not starting a second one on it",
		        dir);
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads the config: defaults, then the file, then the command line. */
static int
load_config(struct conf *c, const char *path, bool path_given, char **sets, int n_sets)
{
	char err[600];
	int ret = conf_init(c);
	if (ret != 0)
		return ret;
	if (path != NULL && (path_given || access(path, F_OK) == 0) &&
	    (ret = conf_load(c, path, err, sizeof(err))) != 0) {
		fprintf(stderr, "hsamemd: %s\n", err);
		conf_fini(c);
		return ret;
	}
	/* an address given on the command line replaces the file's, as every other setting does */
	conf_next_layer(c);
	for (int i = 0; i < n_sets; i++)
		if ((ret = conf_set(c, sets[i], err, sizeof(err))) != 0) {
			fprintf(stderr, "hsamemd: %s\n", err);
			conf_fini(c);
			return ret;
		}
	if ((ret = conf_check(c, err, sizeof(err))) != 0) {
		fprintf(stderr, "hsamemd: %s\n", err);
		conf_fini(c);
		return ret;
	}
	return 0;
}

/* Opens the access policy of c (reading its secret files) into the daemon's box. */
static int
load_policy(struct daemon *d, const struct conf *c)
{
	struct acl_lines admin = {c->admin.v, c->admin.n}, allow = {c->allow.v, c->allow.n},
	                 secret = {c->secret.v, c->secret.n};
	char err[600];
	struct acl *acl;
	int ret = acl_open(&admin, &allow, &secret, &acl, err, sizeof(err));
	if (ret != 0) {
		log_err("acl: %s", err);
		return ret;
	}
	acl_box_set(&d->acl, acl);
	return 0;
}

static void
start_gpu(struct daemon *d)
{
	char desc[256];
	if (d->conf.gpu == -2) {
		log_info("gpu: disabled by configuration (gpu = off)");
		return;
	}
	int n = gpu_cuda_probe(desc, sizeof(desc));
	if (n <= 0) {
		log_info("gpu: no usable CUDA device (%s); serving on the CPU", desc);
		return;
	}
	struct gpu_cuda_opts o = {
	        .device = d->conf.gpu >= 0 ? d->conf.gpu : 0,
	        .mem_budget = d->conf.gpu_memory,
	        .host_cache = d->conf.host_cache,
	        .cpu = d->cpu,
	};
	int ret = gpu_cuda_alloc(&o, &d->gpu);
	if (ret != 0) {
		log_warn("gpu: CUDA device %d not usable (%s); serving on the CPU", o.device,
		         hsamem_strerror(ret));
		return;
	}
	atomic_store(&d->gpu_ok, true);
	log_info("gpu: serving on CUDA device %d: %s", o.device, desc);
}

static void
reload(struct daemon *d, bool path_given, bool verbose, char **sets, int n_sets)
{
	struct conf c;
	notify_send("RELOADING=1");
	if (load_config(&c, d->conf_path, path_given, sets, n_sets) != 0) {
		log_err("conf: reload failed; keeping the running settings");
	} else if (load_policy(d, &c) != 0) {
		log_err("conf: reload failed; keeping the running settings");
		conf_fini(&c);
	} else {
		if (verbose)
			c.log_level = LOG_DEBUG;
		if (c.log_level != d->conf.log_level) {
			d->conf.log_level = c.log_level;
			log_set_level(c.log_level);
		}
		log_notice("conf: reloaded (log-level, admin, allow and secret apply at once, "
		           "other settings at the next start)");
		conf_fini(&c);
	}
	notify_send("READY=1");
}

/* The command line: settings (-o, and -l and -d turned into settings) in the order given. */
struct args {
	char *conf_path;
	bool path_given, print, check, verbose;
	char **sets;
	int n_sets;
	char *owned[64]; /* the settings made here from -l and -d */
	int n_owned;
};

static void
args_fini(struct args *a)
{
	for (int i = 0; i < a->n_owned; i++)
		free(a->owned[i]);
	free(a->sets);
}

/* Loads hsa-small's model folder. Without it the daemon serves every other memory; requests that
 * need the model are answered HSAMEM_EENCODER with the reason logged here. With the CUDA backend
 * up, the model runs on the same device (the CPU when that fails). */
static void
load_encoders(struct daemon *d)
{
	char why[600];
	const struct enc_ops *enc = enc_find("hsa-small");
	if (enc_load(d->conf.model_dir, why, sizeof(why)) != 0) {
		log_warn("%s; its memories are refused until hsamemd restarts with a working "
		         "model-dir",
		         why);
		return;
	}
	if (enc != NULL)
		log_info("encoder hsa-small: revision %u loaded from %s (CPU kernels: OpenBLAS %s)",
		         enc->revision, d->conf.model_dir, enc_cpu_kernels());
	if (!atomic_load(&d->gpu_ok))
		return;
	int dev = d->conf.gpu >= 0 ? d->conf.gpu : 0;
	if (enc_use_gpu(dev, why, sizeof(why)) != 0)
		log_warn("encoder hsa-small: stays on the CPU: %s", why);
	else
		log_info("encoder hsa-small: runs on CUDA device %d", dev);
}

/* Returns -1 to go on, or the exit status (0 after --help or --version, 2 for a usage error). */
static int
args_parse(struct args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"listen", required_argument, NULL, 'l'},
	        {"state-dir", required_argument, NULL, 'd'},
	        {"config", required_argument, NULL, 'c'},
	        {"print-config", no_argument, NULL, 'p'},
	        {"check-config", no_argument, NULL, 'C'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	int opt;

	memset(a, 0, sizeof(*a));
	a->conf_path = SYSCONFDIR "/hsamem.conf";
	if ((a->sets = calloc((size_t)argc + 2, sizeof(char *))) == NULL)
		return 1;
	while ((opt = getopt_long(argc, argv, "l:d:c:o:pvhV", longopts, NULL)) != -1) {
		char *s = NULL;
		switch (opt) {
		case 'l':
		case 'd':
			if (a->n_owned == 64 ||
			    asprintf(&s, "%s=%s", opt == 'l' ? "listen" : "state-dir", optarg) <
			            0) {
				fprintf(stderr, "hsamemd: too many options\n");
				return 2;
			}
			a->owned[a->n_owned++] = a->sets[a->n_sets++] = s;
			break;
		case 'o': a->sets[a->n_sets++] = optarg; break;
		case 'c':
			a->conf_path = optarg;
			a->path_given = true;
			break;
		case 'p': a->print = true; break;
		case 'C': a->check = true; break;
		case 'v': a->verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V':
			printf("hsamemd %s (protocol %d, store format %d)\n", PACKAGE_VERSION,
			       HSAMEM_PROTOCOL_VERSION, STORE_FORMAT_VERSION);
			return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hsamemd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return -1;
}

static pthread_t main_thread;

/* Runs only in a thread that does not block the signal: main takes it from there. */
static void
forward_signal(int sig)
{
	int saved = errno;
	pthread_kill(main_thread, sig);
	errno = saved;
}

/* Takes the signals until SIGTERM or SIGINT; SIGHUP reloads the config. */
static void
serve(struct daemon *d, const struct args *a, sigset_t *sigs)
{
	for (;;) {
		int sig;
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(d, a->path_given, a->verbose, a->sets, a->n_sets);
			continue;
		}
		log_notice("hsamemd: %s received; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
		return;
	}
}

int
main(int argc, char **argv)
{
	struct daemon d;
	struct args a;
	int status = 1, ret, lock_fd = -1;
	struct watchdog *wd = NULL;
	struct metrics_http *metrics = NULL;
	bool abandoned = false; /* wd_stop or srv_close gave up on NNG */

	/* Blocks of 1 MiB or more (request messages, their decoding) get pages of their own, given
	 * back when freed. glibc would otherwise raise this threshold after the first such free and
	 * serve later large blocks from its heaps, where a few long-lived small blocks beside them
	 * keep them resident: sixteen large requests at once left tens of MiB behind. */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	enc_prepare_cpu(argv);
	memset(&d, 0, sizeof(d));
	acl_box_init(&d.acl);
	if ((ret = args_parse(&a, argc, argv)) >= 0) {
		status = ret;
		goto out_args;
	}
	if (load_config(&d.conf, a.conf_path, a.path_given, a.sets, a.n_sets) != 0) {
		status = 2;
		goto out_args;
	}
	d.conf_path = a.conf_path;
	if (a.verbose)
		d.conf.log_level = LOG_DEBUG;
	if (!a.print && load_policy(&d, &d.conf) != 0) {
		status = 2;
		goto out_conf;
	}
	if (a.print || a.check) {
		if (a.print)
			conf_print(&d.conf, stdout);
		else
			printf("hsamemd: configuration is valid\n");
		status = 0;
		goto out_conf;
	}
	log_set_level(d.conf.log_level);
	d.started_ms = now_ms();

	/* Every thread created from here on inherits this mask; main takes the signals. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	main_thread = pthread_self();
	struct sigaction fwd = {.sa_handler = forward_signal, .sa_flags = SA_RESTART};
	sigfillset(&fwd.sa_mask);
	sigaction(SIGTERM, &fwd, NULL);
	sigaction(SIGINT, &fwd, NULL);
	sigaction(SIGHUP, &fwd, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* a file size limit (RLIMIT_FSIZE) fails the write (EFBIG) instead of killing the daemon */
	signal(SIGXFSZ, SIG_IGN);

	if ((ret = mkdir_p(d.conf.state_dir)) != 0) {
		log_err("store: cannot create %s: %s", d.conf.state_dir, strerror(-ret));
		goto out_conf;
	}
	if ((lock_fd = lock_state_dir(d.conf.state_dir)) < 0)
		goto out_conf;
	struct store_opts so = {.map_size = d.conf.map_size, .map_max = d.conf.map_max};
	if ((ret = store_open(d.conf.state_dir, &so, &d.store)) != 0) {
		log_err("store: cannot open %s: %s", d.conf.state_dir, hsamem_strerror(ret));
		goto out_lock;
	}
	if ((ret = ops_import_cleanup(d.store)) != 0 && store_full(ret)) {
		/* they stay hidden, and a delete removes them: no reason not to serve */
		log_warn("store: no room to remove unfinished imports and deletes; a delete of "
		         "their users removes them");
	} else if (ret != 0) {
		log_err("store: cannot remove unfinished imports: %s", hsamem_strerror(ret));
		goto out_store;
	}
	/* finishes an erasure that the last run owed (a stop right after a delete), and erases the
	 * imports just removed; one held back or failed is retried after later writes */
	store_erase(d.store, true);
	if ((d.words = words_new()) == NULL) {
		log_err("hsamemd: out of memory");
		goto out_store;
	}
	if ((ret = gpu_cpu_alloc(d.conf.cpu_threads, &d.cpu)) != 0) {
		log_err("cpu: cannot start the CPU backend: %s", hsamem_strerror(ret));
		goto out_words;
	}
	start_gpu(&d);
	load_encoders(&d);
	dispatch_init(&d.stats);
	if ((ret = audit_start(&d.conf, &d.audit)) != 0) {
		log_err("audit: cannot start: %s", hsamem_strerror(ret));
		goto out_gpu;
	}
	if ((ret = srv_open(&d, &d.server)) != 0)
		goto out_audit;
	if ((ret = commit_start(d.store, d.conf.max_batch, dispatch_apply, dispatch_reclaim,
	                        dispatch_committed, dispatch_again, &d.commit)) != 0) {
		log_err("commit: cannot start: %s", hsamem_strerror(ret));
		goto out_server;
	}
	if ((ret = wrk_start(d.conf.workers, 1, dispatch_run, NULL, "hsamemd-worker",
	                     &d.workers)) != 0) {
		log_err("workers: cannot start: %s", hsamem_strerror(ret));
		goto out_commit;
	}
	if ((ret = srv_start(d.server)) != 0)
		goto out_workers;
	if ((ret = wd_start(d.server, &d.conf, &wd)) != 0) {
		log_err("server: cannot start the listener watchdog: %s", hsamem_strerror(ret));
		goto out_listen;
	}
	if (d.conf.metrics_listen != NULL && metrics_http_start(&d, &metrics) != 0)
		goto out_watch;

	log_notice("hsamemd %s ready: state in %s, %u workers", PACKAGE_VERSION, d.conf.state_dir,
	           d.conf.workers);
	notify_send("READY=1");
	serve(&d, &a, &sigs);
	start_stop_deadline();
	notify_send("STOPPING=1");
	status = 0;
	metrics_http_stop(metrics);
out_watch:
	/* a watchdog caught in NNG still uses the server: it is then left open, as below */
	abandoned = wd_stop(wd) != 0;
out_listen:
	srv_stop(d.server, DRAIN_MS);
out_workers:
	wrk_stop(d.workers);
out_commit:
	commit_stop(d.commit);
out_server:
	abandoned = abandoned || srv_close(d.server) != 0;
out_audit:
	/* a thread NNG still holds may yet finish a job, which audits it */
	if (!abandoned)
		audit_stop(d.audit);
out_gpu:
	enc_unload();
	gpu_free(d.gpu);
	gpu_free(d.cpu);
out_words:
	/* (a thread NNG still holds may yet run a query) */
	if (!abandoned)
		words_free(d.words);
out_store:
	store_close(d.store);
	if (status == 0)
		log_notice("hsamemd: stopped");
out_lock:
	close(lock_fd);
out_conf:
	conf_fini(&d.conf);
out_args:
	acl_box_fini(&d.acl);
	args_fini(&a);
	if (abandoned) {
		/* a thread may still be inside nng_close: leave without running the libraries'
		 * destructors and atexit handlers under it */
		fflush(NULL);
		_exit(status);
	}
	return status;
}
