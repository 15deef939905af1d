/*
 * cpu_kernels.c: the CPU backend's kernels (cpu_kernels.h), portable and AVX2. Only loops over
 * floats and 16-bit elements live here: no thread, no allocation, no HSA.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CPU_HAVE_AVX2_PATH 1
#endif

#include "cpu_kernels.h"
#include "half.h"

static inline float
f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline uint32_t
f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/*
 * binary16 to float without branches, so that a loop of them vectorises: normal numbers (and
 * inf/NaN) by moving the exponent and mantissa into place and rescaling by 2^-112; subnormals by
 * letting the FPU normalise m * 2^-24 as (0.5 + m * 2^-24) - 0.5.
 */
static inline float
f16_to_f32_branchless(uint16_t h)
{
	uint32_t w = (uint32_t)h << 16, two_w = w + w;
	float normal = f32_from_bits((two_w >> 4) + (0xe0u << 23)) * 0x1p-112f;
	float subnormal = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
	uint32_t is_sub = -(uint32_t)(two_w < (1u << 27));
	uint32_t mag = (f32_bits(subnormal) & is_sub) | (f32_bits(normal) & ~is_sub);
	return f32_from_bits((w & 0x80000000u) | mag);
}

static void
cvt_portable(enum hsa_dtype t, const void *restrict src, float *restrict dst, size_t n)
{
	const uint16_t *h = src;
	size_t i = 0;

	if (t == HSA_F32) {
		memcpy(dst, src, n * 4);
	} else if (t == HSA_F16) {
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				dst[i + l] = f16_to_f32_branchless(h[i + l]);
		for (; i < n; i++)
			dst[i] = f16_to_f32_branchless(h[i]);
	} else {
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				dst[i + l] = f32_from_bits((uint32_t)h[i + l] << 16);
		for (; i < n; i++)
			dst[i] = f32_from_bits((uint32_t)h[i] << 16);
	}
}

/* Eight independent partial sums: a fixed-width inner loop that gcc turns into vector code. */
static inline float
dot_portable(const float *a, const float *b, size_t n)
{
	float acc[8] = {0};
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += a[i + l] * b[i + l];
	float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void
dots_portable(const float *q, const float *rows, size_t ld, size_t n_rows, size_t d, float *out)
{
	for (size_t r = 0; r < n_rows; r++)
		out[r] = dot_portable(q, rows + r * ld, d);
}

/* Eight outputs at a time, summed in registers over all rows, then added to y once. */
static void
wsum_portable(const float *p, const float *rows, size_t ld, size_t n_rows, size_t d, float a,
              float *y)
{
	size_t e = 0;

	for (; e + 8 <= d; e += 8) {
		float acc[8] = {0};
		for (size_t i = 0; i < n_rows; i++)
			for (int l = 0; l < 8; l++)
				acc[l] += p[i] * rows[i * ld + e + l];
		for (int l = 0; l < 8; l++)
			y[e + l] += a * acc[l];
	}
	for (; e < d; e++) {
		float acc = 0.0f;
		for (size_t i = 0; i < n_rows; i++)
			acc += p[i] * rows[i * ld + e];
		y[e] += a * acc;
	}
}

static const struct cpu_kernels kernels_portable = {
        .name = "portable",
        .cvt = cvt_portable,
        .dots = dots_portable,
        .wsum = wsum_portable,
};

#ifdef CPU_HAVE_AVX2_PATH
__attribute__((target("avx2,fma,f16c"))) static void
cvt_avx2(enum hsa_dtype t, const void *src, float *dst, size_t n)
{
	const uint16_t *h = src;
	size_t i = 0;

	if (t == HSA_F32) {
		memcpy(dst, src, n * 4);
	} else if (t == HSA_F16) {
		for (; i + 8 <= n; i += 8)
			_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
			                                  (const __m128i *)(h + i))));
		for (; i < n; i++)
			dst[i] = half_f16_to_float(h[i]);
	} else {
		for (; i + 8 <= n; i += 8) {
			__m256i w =
			        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
			_mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
		}
		for (; i < n; i++)
			dst[i] = half_bf16_to_float(h[i]);
	}
}

__attribute__((target("avx2,fma"))) static inline float
hsum_avx2(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void
dots_avx2(const float *q, const float *rows, size_t ld, size_t n_rows, size_t d, float *out)
{
	for (size_t r = 0; r < n_rows; r++) {
		const float *x = rows + r * ld;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		size_t i = 0;
		for (; i + 16 <= d; i += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(x + i + 8),
			                     a1);
		}
		if (i + 8 <= d) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i), a0);
			i += 8;
		}
		float s = hsum_avx2(_mm256_add_ps(a0, a1));
		for (; i < d; i++)
			s += q[i] * x[i];
		out[r] = s;
	}
}

/* Eight elements of a 16-bit type as floats; t is a constant where this is inlined. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256
load8_avx2(enum hsa_dtype t, const uint16_t *p)
{
	__m128i h = _mm_loadu_si128((const __m128i *)p);
	if (t == HSA_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* dots_avx2 on rows of a 16-bit type, converted in registers: the same sums, bit for bit. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void
dots16_avx2_t(enum hsa_dtype t, const float *q, const uint16_t *rows, size_t ld, size_t n_rows,
              size_t d, float *out)
{
	for (size_t r = 0; r < n_rows; r++) {
		const uint16_t *x = rows + r * ld;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		size_t i = 0;
		for (; i + 16 <= d; i += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8_avx2(t, x + i), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load8_avx2(t, x + i + 8),
			                     a1);
		}
		if (i + 8 <= d) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8_avx2(t, x + i), a0);
			i += 8;
		}
		float s = hsum_avx2(_mm256_add_ps(a0, a1));
		for (; i < d; i++)
			s += q[i] *
			     (t == HSA_F16 ? half_f16_to_float(x[i]) : half_bf16_to_float(x[i]));
		out[r] = s;
	}
}

__attribute__((target("avx2,fma,f16c"))) static void
dots16_avx2(enum hsa_dtype t, const float *q, const uint16_t *rows, size_t ld, size_t n_rows,
            size_t d, float *out)
{
	if (t == HSA_F16)
		dots16_avx2_t(HSA_F16, q, rows, ld, n_rows, d, out);
	else
		dots16_avx2_t(HSA_BF16, q, rows, ld, n_rows, d, out);
}

__attribute__((target("avx2,fma"))) static void
wsum_avx2(const float *p, const float *rows, size_t ld, size_t n_rows, size_t d, float a, float *y)
{
	__m256 av = _mm256_set1_ps(a);
	size_t e = 0;

	for (; e + 32 <= d; e += 32) {
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (size_t i = 0; i < n_rows; i++) {
			const float *x = rows + i * ld + e;
			__m256 pv = _mm256_set1_ps(p[i]);
			a0 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x), a0);
			a1 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + 8), a1);
			a2 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + 16), a2);
			a3 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + 24), a3);
		}
		_mm256_storeu_ps(y + e, _mm256_fmadd_ps(av, a0, _mm256_loadu_ps(y + e)));
		_mm256_storeu_ps(y + e + 8, _mm256_fmadd_ps(av, a1, _mm256_loadu_ps(y + e + 8)));
		_mm256_storeu_ps(y + e + 16, _mm256_fmadd_ps(av, a2, _mm256_loadu_ps(y + e + 16)));
		_mm256_storeu_ps(y + e + 24, _mm256_fmadd_ps(av, a3, _mm256_loadu_ps(y + e + 24)));
	}
	for (; e + 8 <= d; e += 8) {
		__m256 a0 = _mm256_setzero_ps();
		for (size_t i = 0; i < n_rows; i++)
			a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[i]),
			                     _mm256_loadu_ps(rows + i * ld + e), a0);
		_mm256_storeu_ps(y + e, _mm256_fmadd_ps(av, a0, _mm256_loadu_ps(y + e)));
	}
	for (; e < d; e++) {
		float acc = 0.0f;
		for (size_t i = 0; i < n_rows; i++)
			acc += p[i] * rows[i * ld + e];
		y[e] += a * acc;
	}
}

static const struct cpu_kernels kernels_avx2 = {
        .name = "avx2",
        .cvt = cvt_avx2,
        .dots = dots_avx2,
        .dots16 = dots16_avx2,
        .wsum = wsum_avx2,
};
#endif

const struct cpu_kernels *
cpu_kernels_pick(void)
{
	const char *force = getenv("HSAMEM_CPU_KERNELS");

	if (force != NULL && strcmp(force, "portable") == 0)
		return &kernels_portable;
#ifdef CPU_HAVE_AVX2_PATH
	/* clang's __builtin_cpu_supports has no "f16c": ask CPUID leaf 1 */
	unsigned a, b, c, d;
	bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
		return &kernels_avx2;
#endif
	return &kernels_portable;
}
