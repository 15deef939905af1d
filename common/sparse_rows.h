/*
 * sparse_rows.h: reading landmark rows kept element by element, the layout that the store's
 * sparse pages (store.h, SPARSE PAGES) and the backends' sparse sources (backend.h,
 * hsa_sparse_rows) share: a table of the starts of each element's entries, 2 or 4 bytes each,
 * little-endian, then 3-byte entries (u8 row, the element's 2 bytes).
 */
#ifndef HSAMEM_SPARSE_ROWS_H
#define HSAMEM_SPARSE_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* Start e of a table whose starts are width (2 or 4) bytes wide. */
static inline uint32_t
sparse_rows_start(const uint8_t *starts, uint32_t width, size_t e)
{
	const uint8_t *p = starts + e * width;
	uint32_t x = (uint32_t)p[0] | (uint32_t)p[1] << 8;
	return width == 2 ? x : x | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The 16-bit value of an entry (the element's 2 bytes, little-endian). */
static inline uint16_t
sparse_rows_value(const uint8_t *entry)
{
	return (uint16_t)(entry[1] | entry[2] << 8);
}

#endif
