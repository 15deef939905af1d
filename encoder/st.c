/*
 * st.c: the safetensors reader. It owns the mapping of one file and the parsed header (jansson
 * keeps the names and metadata strings it hands out). It checks only what the format itself
 * promises (sizes, ranges, dtypes); whether the tensors are the ones a model needs is
 * hsa_model.c's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsamem_defs.h"
#include "st.h"
#include "why.h"

/* A header larger than this is refused rather than parsed (the real ones are a few KiB). */
#define ST_HEADER_MAX (64u << 20)

struct st_file {
	char *path;
	const unsigned char *map;
	size_t size;
	json_t *header;
	struct st_tensor *t;
	size_t n;
};

const char *
st_dtype_name(enum st_dtype t)
{
	switch (t) {
	case ST_BF16: return "BF16";
	case ST_F32: return "F32";
	case ST_I64: return "I64";
	}
	return "?";
}

static int
st_dtype_parse(const char *s, enum st_dtype *t, uint64_t *esize)
{
	if (!strcmp(s, "BF16")) {
		*t = ST_BF16;
		*esize = 2;
	} else if (!strcmp(s, "F32")) {
		*t = ST_F32;
		*esize = 4;
	} else if (!strcmp(s, "I64")) {
		*t = ST_I64;
		*esize = 8;
	} else {
		return -1;
	}
	return 0;
}

/* Fills t from one header entry; data_len is the size of the data region after the header. */
static int
st_tensor_parse(const char *path, const char *name, json_t *e, const unsigned char *data,
                uint64_t data_len, struct st_tensor *t, char *why, size_t why_len)
{
	json_t *dt = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
	json_t *offs = json_object_get(e, "data_offsets");
	uint64_t esize, begin, end;
	size_t i;

	if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
	    json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
	    !json_is_integer(json_array_get(offs, 1)))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: tensor %s: header entry lacks dtype, shape or data_offsets",
		                path, name);
	if (st_dtype_parse(json_string_value(dt), &t->dtype, &esize))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: tensor %s: unsupported dtype %s", path, name,
		                json_string_value(dt));
	if (json_array_size(shape) > ST_MAX_DIMS)
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: tensor %s: %zu dimensions",
		                path, name, json_array_size(shape));
	t->name = name;
	t->ndim = (uint32_t)json_array_size(shape);
	t->count = 1;
	for (i = 0; i < t->ndim; i++) {
		json_t *d = json_array_get(shape, i);
		if (!json_is_integer(d) || json_integer_value(d) < 0 ||
		    json_integer_value(d) > (1ll << 40))
			return why_fail(why, why_len, HSAMEM_EENCODER,
			                "%s: tensor %s: bad dimension %zu", path, name, i);
		t->shape[i] = (uint64_t)json_integer_value(d);
		t->count *= t->shape[i];
	}
	begin = (uint64_t)json_integer_value(json_array_get(offs, 0));
	end = (uint64_t)json_integer_value(json_array_get(offs, 1));
	if (json_integer_value(json_array_get(offs, 0)) < 0 || end < begin ||
	    end - begin != t->count * esize)
		return why_fail(
		        why, why_len, HSAMEM_EENCODER,
		        "%s: tensor %s: data_offsets [%llu, %llu] do not hold %llu %s values", path,
		        name, (unsigned long long)begin, (unsigned long long)end,
		        (unsigned long long)t->count, st_dtype_name(t->dtype));
	if (end > data_len)
		return why_fail(
		        why, why_len, HSAMEM_EENCODER,
		        "%s: truncated: tensor %s ends at byte %llu of the data, the file holds "
		        "%llu",
		        path, name, (unsigned long long)end, (unsigned long long)data_len);
	t->data = data + begin;
	t->nbytes = end - begin;
	return 0;
}

/* Parses the header of a mapped file into f->header and f->t. */
static int
st_parse(struct st_file *f, char *why, size_t why_len)
{
	json_error_t jerr;
	uint64_t hlen = 0;
	const char *key;
	json_t *val;
	size_t i = 0;
	int rc;

	if (f->size < 8)
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: truncated: %zu bytes", f->path,
		                f->size);
	for (i = 0; i < 8; i++)
		hlen |= (uint64_t)f->map[i] << (8 * i);
	if (hlen > ST_HEADER_MAX || hlen > f->size - 8)
		return why_fail(
		        why, why_len, HSAMEM_EENCODER,
		        "%s: truncated or not safetensors: header of %llu bytes in a file of %zu",
		        f->path, (unsigned long long)hlen, f->size);
	f->header = json_loadb((const char *)f->map + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!f->header || !json_is_object(f->header))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: header is not a JSON object: %s", f->path,
		                f->header ? "not an object" : jerr.text);
	f->t = calloc(json_object_size(f->header) + 1, sizeof(*f->t));
	if (!f->t)
		return -ENOMEM;
	json_object_foreach(f->header, key, val)
	{
		if (!strcmp(key, "__metadata__")) {
			if (!json_is_object(val))
				return why_fail(why, why_len, HSAMEM_EENCODER,
				                "%s: __metadata__ is not an object", f->path);
			continue;
		}
		if (!json_is_object(val))
			return why_fail(why, why_len, HSAMEM_EENCODER,
			                "%s: tensor %s: not an object", f->path, key);
		rc = st_tensor_parse(f->path, key, val, f->map + 8 + hlen, f->size - 8 - hlen,
		                     &f->t[f->n], why, why_len);
		if (rc)
			return rc;
		f->n++;
	}
	return 0;
}

int
st_open(const char *path, struct st_file **out, char *why, size_t why_len)
{
	struct st_file *f;
	struct stat sb;
	int fd = -1, rc;

	f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		rc = -ENOMEM;
		goto fail;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		rc = -errno;
		why_fail(why, why_len, rc, "%s: %s", path, strerror(errno));
		goto fail;
	}
	f->size = (size_t)sb.st_size;
	if (f->size) {
		f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			rc = -errno;
			why_fail(why, why_len, rc, "%s: mmap: %s", path, strerror(errno));
			goto fail;
		}
	}
	rc = st_parse(f, why, why_len);
	if (rc)
		goto fail;
	close(fd);
	*out = f;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	st_close(f);
	return rc;
}

void
st_close(struct st_file *f)
{
	if (!f)
		return;
	if (f->map)
		munmap((void *)f->map, f->size);
	json_decref(f->header);
	free(f->t);
	free(f->path);
	free(f);
}

const struct st_tensor *
st_find(const struct st_file *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

size_t
st_count(const struct st_file *f)
{
	return f->n;
}

const struct st_tensor *
st_at(const struct st_file *f, size_t i)
{
	return i < f->n ? &f->t[i] : NULL;
}

const char *
st_meta(const struct st_file *f, const char *key)
{
	json_t *m = json_object_get(f->header, "__metadata__");

	return json_string_value(json_object_get(m, key));
}

const char *
st_path(const struct st_file *f)
{
	return f->path;
}

float
st_get_f32(const struct st_tensor *t, uint64_t i)
{
	const unsigned char *p = t->data;
	uint32_t bits;
	float v;

	if (t->dtype == ST_BF16) {
		bits = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
	} else if (t->dtype == ST_F32) {
		bits = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
		       (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
	} else {
		return (float)st_get_i64(t, i);
	}
	memcpy(&v, &bits, sizeof(v));
	return v;
}

int64_t
st_get_i64(const struct st_tensor *t, uint64_t i)
{
	const unsigned char *p = (const unsigned char *)t->data + 8 * i;
	uint64_t u = 0;
	int k;

	if (t->dtype != ST_I64)
		return (int64_t)st_get_f32(t, i);
	for (k = 0; k < 8; k++)
		u |= (uint64_t)p[k] << (8 * k);
	return (int64_t)u;
}
