/*
 * registry.c: the table of built-in encoders, looked up by the name a memory's spec records. An
 * encoder joins by adding its ops here; names are never reused for a different encoder.
 */
#include <string.h>

#include "encoder.h"
#include "lexical.h"

static const struct enc_ops *const encoders[] = {
        &enc_lexical,
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
