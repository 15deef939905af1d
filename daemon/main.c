/*
 * main.c: hsamemd's start and stop. Modules start in dependency order (config, log, store, compute
 * backends, committer, workers, server) and stop in exactly the reverse order. Signals are blocked
 * in every thread and taken synchronously here: SIGHUP reloads the config file, SIGTERM and SIGINT
 * drain the requests in flight and close.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "ops.h"
#include "server.h"
#include "worker.h"

#define DRAIN_MS 10000

static void
usage(FILE *out)
{
	fprintf(out,
	        "Usage: hsamemd [OPTION]...\n"
	        "The hsamem daemon: keeps each user's token history as HSA chunk memory in LMDB\n"
	        "and answers hsamem clients over NNG. Runs in the foreground.\n"
	        "\n"
	        "  -l, --listen URL     listen on URL (ipc:// or tcp://); repeatable\n"
	        "                       (default: ipc://$RUNTIME_DIRECTORY/hsamemd.sock, else\n"
	        "                       $XDG_RUNTIME_DIR, else /tmp)\n"
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
	        "Signals: SIGHUP reloads the config file (log-level applies at once, other "
	        "settings at\n"
	        "the next start); SIGTERM and SIGINT answer the requests in flight and exit.\n"
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
		log_err("store: %s is in use by another hsamemd", dir);
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
	c->listen_explicit = false;
	for (int i = 0; i < n_sets; i++)
		if ((ret = conf_set(c, sets[i], err, sizeof(err))) != 0) {
			fprintf(stderr, "hsamemd: %s\n", err);
			conf_fini(c);
			return ret;
		}
	if (c->map_max < c->map_size) {
		fprintf(stderr, "hsamemd: map-max must be at least map-size\n");
		conf_fini(c);
		return HSAMEM_EINVAL;
	}
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
	} else {
		if (verbose)
			c.log_level = LOG_DEBUG;
		if (c.log_level != d->conf.log_level) {
			d->conf.log_level = c.log_level;
			log_set_level(c.log_level);
		}
		log_notice(
		        "conf: reloaded (settings other than log-level apply at the next start)");
		conf_fini(&c);
	}
	notify_send("READY=1");
}

int
main(int argc, char **argv)
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
	struct daemon d;
	char *conf_path = SYSCONFDIR "/hsamem.conf";
	bool path_given = false, print = false, check = false, verbose = false;
	char **sets = calloc((size_t)argc + 2, sizeof(char *));
	char *owned[64];
	int n_sets = 0, n_owned = 0, opt, status = 1, ret, lock_fd = -1;

	memset(&d, 0, sizeof(d));
	if (sets == NULL)
		return 1;
	while ((opt = getopt_long(argc, argv, "l:d:c:o:pvhV", longopts, NULL)) != -1) {
		char *s = NULL;
		switch (opt) {
		case 'l':
		case 'd':
			if (n_owned == 64 ||
			    asprintf(&s, "%s=%s", opt == 'l' ? "listen" : "state-dir", optarg) <
			            0) {
				fprintf(stderr, "hsamemd: too many options\n");
				status = 2;
				goto out_args;
			}
			owned[n_owned++] = sets[n_sets++] = s;
			break;
		case 'o': sets[n_sets++] = optarg; break;
		case 'c':
			conf_path = optarg;
			path_given = true;
			break;
		case 'p': print = true; break;
		case 'C': check = true; break;
		case 'v': verbose = true; break;
		case 'h':
			usage(stdout);
			status = 0;
			goto out_args;
		case 'V':
			printf("hsamemd %s (protocol %d, store format %d)\n", PACKAGE_VERSION,
			       HSAMEM_PROTOCOL_VERSION, STORE_FORMAT_VERSION);
			status = 0;
			goto out_args;
		default:
			usage(stderr);
			status = 2;
			goto out_args;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hsamemd: unexpected argument '%s'\n", argv[optind]);
		status = 2;
		goto out_args;
	}
	if (load_config(&d.conf, conf_path, path_given, sets, n_sets) != 0) {
		status = 2;
		goto out_args;
	}
	d.conf_path = conf_path;
	if (verbose)
		d.conf.log_level = LOG_DEBUG;
	if (print || check) {
		if (print)
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
	signal(SIGPIPE, SIG_IGN);

	if ((ret = mkdir_p(d.conf.state_dir)) != 0) {
		log_err("store: cannot create %s: %s", d.conf.state_dir, strerror(-ret));
		goto out_conf;
	}
	if ((lock_fd = lock_state_dir(d.conf.state_dir)) < 0)
		goto out_conf;
	struct store_opts so = {.map_size = d.conf.map_size, .map_max = d.conf.map_max};
	if ((ret = store_open(d.conf.state_dir, &so, &d.store)) != 0) {
		log_err("store: cannot open %s: %s", d.conf.state_dir, hsamem_strerror(ret));
		goto out_conf;
	}
	if ((ret = ops_cleanup_imports(&d)) != 0) {
		log_err("store: cannot remove unfinished imports: %s", hsamem_strerror(ret));
		goto out_store;
	}
	if ((ret = gpu_cpu_alloc(d.conf.cpu_threads, &d.cpu)) != 0) {
		log_err("cpu: cannot start the CPU backend: %s", hsamem_strerror(ret));
		goto out_store;
	}
	start_gpu(&d);
	if ((ret = commit_start(&d, d.conf.max_batch, &d.commit)) != 0) {
		log_err("commit: cannot start: %s", hsamem_strerror(ret));
		goto out_backends;
	}
	if ((ret = wrk_start(d.conf.workers, ops_run, &d.workers)) != 0) {
		log_err("workers: cannot start: %s", hsamem_strerror(ret));
		goto out_commit;
	}
	if ((ret = srv_start(&d, &d.server)) != 0)
		goto out_workers;

	log_notice("hsamemd %s ready: state in %s, %u workers", PACKAGE_VERSION, d.conf.state_dir,
	           d.conf.workers);
	notify_send("READY=1");
	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(&d, path_given, verbose, sets, n_sets);
			continue;
		}
		log_notice("hsamemd: %s received; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	}
	notify_send("STOPPING=1");
	status = 0;
	/* Answer what is in flight, let the workers and the committer finish every job they hold,
	 * and only then take the contexts away. */
	srv_drain(d.server, DRAIN_MS);
out_workers:
	wrk_stop(d.workers);
out_commit:
	commit_stop(d.commit);
	srv_close(d.server);
out_backends:
	gpu_free(d.gpu);
	gpu_free(d.cpu);
out_store:
	store_close(d.store);
	if (status == 0)
		log_notice("hsamemd: stopped");
out_conf:
	if (lock_fd >= 0)
		close(lock_fd);
	conf_fini(&d.conf);
out_args:
	for (int i = 0; i < n_owned; i++)
		free(owned[i]);
	free(sets);
	return status;
}
