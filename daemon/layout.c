/*
 * layout.c: the layout of a new memory (layout.h).
 */
#include "layout.h"

#include "encoder.h"
#include "hybrid.h"
#include "kvcalc.h"

uint32_t
layout_flags(const struct hsa_spec *spec)
{
	const struct enc_ops *enc = enc_find(spec->encoder);
	uint32_t f = hyb_flags(spec) | kvc_flags(spec);
	if (enc != NULL && enc->sparse_landmarks)
		f |= STORE_USER_LMK_SPARSE;
	if (f & STORE_USER_LEXICAL) /* the lexical encoder's landmarks */
		f |= STORE_USER_LEXLM_SPARSE;
	return f;
}
