/*
 * log.c: one line per message, written with a single write() so lines from threads never
 * interleave.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int threshold = LOG_INFO;

static const char *const level_names[] = {"emerg",   "alert",  "crit", "err",
                                          "warning", "notice", "info", "debug"};

void
log_set_level(int level)
{
	atomic_store(&threshold, level);
}

int
log_level(void)
{
	return atomic_load(&threshold);
}

int
log_level_parse(const char *name)
{
	if (strcmp(name, "error") == 0)
		return LOG_ERR;
	for (int i = 0; i < 8; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void
log_msg(int level, const char *fmt, ...)
{
	if (level > atomic_load(&threshold))
		return;
	char line[2048];
	size_t n;
	if (getenv("JOURNAL_STREAM") != NULL) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", level);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		                      ".%03ld %s: ", ts.tv_nsec / 1000000, level_names[level & 7]);
	}
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	n = m < 0 ? n : n + (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
