// SPDX-License-Identifier: MIT
#include "codec/crc32c.h"

#include <isa-l/crc.h>
#include <limits.h>

uint32_t pt_crc32c(uint32_t crc, const void *buf, size_t len)
{
	unsigned char *p = (unsigned char *)buf;

	/* ISA-L takes an int length and works on the inverted register. */
	crc = ~crc;
	while (len) {
		int n = len > INT_MAX ? INT_MAX & ~63 : (int)len;

		crc = crc32_iscsi(p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	return ~crc;
}
