/*
 * cli_admin.c: the hsamem commands that work on the daemon's whole store, for its
 * administrators: backup (a copy into a directory on the daemon's side) and compact (the space
 * of deleted memories given back). Both can take long, so unless -t says otherwise they wait for
 * the reply without a limit.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_render.h"

/* The backup's result with the directory it went to. */
struct backup_view {
	const char *path;
	uint64_t bytes, ms;
};

static const struct field backup_fields[] = {
        FIELD(struct backup_view, path, K_STR),
        FIELD(struct backup_view, bytes, K_U64),
        FIELD(struct backup_view, ms, K_U64),
};
static const struct shape backup_shape = SHAPE(struct backup_view, backup_fields);

static double
mb_per_s(uint64_t bytes, uint64_t ms)
{
	return ms > 0 ? (double)bytes / 1e6 / ((double)ms / 1e3) : 0;
}

static void
backup_human(const struct view *v)
{
	const struct backup_view *b = v->res;
	printf("backup: %s/data.mdb, %.1f MiB in %.1f s (%.0f MB/s)\n", b->path,
	       (double)b->bytes / (1 << 20), (double)b->ms / 1e3, mb_per_s(b->bytes, b->ms));
}

static const struct result backup_result = {&backup_shape, 0, backup_human};

static int
backup_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct backup_view v = {.path = args[0]};
	struct hsamem_backup_info info;
	char cwd[PATH_MAX], abs[2 * PATH_MAX];
	int rv, err;

	(void)state;
	(void)n_args;
	/* a relative PATH is taken from here: right when the daemon runs on this machine */
	if (args[0][0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
		snprintf(abs, sizeof(abs), "%s/%s", cwd, args[0]);
		v.path = abs;
	}
	if (c->timeout_ms == 0)
		c->timeout_ms = -1;
	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_backup(c->h, v.path, &info)) != 0)
		return cli_fail(c, err);
	v.bytes = info.bytes;
	v.ms = info.ms;
	render(&backup_result, &(struct view){.res = &v});
	return EXIT_OK;
}

const struct cmd cmd_backup = {
        .name = "backup",
        .args = "PATH",
        .summary = "Copies the daemon's whole store into directory PATH on the daemon's side, "
                   "while it serves.",
        .details = "PATH must not exist (its parent must) or be an empty directory; a relative "
                   "PATH is made absolute\nfrom the current directory. It then holds data.mdb: "
                   "`hsamemd -d PATH` serves the copy.\nAdministrators only. Waits for the reply "
                   "without a limit unless -t is given.\n",
        .min_args = 1,
        .max_args = 1,
        .missing = "no PATH given",
        .run = backup_run,
};

static const struct field compact_fields[] = {
        FIELD(struct hsamem_compact_info, bytes_before, K_U64),
        FIELD(struct hsamem_compact_info, bytes_after, K_U64),
        FIELD(struct hsamem_compact_info, ms, K_U64),
        FIELD(struct hsamem_compact_info, pause_ms, K_U64),
};
static const struct shape compact_shape = SHAPE(struct hsamem_compact_info, compact_fields);

static void
compact_human(const struct view *v)
{
	const struct hsamem_compact_info *r = v->res;
	printf("compact: %.1f MiB -> %.1f MiB in %.1f s, of which %.1f s paused\n",
	       (double)r->bytes_before / (1 << 20), (double)r->bytes_after / (1 << 20),
	       (double)r->ms / 1e3, (double)r->pause_ms / 1e3);
}

static const struct result compact_result = {&compact_shape, 0, compact_human};

static int
compact_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_compact_info r;
	int rv, err;

	(void)state;
	(void)args;
	(void)n_args;
	if (c->timeout_ms == 0)
		c->timeout_ms = -1;
	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_compact(c->h, &r)) != 0)
		return cli_fail(c, err);
	render(&compact_result, &(struct view){.res = &r});
	return EXIT_OK;
}

const struct cmd cmd_compact = {
        .name = "compact",
        .args = "",
        .summary = "Gives back the space of deleted memories: the daemon rewrites its store "
                   "with only what is in use.",
        .details = "Requests wait for a short pause at its end (hsamemd(8), OPERATIONS). "
                   "Administrators only.\nWaits for the reply without a limit unless -t is "
                   "given.\n",
        .min_args = 0,
        .max_args = 0,
        .run = compact_run,
};
