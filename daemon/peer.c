/*
 * peer.c: the sender of a request as NNG tells it, and the security of the listeners (peer.h).
 * It reads NNG's pipe options and sets its listeners' TLS configuration; it must not judge a
 * peer, which is the policy's job (acl.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "conf.h"
#include "hsamem_defs.h"
#include "log.h"
#include "peer.h"
#include "sockdir.h"

#define PEM_MAX (1u << 20)

static void
format_addr(const nng_sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa->s_in.sa_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(sa->s_in.sa_port));
	} else {
		inet_ntop(AF_INET6, sa->s_in6.sa_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(sa->s_in6.sa_port));
	}
}

/* What NNG tells of a pipe does not change while it lives, and reading it costs system calls
 * (getsockopt for each credential): the last peers are kept by pipe id, which NNG never gives
 * twice in a process's first 2^31 connections. */
#define CACHE_SLOTS 256
static struct {
	int id;
	struct peer p;
} cache[CACHE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static void
peer_of_pipe(nng_pipe pipe, struct peer *p)
{
	nng_sockaddr sa;
	uint64_t uid, gid;
	bool verified;

	memset(p, 0, sizeof(*p));
	if (nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_IPC) {
		p->transport = PEER_IPC;
		if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) == 0 &&
		    nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_GID, &gid) == 0 &&
		    uid <= UINT32_MAX && gid <= UINT32_MAX) {
			p->has_creds = true;
			p->uid = (uint32_t)uid;
			p->gid = (uint32_t)gid;
			if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &p->pid) != 0)
				p->pid = 0;
		}
		return;
	}
	if (sa.s_family != NNG_AF_INET && sa.s_family != NNG_AF_INET6)
		return;
	format_addr(&sa, p->addr, sizeof(p->addr));
	/* only a TLS stream knows the option: a plain TCP pipe answers NNG_ENOTSUP */
	if (nng_pipe_get_bool(pipe, NNG_OPT_TLS_VERIFIED, &verified) != 0) {
		p->transport = PEER_TCP;
		return;
	}
	p->transport = PEER_TLS;
	p->verified = verified;
#ifdef NNG_OPT_TLS_PEER_CN
	char *cn = NULL;
	if (verified && nng_pipe_get_string(pipe, NNG_OPT_TLS_PEER_CN, &cn) == 0) {
		snprintf(p->cn, sizeof(p->cn), "%s", cn);
		nng_strfree(cn);
		/* it reaches the log and replies: no control characters */
		for (char *c = p->cn; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
	}
#endif
}

void
peer_of_msg(nng_msg *msg, struct peer *p)
{
	nng_pipe pipe = nng_msg_get_pipe(msg);
	int id = nng_pipe_id(pipe);
	unsigned slot = (unsigned)id % CACHE_SLOTS;

	if (id <= 0) {
		memset(p, 0, sizeof(*p));
		return;
	}
	pthread_mutex_lock(&cache_mu);
	bool hit = cache[slot].id == id;
	if (hit)
		*p = cache[slot].p;
	pthread_mutex_unlock(&cache_mu);
	if (hit)
		return;
	peer_of_pipe(pipe, p);
	if (p->transport == PEER_UNKNOWN)
		return; /* the pipe is gone: nothing to keep */
	pthread_mutex_lock(&cache_mu);
	cache[slot].id = id;
	cache[slot].p = *p;
	pthread_mutex_unlock(&cache_mu);
}

/* Reads a PEM file into a string (malloc'd). A private key must not be readable by others. */
static int
read_pem(const char *key, const char *path, bool secret, char **out)
{
	struct stat st;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = -EIO;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) != 0) {
		ret = -errno;
		log_err("server: %s: cannot read %s: %s", key, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > PEM_MAX) {
		log_err("server: %s: %s is not a PEM file of at most 1 MiB", key, path);
		goto out;
	}
	if (secret && (st.st_mode & 007) != 0) {
		log_err("server: %s: %s is readable by others (mode %04o): refusing to use it", key,
		        path, (unsigned)(st.st_mode & 07777));
		ret = -EPERM;
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	if ((n = read(fd, buf, (size_t)st.st_size)) != st.st_size) {
		log_err("server: %s: short read of %s", key, path);
		free(buf);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int
tls_setup(nng_listener l, const char *url, const struct conf *c)
{
	nng_tls_config *cfg = NULL;
	char *cert = NULL, *key = NULL;
	int rv = 0, ret;

	if (c->tls_cert == NULL || c->tls_key == NULL || c->tls_ca == NULL) {
		log_err("server: %s needs tls-cert, tls-key and tls-ca", url);
		return HSAMEM_EINVAL;
	}
	if ((ret = read_pem("tls-cert", c->tls_cert, false, &cert)) != 0 ||
	    (ret = read_pem("tls-key", c->tls_key, true, &key)) != 0)
		goto out;
	ret = -EINVAL;
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0) {
		log_err("server: cannot listen on %s: no TLS in this NNG: %s", url,
		        nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
		log_err("server: tls-cert %s with tls-key %s: %s", c->tls_cert, c->tls_key,
		        nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_ca_file(cfg, c->tls_ca)) != 0) {
		log_err("server: tls-ca %s: %s", c->tls_ca, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg)) != 0) {
		log_err("server: cannot configure TLS on %s: %s", url, nng_strerror(rv));
		goto out;
	}
	ret = 0;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg); /* the listener holds its own reference */
	if (key != NULL)
		explicit_bzero(key, strlen(key));
	free(key);
	free(cert);
	return ret;
}

int
peer_listener_setup(nng_listener l, const char *url, const struct conf *c)
{
	char dir[SOCKDIR_MAX], why[SOCKDIR_MAX + 100];
	int ret;

	if (strncmp(url, "tls+", 4) == 0)
		return tls_setup(l, url, c);
	if (sockdir_is_private(url, dir, sizeof(dir)) &&
	    (ret = sockdir_check(dir, true, why, sizeof(why))) != 0) {
		log_err("server: refusing to listen on %s: %s", url, why);
		return ret;
	}
	return 0;
}
