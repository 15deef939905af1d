/*
 * fuzz.h: the input format of the fuzz target (fuzz_request.c), shared with the program that
 * writes its seed corpus (fuzz_seeds.c). An input is one or more packed protobuf Requests joined
 * by FUZZ_SEP, run in order against one store, so that an input can create a memory and then read
 * it; an input without FUZZ_SEP is a single Request.
 */
#ifndef HSAMEM_FUZZ_H
#define HSAMEM_FUZZ_H

#define FUZZ_SEP     "~HSAREQ~"
#define FUZZ_SEP_LEN 8
/* Requests run from one input; the rest of a longer input is ignored. */
#define FUZZ_MAX_REQUESTS 16

#endif
