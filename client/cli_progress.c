/*
 * cli_progress.c: the progress line of the CLI's long commands (cli_progress.h says when it is
 * drawn). One line on stderr, started with '\r' and ended by erasing the rest of the line, so
 * each update replaces the last; the rate counts only what this run did, so a command that goes
 * on where an interrupted one stopped does not claim the earlier work.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli_progress.h"
#include "cli_render.h"

#define REDRAW_S 0.1

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
cli_progress_init(struct cli_progress *p, const char *label, const char *unit)
{
	*p = (struct cli_progress){.label = label, .unit = unit};
	p->on = isatty(STDERR_FILENO) && !out.json;
}

void
cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total, const char *detail)
{
	double t = now(), rate;

	if (!p->on)
		return;
	if (!p->started) {
		p->started = true;
		p->base = done;
		p->t0 = t;
	}
	if (p->shown && t - p->last < REDRAW_S && (total == 0 || done < total))
		return;
	p->last = t;
	rate = t > p->t0 && done > p->base ? (double)(done - p->base) / (t - p->t0) : 0;
	fprintf(stderr, "\rhsamem: %s: ", p->label);
	if (detail != NULL)
		fprintf(stderr, "%s, ", detail);
	fprintf(stderr, "%llu", (unsigned long long)done);
	if (total > 0)
		fprintf(stderr, "/%llu %s (%llu%%)", (unsigned long long)total, p->unit,
		        (unsigned long long)(done >= total ? 100 : done * 100 / total));
	else
		fprintf(stderr, " %s", p->unit);
	if (rate > 0)
		fprintf(stderr, ", %.0f %s/s", rate, p->unit);
	if (rate > 0 && total > done) {
		unsigned long s = (unsigned long)((double)(total - done) / rate + 0.5);
		fprintf(stderr, ", %lu:%02lu:%02lu left", s / 3600, s / 60 % 60, s % 60);
	}
	fputs("\033[K", stderr);
	fflush(stderr);
	p->shown = true;
}

void
cli_progress_end(struct cli_progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}
