/*
 * layout.h: how a new memory is laid out in the store (store.h, the user flags): lexical
 * landmarks kept (hybrid.h), K/V computed instead of stored (kvcalc.h), landmark pages sparse.
 * Every memory is created with the flags of its spec from here; a memory whose flags differ was
 * made by an older daemon, and a re-encode converts it (ops_reencode.c).
 */
#ifndef HSAMEM_LAYOUT_H
#define HSAMEM_LAYOUT_H

#include <stdint.h>

#include "spec.h"
#include "store.h"

/* The flags that layout_flags decides. */
#define LAYOUT_FLAGS                                                                               \
	(STORE_USER_LEXICAL | STORE_USER_KV_COMPUTED | STORE_USER_LMK_SPARSE |                     \
	 STORE_USER_LEXLM_SPARSE)

/* The layout flags of a new memory of spec. */
uint32_t layout_flags(const struct hsa_spec *spec);

#endif
