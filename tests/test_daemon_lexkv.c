/*
 * test_daemon_lexkv.c: a lexical memory keeps no K/V (store.h, COMPUTED K/V), through the real
 * daemon and the real store.
 *
 * Two memories get the same entries (with a forgotten entry, whose slots become holes, and a
 * flush, which pads a chunk): "a" as the daemon makes it now, and "b", which the test then turns,
 * with the daemon stopped, into a memory of the old format: K/V records written the way seals
 * wrote them (the encoder's encode_chunk on each chunk's real tokens, rows put back in their
 * slots, zero rows in holes and padding: nothing of the daemon's kvcalc.c), landmark pages
 * dense and token lists unpacked (store.h, FORMATS), the flags cleared, and the store's format
 * record set back to 1. Then:
 *   - "a" has no K/V record, and the store counts one per chunk of "b";
 *   - the daemon opens the format 1 store (and says so), and serves both: every chunk's tensors,
 *     the query view and attend's output, selection, weights, scores and in-chunk attention
 *     are bit-identical between the computed "a" and the stored "b";
 *   - `reencode` of "b" to the same encoder and revision converts it: no K/V record is left,
 *     its landmark pages are sparse, nothing of its entries is lost, and its answers are still
 *     bit-identical to "a"'s;
 *   - an export of "a" carries the K/V that "b" stored, and importing it stores none;
 *   - stats gives the text's bytes, which the entries add up to.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "encoder.h"
#include "half.h"
#include "harness.h"
#include "hsamem.h"
#include "lexical.h"
#include "store.h"
#include "test.h"

#define N_ENTRIES 600
#define FORGET    217 /* an entry forgotten in both */
#define FLUSH_AT  300 /* a flush after this entry */

static const char *const words[] = {
        "harbour", "lantern", "copper", "meadow",  "granite", "orchard", "falcon",
        "ledger",  "quarry",  "velvet", "turbine", "saffron", "glacier", "cobalt",
        "the",     "of",      "and",    "a",       "was",     "in",      "7731",
        "zq9",     ",",       ".",      "walnut",  "beacon",  "canyon",  "ember",
};

static void
entry_text(int i, char *buf, size_t len)
{
	uint64_t r = 1234567 + (uint64_t)i * 104729;
	size_t n = 0;
	int w = 6 + i % 17;
	for (int k = 0; k < w; k++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? " " : "",
		                      words[(r >> 33) % (sizeof(words) / sizeof(words[0]))]);
	}
}

/* Appends the entries, forgets one if asked; returns the bytes of text the memory then holds. */
static uint64_t
fill(struct hsamem *c, const char *user, bool forget)
{
	static char texts[50][256];
	struct hsamem_entry_in e[50];
	uint64_t text_total = 0;
	for (int i = 0; i < N_ENTRIES;) {
		int n = 0;
		for (; n < 50 && i < N_ENTRIES; n++, i++) {
			entry_text(i, texts[n], sizeof(texts[n]));
			text_total += strlen(texts[n]);
			e[n] = (struct hsamem_entry_in){.text = texts[n],
			                                .role = HSAMEM_ROLE_USER,
			                                .timestamp_ms = 1700000000000 + i};
			if (i == FLUSH_AT) {
				n++, i++;
				break;
			}
		}
		CHECK_RET(hsamem_append(c, user, e, (size_t)n, NULL, 0, 0, NULL), 0);
		if (i - 1 == FLUSH_AT)
			CHECK_RET(hsamem_flush(c, user, NULL, NULL), 0);
	}
	struct hsamem_entry_list *l = NULL;
	if (!forget)
		return text_total;
	CHECK_RET(hsamem_entries(c, user, FORGET, 1, &l), 0);
	if (l != NULL && l->n_entries == 1)
		text_total -= strlen(l->entries[0].text);
	hsamem_result_free(l);
	CHECK_RET(hsamem_forget(c, user, FORGET, FORGET, NULL), 0);
	return text_total;
}

/* K|V of a chunk the way seals stored them, with encode_chunk alone. */
static void
old_kv(const struct hsa_spec *sp, const uint32_t *tok, uint32_t n, void *kv)
{
	size_t row = (size_t)sp->h_kv * sp->d_h, per = sp->S * row, m = 0;
	float *K = calloc(per, sizeof(float)), *V = calloc(per, sizeof(float));
	float *oK = calloc(per, sizeof(float)), *oV = calloc(per, sizeof(float));
	float *L = calloc(sp->d_r, sizeof(float));
	uint32_t real[1024] = {0}, slot[1024];
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] != 0) {
			slot[m] = i;
			real[m++] = tok[i];
		}
	CHECK_RET(enc_lexical.encode_chunk(sp, NULL, 0, real, m, K, V, L), 0);
	for (size_t i = 0; i < m; i++) {
		memcpy(oK + slot[i] * row, K + i * row, row * sizeof(float));
		memcpy(oV + slot[i] * row, V + i * row, row * sizeof(float));
	}
	half_from_float_row(sp->dtype, oK, kv, per);
	half_from_float_row(sp->dtype, oV, (char *)kv + spec_kv_bytes(sp) / 2, per);
	free(L);
	free(oV);
	free(oK);
	free(V);
	free(K);
}

/* With the daemon stopped: the K/V records of user (counted with store_kv_get), and its flags. */
static uint64_t
kv_records(const char *state, const char *user, uint32_t *flags, uint64_t *chunks)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u;
	uint64_t n = 0;
	CHECK_RET(store_open(state, NULL, &st), 0);
	if (st == NULL)
		return UINT64_MAX;
	CHECK_RET(store_txn_begin(st, &txn, false, NULL), 0);
	CHECK_RET(store_user_get(&txn, user, &u), 0);
	for (uint64_t j = 0; j < u.n_chunks + 2; j++) {
		const void *kv;
		size_t len;
		n += store_kv_get(&txn, u.uid, j, &kv, &len) == 0;
	}
	*flags = u.flags;
	*chunks = u.n_chunks;
	store_txn_abort(&txn);
	store_close(st);
	return n;
}

/* The big-endian key (uid, n) of the store's user databases; 8 bytes of it for the tail. */
static MDB_val
old_key(uint8_t kb[16], uint64_t uid, uint64_t n)
{
	for (int i = 0; i < 8; i++) {
		kb[i] = (uint8_t)(uid >> (56 - 8 * i));
		kb[8 + i] = (uint8_t)(n >> (56 - 8 * i));
	}
	return (MDB_val){16, kb};
}

static uint8_t *
le(uint8_t *p, uint64_t x, int bytes)
{
	for (int i = 0; i < bytes; i++)
		*p++ = (uint8_t)(x >> (8 * i));
	return p;
}

/* A token list as formats 1 and 2 wrote it: n x u32 token, then n x (u64 entry, u32, u32). */
static uint8_t *
old_tokens(uint8_t *p, uint32_t n, const uint32_t *tokens, const struct store_tokref *refs)
{
	for (uint32_t i = 0; i < n; i++)
		p = le(p, tokens[i], 4);
	for (uint32_t i = 0; i < n; i++)
		p = le(le(le(p, refs[i].entry, 8), refs[i].off, 4), refs[i].len, 4);
	return p;
}

/*
 * Makes user a memory of store format 1, as its daemon wrote it: K|V records as seals wrote them,
 * landmark pages dense, chunk and tail records with unpacked token lists, the flags of neither
 * computed K/V nor sparse pages. The records are written through LMDB itself.
 */
static void
make_old(const char *state, const char *user)
{
	struct store *st = NULL;
	struct store_txn txn;
	struct store_user u;
	struct store_tail t;
	CHECK_RET(store_open(state, NULL, &st), 0);
	if (st == NULL)
		return;
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_get(&txn, user, &u), 0);
	CHECK((u.flags & STORE_USER_KV_COMPUTED) && (u.flags & STORE_USER_LMK_SPARSE));
	size_t rb = spec_landmark_bytes(&u.spec), per = u.lmk_per_page, crec = 8 + 64 * 20;
	uint64_t pages = (u.n_chunks + per - 1) / per;
	void *kv = malloc(spec_kv_bytes(&u.spec));
	uint8_t *rows = calloc(pages * per, rb), *chunks = malloc(u.n_chunks * crec);
	uint8_t tail[4 + 64 * 20];
	size_t tail_len = 0;
	for (uint64_t j = 0; j < u.n_chunks; j++) {
		struct store_chunk c;
		const void *row;
		uint64_t n;
		CHECK_RET(store_chunk_get(&txn, u.uid, j, &c), 0);
		CHECK(c.n_tokens == 64);
		old_kv(&u.spec, c.tokens, c.n_tokens, kv);
		CHECK_RET(store_kv_put(&txn, u.uid, j, kv, spec_kv_bytes(&u.spec)), 0);
		old_tokens(le(le(chunks + j * crec, c.n_tokens, 4), c.n_real, 4), c.n_tokens,
		           c.tokens, c.refs);
		CHECK_RET(store_landmarks_get(&txn, &u, j, &row, &n), 0);
		memcpy(rows + j * rb, row, rb);
	}
	CHECK_RET(store_tail_get(&txn, u.uid, &t), 0);
	if (t.n > 0)
		tail_len = (size_t)(old_tokens(le(tail, t.n, 4), t.n, t.tokens, t.refs) - tail);
	free(kv);
	u.flags &= ~(uint32_t)(STORE_USER_KV_COMPUTED | STORE_USER_LMK_SPARSE);
	CHECK_RET(store_user_update(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	store_close(st);

	MDB_env *env;
	MDB_txn *w;
	MDB_dbi lmk, chk, tl;
	uint8_t kb[16];
	CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 32) == 0 &&
	      mdb_env_set_mapsize(env, 1ull << 30) == 0 && mdb_env_open(env, state, 0, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &w) == 0 && mdb_dbi_open(w, "landmarks", 0, &lmk) == 0 &&
	      mdb_dbi_open(w, "chunks", 0, &chk) == 0 && mdb_dbi_open(w, "tail", 0, &tl) == 0);
	int bad = 0;
	for (uint64_t p = 0; p < pages; p++) {
		MDB_val k = old_key(kb, u.uid, p);
		uint64_t n = p + 1 < pages ? per : u.n_chunks - p * per;
		MDB_val v = {n * rb, rows + p * per * rb};
		bad += mdb_put(w, lmk, &k, &v, 0) != 0;
	}
	for (uint64_t j = 0; j < u.n_chunks; j++) {
		MDB_val k = old_key(kb, u.uid, j), v = {crec, chunks + j * crec};
		bad += mdb_put(w, chk, &k, &v, 0) != 0;
	}
	if (tail_len > 0) {
		MDB_val k = old_key(kb, u.uid, 0), v = {tail_len, tail};
		k.mv_size = 8;
		bad += mdb_put(w, tl, &k, &v, 0) != 0;
	}
	CHECK(bad == 0 && mdb_txn_commit(w) == 0);
	mdb_env_close(env);
	free(rows);
	free(chunks);
}

/* Sets the store's format record back to 1, as a daemon of format 1 wrote it. */
static void
make_format1(const char *state)
{
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	uint8_t one[4] = {1, 0, 0, 0};
	MDB_val k = {6, "format"}, v = {4, one};
	CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 32) == 0 &&
	      mdb_env_set_mapsize(env, 1ull << 30) == 0 && mdb_env_open(env, state, 0, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &t) == 0 && mdb_dbi_open(t, "meta", 0, &dbi) == 0 &&
	      mdb_put(t, dbi, &k, &v, 0) == 0 && mdb_txn_commit(t) == 0);
	mdb_env_close(env);
}

/* Every chunk's tensors are the same bytes in both memories. */
static void
same_tensors(struct hsamem *c, const char *x, const char *y, uint64_t chunks)
{
	for (uint64_t j = 0; j < chunks; j += 16) {
		struct hsamem_chunk_list *l1 = NULL, *l2 = NULL;
		CHECK_RET(hsamem_chunks(c, x, j, 16, HSAMEM_CHUNKS_TENSORS, &l1), 0);
		CHECK_RET(hsamem_chunks(c, y, j, 16, HSAMEM_CHUNKS_TENSORS, &l2), 0);
		CHECK(l1 != NULL && l2 != NULL && l1->n_chunks == l2->n_chunks);
		for (size_t i = 0; l1 != NULL && l2 != NULL && i < l1->n_chunks; i++) {
			const struct hsamem_chunk *a = &l1->chunks[i], *b = &l2->chunks[i];
			CHECK(a->k_size == 64 * 64 * 2 && a->k_size == b->k_size &&
			      memcmp(a->k, b->k, a->k_size) == 0 &&
			      memcmp(a->v, b->v, a->v_size) == 0 &&
			      a->landmark_size == b->landmark_size &&
			      memcmp(a->landmark, b->landmark, a->landmark_size) == 0);
		}
		hsamem_result_free(l1);
		hsamem_result_free(l2);
	}
}

/* attend and the query view give the same bits on both memories. */
static void
same_answers(struct hsamem *c, const char *x, const char *y)
{
	static float qr[4][1024], qa[4][64];
	uint64_t r = 99;
	for (int t = 0; t < 4; t++) {
		for (int i = 0; i < 1024; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			qr[t][i] = (float)((int64_t)(r >> 40) - (1 << 23)) / (float)(1 << 20);
		}
		for (int i = 0; i < 64; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			qa[t][i] = (float)((int64_t)(r >> 40) - (1 << 23)) / (float)(1 << 22);
		}
	}
	struct hsamem_attend a = {.n = 4,
	                          .qr = &qr[0][0],
	                          .qr_len = 4 * 1024,
	                          .qa = &qa[0][0],
	                          .qa_len = 4 * 64,
	                          .top_k = 8,
	                          .want_attention = true};
	struct hsamem_attend_result *r1 = NULL, *r2 = NULL;
	CHECK_RET(hsamem_attend(c, x, &a, &r1), 0);
	CHECK_RET(hsamem_attend(c, y, &a, &r2), 0);
	CHECK(r1 != NULL && r2 != NULL && r1->output_len == r2->output_len &&
	      r1->selected_len == r2->selected_len && r1->attention_len == r2->attention_len &&
	      r1->attention_len > 0);
	if (r1 != NULL && r2 != NULL) {
		CHECK(memcmp(r1->output, r2->output, r1->output_len * sizeof(float)) == 0);
		CHECK(memcmp(r1->selected, r2->selected, r1->selected_len * sizeof(int64_t)) == 0);
		CHECK(memcmp(r1->weights, r2->weights, r1->selected_len * sizeof(float)) == 0);
		CHECK(memcmp(r1->scores, r2->scores, r1->selected_len * sizeof(float)) == 0);
		CHECK(memcmp(r1->attention, r2->attention, r1->attention_len * sizeof(float)) == 0);
		CHECK(r1->selected[0] >= 0);
	}
	hsamem_result_free(r1);
	hsamem_result_free(r2);

	struct hsamem_query_result *q1 = NULL, *q2 = NULL;
	CHECK_RET(hsamem_query_text(c, x, "copper lantern 7731 zq9 glacier", 8, &q1), 0);
	CHECK_RET(hsamem_query_text(c, y, "copper lantern 7731 zq9 glacier", 8, &q2), 0);
	CHECK(q1 != NULL && q2 != NULL && q1->n_hits == q2->n_hits && q1->n_hits > 0);
	for (size_t i = 0; q1 != NULL && q2 != NULL && i < q1->n_hits; i++) {
		const struct hsamem_hit *h1 = &q1->hits[i], *h2 = &q2->hits[i];
		CHECK(h1->chunk == h2->chunk && h1->tail == h2->tail &&
		      memcmp(&h1->score, &h2->score, sizeof(float)) == 0 &&
		      memcmp(&h1->weight, &h2->weight, sizeof(float)) == 0 &&
		      strcmp(h1->text, h2->text) == 0 && h1->n_top_tokens == h2->n_top_tokens);
		for (size_t t = 0; t < h1->n_top_tokens && t < h2->n_top_tokens; t++) {
			const struct hsamem_token_weight *w1 = &h1->top_tokens[t];
			const struct hsamem_token_weight *w2 = &h2->top_tokens[t];
			CHECK(w1->index == w2->index && w1->id == w2->id &&
			      memcmp(&w1->weight, &w2->weight, sizeof(float)) == 0);
		}
	}
	hsamem_result_free(q1);
	hsamem_result_free(q2);
}

/* Whether the daemon's log holds s. */
static bool
logged(const struct harness *h, const char *s)
{
	FILE *f = fopen(h->log, "r");
	char line[1024];
	bool found = false;
	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, s) != NULL;
	if (f != NULL)
		fclose(f);
	return found;
}

/* Export of x into a file, imported as y. */
static void
export_import(struct hsamem *c, const char *dir, const char *x, const char *y)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/x.export", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_RET(hsamem_export(c, x, fd, NULL), 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RET(hsamem_import(c, y, fd, NULL), 0);
	close(fd);
}

int
main(void)
{
	struct harness h;
	struct hsamem *c = NULL;
	uint32_t flags = 0;
	uint64_t chunks = 0, chunks_b = 0;
	if (harness_init(&h) != 0 || harness_start(&h) != 0 || hsamem_open(h.url, &c) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	uint64_t text = fill(c, "a", true);
	text += fill(c, "b", true);
	text += fill(c, "p", false);
	text += fill(c, "o", false);
	struct hsamem_stats *s = NULL;
	CHECK_RET(hsamem_stats(c, NULL, &s), 0);
	CHECK(s != NULL && s->text_bytes == text && s->store_map_used > 0);
	hsamem_result_free(s);
	hsamem_close(c);
	c = NULL;
	CHECK_RET(harness_stop(&h, SIGTERM), 0);

	/* a keeps no K/V; b and o are made memories of the old format */
	CHECK(kv_records(h.state, "a", &flags, &chunks) == 0);
	CHECK((flags & STORE_USER_KV_COMPUTED) && chunks > 10);
	make_old(h.state, "b");
	make_old(h.state, "o");
	CHECK(kv_records(h.state, "b", &flags, &chunks_b) == chunks);
	CHECK(!(flags & (STORE_USER_KV_COMPUTED | STORE_USER_LMK_SPARSE)) && chunks_b == chunks);
	make_format1(h.state);

	/* the daemon takes the format 1 store; the computed memory and the stored one answer alike,
	 * holes (a forgotten entry) and padding (a flush) included */
	CHECK_RET(harness_start(&h), 0);
	CHECK(logged(&h, "format 1 is now format 3"));
	CHECK_RET(hsamem_open(h.url, &c), 0);
	same_tensors(c, "a", "b", chunks);
	same_answers(c, "a", "b");

	/* reencode converts o: no K/V left, its entries whole, the same answers as p's */
	struct hsamem_entry_list *before = NULL, *after = NULL;
	CHECK_RET(hsamem_entries(c, "o", 0, 1000, &before), 0);
	struct hsamem_reencode_info ri = {0};
	for (int step = 0; step < 100 && !ri.done; step++)
		CHECK_RET(hsamem_reencode(c, "o", "lexical", LEX_REVISION, &ri), 0);
	CHECK(ri.done);
	CHECK_RET(hsamem_entries(c, "o", 0, 1000, &after), 0);
	CHECK(before != NULL && after != NULL && before->n_entries == N_ENTRIES &&
	      after->n_entries == before->n_entries);
	for (size_t i = 0;
	     before != NULL && after != NULL && i < before->n_entries && i < after->n_entries; i++)
		CHECK(strcmp(before->entries[i].text, after->entries[i].text) == 0 &&
		      before->entries[i].n_tokens == after->entries[i].n_tokens &&
		      before->entries[i].timestamp_ms == after->entries[i].timestamp_ms);
	hsamem_result_free(before);
	hsamem_result_free(after);
	uint64_t chunks_p = 0;
	struct hsamem_stats *sp = NULL;
	CHECK_RET(hsamem_stats(c, "p", &sp), 0);
	if (sp != NULL && sp->n_memories == 1)
		chunks_p = sp->memories[0].chunks;
	hsamem_result_free(sp);
	same_tensors(c, "p", "o", chunks_p);
	same_answers(c, "p", "o");

	/* an export of a carries K/V; its import stores none and answers alike */
	export_import(c, h.dir, "a", "c");
	same_tensors(c, "a", "c", chunks);
	same_answers(c, "a", "c");
	hsamem_close(c);
	CHECK_RET(harness_stop(&h, SIGTERM), 0);
	CHECK(kv_records(h.state, "b", &flags, &chunks_b) == chunks);
	CHECK(kv_records(h.state, "o", &flags, &chunks_b) == 0);
	CHECK((flags & STORE_USER_KV_COMPUTED) && (flags & STORE_USER_LMK_SPARSE) &&
	      chunks_b == chunks_p && chunks_p > 10);
	CHECK(kv_records(h.state, "c", &flags, &chunks_b) == 0);
	CHECK((flags & STORE_USER_KV_COMPUTED) && (flags & STORE_USER_LMK_SPARSE) &&
	      chunks_b == chunks);
	harness_fini(&h);
	return test_done("test_daemon_lexkv");
}
