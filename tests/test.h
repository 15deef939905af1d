/*
 * test.h: the few checks every unit test uses. A failed check prints where and why and makes the
 * test exit 1 at the end (test_done); exit 77 means skipped.
 */
#ifndef HSAMEM_TEST_H
#define HSAMEM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		test_checks++;                                                                     \
		if (!(cond)) {                                                                     \
			test_failures++;                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
		}                                                                                  \
	} while (0)

#define CHECK_RET(expr, want)                                                                      \
	do {                                                                                       \
		long long got_ = (long long)(expr), want_ = (long long)(want);                     \
		test_checks++;                                                                     \
		if (got_ != want_) {                                                               \
			test_failures++;                                                           \
			fprintf(stderr, "%s:%d: %s returned %lld, expected %lld\n", __FILE__,      \
			        __LINE__, #expr, got_, want_);                                     \
		}                                                                                  \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
	do {                                                                                       \
		double a_ = (a), b_ = (b);                                                         \
		test_checks++;                                                                     \
		if (!(fabs(a_ - b_) <= (tol))) {                                                   \
			test_failures++;                                                           \
			fprintf(stderr, "%s:%d: %s = %g, expected %g (tolerance %g)\n", __FILE__,  \
			        __LINE__, #a, a_, b_, (double)(tol));                              \
		}                                                                                  \
	} while (0)

/* Ends the test: prints a one-line summary and returns the exit status. */
static inline int
test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
	return test_failures == 0 ? 0 : 1;
}

#endif
