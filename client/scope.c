/*
 * scope.c: the requests of libhsamem that carry scopes, metadata and filters (hsamem(7), SCOPES
 * AND FILTERS): hsamem_append_attrs, hsamem_query_filtered and hsamem_entries_filtered. It turns
 * the caller's "key=value" strings into the wire's pairs (the daemon checks them and says what is
 * wrong); result.c converts the replies.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static void
wire_attrs_free(struct wire_attrs *w)
{
	free(w->ptrs);
	free(w->pairs);
	free(w->buf);
}

static int
wire_attrs(struct hsamem *h, const char *const *s, size_t n, const char *what, struct wire_attrs *w)
{
	size_t len = 0, i;
	char *p;

	memset(w, 0, sizeof(*w));
	if (n == 0)
		return 0;
	if (s == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "%s: %zu pairs but no array", what, n);
	for (i = 0; i < n; i++) {
		if (s[i] == NULL || strchr(s[i], '=') == NULL)
			return clib_fail(h, HSAMEM_EINVAL, "%s: '%s' is not key=value", what,
			                 s[i] != NULL ? s[i] : "(null)");
		len += strlen(s[i]) + 1;
	}
	if ((w->buf = malloc(len)) == NULL || (w->pairs = calloc(n, sizeof(*w->pairs))) == NULL ||
	    (w->ptrs = calloc(n, sizeof(*w->ptrs))) == NULL) {
		wire_attrs_free(w);
		return clib_fail(h, -ENOMEM, "out of memory");
	}
	for (i = 0, p = w->buf; i < n; i++) {
		size_t l = strlen(s[i]) + 1;
		memcpy(p, s[i], l);
		char *eq = strchr(p, '=');
		*eq = '\0';
		hsamem__attr__init(&w->pairs[i]);
		w->pairs[i].key = p;
		w->pairs[i].value = eq + 1;
		w->ptrs[i] = &w->pairs[i];
		p += l;
	}
	w->n = n;
	return 0;
}

void
clib_filter_free(struct wire_filter *w)
{
	wire_attrs_free(&w->scope);
	wire_attrs_free(&w->meta);
	free(w->roles);
}

int
clib_filter_to_wire(struct hsamem *h, const struct hsamem_filter *f, struct wire_filter *w)
{
	int err;

	memset(w, 0, sizeof(*w));
	hsamem__filter__init(&w->f);
	if (f == NULL)
		return 0;
	if ((f->n_tags > 0 && f->tags == NULL) || (f->n_roles > 0 && f->roles == NULL))
		return clib_fail(h, HSAMEM_EINVAL, "filter: a count without its array");
	if ((err = wire_attrs(h, f->scope, f->n_scope, "filter scope", &w->scope)) != 0 ||
	    (err = wire_attrs(h, f->meta, f->n_meta, "filter meta", &w->meta)) != 0) {
		clib_filter_free(w);
		return err;
	}
	if (f->n_roles > 0 && (w->roles = calloc(f->n_roles, sizeof(*w->roles))) == NULL) {
		clib_filter_free(w);
		return clib_fail(h, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < f->n_roles; i++)
		w->roles[i] = (Hsamem__Role)f->roles[i];
	w->f.n_scope = w->scope.n;
	w->f.scope = w->scope.ptrs;
	w->f.n_meta = w->meta.n;
	w->f.meta = w->meta.ptrs;
	w->f.n_roles = f->n_roles;
	w->f.roles = w->roles;
	w->f.n_tags = f->n_tags;
	w->f.tags = (char **)f->tags;
	w->f.has_since_ms = f->has_since;
	w->f.since_ms = f->since_ms;
	w->f.has_until_ms = f->has_until;
	w->f.until_ms = f->until_ms;
	return 0;
}

static void
decorate(Hsamem__EntryIn *we, size_t i, void *arg)
{
	struct wire_attrs *w = arg;
	we->n_scope = w[2 * i].n;
	we->scope = w[2 * i].ptrs;
	we->n_meta = w[2 * i + 1].n;
	we->meta = w[2 * i + 1].ptrs;
}

int
hsamem_append_attrs(struct hsamem *h, const char *user, const struct hsamem_entry_in *entries,
                    const struct hsamem_attrs *attrs, size_t n_entries,
                    const struct hsamem_chunk_in *chunks, size_t n_chunks, unsigned flags,
                    struct hsamem_append_info *out)
{
	struct wire_attrs *w = NULL;
	size_t i;
	int err;

	if (attrs == NULL)
		return hsamem_append(h, user, entries, n_entries, chunks, n_chunks, flags, out);
	if (n_entries == 0 || entries == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "an append needs at least one entry");
	if ((w = calloc(2 * n_entries, sizeof(*w))) == NULL)
		return clib_fail(h, -ENOMEM, "out of memory");
	for (i = 0; i < n_entries; i++)
		if ((err = wire_attrs(h, attrs[i].scope, attrs[i].n_scope, "scope", &w[2 * i])) !=
		            0 ||
		    (err = wire_attrs(h, attrs[i].meta, attrs[i].n_meta, "meta", &w[2 * i + 1])) !=
		            0)
			goto done;
	err = clib_append(h, user, entries, n_entries, chunks, n_chunks, flags, out, decorate, w);
done:
	for (i = 0; i < 2 * n_entries; i++)
		wire_attrs_free(&w[i]);
	free(w);
	return err;
}

int
hsamem_query_filtered(struct hsamem *h, const char *user, const struct hsamem_query *q,
                      const struct hsamem_recall *opts, struct hsamem_query_result **out)
{
	static const struct hsamem_recall none = {0};
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__QueryRequest qr = HSAMEM__QUERY_REQUEST__INIT;
	Hsamem__Reply *r;
	struct wire_filter wf;
	struct hsamem_query_result *res = NULL;
	int err;

	if (opts == NULL)
		opts = &none;
	if ((err = clib_check_user(h, user)) != 0)
		return err;
	if (q == NULL || (q->text == NULL && q->n_tokens == 0))
		return clib_fail(h, HSAMEM_EINVAL, "a query needs text or tokens");
	if (q->n_tokens > 0 && q->tokens == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "n_tokens without tokens");
	if ((err = clib_filter_to_wire(h, opts->filter, &wf)) != 0)
		return err;
	qr.user = (char *)user;
	qr.text = (char *)q->text;
	qr.n_tokens = q->n_tokens;
	qr.tokens = (uint32_t *)q->tokens;
	qr.has_top_k = q->top_k != 0;
	qr.top_k = q->top_k;
	qr.has_max_entries = q->max_entries != 0;
	qr.max_entries = q->max_entries;
	qr.has_include_tail = q->no_tail;
	qr.include_tail = !q->no_tail;
	qr.filter = opts->filter != NULL ? &wf.f : NULL;
	qr.has_chunks = opts->chunks_only;
	qr.chunks = opts->chunks_only;
	qr.has_context = opts->context != 0;
	qr.context = opts->context;
	qr.has_min_score = opts->has_min_score;
	qr.min_score = opts->min_score;
	qr.mode = (char *)opts->mode;
	qr.has_max_hits = opts->max_hits != 0;
	qr.max_hits = opts->max_hits;
	req.body_case = HSAMEM__REQUEST__BODY_QUERY;
	req.query = &qr;
	err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_QUERY, &r);
	clib_filter_free(&wf);
	if (err != 0)
		return err;
	if ((err = res_query(h, r->query, &res)) == 0) {
		if (r->message != NULL && *r->message != '\0')
			clib_fail(h, 0, "%s", r->message);
		*out = res;
	}
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_entries_filtered(struct hsamem *h, const char *user, uint64_t first, uint32_t count,
                        const struct hsamem_filter *filter, struct hsamem_entry_list **out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__EntriesRequest er = HSAMEM__ENTRIES_REQUEST__INIT;
	Hsamem__Reply *r;
	struct wire_filter wf;
	struct hsamem_entry_list *res = NULL;
	int err;

	if ((err = clib_check_user(h, user)) != 0 ||
	    (err = clib_filter_to_wire(h, filter, &wf)) != 0)
		return err;
	er.user = (char *)user;
	er.has_first = 1;
	er.first = first;
	er.has_count = count != 0;
	er.count = count;
	er.filter = filter != NULL ? &wf.f : NULL;
	req.body_case = HSAMEM__REQUEST__BODY_ENTRIES;
	req.entries = &er;
	err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_ENTRIES, &r);
	clib_filter_free(&wf);
	if (err != 0)
		return err;
	if ((err = res_entries(h, r->entries, count, &res)) == 0)
		*out = res;
	hsamem__reply__free_unpacked(r, NULL);
	return err;
}

int
hsamem_ask_filtered(struct hsamem *h, const char *user, const char *question,
                    const struct hsamem_ask *opts, const struct hsamem_filter *filter,
                    struct hsamem_ask_result **out)
{
	struct wire_filter wf;
	int err = clib_filter_to_wire(h, filter, &wf);
	if (err != 0)
		return err;
	err = clib_ask(h, user, question, opts, filter != NULL ? &wf.f : NULL, out);
	clib_filter_free(&wf);
	return err;
}

int
hsamem_export_filtered(struct hsamem *h, const char *user, const struct hsamem_filter *filter,
                       hsamem_write_fn write, void *arg, struct hsamem_transfer *out)
{
	struct wire_filter wf;
	int err = clib_filter_to_wire(h, filter, &wf);
	if (err != 0)
		return err;
	err = clib_export(h, user, filter != NULL ? &wf.f : NULL, write, arg, out);
	clib_filter_free(&wf);
	return err;
}

int
hsamem_forget_filtered(struct hsamem *h, const char *user, const struct hsamem_filter *filter,
                       struct hsamem_forget_info *out)
{
	Hsamem__Request req = HSAMEM__REQUEST__INIT;
	Hsamem__ForgetRequest fr = HSAMEM__FORGET_REQUEST__INIT;
	Hsamem__Reply *r;
	struct wire_filter wf;
	int err;

	if (filter == NULL)
		return clib_fail(h, HSAMEM_EINVAL, "forget: no filter given");
	if ((err = clib_check_user(h, user)) != 0 ||
	    (err = clib_filter_to_wire(h, filter, &wf)) != 0)
		return err;
	fr.user = (char *)user;
	fr.filter = &wf.f;
	req.body_case = HSAMEM__REQUEST__BODY_FORGET;
	req.forget = &fr;
	err = clib_rpc(h, &req, HSAMEM__REPLY__BODY_FORGET, &r);
	clib_filter_free(&wf);
	if (err != 0)
		return err;
	if (out != NULL) {
		out->entries = r->forget->entries;
		out->chunks = r->forget->chunks;
	}
	hsamem__reply__free_unpacked(r, NULL);
	return 0;
}
