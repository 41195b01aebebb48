/*
 * fuzz_jid.c - libFuzzer target: any bytes through jid_new(); a JID that parses
 * must parse again to itself (preparation is idempotent).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct jid *j, *again;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	j = jid_new(s, NULL);
	if (j) {
		again = jid_new(j->full, NULL);
		if (!again || !jid_eq(j, again))
			abort();
		jid_free(again);
		jid_free(j);
	}
	free(s);
	return 0;
}
