/*
 * stress.h: what the stress harnesses of tests/stress share: a seeded random generator, clocks,
 * the text of generated entries, an export stream kept in memory, and the daemon's resource
 * counters read from /proc.
 */
#ifndef HSAMEM_STRESS_H
#define HSAMEM_STRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct harness;
struct hsamem;

/* xorshift64*: small, fast, and the same sequence for the same seed everywhere. */
uint64_t st_rand(uint64_t *state);
/* A number in [0, n) (0 when n is 0). */
uint64_t st_below(uint64_t *state, uint64_t n);

int64_t st_now_ms(void);
void st_sleep_ms(int ms);

/*
 * Writes the text of entry n of the stream named who: it starts "who n " and goes on with words
 * drawn from a hash of (who, n), so that a text can be checked again from its two numbers without
 * keeping it. max_words bounds its length (at least 1). Returns the text's length.
 */
size_t st_entry_text(char *buf, size_t size, const char *who, uint64_t n, unsigned max_words);

/* An export stream in memory: filled by hsamem_export_cb(st_buf_write), read back by
 * hsamem_import_cb(st_buf_read) from a cursor of one's own. */
struct st_buf {
	uint8_t *data;
	size_t len, cap;
};
struct st_reader {
	const struct st_buf *buf;
	size_t pos;
};
int st_buf_write(void *arg, const void *data, size_t len);
long st_buf_read(void *arg, void *data, size_t len);
void st_buf_free(struct st_buf *b);
/* Exports user into b (emptied first). Returns hsamem_export_cb's result. */
int st_export(struct hsamem *h, const char *user, struct st_buf *b);

/* The daemon's resources, from /proc/PID: resident memory (all of it, its anonymous part, and
 * the part mapped from files: LMDB's map, the libraries), the peak of it, open descriptors,
 * threads. */
struct st_proc {
	long rss_kib, anon_kib, file_kib;
	long hwm_kib;
	int fds;
	int threads;
};
int st_proc_sample(pid_t pid, struct st_proc *out);

/*
 * Sends sig to the harness's daemon and waits up to hang_ms for it to exit; a daemon still there
 * then is killed (SIGKILL), after its threads' stacks were printed when HSAMEM_STRESS_GDB is set
 * (gdb -p). *ms: how long it took, -1 for a hang. Returns the exit status, 128+signal if killed.
 */
int st_stop(struct harness *h, int sig, unsigned hang_ms, int64_t *ms);

#endif
