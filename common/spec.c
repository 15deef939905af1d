/*
 * spec.c: range checks and sizes of a memory's spec.
 */
#include <stdio.h>
#include <string.h>

#include "hsamem_defs.h"
#include "spec.h"

static int
fail(char *why, size_t why_len, const char *msg)
{
	if (why != NULL && why_len > 0)
		snprintf(why, why_len, "%s", msg);
	return HSAMEM_EINVAL;
}

int
spec_check(const struct hsa_spec *s, char *why, size_t why_len)
{
	if (s->encoder[0] == '\0' || memchr(s->encoder, '\0', sizeof(s->encoder)) == NULL)
		return fail(why, why_len, "spec: encoder name is empty or too long");
	if (memchr(s->tokenizer, '\0', sizeof(s->tokenizer)) == NULL)
		return fail(why, why_len, "spec: tokenizer name is too long");
	if (s->S < 1 || s->S > 1024)
		return fail(why, why_len, "spec: chunk_size must be 1..1024");
	if (s->h_kv < 1 || s->h_kv > 64)
		return fail(why, why_len, "spec: h_kv must be 1..64");
	if (s->d_h < 1 || s->d_h > 1024)
		return fail(why, why_len, "spec: d_h must be 1..1024");
	if (s->h_q < s->h_kv || s->h_q % s->h_kv != 0 || s->h_q / s->h_kv > 64)
		return fail(why, why_len,
		            "spec: h_q must be a multiple of h_kv, at most 64 times it");
	if (s->d_r < s->h_kv || s->d_r % s->h_kv != 0 || s->d_r > 8192)
		return fail(why, why_len, "spec: d_r must be a multiple of h_kv, at most 8192");
	if (spec_dtype_name(s->dtype) == NULL)
		return fail(why, why_len, "spec: dtype must be f16, bf16 or f32");
	if (spec_weighting_name(s->weighting) == NULL)
		return fail(why, why_len, "spec: weighting must be softmax or stickbreak");
	if (s->top_k < 1 || s->top_k > SPEC_TOPK_MAX)
		return fail(why, why_len, "spec: top_k must be 1..256");
	return 0;
}

size_t
spec_elem_size(enum hsa_dtype dtype)
{
	return dtype == HSA_F32 ? 4 : 2;
}

size_t
spec_kv_bytes(const struct hsa_spec *s)
{
	return 2 * (size_t)s->S * s->h_kv * s->d_h * spec_elem_size(s->dtype);
}

size_t
spec_landmark_bytes(const struct hsa_spec *s)
{
	return (size_t)s->d_r * spec_elem_size(s->dtype);
}

const char *
spec_dtype_name(enum hsa_dtype dtype)
{
	switch (dtype) {
	case HSA_F16: return "f16";
	case HSA_BF16: return "bf16";
	case HSA_F32: return "f32";
	}
	return NULL;
}

enum hsa_dtype
spec_dtype_parse(const char *name)
{
	for (int t = HSA_F16; t <= HSA_F32; t++)
		if (strcmp(name, spec_dtype_name(t)) == 0)
			return t;
	return 0;
}

const char *
spec_weighting_name(enum hsa_weighting w)
{
	switch (w) {
	case HSA_SOFTMAX: return "softmax";
	case HSA_STICKBREAK: return "stickbreak";
	}
	return NULL;
}

enum hsa_weighting
spec_weighting_parse(const char *name)
{
	for (int w = HSA_SOFTMAX; w <= HSA_STICKBREAK; w++)
		if (strcmp(name, spec_weighting_name(w)) == 0)
			return w;
	return 0;
}
