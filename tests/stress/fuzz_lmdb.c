/*
 * fuzz_lmdb.c: the allocator of LMDB inside the fuzz target (tests/stress/fuzz_request.c). The
 * target links Debian's static liblmdb.a with its calls to malloc, calloc, realloc and free
 * renamed to the functions below (tests/stress/Makefile.inc); everything else of the target
 * allocates as before.
 *
 * WHY: LMDB allocates two lists of 1 and 2 MiB (free pages, dirty pages) for every nested write
 * transaction (one per job of a batch, commit.c) and for every environment it opens (the reopening
 * after each erasure, store_erase.c), and frees them at its end. Under AddressSanitizer a block
 * that large is mapped on its own, its shadow poisoned, held in the quarantine, then unmapped,
 * each step a system call, page faults and a TLB shootdown: over half of the target's time went
 * there (tests/stress/README.md). Here a freed block of 1 MiB or more is kept, poisoned, for the
 * next allocation of the same size; LMDB's code is not instrumented, so ASan saw nothing inside
 * those blocks but their bounds anyway, and a use of a kept block by the daemon's code is still
 * reported (use-after-poison). No library does this: ASan's secondary allocator keeps no cache,
 * and none of its options changes that.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/allocator_interface.h>
#include <sanitizer/asan_interface.h>

#define BIG  (1u << 20) /* smaller blocks come from ASan's size classes, cheaply */
#define KEEP 8          /* a few of each size LMDB uses: nested and environment lists */

void *fuzz_lmdb_malloc(size_t n);
void *fuzz_lmdb_calloc(size_t n, size_t size);
void *fuzz_lmdb_realloc(void *p, size_t n);
void fuzz_lmdb_free(void *p);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *p;
	size_t n;
} kept[KEEP];

/* A kept block of exactly n bytes, unpoisoned, or NULL. */
static void *
take(size_t n)
{
	void *p = NULL;
	if (n < BIG)
		return NULL;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < KEEP && p == NULL; i++)
		if (kept[i].p != NULL && kept[i].n == n) {
			p = kept[i].p;
			kept[i].p = NULL;
		}
	pthread_mutex_unlock(&mu);
	if (p != NULL)
		ASAN_UNPOISON_MEMORY_REGION(p, n);
	return p;
}

void *
fuzz_lmdb_malloc(size_t n)
{
	void *p = take(n);
	return p != NULL ? p : malloc(n);
}

void *
fuzz_lmdb_calloc(size_t n, size_t size)
{
	void *p = NULL;
	if (size == 0 || n <= SIZE_MAX / size)
		p = take(n * size);
	if (p == NULL)
		return calloc(n, size);
	memset(p, 0, n * size);
	return p;
}

void *
fuzz_lmdb_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

void
fuzz_lmdb_free(void *p)
{
	size_t n = p != NULL ? __sanitizer_get_allocated_size(p) : 0;
	bool keep = false;
	if (n >= BIG) {
		pthread_mutex_lock(&mu);
		for (int i = 0; i < KEEP && !keep; i++)
			if (kept[i].p == NULL) {
				ASAN_POISON_MEMORY_REGION(p, n);
				kept[i].p = p;
				kept[i].n = n;
				keep = true;
			}
		pthread_mutex_unlock(&mu);
	}
	if (!keep)
		free(p);
}
