// SPDX-License-Identifier: MIT
#include "codec/ring.h"

#include <errno.h>
#include <stdlib.h>

#include "codec/varint.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int is_sorted(const uint64_t *g, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (g[i] < g[i - 1])
			return 0;
	return 1;
}

size_t pt_ring_encode(uint64_t *gfns, size_t n, uint8_t *out, size_t *count)
{
	size_t i, len = 0, c = 0;
	uint64_t prev = 0;

	if (!is_sorted(gfns, n))
		qsort(gfns, n, sizeof(*gfns), cmp_u64);
	for (i = 0; i < n; i++) {
		if (c && gfns[i] == prev)
			continue;
		len += pt_varint_put(out + len,
				     c ? gfns[i] - prev - 1 : gfns[i]);
		prev = gfns[i];
		c++;
	}
	while (len % 8)
		out[len++] = 0;
	*count = c;
	return len;
}

int pt_ring_decode(const uint8_t *data, size_t len, uint64_t count,
		   uint64_t *gfns, struct pt_error *e)
{
	const uint8_t *p = data, *end = data + len;
	uint64_t i, v, prev = 0;

	if (len % 8)
		return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
				    "ring payload of %zu bytes", len);
	if (count > len)
		return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
				    "%llu GFNs cannot fit in %zu bytes",
				    (unsigned long long)count, len);
	for (i = 0; i < count; i++) {
		if (pt_varint_get(&p, end, &v))
			return pt_error_set(e, E(BAD_VARINT), EBADMSG,
					    "bad varint for GFN %llu",
					    (unsigned long long)i);
		if (i && (v >= UINT64_MAX - prev))
			return pt_error_set(e, E(ORDER), EBADMSG,
					    "GFN %llu overflows",
					    (unsigned long long)i);
		prev = i ? prev + v + 1 : v;
		gfns[i] = prev;
	}
	if (end - p >= 8)
		return pt_error_set(e, E(TRAILING), EBADMSG,
				    "%td bytes after %llu GFNs", end - p,
				    (unsigned long long)count);
	for (; p < end; p++)
		if (*p)
			return pt_error_set(e, E(TRAILING), EBADMSG,
					    "non-zero bytes after %llu GFNs",
					    (unsigned long long)count);
	return 0;
}
