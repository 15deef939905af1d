/*
 * cli_json.h: the JSON writer of the hsamem CLI: one compact document per command, written to
 * stdout as it is built, with no tree in memory.
 */
#ifndef HSAMEM_CLI_JSON_H
#define HSAMEM_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* key is NULL inside arrays and for the top-level value. */
void j_obj(const char *key);
void j_arr(const char *key);
void j_end(void); /* closes the innermost object or array; a newline after the top level */
void j_str(const char *key, const char *v); /* NULL writes "" */
void j_u64(const char *key, uint64_t v);
void j_i64(const char *key, int64_t v);
void j_f64(const char *key, double v); /* %.9g; NaN and infinities write null */
void j_bool(const char *key, bool v);
void j_null(const char *key);
void j_base64(const char *key, const void *data, size_t len);
/* Writes s as a JSON string literal (UTF-8 checked: invalid bytes become U+FFFD). */
void j_write_string(const char *s);

#endif
