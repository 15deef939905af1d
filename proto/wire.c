/*
 * wire.c: a walk over serialized protobuf messages (wire.h). It reads the wire format itself
 * (field header, then a varint, 4 or 8 bytes, or a length and that many bytes) and asks the
 * message's descriptor what each field is: a string is scanned, a message is walked in turn,
 * anything else is skipped; on the way it adds up what protobuf-c's unpack would allocate for
 * each (protobuf-c.c, protobuf_c_message_unpack and parse_member, read for version 1.4). It never
 * allocates and never writes outside *s; the path of a NUL byte is worked out only when one is
 * found, so the walk does little per field but read its header.
 */
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define WIRE_MAX_DEPTH 32

/* Where the walk went down on its way to where it is: per level, the field and where the message
 * holding it starts and where the field starts. */
struct hop {
	const ProtobufCFieldDescriptor *field;
	const uint8_t *msg, *at;
};

struct walker {
	struct wire_scan *s;
	const uint8_t *end; /* of the whole message */
	uint64_t rep_bytes; /* of the elements of repeated fields so far */
	bool over;          /* a count passed its max */
	struct hop hops[WIRE_MAX_DEPTH];
};

/* One field as next_field() read it. */
struct field {
	uint32_t num;
	ProtobufCWireType type;
	const uint8_t *raw; /* its value, after the header: what unpack keeps of an unknown field */
	const uint8_t *val; /* a length-delimited value's bytes, after the length; else NULL */
	uint64_t len;       /* their count */
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

/* Reads one field header at *p and skips its value. 0, or -1 when malformed. */
static int
next_field(const uint8_t **p, const uint8_t *end, struct field *f)
{
	uint64_t key, v;

	f->val = NULL;
	if (read_varint(p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
		return -1;
	f->num = (uint32_t)(key >> 3);
	f->type = (ProtobufCWireType)(key & 7);
	f->raw = *p;
	switch (f->type) {
	case PROTOBUF_C_WIRE_TYPE_VARINT: return read_varint(p, end, &v);
	case PROTOBUF_C_WIRE_TYPE_64BIT: v = 8; break;
	case PROTOBUF_C_WIRE_TYPE_32BIT: v = 4; break;
	case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
		if (read_varint(p, end, &v) != 0)
			return -1;
		f->val = *p;
		f->len = v;
		break;
	default: return -1; /* groups: protobuf-c does not take them either */
	}
	if (v > (uint64_t)(end - *p))
		return -1;
	*p += v;
	return 0;
}

uint64_t
wire_alloc_cost(size_t size)
{
	if (size >= (64u << 10))
		return ((uint64_t)size + 16 + 4095) & ~(uint64_t)4095;
	uint64_t c = ((uint64_t)size + 8 + 15) & ~(uint64_t)15;
	return c < 32 ? 32 : c;
}

/* The size of one element of a repeated field of type t in its unpacked array. */
static size_t
elt_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE: return 8;
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	default: return 4;
	}
}

/* The elements of a packed array of type t in len bytes at p (as unpack counts them). */
static uint64_t
packed_count(ProtobufCType t, const uint8_t *p, uint64_t len)
{
	uint64_t n = 0;
	switch (elt_size(t)) {
	case 8:
		if (t == PROTOBUF_C_TYPE_SFIXED64 || t == PROTOBUF_C_TYPE_FIXED64 ||
		    t == PROTOBUF_C_TYPE_DOUBLE)
			return len / 8;
		break;
	case 4:
		if (t == PROTOBUF_C_TYPE_SFIXED32 || t == PROTOBUF_C_TYPE_FIXED32 ||
		    t == PROTOBUF_C_TYPE_FLOAT)
			return len / 4;
		break;
	default: return len; /* bool */
	}
	for (uint64_t i = 0; i < len; i++) /* varints: one ends at each byte under 0x80 */
		n += p[i] < 0x80;
	return n;
}

/* What unpack allocates for its scratch arrays of scanned fields, n of them: the first 16 are on
 * its stack, then arrays of 32, 64, 128... */
static uint64_t
scan_slabs(uint64_t n)
{
	uint64_t cost = 0;
	for (uint64_t cap = 16, slab = 32; cap < n; cap += slab, slab *= 2)
		cost += wire_alloc_cost(slab * 32);
	return cost;
}

/* Writes the path of the n hops into at->path: "append.entries[3].text". */
static void
write_path(struct wire_nul *at, const struct hop *hops, int n, const uint8_t *end)
{
	size_t plen = 0;
	struct field fl;

	for (int i = 0; i < n && plen < sizeof(at->path); i++) {
		const ProtobufCFieldDescriptor *f = hops[i].field;
		const char *dot = i > 0 ? "." : "";
		int w;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			/* the index: the field's occurrences before this one in its message */
			const uint8_t *p = hops[i].msg;
			long index = 0;
			while (p < hops[i].at && next_field(&p, end, &fl) == 0)
				index += fl.num == f->id;
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

/* Accounts one field f of a message for unpack (repeated: one element more); counts it. */
static void
account_repeated(struct walker *w, const ProtobufCFieldDescriptor *f, const struct field *fl)
{
	uint64_t n = 1;
	if (fl->type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && f->type != PROTOBUF_C_TYPE_STRING &&
	    f->type != PROTOBUF_C_TYPE_BYTES && f->type != PROTOBUF_C_TYPE_MESSAGE)
		n = packed_count(f->type, fl->val, fl->len);
	w->s->unpacked += n * elt_size(f->type);
	w->rep_bytes += n * elt_size(f->type);
	for (size_t i = 0; i < w->s->n_counts; i++) {
		struct wire_count *c = &w->s->counts[i];
		if (c->field == f && (c->n += n) > c->max && c->max > 0)
			w->over = true;
	}
}

/* Walks the message at p..end, a desc, at depth. 0; 1 when a count or unpacked passed its max;
 * -1 when malformed. */
static int
walk(struct walker *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end,
     int depth)
{
	struct wire_scan *s = w->s;
	const ProtobufCFieldDescriptor *f = NULL;
	const uint8_t *msg = p, *at;
	int r;
	uint64_t n = 0, n_unknown = 0, n_repeated = 0, rep0 = w->rep_bytes;
	struct field fl;

	if (depth >= WIRE_MAX_DEPTH)
		return -1;
	while (p < end) {
		at = p;
		if (next_field(&p, end, &fl) != 0)
			return -1;
		n++;
		if (w->over || (s->unpacked > s->max_unpacked && s->max_unpacked > 0))
			return 1;
		if (f == NULL || f->id != fl.num) /* repeated fields come one after another */
			f = protobuf_c_message_descriptor_get_field(desc, fl.num);
		if (f == NULL) { /* kept as a copy of its value, length included */
			n_unknown++;
			s->unpacked += wire_alloc_cost((size_t)(p - fl.raw));
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n_repeated++;
			account_repeated(w, f, &fl);
		}
		if (fl.val == NULL)
			continue;
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			s->unpacked += wire_alloc_cost((size_t)fl.len + 1);
			const uint8_t *nul;
			if (!s->has_nul && (nul = memchr(fl.val, 0, (size_t)fl.len)) != NULL) {
				s->has_nul = true;
				w->hops[depth] = (struct hop){f, msg, at};
				s->nul.field = f;
				s->nul.offset = (size_t)(nul - fl.val);
				write_path(&s->nul, w->hops, depth + 1, w->end);
			}
		} else if (f->type == PROTOBUF_C_TYPE_BYTES && fl.len > 0) {
			s->unpacked += wire_alloc_cost((size_t)fl.len);
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			w->hops[depth] = (struct hop){f, msg, at};
			if ((r = walk(w, f->descriptor, fl.val, fl.val + fl.len, depth + 1)) != 0)
				return r;
		}
	}
	s->fields += n;
	s->unpacked += wire_alloc_cost(desc->sizeof_message) + scan_slabs(n);
	/* one array per repeated field present, of its elements (counted above): its chunk's
	 * overhead, a page for those that may be mapped; and one array of the unknown fields */
	s->unpacked += 24 * (n_repeated < desc->n_fields ? n_repeated : desc->n_fields) +
	               4112 * ((w->rep_bytes - rep0) >> 16);
	if (n_unknown > 0)
		s->unpacked += wire_alloc_cost(n_unknown * sizeof(ProtobufCMessageUnknownField));
	return w->over || (s->unpacked > s->max_unpacked && s->max_unpacked > 0) ? 1 : 0;
}

int
wire_scan(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
          struct wire_scan *s)
{
	struct walker w = {.s = s, .end = buf + len};

	s->has_nul = false;
	memset(&s->nul, 0, sizeof(s->nul));
	s->fields = 0;
	s->unpacked = 0;
	for (size_t i = 0; i < s->n_counts; i++)
		s->counts[i].n = 0;
	if (buf == NULL && len > 0)
		return -1;
	return walk(&w, desc, buf, buf + len, 0);
}

int
wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
              struct wire_nul *at)
{
	struct wire_scan s = {0};
	int r = wire_scan(desc, buf, len, &s);

	if (at != NULL)
		*at = s.nul;
	if (r < 0)
		return -1;
	return s.has_nul ? 1 : 0;
}
