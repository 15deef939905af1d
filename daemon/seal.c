/*
 * seal.c: sealing the chunks of a memory's stream. The stream: entries add tokens to the tail;
 * every S tokens seal a chunk (tokens, text references, K|V, landmark), and the tail keeps the
 * rest; a flush seals a short tail as a padded chunk, so the next token starts the next chunk.
 * A built-in encoder computes the chunk's tensors here, with the left context it asks for, and the
 * chunk joins the memory's term statistics (store.h, TERMS); a client memory's tensors come with
 * the request; a model memory also gets its chunks' lexical landmarks (hybrid.c). This file writes
 * the chunk's records; the tail, the entries and the memory's counters are the caller's
 * (ops_write.c).
 *
 * A model (enc_ops.encode_chunks) costs too much to run in the committer, which every write of
 * every memory waits for: the worker that prepares the write encodes its chunks beforehand, in
 * batched calls (with helper threads while it is the only write encoding), from a snapshot of the
 * memory's tail (seal_pre_encode), and computes their lexical landmarks and terms too where the
 * memory keeps them; the committer copies what it gets and counts the terms of the chunks it
 * seals once a write (seal_flush). A memory's stream only
 * grows, so the snapshot is still right when the memory has the same uid, token and chunk counts
 * at apply time; when another write to it got in between, the committer encodes them itself
 * (seal_chunk, one encode_chunk per chunk), which is slower but as correct.
 *
 * Forgotten tokens (forget.c) are padding in their slots: holes_encode hands the encoder the
 * real tokens only and puts their rows back in their slots, zero rows in the holes, and they are
 * no one's left context. Such chunks are never pre-encoded here (a forget encodes the chunks it
 * changes in its own worker: forget.c).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "hybrid.h"
#include "log.h"
#include "ops.h"
#include "holes.h"
#include "seal.h"

/* Chunks of one encode_chunks call (the fp32 outputs of one slice: about 1 MB), and the most
 * that one write may seal when a worker encodes them (their tensors wait in the job: about 17 KB
 * a chunk in f16). */
#define SEAL_PRE_SLICE 32
#define SEAL_PRE_MAX   8192

/* Landmark rows kept for one write of their pages (seal_flush). */
#define SEAL_ROWS 64

/* The most helper threads one write's encoding may take (pre_encode_slices). */
#define SEAL_PRE_HELPERS 15

/* Workers encoding a write now (seal_pre_encode): one alone spreads its slices over the CPUs. */
static atomic_uint pre_running;

void
seal_fini(struct sealer *s)
{
	free(s->K);
	free(s->V);
	free(s->L);
	free(s->kv);
	free(s->row);
	free(s->tokens);
	free(s->refs);
	free(s->ctx);
	free(s->lmk_rows);
	free(s->lex_rows);
	free(s->term_ids);
	free(s->term_n);
}

int
seal_init(struct sealer *s, struct job *job, struct store_txn *txn, struct store_user *u,
          const struct enc_ops *enc)
{
	const struct hsa_spec *spec = &u->spec;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	memset(s, 0, sizeof(*s));
	s->job = job;
	s->txn = txn;
	s->u = u;
	s->enc = enc;
	s->K = malloc(per * sizeof(float));
	s->V = malloc(per * sizeof(float));
	s->L = malloc(spec->d_r * sizeof(float));
	s->kv = malloc(spec_kv_bytes(spec));
	s->row = malloc(spec_landmark_bytes(spec));
	s->tokens = malloc(spec->S * sizeof(uint32_t));
	s->refs = malloc(spec->S * sizeof(struct store_tokref));
	s->ctx = malloc(((enc != NULL ? enc->context : 0) + 1) * sizeof(uint32_t));
	s->lmk_rows = malloc(SEAL_ROWS * spec_landmark_bytes(spec));
	bool lexical = enc != NULL && (u->flags & STORE_USER_LEXICAL);
	if (lexical)
		s->lex_rows = malloc(SEAL_ROWS * hyb_row_bytes());
	if (enc != NULL) { /* a built-in encoder's chunks count their terms */
		s->term_ids =
		        malloc(SEAL_ROWS * (lexical ? HYB_LEX_MAX : spec->S) * sizeof(uint32_t));
		s->term_n = malloc(SEAL_ROWS * sizeof(uint32_t));
	}
	if (!s->K || !s->V || !s->L || !s->kv || !s->row || !s->tokens || !s->refs || !s->ctx ||
	    !s->lmk_rows || (lexical && !s->lex_rows) ||
	    (enc != NULL && (!s->term_ids || !s->term_n))) {
		seal_fini(s);
		return ops_oom(job);
	}
	return 0;
}

/* Puts the last of the real (non-zero: a forgotten token is padding) tokens of src[0, n) before
 * the *n_out tokens at the end of dst (want slots); returns how many it took. */
static size_t
take_back(uint32_t *dst, size_t want, size_t *n_out, const uint32_t *src, size_t n)
{
	size_t took = 0;
	while (n > 0 && *n_out < want) {
		if (src[--n] != 0) {
			dst[want - 1 - *n_out] = src[n];
			++*n_out;
			took++;
		}
	}
	return took;
}

/*
 * The encoder's left context of a chunk that starts at buf[at]: the real tokens before it, from
 * the buffer and, where the buffer does not reach back far enough, from the sealed chunks before
 * (not past a flush's padded chunk, whose window starts with pads; a few chunks at most). Tokens
 * forgotten (padding) are not context: the encoder sees the stream as if they were never said.
 * forget.c's context_of follows the same rule, so that a chunk is the same whichever encoded it.
 */
static size_t
gather_context(struct sealer *s, const uint32_t *buf, size_t at)
{
	size_t want = s->enc->context, n = 0, S = s->u->spec.S;
	if (want == 0)
		return 0;
	take_back(s->ctx, want, &n, buf, at);
	for (uint64_t k = s->u->n_chunks, back = 0; n < want && k > 0 && back < 4 + want / S;
	     back++) {
		struct store_chunk prev;
		if (store_chunk_get(s->txn, s->u->uid, --k, &prev) != 0)
			break;
		take_back(s->ctx, want, &n, prev.tokens, prev.n_real);
		if (prev.n_real < S)
			break;
	}
	memmove(s->ctx, s->ctx + want - n, n * sizeof(uint32_t));
	return n;
}

/* Whether the chunk's real slots hold a forgotten token (padding inside). */
static bool
has_holes(const uint32_t *tok, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (tok[i] == 0)
			return true;
	return false;
}

int
seal_chunk(struct sealer *s, const uint32_t *buf, const struct store_tokref *refs, size_t at,
           uint32_t n_real, const Hsamem__ChunkIn *in)
{
	struct store_user *u = s->u;
	const struct hsa_spec *spec = &u->spec;
	size_t kv_bytes = spec_kv_bytes(spec), half = kv_bytes / 2;
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	bool keep_kv = !(u->flags & STORE_USER_KV_COMPUTED); /* store.h, COMPUTED K/V */
	size_t from_pre = SIZE_MAX; /* the worker's chunk that this one is, if any */

	memset(s->tokens, 0, spec->S * sizeof(uint32_t));
	memset(s->refs, 0, spec->S * sizeof(struct store_tokref));
	memcpy(s->tokens, buf + at, n_real * sizeof(uint32_t));
	memcpy(s->refs, refs + at, n_real * sizeof(struct store_tokref));
	/* the worker encoded before a forget made holes: this chunk and those after it, whose
	 * context it is, are encoded again */
	s->no_pre |= has_holes(s->tokens, n_real);
	if (!s->no_pre && s->pre != NULL && s->pre_next == 0 && s->enc != NULL &&
	    s->enc->context > 0 && u->n_chunks > 0) {
		struct store_chunk prev; /* the first chunk's context */
		if (store_chunk_get(s->txn, u->uid, u->n_chunks - 1, &prev) == 0)
			s->no_pre = has_holes(prev.tokens, prev.n_real);
	}
	if (s->pre != NULL && s->pre_next < s->pre->n && !s->no_pre) {
		if (keep_kv)
			memcpy(s->kv, s->pre->kv + s->pre_next * kv_bytes, kv_bytes);
		memcpy(s->row, s->pre->lmk + s->pre_next * spec_landmark_bytes(spec),
		       spec_landmark_bytes(spec));
		from_pre = s->pre_next++;
	} else if (s->enc != NULL) {
		s->pre_next += s->pre != NULL && s->pre_next < s->pre->n; /* keeps its order */
		size_t n_ctx = gather_context(s, buf, at);
		int ret = holes_encode(s->enc, spec, s->ctx, n_ctx, s->tokens, n_real, s->K, s->V,
		                       s->L);
		if (ret != 0)
			return job_fail(s->job, ret, "encoder %s failed on chunk %llu: %s",
			                s->enc->name, (unsigned long long)u->n_chunks,
			                hsamem_strerror(ret));
		if (keep_kv) {
			half_from_float_row(spec->dtype, s->K, s->kv, per);
			half_from_float_row(spec->dtype, s->V, (char *)s->kv + half, per);
		}
		half_from_float_row(spec->dtype, s->L, s->row, spec->d_r);
	} else {
		memcpy(s->kv, in->k.data, half);
		memcpy((char *)s->kv + half, in->v.data, half);
		memcpy(s->row, in->landmark.data, spec_landmark_bytes(spec));
	}
	struct store_chunk c = {
	        .n_tokens = spec->S, .n_real = n_real, .tokens = s->tokens, .refs = s->refs};
	int ret;
	if (s->rows_n == SEAL_ROWS && (ret = seal_flush(s)) != 0)
		return ret;
	if (s->rows_n == 0)
		s->rows_first = u->n_chunks;
	if ((ret = store_chunk_put(s->txn, u->uid, u->n_chunks, &c)) != 0 ||
	    (keep_kv && (ret = store_kv_put(s->txn, u->uid, u->n_chunks, s->kv, kv_bytes)) != 0))
		return ret;
	memcpy(s->lmk_rows + s->rows_n * spec_landmark_bytes(spec), s->row,
	       spec_landmark_bytes(spec));
	/* what the chunk counts in the term statistics of a built-in encoder's ranking (written by
	 * seal_flush), and a model memory's lexical landmark */
	if (s->lex_rows != NULL) {
		size_t rb = hyb_row_bytes(), n_ids = 0;
		char *lex = (char *)s->lex_rows + s->rows_n * rb;
		uint32_t *ids = s->term_ids + s->terms_len;
		if (from_pre != SIZE_MAX && s->pre->lex != NULL) {
			memcpy(lex, s->pre->lex + from_pre * rb, rb);
			n_ids = s->pre->n_ids[from_pre];
			memcpy(ids, s->pre->ids + from_pre * HYB_LEX_MAX, n_ids * sizeof(uint32_t));
		} else if ((ret = hyb_chunk_row(s->enc, s->tokens, n_real, lex, ids, &n_ids)) !=
		           0) {
			return job_fail(s->job, ret,
			                "the lexical landmark of chunk %llu failed: %s",
			                (unsigned long long)u->n_chunks, hsamem_strerror(ret));
		}
		s->term_n[s->rows_n] = (uint32_t)n_ids;
		s->terms_len += n_ids;
	} else if (s->enc != NULL) {
		memcpy(s->term_ids + s->terms_len, s->tokens, n_real * sizeof(uint32_t));
		s->term_n[s->rows_n] = n_real;
		s->terms_len += n_real;
	}
	s->rows_n++;
	u->n_chunks++;
	if (n_real < spec->S)
		u->n_padded++;
	return 0;
}

int
seal_flush(struct sealer *s)
{
	int ret = 0;
	if (s->rows_n == 0)
		return 0;
	ret = store_landmarks_append(s->txn, s->u, s->rows_first, s->lmk_rows, s->rows_n);
	if (ret == 0 && s->lex_rows != NULL)
		ret = store_lexlm_append(s->txn, s->u, s->rows_first, s->lex_rows, s->rows_n,
		                         hyb_row_bytes());
	if (ret == 0 && s->term_ids != NULL)
		ret = store_terms_add_chunks(s->txn, s->u->uid, s->term_ids, s->term_n, s->rows_n);
	s->rows_n = 0;
	s->terms_len = 0;
	return ret;
}

bool
seal_use_pre(struct sealer *s, const struct seal_pre *pre, uint64_t n_tokens0, size_t n_seal)
{
	const struct store_user *u = s->u;
	if (pre == NULL)
		return false;
	bool keep_kv = !(u->flags & STORE_USER_KV_COMPUTED);
	if (pre->uid != u->uid || pre->n_tokens != n_tokens0 || pre->n_chunks != u->n_chunks ||
	    pre->n != n_seal || (pre->kv != NULL) != keep_kv ||
	    (pre->lex != NULL) != (s->lex_rows != NULL)) {
		log_debug("seal: the memory of '%s' changed while its %zu chunk(s) were encoded; "
		          "encoding them again in the committer",
		          u->name, pre->n);
		return false;
	}
	s->pre = pre;
	s->pre_next = 0;
	return true;
}

/*
 * The snapshot of a pre-encoding: the tokens to encode (the tail's, then the entries') into *buf
 * and the left context before the tail (the last sealed chunk's last tokens) into ctx. Reads in a
 * transaction of its own, ended before the model runs. Returns 0 with *n_tok 0 when nothing is to
 * be encoded.
 */
static int
pre_snapshot(struct job *job, const char *user, bool flush, struct store_user *u, uint32_t **buf,
             size_t *n_tok, uint32_t *ctx, size_t *n_ctx)
{
	struct store_txn txn;
	struct store_tail tail;
	struct store_chunk prev;
	int ret = store_txn_begin(job->d->store, &txn, false, NULL);
	*n_tok = *n_ctx = 0;
	if (ret != 0)
		return job_fail(job, ret, "store: cannot begin a read: %s", hsamem_strerror(ret));
	/* a memory that is missing or not as the job expects: the committer answers */
	if (store_user_get(&txn, user, u) != 0 || strcmp(u->spec.encoder, job->spec.encoder) != 0 ||
	    u->spec.revision != job->spec.revision || u->spec.S != job->spec.S ||
	    store_tail_get(&txn, u->uid, &tail) != 0 ||
	    tail.n != u->n_tokens - u->n_chunks * u->spec.S)
		goto out;
	size_t S = u->spec.S, total = tail.n;
	/* a forgotten token in the tail or the last chunk: the committer encodes without it */
	if (has_holes(tail.tokens, tail.n) ||
	    (u->n_chunks > 0 && job->enc->context > 0 &&
	     store_chunk_get(&txn, u->uid, u->n_chunks - 1, &prev) == 0 &&
	     has_holes(prev.tokens, prev.n_real)))
		goto out;
	for (size_t i = 0; i < job->n_entries; i++)
		total += job->entries[i].n;
	size_t n = flush ? tail.n : total / S * S;
	if (n == 0)
		goto out;
	if ((*buf = malloc(n * sizeof(uint32_t))) == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	size_t at = n < tail.n ? n : tail.n;
	if (at > 0)
		memcpy(*buf, tail.tokens, at * sizeof(uint32_t));
	for (size_t i = 0; i < job->n_entries && at < n; i++) {
		size_t m = job->entries[i].n < n - at ? job->entries[i].n : n - at;
		memcpy(*buf + at, job->entries[i].tokens, m * sizeof(uint32_t));
		at += m;
	}
	if (u->n_chunks > 0 && job->enc->context > 0 &&
	    store_chunk_get(&txn, u->uid, u->n_chunks - 1, &prev) == 0) {
		*n_ctx = prev.n_real < job->enc->context ? prev.n_real : job->enc->context;
		memcpy(ctx, prev.tokens + prev.n_real - *n_ctx, *n_ctx * sizeof(uint32_t));
	}
	*n_tok = n;
out:
	store_txn_abort(&txn);
	return ret;
}

/* Encodes chunks [c0, c0 + m) of buf (n_tok tokens) and stores them in pre, in the spec's dtype. */
static int
pre_slice(const struct enc_ops *enc, const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
          const uint32_t *buf, size_t n_tok, size_t c0, size_t m, float *K, float *V, float *L,
          struct seal_pre *pre)
{
	size_t S = spec->S, per = S * spec->h_kv * spec->d_h, at = c0 * S;
	size_t kv_bytes = spec_kv_bytes(spec), lmk_bytes = spec_landmark_bytes(spec);
	size_t n = n_tok - at < m * S ? n_tok - at : m * S;
	/* a later slice's context is the chunk before it, which is whole */
	int ret = c0 == 0 ? enc->encode_chunks(spec, ctx, n_ctx, buf, n, K, V, L)
	                  : enc->encode_chunks(spec, buf + at - S, S, buf + at, n, K, V, L);
	if (ret != 0)
		return ret;
	for (size_t c = 0; c < m; c++) {
		char *kv = pre->kv != NULL ? pre->kv + (c0 + c) * kv_bytes : NULL;
		if (kv != NULL) {
			half_from_float_row(spec->dtype, K + c * per, kv, per);
			half_from_float_row(spec->dtype, V + c * per, kv + kv_bytes / 2, per);
		}
		half_from_float_row(spec->dtype, L + c * spec->d_r, pre->lmk + (c0 + c) * lmk_bytes,
		                    spec->d_r);
	}
	return 0;
}

/* The slices of one write's chunks, taken in turn by its worker and its helpers. */
struct slices {
	const struct enc_ops *enc;
	const struct hsa_spec *spec;
	const uint32_t *ctx, *buf;
	size_t n_ctx, n_tok, n;
	struct seal_pre *pre;
	atomic_size_t next; /* the first chunk of the next slice to take */
	atomic_int ret;     /* the first failure */
};

/* The fp32 outputs of one slice's encoder call: each thread that encodes slices has its own. */
struct slice_bufs {
	float *K, *V, *L;
};

static bool
slice_bufs_init(struct slice_bufs *b, const struct hsa_spec *spec)
{
	size_t per = (size_t)spec->S * spec->h_kv * spec->d_h;
	b->K = malloc(SEAL_PRE_SLICE * per * sizeof(float));
	b->V = malloc(SEAL_PRE_SLICE * per * sizeof(float));
	b->L = malloc(SEAL_PRE_SLICE * spec->d_r * sizeof(float));
	return b->K != NULL && b->V != NULL && b->L != NULL;
}

static void
slice_bufs_fini(struct slice_bufs *b)
{
	free(b->L);
	free(b->V);
	free(b->K);
}

/* Encodes slices into sl->pre until none is left or one failed, with buffers b; a helper also
 * stops when another write starts encoding, which needs the CPU it would take. */
static void
slices_take(struct slices *sl, const struct slice_bufs *b, bool helper)
{
	for (;;) {
		if (helper && atomic_load(&pre_running) > 1)
			return;
		size_t c0 = atomic_fetch_add(&sl->next, SEAL_PRE_SLICE);
		if (c0 >= sl->n || atomic_load(&sl->ret) != 0)
			return;
		size_t m = sl->n - c0 < SEAL_PRE_SLICE ? sl->n - c0 : SEAL_PRE_SLICE;
		int ret = pre_slice(sl->enc, sl->spec, sl->ctx, sl->n_ctx, sl->buf, sl->n_tok, c0,
		                    m, b->K, b->V, b->L, sl->pre);
		if (ret != 0) {
			int none = 0;
			atomic_compare_exchange_strong(&sl->ret, &none, ret);
			return;
		}
	}
}

static void *
slices_helper(void *arg)
{
	struct slices *sl = arg;
	struct slice_bufs b;
	pthread_setname_np(pthread_self(), "hsamemd-encode");
	if (slice_bufs_init(&b, sl->spec)) /* else the others take its share */
		slices_take(sl, &b, true);
	slice_bufs_fini(&b);
	return NULL;
}

/* The CPUs this process may run on. */
static unsigned
cpus_usable(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	int n = CPU_COUNT(&set);
	return n > 0 ? (unsigned)n : 1;
}

/*
 * Encodes sl's chunks, a slice (one encode_chunks call) at a time. A write that is the only one
 * encoding takes helper threads, up to one for each other CPU, that take slices beside it: a single
 * writer (an agent, a re-encode) would otherwise have one core of the machine. Several writes at
 * once each encode alone, as the workers already fill the CPUs: helpers stop taking slices as soon
 * as another write starts encoding. Returns 0 or the first failure.
 */
static int
pre_encode_slices(struct slices *sl, const struct slice_bufs *b)
{
	pthread_t helper[SEAL_PRE_HELPERS];
	unsigned n_helpers = 0;
	size_t n_slices = (sl->n + SEAL_PRE_SLICE - 1) / SEAL_PRE_SLICE;
	if (atomic_fetch_add(&pre_running, 1) == 0 && n_slices > 1) {
		unsigned want = cpus_usable() - 1;
		if (want > n_slices - 1)
			want = (unsigned)(n_slices - 1);
		if (want > SEAL_PRE_HELPERS)
			want = SEAL_PRE_HELPERS;
		while (n_helpers < want &&
		       pthread_create(&helper[n_helpers], NULL, slices_helper, sl) == 0)
			n_helpers++;
	}
	slices_take(sl, b, false);
	for (unsigned i = 0; i < n_helpers; i++)
		pthread_join(helper[i], NULL);
	atomic_fetch_sub(&pre_running, 1);
	return atomic_load(&sl->ret);
}

/* The lexical landmarks and terms of pre's chunks (buf's n_tok tokens, the last chunk maybe
 * short), for a memory that keeps them: the committer only copies them (seal_chunk). */
static int
pre_lexical(struct job *job, const struct hsa_spec *spec, const uint32_t *buf, size_t n_tok,
            struct seal_pre *pre)
{
	size_t rb = hyb_row_bytes(), n = pre->n, S = spec->S;
	if ((pre->lex = arena_alloc(&job->arena, n * rb)) == NULL ||
	    (pre->ids = arena_alloc(&job->arena, n * HYB_LEX_MAX * sizeof(uint32_t))) == NULL ||
	    (pre->n_ids = arena_alloc(&job->arena, n * sizeof(uint32_t))) == NULL)
		return ops_oom(job);
	for (size_t c = 0; c < n; c++) {
		size_t n_ids = 0, n_real = n_tok - c * S < S ? n_tok - c * S : S;
		int ret = hyb_chunk_row(job->enc, buf + c * S, (uint32_t)n_real, pre->lex + c * rb,
		                        pre->ids + c * HYB_LEX_MAX, &n_ids);
		if (ret != 0)
			return job_fail(job, ret, "the lexical landmark of a chunk failed: %s",
			                hsamem_strerror(ret));
		pre->n_ids[c] = (uint32_t)n_ids;
	}
	return 0;
}

int
seal_pre_encode(struct job *job, const char *user, bool flush)
{
	const struct enc_ops *enc = job->enc;
	struct store_user u;
	uint32_t *buf = NULL, *ctx = NULL;
	struct slice_bufs b = {NULL, NULL, NULL};
	size_t n_tok = 0, n_ctx = 0;
	int ret;
	job->pre = NULL;
	if (enc == NULL || enc->encode_chunks == NULL)
		return 0;
	if ((ctx = malloc((enc->context + 1) * sizeof(uint32_t))) == NULL)
		return ops_oom(job);
	if ((ret = pre_snapshot(job, user, flush, &u, &buf, &n_tok, ctx, &n_ctx)) != 0 ||
	    n_tok == 0)
		goto out;
	const struct hsa_spec *spec = &u.spec;
	size_t n = (n_tok + spec->S - 1) / spec->S;
	if (n > SEAL_PRE_MAX) {
		ret = job_fail(job, HSAMEM_ETOOBIG,
		               "this append would seal %zu chunks; an append to a memory of the %s "
		               "encoder seals at most %d (%d tokens): split it",
		               n, enc->name, SEAL_PRE_MAX, SEAL_PRE_MAX * (int)spec->S);
		goto out;
	}
	struct seal_pre *pre = arena_alloc(&job->arena, sizeof(*pre));
	bool keep_kv = !(u.flags & STORE_USER_KV_COMPUTED);
	if (pre != NULL)
		pre->kv = NULL, pre->lex = NULL, pre->ids = pre->n_ids = NULL;
	if (!slice_bufs_init(&b, spec) || pre == NULL ||
	    (keep_kv && (pre->kv = arena_alloc(&job->arena, n * spec_kv_bytes(spec))) == NULL) ||
	    (pre->lmk = arena_alloc(&job->arena, n * spec_landmark_bytes(spec))) == NULL) {
		ret = ops_oom(job);
		goto out;
	}
	struct slices sl = {.enc = enc,
	                    .spec = spec,
	                    .ctx = ctx,
	                    .buf = buf,
	                    .n_ctx = n_ctx,
	                    .n_tok = n_tok,
	                    .n = n,
	                    .pre = pre};
	atomic_init(&sl.next, 0);
	atomic_init(&sl.ret, 0);
	if ((ret = pre_encode_slices(&sl, &b)) != 0) {
		job_fail(job, ret, "encoder %s failed on %zu chunk(s): %s", enc->name, n,
		         hsamem_strerror(ret));
		goto out;
	}
	pre->n = n;
	if ((u.flags & STORE_USER_LEXICAL) && (ret = pre_lexical(job, spec, buf, n_tok, pre)) != 0)
		goto out;
	pre->uid = u.uid;
	pre->n_tokens = u.n_tokens;
	pre->n_chunks = u.n_chunks;
	job->pre = pre;
out:
	slice_bufs_fini(&b);
	free(ctx);
	free(buf);
	return ret;
}
