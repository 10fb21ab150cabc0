/* SPDX-License-Identifier: MIT */
/*
 * DirtyRing payload: count GFNs, strictly increasing, as varints: the first
 * GFN, then each gap minus one (so duplicates cannot be expressed). Zero
 * padded to 8 bytes.
 */
#ifndef PT_CODEC_RING_H
#define PT_CODEC_RING_H

#include <stddef.h>
#include <stdint.h>

#include "codec/error.h"

/* Most GFNs one DirtyRing frame may carry. */
#define PT_RING_MAX_GFNS (1u << 20)

/* Bytes an encoding of @n GFNs may need, padding included. */
static inline size_t pt_ring_encode_bound(size_t n)
{
	return (n * 10 + 7) & ~(size_t)7;
}

/*
 * Sorts @gfns in place (a no-op when already sorted), drops duplicates and
 * encodes them into @out (pt_ring_encode_bound(@n) bytes). Returns the
 * padded length; *@count gets the number of distinct GFNs.
 */
size_t pt_ring_encode(uint64_t *gfns, size_t n, uint8_t *out, size_t *count);

/*
 * Decodes @count GFNs from @data[0..@len) into @gfns. Returns 0 or a
 * negative errno with BAD_VARINT, ORDER (a GFN overflows), TRUNCATED-style
 * BAD_PAYLOAD, or TRAILING in @e.
 */
int pt_ring_decode(const uint8_t *data, size_t len, uint64_t count,
		   uint64_t *gfns, struct pt_error *e);

#endif
