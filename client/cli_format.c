/*
 * cli_format.c: how the hsamem CLI shows results: tables and trimmed, highlighted text for people,
 * one compact JSON document for scripts.
 *
 * Text from the daemon (entry and chunk text, token spellings, names) is shown with whitespace and
 * control characters collapsed to single spaces, so that nothing a memory holds can move the cursor
 * or change the terminal's state. Widths count code points, an approximation of columns that is
 * right for most scripts in use.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

struct out_style out = {.width = 100};

/* ---- JSON ---- */

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

/* ---- human-readable helpers ---- */

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

/* A copy of s with every run of whitespace or control characters made one space, trimmed. */
static char *
collapse(const char *s)
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

/* Prints text collapsed, in at most width code points (a window around the first highlight when
 * it must be cut), with the top tokens highlighted. */
static void
print_text(const char *raw, const struct hsamem_token_weight *tok, size_t n_tok, int width)
{
	const char *on = out.highlight_bold ? "\033[1m" : "[";
	const char *off = out.highlight_bold ? "\033[0m" : "]";
	struct span sp[64];
	size_t n_sp, len, ws, we, i, s;
	char *text = collapse(raw);

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

/* ---- per-command output ---- */

static void
j_spec(const char *key, const struct hsamem_spec *s)
{
	j_obj(key);
	j_str("encoder", s->encoder);
	j_u64("revision", s->revision);
	j_str("tokenizer", s->tokenizer);
	j_u64("chunk_size", s->chunk_size);
	j_u64("h_kv", s->h_kv);
	j_u64("d_h", s->d_h);
	j_u64("h_q", s->h_q);
	j_u64("d_r", s->d_r);
	if (hsamem_dtype_name(s->dtype) != NULL)
		j_str("dtype", hsamem_dtype_name(s->dtype));
	else
		j_null("dtype");
	if (hsamem_weighting_name(s->weighting) != NULL)
		j_str("weighting", hsamem_weighting_name(s->weighting));
	else
		j_null("weighting");
	j_bool("off_by_one", s->off_by_one);
	j_u64("top_k", s->top_k);
	j_end();
}

static void
j_memory(const char *key, const struct hsamem_memory *m)
{
	j_obj(key);
	j_str("user", m->user);
	j_spec("spec", &m->spec);
	j_u64("entries", m->entries);
	j_u64("tokens", m->tokens);
	j_u64("chunks", m->chunks);
	j_u64("tail_tokens", m->tail_tokens);
	j_u64("bytes", m->bytes);
	j_i64("created_ms", m->created_ms);
	j_i64("updated_ms", m->updated_ms);
	j_end();
}

static void
j_entry(const char *key, const struct hsamem_entry *e)
{
	j_obj(key);
	j_u64("seq", e->seq);
	j_str("role", hsamem_role_name(e->role));
	j_i64("timestamp_ms", e->timestamp_ms);
	j_u64("first_token", e->first_token);
	j_u64("n_tokens", e->n_tokens);
	j_str("text", e->text);
	j_arr("tags");
	for (size_t i = 0; i < e->n_tags; i++)
		j_str(NULL, e->tags[i]);
	j_end();
	j_end();
}

static const char *
name_or(const char *name, const char *dflt)
{
	return name != NULL ? name : dflt;
}

void
print_ping(const char *url, const struct hsamem_server *s, double rtt_ms)
{
	char up[24];

	if (out.json) {
		j_obj(NULL);
		j_str("url", url);
		j_str("server_version", s->server_version);
		j_u64("protocol_version", s->protocol_version);
		j_str("backend", s->backend);
		j_u64("uptime_ms", s->uptime_ms);
		j_f64("rtt_ms", rtt_ms);
		j_end();
		return;
	}
	printf("hsamemd %s at %s: protocol %u, backend %s, up %s, round trip %.2f ms\n",
	       s->server_version[0] != '\0' ? s->server_version : "?", url, s->protocol_version,
	       s->backend[0] != '\0' ? s->backend : "?", fmt_duration(s->uptime_ms, up, sizeof(up)),
	       rtt_ms);
}

static void
print_spec_lines(const struct hsamem_spec *s)
{
	printf("  encoder     %s (revision %u)%s%s\n", s->encoder, s->revision,
	       s->tokenizer[0] != '\0' ? ", tokenizer " : "", s->tokenizer);
	printf("  shape       S %u, h_kv %u, d_h %u, h_q %u, d_r %u\n", s->chunk_size, s->h_kv,
	       s->d_h, s->h_q, s->d_r);
	printf("  dtype       %s\n", name_or(hsamem_dtype_name(s->dtype), "?"));
	printf("  weighting   %s%s\n", name_or(hsamem_weighting_name(s->weighting), "?"),
	       s->off_by_one ? ", softmax-off-by-one in chunks" : "");
	printf("  top_k       %u\n", s->top_k);
}

void
print_memory(const struct hsamem_memory *m)
{
	char b[16], t1[24], t2[24];

	if (out.json) {
		j_memory(NULL, m);
		return;
	}
	printf("%s\n", m->user);
	print_spec_lines(&m->spec);
	printf("  stored      %llu entries, %llu tokens, %llu chunks + %u tail tokens, %s\n",
	       (unsigned long long)m->entries, (unsigned long long)m->tokens,
	       (unsigned long long)m->chunks, m->tail_tokens, fmt_bytes(m->bytes, b, sizeof(b)));
	printf("  created     %s, updated %s\n", fmt_time(m->created_ms, t1, sizeof(t1)),
	       fmt_time(m->updated_ms, t2, sizeof(t2)));
}

void
print_append(const char *user, const struct hsamem_append_info *a)
{
	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("first_seq", a->first_seq);
		j_u64("count", a->count);
		j_u64("tokens", a->tokens);
		j_u64("chunks", a->chunks);
		j_u64("sealed", a->sealed);
		j_bool("created", a->created);
		j_end();
		return;
	}
	printf("%s: appended %u %s (seq %llu", user, a->count, a->count == 1 ? "entry" : "entries",
	       (unsigned long long)a->first_seq);
	if (a->count > 1)
		printf("..%llu", (unsigned long long)(a->first_seq + a->count - 1));
	printf("); %llu tokens, %llu chunks, %u sealed now%s\n", (unsigned long long)a->tokens,
	       (unsigned long long)a->chunks, a->sealed, a->created ? "; memory created" : "");
}

void
print_flush(const char *user, const struct hsamem_flush_info *f)
{
	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("chunks", f->chunks);
		j_bool("sealed", f->sealed);
		j_end();
		return;
	}
	printf("%s: %s; %llu chunks\n", user,
	       f->sealed ? "sealed the tail as a padded chunk" : "nothing to seal",
	       (unsigned long long)f->chunks);
}

static void
print_hit(size_t rank, const struct hsamem_hit *h)
{
	char t[24];
	size_t i;

	printf("#%-3zu score %8.4f  weight %.4f  ", rank, h->score, h->weight);
	if (h->tail)
		printf("tail (%u tokens)\n", h->n_tokens);
	else
		printf("chunk %llu\n", (unsigned long long)h->chunk);
	printf("     chunk: ");
	print_text(h->text, h->top_tokens, h->n_top_tokens, out.width - 12);
	putchar('\n');
	for (i = 0; i < h->n_entries; i++) {
		const struct hsamem_entry *e = &h->entries[i];
		int head =
		        printf("     #%llu %s %s: ", (unsigned long long)e->seq,
		               hsamem_role_name(e->role), fmt_time(e->timestamp_ms, t, sizeof(t)));
		print_text(e->text, h->top_tokens, h->n_top_tokens, out.width - head);
		putchar('\n');
	}
	if (h->n_top_tokens > 0) {
		printf("     tokens:");
		for (i = 0; i < h->n_top_tokens && i < 8; i++) {
			char *w = collapse(h->top_tokens[i].text);
			printf(" %s (%.2f)", w != NULL ? w : "", h->top_tokens[i].weight);
			free(w);
		}
		putchar('\n');
	}
}

void
print_query(const char *user, const struct hsamem_query_result *q)
{
	size_t i, j;

	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("k", q->k);
		j_u64("chunks", q->chunks);
		j_arr("hits");
		for (i = 0; i < q->n_hits; i++) {
			const struct hsamem_hit *h = &q->hits[i];
			j_obj(NULL);
			j_u64("rank", i + 1);
			j_u64("chunk", h->chunk);
			j_bool("tail", h->tail);
			j_f64("score", h->score);
			j_f64("weight", h->weight);
			j_u64("n_tokens", h->n_tokens);
			j_str("text", h->text);
			j_arr("entries");
			for (j = 0; j < h->n_entries; j++)
				j_entry(NULL, &h->entries[j]);
			j_end();
			j_arr("top_tokens");
			for (j = 0; j < h->n_top_tokens; j++) {
				j_obj(NULL);
				j_u64("index", h->top_tokens[j].index);
				j_u64("id", h->top_tokens[j].id);
				j_str("text", h->top_tokens[j].text);
				j_f64("weight", h->top_tokens[j].weight);
				j_end();
			}
			j_end();
			j_end();
		}
		j_end();
		j_end();
		return;
	}
	if (q->n_hits == 0) {
		printf("%s: no chunk matches (%llu searched)\n", user,
		       (unsigned long long)q->chunks);
		return;
	}
	bool tail = false;
	for (i = 0; i < q->n_hits; i++)
		tail |= q->hits[i].tail;
	printf("%s: %zu hit%s among %llu sealed chunk%s%s (k %u)\n", user, q->n_hits,
	       q->n_hits == 1 ? "" : "s", (unsigned long long)q->chunks, q->chunks == 1 ? "" : "s",
	       tail ? " and the unsealed tail" : "", q->k);
	for (i = 0; i < q->n_hits; i++)
		print_hit(i + 1, &q->hits[i]);
}

void
print_attend(const char *user, const struct hsamem_attend_result *r, const uint64_t *positions,
             const char *out_file)
{
	size_t t, hd, i, row;

	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("n", r->n);
		j_u64("k", r->k);
		j_u64("h_kv", r->h_kv);
		const char *names[] = {"selected", "weights", "scores"};
		for (int a = 0; a < 3; a++) {
			j_arr(names[a]);
			for (t = 0; t < r->n; t++) {
				j_arr(NULL);
				for (hd = 0; hd < r->h_kv; hd++) {
					j_arr(NULL);
					for (i = 0; i < r->k; i++) {
						row = (t * r->h_kv + hd) * r->k + i;
						if (a == 0)
							j_i64(NULL, r->selected[row]);
						else
							j_f64(NULL, a == 1 ? r->weights[row]
							                   : r->scores[row]);
					}
					j_end();
				}
				j_end();
			}
			j_end();
		}
		j_u64("output_floats", r->output_len);
		if (out_file != NULL)
			j_str("output_file", out_file);
		else
			j_null("output_file");
		j_end();
		return;
	}
	printf("%s: %u query tokens, k %u, %u kv heads\n", user, r->n, r->k, r->h_kv);
	for (t = 0; t < r->n; t++) {
		if (positions != NULL && positions[t] != 0)
			printf("token %zu (position %llu)\n", t, (unsigned long long)positions[t]);
		else
			printf("token %zu (after the stream)\n", t);
		for (hd = 0; hd < r->h_kv; hd++) {
			printf("  kv head %-3zu", hd);
			for (i = 0; i < r->k; i++) {
				row = (t * r->h_kv + hd) * r->k + i;
				if (r->selected[row] < 0)
					printf("  -");
				else
					printf("  %lld (w %.3f)", (long long)r->selected[row],
					       r->weights[row]);
			}
			putchar('\n');
		}
	}
	if (out_file != NULL)
		printf("output: %zu floats written to %s\n", r->output_len, out_file);
}

void
print_entries(const char *user, const struct hsamem_entry_list *l)
{
	char t[24];
	size_t i, j;

	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("total", l->total);
		j_arr("entries");
		for (i = 0; i < l->n_entries; i++)
			j_entry(NULL, &l->entries[i]);
		j_end();
		j_end();
		return;
	}
	printf("%-8s %-9s %-19s %6s  %s\n", "SEQ", "ROLE", "TIME", "TOKENS", "TEXT");
	for (i = 0; i < l->n_entries; i++) {
		const struct hsamem_entry *e = &l->entries[i];
		int head = printf("%-8llu %-9s %-19s %6u  ", (unsigned long long)e->seq,
		                  hsamem_role_name(e->role),
		                  fmt_time(e->timestamp_ms, t, sizeof(t)), e->n_tokens);
		int tags = 0;
		for (j = 0; j < e->n_tags; j++)
			tags += (int)strlen(e->tags[j]) + 2;
		print_text(e->text, NULL, 0, out.width - head - tags);
		for (j = 0; j < e->n_tags; j++) {
			char *w = collapse(e->tags[j]);
			printf("  #%s", w != NULL ? w : "");
			free(w);
		}
		putchar('\n');
	}
	printf("(%zu of %llu entries)\n", l->n_entries, (unsigned long long)l->total);
}

void
print_chunks(const char *user, const struct hsamem_chunk_list *l, bool tensors)
{
	char b1[16], b2[16];
	size_t i, j;

	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("total", l->total);
		j_arr("chunks");
		for (i = 0; i < l->n_chunks; i++) {
			const struct hsamem_chunk *c = &l->chunks[i];
			j_obj(NULL);
			j_u64("index", c->index);
			j_u64("n_tokens", c->n_tokens);
			j_u64("n_real", c->n_real);
			j_arr("tokens");
			for (j = 0; j < c->n_tokens; j++)
				j_u64(NULL, c->tokens[j]);
			j_end();
			j_str("text", c->text);
			j_u64("first_entry", c->first_entry);
			j_u64("last_entry", c->last_entry);
			if (tensors) {
				j_base64("k", c->k, c->k_size);
				j_base64("v", c->v, c->v_size);
				j_base64("landmark", c->landmark, c->landmark_size);
			}
			j_end();
		}
		j_end();
		j_end();
		return;
	}
	printf("%-8s %7s %-15s ", "INDEX", "TOKENS", "ENTRIES");
	if (tensors)
		printf("%-21s ", "K+V / LANDMARK");
	printf("TEXT\n");
	for (i = 0; i < l->n_chunks; i++) {
		const struct hsamem_chunk *c = &l->chunks[i];
		char ent[48];
		int head;

		snprintf(ent, sizeof(ent), "%llu-%llu", (unsigned long long)c->first_entry,
		         (unsigned long long)c->last_entry);
		head = printf("%-8llu %3u/%-3zu %-15s ", (unsigned long long)c->index, c->n_real,
		              c->n_tokens, ent);
		if (tensors) {
			char tb[24];
			snprintf(tb, sizeof(tb), "%s / %s",
			         fmt_bytes(c->k_size + c->v_size, b1, 16),
			         fmt_bytes(c->landmark_size, b2, 16));
			head += printf("%-21s ", tb);
		}
		print_text(c->text, NULL, 0, out.width - head);
		putchar('\n');
	}
	printf("(%zu of %llu chunks)\n", l->n_chunks, (unsigned long long)l->total);
}

static void
print_memory_table(const struct hsamem_memory *m, size_t n)
{
	char b[16], t[24];

	printf("%-24s %-12s %9s %11s %9s %5s %10s  %s\n", "USER", "ENCODER", "ENTRIES", "TOKENS",
	       "CHUNKS", "TAIL", "SIZE", "UPDATED");
	for (size_t i = 0; i < n; i++)
		printf("%-24s %-12s %9llu %11llu %9llu %5u %10s  %s\n", m[i].user,
		       m[i].spec.encoder, (unsigned long long)m[i].entries,
		       (unsigned long long)m[i].tokens, (unsigned long long)m[i].chunks,
		       m[i].tail_tokens, fmt_bytes(m[i].bytes, b, sizeof(b)),
		       fmt_time(m[i].updated_ms, t, sizeof(t)));
}

void
print_users(const struct hsamem_user_list *l)
{
	if (out.json) {
		j_obj(NULL);
		j_arr("users");
		for (size_t i = 0; i < l->n_users; i++)
			j_memory(NULL, &l->users[i]);
		j_end();
		j_end();
		return;
	}
	if (l->n_users == 0) {
		printf("no memories\n");
		return;
	}
	print_memory_table(l->users, l->n_users);
}

static double
ratio(uint64_t hits, uint64_t misses)
{
	return hits + misses == 0 ? 0 : 100.0 * (double)hits / (double)(hits + misses);
}

void
print_stats(const struct hsamem_stats *s)
{
	char b1[16], b2[16], up[24];
	size_t i, j;

	if (out.json) {
		j_obj(NULL);
#define U(f) j_u64(#f, s->f)
		U(users);
		U(tokens);
		U(chunks);
		U(store_map_size);
		U(store_map_used);
		j_str("backend", s->backend);
		U(gpu_mem_used);
		U(gpu_mem_budget);
		U(gpu_resident_users);
		U(landmark_hits);
		U(landmark_misses);
		U(chunk_hits);
		U(chunk_misses);
		U(requests);
		U(errors);
		U(commits);
		U(committed_appends);
		U(uptime_ms);
#undef U
		j_arr("latency");
		for (i = 0; i < s->n_latency; i++) {
			const struct hsamem_histogram *hg = &s->latency[i];
			j_obj(NULL);
			j_str("name", hg->name);
			j_arr("bounds_ms");
			for (j = 0; j < hg->n_bounds; j++)
				j_f64(NULL, hg->bounds_ms[j]);
			j_end();
			j_arr("counts");
			for (j = 0; j < hg->n_bounds + 1; j++)
				j_u64(NULL, hg->counts[j]);
			j_end();
			j_u64("total", hg->total);
			j_f64("p50_ms", hg->p50_ms);
			j_f64("p99_ms", hg->p99_ms);
			j_end();
		}
		j_end();
		j_arr("memories");
		for (i = 0; i < s->n_memories; i++)
			j_memory(NULL, &s->memories[i]);
		j_end();
		j_end();
		return;
	}
	printf("uptime        %s\n", fmt_duration(s->uptime_ms, up, sizeof(up)));
	printf("backend       %s\n", s->backend[0] != '\0' ? s->backend : "?");
	printf("memories      %llu users, %llu tokens, %llu chunks\n", (unsigned long long)s->users,
	       (unsigned long long)s->tokens, (unsigned long long)s->chunks);
	printf("store         %s used of a %s map\n", fmt_bytes(s->store_map_used, b1, sizeof(b1)),
	       fmt_bytes(s->store_map_size, b2, sizeof(b2)));
	printf("gpu memory    %s used of %s, %llu users resident\n",
	       fmt_bytes(s->gpu_mem_used, b1, sizeof(b1)),
	       fmt_bytes(s->gpu_mem_budget, b2, sizeof(b2)),
	       (unsigned long long)s->gpu_resident_users);
	printf("caches        landmarks %.1f%% hits (%llu/%llu), chunks %.1f%% hits (%llu/%llu)\n",
	       ratio(s->landmark_hits, s->landmark_misses), (unsigned long long)s->landmark_hits,
	       (unsigned long long)(s->landmark_hits + s->landmark_misses),
	       ratio(s->chunk_hits, s->chunk_misses), (unsigned long long)s->chunk_hits,
	       (unsigned long long)(s->chunk_hits + s->chunk_misses));
	printf("requests      %llu (%llu errors); %llu appends in %llu group commits\n",
	       (unsigned long long)s->requests, (unsigned long long)s->errors,
	       (unsigned long long)s->committed_appends, (unsigned long long)s->commits);
	if (s->n_latency > 0) {
		printf("\n%-16s %10s %10s %10s\n", "LATENCY", "COUNT", "P50 MS", "P99 MS");
		for (i = 0; i < s->n_latency; i++) {
			char *w = collapse(s->latency[i].name);
			printf("%-16s %10llu %10.3f %10.3f\n", w != NULL ? w : "",
			       (unsigned long long)s->latency[i].total, s->latency[i].p50_ms,
			       s->latency[i].p99_ms);
			free(w);
		}
	}
	if (s->n_memories == 1) {
		putchar('\n');
		print_memory(&s->memories[0]);
	} else if (s->n_memories > 1) {
		putchar('\n');
		print_memory_table(s->memories, s->n_memories);
	}
}

void
print_delete(const char *user, const struct hsamem_delete_info *d)
{
	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("entries", d->entries);
		j_u64("chunks", d->chunks);
		j_end();
		return;
	}
	printf("%s: deleted %llu entries and %llu chunks\n", user, (unsigned long long)d->entries,
	       (unsigned long long)d->chunks);
}

void
print_transfer(const char *verb, const char *user, const struct hsamem_transfer *t)
{
	char b[16];

	if (out.json) {
		j_obj(NULL);
		j_str("user", user);
		j_u64("records", t->records);
		j_u64("bytes", t->bytes);
		j_u64("entries", t->entries);
		j_u64("chunks", t->chunks);
		j_u64("requests", t->requests);
		j_end();
		return;
	}
	printf("%s: %s %llu entries and %llu chunks (%llu records, %s, %u requests)\n", user, verb,
	       (unsigned long long)t->entries, (unsigned long long)t->chunks,
	       (unsigned long long)t->records, fmt_bytes(t->bytes, b, sizeof(b)), t->requests);
}
