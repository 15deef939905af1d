/*
 * cli.h: what the hsamem CLI's two files share. cli.c parses the command line and makes the
 * requests; cli_format.c prints results, as tables and text for people or as JSON for scripts.
 * Neither touches the protocol: the CLI is a plain user of libhsamem.
 */
#ifndef HSAMEM_CLI_H
#define HSAMEM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem.h"

/* Exit codes, as documented in --help and hsamem(1). */
enum {
	EXIT_OK = 0,
	EXIT_SERVER = 1,  /* the daemon answered with an error (no such user, bad spec, ...) */
	EXIT_USAGE = 2,   /* bad command line */
	EXIT_CONNECT = 3, /* cannot reach the daemon, or no reply in time */
	EXIT_IO = 4,      /* a local file, stdin or stdout failed */
};

/* How results are shown; set once by cli.c. */
struct out_style {
	bool json;
	bool highlight_bold; /* bold on a terminal; [brackets] elsewhere */
	int width;           /* columns for trimmed text */
};
extern struct out_style out;

/* ---- JSON: one compact document per command, written to stdout ---- */
/* key is NULL inside arrays and for the top-level value. */
void j_obj(const char *key);
void j_arr(const char *key);
void j_end(void); /* closes the innermost object or array; a newline after the top level */
void j_str(const char *key, const char *v);
void j_u64(const char *key, uint64_t v);
void j_i64(const char *key, int64_t v);
void j_f64(const char *key, double v);
void j_bool(const char *key, bool v);
void j_null(const char *key);
void j_base64(const char *key, const void *data, size_t len);
/* Writes s as a JSON string literal (UTF-8 checked: invalid bytes become U+FFFD). */
void j_write_string(const char *s);

/* ---- human-readable helpers ---- */
/* "1.5 GiB", "312 B"; buf of at least 16 bytes. */
const char *fmt_bytes(uint64_t n, char *buf, size_t size);
/* "3d 04h", "2h 05m", "4m 10s", "12.3 s", "120 ms"; buf of at least 24 bytes. */
const char *fmt_duration(uint64_t ms, char *buf, size_t size);
/* "2025-01-02 10:11:12" in local time, or "-" for 0; buf of at least 24 bytes. */
const char *fmt_time(int64_t ms, char *buf, size_t size);

/* ---- per-command output (human or JSON by out.json) ---- */
void print_ping(const char *url, const struct hsamem_server *s, double rtt_ms);
void print_memory(const struct hsamem_memory *m);
void print_append(const char *user, const struct hsamem_append_info *a);
void print_flush(const char *user, const struct hsamem_flush_info *f);
void print_query(const char *user, const struct hsamem_query_result *q);
void print_attend(const char *user, const struct hsamem_attend_result *r, const uint64_t *positions,
                  const char *out_file);
void print_entries(const char *user, const struct hsamem_entry_list *l);
void print_chunks(const char *user, const struct hsamem_chunk_list *l, bool tensors);
void print_users(const struct hsamem_user_list *l);
void print_stats(const struct hsamem_stats *s);
void print_delete(const char *user, const struct hsamem_delete_info *d);
void print_transfer(const char *verb, const char *user, const struct hsamem_transfer *t);

#endif
