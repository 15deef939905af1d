/*
 * hsa_fixture.h: what the HSA tests of the CPU backend and of the reference math share (test_hsa.c,
 * test_hsa_cpu.c, test_hsa_math.c): a seeded random sequence, memories of random chunks behind a
 * source that can be told to misbehave, query and result buffers, and the tolerant comparison of
 * a float with the double it should be. Nothing here counts checks: test.h's counters belong to
 * each test's own file.
 */
#ifndef HSAMEM_HSA_FIXTURE_H
#define HSAMEM_HSA_FIXTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "spec.h"

/* ---- random data ---- */

/* Restarts the random sequence; every test starts it at the same seed. */
void rnd_seed(uint64_t seed);
uint64_t rnd(void);
uint64_t rnd_below(uint64_t n);

/*
 * Grid data are multiples of 1/4 in [-1, 1], whose scores are exact in float; random data are
 * continuous in [-1, 1).
 */
enum data { DATA_GRID, DATA_RAND };

float rnd_value(enum data d);

/* Element i of a row of type t, stored and read with memcpy: rows may be misaligned on purpose. */
void put_elem(enum hsa_dtype t, void *base, size_t i, float v);
double get_elem(enum hsa_dtype t, const void *base, size_t i);

/* ---- a memory and its source ---- */

struct mem {
	struct hsa_spec spec;
	uint64_t n_chunks;
	char *lmk_alloc, *kv_alloc;
	char *lmk, *kv; /* possibly misaligned inside the allocations */
	size_t lmk_bytes, kv_bytes;
	uint32_t tail_keys;  /* non-zero: the last chunk is the unsealed tail, of this many keys */
	uint64_t max_run;    /* 0: whole runs; else runs of at most this many rows */
	bool varied_runs;    /* run lengths vary with the first row asked for */
	bool zero_count;     /* misbehave: count 0 */
	int64_t fail_lmk_at; /* -1: never fail */
	int64_t fail_kv_at;
	int fail_code;
	atomic_int bad_calls; /* calls for rows that do not exist */
};

/* The source of m (uid 1), as the backend reads it. */
struct hsa_source mem_source(struct mem *m);

/* A spec of G query heads per kv head, top_k 8, for the "client" encoder. */
struct hsa_spec make_spec(uint32_t S, uint32_t h_kv, uint32_t G, uint32_t d_h, uint32_t d_r,
                          enum hsa_dtype dt, enum hsa_weighting w, bool obo);

/*
 * A memory of random chunks; landmarks of lmk_data scaled by lmk_scale, rows misalign bytes into
 * their allocations. Exits 99 when out of memory.
 */
void mem_init(struct mem *m, const struct hsa_spec *sp, uint64_t n_chunks, enum data lmk_data,
              float lmk_scale, size_t misalign);
void mem_fini(struct mem *m);

/* ---- queries and results ---- */

struct qbuf {
	struct hsa_query q;
	uint64_t *pos;
	float *qr, *qa;
};

/* n tokens at a spread of positions (none visible, past everything, on and off chunk edges). */
void qbuf_init(struct qbuf *b, const struct hsa_spec *sp, uint64_t n_chunks, uint32_t n, uint32_t k,
               enum data qr_data, float qr_scale, float qa_scale);
void qbuf_fini(struct qbuf *b);

struct rbuf {
	struct hsa_result r;
	size_t n_out, n_sel, n_attn;
};

/* Result buffers for n tokens and k chunks, with attention weights if attn; filled with garbage. */
void rbuf_init(struct rbuf *b, const struct hsa_spec *sp, uint32_t n, uint32_t k, bool attn);
void rbuf_fini(struct rbuf *b);

/* Whether two results are bit-identical (attention weights only where both have them). */
bool rbuf_same(const struct rbuf *a, const struct rbuf *b);

/* The backend b's attention over the memory m. */
int attend(struct gpu_backend *b, struct mem *m, const struct hsa_query *q, struct rbuf *out);

/* ---- comparison ---- */

double sigmoid(double x);

/* got is want within tol, relative above 1 and absolute below; an infinite want must be met. */
bool near(double got, double want, double tol);

#endif
