/*
 * crash.h: the state of a crash-trial run (crash_trial.c drives the trials, crash_check.c checks
 * what survived them). The client threads record every acknowledged append, import and delete
 * here while the daemon runs; after each kill or stop the checks hold the restarted daemon and its
 * store to those records.
 */
#ifndef HSAMEM_CRASH_H
#define HSAMEM_CRASH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"
#include "stress.h"

#define CR_MAX_WRITERS 16
#define CR_WORDS       24 /* words of an appended entry, at most */

/* One acknowledged append: entries with texts n .. n+count-1 got seqs seq .. seq+count-1. */
struct cr_ack {
	uint64_t seq, n;
	uint32_t count;
	unsigned trial;
};

/* A writer appends to a memory of its own, "w<id>-<gen>"; a generation ends (its memory is
 * checked in full and deleted) once it holds rotate_entries entries, to bound the store. */
struct cr_writer {
	unsigned id, gen;
	char user[32];
	uint64_t next_n; /* the text number of the next entry */
	struct cr_ack *acks;
	size_t n_acks, cap_acks;
	size_t trial_first;        /* acks[trial_first ..] are the current trial's */
	uint64_t last_seq;         /* seq after the last acknowledged append, for the order check */
	uint64_t appends, entries; /* acknowledged, over every generation */
};

/* An imported memory, named "imp<k>", and what was done to it. */
struct cr_obj {
	char name[32];
	bool import_acked;
	bool delete_tried, delete_acked;
	bool present; /* found complete by the last check, and not since tried for deletion */
	bool gone;    /* found absent: nothing more to do with it */
	unsigned trial;
};

struct cr_opts {
	bool kill, term; /* the modes to run; both alternate */
	unsigned trials, seconds, writers, max_delay_ms, import_kib, rotate_entries;
	unsigned importers; /* 0 or 1 */
	unsigned hang_ms;   /* SIGTERM to SIGKILL, when the daemon does not exit */
	uint64_t seed;
	bool verbose;
};

/* What every import must leave: the source memory's export stream and its counts. */
struct cr_source {
	struct st_buf stream;
	uint64_t entries, chunks, tokens;
	uint32_t tail_tokens;
};

struct cr_run {
	struct cr_opts o;
	struct harness h;
	uint64_t rng;
	struct cr_source src;
	struct cr_writer w[CR_MAX_WRITERS];
	pthread_mutex_t mu; /* objs, n_objs and the counters below, while client threads run */
	struct cr_obj *objs;
	size_t n_objs, cap_objs;
	unsigned trial;
	atomic_bool signalled; /* the daemon has been sent its signal this trial */
	atomic_bool stop;      /* client threads: end after the request in flight */
	/* counters */
	unsigned violations, trials_kill, trials_term, restarts, restart_failures;
	uint64_t entries_checked, entries_lost, objects_bad, imports_acked, imports_tried;
	uint64_t deletes_acked, deletes_tried, import_full_checks, unacked_present;
	uint64_t scans, scan_records;
	int64_t exit_ms_worst, exit_ms_total;
	unsigned exits_over_5s, hangs;
	uint64_t reads_done;
};

/* Reports a violation of what the daemon promises; counted, and the run ends non-zero. */
void cr_violation(struct cr_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds an acknowledged append to writer w (caller holds nothing: a writer's acks are its own). */
int cr_ack_add(struct cr_writer *w, uint64_t seq, uint64_t n, uint32_t count, unsigned trial);

/*
 * The checks, against the restarted daemon (c) once the client threads have ended: every append
 * of this trial that was acknowledged is there with its text; every import tried this trial, and
 * every memory tried for deletion, is complete or absent, as its acknowledgement requires.
 */
void cr_check_appends(struct cr_run *r, struct hsamem *c, bool all);
void cr_check_objects(struct cr_run *r, struct hsamem *c);
/* Checks every acknowledged append of writer w's current memory. */
void cr_check_writer(struct cr_run *r, struct hsamem *c, struct cr_writer *w);

/* Whether user's memory is exactly the source memory: 1 yes, 0 absent, -1 present but not the
 * same (the reason is written to why). full: compare whole export streams. */
int cr_same_as_source(struct cr_run *r, struct hsamem *c, const char *user, bool full, char *why,
                      size_t why_len);

/*
 * Reads the store of a stopped daemon straight from LMDB: every record belongs to a memory that
 * exists, and each memory has exactly the records its header counts. Reports violations.
 */
void cr_scan_store(struct cr_run *r);

#endif
