/*
 * sockdir.h: where the daemon's default ipc:// socket lives, one rule for hsamemd and libhsamem,
 * so that clients look where the daemon listens: $RUNTIME_DIRECTORY (systemd sets it for the
 * service), else $XDG_RUNTIME_DIR (the login's own directory), else a private directory
 * hsamem-UID of the effective uid in $TMPDIR (when it is an absolute path) or /tmp, which the
 * daemon creates with mode 0700 and both sides check before use. Never a predictable name in a
 * world-writable directory: another local user could bind it first and receive what clients send.
 */
#ifndef HSAMEM_SOCKDIR_H
#define HSAMEM_SOCKDIR_H

#include <stdbool.h>
#include <stddef.h>

#define SOCKDIR_SOCKET "hsamemd.sock"
#define SOCKDIR_MAX    4096 /* the longest private directory's path, with its NUL */

/* The system service's socket: systemd/hsamemd.service gives the daemon RuntimeDirectory=hsamem,
 * so by the rule above it listens here. libhsamem tries it after the per-user address. */
#define SOCKDIR_SYSTEM_URL "ipc:///run/hsamem/" SOCKDIR_SOCKET

/* Writes the default ipc:// URL by the rule above. Returns 0, or -ENAMETOOLONG (buf is then ""). */
int sockdir_default_url(char *buf, size_t size);

/* Whether url is the ipc:// URL of a socket directly inside this uid's private directory; if so
 * the directory is written to dir (of size bytes; false when it does not fit). */
bool sockdir_is_private(const char *url, char *dir, size_t size);

/*
 * Checks the private directory dir: a directory (not a symbolic link) owned by the effective uid,
 * with no permission for group or others. With create, makes it first (mode 0700) when it is
 * missing. Returns 0; -ENOENT when it does not exist (create false); otherwise a negative errno
 * (-EPERM for a directory that fails the check) with the reason written to why.
 */
int sockdir_check(const char *dir, bool create, char *why, size_t len);

#endif
