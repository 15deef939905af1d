/*
 * cli_mcp_rpc.c: the protocol of hsamem mcp, whatever carries it: JSON-RPC 2.0 messages of the
 * Model Context Protocol, parsed and written with jansson. It answers initialize (agreeing on a
 * revision), ping, tools/list and tools/call (cli_mcp_tools.c), and ignores notifications and
 * responses. The transports (stdio in cli_mcp.c, HTTP in cli_mcp_http.c) hand it a message's text
 * and send what it returns.
 *
 * The revisions: the newest the server knows is offered; a client asking for one of the others
 * gets it. None of the tools' shapes differ between them (structuredContent and outputSchema,
 * new in 2025-06-18, are extra members that older clients ignore).
 */
#include <stdio.h>
#include <string.h>

#include "cli_mcp.h"

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

json_t *
mcp_error(json_t *id, int code, const char *msg)
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
		return mcp_error(NULL, -32600, "a message must be a JSON object");
	id = json_object_get(msg, "id");
	method = json_string_value(json_object_get(msg, "method"));
	if (id != NULL && !json_is_string(id) && !json_is_integer(id))
		return mcp_error(NULL, -32600, "id must be a string or an integer");
	if (method == NULL) {
		/* A response to a request of ours (we send none), or garbage. */
		if (id != NULL && (json_object_get(msg, "result") || json_object_get(msg, "error")))
			return NULL;
		return mcp_error(id, -32600, "not a JSON-RPC 2.0 request: no method");
	}
	if (!json_is_string(json_object_get(msg, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") != 0)
		return id ? mcp_error(id, -32600, "jsonrpc must be \"2.0\"") : NULL;
	if (id == NULL)
		return NULL; /* notifications: initialized, cancelled, ... need no answer */
	params = json_object_get(msg, "params");
	if (params != NULL && !json_is_object(params))
		return mcp_error(id, -32602, "params must be an object");

	if (strcmp(method, "initialize") == 0)
		res = initialize(m, params);
	else if (strcmp(method, "ping") == 0)
		res = json_object();
	else if (strcmp(method, "tools/list") == 0)
		res = mcp_tools_list(m);
	else if (strcmp(method, "tools/call") == 0)
		res = mcp_tools_call(m, params, &code, &emsg);
	else
		return mcp_error(id, -32601, "method not found");
	if (res == NULL)
		return code != 0 ? mcp_error(id, code, emsg)
		                 : mcp_error(id, -32603, "out of memory");
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
		return mcp_error(NULL, -32600, "an empty batch");
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
		return mcp_error(NULL, -32700, why);
	}
	reply = mcp_handle(m, msg);
	json_decref(msg);
	return reply;
}
