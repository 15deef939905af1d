/*
 * auth.c: what libhsamem shows the daemon besides its requests, read from the environment when
 * a handle first connects: the shared secret of a tcp:// or tls+tcp:// address
 * (HSAMEM_SECRET_FILE, else HSAMEM_SECRET), sent in every request; for tls+tcp://, the authority
 * that must have signed the daemon's certificate (HSAMEM_TLS_CA) and the client's own certificate
 * (HSAMEM_TLS_CERT, HSAMEM_TLS_KEY). Also the check of the default socket's private directory
 * (sockdir.h) before connecting to it. Never sends a secret over ipc://.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "client_int.h"
#include "sockdir.h"

#define SECRET_MAX 1024
#define PEM_MAX    (1u << 20)

/* Sets the handle's message and returns err (as clib_fail, kept here so that this file does not
 * call back into client.c, which calls it). */
static int __attribute__((format(printf, 3, 4)))
auth_fail(struct hsamem *h, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
	return err;
}

/* Reads at most max bytes of path into a NUL-terminated heap buffer. */
static int
read_file(struct hsamem *h, const char *var, const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0 || fstat(fd, &st) != 0) {
		err = errno;
		if (fd >= 0)
			close(fd);
		return auth_fail(h, HSAMEM_ECONNECT, "%s: %s: %s", var, path, strerror(err));
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (size_t)st.st_size > max) {
		close(fd);
		return auth_fail(h, HSAMEM_ECONNECT, "%s: %s is not a file of 1 to %zu bytes", var,
		                 path, max);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return auth_fail(h, -ENOMEM, "out of memory");
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return auth_fail(h, HSAMEM_ECONNECT, "%s: short read of %s", var, path);
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	return 0;
}

static int
load_secret(struct hsamem *h)
{
	const char *path = getenv("HSAMEM_SECRET_FILE"), *value = getenv("HSAMEM_SECRET");
	char *buf = NULL;
	size_t len = 0;
	int err;

	if (path != NULL && path[0] != '\0') {
		if ((err = read_file(h, "HSAMEM_SECRET_FILE", path, SECRET_MAX + 2, &buf, &len)) !=
		    0)
			return err;
	} else if (value != NULL && value[0] != '\0') {
		len = strlen(value);
		if (len > SECRET_MAX + 2 || (buf = strdup(value)) == NULL)
			return auth_fail(h, HSAMEM_EINVAL,
			                 "HSAMEM_SECRET: too long or out of memory");
	} else {
		return 0;
	}
	/* as the daemon reads its secret files: one final newline is not part of the secret */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	h->secret = (uint8_t *)buf;
	h->secret_len = len;
	return 0;
}

static int
setup_tls(struct hsamem *h)
{
	const char *ca = getenv("HSAMEM_TLS_CA"), *cert = getenv("HSAMEM_TLS_CERT"),
	           *key = getenv("HSAMEM_TLS_KEY");
	nng_tls_config *cfg = NULL;
	char *cert_pem = NULL, *key_pem = NULL;
	size_t n;
	int rv, err;

	if (ca == NULL || ca[0] == '\0')
		return auth_fail(
		        h, HSAMEM_ECONNECT,
		        "%s: set HSAMEM_TLS_CA to the authority of the daemon's certificate",
		        h->url);
	if ((cert == NULL || cert[0] == '\0') != (key == NULL || key[0] == '\0'))
		return auth_fail(h, HSAMEM_ECONNECT,
		                 "HSAMEM_TLS_CERT and HSAMEM_TLS_KEY go together");
	/* the dialer's own configuration already expects the URL's host name */
	if ((rv = nng_dialer_get_ptr(h->dialer, NNG_OPT_TLS_CONFIG, (void **)&cfg)) != 0)
		return auth_fail(h, HSAMEM_ECONNECT, "%s: no TLS in this NNG: %s", h->url,
		                 nng_strerror(rv));
	err = 0;
	if ((rv = nng_tls_config_ca_file(cfg, ca)) != 0) {
		err = auth_fail(h, HSAMEM_ECONNECT, "HSAMEM_TLS_CA: %s: %s", ca, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
		err = auth_fail(h, HSAMEM_ECONNECT, "TLS: %s", nng_strerror(rv));
		goto out;
	}
	if (cert != NULL && cert[0] != '\0') {
		if ((err = read_file(h, "HSAMEM_TLS_CERT", cert, PEM_MAX, &cert_pem, &n)) != 0 ||
		    (err = read_file(h, "HSAMEM_TLS_KEY", key, PEM_MAX, &key_pem, &n)) != 0)
			goto out;
		if ((rv = nng_tls_config_own_cert(cfg, cert_pem, key_pem, NULL)) != 0)
			err = auth_fail(h, HSAMEM_ECONNECT,
			                "HSAMEM_TLS_CERT %s, HSAMEM_TLS_KEY %s: %s", cert, key,
			                nng_strerror(rv));
	}
out:
	if (key_pem != NULL)
		explicit_bzero(key_pem, strlen(key_pem));
	free(key_pem);
	free(cert_pem);
	nng_tls_config_free(cfg); /* the reference nng_dialer_get_ptr took */
	return err;
}

int
clib_auth_dial(struct hsamem *h)
{
	char dir[SOCKDIR_MAX], why[SOCKDIR_MAX + 100];
	bool tls = strncmp(h->url, "tls+", 4) == 0;
	int err;

	if (strncmp(h->url, "ipc://", 6) == 0) {
		if (!sockdir_is_private(h->url, dir, sizeof(dir)))
			return 0;
		err = sockdir_check(dir, false, why, sizeof(why));
		if (err == -ENOENT)
			return auth_fail(
			        h, HSAMEM_ECONNECT,
			        "cannot connect to %s: %s does not exist (no daemon of this "
			        "user runs there)",
			        h->url, dir);
		if (err != 0)
			return auth_fail(h, HSAMEM_ECONNECT, "refusing to connect to %s: %s",
			                 h->url, why);
		return 0;
	}
	if (h->auth_done)
		return 0;
	clib_auth_free(h);
	if ((err = load_secret(h)) != 0 || (tls && (err = setup_tls(h)) != 0))
		return err;
	h->auth_done = true;
	return 0;
}

void
clib_auth_request(struct hsamem *h, Hsamem__Request *req)
{
	if (h->secret == NULL)
		return;
	req->has_secret = 1;
	req->secret.data = h->secret;
	req->secret.len = h->secret_len;
}

void
clib_auth_free(struct hsamem *h)
{
	if (h->secret != NULL)
		explicit_bzero(h->secret, h->secret_len);
	free(h->secret);
	h->secret = NULL;
}
