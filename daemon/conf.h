/*
 * conf.h: hsamemd's configuration. One table of typed settings with ranges (conf.c); the same keys
 * are read from hsamem.conf ("key = value" lines, '#' comments) and from -o key=value, the latter
 * winning. Repeating `listen` adds an address.
 */
#ifndef HSAMEM_CONF_H
#define HSAMEM_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_LISTEN_MAX 8
#define CONF_LIST_MAX   64

/* A repeatable setting other than listen: its lines as given, in order. The first line of a
 * layer (the file, then the command line) replaces what came before (the default, the file). */
struct conf_list {
	char *v[CONF_LIST_MAX];
	unsigned n;
	bool explicit; /* a line of this layer was set */
};

struct conf {
	char *listen[CONF_LISTEN_MAX];
	unsigned n_listen;
	bool listen_explicit; /* an address was set: the default is gone */
	char *state_dir;
	unsigned workers;      /* request worker threads */
	unsigned contexts;     /* requests in flight per socket */
	uint64_t max_message;  /* bytes of one request or reply */
	uint64_t max_entry;    /* bytes of one entry's text */
	uint64_t max_inflight; /* bytes held by requests in flight; 0: conf_max_inflight() */
	unsigned max_batch;    /* appends in one group commit */
	int log_level;
	int gpu;              /* -1 auto, -2 off, else the device ordinal */
	uint64_t gpu_memory;  /* device bytes for the CUDA backend; 0: 80% of free */
	uint64_t host_cache;  /* pinned host bytes for the chunk cache */
	unsigned cpu_threads; /* CPU backend threads; 0: one per CPU */
	uint64_t map_size;    /* initial LMDB map size */
	uint64_t map_max;     /* largest LMDB map size */
	uint64_t backup_rate; /* bytes a second a backup writes at most; 0: as fast as it can */
	unsigned socket_mode; /* permissions of ipc:// sockets */
	/* the access policy (acl.h): who administers, who may use which memories, and the shared
	 * secrets of tcp:// clients ("NAME FILE") */
	struct conf_list admin, allow, secret;
	char *tls_cert, *tls_key, *tls_ca; /* tls+tcp:// listeners; NULL: unset */
	char *model_dir;                   /* the model folder of the hsa-small encoder */
	/* operations (hsamemd(8), METRICS and AUDIT): the Prometheus endpoint (NULL: off), whether
	 * it may listen beyond loopback, the slow-request threshold (0: off), and how often the
	 * audit trail summarises appends */
	char *metrics_listen;
	bool metrics_remote;
	unsigned slow_request_ms;
	unsigned audit_interval;
};

/* Fills c with the defaults (the default listen address and state directory follow the
 * environment: see hsamemd(8)). Returns 0 or -ENOMEM. */
int conf_init(struct conf *c);
void conf_fini(struct conf *c);

/* Applies one "key=value" (or "key = value") setting. Returns 0, or HSAMEM_EINVAL with a message
 * naming the key written to err. */
int conf_set(struct conf *c, const char *setting, char *err, size_t err_len);

/* Starts the next layer of settings (the command line after the file): the first `listen`,
 * `admin`, `allow` or `secret` of the new layer replaces those of the earlier ones. */
void conf_next_layer(struct conf *c);

/* Checks what no single setting can: every tcp:// address needs a secret, every tls+tcp://
 * address tls-cert, tls-key and tls-ca; map-max is at least map-size;
 * max-inflight at least twice max-message. Returns 0, or
 * HSAMEM_EINVAL with the reason written to err. */
int conf_check(const struct conf *c, char *err, size_t err_len);

/*
 * Checks a metrics-listen address: http://HOST:PORT/PATH with a numeric IPv4 or IPv6 host (no
 * name, which would be resolved) and a path; unless remote, the host must be a loopback address.
 * Returns 0, or HSAMEM_EINVAL with the reason written to err.
 */
int conf_check_metrics(const char *url, bool remote, char *err, size_t err_len);

/* The effective max-inflight: as set, or 1 GiB or twice max-message, whichever is more. */
uint64_t conf_max_inflight(const struct conf *c);

/* Reads a config file; err names the file and line of the first bad setting. */
int conf_load(struct conf *c, const char *path, char *err, size_t err_len);

/* Prints the effective configuration in the config file's syntax. */
void conf_print(const struct conf *c, FILE *out);

#endif
