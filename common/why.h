/*
 * why.h: the one way a function that fills a caller's "why" buffer (a sentence naming what is
 * wrong: a model file, a tensor, a spec field) reports a failure.
 */
#ifndef HSAMEM_WHY_H
#define HSAMEM_WHY_H

#include <stddef.h>

/* Writes the printf-style message to why (when why is not NULL and why_len > 0); returns rc. */
int why_fail(char *why, size_t why_len, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#endif
