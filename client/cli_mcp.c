/*
 * cli_mcp.c: the hsamem mcp command: its options, the memory it serves, and the stdio transport of
 * the Model Context Protocol (one JSON-RPC message a line each way, nothing else on stdout); with
 * --http, Streamable HTTP instead (cli_mcp_http.c). The messages are cli_mcp_rpc.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_mcp.h"

/* The line limit of the stdio transport: a tools/call of a text up to max-entry fits. */
#define MCP_LINE_MAX (16u << 20)

/* ---- stdio ---- */

static int
mcp_stdio(struct mcp *m)
{
	char *line = NULL, *out;
	size_t cap = 0;
	ssize_t n;
	json_t *reply;
	int rv = EXIT_OK;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0)
			continue;
		if ((size_t)n > MCP_LINE_MAX)
			reply = mcp_error(NULL, -32600, "message too long");
		else
			reply = mcp_handle_text(m, line, (size_t)n);
		if (reply == NULL)
			continue;
		out = json_dumps(reply, JSON_COMPACT);
		json_decref(reply);
		if (out == NULL || printf("%s\n", out) < 0 || fflush(stdout) != 0) {
			rv = out == NULL ? EXIT_IO : cli_io_error(m->c, "writing stdout", -errno);
			free(out);
			break;
		}
		free(out);
	}
	if (rv == EXIT_OK && ferror(stdin))
		rv = cli_io_error(m->c, "reading stdin", -errno);
	free(line);
	return rv;
}

/* ---- the command ---- */

enum { O_HTTP = 256, O_READ_ONLY };

struct mcp_opts {
	const char *http;
	bool read_only;
};

static int
mcp_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct mcp_opts *o = state;

	if (id == O_HTTP)
		o->http = arg;
	else if (id == O_READ_ONLY)
		o->read_only = true;
	return -1;
}

static int
mcp_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct mcp_opts *o = state;
	struct mcp m = {.c = c, .read_only = o->read_only};
	const char *why;
	int rv;

	m.user = n_args > 0 ? args[0] : getenv("HSAMEM_MCP_USER");
	if (m.user == NULL || m.user[0] == '\0')
		return cli_usage(c, "give USER (or set HSAMEM_MCP_USER)");
	if (hsamem_name_check(m.user, strlen(m.user), &why) != 0)
		return cli_usage(c, "'%s' is not a valid memory name: %s", m.user, why);
	if ((rv = cli_connect(c)) != 0)
		return rv;
	return o->http != NULL ? mcp_http_serve(&m, o->http) : mcp_stdio(&m);
}

static const struct option mcp_options[] = {
        {"http", required_argument, NULL, O_HTTP},
        {"read-only", no_argument, NULL, O_READ_ONLY},
        {0},
};

static const char mcp_details[] =
        "Serves USER's memory to a model through the Model Context Protocol (revisions\n"
        "2025-11-25 and 2025-06-18; 2025-03-26 too), over stdin and stdout, one JSON-RPC\n"
        "message a line. Tools: remember, recall, list_memories, memory_stats and ask\n"
        "(experimental). The memory is USER's, else $HSAMEM_MCP_USER's: no tool can name\n"
        "another.\n\n"
        "  --http ADDR        serve Streamable HTTP at http://ADDR/mcp instead; ADDR is a\n"
        "                     loopback address and port (127.0.0.1:PORT, [::1]:PORT,\n"
        "                     localhost:PORT; port 0: any free one, which is reported)\n"
        "  --read-only        offer no tool that changes the memory (remember, forget)\n";

const struct cmd cmd_mcp = {
        .name = "mcp",
        .args = "[USER] [--http ADDR] [--read-only]",
        .summary = "Serves USER's memory to models as an MCP server (stdio or HTTP).",
        .details = mcp_details,
        .opts = mcp_options,
        .max_args = 1,
        .state_size = sizeof(struct mcp_opts),
        .opt = mcp_opt,
        .run = mcp_run,
};
