/*
 * result.c: the heap results of libhsamem: the arena that holds each one, and the conversions of
 * checked replies into result structs; also the names of the enumerations that results carry.
 *
 * A result is one arena: a chain of blocks whose first one starts with the result struct, so that
 * hsamem_result_free() needs nothing but the pointer it is given. Replies are copied into the arena
 * only after, or while, each size is checked against the counts it must agree with; a result is
 * handed over whole or not at all. Nothing here trusts a count from the wire to size a loop over
 * memory it did not check.
 *
 * request.c builds the requests and calls one res_*() per reply; nothing here sends or receives.
 * The only call back into the library is clib_fail(), which sets the handle's message.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
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

struct arena {
	struct arena_blk *first;
	struct arena_blk *cur;
	struct hsamem *h; /* where conversions report what was wrong */
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

/* Zeroed memory of n * size bytes, aligned for any type; NULL on overflow or out of memory. */
static void *
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

/* Starts an arena whose first allocation, returned, is a zeroed result struct of size bytes. On
 * failure (NULL) the arena is empty and arena_abort() is harmless. */
static void *
arena_start(struct arena *a, struct hsamem *h, size_t size)
{
	a->h = h;
	a->first = a->cur = blk_alloc(size > BLOCK_BYTES ? round_up(size) : BLOCK_BYTES);
	if (a->first == NULL)
		return NULL;
	return arena_calloc(a, 1, size);
}

/* A copy of s (NULL gives ""), or NULL on out of memory. */
static char *
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

/* Frees everything of an arena that was not handed out (on an error path). */
static void
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

const char *
hsamem_role_name(enum hsamem_role role)
{
	switch (role) {
	case HSAMEM_ROLE_OTHER: return "other";
	case HSAMEM_ROLE_USER: return "user";
	case HSAMEM_ROLE_ASSISTANT: return "assistant";
	case HSAMEM_ROLE_SYSTEM: return "system";
	case HSAMEM_ROLE_TOOL: return "tool";
	}
	return NULL;
}

const char *
hsamem_dtype_name(enum hsamem_dtype dtype)
{
	switch (dtype) {
	case HSAMEM_DTYPE_DEFAULT: return NULL;
	case HSAMEM_F16: return "f16";
	case HSAMEM_BF16: return "bf16";
	case HSAMEM_F32: return "f32";
	}
	return NULL;
}

const char *
hsamem_weighting_name(enum hsamem_weighting weighting)
{
	switch (weighting) {
	case HSAMEM_WEIGHTING_DEFAULT: return NULL;
	case HSAMEM_SOFTMAX: return "softmax";
	case HSAMEM_STICKBREAK: return "stickbreak";
	}
	return NULL;
}

/* ---- conversions of reply parts into an arena ---- */

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
conv_spec(struct arena *a, struct hsamem_spec *out, const Hsamem__Spec *in)
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

static int
conv_memory(struct arena *a, struct hsamem_memory *out, const Hsamem__MemoryInfo *in)
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
	return conv_spec(a, &out->spec, in->spec);
}

static int
conv_memories(struct arena *a, struct hsamem_memory **out, size_t *n_out,
              Hsamem__MemoryInfo *const *in, size_t n)
{
	size_t i;
	int err;

	if ((*out = arena_calloc(a, n, sizeof(**out))) == NULL)
		return oom(a);
	for (i = 0; i < n; i++)
		if ((err = conv_memory(a, &(*out)[i], in[i])) != 0)
			return err;
	*n_out = n;
	return 0;
}

static int
conv_entry(struct arena *a, struct hsamem_entry *out, const Hsamem__Entry *in)
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

/* Pairs as "key=value" strings. */
static int
conv_pairs(struct arena *a, const char *const **out, size_t *n_out, Hsamem__Attr *const *in,
           size_t n)
{
	const char **v = arena_calloc(a, n, sizeof(char *));
	if (v == NULL)
		return oom(a);
	for (size_t i = 0; i < n; i++) {
		const char *k = in[i]->key != NULL ? in[i]->key : "";
		const char *x = in[i]->value != NULL ? in[i]->value : "";
		char *s = arena_calloc(a, strlen(k) + strlen(x) + 2, 1);
		if (s == NULL)
			return oom(a);
		snprintf(s, strlen(k) + strlen(x) + 2, "%s=%s", k, x);
		v[i] = s;
	}
	*out = v;
	*n_out = n;
	return 0;
}

static int
conv_attrs(struct arena *a, struct hsamem_attrs *out, const Hsamem__Entry *in)
{
	int err = conv_pairs(a, &out->scope, &out->n_scope, in->scope, in->n_scope);
	return err != 0 ? err : conv_pairs(a, &out->meta, &out->n_meta, in->meta, in->n_meta);
}

static int
conv_entry_hit(struct arena *a, struct hsamem_entry_hit *out, const Hsamem__EntryHit *in)
{
	static const Hsamem__Entry none = HSAMEM__ENTRY__INIT;
	const Hsamem__Entry *e = in->entry != NULL ? in->entry : &none;
	uint64_t *chunks = arena_calloc(a, in->n_chunks, sizeof(uint64_t));
	int err;

	if (chunks == NULL)
		return oom(a);
	if ((err = conv_entry(a, &out->entry, e)) != 0 ||
	    (err = conv_attrs(a, &out->attrs, e)) != 0)
		return err;
	if (in->n_chunks > 0)
		memcpy(chunks, in->chunks, in->n_chunks * sizeof(uint64_t));
	out->chunks = chunks;
	out->n_chunks = in->n_chunks;
	out->score = in->score;
	out->context = in->context;
	return 0;
}

static int
conv_hit(struct arena *a, struct hsamem_hit *out, const Hsamem__Hit *in)
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
		if ((err = conv_entry(a, &out->entries[i], in->entries[i])) != 0)
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

static int
conv_chunk(struct arena *a, struct hsamem_chunk *out, const Hsamem__Chunk *in)
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

static int
conv_histogram(struct arena *a, struct hsamem_histogram *out, const Hsamem__Histogram *in)
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

/* ---- whole results: one arena each ---- */

/* The end of every res_*(): hand the result over, or throw it away. */
static int
hand_over(struct arena *a, int err, void *res, void *outp)
{
	if (err == 0)
		*(void **)outp = res;
	else
		arena_abort(a);
	return err;
}

int
res_server(struct hsamem *h, const Hsamem__PingReply *in, struct hsamem_server **out)
{
	struct hsamem_server *s;
	struct arena a;

	if ((s = arena_start(&a, h, sizeof(*s))) == NULL ||
	    (s->server_version = arena_strdup(&a, in->server_version)) == NULL ||
	    (s->backend = arena_strdup(&a, in->backend)) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	s->protocol_version = in->protocol_version;
	s->uptime_ms = in->uptime_ms;
	return hand_over(&a, 0, s, out);
}

int
res_memory(struct hsamem *h, const Hsamem__MemoryInfo *in, struct hsamem_memory **out)
{
	struct hsamem_memory *m;
	struct arena a;

	if ((m = arena_start(&a, h, sizeof(*m))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	return hand_over(&a, conv_memory(&a, m, in), m, out);
}

int
res_query(struct hsamem *h, const Hsamem__QueryReply *in, struct hsamem_query_result **out)
{
	struct hsamem_query_result *res;
	struct arena a;
	size_t i;
	int err = 0;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->hits = arena_calloc(&a, in->n_hits, sizeof(*res->hits))) == NULL ||
	    (res->ranks = arena_calloc(&a, in->n_hits, sizeof(*res->ranks))) == NULL ||
	    (res->mode = arena_strdup(&a, in->mode != NULL ? in->mode : "")) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	res->chunks = in->chunks;
	res->k = in->k;
	for (i = 0; i < in->n_hits && err == 0; i++) {
		err = conv_hit(&a, &res->hits[i], in->hits[i]);
		if (err != 0)
			break;
		const Hsamem__Hit *hit = in->hits[i];
		res->ranks[i].rank_score = hit->has_rank_score ? hit->rank_score : hit->score;
		res->ranks[i].has_lexical = hit->has_lexical_score;
		res->ranks[i].lexical_score = hit->lexical_score;
	}
	res->n_hits = in->n_hits;
	if (err == 0 &&
	    (res->entry_hits = arena_calloc(&a, in->n_entries, sizeof(*res->entry_hits))) == NULL)
		err = oom(&a);
	for (i = 0; i < in->n_entries && err == 0; i++)
		err = conv_entry_hit(&a, &res->entry_hits[i], in->entries[i]);
	res->n_entry_hits = err == 0 ? in->n_entries : 0;
	res->filtered = in->has_allowed;
	res->allowed = in->allowed;
	res->below_min_score = in->below_min_score;
	return hand_over(&a, err, res, out);
}

int
res_ask(struct hsamem *h, const Hsamem__AskReply *in, struct hsamem_ask_result **out)
{
	struct hsamem_ask_result *res;
	struct arena a;
	uint32_t *tokens;
	size_t i;
	int err = 0;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->chunks = arena_calloc(&a, in->n_chunks, sizeof(*res->chunks))) == NULL ||
	    (tokens = arena_calloc(&a, in->n_tokens, sizeof(*tokens))) == NULL ||
	    (res->answer = arena_strdup(&a, in->answer)) == NULL ||
	    (res->encoder = arena_strdup(&a, in->encoder)) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	if (in->n_tokens > 0)
		memcpy(tokens, in->tokens, in->n_tokens * sizeof(*tokens));
	res->tokens = tokens;
	res->n_tokens = in->n_tokens;
	res->experimental = in->experimental;
	res->complete = in->complete;
	res->positions = in->positions;
	res->searched = in->searched;
	for (i = 0; i < in->n_chunks && err == 0; i++)
		err = conv_hit(&a, &res->chunks[i], in->chunks[i]);
	res->n_chunks = in->n_chunks;
	return hand_over(&a, err, res, out);
}

/* Checks an attend reply against the request and converts it. */
static int
conv_attend(struct arena *a, struct hsamem_attend_result *res, const Hsamem__AttendReply *in,
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
res_attend(struct hsamem *h, const Hsamem__AttendReply *in, const struct hsamem_attend *rq,
           struct hsamem_attend_result **out)
{
	struct hsamem_attend_result *res;
	struct arena a;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	return hand_over(&a, conv_attend(&a, res, in, rq), res, out);
}

int
res_entries(struct hsamem *h, const Hsamem__EntriesReply *in, uint32_t count,
            struct hsamem_entry_list **out)
{
	struct hsamem_entry_list *res;
	struct arena a;
	size_t i;
	int err = 0;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->entries = arena_calloc(&a, in->n_entries, sizeof(*res->entries))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	if (count != 0 && in->n_entries > count)
		err = clib_fail(h, HSAMEM_EPROTO, "reply: %zu entries, asked for %u", in->n_entries,
		                count);
	if (err == 0 && (res->attrs = arena_calloc(&a, in->n_entries, sizeof(*res->attrs))) == NULL)
		err = oom(&a);
	for (i = 0; i < in->n_entries && err == 0; i++)
		if ((err = conv_entry(&a, &res->entries[i], in->entries[i])) == 0 && in->entries[i])
			err = conv_attrs(&a, &res->attrs[i], in->entries[i]);
	res->n_entries = in->n_entries;
	res->total = in->total;
	return hand_over(&a, err, res, out);
}

int
res_chunks(struct hsamem *h, const Hsamem__ChunksReply *in, uint32_t count,
           struct hsamem_chunk_list **out)
{
	struct hsamem_chunk_list *res;
	struct arena a;
	size_t i;
	int err = 0;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->chunks = arena_calloc(&a, in->n_chunks, sizeof(*res->chunks))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	if (count != 0 && in->n_chunks > count)
		err = clib_fail(h, HSAMEM_EPROTO, "reply: %zu chunks, asked for %u", in->n_chunks,
		                count);
	for (i = 0; i < in->n_chunks && err == 0; i++)
		err = conv_chunk(&a, &res->chunks[i], in->chunks[i]);
	res->n_chunks = in->n_chunks;
	res->total = in->total;
	return hand_over(&a, err, res, out);
}

int
res_users(struct hsamem *h, const Hsamem__UsersReply *in, struct hsamem_user_list **out)
{
	struct hsamem_user_list *res;
	struct arena a;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	return hand_over(&a, conv_memories(&a, &res->users, &res->n_users, in->users, in->n_users),
	                 res, out);
}

int
res_stats(struct hsamem *h, const Hsamem__StatsReply *in, struct hsamem_stats **out)
{
	struct hsamem_stats *res;
	struct arena a;
	size_t i;
	int err = 0;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->backend = arena_strdup(&a, in->backend)) == NULL ||
	    (res->latency = arena_calloc(&a, in->n_latency, sizeof(*res->latency))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	res->users = in->users;
	res->tokens = in->tokens;
	res->chunks = in->chunks;
	res->store_map_size = in->store_map_size;
	res->store_map_used = in->store_map_used;
	res->text_bytes = in->text_bytes;
	res->gpu_mem_used = in->gpu_mem_used;
	res->gpu_mem_budget = in->gpu_mem_budget;
	res->gpu_resident_users = in->gpu_resident_users;
	res->landmark_hits = in->landmark_hits;
	res->landmark_misses = in->landmark_misses;
	res->chunk_hits = in->chunk_hits;
	res->chunk_misses = in->chunk_misses;
	res->requests = in->requests;
	res->errors = in->errors;
	res->commits = in->commits;
	res->committed_appends = in->committed_appends;
	res->uptime_ms = in->uptime_ms;
	for (i = 0; i < in->n_latency && err == 0; i++)
		err = conv_histogram(&a, &res->latency[i], in->latency[i]);
	res->n_latency = in->n_latency;
	if (err == 0)
		err = conv_memories(&a, &res->memories, &res->n_memories, in->memories,
		                    in->n_memories);
	return hand_over(&a, err, res, out);
}

int
res_text(struct hsamem *h, const char *in, char **out)
{
	struct arena a;
	size_t len = strlen(in);
	char *res = arena_start(&a, h, len + 1);

	if (res == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	memcpy(res, in, len);
	return hand_over(&a, 0, res, out);
}

int
res_history(struct hsamem *h, const Hsamem__HistoryReply *in, struct hsamem_history **out)
{
	struct hsamem_history *res;
	struct arena a;
	int err = 0;

	if ((res = arena_start(&a, h, sizeof(*res))) == NULL ||
	    (res->items = arena_calloc(&a, in->n_entries, sizeof(*res->items))) == NULL)
		return hand_over(&a, oom(&a), NULL, out);
	for (size_t i = 0; i < in->n_entries && err == 0; i++) {
		struct hsamem_history_item *it = &res->items[i];
		const Hsamem__Entry *e = in->entries[i];
		err = conv_entry(&a, &it->entry, e);
		if (err != 0 || e == NULL)
			continue;
		it->forgotten = e->forgotten;
		it->has_replaces = e->has_replaces;
		it->replaces = e->replaces;
		it->has_replaced_by = e->has_replaced_by;
		it->replaced_by = e->replaced_by;
	}
	res->n_items = in->n_entries;
	return hand_over(&a, err, res, out);
}
