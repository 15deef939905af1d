/*
 * xfer.c: export and import of a user's memory as a stream of length-prefixed ExportRecords.
 *
 * Export asks the daemon for pages (ExportRequest with a cursor) until it says done, writing each
 * record as [u32 little-endian length][record] as soon as its page arrives; the first reply fixes
 * upto_entries/upto_chunks and names the memory (memory_id), which every later request repeats, so
 * that the stream is one consistent snapshot even while appends go on, or an error if the memory
 * was deleted meanwhile. Import reads records, checks that each decodes and that no string in it
 * holds a NUL byte (which decoding would cut at: wire.h), and sends them in batches of at most
 * BATCH_BYTES (a bigger record goes alone); it reads one record ahead so that the final batch is
 * known and marked last, and sends nothing marked last for a stream that turns out truncated.
 * Memory use is one page or one batch, whatever the size of the memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_int.h"
#include "wire.h"

#define BATCH_BYTES      (4u << 20)
#define RECORD_MAX       (256u << 20)
#define EXPORT_PAGES_MAX 100000000u /* a daemon that never says done is a broken one */

static int
put_record(const Hsamem__ExportRecord *rec, hsamem_write_fn write, void *arg, uint8_t **buf,
           size_t *cap, size_t *written)
{
	size_t len = hsamem__export_record__get_packed_size(rec);
	uint8_t *p;

	*written = len + 4;
	if (len > RECORD_MAX)
		return HSAMEM_ETOOBIG;
	if (len + 4 > *cap) {
		if ((p = realloc(*buf, len + 4)) == NULL)
			return -ENOMEM;
		*buf = p;
		*cap = len + 4;
	}
	p = *buf;
	p[0] = (uint8_t)len;
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 24);
	hsamem__export_record__pack(rec, p + 4);
	return write(arg, p, len + 4);
}

static void
count_record(struct hsamem_transfer *t, const Hsamem__ExportRecord *rec, size_t bytes)
{
	t->records++;
	t->bytes += bytes;
	if (rec->rec_case == HSAMEM__EXPORT_RECORD__REC_ENTRY)
		t->entries++;
	else if (rec->rec_case == HSAMEM__EXPORT_RECORD__REC_CHUNK)
		t->chunks++;
}

int
hsamem_export_cb(struct hsamem *h, const char *user, hsamem_write_fn write, void *arg,
                 struct hsamem_transfer *out)
{
	return clib_export(h, user, NULL, write, arg, out);
}

int
clib_export(struct hsamem *h, const char *user, Hsamem__Filter *filter, hsamem_write_fn write,
            void *arg, struct hsamem_transfer *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ExportRequest er = HSAMEM__EXPORT_REQUEST__INIT;
	struct hsamem_transfer t = {0};
	Hsamem__ExportReply *ex;
	Hsamem__Reply *r = NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, i, written = 0;
	bool done = false;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (write == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "no write function given");
	er.user = (char *)user;
	er.has_cursor = 1;
	er.filter = filter;
	req.body_case = HSAMEM__REQUEST__BODY_EXPORT;
	req.export = &er;
	while (!done) {
		if (t.requests >= EXPORT_PAGES_MAX) {
			err = clib_fail(h, HSAMEM_EPROTO, "export: the daemon never says done");
			goto fail;
		}
		if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_EXPORT, &r)) != 0)
			goto fail;
		ex = r->export;
		if (t.requests++ == 0) {
			if (ex->n_records == 0 || ex->records[0] == NULL ||
			    ex->records[0]->rec_case != HSAMEM__EXPORT_RECORD__REC_HEADER) {
				err = clib_fail(h, HSAMEM_EPROTO,
				                "export: the stream does not start with a header");
				goto fail;
			}
			er.has_upto_entries = er.has_upto_chunks = 1;
			er.upto_entries = ex->upto_entries;
			er.upto_chunks = ex->upto_chunks;
			er.has_memory_id = ex->has_memory_id;
			er.memory_id = ex->memory_id;
		}
		for (i = 0; i < ex->n_records; i++) {
			if (ex->records[i] == NULL)
				continue;
			err = put_record(ex->records[i], write, arg, &buf, &cap, &written);
			if (err != 0) {
				if (err == HSAMEM_ETOOBIG || err == -ENOMEM)
					clib_fail(h, err, "export: record %llu of %zu bytes",
					          (unsigned long long)t.records, written);
				else
					clib_fail(h, err, "export: writing the stream: %s",
					          hsamem_strerror(err));
				goto fail;
			}
			count_record(&t, ex->records[i], written);
		}
		done = ex->done;
		if (!done && (ex->n_records == 0 || ex->next_cursor == er.cursor)) {
			err = clib_fail(h, HSAMEM_EPROTO, "export: a page makes no progress");
			goto fail;
		}
		er.cursor = ex->next_cursor;
		if (h->progress != NULL)
			h->progress(h->progress_arg, &t, er.upto_entries);
		hsamem__reply__free_unpacked(r, NULL);
		r = NULL;
	}
	if (out != NULL)
		*out = t;
fail:
	hsamem__reply__free_unpacked(r, NULL);
	free(buf);
	return err;
}

/* Reads exactly len bytes unless the stream ends first. Returns the bytes read or an error. */
static long
read_full(hsamem_read_fn read, void *arg, uint8_t *buf, size_t len)
{
	size_t got = 0;
	long n;

	while (got < len) {
		n = read(arg, buf + got, len - got);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		if ((size_t)n > len - got)
			return HSAMEM_EINVAL; /* the callback broke its contract */
		got += (size_t)n;
	}
	return (long)got;
}

struct batch {
	Hsamem__ExportRecord **recs;
	size_t n;
	size_t cap;
	size_t bytes;
};

static void
batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		hsamem__export_record__free_unpacked(b->recs[i], NULL);
	b->n = 0;
	b->bytes = 0;
}

static int
send_batch(struct hsamem *h, const char *user, struct batch *b, bool last,
           struct hsamem_transfer *t, uint64_t total)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ImportRequest ir = HSAMEM__IMPORT_REQUEST__INIT;
	Hsamem__Reply *r;
	int err;

	ir.user = (char *)user;
	ir.n_records = b->n;
	ir.records = b->recs;
	ir.has_last = 1;
	ir.last = last;
	req.body_case = HSAMEM__REQUEST__BODY_IMPORT;
	req.import = &ir;
	err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_IMPORT, &r);
	batch_clear(b);
	if (err != 0)
		return err;
	t->requests++;
	t->entries = r->import->entries;
	t->chunks = r->import->chunks;
	if (h->progress != NULL)
		h->progress(h->progress_arg, t, total);
	if (last && !r->import->done)
		err = clib_fail(h, HSAMEM_EPROTO, "import: the daemon did not finish the import");
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_import_cb(struct hsamem *h, const char *user, hsamem_read_fn read, void *arg,
                 struct hsamem_transfer *out)
{
	struct hsamem_transfer t = {0};
	struct batch b = {0};
	struct wire_nul nul;
	Hsamem__ExportRecord *rec, **recs;
	uint8_t hdr[4], *buf = NULL;
	uint64_t total = 0;
	uint32_t len;
	long n;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (read == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "no read function given");
	for (;;) {
		if ((n = read_full(read, arg, hdr, 4)) < 0) {
			err = clib_fail(h, (int)n, "import: reading the stream: %s",
			                hsamem_strerror((int)n));
			goto done;
		}
		if (n == 0)
			break;
		if (n < 4) {
			err = clib_fail(h, HSAMEM_EIMPORT,
			                "import: the stream ends inside the length of record %llu",
			                (unsigned long long)t.records);
			goto done;
		}
		len = hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
		      (uint32_t)hdr[3] << 24;
		if (len > RECORD_MAX) {
			err = clib_fail(h, HSAMEM_EIMPORT,
			                "import: record %llu claims %u bytes, more than %u",
			                (unsigned long long)t.records, len, RECORD_MAX);
			goto done;
		}
		if ((buf = malloc(len + 1)) == NULL) {
			err = clib_fail(h, -ENOMEM, "out of memory");
			goto done;
		}
		if ((n = read_full(read, arg, buf, len)) < 0) {
			err = clib_fail(h, (int)n, "import: reading the stream: %s",
			                hsamem_strerror((int)n));
			goto done;
		}
		if ((size_t)n < len) {
			err = clib_fail(h, HSAMEM_EIMPORT,
			                "import: the stream ends inside record %llu",
			                (unsigned long long)t.records);
			goto done;
		}
		if (wire_find_nul(&hsamem__export_record__descriptor, buf, len, &nul) == 1) {
			err = clib_fail(h, HSAMEM_EIMPORT,
			                "import: record %llu (at byte %llu): %s holds a NUL byte",
			                (unsigned long long)t.records, (unsigned long long)t.bytes,
			                nul.path);
			goto done;
		}
		rec = hsamem__export_record__unpack(NULL, len, buf);
		free(buf);
		buf = NULL;
		if (rec == NULL ||
		    (t.records == 0) != (rec->rec_case == HSAMEM__EXPORT_RECORD__REC_HEADER)) {
			err = clib_fail(h, HSAMEM_EIMPORT, "import: record %llu (at byte %llu) %s",
			                (unsigned long long)t.records, (unsigned long long)t.bytes,
			                rec == NULL      ? "does not decode"
			                : t.records == 0 ? "is not the stream's header"
			                                 : "is a second header");
			hsamem__export_record__free_unpacked(rec, NULL);
			goto done;
		}
		if (t.records == 0 && rec->header != NULL)
			total = rec->header->entries;
		if (b.n > 0 && b.bytes + len > BATCH_BYTES &&
		    (err = send_batch(h, user, &b, false, &t, total)) != 0) {
			hsamem__export_record__free_unpacked(rec, NULL);
			goto done;
		}
		if (b.n == b.cap) {
			size_t cap = b.cap ? 2 * b.cap : 64;
			if ((recs = realloc(b.recs, cap * sizeof(*recs))) == NULL) {
				hsamem__export_record__free_unpacked(rec, NULL);
				err = clib_fail(h, -ENOMEM, "out of memory");
				goto done;
			}
			b.recs = recs;
			b.cap = cap;
		}
		b.recs[b.n++] = rec;
		b.bytes += len;
		count_record(&t, rec, len + 4);
	}
	if (t.records == 0) {
		err = clib_fail(h, HSAMEM_EIMPORT, "import: the stream is empty");
		goto done;
	}
	if ((err = send_batch(h, user, &b, true, &t, total)) == 0 && out != NULL)
		*out = t;
done:
	free(buf);
	batch_clear(&b);
	free(b.recs);
	return err;
}

static int
write_fd(void *arg, const void *buf, size_t len)
{
	int fd = *(int *)arg;
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static long
read_fd(void *arg, void *buf, size_t len)
{
	int fd = *(int *)arg;
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (long)n;
}

int
hsamem_export(struct hsamem *h, const char *user, int fd, struct hsamem_transfer *out)
{
	return hsamem_export_cb(h, user, write_fd, &fd, out);
}

int
hsamem_import(struct hsamem *h, const char *user, int fd, struct hsamem_transfer *out)
{
	return hsamem_import_cb(h, user, read_fd, &fd, out);
}
