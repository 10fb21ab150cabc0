// SPDX-License-Identifier: MIT
#include "codec/bitmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/varint.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name

/* popcnt is in every x86-64 server CPU since 2008, but not in the x86-64
 * baseline: dispatch at load time instead of calling libgcc's loop. */
#if defined(__x86_64__) && !defined(__clang__)
#define PT_POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define PT_POPCNT_CLONES
#endif

PT_POPCNT_CLONES
uint64_t pt_bitmap_count(const uint64_t *words, size_t nwords)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < nwords; i++)
		n += (uint64_t)__builtin_popcountll(words[i]);
	return n;
}

/* Set bits and dirty runs (the RLE stream needs a byte for each run), in
 * one pass. */
PT_POPCNT_CLONES
static uint64_t count_bits_runs(const uint64_t *w, size_t nwords,
				uint64_t *runs)
{
	uint64_t bits = 0, r = 0, carry = 0;
	size_t i;

	for (i = 0; i < nwords; i++) {
		bits += (uint64_t)__builtin_popcountll(w[i]);
		r += (uint64_t)__builtin_popcountll(w[i] &
						    ~((w[i] << 1) | carry));
		carry = w[i] >> 63;
	}
	*runs = r;
	return bits;
}

/* First index >= @i whose bit equals @set, or @n. */
static uint64_t next_bit(const uint64_t *w, uint64_t n, uint64_t i, int set)
{
	while (i < n) {
		uint64_t x = set ? w[i / 64] : ~w[i / 64];

		x &= ~0ull << (i % 64);
		if (x) {
			uint64_t r =
				(i & ~63ull) + (uint64_t)__builtin_ctzll(x);

			return r < n ? r : n;
		}
		i = (i & ~63ull) + 64;
	}
	return n;
}

static int scratch_reserve(struct pt_bitmap_enc *enc, size_t len)
{
	uint8_t *p;

	if (enc->scratch_cap >= len)
		return 0;
	p = realloc(enc->scratch, len);
	if (!p)
		return -ENOMEM;
	enc->scratch = p;
	enc->scratch_cap = len;
	return 0;
}

/* RLE into scratch; -E2BIG as soon as it would reach @cap bytes. */
static int rle_encode(struct pt_bitmap_enc *enc, const uint64_t *w, uint64_t n,
		      size_t cap)
{
	uint8_t *out = enc->scratch;
	uint64_t pos = 0, s, t;
	size_t len = 0;

	while ((s = next_bit(w, n, pos, 1)) < n) {
		t = next_bit(w, n, s, 0);
		if (len + 2 * PT_VARINT_MAX >= cap)
			return -E2BIG;
		if (t - s == 1) {
			len += pt_varint_put(out + len, (s - pos) << 1);
		} else {
			len += pt_varint_put(out + len, (s - pos) << 1 | 1);
			len += pt_varint_put(out + len, t - s - 2);
		}
		pos = t;
	}
	while (len % 8)
		out[len++] = 0;
	enc->len = len;
	return 0;
}

int pt_bitmap_encode(struct pt_bitmap_enc *enc, const uint64_t *words,
		     uint64_t npages, int force_raw)
{
	size_t nwords = pt_bitmap_words(npages);
	size_t raw_len = nwords * 8;
	uint64_t runs = 0;
	int r;

	if (npages > PT_BITMAP_MAX_PAGES)
		return -EINVAL;
	if (force_raw) {
		enc->dirty = pt_bitmap_count(words, nwords);
		goto raw;
	}
	enc->dirty = count_bits_runs(words, nwords, &runs);
	if (runs < raw_len) {
		r = scratch_reserve(enc, raw_len + 2 * PT_VARINT_MAX + 8);
		if (r)
			return r;
		r = rle_encode(enc, words, npages, raw_len);
		if (!r) {
			enc->encoding =
				PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RLE;
			enc->data = enc->scratch;
			return 0;
		}
	}
raw:
	enc->encoding = PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RAW;
	enc->data = words;
	enc->len = raw_len;
	return 0;
}

void pt_bitmap_enc_release(struct pt_bitmap_enc *enc)
{
	free(enc->scratch);
	enc->scratch = NULL;
	enc->scratch_cap = 0;
}

static void set_range(uint64_t *w, uint64_t pos, uint64_t n)
{
	while (n && pos % 64) {
		w[pos / 64] |= 1ull << (pos % 64);
		pos++;
		n--;
	}
	for (; n >= 64; n -= 64, pos += 64)
		w[pos / 64] = ~0ull;
	while (n--) {
		w[pos / 64] |= 1ull << (pos % 64);
		pos++;
	}
}

static int rle_token(const uint8_t **p, const uint8_t *end, uint64_t room,
		     uint64_t *clean, uint64_t *dirty, int first,
		     struct pt_error *e)
{
	uint64_t t, d = 0;

	if (pt_varint_get(p, end, &t))
		return pt_error_set(e, E(BAD_VARINT), EBADMSG,
				    "bad varint in RLE bitmap token");
	if (t & 1 && pt_varint_get(p, end, &d))
		return pt_error_set(e, E(BAD_VARINT), EBADMSG,
				    "bad varint in RLE bitmap run length");
	*clean = t >> 1;
	if (!first && !*clean)
		return pt_error_set(
			e, E(BAD_ENCODING), EBADMSG,
			"RLE bitmap: empty clean run after a dirty run");
	*dirty = t & 1 ? d + 2 : 1;
	if (*clean > room || d > room || *dirty > room - *clean)
		return pt_error_set(e, E(PAGE_RANGE), EBADMSG,
				    "RLE bitmap: run goes past page_count");
	return 0;
}

static int rle_decode(const uint8_t *data, size_t len, uint64_t npages,
		      uint64_t *out, uint64_t *count, struct pt_error *e)
{
	const uint8_t *p = data, *end = data + len;
	uint64_t pos = 0, clean = 0, dirty = 0;
	int r;

	memset(out, 0, pt_bitmap_words(npages) * 8);
	*count = 0;
	/* A zero byte can only start the first token; later, it is padding. */
	while (p < end && (p == data || *p)) {
		r = rle_token(&p, end, npages - pos, &clean, &dirty, p == data,
			      e);
		if (r)
			return r;
		set_range(out, pos + clean, dirty);
		pos += clean + dirty;
		*count += dirty;
	}
	if (end - p >= 8)
		return pt_error_set(e, E(TRAILING), EBADMSG,
				    "%td bytes after the last RLE token",
				    end - p);
	for (; p < end; p++)
		if (*p)
			return pt_error_set(e, E(TRAILING), EBADMSG,
					    "non-zero RLE padding");
	return 0;
}

static int raw_check(const uint8_t *data, size_t len, uint64_t npages,
		     uint64_t *out, uint64_t *count, struct pt_error *e)
{
	size_t nwords = pt_bitmap_words(npages);
	uint64_t last;

	if (len != nwords * 8)
		return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
				    "raw bitmap of %zu bytes for %llu pages",
				    len, (unsigned long long)npages);
	memcpy(out, data, len);
	last = npages % 64 ? out[nwords - 1] >> (npages % 64) : 0;
	if (last)
		return pt_error_set(e, E(PAGE_RANGE), EBADMSG,
				    "raw bitmap has bits past page_count");
	*count = pt_bitmap_count(out, nwords);
	return 0;
}

int pt_bitmap_decode(int encoding, const uint8_t *data, size_t len,
		     uint64_t npages, uint64_t dirty, uint64_t *out,
		     struct pt_error *e)
{
	uint64_t count = 0;
	int r;

	if (len % 8)
		return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
				    "bitmap payload of %zu bytes", len);
	if (encoding == PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RAW)
		r = raw_check(data, len, npages, out, &count, e);
	else if (encoding == PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RLE)
		r = rle_decode(data, len, npages, out, &count, e);
	else
		r = pt_error_set(e, E(BAD_ENCODING), EBADMSG,
				 "unknown bitmap encoding %d", encoding);
	if (r)
		return r;
	if (count != dirty)
		return pt_error_set(
			e, E(COUNT_MISMATCH), EBADMSG,
			"bitmap holds %llu dirty pages, message says %llu",
			(unsigned long long)count, (unsigned long long)dirty);
	return 0;
}
