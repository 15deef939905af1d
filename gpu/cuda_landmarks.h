/*
 * cuda_landmarks.h: which memories have their landmarks on the device. A memory queried recently
 * keeps there the landmark rows of the chunks its queries have seen, in one matrix that grows by
 * doubling (sealed chunks never change, so rows once loaded stay valid), and beside it its device
 * directory (cuda_dir.h), which grows with it. Resident memories are found by uid in a hash table
 * and kept in an LRU list; room under the device budget, beside the chunk cache, is made by
 * evicting the least recently used ones, never one that the current batch uses (its batch
 * number is the backend's) nor the one that needs the room. Rows are copied from the source
 * through two pinned staging buffers, so that the host's memcpy into one overlaps the DMA of the
 * other. A matrix's rows past those loaded are zeroed when it grows, and a deleted memory's matrix
 * before it is freed (lmk_erase), so that no device memory of the backend holds landmarks of a
 * memory the store has erased. Not thread-safe: the backend calls it under its lock.
 */
#ifndef HSAMEM_CUDA_LANDMARKS_H
#define HSAMEM_CUDA_LANDMARKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define LMK_STAGE_BYTES (8u << 20) /* each of the two landmark staging buffers */

struct cuda_backend;

/* One resident memory. */
struct lmk {
	uint64_t uid;
	size_t row_bytes, kv_bytes;
	uint64_t rows, cap; /* rows loaded; rows allocated */
	void *dev;
	void **dir;              /* [cap]: the device directory (cuda_dir.h), on the device */
	bool expect_miss;        /* directory new or cleared, or the last round missed */
	uint64_t batch;          /* the last batch that used it: pinned while that batch runs */
	struct lmk *prev, *next; /* LRU, head most recent */
	struct lmk *hnext;
};

/* The resident memory uid, or NULL; changes nothing (no touch). */
struct lmk *lmk_find(struct cuda_backend *b, uint64_t uid);

/* Frees l's landmarks and directory and forgets it. */
void lmk_drop(struct cuda_backend *b, struct lmk *l);

/* lmk_drop for a deleted memory: its landmarks and directory are zeroed on the stream first
 * (the caller synchronises it). 0 or HSAMEM_EBACKEND; l is dropped either way. */
int lmk_erase(struct cuda_backend *b, struct lmk *l);

/*
 * Makes the first need rows of the memory's landmarks resident (need <= src->n_chunks); *out
 * gets them, made most recent (a memory of another shape under the same uid is loaded afresh).
 * -ENOMEM when they cannot fit the budget, a source's error, or HSAMEM_EBACKEND; a memory that
 * could not grow with no row loaded is forgotten.
 */
int lmk_ensure(struct cuda_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
               uint64_t need, struct lmk **out);

#endif
