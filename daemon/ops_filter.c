/*
 * ops_filter.c: scopes, metadata and filters between the wire and the store (hsamem(7), SCOPES AND
 * FILTERS). Every size, key and value from a request is checked here, before anything is stored or
 * read; a bad one fails the job with a message naming it. The store evaluates filters
 * (store_filter.h); this file only translates them and turns one into a query's chunk mask.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "ops_filter.h"

int
ops_attrs_pack(struct job *job, Hsamem__Attr *const *a, size_t n, const char *what, char **list,
               uint32_t *len)
{
	size_t cap = 0;
	if (n > STORE_ATTRS_MAX)
		return job_fail(job, HSAMEM_ETOOBIG, "%s: at most %d pairs", what, STORE_ATTRS_MAX);
	for (size_t i = 0; i < n; i++) {
		const char *why = store_attr_check(a[i]->key, a[i]->value);
		if (why != NULL)
			return job_fail(job, HSAMEM_EINVAL, "%s pair %zu: %s", what, i, why);
		cap += strlen(a[i]->key) + strlen(a[i]->value) + 2;
	}
	char *buf = arena_alloc(&job->arena, cap + 1), *p = buf;
	if (buf == NULL)
		return ops_oom(job);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s=%s", a[i]->key, a[i]->value) + 1;
	*list = buf;
	*len = (uint32_t)cap;
	return 0;
}

int
ops_scope_check(struct job *job, Hsamem__Attr *const *a, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (a[i]->key != NULL && a[j]->key != NULL &&
			    strcmp(a[i]->key, a[j]->key) == 0)
				return job_fail(job, HSAMEM_EINVAL, "%s: key '%s' given twice",
				                what, a[i]->key);
	return 0;
}

int
ops_filter_from_proto(struct job *job, const Hsamem__Filter *pf, struct store_filter *out)
{
	struct store_filter f = {0};
	char *scope = NULL, *meta = NULL, *tags;
	int ret;
	if (pf == NULL) {
		*out = f;
		return 0;
	}
	if ((ret = ops_attrs_pack(job, pf->scope, pf->n_scope, "filter scope", &scope,
	                          &f.scope_len)) != 0 ||
	    (ret = ops_attrs_pack(job, pf->meta, pf->n_meta, "filter meta", &meta, &f.meta_len)) !=
	            0)
		return ret;
	if (pf->n_tags > OPS_MAX_TAGS)
		return job_fail(job, HSAMEM_ETOOBIG, "filter: at most %d tags", OPS_MAX_TAGS);
	size_t cap = 1;
	for (size_t i = 0; i < pf->n_tags; i++) {
		size_t l = strlen(pf->tags[i]);
		if (l == 0 || l > OPS_MAX_TAG_BYTES)
			return job_fail(job, HSAMEM_EINVAL, "filter: tags must be 1 to %d bytes",
			                OPS_MAX_TAG_BYTES);
		cap += l + 1;
	}
	if ((tags = arena_alloc(&job->arena, cap)) == NULL)
		return ops_oom(job);
	for (size_t i = 0; i < pf->n_tags; i++) {
		size_t l = strlen(pf->tags[i]) + 1;
		memcpy(tags + f.tags_len, pf->tags[i], l);
		f.tags_len += (uint32_t)l;
	}
	for (size_t i = 0; i < pf->n_roles; i++) {
		if (pf->roles[i] < HSAMEM__ROLE__ROLE_OTHER ||
		    pf->roles[i] > HSAMEM__ROLE__ROLE_TOOL)
			return job_fail(job, HSAMEM_EINVAL, "filter: unknown role %d",
			                (int)pf->roles[i]);
		f.roles |= 1u << pf->roles[i];
	}
	f.has_since = pf->has_since_ms;
	f.since_ms = pf->since_ms;
	f.has_until = pf->has_until_ms;
	f.until_ms = pf->until_ms;
	if (f.has_since && f.has_until && f.until_ms <= f.since_ms)
		return job_fail(job, HSAMEM_EINVAL, "filter: until must come after since");
	f.scope = scope;
	f.meta = meta;
	f.tags = tags;
	*out = f;
	return 0;
}

int
ops_filter_mask(struct job *job, struct store_txn *txn, const struct store_user *u,
                const struct store_filter *f, uint64_t **mask, uint64_t *allowed)
{
	uint64_t entries = 0;
	*mask = NULL;
	*allowed = u->n_chunks + 1;
	if (store_filter_empty(f))
		return 0;
	uint64_t *m = arena_calloc(&job->arena, u->n_chunks / 64 + 1, sizeof(uint64_t));
	if (m == NULL)
		return ops_oom(job);
	int ret = store_filter_chunks(txn, u, f, m, allowed, &entries);
	if (ret != 0)
		return job_fail(job, ret, "store: cannot apply the filter: %s",
		                hsamem_strerror(ret));
	*mask = m;
	return 0;
}

int
ops_entry_passes(struct job *job, struct store_txn *txn, uint64_t uid, const struct store_filter *f,
                 uint64_t seq, bool *pass)
{
	struct store_entry e;
	if (store_filter_empty(f)) {
		*pass = true;
		return 0;
	}
	int ret = store_entry_get(txn, uid, seq, &e);
	if (ret == HSAMEM_ENOTFOUND) {
		*pass = false;
		return 0;
	}
	if (ret != 0)
		return job_fail(job, ret, "store: cannot read entry %llu: %s",
		                (unsigned long long)seq, hsamem_strerror(ret));
	*pass = store_filter_match(f, &e);
	return 0;
}
