/*
 * hsa_small.h: the learned encoder "hsa-small" (models/README.md) as a built-in encoder
 * (encoder.h): its operations, and the loading of its model folder, which the registry does once
 * for the daemon (enc_load).
 */
#ifndef HSAMEM_HSA_SMALL_H
#define HSAMEM_HSA_SMALL_H

#include <stddef.h>

#include "encoder.h"

#define HSA_SMALL_NAME      "hsa-small"
#define HSA_SMALL_TOKENIZER "hsamem-bpe"
/* On the GPU, queries and answers run side by side on at most this many scratches of their own;
 * more wait for one */
#define HSA_SMALL_GPU_POOL 16

/* Its revision is the loaded model's step (0 while none is loaded). */
extern struct enc_ops enc_hsa_small;

/*
 * Loads the model folder dir (hsa_model_load) and keeps it until hsa_small_unload. Call it before
 * any thread uses the encoder. On failure the encoder stays unloaded, remembers the sentence (the
 * folder and the problem) that its ready() and every call answer with, and the same sentence goes
 * to why. Returns 0, HSAMEM_EENCODER or -ENOMEM.
 */
int hsa_small_load(const char *dir, char *why, size_t why_len);

/*
 * Runs the loaded model on CUDA device `device` from now on (hsa_cuda.h), the CPU staying the
 * fallback of any failed call. Call it after hsa_small_load, before any thread encodes. Returns
 * 0, HSAMEM_EENCODER (no model) or HSAMEM_EBACKEND (no such device, a build without CUDA) with a
 * sentence in why; the encoder then stays on the CPU.
 */
int hsa_small_use_gpu(int device, char *why, size_t why_len);

/* Frees the model; after it the encoder answers HSAMEM_EENCODER. No thread may be encoding. */
void hsa_small_unload(void);

#endif
