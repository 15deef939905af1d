/*
 * why.c: filling a caller's "why" buffer on failure (why.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "why.h"

int
why_fail(char *why, size_t why_len, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && why_len > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return rc;
}
