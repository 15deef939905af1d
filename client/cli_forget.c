/*
 * cli_forget.c: the hsamem commands that take entries back: forget (with a confirmation asked
 * on a terminal), update and history (hsamem(1), hsamem(7) FORGETTING).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_filter.h"
#include "cli_json.h"
#include "cli_render.h"

enum { O_YES = 256, O_KEEP, O_ROLE };

struct forget_state {
	bool yes, keep;
	enum hsamem_role role;
	struct cli_filter f; /* forget: the entries to forget instead of SEQ */
};

static const struct forget_state forget_defaults = {.role = HSAMEM_ROLE_USER};

static int
forget_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct forget_state *s = state;
	bool ok = false;
	if (id >= O_F_SCOPE)
		return cli_filter_opt(c, &s->f, id, arg);
	switch (id) {
	case O_YES: s->yes = true; break;
	case O_KEEP: s->keep = true; break;
	case O_ROLE:
		for (int r = HSAMEM_ROLE_OTHER; r <= HSAMEM_ROLE_TOOL; r++)
			if (strcmp(arg, hsamem_role_name(r)) == 0) {
				s->role = r;
				ok = true;
			}
		if (!ok)
			return cli_usage(c, "--role is user, assistant, system, tool or other");
		break;
	}
	return -1;
}

/* SEQ or FROM-TO. */
static bool
parse_range(const char *arg, uint64_t *first, uint64_t *last)
{
	char buf[64];
	const char *dash = strchr(arg, '-');
	if (dash == NULL) {
		if (!cli_parse_u64(arg, UINT64_MAX, first))
			return false;
		*last = *first;
		return true;
	}
	if ((size_t)(dash - arg) >= sizeof(buf))
		return false;
	memcpy(buf, arg, (size_t)(dash - arg));
	buf[dash - arg] = '\0';
	return cli_parse_u64(buf, UINT64_MAX, first) && cli_parse_u64(dash + 1, UINT64_MAX, last) &&
	       *first <= *last;
}

/* Asks on the terminal; true when the answer is yes. first > last: the entries that pass the
 * filter. */
static bool
confirm(const char *user, uint64_t first, uint64_t last)
{
	char line[16];
	if (first > last)
		fprintf(stderr,
		        "forget every entry of '%s' that passes the filter? It cannot be undone. "
		        "[y/N] ",
		        user);
	else if (first == last)
		fprintf(stderr, "forget entry %llu of '%s'? It cannot be undone. [y/N] ",
		        (unsigned long long)first, user);
	else
		fprintf(stderr, "forget entries %llu to %llu of '%s'? It cannot be undone. [y/N] ",
		        (unsigned long long)first, (unsigned long long)last, user);
	fflush(stderr);
	return fgets(line, sizeof(line), stdin) != NULL && (line[0] == 'y' || line[0] == 'Y');
}

static int
forget_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct forget_state *s = state;
	struct hsamem_forget_info f;
	uint64_t first, last;
	int rv, err;

	if (s->f.any && n_args > 1)
		return cli_usage(c, "give SEQ or a filter, not both");
	if (!s->f.any && n_args < 2)
		return cli_usage(c, "no SEQ given, and no filter");
	if (s->f.any) {
		first = 1; /* no range: confirm names the filter */
		last = 0;
	} else if (!parse_range(args[1], &first, &last)) {
		return cli_usage(c, "SEQ is an entry number, or FROM-TO with FROM <= TO");
	}
	if (!s->yes && !isatty(STDIN_FILENO))
		return cli_usage(c, "not on a terminal: give --yes to forget without asking");
	if (!s->yes && !confirm(args[0], first, last)) {
		fprintf(stderr, "hsamem: nothing forgotten\n");
		return EXIT_USAGE;
	}
	if ((rv = cli_connect(c)) != 0)
		return rv;
	err = s->f.any ? hsamem_forget_filtered(c->h, args[0], &s->f.f, &f)
	               : hsamem_forget(c->h, args[0], first, last, &f);
	if (err != 0)
		return cli_fail(c, err);
	if (out.json) {
		j_obj(NULL);
		j_str("user", args[0]);
		j_u64("entries", f.entries);
		j_u64("chunks", f.chunks);
		j_end();
	} else {
		printf("%s: forgot %llu entries; %llu chunks encoded again\n", args[0],
		       (unsigned long long)f.entries, (unsigned long long)f.chunks);
	}
	return EXIT_OK;
}

static const struct option forget_opts[] = {
        {"yes", no_argument, NULL, O_YES},
        CLI_FILTER_OPTIONS,
        {0},
};

const struct cmd cmd_forget = {
        .name = "forget",
        .args = "USER SEQ|FROM-TO|FILTER... [--yes]",
        .summary = "Forgets entries of USER: their text and tokens, and all derived from them.",
        .details = "  --yes              do not ask (required when stdin is not a terminal)\n"
                   "Instead of SEQ, a filter forgets every entry that passes it:\n" CLI_FILTER_HELP
                   "Nothing of a forgotten entry stays in the store; its number remains, with no "
                   "text.\n",
        .opts = forget_opts,
        .min_args = 1,
        .max_args = 2,
        .missing = "no USER given",
        .state_size = sizeof(struct forget_state),
        .defaults = &forget_defaults,
        .opt = forget_opt,
        .run = forget_run,
};

static int
update_run(struct ctx *c, void *state, char **args, int n_args)
{
	const struct forget_state *s = state;
	struct hsamem_update_info u;
	uint64_t seq;
	int rv, err;

	if (!cli_parse_u64(args[1], UINT64_MAX, &seq))
		return cli_usage(c, "SEQ is an entry number");
	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_update(c->h, args[0], seq, s->role, args[2], s->keep, &u)) != 0)
		return cli_fail(c, err);
	if (out.json) {
		j_obj(NULL);
		j_str("user", args[0]);
		j_u64("seq", u.seq);
		j_u64("replaces", u.replaces);
		j_bool("forgotten", u.forgotten);
		j_end();
	} else {
		printf("%s: entry %llu replaces entry %llu (%s)\n", args[0],
		       (unsigned long long)u.seq, (unsigned long long)u.replaces,
		       u.forgotten ? "forgotten" : "kept as history");
	}
	return EXIT_OK;
}

static const struct option update_opts[] = {
        {"keep-history", no_argument, NULL, O_KEEP},
        {"role", required_argument, NULL, O_ROLE},
        {0},
};

const struct cmd cmd_update = {
        .name = "update",
        .args = "USER SEQ TEXT [--keep-history] [--role ROLE]",
        .summary = "Replaces entry SEQ of USER by TEXT, a new entry; the old one is forgotten.",
        .details = "  --keep-history     keep the old entry, marked as replaced\n"
                   "  --role ROLE        user (default), assistant, system, tool or other\n",
        .opts = update_opts,
        .min_args = 3,
        .max_args = 3,
        .missing = "no USER, SEQ and TEXT given",
        .state_size = sizeof(struct forget_state),
        .defaults = &forget_defaults,
        .opt = forget_opt,
        .run = update_run,
};

static int
history_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct hsamem_history *h;
	uint64_t seq;
	int rv, err;

	if (!cli_parse_u64(args[1], UINT64_MAX, &seq))
		return cli_usage(c, "SEQ is an entry number");
	if ((rv = cli_connect(c)) != 0)
		return rv;
	if ((err = hsamem_history(c->h, args[0], seq, &h)) != 0)
		return cli_fail(c, err);
	if (out.json) {
		j_obj(NULL);
		j_str("user", args[0]);
		j_arr("entries");
	}
	for (size_t i = 0; i < h->n_items; i++) {
		const struct hsamem_history_item *it = &h->items[i];
		if (out.json) {
			j_obj(NULL);
			j_u64("seq", it->entry.seq);
			j_i64("timestamp_ms", it->entry.timestamp_ms);
			j_bool("forgotten", it->forgotten);
			if (it->has_replaces)
				j_u64("replaces", it->replaces);
			if (it->has_replaced_by)
				j_u64("replaced_by", it->replaced_by);
			j_str("text", it->entry.text);
			j_end();
		} else {
			printf("%llu\t%s\t%s\n", (unsigned long long)it->entry.seq,
			       it->forgotten ? "forgotten"
			                     : (it->has_replaced_by ? "replaced" : "current"),
			       it->entry.text);
		}
	}
	if (out.json) {
		j_end();
		j_end();
	}
	hsamem_result_free(h);
	return EXIT_OK;
}

const struct cmd cmd_history = {
        .name = "history",
        .args = "USER SEQ",
        .summary = "Lists the chain of updates of entry SEQ of USER, oldest first.",
        .min_args = 2,
        .max_args = 2,
        .missing = "no USER and SEQ given",
        .run = history_run,
};
