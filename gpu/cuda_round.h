/*
 * cuda_round.h: a round of the CUDA backend: up to TOK_GROUP query tokens of calls of one shape
 * and k (struct round, in cuda_state.h), computed together in one pass over the device
 * (cuda_backend.c's opening comment follows a pass step by step). The batcher (cuda_backend.c)
 * fills a round from its calls; cuda_round.c runs it: the upload, the selection, the warm path
 * through the directories, the attention and the results back, calling on cuda_walk.c for the
 * host's part in the round's chunks.
 */
#ifndef HSAMEM_CUDA_ROUND_H
#define HSAMEM_CUDA_ROUND_H

#include "cuda_state.h"

/* Runs one round to its results in the calls' result buffers. */
int round_run(struct round *r);

#endif
