/*
 * bpe.c: the hsamem-bpe tokenizer. It owns the merge table (an open-addressing hash from an id
 * pair to its rank, so finding the best pair of a piece costs one probe per adjacent pair) and
 * the bytes of every id. Written here rather than taken from a library because the pre-split
 * classes and the merge rule are this project's own (models/README.md) and must be reproduced
 * bit for bit; no packaged BPE library does exactly that.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "hsamem_defs.h"
#include "why.h"

#define BPE_BYTES 256

struct bpe {
	uint32_t vocab;
	uint32_t first_merge; /* 256 + the number of specials */
	uint32_t n_special;
	char **special; /* names of ids 256 .. first_merge-1 */
	uint64_t *key;  /* hash of merges: (left << 32 | right) + 1, 0 = empty */
	uint32_t *rank;
	uint32_t mask;
	uint32_t *off; /* bytes of id i: pool[off[i] .. off[i+1]) */
	unsigned char *pool;
};

static inline uint32_t
bpe_hash(uint64_t k)
{
	k *= 0x9e3779b97f4a7c15ull;
	return (uint32_t)(k >> 32);
}

/* The rank of merge (a, b), or UINT32_MAX when the pair is not in the table. */
static inline uint32_t
bpe_rank(const struct bpe *b, uint32_t l, uint32_t r)
{
	uint64_t k = ((uint64_t)l << 32 | r) + 1;
	uint32_t i = bpe_hash(k) & b->mask;

	while (b->key[i]) {
		if (b->key[i] == k)
			return b->rank[i];
		i = (i + 1) & b->mask;
	}
	return UINT32_MAX;
}

/* Reads the next line of buf into line (NUL-terminated, without the newline). */
static int
bpe_line(char **cur, char **line)
{
	char *nl;

	if (!**cur)
		return -1;
	*line = *cur;
	nl = strchr(*cur, '\n');
	if (nl) {
		*nl = '\0';
		*cur = nl + 1;
	} else {
		*cur += strlen(*cur);
	}
	return 0;
}

static char *
bpe_slurp(const char *path, int *rc)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long sz;

	*rc = -errno;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
	    !(buf = malloc((size_t)sz + 1)) || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		*rc = buf ? -EIO : -ENOMEM;
		free(buf);
		buf = NULL;
	} else {
		buf[sz] = '\0';
	}
	fclose(f);
	return buf;
}

/* Parses the merges (line i makes id first_merge + i from two earlier ids) into the hash. */
static int
bpe_merges(struct bpe *b, char **cur, uint32_t *pair, const char *path, char *why, size_t why_len)
{
	uint32_t n = b->vocab - b->first_merge, i, l, r, size = 1, h;
	char *line = NULL, tail;
	uint64_t k;

	while (size < 2 * n + 2)
		size <<= 1;
	b->mask = size - 1;
	b->key = calloc(size, sizeof(*b->key));
	b->rank = calloc(size, sizeof(*b->rank));
	if (!b->key || !b->rank)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		line = NULL;
		if (bpe_line(cur, &line) || sscanf(line, "%u %u%c", &l, &r, &tail) != 2 ||
		    l >= b->first_merge + i || r >= b->first_merge + i ||
		    (l >= BPE_BYTES && l < b->first_merge) ||
		    (r >= BPE_BYTES && r < b->first_merge))
			return why_fail(why, why_len, HSAMEM_EENCODER,
			                "%s: merge %u: expected two earlier non-special ids, found "
			                "\"%.40s\"",
			                path, i, line ? line : "(end of file)");
		k = ((uint64_t)l << 32 | r) + 1;
		for (h = bpe_hash(k) & b->mask; b->key[h]; h = (h + 1) & b->mask)
			if (b->key[h] == k)
				return why_fail(why, why_len, HSAMEM_EENCODER,
				                "%s: merge %u repeats the pair %u %u", path, i, l,
				                r);
		b->key[h] = k;
		b->rank[h] = i;
		pair[2 * i] = l;
		pair[2 * i + 1] = r;
	}
	return 0;
}

/* Builds the bytes of every id from the merge pairs. */
static int
bpe_build_bytes(struct bpe *b, const uint32_t *pair)
{
	uint32_t i, n = b->vocab - b->first_merge;
	size_t total = 0;

	b->off = malloc(((size_t)b->vocab + 1) * sizeof(*b->off));
	if (!b->off)
		return -ENOMEM;
	b->off[0] = 0;
	for (i = 0; i < b->vocab; i++) {
		uint32_t len = i < BPE_BYTES ? 1 : 0;
		if (i >= b->first_merge) {
			const uint32_t *p = pair + 2 * (i - b->first_merge);
			len = (b->off[p[0] + 1] - b->off[p[0]]) + (b->off[p[1] + 1] - b->off[p[1]]);
		}
		if (total + len > UINT32_MAX)
			return -EOVERFLOW;
		total += len;
		b->off[i + 1] = (uint32_t)total;
	}
	b->pool = malloc(total ? total : 1);
	if (!b->pool)
		return -ENOMEM;
	for (i = 0; i < BPE_BYTES; i++)
		b->pool[i] = (unsigned char)i;
	for (i = 0; i < n; i++) {
		uint32_t l = pair[2 * i], r = pair[2 * i + 1], id = b->first_merge + i;
		uint32_t ll = b->off[l + 1] - b->off[l];
		memcpy(b->pool + b->off[id], b->pool + b->off[l], ll);
		memcpy(b->pool + b->off[id] + ll, b->pool + b->off[r], b->off[r + 1] - b->off[r]);
	}
	return 0;
}

/* Parses the header lines and the specials. */
static int
bpe_head(struct bpe *b, char **cur, const char *path, char *why, size_t why_len)
{
	uint32_t i, id, n_merges;
	char *line = NULL, name[64], tail;

	if (bpe_line(cur, &line) || strcmp(line, "hsamem-bpe 1"))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: line 1: expected \"hsamem-bpe 1\", found \"%.40s\"", path,
		                line ? line : "");
	if (bpe_line(cur, &line) || sscanf(line, "vocab %u%c", &b->vocab, &tail) != 1 ||
	    b->vocab <= BPE_BYTES || b->vocab > (1u << 24))
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: line 2: expected \"vocab N\"",
		                path);
	if (bpe_line(cur, &line) || sscanf(line, "specials %u%c", &b->n_special, &tail) != 1 ||
	    b->n_special > 1024 || BPE_BYTES + b->n_special > b->vocab)
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: line 3: expected \"specials N\"", path);
	b->first_merge = BPE_BYTES + b->n_special;
	b->special = calloc(b->n_special + 1, sizeof(*b->special));
	if (!b->special)
		return -ENOMEM;
	for (i = 0; i < b->n_special; i++) {
		if (bpe_line(cur, &line) || sscanf(line, "%63s %u%c", name, &id, &tail) != 2 ||
		    id != BPE_BYTES + i)
			return why_fail(why, why_len, HSAMEM_EENCODER,
			                "%s: special %u: expected \"<name> %u\"", path, i,
			                BPE_BYTES + i);
		if (!(b->special[i] = strdup(name)))
			return -ENOMEM;
	}
	if (bpe_line(cur, &line) || sscanf(line, "merges %u%c", &n_merges, &tail) != 1 ||
	    n_merges != b->vocab - b->first_merge)
		return why_fail(
		        why, why_len, HSAMEM_EENCODER,
		        "%s: expected \"merges %u\" (vocab %u less bytes and specials), found "
		        "\"%.40s\"",
		        path, b->vocab - b->first_merge, b->vocab, line ? line : "");
	return 0;
}

int
bpe_load(const char *path, struct bpe **out, char *why, size_t why_len)
{
	struct bpe *b = NULL;
	uint32_t *pair = NULL;
	char *buf, *cur;
	int rc;

	buf = bpe_slurp(path, &rc);
	if (!buf) {
		if (why && why_len)
			snprintf(why, why_len, "%s: %s", path, strerror(-rc));
		return rc;
	}
	cur = buf;
	b = calloc(1, sizeof(*b));
	if (!b) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = bpe_head(b, &cur, path, why, why_len);
	if (rc)
		goto fail;
	pair = malloc(2 * sizeof(*pair) * (b->vocab - b->first_merge + 1));
	if (!pair) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = bpe_merges(b, &cur, pair, path, why, why_len);
	if (!rc)
		rc = bpe_build_bytes(b, pair);
	if (rc)
		goto fail;
	free(pair);
	free(buf);
	*out = b;
	return 0;
fail:
	free(pair);
	bpe_free(b);
	free(buf);
	return rc;
}

void
bpe_free(struct bpe *b)
{
	uint32_t i;

	if (!b)
		return;
	for (i = 0; b->special && i < b->n_special; i++)
		free(b->special[i]);
	free(b->special);
	free(b->key);
	free(b->rank);
	free(b->off);
	free(b->pool);
	free(b);
}

uint32_t
bpe_vocab(const struct bpe *b)
{
	return b->vocab;
}

int32_t
bpe_special(const struct bpe *b, const char *name)
{
	uint32_t i;

	for (i = 0; i < b->n_special; i++)
		if (!strcmp(b->special[i], name))
			return (int32_t)(BPE_BYTES + i);
	return -1;
}

const unsigned char *
bpe_bytes(const struct bpe *b, uint32_t id, size_t *len)
{
	if (id >= b->vocab) {
		*len = 0;
		return b->pool;
	}
	*len = b->off[id + 1] - b->off[id];
	return b->pool + b->off[id];
}

/* The pre-split classes. */
enum { C_LETTER, C_DIGIT, C_SPACE, C_OTHER };

static inline int
bpe_class(unsigned char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80)
		return C_LETTER;
	if (c >= '0' && c <= '9')
		return C_DIGIT;
	if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
		return C_SPACE;
	return C_OTHER;
}

/* The length of the piece that starts at s[0] (models/README.md, step 1). */
static size_t
bpe_piece(const unsigned char *s, size_t len)
{
	size_t i = 0;
	int c;

	if (s[0] == ' ' && len > 1 && bpe_class(s[1]) != C_SPACE)
		i = 1;
	c = bpe_class(s[i]);
	if (c == C_SPACE || c == C_DIGIT)
		return i + 1;
	while (i < len && bpe_class(s[i]) == c)
		i++;
	return i;
}

/* Merges the ids of one piece in place (step 2); returns the new count. */
static size_t
bpe_merge_piece(const struct bpe *b, uint32_t *w, size_t n)
{
	while (n > 1) {
		uint32_t best = UINT32_MAX, r, l0, r0, id;
		size_t i, j;

		for (i = 0; i + 1 < n; i++) {
			r = bpe_rank(b, w[i], w[i + 1]);
			if (r < best)
				best = r;
		}
		if (best == UINT32_MAX)
			break;
		id = b->first_merge + best;
		for (i = 0; i + 1 < n; i++)
			if (bpe_rank(b, w[i], w[i + 1]) == best)
				break;
		l0 = w[i];
		r0 = w[i + 1];
		for (j = i; i < n;) {
			if (i + 1 < n && w[i] == l0 && w[i + 1] == r0) {
				w[j++] = id;
				i += 2;
			} else {
				w[j++] = w[i++];
			}
		}
		n = j;
	}
	return n;
}

int
bpe_encode(const struct bpe *b, const char *text, size_t len, uint32_t **ids, size_t *n)
{
	const unsigned char *s = (const unsigned char *)text;
	uint32_t *out = NULL;
	size_t pos = 0, k = 0, plen, i;

	if (len) {
		out = malloc(len * sizeof(*out));
		if (!out)
			return -ENOMEM;
	}
	while (pos < len) {
		plen = bpe_piece(s + pos, len - pos);
		for (i = 0; i < plen; i++)
			out[k + i] = s[pos + i];
		k += bpe_merge_piece(b, out + k, plen);
		pos += plen;
	}
	*ids = out;
	*n = k;
	return 0;
}

int
bpe_decode(const struct bpe *b, const uint32_t *ids, size_t n, char **out, size_t *len)
{
	size_t i, total = 0, l;
	char *buf;

	for (i = 0; i < n; i++) {
		bpe_bytes(b, ids[i], &l);
		total += l;
	}
	buf = malloc(total + 1);
	if (!buf)
		return -ENOMEM;
	total = 0;
	for (i = 0; i < n; i++) {
		const unsigned char *p = bpe_bytes(b, ids[i], &l);
		memcpy(buf + total, p, l);
		total += l;
	}
	buf[total] = '\0';
	*out = buf;
	*len = total;
	return 0;
}
