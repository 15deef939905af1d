/*
 * cli_mcp_http.c: the Streamable HTTP transport of hsamem mcp (MCP revisions 2025-03-26 on): one
 * endpoint, /mcp, on a loopback address. A POST carries one JSON-RPC message (or a 2025-03-26
 * batch); requests are answered with application/json, notifications and responses with 202.
 * The server opens no stream of its own, so GET (and DELETE: it keeps no sessions, hence issues
 * no Mcp-Session-Id) answer 405, as the transport allows.
 *
 * HTTP is libmicrohttpd's, run by its own single thread: requests are handled one at a time, so
 * the libhsamem handle is used by one thread, as it must be. Only loopback addresses are served,
 * and a request whose Origin is not a loopback one is refused (403), as the transport asks of
 * local servers against DNS rebinding. The main thread waits for SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli_mcp.h"

#define BODY_MAX (16u << 20)

/* A request's body as it arrives. */
struct body {
	char *buf;
	size_t len;
	bool too_big;
};

/* Parses "HOST:PORT" ("[v6]:PORT") into sa; only loopback hosts. 0, or -1 with why set. */
static int
parse_addr(const char *addr, struct sockaddr_storage *sa, const char **why)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	unsigned long port;
	char *end;
	size_t n;

	*why = "ADDR is HOST:PORT";
	if (colon == NULL || (n = (size_t)(colon - addr)) == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, addr, n);
	host[n] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	if (host[0] == '[' && host[n - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -1;
		*why = "only a loopback address is served (::1)";
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -1;
	*why = "only a loopback address is served (127.0.0.0/8)";
	if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
		return -1;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	return 0;
}

/* Whether an Origin header names a loopback host (or there is none: not a browser). */
static bool
origin_ok(const char *origin)
{
	static const char *const ok[] = {"localhost", "127.0.0.1", "[::1]"};
	const char *host;

	if (origin == NULL)
		return true;
	if ((host = strstr(origin, "://")) == NULL)
		return false;
	host += 3;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t n = strlen(ok[i]);
		if (strncmp(host, ok[i], n) == 0 && (host[n] == '\0' || host[n] == ':'))
			return true;
	}
	return false;
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type, char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(text != NULL ? strlen(text) : 0, text,
	                                    text != NULL ? MHD_RESPMEM_MUST_FREE
	                                                 : MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	if (type != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned status, const char *msg)
{
	return reply(conn, status, "text/plain; charset=utf-8", strdup(msg));
}

/* A whole POST body: the JSON-RPC reply, or 202. */
static enum MHD_Result
post(struct mcp *m, struct MHD_Connection *conn, struct body *b)
{
	const char *type =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *rev =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "MCP-Protocol-Version");
	json_t *r;
	char *out;

	if (b->too_big)
		return reply_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "message too long\n");
	if (type == NULL || strncasecmp(type, "application/json", 16) != 0)
		return reply_text(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "send application/json\n");
	if (rev != NULL && !mcp_revision_known(rev))
		return reply_text(conn, MHD_HTTP_BAD_REQUEST, "unsupported MCP-Protocol-Version\n");
	if ((r = mcp_handle_text(m, b->buf != NULL ? b->buf : "", b->len)) == NULL)
		return reply(conn, MHD_HTTP_ACCEPTED, NULL, NULL);
	out = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	if (out == NULL)
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(conn, MHD_HTTP_OK, "application/json", out);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *data, size_t *data_size, void **state)
{
	struct body *b = *state;
	char *p;

	if (b == NULL) {
		/* The headers: decide what can be decided before the body. */
		if (strcmp(url, "/mcp") != 0)
			return reply_text(conn, MHD_HTTP_NOT_FOUND, "the MCP endpoint is /mcp\n");
		if (!origin_ok(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin")))
			return reply_text(conn, MHD_HTTP_FORBIDDEN, "origin not allowed\n");
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return reply_text(
			        conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			        "this server opens no event stream and keeps no session\n");
		if ((b = calloc(1, sizeof(*b))) == NULL)
			return MHD_NO;
		*state = b;
		return MHD_YES;
	}
	if (*data_size > 0) {
		if (!b->too_big && b->len + *data_size <= BODY_MAX &&
		    (p = realloc(b->buf, b->len + *data_size + 1)) != NULL) {
			memcpy(p + b->len, data, *data_size);
			b->buf = p;
			b->len += *data_size;
		} else {
			b->too_big = true;
		}
		*data_size = 0;
		return MHD_YES;
	}
	return post(cls, conn, b);
}

static void
on_done(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode tc)
{
	struct body *b = *state;

	if (b != NULL)
		free(b->buf);
	free(b);
	*state = NULL;
}

int
mcp_http_serve(struct mcp *m, const char *addr)
{
	struct sockaddr_storage sa;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	const char *why;
	sigset_t sigs, old;
	char host[INET6_ADDRSTRLEN + 2];
	int sig;

	if (parse_addr(addr, &sa, &why) != 0)
		return cli_usage(m->c, "--http %s: %s", addr, why);
	/* The server's thread inherits the mask: only this thread takes the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	d = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0,
	        NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
	        on_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
	if (d == NULL) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		fprintf(stderr, "hsamem: mcp: cannot listen on %s: %s\n", addr, strerror(errno));
		return EXIT_SERVER;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (sa.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host + 1,
		          sizeof(host) - 2),
		        host[0] = '[', strcat(host, "]");
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof(host));
	fprintf(stderr, "hsamem: mcp: serving %s at http://%s:%u/mcp\n", m->user, host,
	        info != NULL ? info->port : 0);
	while (sigwait(&sigs, &sig) != 0)
		;
	MHD_stop_daemon(d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return EXIT_OK;
}
