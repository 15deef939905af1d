/*
 * backend.c: what every backend checks alike before it runs the operator, so that the backends
 * refuse exactly the same calls.
 */
#include <stddef.h>

#include "backend.h"
#include "hsamem_defs.h"

bool
gpu_shape_ok(const struct hsa_spec *sp)
{
	return sp->S >= 1 && sp->h_kv >= 1 && sp->d_h >= 1 && sp->h_q >= sp->h_kv &&
	       sp->h_q % sp->h_kv == 0 && sp->d_r >= sp->h_kv && sp->d_r % sp->h_kv == 0 &&
	       (sp->dtype == HSA_F16 || sp->dtype == HSA_BF16 || sp->dtype == HSA_F32) &&
	       (sp->weighting == HSA_SOFTMAX || sp->weighting == HSA_STICKBREAK);
}

int
gpu_check_call(const struct hsa_spec *sp, const struct hsa_source *src, const struct hsa_query *q,
               const struct hsa_result *res)
{
	if (sp == NULL || src == NULL || q == NULL || res == NULL || !gpu_shape_ok(sp))
		return HSAMEM_EINVAL;
	/* backend.h: selection only, or the attention shown without outputs */
	bool sel_only = res->out == NULL && res->attn == NULL;
	if (src->landmarks == NULL || (src->chunk_kv == NULL && !sel_only))
		return HSAMEM_EINVAL;
	if (src->tail_keys > sp->S || (src->tail_keys > 0 && src->n_chunks == 0))
		return HSAMEM_EINVAL;
	if (q->n < 1 || q->k < 1 || q->k > SPEC_TOPK_MAX || q->pos == NULL || q->qr == NULL ||
	    (q->qa == NULL && !sel_only))
		return HSAMEM_EINVAL;
	if (res->sel == NULL || res->score == NULL || (res->weight == NULL && !sel_only))
		return HSAMEM_EINVAL;
	return 0;
}
