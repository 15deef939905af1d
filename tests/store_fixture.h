/*
 * store_fixture.h: what the store's tests (test_store.c, test_store_codec.c) share: a temporary
 * root (mkdtemp in $TMPDIR or /tmp) with a directory of its own for each case, removed at the end,
 * the spec of their users, and a store and user opened or created under checks. Functions here are
 * static inline: their checks count in the test's own test.h counters.
 * TEST_VERBOSE=1 shows the store's log.
 */
#ifndef HSAMEM_STORE_FIXTURE_H
#define HSAMEM_STORE_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "store.h"
#include "test.h"

static char root[4096];
static const char *fixture_name;

/* A fresh, empty directory for one case. */
static inline const char *
new_dir(const char *name)
{
	static char path[4200];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	if (mkdir(path, 0700) != 0) {
		perror(path);
		exit(1);
	}
	return path;
}

static inline int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline struct hsa_spec
spec_of(uint32_t d_r, enum hsa_dtype dtype)
{
	return (struct hsa_spec){.encoder = "client",
	                         .revision = 3,
	                         .tokenizer = "bytes",
	                         .S = 4,
	                         .h_kv = 1,
	                         .d_h = 4,
	                         .h_q = 2,
	                         .d_r = d_r,
	                         .dtype = dtype,
	                         .weighting = HSA_STICKBREAK,
	                         .off_by_one = true,
	                         .top_k = 8};
}

static inline bool
spec_eq(const struct hsa_spec *a, const struct hsa_spec *b)
{
	return strcmp(a->encoder, b->encoder) == 0 && a->revision == b->revision &&
	       strcmp(a->tokenizer, b->tokenizer) == 0 && a->S == b->S && a->h_kv == b->h_kv &&
	       a->d_h == b->d_h && a->h_q == b->h_q && a->d_r == b->d_r && a->dtype == b->dtype &&
	       a->weighting == b->weighting && a->off_by_one == b->off_by_one &&
	       a->top_k == b->top_k;
}

static inline struct store *
open_store(const char *dir, const struct store_opts *opts)
{
	struct store *st = NULL;
	int ret = store_open(dir, opts, &st);
	CHECK_RET(ret, 0);
	if (ret != 0)
		exit(test_done(fixture_name));
	return st;
}

static inline struct store_user
create_user(struct store *st, const char *name, struct hsa_spec spec)
{
	struct store_user u = {.spec = spec, .created_ms = 1700000000000};
	struct store_txn txn;
	snprintf(u.name, sizeof(u.name), "%s", name);
	CHECK_RET(store_txn_begin(st, &txn, true, NULL), 0);
	CHECK_RET(store_user_create(&txn, &u), 0);
	CHECK_RET(store_txn_commit(&txn), 0);
	return u;
}

/* Makes the root for the test called name and quiets the log; returns 0, or 1 on failure. */
static inline int
fixture_start(const char *name)
{
	const char *tmp = getenv("TMPDIR");
	fixture_name = name;
	snprintf(root, sizeof(root), "%s/%s.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp", name);
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(getenv("TEST_VERBOSE") != NULL ? LOG_DEBUG : LOG_CRIT);
	return 0;
}

/* Removes the root; returns the test's exit status (test_done). */
static inline int
fixture_end(void)
{
	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return test_done(fixture_name);
}

#endif
