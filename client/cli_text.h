/*
 * cli_text.h: how the hsamem CLI writes numbers, times and text for people: units, durations, local
 * times, and text from the daemon made safe for a terminal, trimmed to a width, with the tokens a
 * query weighed most highlighted.
 */
#ifndef HSAMEM_CLI_TEXT_H
#define HSAMEM_CLI_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem.h"

/* "1.5 GiB", "312 B"; buf of at least 16 bytes. */
const char *fmt_bytes(uint64_t n, char *buf, size_t size);
/* "3d 04h", "2h 05m", "4m 10s", "12.3 s", "120 ms"; buf of at least 24 bytes. */
const char *fmt_duration(uint64_t ms, char *buf, size_t size);
/* "2025-01-02 10:11:12" in local time, or "-" for 0; buf of at least 24 bytes. */
const char *fmt_time(int64_t ms, char *buf, size_t size);

/* A malloc'd copy of s with every run of whitespace or control characters made one space,
 * trimmed; NULL when out of memory. */
char *text_collapse(const char *s);

/*
 * Prints raw collapsed, in at most width code points (a window around the first highlight when it
 * must be cut), with the words of the heaviest of tok[0..n_tok) highlighted: bold (ANSI) when
 * bold, else in [brackets]. tok may be NULL.
 */
void text_print(const char *raw, const struct hsamem_token_weight *tok, size_t n_tok, int width,
                bool bold);

#endif
