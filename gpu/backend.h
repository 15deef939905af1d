/*
 * backend.h: the compute backend interface. One table of operations, two implementations: the CPU
 * backend (gpu/cpu.c, always built, the oracle of every test) and the CUDA backend
 * (gpu/cuda_*.c and gpu/cuda_*.cu, built with --enable-cuda). The daemon picks one at start
 * and falls back to the CPU backend when the CUDA one fails.
 *
 * The one operation is HSA attention exactly as hsamem(7) states it: score every visible chunk's
 * landmark, take the top-k per kv head, weight them (softmax or stick-breaking), attend inside each
 * selected chunk separately, and fuse. Chunks are read through a source (below), so a backend never
 * knows where they live: LMDB's map for the CPU, LMDB through pinned staging and a device cache for
 * CUDA.
 *
 * Backends are thread-safe: several workers may call attend() at once (the CUDA backend computes
 * calls that arrive together in one pass).
 *
 * Sealed chunks and the tail. A memory's sealed chunks never change while its uid lives, so a
 * backend may keep them between calls: the CUDA backend keeps each memory's landmark matrix
 * resident and caches chunk K/V by (uid, j) on the device and in pinned host memory. A source may
 * also end with the memory's unsealed tail as one more chunk (tail_keys > 0), so that a query sees
 * what was appended last the same way it sees the rest (the daemon gives the tail a source of its
 * own, one chunk, and runs it on the CPU backend beside the sealed chunks on whichever backend
 * serves). The tail is not stable: it changes with every append, and is later sealed, with other
 * content, under the same index. So:
 *   1. chunks 0 .. gpu_source_sealed(src)-1 are sealed and may be cached; the tail, chunk
 *      n_chunks-1 when tail_keys > 0, is read from the source afresh in every call and never
 *      cached, kept resident, or counted as a loaded row;
 *   2. the tail holds tail_keys real keys followed by padding (its rows past them are whatever the
 *      source wrote, zeros from the built-in encoders); its in-chunk softmax runs over the real
 *      keys only and its attention probabilities past them are 0. A sealed chunk's padding (a
 *      flushed chunk) is part of the chunk, as the model that made it saw it: its softmax runs
 *      over all S keys;
 *   3. the tail is visible like any chunk: to positions t >= n_chunks * S.
 * The CPU backend keeps nothing, so 1 holds for it as it is. The CUDA backend serves a call whose
 * source has a tail on the CPU backend it was given (gpu_cuda_opts.cpu), so nothing of the tail
 * ever reaches its caches; a call without one runs on the device as before.
 */
#ifndef HSAMEM_BACKEND_H
#define HSAMEM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_pool.h"
#include "spec.h"

/*
 * Landmark rows in sparse form, element by element: rows first .. first + count - 1 of the source
 * are rows row0 .. row0 + count - 1 of a block in which element e (< d_r) of a row is the value of
 * that row's entry among entries start(e) .. start(e + 1) - 1, and zero where it has none. starts
 * holds d_r + 1 little-endian starts of start_bytes (2 or 4) bytes each; an entry is 3 bytes: its
 * row in the block (u8), then the element's 2 bytes in the spec's dtype. An element's entries are
 * in increasing row order; they may name rows of the block outside row0 .. row0 + count - 1,
 * which are to be skipped. A reader takes entries up to the lesser of start(e + 1) and
 * n_entries, so that a damaged table cannot take it past them.
 */
struct hsa_sparse_rows {
	uint64_t count;
	uint32_t row0, start_bytes, n_entries;
	const uint8_t *starts, *entries;
};

/*
 * Where a memory's chunks are read from. Valid for one attend() call; the callbacks may be called
 * from any of the backend's threads at once.
 */
struct hsa_source {
	void *ctx;
	/* Identity of the memory for device-side caches: user ids are never reused. */
	uint64_t uid;
	/* Chunks 0 .. n_chunks-1 exist, the tail included when there is one. */
	uint64_t n_chunks;
	/*
	 * 0: every chunk is sealed. 1 .. S: chunk n_chunks-1 is the memory's unsealed tail, of
	 * which the first tail_keys keys are real (see "Sealed chunks and the tail" above). The
	 * number of sealed chunks, gpu_source_sealed(), only grows while a uid lives.
	 */
	uint32_t tail_keys;
	/*
	 * Landmarks of chunks first, first+1, ...: sets *rows to d_r contiguous elements per chunk
	 * in the spec's dtype, and *count to how many rows follow contiguously (at least 1, at most
	 * n_chunks - first). The rows stay valid until the calling thread calls landmarks again,
	 * and at most until attend() returns (a source may decode them into a buffer of the
	 * thread's). Returns 0 or an error.
	 */
	int (*landmarks)(void *ctx, uint64_t first, const void **rows, uint64_t *count);
	/*
	 * Optional (NULL if the source has none): the same landmarks in sparse form
	 * (hsa_sparse_rows), for a source whose rows are mostly zeros, of a 2-byte dtype. A backend
	 * may read them so where the query weighs few elements. Valid until attend() returns.
	 */
	int (*landmarks_sparse)(void *ctx, uint64_t first, struct hsa_sparse_rows *out);
	/*
	 * K then V of chunk j: K [S][h_kv][d_h] followed by V [S][h_kv][d_h], spec dtype,
	 * contiguous (spec_kv_bytes bytes). Valid until attend() returns. Returns 0 or an error.
	 */
	int (*chunk_kv)(void *ctx, uint64_t j, const void **kv);
	/*
	 * Optional (NULL if the source has none): copies the same bytes into dst. Where chunk_kv
	 * may serialise its callers, copy_kv must not: a backend calls it from many threads at once
	 * to read many chunks in parallel. Returns 0 or an error.
	 */
	int (*copy_kv)(void *ctx, uint64_t j, void *dst);
};

/* A batch of query tokens of one memory. */
struct hsa_query {
	uint32_t n;          /* query tokens, >= 1 */
	uint32_t k;          /* top-k, 1 .. SPEC_TOPK_MAX */
	const uint64_t *pos; /* [n] positions t: chunk j is visible iff (j + 1) * S <= t */
	const float *qr;     /* [n][h_kv][d_r / h_kv] retrieval queries */
	const float *qa;     /* [n][h_q][d_h] attention queries (RMS-normalised by the model) */
	/*
	 * NULL, or the chunks that may be selected: bit j of mask[j / 64] for j < n_chunks (a
	 * filter's chunk mask, hsamem(7) SCOPES AND FILTERS). Top-k is taken among the visible
	 * chunks whose bit is set; the others are never candidates, so a token sees
	 * min(k, allowed visible chunks) and the rest of its selection is -1.
	 */
	const uint64_t *mask;
};

/*
 * The result, in buffers the caller allocates. For each (token, kv head) the selected chunks are
 * listed best score first (ties: lower index first); slots past the number of visible chunks hold
 * sel = -1, score = -INFINITY, weight = 0. A token that sees no chunk gets an output of zeros.
 *
 * Selection only: with out == NULL the call scores and ranks the landmarks and stops there. Only
 * sel and score are written (weight too where it is given); no chunk's K/V is read, so the
 * source's chunk_kv and the query's qa may be NULL. A ranking of another kind of landmark (the
 * lexical landmarks of a model memory, daemon/hybrid.c) uses it. With out == NULL and attn given
 * (weight and qa then too), the selected chunks' keys are read and attn is written, but no value
 * and no fused output: what a query shows of its hits. The CUDA backend serves that on the CPU.
 */
struct hsa_result {
	float *out;    /* [n][h_q][d_h] fused outputs; NULL: selection only */
	int64_t *sel;  /* [n][h_kv][k] selected chunk indices */
	float *score;  /* [n][h_kv][k] landmark scores s_j */
	float *weight; /* [n][h_kv][k] fusion weights w_i; may be NULL for a selection only */
	float *attn;   /* optional, may be NULL: [n][h_q][k][S] in-chunk attention probabilities */
};

struct gpu_stats {
	char name[32];    /* "cpu", "cuda" */
	char device[128]; /* e.g. "NVIDIA H100 80GB HBM3", or the CPU thread count */
	uint64_t calls;   /* attend() calls served */
	uint64_t errors;
	uint64_t mem_budget; /* device bytes the backend may use; 0 for the CPU */
	uint64_t mem_used;
	uint64_t resident_users;       /* memories whose landmarks are resident */
	uint64_t lmk_hits, lmk_misses; /* landmark rows found resident / loaded */
	uint64_t chunk_hits,
	        chunk_misses; /* selected chunks found in the device cache / paged in */
};

struct gpu_backend;

struct gpu_ops {
	const char *name;
	/* Whether this backend can serve memories of this spec (dtype, sizes). */
	bool (*supports)(struct gpu_backend *b, const struct hsa_spec *spec);
	/*
	 * Runs the operator. Returns 0, or a negative code and the result is unspecified:
	 * HSAMEM_EBACKEND when the backend itself failed (the caller may run the call again on the
	 * CPU backend), HSAMEM_EINVAL from gpu_check_call, or the source's own error unchanged.
	 */
	int (*attend)(struct gpu_backend *b, const struct hsa_spec *spec,
	              const struct hsa_source *src, const struct hsa_query *q,
	              struct hsa_result *res);
	/* Drops everything cached for a memory (it was deleted or replaced). May be NULL. */
	void (*forget)(struct gpu_backend *b, uint64_t uid);
	void (*stats)(struct gpu_backend *b, struct gpu_stats *out);
	void (*free)(struct gpu_backend *b);
};

/* Every backend starts with this member, so a struct gpu_backend * reaches its ops. */
struct gpu_backend {
	const struct gpu_ops *ops;
};

/*
 * The CPU backend with the given number of worker threads (0: one per online CPU). It reads
 * landmarks and K/V straight from the source, keeps no cache, and accumulates in fp32.
 */
int gpu_cpu_alloc(unsigned threads, struct gpu_backend **out);

/*
 * Starts fn(arg, piece) for every piece in 0 .. n_pieces-1 on the threads of cpu (a backend of
 * gpu_cpu_alloc), as its own calls' pieces run, and returns at once: a caller's CPU work beside
 * HSA (the daemon's exact pass, daemon/bm25.h), on threads that sit idle where a GPU serves, while
 * the caller goes on. gpu_cpu_wait must follow before j or what the pieces use goes away: it runs
 * the pieces still unclaimed on the caller and returns 0 or the first error a piece returned.
 */
void gpu_cpu_start(struct gpu_backend *cpu, struct cpu_job *j, int (*fn)(void *arg, size_t piece),
                   void *arg, size_t n_pieces);
int gpu_cpu_wait(struct gpu_backend *cpu, struct cpu_job *j);

/* Options of the CUDA backend (issue: the CUDA backend). */
struct gpu_cuda_opts {
	int device;          /* CUDA device ordinal */
	uint64_t mem_budget; /* device bytes for landmarks and the chunk cache; 0: 80% of free */
	uint64_t host_cache; /* pinned host bytes for the chunk cache; 0: none */
	/*
	 * The CPU backend that serves the calls the device does not: shapes its kernels do not
	 * cover, f32 memories, memories the budget cannot hold, sources with a tail. Required; the
	 * CUDA backend borrows it, so it must outlive the CUDA backend (the daemon passes its own).
	 */
	struct gpu_backend *cpu;
};

/*
 * Probes for CUDA devices. Returns the number of usable devices (0 when the toolkit was not built
 * in, no driver is loaded, or no device is present: never an error for those) and writes a one-line
 * description of device 0, or the reason there is none, to desc.
 */
int gpu_cuda_probe(char *desc, size_t desc_len);

/*
 * The CUDA backend on opts->device. Returns -ENODEV when CUDA was not built in or no device is
 * usable, HSAMEM_EINVAL without opts->cpu, HSAMEM_EBACKEND when the device fails to initialise.
 */
int gpu_cuda_alloc(const struct gpu_cuda_opts *opts, struct gpu_backend **out);

/* Whether a spec's shape is one any backend can compute (sizes consistent, known dtype and
 * weighting); a backend's supports() may refuse more. */
bool gpu_shape_ok(const struct hsa_spec *spec);

/* The arguments of an attend() call as every backend checks them: HSAMEM_EINVAL or 0. */
int gpu_check_call(const struct hsa_spec *spec, const struct hsa_source *src,
                   const struct hsa_query *q, const struct hsa_result *res);

/* The sealed chunks of a source: those a backend may cache. */
static inline uint64_t
gpu_source_sealed(const struct hsa_source *src)
{
	return src->n_chunks - (src->tail_keys > 0 ? 1 : 0);
}

/* Convenience wrappers, NULL-safe where it makes sense. */
static inline int
gpu_attend(struct gpu_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
           const struct hsa_query *q, struct hsa_result *res)
{
	return b->ops->attend(b, spec, src, q, res);
}

static inline void
gpu_free(struct gpu_backend *b)
{
	if (b != NULL)
		b->ops->free(b);
}

#endif
