/*
 * cli_transfer.c: the hsamem export and import commands: a user's memory as an export stream on
 * stdout, and a new memory from one on stdin.
 *
 * Neither goes to or comes from a terminal: an export stream is binary, and an import waiting on
 * a terminal would look like a hang. With stderr on a terminal both show the progress line of
 * cli_progress.h in entries: the export's as its pages are written, the import's as the daemon
 * reports each batch committed (hsamem_set_progress()). A failure of our own stdin or stdout exits
 * 4, not 1: the stream callbacks remember it, as the library cannot tell it from an errno sent by
 * the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "cli_filter.h"
#include "cli_format.h"
#include "cli_progress.h"
#include "cli_text.h"

static int
export_write(void *arg, const void *buf, size_t len)
{
	struct ctx *c = arg;
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return c->io_err = -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static long
import_read(void *arg, void *buf, size_t len)
{
	struct ctx *c = arg;
	ssize_t n;

	do
		n = read(STDIN_FILENO, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return c->io_err = -errno;
	return (long)n;
}

/* hsamem_set_progress()'s callback: the progress line in entries, of the stream's total. */
static void
transfer_progress(void *arg, const struct hsamem_transfer *sofar, uint64_t entries_total)
{
	cli_progress_update(arg, sofar->entries, entries_total, NULL);
}

/* Runs the export or import of user with the progress line shown on a terminal. */
static int
with_progress(struct ctx *c, const char *verb, const char *user, const struct hsamem_filter *f,
              struct hsamem_transfer *t)
{
	struct cli_progress p;
	char label[HSAMEM_NAME_MAX + 16];
	int err;

	snprintf(label, sizeof(label), "%s %s", verb, user);
	cli_progress_init(&p, label, "entries");
	hsamem_set_progress(c->h, p.on ? transfer_progress : NULL, &p);
	if (verb[0] == 'e')
		err = hsamem_export_filtered(c->h, user, f, export_write, c, t);
	else
		err = hsamem_import_cb(c->h, user, import_read, c, t);
	hsamem_set_progress(c->h, NULL, NULL);
	cli_progress_end(&p);
	return err;
}

static int
export_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_transfer t;
	char b[16];
	int rv, err;

	if (isatty(STDOUT_FILENO))
		return cli_usage(c, "refusing to write an export stream to a terminal; "
		                    "redirect stdout to a file");
	if ((rv = cli_connect(c)) != 0)
		return rv;
	/* A large memory takes a while; the per-request timeout still bounds each page. */
	err = with_progress(c, "export", args[0], cli_filter_get(state), &t);
	if (err != 0 && c->io_err != 0 && err == c->io_err)
		return cli_io_error(c, "writing stdout", err);
	if (err != 0)
		return cli_fail(c, err);
	/* stdout holds the stream: the summary goes to a terminal on stderr only. */
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "hsamem: export: %s: %llu entries, %llu chunks, %s\n", args[0],
		        (unsigned long long)t.entries, (unsigned long long)t.chunks,
		        fmt_bytes(t.bytes, b, sizeof(b)));
	return EXIT_OK;
}

static int
export_opt(struct ctx *c, void *state, int id, const char *arg)
{
	return cli_filter_opt(c, state, id, arg);
}

static const struct option export_options[] = {
        CLI_FILTER_OPTIONS,
        {0},
};

static const char export_details[] =
        "With stderr on a terminal, shows the entries written, rate and time left.\n"
        "With a filter, the stream lists the matching entries only, without chunks: a\n"
        "listing that import refuses, not a backup.\n\n" CLI_FILTER_HELP;

const struct cmd cmd_export = {
        .name = "export",
        .args = "USER [FILTER] > FILE",
        .summary = "Writes USER's memory to stdout as an export stream (not to a terminal).",
        .details = export_details,
        .opts = export_options,
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct cli_filter),
        .opt = export_opt,
        .run = export_run,
};

static int
import_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_transfer t;
	int rv, err;

	if (isatty(STDIN_FILENO))
		return cli_usage(c, "reads an export stream from stdin; redirect it from a file");
	if ((rv = cli_connect(c)) != 0)
		return rv;
	err = with_progress(c, "import", args[0], NULL, &t);
	if (err != 0 && c->io_err != 0 && err == c->io_err)
		return cli_io_error(c, "reading stdin", err);
	if (err != 0)
		return cli_fail(c, err);
	print_transfer("imported", args[0], &t);
	return EXIT_OK;
}

const struct cmd cmd_import = {
        .name = "import",
        .args = "USER < FILE",
        .summary = "Creates USER's memory from an export stream on stdin; USER must not exist.",
        .details = "With stderr on a terminal, shows the entries the daemon has committed, rate\n"
                   "and time left.\n",
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .run = import_run,
};
