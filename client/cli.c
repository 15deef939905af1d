/*
 * cli.c: hsamem, the command-line client of hsamemd: parses `hsamem [-s URL] [--json]
 * [-t SECONDS] COMMAND [ARGS]` once, from the table of commands, and maps outcomes to the
 * documented exit codes. The commands themselves are in the files cli.h names; their results are
 * shown through cli_format.h; errors go to stderr as `hsamem: COMMAND: MESSAGE`.
 *
 * Parsing has one path for every command: the global options here (before the command name, and
 * -s and -t also after it, up to "--"), then the command's own options from its table entry (with
 * --json and --help, which all take), then the count of its arguments; the help texts are the
 * table's. cli_ctx.c turns outcomes into exit codes.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "cli_format.h"
#include "cli_render.h"

#define CMD_OPTS_MAX 32 /* long options of one command, --json and --help included */

static const struct cmd *find_cmd(const char *name);
static void main_help(FILE *f);

static void
command_help(const struct cmd *cmd)
{
	printf("usage: hsamem [-s URL] [--json] [-t SECONDS] %s %s\n\n%s\n", cmd->name, cmd->args,
	       cmd->summary);
	if (cmd->details != NULL && cmd->details[0] != '\0')
		printf("\n%s", cmd->details);
}

/*
 * Parses the command's options and arguments (argv[0] is its name) and runs it. getopt names
 * the command in its own messages, as argv[0] is the command's name.
 */
static int
run_cmd(struct ctx *c, const struct cmd *cmd, int argc, char **argv)
{
	static const struct option common[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	};
	alignas(max_align_t) unsigned char state[CMD_STATE_MAX];
	struct option lo[CMD_OPTS_MAX + 1];
	char shortopts[2 * CMD_OPTS_MAX + 1];
	size_t n = 0;
	int opt, rv;

	if (cmd->raw)
		return cmd->run(c, NULL, argv + 1, argc - 1);
	for (; cmd->opts != NULL && cmd->opts[n].name != NULL; n++)
		lo[n] = cmd->opts[n];
	assert(n + 2 <= CMD_OPTS_MAX && cmd->state_size <= sizeof(state));
	memcpy(&lo[n], common, sizeof(common));
	memset(&lo[n + 2], 0, sizeof(lo[0]));
	snprintf(shortopts, sizeof(shortopts), "%sjh",
	         cmd->shortopts != NULL ? cmd->shortopts : "");
	memset(state, 0, sizeof(state));
	if (cmd->defaults != NULL)
		memcpy(state, cmd->defaults, cmd->state_size);

	optind = 0; /* GNU getopt: start afresh for the command's options */
	while ((opt = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		switch (opt) {
		case 'j': out.json = true; continue;
		case 'h': command_help(cmd); return EXIT_OK;
		case '?':
			/* getopt has already said what was wrong. */
			fprintf(stderr, "usage: hsamem %s %s\n", cmd->name, cmd->args);
			return EXIT_USAGE;
		}
		if ((rv = cmd->opt(c, state, opt, optarg)) >= 0)
			return rv;
	}
	if (argc - optind < cmd->min_args)
		return cli_usage(c, "%s", cmd->missing);
	if (argc - optind > cmd->max_args)
		return cli_usage(c, "unexpected argument '%s'", argv[optind + cmd->max_args]);
	return cmd->run(c, state, argv + optind, argc - optind);
}

/* ---- help and version ---- */

static int
help_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct cmd *cmd;

	if (n_args > 0) {
		if ((cmd = find_cmd(args[0])) == NULL)
			return cli_usage(c, "unknown command '%s'", args[0]);
		command_help(cmd);
		return EXIT_OK;
	}
	main_help(stdout);
	return EXIT_OK;
}

static const struct cmd cmd_help = {
        .name = "help",
        .args = "[COMMAND]",
        .summary = "Shows this help, or a command's.",
        .run = help_run,
        .raw = true,
};

static int
version_run(struct ctx *c, void *state, char **args, int n_args)
{
	print_version();
	return EXIT_OK;
}

static const struct cmd cmd_version = {
        .name = "version",
        .args = "",
        .summary = "Shows the versions of hsamem and its protocol.",
        .run = version_run,
};

/* ---- the table ---- */

/* In the order hsamem --help lists them. */
static const struct cmd *const commands[] = {
        &cmd_ping,   &cmd_create,  &cmd_append, &cmd_query,   &cmd_ask,     &cmd_attend,
        &cmd_flush,  &cmd_users,   &cmd_stats,  &cmd_entries, &cmd_chunks,  &cmd_forget,
        &cmd_update, &cmd_history, &cmd_delete, &cmd_export,  &cmd_import,  &cmd_reencode,
        &cmd_backup, &cmd_compact, &cmd_mcp,    &cmd_help,    &cmd_version,
};

static const struct cmd *
find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static void
main_help(FILE *f)
{
	fprintf(f, "usage: hsamem [-s URL] [--json] [-t SECONDS] COMMAND [ARGS]\n\n"
	           "The command-line client of hsamemd, the persistent memory daemon for\n"
	           "Hierarchical Sparse Attention.\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %.*s\n", commands[i]->name,
		        (int)strcspn(commands[i]->summary, "\n"), commands[i]->summary);
	fprintf(f, "\nOptions:\n"
	           "  -s, --socket URL   the daemon's address (default: $HSAMEM_SOCKET, else\n"
	           "                     ipc://DIR/hsamemd.sock with DIR $RUNTIME_DIRECTORY,\n"
	           "                     else $XDG_RUNTIME_DIR, else /tmp/hsamem-UID, when a\n"
	           "                     socket is there; then ipc:///run/hsamem/hsamemd.sock)\n"
	           "  -j, --json         print results as JSON\n"
	           "  -t, --timeout S    seconds to wait for each reply (default 30; 0: forever)\n"
	           "  -h, --help         this help; `hsamem help COMMAND` for a command's\n"
	           "  -V, --version      the version\n"
	           "  -s, -t and --json may also follow the command name (before --).\n"
	           "\nExit status:\n"
	           "  0  success\n"
	           "  1  the daemon answered with an error (e.g. no such user, permission denied)\n"
	           "  2  usage error (also stdin text with a NUL byte: nothing is sent)\n"
	           "  3  cannot connect to the daemon, or no reply in time\n"
	           "  4  local I/O error (a file, stdin or stdout)\n");
}

/* ---- main ---- */

/* Terminal width for trimmed text: the terminal's, else $COLUMNS, else 100. */
static int
term_width(void)
{
	struct winsize ws;
	const char *env = getenv("COLUMNS");
	uint64_t n;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	if (env != NULL && cli_parse_u64(env, 1000, &n) && n >= 40)
		return (int)n;
	return 100;
}

/* A global option that takes a value (-s, -t): -1 to go on, or the exit status to end with. */
static int
global_opt(struct ctx *c, int opt, const char *arg)
{
	double secs;
	char *end;

	if (opt == 's') {
		c->url = arg;
		return -1;
	}
	errno = 0;
	secs = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || !(secs >= 0) || secs > 2e6)
		return cli_usage(c, "-t takes seconds, 0 to wait forever");
	c->timeout_ms = secs == 0 ? -1 : (secs * 1000 < 1 ? 1 : (int)(secs * 1000));
	return -1;
}

/* Whether word, an option of cmd's, takes the next word as its value: a long option (or a
 * prefix of one, as getopt accepts) without '=' whose value is required, or a cluster of short
 * options that ends with one that takes a value. */
static bool
takes_next(const struct cmd *cmd, const char *word)
{
	if (word[1] == '-') {
		size_t n = strlen(word + 2);
		if (strchr(word, '=') != NULL || cmd->opts == NULL)
			return false;
		for (const struct option *o = cmd->opts; o->name != NULL; o++)
			if (strncmp(o->name, word + 2, n) == 0 && o->has_arg == required_argument)
				return true;
		return false;
	}
	for (const char *p = word + 1; *p != '\0'; p++) {
		const char *so = cmd->shortopts != NULL ? strchr(cmd->shortopts, *p) : NULL;
		if (so != NULL && so[1] == ':')
			return p[1] == '\0';
	}
	return false;
}

/*
 * Takes the global options that take values (-s URL, -t SECONDS, in any of getopt's spellings
 * but a cluster) from among the command's words, argv[1..*argc), up to "--": they may follow the
 * command name. Their words are removed; the rest keep their order. -1, or the exit status.
 */
static int
take_globals(struct ctx *c, const struct cmd *cmd, int *argc, char **argv)
{
	int kept = 1, i = 1, rv;

	for (; i < *argc; i++) {
		const char *w = argv[i], *val = NULL;
		int opt = 0;

		if (strcmp(w, "--") == 0)
			break;
		if (strcmp(w, "-s") == 0 || strcmp(w, "--socket") == 0)
			opt = 's';
		else if (strcmp(w, "-t") == 0 || strcmp(w, "--timeout") == 0)
			opt = 't';
		else if (strncmp(w, "-s", 2) == 0 || strncmp(w, "-t", 2) == 0)
			opt = w[1], val = w + 2;
		else if (strncmp(w, "--socket=", 9) == 0)
			opt = 's', val = w + 9;
		else if (strncmp(w, "--timeout=", 10) == 0)
			opt = 't', val = w + 10;
		if (opt == 0) {
			argv[kept++] = argv[i];
			if (w[0] == '-' && w[1] != '\0' && takes_next(cmd, w) && i + 1 < *argc)
				argv[kept++] = argv[++i];
			continue;
		}
		if (val == NULL && (val = argv[++i]) == NULL)
			return cli_usage(c, "%s needs a value", w);
		if ((rv = global_opt(c, opt, val)) >= 0)
			return rv;
	}
	while (i < *argc)
		argv[kept++] = argv[i++];
	argv[kept] = NULL;
	*argc = kept;
	return -1;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
	        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},       {0},
	};
	struct ctx c = {.name = "hsamem", .usage = "[-s URL] [--json] [-t SECONDS] COMMAND"};
	const struct cmd *cmd;
	const char *env;
	int opt, rv;

	env = getenv("HSAMEM_SOCKET");
	if (env != NULL && env[0] != '\0')
		c.url = env;
	/* '+': stop at the command, whose options are its own. */
	while ((opt = getopt_long(argc, argv, "+s:jt:hV", lo, NULL)) != -1) {
		switch (opt) {
		case 's':
		case 't':
			if ((rv = global_opt(&c, opt, optarg)) >= 0)
				return rv;
			break;
		case 'j': out.json = true; break;
		case 'h': main_help(stdout); return EXIT_OK;
		case 'V': print_version(); return EXIT_OK;
		default: main_help(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "hsamem: no command given\n");
		main_help(stderr);
		return EXIT_USAGE;
	}
	if ((cmd = find_cmd(argv[optind])) == NULL) {
		fprintf(stderr, "hsamem: unknown command '%s'; see hsamem --help\n", argv[optind]);
		return EXIT_USAGE;
	}
	out.width = term_width();
	out.highlight_bold = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	c.name = cmd->name;
	c.usage = cmd->args;
	argc -= optind;
	argv += optind;
	if (!cmd->raw && (rv = take_globals(&c, cmd, &argc, argv)) >= 0)
		return rv;
	rv = run_cmd(&c, cmd, argc, argv);
	hsamem_close(c.h);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "hsamem: %s: writing stdout: %s\n", c.name, strerror(errno));
		return EXIT_IO;
	}
	return rv;
}
