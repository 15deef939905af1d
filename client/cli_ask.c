/*
 * cli_ask.c: the hsamem ask command (experimental): answers a question from a memory with its
 * model (hsamem_ask). The answer goes to stdout (with the chunks it drew on, or as JSON with
 * --json); a note that the answers are experimental goes to stderr, so that it never mixes with
 * what a script reads.
 */
#include <stdio.h>

#include "cli.h"
#include "cli_filter.h"
#include "cli_format.h"

enum { O_MAX_TOKENS = 256, O_ENTRIES };

struct ask_state {
	struct hsamem_ask a;
	struct cli_filter f;
};

#define ASK_MAX_TOKENS 64 /* the daemon's bound (hsamem(7), ASKING) */

static int
ask_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct ask_state *s = state;
	struct hsamem_ask *a = &s->a;

	if (id >= O_F_SCOPE)
		return cli_filter_opt(c, &s->f, id, arg);
	switch (id) {
	case O_MAX_TOKENS:
		if (!cli_parse_u32(arg, &a->max_tokens) || a->max_tokens == 0 ||
		    a->max_tokens > ASK_MAX_TOKENS)
			return cli_usage(c, "--max-tokens takes a number from 1 to 64");
		break;
	case O_ENTRIES:
		if (!cli_parse_u32(arg, &a->max_entries))
			return cli_usage(c, "--entries takes a number");
		break;
	}
	return -1;
}

static int
ask_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_ask_result *res;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	struct ask_state *s = state;
	if ((err = hsamem_ask_filtered(c->h, args[0], args[1], &s->a, cli_filter_get(&s->f),
	                               &res)) != 0)
		return cli_fail(c, err);
	if (res->experimental)
		fprintf(stderr,
		        "hsamem: note: ask is experimental; the answers of %s are not reliable on "
		        "text unlike its training tasks\n",
		        res->encoder);
	print_ask(args[0], res);
	hsamem_result_free(res);
	return EXIT_OK;
}

static const struct option ask_options[] = {
        {"max-tokens", required_argument, NULL, O_MAX_TOKENS},
        {"entries", required_argument, NULL, O_ENTRIES},
        CLI_FILTER_OPTIONS,
        {0},
};

static const char ask_details[] =
        "EXPERIMENTAL. The memory's model (encoder hsa-small) writes the answer token by token,\n"
        "attending to the memory's chunks at every token, and the chunks it drew on most are\n"
        "shown with their entries. The shipped model answers reliably only questions like those\n"
        "it was trained on, e.g. \"What is the special magic number for KEY mentioned in the\n"
        "provided text?\"; memories of other encoders are refused.\n\n"
        "  --max-tokens N     most answer tokens, 1 to 64 (default 32)\n"
        "  --entries N        covered entries shown per chunk (default 8)\n"
        "With a filter, the model reads only chunks holding matching entries, and gets no\n"
        "context from the end of the stream.\n" CLI_FILTER_HELP;

const struct cmd cmd_ask = {
        .name = "ask",
        .args = "USER QUESTION [--max-tokens N] [--entries N] [FILTER]",
        .summary = "Answers QUESTION from USER's memory with its model (experimental).",
        .details = ask_details,
        .opts = ask_options,
        .min_args = 2,
        .max_args = 2,
        .missing = "give USER and QUESTION",
        .state_size = sizeof(struct ask_state),
        .opt = ask_opt,
        .run = ask_run,
};
