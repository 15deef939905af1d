/*
 * hsa_small.c: the learned encoder "hsa-small" behind the encoder interface (encoder.h): the
 * model of models/hsa-small, run on the CPU by hsa_forward.c, with its hsamem-bpe tokenizer.
 *
 * Unlike the lexical encoder it has state: the model, loaded once from a folder (hsa_small_load)
 * and read-only after, so any number of threads encode at once, each with scratch of its own
 * allocated per call. The model fixes the spec (models/README.md): revision = the weights' step,
 * S, h_kv, d_h, h_q, d_r and top-k from its configuration, softmax weighting.
 *
 * Windows (models/README.md, "Windows"): a chunk is encoded in the window "previous chunk's S
 * tokens ‖ the chunk", a query in "the stream's last S tokens ‖ <|q|> question <|a|>". Where the
 * stream has fewer tokens before (the first chunk, a chunk after a flush's padded one), the
 * first half is filled with <|pad|> on the left; a short (padded) chunk is filled with <|pad|> on
 * the right, and its K and V rows past its tokens are zero.
 *
 * OpenBLAS threads: the daemon runs calls in several workers at once, which fill the cores; each
 * call's GEMMs run on one thread (hsa_small_load sets it).
 *
 * GPU: once hsa_small_use_gpu has attached the model to a CUDA device (the daemon does when its
 * CUDA backend is up), chunk encoding, queries and answers run on the CUDA runtime (hsa_cuda.h)
 * instead, chunks in batches of HS_GPU_BATCH windows. Chunk encoding shares one scratch, so
 * encoding calls take turns on the device (a batch of chunks is one upload, one download and one
 * synchronisation). A query or an answer takes a scratch of one window from a pool (at most
 * HS_POOL, each with its own stream, cuBLAS handle and graphs), so that queries run on the device
 * side by side, and a query's caller does its own work (a hybrid query's lexical ranking) while
 * its window runs without holding up the others; a thread fills the pool, graphs and all, once the
 * model is on the device (pool_fill). Where a GPU call fails (HSAMEM_EBACKEND)
 * the call is computed again on the CPU, which is the reference, so results stay the same.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpe.h"
#include "hsa_cuda.h"
#include "hsa_forward.h"
#include "hsa_model.h"
#include "hsa_small.h"
#include "hsamem_defs.h"
#include "log.h"
#include "why.h"

#define HS_BATCH     32  /* windows per hsa_encode_chunks call: about 70 MB of scratch */
#define HS_GPU_BATCH 512 /* windows per call on the GPU: about 1.6 GB of device memory */

static struct hsa_model *model; /* NULL until loaded */
static bool on_gpu;             /* model attached to a device (hsa_small_use_gpu) */
static pthread_mutex_t gpu_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the ones below */
static pthread_cond_t gpu_free = PTHREAD_COND_INITIALIZER;   /* a scratch went back to the pool */
static struct hsa_scratch *gpu_enc;                          /* allocated at first use */
/* The pool of GPU scratches of one window for queries and answers: a scratch's buffers and its
 * graphs of the query windows (hsa_cuda_query.c) are made once, not at every call. n_made of
 * them exist, n_spare of those are in gpu_spare; a call waits for one when HS_POOL are out. */
#define HS_POOL HSA_SMALL_GPU_POOL
static struct hsa_scratch *gpu_spare[HS_POOL];
static int n_spare, n_made;
static char load_error[600] = "encoder hsa-small: no model folder was loaded";
static unsigned model_gen; /* counts the loads: a thread's kept scratch is of one (query_scratch) */

static int
hs_ready(char *why, size_t why_len)
{
	if (model == NULL)
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s", load_error);
	return 0;
}

static void
hs_default_spec(struct hsa_spec *s)
{
	const struct hsa_config *c = model != NULL ? &model->cfg : NULL;
	memset(s, 0, sizeof(*s));
	snprintf(s->encoder, sizeof(s->encoder), "%s", HSA_SMALL_NAME);
	snprintf(s->tokenizer, sizeof(s->tokenizer), "%s", HSA_SMALL_TOKENIZER);
	/* without a model, the shipped model's (models/README.md); such a spec is never used */
	s->revision = c != NULL ? c->step : 0;
	s->S = c != NULL ? c->chunk : 64;
	s->h_kv = c != NULL ? c->h_kv : 1;
	s->d_h = c != NULL ? c->d_h : 64;
	s->h_q = c != NULL ? c->h_q : 8;
	s->d_r = c != NULL ? c->d_r : 128;
	s->top_k = c != NULL ? c->topk : 8;
	s->dtype = HSA_F16;
	s->weighting = HSA_SOFTMAX;
	s->off_by_one = false;
}

static int
hs_check_spec(const struct hsa_spec *s, char *why, size_t why_len)
{
	struct hsa_spec d;
	int err = hs_ready(why, why_len);
	if (err == 0)
		err = spec_check(s, why, why_len);
	if (err != 0)
		return err;
	hs_default_spec(&d);
	if (strcmp(s->encoder, d.encoder) != 0)
		return why_fail(why, why_len, HSAMEM_ESPEC,
		                "hsa-small: the spec names another encoder");
	if (s->revision != d.revision)
		return why_fail(why, why_len, HSAMEM_ESPEC,
		                "hsa-small: the memory is of revision %u; the model is %u",
		                s->revision, d.revision);
	if (strcmp(s->tokenizer, d.tokenizer) != 0)
		return why_fail(why, why_len, HSAMEM_ESPEC, "hsa-small: tokenizer must be %s",
		                d.tokenizer);
	if (s->S != d.S || s->h_kv != d.h_kv || s->d_h != d.d_h || s->h_q != d.h_q ||
	    s->d_r != d.d_r)
		return why_fail(why, why_len, HSAMEM_ESPEC,
		                "hsa-small: the model has S=%u h_kv=%u d_h=%u h_q=%u d_r=%u", d.S,
		                d.h_kv, d.d_h, d.h_q, d.d_r);
	if (s->weighting != HSA_SOFTMAX || s->off_by_one)
		return why_fail(why, why_len, HSAMEM_ESPEC,
		                "hsa-small: the model was trained with softmax weighting and no "
		                "off-by-one");
	return 0;
}

static int
hs_tokenize(const char *text, size_t len, struct enc_token **out, size_t *n)
{
	uint32_t *ids = NULL;
	size_t m = 0, off = 0;
	int err = hs_ready(NULL, 0);
	if (err == 0)
		err = bpe_encode(model->tok, text, len, &ids, &m);
	if (err != 0)
		return err;
	*out = NULL;
	*n = m;
	if (m == 0)
		return 0;
	struct enc_token *t = malloc(m * sizeof(*t));
	if (t == NULL) {
		free(ids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m; i++) {
		size_t l;
		bpe_bytes(model->tok, ids[i], &l);
		t[i] = (struct enc_token){ids[i], (uint32_t)off, (uint32_t)l};
		off += l;
	}
	free(ids);
	*out = t;
	return 0;
}

/* First half of a window: S - n_ctx pads, then ctx. */
static void
window_context(uint32_t *w, uint32_t S, uint32_t pad, const uint32_t *ctx, size_t n_ctx)
{
	for (size_t i = 0; i < S - n_ctx; i++)
		w[i] = pad;
	if (n_ctx > 0)
		memcpy(w + S - n_ctx, ctx, n_ctx * sizeof(uint32_t));
}

/* What a call encodes: consecutive chunks of a stream (encode_chunks), or windows of their own
 * (encode_windows). */
struct hs_input {
	const uint32_t *ctx, *tok; /* the stream's: ctx before chunk 0, then tok (n tokens) */
	size_t n_ctx, n;
	const struct enc_window *w; /* or these, n of them */
};

/* The windows first .. first+nw-1 of in into win [nw][2S]. */
static void
input_windows(uint32_t *win, uint32_t S, uint32_t pad, const struct hs_input *in, size_t first,
              size_t nw)
{
	for (size_t w = 0; w < nw; w++) {
		size_t c = first + w, m;
		uint32_t *row = win + w * 2 * S;
		const uint32_t *chunk;
		if (in->w != NULL) {
			window_context(row, S, pad, in->w[c].ctx, in->w[c].n_ctx);
			chunk = in->w[c].tok;
			m = in->w[c].n;
		} else {
			size_t at = c * S;
			if (c == 0)
				window_context(row, S, pad, in->ctx, in->n_ctx);
			else
				memcpy(row, in->tok + at - S, S * sizeof(uint32_t));
			chunk = in->tok + at;
			m = in->n - at < S ? in->n - at : S;
		}
		if (m > 0)
			memcpy(row + S, chunk, m * sizeof(uint32_t));
		for (size_t i = m; i < S; i++)
			row[S + i] = pad;
	}
}

/* A GPU call failed: logged once; the caller computes on the CPU. */
static void
gpu_failed(const char *what)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&said))
		log_warn("encoder hsa-small: %s failed on the GPU; computed on the CPU", what);
}

/* The n_win windows of in, in batches of at most `batch` through runtime rt on scratch s. */
static int
encode_batches(const struct hsa_runtime *rt, struct hsa_scratch *s, size_t batch,
               const struct hs_input *in, size_t n_win, float *K, float *V, float *L)
{
	const struct hsa_config *c = &model->cfg;
	uint32_t S = c->chunk, *win;
	size_t per = (size_t)S * c->h_kv * c->d_h;
	int err = 0;
	batch = n_win < batch ? n_win : batch;
	if ((win = malloc(batch * 2 * S * sizeof(uint32_t))) == NULL)
		return -ENOMEM;
	for (size_t first = 0; first < n_win && err == 0; first += batch) {
		size_t nw = n_win - first < batch ? n_win - first : batch;
		input_windows(win, S, c->pad_id, in, first, nw);
		err = rt->encode_chunks(model, s, win, (uint32_t)nw, K + first * per,
		                        V + first * per, L + first * c->d_r);
	}
	free(win);
	return err;
}

/* A new GPU scratch of one window in a place of the pool already counted in n_made; NULL (and
 * the place given up) when it cannot be made. */
static struct hsa_scratch *
pool_new(void)
{
	struct hsa_scratch *s = NULL;
	if (hsa_runtime_cuda()->scratch_alloc(model, 1, &s) != 0) {
		pthread_mutex_lock(&gpu_lock);
		n_made--;
		pthread_cond_signal(&gpu_free);
		pthread_mutex_unlock(&gpu_lock);
		s = NULL;
	}
	return s;
}

/* A GPU scratch of one window from the pool: a spare one, else a new one while fewer than
 * HS_POOL exist, else the next one given back. NULL when none can be made. */
static struct hsa_scratch *
pool_take(void)
{
	struct hsa_scratch *s = NULL;
	pthread_mutex_lock(&gpu_lock);
	while (n_spare == 0 && n_made == HS_POOL)
		pthread_cond_wait(&gpu_free, &gpu_lock);
	if (n_spare > 0)
		s = gpu_spare[--n_spare];
	else
		n_made++; /* made below, outside the lock */
	pthread_mutex_unlock(&gpu_lock);
	return s != NULL ? s : pool_new();
}

/* s (of pool_take, or NULL) back to the pool. */
static void
pool_give(struct hsa_scratch *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&gpu_lock);
	gpu_spare[n_spare++] = s;
	pthread_cond_signal(&gpu_free);
	pthread_mutex_unlock(&gpu_lock);
}

/* s (of pool_take, or NULL), whose GPU call failed, freed rather than kept. */
static void
pool_drop(struct hsa_scratch *s)
{
	if (s == NULL)
		return;
	hsa_runtime_cuda()->scratch_free(s);
	pthread_mutex_lock(&gpu_lock);
	n_made--;
	pthread_cond_signal(&gpu_free);
	pthread_mutex_unlock(&gpu_lock);
}

/* The pool filled ahead of the queries by a thread that hsa_small_use_gpu starts: every scratch
 * made and its graphs of every question's window captured, one scratch after another, so that
 * the first queries of many clients at once neither allocate device memory nor capture graphs.
 * Queries are served meanwhile (a query that finds no spare makes its own, as before). */
static pthread_t filler;
static bool filling;          /* filler started and not yet joined */
static atomic_bool fill_stop; /* hsa_small_unload: stop filling */

static void *
pool_fill(void *arg)
{
	(void)arg;
	uint32_t S = model->cfg.chunk;
	struct timespec t0, t1;
	int made = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!atomic_load(&fill_stop)) {
		pthread_mutex_lock(&gpu_lock);
		bool room = n_made < HS_POOL;
		n_made += room; /* made below, outside the lock */
		pthread_mutex_unlock(&gpu_lock);
		struct hsa_scratch *s = room ? pool_new() : NULL;
		if (s == NULL)
			break;
		int err = hsa_cuda_query_prepare(model, s, S + 2, 2 * S);
		pool_give(s);
		if (err != 0)
			break; /* queries make the graphs, or launch their kernels one by one */
		made++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("hsa-small: %d of %d query scratches made on the GPU, with the graphs of %u "
	         "question lengths each, in %.0f ms",
	         made, HS_POOL, S - 1,
	         (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	return NULL;
}

/* encode_batches on the GPU's shared scratch; HSAMEM_EBACKEND when the GPU cannot. */
static int
gpu_encode(const struct hs_input *in, size_t n_win, float *K, float *V, float *L)
{
	const struct hsa_runtime *rt = hsa_runtime_cuda();
	int err = 0;
	pthread_mutex_lock(&gpu_lock);
	if (gpu_enc == NULL)
		err = rt->scratch_alloc(model, HS_GPU_BATCH, &gpu_enc);
	if (err == 0)
		err = encode_batches(rt, gpu_enc, HS_GPU_BATCH, in, n_win, K, V, L);
	pthread_mutex_unlock(&gpu_lock);
	if (err == -ENOMEM || err == HSAMEM_EBACKEND) {
		gpu_failed("chunk encoding");
		return HSAMEM_EBACKEND;
	}
	return err;
}

/* The n_win windows of in, on the GPU when attached, else (or when it fails) on the CPU. */
static int
encode_input(const struct hs_input *in, size_t n_win, float *K, float *V, float *L)
{
	struct hsa_scratch *s = NULL;
	int err = on_gpu ? gpu_encode(in, n_win, K, V, L) : HSAMEM_EBACKEND;
	if (err == HSAMEM_EBACKEND) {
		size_t batch = n_win < HS_BATCH ? n_win : HS_BATCH;
		err = hsa_scratch_alloc(model, (uint32_t)batch, &s);
		if (err == 0)
			err = encode_batches(hsa_runtime_cpu(), s, batch, in, n_win, K, V, L);
		hsa_scratch_free(s);
	}
	return err;
}

/* The rows of a window's pads past its n_real tokens are zero (encoder.h). */
static void
zero_pads(float *K, float *V, size_t n_real)
{
	const struct hsa_config *c = &model->cfg;
	size_t row = (size_t)c->h_kv * c->d_h, S = c->chunk;
	if (n_real < S) {
		memset(K + n_real * row, 0, (S - n_real) * row * sizeof(float));
		memset(V + n_real * row, 0, (S - n_real) * row * sizeof(float));
	}
}

static int
hs_encode_chunks(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
                 const uint32_t *tok, size_t n, float *K, float *V, float *L)
{
	int err = hs_check_spec(spec, NULL, 0);
	if (err != 0)
		return err;
	const struct hsa_config *c = &model->cfg;
	uint32_t S = c->chunk;
	size_t n_chunks = (n + S - 1) / S, per = (size_t)S * c->h_kv * c->d_h;
	struct hs_input in = {.ctx = ctx, .n_ctx = n_ctx, .tok = tok, .n = n};
	if (n == 0 || n_ctx > S)
		return HSAMEM_EINVAL;
	err = encode_input(&in, n_chunks, K, V, L);
	if (err == 0)
		zero_pads(K + (n_chunks - 1) * per, V + (n_chunks - 1) * per,
		          n - (n_chunks - 1) * S);
	return err;
}

static int
hs_encode_windows(const struct hsa_spec *spec, const struct enc_window *w, size_t nw, float *K,
                  float *V, float *L)
{
	int err = hs_check_spec(spec, NULL, 0);
	if (err != 0)
		return err;
	const struct hsa_config *c = &model->cfg;
	size_t per = (size_t)c->chunk * c->h_kv * c->d_h;
	struct hs_input in = {.w = w};
	if (nw == 0)
		return HSAMEM_EINVAL;
	for (size_t i = 0; i < nw; i++)
		if (w[i].n > c->chunk || w[i].n_ctx > c->chunk)
			return HSAMEM_EINVAL;
	err = encode_input(&in, nw, K, V, L);
	for (size_t i = 0; i < nw && err == 0; i++)
		zero_pads(K + i * per, V + i * per, w[i].n);
	return err;
}

/* One chunk is one window; a chunk of no token (all its tokens forgotten) is all padding. */
static int
hs_encode_chunk(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx, const uint32_t *tok,
                size_t n, float *K, float *V, float *L)
{
	struct enc_window w = {ctx, n_ctx, tok, n};
	return hs_encode_windows(spec, &w, 1, K, V, L);
}

/*
 * The calling thread's scratch for queries on the CPU, kept between its calls so that the query
 * window is kept too (hsa_forward.c, query_window): the queries of one memory share its last S
 * tokens, so a worker's next query of the memory runs the question's rows only. Of the model of
 * the current load; freed with the thread. NULL when there is no memory.
 */
struct kept_query {
	unsigned gen;
	struct hsa_scratch *s;
};

static pthread_key_t query_key;
static pthread_once_t query_once = PTHREAD_ONCE_INIT;

static void
kept_query_free(void *arg)
{
	struct kept_query *k = arg;
	hsa_scratch_free(k->s);
	free(k);
}

static void
query_key_init(void)
{
	pthread_key_create(&query_key, kept_query_free);
}

static struct hsa_scratch *
query_scratch(void)
{
	pthread_once(&query_once, query_key_init);
	struct kept_query *k = pthread_getspecific(query_key);
	if (k != NULL && k->s != NULL && k->gen == model_gen)
		return k->s;
	if (k == NULL) {
		if ((k = calloc(1, sizeof(*k))) == NULL || pthread_setspecific(query_key, k) != 0) {
			free(k);
			return NULL;
		}
	}
	hsa_scratch_free(k->s);
	k->s = NULL;
	if (hsa_scratch_alloc(model, 1, &k->s) != 0)
		return NULL;
	k->gen = model_gen;
	return k->s;
}

/* A question's window through the model on the CPU, with this thread's scratch, on whichever
 * thread runs it. */
struct cpu_query {
	struct hsa_scratch *s;
	const uint32_t *win;
	uint32_t len;
	struct hsa_query_out *out;
	int err;
};

static void *
cpu_query_run(void *arg)
{
	struct cpu_query *q = arg;
	struct hsa_memory none = {0};
	q->err = hsa_query(model, q->s, q->win, q->len, q->len - 1, &none, q->out);
	return NULL;
}

/* Runs the caller's work of a query, once (encode_query_ctx). */
static void
meanwhile(const struct enc_meanwhile **mw)
{
	if (*mw != NULL && (*mw)->fn != NULL)
		(*mw)->fn((*mw)->arg);
	*mw = NULL;
}

static int
hs_encode_query_ctx(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx,
                    const uint32_t *tok, size_t n, float *qr, float *qa,
                    const struct enc_meanwhile *mw)
{
	uint32_t S = 0, win[256];
	int err = hs_check_spec(spec, NULL, 0);
	if (err == 0 && ((S = model->cfg.chunk) < n_ctx || 2 * S > sizeof(win) / sizeof(win[0])))
		err = HSAMEM_EINVAL;
	else if (err == 0 && n + 2 > S)
		err = HSAMEM_ETOOBIG;
	if (err != 0) {
		meanwhile(&mw);
		return err;
	}
	const struct hsa_config *c = &model->cfg;
	window_context(win, S, c->pad_id, ctx, n_ctx);
	win[S] = c->q_id;
	memcpy(win + S + 1, tok, n * sizeof(uint32_t));
	win[S + 1 + n] = c->a_id;
	uint32_t len = S + 2 + (uint32_t)n;
	struct hsa_scratch *s = NULL;
	struct hsa_query_out out = {.qr = qr, .qa = qa};
	/* the position of <|a|>: its queries rank the chunks the answer comes from */
	err = HSAMEM_EBACKEND;
	if (on_gpu) {
		if ((s = pool_take()) != NULL)
			err = hsa_cuda_query_heads_start(model, s, win, len, len - 1);
		if (err == 0) {
			/* the caller's work while the device runs the window */
			meanwhile(&mw);
			err = hsa_cuda_query_heads_finish(model, s, qr, qa);
		}
		if (err == -ENOMEM || err == HSAMEM_EBACKEND) {
			gpu_failed("a query");
			pool_drop(s);
			err = HSAMEM_EBACKEND;
		} else {
			pool_give(s);
		}
		s = NULL;
	}
	if (err != HSAMEM_EBACKEND) {
		meanwhile(&mw);
		return err;
	}
	if ((s = query_scratch()) == NULL) {
		meanwhile(&mw);
		return -ENOMEM;
	}
	struct cpu_query q = {s, win, len, &out, 0};
	pthread_t t;
	/* the caller's work on this thread (it may hold a thread's transaction) while another
	 * runs the window; in line where no thread can be started */
	if (mw == NULL || mw->fn == NULL || pthread_create(&t, NULL, cpu_query_run, &q) != 0) {
		meanwhile(&mw);
		cpu_query_run(&q);
		return q.err;
	}
	meanwhile(&mw);
	pthread_join(t, NULL);
	return q.err;
}

static int
hs_encode_query(const struct hsa_spec *spec, const uint32_t *tok, size_t n, float *qr, float *qa)
{
	return hs_encode_query_ctx(spec, NULL, 0, tok, n, qr, qa, NULL);
}

/*
 * Greedy answering (encoder.h, answer_open): the window is the context then the query block so
 * far, its last 2S tokens once it is longer (hsa_generate's rule); each step runs it once up to
 * the queries of its last position and, given the daemon's HSA output there, on to the logits.
 */
struct enc_answer {
	struct hsa_scratch *s;
	bool gpu;      /* s is the CUDA runtime's; else the thread's (query_scratch) */
	uint32_t *all; /* ctx, <|q|> question <|a|>, then the answer so far */
	uint32_t total, cap, n;
	float *logits;
};

static void
hs_answer_close(struct enc_answer *a)
{
	if (a == NULL)
		return;
	if (a->gpu)
		pool_give(a->s);
	free(a->all);
	free(a->logits);
	free(a);
}

static int
hs_answer_open(const struct hsa_spec *spec, const uint32_t *ctx, size_t n_ctx, const uint32_t *tok,
               size_t n, uint32_t max_new, struct enc_answer **out)
{
	int err = hs_check_spec(spec, NULL, 0);
	if (err != 0)
		return err;
	const struct hsa_config *c = &model->cfg;
	if (n_ctx > c->chunk || max_new > 4096)
		return HSAMEM_EINVAL;
	if (n + 2 > c->chunk)
		return HSAMEM_ETOOBIG;
	struct enc_answer *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->cap = c->chunk + 2 + (uint32_t)n + max_new;
	a->all = malloc(a->cap * sizeof(uint32_t));
	a->logits = malloc((size_t)c->vocab * sizeof(float));
	if (a->all == NULL || a->logits == NULL) {
		hs_answer_close(a);
		return -ENOMEM;
	}
	if (on_gpu)
		a->gpu = (a->s = pool_take()) != NULL;
	if (!a->gpu && (a->s = query_scratch()) == NULL) {
		hs_answer_close(a);
		return -ENOMEM;
	}
	/* the context as a query's: pads on the left where the stream is shorter */
	window_context(a->all, c->chunk, c->pad_id, ctx, n_ctx);
	a->total = c->chunk;
	a->all[a->total++] = c->q_id;
	memcpy(a->all + a->total, tok, n * sizeof(uint32_t));
	a->total += (uint32_t)n;
	a->all[a->total++] = c->a_id;
	*out = a;
	return 0;
}

/* The answer's GPU failed: on to the CPU, with its own scratch, for the rest of the answer. */
static int
answer_to_cpu(struct enc_answer *a)
{
	gpu_failed("an answer");
	pool_drop(a->s);
	a->gpu = false;
	return (a->s = query_scratch()) != NULL ? 0 : -ENOMEM;
}

/* The window's queries at its last position (a->n set), on the GPU or the CPU. */
static int
answer_heads(struct enc_answer *a, float *qr, float *qa)
{
	const uint32_t *w = a->all + a->total - a->n;
	int err = HSAMEM_EBACKEND;
	if (a->gpu) {
		err = hsa_cuda_query_heads(model, a->s, w, a->n, a->n - 1, qr, qa);
		if (err != HSAMEM_EBACKEND || (err = answer_to_cpu(a)) != 0)
			return err;
	}
	return hsa_query_heads(model, a->s, w, a->n, a->n - 1, qr, qa);
}

static int
hs_answer_step(struct enc_answer *a, float *qr, float *qa)
{
	uint32_t win = 2 * model->cfg.chunk;
	a->n = a->total < win ? a->total : win;
	return answer_heads(a, qr, qa);
}

/* The logits of the last position given the HSA output O (after answer_heads). */
static int
answer_logits(struct enc_answer *a, const float *O)
{
	const struct hsa_config *c = &model->cfg;
	int err;
	if (!a->gpu)
		return hsa_query_logits(model, a->s, a->n, a->n - 1, O, a->logits);
	err = hsa_cuda_query_logits(model, a->s, a->n, a->n - 1, O, a->logits);
	if (err != HSAMEM_EBACKEND)
		return err;
	/* the CPU's scratch must hold this window's state first: run its queries again */
	float *q = malloc(((size_t)c->d_r + (size_t)c->h_q * c->d_h) * sizeof(float));
	err = q == NULL ? -ENOMEM : answer_to_cpu(a);
	if (err == 0)
		err = answer_heads(a, q, q + c->d_r);
	free(q);
	return err != 0 ? err : hsa_query_logits(model, a->s, a->n, a->n - 1, O, a->logits);
}

static int
hs_answer_next(struct enc_answer *a, const float *O, uint32_t *tok, bool *eos)
{
	const struct hsa_config *c = &model->cfg;
	uint32_t best = 0;
	if (a->n == 0)
		return HSAMEM_EINVAL;
	int err = answer_logits(a, O);
	a->n = 0;
	if (err != 0)
		return err;
	for (uint32_t v = 1; v < c->vocab; v++)
		if (a->logits[v] > a->logits[best])
			best = v;
	*tok = best;
	*eos = best == c->eos_id;
	if (*eos)
		return 0;
	if (a->total == a->cap)
		return HSAMEM_EINVAL; /* more than max_new tokens */
	a->all[a->total++] = best;
	return 0;
}

static int
hs_decode(const uint32_t *ids, size_t n, char **out)
{
	size_t len;
	int err = hs_ready(NULL, 0);
	return err != 0 ? err : bpe_decode(model->tok, ids, n, out, &len);
}

struct enc_ops enc_hsa_small = {
        .name = HSA_SMALL_NAME,
        .revision = 0,
        .tokenizer = HSA_SMALL_TOKENIZER,
        .context = 64,
        .default_spec = hs_default_spec,
        .tokenize = hs_tokenize,
        .encode_chunk = hs_encode_chunk,
        .encode_query = hs_encode_query,
        .check_spec = hs_check_spec,
        .ready = hs_ready,
        .encode_chunks = hs_encode_chunks,
        .encode_windows = hs_encode_windows,
        .encode_query_ctx = hs_encode_query_ctx,
        .query_context = 64,
        .max_query = 62,
        .query_prefix = " ",
        .answer_open = hs_answer_open,
        .answer_step = hs_answer_step,
        .answer_next = hs_answer_next,
        .answer_close = hs_answer_close,
        .decode = hs_decode,
};

int
hsa_small_load(const char *dir, char *why, size_t why_len)
{
	char msg[512] = "";
	struct hsa_model *m = NULL;
	int err = dir != NULL ? hsa_model_load(dir, &m, msg, sizeof(msg)) : HSAMEM_EENCODER;
	if (dir == NULL)
		snprintf(msg, sizeof(msg), "no model-dir is set");
	hsa_small_unload();
	if (err != 0) {
		snprintf(load_error, sizeof(load_error),
		         "encoder hsa-small is not available: model folder %s: %s",
		         dir != NULL ? dir : "(none)", msg[0] ? msg : hsamem_strerror(err));
		return why_fail(why, why_len, err, "%s", load_error);
	}
	/* the sizes the windows above assume: S tokens a half, and the query's specials */
	if (m->cfg.chunk == 0 || m->cfg.chunk > 128 || m->cfg.h_kv == 0) {
		snprintf(load_error, sizeof(load_error),
		         "encoder hsa-small is not available: model folder %s: chunk %u is not "
		         "supported (1 to 128)",
		         dir, m->cfg.chunk);
		hsa_model_free(m);
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s", load_error);
	}
	model = m;
	model_gen++;
	enc_hsa_small.revision = m->cfg.step;
	enc_hsa_small.context = m->cfg.chunk;
	enc_hsa_small.query_context = m->cfg.chunk;
	enc_hsa_small.max_query = m->cfg.chunk - 2;
	hsa_blas_threads(1);
	return 0;
}

int
hsa_small_use_gpu(int device, char *why, size_t why_len)
{
	int err = hs_ready(why, why_len);
	if (err == 0)
		err = hsa_cuda_attach(model, device, why, why_len);
	on_gpu = err == 0;
	atomic_store(&fill_stop, false);
	if (on_gpu && !filling)
		filling = pthread_create(&filler, NULL, pool_fill, NULL) == 0;
	return err;
}

void
hsa_small_unload(void)
{
	const struct hsa_runtime *rt = hsa_runtime_cuda();
	if (filling) {
		atomic_store(&fill_stop, true);
		pthread_join(filler, NULL);
		filling = false;
	}
	if (rt != NULL) {
		rt->scratch_free(gpu_enc);
		while (n_spare > 0)
			rt->scratch_free(gpu_spare[--n_spare]);
	}
	gpu_enc = NULL;
	n_spare = n_made = 0;
	on_gpu = false;
	hsa_cuda_detach(model);
	hsa_model_free(model);
	model = NULL;
	snprintf(load_error, sizeof(load_error), "encoder hsa-small: no model folder was loaded");
}
