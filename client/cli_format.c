/*
 * cli_format.c: how the hsamem CLI shows what the daemon says of itself and of its memories (ping,
 * version, a memory, users, stats) and what a write did (append, flush, delete, import).
 *
 * Each result is described once here: its shape (every field, for JSON), the columns of its
 * tables, and the sentences people read, beside it; cli_render.c renders them. The order of a
 * shape's fields is the order of the JSON document, which scripts may rely on: append, do not
 * reorder. cli_format_content.c does the same for what is read out of a memory.
 */
#include "config.h"

#include <stdio.h>

#include "cli_format.h"
#include "cli_json.h"
#include "cli_render.h"
#include "cli_text.h"

/* ---- version and ping ---- */

struct version {
	const char *version;
	const char *library;
	uint32_t protocol;
};

static const struct field version_fields[] = {
        FIELD(struct version, version, K_STR),
        FIELD(struct version, library, K_STR),
        FIELD(struct version, protocol, K_U32),
};
static const struct shape version_shape = SHAPE(struct version, version_fields);

static void
version_human(const struct view *v)
{
	const struct version *ver = v->res;

	printf("hsamem %s (libhsamem %s, protocol %u)\n", ver->version, ver->library,
	       ver->protocol);
}

static const struct result version_result = {&version_shape, 0, version_human};

void
print_version(void)
{
	struct version ver = {PACKAGE_VERSION, hsamem_version(), HSAMEM_PROTOCOL_VERSION};

	render(&version_result, &(struct view){.res = &ver});
}

static const struct field server_fields[] = {
        FIELD(struct hsamem_server, server_version, K_STR),
        FIELD(struct hsamem_server, protocol_version, K_U32),
        FIELD(struct hsamem_server, backend, K_STR),
        FIELD(struct hsamem_server, uptime_ms, K_U64),
};
static const struct shape server_shape = SHAPE(struct hsamem_server, server_fields);

static void
ping_human(const struct view *v)
{
	const struct hsamem_server *s = v->res;
	char up[24];

	printf("hsamemd %s at %s: protocol %u, backend %s, up %s, round trip %.2f ms\n",
	       s->server_version[0] != '\0' ? s->server_version : "?", v->url, s->protocol_version,
	       s->backend[0] != '\0' ? s->backend : "?", fmt_duration(s->uptime_ms, up, sizeof(up)),
	       v->rtt_ms);
}

static const struct result ping_result = {&server_shape, W_URL, ping_human};

void
print_ping(const char *url, const struct hsamem_server *s, double rtt_ms)
{
	render(&ping_result, &(struct view){.res = s, .url = url, .rtt_ms = rtt_ms});
}

/* ---- memories ---- */

static const char *
name_or(const char *name, const char *dflt)
{
	return name != NULL ? name : dflt;
}

static const struct field spec_fields[] = {
        FIELD(struct hsamem_spec, encoder, K_STR),
        FIELD(struct hsamem_spec, revision, K_U32),
        FIELD(struct hsamem_spec, tokenizer, K_STR),
        FIELD(struct hsamem_spec, chunk_size, K_U32),
        FIELD(struct hsamem_spec, h_kv, K_U32),
        FIELD(struct hsamem_spec, d_h, K_U32),
        FIELD(struct hsamem_spec, h_q, K_U32),
        FIELD(struct hsamem_spec, d_r, K_U32),
        FIELD(struct hsamem_spec, dtype, K_DTYPE),
        FIELD(struct hsamem_spec, weighting, K_WEIGHTING),
        FIELD(struct hsamem_spec, off_by_one, K_BOOL),
        FIELD(struct hsamem_spec, top_k, K_U32),
};
static const struct shape spec_shape = SHAPE(struct hsamem_spec, spec_fields);

static const struct field memory_fields[] = {
        FIELD(struct hsamem_memory, user, K_STR),
        OBJECT(struct hsamem_memory, spec, &spec_shape),
        FIELD(struct hsamem_memory, entries, K_U64),
        FIELD(struct hsamem_memory, tokens, K_U64),
        FIELD(struct hsamem_memory, chunks, K_U64),
        FIELD(struct hsamem_memory, tail_tokens, K_U32),
        FIELD(struct hsamem_memory, bytes, K_U64),
        FIELD(struct hsamem_memory, created_ms, K_I64),
        FIELD(struct hsamem_memory, updated_ms, K_I64),
};
static const struct shape memory_shape = SHAPE(struct hsamem_memory, memory_fields);

static void
memory_block(const struct hsamem_memory *m)
{
	const struct hsamem_spec *s = &m->spec;
	char b[16], t1[24], t2[24];

	printf("%s\n", m->user);
	printf("  encoder     %s (revision %u)%s%s\n", s->encoder, s->revision,
	       s->tokenizer[0] != '\0' ? ", tokenizer " : "", s->tokenizer);
	printf("  shape       S %u, h_kv %u, d_h %u, h_q %u, d_r %u\n", s->chunk_size, s->h_kv,
	       s->d_h, s->h_q, s->d_r);
	printf("  dtype       %s\n", name_or(hsamem_dtype_name(s->dtype), "?"));
	printf("  weighting   %s%s\n", name_or(hsamem_weighting_name(s->weighting), "?"),
	       s->off_by_one ? ", softmax-off-by-one in chunks" : "");
	printf("  top_k       %u\n", s->top_k);
	printf("  stored      %llu entries, %llu tokens, %llu chunks + %u tail tokens, %s\n",
	       (unsigned long long)m->entries, (unsigned long long)m->tokens,
	       (unsigned long long)m->chunks, m->tail_tokens, fmt_bytes(m->bytes, b, sizeof(b)));
	printf("  created     %s, updated %s\n", fmt_time(m->created_ms, t1, sizeof(t1)),
	       fmt_time(m->updated_ms, t2, sizeof(t2)));
}

static void
memory_human(const struct view *v)
{
	memory_block(v->res);
}

static const struct result memory_result = {&memory_shape, 0, memory_human};

void
print_memory(const struct hsamem_memory *m)
{
	render(&memory_result, &(struct view){.res = m});
}

static const struct column memory_cols[] = {
        {.head = "USER", .width = -24, .field = "user"},
        {.head = "ENCODER", .width = -12, .gap = 1, .field = "spec.encoder"},
        {.head = "ENTRIES", .width = 9, .gap = 1, .field = "entries"},
        {.head = "TOKENS", .width = 11, .gap = 1, .field = "tokens"},
        {.head = "CHUNKS", .width = 9, .gap = 1, .field = "chunks"},
        {.head = "TAIL", .width = 5, .gap = 1, .field = "tail_tokens"},
        {.head = "SIZE", .width = 10, .gap = 1, .field = "bytes", .show = SHOW_BYTES},
        {.head = "UPDATED", .gap = 2, .field = "updated_ms", .show = SHOW_TIME},
};
static const struct table memory_table = TABLE(memory_shape, memory_cols);

static const struct field user_list_fields[] = {
        ARRAY(struct hsamem_user_list, users, K_OBJS, n_users, &memory_shape),
};
static const struct shape user_list_shape = SHAPE(struct hsamem_user_list, user_list_fields);

static void
users_human(const struct view *v)
{
	const struct hsamem_user_list *l = v->res;

	if (l->n_users == 0)
		printf("no memories\n");
	else
		render_table(&memory_table, l->users, l->n_users, 0);
}

static const struct result users_result = {&user_list_shape, 0, users_human};

void
print_users(const struct hsamem_user_list *l)
{
	render(&users_result, &(struct view){.res = l});
}

/* ---- stats ---- */

/* A histogram has one count more than bounds: the last bucket is past the last bound. */
static void
json_counts(const char *key, const void *base)
{
	const struct hsamem_histogram *hg = base;

	j_arr(key);
	for (size_t i = 0; i < hg->n_bounds + 1; i++)
		j_u64(NULL, hg->counts[i]);
	j_end();
}

static const struct field histogram_fields[] = {
        FIELD(struct hsamem_histogram, name, K_STR),
        ARRAY(struct hsamem_histogram, bounds_ms, K_F64S, n_bounds, NULL),
        {.name = "counts", .kind = K_CUSTOM, .json = json_counts},
        FIELD(struct hsamem_histogram, total, K_U64),
        FIELD(struct hsamem_histogram, p50_ms, K_F64),
        FIELD(struct hsamem_histogram, p99_ms, K_F64),
};
static const struct shape histogram_shape = SHAPE(struct hsamem_histogram, histogram_fields);

static const struct field stats_fields[] = {
        FIELD(struct hsamem_stats, users, K_U64),
        FIELD(struct hsamem_stats, tokens, K_U64),
        FIELD(struct hsamem_stats, chunks, K_U64),
        FIELD(struct hsamem_stats, store_map_size, K_U64),
        FIELD(struct hsamem_stats, store_map_used, K_U64),
        FIELD(struct hsamem_stats, text_bytes, K_U64),
        FIELD(struct hsamem_stats, backend, K_STR),
        FIELD(struct hsamem_stats, gpu_mem_used, K_U64),
        FIELD(struct hsamem_stats, gpu_mem_budget, K_U64),
        FIELD(struct hsamem_stats, gpu_resident_users, K_U64),
        FIELD(struct hsamem_stats, landmark_hits, K_U64),
        FIELD(struct hsamem_stats, landmark_misses, K_U64),
        FIELD(struct hsamem_stats, chunk_hits, K_U64),
        FIELD(struct hsamem_stats, chunk_misses, K_U64),
        FIELD(struct hsamem_stats, requests, K_U64),
        FIELD(struct hsamem_stats, errors, K_U64),
        FIELD(struct hsamem_stats, commits, K_U64),
        FIELD(struct hsamem_stats, committed_appends, K_U64),
        FIELD(struct hsamem_stats, uptime_ms, K_U64),
        ARRAY(struct hsamem_stats, latency, K_OBJS, n_latency, &histogram_shape),
        ARRAY(struct hsamem_stats, memories, K_OBJS, n_memories, &memory_shape),
};
static const struct shape stats_shape = SHAPE(struct hsamem_stats, stats_fields);

static const struct column latency_cols[] = {
        {.head = "LATENCY", .width = -16, .field = "name", .show = SHOW_CLEAN},
        {.head = "COUNT", .width = 10, .gap = 1, .field = "total"},
        {.head = "P50 MS", .width = 10, .gap = 1, .field = "p50_ms", .show = SHOW_MS},
        {.head = "P99 MS", .width = 10, .gap = 1, .field = "p99_ms", .show = SHOW_MS},
};
static const struct table latency_table = TABLE(histogram_shape, latency_cols);

static double
ratio(uint64_t hits, uint64_t misses)
{
	return hits + misses == 0 ? 0 : 100.0 * (double)hits / (double)(hits + misses);
}

static void
stats_human(const struct view *v)
{
	const struct hsamem_stats *s = v->res;
	char b1[16], b2[16], up[24];

	printf("uptime        %s\n", fmt_duration(s->uptime_ms, up, sizeof(up)));
	printf("backend       %s\n", s->backend[0] != '\0' ? s->backend : "?");
	printf("memories      %llu users, %llu tokens, %llu chunks\n", (unsigned long long)s->users,
	       (unsigned long long)s->tokens, (unsigned long long)s->chunks);
	printf("store         %s used of a %s map\n", fmt_bytes(s->store_map_used, b1, sizeof(b1)),
	       fmt_bytes(s->store_map_size, b2, sizeof(b2)));
	if (s->tokens > 0 && s->text_bytes > 0)
		printf("storage       %.1f bytes a token; %.1f times the text (%s)\n",
		       (double)s->store_map_used / (double)s->tokens,
		       (double)s->store_map_used / (double)s->text_bytes,
		       fmt_bytes(s->text_bytes, b1, sizeof(b1)));
	printf("gpu memory    %s used of %s, %llu users resident\n",
	       fmt_bytes(s->gpu_mem_used, b1, sizeof(b1)),
	       fmt_bytes(s->gpu_mem_budget, b2, sizeof(b2)),
	       (unsigned long long)s->gpu_resident_users);
	printf("caches        landmarks %.1f%% hits (%llu/%llu), chunks %.1f%% hits (%llu/%llu)\n",
	       ratio(s->landmark_hits, s->landmark_misses), (unsigned long long)s->landmark_hits,
	       (unsigned long long)(s->landmark_hits + s->landmark_misses),
	       ratio(s->chunk_hits, s->chunk_misses), (unsigned long long)s->chunk_hits,
	       (unsigned long long)(s->chunk_hits + s->chunk_misses));
	printf("requests      %llu (%llu errors); %llu appends in %llu group commits\n",
	       (unsigned long long)s->requests, (unsigned long long)s->errors,
	       (unsigned long long)s->committed_appends, (unsigned long long)s->commits);
	if (s->n_latency > 0) {
		putchar('\n');
		render_table(&latency_table, s->latency, s->n_latency, 0);
	}
	if (s->n_memories == 1) {
		putchar('\n');
		memory_block(&s->memories[0]);
	} else if (s->n_memories > 1) {
		putchar('\n');
		render_table(&memory_table, s->memories, s->n_memories, 0);
	}
}

static const struct result stats_result = {&stats_shape, 0, stats_human};

void
print_stats(const struct hsamem_stats *s)
{
	render(&stats_result, &(struct view){.res = s});
}

/* ---- what writes did ---- */

static const struct field append_fields[] = {
        FIELD(struct hsamem_append_info, first_seq, K_U64),
        FIELD(struct hsamem_append_info, count, K_U32),
        FIELD(struct hsamem_append_info, tokens, K_U64),
        FIELD(struct hsamem_append_info, chunks, K_U64),
        FIELD(struct hsamem_append_info, sealed, K_U32),
        FIELD(struct hsamem_append_info, created, K_BOOL),
};
static const struct shape append_shape = SHAPE(struct hsamem_append_info, append_fields);

static void
append_human(const struct view *v)
{
	const struct hsamem_append_info *a = v->res;

	printf("%s: appended %u %s (seq %llu", v->user, a->count,
	       a->count == 1 ? "entry" : "entries", (unsigned long long)a->first_seq);
	if (a->count > 1)
		printf("..%llu", (unsigned long long)(a->first_seq + a->count - 1));
	printf("); %llu tokens, %llu chunks, %u sealed now%s\n", (unsigned long long)a->tokens,
	       (unsigned long long)a->chunks, a->sealed, a->created ? "; memory created" : "");
}

static const struct result append_result = {&append_shape, W_USER, append_human};

void
print_append(const char *user, const struct hsamem_append_info *a)
{
	render(&append_result, &(struct view){.res = a, .user = user});
}

static const struct field flush_fields[] = {
        FIELD(struct hsamem_flush_info, chunks, K_U64),
        FIELD(struct hsamem_flush_info, sealed, K_BOOL),
};
static const struct shape flush_shape = SHAPE(struct hsamem_flush_info, flush_fields);

static void
flush_human(const struct view *v)
{
	const struct hsamem_flush_info *f = v->res;

	printf("%s: %s; %llu chunks\n", v->user,
	       f->sealed ? "sealed the tail as a padded chunk" : "nothing to seal",
	       (unsigned long long)f->chunks);
}

static const struct result flush_result = {&flush_shape, W_USER, flush_human};

void
print_flush(const char *user, const struct hsamem_flush_info *f)
{
	render(&flush_result, &(struct view){.res = f, .user = user});
}

static const struct field delete_fields[] = {
        FIELD(struct hsamem_delete_info, entries, K_U64),
        FIELD(struct hsamem_delete_info, chunks, K_U64),
};
static const struct shape delete_shape = SHAPE(struct hsamem_delete_info, delete_fields);

static void
delete_human(const struct view *v)
{
	const struct hsamem_delete_info *d = v->res;

	printf("%s: deleted %llu entries and %llu chunks\n", v->user,
	       (unsigned long long)d->entries, (unsigned long long)d->chunks);
}

static const struct result delete_result = {&delete_shape, W_USER, delete_human};

void
print_delete(const char *user, const struct hsamem_delete_info *d)
{
	render(&delete_result, &(struct view){.res = d, .user = user});
}

static const struct field transfer_fields[] = {
        FIELD(struct hsamem_transfer, records, K_U64),
        FIELD(struct hsamem_transfer, bytes, K_U64),
        FIELD(struct hsamem_transfer, entries, K_U64),
        FIELD(struct hsamem_transfer, chunks, K_U64),
        FIELD(struct hsamem_transfer, requests, K_U32),
};
static const struct shape transfer_shape = SHAPE(struct hsamem_transfer, transfer_fields);

static void
transfer_human(const struct view *v)
{
	const struct hsamem_transfer *t = v->res;
	char b[16];

	printf("%s: %s %llu entries and %llu chunks (%llu records, %s, %u requests)\n", v->user,
	       v->verb, (unsigned long long)t->entries, (unsigned long long)t->chunks,
	       (unsigned long long)t->records, fmt_bytes(t->bytes, b, sizeof(b)), t->requests);
}

static const struct result transfer_result = {&transfer_shape, W_USER, transfer_human};

void
print_transfer(const char *verb, const char *user, const struct hsamem_transfer *t)
{
	render(&transfer_result, &(struct view){.res = t, .user = user, .verb = verb});
}

static void
json_encoder(const char *key, const void *base)
{
	j_str(key, ((const struct hsamem_reencode_info *)base)->encoder);
}

static const struct field reencode_fields[] = {
        FIELD(struct hsamem_reencode_info, switched, K_BOOL),
        {.name = "encoder", .kind = K_CUSTOM, .json = json_encoder},
        FIELD(struct hsamem_reencode_info, revision, K_U32),
        FIELD(struct hsamem_reencode_info, entries_total, K_U64),
        FIELD(struct hsamem_reencode_info, chunks, K_U64),
        FIELD(struct hsamem_reencode_info, tokens, K_U64),
};
static const struct shape reencode_shape = SHAPE(struct hsamem_reencode_info, reencode_fields);

static void
reencode_human(const struct view *v)
{
	const struct hsamem_reencode_info *r = v->res;

	if (!r->switched)
		printf("%s: already encoded by %s revision %u; nothing to do\n", v->user,
		       r->encoder, r->revision);
	else
		printf("%s: re-encoded %llu entries with %s revision %u: %llu chunks, %llu tokens "
		       "(%.1f s)\n",
		       v->user, (unsigned long long)r->entries_total, r->encoder, r->revision,
		       (unsigned long long)r->chunks, (unsigned long long)r->tokens, v->seconds);
}

static const struct result reencode_result = {&reencode_shape, W_USER, reencode_human};

void
print_reencode(const char *user, const struct hsamem_reencode_info *r, double seconds)
{
	render(&reencode_result, &(struct view){.res = r, .user = user, .seconds = seconds});
}
