/*
 * hsa_cuda_none.c: hsa_cuda.h in a build without CUDA: no device can be attached, so every
 * caller stays on the CPU runtime.
 */
#include "hsa_cuda.h"
#include "hsamem_defs.h"
#include "why.h"

int
hsa_cuda_attach(struct hsa_model *m, int device, char *why, size_t why_len)
{
	(void)m;
	return why_fail(why, why_len, HSAMEM_EBACKEND,
	                "CUDA device %d: hsamem was built without CUDA", device);
}

void
hsa_cuda_detach(struct hsa_model *m)
{
	(void)m;
}

const struct hsa_runtime *
hsa_runtime_cuda(void)
{
	return NULL;
}

int
hsa_cuda_lower(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *tok,
               uint32_t n_windows, uint32_t n, float *H)
{
	(void)m, (void)s, (void)tok, (void)n_windows, (void)n, (void)H;
	return HSAMEM_EBACKEND;
}

int
hsa_cuda_query_heads(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win,
                     uint32_t n, uint32_t first, float *qr, float *qa)
{
	(void)m, (void)s, (void)win, (void)n, (void)first, (void)qr, (void)qa;
	return HSAMEM_EBACKEND;
}

int
hsa_cuda_query_prepare(const struct hsa_model *m, struct hsa_scratch *s, uint32_t n_lo,
                       uint32_t n_hi)
{
	(void)m, (void)s, (void)n_lo, (void)n_hi;
	return HSAMEM_EBACKEND;
}

int
hsa_cuda_query_heads_start(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win,
                           uint32_t n, uint32_t first)
{
	(void)m, (void)s, (void)win, (void)n, (void)first;
	return HSAMEM_EBACKEND;
}

int
hsa_cuda_query_heads_finish(const struct hsa_model *m, struct hsa_scratch *s, float *qr, float *qa)
{
	(void)m, (void)s, (void)qr, (void)qa;
	return HSAMEM_EBACKEND;
}

int
hsa_cuda_query_logits(const struct hsa_model *m, struct hsa_scratch *s, uint32_t n, uint32_t first,
                      const float *O, float *logits)
{
	(void)m, (void)s, (void)n, (void)first, (void)O, (void)logits;
	return HSAMEM_EBACKEND;
}
