/*
 * cli_filter.h: the hsamem CLI's options for scopes, metadata and filters (hsamem(7), SCOPES AND
 * FILTERS): --scope and --meta of append, and the filter options of the reading commands
 * (query, ask, entries, export): --scope, --where, --tag, --since, --until. cli_filter.c.
 */
#ifndef HSAMEM_CLI_FILTER_H
#define HSAMEM_CLI_FILTER_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli_ctx.h"
#include "hsamem.h"

#define CLI_PAIRS_MAX 8
#define CLI_TAGS_MAX  32

/* Option ids, above those of every command. */
enum { O_F_SCOPE = 400, O_F_META, O_F_WHERE, O_F_TAG, O_F_SINCE, O_F_UNTIL };

/* "key=value" strings taken from the command line (split in place of a copy). */
struct cli_pairs {
	const char *v[CLI_PAIRS_MAX];
	size_t n;
	char buf[CLI_PAIRS_MAX * 168];
	size_t used;
};

/* A filter being built from the command line; f points into the rest. */
struct cli_filter {
	struct hsamem_filter f;
	bool any; /* some filter option was given */
	struct cli_pairs scope, meta;
	const char *tags[CLI_TAGS_MAX];
	enum hsamem_role roles[HSAMEM_ROLE_TOOL + 1];
};

#define CLI_FILTER_OPTIONS                                                                         \
	{"scope", required_argument, NULL, O_F_SCOPE},                                             \
	        {"where", required_argument, NULL, O_F_WHERE},                                     \
	        {"tag", required_argument, NULL, O_F_TAG},                                         \
	        {"since", required_argument, NULL, O_F_SINCE},                                     \
	{                                                                                          \
		"until", required_argument, NULL, O_F_UNTIL                                        \
	}

#define CLI_FILTER_HELP                                                                            \
	"  --scope K=V[,K=V]  only entries of this scope (every pair; repeatable)\n"               \
	"  --where role=R     only entries of role R (repeatable: any of them)\n"                  \
	"  --where K=V        only entries whose metadata has K=V (repeatable: all)\n"             \
	"  --tag TAG          only entries tagged TAG (repeatable: all)\n"                         \
	"  --since TIME       only entries at or after TIME (ISO 8601, UTC unless it says)\n"      \
	"  --until TIME       only entries before TIME\n"

/*
 * Takes one filter option into f: -1 when taken, else the exit status after reporting what is
 * wrong. The filter is ready to use (f->f) once the options are read.
 */
int cli_filter_opt(struct ctx *c, struct cli_filter *f, int id, const char *arg);

/* The filter to send: NULL when no filter option was given. */
const struct hsamem_filter *cli_filter_get(struct cli_filter *f);

/* Adds the pairs of arg ("K=V", or "K=V,K=V" when commas) to p: -1, or the usage exit status. */
int cli_pairs_add(struct ctx *c, struct cli_pairs *p, const char *arg, bool commas,
                  const char *opt);

/*
 * An ISO 8601 date or date-time as Unix ms: YYYY-MM-DD, optionally followed by THH:MM, :SS, a
 * fraction of a second, and Z or an offset (+HH:MM, -HH:MM, +HHMM); without an offset it is UTC.
 * Returns false when s is not one.
 */
bool cli_parse_time(const char *s, int64_t *ms);

#endif
