/*
 * test_daemon_attend.c: client-supplied memories end to end. Random K, V and landmarks are
 * appended through the daemon, and attend's outputs, selections and weights are compared with an
 * independent implementation of hsamem(7) written here in double precision, within 1e-3. Several
 * shapes, both weightings, off-by-one, positions that see no chunk or fewer than k, f16 and f32.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "harness.h"
#include "hsamem.h"
#include "test.h"

struct shape {
	const char *name;
	uint32_t S, h_kv, d_h, h_q, d_r, k, n_chunks;
	enum hsamem_dtype dtype;
	enum hsamem_weighting weighting;
	bool off_by_one;
};

static uint64_t rng = 88172645463325252ull;

static double
uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* values as the daemon stores them: rounded to the dtype */
static float
rounded(enum hsamem_dtype t, float x)
{
	if (t == HSAMEM_F16)
		return half_f16_to_float(half_f16_from_float(x));
	return x;
}

static void
encode(enum hsamem_dtype t, const float *src, void *dst, size_t n)
{
	half_from_float_row(t == HSAMEM_F16 ? HSA_F16 : HSA_F32, src, dst, n);
}

/* hsamem(7), literally, for one query token t and every kv head. */
static void
reference(const struct shape *s, const float *K, const float *V, const float *L, const float *qr,
          const float *qa, uint64_t t, int64_t *sel, double *w, double *out)
{
	uint32_t dr = s->d_r / s->h_kv, G = s->h_q / s->h_kv, S = s->S;
	size_t kvc = (size_t)S * s->h_kv * s->d_h;
	for (uint32_t r = 0; r < s->h_kv; r++) {
		double *score = malloc(s->n_chunks * sizeof(double));
		uint32_t visible = 0;
		for (uint32_t j = 0; j < s->n_chunks; j++) {
			score[j] = -INFINITY;
			if ((uint64_t)(j + 1) * S > t)
				continue;
			visible++;
			double d = 0;
			for (uint32_t i = 0; i < dr; i++)
				d += (double)qr[r * dr + i] * L[(size_t)j * s->d_r + r * dr + i];
			score[j] = d / sqrt(dr);
		}
		uint32_t k = s->k < visible ? s->k : visible;
		int64_t *I = sel + (size_t)r * s->k;
		double *W = w + (size_t)r * s->k, sc[256];
		for (uint32_t i = 0; i < s->k; i++) {
			I[i] = -1;
			W[i] = 0;
		}
		for (uint32_t i = 0; i < k;
		     i++) { /* selection: best score, ties to the lower index */
			int64_t best = -1;
			for (uint32_t j = 0; j < s->n_chunks; j++) {
				bool taken = false;
				for (uint32_t m = 0; m < i; m++)
					taken |= I[m] == j;
				if (!taken && score[j] != -INFINITY &&
				    (best < 0 || score[j] > score[best]))
					best = j;
			}
			I[i] = best;
			sc[i] = score[best];
		}
		if (s->weighting == HSAMEM_SOFTMAX) {
			double max = -INFINITY, sum = 0;
			for (uint32_t i = 0; i < k; i++)
				max = fmax(max, sc[i]);
			for (uint32_t i = 0; i < k; i++)
				sum += exp(sc[i] - max);
			for (uint32_t i = 0; i < k; i++)
				W[i] = exp(sc[i] - max) / sum;
		} else { /* stick-breaking over the selected, most recent (highest index) first */
			double rest = 1;
			bool done[256] = {false};
			for (uint32_t step = 0; step < k; step++) {
				int64_t b = -1;
				for (uint32_t i = 0; i < k; i++)
					if (!done[i] && (b < 0 || I[i] > I[b]))
						b = i;
				double sg = 1 / (1 + exp(-sc[b]));
				W[b] = sg * rest;
				rest *= 1 - sg;
				done[b] = true;
			}
		}
		for (uint32_t g = 0; g < G; g++) {
			uint32_t h = r * G + g;
			double *o = out + (size_t)h * s->d_h;
			memset(o, 0, s->d_h * sizeof(double));
			for (uint32_t i = 0; i < k; i++) {
				const float *Kc = K + (size_t)I[i] * kvc,
				            *Vc = V + (size_t)I[i] * kvc;
				double a[1024], max = s->off_by_one ? 0 : -INFINITY, sum = 0;
				for (uint32_t p = 0; p < S; p++) {
					double d = 0;
					for (uint32_t x = 0; x < s->d_h; x++)
						d += (double)qa[h * s->d_h + x] *
						     Kc[((size_t)p * s->h_kv + r) * s->d_h + x];
					a[p] = d / sqrt(s->d_h);
					max = fmax(max, a[p]);
				}
				for (uint32_t p = 0; p < S; p++)
					sum += a[p] = exp(a[p] - max);
				if (s->off_by_one)
					sum += exp(-max);
				for (uint32_t p = 0; p < S; p++)
					for (uint32_t x = 0; x < s->d_h; x++)
						o[x] += W[i] * a[p] / sum *
						        Vc[((size_t)p * s->h_kv + r) * s->d_h + x];
			}
		}
		free(score);
	}
}

static void
run_shape(struct hsamem *c, const struct shape *s)
{
	struct hsamem_spec spec = {.encoder = "client",
	                           .chunk_size = s->S,
	                           .h_kv = s->h_kv,
	                           .d_h = s->d_h,
	                           .h_q = s->h_q,
	                           .d_r = s->d_r,
	                           .dtype = s->dtype,
	                           .weighting = s->weighting,
	                           .off_by_one = s->off_by_one,
	                           .top_k = s->k};
	size_t kvc = (size_t)s->S * s->h_kv * s->d_h, esz = s->dtype == HSAMEM_F16 ? 2 : 4;
	float *K = malloc(s->n_chunks * kvc * 4), *V = malloc(s->n_chunks * kvc * 4);
	float *L = malloc((size_t)s->n_chunks * s->d_r * 4);
	char user[64];
	snprintf(user, sizeof(user), "model-%s", s->name);
	CHECK_RET(hsamem_create(c, user, &spec, NULL), 0);
	for (size_t i = 0; i < s->n_chunks * kvc; i++) {
		K[i] = rounded(s->dtype, (float)uniform());
		V[i] = rounded(s->dtype, (float)uniform());
	}
	for (size_t i = 0; i < (size_t)s->n_chunks * s->d_r; i++)
		L[i] = rounded(s->dtype, (float)(uniform() * 2));
	/* duplicate landmarks make ties, which go to the lower index */
	if (s->n_chunks > 6)
		memcpy(L + 5 * (size_t)s->d_r, L + 2 * (size_t)s->d_r, s->d_r * 4);

	/* append the chunks in batches of up to 8, each batch one append of S tokens a chunk */
	uint32_t *tokens = calloc((size_t)8 * s->S, sizeof(uint32_t));
	void *bk = malloc(8 * kvc * esz), *bv = malloc(8 * kvc * esz);
	void *bl = malloc((size_t)8 * s->d_r * esz);
	for (uint32_t j = 0; j < s->n_chunks; j += 8) {
		uint32_t n = s->n_chunks - j < 8 ? s->n_chunks - j : 8;
		struct hsamem_chunk_in ch[8];
		for (uint32_t i = 0; i < n; i++) {
			char *kp = (char *)bk + i * kvc * esz, *vp = (char *)bv + i * kvc * esz;
			char *lp = (char *)bl + (size_t)i * s->d_r * esz;
			encode(s->dtype, K + (j + i) * kvc, kp, kvc);
			encode(s->dtype, V + (j + i) * kvc, vp, kvc);
			encode(s->dtype, L + (size_t)(j + i) * s->d_r, lp, s->d_r);
			ch[i] = (struct hsamem_chunk_in){kp,        kvc * esz, vp,
			                                 kvc * esz, lp,        s->d_r * esz};
		}
		for (uint32_t t = 0; t < n * s->S; t++)
			tokens[t] = j * s->S + t + 1;
		struct hsamem_entry_in e = {.tokens = tokens, .n_tokens = (size_t)n * s->S};
		CHECK_RET(hsamem_append(c, user, &e, 1, ch, n, HSAMEM_APPEND_NO_CREATE, NULL), 0);
	}

	/* query tokens at positions: none visible, one chunk, fewer than k, all, "after all" */
	uint64_t pos[6] = {s->S - 1,
	                   s->S,
	                   (uint64_t)s->S * (s->k / 2 + 1) + 3,
	                   (uint64_t)s->S * s->n_chunks,
	                   0,
	                   (uint64_t)s->S * s->n_chunks * 3};
	uint32_t n = 6;
	size_t dr = s->d_r, nqa = (size_t)s->h_q * s->d_h;
	float *qr = malloc(n * dr * 4), *qa = malloc(n * nqa * 4);
	for (size_t i = 0; i < n * dr; i++)
		qr[i] = (float)(uniform() * 3);
	for (size_t i = 0; i < n * nqa; i++)
		qa[i] = (float)(uniform() * 2);
	struct hsamem_attend a = {.n = n,
	                          .qr = qr,
	                          .qr_len = n * dr,
	                          .qa = qa,
	                          .qa_len = n * nqa,
	                          .positions = pos,
	                          .top_k = s->k};
	struct hsamem_attend_result *res = NULL;
	CHECK_RET(hsamem_attend(c, user, &a, &res), 0);
	if (res != NULL) {
		int64_t sel[64 * 256];
		double w[64 * 256], out[64 * 1024], worst = 0;
		int bad_sel = 0;
		for (uint32_t t = 0; t < n; t++) {
			uint64_t p = pos[t] ? pos[t] : (uint64_t)s->S * s->n_chunks;
			reference(s, K, V, L, qr + t * dr, qa + t * nqa, p, sel, w, out);
			for (size_t i = 0; i < (size_t)s->h_kv * s->k; i++) {
				size_t at = (size_t)t * s->h_kv * s->k + i;
				bad_sel += res->selected[at] != sel[i];
				worst = fmax(worst, fabs(res->weights[at] - w[i]));
			}
			for (size_t i = 0; i < nqa; i++)
				worst = fmax(worst, fabs(res->output[t * nqa + i] - out[i]));
		}
		if (bad_sel || worst > 1e-3)
			fprintf(stderr, "%s: %d selections differ, largest difference %g\n",
			        s->name, bad_sel, worst);
		CHECK(bad_sel == 0);
		CHECK(worst <= 1e-3);
		hsamem_result_free(res);
	}
	free(K);
	free(V);
	free(L);
	free(qr);
	free(qa);
	free(tokens);
	free(bk);
	free(bv);
	free(bl);
}

int
main(void)
{
	static const struct shape shapes[] = {
	        {"paper", 64, 1, 128, 16, 128, 8, 40, HSAMEM_F16, HSAMEM_SOFTMAX, false},
	        {"heads", 16, 2, 32, 8, 64, 4, 30, HSAMEM_F32, HSAMEM_SOFTMAX, true},
	        {"stick", 8, 4, 16, 8, 32, 5, 25, HSAMEM_F16, HSAMEM_STICKBREAK, false},
	        {"stick1", 4, 1, 8, 1, 8, 3, 12, HSAMEM_F32, HSAMEM_STICKBREAK, true},
	        {"k1", 32, 1, 64, 4, 64, 1, 20, HSAMEM_F16, HSAMEM_SOFTMAX, false},
	};
	struct harness h;
	struct hsamem *c;
	if (harness_init(&h) != 0 || harness_start(&h) != 0) {
		harness_dump_log(&h);
		harness_fini(&h);
		return 1;
	}
	CHECK_RET(hsamem_open(h.url, &c), 0);
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		run_shape(c, &shapes[i]);
	hsamem_close(c);
	if (test_failures)
		harness_dump_log(&h);
	harness_fini(&h);
	return test_done("test_daemon_attend");
}
