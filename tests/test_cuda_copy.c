/*
 * test_cuda_copy.c: the copy pool of the CUDA backend (gpu/cuda_copy.h), on any host: thousands
 * of rounds of random size, woken early or late or not at all, jobs published a few at a time
 * while the pool copies, copies read through a source's copy_kv, a source that fails, rounds
 * cancelled halfway, and the batches reported copied only when each of their jobs is done.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_copy.h"
#include "hsamem.h"
#include "test.h"

#define BYTES  256
#define MAXJ   600
#define ROUNDS 20000

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static uint8_t src[MAXJ][BYTES], dst[MAXJ][BYTES];

/* A source whose chunk j holds bytes j + 1; reading chunk fail_at fails. */
struct fake {
	uint64_t fail_at;
};

static int
fake_copy_kv(void *ctx, uint64_t j, void *out)
{
	struct fake *f = ctx;
	if (j == f->fail_at)
		return HSAMEM_ESTORE;
	memset(out, (int)(j + 1), BYTES);
	return 0;
}

static struct fake fk = {.fail_at = UINT64_MAX};
static struct hsa_source fsrc = {.ctx = &fk, .copy_kv = fake_copy_kv};

int
main(void)
{
	struct cpool cp;
	int bad = 0, errors_seen = 0;

	cp_init(&cp);
	CHECK_RET(cp_reserve(&cp, MAXJ), 0);
	/* no thread yet: the caller copies alone */
	for (int round = 0; round < ROUNDS; round++) {
		if (round == ROUNDS / 3)
			CHECK(cp_start(&cp, 4));
		uint32_t n = rnd(MAXJ + 1), batch = 1 + rnd(40), how = rnd(4);
		bool fail = rnd(10) == 0 && n > 0;
		fk.fail_at = fail ? rnd(n) : UINT64_MAX;
		if (how == 0)
			cp_wake(&cp);
		cp_begin(&cp, BYTES, batch, n);
		memset(dst, 0, sizeof(dst));
		if (how == 3 && n > 1) {
			/* cancelled halfway: the published jobs are done, the round ends */
			for (uint32_t j = 0; j < n / 2; j++) {
				memset(src[j], (int)(j * 7), BYTES);
				cp.job[j] = (struct cp_job){.dst = dst[j], .src = src[j]};
			}
			cp_publish(&cp, n / 2);
			cp_cancel(&cp);
			while (cp_help(&cp))
				;
			continue;
		}
		for (uint32_t j = 0; j < n; j++) {
			if (j % 3 == 0) {
				cp.job[j] = (struct cp_job){.dst = dst[j], .from = &fsrc, .j = j};
			} else {
				memset(src[j], (int)(j * 7), BYTES);
				cp.job[j] = (struct cp_job){.dst = dst[j], .src = src[j]};
			}
			if (j % 4 == 3) {
				cp_publish(&cp, j + 1);
				/* only whole published batches count, and only once copied */
				uint32_t c = cp_copied(&cp, 0, j + 1, false);
				bad += c % batch != 0 || c > j + 1;
			}
		}
		cp_close(&cp, n, how != 2);
		while (cp_copied(&cp, 0, n, true) < n)
			if (!cp_help(&cp))
				cp_relax();
		int err = cp_error(&cp);
		/* a failed copy_kv reads as the round's error; every other job is done */
		if (fk.fail_at != UINT64_MAX && fk.fail_at % 3 == 0) {
			bad += err != HSAMEM_ESTORE;
			errors_seen++;
		} else {
			bad += err != 0;
		}
		for (uint32_t j = 0; j < n; j++) {
			uint8_t want = j % 3 == 0 ? (uint8_t)(j + 1) : (uint8_t)(j * 7);
			if (j % 3 == 0 && j == fk.fail_at)
				continue;
			bad += dst[j][0] != want || dst[j][BYTES - 1] != want;
		}
	}
	CHECK(bad == 0);
	CHECK(errors_seen > 0);
	cp_stop(&cp);
	return test_done("test_cuda_copy");
}
