/* SPDX-License-Identifier: MIT */
/* LEB128 varints, as protobuf writes them, for payload streams. */
#ifndef PT_CODEC_VARINT_H
#define PT_CODEC_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define PT_VARINT_MAX 10

/* Writes @v at @p (room for PT_VARINT_MAX bytes); returns the length. */
static inline size_t pt_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static inline size_t pt_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * Reads one varint from *@p, not past @end, and advances *@p. Rejects
 * unterminated input, more than 10 bytes, bits beyond 64 and non-canonical
 * (overlong) forms: returns 0 or -EBADMSG.
 */
int pt_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v);

#endif
