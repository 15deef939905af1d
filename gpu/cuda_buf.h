/*
 * cuda_buf.h: the CUDA backend's scratch buffers: device memory, or pinned host memory mapped
 * into the device's address space. A buffer only grows, by half again at least, so that once a
 * shape has been seen a call allocates nothing; its contents are not kept when it grows. The
 * backend reserves through dev_reserve() and host_reserve() (cuda_state.h), which check the
 * capacity inline and count device bytes into its scratch figure. Not thread-safe: the backend
 * calls it under its lock.
 */
#ifndef HSAMEM_CUDA_BUF_H
#define HSAMEM_CUDA_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	void *p;
	size_t cap;
};

/*
 * Grows a scratch buffer of device memory (or of mapped pinned host memory) to at least bytes,
 * by half again at least; its contents are not kept. Device bytes freed and allocated are
 * counted in *dev_bytes. -ENOMEM when there is no room; HSAMEM_EBACKEND on a CUDA failure.
 */
int buf_reserve(struct buf *x, size_t bytes, bool host, uint64_t *dev_bytes);

/* Frees a buffer (NULL or not) and leaves it empty. */
void buf_dev_release(struct buf *x);
void buf_host_release(struct buf *x);

/* The device address of mapped pinned memory (the same pointer under unified addressing). */
int buf_mapped(const void *host, const void **dev);

#endif
