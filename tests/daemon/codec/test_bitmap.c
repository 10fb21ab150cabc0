// SPDX-License-Identifier: MIT
#include "codec/bitmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/varint.h"
#include "pt_test.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define RAW PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RAW
#define RLE PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RLE

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A bitmap of @n pages with each page dirty with probability @per_mille. */
static uint64_t *make_map(uint64_t n, unsigned int per_mille)
{
	uint64_t *w = calloc(pt_bitmap_words(n) + 1, 8);
	uint64_t i;

	for (i = 0; w && i < n; i++)
		if (next_rand() % 1000 < per_mille)
			w[i / 64] |= 1ull << (i % 64);
	return w;
}

static void roundtrip(uint64_t n, const uint64_t *w, int force_raw)
{
	struct pt_bitmap_enc enc = { 0 };
	uint64_t *out = calloc(pt_bitmap_words(n) + 1, 8);
	struct pt_error e = { 0 };

	CU_ASSERT_FATAL(out != NULL);
	CU_ASSERT_EQUAL_FATAL(pt_bitmap_encode(&enc, w, n, force_raw), 0);
	CU_ASSERT_EQUAL(enc.len % 8, 0);
	CU_ASSERT(enc.len <= pt_bitmap_words(n) * 8);
	if (enc.encoding == RAW)
		CU_ASSERT_PTR_EQUAL(enc.data, w); /* zero copy */
	CU_ASSERT_EQUAL(pt_bitmap_decode(enc.encoding, enc.data, enc.len, n,
					 enc.dirty, out, &e),
			0);
	CU_ASSERT_EQUAL(memcmp(out, w, pt_bitmap_words(n) * 8), 0);
	CU_ASSERT_EQUAL(enc.dirty, pt_bitmap_count(w, pt_bitmap_words(n)));
	pt_bitmap_enc_release(&enc);
	free(out);
}

static void test_roundtrip_densities(void)
{
	static const unsigned int dens[] = {
		0, 1, 10, 100, 500, 900, 999, 1000
	};
	static const uint64_t sizes[] = { 1, 63, 64, 65, 1000, 262144 };
	size_t d, s;

	for (d = 0; d < sizeof(dens) / sizeof(dens[0]); d++)
		for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			uint64_t *w = make_map(sizes[s], dens[d]);

			CU_ASSERT_FATAL(w != NULL);
			roundtrip(sizes[s], w, 0);
			roundtrip(sizes[s], w, 1);
			free(w);
		}
}

static void test_picks_smaller(void)
{
	struct pt_bitmap_enc enc = { 0 };
	uint64_t *sparse = make_map(1 << 20, 1);
	uint64_t *dense = make_map(1 << 20, 500);
	uint64_t *full = make_map(1 << 20, 1000);

	CU_ASSERT_EQUAL(pt_bitmap_encode(&enc, sparse, 1 << 20, 0), 0);
	CU_ASSERT_EQUAL(enc.encoding, RLE);
	/* about one varint per isolated page */
	CU_ASSERT(enc.len < enc.dirty * 2 + 8);
	CU_ASSERT_EQUAL(pt_bitmap_encode(&enc, dense, 1 << 20, 0), 0);
	CU_ASSERT_EQUAL(enc.encoding, RAW);
	CU_ASSERT_EQUAL(pt_bitmap_encode(&enc, full, 1 << 20, 0), 0);
	CU_ASSERT_EQUAL(enc.encoding, RLE);
	CU_ASSERT_EQUAL(enc.len, 8);
	pt_bitmap_enc_release(&enc);
	free(sparse);
	free(dense);
	free(full);
}

static int dec(int enc, const uint8_t *d, size_t len, uint64_t n,
	       uint64_t dirty, struct pt_error *e)
{
	uint64_t out[4];

	e->code = 0;
	return pt_bitmap_decode(enc, d, len, n, dirty, out, e);
}

static void test_rejects_malformed(void)
{
	struct pt_error e;
	/* RLE: page 0 dirty, then clean 0 again: not canonical */
	uint8_t noncanon[8] = { 0x00, 0x01, 0x00 };
	uint8_t past[8] = { 0x80, 0x02 }; /* 128 clean: past 100 pages */
	uint8_t badvar[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t trail[16] = { 0x02 };
	uint8_t pad[8] = { 0x02, 0x00, 0x07 };
	uint8_t one[8] = { 0x02 }; /* page 1 dirty */
	uint64_t raw[2] = { 0, 1ull << 40 };

	CU_ASSERT_EQUAL(dec(RLE, one, 8, 100, 1, &e), 0);
	CU_ASSERT_EQUAL(dec(RLE, one, 8, 100, 2, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(COUNT_MISMATCH));
	CU_ASSERT_EQUAL(dec(RLE, noncanon, 8, 100, 2, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_ENCODING));
	CU_ASSERT_EQUAL(dec(RLE, past, 8, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(PAGE_RANGE));
	CU_ASSERT_EQUAL(dec(RLE, badvar, 8, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_VARINT));
	CU_ASSERT_EQUAL(dec(RLE, trail, 16, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(TRAILING));
	CU_ASSERT_EQUAL(dec(RLE, pad, 8, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(TRAILING));
	CU_ASSERT_EQUAL(dec(RLE, one, 7, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_PAYLOAD));
	CU_ASSERT_EQUAL(dec(7, one, 8, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_ENCODING));
	CU_ASSERT_EQUAL(dec(RAW, (uint8_t *)raw, 16, 128, 1, &e), 0);
	CU_ASSERT_EQUAL(dec(RAW, (uint8_t *)raw, 16, 100, 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(PAGE_RANGE));
	CU_ASSERT_EQUAL(dec(RAW, (uint8_t *)raw, 8, 128, 0, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_PAYLOAD));
}

static void test_empty_map_is_empty_stream(void)
{
	struct pt_bitmap_enc enc = { 0 };
	uint64_t w[16] = { 0 };

	CU_ASSERT_EQUAL(pt_bitmap_encode(&enc, w, 1024, 0), 0);
	CU_ASSERT_EQUAL(enc.encoding, RLE);
	CU_ASSERT_EQUAL(enc.len, 0);
	CU_ASSERT_EQUAL(enc.dirty, 0);
	pt_bitmap_enc_release(&enc);
}

PT_SUITE(codec_bitmap, PT_TEST(test_roundtrip_densities),
	 PT_TEST(test_picks_smaller), PT_TEST(test_rejects_malformed),
	 PT_TEST(test_empty_map_is_empty_stream))
