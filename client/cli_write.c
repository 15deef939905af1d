/*
 * cli_write.c: the hsamem commands that change a memory: create, append, flush and delete.
 *
 * append sends one entry (TEXT, or all of stdin), or with --lines one entry per non-empty line of
 * stdin, in batches of at most APPEND_BATCH_ENTRIES entries or APPEND_BATCH_BYTES bytes, each
 * batch one atomic request; what the batches did is shown as one result. A failed batch ends the
 * command: the batches before it stay appended. stdin is read whole before anything is sent, and
 * refused (EXIT_USAGE) when it holds a NUL byte, which no text can hold.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_filter.h"
#include "cli_format.h"
#include "cli_progress.h"

#define APPEND_BATCH_ENTRIES 256
#define APPEND_BATCH_BYTES   (1u << 20)
#define MAX_TAGS             64

/* ---- create ---- */

enum { O_ENC = 256, O_TOK, O_REV, O_S, O_HKV, O_DH, O_HQ, O_DR, O_DT, O_W, O_OB1, O_K };

static int
create_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct hsamem_spec *spec = state;
	uint32_t *num = NULL;
	int t;

	switch (id) {
	case O_ENC: spec->encoder = arg; break;
	case O_TOK: spec->tokenizer = arg; break;
	case O_REV: num = &spec->revision; break;
	case O_S: num = &spec->chunk_size; break;
	case O_HKV: num = &spec->h_kv; break;
	case O_DH: num = &spec->d_h; break;
	case O_HQ: num = &spec->h_q; break;
	case O_DR: num = &spec->d_r; break;
	case O_K: num = &spec->top_k; break;
	case O_OB1: spec->off_by_one = true; break;
	case O_DT:
		for (t = HSAMEM_F16; t <= HSAMEM_F32; t++)
			if (strcmp(arg, hsamem_dtype_name(t)) == 0)
				spec->dtype = t;
		if (spec->dtype == HSAMEM_DTYPE_DEFAULT)
			return cli_usage(c, "--dtype is f16, bf16 or f32");
		break;
	case O_W:
		for (t = HSAMEM_SOFTMAX; t <= HSAMEM_STICKBREAK; t++)
			if (strcmp(arg, hsamem_weighting_name(t)) == 0)
				spec->weighting = t;
		if (spec->weighting == HSAMEM_WEIGHTING_DEFAULT)
			return cli_usage(c, "--weighting is softmax or stickbreak");
		break;
	}
	if (num != NULL && !cli_parse_u32(arg, num))
		return cli_usage(c, "'%s' is not a number", arg);
	return -1;
}

static int
create_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct hsamem_spec *spec = state;
	struct hsamem_memory *m;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_create(c->h, args[0], spec, &m)) != 0)
		return cli_fail(c, err);
	print_memory(m);
	hsamem_result_free(m);
	return EXIT_OK;
}

static const struct option create_options[] = {
        {"encoder", required_argument, NULL, O_ENC},
        {"tokenizer", required_argument, NULL, O_TOK},
        {"revision", required_argument, NULL, O_REV},
        {"chunk-size", required_argument, NULL, O_S},
        {"h-kv", required_argument, NULL, O_HKV},
        {"d-h", required_argument, NULL, O_DH},
        {"h-q", required_argument, NULL, O_HQ},
        {"d-r", required_argument, NULL, O_DR},
        {"dtype", required_argument, NULL, O_DT},
        {"weighting", required_argument, NULL, O_W},
        {"off-by-one", no_argument, NULL, O_OB1},
        {"top-k", required_argument, NULL, O_K},
        {0},
};

static const char create_details[] =
        "Options left out take the encoder's defaults. Creating is optional for built-in\n"
        "encoders: the first append creates the memory with the defaults.\n\n"
        "  --encoder NAME     lexical (built in, the default), hsa-small (built in, learned)\n"
        "                     or client (K/V/L from the caller)\n"
        "  --tokenizer NAME   --revision N: the encoder's tokenizer and revision\n"
        "  --chunk-size N     S, tokens per chunk\n"
        "  --h-kv N --d-h N   key/value heads and head dimension\n"
        "  --h-q N --d-r N    query heads (a multiple of h-kv), landmark dimension\n"
        "  --dtype T          element type of stored tensors\n"
        "  --weighting W      fusion of the selected chunks\n"
        "  --off-by-one       softmax-off-by-one inside chunks\n"
        "  --top-k N          default k of queries\n";

const struct cmd cmd_create = {
        .name = "create",
        .args = "USER [--encoder NAME] [--chunk-size N] [--h-kv N] [--d-h N] [--h-q N]\n"
                "       [--d-r N] [--dtype f16|bf16|f32] [--weighting softmax|stickbreak]\n"
                "       [--off-by-one] [--top-k N]",
        .summary = "Creates the memory of USER with an explicit spec.",
        .details = create_details,
        .opts = create_options,
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct hsamem_spec),
        .opt = create_opt,
        .run = create_run,
};

/* ---- append ---- */

enum { O_ROLE = 256, O_TAG, O_LINES, O_NOCREATE, O_SCOPE, O_META, O_TIME };

struct append_state {
	enum hsamem_role role;
	const char *tags[MAX_TAGS];
	size_t n_tags;
	unsigned flags;
	bool lines;
	int64_t timestamp_ms; /* --time; 0: the daemon's clock */
	struct cli_pairs scope, meta;
};

static const struct append_state append_defaults = {.role = HSAMEM_ROLE_USER};

static int
append_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct append_state *o = state;
	bool role_ok = false;
	int r;

	switch (id) {
	case O_ROLE:
		for (r = HSAMEM_ROLE_OTHER; r <= HSAMEM_ROLE_TOOL; r++)
			if (strcmp(arg, hsamem_role_name(r)) == 0) {
				o->role = r;
				role_ok = true;
			}
		if (!role_ok)
			return cli_usage(c, "--role is user, assistant, system, tool or other");
		break;
	case O_TAG:
		if (o->n_tags == MAX_TAGS)
			return cli_usage(c, "at most %d tags", MAX_TAGS);
		o->tags[o->n_tags++] = arg;
		break;
	case O_LINES: o->lines = true; break;
	case O_NOCREATE: o->flags |= HSAMEM_APPEND_NO_CREATE; break;
	case O_SCOPE: return cli_pairs_add(c, &o->scope, arg, true, "--scope");
	case O_META: return cli_pairs_add(c, &o->meta, arg, false, "--meta");
	case O_TIME:
		if (!cli_parse_time(arg, &o->timestamp_ms) || o->timestamp_ms == 0)
			return cli_usage(c,
			                 "--time takes an ISO 8601 date or time (2026-11-01, "
			                 "2026-11-01T09:30:00+01:00), not '%s'",
			                 arg);
		break;
	}
	return -1;
}

/* The entries' scope and metadata for hsamem_append_attrs: the same for all n (at most
 * APPEND_BATCH_ENTRIES), or NULL when none was given. */
static const struct hsamem_attrs *
attrs_of(const struct append_state *o, size_t n)
{
	static struct hsamem_attrs all[APPEND_BATCH_ENTRIES];
	if (o->scope.n + o->meta.n == 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		all[i] = (struct hsamem_attrs){o->scope.v, o->scope.n, o->meta.v, o->meta.n};
	return all;
}

/* Accumulates the outcome of several append requests as one. */
static void
merge_append(struct hsamem_append_info *sum, const struct hsamem_append_info *a, bool first)
{
	if (first) {
		*sum = *a;
		return;
	}
	sum->count += a->count;
	sum->tokens = a->tokens;
	sum->chunks = a->chunks;
	sum->sealed += a->sealed;
	sum->created = sum->created || a->created;
}

/* Reads all of stdin into *buf (NUL-terminated) and refuses it when it holds a NUL byte: the
 * daemon keeps text as C strings, and the input is checked whole before anything is sent. */
static int
read_input(struct ctx *c, char **buf, size_t *len)
{
	const char *nul, *p;
	size_t line = 1;
	int err;

	if ((err = cli_slurp(STDIN_FILENO, buf, len)) != 0)
		return cli_io_error(c, "reading stdin", err);
	if ((nul = memchr(*buf, '\0', *len)) == NULL)
		return EXIT_OK;
	for (p = *buf; p < nul; p++)
		line += *p == '\n';
	fprintf(stderr,
	        "hsamem: %s: stdin holds a NUL byte (byte %zu, line %zu); text cannot hold NUL "
	        "bytes: nothing was sent\n",
	        c->name, (size_t)(nul - *buf), line);
	free(*buf);
	*buf = NULL;
	return EXIT_USAGE;
}

/* The non-empty lines of the len bytes at input, as append_lines() counts them: the total of its
 * progress line. */
static uint64_t
count_lines(const char *input, size_t len)
{
	const char *line = input, *end = input + len, *nl;
	uint64_t n = 0;

	for (; line < end; line = nl != NULL ? nl + 1 : end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		for (const char *q = line; q < (nl != NULL ? nl : end); q++)
			if (strchr(" \t\v\f\r", *q) == NULL) {
				n++;
				break;
			}
	}
	return n;
}

/* Appends each non-empty line of the len bytes at input (NUL-terminated, holding no other NUL;
 * cut into lines in place) as one entry, in batches. */
static int
append_lines(struct ctx *c, const char *user, const struct append_state *o, char *input, size_t len,
             struct hsamem_append_info *sum)
{
	struct hsamem_entry_in e[APPEND_BATCH_ENTRIES];
	struct hsamem_append_info info;
	struct cli_progress p;
	char label[HSAMEM_NAME_MAX + 16];
	char *line = input, *end = input + len, *nl;
	size_t n = 0, bytes = 0, ll;
	uint64_t total = 0, lines = 0;
	int err, rv = EXIT_OK;

	memset(e, 0, sizeof(e));
	snprintf(label, sizeof(label), "append %s", user);
	cli_progress_init(&p, label, "entries");
	if (p.on)
		lines = count_lines(input, len);
	while (line < end || n > 0) {
		if (line < end) {
			if ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL)
				*nl = '\0';
			ll = strlen(line);
			while (ll > 0 && line[ll - 1] == '\r')
				line[--ll] = '\0';
			if (line[strspn(line, " \t\v\f")] != '\0') {
				e[n].role = o->role;
				e[n].timestamp_ms = o->timestamp_ms;
				e[n].tags = o->tags;
				e[n].n_tags = o->n_tags;
				e[n].text = line;
				n++;
				bytes += ll;
			}
			line = nl != NULL ? nl + 1 : end;
		}
		if (n > 0 &&
		    (line >= end || n == APPEND_BATCH_ENTRIES || bytes >= APPEND_BATCH_BYTES)) {
			err = hsamem_append_attrs(c->h, user, e, attrs_of(o, n), n, NULL, 0,
			                          o->flags, &info);
			if (err != 0) {
				cli_progress_end(&p);
				rv = cli_fail(c, err);
				break;
			}
			merge_append(sum, &info, total == 0);
			total += n;
			n = bytes = 0;
			cli_progress_update(&p, total, lines, NULL);
		}
	}
	cli_progress_end(&p);
	if (rv == EXIT_OK && total == 0)
		rv = cli_usage(c, "no non-empty line on stdin");
	return rv;
}

/* Appends one entry: text (TEXT, or all of stdin). */
static int
append_one(struct ctx *c, const char *user, const struct append_state *o, const char *text,
           struct hsamem_append_info *info)
{
	struct hsamem_entry_in e = {.text = text, .role = o->role, .timestamp_ms = o->timestamp_ms};
	int err;

	if (text[0] == '\0')
		return cli_usage(c, "nothing to append");
	e.tags = o->tags;
	e.n_tags = o->n_tags;
	err = hsamem_append_attrs(c->h, user, &e, attrs_of(o, 1), 1, NULL, 0, o->flags, info);
	return err != 0 ? cli_fail(c, err) : EXIT_OK;
}

static int
append_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct append_state *o = state;
	struct hsamem_append_info info;
	char *input = NULL;
	size_t len = 0;
	int rv;

	if (o->lines && n_args == 2)
		return cli_usage(c, "--lines reads stdin; give no TEXT");
	if (n_args == 1 && (rv = read_input(c, &input, &len)) != EXIT_OK)
		return rv;
	if ((rv = cli_connect(c)) != 0)
		goto out;
	if (o->lines) {
		rv = append_lines(c, args[0], o, input, len, &info);
	} else {
		while (input != NULL && len > 0 &&
		       (input[len - 1] == '\n' || input[len - 1] == '\r'))
			input[--len] = '\0';
		rv = append_one(c, args[0], o, n_args == 2 ? args[1] : input, &info);
	}
	if (rv == EXIT_OK)
		print_append(args[0], &info);
out:
	free(input);
	return rv;
}

static const struct option append_options[] = {
        {"role", required_argument, NULL, O_ROLE},   {"tag", required_argument, NULL, O_TAG},
        {"lines", no_argument, NULL, O_LINES},       {"no-create", no_argument, NULL, O_NOCREATE},
        {"scope", required_argument, NULL, O_SCOPE}, {"meta", required_argument, NULL, O_META},
        {"time", required_argument, NULL, O_TIME},   {0},
};

static const char append_details[] =
        "TEXT is one entry; without TEXT, all of stdin is one entry, or each non-empty\n"
        "line one entry with --lines. stdin is read whole before anything is sent; input\n"
        "with a NUL byte is refused (exit status 2) and nothing is sent.\n\n"
        "  --role ROLE        user (default), assistant, system, tool or other\n"
        "  --tag TAG          a tag for the entries (repeatable)\n"
        "  --scope K=V[,K=V]  the entries' scope, e.g. agent=planner,session=42 (at most 8\n"
        "                     pairs; keys of letters, digits, '_', '.', '-')\n"
        "  --meta K=V         metadata of the entries (repeatable, at most 8)\n"
        "  --time TIME        the entries' time, ISO 8601 (default: the daemon's clock)\n"
        "  --lines            one entry per non-empty line of stdin, sent in batches\n"
        "  --no-create        fail if USER has no memory instead of creating one\n";

const struct cmd cmd_append = {
        .name = "append",
        .args = "USER [TEXT] [--role ROLE] [--tag TAG]... [--scope K=V[,K=V]] [--meta K=V]... "
                "[--time TIME] [--lines] [--no-create]",
        .summary = "Appends entries to USER's memory.",
        .details = append_details,
        .opts = append_options,
        .min_args = 1,
        .max_args = 2,
        .missing = "no USER given",
        .state_size = sizeof(struct append_state),
        .defaults = &append_defaults,
        .opt = append_opt,
        .run = append_run,
};

/* ---- flush and delete ---- */

static int
flush_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_flush_info f;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_flush(c->h, args[0], NULL, &f)) != 0)
		return cli_fail(c, err);
	print_flush(args[0], &f);
	return EXIT_OK;
}

const struct cmd cmd_flush = {
        .name = "flush",
        .args = "USER",
        .summary = "Seals USER's unsealed tail as a padded chunk.",
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .run = flush_run,
};

static int
delete_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_delete_info d;
	int rv, err;

	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_delete(c->h, args[0], &d)) != 0)
		return cli_fail(c, err);
	print_delete(args[0], &d);
	return EXIT_OK;
}

const struct cmd cmd_delete = {
        .name = "delete",
        .args = "USER",
        .summary = "Deletes USER's memory, everything of it. There is no undo.",
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .run = delete_run,
};
