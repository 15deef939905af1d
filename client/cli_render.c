/*
 * cli_render.c: the two generic renderers of the hsamem CLI (cli_render.h): a shape's fields as
 * JSON, and lists as tables whose columns show fields by name.
 *
 * Neither knows any result type: they read values by the kind and offset a shape gives, so that a
 * field shown in both forms is described once. Table cells pad as printf's field widths do, and
 * text columns take what is left of the line (out.width), as text_print() trims it.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_json.h"
#include "cli_render.h"
#include "cli_text.h"

struct out_style out = {.width = 100};

static const struct field view_head[] = {
        {.name = "url", .kind = K_STR, .off = offsetof(struct view, url), .when = W_URL},
        {.name = "user", .kind = K_STR, .off = offsetof(struct view, user), .when = W_USER},
};
static const struct field view_tail[] = {
        {.name = "rtt_ms", .kind = K_F64, .off = offsetof(struct view, rtt_ms), .when = W_URL},
        {.name = "output_file",
         .kind = K_STR_OR_NULL,
         .off = offsetof(struct view, out_file),
         .when = W_OUTFILE},
};
static const struct shape view_head_shape = SHAPE(struct view, view_head);
static const struct shape view_tail_shape = SHAPE(struct view, view_tail);

/* ---- JSON: every field of a shape ---- */

static void json_fields(const struct shape *s, const void *base, unsigned when, size_t index);

#define AT(base, off, type) (*(const type *)(const void *)((const char *)(base) + (off)))

static void
json_name(const char *key, const char *name)
{
	if (name != NULL)
		j_str(key, name);
	else
		j_null(key);
}

static void
json_field(const struct field *f, const void *base, unsigned when, size_t index)
{
	const void *p = (const char *)base + f->off;
	size_t i, n = 0;

	switch (f->kind) {
	case K_OBJS:
	case K_STRS:
	case K_U32S:
	case K_U64S:
	case K_F64S:
	case K_BLOB: n = AT(base, f->n_off, size_t); break;
	default: break;
	}

	switch (f->kind) {
	case K_U32: j_u64(f->name, *(const uint32_t *)p); break;
	case K_U64: j_u64(f->name, *(const uint64_t *)p); break;
	case K_I64: j_i64(f->name, *(const int64_t *)p); break;
	case K_SIZE: j_u64(f->name, *(const size_t *)p); break;
	case K_F32: j_f64(f->name, *(const float *)p); break;
	case K_F64: j_f64(f->name, *(const double *)p); break;
	case K_BOOL: j_bool(f->name, *(const bool *)p); break;
	case K_STR: j_str(f->name, *(const char *const *)p); break;
	case K_STR_OR_NULL: json_name(f->name, *(const char *const *)p); break;
	case K_ROLE: j_str(f->name, hsamem_role_name(*(const enum hsamem_role *)p)); break;
	case K_DTYPE: json_name(f->name, hsamem_dtype_name(*(const enum hsamem_dtype *)p)); break;
	case K_WEIGHTING:
		json_name(f->name, hsamem_weighting_name(*(const enum hsamem_weighting *)p));
		break;
	case K_RANK: j_u64(f->name, index + 1); break;
	case K_OBJ:
		j_obj(f->name);
		json_fields(f->sub, p, when, 0);
		j_end();
		break;
	case K_OBJS:
		j_arr(f->name);
		for (i = 0; i < n; i++) {
			j_obj(NULL);
			json_fields(f->sub, *(const char *const *)p + i * f->sub->size, when, i);
			j_end();
		}
		j_end();
		break;
	case K_STRS:
		j_arr(f->name);
		for (i = 0; i < n; i++)
			j_str(NULL, (*(const char *const *const *)p)[i]);
		j_end();
		break;
	case K_U32S:
		j_arr(f->name);
		for (i = 0; i < n; i++)
			j_u64(NULL, (*(const uint32_t *const *)p)[i]);
		j_end();
		break;
	case K_U64S:
		j_arr(f->name);
		for (i = 0; i < n; i++)
			j_u64(NULL, (*(const uint64_t *const *)p)[i]);
		j_end();
		break;
	case K_F64S:
		j_arr(f->name);
		for (i = 0; i < n; i++)
			j_f64(NULL, (*(const double *const *)p)[i]);
		j_end();
		break;
	case K_BLOB: j_base64(f->name, *(const void *const *)p, n); break;
	case K_CUSTOM: f->json(f->name, base); break;
	}
}

/* Writes the fields of shape s of the struct at base whose conditions when holds; index is the
 * struct's place in its array (K_RANK). */
static void
json_fields(const struct shape *s, const void *base, unsigned when, size_t index)
{
	for (size_t i = 0; i < s->n_fields; i++)
		if ((s->fields[i].when & when) == s->fields[i].when)
			json_field(&s->fields[i], base, when, index);
}

/* ---- tables ---- */

/* The field at path in shape s, and its offset from the start of the row. */
static const struct field *
find_field(const struct shape *s, const char *path, size_t *off)
{
	size_t len = strcspn(path, ".");

	for (size_t i = 0; i < s->n_fields; i++) {
		const struct field *f = &s->fields[i];
		if (strlen(f->name) != len || strncmp(f->name, path, len) != 0)
			continue;
		*off += f->off;
		if (path[len] == '.')
			return find_field(f->sub, path + len + 1, off);
		return f;
	}
	return NULL;
}

/* The length of array field f, found at offset off of row. */
static size_t
field_count(const void *row, const struct field *f, size_t off)
{
	return AT(row, off - f->off + f->n_off, size_t);
}

/* The text of a cell that shows a number or a name. */
static const char *
cell_value(const struct field *f, enum show show, const void *p, char *buf, size_t size)
{
	switch (f->kind) {
	case K_U32: snprintf(buf, size, "%u", *(const uint32_t *)p); break;
	case K_SIZE: snprintf(buf, size, "%zu", *(const size_t *)p); break;
	case K_U64:
		if (show == SHOW_BYTES)
			return fmt_bytes(*(const uint64_t *)p, buf, size);
		snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)p);
		break;
	case K_I64:
		if (show == SHOW_TIME)
			return fmt_time(*(const int64_t *)p, buf, size);
		snprintf(buf, size, "%lld", (long long)*(const int64_t *)p);
		break;
	case K_F64: snprintf(buf, size, show == SHOW_MS ? "%.3f" : "%g", *(const double *)p); break;
	case K_ROLE: return hsamem_role_name(*(const enum hsamem_role *)p);
	default: return *(const char *const *)p;
	}
	return buf;
}

/* The width the tags after a text take, as the text leaves room for them. */
static int
tags_width(const char *const *tags, size_t n)
{
	int w = 0;

	for (size_t i = 0; i < n; i++)
		w += (int)strlen(tags[i]) + 2;
	return w;
}

/* Prints the cell of column c of a row, after head bytes of the line; returns the bytes printed
 * (not counted for text, which ends the line but for its tags). */
static int
cell_print(const struct table *t, size_t c, const void *row, int head)
{
	const struct column *col = &t->cols[c];
	const struct field *f = NULL, *tags;
	const void *p = NULL;
	size_t off = 0, toff = 0, i;
	char buf[48], *w;
	int n;

	if (col->cell != NULL) {
		col->cell(row, buf, sizeof(buf));
		return printf("%*s", col->width, buf);
	}
	f = find_field(t->row, col->field, &off);
	assert(f != NULL);
	p = (const char *)row + off;
	switch (col->show) {
	case SHOW_TEXT:
		/* Room is left for the tags that follow, when the table has them. */
		n = 0;
		if (c + 1 < t->n_cols && t->cols[c + 1].show == SHOW_TAGS) {
			tags = find_field(t->row, t->cols[c + 1].field, &toff);
			n = tags_width(*(const char *const *const *)((const char *)row + toff),
			               field_count(row, tags, toff));
		}
		text_print(*(const char *const *)p, NULL, 0, out.width - head - n,
		           out.highlight_bold);
		return 0;
	case SHOW_TAGS:
		for (i = 0; i < field_count(row, f, off); i++) {
			w = text_collapse((*(const char *const *const *)p)[i]);
			printf("  #%s", w != NULL ? w : "");
			free(w);
		}
		return 0;
	case SHOW_CLEAN:
		w = text_collapse(*(const char *const *)p);
		n = printf("%*s", col->width, w != NULL ? w : "");
		free(w);
		return n;
	default: return printf("%*s", col->width, cell_value(f, col->show, p, buf, sizeof(buf)));
	}
}

void
render_table(const struct table *t, const void *rows, size_t n, unsigned when)
{
	size_t i, c;
	int head, n_cell;

	for (c = 0; c < t->n_cols; c++)
		if ((t->cols[c].when & when) == t->cols[c].when && t->cols[c].show != SHOW_TAGS)
			printf("%*s%*s", t->cols[c].gap, "", t->cols[c].width, t->cols[c].head);
	putchar('\n');
	for (i = 0; i < n; i++) {
		const void *row = (const char *)rows + i * t->row->size;

		head = 0;
		for (c = 0; c < t->n_cols; c++) {
			if ((t->cols[c].when & when) != t->cols[c].when)
				continue;
			head += printf("%*s", t->cols[c].gap, "");
			n_cell = cell_print(t, c, row, head);
			head += n_cell;
		}
		putchar('\n');
	}
}

void
render(const struct result *r, const struct view *v)
{
	unsigned when = r->when | v->when;

	if (!out.json) {
		r->human(v);
		return;
	}
	j_obj(NULL);
	json_fields(&view_head_shape, v, when, 0);
	json_fields(r->shape, v->res, when, 0);
	json_fields(&view_tail_shape, v, when, 0);
	j_end();
}
