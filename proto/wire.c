/*
 * wire.c: a walk over serialized protobuf messages (wire.h). It reads the wire format itself
 * (field header, then a varint, 4 or 8 bytes, or a length and that many bytes) and asks the
 * message's descriptor what each field is: a string is scanned, a message is walked in turn,
 * anything else is skipped. It never allocates and never writes outside *at; the path of what
 * it found is worked out only then, so a walk that finds nothing does nothing per field but
 * read its header.
 */
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define WIRE_MAX_DEPTH 32

/* Where the walk went down on its way to what it found: per level, the field and where the
 * message holding it starts and where the field starts. */
struct hop {
	const ProtobufCFieldDescriptor *field;
	const uint8_t *msg, *at;
};

/* Reads a varint at *p (before end); 0, or -1 when it is truncated or longer than 10 bytes. */
static int
read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* Reads one field header and skips its value; *num gets the field number, *val and *len the
 * value of a length-delimited field (else *val is NULL). 0, or -1 when malformed. */
static int
next_field(const uint8_t **p, const uint8_t *end, uint32_t *num, const uint8_t **val, uint64_t *len)
{
	uint64_t key, v;

	*val = NULL;
	if (read_varint(p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
		return -1;
	*num = (uint32_t)(key >> 3);
	switch ((ProtobufCWireType)(key & 7)) {
	case PROTOBUF_C_WIRE_TYPE_VARINT: return read_varint(p, end, &v);
	case PROTOBUF_C_WIRE_TYPE_64BIT: v = 8; break;
	case PROTOBUF_C_WIRE_TYPE_32BIT: v = 4; break;
	case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
		if (read_varint(p, end, &v) != 0)
			return -1;
		*val = *p;
		*len = v;
		break;
	default: return -1; /* groups: protobuf-c does not take them either */
	}
	if (v > (uint64_t)(end - *p))
		return -1;
	*p += v;
	return 0;
}

/* Walks the message at depth; returns 0 (no NUL byte), the number of hops down to the first
 * string with one (hops[] says which, *nul where), or -1 when malformed. */
static int
walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth,
     struct hop *hops, const uint8_t **nul)
{
	const uint8_t *msg = p, *at, *val;
	uint64_t len = 0;
	uint32_t num;

	if (depth >= WIRE_MAX_DEPTH)
		return -1;
	while (p < end) {
		at = p;
		if (next_field(&p, end, &num, &val, &len) != 0)
			return -1;
		if (val == NULL)
			continue;
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field(desc, num);
		int r = 0; /* the hops down to a NUL byte found, or -1 */
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING)
			r = (*nul = memchr(val, 0, (size_t)len)) != NULL ? depth + 1 : 0;
		else if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE)
			r = walk(f->descriptor, val, val + len, depth + 1, hops, nul);
		if (r > 0)
			hops[depth] = (struct hop){f, msg, at};
		if (r != 0)
			return r;
	}
	return 0;
}

/* Writes the path of the n hops into at->path: "append.entries[3].text". */
static void
write_path(struct wire_nul *at, const struct hop *hops, int n, const uint8_t *end)
{
	size_t plen = 0;

	for (int i = 0; i < n && plen < sizeof(at->path); i++) {
		const ProtobufCFieldDescriptor *f = hops[i].field;
		const char *dot = i > 0 ? "." : "";
		int w;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			/* the index: the field's occurrences before this one in its message */
			const uint8_t *p = hops[i].msg, *val;
			uint64_t len;
			uint32_t num;
			long index = 0;
			while (p < hops[i].at && next_field(&p, end, &num, &val, &len) == 0)
				index += num == f->id;
			w = snprintf(at->path + plen, sizeof(at->path) - plen, "%s%s[%ld]", dot,
			             f->name, index);
		} else {
			w = snprintf(at->path + plen, sizeof(at->path) - plen, "%s%s", dot,
			             f->name);
		}
		if (w < 0)
			break;
		plen += (size_t)w;
	}
}

int
wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
              struct wire_nul *at)
{
	struct hop hops[WIRE_MAX_DEPTH];
	const uint8_t *nul = NULL;
	int n;

	if (at != NULL)
		memset(at, 0, sizeof(*at));
	if (len == 0)
		return 0;
	if (buf == NULL)
		return -1;
	if ((n = walk(desc, buf, buf + len, 0, hops, &nul)) <= 0)
		return n;
	if (at != NULL) {
		at->field = hops[n - 1].field;
		at->offset = 0;
		/* the string's bytes start after its header and length */
		const uint8_t *p = hops[n - 1].at, *val = NULL;
		uint64_t slen;
		uint32_t num;
		if (next_field(&p, buf + len, &num, &val, &slen) == 0 && val != NULL)
			at->offset = (size_t)(nul - val);
		write_path(at, hops, n, buf + len);
	}
	return 1;
}
