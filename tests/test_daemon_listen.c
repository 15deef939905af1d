/*
 * test_daemon_listen.c: no connection and no second daemon can silence hsamemd (hsamemd(8),
 * LISTENERS). A plain connect() and close() on its ipc:// socket, which NNG 1.5's listener does
 * not survive, must leave it answering: a client that comes a second later at once (the watchdog
 * replaces the listener within about 0.7 s), one that came at once and an existing handle within
 * 6 s (the stuck listener is closed 2 s after its replacement, and they reconnect; the rest is
 * slack for a loaded build machine); a second
 * daemon on the same state directory, or on another state directory and the same socket, must
 * refuse to start with a clear message and leave the first answering; a socket file left by a
 * killed daemon must not keep a new one from starting.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"
#include "test.h"

static int64_t
ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* connect() and close() at once, before NNG's SP header. */
static int
raw_connect_close(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	int ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	close(fd);
	return ret;
}

/* Pings through h until it answers or ms pass; returns how long it took, -1 if it never did. */
static int64_t
ping_within(struct hsamem *h, int ms)
{
	int64_t t0 = ms_now();
	hsamem_set_timeout(h, 500);
	while (ms_now() - t0 < ms) {
		struct hsamem_server *s = NULL;
		if (hsamem_ping(h, &s) == 0) {
			hsamem_result_free(s);
			return ms_now() - t0;
		}
	}
	return -1;
}

/* A fresh handle's ping within ms. */
static int64_t
fresh_ping_within(const char *url, int ms)
{
	struct hsamem *h = NULL;
	if (hsamem_open(url, &h) != 0)
		return -1;
	int64_t t = ping_within(h, ms);
	hsamem_close(h);
	return t;
}

/* Runs a second hsamemd on url and state; returns its exit status (-1: still running after 15 s,
 * killed) and leaves its stderr in log. */
static int
second_daemon(const char *url, const char *state, const char *log)
{
	const char *top = getenv("HSAMEM_TOP_BUILDDIR");
	char bin[512];
	snprintf(bin, sizeof(bin), "%s/hsamemd", top && *top ? top : ".");
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		execl(bin, bin, "-l", url, "-d", state, "-o", "gpu=off", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1500; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static bool
log_has(const char *log, const char *what)
{
	char buf[4096] = "";
	FILE *f = fopen(log, "r");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	if (strstr(buf, what) == NULL) {
		fprintf(stderr, "expected \"%s\" in:\n%s\n", what, buf);
		return false;
	}
	return true;
}

int
main(void)
{
	struct harness h;
	struct hsamem *old = NULL;
	char path[sizeof(h.url)], log[sizeof(h.dir) + 16], state[sizeof(h.dir) + 16];

	CHECK(harness_init(&h) == 0);
	h.extra[0] = "-o";
	h.extra[1] = "gpu=off";
	CHECK(harness_start(&h) == 0);
	memcpy(path, h.url + 6, strlen(h.url + 6) + 1);
	snprintf(log, sizeof(log), "%s/second.log", h.dir);

	/* an open handle that has connected, and raw connections closed before the SP header */
	CHECK(hsamem_open(h.url, &old) == 0);
	CHECK(ping_within(old, 3000) >= 0);
	for (int round = 0; round < 3; round++) {
		/* a client that connects at once may reach the stuck listener: it waits until that
		 * one is found stuck and closed, then reconnects by itself */
		CHECK(raw_connect_close(path) == 0);
		int64_t t = fresh_ping_within(h.url, 6000);
		fprintf(stderr, "round %d: a client right after answered after %lld ms\n", round,
		        (long long)t);
		CHECK(t >= 0);
		CHECK(ping_within(old, 6000) >= 0);
		/* one that comes a second later finds the new listener */
		CHECK(raw_connect_close(path) == 0);
		usleep(1000 * 1000);
		t = fresh_ping_within(h.url, 2000);
		fprintf(stderr, "round %d: a client a second later answered after %lld ms\n", round,
		        (long long)t);
		CHECK(t >= 0);
	}

	/* a second daemon on the same state directory */
	CHECK(second_daemon(h.url, h.state, log) == 1);
	CHECK(log_has(log, "in use by another hsamemd"));
	CHECK(fresh_ping_within(h.url, 3000) >= 0);

	/* on another state directory and the same socket: asked with a handshake and a ping */
	snprintf(state, sizeof(state), "%s/state2", h.dir);
	CHECK(second_daemon(h.url, state, log) == 1);
	CHECK(log_has(log, "another hsamemd answers on"));
	CHECK(fresh_ping_within(h.url, 3000) >= 0);
	CHECK(ping_within(old, 3000) >= 0);
	hsamem_close(old);

	/* a socket file left by a killed daemon: the next one starts */
	CHECK(harness_stop(&h, SIGKILL) == 128 + SIGKILL);
	CHECK(access(path, F_OK) == 0);
	CHECK(harness_start(&h) == 0);
	CHECK(log_has(h.log, "no daemon listens there any more"));
	CHECK(fresh_ping_within(h.url, 3000) >= 0);
	CHECK(harness_stop(&h, SIGTERM) == 0);
	if (test_failures != 0)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_listen");
}
