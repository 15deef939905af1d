/*
 * wire.c: a walk over serialized protobuf messages (wire.h). It reads the wire format itself
 * (field header, then a varint, 4 or 8 bytes, or a length and that many bytes) and asks the
 * message's descriptor what each field is: a string is scanned, a message is walked in turn,
 * anything else is skipped. It never allocates and never writes outside *at.
 */
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define WIRE_MAX_DEPTH 32
#define WIRE_COUNTED   64 /* fields per message whose repetitions are counted for the path */

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

/* Appends ".name" or ".name[i]" to the path (truncating when it does not fit). */
static size_t
path_push(struct wire_nul *at, size_t plen, const ProtobufCFieldDescriptor *f, long index)
{
	if (at == NULL || plen >= sizeof(at->path))
		return plen;
	int n = index >= 0 ? snprintf(at->path + plen, sizeof(at->path) - plen, "%s%s[%ld]",
	                              plen > 0 ? "." : "", f->name, index)
	                   : snprintf(at->path + plen, sizeof(at->path) - plen, "%s%s",
	                              plen > 0 ? "." : "", f->name);
	if (n < 0)
		return plen;
	plen += (size_t)n;
	return plen < sizeof(at->path) ? plen : sizeof(at->path) - 1;
}

static int
walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth,
     struct wire_nul *at, size_t plen)
{
	unsigned seen[WIRE_COUNTED] = {0};
	uint64_t key, len;

	if (depth > WIRE_MAX_DEPTH)
		return -1;
	while (p < end) {
		if (read_varint(&p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
			return -1;
		switch ((ProtobufCWireType)(key & 7)) {
		case PROTOBUF_C_WIRE_TYPE_VARINT:
			if (read_varint(&p, end, &len) != 0)
				return -1;
			continue;
		case PROTOBUF_C_WIRE_TYPE_64BIT:
			if (end - p < 8)
				return -1;
			p += 8;
			continue;
		case PROTOBUF_C_WIRE_TYPE_32BIT:
			if (end - p < 4)
				return -1;
			p += 4;
			continue;
		case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: break;
		default: return -1; /* groups: protobuf-c does not take them either */
		}
		if (read_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p))
			return -1;
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3));
		if (f != NULL &&
		    (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)) {
			size_t i = (size_t)(f - desc->fields);
			long index = -1;
			if (f->label == PROTOBUF_C_LABEL_REPEATED && i < WIRE_COUNTED)
				index = (long)seen[i]++;
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				const uint8_t *nul = memchr(p, 0, (size_t)len);
				if (nul != NULL) {
					if (at != NULL) {
						at->field = f;
						at->offset = (size_t)(nul - p);
						path_push(at, plen, f, index);
					}
					return 1;
				}
			} else {
				int r = walk(f->descriptor, p, p + len, depth + 1, at,
				             path_push(at, plen, f, index));
				if (r != 0)
					return r;
			}
		}
		p += len;
	}
	return 0;
}

int
wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
              struct wire_nul *at)
{
	if (at != NULL)
		memset(at, 0, sizeof(*at));
	if (len == 0)
		return 0;
	if (buf == NULL)
		return -1;
	return walk(desc, buf, buf + len, 0, at, 0);
}
