/*
 * half.c: rows of floats to f16 (half.h, half_f16_from_floats), with the x86 F16C instruction where
 * the CPU has it: eight at a time, round to nearest even, the same bits as half_f16_from_float
 * (test_hsa_math compares the two over a sweep of every exponent and the special values). The
 * daemon converts every chunk's K/V this way, sealed or computed for a query, so the scalar
 * loop's ~9 ns an element was a large part of a lexical query.
 */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HALF_HAVE_F16C 1
#endif

#include "half.h"

static void
from_portable(const float *src, uint16_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = half_f16_from_float(src[i]);
}

#ifdef HALF_HAVE_F16C
__attribute__((target("avx,f16c"))) static void
from_f16c(const float *src, uint16_t *dst, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
		                                                       _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		dst[i] = half_f16_from_float(src[i]);
}
#endif

static void (*from_fn)(const float *, uint16_t *, size_t) = from_portable;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* F16C unless HSAMEM_CPU_KERNELS=portable (the CPU backend's switch) or the CPU lacks it. */
static void
pick(void)
{
#ifdef HALF_HAVE_F16C
	const char *force = getenv("HSAMEM_CPU_KERNELS");
	unsigned a, b, c, d;
	if (force != NULL && strcmp(force, "portable") == 0)
		return;
	/* clang's __builtin_cpu_supports has no "f16c": ask CPUID leaf 1 */
	bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
	__builtin_cpu_init();
	if (f16c && __builtin_cpu_supports("avx"))
		from_fn = from_f16c;
#endif
}

void
half_f16_from_floats(const float *src, uint16_t *dst, size_t n)
{
	pthread_once(&once, pick);
	from_fn(src, dst, n);
}
