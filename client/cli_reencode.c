/*
 * cli_reencode.c: the hsamem reencode command: rebuilds a memory from its kept text with another
 * built-in encoder, by driving the daemon's re-encode steps (hsamem_reencode) until the memory is
 * swapped. The daemon cannot send progress over its request-reply socket, so each step's reply is
 * the progress: the line of cli_progress.h (stderr on a terminal, not with --json) shows the
 * memory's chunks and tokens done of all, the rate in tokens per second and the time left;
 * elsewhere only the result is printed. An interrupted command loses nothing: running it again
 * goes on where the daemon's hidden memory got to.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_format.h"
#include "cli_progress.h"
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

static int
reencode_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct reencode_state *s = state;
	struct hsamem_reencode_info r;
	struct cli_progress p;
	char label[HSAMEM_NAME_MAX + 16], chunks[64];
	double t0 = seconds();
	int rv, err;

	if (s->encoder == NULL)
		return cli_usage(c, "--encoder NAME is required");
	if ((rv = cli_connect(c)) != 0)
		return rv;
	snprintf(label, sizeof(label), "reencode %s", args[0]);
	cli_progress_init(&p, label, "tokens");
	do {
		if ((err = hsamem_reencode(c->h, args[0], s->encoder, s->revision, &r)) != 0) {
			cli_progress_end(&p);
			return cli_fail(c, err);
		}
		snprintf(chunks, sizeof(chunks), "%llu/%llu chunks",
		         (unsigned long long)r.chunks_done, (unsigned long long)r.chunks_total);
		if (!r.done)
			cli_progress_update(&p, r.tokens_done, r.tokens_total, chunks);
	} while (!r.done);
	cli_progress_end(&p);
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
                   "left on stderr. To the encoder and revision the memory has, it rebuilds a\n"
                   "lexical memory that still stores its K/V (made by a daemon of store\n"
                   "format 1) without them; otherwise it does nothing.\n",
        .opts = reencode_opts,
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct reencode_state),
        .opt = reencode_opt,
        .run = reencode_run,
};
