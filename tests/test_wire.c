/*
 * test_wire.c: wire_find_nul() (proto/wire.h) on messages packed by protobuf-c and then patched:
 * protobuf-c packs a string only up to its first NUL, so each case packs an X where the NUL goes
 * and overwrites it in the packed bytes, as a hostile client would send it. A NUL in a string
 * field is found at any depth, with the field's path; NUL bytes in bytes fields, packed arrays and
 * unknown fields are not strings and pass; malformed messages are told apart.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsamem.pb-c.h"
#include "test.h"
#include "wire.h"

static uint8_t packed[4096];
static size_t packed_len;

/* Packs req and turns its nth 'X' (from 1) into a NUL byte. */
static void
pack_patched(const Hsamem__Request *req, int nth)
{
	packed_len = hsamem__request__pack(req, packed);
	for (size_t i = 0; i < packed_len && nth > 0; i++)
		if (packed[i] == 'X' && --nth == 0)
			packed[i] = 0;
	CHECK(nth == 0);
}

static void
expect_nul(const char *path, size_t offset)
{
	struct wire_nul at;
	int r = wire_find_nul(&hsamem__request__descriptor, packed, packed_len, &at);
	CHECK_RET(r, 1);
	if (r == 1 && (strcmp(at.path, path) != 0 || at.offset != offset))
		fprintf(stderr, "found a NUL at %s byte %zu, expected %s byte %zu\n", at.path,
		        at.offset, path, offset);
	CHECK(r == 1 && strcmp(at.path, path) == 0 && at.offset == offset);
}

static void
test_append(void)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	Hsamem__EntryIn e[3] = {HSAMEM__ENTRY_IN__INIT, HSAMEM__ENTRY_IN__INIT,
	                        HSAMEM__ENTRY_IN__INIT};
	Hsamem__EntryIn *ep[3] = {&e[0], &e[1], &e[2]};
	Hsamem__ChunkIn ch = HSAMEM__CHUNK_IN__INIT, *chp = &ch;
	uint8_t zeros[64] = {0};
	uint32_t tokens[4] = {0, 0, 1, 0};
	char *tags[2] = {"tag-one", "tagXtwo"};

	req.has_version = 1;
	req.version = 1;
	req.body_case = HSAMEM__REQUEST__BODY_APPEND;
	req.append = &ap;
	ap.user = "victimX/../x";
	ap.n_entries = 3;
	ap.entries = ep;
	e[0].text = "first Xntry";
	e[1].tokens = tokens; /* packed zeros: not a string */
	e[1].n_tokens = 4;
	e[2].text = "third Xntry";
	e[2].n_tags = 2;
	e[2].tags = tags;
	ch.k.data = zeros; /* bytes full of zeros: not a string either */
	ch.k.len = sizeof(zeros);
	ap.n_chunks = 1;
	ap.chunks = &chp;

	/* every X left as it is: no NUL anywhere in a string */
	packed_len = hsamem__request__pack(&req, packed);
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, packed, packed_len, NULL), 0);
	/* each X in turn */
	pack_patched(&req, 1);
	expect_nul("append.user", 6);
	Hsamem__Request *cut = hsamem__request__unpack(NULL, packed_len, packed);
	CHECK(cut != NULL &&
	      strcmp(cut->append->user, "victim") == 0); /* what unpack makes of it */
	hsamem__request__free_unpacked(cut, NULL);
	pack_patched(&req, 2);
	expect_nul("append.entries[0].text", 6);
	pack_patched(&req, 3);
	expect_nul("append.entries[2].text", 6);
	pack_patched(&req, 4);
	expect_nul("append.entries[2].tags[1]", 3);
	/* the first in the message's order is reported */
	packed_len = hsamem__request__pack(&req, packed);
	for (size_t i = 0; i < packed_len; i++)
		if (packed[i] == 'X')
			packed[i] = 0;
	expect_nul("append.user", 6);
}

static void
test_import(void)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ImportRequest im = HSAMEM__IMPORT_REQUEST__INIT;
	Hsamem__ExportRecord r[2] = {HSAMEM__EXPORT_RECORD__INIT, HSAMEM__EXPORT_RECORD__INIT};
	Hsamem__ExportRecord *rp[2] = {&r[0], &r[1]};
	Hsamem__ExportRecord__Header hd = HSAMEM__EXPORT_RECORD__HEADER__INIT;
	Hsamem__Spec spec = HSAMEM__SPEC__INIT;
	Hsamem__Entry e = HSAMEM__ENTRY__INIT;

	req.has_version = 1;
	req.version = 1;
	req.body_case = HSAMEM__REQUEST__BODY_IMPORT;
	req.import = &im;
	im.user = "bob";
	im.n_records = 2;
	im.records = rp;
	r[0].rec_case = HSAMEM__EXPORT_RECORD__REC_HEADER;
	r[0].header = &hd;
	hd.spec = &spec;
	spec.encoder = "lexiXal";
	r[1].rec_case = HSAMEM__EXPORT_RECORD__REC_ENTRY;
	r[1].entry = &e;
	e.text = "an entry of the Xtream";
	pack_patched(&req, 1);
	expect_nul("import.records[0].header.spec.encoder", 4);
	pack_patched(&req, 2);
	expect_nul("import.records[1].entry.text", 16);
}

static void
test_malformed(void)
{
	/* an unknown length-delimited field (99) full of NUL bytes is skipped, as unpack skips it
	 */
	uint8_t unknown[] = {0x08, 0x01, 0x9a, 0x06, 0x03, 0, 0, 0};
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, unknown, sizeof(unknown), NULL), 0);
	/* a length past the end, a truncated varint, a group, field number 0 */
	uint8_t past[] = {0x62, 0x05, 0x0a, 0x01};
	uint8_t trunc[] = {0x08, 0x80};
	uint8_t group[] = {0x0b, 0x0c};
	uint8_t zero[] = {0x00, 0x01};
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, past, sizeof(past), NULL), -1);
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, trunc, sizeof(trunc), NULL), -1);
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, group, sizeof(group), NULL), -1);
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, zero, sizeof(zero), NULL), -1);
	/* inside a sub-message too: append (12) holding a string field whose length runs past */
	uint8_t inner[] = {0x62, 0x03, 0x0a, 0x05, 'a'};
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, inner, sizeof(inner), NULL), -1);
	/* nothing at all is an empty message */
	CHECK_RET(wire_find_nul(&hsamem__request__descriptor, NULL, 0, NULL), 0);
}

/* An allocator that counts as the daemon's does (wire_alloc_cost per allocation, freed or not). */
static void *
count_alloc(void *data, size_t size)
{
	*(uint64_t *)data += wire_alloc_cost(size);
	return malloc(size);
}

static void
count_free(void *data, void *ptr)
{
	free(ptr);
}

/* Scans buf and unpacks it counting: the scan's bound holds, and is within twice the truth. */
static void
expect_bound(const uint8_t *buf, size_t len, struct wire_scan *s)
{
	uint64_t used = 0;
	ProtobufCAllocator a = {count_alloc, count_free, &used};

	CHECK_RET(wire_scan(&hsamem__request__descriptor, buf, len, s), 0);
	Hsamem__Request *req = hsamem__request__unpack(&a, len, buf);
	CHECK(req != NULL);
	hsamem__request__free_unpacked(req, &a);
	if (used > s->unpacked || s->unpacked > 2 * used + 4096)
		fprintf(stderr, "%zu bytes: unpack allocated %llu, the scan said %llu\n", len,
		        (unsigned long long)used, (unsigned long long)s->unpacked);
	CHECK(used <= s->unpacked && s->unpacked <= 2 * used + 4096);
}

/* The scan's bound on what unpack allocates, on the shapes a hostile append takes (many empty
 * entries, many tags, unknown fields) and on ordinary ones; and its counts. */
static void
test_bound(void)
{
	enum { N = 5000 };
	static Hsamem__EntryIn e[N];
	static Hsamem__EntryIn *ep[N];
	static uint32_t tokens[70000];
	static char *tags[40];
	static uint8_t buf[1 << 20], kv[100000];
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AppendRequest ap = HSAMEM__APPEND_REQUEST__INIT;
	Hsamem__ChunkIn ch = HSAMEM__CHUNK_IN__INIT, *chp = &ch;
	struct wire_count counts[2] = {{hsamem__append_request__descriptor.fields + 1, 0, 0},
	                               {hsamem__entry_in__descriptor.fields + 4, 0, 0}};
	struct wire_scan s = {.counts = counts, .n_counts = 2};

	CHECK(strcmp(counts[0].field->name, "entries") == 0 &&
	      strcmp(counts[1].field->name, "tags") == 0);
	for (int i = 0; i < 40; i++)
		tags[i] = "t";
	for (size_t i = 0; i < N; i++) {
		hsamem__entry_in__init(&e[i]);
		ep[i] = &e[i];
	}
	req.has_version = 1;
	req.version = 1;
	req.body_case = HSAMEM__REQUEST__BODY_APPEND;
	req.append = &ap;
	ap.user = "alice";
	ap.entries = ep;
	for (size_t n = 1; n <= N; n *= 10) { /* empty entries */
		ap.n_entries = n;
		expect_bound(buf, hsamem__request__pack(&req, buf), &s);
		CHECK(counts[0].n == n && counts[1].n == 0);
	}
	for (size_t i = 0; i < N; i++) { /* 40 one-byte tags each */
		e[i].n_tags = 40;
		e[i].tags = tags;
	}
	ap.n_entries = N;
	expect_bound(buf, hsamem__request__pack(&req, buf), &s);
	CHECK(counts[0].n == N && counts[1].n == 40 * N && s.fields > 41 * N);
	for (size_t i = 0; i < N; i++) { /* texts, token arrays, tensors */
		e[i].n_tags = i % 3;
		e[i].text = i % 2 ? "some text of an entry" : NULL;
		e[i].n_tokens = i % 7;
		e[i].tokens = tokens;
	}
	e[0].n_tokens = 70000;
	for (size_t i = 0; i < 70000; i++)
		tokens[i] = (uint32_t)(i * 2654435761u);
	ch.k.data = ch.v.data = kv;
	ch.k.len = sizeof(kv);
	ch.v.len = 10;
	ap.n_chunks = 1;
	ap.chunks = &chp;
	expect_bound(buf, hsamem__request__pack(&req, buf), &s);
	CHECK(s.fields < 10 * N + 100);
	/* unknown fields: 20000 varints and a length-delimited one, in the request itself */
	size_t len = 0;
	for (int i = 0; i < 20000; i++) {
		buf[len++] = 0xf8; /* field 31, varint */
		buf[len++] = 0x01;
		buf[len++] = 0x7f;
	}
	memcpy(buf + len, (uint8_t[]){0xfa, 0x01, 0x03, 1, 2, 3}, 6);
	expect_bound(buf, len + 6, &s);
	/* the walk stops once a count passes its max, or unpacked its */
	counts[0].max = 100;
	CHECK_RET(
	        wire_scan(&hsamem__request__descriptor, buf, hsamem__request__pack(&req, buf), &s),
	        1);
	CHECK(counts[0].n == 101 && s.fields < 200 * 10);
	counts[0].max = 0;
	s.max_unpacked = 100000;
	CHECK_RET(
	        wire_scan(&hsamem__request__descriptor, buf, hsamem__request__pack(&req, buf), &s),
	        1);
	CHECK(s.unpacked > 100000 && s.fields < 100); /* past it after the first entry */
	s.max_unpacked = 0;
	/* an empty message is still one struct */
	expect_bound(buf, 0, &s);
	CHECK(s.unpacked > 0 && s.fields == 0);
}

int
main(void)
{
	test_append();
	test_import();
	test_malformed();
	test_bound();
	return test_done("test_wire");
}
