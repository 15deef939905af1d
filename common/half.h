/*
 * half.h: conversions between float and the 16-bit element types (IEEE binary16 and bfloat16),
 * round to nearest even, NaN kept NaN. Scalar and exact; hot loops convert whole rows with
 * half_to_float_row / half_from_float_row. half_row_finite checks tensors that come from outside.
 */
#ifndef HSAMEM_HALF_H
#define HSAMEM_HALF_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spec.h"

static inline float
half_f16_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0x1f) {
		bits = sign | 0x7f800000 | (man << 13);
	} else if (exp != 0) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man == 0) {
		bits = sign;
	} else { /* subnormal: normalise */
		int e = -1;
		do {
			e++;
			man <<= 1;
		} while ((man & 0x400) == 0);
		bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static inline uint16_t
half_f16_from_float(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t exp = (x >> 23) & 0xff, man = x & 0x7fffff;
	if (exp == 0xff) /* inf or nan */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	int e = (int)exp - 127 + 15;
	if (e >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - e);
		uint32_t h = man >> shift, rem = man & ((1u << shift) - 1),
		         half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* may carry into the exponent, which is right */
	return (uint16_t)(sign | h);
}

static inline float
half_bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static inline uint16_t
half_bf16_from_float(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

/* n elements of type t at src to floats at dst. */
static inline void
half_to_float_row(enum hsa_dtype t, const void *src, float *dst, size_t n)
{
	const uint16_t *h = src;
	if (t == HSA_F32)
		memcpy(dst, src, n * 4);
	else if (t == HSA_F16)
		for (size_t i = 0; i < n; i++)
			dst[i] = half_f16_to_float(h[i]);
	else
		for (size_t i = 0; i < n; i++)
			dst[i] = half_bf16_to_float(h[i]);
}

/* n floats at src to f16 at dst: half_f16_from_float of each, eight at a time where the CPU
 * converts them itself (half.c). */
void half_f16_from_floats(const float *src, uint16_t *dst, size_t n);

/* n floats at src to elements of type t at dst. */
static inline void
half_from_float_row(enum hsa_dtype t, const float *src, void *dst, size_t n)
{
	uint16_t *h = dst;
	if (t == HSA_F32)
		memcpy(dst, src, n * 4);
	else if (t == HSA_F16)
		half_f16_from_floats(src, h, n);
	else
		for (size_t i = 0; i < n; i++)
			h[i] = half_bf16_from_float(src[i]);
}

/* Whether all n elements of type t at src (any alignment) are finite: no NaN, no infinity. */
static inline bool
half_row_finite(enum hsa_dtype t, const void *src, size_t n)
{
	const unsigned char *p = src;
	if (t == HSA_F32) {
		for (size_t i = 0; i < n; i++) {
			float f;
			memcpy(&f, p + 4 * i, 4);
			if (!isfinite(f))
				return false;
		}
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		if (!isfinite(t == HSA_F16 ? half_f16_to_float(h) : half_bf16_to_float(h)))
			return false;
	}
	return true;
}

#endif
