/*
 * cli_json.c: the JSON writer of the hsamem CLI: objects, arrays, strings, numbers, booleans and
 * base64 blobs, written straight to stdout in the order the caller gives them.
 *
 * It is written by hand because it is this small: a JSON library would bring a new dependency
 * (the project has none) and a document tree the CLI does not need, since every document is
 * written once, front to back. The caller (cli_format.c) knows the nesting; this file only
 * remembers, per open bracket, whether a comma is due.
 *
 * Strings are checked as UTF-8: an invalid byte becomes U+FFFD, so that the output is always
 * valid JSON, whatever a memory holds. Numbers that JSON cannot hold (NaN, infinities) are null.
 */
#include <math.h>
#include <stdio.h>

#include "cli_json.h"

#define J_DEPTH 32

/* Per open bracket: its kind, and whether a value was written in it (so the next needs a comma).
 * Nesting is shallow and fixed by this file's own callers. */
static char j_kind[J_DEPTH];
static bool j_need_comma[J_DEPTH];
static int j_depth;

static void
j_key(const char *key)
{
	if (j_depth > 0 && j_depth <= J_DEPTH) {
		if (j_need_comma[j_depth - 1])
			putchar(',');
		j_need_comma[j_depth - 1] = true;
	}
	if (key != NULL) {
		j_write_string(key);
		putchar(':');
	}
}

static void
j_open(const char *key, char c)
{
	j_key(key);
	putchar(c);
	if (j_depth < J_DEPTH) {
		j_kind[j_depth] = c;
		j_need_comma[j_depth] = false;
	}
	j_depth++;
}

void
j_obj(const char *key)
{
	j_open(key, '{');
}

void
j_arr(const char *key)
{
	j_open(key, '[');
}

void
j_end(void)
{
	j_depth--;
	putchar(j_depth < J_DEPTH && j_kind[j_depth] == '{' ? '}' : ']');
	if (j_depth == 0)
		putchar('\n');
}

/* Decodes one UTF-8 sequence at s; returns its length, or 0 if it is not valid. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
j_write_string(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	putchar('"');
	while (*s != '\0') {
		if (*s == '"' || *s == '\\') {
			putchar('\\');
			putchar(*s++);
		} else if (*s == '\n') {
			fputs("\\n", stdout);
			s++;
		} else if (*s == '\t') {
			fputs("\\t", stdout);
			s++;
		} else if (*s == '\r') {
			fputs("\\r", stdout);
			s++;
		} else if (*s < 0x20 || *s == 0x7f) {
			printf("\\u%04x", *s++);
		} else if ((n = utf8_len(s)) == 0) {
			fputs("\\ufffd", stdout);
			s++;
		} else {
			fwrite(s, 1, n, stdout);
			s += n;
		}
	}
	putchar('"');
}

void
j_str(const char *key, const char *v)
{
	j_key(key);
	j_write_string(v != NULL ? v : "");
}

void
j_u64(const char *key, uint64_t v)
{
	j_key(key);
	printf("%llu", (unsigned long long)v);
}

void
j_i64(const char *key, int64_t v)
{
	j_key(key);
	printf("%lld", (long long)v);
}

void
j_f64(const char *key, double v)
{
	j_key(key);
	if (isfinite(v))
		printf("%.9g", v);
	else
		fputs("null", stdout);
}

void
j_bool(const char *key, bool v)
{
	j_key(key);
	fputs(v ? "true" : "false", stdout);
}

void
j_null(const char *key)
{
	j_key(key);
	fputs("null", stdout);
}

void
j_base64(const char *key, const void *data, size_t len)
{
	static const char tab[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t i;

	j_key(key);
	putchar('"');
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		putchar(tab[v >> 18]);
		putchar(tab[v >> 12 & 63]);
		putchar(tab[v >> 6 & 63]);
		putchar(tab[v & 63]);
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		printf("%c%c==", tab[v >> 18], tab[v >> 12 & 63]);
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		printf("%c%c%c=", tab[v >> 18], tab[v >> 12 & 63], tab[v >> 6 & 63]);
	}
	putchar('"');
}
