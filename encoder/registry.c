/*
 * registry.c: the table of built-in encoders, looked up by the name a memory's spec records, and
 * the loading of those that need files. An encoder joins by adding its ops here; names are never
 * reused for a different encoder. A library of its own (libhsaencoders), since listing the learned
 * encoder links OpenBLAS and jansson, which the lexical encoder alone does not need.
 */
#include <string.h>

#include "encoder.h"
#include "hsa_forward.h"
#include "hsa_small.h"
#include "lexical.h"

static const struct enc_ops *const encoders[] = {
        &enc_lexical,
        &enc_hsa_small,
};

const struct enc_ops *
enc_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(encoders) / sizeof(encoders[0]); i++)
		if (strcmp(encoders[i]->name, name) == 0)
			return encoders[i];
	return NULL;
}

const struct enc_ops *
enc_default(void)
{
	return &enc_lexical;
}

void
enc_prepare_cpu(char **argv)
{
	hsa_blas_select_core(argv);
}

const char *
enc_cpu_kernels(void)
{
	return hsa_blas_core();
}

int
enc_load(const char *model_dir, char *why, size_t why_len)
{
	return hsa_small_load(model_dir, why, why_len);
}

int
enc_use_gpu(int device, char *why, size_t why_len)
{
	return hsa_small_use_gpu(device, why, why_len);
}

void
enc_unload(void)
{
	hsa_small_unload();
}
