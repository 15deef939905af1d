/*
 * cli_ctx.c: what every hsamem command uses while it runs (cli_ctx.h): the handle, and the
 * reports of outcomes as `hsamem: COMMAND: MESSAGE` on stderr and a documented exit code.
 *
 * Exit codes are decided in one place (exit_for()) from the library's error, except for local I/O
 * (files, stdin, stdout), which the commands detect themselves and report with cli_io_error():
 * the library cannot tell a failed write of ours from an errno sent by the daemon.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_ctx.h"

/* ---- outcomes ---- */

static int
exit_for(int err)
{
	switch (err) {
	case HSAMEM_ECONNECT:
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -ECONNREFUSED: return EXIT_CONNECT;
	}
	return EXIT_SERVER;
}

int
cli_fail(struct ctx *c, int err)
{
	const char *m = c->h != NULL ? hsamem_last_message(c->h) : "";

	fprintf(stderr, "hsamem: %s: %s\n", c->name, m[0] != '\0' ? m : hsamem_strerror(err));
	return exit_for(err);
}

int
cli_usage(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hsamem: %s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: hsamem %s %s\n", c->name, c->usage);
	return EXIT_USAGE;
}

int
cli_io_error(struct ctx *c, const char *what, int err)
{
	fprintf(stderr, "hsamem: %s: %s: %s\n", c->name, what, strerror(-err));
	return EXIT_IO;
}

int
cli_connect(struct ctx *c)
{
	int err;

	if (c->h != NULL)
		return 0;
	if ((err = hsamem_open(c->url, &c->h)) != 0) {
		fprintf(stderr, "hsamem: %s: %s: %s\n", c->name,
		        c->url != NULL ? c->url : "default address", hsamem_strerror(err));
		return err == HSAMEM_EINVAL ? EXIT_USAGE : EXIT_SERVER;
	}
	if (c->timeout_ms != 0)
		hsamem_set_timeout(c->h, c->timeout_ms);
	return 0;
}

/* ---- what several commands read ---- */

bool
cli_parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	unsigned long long n;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || n > max)
		return false;
	*v = n;
	return true;
}

bool
cli_parse_u32(const char *s, uint32_t *v)
{
	uint64_t n;

	if (!cli_parse_u64(s, UINT32_MAX, &n))
		return false;
	*v = (uint32_t)n;
	return true;
}

int
cli_slurp(int fd, char **bufp, size_t *lenp)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *p;
	ssize_t n;

	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? 2 * cap : 65536;
			if ((p = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return -ENOMEM;
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}
