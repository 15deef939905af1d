/*
 * wire.h: what a serialized message says that its unpacked form cannot. protobuf-c unpacks a
 * string field into a NUL-terminated C string and keeps no length, so a NUL byte inside a string
 * on the wire silently cuts the string there: "victim\0/../x" would read as "victim". The daemon
 * and libhsamem therefore look at the serialized bytes before they trust a string: wire_find_nul()
 * walks a message by its descriptor, field header by field header, and scans each string field's
 * bytes for a NUL. Everything else that is length-delimited (bytes fields, packed arrays) is
 * skipped by its length, and nothing is copied, so the cost is one memchr over the strings plus a
 * step per field: far less than the unpack that follows.
 */
#ifndef HSAMEM_WIRE_H
#define HSAMEM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Where wire_find_nul() found a NUL byte. */
struct wire_nul {
	const ProtobufCFieldDescriptor *field; /* the string field that holds it */
	char path[160];                        /* the field's path: "append.entries[3].text" */
	size_t offset;                         /* of the NUL byte in the string */
};

/*
 * Walks the serialized message of len bytes at buf, a desc, and its sub-messages (those of its
 * fields, at any depth). Returns 0 when no string field holds a NUL byte; 1 when one does, with
 * *at (when not NULL) saying which (the first in the message's order); -1 when buf is not a
 * well-formed message (a truncated field, a length past the end, a group, nesting deeper than
 * 32), which protobuf-c's unpack refuses too. Unknown fields are skipped, as unpack skips them.
 */
int wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                  struct wire_nul *at);

#endif
