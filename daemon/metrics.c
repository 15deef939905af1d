/*
 * metrics.c: the Prometheus text renderer (metrics.h). Families are written in a fixed order with
 * their HELP and TYPE lines, and every series of a family is written even when it is zero, so a
 * graph has no gaps. Latency histograms expose every fifth bucket of stats.h (two per decade, from
 * 31.6 us to 10 s): cumulative counts of a subset of the bounds are exact. The text format is
 * simple enough that a library for it would be more code than the writer (the Debian-packaged
 * Prometheus client libraries are not for C).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "commit.h"
#include "config.h"
#include "daemon.h"
#include "dispatch.h"
#include "job.h"
#include "metrics.h"
#include "store.h"

/* The names of hsamem's error codes, -1001 onwards (stats.h, codes[]). */
static const char *const code_names[] = {
        "system",   "EPROTO",   "EVERSION", "EINVAL",  "ENOUSER",   "EEXIST",    "ESPEC",
        "ETOOBIG",  "EBADNAME", "ESTORE",   "EFORMAT", "EBUSY",     "ECONNECT",  "EBACKEND",
        "EENCODER", "ENOTSUP",  "EIMPORT",  "EFULL",   "EINTERNAL", "ENOTFOUND", "EPERM",
};
_Static_assert(sizeof(code_names) / sizeof(code_names[0]) <= STATS_CODES, "codes[] too small");

#ifdef HAVE_CUDA
#define BUILT_WITH_CUDA "yes"
#else
#define BUILT_WITH_CUDA "no"
#endif

#define LAT_STEP 5

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped. */
static void
label(FILE *f, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void
requests(FILE *f, const struct stats *st)
{
	family(f, "hsamem_requests_total", "counter", "Requests answered, by operation.");
	for (unsigned op = 0; op < st->n_ops; op++)
		fprintf(f, "hsamem_requests_total{op=\"%s\"} %" PRIu64 "\n", st->names[op],
		        stats_total(&st->hist[op]));
	family(f, "hsamem_request_errors_total", "counter",
	       "Requests answered with an error, by operation.");
	for (unsigned op = 0; op < st->n_ops; op++)
		fprintf(f, "hsamem_request_errors_total{op=\"%s\"} %" PRIu64 "\n", st->names[op],
		        (uint64_t)atomic_load_explicit(&st->op_errors[op], memory_order_relaxed));
	family(f, "hsamem_errors_total", "counter",
	       "Requests answered with an error, by error code (system: an errno).");
	for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
		fprintf(f, "hsamem_errors_total{code=\"%s\"} %" PRIu64 "\n", code_names[i],
		        (uint64_t)atomic_load_explicit(&st->codes[i], memory_order_relaxed));
	family(f, "hsamem_request_duration_seconds", "histogram",
	       "Time from a request's arrival to its reply, by operation.");
	for (unsigned op = 0; op < st->n_ops; op++) {
		const struct stats_hist *h = &st->hist[op];
		uint64_t seen = 0;
		for (int i = 0; i <= STATS_BUCKETS; i++) {
			seen += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
			if (i % LAT_STEP == LAT_STEP - 1 && i < STATS_BUCKETS)
				fprintf(f,
				        "hsamem_request_duration_seconds_bucket{op=\"%s\",le=\"%."
				        "3g\"} "
				        "%" PRIu64 "\n",
				        st->names[op], stats_bound_ms(i) / 1e3, seen);
		}
		/* _count is the +Inf bucket's sum, taken once: both read the same */
		fprintf(f,
		        "hsamem_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %" PRIu64
		        "\n"
		        "hsamem_request_duration_seconds_sum{op=\"%s\"} %.9f\n"
		        "hsamem_request_duration_seconds_count{op=\"%s\"} %" PRIu64 "\n",
		        st->names[op], seen, st->names[op],
		        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9,
		        st->names[op], seen);
	}
}

static void
commits(FILE *f, struct commit *c)
{
	uint64_t n = 0, applied = 0, counts[COMMIT_BATCH_BUCKETS], jobs, seen = 0;
	commit_counters(c, &n, &applied);
	commit_batches(c, counts, &jobs);
	family(f, "hsamem_commits_total", "counter", "Group commits of the store.");
	fprintf(f, "hsamem_commits_total %" PRIu64 "\n", n);
	family(f, "hsamem_committed_writes_total", "counter",
	       "Writes that group commits applied without error.");
	fprintf(f, "hsamem_committed_writes_total %" PRIu64 "\n", applied);
	family(f, "hsamem_commit_batch_size", "histogram", "Writes per group commit.");
	for (unsigned i = 0; i < COMMIT_BATCH_BUCKETS; i++) {
		seen += counts[i];
		fprintf(f, "hsamem_commit_batch_size_bucket{le=\"%llu\"} %" PRIu64 "\n", 1ull << i,
		        seen);
	}
	fprintf(f,
	        "hsamem_commit_batch_size_bucket{le=\"+Inf\"} %" PRIu64 "\n"
	        "hsamem_commit_batch_size_sum %" PRIu64 "\n"
	        "hsamem_commit_batch_size_count %" PRIu64 "\n",
	        seen, jobs, seen);
}

static void
backend(FILE *f, struct daemon *d)
{
	struct gpu_backend *b = d->gpu != NULL && atomic_load(&d->gpu_ok) ? d->gpu : d->cpu;
	struct gpu_stats gs;
	memset(&gs, 0, sizeof(gs));
	b->ops->stats(b, &gs);
	family(f, "hsamem_backend_info", "gauge", "The compute backend serving now (value 1).");
	fprintf(f, "hsamem_backend_info{backend=\"");
	label(f, gs.name);
	fprintf(f, "\",device=\"");
	label(f, gs.device);
	fprintf(f, "\"} 1\n");
#define GS(fam, type, help, value)                                                                 \
	do {                                                                                       \
		family(f, fam, type, help);                                                        \
		fprintf(f, fam "{backend=\"");                                                     \
		label(f, gs.name);                                                                 \
		fprintf(f, "\"} %" PRIu64 "\n", (uint64_t)(value));                                \
	} while (0)
	GS("hsamem_backend_calls_total", "counter", "Attention calls the backend served.",
	   gs.calls);
	GS("hsamem_backend_errors_total", "counter", "Attention calls the backend failed.",
	   gs.errors);
	GS("hsamem_gpu_memory_budget_bytes", "gauge", "Device memory the backend may use (0: cpu).",
	   gs.mem_budget);
	GS("hsamem_gpu_memory_used_bytes", "gauge", "Device memory the backend uses.", gs.mem_used);
	GS("hsamem_gpu_resident_memories", "gauge", "Memories whose landmarks are on the device.",
	   gs.resident_users);
#undef GS
	const char *caches[] = {"landmark", "chunk"}, *kinds[] = {"hits", "misses"};
	const char *helps[] = {"Landmark rows and selected chunks found on the device.",
	                       "Landmark rows and selected chunks copied to the device."};
	uint64_t v[2][2] = {{gs.lmk_hits, gs.chunk_hits}, {gs.lmk_misses, gs.chunk_misses}};
	for (int m = 0; m < 2; m++) {
		char name[64];
		snprintf(name, sizeof(name), "hsamem_gpu_cache_%s_total", kinds[m]);
		family(f, name, "counter", helps[m]);
		for (int i = 0; i < 2; i++) {
			fprintf(f, "%s{backend=\"", name);
			label(f, gs.name);
			fprintf(f, "\",cache=\"%s\"} %" PRIu64 "\n", caches[i], v[m][i]);
		}
	}
}

/* The per-memory families: name and help. */
static const char *const mem_families[4][2] = {
        {"hsamem_memory_entries", "Entries appended to a memory."},
        {"hsamem_memory_tokens", "Tokens in a memory's stream."},
        {"hsamem_memory_chunks", "Sealed chunks of a memory."},
        {"hsamem_memory_bytes", "Stored K/V and landmark bytes of a memory."},
};

struct mem_walk {
	FILE *f[4];
	const struct acl *acl;
	const struct acl_id *id;
	const char *only;
	uint64_t n;
};

static int
mem_cb(const struct store_user *u, void *arg)
{
	struct mem_walk *w = arg;
	if (u->flags & STORE_USER_IMPORTING)
		return 0;
	if (w->acl != NULL && !w->id->admin && !acl_may_use(w->acl, w->id, u->name))
		return 0;
	if (w->only != NULL && strcmp(w->only, u->name) != 0)
		return 0;
	uint64_t bytes = u->n_chunks * (spec_kv_bytes(&u->spec) + spec_landmark_bytes(&u->spec));
	uint64_t v[4] = {u->n_entries, u->n_tokens, u->n_chunks, bytes};
	w->n++;
	/* user names are letters, digits and _.@:- (hsamem(7)): nothing to escape. A scrape writes
	 * four lines for each memory: put together by hand and written with one fwrite each, which
	 * halved a scrape's cost beside fprintf (bench/RESULTS.md, Metrics scrape). */
	char line[HSAMEM_NAME_MAX + 64];
	size_t name_len = strlen(u->name);
	for (int i = 0; i < 4; i++) {
		size_t fl = strlen(mem_families[i][0]), n = 0;
		char digits[20];
		int nd = 0;
		memcpy(line, mem_families[i][0], fl);
		memcpy(line + fl, "{memory=\"", 9);
		memcpy(line + fl + 9, u->name, name_len);
		n = fl + 9 + name_len;
		memcpy(line + n, "\"} ", 3);
		n += 3;
		uint64_t x = v[i];
		do
			digits[nd++] = (char)('0' + x % 10);
		while ((x /= 10) != 0);
		while (nd > 0)
			line[n++] = digits[--nd];
		line[n++] = '\n';
		fwrite(line, 1, n, w->f[i]);
	}
	return 0;
}

/* The per-memory families, written each into its own stream and then appended in order. */
static int
memories(FILE *f, struct store_txn *txn, struct mem_walk *w)
{
	char *buf[4] = {NULL};
	size_t len[4] = {0};
	int ret = 0, i;
	for (i = 0; i < 4; i++)
		if ((w->f[i] = open_memstream(&buf[i], &len[i])) == NULL)
			ret = -ENOMEM;
	if (ret == 0)
		ret = store_user_foreach(txn, mem_cb, w);
	for (i = 0; i < 4; i++)
		if (w->f[i] != NULL && fclose(w->f[i]) != 0 && ret == 0)
			ret = -ENOMEM;
	if (ret == 0) {
		family(f, "hsamem_memories", "gauge", "Memories listed below.");
		fprintf(f, "hsamem_memories %" PRIu64 "\n", w->n);
		for (i = 0; i < 4; i++) {
			family(f, mem_families[i][0], "gauge", mem_families[i][1]);
			fwrite(buf[i], 1, len[i], f);
		}
	}
	for (i = 0; i < 4; i++)
		free(buf[i]);
	return ret;
}

int
metrics_render(struct daemon *d, struct store_txn *txn, const struct acl *acl,
               const struct acl_id *id, const char *only, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	struct store_info si = {0};
	struct mem_walk w = {.acl = acl, .id = id, .only = only};
	int ret;

	if (f == NULL)
		return -ENOMEM;
	family(f, "hsamem_build_info", "gauge", "The version of hsamemd and how it was built (1).");
	fprintf(f, "hsamem_build_info{version=\"%s\",cuda=\"%s\"} 1\n", PACKAGE_VERSION,
	        BUILT_WITH_CUDA);
	family(f, "hsamem_uptime_seconds", "gauge", "Seconds since hsamemd started.");
	fprintf(f, "hsamem_uptime_seconds %.3f\n", (double)(now_ms() - d->started_ms) / 1e3);
	requests(f, &d->stats);
	commits(f, d->commit);
	store_info(d->store, &si);
	family(f, "hsamem_store_map_size_bytes", "gauge", "Size of the store's LMDB map.");
	fprintf(f, "hsamem_store_map_size_bytes %" PRIu64 "\n", si.map_size);
	family(f, "hsamem_store_map_used_bytes", "gauge", "Bytes of the store's map in use.");
	fprintf(f, "hsamem_store_map_used_bytes %" PRIu64 "\n", si.map_used);
	backend(f, d);
	ret = memories(f, txn, &w);
	if (fclose(f) != 0 && ret == 0)
		ret = -ENOMEM;
	if (ret != 0) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = n;
	return 0;
}
