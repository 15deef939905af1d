/*
 * cli_mcp.c: the hsamem mcp command and the protocol it speaks: the Model Context Protocol,
 * JSON-RPC 2.0 messages over stdio (one message a line, nothing else on stdout) or, with --http,
 * over Streamable HTTP (cli_mcp_http.c). It answers initialize (agreeing on a revision), ping,
 * tools/list and tools/call (cli_mcp_tools.c), and ignores notifications and responses.
 *
 * The revisions: the newest the server knows is offered; a client asking for one of the others
 * gets it. None of the tools' shapes differ between them (structuredContent and outputSchema,
 * new in 2025-06-18, are extra members that older clients ignore). JSON is jansson's, both ways.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_mcp.h"

/* The line limit of the stdio transport: a tools/call of a text up to max-entry fits. */
#define MCP_LINE_MAX (16u << 20)

const char *const mcp_revisions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

bool
mcp_revision_known(const char *rev)
{
	for (size_t i = 0; mcp_revisions[i] != NULL; i++)
		if (strcmp(rev, mcp_revisions[i]) == 0)
			return true;
	return false;
}

/* ---- JSON-RPC ---- */

static json_t *
rpc_error(json_t *id, int code, const char *msg)
{
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
	                 "error", "code", code, "message", msg);
}

static json_t *
rpc_result(json_t *id, json_t *result)
{
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

static json_t *
initialize(struct mcp *m, json_t *params)
{
	const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
	const char *rev = asked != NULL && mcp_revision_known(asked) ? asked : mcp_revisions[0];
	char instructions[512];

	snprintf(instructions, sizeof(instructions),
	         "Long-term memory '%s' kept by hsamemd. Use remember to store a fact or a turn "
	         "worth "
	         "keeping, recall to find what was stored about a topic, list_memories for the "
	         "latest entries.",
	         m->user);
	return json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", rev,
	                 "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "hsamem",
	                 "title", "hsamem memory", "version", hsamem_version(), "instructions",
	                 instructions);
}

/* One message that is not a batch. */
static json_t *
handle_one(struct mcp *m, json_t *msg)
{
	json_t *id, *params, *res = NULL;
	const char *method, *emsg = NULL;
	int code = 0;

	if (!json_is_object(msg))
		return rpc_error(NULL, -32600, "a message must be a JSON object");
	id = json_object_get(msg, "id");
	method = json_string_value(json_object_get(msg, "method"));
	if (id != NULL && !json_is_string(id) && !json_is_integer(id))
		return rpc_error(NULL, -32600, "id must be a string or an integer");
	if (method == NULL) {
		/* A response to a request of ours (we send none), or garbage. */
		if (id != NULL && (json_object_get(msg, "result") || json_object_get(msg, "error")))
			return NULL;
		return rpc_error(id, -32600, "not a JSON-RPC 2.0 request: no method");
	}
	if (!json_is_string(json_object_get(msg, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") != 0)
		return id ? rpc_error(id, -32600, "jsonrpc must be \"2.0\"") : NULL;
	if (id == NULL)
		return NULL; /* notifications: initialized, cancelled, ... need no answer */
	params = json_object_get(msg, "params");
	if (params != NULL && !json_is_object(params))
		return rpc_error(id, -32602, "params must be an object");

	if (strcmp(method, "initialize") == 0)
		res = initialize(m, params);
	else if (strcmp(method, "ping") == 0)
		res = json_object();
	else if (strcmp(method, "tools/list") == 0)
		res = mcp_tools_list(m);
	else if (strcmp(method, "tools/call") == 0)
		res = mcp_tools_call(m, params, &code, &emsg);
	else
		return rpc_error(id, -32601, "method not found");
	if (res == NULL)
		return code != 0 ? rpc_error(id, code, emsg)
		                 : rpc_error(id, -32603, "out of memory");
	return rpc_result(id, res);
}

json_t *
mcp_handle(struct mcp *m, json_t *msg)
{
	json_t *replies, *r, *each;
	size_t i;

	if (!json_is_array(msg))
		return handle_one(m, msg);
	/* Batches: 2025-03-26 has them (later revisions do not); replies in one array. */
	if (json_array_size(msg) == 0)
		return rpc_error(NULL, -32600, "an empty batch");
	if ((replies = json_array()) == NULL)
		return NULL;
	json_array_foreach(msg, i, each)
	{
		if ((r = handle_one(m, each)) != NULL)
			json_array_append_new(replies, r);
	}
	if (json_array_size(replies) == 0) {
		json_decref(replies);
		return NULL;
	}
	return replies;
}

json_t *
mcp_handle_text(struct mcp *m, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *msg, *reply;
	char why[200];

	if ((msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(why, sizeof(why), "parse error: %s", jerr.text);
		return rpc_error(NULL, -32700, why);
	}
	reply = mcp_handle(m, msg);
	json_decref(msg);
	return reply;
}

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
			reply = rpc_error(NULL, -32600, "message too long");
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
        "  --read-only        offer no tool that changes the memory (remember)\n";

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
