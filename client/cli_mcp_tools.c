/*
 * cli_mcp_tools.c: the tools of hsamem mcp: one table, each tool with its JSON Schema, the schema
 * of what it returns, and its handler; and the check of a call's arguments against the schema,
 * so that a handler reads arguments that are known to be of the right type and range.
 *
 * The check covers the part of JSON Schema that the tools' schemas use (an object of properties
 * of type string, integer, number, boolean or array of strings, with required, enum, minLength,
 * maxLength, minimum, maximum, maxItems and additionalProperties false); a schema outside it is a
 * programmer's error, caught by the test that lists and calls every tool. A tool is added with a
 * row of the table and a handler; a new argument, with a property in its schema and the lines that
 * pass it on. Errors of the daemon come back as tool errors (isError) with the daemon's message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_mcp.h"

/* ---- results ---- */

/* Whether the len bytes at p are one UTF-8 character jansson accepts (no overlong form, no
 * surrogate). */
static bool
valid_seq(const unsigned char *p, size_t len)
{
	json_t *j = json_stringn((const char *)p, len);

	json_decref(j);
	return j != NULL;
}

json_t *
mcp_string(const char *s)
{
	json_t *j = json_string(s != NULL ? s : "");
	size_t n, o = 0;
	char *copy;

	if (j != NULL || s == NULL)
		return j;
	/* Not valid UTF-8: each byte of an invalid sequence becomes U+FFFD. */
	n = strlen(s);
	if ((copy = malloc(3 * n + 1)) == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
		size_t len = *p < 0x80         ? 1
		             : (*p >> 5) == 6  ? 2
		             : (*p >> 4) == 14 ? 3
		             : (*p >> 3) == 30 ? 4
		                               : 0;
		size_t i = 1;
		while (len > 1 && i < len && (p[i] & 0xc0) == 0x80)
			i++;
		if (len == 0 || i < len || !valid_seq(p, len)) {
			memcpy(copy + o, "\xef\xbf\xbd", 3), o += 3, p++;
			continue;
		}
		memcpy(copy + o, p, len), o += len, p += len;
	}
	j = json_stringn(copy, o);
	free(copy);
	return j;
}

/* A tool's result: one text content, and structured content when st is not NULL (stolen). */
static json_t *
result(const char *text, json_t *st, bool is_error)
{
	json_t *r = json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text",
	                      mcp_string(text), "isError", is_error);

	if (r != NULL && st != NULL)
		json_object_set(r, "structuredContent", st);
	json_decref(st);
	return r;
}

/* The tool error for a failed request: the daemon's (or the library's) message. */
static json_t *
tool_failed(struct mcp *m, const char *what, int err)
{
	const char *msg = hsamem_last_message(m->c->h);
	char buf[1200];

	snprintf(buf, sizeof(buf), "%s failed: %s (%s)", what,
	         msg[0] != '\0' ? msg : hsamem_strerror(err), hsamem_strerror(err));
	return result(buf, NULL, true);
}

/* A growing text, for the content of results. Out of memory leaves it truncated. */
struct text {
	char *s;
	size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = (t->len + (size_t)n + 1) * 2;
		if ((p = realloc(t->s, cap)) == NULL)
			return;
		t->s = p, t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static json_t *
entry_json(const struct hsamem_entry *e)
{
	const char *role = hsamem_role_name(e->role);
	json_t *tags = json_array();

	for (size_t i = 0; tags != NULL && i < e->n_tags; i++)
		json_array_append_new(tags, mcp_string(e->tags[i]));
	return json_pack("{s:I, s:s, s:I, s:o, s:o}", "seq", (json_int_t)e->seq, "role",
	                 role ? role : "other", "timestamp_ms", (json_int_t)e->timestamp_ms, "text",
	                 mcp_string(e->text), "tags", tags);
}

static void
entry_text(struct text *t, const struct hsamem_entry *e)
{
	const char *role = hsamem_role_name(e->role);

	text_add(t, "#%llu %s: %s\n", (unsigned long long)e->seq, role ? role : "other", e->text);
}

/* ---- remember ---- */

/* The "key=value" strings of an array argument (checked by the schema) into v[max]; their count. */
static size_t
pairs_of(json_t *a, const char **v, size_t max)
{
	json_t *e;
	size_t i, n = 0;

	json_array_foreach(a, i, e) if (n < max) v[n++] = json_string_value(e);
	return n;
}

static json_t *
remember(struct mcp *m, json_t *args)
{
	struct hsamem_entry_in e = {.text = json_string_value(json_object_get(args, "text")),
	                            .role = HSAMEM_ROLE_USER};
	const char *role = json_string_value(json_object_get(args, "role"));
	const char *tagv[16], *scopev[8], *metav[8];
	struct hsamem_attrs a = {.scope = scopev, .meta = metav};
	struct hsamem_append_info info;
	char buf[160];
	int err;

	for (int r = 0; role != NULL && r <= HSAMEM_ROLE_TOOL; r++)
		if (hsamem_role_name(r) != NULL && strcmp(role, hsamem_role_name(r)) == 0)
			e.role = r;
	e.tags = tagv;
	e.n_tags = pairs_of(json_object_get(args, "tags"), tagv, 16);
	a.n_scope = pairs_of(json_object_get(args, "scope"), scopev, 8);
	a.n_meta = pairs_of(json_object_get(args, "meta"), metav, 8);
	if ((err = hsamem_append_attrs(m->c->h, m->user, &e, &a, 1, NULL, 0, 0, &info)) != 0)
		return tool_failed(m, "remember", err);
	snprintf(buf, sizeof(buf), "Remembered as entry #%llu.",
	         (unsigned long long)info.first_seq);
	return result(buf,
	              json_pack("{s:I, s:I}", "seq", (json_int_t)info.first_seq, "tokens",
	                        (json_int_t)info.tokens),
	              false);
}

/* ---- forget ---- */

static json_t *
forget(struct mcp *m, json_t *args)
{
	uint64_t first = (uint64_t)json_integer_value(json_object_get(args, "seq"));
	json_t *through = json_object_get(args, "through");
	uint64_t last = through != NULL ? (uint64_t)json_integer_value(through) : first;
	struct hsamem_forget_info f;
	char buf[160];
	int err;

	if (last < first)
		return result("forget failed: \"through\" is below \"seq\"", NULL, true);
	if ((err = hsamem_forget(m->c->h, m->user, first, last, &f)) != 0)
		return tool_failed(m, "forget", err);
	snprintf(buf, sizeof(buf), "Forgot %llu entries: nothing of them is kept.",
	         (unsigned long long)f.entries);
	return result(buf, json_pack("{s:I}", "forgotten", (json_int_t)f.entries), false);
}

/* ---- recall ---- */

/* An argument, NULL when absent or null (the schema lets null stand for absent). */
static json_t *
arg(json_t *args, const char *name)
{
	json_t *v = json_object_get(args, name);

	return json_is_null(v) ? NULL : v;
}

static bool
seen_before(const struct hsamem_query_result *r, size_t hit, uint64_t seq)
{
	for (size_t i = 0; i < hit; i++)
		for (size_t j = 0; j < r->hits[i].n_entries; j++)
			if (r->hits[i].entries[j].seq == seq)
				return true;
	return false;
}

/* The chunk view: each selected chunk with the entries it covers. */
static json_t *
recall_chunks(const struct hsamem_query_result *r, struct text *t)
{
	json_t *hits = json_array();

	for (size_t i = 0; hits != NULL && i < r->n_hits; i++) {
		const struct hsamem_hit *h = &r->hits[i];
		json_t *entries = json_array();

		text_add(t, "[%zu] %s %llu, score %.3f:\n", i + 1,
		         h->tail ? "newest entries, from token" : "chunk",
		         (unsigned long long)h->chunk, h->score);
		for (size_t j = 0; entries != NULL && j < h->n_entries; j++) {
			json_array_append_new(entries, entry_json(&h->entries[j]));
			if (!seen_before(r, i, h->entries[j].seq))
				entry_text(t, &h->entries[j]);
		}
		json_array_append_new(hits,
		                      json_pack("{s:I, s:b, s:f, s:f, s:o, s:o}", "chunk",
		                                (json_int_t)h->chunk, "tail", h->tail, "score",
		                                (double)h->score, "weight", (double)h->weight,
		                                "text", mcp_string(h->text), "entries", entries));
	}
	if (r->n_hits == 0)
		text_add(t, "Nothing relevant was found.");
	return json_pack("{s:o, s:I}", "hits", hits, "searched", (json_int_t)r->chunks);
}

/* "key=value" strings as a JSON array, set on o as key when there are any. */
static void
set_strings(json_t *o, const char *key, const char *const *v, size_t n)
{
	json_t *a = n > 0 ? json_array() : NULL;

	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, mcp_string(v[i]));
	if (a != NULL)
		json_object_set_new(o, key, a);
}

/* One entry of the entry view: seq, role, text, score (or context), and its time, scope,
 * metadata and tags where it has them; its line of text too. */
static json_t *
entry_hit_json(const struct hsamem_entry_hit *h, size_t rank, struct text *t)
{
	const struct hsamem_entry *e = &h->entry;
	const char *role = hsamem_role_name(e->role) ? hsamem_role_name(e->role) : "other";
	json_t *o = json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)e->seq, "role", role, "text",
	                      mcp_string(e->text));
	time_t secs = (time_t)(e->timestamp_ms / 1000);
	char when[40] = "";
	struct tm tm;

	if (e->timestamp_ms != 0 && gmtime_r(&secs, &tm) != NULL &&
	    strftime(when, sizeof(when), ", %Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		when[0] = '\0';
	if (h->context)
		text_add(t, "    (context) #%llu %s%s: %s\n", (unsigned long long)e->seq, role,
		         when, e->text);
	else
		text_add(t, "[%zu] #%llu %s%s, score %.3f: %s\n", rank, (unsigned long long)e->seq,
		         role, when, h->score, e->text);
	if (o == NULL)
		return NULL;
	if (h->context)
		json_object_set_new(o, "context", json_true());
	else
		json_object_set_new(o, "score", json_real(h->score));
	if (e->timestamp_ms != 0)
		json_object_set_new(o, "timestamp_ms", json_integer(e->timestamp_ms));
	set_strings(o, "scope", h->attrs.scope, h->attrs.n_scope);
	set_strings(o, "meta", h->attrs.meta, h->attrs.n_meta);
	set_strings(o, "tags", (const char *const *)e->tags, e->n_tags);
	if (!h->context && h->attrs.n_scope + h->attrs.n_meta + e->n_tags > 0) {
		text_add(t, "   ");
		for (size_t i = 0; i < h->attrs.n_scope; i++)
			text_add(t, " %s", h->attrs.scope[i]);
		for (size_t i = 0; i < h->attrs.n_meta; i++)
			text_add(t, " %s", h->attrs.meta[i]);
		for (size_t i = 0; i < e->n_tags; i++)
			text_add(t, " #%s", e->tags[i]);
		text_add(t, "\n");
	}
	return o;
}

/* The entry view (hsamem(7), ENTRY RECALL): the entries that answer, best first. */
static json_t *
recall_entries(const struct hsamem_query_result *r, const struct hsamem_recall *o, struct text *t)
{
	json_t *entries = json_array(), *st;
	size_t rank = 0;

	for (size_t i = 0; entries != NULL && i < r->n_entry_hits; i++)
		json_array_append_new(
		        entries,
		        entry_hit_json(&r->entry_hits[i], rank += !r->entry_hits[i].context, t));
	if (r->n_entry_hits == 0 && r->below_min_score > 0)
		text_add(t,
		         "Nothing relevant was found: no entry scored at least min_score %g "
		         "(%u scored below it).",
		         (double)o->min_score, r->below_min_score);
	else if (r->n_entry_hits == 0)
		text_add(t, "Nothing relevant was found.");
	st = json_pack("{s:o, s:I}", "entries", entries, "searched", (json_int_t)r->chunks);
	if (st != NULL && o->has_min_score)
		json_object_set_new(st, "below_min_score", json_integer(r->below_min_score));
	return st;
}

static json_t *
recall(struct mcp *m, json_t *args)
{
	struct hsamem_query q = {.text = json_string_value(json_object_get(args, "query")),
	                         .top_k = 8};
	struct hsamem_query_result *r;
	struct text t = {0};
	json_t *st, *res, *v;
	const char *scopev[8], *tagv[16], *metav[8];
	enum hsamem_role role;
	struct hsamem_filter f = {.scope = scopev, .tags = tagv, .meta = metav};
	struct hsamem_recall o = {.chunks_only = json_is_true(arg(args, "chunks"))};
	int err;

	if ((v = arg(args, "k")) != NULL)
		q.top_k = (uint32_t)json_integer_value(v);
	if ((v = arg(args, "context")) != NULL)
		o.context = (uint32_t)json_integer_value(v);
	if ((v = arg(args, "min_score")) != NULL)
		o.has_min_score = true, o.min_score = (float)json_number_value(v);
	/* the filter (hsamem(7), SCOPES AND FILTERS): applied before ranking */
	f.n_scope = pairs_of(json_object_get(args, "scope"), scopev, 8);
	f.n_tags = pairs_of(json_object_get(args, "tags"), tagv, 16);
	f.n_meta = pairs_of(json_object_get(args, "meta"), metav, 8);
	if ((v = arg(args, "role")) != NULL) {
		for (int i = 0; i <= HSAMEM_ROLE_TOOL; i++)
			if (hsamem_role_name(i) != NULL &&
			    strcmp(json_string_value(v), hsamem_role_name(i)) == 0)
				role = i;
		f.roles = &role;
		f.n_roles = 1;
	}
	if ((v = arg(args, "since_ms")) != NULL)
		f.has_since = true, f.since_ms = json_integer_value(v);
	if ((v = arg(args, "until_ms")) != NULL)
		f.has_until = true, f.until_ms = json_integer_value(v);
	if (f.n_scope > 0 || f.n_tags > 0 || f.n_meta > 0 || f.n_roles > 0 || f.has_since ||
	    f.has_until)
		o.filter = &f;
	err = hsamem_query_filtered(m->c->h, m->user, &q, &o, &r);
	if (err == HSAMEM_ENOUSER) /* nothing remembered yet is an empty answer, not a failure */
		return result(
		        "Nothing is remembered yet.",
		        json_pack("{s:[], s:i}", o.chunks_only ? "hits" : "entries", "searched", 0),
		        false);
	if (err != 0)
		return tool_failed(m, "recall", err);
	st = o.chunks_only ? recall_chunks(r, &t) : recall_entries(r, &o, &t);
	res = result(t.s != NULL ? t.s : "", st, false);
	free(t.s);
	hsamem_result_free(r);
	return res;
}

/* ---- list_memories ---- */

static json_t *
list_memories(struct mcp *m, json_t *args)
{
	json_t *count = json_object_get(args, "count"), *before = json_object_get(args, "before");
	uint32_t n = count ? (uint32_t)json_integer_value(count) : 20;
	struct hsamem_entry_list *l;
	struct text t = {0};
	uint64_t end;
	json_t *entries, *res;
	int err;

	if (before != NULL) {
		end = (uint64_t)json_integer_value(before);
	} else {
		/* The newest: ask past any end for the total. */
		if ((err = hsamem_entries(m->c->h, m->user, UINT64_MAX >> 1, 1, &l)) != 0)
			goto failed;
		end = l->total;
		hsamem_result_free(l);
	}
	if ((err = hsamem_entries(m->c->h, m->user, end > n ? end - n : 0,
	                          end > n ? n : (uint32_t)end, &l)) != 0)
		goto failed;
	entries = json_array();
	for (size_t i = 0; entries != NULL && i < l->n_entries && l->entries[i].seq < end; i++) {
		json_array_append_new(entries, entry_json(&l->entries[i]));
		entry_text(&t, &l->entries[i]);
	}
	if (json_array_size(entries) == 0)
		text_add(&t, "No entries.");
	text_add(&t, "(%llu entries in all)", (unsigned long long)l->total);
	res = result(t.s != NULL ? t.s : "",
	             json_pack("{s:o, s:I}", "entries", entries, "total", (json_int_t)l->total),
	             false);
	free(t.s);
	hsamem_result_free(l);
	return res;
failed:
	if (err == HSAMEM_ENOUSER)
		return result("No entries: nothing is remembered yet.",
		              json_pack("{s:[], s:i}", "entries", "total", 0), false);
	return tool_failed(m, "list_memories", err);
}

/* ---- memory_stats ---- */

static json_t *
memory_stats(struct mcp *m, json_t *args)
{
	struct hsamem_stats *s;
	const struct hsamem_memory *mem;
	char buf[400];
	json_t *res;
	int err;

	if ((err = hsamem_stats(m->c->h, m->user, &s)) != 0)
		return tool_failed(m, "memory_stats", err);
	if (s->n_memories == 0) {
		hsamem_result_free(s);
		return result("memory_stats failed: the daemon described no memory", NULL, true);
	}
	mem = &s->memories[0];
	snprintf(buf, sizeof(buf), "%llu entries, %llu tokens in %llu chunks; encoder %s.",
	         (unsigned long long)mem->entries, (unsigned long long)mem->tokens,
	         (unsigned long long)mem->chunks, mem->spec.encoder);
	res = result(buf,
	             json_pack("{s:I, s:I, s:I, s:s, s:I, s:I}", "entries",
	                       (json_int_t)mem->entries, "tokens", (json_int_t)mem->tokens,
	                       "chunks", (json_int_t)mem->chunks, "encoder", mem->spec.encoder,
	                       "created_ms", (json_int_t)mem->created_ms, "updated_ms",
	                       (json_int_t)mem->updated_ms),
	             false);
	hsamem_result_free(s);
	return res;
}

/* ---- ask (experimental) ---- */

static json_t *
ask(struct mcp *m, json_t *args)
{
	struct hsamem_ask a = {0};
	struct hsamem_ask_result *r;
	json_t *chunks, *res;
	char *text;
	int err;

	if (json_object_get(args, "max_tokens") != NULL)
		a.max_tokens = (uint32_t)json_integer_value(json_object_get(args, "max_tokens"));
	err = hsamem_ask(m->c->h, m->user, json_string_value(json_object_get(args, "question")), &a,
	                 &r);
	if (err != 0)
		return tool_failed(m, "ask", err);
	chunks = json_array();
	for (size_t i = 0; chunks != NULL && i < r->n_chunks; i++)
		json_array_append_new(chunks, json_pack("{s:I, s:f}", "chunk",
		                                        (json_int_t)r->chunks[i].chunk, "weight",
		                                        (double)r->chunks[i].weight));
	if (asprintf(&text, "%s%s", r->answer,
	             r->experimental ? "\n(experimental: this model's answers are not reliable on "
	                               "questions unlike its training tasks)"
	                             : "") < 0)
		text = NULL;
	res = result(text != NULL ? text : r->answer,
	             json_pack("{s:o, s:b, s:b, s:s, s:o}", "answer", mcp_string(r->answer),
	                       "complete", r->complete, "experimental", r->experimental, "encoder",
	                       r->encoder, "chunks", chunks),
	             false);
	free(text);
	hsamem_result_free(r);
	return res;
}

/* ---- the table ---- */

#define ENTRY_SCHEMA                                                                               \
	"{\"type\":\"object\",\"properties\":{\"seq\":{\"type\":\"integer\"},\"role\":{\"type\":"  \
	"\"string\"},\"timestamp_ms\":{\"type\":\"integer\"},\"text\":{\"type\":\"string\"},"      \
	"\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}"

#define STRINGS "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}"
/* An entry of recall's entry view: score for the entries found, context for those around them. */
#define ENTRY_HIT_SCHEMA                                                                           \
	"{\"type\":\"object\",\"properties\":{\"seq\":{\"type\":\"integer\"},\"role\":{\"type\":"  \
	"\"string\"},\"text\":{\"type\":\"string\"},\"score\":{\"type\":\"number\"},"              \
	"\"context\":{\"type\":\"boolean\"},\"timestamp_ms\":{\"type\":\"integer\"},"              \
	"\"scope\":" STRINGS ",\"meta\":" STRINGS ",\"tags\":" STRINGS "},"                        \
	"\"required\":[\"seq\",\"role\",\"text\"]}"

const struct mcp_tool mcp_tools[] = {
        {
                .name = "remember",
                .title = "Remember",
                .description = "Stores a piece of text in long-term memory for good: a fact, a "
                               "preference, a decision or a conversation turn worth keeping. "
                               "Returns the entry's number.",
                .schema = "{\"type\":\"object\",\"properties\":{"
                          "\"text\":{\"type\":\"string\",\"minLength\":1,"
                          "\"description\":\"what to remember\"},"
                          "\"role\":{\"type\":\"string\",\"enum\":[\"user\",\"assistant\","
                          "\"system\",\"tool\",\"other\"],"
                          "\"description\":\"who said it (default: user)\"},"
                          "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                          "\"minLength\":1},\"maxItems\":16,"
                          "\"description\":\"labels to keep with it\"},"
                          "\"scope\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                          "\"minLength\":3},\"maxItems\":8,"
                          "\"description\":\"key=value pairs it belongs to, e.g. "
                          "session=42 or agent=planner\"},"
                          "\"meta\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                          "\"minLength\":3},\"maxItems\":8,"
                          "\"description\":\"key=value facts about it, e.g. "
                          "source=email\"}},"
                          "\"required\":[\"text\"],\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"seq\":{\"type\":"
                                 "\"integer\"},\"tokens\":{\"type\":\"integer\"}},"
                                 "\"required\":[\"seq\"]}",
                .writes = true,
                .call = remember,
        },
        {
                .name = "recall",
                .title = "Recall",
                .description = "Searches long-term memory for what matters to a query and "
                               "returns the entries that answer it, most relevant first: "
                               "each with its number, role, time, score and text (and its "
                               "scope and tags). chunks=true returns the passages found "
                               "instead, with the entries they hold.",
                .schema = "{\"type\":\"object\",\"properties\":{"
                          "\"query\":{\"type\":\"string\",\"minLength\":1,"
                          "\"description\":\"what to look for, in plain words\"},"
                          "\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64,"
                          "\"description\":\"passages to search, and at most as many "
                          "entries to return (default 8)\"},"
                          "\"chunks\":{\"type\":\"boolean\",\"description\":\"return "
                          "the passages (chunks) found instead of the entries\"},"
                          "\"min_score\":{\"type\":\"number\",\"description\":\"only "
                          "entries scoring at least this; the result says when none does\"},"
                          "\"context\":{\"type\":\"integer\",\"minimum\":0,"
                          "\"maximum\":8,\"description\":\"also show this many entries on "
                          "each side of each one found (default 0)\"},"
                          "\"scope\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                          "\"minLength\":3},\"maxItems\":8,"
                          "\"description\":\"only entries with every key=value pair\"},"
                          "\"role\":{\"type\":\"string\",\"enum\":[\"user\",\"assistant\","
                          "\"system\",\"tool\",\"other\"],"
                          "\"description\":\"only entries of this role\"},"
                          "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                          "\"minLength\":1},\"maxItems\":16,"
                          "\"description\":\"only entries with every tag\"},"
                          "\"meta\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                          "\"minLength\":3},\"maxItems\":8,"
                          "\"description\":\"only entries with every key=value fact\"},"
                          "\"since_ms\":{\"type\":\"integer\","
                          "\"description\":\"only entries at or after this Unix time (ms)\"},"
                          "\"until_ms\":{\"type\":\"integer\","
                          "\"description\":\"only entries before this Unix time (ms)\"}},"
                          "\"required\":[\"query\"],\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"entries\":{"
                                 "\"type\":\"array\",\"items\":" ENTRY_HIT_SCHEMA "},"
                                 "\"hits\":{\"type\":"
                                 "\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                                 "\"chunk\":{\"type\":\"integer\"},\"tail\":{\"type\":"
                                 "\"boolean\"},\"score\":{\"type\":\"number\"},\"weight\":{"
                                 "\"type\":\"number\"},\"text\":{\"type\":\"string\"},"
                                 "\"entries\":{\"type\":\"array\",\"items\":" ENTRY_SCHEMA
                                 "}}}},\"searched\":{\"type\":\"integer\"},"
                                 "\"below_min_score\":{\"type\":\"integer\"}},"
                                 "\"required\":[\"searched\"]}",
                .call = recall,
        },
        {
                .name = "forget",
                .title = "Forget",
                .description = "Forgets an entry of long-term memory for good (or the entries "
                               "seq through through): its text and everything derived from it "
                               "leave the store. Entry numbers come from recall and "
                               "list_memories. Cannot be undone.",
                .schema = "{\"type\":\"object\",\"properties\":{"
                          "\"seq\":{\"type\":\"integer\",\"minimum\":0,"
                          "\"description\":\"the entry's number\"},"
                          "\"through\":{\"type\":\"integer\",\"minimum\":0,"
                          "\"description\":\"the last entry of a range (default: seq)\"}},"
                          "\"required\":[\"seq\"],\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"forgotten\":{"
                                 "\"type\":\"integer\"}},\"required\":[\"forgotten\"]}",
                .writes = true,
                .call = forget,
        },
        {
                .name = "list_memories",
                .title = "List memories",
                .description = "Lists the entries of long-term memory in the order they were "
                               "stored: the newest ones, or those before a given entry number.",
                .schema = "{\"type\":\"object\",\"properties\":{"
                          "\"count\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,"
                          "\"description\":\"entries to list (default 20)\"},"
                          "\"before\":{\"type\":\"integer\",\"minimum\":0,"
                          "\"description\":\"list the entries before this number (default: "
                          "the newest)\"}},\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"entries\":{\"type\":"
                                 "\"array\",\"items\":" ENTRY_SCHEMA "},\"total\":{\"type\":"
                                 "\"integer\"}},\"required\":[\"entries\",\"total\"]}",
                .call = list_memories,
        },
        {
                .name = "memory_stats",
                .title = "Memory statistics",
                .description = "Tells how much long-term memory holds: entries, tokens, chunks, "
                               "and the encoder that indexes it.",
                .schema = "{\"type\":\"object\",\"properties\":{},"
                          "\"additionalProperties\":false}",
                .call = memory_stats,
        },
        {
                .name = "ask",
                .title = "Ask (experimental)",
                .description = "EXPERIMENTAL: answers a question from long-term memory with the "
                               "memory's own model (memories of encoder hsa-small only). Its "
                               "answers are reliable only on questions like its training tasks; "
                               "prefer recall.",
                .schema = "{\"type\":\"object\",\"properties\":{"
                          "\"question\":{\"type\":\"string\",\"minLength\":1},"
                          "\"max_tokens\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64,"
                          "\"description\":\"most answer tokens (default 32)\"}},"
                          "\"required\":[\"question\"],\"additionalProperties\":false}",
                .call = ask,
        },
};

const size_t mcp_n_tools = sizeof(mcp_tools) / sizeof(mcp_tools[0]);

/* ---- arguments against the schema ---- */

/* The tools' schemas, parsed once (the server is used by one thread at a time). */
static json_t *schemas[sizeof(mcp_tools) / sizeof(mcp_tools[0])][2];

static json_t *
schema_of(size_t tool, int which)
{
	const char *text = which == 0 ? mcp_tools[tool].schema : mcp_tools[tool].output_schema;

	if (schemas[tool][which] == NULL && text != NULL)
		schemas[tool][which] = json_loads(text, 0, NULL);
	return schemas[tool][which];
}

/* Checks one value against its property's schema; writes why not into why. */
static bool
value_ok(const char *name, json_t *v, json_t *prop, char *why, size_t size)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	json_t *min = json_object_get(prop, "minimum"), *max = json_object_get(prop, "maximum");
	json_t *en = json_object_get(prop, "enum"), *e, *items;
	size_t i;

	if (strcmp(type, "string") == 0) {
		size_t n;
		if (!json_is_string(v))
			goto wrong_type;
		n = json_string_length(v);
		if ((json_int_t)n < json_integer_value(json_object_get(prop, "minLength")) ||
		    memchr(json_string_value(v), '\0', n) != NULL) {
			snprintf(why, size, "argument '%s' must be a non-empty string without NUL",
			         name);
			return false;
		}
		if (en == NULL)
			return true;
		json_array_foreach(en, i, e) if (json_equal(e, v)) return true;
		snprintf(why, size, "argument '%s' is not one of the allowed values", name);
		return false;
	}
	if (strcmp(type, "integer") == 0) {
		if (!json_is_integer(v) &&
		    !(json_is_real(v) &&
		      json_real_value(v) == (double)(json_int_t)json_real_value(v)))
			goto wrong_type;
		json_int_t n =
		        json_is_integer(v) ? json_integer_value(v) : (json_int_t)json_real_value(v);
		if ((min != NULL && n < json_integer_value(min)) ||
		    (max != NULL && n > json_integer_value(max))) {
			snprintf(why, size, "argument '%s' is out of range (%lld to %lld)", name,
			         (long long)(min ? json_integer_value(min) : INT64_MIN),
			         (long long)(max ? json_integer_value(max) : INT64_MAX));
			return false;
		}
		return true;
	}
	if (strcmp(type, "number") == 0) {
		if (!json_is_number(v))
			goto wrong_type;
		if ((min != NULL && json_number_value(v) < json_number_value(min)) ||
		    (max != NULL && json_number_value(v) > json_number_value(max))) {
			snprintf(why, size, "argument '%s' is out of range", name);
			return false;
		}
		return true;
	}
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v) ? true
		                          : (snprintf(why, size,
		                                      "argument '%s' must be a "
		                                      "boolean",
		                                      name),
		                             false);
	/* array of strings */
	if (!json_is_array(v))
		goto wrong_type;
	if (json_object_get(prop, "maxItems") != NULL &&
	    json_array_size(v) > (size_t)json_integer_value(json_object_get(prop, "maxItems"))) {
		snprintf(why, size, "argument '%s' has too many items", name);
		return false;
	}
	items = json_object_get(prop, "items");
	json_array_foreach(v, i, e) if (!value_ok(name, e, items, why, size)) return false;
	return true;
wrong_type:
	snprintf(why, size, "argument '%s' must be %s %s", name,
	         strcmp(type, "integer") == 0 || strcmp(type, "array") == 0 ? "an" : "a", type);
	return false;
}

/* Checks a call's arguments (an object; NULL is an empty one) against the tool's input schema. */
static bool
args_ok(json_t *schema, json_t *args, char *why, size_t size)
{
	json_t *props = json_object_get(schema, "properties"), *v, *prop;
	const char *key;
	size_t i;

	json_object_foreach(args, key, v)
	{
		if ((prop = json_object_get(props, key)) == NULL) {
			snprintf(why, size, "unknown argument '%s'", key);
			return false;
		}
		if (!json_is_null(v) && !value_ok(key, v, prop, why, size))
			return false;
	}
	json_array_foreach(json_object_get(schema, "required"), i, v)
	{
		key = json_string_value(v);
		if (json_object_get(args, key) == NULL ||
		    json_is_null(json_object_get(args, key))) {
			snprintf(why, size, "argument '%s' is required", key);
			return false;
		}
	}
	return true;
}

/* ---- tools/list and tools/call ---- */

json_t *
mcp_tools_list(const struct mcp *m)
{
	json_t *tools = json_array(), *t;

	for (size_t i = 0; tools != NULL && i < mcp_n_tools; i++) {
		if (mcp_tools[i].writes && m->read_only)
			continue;
		if (schema_of(i, 0) == NULL ||
		    (t = json_pack("{s:s, s:s, s:s, s:O}", "name", mcp_tools[i].name, "title",
		                   mcp_tools[i].title, "description", mcp_tools[i].description,
		                   "inputSchema", schema_of(i, 0))) == NULL) {
			json_decref(tools);
			return NULL;
		}
		if (schema_of(i, 1) != NULL)
			json_object_set(t, "outputSchema", schema_of(i, 1));
		json_array_append_new(tools, t);
	}
	return tools != NULL ? json_pack("{s:o}", "tools", tools) : NULL;
}

json_t *
mcp_tools_call(struct mcp *m, json_t *params, int *code, const char **msg)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments"), *res;
	char why[300];
	size_t i;

	for (i = 0; name != NULL && i < mcp_n_tools; i++)
		if (strcmp(mcp_tools[i].name, name) == 0 && !(mcp_tools[i].writes && m->read_only))
			break;
	if (name == NULL || i == mcp_n_tools) {
		*code = -32602;
		*msg = name == NULL ? "tools/call needs the tool's name" : "unknown tool";
		return NULL;
	}
	if (args != NULL && !json_is_object(args) && !json_is_null(args)) {
		*code = -32602;
		*msg = "arguments must be an object";
		return NULL;
	}
	args = json_is_object(args) ? json_incref(args) : json_object();
	if (args == NULL || schema_of(i, 0) == NULL)
		res = NULL;
	else if (!args_ok(schema_of(i, 0), args, why, sizeof(why)))
		res = result(why, NULL, true);
	else
		res = mcp_tools[i].call(m, args);
	json_decref(args);
	return res;
}
