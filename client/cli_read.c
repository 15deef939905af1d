/*
 * cli_read.c: the hsamem commands that read and change nothing: ping, query, users, stats,
 * entries and chunks. Each makes one request and shows its result.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_filter.h"
#include "cli_format.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
ping_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_server *s;
	double t0;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	t0 = now_ms();
	if ((err = hsamem_ping(c->h, &s)) != 0)
		return cli_fail(c, err);
	print_ping(hsamem_url(c->h), s, now_ms() - t0);
	hsamem_result_free(s);
	return EXIT_OK;
}

const struct cmd cmd_ping = {
        .name = "ping",
        .args = "",
        .summary = "Checks that the daemon answers; shows its version and backend.",
        .run = ping_run,
};

/* ---- query ---- */

enum { O_ENTRIES = 256, O_NOTAIL, O_CHUNKS, O_CONTEXT, O_MINSCORE, O_HITS, O_MODE };

struct query_state {
	struct hsamem_query q;
	struct hsamem_recall r;
	struct cli_filter f;
};

static int
query_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct query_state *s = state;
	struct hsamem_query *q = &s->q;
	char *end;

	if (id >= O_F_SCOPE)
		return cli_filter_opt(c, &s->f, id, arg);
	switch (id) {
	case O_CHUNKS: s->r.chunks_only = true; break;
	case O_CONTEXT:
		if (!cli_parse_u32(arg, &s->r.context) || s->r.context > 8)
			return cli_usage(c, "--context takes a number of entries, at most 8");
		break;
	case O_HITS:
		if (!cli_parse_u32(arg, &s->r.max_hits) || s->r.max_hits == 0)
			return cli_usage(c, "--hits takes a positive number");
		break;
	case O_MINSCORE:
		s->r.min_score = strtof(arg, &end);
		if (*arg == '\0' || *end != '\0' || !isfinite(s->r.min_score))
			return cli_usage(c, "--min-score takes a number");
		s->r.has_min_score = true;
		break;
	case 'k':
		if (!cli_parse_u32(arg, &q->top_k) || q->top_k == 0)
			return cli_usage(c, "-k takes a positive number");
		break;
	case O_ENTRIES:
		if (!cli_parse_u32(arg, &q->max_entries))
			return cli_usage(c, "--entries takes a number");
		break;
	case O_NOTAIL: q->no_tail = true; break;
	case O_MODE:
		if (strcmp(arg, "learned") != 0 && strcmp(arg, "lexical") != 0 &&
		    strcmp(arg, "hybrid") != 0)
			return cli_usage(c, "--mode takes learned, lexical or hybrid");
		s->r.mode = arg;
		break;
	}
	return -1;
}

static int
query_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct query_state *s = state;
	struct hsamem_query_result *res;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	s->q.text = args[1];
	s->r.filter = cli_filter_get(&s->f);
	if ((err = hsamem_query_filtered(c->h, args[0], &s->q, &s->r, &res)) != 0)
		return cli_fail(c, err);
	if (s->r.chunks_only)
		print_query(args[0], res);
	else
		print_recall(args[0], res, hsamem_last_message(c->h));
	hsamem_result_free(res);
	return EXIT_OK;
}

static const struct option query_options[] = {
        {"top-k", required_argument, NULL, 'k'},
        {"entries", required_argument, NULL, O_ENTRIES},
        {"no-tail", no_argument, NULL, O_NOTAIL},
        {"chunks", no_argument, NULL, O_CHUNKS},
        {"context", required_argument, NULL, O_CONTEXT},
        {"min-score", required_argument, NULL, O_MINSCORE},
        {"hits", required_argument, NULL, O_HITS},
        CLI_FILTER_OPTIONS,
        {"mode", required_argument, NULL, O_MODE},
        {0},
};

static const char query_details[] =
        "Shows the entries that answer TEXT, best first: the entries of the k chunks HSA\n"
        "selects, each scored by the evidence on its own tokens (its chunk's weight times\n"
        "the chunk's attention on them), once each. With --chunks, the chunks instead:\n"
        "each hit's score, weight, text and the entries it covers, with the tokens that\n"
        "weigh most highlighted. A filter keeps only matching entries, before ranking.\n\n"
        "  -k, --top-k N      chunks to select (default: the memory's)\n"
        "  --hits N           entries to show (default: k)\n"
        "  --context N        also show N matching entries on each side of each hit (<= 8)\n"
        "  --min-score X      only entries scoring at least X; says so when none does\n"
        "  --chunks           the chunk view\n"
        "  --entries N        chunk view: covered entries shown per chunk (default 8)\n"
        "  --no-tail          do not consider the unsealed tail\n"
        "  --mode MODE        how to rank: learned (the model's landmarks), lexical (BM25 over\n"
        "                     the memory's words) or hybrid (both fused; hsamem(7));\n"
        "                     default hybrid for hsa-small memories; lexical memories rank\n"
        "                     lexically only\n" CLI_FILTER_HELP;

const struct cmd cmd_query = {
        .name = "query",
        .args = "USER TEXT [-k N] [--hits N] [--context N] [--min-score X] [--chunks] "
                "[--entries N] [--no-tail] [--mode MODE] [FILTER]",
        .summary = "Shows the entries (or chunks) of USER's memory that matter most for TEXT.",
        .details = query_details,
        .opts = query_options,
        .shortopts = "k:",
        .min_args = 2,
        .max_args = 2,
        .missing = "give USER and TEXT",
        .state_size = sizeof(struct query_state),
        .opt = query_opt,
        .run = query_run,
};

/* ---- users and stats ---- */

static int
users_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_user_list *l;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_users(c->h, &l)) != 0)
		return cli_fail(c, err);
	print_users(l);
	hsamem_result_free(l);
	return EXIT_OK;
}

const struct cmd cmd_users = {
        .name = "users",
        .args = "",
        .summary = "Lists the memories.",
        .run = users_run,
};

enum { O_PROMETHEUS = 256 };

struct stats_opts {
	bool prometheus;
};

static int
stats_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct stats_opts *o = state;
	if (id == O_PROMETHEUS)
		o->prometheus = true;
	return -1;
}

/* The daemon renders the text (one renderer for this and its metrics endpoint). */
static int
stats_prometheus(struct ctx *c, const char *user)
{
	char *text;
	int err = hsamem_stats_prometheus(c->h, user, &text);
	if (err != 0)
		return cli_fail(c, err);
	fputs(text, stdout);
	hsamem_result_free(text);
	return EXIT_OK;
}

static int
stats_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct stats_opts *o = state;
	struct hsamem_stats *s;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	if (o->prometheus)
		return stats_prometheus(c, n_args > 0 ? args[0] : NULL);
	if ((err = hsamem_stats(c->h, n_args > 0 ? args[0] : NULL, &s)) != 0)
		return cli_fail(c, err);
	print_stats(s);
	hsamem_result_free(s);
	return EXIT_OK;
}

static const struct option stats_options[] = {
        {"prometheus", no_argument, NULL, O_PROMETHEUS},
        {0},
};

static const char stats_details[] =
        "Without USER (administrators only) it also shows the store's bytes per token\n"
        "and its size against the text that every memory's entries hold.\n\n"
        "  --prometheus       print the daemon's metrics in the Prometheus text format, as\n"
        "                     its metrics endpoint serves them (hsamemd(8), METRICS)\n";

const struct cmd cmd_stats = {
        .name = "stats",
        .args = "[--prometheus] [USER]",
        .summary = "Shows the daemon's counters, latencies and memories.",
        .details = stats_details,
        .opts = stats_options,
        .max_args = 1,
        .state_size = sizeof(struct stats_opts),
        .opt = stats_opt,
        .run = stats_run,
};

/* ---- entries and chunks: --first N --count N [--tensors] ---- */

enum { O_FIRST = 256, O_COUNT, O_TENSORS };

struct range {
	uint64_t first;
	uint32_t count;
	bool tensors;
	struct cli_filter f; /* entries */
};

static int
range_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct range *r = state;

	if (id >= O_F_SCOPE)
		return cli_filter_opt(c, &r->f, id, arg);
	switch (id) {
	case O_FIRST:
		if (!cli_parse_u64(arg, UINT64_MAX, &r->first))
			return cli_usage(c, "--first takes a number");
		break;
	case O_COUNT:
		if (!cli_parse_u32(arg, &r->count) || r->count == 0)
			return cli_usage(c, "--count takes a positive number");
		break;
	case O_TENSORS: r->tensors = true; break;
	}
	return -1;
}

static int
entries_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct range *r = state;
	struct hsamem_entry_list *l;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_entries_filtered(c->h, args[0], r->first, r->count, cli_filter_get(&r->f),
	                                   &l)) != 0)
		return cli_fail(c, err);
	print_entries(args[0], l);
	hsamem_result_free(l);
	return EXIT_OK;
}

static const struct option entries_options[] = {
        {"first", required_argument, NULL, O_FIRST},
        {"count", required_argument, NULL, O_COUNT},
        CLI_FILTER_OPTIONS,
        {0},
};

static const char entries_details[] =
        "With a filter, only the matching entries among those COUNT from FIRST are shown\n"
        "(the next page starts at FIRST + COUNT).\n\n"
        "  --first N          the first entry (default 0)\n"
        "  --count N          entries looked at (default 100, at most 1000)\n" CLI_FILTER_HELP;

const struct cmd cmd_entries = {
        .name = "entries",
        .args = "USER [--first N] [--count N] [FILTER]",
        .summary = "Lists entries of USER's memory (default: the first 100).",
        .details = entries_details,
        .opts = entries_options,
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct range),
        .opt = range_opt,
        .run = entries_run,
};

static int
chunks_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct range *r = state;
	struct hsamem_chunk_list *l;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	err = hsamem_chunks(c->h, args[0], r->first, r->count,
	                    r->tensors ? HSAMEM_CHUNKS_TENSORS : 0, &l);
	if (err != 0)
		return cli_fail(c, err);
	print_chunks(args[0], l, r->tensors);
	hsamem_result_free(l);
	return EXIT_OK;
}

static const struct option chunks_options[] = {
        {"first", required_argument, NULL, O_FIRST},
        {"count", required_argument, NULL, O_COUNT},
        {"tensors", no_argument, NULL, O_TENSORS},
        {0},
};

static const char chunks_details[] =
        "  --tensors          also fetch K, V and landmark (sizes; base64 with --json)\n";

const struct cmd cmd_chunks = {
        .name = "chunks",
        .args = "USER [--first N] [--count N] [--tensors]",
        .summary = "Lists sealed chunks of USER's memory (default: the first 16).",
        .details = chunks_details,
        .opts = chunks_options,
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct range),
        .opt = range_opt,
        .run = chunks_run,
};
