/*
 * cli_text.c: numbers, times and daemon text as the hsamem CLI shows them to people.
 *
 * Text from the daemon (entry and chunk text, token spellings, names) is shown with whitespace and
 * control characters collapsed to single spaces, so that nothing a memory holds can move the cursor
 * or change the terminal's state. Widths count code points, an approximation of columns that is
 * right for most scripts in use.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli_text.h"

const char *
fmt_bytes(uint64_t n, char *buf, size_t size)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, size, "%.1f %s", v, unit[u]);
	return buf;
}

const char *
fmt_duration(uint64_t ms, char *buf, size_t size)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		snprintf(buf, size, "%llud %02lluh", (unsigned long long)(s / 86400),
		         (unsigned long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, size, "%lluh %02llum", (unsigned long long)(s / 3600),
		         (unsigned long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(buf, size, "%llum %02llus", (unsigned long long)(s / 60),
		         (unsigned long long)(s % 60));
	else if (ms >= 1000)
		snprintf(buf, size, "%.1f s", (double)ms / 1000);
	else
		snprintf(buf, size, "%llu ms", (unsigned long long)ms);
	return buf;
}

const char *
fmt_time(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == 0 || localtime_r(&t, &tm) == NULL || strftime(buf, size, "%F %T", &tm) == 0)
		snprintf(buf, size, "-");
	return buf;
}

char *
text_collapse(const char *s)
{
	size_t len = strlen(s), i, o = 0;
	char *r = malloc(len + 1);
	bool space = true;

	if (r == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f) {
			if (!space)
				r[o++] = ' ';
			space = true;
		} else {
			r[o++] = (char)c;
			space = false;
		}
	}
	while (o > 0 && r[o - 1] == ' ')
		o--;
	r[o] = '\0';
	return r;
}

/* Code points in s[0..len). */
static size_t
cp_count(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

/* The byte offset after skipping n code points from off (or the end). */
static size_t
cp_advance(const char *s, size_t len, size_t off, size_t n)
{
	while (off < len && n > 0) {
		off++;
		while (off < len && ((unsigned char)s[off] & 0xc0) == 0x80)
			off++;
		n--;
	}
	return off;
}

/* The byte offset n code points before off (or 0). */
static size_t
cp_back(const char *s, size_t off, size_t n)
{
	while (off > 0 && n > 0) {
		off--;
		while (off > 0 && ((unsigned char)s[off] & 0xc0) == 0x80)
			off--;
		n--;
	}
	return off;
}

struct span {
	size_t start, end;
};

/* A token's spelling as a word to look for: tokenizer markers for "starts a word" dropped,
 * lowercased; "" when nothing useful is left. */
static void
token_word(const char *t, char *w, size_t size)
{
	size_t o = 0;

	while (*t == ' ')
		t++;
	if (strncmp(t, "\xe2\x96\x81", 3) == 0) /* U+2581, SentencePiece */
		t += 3;
	else if (strncmp(t, "\xc4\xa0", 2) == 0) /* U+0120, byte-level BPE */
		t += 2;
	else if (strncmp(t, "##", 2) == 0) /* WordPiece continuation */
		t += 2;
	for (; *t != '\0' && o + 1 < size; t++)
		w[o++] = (char)tolower((unsigned char)*t);
	while (o > 0 && w[o - 1] == ' ')
		o--;
	w[o] = '\0';
	if (o < 2)
		w[0] = '\0';
}

/* Where the top tokens occur in text: case-insensitive matches starting at a word boundary,
 * longest token first at each position. Only tokens with at least a quarter of the heaviest
 * one's weight count: the others drew almost no attention. Returns the number of spans written
 * (at most max). */
static size_t
find_spans(const char *text, const struct hsamem_token_weight *tok, size_t n_tok, struct span *sp,
           size_t max)
{
	char words[16][64];
	size_t n_words = 0, n = 0, len = strlen(text), i, j;

	float heaviest = 0;

	for (i = 0; i < n_tok; i++)
		if (tok[i].weight > heaviest)
			heaviest = tok[i].weight;
	for (i = 0; i < n_tok && n_words < 16; i++) {
		if (tok[i].weight < heaviest / 4)
			continue;
		token_word(tok[i].text, words[n_words], sizeof(words[0]));
		if (words[n_words][0] != '\0')
			n_words++;
	}
	for (i = 0; i < len && n < max; i++) {
		size_t best = 0;
		if (i > 0 && isalnum((unsigned char)text[i - 1]))
			continue;
		for (j = 0; j < n_words; j++) {
			size_t wl = strlen(words[j]);
			if (wl > best && strncasecmp(text + i, words[j], wl) == 0)
				best = wl;
		}
		if (best > 0) {
			sp[n].start = i;
			sp[n].end = i + best;
			n++;
			i += best - 1;
		}
	}
	return n;
}

void
text_print(const char *raw, const struct hsamem_token_weight *tok, size_t n_tok, int width,
           bool bold)
{
	const char *on = bold ? "\033[1m" : "[";
	const char *off = bold ? "\033[0m" : "]";
	struct span sp[64];
	size_t n_sp, len, ws, we, i, s;
	char *text = text_collapse(raw);

	if (text == NULL)
		return;
	len = strlen(text);
	n_sp = tok != NULL ? find_spans(text, tok, n_tok, sp, 64) : 0;
	if (width < 10)
		width = 10;
	ws = 0;
	we = len;
	if (cp_count(text, len) > (size_t)width) {
		if (n_sp > 0 && cp_count(text, sp[0].start) > (size_t)width / 3)
			ws = cp_back(text, sp[0].start, (size_t)width / 4);
		we = cp_advance(text, len, ws, (size_t)width - (ws > 0 ? 2 : 1));
		if (we == len && ws > 0)
			ws = cp_back(text, len, (size_t)width - 1);
	}
	if (ws > 0)
		fputs("\xe2\x80\xa6", stdout);
	for (i = ws, s = 0; i < we; i++) {
		while (s < n_sp && sp[s].end <= i)
			s++;
		if (s < n_sp && i == sp[s].start)
			fputs(on, stdout);
		else if (s < n_sp && i == ws && sp[s].start < ws)
			fputs(on, stdout);
		putchar(text[i]);
		if (s < n_sp && (i + 1 == sp[s].end || i + 1 == we) && sp[s].start <= i)
			fputs(off, stdout);
	}
	if (we < len)
		fputs("\xe2\x80\xa6", stdout);
	free(text);
}
