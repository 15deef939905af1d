/*
 * cli_ctx.h: the state of one run of the hsamem CLI and what every command uses while it runs:
 * the handle, opened on first use, the reports of failures as messages and documented exit
 * codes, and the parsing of numbers and reading of whole files that several commands need.
 */
#ifndef HSAMEM_CLI_CTX_H
#define HSAMEM_CLI_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem.h"

/* Exit codes, as documented in --help and hsamem(1). */
enum {
	EXIT_OK = 0,
	EXIT_SERVER = 1,  /* the daemon answered with an error (no such user, bad spec, ...) */
	EXIT_USAGE = 2,   /* bad command line */
	EXIT_CONNECT = 3, /* cannot reach the daemon, or no reply in time */
	EXIT_IO = 4,      /* a local file, stdin or stdout failed */
};

/* One run of the CLI. */
struct ctx {
	const char *url;   /* -s, $HSAMEM_SOCKET, or NULL for the library's default */
	int timeout_ms;    /* -t; 0: the library's default */
	const char *name;  /* the command, as messages name it */
	const char *usage; /* what follows the name in its usage line */
	struct hsamem *h;  /* opened on first use (cli_connect) */
	int io_err;        /* a local read or write failed: -errno */
};

/* Reports a failed request (the daemon's or library's sentence) and returns its exit code. */
int cli_fail(struct ctx *c, int err);
/* Reports a bad command line with the command's usage; returns EXIT_USAGE. */
int cli_usage(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a failed local read or write of what (-errno err); returns EXIT_IO. */
int cli_io_error(struct ctx *c, const char *what, int err);
/* Opens the handle if it is not open yet: 0, or the exit status after reporting why not. */
int cli_connect(struct ctx *c);

/* Parse a decimal number without sign, at most max: true and *v set, or false. */
bool cli_parse_u64(const char *s, uint64_t max, uint64_t *v);
bool cli_parse_u32(const char *s, uint32_t *v);
/* Reads all of a file descriptor into a NUL-terminated malloc'd buffer: 0 or -errno. */
int cli_slurp(int fd, char **bufp, size_t *lenp);

#endif
