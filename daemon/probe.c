/*
 * probe.c: a client of the daemon's own ipc:// sockets (probe.h), with every wait bounded. It is
 * written by hand over a plain Unix socket, not with an NNG req0 socket, for two reasons: NNG
 * 1.5's nng_close can wait forever (a probe must never hang the thread that runs it), and NNG
 * does not let a dialer bound its handshake below its own 10 s. What it speaks is small and
 * fixed: the 8-byte SP header each side sends first (0, 'S', 'P', 0, the protocol number, two
 * zero bytes), then messages as 1 type byte (1), a 64-bit big-endian length and the payload,
 * which for req0 starts with a 32-bit request id whose high bit is set. It must not keep any
 * state between probes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hsamem.pb-c.h"
#include "hsamem_defs.h"
#include "probe.h"

#define SP_REQ0        0x30
#define SP_REP0        0x31
#define PING_ID        0x80000001u
#define REPLY_MAX_SIZE (1u << 20)

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for ev or the deadline passes (-ETIMEDOUT). */
static int
wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = ev};
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int
send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		int ret = wait_fd(fd, POLLOUT, deadline);
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* Reads exactly len bytes; a peer that closes first gives -ECONNRESET. */
static int
recv_all(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		int ret = wait_fd(fd, POLLIN, deadline);
		if (ret != 0)
			return ret;
	}
	return 0;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int
connect_unix(const char *path, int *fdp)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a Unix socket connects at once, or fails with EAGAIN when the backlog is full */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

/* Sends a ping request on a connection past its handshake and checks that a reply to it comes
 * and decodes: any status counts (a daemon whose policy refuses this uid still answers). */
static int
ping(int fd, int64_t deadline)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__PingRequest body = HSAMEM__PING_REQUEST__INIT;
	uint8_t frame[64], head[9 + 4], *reply = NULL;
	int ret;

	req.has_version = 1;
	req.version = HSAMEM_PROTOCOL_VERSION;
	req.body_case = HSAMEM__REQUEST__BODY_PING;
	req.ping = &body;
	size_t len = hsamem__request__get_packed_size(&req);
	if (len > sizeof(frame) - 13)
		return -EINVAL;
	frame[0] = 1;
	put_be(frame + 1, len + 4, 8);
	put_be(frame + 9, PING_ID, 4);
	hsamem__request__pack(&req, frame + 13);
	if ((ret = send_all(fd, frame, 13 + len, deadline)) != 0 ||
	    (ret = recv_all(fd, head, sizeof(head), deadline)) != 0)
		return ret;
	uint64_t size = get_be(head + 1, 8);
	if (head[0] != 1 || size < 4 || size - 4 > REPLY_MAX_SIZE || get_be(head + 9, 4) != PING_ID)
		return -EPROTO;
	size -= 4;
	if ((reply = malloc(size + 1)) == NULL)
		return -ENOMEM;
	if ((ret = recv_all(fd, reply, size, deadline)) == 0) {
		Hsamem__Reply *r = hsamem__reply__unpack(NULL, size, reply);
		ret = r != NULL ? 0 : -EPROTO;
		if (r != NULL)
			hsamem__reply__free_unpacked(r, NULL);
	}
	free(reply);
	return ret;
}

/* Connects and completes the handshake before deadline; 0 with *fdp set, or an error. */
static int
hello(const char *path, int64_t deadline, int *fdp)
{
	const uint8_t ours[8] = {0, 'S', 'P', 0, 0, SP_REQ0, 0, 0};
	uint8_t peer[8];
	int fd = -1, ret;

	if ((ret = connect_unix(path, &fd)) != 0)
		return ret;
	if ((ret = send_all(fd, ours, sizeof(ours), deadline)) != 0 ||
	    (ret = recv_all(fd, peer, sizeof(peer), deadline)) != 0)
		goto fail;
	if (memcmp(peer, ours, 4) != 0 || peer[6] != 0 || peer[7] != 0 ||
	    get_be(peer + 4, 2) != SP_REP0) {
		ret = -EPROTO;
		goto fail;
	}
	*fdp = fd;
	return 0;
fail:
	close(fd);
	return ret;
}

int
probe_ipc_hello(const char *path, unsigned timeout_ms, int *fdp)
{
	return hello(path, mono_ms() + timeout_ms, fdp);
}

int
probe_ipc(const char *path, unsigned timeout_ms, bool with_ping)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int fd, ret = hello(path, deadline, &fd);
	if (ret != 0)
		return ret;
	if (with_ping)
		ret = ping(fd, deadline);
	close(fd);
	return ret;
}
