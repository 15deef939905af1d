/*
 * test_daemon_erase.c: delete erases (hsamem(7), DELETE AND ERASURE), against the real hsamemd
 * and its real LMDB store. Alice's entries carry a marker phrase, Bob's ordinary text, appended
 * interleaved; Alice's memory is queried and exported, so that its pages are read and copied
 * around. What is searched for, byte for byte, in every file of the state directory: the
 * marker's text, the lexical tokenizer's ids of its three words as the store keeps tokens (u32,
 * little-endian, one after another), the K row of the marker's first word and the landmark of
 * Alice's first landmark page as the store keeps a lexical memory's (store.h, SPARSE PAGES: the
 * entries of its nonzero elements, element by element). (The store keeps text as the UTF-8 it
 * was given, and nothing as UTF-16.)
 * Each but the K row (a lexical memory stores no K/V) is found before the delete, so that the
 * search can fail, and none after it, nor after more appends to Bob, whose memory reads back
 * whole. The same for an import the daemon refuses
 * (nothing of it was committed, but it was written), for a half-finished import removed when
 * the daemon restarts after SIGKILL, for a delete done with the daemon stopped and no erasure
 * after it (the store's mark makes the next start erase), and for a delete acknowledged just
 * before a SIGKILL.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"
#include "store.h"
#include "test.h"

#define PHRASE     "zebramarker quokkamarker yakmarker"
#define N_ALICE    640 /* entries: an export of about 7 MiB, past one import batch (4 MiB) */
#define N_BOB      120
#define BATCH_READ (5u << 20) /* the half import stops reading here */

/* What is searched for: Alice's traces. */
struct traces {
	uint32_t ids[3];    /* the phrase's token ids */
	uint8_t k_row[128]; /* K of the phrase's first word: 64 f16 of the lexical encoder */
	size_t k_len;
	uint8_t *landmark; /* of Alice's chunk 0 */
	size_t lmk_len;
};

static char bob_text[N_BOB + 40][160];
static size_t n_bob;

/* ---- searching the state directory ---- */

static size_t
count_in(const uint8_t *buf, size_t len, const void *pat, size_t plen)
{
	size_t n = 0;
	for (const uint8_t *p = buf; plen > 0 && len >= plen;) {
		const uint8_t *q = memmem(p, len, pat, plen);
		if (q == NULL)
			break;
		n++;
		len -= (size_t)(q - p) + 1;
		p = q + 1;
	}
	return n;
}

/* Occurrences of each trace in every file of the state directory: text, ids, K, landmark. */
static void
search(struct harness *h, const struct traces *t, size_t found[4])
{
	DIR *d = opendir(h->state);
	struct dirent *e;
	memset(found, 0, 4 * sizeof(found[0]));
	CHECK(d != NULL);
	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[600];
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s", h->state, e->d_name);
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		int fd = open(path, O_RDONLY);
		uint8_t *buf = malloc((size_t)sb.st_size + 1);
		CHECK(fd >= 0 && buf != NULL);
		if (fd >= 0 && buf != NULL && read(fd, buf, (size_t)sb.st_size) == sb.st_size) {
			found[0] += count_in(buf, (size_t)sb.st_size, "zebramarker", 11);
			found[1] += count_in(buf, (size_t)sb.st_size, t->ids, sizeof(t->ids));
			found[2] += count_in(buf, (size_t)sb.st_size, t->k_row, t->k_len);
			found[3] += count_in(buf, (size_t)sb.st_size, t->landmark, t->lmk_len);
		}
		free(buf);
		if (fd >= 0)
			close(fd);
	}
	if (d != NULL)
		closedir(d);
}

/* Whether no trace is left (each kind given with its count when one is). */
static bool
no_trace(struct harness *h, const struct traces *t, const char *when)
{
	size_t f[4];
	search(h, t, f);
	if (f[0] + f[1] + f[2] + f[3] > 0)
		fprintf(stderr, "%s: %zu texts, %zu token runs, %zu K rows, %zu landmarks left\n",
		        when, f[0], f[1], f[2], f[3]);
	return f[0] + f[1] + f[2] + f[3] == 0;
}

/* ---- the memories ---- */

/* The phrase's token ids: a memory of the phrase alone, flushed into one chunk, then deleted. */
static void
phrase_ids(struct hsamem *c, struct traces *t)
{
	struct hsamem_chunk_list *l = NULL;
	CHECK_RET(hsamem_append_text(c, "probe", HSAMEM_ROLE_USER, PHRASE, NULL), 0);
	CHECK_RET(hsamem_flush(c, "probe", NULL, NULL), 0);
	CHECK_RET(hsamem_chunks(c, "probe", 0, 1, 0, &l), 0);
	CHECK(l != NULL && l->n_chunks == 1 && l->chunks[0].n_real == 3);
	if (l != NULL && l->n_chunks == 1 && l->chunks[0].n_real == 3)
		memcpy(t->ids, l->chunks[0].tokens, sizeof(t->ids));
	hsamem_result_free(l);
	CHECK_RET(hsamem_delete(c, "probe", NULL), 0);
}

/* Alice's K row of the phrase's first word and landmark, from her chunk 0. */
static void
tensors(struct hsamem *c, struct traces *t)
{
	struct hsamem_chunk_list *l = NULL;
	CHECK_RET(hsamem_chunks(c, "alice", 0, 1, HSAMEM_CHUNKS_TENSORS, &l), 0);
	CHECK(l != NULL && l->n_chunks == 1);
	if (l == NULL || l->n_chunks != 1)
		return;
	struct hsamem_chunk *ch = &l->chunks[0];
	size_t row = ch->k_size / ch->n_tokens;
	for (size_t i = 0; i < ch->n_tokens; i++)
		if (ch->tokens[i] == t->ids[0] && row <= sizeof(t->k_row)) {
			memcpy(t->k_row, (uint8_t *)ch->k + i * row, row);
			t->k_len = row;
			break;
		}
	CHECK(t->k_len > 0);
	hsamem_result_free(l);
	/* the landmark page as the store keeps it (store.h, SPARSE PAGES): for each element, the
	 * rows of the page where it is not zero, (u8 row, its 2 bytes) each; its entries, whole */
	l = NULL;
	CHECK_RET(hsamem_chunks(c, "alice", 0, 32, HSAMEM_CHUNKS_TENSORS, &l), 0);
	if (l == NULL)
		return;
	size_t dim = l->chunks[0].landmark_size / 2;
	t->landmark = malloc(dim * l->n_chunks * 3);
	for (size_t e = 0; t->landmark != NULL && e < dim; e++)
		for (size_t r = 0; r < l->n_chunks; r++) {
			const uint8_t *x = (const uint8_t *)l->chunks[r].landmark + 2 * e;
			if (x[0] == 0 && x[1] == 0)
				continue;
			uint8_t *p = t->landmark + t->lmk_len;
			p[0] = (uint8_t)r;
			p[1] = x[0];
			p[2] = x[1];
			t->lmk_len += 3;
		}
	CHECK(t->lmk_len >= 30);
	hsamem_result_free(l);
}

static void
append_bob(struct hsamem *c, size_t n)
{
	for (size_t i = 0; i < n; i++, n_bob++) {
		snprintf(bob_text[n_bob], sizeof(bob_text[n_bob]),
		         "bob note %zu about the garden, tomatoes %zu and the weather by the river",
		         n_bob, n_bob * 7);
		CHECK_RET(hsamem_append_text(c, "bob", HSAMEM_ROLE_USER, bob_text[n_bob], NULL), 0);
	}
}

/* n entries carrying the phrase, in appends of 40, each followed by one of Bob's. */
static void
append_marked(struct hsamem *c, const char *user, size_t n, bool with_bob)
{
	static char text[40][300];
	struct hsamem_entry_in in[40];
	for (size_t done = 0; done < n;) {
		size_t k = n - done < 40 ? n - done : 40;
		for (size_t i = 0; i < k; i++) {
			snprintf(
			        text[i], sizeof(text[i]),
			        "%s remembers item %zu: " PHRASE " beside a lamp, a kettle %zu and "
			        "twelve small boxes of buttons, three maps of the northern coast, "
			        "a "
			        "brass compass, a jar of marbles and two old postcards from lisbon",
			        user, done + i, (done + i) * 13);
			in[i] = (struct hsamem_entry_in){.text = text[i], .role = HSAMEM_ROLE_USER};
		}
		CHECK_RET(hsamem_append(c, user, in, k, NULL, 0, 0, NULL), 0);
		if (with_bob)
			append_bob(c, 1);
		done += k;
	}
}

/* Bob's memory reads back whole. */
static void
check_bob(struct hsamem *c)
{
	struct hsamem_entry_list *l = NULL;
	bool same = true;
	CHECK_RET(hsamem_entries(c, "bob", 0, 1000, &l), 0);
	CHECK(l != NULL && l->n_entries == n_bob && l->total == n_bob);
	for (size_t i = 0; l != NULL && i < l->n_entries && i < n_bob; i++)
		same = same && strcmp(l->entries[i].text, bob_text[i]) == 0;
	CHECK(same);
	hsamem_result_free(l);
	struct hsamem_query_result *q = NULL;
	CHECK_RET(hsamem_query_text(c, "bob", "tomatoes in the garden", 4, &q), 0);
	CHECK(q != NULL && q->n_hits > 0);
	hsamem_result_free(q);
}

/* ---- imports ---- */

struct source {
	const uint8_t *p;
	size_t len, off, stop; /* fails with -EIO once past stop */
};

static long
read_source(void *arg, void *buf, size_t len)
{
	struct source *s = arg;
	if (s->off >= s->stop)
		return -EIO;
	size_t n = s->len - s->off < len ? s->len - s->off : len;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (long)n;
}

/* The length of the first n records of a stream (each a u32 length and its bytes). */
static size_t
records_len(const uint8_t *p, size_t len, size_t n)
{
	size_t off = 0;
	for (size_t i = 0; i < n && off + 4 <= len; i++)
		off += 4 + (p[off] | (size_t)p[off + 1] << 8 | (size_t)p[off + 2] << 16 |
		            (size_t)p[off + 3] << 24);
	return off <= len ? off : len;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	struct stat sb;
	int fd = open(path, O_RDONLY);
	uint8_t *buf = NULL;
	if (fd >= 0 && fstat(fd, &sb) == 0 && (buf = malloc((size_t)sb.st_size + 1)) != NULL &&
	    read(fd, buf, (size_t)sb.st_size) == sb.st_size)
		*len = (size_t)sb.st_size;
	if (fd >= 0)
		close(fd);
	return buf;
}

static bool
has_memory(struct hsamem *c, const char *user)
{
	struct hsamem_entry_list *l = NULL;
	int ret = hsamem_entries(c, user, 0, 1, &l);
	hsamem_result_free(l);
	return ret == 0;
}

/* ---- the cases ---- */

static struct hsamem *
restart(struct harness *h, struct hsamem *c, int sig)
{
	hsamem_close(c);
	c = NULL;
	harness_stop(h, sig);
	CHECK_RET(harness_start(h), 0);
	CHECK_RET(hsamem_open(h->url, &c), 0);
	return c;
}

static struct hsamem *
test_delete(struct harness *h, struct hsamem *c, struct traces *t, const char *export)
{
	struct hsamem_delete_info di = {0};
	struct hsamem_query_result *q = NULL;
	size_t f[4];
	int fd;
	append_bob(c, 10);
	append_marked(c, "alice", N_ALICE, true);
	tensors(c, t);
	CHECK_RET(hsamem_query_text(c, "alice", "quokkamarker lamp", 4, &q), 0);
	hsamem_result_free(q);
	CHECK((fd = open(export, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK_RET(hsamem_export(c, "alice", fd, NULL), 0);
	close(fd);
	search(h, t, f);
	/* no K row: a lexical memory keeps none, its K/V are computed from the tokens (store.h,
	 * COMPUTED K/V); what it stores of them is the tokens, found above */
	CHECK(f[0] > 0 && f[1] > 0 && f[2] == 0 && f[3] > 0);
	CHECK_RET(hsamem_delete(c, "alice", &di), 0);
	CHECK(di.entries == N_ALICE);
	CHECK(no_trace(h, t, "after the delete"));
	append_bob(c, 20);
	CHECK(no_trace(h, t, "after more appends"));
	check_bob(c);
	return c;
}

static struct hsamem *
test_imports(struct harness *h, struct hsamem *c, struct traces *t, const char *export)
{
	size_t len = 0;
	uint8_t *s = slurp(export, &len);
	CHECK(s != NULL && len > BATCH_READ + (1u << 20));
	if (s == NULL)
		return c;
	/* refused whole: the header and 40 records, sent as one last batch, are incomplete */
	struct source part = {s, records_len(s, len, 41), 0, SIZE_MAX};
	CHECK_RET(hsamem_import_cb(c, "broken", read_source, &part, NULL), HSAMEM_EIMPORT);
	CHECK(!has_memory(c, "broken"));
	append_bob(c, 10); /* pages written from LMDB's buffers, where the import's records were */
	CHECK(no_trace(h, t, "after a refused import"));
	/* half imported by a client that stops reading, then the daemon is killed */
	struct source half = {s, len, 0, BATCH_READ};
	CHECK(hsamem_import_cb(c, "half", read_source, &half, NULL) != 0);
	size_t f[4];
	search(h, t, f);
	CHECK(f[0] > 0); /* its first batch is in the store */
	c = restart(h, c, SIGKILL);
	CHECK(!has_memory(c, "half"));
	CHECK(no_trace(h, t, "after an unfinished import was removed at start"));
	check_bob(c);
	free(s);
	return c;
}

/* A delete committed by a process that stopped before erasing: the next start erases. */
static struct hsamem *
test_mark(struct harness *h, struct hsamem *c, struct traces *t)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u;
	append_marked(c, "carol", 80, false);
	hsamem_close(c);
	CHECK_RET(harness_stop(h, SIGTERM), 0);
	CHECK_RET(store_open(h->state, NULL, &st), 0);
	if (st != NULL) {
		CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
		CHECK_RET(store_user_get(&txn, "carol", &u), 0);
		CHECK_RET(store_user_delete(&txn, &u), 0);
		CHECK_RET(store_txn_commit(&txn), 0);
		store_close(st);
	}
	size_t f[4];
	search(h, t, f);
	CHECK(f[0] > 0);
	CHECK_RET(harness_start(h), 0);
	c = NULL;
	CHECK_RET(hsamem_open(h->url, &c), 0);
	CHECK(no_trace(h, t, "after a start that found the mark"));
	CHECK(!has_memory(c, "carol"));
	check_bob(c);
	return c;
}

static struct hsamem *
test_kill(struct harness *h, struct hsamem *c, struct traces *t)
{
	struct hsamem_query_result *q = NULL;
	append_marked(c, "dave", 80, true);
	CHECK_RET(hsamem_query_text(c, "dave", "yakmarker kettle", 4, &q), 0);
	hsamem_result_free(q);
	CHECK_RET(hsamem_delete(c, "dave", NULL), 0);
	c = restart(h, c, SIGKILL);
	CHECK(no_trace(h, t, "after SIGKILL right after the delete"));
	CHECK(!has_memory(c, "dave"));
	check_bob(c);
	return c;
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	struct traces t = {0};
	char export[300];
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	snprintf(export, sizeof(export), "%s/alice.export", h.dir);
	CHECK_RET(hsamem_open(h.url, &c), 0);
	phrase_ids(c, &t);
	c = test_delete(&h, c, &t, export);
	c = test_imports(&h, c, &t, export);
	c = test_mark(&h, c, &t);
	c = test_kill(&h, c, &t);
	hsamem_close(c);
	if (test_failures > 0)
		harness_dump_log(&h);
	free(t.landmark);
	harness_fini(&h);
	return test_done("test_daemon_erase");
}
