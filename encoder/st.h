/*
 * st.h: a reader of safetensors files (models/README.md, "Weights file"): the file is mapped
 * read-only, its JSON header parsed and every tensor's dtype, shape and byte range checked
 * against the file's size before anything is handed out.
 *
 * An st_file is read-only once opened: several threads may read its tensors at once.
 */
#ifndef HSAMEM_ST_H
#define HSAMEM_ST_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

enum st_dtype { ST_BF16 = 1, ST_F32 = 2, ST_I64 = 3 };

struct st_tensor {
	const char *name; /* borrowed from the file's header, valid until st_close */
	enum st_dtype dtype;
	uint32_t ndim;
	uint64_t shape[ST_MAX_DIMS];
	uint64_t count;   /* elements: the product of shape */
	const void *data; /* in the mapping, little-endian, row-major; may be unaligned */
	uint64_t nbytes;
};

struct st_file;

/*
 * Maps path and reads its header. Returns 0 and *out, or HSAMEM_EENCODER when the file is not a
 * well-formed safetensors file (truncated, header not JSON, a tensor whose byte range does not
 * match its dtype and shape or lies past the end), -errno when it cannot be opened or mapped.
 * On failure a sentence naming the file and what is wrong goes to why (may be NULL).
 */
int st_open(const char *path, struct st_file **out, char *why, size_t why_len);

/* Unmaps and frees; accepts NULL. Tensors and metadata strings read from it become invalid. */
void st_close(struct st_file *f);

/* The tensor of that name, or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* The number of tensors, and the i-th in header order. */
size_t st_count(const struct st_file *f);
const struct st_tensor *st_at(const struct st_file *f, size_t i);

/* The string value of key in __metadata__, or NULL. Borrowed until st_close. */
const char *st_meta(const struct st_file *f, const char *key);

/* The file's path as given to st_open. */
const char *st_path(const struct st_file *f);

/* The name of a dtype as the header spells it. */
const char *st_dtype_name(enum st_dtype t);

/* Reads element i of a tensor widened to fp32 (BF16, F32) or as an integer (I64). */
float st_get_f32(const struct st_tensor *t, uint64_t i);
int64_t st_get_i64(const struct st_tensor *t, uint64_t i);

#endif
