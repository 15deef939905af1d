/*
 * result.c: heap results of libhsamem, and the requests that return them (query, attend, entries,
 * chunks, users, stats).
 *
 * A result is one arena: a chain of blocks whose first one starts with the result struct, so that
 * hsamem_result_free() needs nothing but the pointer it is given. Replies are copied into the arena
 * only after, or while, each size is checked against the counts it must agree with; a result is
 * handed over whole or not at all. Nothing here trusts a count from the wire to size a loop over
 * memory it did not check.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define ARENA_MAGIC 0x68736172656e6131ull /* "hsarena1" */
#define BLOCK_BYTES (16u << 10)

struct arena_blk {
	uint64_t magic;
	struct arena_blk *next;
	size_t cap;
	size_t used;
	max_align_t data[];
};

static struct arena_blk *
blk_alloc(size_t cap)
{
	struct arena_blk *b;

	if (cap > SIZE_MAX - sizeof(*b) || (b = malloc(sizeof(*b) + cap)) == NULL)
		return NULL;
	b->magic = ARENA_MAGIC;
	b->next = NULL;
	b->cap = cap;
	b->used = 0;
	return b;
}

static size_t
round_up(size_t n)
{
	return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
}

void *
arena_start(struct arena *a, struct hsamem *h, size_t size)
{
	a->h = h;
	a->first = a->cur = blk_alloc(size > BLOCK_BYTES ? round_up(size) : BLOCK_BYTES);
	if (a->first == NULL)
		return NULL;
	return arena_calloc(a, 1, size);
}

void *
arena_calloc(struct arena *a, size_t n, size_t size)
{
	struct arena_blk *b;
	size_t bytes;
	void *p;

	if (size != 0 && n > (SIZE_MAX - alignof(max_align_t)) / size)
		return NULL;
	bytes = round_up(n * size);
	b = a->cur;
	if (b->cap - b->used < bytes) {
		if ((b = blk_alloc(bytes > BLOCK_BYTES / 2 ? bytes : BLOCK_BYTES)) == NULL)
			return NULL;
		b->next = a->first->next;
		a->first->next = b;
		/* A big array gets a block of its own; small ones go on filling the current one. */
		if (bytes <= BLOCK_BYTES / 2)
			a->cur = b;
	}
	p = (unsigned char *)b->data + b->used;
	b->used += bytes;
	memset(p, 0, bytes);
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	size_t len;
	char *p;

	if (s == NULL)
		s = "";
	len = strlen(s);
	if ((p = arena_calloc(a, len + 1, 1)) != NULL)
		memcpy(p, s, len);
	return p;
}

static void
chain_free(struct arena_blk *b)
{
	while (b != NULL) {
		struct arena_blk *next = b->next;
		b->magic = 0;
		free(b);
		b = next;
	}
}

void
arena_abort(struct arena *a)
{
	chain_free(a->first);
	a->first = a->cur = NULL;
}

void
hsamem_result_free(void *result)
{
	struct arena_blk *b;

	if (result == NULL)
		return;
	b = (struct arena_blk *)((unsigned char *)result - offsetof(struct arena_blk, data));
	if (b->magic != ARENA_MAGIC)
		return; /* not ours: leaking beats corrupting the caller's heap */
	chain_free(b);
}

static int
oom(struct arena *a)
{
	return clib_fail(a->h, -ENOMEM, "out of memory");
}

/* Copies little-endian f32 bytes into a host-order array; want (SIZE_MAX: any) is the float count
 * the field must have. */
static int
copy_f32(struct arena *a, float **out, size_t *n_out, const ProtobufCBinaryData *b, size_t want,
         const char *what)
{
	size_t n;
	float *f;

	if (b->len % 4 != 0)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: %s has %zu bytes, not whole f32s",
		                 what, b->len);
	n = b->len / 4;
	if (want != SIZE_MAX && n != want)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: %s has %zu floats, expected %zu",
		                 what, n, want);
	if ((f = arena_calloc(a, n, sizeof(float))) == NULL)
		return oom(a);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (n > 0)
		memcpy(f, b->data, b->len);
#else
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = b->data + 4 * i;
		uint32_t u =
		        p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		memcpy(&f[i], &u, 4);
	}
#endif
	*out = f;
	if (n_out != NULL)
		*n_out = n;
	return 0;
}

/* Copies opaque bytes (K, V, landmark in the memory's dtype). */
static int
copy_bytes(struct arena *a, void **out, size_t *len, const ProtobufCBinaryData *b)
{
	void *p;

	if (b->len == 0) {
		*out = NULL;
		*len = 0;
		return 0;
	}
	if ((p = arena_calloc(a, b->len, 1)) == NULL)
		return oom(a);
	memcpy(p, b->data, b->len);
	*out = p;
	*len = b->len;
	return 0;
}

static int
res_spec(struct arena *a, struct hsamem_spec *out, const Hsamem__Spec *in)
{
	if (in == NULL) {
		out->encoder = out->tokenizer = "";
		return 0;
	}
	if ((out->encoder = arena_strdup(a, in->encoder)) == NULL ||
	    (out->tokenizer = arena_strdup(a, in->tokenizer)) == NULL)
		return oom(a);
	out->revision = in->revision;
	out->chunk_size = in->chunk_size;
	out->h_kv = in->h_kv;
	out->d_h = in->d_h;
	out->h_q = in->h_q;
	out->d_r = in->d_r;
	out->dtype = (enum hsamem_dtype)in->dtype;
	out->weighting = (enum hsamem_weighting)in->weighting;
	out->off_by_one = in->off_by_one;
	out->top_k = in->top_k;
	return 0;
}

int
res_memory(struct arena *a, struct hsamem_memory *out, const Hsamem__MemoryInfo *in)
{
	static const Hsamem__MemoryInfo none = HSAMEM__MEMORY_INFO__INIT;

	if (in == NULL)
		in = &none;
	if ((out->user = arena_strdup(a, in->user)) == NULL)
		return oom(a);
	out->entries = in->entries;
	out->tokens = in->tokens;
	out->chunks = in->chunks;
	out->tail_tokens = in->tail_tokens;
	out->bytes = in->bytes;
	out->created_ms = in->created_ms;
	out->updated_ms = in->updated_ms;
	return res_spec(a, &out->spec, in->spec);
}

int
res_entry(struct arena *a, struct hsamem_entry *out, const Hsamem__Entry *in)
{
	static const Hsamem__Entry none = HSAMEM__ENTRY__INIT;
	size_t i;

	if (in == NULL)
		in = &none;
	out->seq = in->seq;
	out->role = hsamem_role_name((enum hsamem_role)in->role) != NULL
	                    ? (enum hsamem_role)in->role
	                    : HSAMEM_ROLE_OTHER;
	out->timestamp_ms = in->timestamp_ms;
	out->first_token = in->first_token;
	out->n_tokens = in->n_tokens;
	if ((out->text = arena_strdup(a, in->text)) == NULL)
		return oom(a);
	if ((out->tags = arena_calloc(a, in->n_tags, sizeof(char *))) == NULL)
		return oom(a);
	for (i = 0; i < in->n_tags; i++)
		if ((out->tags[i] = arena_strdup(a, in->tags[i])) == NULL)
			return oom(a);
	out->n_tags = in->n_tags;
	return 0;
}

static int
res_hit(struct arena *a, struct hsamem_hit *out, const Hsamem__Hit *in)
{
	size_t i;
	int err;

	if (in == NULL)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: empty hit");
	out->chunk = in->chunk;
	out->tail = in->tail;
	out->score = in->score;
	out->weight = in->weight;
	out->n_tokens = in->n_tokens;
	if ((out->text = arena_strdup(a, in->text)) == NULL)
		return oom(a);
	if ((out->entries = arena_calloc(a, in->n_entries, sizeof(*out->entries))) == NULL)
		return oom(a);
	for (i = 0; i < in->n_entries; i++)
		if ((err = res_entry(a, &out->entries[i], in->entries[i])) != 0)
			return err;
	out->n_entries = in->n_entries;
	if ((out->top_tokens = arena_calloc(a, in->n_top_tokens, sizeof(*out->top_tokens))) == NULL)
		return oom(a);
	for (i = 0; i < in->n_top_tokens; i++) {
		const Hsamem__TokenWeight *t = in->top_tokens[i];
		struct hsamem_token_weight *o = &out->top_tokens[i];

		if (t == NULL)
			continue;
		if (in->n_tokens > 0 && t->index >= in->n_tokens)
			return clib_fail(a->h, HSAMEM_EPROTO,
			                 "reply: hit of chunk %llu: top token slot %u of %u",
			                 (unsigned long long)in->chunk, t->index, in->n_tokens);
		o->index = t->index;
		o->id = t->id;
		o->weight = t->weight;
		if ((o->text = arena_strdup(a, t->text)) == NULL)
			return oom(a);
	}
	out->n_top_tokens = in->n_top_tokens;
	return 0;
}

/* The end of every function that returns a heap result: hand it over or throw it away. */
static int
finish(struct arena *a, int err, void *res, void *outp, Hsamem__Reply *r)
{
	if (err == 0)
		*(void **)outp = res;
	else
		arena_abort(a);
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_query(struct hsamem *h, const char *user, const struct hsamem_query *q,
             struct hsamem_query_result **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__QueryRequest qr = HSAMEM__QUERY_REQUEST__INIT;
	struct hsamem_query_result *res;
	Hsamem__QueryReply *rq;
	Hsamem__Reply *r;
	struct arena a;
	size_t i;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (q == NULL || (q->text == NULL && q->n_tokens == 0))
		return clib_fail(h, HSAMEM_EINVAL, "a query needs text or tokens");
	if (q->n_tokens > 0 && q->tokens == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "n_tokens without tokens");
	qr.user = (char *)user;
	qr.text = (char *)q->text;
	qr.n_tokens = q->n_tokens;
	qr.tokens = (uint32_t *)q->tokens;
	qr.has_top_k = q->top_k != 0;
	qr.top_k = q->top_k;
	if (q->max_entries != 0) {
		qr.has_max_entries = 1;
		qr.max_entries = q->max_entries;
	}
	if (q->no_tail) {
		qr.has_include_tail = 1;
		qr.include_tail = 0;
	}
	req.body_case = HSAMEM__REQUEST__BODY_QUERY;
	req.query = &qr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_QUERY, &r)) != 0)
		return err;
	rq = r->query;
	if ((res = arena_start(&a, h, sizeof(*res))) == NULL)
		return finish(&a, oom(&a), NULL, out, r);
	res->chunks = rq->chunks;
	res->k = rq->k;
	if ((res->hits = arena_calloc(&a, rq->n_hits, sizeof(*res->hits))) == NULL)
		return finish(&a, oom(&a), NULL, out, r);
	for (i = 0; i < rq->n_hits && err == 0; i++)
		err = res_hit(&a, &res->hits[i], rq->hits[i]);
	res->n_hits = rq->n_hits;
	return finish(&a, err, res, out, r);
}

int
hsamem_query_text(struct hsamem *h, const char *user, const char *text, uint32_t top_k,
                  struct hsamem_query_result **out)
{
	struct hsamem_query q = {.text = text, .top_k = top_k};

	if (text == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "no query text given");
	return hsamem_query(h, user, &q, out);
}

/* The request's f32 arrays as little-endian bytes: the caller's own memory on a little-endian
 * host, a converted copy (to be freed) elsewhere. */
static int
f32_to_wire(ProtobufCBinaryData *b, const float *f, size_t n, void **copy)
{
	*copy = NULL;
	b->len = n * 4;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	b->data = (uint8_t *)f;
#else
	uint8_t *p;
	if ((p = malloc(n * 4 + 1)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		p[4 * i] = u;
		p[4 * i + 1] = u >> 8;
		p[4 * i + 2] = u >> 16;
		p[4 * i + 3] = u >> 24;
	}
	b->data = p;
	*copy = p;
#endif
	return 0;
}

/* Checks an attend reply against the request and converts it. */
static int
res_attend(struct arena *a, struct hsamem_attend_result *res, const Hsamem__AttendReply *in,
           const struct hsamem_attend *rq)
{
	uint64_t nk, h_kv = 0;
	size_t i;
	int err;

	if (in->n != rq->n)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: %u query tokens, asked for %u", in->n,
		                 rq->n);
	nk = (uint64_t)in->n * in->k;
	if (nk == 0) {
		if (in->n_selected != 0)
			return clib_fail(a->h, HSAMEM_EPROTO, "reply: k is 0 but %zu selected",
			                 in->n_selected);
	} else {
		h_kv = in->n_selected / nk;
		if (in->n_selected % nk != 0 || h_kv == 0 || (rq->qr_len / rq->n) % h_kv != 0 ||
		    (rq->qa_len / rq->n) % h_kv != 0)
			return clib_fail(a->h, HSAMEM_EPROTO,
			                 "reply: %zu selected chunks do not fit n %u, k %u",
			                 in->n_selected, in->n, in->k);
	}
	res->n = in->n;
	res->k = in->k;
	res->h_kv = (uint32_t)h_kv;
	if ((err = copy_f32(a, &res->output, &res->output_len, &in->output, rq->qa_len,
	                    "output")) != 0 ||
	    (err = copy_f32(a, &res->weights, NULL, &in->weights, in->n_selected, "weights")) !=
	            0 ||
	    (err = copy_f32(a, &res->scores, NULL, &in->scores, in->n_selected, "scores")) != 0)
		return err;
	if ((res->selected = arena_calloc(a, in->n_selected, sizeof(int64_t))) == NULL)
		return oom(a);
	for (i = 0; i < in->n_selected; i++) {
		if (in->selected[i] < -1)
			return clib_fail(a->h, HSAMEM_EPROTO, "reply: selected chunk %lld",
			                 (long long)in->selected[i]);
		res->selected[i] = in->selected[i];
	}
	res->selected_len = in->n_selected;
	if (rq->want_attention && nk > 0) {
		if ((err = copy_f32(a, &res->attention, &res->attention_len, &in->attention,
		                    SIZE_MAX, "attention")) != 0)
			return err;
		/* [n][h_q][k][S]: h_q is a multiple of h_kv and S at least 1. */
		if (res->attention_len == 0 || res->attention_len % (nk * h_kv) != 0)
			return clib_fail(a->h, HSAMEM_EPROTO,
			                 "reply: attention has %zu floats, not n*h_q*k*S",
			                 res->attention_len);
	}
	return 0;
}

int
hsamem_attend(struct hsamem *h, const char *user, const struct hsamem_attend *at,
              struct hsamem_attend_result **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__AttendRequest ar = HSAMEM__ATTEND_REQUEST__INIT;
	struct hsamem_attend_result *res;
	void *qr_copy = NULL, *qa_copy = NULL;
	Hsamem__Reply *r;
	struct arena a;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (at == NULL || at->n == 0 || at->qr == NULL || at->qa == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "attend needs n >= 1, qr and qa");
	if (at->qr_len == 0 || at->qr_len % at->n != 0 || at->qa_len == 0 ||
	    at->qa_len % at->n != 0)
		return clib_fail(h, HSAMEM_EINVAL, "qr_len and qa_len must be multiples of n (%u)",
		                 at->n);
	if (at->qr_len > SIZE_MAX / 4 || at->qa_len > SIZE_MAX / 4)
		return clib_fail(h, HSAMEM_ETOOBIG, "queries too large");
	if ((err = f32_to_wire(&ar.qr, at->qr, at->qr_len, &qr_copy)) != 0 ||
	    (err = f32_to_wire(&ar.qa, at->qa, at->qa_len, &qa_copy)) != 0) {
		err = clib_fail(h, err, "out of memory");
		goto done;
	}
	ar.user = (char *)user;
	ar.has_n = 1;
	ar.n = at->n;
	ar.has_qr = ar.has_qa = 1;
	if (at->positions != NULL) {
		ar.n_positions = at->n;
		ar.positions = (uint64_t *)at->positions;
	}
	ar.has_top_k = at->top_k != 0;
	ar.top_k = at->top_k;
	ar.has_want_attention = at->want_attention;
	ar.want_attention = at->want_attention;
	req.body_case = HSAMEM__REQUEST__BODY_ATTEND;
	req.attend = &ar;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_ATTEND, &r)) != 0)
		goto done;
	if ((res = arena_start(&a, h, sizeof(*res))) == NULL)
		err = finish(&a, oom(&a), NULL, out, r);
	else
		err = finish(&a, res_attend(&a, res, r->attend, at), res, out, r);
done:
	free(qr_copy);
	free(qa_copy);
	return err;
}

int
hsamem_entries(struct hsamem *h, const char *user, uint64_t first, uint32_t count,
               struct hsamem_entry_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__EntriesRequest er = HSAMEM__ENTRIES_REQUEST__INIT;
	struct hsamem_entry_list *res;
	Hsamem__EntriesReply *re;
	Hsamem__Reply *r;
	struct arena a;
	size_t i;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	er.user = (char *)user;
	er.has_first = 1;
	er.first = first;
	er.has_count = count != 0;
	er.count = count;
	req.body_case = HSAMEM__REQUEST__BODY_ENTRIES;
	req.entries = &er;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_ENTRIES, &r)) != 0)
		return err;
	re = r->entries;
	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->entries = arena_calloc(&a, re->n_entries, sizeof(*res->entries))) == NULL)
		return finish(&a, oom(&a), NULL, out, r);
	if (count != 0 && re->n_entries > count)
		err = clib_fail(h, HSAMEM_EPROTO, "reply: %zu entries, asked for %u", re->n_entries,
		                count);
	for (i = 0; i < re->n_entries && err == 0; i++)
		err = res_entry(&a, &res->entries[i], re->entries[i]);
	res->n_entries = re->n_entries;
	res->total = re->total;
	return finish(&a, err, res, out, r);
}

static int
res_chunk(struct arena *a, struct hsamem_chunk *out, const Hsamem__Chunk *in)
{
	int err;

	if (in == NULL)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: empty chunk");
	out->index = in->index;
	if ((out->tokens = arena_calloc(a, in->n_tokens, sizeof(uint32_t))) == NULL)
		return oom(a);
	if (in->n_tokens > 0)
		memcpy(out->tokens, in->tokens, in->n_tokens * sizeof(uint32_t));
	out->n_tokens = in->n_tokens;
	out->n_real = in->has_n_real ? in->n_real : (uint32_t)in->n_tokens;
	if (out->n_real > in->n_tokens)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: chunk %llu has %u real tokens of %zu",
		                 (unsigned long long)in->index, out->n_real, in->n_tokens);
	if (in->k.len != in->v.len)
		return clib_fail(a->h, HSAMEM_EPROTO,
		                 "reply: chunk %llu has K of %zu bytes, V of %zu",
		                 (unsigned long long)in->index, in->k.len, in->v.len);
	if ((out->text = arena_strdup(a, in->text)) == NULL)
		return oom(a);
	out->first_entry = in->first_entry;
	out->last_entry = in->last_entry;
	if ((err = copy_bytes(a, &out->k, &out->k_size, &in->k)) != 0 ||
	    (err = copy_bytes(a, &out->v, &out->v_size, &in->v)) != 0 ||
	    (err = copy_bytes(a, &out->landmark, &out->landmark_size, &in->landmark)) != 0)
		return err;
	return 0;
}

int
hsamem_chunks(struct hsamem *h, const char *user, uint64_t first, uint32_t count, unsigned flags,
              struct hsamem_chunk_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ChunksRequest cr = HSAMEM__CHUNKS_REQUEST__INIT;
	struct hsamem_chunk_list *res;
	Hsamem__ChunksReply *rc;
	Hsamem__Reply *r;
	struct arena a;
	size_t i;
	int err;

	if ((err = clib_check_user(h, user)) != 0)
		return err;
	cr.user = (char *)user;
	cr.has_first = 1;
	cr.first = first;
	cr.has_count = count != 0;
	cr.count = count;
	cr.has_tensors = (flags & HSAMEM_CHUNKS_TENSORS) != 0;
	cr.tensors = cr.has_tensors;
	req.body_case = HSAMEM__REQUEST__BODY_CHUNKS;
	req.chunks = &cr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_CHUNKS, &r)) != 0)
		return err;
	rc = r->chunks;
	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->chunks = arena_calloc(&a, rc->n_chunks, sizeof(*res->chunks))) == NULL)
		return finish(&a, oom(&a), NULL, out, r);
	if (count != 0 && rc->n_chunks > count)
		err = clib_fail(h, HSAMEM_EPROTO, "reply: %zu chunks, asked for %u", rc->n_chunks,
		                count);
	for (i = 0; i < rc->n_chunks && err == 0; i++)
		err = res_chunk(&a, &res->chunks[i], rc->chunks[i]);
	res->n_chunks = rc->n_chunks;
	res->total = rc->total;
	return finish(&a, err, res, out, r);
}

static int
res_memories(struct arena *a, struct hsamem_memory **out, size_t *n_out,
             Hsamem__MemoryInfo *const *in, size_t n)
{
	size_t i;
	int err;

	if ((*out = arena_calloc(a, n, sizeof(**out))) == NULL)
		return oom(a);
	for (i = 0; i < n; i++)
		if ((err = res_memory(a, &(*out)[i], in[i])) != 0)
			return err;
	*n_out = n;
	return 0;
}

int
hsamem_users(struct hsamem *h, struct hsamem_user_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__UsersRequest ur = HSAMEM__USERS_REQUEST__INIT;
	struct hsamem_user_list *res;
	Hsamem__Reply *r;
	struct arena a;
	int err;

	req.body_case = HSAMEM__REQUEST__BODY_USERS;
	req.users = &ur;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_USERS, &r)) != 0)
		return err;
	if ((res = arena_start(&a, h, sizeof(*res))) == NULL)
		return finish(&a, oom(&a), NULL, out, r);
	err = res_memories(&a, &res->users, &res->n_users, r->users->users, r->users->n_users);
	return finish(&a, err, res, out, r);
}

static int
res_histogram(struct arena *a, struct hsamem_histogram *out, const Hsamem__Histogram *in)
{
	if (in == NULL)
		return clib_fail(a->h, HSAMEM_EPROTO, "reply: empty histogram");
	if (!(in->n_counts == in->n_bounds_ms + 1 || (in->n_counts == 0 && in->n_bounds_ms == 0)))
		return clib_fail(a->h, HSAMEM_EPROTO,
		                 "reply: histogram %s has %zu bounds and %zu counts",
		                 in->name != NULL ? in->name : "", in->n_bounds_ms, in->n_counts);
	if ((out->name = arena_strdup(a, in->name)) == NULL ||
	    (out->bounds_ms = arena_calloc(a, in->n_bounds_ms, sizeof(double))) == NULL ||
	    (out->counts = arena_calloc(a, in->n_bounds_ms + 1, sizeof(uint64_t))) == NULL)
		return oom(a);
	if (in->n_bounds_ms > 0)
		memcpy(out->bounds_ms, in->bounds_ms, in->n_bounds_ms * sizeof(double));
	if (in->n_counts > 0)
		memcpy(out->counts, in->counts, in->n_counts * sizeof(uint64_t));
	out->n_bounds = in->n_bounds_ms;
	out->total = in->total;
	out->p50_ms = in->p50_ms;
	out->p99_ms = in->p99_ms;
	return 0;
}

int
hsamem_stats(struct hsamem *h, const char *user, struct hsamem_stats **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__StatsRequest sr = HSAMEM__STATS_REQUEST__INIT;
	struct hsamem_stats *res;
	Hsamem__StatsReply *rs;
	Hsamem__Reply *r;
	struct arena a;
	size_t i;
	int err;

	if (user != NULL && (err = clib_check_user(h, user)) != 0)
		return err;
	sr.user = (char *)user;
	req.body_case = HSAMEM__REQUEST__BODY_STATS;
	req.stats = &sr;
	if ((err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_STATS, &r)) != 0)
		return err;
	rs = r->stats;
	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->backend = arena_strdup(&a, rs->backend)) == NULL ||
	    (res->latency = arena_calloc(&a, rs->n_latency, sizeof(*res->latency))) == NULL)
		return finish(&a, oom(&a), NULL, out, r);
	res->users = rs->users;
	res->tokens = rs->tokens;
	res->chunks = rs->chunks;
	res->store_map_size = rs->store_map_size;
	res->store_map_used = rs->store_map_used;
	res->gpu_mem_used = rs->gpu_mem_used;
	res->gpu_mem_budget = rs->gpu_mem_budget;
	res->gpu_resident_users = rs->gpu_resident_users;
	res->landmark_hits = rs->landmark_hits;
	res->landmark_misses = rs->landmark_misses;
	res->chunk_hits = rs->chunk_hits;
	res->chunk_misses = rs->chunk_misses;
	res->requests = rs->requests;
	res->errors = rs->errors;
	res->commits = rs->commits;
	res->committed_appends = rs->committed_appends;
	res->uptime_ms = rs->uptime_ms;
	for (i = 0; i < rs->n_latency && err == 0; i++)
		err = res_histogram(&a, &res->latency[i], rs->latency[i]);
	res->n_latency = rs->n_latency;
	if (err == 0)
		err = res_memories(&a, &res->memories, &res->n_memories, rs->memories,
		                   rs->n_memories);
	return finish(&a, err, res, out, r);
}
