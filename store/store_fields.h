/*
 * store_fields.h: the building blocks of the store's records, internal to store/: keys (a uid, or a
 * uid and a number, big-endian so that a cursor walks one user's records in order; or a string)
 * and little-endian fields, written by put_* into reserved space and read by a bounds-checked
 * reader that marks a short or long value bad instead of reading past it. Inline, because the
 * record codecs (store_codec.c) run them per token.
 */
#ifndef HSAMEM_STORE_FIELDS_H
#define HSAMEM_STORE_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>

static inline MDB_val
key_uid(uint8_t buf[8], uint64_t uid)
{
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(uid >> (56 - 8 * i));
	return (MDB_val){.mv_size = 8, .mv_data = buf};
}

static inline MDB_val
key_uid_n(uint8_t buf[16], uint64_t uid, uint64_t n)
{
	key_uid(buf, uid);
	key_uid(buf + 8, n);
	return (MDB_val){.mv_size = 16, .mv_data = buf};
}

static inline MDB_val
key_str(const char *s)
{
	return (MDB_val){.mv_size = strlen(s), .mv_data = (void *)s};
}

static inline uint8_t *
put_uint(uint8_t *p, uint64_t x, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(x >> (8 * i));
	return p + bytes;
}

#define put_u8(p, x)  put_uint(p, x, 1)
#define put_u32(p, x) put_uint(p, x, 4)
#define put_u64(p, x) put_uint(p, x, 8)

static inline uint8_t *
put_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n > 0)
		memcpy(p, src, n);
	return p + n;
}

/* A reader over one value: reading past its end marks it short and yields zeros. */
struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static inline const uint8_t *
rd_take(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

static inline uint64_t
rd_uint(struct rd *r, int bytes)
{
	const uint8_t *p = rd_take(r, (size_t)bytes);
	uint64_t x = 0;
	for (int i = 0; p != NULL && i < bytes; i++)
		x |= (uint64_t)p[i] << (8 * i);
	return x;
}

#define rd_u8(r)  ((uint8_t)rd_uint(r, 1))
#define rd_u32(r) ((uint32_t)rd_uint(r, 4))
#define rd_u64(r) rd_uint(r, 8)

/* True when the whole value was read, no more and no less. */
static inline bool
rd_done(const struct rd *r)
{
	return !r->bad && r->p == r->end;
}

#endif
