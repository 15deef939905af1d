/*
 * cpu_kernels.h: the CPU backend's inner loops: widening f16/bf16 elements to floats, dot products
 * of one query against many rows, and weighted sums of rows. They know nothing of HSA: the backend
 * (gpu/cpu.c) calls them on landmarks, keys and values, and the reference math (common/hsa_math.h)
 * decides what their results mean.
 *
 * Two flavours: a portable one, written so that gcc -O2 vectorises its fixed-width inner loops,
 * and on x86-64 an AVX2/FMA/F16C one. Both accumulate in fp32 in a fixed order, so a flavour's
 * results never depend on how its caller cuts the work.
 */
#ifndef HSAMEM_CPU_KERNELS_H
#define HSAMEM_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "spec.h"

struct cpu_kernels {
	const char *name; /* "portable", "avx2" */
	/* n elements of type t at src to floats at dst. */
	void (*cvt)(enum hsa_dtype t, const void *src, float *dst, size_t n);
	/* out[i] = q . rows[i * ld .. i * ld + d) for i < n_rows. */
	void (*dots)(const float *q, const float *rows, size_t ld, size_t n_rows, size_t d,
	             float *out);
	/*
	 * dots on rows of a 16-bit type, bit-identical to cvt then dots, without the round trip
	 * through memory; NULL where the conversion is not cheap enough to repeat per query.
	 */
	void (*dots16)(enum hsa_dtype t, const float *q, const uint16_t *rows, size_t ld,
	               size_t n_rows, size_t d, float *out);
	/* y[e] += a * sum_i p[i] * rows[i * ld + e] for e < d, i < n_rows. */
	void (*wsum)(const float *p, const float *rows, size_t ld, size_t n_rows, size_t d, float a,
	             float *y);
};

/*
 * The best flavour this CPU runs: AVX2 where the CPU has AVX2, FMA and F16C, else the portable
 * one. HSAMEM_CPU_KERNELS=portable in the environment forces the portable one (the tests use
 * it). The table is static: it is never freed.
 */
const struct cpu_kernels *cpu_kernels_pick(void);

#endif
