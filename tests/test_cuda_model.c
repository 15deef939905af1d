/*
 * test_cuda_model.c: the learned encoder on the GPU (encoder/hsa_cuda.c) stage by stage, each
 * against both the CPU runtime (the reference, hsa_forward.c) and
 * models/hsa-small/golden.safetensors: the lower stack, chunk encoding (the 12 golden windows,
 * then a batch of 600 windows that must give the same values per window), the query path
 * (hidden state, retrieval and attention queries, scores, top-k and weights, HSA output, logits)
 * over the golden chunks, its two halves (heads, then logits from a given HSA output), greedy
 * answering through the CUDA runtime, and refusals of bad input. Then the daemon's encoder
 * hsa-small on the GPU (hsa_small_use_gpu): the chunks of the golden stream (whose windows are the
 * golden ones) with a short last chunk, and the queries of the golden question.
 *
 * Tolerance: the GEMMs take bf16 inputs (fp32 accumulation), so each activation entering a
 * linear layer is rounded to 8 bits of mantissa (relative 2^-9). A stage passes when its largest
 * absolute error is at most TOL_MAX times the largest magnitude of the reference (at least 1)
 * and its relative L2 error is at most TOL_L2. The CPU runtime with its GEMM inputs rounded to
 * bf16 (an emulation of the GPU's arithmetic but for the summation order) is off the golden
 * values by at most 2.0% of the largest magnitude (chunk_K; 0.1% to 0.5% elsewhere) and 0.27% in
 * L2 (chunk_K; 0.03% to 0.25% elsewhere): the tolerances leave a factor of 4 to 7;
 * the top-k must agree up to near ties (a chunk whose golden score is within TOL_TIE * the
 * largest score of the k-th may stand in for it) and must put the needle's chunk first where the
 * answer starts. Every stage's largest error is printed, against each reference.
 *
 * Without a usable device the test is skipped (exit 77); with HSAMEM_REQUIRE_GPU=1 that is a
 * failure.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsa_cuda.h"
#include "hsa_forward.h"
#include "hsa_model.h"
#include "hsa_small.h"
#include "hsamem_defs.h"
#include "st.h"
#include "test.h"

/* bf16 GEMM inputs: see above */
#define TOL_MAX 8e-2
#define TOL_L2  2e-2
/* near ties of the top-k: scores within this much of the largest (the emulation: 0.07%) */
#define TOL_TIE 1e-2
/* the same window in batches of other sizes: only the GEMM order differs */
#define TOL_BATCH 1e-3

static const struct st_file *gold;
static const struct hsa_model *m;
static struct hsa_scratch *gs, *cs; /* GPU and CPU scratch */

static const struct st_tensor *
gt(const char *name)
{
	const struct st_tensor *t = st_find(gold, name);

	if (!t) {
		fprintf(stderr, "golden.safetensors lacks %s\n", name);
		exit(1);
	}
	return t;
}

static float *
floats(const char *name)
{
	const struct st_tensor *t = gt(name);
	float *v = malloc(t->count * sizeof(*v));

	for (uint64_t i = 0; i < t->count; i++)
		v[i] = st_get_f32(t, i);
	return v;
}

static uint32_t *
ids(const char *name, uint64_t off, uint64_t n)
{
	uint32_t *v = malloc(n * sizeof(*v));

	for (uint64_t i = 0; i < n; i++)
		v[i] = (uint32_t)st_get_i64(gt(name), off + i);
	return v;
}

/*
 * Largest |got - ref| over n values against tol * max(1, max |ref|), and the relative L2 error
 * |got - ref| / |ref| against tol as well (a few large entries, as the residual stream has, must
 * not hide errors in the rest); prints both and checks.
 */
static void
compare(const char *stage, const char *against, const float *got, const float *ref, uint64_t n,
        double tol)
{
	double err = 0, big = 1, d2 = 0, r2 = 0, l2;

	for (uint64_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - ref[i]);
		if (!(e <= err))
			err = e; /* NaN wins */
		if (fabs(ref[i]) > big)
			big = fabs(ref[i]);
		d2 += e * e;
		r2 += (double)ref[i] * ref[i];
	}
	l2 = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
	printf("%-14s vs %-6s max abs error %-10.3g = %-10.3g of max, L2 relative %-10.3g "
	       "(tolerance %.3g, %.3g)\n",
	       stage, against, err, err / big, l2, tol, tol < TOL_L2 ? tol : TOL_L2);
	CHECK(err <= tol * big);
	CHECK(l2 <= (tol < TOL_L2 ? tol : TOL_L2));
}

/* compare() against the golden tensor (from element off) and the CPU's values. */
static void
compare2(const char *stage, const char *name, uint64_t off, const float *got, const float *cpu,
         uint64_t n)
{
	float *g = floats(name);

	CHECK(off + n <= gt(name)->count);
	if (off + n <= gt(name)->count)
		compare(stage, "golden", got, g + off, n, TOL_MAX);
	compare(stage, "cpu", got, cpu, n, TOL_MAX);
	free(g);
}

static void
test_lower(void)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t W = 2 * c->chunk, *w1 = ids("windows", W, W);
	size_t n = (size_t)W * c->d_model;
	float *H = malloc(n * sizeof(float)), *Hc = malloc(n * sizeof(float));

	CHECK_RET(hsa_cuda_lower(m, gs, w1, 1, W, H), 0);
	CHECK_RET(hsa_lower(m, cs, w1, 1, W, Hc), 0);
	compare2("lower_out_w1", "lower_out_w1", 0, H, Hc, n);
	w1[3] = c->vocab;
	CHECK_RET(hsa_cuda_lower(m, gs, w1, 1, W, H), HSAMEM_EINVAL);
	CHECK_RET(hsa_cuda_lower(m, gs, w1, 1, W + 1, H), HSAMEM_EINVAL);
	free(w1);
	free(H);
	free(Hc);
}

/* The 12 golden windows in one call, then 50 copies of them in one call of 600 windows. */
static void
test_chunks(void)
{
	const struct hsa_config *c = &m->cfg;
	const struct hsa_runtime *rt = hsa_runtime_cuda();
	uint32_t n = (uint32_t)gt("windows")->shape[0], W = 2 * c->chunk, copies = 50;
	uint32_t *win = ids("windows", 0, (uint64_t)n * W), *big;
	size_t kv = (size_t)c->chunk * c->h_kv * c->d_h, nb = (size_t)n * copies;
	float *K = malloc(n * kv * 4), *V = malloc(n * kv * 4), *L = malloc(n * c->d_r * 4);
	float *Kc = malloc(n * kv * 4), *Vc = malloc(n * kv * 4), *Lc = malloc(n * c->d_r * 4);
	float *Kb = malloc(nb * kv * 4), *Vb = malloc(nb * kv * 4), *Lb = malloc(nb * c->d_r * 4);
	struct hsa_scratch *bs = NULL;

	CHECK_RET(rt->encode_chunks(m, gs, win, n, K, V, L), 0);
	CHECK_RET(hsa_encode_chunks(m, cs, win, n, Kc, Vc, Lc), 0);
	compare2("chunk_K", "chunk_K", 0, K, Kc, n * kv);
	compare2("chunk_V", "chunk_V", 0, V, Vc, n * kv);
	compare2("chunk_L", "chunk_L", 0, L, Lc, (uint64_t)n * c->d_r);

	big = malloc(nb * W * sizeof(*big));
	for (size_t i = 0; i < copies; i++)
		memcpy(big + i * n * W, win, (size_t)n * W * sizeof(*big));
	CHECK_RET(rt->scratch_alloc(m, (uint32_t)nb, &bs), 0);
	if (bs) {
		CHECK_RET(rt->encode_chunks(m, bs, big, (uint32_t)nb, Kb, Vb, Lb), 0);
		for (size_t i = 0; i < copies; i += copies - 1) {
			compare("batch_K", "small", Kb + i * n * kv, K, n * kv, TOL_BATCH);
			compare("batch_V", "small", Vb + i * n * kv, V, n * kv, TOL_BATCH);
			compare("batch_L", "small", Lb + i * n * c->d_r, L, n * c->d_r, TOL_BATCH);
		}
		rt->scratch_free(bs);
	}
	free(win), free(big);
	free(K), free(V), free(L), free(Kc), free(Vc), free(Lc), free(Kb), free(Vb), free(Lb);
}

struct qbuf {
	float *hidden, *qr, *qa, *scores, *w, *o, *logits;
	int64_t *idx;
};

static void
qbuf_init(struct qbuf *b, struct hsa_query_out *o, uint32_t T, uint32_t nc)
{
	const struct hsa_config *c = &m->cfg;
	size_t qd = c->h_q * c->d_h, sel = (size_t)T * c->h_kv * c->topk;

	b->hidden = malloc((size_t)T * c->d_model * 4);
	b->qr = malloc((size_t)T * c->d_r * 4);
	b->qa = malloc(T * qd * 4);
	b->scores = malloc((size_t)T * c->h_kv * nc * 4);
	b->w = malloc(sel * 4);
	b->idx = malloc(sel * sizeof(int64_t));
	b->o = malloc(T * qd * 4);
	b->logits = malloc((size_t)T * c->vocab * 4);
	*o = (struct hsa_query_out){b->hidden, b->qr, b->qa, b->scores,
	                            b->idx,    b->w,  b->o,  b->logits};
}

static void
qbuf_fini(struct qbuf *b)
{
	free(b->hidden), free(b->qr), free(b->qa), free(b->scores), free(b->w), free(b->idx);
	free(b->o), free(b->logits);
}

/* Each selected chunk's golden score is at least the golden k-th best minus the tolerance. */
static void
check_topk(const int64_t *idx, uint32_t T, uint32_t nc, uint32_t a0)
{
	const struct hsa_config *c = &m->cfg;
	float *gsc = floats("query_scores"), big = 1;
	uint32_t K = c->topk, k = nc < K ? nc : K, bad = 0, same = 0;

	for (size_t i = 0; i < (size_t)T * nc; i++)
		big = fabsf(gsc[i]) > big ? fabsf(gsc[i]) : big;
	for (uint32_t t = 0; t < T; t++) {
		const float *s = gsc + (size_t)t * nc; /* h_kv = 1 in the golden file */
		const int64_t *sel = idx + (size_t)t * c->h_kv * K;
		int64_t *g = malloc(K * sizeof(*g));
		float kth;
		for (uint32_t i = 0; i < K; i++)
			g[i] = st_get_i64(gt("query_topk_idx"), (uint64_t)t * K + i);
		kth = s[g[k - 1]];
		for (uint32_t i = 0; i < k; i++)
			if (sel[i] < 0 || sel[i] >= nc || s[sel[i]] < kth - TOL_TIE * big)
				bad++;
		same += !memcmp(sel, g, K * sizeof(*g));
		free(g);
	}
	printf("top-k: %u of %u positions select exactly the golden chunks; %u selections off by "
	       "more than the tolerance\n",
	       same, T, bad);
	CHECK(bad == 0);
	CHECK(idx[(size_t)a0 * c->h_kv * K] == 5); /* the needle's chunk, where the answer starts */
	free(gsc);
}

/* The answer's tokens are the argmax of the logits from <|a|> on (teacher forcing). */
static void
check_answer(const float *logits, const uint32_t *qt, uint32_t T, uint32_t a0)
{
	uint32_t V = m->cfg.vocab, right = 0;

	for (uint32_t t = a0; t + 1 < T; t++) {
		const float *l = logits + (size_t)t * V;
		uint32_t best = 0;
		for (uint32_t v = 1; v < V; v++)
			best = l[v] > l[best] ? v : best;
		right += best == qt[t + 1];
	}
	printf("answer tokens by argmax: %u of %u right\n", right, T - a0 - 1);
	CHECK(right == T - a0 - 1);
}

static void
test_query(void)
{
	const struct hsa_config *c = &m->cfg;
	const struct hsa_runtime *rt = hsa_runtime_cuda();
	uint32_t n = (uint32_t)gt("query_window")->count, T = (uint32_t)gt("query_tokens")->count;
	uint32_t nc = (uint32_t)gt("chunk_L")->shape[0], first = n - T;
	uint32_t a0 = (uint32_t)atoi(st_meta(gold, "answer_start"));
	uint32_t *win = ids("query_window", 0, n), *qt = ids("query_tokens", 0, T);
	float *K = floats("chunk_K"), *V = floats("chunk_V"), *L = floats("chunk_L");
	struct hsa_memory mem = {K, V, L, nc};
	size_t qd = c->h_q * c->d_h;
	struct hsa_query_out go, co;
	struct qbuf g, cp;

	qbuf_init(&g, &go, T, nc);
	qbuf_init(&cp, &co, T, nc);
	CHECK_RET(rt->query(m, gs, win, n, first, &mem, &go), 0);
	CHECK_RET(hsa_query(m, cs, win, n, first, &mem, &co), 0);
	compare2("query_hidden", "query_hidden", 0, g.hidden, cp.hidden, (uint64_t)T * c->d_model);
	compare2("query_qr", "query_qr", 0, g.qr, cp.qr, (uint64_t)T * c->d_r);
	compare2("query_qa", "query_qa", 0, g.qa, cp.qa, T * qd);
	compare2("query_scores", "query_scores", 0, g.scores, cp.scores, (uint64_t)T * nc);
	check_topk(g.idx, T, nc, a0);
	compare2("query_hsa_out", "query_hsa_out", 0, g.o, cp.o, T * qd);
	compare2("query_logits", "query_logits", 0, g.logits, cp.logits, (uint64_t)T * c->vocab);
	check_answer(g.logits, qt, T, a0);

	/* the two halves, given the CPU's HSA output: the same logits */
	CHECK_RET(hsa_cuda_query_logits(m, gs, n, first, cp.o, g.logits), HSAMEM_EINVAL);
	CHECK_RET(hsa_cuda_query_heads(m, gs, win, n, first, g.qr, g.qa), 0);
	compare("heads_qr", "cpu", g.qr, cp.qr, (uint64_t)T * c->d_r, TOL_MAX);
	CHECK_RET(hsa_cuda_query_logits(m, gs, n, first, cp.o, g.logits), 0);
	compare("heads_logits", "cpu", g.logits, cp.logits, (uint64_t)T * c->vocab, TOL_MAX);
	CHECK_RET(hsa_cuda_query_logits(m, gs, n, first, cp.o, g.logits), HSAMEM_EINVAL);

	/* shorter windows one after another, each through a graph of its own (hsa_cuda_query.c),
	 * and again through the graph already made: the CPU's queries and logits at their last
	 * position */
	for (uint32_t cut = 1; cut <= 4 && n > 3 * 17 + 1; cut++) {
		uint32_t n2 = n - (cut == 4 ? 1 : cut) * 17;
		float *o = cp.o + (size_t)(T - 1) * qd;
		CHECK_RET(hsa_cuda_query_heads(m, gs, win, n2, n2 - 1, g.qr, g.qa), 0);
		CHECK_RET(hsa_query_heads(m, cs, win, n2, n2 - 1, cp.qr, cp.qa), 0);
		compare("short_qr", "cpu", g.qr, cp.qr, c->d_r, TOL_MAX);
		compare("short_qa", "cpu", g.qa, cp.qa, qd, TOL_MAX);
		CHECK_RET(hsa_cuda_query_logits(m, gs, n2, n2 - 1, o, g.logits), 0);
		CHECK_RET(hsa_query_logits(m, cs, n2, n2 - 1, o, cp.logits), 0);
		compare("short_logits", "cpu", g.logits, cp.logits, c->vocab, TOL_MAX);
	}

	/* an empty memory: nothing selected, O = 0 */
	mem.n_chunks = 0;
	CHECK_RET(rt->query(m, gs, win, n, n - 1, &mem, &go), 0);
	CHECK(g.idx[0] == -1 && g.w[0] == 0.0f && g.o[0] == 0.0f);
	CHECK_RET(rt->query(m, gs, win, n, n, &mem, &go), HSAMEM_EINVAL);
	qbuf_fini(&g);
	qbuf_fini(&cp);
	free(win), free(qt), free(K), free(V), free(L);
}

/* Greedy answering through the CUDA runtime over the golden chunks gives the needle's number. */
static void
test_generate(void)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t nc = (uint32_t)gt("chunk_L")->shape[0], a0 = atoi(st_meta(gold, "answer_start"));
	uint32_t T = (uint32_t)gt("query_tokens")->count, *qt = ids("query_tokens", 0, T);
	uint32_t *ctx = ids("stream", (uint64_t)(nc - 1) * c->chunk, c->chunk), ans[16], n = 0;
	float *K = floats("chunk_K"), *V = floats("chunk_V"), *L = floats("chunk_L");
	struct hsa_memory mem = {K, V, L, nc};
	char *text = NULL;
	size_t len = 0;

	CHECK_RET(hsa_generate(hsa_runtime_cuda(), m, gs, ctx, c->chunk, qt, a0 + 1, &mem, 16, ans,
	                       &n),
	          0);
	bpe_decode(m->tok, ans, n, &text, &len);
	printf("generated %u tokens on the GPU: \"%s\"\n", n, text ? text : "");
	CHECK(n >= T - a0 - 1 && !memcmp(ans, qt + a0 + 1, (T - a0 - 1) * sizeof(*ans)));
	free(text), free(ctx), free(qt), free(K), free(V), free(L);
}

/* A caller's work of a query (enc_meanwhile): counts its runs. */
static void
count_run(void *arg)
{
	++*(int *)arg;
}

/* Queries at once: each caller's work (a hybrid query's lexical side) runs while its window is on
 * the device, beside other callers' work, and the queries are what one query alone gives. */
enum { ASKERS = HSA_SMALL_GPU_POOL + 8, ASKS = 4 };
static atomic_int inside, most_inside;
struct asker {
	const struct hsa_spec *spec;
	const uint32_t *ctx, *q;
	uint32_t n;
	float qr[1024], qa[4096];
	int err;
};

static void
busy_meanwhile(void *arg)
{
	(void)arg;
	int now = atomic_fetch_add(&inside, 1) + 1, was = atomic_load(&most_inside);
	while (now > was && !atomic_compare_exchange_weak(&most_inside, &was, now))
		;
	nanosleep(&(struct timespec){0, 2000000}, NULL);
	atomic_fetch_sub(&inside, 1);
}

static void *
asker_main(void *arg)
{
	struct asker *a = arg;
	struct enc_meanwhile mw = {busy_meanwhile, NULL};
	for (int i = 0; i < ASKS && a->err == 0; i++)
		a->err = enc_hsa_small.encode_query_ctx(a->spec, a->ctx, m->cfg.chunk, a->q, a->n,
		                                        a->qr, a->qa, &mw);
	return NULL;
}

static void
test_concurrent_queries(const struct hsa_spec *spec, const uint32_t *ctx, const uint32_t *q,
                        uint32_t n, const float *qr, const float *qa)
{
	static struct asker a[ASKERS];
	pthread_t t[ASKERS];
	size_t qd = (size_t)m->cfg.h_q * m->cfg.d_h;
	float diff = 0, scale = 0;
	int started = 0, failed = 0;
	for (int i = 0; i < ASKERS; i++) {
		a[i] = (struct asker){.spec = spec, .ctx = ctx, .q = q, .n = n};
		started += pthread_create(&t[i], NULL, asker_main, &a[i]) == 0;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		failed += a[i].err != 0;
		for (uint32_t j = 0; j < m->cfg.d_r; j++)
			diff = fmaxf(diff, fabsf(a[i].qr[j] - qr[j])),
			scale = fmaxf(scale, fabsf(qr[j]));
		for (size_t j = 0; j < qd; j++)
			diff = fmaxf(diff, fabsf(a[i].qa[j] - qa[j])),
			scale = fmaxf(scale, fabsf(qa[j]));
	}
	printf("%d threads x %d queries at once: %d failed, at most %d callers' work at a time "
	       "(pool %d), largest difference from one query alone %.3g (of %.3g)\n",
	       started, ASKS, failed, atomic_load(&most_inside), HSA_SMALL_GPU_POOL, diff, scale);
	CHECK(started == ASKERS && failed == 0);
	CHECK(atomic_load(&most_inside) >= 2 && atomic_load(&most_inside) <= HSA_SMALL_GPU_POOL);
	CHECK(diff <= 1e-5f * scale);
}

/* The encoder hsa-small as the daemon runs it, on the GPU. */
static void
test_encoder(const char *dir)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t S = c->chunk, n = 11 * S - 4, nc = 11, a0 = atoi(st_meta(gold, "answer_start"));
	uint32_t *tok = ids("stream", 0, n), *qt = ids("query_tokens", 0, a0 + 1);
	uint32_t *ctx = ids("query_window", 0, S);
	size_t kv = (size_t)S * c->h_kv * c->d_h, qd = c->h_q * c->d_h;
	float *K = malloc(nc * kv * 4), *V = malloc(nc * kv * 4), *L = malloc(nc * c->d_r * 4);
	float *gK = floats("chunk_K"), *gV = floats("chunk_V"), *gL = floats("chunk_L");
	float *gqr = floats("query_qr"), *gqa = floats("query_qa"), qr[1024], qa[4096];
	const struct enc_ops *e = &enc_hsa_small;
	char why[512] = "";
	struct hsa_spec spec;
	bool zero = true;

	CHECK_RET(hsa_small_load(dir, why, sizeof(why)), 0);
	CHECK_RET(hsa_small_use_gpu(0, why, sizeof(why)), 0);
	e->default_spec(&spec);
	CHECK_RET(e->encode_chunks(&spec, NULL, 0, tok, n, K, V, L), 0);
	compare("encoder_K", "golden", K, gK, (nc - 1) * kv, TOL_MAX);
	compare("encoder_V", "golden", V, gV, (nc - 1) * kv, TOL_MAX);
	compare("encoder_L", "golden", L, gL, (size_t)(nc - 1) * c->d_r, TOL_MAX);
	for (size_t i = (size_t)(S - 4) * c->h_kv * c->d_h; i < kv; i++)
		zero &= K[(nc - 1) * kv + i] == 0 && V[(nc - 1) * kv + i] == 0;
	CHECK(zero);
	/* the question: query_tokens between <|q|> and <|a|>, after the stream's last chunk */
	CHECK(c->d_r <= 1024 && qd <= 4096);
	/* with work of the caller's in the device's shadow: run once, the queries the same */
	int runs = 0;
	struct enc_meanwhile mw = {count_run, &runs};
	CHECK_RET(e->encode_query_ctx(&spec, ctx, S, qt + 1, a0 - 1, qr, qa, &mw), 0);
	CHECK(runs == 1);
	compare("encoder_qr", "golden", qr, gqr + (size_t)a0 * c->d_r, c->d_r, TOL_MAX);
	compare("encoder_qa", "golden", qa, gqa + (size_t)a0 * qd, qd, TOL_MAX);
	test_concurrent_queries(&spec, ctx, qt + 1, a0 - 1, qr, qa);
	/* a question too long: refused, the caller's work run all the same */
	CHECK_RET(e->encode_query_ctx(&spec, ctx, S, qt, S, qr, qa, &mw), HSAMEM_ETOOBIG);
	CHECK(runs == 2);
	hsa_small_unload();
	free(tok), free(qt), free(ctx), free(K), free(V), free(L);
	free(gK), free(gV), free(gL), free(gqr), free(gqa);
}

int
main(void)
{
	const char *top = getenv("HSAMEM_TOP_SRCDIR"), *req = getenv("HSAMEM_REQUIRE_GPU");
	bool require = req != NULL && strcmp(req, "1") == 0;
	char dir[4096], path[4200], why[512] = "";
	struct hsa_model *mm = NULL;
	struct st_file *g = NULL;

	snprintf(dir, sizeof(dir), "%s/models/hsa-small", top ? top : ".");
	hsa_blas_threads(1);
	if (hsa_model_load(dir, &mm, why, sizeof(why)) != 0) {
		fprintf(stderr, "test_cuda_model: %s\n", why);
		return 1;
	}
	if (hsa_cuda_attach(mm, 0, why, sizeof(why)) != 0) {
		printf("test_cuda_model: skipped: %s\n", why);
		hsa_model_free(mm);
		return require ? 1 : 77;
	}
	m = mm;
	snprintf(path, sizeof(path), "%s/golden.safetensors", dir);
	CHECK_RET(st_open(path, &g, why, sizeof(why)), 0);
	CHECK_RET(hsa_runtime_cuda()->scratch_alloc(m, 12, &gs), 0);
	CHECK_RET(hsa_scratch_alloc(m, 12, &cs), 0);
	if (g && gs && cs) {
		gold = g;
		printf("tolerance: %.3g of the largest reference magnitude, %.3g relative L2 (bf16 "
		       "GEMM inputs)\n",
		       TOL_MAX, TOL_L2);
		test_lower();
		test_chunks();
		test_query();
		test_generate();
		test_encoder(dir);
	}
	if (gs)
		hsa_runtime_cuda()->scratch_free(gs);
	hsa_scratch_free(cs);
	st_close(g);
	hsa_cuda_detach(mm);
	hsa_model_free(mm);
	return test_done("test_cuda_model");
}
