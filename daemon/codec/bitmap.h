/* SPDX-License-Identifier: MIT */
/*
 * DirtyBitmap payload encodings.
 *
 * RAW: ceil(page_count / 64) little-endian u64 words; bit i of word w is page
 * first_page + 64 * w + i. Bits past page_count are zero.
 *
 * RLE: a sequence of tokens covering the pages in order; pages after the
 * last token are clean. A token is a varint t: clean = t >> 1 clean pages,
 * then, if t & 1, a second varint d and d + 2 dirty pages, else exactly one
 * dirty page. Only the first token may have clean = 0, so each bitmap has
 * one encoding. An isolated dirty page costs one varint of its gap, which
 * makes sparse maps cheap; long dirty runs cost two varints.
 *
 * The stream is zero padded to 8 bytes; padding must be zero.
 */
#ifndef PT_CODEC_BITMAP_H
#define PT_CODEC_BITMAP_H

#include <stddef.h>
#include <stdint.h>

#include "codec/error.h"

/* Most pages one DirtyBitmap frame may describe (1 MiB of raw bitmap). */
#define PT_BITMAP_MAX_PAGES (8ull << 20)

static inline size_t pt_bitmap_words(uint64_t npages)
{
	return (size_t)((npages + 63) / 64);
}

struct pt_bitmap_enc {
	int encoding; /* PTRACK__V1__BITMAP_ENCODING__* */
	uint64_t dirty;
	const void *data; /* RAW: the caller's words; RLE: scratch */
	size_t len; /* a multiple of 8 */
	uint8_t *scratch; /* owned; grows to the raw size of the largest map */
	size_t scratch_cap;
};

void pt_bitmap_enc_release(struct pt_bitmap_enc *enc);

/*
 * Encodes @npages bits of @words (bits past npages must be zero), picking
 * the smaller of RAW and RLE. RAW points at @words: zero copy. Set
 * @force_raw to skip the RLE attempt. Returns 0 or -ENOMEM / -EINVAL.
 */
int pt_bitmap_encode(struct pt_bitmap_enc *enc, const uint64_t *words,
		     uint64_t npages, int force_raw);

/*
 * Decodes a payload of @len bytes into @out (pt_bitmap_words(@npages)
 * words, overwritten) and checks it holds exactly @dirty set bits. Returns
 * 0 or a negative errno with BAD_ENCODING, BAD_VARINT, PAGE_RANGE,
 * BAD_PAYLOAD, TRAILING or COUNT_MISMATCH in @e.
 */
int pt_bitmap_decode(int encoding, const uint8_t *data, size_t len,
		     uint64_t npages, uint64_t dirty, uint64_t *out,
		     struct pt_error *e);

/* Number of set bits in @nwords words. */
uint64_t pt_bitmap_count(const uint64_t *words, size_t nwords);

#endif
