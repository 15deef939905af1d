/*
 * cli.h: how the hsamem CLI describes a command: the entry of each in the table of commands.
 *
 * cli.c parses the command line: the global options, then the command's options as its entry of
 * the table lists them, then its arguments; only then does the command's run() start. The
 * commands live by what they do: cli_read.c (ping, query, users, stats, entries, chunks),
 * cli_write.c (create, append, flush, delete), cli_attend.c, cli_transfer.c (export, import),
 * cli_reencode.c, cli_ask.c, cli_mcp.c (the MCP server, cli_mcp.h). What they use while they run is
 * in cli_ctx.h; results are shown through cli_format.h. None of them touches the protocol: the CLI
 * is a plain user of libhsamem.
 */
#ifndef HSAMEM_CLI_H
#define HSAMEM_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli_ctx.h"

/* The largest state a command's opt() and run() may share (struct cmd). */
#define CMD_STATE_MAX 8192

/*
 * A command. cli.c parses its options (opts, plus --json and --help, which every command takes)
 * and calls opt() for each of its own, in the order given; then it checks the number of
 * arguments and calls run() with them. opt() and run() share a state of state_size bytes, zeroed
 * and then copied from defaults when it is not NULL.
 *
 * An option's id is what opt() receives: for one with a short form, its letter; else a number of
 * 256 or more. Each returns -1 to go on, or the exit status to end with (a usage error).
 */
struct cmd {
	const char *name;
	const char *args;          /* what follows the name in its usage line */
	const char *summary;       /* one line, for hsamem --help */
	const char *details;       /* the rest of its help, or NULL */
	const struct option *opts; /* its own long options, ended by {0}; NULL: none */
	const char *shortopts;     /* its own short options, as getopt spells them */
	int min_args, max_args;
	const char *missing; /* the usage error for fewer than min_args arguments */
	size_t state_size;   /* at most CMD_STATE_MAX */
	const void *defaults;
	int (*opt)(struct ctx *c, void *state, int id, const char *arg);
	/* args: the arguments left after the options, n_args of them. */
	int (*run)(struct ctx *c, void *state, char **args, int n_args);
	bool raw; /* no option parsing: run() gets every word after the name (help) */
};

/* The commands of the other files; cli.c lists them, with help and version, in its table. */
extern const struct cmd cmd_ping, cmd_create, cmd_append, cmd_query, cmd_attend, cmd_flush,
        cmd_users, cmd_stats, cmd_entries, cmd_chunks, cmd_delete, cmd_export, cmd_import,
        cmd_reencode, cmd_ask;
extern const struct cmd cmd_mcp;                             /* cli_mcp.c */
extern const struct cmd cmd_backup, cmd_compact;             /* cli_admin.c */
extern const struct cmd cmd_forget, cmd_update, cmd_history; /* cli_forget.c */

#endif
