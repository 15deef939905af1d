/*
 * hsa_cuda.h: the learned encoder's forward computation on a CUDA GPU: the same stages as the CPU
 * runtime (hsa_forward.h), which stays the reference, with the weights uploaded once as bf16,
 * every linear layer a cuBLAS GEMM (bf16 inputs, fp32 accumulation and output, tensor cores) and
 * the small operations as our kernels (hsa_cuda_kernels.cu), all in fp32.
 *
 * A model is attached to a device once (hsa_cuda_attach) before any thread uses the runtime; the
 * runtime's calls then take scratch from its scratch_alloc, one per thread at a time, each with
 * its own stream and cuBLAS handle. Chunk encoding runs a whole batch of windows with one upload,
 * one download and one synchronisation per call, so a caller batches as many chunks as it can.
 *
 * A build without CUDA has the same functions: attaching fails with HSAMEM_EBACKEND and
 * hsa_runtime_cuda() is NULL. A CUDA failure (no device, out of memory, a failed launch) is
 * logged and returned as HSAMEM_EBACKEND; the caller then computes on the CPU.
 */
#ifndef HSAMEM_HSA_CUDA_H
#define HSAMEM_HSA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "hsa_forward.h"
#include "hsa_model.h"

/*
 * Uploads m's weights to CUDA device `device` and keeps them in m->gpu until hsa_cuda_detach.
 * 0, or HSAMEM_EBACKEND (no such device, no CUDA in this build, a CUDA error) with a sentence in
 * why.
 */
int hsa_cuda_attach(struct hsa_model *m, int device, char *why, size_t why_len);

/* Frees the device copy; accepts a model never attached. No call may be running on it. */
void hsa_cuda_detach(struct hsa_model *m);

/* The CUDA runtime (hsa_forward.h's table) for an attached model; NULL in a build without CUDA. */
const struct hsa_runtime *hsa_runtime_cuda(void);

/* Stages for tests and benchmarks, on scratch of the CUDA runtime; each as its CPU namesake in
 * hsa_forward.h (the same arguments, sizes and errors, HSAMEM_EBACKEND besides). */
int hsa_cuda_lower(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *tok,
                   uint32_t n_windows, uint32_t n, float *H);
int hsa_cuda_query_heads(const struct hsa_model *m, struct hsa_scratch *s, const uint32_t *win,
                         uint32_t n, uint32_t first, float *qr, float *qa);
/*
 * Makes the CUDA graphs of the windows of n_lo .. n_hi tokens whose last position is queried
 * (a question's), so that no query waits for its window's (about a millisecond each).
 * HSAMEM_EBACKEND when graphs cannot be made (queries then launch the kernels one by one).
 */
int hsa_cuda_query_prepare(const struct hsa_model *m, struct hsa_scratch *s, uint32_t n_lo,
                           uint32_t n_hi);

/*
 * hsa_cuda_query_heads in two halves, so that the caller's thread can work while the device runs
 * the window: start checks the window and queues its computation and the queries' download (it
 * returns before they are done); finish waits for them and writes qr and qa. Nothing else may
 * use the scratch between the two.
 */
int hsa_cuda_query_heads_start(const struct hsa_model *m, struct hsa_scratch *s,
                               const uint32_t *win, uint32_t n, uint32_t first);
int hsa_cuda_query_heads_finish(const struct hsa_model *m, struct hsa_scratch *s, float *qr,
                                float *qa);
int hsa_cuda_query_logits(const struct hsa_model *m, struct hsa_scratch *s, uint32_t n,
                          uint32_t first, const float *O, float *logits);

#endif
