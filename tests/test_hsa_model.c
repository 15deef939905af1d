/*
 * test_hsa_model.c: the learned encoder hsa-small (encoder/hsa_model.c, hsa_forward.c) against
 * the reference values of models/hsa-small/golden.safetensors, stage by stage, the query window
 * kept between calls against a fresh one, then greedy answering, then the refusal of broken
 * copies of the model folder (each with its message).
 *
 * Tolerance: the reference is fp32 on a CPU with another summation order, so a stage passes when
 * its largest absolute error is at most TOL_REL times the largest magnitude of its reference
 * values (at least 1). The largest error of every stage is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsa_forward.h"
#include "hsa_model.h"
#include "hsamem_defs.h"
#include "st.h"
#include "test.h"

#define TOL_REL 1e-4

static char dir[4096];
static const struct st_file *gold;

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

/* Compares n values of got with golden tensor name from element off on. */
static void
compare(const char *stage, const char *name, uint64_t off, const float *got, uint64_t n)
{
	const struct st_tensor *t = gt(name);
	double err = 0, ref = 1;
	uint64_t i;

	CHECK(off + n <= t->count);
	for (i = 0; i < n && off + i < t->count; i++) {
		double r = st_get_f32(t, off + i), e = fabs(got[i] - r);
		if (!(e <= err))
			err = e;
		if (fabs(r) > ref)
			ref = fabs(r);
	}
	printf("%-14s max abs error %.3g (reference up to %.3g, tolerance %.3g)\n", stage, err, ref,
	       TOL_REL * ref);
	CHECK(err <= TOL_REL * ref);
}

static uint32_t *
ids(const char *name, uint64_t off, uint64_t n)
{
	uint32_t *v = malloc(n * sizeof(*v));

	for (uint64_t i = 0; i < n; i++)
		v[i] = (uint32_t)st_get_i64(gt(name), off + i);
	return v;
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

static void
test_lower(const struct hsa_model *m, struct hsa_scratch *s)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t W = 2 * c->chunk, *w0 = ids("windows", 0, W), *w1 = ids("windows", W, W);
	float *H = malloc((size_t)W * c->d_model * sizeof(float));

	for (uint32_t t = 0; t < W; t++)
		memcpy(H + (size_t)t * c->d_model, m->embed + (size_t)w0[t] * c->d_model,
		       c->d_model * sizeof(float));
	compare("embed_w0", "embed_w0", 0, H, (uint64_t)W * c->d_model);
	CHECK_RET(hsa_lower(m, s, w1, 1, W, H), 0);
	compare("lower_out_w1", "lower_out_w1", 0, H, (uint64_t)W * c->d_model);
	w1[3] = c->vocab;
	CHECK_RET(hsa_lower(m, s, w1, 1, W, H), HSAMEM_EINVAL);
	CHECK_RET(hsa_lower(m, s, w1, 1, W + 1, H), HSAMEM_EINVAL);
	free(w0);
	free(w1);
	free(H);
}

/* All 12 chunks in one batch, then chunk 5 alone (another GEMM shape, the same answer). */
static void
test_chunks(const struct hsa_model *m, struct hsa_scratch *s, float **K, float **V, float **L)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t n = (uint32_t)gt("windows")->shape[0], W = 2 * c->chunk;
	uint32_t *win = ids("windows", 0, (uint64_t)n * W);
	size_t kv = (size_t)c->chunk * c->h_kv * c->d_h;

	*K = malloc(n * kv * sizeof(float));
	*V = malloc(n * kv * sizeof(float));
	*L = malloc((size_t)n * c->d_r * sizeof(float));
	CHECK_RET(hsa_encode_chunks(m, s, win, n, *K, *V, *L), 0);
	compare("chunk_K", "chunk_K", 0, *K, n * kv);
	compare("chunk_V", "chunk_V", 0, *V, n * kv);
	compare("chunk_L", "chunk_L", 0, *L, (uint64_t)n * c->d_r);
	CHECK_RET(hsa_encode_chunks(m, s, win + 5 * W, 1, *K, *V, *L), 0);
	compare("chunk_K[5]", "chunk_K", 5 * kv, *K, kv);
	compare("chunk_L[5]", "chunk_L", 5 * (uint64_t)c->d_r, *L, c->d_r);
	CHECK_RET(hsa_encode_chunks(m, s, win, n, *K, *V, *L), 0);
	free(win);
}

/* The query path on the golden memory, every output against the reference. */
static void
test_query(const struct hsa_model *m, struct hsa_scratch *s)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t n = (uint32_t)gt("query_window")->count, first = c->chunk, T = n - first;
	uint32_t nc = (uint32_t)gt("chunk_L")->shape[0], *win = ids("query_window", 0, n);
	uint32_t *qt = ids("query_tokens", 0, T), a0 = atoi(st_meta(gold, "answer_start"));
	float *K = floats("chunk_K"), *V = floats("chunk_V"), *L = floats("chunk_L");
	struct hsa_memory mem = {K, V, L, nc};
	struct hsa_query_out o = {
	        .hidden = malloc((size_t)T * c->d_model * sizeof(float)),
	        .qr = malloc((size_t)T * c->d_r * sizeof(float)),
	        .qa = malloc((size_t)T * c->h_q * c->d_h * sizeof(float)),
	        .scores = malloc((size_t)T * c->h_kv * nc * sizeof(float)),
	        .topk_idx = malloc((size_t)T * c->h_kv * c->topk * sizeof(int64_t)),
	        .topk_w = malloc((size_t)T * c->h_kv * c->topk * sizeof(float)),
	        .hsa_out = malloc((size_t)T * c->h_q * c->d_h * sizeof(float)),
	        .logits = malloc((size_t)T * c->vocab * sizeof(float)),
	};
	const struct st_tensor *idx = gt("query_topk_idx");
	uint32_t bad = 0;

	CHECK_RET(hsa_query(m, s, win, n, first, &mem, &o), 0);
	compare("query_hidden", "query_hidden", 0, o.hidden, (uint64_t)T * c->d_model);
	compare("query_qr", "query_qr", 0, o.qr, (uint64_t)T * c->d_r);
	compare("query_qa", "query_qa", 0, o.qa, (uint64_t)T * c->h_q * c->d_h);
	compare("query_scores", "query_scores", 0, o.scores, (uint64_t)T * nc);
	compare("query_topk_w", "query_topk_w", 0, o.topk_w, (uint64_t)T * c->topk);
	compare("query_hsa_out", "query_hsa_out", 0, o.hsa_out, (uint64_t)T * c->h_q * c->d_h);
	compare("query_logits", "query_logits", 0, o.logits, (uint64_t)T * c->vocab);
	for (uint64_t i = 0; i < idx->count; i++)
		bad += o.topk_idx[i] != st_get_i64(idx, i);
	printf("query_topk_idx %u of %llu differ\n", bad, (unsigned long long)idx->count);
	CHECK(bad == 0);
	CHECK(o.topk_idx[(size_t)a0 * c->topk] == 5); /* the needle's chunk ranks first at <|a|> */
	for (uint32_t t = a0; t + 1 < T; t++) {
		const float *row = o.logits + (size_t)t * c->vocab;
		uint32_t best = 0;
		for (uint32_t v = 1; v < c->vocab; v++)
			best = row[v] > row[best] ? v : best;
		CHECK(best == qt[t + 1]);
	}
	CHECK_RET(hsa_query(m, s, win, n, n, &mem, &o), HSAMEM_EINVAL);
	mem.n_chunks = 0; /* no chunks: no selection, a zero HSA output */
	CHECK_RET(hsa_query(m, s, win, n, n - 1, &mem, &o), 0);
	CHECK(o.topk_idx[0] == -1 && o.topk_w[0] == 0 && o.hsa_out[0] == 0);
	free(o.hidden), free(o.qr), free(o.qa), free(o.scores), free(o.topk_idx), free(o.topk_w);
	free(o.hsa_out), free(o.logits), free(K), free(V), free(L), free(win), free(qt);
}

/* Largest |a - b| over n values, against the largest |a|. */
static bool
close_to(const float *a, const float *b, size_t n, float rel)
{
	float err = 0, big = 1e-6f;
	for (size_t i = 0; i < n; i++) {
		err = fmaxf(err, fabsf(a[i] - b[i]));
		big = fmaxf(big, fabsf(a[i]));
	}
	return err <= rel * big;
}

/*
 * The window kept between calls (hsa_forward.c, query_window): a scratch that ran a window
 * sharing a prefix with this one (the same but its last tokens, a shorter one, one that differs
 * from its first token) gives this window's queries and logits as a fresh scratch does.
 */
static void
test_kept_window(const struct hsa_model *m)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t n = (uint32_t)gt("query_window")->count, *win = ids("query_window", 0, n);
	uint32_t *other = malloc(n * sizeof(uint32_t)), qd = c->h_q * c->d_h;
	float *qr = malloc(2 * (c->d_r + qd) * sizeof(float)), *qa = qr + c->d_r;
	float *qr2 = qa + qd, *qa2 = qr2 + c->d_r, *O = calloc(qd, sizeof(float));
	float *lg = malloc(2 * (size_t)c->vocab * sizeof(float)), *lg2 = lg + c->vocab;
	struct hsa_scratch *fresh = NULL, *s = NULL;

	CHECK_RET(hsa_scratch_alloc(m, 1, &fresh), 0);
	CHECK_RET(hsa_scratch_alloc(m, 1, &s), 0);
	CHECK_RET(hsa_query_heads(m, fresh, win, n, n - 1, qr, qa), 0);
	CHECK_RET(hsa_query_logits(m, fresh, n, n - 1, O, lg), 0);
	for (int how = 0; how < 4; how++) {
		uint32_t len = n;
		memcpy(other, win, n * sizeof(uint32_t));
		if (how == 0) /* another question's end */
			for (uint32_t i = n - 5; i < n; i++)
				other[i] = (other[i] + 7) % c->vocab;
		else if (how == 1) /* the window one token shorter: an answer's next position */
			len = n - 1;
		else if (how == 2) /* another first token: nothing in common */
			other[0] = (other[0] + 1) % c->vocab;
		CHECK_RET(hsa_query_heads(m, s, other, len, len - 1, qr2, qa2), 0);
		CHECK_RET(hsa_query_heads(m, s, win, n, n - 1, qr2, qa2), 0);
		CHECK_RET(hsa_query_logits(m, s, n, n - 1, O, lg2), 0);
		CHECK(close_to(qr, qr2, c->d_r, 1e-5f) && close_to(qa, qa2, qd, 1e-5f));
		CHECK(close_to(lg, lg2, c->vocab, 1e-5f));
	}
	/* a bad token fails and keeps nothing: the next call runs whole */
	other[3] = c->vocab;
	CHECK_RET(hsa_query_heads(m, s, other, n, n - 1, qr2, qa2), HSAMEM_EINVAL);
	CHECK_RET(hsa_query_heads(m, s, win, n, n - 1, qr2, qa2), 0);
	CHECK(close_to(qr, qr2, c->d_r, 1e-5f) && close_to(qa, qa2, qd, 1e-5f));
	hsa_scratch_free(fresh);
	hsa_scratch_free(s);
	free(win), free(other), free(qr), free(O), free(lg);
}

/* Greedy answering over the chunks this code encoded gives the needle's number. */
static void
test_generate(const struct hsa_model *m, struct hsa_scratch *s, const float *K, const float *V,
              const float *L)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t nc = (uint32_t)gt("chunk_L")->shape[0], a0 = atoi(st_meta(gold, "answer_start"));
	uint32_t T = (uint32_t)gt("query_tokens")->count, *qt = ids("query_tokens", 0, T);
	uint32_t *ctx = ids("stream", (uint64_t)(nc - 1) * c->chunk, c->chunk), ans[16], n = 0;
	struct hsa_memory mem = {K, V, L, nc};
	int same;

	CHECK_RET(
	        hsa_generate(hsa_runtime_cpu(), m, s, ctx, c->chunk, qt, a0 + 1, &mem, 16, ans, &n),
	        0);
	char *text = NULL;
	size_t len = 0;
	bpe_decode(m->tok, ans, n, &text, &len);
	printf("generated %u tokens: \"%s\"\n", n, text ? text : "");
	same = n >= T - a0 - 1 && !memcmp(ans, qt + a0 + 1, (T - a0 - 1) * sizeof(*ans));
	CHECK(same);
	CHECK(text && !strncmp(text, " 4829301", 8));
	free(text);
	free(ctx);
	free(qt);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* Replaces the first occurrence of from by to (the same length) in buf. */
static void
patch(char *buf, size_t len, const char *from, const char *to)
{
	char *p = memmem(buf, len, from, strlen(from));

	CHECK(p != NULL && strlen(from) == strlen(to));
	if (p)
		memcpy(p, to, strlen(to));
}

/*
 * A copy of the model folder in tmp where file (if not NULL) is replaced by len bytes of data
 * (NULL data: the file is left out), the others linked to the real ones; loading it must fail
 * with a message that holds want.
 */
static void
expect_refused(const char *tmp, const char *file, const char *data, size_t len, const char *want)
{
	static const char *const files[] = {"config.json", "model.safetensors", "hsamem-bpe.tok"};
	char path[4200], src[4200], why[512] = "";
	struct hsa_model *m = NULL;
	int rc;

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, files[i]);
		snprintf(src, sizeof(src), "%s/%s", dir, files[i]);
		unlink(path);
		if (strcmp(files[i], file)) {
			CHECK(symlink(src, path) == 0);
		} else if (data) {
			FILE *f = fopen(path, "wb");
			CHECK(f && fwrite(data, 1, len, f) == len);
			fclose(f);
		}
	}
	rc = hsa_model_load(tmp, &m, why, sizeof(why));
	printf("refused (%s): %s\n", file, why);
	CHECK(rc == HSAMEM_EENCODER && m == NULL);
	if (!strstr(why, want))
		fprintf(stderr, "the message lacks \"%s\"\n", want);
	CHECK(strstr(why, want) != NULL);
	hsa_model_free(m);
}

static void
test_refusals(void)
{
	char tmp[] = "/tmp/test_hsa_model.XXXXXX", path[4200];
	size_t wlen = 0, clen = 0;
	char *w, *cfg, *p;

	CHECK(mkdtemp(tmp) != NULL);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	w = slurp(path, &wlen);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	cfg = slurp(path, &clen);
	CHECK(w && cfg);
	expect_refused(tmp, "hsamem-bpe.tok", NULL, 0, "hsamem-bpe.tok: missing");
	expect_refused(tmp, "model.safetensors", NULL, 0, "model.safetensors: missing");
	expect_refused(tmp, "model.safetensors", w, wlen - 1000, "model.safetensors: truncated");
	expect_refused(tmp, "model.safetensors", w, 6, "model.safetensors: truncated: 6 bytes");
	patch(w, wlen, "\"enc_k.weight\":{\"dtype\":\"BF16\",\"shape\":[64,384]",
	      "\"enc_k.weight\":{\"dtype\":\"BF16\",\"shape\":[32,768]");
	expect_refused(tmp, "model.safetensors", w, wlen,
	               "tensor enc_k.weight: shape [32, 768], expected [64, 384]");
	patch(w, wlen, "\"enc_k.weight\":{\"dtype\":\"BF16\",\"shape\":[32,768]",
	      "\"enc_k.weight\":{\"dtype\":\"BF16\",\"shape\":[64,384]");
	patch(w, wlen, "\"format\":\"hsamem-hsa 1\"", "\"format\":\"hsamem-hsa 2\"");
	expect_refused(tmp, "model.safetensors", w, wlen,
	               "metadata format is \"hsamem-hsa 2\", expected \"hsamem-hsa 1\"");
	p = strstr(cfg, "\"format\": \"hsamem-hsa 1\"");
	CHECK(p != NULL);
	if (p) {
		p[strlen("\"format\": \"hsamem-hsa ")] = '2';
		expect_refused(tmp, "config.json", cfg, clen,
		               "\"format\" is \"hsamem-hsa 2\", expected \"hsamem-hsa 1\"");
		p[strlen("\"format\": \"hsamem-hsa ")] = '1';
	}
	patch(cfg, clen, "\"d_mlp\": 1024", "\"d_mlp\": 1000");
	expect_refused(tmp, "config.json", cfg, clen, "metadata config \"d_mlp\" differs");
	expect_refused(tmp, "config.json", cfg, clen / 2, "config.json: line");
	expect_refused(tmp, "config.json", "[1, 2]", 6, "config.json: not a JSON object");
	for (const char *f = "config.json\0model.safetensors\0hsamem-bpe.tok\0"; *f;
	     f += strlen(f) + 1) {
		snprintf(path, sizeof(path), "%s/%s", tmp, f);
		unlink(path);
	}
	CHECK(rmdir(tmp) == 0);
	free(w);
	free(cfg);
}

int
main(void)
{
	const char *top = getenv("HSAMEM_TOP_SRCDIR");
	char path[4200], why[512] = "";
	struct hsa_scratch *s = NULL;
	struct hsa_model *m = NULL;
	struct st_file *g = NULL;
	float *K = NULL, *V = NULL, *L = NULL;

	snprintf(dir, sizeof(dir), "%s/models/hsa-small", top ? top : ".");
	hsa_blas_threads(1); /* make check runs tests side by side */
	CHECK_RET(hsa_model_load(dir, &m, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/golden.safetensors", dir);
	CHECK_RET(st_open(path, &g, why, sizeof(why)), 0);
	if (!m || !g) {
		fprintf(stderr, "%s\n", why);
		return test_done("test_hsa_model");
	}
	gold = g;
	printf("loaded %s: %zu parameters, revision %u\n", dir, m->n_params, m->cfg.step);
	/* every tensor of the weights counted once, whatever the config's sizes */
	struct st_file *w = NULL;
	uint64_t in_file = 0;
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	CHECK_RET(st_open(path, &w, why, sizeof(why)), 0);
	for (size_t i = 0; w != NULL && i < st_count(w); i++)
		in_file += st_at(w, i)->count;
	st_close(w);
	CHECK(m->n_params == in_file);
	CHECK_RET(hsa_scratch_alloc(m, 12, &s), 0);
	test_lower(m, s);
	test_chunks(m, s, &K, &V, &L);
	test_query(m, s);
	test_kept_window(m);
	test_generate(m, s, K, V, L);
	test_refusals();
	free(K);
	free(V);
	free(L);
	hsa_scratch_free(s);
	st_close(g);
	hsa_model_free(m);
	return test_done("test_hsa_model");
}
