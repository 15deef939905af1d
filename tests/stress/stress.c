/*
 * stress.c: the stress harnesses' shared helpers (stress.h). Nothing here talks to the daemon
 * except st_export, through the public client library.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "hsamem.h"
#include "stress.h"

uint64_t
st_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t
st_below(uint64_t *state, uint64_t n)
{
	return n ? st_rand(state) % n : 0;
}

int64_t
st_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
st_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

size_t
st_entry_text(char *buf, size_t size, const char *who, uint64_t n, unsigned max_words)
{
	static const char *const words[] = {
	        "memory", "chunk",  "lantern", "river",  "copper", "orbit",  "quiet",  "harbour",
	        "signal", "meadow", "vector",  "pillow", "garnet", "thread", "summit", "candle",
	        "ledger", "falcon", "ember",   "tundra", "violet", "anchor", "sparrow"};
	uint64_t h = n * 0x9e3779b97f4a7c15ull + 1;
	for (const char *p = who; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	unsigned count = 1 + (unsigned)(st_rand(&h) % (max_words ? max_words : 1));
	size_t len = (size_t)snprintf(buf, size, "%s %llu", who, (unsigned long long)n);
	for (unsigned i = 0; i < count && len + 10 < size; i++)
		len += (size_t)snprintf(buf + len, size - len, " %s",
		                        words[st_rand(&h) % (sizeof(words) / sizeof(words[0]))]);
	return len < size ? len : size - 1;
}

int
st_buf_write(void *arg, const void *data, size_t len)
{
	struct st_buf *b = arg;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 16;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *grown = realloc(b->data, cap);
		if (grown == NULL)
			return -ENOMEM;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

long
st_buf_read(void *arg, void *data, size_t len)
{
	struct st_reader *r = arg;
	size_t left = r->buf->len - r->pos;
	if (len > left)
		len = left;
	memcpy(data, r->buf->data + r->pos, len);
	r->pos += len;
	return (long)len;
}

void
st_buf_free(struct st_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int
st_export(struct hsamem *h, const char *user, struct st_buf *b)
{
	b->len = 0;
	return hsamem_export_cb(h, user, st_buf_write, b, NULL);
}

int
st_proc_sample(pid_t pid, struct st_proc *out)
{
	char path[64], line[256];
	struct st_proc p = {0};
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "VmRSS: %ld", &p.rss_kib);
		sscanf(line, "VmHWM: %ld", &p.hwm_kib);
		sscanf(line, "RssAnon: %ld", &p.anon_kib);
		sscanf(line, "RssFile: %ld", &p.file_kib);
		sscanf(line, "Threads: %d", &p.threads);
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (d == NULL)
		return -errno;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		p.fds += e->d_name[0] != '.';
	closedir(d);
	*out = p;
	return 0;
}

static void
backtrace(pid_t pid)
{
	char cmd[200];
	if (getenv("HSAMEM_STRESS_GDB") == NULL)
		return;
	snprintf(cmd, sizeof(cmd),
	         "gdb -p %d -batch -ex 'thread apply all bt' </dev/null >&2 2>/dev/null", (int)pid);
	if (system(cmd) != 0)
		fprintf(stderr, "stress: gdb could not read the daemon's stacks\n");
}

int
st_stop(struct harness *h, int sig, unsigned hang_ms, int64_t *ms)
{
	int status = 0;
	int64_t t0 = st_now_ms();
	kill(h->pid, sig);
	for (;;) {
		pid_t got = waitpid(h->pid, &status, WNOHANG);
		*ms = st_now_ms() - t0;
		if (got == h->pid || (got < 0 && errno != EINTR))
			break;
		if (*ms > (int64_t)hang_ms) {
			backtrace(h->pid);
			kill(h->pid, SIGKILL);
			waitpid(h->pid, &status, 0);
			*ms = -1;
			break;
		}
		st_sleep_ms(2);
	}
	h->pid = 0;
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
