/*
 * sockdir.c: the default socket's directory (sockdir.h says the rule and why). Shared by the
 * daemon, which creates the private directory, and libhsamem, which checks it before it connects;
 * it must not print or exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockdir.h"

/* $TMPDIR/hsamem-UID ($TMPDIR when it is an absolute path, else /tmp); "" when too long. */
static void
private_dir(char *buf, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	int n;
	if (tmp == NULL || tmp[0] != '/')
		tmp = "/tmp";
	n = snprintf(buf, size, "%s/hsamem-%u", tmp, (unsigned)geteuid());
	if (n < 0 || (size_t)n >= size)
		buf[0] = '\0';
}

int
sockdir_default_url(char *buf, size_t size)
{
	const char *dir = getenv("RUNTIME_DIRECTORY");
	char priv[SOCKDIR_MAX];
	size_t len;
	int n;

	/* systemd joins several RuntimeDirectory= entries with ':'; the socket is in the first. */
	len = dir != NULL ? strcspn(dir, ":") : 0;
	if (len == 0) {
		dir = getenv("XDG_RUNTIME_DIR");
		len = dir != NULL ? strlen(dir) : 0;
	}
	if (len == 0) {
		private_dir(priv, sizeof(priv));
		if (priv[0] == '\0')
			goto toolong;
		dir = priv;
		len = strlen(priv);
	}
	if (len >= SOCKDIR_MAX)
		goto toolong;
	n = snprintf(buf, size, "ipc://%.*s/%s", (int)len, dir, SOCKDIR_SOCKET);
	if (n < 0 || (size_t)n >= size)
		goto toolong;
	return 0;
toolong:
	if (size > 0)
		buf[0] = '\0';
	return -ENAMETOOLONG;
}

bool
sockdir_is_private(const char *url, char *dir, size_t size)
{
	char priv[SOCKDIR_MAX];
	size_t n;

	if (strncmp(url, "ipc://", 6) != 0)
		return false;
	url += 6;
	private_dir(priv, sizeof(priv));
	n = strlen(priv);
	if (n == 0 || n >= size)
		return false;
	/* exactly one more path component: the socket's own name */
	if (strncmp(url, priv, n) != 0 || url[n] != '/' || url[n + 1] == '\0' ||
	    strchr(url + n + 1, '/') != NULL)
		return false;
	memcpy(dir, priv, n + 1);
	return true;
}

int
sockdir_check(const char *dir, bool create, char *why, size_t len)
{
	struct stat st;

	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int err = errno;
		snprintf(why, len, "cannot create %s: %s", dir, strerror(err));
		return -err;
	}
	if (lstat(dir, &st) != 0) {
		int err = errno;
		snprintf(why, len, "%s: %s", dir, strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, len, "%s is not a directory", dir);
		return -EPERM;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, len, "%s belongs to uid %u, not to uid %u", dir, (unsigned)st.st_uid,
		         (unsigned)geteuid());
		return -EPERM;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(why, len, "%s has mode %04o; it must be 0700", dir,
		         (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}
