/*
 * wire.h: what a serialized message says that its unpacked form cannot, or says too late.
 *
 * protobuf-c unpacks a string field into a NUL-terminated C string and keeps no length, so a NUL
 * byte inside a string on the wire silently cuts the string there: "victim\0/../x" would read as
 * "victim". And unpack allocates a struct for every sub-message and a copy of every string before
 * anything can count them: 31 million empty entries of two bytes each, a 60 MiB append, take over
 * 4 GiB to unpack. The daemon therefore looks at the serialized bytes before it unpacks them:
 * wire_scan() walks a message by its descriptor, field header by field header, scans each string
 * field's bytes for a NUL, counts the fields it is asked to count, and works out what unpacking
 * the message would allocate. Nothing is copied and nothing allocated, so the cost is one memchr
 * over the strings plus a step per field: far less than the unpack it guards (bench_wire).
 */
#ifndef HSAMEM_WIRE_H
#define HSAMEM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Where wire_scan() found a NUL byte. */
struct wire_nul {
	const ProtobufCFieldDescriptor *field; /* the string field that holds it */
	char path[160];                        /* the field's path: "append.entries[3].text" */
	size_t offset;                         /* of the NUL byte in the string */
};

/* A repeated field that wire_scan() counts: its elements over the whole message, at any depth
 * (each element of a packed array counts). */
struct wire_count {
	const ProtobufCFieldDescriptor *field; /* in: a repeated field of some message */
	uint64_t max;                          /* in: the walk stops once n passes it; 0: never */
	uint64_t n;                            /* out */
};

/* What wire_scan() found. */
struct wire_scan {
	struct wire_count *counts; /* in: the fields to count (n_counts of them), or NULL */
	size_t n_counts;
	uint64_t max_unpacked; /* in: the walk stops once unpacked passes it; 0: never */
	bool has_nul;          /* out: a string field holds a NUL byte; nul says the first */
	struct wire_nul nul;
	uint64_t fields;   /* out: field occurrences, at every depth */
	uint64_t unpacked; /* out: the bytes protobuf-c's unpack would allocate, in all (below) */
};

/*
 * Walks the serialized message of len bytes at buf, a desc, and its sub-messages (those of its
 * fields, at any depth), filling the out fields of *s. Returns 0; 1 when it stopped early, as
 * soon as a count passed its max or unpacked passed max_unpacked (the counts are then lower
 * bounds: one of them or unpacked is past its max; the rest is not walked, so that refusing a
 * hostile message costs little); -1 when buf is not a well-formed message (a truncated field, a
 * length past the end, a group, nesting deeper than 32), which protobuf-c's unpack refuses too.
 * Unknown fields are skipped, as unpack skips them (and counted in unpacked, since unpack keeps a
 * copy of each).
 *
 * s->unpacked bounds what protobuf-c 1.4's unpack allocates for the message, counted with
 * wire_alloc_cost() per allocation, and summed over every allocation unpack makes, freed or not
 * (its scratch arrays of scanned fields included), so that an allocator counting the same way
 * (as the daemon's does) never goes past it. The one thing it does not foresee is a non-repeated
 * sub-message sent more than once, which unpack merges into the first, copying its repeated
 * fields each time; no encoder sends that, and the daemon's allocator refuses what goes past.
 */
int wire_scan(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
              struct wire_scan *s);

/*
 * wire_scan() for the NUL bytes alone: 0 when no string field holds one; 1 when one does, with
 * *at (when not NULL) saying which (the first in the message's order); -1 when buf is malformed
 * (or, having found a NUL, malformed further on).
 */
int wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                  struct wire_nul *at);

/* What one allocation of size bytes costs the heap: glibc's chunk for it, header and rounding
 * included, or whole pages from 64 KiB on (where it may map them). At least size + 8. */
uint64_t wire_alloc_cost(size_t size);

#endif
