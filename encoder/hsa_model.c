/*
 * hsa_model.c: loading a model folder (models/README.md). It owns the configuration parse
 * (jansson), the checks of the weights file against the configuration, and the widening of the
 * bf16 weights into one fp32 arena. It knows nothing of the forward computation beyond the
 * names and shapes of the tensors; hsa_forward.c owns that.
 *
 * Weights are read in two passes over the same table of tensors: the first only checks and
 * counts, the second allocates the arena and widens. Tensors read one after another land next to
 * each other in the arena, which is how wq|wk|wv and w1|w3 become one matrix each (one GEMM
 * instead of three or two).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsa_model.h"
#include "hsamem_defs.h"
#include "st.h"
#include "why.h"

/* Loading state: sticky error, the first failure wins and every later step is a no-op. */
struct ld {
	const struct st_file *st;
	enum st_dtype dtype;
	float *arena; /* NULL in the counting pass */
	size_t used, n_seen;
	int rc;
	char *why;
	size_t why_len;
};

/* Checks tensor name against [rows] (cols 0) or [rows, cols], widens it; NULL after a failure. */
static float *
ld_take(struct ld *l, const char *name, uint32_t rows, uint32_t cols)
{
	const struct st_tensor *t;
	uint64_t n = (uint64_t)rows * (cols ? cols : 1), i;
	float *dst;
	char want[48], got[64] = "";
	uint32_t d;

	if (l->rc)
		return NULL;
	t = st_find(l->st, name);
	if (!t) {
		l->rc = why_fail(l->why, l->why_len, HSAMEM_EENCODER, "%s: tensor %s is missing",
		                 st_path(l->st), name);
		return NULL;
	}
	if (cols)
		snprintf(want, sizeof(want), "[%u, %u]", rows, cols);
	else
		snprintf(want, sizeof(want), "[%u]", rows);
	for (d = 0; d < t->ndim && strlen(got) < sizeof(got) - 24; d++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%llu", d ? ", " : "[",
		         (unsigned long long)t->shape[d]);
	strcat(got, "]");
	if (t->ndim != (cols ? 2u : 1u) || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
		l->rc = why_fail(l->why, l->why_len, HSAMEM_EENCODER,
		                 "%s: tensor %s: shape %s, expected %s", st_path(l->st), name, got,
		                 want);
		return NULL;
	}
	if (t->dtype != l->dtype) {
		l->rc = why_fail(l->why, l->why_len, HSAMEM_EENCODER,
		                 "%s: tensor %s: dtype %s, expected %s", st_path(l->st), name,
		                 st_dtype_name(t->dtype), st_dtype_name(l->dtype));
		return NULL;
	}
	l->n_seen++;
	if (!l->arena) {
		l->used += n;
		return NULL;
	}
	dst = l->arena + l->used;
	for (i = 0; i < n; i++)
		dst[i] = st_get_f32(t, i);
	l->used += n;
	return dst;
}

static void
ld_attn(struct ld *l, const struct hsa_config *c, const char *pre, struct hsa_attn_w *a)
{
	static const char *const qkv[3] = {"wq", "wk", "wv"};
	char name[128];
	int i;

	for (i = 0; i < 3; i++) {
		float *w;
		snprintf(name, sizeof(name), "%s.%s.weight", pre, qkv[i]);
		w = ld_take(l, name, c->d_model, c->d_model);
		if (i == 0)
			a->wqkv = w;
	}
	snprintf(name, sizeof(name), "%s.wo.weight", pre);
	a->wo = ld_take(l, name, c->d_model, c->d_model);
	snprintf(name, sizeof(name), "%s.q_norm.weight", pre);
	a->q_norm = ld_take(l, name, c->d_head, 0);
	snprintf(name, sizeof(name), "%s.k_norm.weight", pre);
	a->k_norm = ld_take(l, name, c->d_head, 0);
}

/* The MLP of prefix pre (pre.w1, pre.w3 stacked, then pre.w2). */
static void
ld_mlp(struct ld *l, const struct hsa_config *c, const char *pre, float **w13, float **w2)
{
	char name[128];

	snprintf(name, sizeof(name), "%s.w1.weight", pre);
	*w13 = ld_take(l, name, c->d_mlp, c->d_model);
	snprintf(name, sizeof(name), "%s.w3.weight", pre);
	ld_take(l, name, c->d_mlp, c->d_model);
	snprintf(name, sizeof(name), "%s.w2.weight", pre);
	*w2 = ld_take(l, name, c->d_model, c->d_mlp);
}

static void
ld_blocks(struct ld *l, const struct hsa_config *c, const char *stack, uint32_t n,
          struct hsa_block_w *b)
{
	char pre[96], name[128];
	uint32_t i;

	for (i = 0; i < n; i++) {
		snprintf(pre, sizeof(pre), "%s.%u.attn", stack, i);
		ld_attn(l, c, pre, &b[i].attn);
		snprintf(name, sizeof(name), "%s.%u.attn_norm.weight", stack, i);
		b[i].attn_norm = ld_take(l, name, c->d_model, 0);
		snprintf(pre, sizeof(pre), "%s.%u.mlp", stack, i);
		ld_mlp(l, c, pre, &b[i].w13, &b[i].w2);
		snprintf(name, sizeof(name), "%s.%u.mlp_norm.weight", stack, i);
		b[i].mlp_norm = ld_take(l, name, c->d_model, 0);
	}
}

/* One pass over every tensor of the model, in a fixed order. */
static void
ld_all(struct ld *l, struct hsa_model *m)
{
	const struct hsa_config *c = &m->cfg;
	uint32_t D = c->d_model;

	m->embed = ld_take(l, "embed.weight", c->vocab, D);
	ld_blocks(l, c, "lower", c->n_lower, m->lower);
	ld_blocks(l, c, "enc", c->n_enc, m->enc);
	ld_blocks(l, c, "upper", c->n_upper, m->upper);
	m->summary = ld_take(l, "summary", D, 0);
	m->enc_norm = ld_take(l, "enc_norm.weight", D, 0);
	m->enc_k = ld_take(l, "enc_k.weight", c->h_kv * c->d_h, D);
	m->enc_v = ld_take(l, "enc_v.weight", c->h_kv * c->d_h, D);
	m->enc_lmk = ld_take(l, "enc_lmk.weight", c->d_r, D);
	ld_attn(l, c, "hsa_swa", &m->hsa_swa);
	m->hsa_swa_norm = ld_take(l, "hsa_swa_norm.weight", D, 0);
	m->ret_norm = ld_take(l, "ret_norm.weight", D, 0);
	m->ret_q = ld_take(l, "ret_q.weight", c->d_r, D);
	m->hsa_norm = ld_take(l, "hsa_norm.weight", D, 0);
	m->hsa_q = ld_take(l, "hsa_q.weight", c->h_q * c->d_h, D);
	m->hsa_o = ld_take(l, "hsa_o.weight", D, c->h_q * c->d_h);
	m->hsa_mlp_norm = ld_take(l, "hsa_mlp_norm.weight", D, 0);
	ld_mlp(l, c, "hsa_mlp", &m->hsa_w13, &m->hsa_w2);
	m->final_norm = ld_take(l, "final_norm.weight", D, 0);
}

/* An integer field of config.json in [lo, hi]. */
static int
cfg_u32(json_t *o, const char *file, const char *key, uint32_t lo, uint32_t hi, uint32_t *v,
        char *why, size_t why_len)
{
	json_t *j = json_object_get(o, key);

	if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: \"%s\" must be an integer in %u..%u", file, key, lo, hi);
	*v = (uint32_t)json_integer_value(j);
	return 0;
}

static int
cfg_str(json_t *o, const char *file, const char *key, const char *want, char *why, size_t why_len)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s)
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: \"%s\" must be a string", file,
		                key);
	if (want && strcmp(s, want))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: \"%s\" is \"%s\", expected \"%s\"", file, key, s, want);
	return 0;
}

/* Reads the sizes of config.json (root) into c, checking each and how they fit together. */
static int
cfg_parse(json_t *root, const char *file, struct hsa_config *c, char *why, size_t why_len)
{
	const uint32_t big = 1u << 20;
	json_t *sp = json_object_get(root, "special_tokens");
	int rc = 0;

	rc = rc ? rc : cfg_str(root, file, "format", HSA_FORMAT, why, why_len);
	rc = rc ? rc : cfg_str(root, file, "weighting", "softmax", why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "vocab", 264, 1u << 24, &c->vocab, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "d_model", 1, 65536, &c->d_model, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "n_heads", 1, 4096, &c->n_heads, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "d_mlp", 1, big, &c->d_mlp, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "n_lower", 0, 256, &c->n_lower, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "n_enc", 0, 256, &c->n_enc, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "n_upper", 0, 256, &c->n_upper, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "chunk", 1, 4096, &c->chunk, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "h_kv", 1, 256, &c->h_kv, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "d_h", 1, 4096, &c->d_h, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "h_q", 1, 4096, &c->h_q, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "d_r", 1, big, &c->d_r, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "topk", 1, 4096, &c->topk, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "step", 0, UINT32_MAX - 1, &c->step, why, why_len);
	rc = rc ? rc : cfg_u32(root, file, "pad_id", 0, c->vocab - 1, &c->pad_id, why, why_len);
	if (rc)
		return rc;
	if (!json_is_object(sp))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: \"special_tokens\" must be an object", file);
	rc = rc ? rc : cfg_u32(sp, file, "eos", 0, c->vocab - 1, &c->eos_id, why, why_len);
	rc = rc ? rc : cfg_u32(sp, file, "q", 0, c->vocab - 1, &c->q_id, why, why_len);
	rc = rc ? rc : cfg_u32(sp, file, "a", 0, c->vocab - 1, &c->a_id, why, why_len);
	if (rc)
		return rc;
	if (!json_is_number(json_object_get(root, "rope_theta")) ||
	    !json_is_number(json_object_get(root, "eps")))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: \"rope_theta\" and \"eps\" must be numbers", file);
	c->rope_theta = (float)json_number_value(json_object_get(root, "rope_theta"));
	c->eps = (float)json_number_value(json_object_get(root, "eps"));
	if (c->d_model % c->n_heads || (c->d_model / c->n_heads) % 2)
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: d_model %u is not n_heads %u times an even size", file,
		                c->d_model, c->n_heads);
	if (c->h_q % c->h_kv || c->d_r % c->h_kv)
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: h_q %u and d_r %u must be multiples of h_kv %u", file, c->h_q,
		                c->d_r, c->h_kv);
	if (!(c->rope_theta > 0) || !(c->eps > 0))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: rope_theta and eps must be positive", file);
	c->d_head = c->d_model / c->n_heads;
	return 0;
}

/* The weights file's metadata: format, step, and every key of its config equal to config.json. */
static int
meta_check(const struct st_file *st, json_t *root, const struct hsa_config *c, char *why,
           size_t why_len)
{
	const char *fmt = st_meta(st, "format"), *step = st_meta(st, "step");
	const char *cfg = st_meta(st, "config"), *key;
	json_t *mc, *val;
	int rc = 0;

	if (!fmt || strcmp(fmt, HSA_FORMAT))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: metadata format is \"%s\", expected \"%s\"", st_path(st),
		                fmt ? fmt : "(none)", HSA_FORMAT);
	if (!step || strtoul(step, NULL, 10) != c->step)
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: metadata step is %s, config.json says %u", st_path(st),
		                step ? step : "(none)", c->step);
	mc = cfg ? json_loads(cfg, 0, NULL) : NULL;
	if (!json_is_object(mc)) {
		json_decref(mc);
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: metadata config is not a JSON object", st_path(st));
	}
	json_object_foreach(mc, key, val)
	{
		json_t *want = json_object_get(root, key);
		int same = want && (json_is_number(val) && json_is_number(want)
		                            ? json_number_value(val) == json_number_value(want)
		                            : json_equal(val, want));
		if (!same) {
			rc = why_fail(why, why_len, HSAMEM_EENCODER,
			              "%s: metadata config \"%s\" differs from config.json",
			              st_path(st), key);
			break;
		}
	}
	json_decref(mc);
	return rc;
}

/* Reads, checks and widens the weights of m (whose cfg is set) from the open file st. */
static int
weights_load(struct hsa_model *m, const struct st_file *st, json_t *root, char *why, size_t why_len)
{
	const char *dt = json_string_value(json_object_get(root, "dtype"));
	struct ld l = {.st = st, .why = why, .why_len = why_len};
	int rc;

	if (!dt || (strcmp(dt, "bf16") && strcmp(dt, "f32")))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "config.json: \"dtype\" is \"%s\", expected \"bf16\"",
		                dt ? dt : "(none)");
	l.dtype = strcmp(dt, "bf16") ? ST_F32 : ST_BF16;
	rc = meta_check(st, root, &m->cfg, why, why_len);
	if (rc)
		return rc;
	ld_all(&l, m); /* counting pass */
	if (l.rc)
		return l.rc;
	if (l.n_seen != st_count(st))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: %zu tensors, the config calls for %zu", st_path(st),
		                st_count(st), l.n_seen);
	m->n_params = l.used;
	m->arena = malloc(l.used * sizeof(float));
	if (!m->arena)
		return -ENOMEM;
	l.arena = m->arena;
	l.used = 0;
	ld_all(&l, m);
	return l.rc;
}

/* Reads config.json of dir into *root and m->cfg. */
static int
config_load(const char *dir, struct hsa_model *m, json_t **root, char *why, size_t why_len)
{
	char path[PATH_MAX];
	json_error_t jerr;

	snprintf(path, sizeof(path), "%s/config.json", dir);
	*root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!*root)
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: line %d: %s", path, jerr.line,
		                jerr.text);
	if (!json_is_object(*root))
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: not a JSON object", path);
	return cfg_parse(*root, path, &m->cfg, why, why_len);
}

/* Loads the tokenizer that config.json names and checks its ids against the config. */
static int
tokenizer_load(const char *dir, struct hsa_model *m, json_t *root, char *why, size_t why_len)
{
	const char *name = json_string_value(json_object_get(root, "tokenizer"));
	const struct hsa_config *c = &m->cfg;
	char path[PATH_MAX];
	int rc;

	if (!name || strchr(name, '/'))
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s/config.json: \"tokenizer\" must name a file", dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rc = bpe_load(path, &m->tok, why, why_len);
	if (rc)
		return rc == -ENOENT ? why_fail(why, why_len, HSAMEM_EENCODER, "%s: missing", path)
		                     : rc;
	if (bpe_vocab(m->tok) != c->vocab)
		return why_fail(why, why_len, HSAMEM_EENCODER, "%s: vocab %u, config.json says %u",
		                path, bpe_vocab(m->tok), c->vocab);
	if (bpe_special(m->tok, "<|pad|>") != (int32_t)c->pad_id ||
	    bpe_special(m->tok, "<|eos|>") != (int32_t)c->eos_id ||
	    bpe_special(m->tok, "<|q|>") != (int32_t)c->q_id ||
	    bpe_special(m->tok, "<|a|>") != (int32_t)c->a_id)
		return why_fail(why, why_len, HSAMEM_EENCODER,
		                "%s: special token ids differ from config.json", path);
	return 0;
}

int
hsa_model_load(const char *dir, struct hsa_model **out, char *why, size_t why_len)
{
	struct st_file *st = NULL;
	struct hsa_model *m;
	json_t *root = NULL;
	char path[PATH_MAX];
	const char *wname;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	rc = config_load(dir, m, &root, why, why_len);
	if (rc)
		goto fail;
	m->lower = calloc(m->cfg.n_lower + 1, sizeof(*m->lower));
	m->enc = calloc(m->cfg.n_enc + 1, sizeof(*m->enc));
	m->upper = calloc(m->cfg.n_upper + 1, sizeof(*m->upper));
	if (!m->lower || !m->enc || !m->upper) {
		rc = -ENOMEM;
		goto fail;
	}
	wname = json_string_value(json_object_get(root, "weights"));
	if (!wname || strchr(wname, '/')) {
		rc = why_fail(why, why_len, HSAMEM_EENCODER,
		              "%s/config.json: \"weights\" must name a file", dir);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, wname);
	rc = st_open(path, &st, why, why_len);
	if (rc == -ENOENT)
		rc = why_fail(why, why_len, HSAMEM_EENCODER, "%s: missing", path);
	if (!rc)
		rc = weights_load(m, st, root, why, why_len);
	if (!rc)
		rc = tokenizer_load(dir, m, root, why, why_len);
	if (rc)
		goto fail;
	st_close(st);
	json_decref(root);
	*out = m;
	return 0;
fail:
	st_close(st);
	json_decref(root);
	hsa_model_free(m);
	return rc;
}

void
hsa_model_free(struct hsa_model *m)
{
	if (!m)
		return;
	bpe_free(m->tok);
	free(m->lower);
	free(m->enc);
	free(m->upper);
	free(m->arena);
	free(m);
}
