/*
 * cli_progress.h: the one progress line of the hsamem CLI's long commands (append --lines,
 * import, export, reencode): on stderr, rewritten in place, only when stderr is a terminal and
 * --json is not given, so that pipes, files and scripts see nothing of it.
 */
#ifndef HSAMEM_CLI_PROGRESS_H
#define HSAMEM_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct cli_progress {
	const char *label; /* e.g. "append alice" */
	const char *unit;  /* what done and total count, e.g. "entries" */
	bool on;           /* stderr is a terminal and --json is not given */
	bool shown;        /* a line is on the screen */
	bool started;      /* base and t0 are set */
	uint64_t base;     /* done at the first update: the rate is of this run */
	double t0, last;   /* CLOCK_MONOTONIC seconds: first update, last line drawn */
};

/* Prepares p for label and unit (both kept, not copied); draws nothing yet. */
void cli_progress_init(struct cli_progress *p, const char *label, const char *unit);
/*
 * Shows done of total (total 0: unknown; then no share and no time left), the rate of this run
 * in unit per second and, with a total, the time left; detail (NULL: none) goes before the count.
 * Redraws at most ten times a second.
 */
void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total, const char *detail);
/* Clears the line, if one is shown, so that what follows starts on a clean line. */
void cli_progress_end(struct cli_progress *p);

#endif
