/*
 * name.c: the rule for user names, in one place for the daemon and libhsamem alike (and exported
 * by libhsamem for its callers). The rule is byte by byte and independent of the locale: 1 to
 * HSAMEM_NAME_MAX bytes, each of A-Z a-z 0-9 _ . @ : -, the first neither '.' nor '-'. A name is
 * given with its length, so that a NUL byte inside it is seen rather than ending it.
 */
#include <stddef.h>

#include "hsamem_defs.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

static int
name_byte_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '@' || c == ':' || c == '-';
}

int
hsamem_name_check(const char *name, size_t len, const char **why)
{
	const char *bad = NULL;

	if (name == NULL || len == 0)
		bad = "user name is empty";
	else if (len > HSAMEM_NAME_MAX)
		bad = "user name is longer than " STR(HSAMEM_NAME_MAX) " bytes";
	else if (name[0] == '.' || name[0] == '-')
		bad = "user name starts with '.' or '-'";
	for (size_t i = 0; bad == NULL && i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '\0')
			bad = "user name holds a NUL byte";
		else if (c < 0x20 || c == 0x7f)
			bad = "user name holds a control byte";
		else if (!name_byte_ok(c))
			bad = "user name holds a byte other than A-Z a-z 0-9 _ . @ : -";
	}
	if (bad == NULL)
		return 0;
	if (why != NULL)
		*why = bad;
	return HSAMEM_EBADNAME;
}
