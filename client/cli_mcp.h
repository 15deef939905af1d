/*
 * cli_mcp.h: hsamem mcp, the Model Context Protocol server of hsamem: a client of the daemon (a
 * plain user of libhsamem, like every command) that offers one memory to a model as tools.
 *
 * cli_mcp.c owns the command and the stdio transport; cli_mcp_rpc.c the protocol: JSON-RPC 2.0
 * messages, the lifecycle (initialize, the revision agreed), tools/list and tools/call.
 * cli_mcp_tools.c owns the tools: one table, each tool with its JSON Schema and its handler, and
 * the check of a call's arguments against the schema. cli_mcp_http.c owns the Streamable HTTP
 * transport. The memory's name is the server's (command line or environment): no tool takes one,
 * so a model can reach no other memory than the one it was given.
 */
#ifndef HSAMEM_CLI_MCP_H
#define HSAMEM_CLI_MCP_H

#include <jansson.h>
#include <stdbool.h>

#include "cli_ctx.h"

/* The protocol revisions the server speaks, newest first; the first is what it offers. */
extern const char *const mcp_revisions[];
/* Whether rev is one of them. */
bool mcp_revision_known(const char *rev);

/* One server: the memory it serves and what the CLI's context holds (the handle). */
struct mcp {
	struct ctx *c;
	const char *user;
	bool read_only; /* tools that change the memory are not offered */
};

/*
 * A tool. schema is its inputSchema as JSON text; the arguments of a call are checked against it
 * (mcp_args_check) before call() runs, so call() reads them without checking their types again.
 * call() returns the tool's result (content, structuredContent, isError), a new reference, or
 * NULL when out of memory.
 */
struct mcp_tool {
	const char *name;
	const char *title;
	const char *description;
	const char *schema;
	const char *output_schema; /* NULL: none */
	bool writes;               /* changes the memory: not offered with --read-only */
	json_t *(*call)(struct mcp *m, json_t *args);
};

extern const struct mcp_tool mcp_tools[];
extern const size_t mcp_n_tools;

/* The tools/list result (tools offered by m), or NULL when out of memory. */
json_t *mcp_tools_list(const struct mcp *m);
/*
 * Runs tools/call with params: the tool's result, or NULL with *code and *msg set to the JSON-RPC
 * error (an unknown tool, malformed params). Bad arguments are a tool error, not a protocol one.
 */
json_t *mcp_tools_call(struct mcp *m, json_t *params, int *code, const char **msg);

/* A JSON string of s, which the daemon sent: invalid UTF-8 bytes become U+FFFD. NULL: no memory. */
json_t *mcp_string(const char *s);

/*
 * Handles one message, or a batch (an array of them): the reply to send, a new reference, or
 * NULL when there is none (notifications and responses only). Never fails on bad input: that is
 * an error reply.
 */
json_t *mcp_handle(struct mcp *m, json_t *msg);
/* A JSON-RPC error reply (id NULL: null), or NULL when out of memory. */
json_t *mcp_error(json_t *id, int code, const char *msg);
/* Handles the text of one message (parse errors become an error reply): the reply or NULL. */
json_t *mcp_handle_text(struct mcp *m, const char *text, size_t len);

/* Serves Streamable HTTP on addr ("127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT") until SIGINT
 * or SIGTERM: an exit status. */
int mcp_http_serve(struct mcp *m, const char *addr);

#endif
