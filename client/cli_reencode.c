/*
 * cli_reencode.c: the hsamem reencode command: rebuilds a memory from its kept text with another
 * built-in encoder, by driving the daemon's re-encode steps (hsamem_reencode) until the memory is
 * swapped. The daemon cannot send progress over its request-reply socket, so each step's reply is
 * the progress: on a terminal (and not with --json) a line shows the memory's chunks done of all,
 * the rate in tokens of the memory per second and the time left, rewritten after every step;
 * elsewhere only the result is printed. An interrupted command loses nothing: running it again
 * goes on where the daemon's hidden memory got to.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_format.h"
#include "cli_render.h"

enum { O_ENCODER = 256, O_REVISION };

struct reencode_state {
	const char *encoder;
	uint32_t revision;
};

static int
reencode_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct reencode_state *s = state;
	if (id == O_ENCODER) {
		s->encoder = arg;
		return -1;
	}
	if (id == O_REVISION && (!cli_parse_u32(arg, &s->revision) || s->revision == 0))
		return cli_usage(c, "--revision takes a number from 1");
	return -1;
}

static double
seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One progress line: chunks done of all, rate, time left. */
static void
show_progress(const char *user, const struct hsamem_reencode_info *r, uint64_t tokens0, double t0)
{
	double dt = seconds() - t0, rate = dt > 0 ? (double)(r->tokens_done - tokens0) / dt : 0;
	uint64_t left = r->tokens_total - r->tokens_done, pct = 0;
	if (r->tokens_total > 0)
		pct = r->tokens_done * 100 / r->tokens_total;
	printf("\rreencode %s: %llu/%llu chunks (%llu%%), %.0f tokens/s", user,
	       (unsigned long long)r->chunks_done, (unsigned long long)r->chunks_total,
	       (unsigned long long)pct, rate);
	if (rate > 0) {
		unsigned long s = (unsigned long)((double)left / rate + 0.5);
		printf(", %lu:%02lu:%02lu left", s / 3600, s / 60 % 60, s % 60);
	}
	printf("\033[K");
	fflush(stdout);
}

static int
reencode_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct reencode_state *s = state;
	struct hsamem_reencode_info r;
	bool progress = isatty(STDOUT_FILENO) && !out.json, shown = false;
	uint64_t steps = 0, tokens0 = 0;
	double t0 = seconds();
	int rv, err;

	if (s->encoder == NULL)
		return cli_usage(c, "--encoder NAME is required");
	if ((rv = cli_connect(c)) != 0)
		return rv;
	do {
		if ((err = hsamem_reencode(c->h, args[0], s->encoder, s->revision, &r)) != 0) {
			if (shown)
				putchar('\n');
			return cli_fail(c, err);
		}
		if (steps++ == 0)
			tokens0 = r.tokens_done; /* the rate of this run, not of one interrupted */
		if (progress && !r.done) {
			show_progress(args[0], &r, tokens0, t0);
			shown = true;
		}
	} while (!r.done);
	if (shown)
		printf("\r\033[K");
	print_reencode(args[0], &r, seconds() - t0);
	return EXIT_OK;
}

static const struct option reencode_opts[] = {
        {"encoder", required_argument, NULL, O_ENCODER},
        {"revision", required_argument, NULL, O_REVISION},
        {0},
};

const struct cmd cmd_reencode = {
        .name = "reencode",
        .args = "USER --encoder NAME [--revision N]",
        .summary = "Rebuilds USER's memory from its text with another built-in encoder.",
        .details = "Re-encodes every entry (text, role, timestamp and tags as they are) with\n"
                   "encoder NAME at revision N (default: its newest), while the memory keeps\n"
                   "serving; appends made meanwhile are re-encoded too. The daemon swaps the\n"
                   "memories at once when the new one has caught up; until then, an interrupted\n"
                   "run goes on where it stopped when run again, and a crash of the daemon\n"
                   "leaves the old memory. On a terminal it shows chunks done, rate and time\n"
                   "left.\n",
        .opts = reencode_opts,
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct reencode_state),
        .opt = reencode_opt,
        .run = reencode_run,
};
