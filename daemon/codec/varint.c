// SPDX-License-Identifier: MIT
#include "codec/varint.h"

#include <errno.h>

int pt_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *q = *p;
	uint64_t r = 0;
	unsigned int shift = 0;
	uint8_t b;

	do {
		if (q >= end || shift >= 64)
			return -EBADMSG;
		b = *q++;
		/* The 10th byte may hold only the top bit of a u64. */
		if (shift == 63 && (b & 0x7e))
			return -EBADMSG;
		r |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	/* A zero last byte after the first means an overlong encoding. */
	if (b == 0 && q - *p > 1)
		return -EBADMSG;
	*v = r;
	*p = q;
	return 0;
}
