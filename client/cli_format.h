/*
 * cli_format.h: how the hsamem CLI shows each result: for people, or as JSON with --json.
 * The command files call one print_*() per result; cli_format.c and cli_format_content.c own
 * what they look like, in the style cli.c sets (struct out_style, cli_render.h).
 */
#ifndef HSAMEM_CLI_FORMAT_H
#define HSAMEM_CLI_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem.h"

void print_version(void);
void print_ping(const char *url, const struct hsamem_server *s, double rtt_ms);
void print_memory(const struct hsamem_memory *m);
void print_append(const char *user, const struct hsamem_append_info *a);
void print_flush(const char *user, const struct hsamem_flush_info *f);
void print_query(const char *user, const struct hsamem_query_result *q);
/* The entry view of a query; message: the daemon's (why nothing was found), or NULL. */
void print_recall(const char *user, const struct hsamem_query_result *q, const char *message);
void print_ask(const char *user, const struct hsamem_ask_result *r);
/* positions: the request's (NULL: all after the stream); out_file: where the output went, or
 * NULL. */
void print_attend(const char *user, const struct hsamem_attend_result *r, const uint64_t *positions,
                  const char *out_file);
void print_entries(const char *user, const struct hsamem_entry_list *l);
void print_chunks(const char *user, const struct hsamem_chunk_list *l, bool tensors);
void print_users(const struct hsamem_user_list *l);
void print_stats(const struct hsamem_stats *s);
void print_delete(const char *user, const struct hsamem_delete_info *d);
/* seconds: how long the command took. */
void print_reencode(const char *user, const struct hsamem_reencode_info *r, double seconds);
/* verb: what was done, for people ("imported"). */
void print_transfer(const char *verb, const char *user, const struct hsamem_transfer *t);

#endif
