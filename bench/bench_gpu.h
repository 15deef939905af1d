/*
 * bench_gpu.h: what the parts of bench_gpu share (bench_gpu.c: the options, the store, the
 * helpers and main; bench_gpu_backend.c: the GPU part, the backend called directly;
 * bench_gpu_e2e.c: the end-to-end part, through hsamemd): the run's settings, timing, random
 * data, the table's rows, the spec and the query sets.
 */
#ifndef HSAMEM_BENCH_GPU_H
#define HSAMEM_BENCH_GPU_H

#include <stdint.h>
#include <stdio.h>

#include "harness.h"
#include "spec.h"

#define K_SEL     64
#define N_SETS    16
#define N_THREADS 16

/* The run's settings, from the options: --json, --spec, --iters, --host-cache. */
extern FILE *json;
extern const char *spec_name;
extern int iters;
extern uint64_t host_cache;

/* Seconds on the monotonic clock. */
double now_s(void);

/* The p-th percentile of v[0 .. n-1], which it sorts; NaN for no values. */
double pct(double *v, int n, double p);

/* A random number in [-1, 1), from the run's one sequence. */
double unif(void);

/* Random 16-bit values of type t in +-[0.5, 1). */
void fill_kv(enum hsa_dtype t, uint16_t *p, size_t n);

/* n random values of type t in +-scale. */
void fill_f(enum hsa_dtype t, void *dst, size_t n, double scale);

/* One row of the table, and of the JSON file if there is one. */
void emit(const char *part, uint64_t tokens, const char *metric, double value, const char *unit);

/* The spec of --spec: the client spec, or the lexical encoder's dimensions. */
struct hsa_spec bench_spec(void);

/* n query tokens that see the whole memory: random qr and qa. */
struct qset {
	uint32_t n;
	float *qr, *qa;
	uint64_t *pos;
};

void qset_make(struct qset *q, const struct hsa_spec *sp, uint32_t n, uint64_t n_chunks);

/* New random qr for q: queries whose selection nothing has cached. */
void qset_fresh(struct qset *q, const struct hsa_spec *sp);
void qset_free(struct qset *q);

/* The GPU part on the store in dir (bench_gpu_backend.c). */
void gpu_part(const char *dir, const struct hsa_spec *sp, uint64_t n_chunks);

/* The end-to-end part: hsamemd started by h on its store (bench_gpu_e2e.c). Return 0 or an error.
 */
int e2e_part(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks);

/* The daemon's own append rate for client chunks, into a memory of its own (bench_gpu_e2e.c). */
int append_rate(struct harness *h, const struct hsa_spec *sp, uint64_t n_chunks);

#endif
