/*
 * conf.c: the settings table and its parsers. Every setting has one parser that checks its range,
 * so a bad value is refused with the key named, whether it came from the file or from -o. This file
 * only parses and prints; applying a setting is the job of the module that owns it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "conf.h"
#include "hsamem_defs.h"
#include "log.h"
#include "sockdir.h"

#ifndef HSAMEM_PKGDATADIR
#define HSAMEM_PKGDATADIR "/usr/share/hsamem"
#endif

enum conf_type {
	T_LISTEN,
	T_STRING,
	T_PATH,
	T_UINT,
	T_SIZE,
	T_LEVEL,
	T_GPU,
	T_MODE,
	T_LIST,
	T_OFFSTR, /* a string, or off (NULL) */
	T_BOOL,
	T_MSEC, /* a duration: N, Nms or Ns; off or 0: none */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	size_t offset;
	uint64_t min, max; /* T_UINT, T_SIZE; for T_LIST, min is the line's enum acl_line */
};

#define F(m) offsetof(struct conf, m)
static const struct conf_key keys[] = {
        {"listen", T_LISTEN, F(listen), 0, 0},
        {"state-dir", T_STRING, F(state_dir), 0, 0},
        {"workers", T_UINT, F(workers), 1, 256},
        {"contexts", T_UINT, F(contexts), 1, 4096},
        {"max-message", T_SIZE, F(max_message), 64 << 10, 1ull << 31},
        {"max-entry", T_SIZE, F(max_entry), 1, 64 << 20},
        {"max-inflight", T_SIZE, F(max_inflight), 1 << 20, 1ull << 40},
        {"max-batch", T_UINT, F(max_batch), 1, 65536},
        {"log-level", T_LEVEL, F(log_level), 0, 0},
        {"gpu", T_GPU, F(gpu), 0, 0},
        {"gpu-memory", T_SIZE, F(gpu_memory), 0, 1ull << 50},
        {"host-cache", T_SIZE, F(host_cache), 0, 1ull << 50},
        {"cpu-threads", T_UINT, F(cpu_threads), 0, 1024},
        {"map-size", T_SIZE, F(map_size), 1 << 20, 1ull << 50},
        {"map-max", T_SIZE, F(map_max), 1 << 20, 1ull << 50},
        {"backup-rate", T_SIZE, F(backup_rate), 0, 1ull << 40},
        {"socket-mode", T_MODE, F(socket_mode), 0, 0777},
        {"admin", T_LIST, F(admin), ACL_LINE_ADMIN, 0},
        {"allow", T_LIST, F(allow), ACL_LINE_ALLOW, 0},
        {"secret", T_LIST, F(secret), ACL_LINE_SECRET, 0},
        {"tls-cert", T_PATH, F(tls_cert), 0, 0},
        {"tls-key", T_PATH, F(tls_key), 0, 0},
        {"tls-ca", T_PATH, F(tls_ca), 0, 0},
        {"model-dir", T_PATH, F(model_dir), 0, 0},
        {"metrics-listen", T_OFFSTR, F(metrics_listen), 0, 0},
        {"metrics-allow-remote", T_BOOL, F(metrics_remote), 0, 0},
        {"slow-request", T_MSEC, F(slow_request_ms), 0, 3600000},
        {"audit-interval", T_UINT, F(audit_interval), 1, 3600},
};
#undef F

static const char *const level_names[] = {"emerg",   "alert",  "crit", "err",
                                          "warning", "notice", "info", "debug"};

/* The default state directory (malloc'd, or NULL). */
static char *
conf_default_state_dir(void)
{
	const char *dir = getenv("STATE_DIRECTORY");
	char *out = NULL;
	if (dir != NULL && *dir != '\0')
		return strndup(dir, strcspn(dir, ":"));
	if ((dir = getenv("XDG_STATE_HOME")) != NULL && *dir != '\0') {
		if (asprintf(&out, "%s/hsamem", dir) < 0)
			return NULL;
		return out;
	}
	if ((dir = getenv("HOME")) != NULL && *dir != '\0') {
		if (asprintf(&out, "%s/.local/state/hsamem", dir) < 0)
			return NULL;
		return out;
	}
	return strdup("/var/lib/hsamem");
}

/*
 * The default model folder of hsa-small (malloc'd, or NULL): the installed copy under the data
 * directory; but a daemon run from its build tree (its executable lies under the build directory
 * configure recorded) uses the source tree's models/, so that it runs before `make install` and
 * never with another build's model.
 */
static char *
conf_default_model_dir(void)
{
#if defined(HSAMEM_BUILDDIR) && defined(HSAMEM_SRCDIR)
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t b = strlen(HSAMEM_BUILDDIR);
	if (n > 0) {
		exe[n] = '\0';
		if (strncmp(exe, HSAMEM_BUILDDIR, b) == 0 && exe[b] == '/')
			return strdup(HSAMEM_SRCDIR "/models/hsa-small");
	}
#endif
	return strdup(HSAMEM_PKGDATADIR "/models/hsa-small");
}

int
conf_init(struct conf *c)
{
	char listen[512];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	memset(c, 0, sizeof(*c));
	if (sockdir_default_url(listen, sizeof(listen)) != 0)
		return HSAMEM_EINVAL;
	c->listen[0] = strdup(listen);
	c->n_listen = 1;
	c->state_dir = conf_default_state_dir();
	c->model_dir = conf_default_model_dir();
	c->workers = cpus < 2 ? 4 : (unsigned)(cpus * 2 > 64 ? 64 : cpus * 2);
	c->contexts = 128;
	c->max_message = 64 << 20;
	c->max_entry = 1 << 20;
	c->max_inflight = 0; /* conf_max_inflight() */
	c->max_batch = 1024;
	c->log_level = LOG_INFO;
	c->gpu = -1;
	c->gpu_memory = 0;
	c->host_cache = 1ull << 30;
	c->cpu_threads = 0;
	c->map_size = 1ull << 30;
	c->map_max = 1ull << 40;
	c->backup_rate = 400ull << 20;
	c->socket_mode = 0660;
	c->slow_request_ms = 100;
	c->audit_interval = 10;
	c->admin.v[0] = strdup(ACL_DEFAULT_ADMIN);
	c->allow.v[0] = strdup(ACL_DEFAULT_ALLOW);
	c->admin.n = c->allow.n = 1;
	if (c->listen[0] == NULL || c->state_dir == NULL || c->model_dir == NULL ||
	    c->admin.v[0] == NULL || c->allow.v[0] == NULL) {
		conf_fini(c);
		return -ENOMEM;
	}
	return 0;
}

void
conf_fini(struct conf *c)
{
	struct conf_list *lists[] = {&c->admin, &c->allow, &c->secret};
	for (unsigned i = 0; i < c->n_listen; i++)
		free(c->listen[i]);
	for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++)
		for (unsigned i = 0; i < lists[l]->n; i++)
			free(lists[l]->v[i]);
	free(c->state_dir);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	free(c->model_dir);
	free(c->metrics_listen);
	memset(c, 0, sizeof(*c));
}

void
conf_next_layer(struct conf *c)
{
	c->listen_explicit = false;
	c->admin.explicit = c->allow.explicit = c->secret.explicit = false;
}

uint64_t
conf_max_inflight(const struct conf *c)
{
	if (c->max_inflight != 0)
		return c->max_inflight;
	return 2 * c->max_message > (1ull << 30) ? 2 * c->max_message : 1ull << 30;
}

/* Whether url is of one of the tcp transports; *tls tells whether it is tls+tcp. */
static bool
is_tcp(const char *url, bool *tls)
{
	*tls = strncmp(url, "tls+", 4) == 0;
	if (*tls)
		url += 4;
	return strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tcp4://", 7) == 0 ||
	       strncmp(url, "tcp6://", 7) == 0;
}

int
conf_check(const struct conf *c, char *err, size_t err_len)
{
	bool tls;
	if (c->map_max < c->map_size) {
		snprintf(err, err_len, "map-max must be at least map-size");
		return HSAMEM_EINVAL;
	}
	if (c->max_inflight != 0 && c->max_inflight < 2 * c->max_message) {
		snprintf(err, err_len,
		         "max-inflight must be at least twice max-message, or a request of "
		         "max-message bytes could never be taken");
		return HSAMEM_EINVAL;
	}
	for (unsigned i = 0; i < c->n_listen; i++) {
		if (!is_tcp(c->listen[i], &tls))
			continue;
		if (tls && (c->tls_cert == NULL || c->tls_key == NULL || c->tls_ca == NULL)) {
			snprintf(err, err_len,
			         "listen %s: a tls+tcp:// address needs tls-cert, tls-key and "
			         "tls-ca (the authority of the client certificates)",
			         c->listen[i]);
			return HSAMEM_EINVAL;
		}
		if (!tls && c->secret.n == 0) {
			snprintf(err, err_len,
			         "listen %s: a tcp:// address needs a shared secret (secret = NAME "
			         "FILE), or use tls+tcp:// with client certificates",
			         c->listen[i]);
			return HSAMEM_EINVAL;
		}
	}
	if (c->metrics_listen != NULL)
		return conf_check_metrics(c->metrics_listen, c->metrics_remote, err, err_len);
	return 0;
}

int
conf_check_metrics(const char *url, bool remote, char *err, size_t err_len)
{
	char host[INET6_ADDRSTRLEN + 2];
	unsigned char addr[sizeof(struct in6_addr)];
	const char *h = url + 7, *end;
	bool v6 = *h == '[';
	uint64_t port;

	if (strncmp(url, "http://", 7) != 0)
		goto bad;
	end = v6 ? strchr(h, ']') : strchr(h, ':');
	if (end == NULL || (size_t)(end - h) >= sizeof(host))
		goto bad;
	memcpy(host, h + v6, (size_t)(end - h - v6));
	host[end - h - v6] = '\0';
	end += v6;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1 || *end != ':' ||
	    !isdigit((unsigned char)end[1]))
		goto bad;
	port = strtoull(end + 1, (char **)&end, 10);
	if (port == 0 || port > 65535 || *end != '/')
		goto bad;
	/* The endpoint answers anyone who connects, without the access policy, and names every
	 * memory: beyond loopback it would show them to the network. */
	if (!remote && (v6 ? memcmp(addr, &in6addr_loopback, sizeof(in6addr_loopback)) != 0
	                   : addr[0] != 127)) {
		snprintf(err, err_len,
		         "metrics-listen %s: not a loopback address; the metrics name every memory "
		         "and are served to whoever connects, so set metrics-allow-remote = yes to "
		         "serve them beyond this host",
		         url);
		return HSAMEM_EINVAL;
	}
	return 0;
bad:
	snprintf(err, err_len,
	         "metrics-listen %s: expected http://ADDRESS:PORT/PATH with a numeric IPv4 or "
	         "[IPv6] address, e.g. http://127.0.0.1:9464/metrics",
	         url);
	return HSAMEM_EINVAL;
}

/* "64M", "1G", "4096": bytes, with binary suffixes K, M, G, T (an optional "iB" or "B" follows). */
static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *s == '-')
		return -1;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		shift = 10;
		end++;
		break;
	case 'M':
		shift = 20;
		end++;
		break;
	case 'G':
		shift = 30;
		end++;
		break;
	case 'T':
		shift = 40;
		end++;
		break;
	}
	if (shift != 0 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int
parse_uint(const char *s, int base, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno != 0 || end == s || *end != '\0' || *s == '-')
		return -1;
	*out = v;
	return 0;
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
bad(char *err, size_t len, const char *key, const char *why)
{
	snprintf(err, len, "%s: %s", key, why);
	return HSAMEM_EINVAL;
}

int
conf_set(struct conf *c, const char *setting, char *err, size_t err_len)
{
	char buf[1024];
	if (strlen(setting) >= sizeof(buf))
		return bad(err, err_len, "setting", "too long");
	strcpy(buf, setting);
	char *eq = strchr(buf, '=');
	if (eq == NULL)
		return bad(err, err_len, trim(buf), "expected key = value");
	*eq = '\0';
	char *key = trim(buf), *val = trim(eq + 1);
	const struct conf_key *k = NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, key) == 0)
			k = &keys[i];
	if (k == NULL)
		return bad(err, err_len, key, "unknown setting");
	void *field = (char *)c + k->offset;
	uint64_t v;
	switch (k->type) {
	case T_LISTEN: {
		bool tls;
		if (strncmp(val, "ipc://", 6) != 0 && !is_tcp(val, &tls))
			return bad(err, err_len, key,
			           "expected an ipc://, tcp:// or tls+tcp:// address");
		/* The first explicit address replaces the default one. */
		if (!c->listen_explicit) {
			for (unsigned i = 0; i < c->n_listen; i++)
				free(c->listen[i]);
			c->n_listen = 0;
			c->listen_explicit = true;
		}
		if (c->n_listen == CONF_LISTEN_MAX)
			return bad(err, err_len, key, "too many addresses (at most 8)");
		if ((c->listen[c->n_listen] = strdup(val)) == NULL)
			return -ENOMEM;
		c->n_listen++;
		return 0;
	}
	case T_LIST: {
		struct conf_list *l = field;
		char why[300];
		if (acl_check_line((enum acl_line)k->min, val, why, sizeof(why)) != 0)
			return bad(err, err_len, key, why);
		char *copy = strdup(val);
		if (copy == NULL)
			return -ENOMEM;
		/* The first line of a layer replaces the default or the earlier layer's. */
		if (!l->explicit) {
			for (unsigned i = 0; i < l->n; i++)
				free(l->v[i]);
			l->n = 0;
			l->explicit = true;
		}
		if (l->n == CONF_LIST_MAX) {
			free(copy);
			return bad(err, err_len, key, "too many lines (at most 64)");
		}
		l->v[l->n++] = copy;
		return 0;
	}
	case T_PATH:
	case T_STRING: {
		char **s = field, *copy;
		if (*val == '\0')
			return bad(err, err_len, key, "must not be empty");
		if (k->type == T_PATH && *val != '/')
			return bad(err, err_len, key, "expected an absolute path");
		if ((copy = strdup(val)) == NULL)
			return -ENOMEM;
		free(*s);
		*s = copy;
		return 0;
	}
	case T_UINT:
		if (parse_uint(val, 10, &v) != 0 || v < k->min || v > k->max) {
			snprintf(err, err_len, "%s: expected a number from %" PRIu64 " to %" PRIu64,
			         key, k->min, k->max);
			return HSAMEM_EINVAL;
		}
		*(unsigned *)field = (unsigned)v;
		return 0;
	case T_SIZE:
		if (parse_size(val, &v) != 0 || v < k->min || v > k->max) {
			snprintf(err, err_len,
			         "%s: expected a size from %" PRIu64 " to %" PRIu64
			         " bytes (suffixes K, M, G, T)",
			         key, k->min, k->max);
			return HSAMEM_EINVAL;
		}
		*(uint64_t *)field = v;
		return 0;
	case T_LEVEL: {
		int level = log_level_parse(val);
		if (level < 0)
			return bad(
			        err, err_len, key,
			        "expected debug, info, notice, warning, err, crit, alert or emerg");
		*(int *)field = level;
		return 0;
	}
	case T_GPU:
		if (strcmp(val, "auto") == 0)
			c->gpu = -1;
		else if (strcmp(val, "off") == 0)
			c->gpu = -2;
		else if (parse_uint(val, 10, &v) == 0 && v < 64)
			c->gpu = (int)v;
		else
			return bad(err, err_len, key, "expected auto, off or a device number");
		return 0;
	case T_OFFSTR: {
		char **str = field, *copy = NULL;
		if (*val == '\0')
			return bad(err, err_len, key, "must not be empty (off turns it off)");
		if (strcmp(val, "off") != 0 && (copy = strdup(val)) == NULL)
			return -ENOMEM;
		free(*str);
		*str = copy;
		return 0;
	}
	case T_BOOL:
		if (strcmp(val, "yes") == 0 || strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0 ||
		         strcmp(val, "0") == 0)
			*(bool *)field = false;
		else
			return bad(err, err_len, key, "expected yes or no");
		return 0;
	case T_MSEC: {
		char *end;
		if (strcmp(val, "off") == 0) {
			*(unsigned *)field = 0;
			return 0;
		}
		errno = 0;
		v = isdigit((unsigned char)*val) ? strtoull(val, &end, 10) : UINT64_MAX;
		if (v != UINT64_MAX && errno == 0 && strcmp(end, "s") == 0)
			v = v <= k->max / 1000 ? v * 1000 : UINT64_MAX;
		else if (v != UINT64_MAX &&
		         (errno != 0 || (*end != '\0' && strcmp(end, "ms") != 0)))
			v = UINT64_MAX;
		if (v > k->max) {
			snprintf(err, err_len,
			         "%s: expected off or a duration such as 100ms or 2s, at most "
			         "%" PRIu64 " ms",
			         key, k->max);
			return HSAMEM_EINVAL;
		}
		*(unsigned *)field = (unsigned)v;
		return 0;
	}
	case T_MODE:
		if (parse_uint(val, 8, &v) != 0 || v > k->max)
			return bad(err, err_len, key, "expected an octal mode such as 0660");
		*(unsigned *)field = (unsigned)v;
		return 0;
	}
	return bad(err, err_len, key, "unknown type");
}

int
conf_load(struct conf *c, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		int ret = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return ret;
	}
	char line[1024], why[512];
	int ret = 0;
	for (unsigned no = 1; fgets(line, sizeof(line), f) != NULL; no++) {
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, err_len, "%s:%u: line too long", path, no);
			ret = HSAMEM_EINVAL;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = trim(line);
		if (*s == '\0')
			continue;
		if ((ret = conf_set(c, s, why, sizeof(why))) != 0) {
			snprintf(err, err_len, "%s:%u: %s", path, no, why);
			break;
		}
	}
	fclose(f);
	return ret;
}

static void
print_size(FILE *out, const char *key, uint64_t v)
{
	static const char suffix[] = "KMGT";
	int i = -1;
	while (v != 0 && v % 1024 == 0 && i < 3) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		fprintf(out, "%s = %" PRIu64 "\n", key, v);
	else
		fprintf(out, "%s = %" PRIu64 "%c\n", key, v, suffix[i]);
}

/* An empty list is printed as `none`, which reads back as one. */
static void
print_list(FILE *out, const char *key, const struct conf_list *l)
{
	if (l->n == 0 && strcmp(key, "secret") != 0)
		fprintf(out, "%s = none\n", key);
	for (unsigned i = 0; i < l->n; i++)
		fprintf(out, "%s = %s\n", key, l->v[i]);
}

void
conf_print(const struct conf *c, FILE *out)
{
	for (unsigned i = 0; i < c->n_listen; i++)
		fprintf(out, "listen = %s\n", c->listen[i]);
	fprintf(out, "state-dir = %s\n", c->state_dir);
	fprintf(out, "workers = %u\n", c->workers);
	fprintf(out, "contexts = %u\n", c->contexts);
	print_size(out, "max-message", c->max_message);
	print_size(out, "max-entry", c->max_entry);
	print_size(out, "max-inflight", conf_max_inflight(c));
	fprintf(out, "max-batch = %u\n", c->max_batch);
	fprintf(out, "log-level = %s\n", level_names[c->log_level & 7]);
	if (c->gpu == -1)
		fprintf(out, "gpu = auto\n");
	else if (c->gpu == -2)
		fprintf(out, "gpu = off\n");
	else
		fprintf(out, "gpu = %d\n", c->gpu);
	print_size(out, "gpu-memory", c->gpu_memory);
	print_size(out, "host-cache", c->host_cache);
	fprintf(out, "cpu-threads = %u\n", c->cpu_threads);
	print_size(out, "map-size", c->map_size);
	print_size(out, "map-max", c->map_max);
	print_size(out, "backup-rate", c->backup_rate);
	fprintf(out, "socket-mode = %04o\n", c->socket_mode);
	print_list(out, "admin", &c->admin);
	print_list(out, "allow", &c->allow);
	print_list(out, "secret", &c->secret);
	if (c->tls_cert != NULL)
		fprintf(out, "tls-cert = %s\n", c->tls_cert);
	if (c->tls_key != NULL)
		fprintf(out, "tls-key = %s\n", c->tls_key);
	if (c->tls_ca != NULL)
		fprintf(out, "tls-ca = %s\n", c->tls_ca);
	fprintf(out, "model-dir = %s\n", c->model_dir);
	fprintf(out, "metrics-listen = %s\n",
	        c->metrics_listen != NULL ? c->metrics_listen : "off");
	fprintf(out, "metrics-allow-remote = %s\n", c->metrics_remote ? "yes" : "no");
	if (c->slow_request_ms == 0)
		fprintf(out, "slow-request = off\n");
	else
		fprintf(out, "slow-request = %ums\n", c->slow_request_ms);
	fprintf(out, "audit-interval = %u\n", c->audit_interval);
}
