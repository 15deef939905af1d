/*
 * hsa_fixture.c: the random data, memories, sources and buffers of the HSA tests (hsa_fixture.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "hsa_fixture.h"

/* ---- random data ---- */

static uint64_t rng;

void
rnd_seed(uint64_t seed)
{
	rng = seed;
}

uint64_t
rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t
rnd_below(uint64_t n)
{
	return n == 0 ? 0 : rnd() % n;
}

float
rnd_value(enum data d)
{
	if (d == DATA_GRID)
		return (float)((int)rnd_below(9) - 4) / 4.0f;
	return (float)((double)(rnd() >> 11) * 0x1p-52 - 1.0);
}

void
put_elem(enum hsa_dtype t, void *base, size_t i, float v)
{
	uint16_t h;

	if (t == HSA_F32) {
		memcpy((char *)base + 4 * i, &v, 4); /* rows may be misaligned on purpose */
		return;
	}
	h = t == HSA_F16 ? half_f16_from_float(v) : half_bf16_from_float(v);
	memcpy((char *)base + 2 * i, &h, 2);
}

double
get_elem(enum hsa_dtype t, const void *base, size_t i)
{
	if (t == HSA_F32) {
		float f;
		memcpy(&f, (const char *)base + 4 * i, 4);
		return f;
	}
	uint16_t h;
	memcpy(&h, (const char *)base + 2 * i, 2);
	return t == HSA_F16 ? half_f16_to_float(h) : half_bf16_to_float(h);
}

/* ---- a memory and its source ---- */

static int
src_landmarks(void *ctx, uint64_t first, const void **rows, uint64_t *count)
{
	struct mem *m = ctx;
	uint64_t run;

	if (first >= m->n_chunks) {
		atomic_fetch_add(&m->bad_calls, 1);
		return -EIO;
	}
	run = m->n_chunks - first;
	if (m->max_run > 0) {
		uint64_t want =
		        m->varied_runs ? 1 + (first * 2654435761u) % m->max_run : m->max_run;
		if (want < run)
			run = want;
	}
	if (m->fail_lmk_at >= 0 && (uint64_t)m->fail_lmk_at >= first &&
	    (uint64_t)m->fail_lmk_at < first + run)
		return m->fail_code;
	*rows = m->lmk + first * m->lmk_bytes;
	*count = m->zero_count ? 0 : run;
	return 0;
}

static int
src_kv(void *ctx, uint64_t j, const void **kv)
{
	struct mem *m = ctx;

	if (j >= m->n_chunks) {
		atomic_fetch_add(&m->bad_calls, 1);
		return -EIO;
	}
	if (m->fail_kv_at >= 0 && (uint64_t)m->fail_kv_at == j)
		return m->fail_code;
	*kv = m->kv + j * m->kv_bytes;
	return 0;
}

struct hsa_source
mem_source(struct mem *m)
{
	return (struct hsa_source){.ctx = m,
	                           .uid = 1,
	                           .n_chunks = m->n_chunks,
	                           .tail_keys = m->tail_keys,
	                           .landmarks = src_landmarks,
	                           .chunk_kv = src_kv};
}

struct hsa_spec
make_spec(uint32_t S, uint32_t h_kv, uint32_t G, uint32_t d_h, uint32_t d_r, enum hsa_dtype dt,
          enum hsa_weighting w, bool obo)
{
	struct hsa_spec s = {.revision = 1,
	                     .S = S,
	                     .h_kv = h_kv,
	                     .d_h = d_h,
	                     .h_q = h_kv * G,
	                     .d_r = d_r,
	                     .dtype = dt,
	                     .weighting = w,
	                     .off_by_one = obo,
	                     .top_k = 8};
	strcpy(s.encoder, "client");
	return s;
}

void
mem_init(struct mem *m, const struct hsa_spec *sp, uint64_t n_chunks, enum data lmk_data,
         float lmk_scale, size_t misalign)
{
	memset(m, 0, sizeof(*m));
	m->spec = *sp;
	m->n_chunks = n_chunks;
	m->lmk_bytes = spec_landmark_bytes(sp);
	m->kv_bytes = spec_kv_bytes(sp);
	m->fail_lmk_at = m->fail_kv_at = -1;
	m->lmk_alloc = malloc(n_chunks * m->lmk_bytes + 16);
	m->kv_alloc = malloc(n_chunks * m->kv_bytes + 16);
	if (m->lmk_alloc == NULL || m->kv_alloc == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(99);
	}
	m->lmk = m->lmk_alloc + misalign;
	m->kv = m->kv_alloc + misalign;
	for (size_t i = 0; i < n_chunks * sp->d_r; i++)
		put_elem(sp->dtype, m->lmk, i, rnd_value(lmk_data) * lmk_scale);
	for (size_t i = 0; i < n_chunks * m->kv_bytes / spec_elem_size(sp->dtype); i++)
		put_elem(sp->dtype, m->kv, i, rnd_value(DATA_RAND) * 2.0f);
}

void
mem_fini(struct mem *m)
{
	free(m->lmk_alloc);
	free(m->kv_alloc);
}

/* ---- queries and results ---- */

void
qbuf_init(struct qbuf *b, const struct hsa_spec *sp, uint64_t n_chunks, uint32_t n, uint32_t k,
          enum data qr_data, float qr_scale, float qa_scale)
{
	b->pos = malloc(n * sizeof(uint64_t));
	b->qr = malloc((size_t)n * sp->d_r * sizeof(float));
	b->qa = malloc((size_t)n * sp->h_q * sp->d_h * sizeof(float));
	for (uint32_t t = 0; t < n; t++) {
		/* a spread of positions: none visible, past everything, on and off chunk edges */
		switch (t % 6) {
		case 0: b->pos[t] = rnd_below(sp->S); break;
		case 1: b->pos[t] = UINT64_MAX / 2 + rnd_below(1000); break;
		case 2: b->pos[t] = (n_chunks + rnd_below(3)) * sp->S; break;
		case 3: b->pos[t] = rnd_below(n_chunks + 1) * sp->S; break;
		default: b->pos[t] = rnd_below((n_chunks + 2) * sp->S); break;
		}
	}
	for (size_t i = 0; i < (size_t)n * sp->d_r; i++)
		b->qr[i] = rnd_value(qr_data) * qr_scale;
	for (size_t i = 0; i < (size_t)n * sp->h_q * sp->d_h; i++)
		b->qa[i] = rnd_value(DATA_RAND) * qa_scale;
	b->q = (struct hsa_query){.n = n, .k = k, .pos = b->pos, .qr = b->qr, .qa = b->qa};
}

void
qbuf_fini(struct qbuf *b)
{
	free(b->pos);
	free(b->qr);
	free(b->qa);
}

void
rbuf_init(struct rbuf *b, const struct hsa_spec *sp, uint32_t n, uint32_t k, bool attn)
{
	b->n_out = (size_t)n * sp->h_q * sp->d_h;
	b->n_sel = (size_t)n * sp->h_kv * k;
	b->n_attn = attn ? (size_t)n * sp->h_q * k * sp->S : 0;
	/* filled with garbage so that anything left unwritten shows */
	b->r.out = malloc(b->n_out * sizeof(float));
	b->r.sel = malloc(b->n_sel * sizeof(int64_t));
	b->r.score = malloc(b->n_sel * sizeof(float));
	b->r.weight = malloc(b->n_sel * sizeof(float));
	b->r.attn = attn ? malloc(b->n_attn * sizeof(float)) : NULL;
	memset(b->r.out, 0x7f, b->n_out * sizeof(float));
	memset(b->r.sel, 0x55, b->n_sel * sizeof(int64_t));
	memset(b->r.score, 0x7f, b->n_sel * sizeof(float));
	memset(b->r.weight, 0x7f, b->n_sel * sizeof(float));
	if (attn)
		memset(b->r.attn, 0x7f, b->n_attn * sizeof(float));
}

void
rbuf_fini(struct rbuf *b)
{
	free(b->r.out);
	free(b->r.sel);
	free(b->r.score);
	free(b->r.weight);
	free(b->r.attn);
}

bool
rbuf_same(const struct rbuf *a, const struct rbuf *b)
{
	return memcmp(a->r.out, b->r.out, a->n_out * sizeof(float)) == 0 &&
	       memcmp(a->r.sel, b->r.sel, a->n_sel * sizeof(int64_t)) == 0 &&
	       memcmp(a->r.score, b->r.score, a->n_sel * sizeof(float)) == 0 &&
	       memcmp(a->r.weight, b->r.weight, a->n_sel * sizeof(float)) == 0 &&
	       (a->r.attn == NULL || b->r.attn == NULL ||
	        memcmp(a->r.attn, b->r.attn, a->n_attn * sizeof(float)) == 0);
}

int
attend(struct gpu_backend *b, struct mem *m, const struct hsa_query *q, struct rbuf *out)
{
	struct hsa_source src = mem_source(m);
	return gpu_attend(b, &m->spec, &src, q, &out->r);
}

/* ---- comparison ---- */

double
sigmoid(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

bool
near(double got, double want, double tol)
{
	if (isinf(want))
		return got == want;
	return fabs(got - want) <= tol * (fabs(want) > 1 ? fabs(want) : 1);
}
