/*
 * cli_format_content.c: how the hsamem CLI shows what is read out of a memory: the hits of a
 * query, the selection of an attend, and ranges of entries and chunks.
 *
 * As in cli_format.c, each result is described once (its shape, the columns of its table, its
 * sentences) and cli_render.c renders it. Text from the daemon goes through cli_text.c, which
 * makes it safe for a terminal and trims it to the width.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli_format.h"
#include "cli_json.h"
#include "cli_render.h"
#include "cli_text.h"

/* ---- entries ---- */

static const struct field entry_fields[] = {
        FIELD(struct hsamem_entry, seq, K_U64),
        FIELD(struct hsamem_entry, role, K_ROLE),
        FIELD(struct hsamem_entry, timestamp_ms, K_I64),
        FIELD(struct hsamem_entry, first_token, K_U64),
        FIELD(struct hsamem_entry, n_tokens, K_U32),
        FIELD(struct hsamem_entry, text, K_STR),
        ARRAY(struct hsamem_entry, tags, K_STRS, n_tags, NULL),
};
static const struct shape entry_shape = SHAPE(struct hsamem_entry, entry_fields);

static const struct field attrs_fields[] = {
        ARRAY(struct hsamem_attrs, scope, K_STRS, n_scope, NULL),
        ARRAY(struct hsamem_attrs, meta, K_STRS, n_meta, NULL),
};
static const struct shape attrs_shape = SHAPE(struct hsamem_attrs, attrs_fields);

static const struct field entry_list_fields[] = {
        FIELD(struct hsamem_entry_list, total, K_U64),
        ARRAY(struct hsamem_entry_list, entries, K_OBJS, n_entries, &entry_shape),
        ARRAY(struct hsamem_entry_list, attrs, K_OBJS, n_entries, &attrs_shape),
};
static const struct shape entry_list_shape = SHAPE(struct hsamem_entry_list, entry_list_fields);

static const struct column entry_cols[] = {
        {.head = "SEQ", .width = -8, .field = "seq"},
        {.head = "ROLE", .width = -9, .gap = 1, .field = "role"},
        {.head = "TIME", .width = -19, .gap = 1, .field = "timestamp_ms", .show = SHOW_TIME},
        {.head = "TOKENS", .width = 6, .gap = 1, .field = "n_tokens"},
        {.head = "TEXT", .gap = 2, .field = "text", .show = SHOW_TEXT},
        {.field = "tags", .show = SHOW_TAGS},
};
static const struct table entry_table = TABLE(entry_shape, entry_cols);

static void
entries_human(const struct view *v)
{
	const struct hsamem_entry_list *l = v->res;

	render_table(&entry_table, l->entries, l->n_entries, 0);
	printf("(%zu of %llu entries)\n", l->n_entries, (unsigned long long)l->total);
}

static const struct result entries_result = {&entry_list_shape, W_USER, entries_human};

void
print_entries(const char *user, const struct hsamem_entry_list *l)
{
	render(&entries_result, &(struct view){.res = l, .user = user});
}

/* ---- query ---- */

static const struct field token_fields[] = {
        FIELD(struct hsamem_token_weight, index, K_U32),
        FIELD(struct hsamem_token_weight, id, K_U32),
        FIELD(struct hsamem_token_weight, text, K_STR),
        FIELD(struct hsamem_token_weight, weight, K_F32),
};
static const struct shape token_shape = SHAPE(struct hsamem_token_weight, token_fields);

static const struct field hit_fields[] = {
        {.name = "rank", .kind = K_RANK},
        FIELD(struct hsamem_hit, chunk, K_U64),
        FIELD(struct hsamem_hit, tail, K_BOOL),
        FIELD(struct hsamem_hit, score, K_F32),
        FIELD(struct hsamem_hit, weight, K_F32),
        FIELD(struct hsamem_hit, n_tokens, K_U32),
        FIELD(struct hsamem_hit, text, K_STR),
        ARRAY(struct hsamem_hit, entries, K_OBJS, n_entries, &entry_shape),
        ARRAY(struct hsamem_hit, top_tokens, K_OBJS, n_top_tokens, &token_shape),
};
static const struct shape hit_shape = SHAPE(struct hsamem_hit, hit_fields);

static const struct field rank_fields[] = {
        FIELD(struct hsamem_hit_rank, rank_score, K_F32),
        FIELD(struct hsamem_hit_rank, lexical_score, K_F32),
        FIELD(struct hsamem_hit_rank, has_lexical, K_BOOL),
};
static const struct shape rank_shape = SHAPE(struct hsamem_hit_rank, rank_fields);

static const struct field query_fields[] = {
        FIELD(struct hsamem_query_result, k, K_U32),
        FIELD(struct hsamem_query_result, chunks, K_U64),
        FIELD(struct hsamem_query_result, mode, K_STR),
        ARRAY(struct hsamem_query_result, hits, K_OBJS, n_hits, &hit_shape),
        ARRAY(struct hsamem_query_result, ranks, K_OBJS, n_hits, &rank_shape),
};
static const struct shape query_shape = SHAPE(struct hsamem_query_result, query_fields);

static void
hit_block(size_t rank, const struct hsamem_hit *h)
{
	char t[24];
	size_t i;

	printf("#%-3zu score %8.4f  weight %.4f  ", rank, h->score, h->weight);
	if (h->tail)
		printf("tail (%u tokens)\n", h->n_tokens);
	else
		printf("chunk %llu\n", (unsigned long long)h->chunk);
	printf("     chunk: ");
	text_print(h->text, h->top_tokens, h->n_top_tokens, out.width - 12, out.highlight_bold);
	putchar('\n');
	for (i = 0; i < h->n_entries; i++) {
		const struct hsamem_entry *e = &h->entries[i];
		int head =
		        printf("     #%llu %s %s: ", (unsigned long long)e->seq,
		               hsamem_role_name(e->role), fmt_time(e->timestamp_ms, t, sizeof(t)));
		text_print(e->text, h->top_tokens, h->n_top_tokens, out.width - head,
		           out.highlight_bold);
		putchar('\n');
	}
	if (h->n_top_tokens > 0) {
		printf("     tokens:");
		for (i = 0; i < h->n_top_tokens && i < 8; i++) {
			char *w = text_collapse(h->top_tokens[i].text);
			printf(" %s (%.2f)", w != NULL ? w : "", h->top_tokens[i].weight);
			free(w);
		}
		putchar('\n');
	}
}

static void
query_human(const struct view *v)
{
	const struct hsamem_query_result *q = v->res;
	bool tail = false;
	size_t i;

	if (q->n_hits == 0) {
		printf("%s: no chunk matches (%llu searched)\n", v->user,
		       (unsigned long long)q->chunks);
		return;
	}
	for (i = 0; i < q->n_hits; i++)
		tail |= q->hits[i].tail;
	printf("%s: %zu hit%s among %llu sealed chunk%s%s (k %u, ranked %s)\n", v->user, q->n_hits,
	       q->n_hits == 1 ? "" : "s", (unsigned long long)q->chunks, q->chunks == 1 ? "" : "s",
	       tail ? " and the unsealed tail" : "", q->k, q->mode);
	for (i = 0; i < q->n_hits; i++) {
		hit_block(i + 1, &q->hits[i]);
		if (q->ranks[i].has_lexical)
			printf("     ranked: %s score %.4f, lexical score %.4f\n", q->mode,
			       q->ranks[i].rank_score, q->ranks[i].lexical_score);
	}
}

static const struct result query_result = {&query_shape, W_USER, query_human};

/* ---- the entry view of a query ---- */

static const struct field entry_hit_fields[] = {
        {.name = "rank", .kind = K_RANK},
        FIELD(struct hsamem_entry_hit, score, K_F32),
        FIELD(struct hsamem_entry_hit, context, K_BOOL),
        ARRAY(struct hsamem_entry_hit, chunks, K_U64S, n_chunks, NULL),
        OBJECT(struct hsamem_entry_hit, entry, &entry_shape),
        OBJECT(struct hsamem_entry_hit, attrs, &attrs_shape),
};
static const struct shape entry_hit_shape = SHAPE(struct hsamem_entry_hit, entry_hit_fields);

static const struct field recall_fields[] = {
        FIELD(struct hsamem_query_result, k, K_U32),
        FIELD(struct hsamem_query_result, chunks, K_U64),
        FIELD(struct hsamem_query_result, filtered, K_BOOL),
        FIELD(struct hsamem_query_result, allowed, K_U64),
        FIELD(struct hsamem_query_result, below_min_score, K_U32),
        ARRAY(struct hsamem_query_result, entry_hits, K_OBJS, n_entry_hits, &entry_hit_shape),
};
static const struct shape recall_shape = SHAPE(struct hsamem_query_result, recall_fields);

static void
recall_human(const struct view *v)
{
	const struct hsamem_query_result *q = v->res;
	size_t hits = 0;
	char t[24];

	for (size_t i = 0; i < q->n_entry_hits; i++)
		hits += !q->entry_hits[i].context;
	if (q->n_entry_hits == 0)
		printf("%s: %s (%llu chunks searched", v->user,
		       v->extra != NULL && *v->extra != '\0' ? v->extra : "no entry found",
		       (unsigned long long)q->chunks);
	else
		printf("%s: %zu entr%s from the top %u of %llu chunks", v->user, hits,
		       hits == 1 ? "y" : "ies", q->k, (unsigned long long)q->chunks);
	if (q->filtered)
		printf("; the filter kept %llu", (unsigned long long)q->allowed);
	if (q->below_min_score > 0)
		printf("; %u below --min-score", q->below_min_score);
	printf("%s\n", q->n_entry_hits == 0 ? ")" : "");
	for (size_t i = 0, rank = 0; i < q->n_entry_hits; i++) {
		const struct hsamem_entry_hit *h = &q->entry_hits[i];
		const struct hsamem_entry *e = &h->entry;
		int head;
		if (h->context)
			head = printf("             #%llu %s %s: ", (unsigned long long)e->seq,
			              hsamem_role_name(e->role),
			              fmt_time(e->timestamp_ms, t, sizeof(t)));
		else
			head = printf("#%-3zu %7.4f  #%llu %s %s: ", ++rank, h->score,
			              (unsigned long long)e->seq, hsamem_role_name(e->role),
			              fmt_time(e->timestamp_ms, t, sizeof(t)));
		text_print(e->text, NULL, 0, out.width - head, out.highlight_bold);
		putchar('\n');
		if (h->attrs.n_scope + h->attrs.n_meta + e->n_tags > 0 && !h->context) {
			printf("     ");
			for (size_t j = 0; j < h->attrs.n_scope; j++)
				printf(" %s", h->attrs.scope[j]);
			for (size_t j = 0; j < h->attrs.n_meta; j++)
				printf(" %s", h->attrs.meta[j]);
			for (size_t j = 0; j < e->n_tags; j++)
				printf(" #%s", e->tags[j]);
			putchar('\n');
		}
	}
}

static const struct result recall_result = {&recall_shape, W_USER, recall_human};

void
print_recall(const char *user, const struct hsamem_query_result *q, const char *message)
{
	render(&recall_result, &(struct view){.res = q, .user = user, .extra = message});
}

void
print_query(const char *user, const struct hsamem_query_result *q)
{
	render(&query_result, &(struct view){.res = q, .user = user});
}

/* ---- ask ---- */

static const struct field ask_fields[] = {
        FIELD(struct hsamem_ask_result, answer, K_STR),
        ARRAY(struct hsamem_ask_result, tokens, K_U32S, n_tokens, NULL),
        FIELD(struct hsamem_ask_result, experimental, K_BOOL),
        FIELD(struct hsamem_ask_result, complete, K_BOOL),
        FIELD(struct hsamem_ask_result, positions, K_U32),
        FIELD(struct hsamem_ask_result, searched, K_U64),
        FIELD(struct hsamem_ask_result, encoder, K_STR),
        ARRAY(struct hsamem_ask_result, chunks, K_OBJS, n_chunks, &hit_shape),
};
static const struct shape ask_shape = SHAPE(struct hsamem_ask_result, ask_fields);

static void
ask_human(const struct view *v)
{
	const struct hsamem_ask_result *r = v->res;
	char *a = text_collapse(r->answer);

	printf("%s\n", a != NULL ? a : "");
	free(a);
	printf("(%zu token%s%s, %s over %llu sealed chunk%s; drawn on most:)\n", r->n_tokens,
	       r->n_tokens == 1 ? "" : "s", r->complete ? "" : ", cut at the limit", r->encoder,
	       (unsigned long long)r->searched, r->searched == 1 ? "" : "s");
	for (size_t i = 0; i < r->n_chunks; i++)
		hit_block(i + 1, &r->chunks[i]);
}

static const struct result ask_result = {&ask_shape, W_USER, ask_human};

void
print_ask(const char *user, const struct hsamem_ask_result *r)
{
	render(&ask_result, &(struct view){.res = r, .user = user});
}

/* ---- attend ---- */

/* selected, weights and scores of attend: [n][h_kv][k] as nested arrays. */
static void
json_grid(const char *key, const struct hsamem_attend_result *r, const int64_t *sel, const float *f)
{
	size_t t, hd, i, row;

	j_arr(key);
	for (t = 0; t < r->n; t++) {
		j_arr(NULL);
		for (hd = 0; hd < r->h_kv; hd++) {
			j_arr(NULL);
			for (i = 0; i < r->k; i++) {
				row = (t * r->h_kv + hd) * r->k + i;
				if (sel != NULL)
					j_i64(NULL, sel[row]);
				else
					j_f64(NULL, f[row]);
			}
			j_end();
		}
		j_end();
	}
	j_end();
}

static void
json_selected(const char *key, const void *base)
{
	const struct hsamem_attend_result *r = base;

	json_grid(key, r, r->selected, NULL);
}

static void
json_weights(const char *key, const void *base)
{
	const struct hsamem_attend_result *r = base;

	json_grid(key, r, NULL, r->weights);
}

static void
json_scores(const char *key, const void *base)
{
	const struct hsamem_attend_result *r = base;

	json_grid(key, r, NULL, r->scores);
}

static const struct field attend_fields[] = {
        FIELD(struct hsamem_attend_result, n, K_U32),
        FIELD(struct hsamem_attend_result, k, K_U32),
        FIELD(struct hsamem_attend_result, h_kv, K_U32),
        {.name = "selected", .kind = K_CUSTOM, .json = json_selected},
        {.name = "weights", .kind = K_CUSTOM, .json = json_weights},
        {.name = "scores", .kind = K_CUSTOM, .json = json_scores},
        {.name = "output_floats",
         .kind = K_SIZE,
         .off = offsetof(struct hsamem_attend_result, output_len)},
};
static const struct shape attend_shape = SHAPE(struct hsamem_attend_result, attend_fields);

static void
attend_human(const struct view *v)
{
	const struct hsamem_attend_result *r = v->res;
	size_t t, hd, i, row;

	printf("%s: %u query tokens, k %u, %u kv heads\n", v->user, r->n, r->k, r->h_kv);
	for (t = 0; t < r->n; t++) {
		if (v->positions != NULL && v->positions[t] != 0)
			printf("token %zu (position %llu)\n", t,
			       (unsigned long long)v->positions[t]);
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
	if (v->out_file != NULL)
		printf("output: %zu floats written to %s\n", r->output_len, v->out_file);
}

static const struct result attend_result = {&attend_shape, W_USER | W_OUTFILE, attend_human};

void
print_attend(const char *user, const struct hsamem_attend_result *r, const uint64_t *positions,
             const char *out_file)
{
	render(&attend_result,
	       &(struct view){
	               .res = r, .user = user, .positions = positions, .out_file = out_file});
}

/* ---- chunks ---- */

static const struct field chunk_fields[] = {
        FIELD(struct hsamem_chunk, index, K_U64),
        FIELD(struct hsamem_chunk, n_tokens, K_SIZE),
        FIELD(struct hsamem_chunk, n_real, K_U32),
        ARRAY(struct hsamem_chunk, tokens, K_U32S, n_tokens, NULL),
        FIELD(struct hsamem_chunk, text, K_STR),
        FIELD(struct hsamem_chunk, first_entry, K_U64),
        FIELD(struct hsamem_chunk, last_entry, K_U64),
        {.name = "k",
         .kind = K_BLOB,
         .off = offsetof(struct hsamem_chunk, k),
         .n_off = offsetof(struct hsamem_chunk, k_size),
         .when = W_TENSORS},
        {.name = "v",
         .kind = K_BLOB,
         .off = offsetof(struct hsamem_chunk, v),
         .n_off = offsetof(struct hsamem_chunk, v_size),
         .when = W_TENSORS},
        {.name = "landmark",
         .kind = K_BLOB,
         .off = offsetof(struct hsamem_chunk, landmark),
         .n_off = offsetof(struct hsamem_chunk, landmark_size),
         .when = W_TENSORS},
};
static const struct shape chunk_shape = SHAPE(struct hsamem_chunk, chunk_fields);

static const struct field chunk_list_fields[] = {
        FIELD(struct hsamem_chunk_list, total, K_U64),
        ARRAY(struct hsamem_chunk_list, chunks, K_OBJS, n_chunks, &chunk_shape),
};
static const struct shape chunk_list_shape = SHAPE(struct hsamem_chunk_list, chunk_list_fields);

static void
chunk_tokens(const void *row, char *buf, size_t size)
{
	const struct hsamem_chunk *c = row;

	snprintf(buf, size, "%3u/%-3zu", c->n_real, c->n_tokens);
}

static void
chunk_entries(const void *row, char *buf, size_t size)
{
	const struct hsamem_chunk *c = row;

	snprintf(buf, size, "%llu-%llu", (unsigned long long)c->first_entry,
	         (unsigned long long)c->last_entry);
}

static void
chunk_tensors(const void *row, char *buf, size_t size)
{
	const struct hsamem_chunk *c = row;
	char b1[16], b2[16];

	snprintf(buf, size < 24 ? size : 24, "%s / %s", fmt_bytes(c->k_size + c->v_size, b1, 16),
	         fmt_bytes(c->landmark_size, b2, 16));
}

static const struct column chunk_cols[] = {
        {.head = "INDEX", .width = -8, .field = "index"},
        {.head = "TOKENS", .width = 7, .gap = 1, .cell = chunk_tokens},
        {.head = "ENTRIES", .width = -15, .gap = 1, .cell = chunk_entries},
        {.head = "K+V / LANDMARK",
         .width = -21,
         .gap = 1,
         .cell = chunk_tensors,
         .when = W_TENSORS},
        {.head = "TEXT", .gap = 1, .field = "text", .show = SHOW_TEXT},
};
static const struct table chunk_table = TABLE(chunk_shape, chunk_cols);

static void
chunks_human(const struct view *v)
{
	const struct hsamem_chunk_list *l = v->res;

	render_table(&chunk_table, l->chunks, l->n_chunks, v->when);
	printf("(%zu of %llu chunks)\n", l->n_chunks, (unsigned long long)l->total);
}

static const struct result chunks_result = {&chunk_list_shape, W_USER, chunks_human};

void
print_chunks(const char *user, const struct hsamem_chunk_list *l, bool tensors)
{
	render(&chunks_result,
	       &(struct view){.res = l, .user = user, .when = tensors ? W_TENSORS : 0});
}
