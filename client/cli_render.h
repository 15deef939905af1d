/*
 * cli_render.h: how the hsamem CLI describes its results, and the two generic renderers that
 * show any result so described: as JSON, and (its lists) as tables for people.
 *
 * A result type is described once, as a shape: its fields, each with a name, a kind and where it
 * is in the struct (an offset). With --json, render() writes every field of a result's shape, in
 * the order listed; render_table() prints a list as a table whose columns name the fields they
 * show. The sentences and blocks people read besides tables are a result's human() function.
 */
#ifndef HSAMEM_CLI_RENDER_H
#define HSAMEM_CLI_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsamem.h"

/* How results are shown; set once by cli.c, before the first result. */
struct out_style {
	bool json;
	bool highlight_bold; /* bold on a terminal; [brackets] elsewhere */
	int width;           /* columns for trimmed text */
};
extern struct out_style out;

enum kind {
	K_U32,
	K_U64,
	K_I64,
	K_SIZE,
	K_F32,
	K_F64,
	K_BOOL,
	K_STR,         /* const char *; NULL reads "" */
	K_STR_OR_NULL, /* const char *; NULL is JSON null */
	K_ROLE,        /* enum hsamem_role, by name */
	K_DTYPE,       /* enum hsamem_dtype, by name; null when it has none */
	K_WEIGHTING,   /* enum hsamem_weighting, likewise */
	K_RANK,        /* no value: the place of the struct in its array, from 1 */
	K_OBJ,         /* a struct inside this one, of shape sub */
	K_OBJS,        /* a pointer to n structs of shape sub */
	K_STRS,        /* const char **, n of them */
	K_U32S,        /* uint32_t *, n of them */
	K_U64S,        /* uint64_t *, n of them */
	K_F64S,        /* double *, n of them */
	K_BLOB,        /* void * of n bytes, base64 in JSON */
	K_CUSTOM,      /* written by the field's json() */
};

/* Conditions on fields and columns: shown only when the view has them all. */
enum {
	W_USER = 1 << 0,    /* the command was about one user */
	W_URL = 1 << 1,     /* the daemon's URL and the round trip time (ping) */
	W_OUTFILE = 1 << 2, /* the file the command wrote (attend) */
	W_TENSORS = 1 << 3, /* chunks were read with their tensors */
};

struct shape;

struct field {
	const char *name;
	enum kind kind;
	size_t off;              /* where the value (or the array's pointer) is */
	size_t n_off;            /* arrays and blobs: where their length (a size_t) is */
	const struct shape *sub; /* K_OBJ, K_OBJS: the shape of the struct(s) */
	unsigned when;           /* W_ flags the view must have for the field to be written */
	void (*json)(const char *key, const void *base); /* K_CUSTOM */
};

struct shape {
	size_t size; /* of the struct, to step through arrays of it */
	size_t n_fields;
	const struct field *fields;
};

#define SHAPE(type, fields)                                                                        \
	{                                                                                          \
		sizeof(type), sizeof(fields) / sizeof(fields[0]), fields                           \
	}
#define FIELD(type, member, k)                                                                     \
	{                                                                                          \
		.name = #member, .kind = (k), .off = offsetof(type, member)                        \
	}
#define OBJECT(type, member, shape)                                                                \
	{                                                                                          \
		.name = #member, .kind = K_OBJ, .off = offsetof(type, member), .sub = (shape)      \
	}
#define ARRAY(type, member, k, n, shape)                                                           \
	{                                                                                          \
		.name = #member, .kind = (k), .off = offsetof(type, member),                       \
		.n_off = offsetof(type, n), .sub = (shape)                                         \
	}

enum show {
	SHOW_PLAIN, /* numbers in decimal, strings as they are */
	SHOW_CLEAN, /* a string collapsed (text_collapse) */
	SHOW_TIME,  /* Unix ms as local time */
	SHOW_BYTES, /* a byte count with its unit */
	SHOW_MS,    /* milliseconds with three decimals */
	SHOW_TEXT,  /* daemon text trimmed to what is left of the line */
	SHOW_TAGS,  /* strings after the text, each as "  #tag"; no header */
};

struct column {
	const char *head;
	int width;         /* as printf's: negative pads on the right, 0 does not pad */
	int gap;           /* spaces before the column */
	const char *field; /* the field shown, by name; "a.b" is field b of struct field a */
	enum show show;
	/* Instead of a field: a cell made of several fields. */
	void (*cell)(const void *row, char *buf, size_t size);
	unsigned when;
};

struct table {
	const struct shape *row;
	size_t n_cols;
	const struct column *cols;
};

#define TABLE(shape, cols)                                                                         \
	{                                                                                          \
		&(shape), sizeof(cols) / sizeof(cols[0]), cols                                     \
	}

/* What a command shows: its result and what the command adds to it. */
struct view {
	const void *res;
	const char *user;
	const char *url;
	double rtt_ms;
	const char *out_file;
	const uint64_t *positions; /* attend's, or NULL */
	const char *verb;          /* transfer: what was done */
	double seconds;            /* reencode: how long it took */
	const char *extra;         /* query's entry view: the daemon's message, or NULL */
	unsigned when;             /* W_ flags of this view beyond its result's */
};

/* How a result type is shown. */
struct result {
	const struct shape *shape;
	unsigned when; /* the view's fields its JSON document has */
	void (*human)(const struct view *v);
};

/* Shows the view of a result: as JSON with --json, else by the result's human(). */
void render(const struct result *r, const struct view *v);

/* Prints the header of table t and a line for each of the n rows at rows, in the columns whose
 * conditions when holds. */
void render_table(const struct table *t, const void *rows, size_t n, unsigned when);

#endif
