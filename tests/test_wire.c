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

int
main(void)
{
	test_append();
	test_import();
	test_malformed();
	return test_done("test_wire");
}
