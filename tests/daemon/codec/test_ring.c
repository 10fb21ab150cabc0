// SPDX-License-Identifier: MIT
#include "codec/ring.h"

#include <errno.h>
#include <stdlib.h>

#include "pt_test.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name

static void test_roundtrip_unsorted_with_duplicates(void)
{
	uint64_t in[] = { 900, 5, 5, 1ull << 40, 6, 0, 900, UINT64_MAX >> 12 };
	uint64_t want[] = { 0, 5, 6, 900, 1ull << 40, UINT64_MAX >> 12 };
	uint8_t buf[pt_ring_encode_bound(8)];
	uint64_t out[8];
	struct pt_error e = { 0 };
	size_t len, count, i;

	len = pt_ring_encode(in, 8, buf, &count);
	CU_ASSERT_EQUAL(count, 6);
	CU_ASSERT_EQUAL(len % 8, 0);
	CU_ASSERT_EQUAL(pt_ring_decode(buf, len, count, out, &e), 0);
	for (i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(out[i], want[i]);
}

static void test_dense_batch_is_one_byte_per_gfn(void)
{
	uint64_t g[4096];
	uint8_t buf[pt_ring_encode_bound(4096)];
	size_t count, i;

	for (i = 0; i < 4096; i++)
		g[i] = 1000000 + i * 3;
	CU_ASSERT(pt_ring_encode(g, 4096, buf, &count) <= 4096 + 8);
	CU_ASSERT_EQUAL(count, 4096);
}

static void test_rejects_malformed(void)
{
	uint8_t bad[8] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 };
	uint8_t two[8] = { 0x05, 0x01 };
	uint8_t unterm[8] = { 0x05, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 };
	uint8_t trail[16] = { 0x05 };
	uint8_t nzpad[8] = { 0x05, 0x00, 0x01 };
	uint8_t ovf[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			    0xff, 0xff, 0xff, 0x01, 0x05 };
	uint64_t out[16];
	struct pt_error e = { 0 };

	CU_ASSERT_EQUAL(pt_ring_decode(two, 8, 2, out, &e), 0);
	CU_ASSERT_EQUAL(out[1], 7);
	CU_ASSERT_EQUAL(pt_ring_decode(bad, 8, 1, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_VARINT));
	CU_ASSERT_EQUAL(pt_ring_decode(two, 8, 9, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_PAYLOAD));
	CU_ASSERT_EQUAL(pt_ring_decode(unterm, 8, 2, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_VARINT));
	CU_ASSERT_EQUAL(pt_ring_decode(trail, 16, 1, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(TRAILING));
	CU_ASSERT_EQUAL(pt_ring_decode(nzpad, 8, 1, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(TRAILING));
	CU_ASSERT_EQUAL(pt_ring_decode(ovf, 16, 2, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(ORDER));
	CU_ASSERT_EQUAL(pt_ring_decode(two, 7, 1, out, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_PAYLOAD));
}

PT_SUITE(codec_ring, PT_TEST(test_roundtrip_unsorted_with_duplicates),
	 PT_TEST(test_dense_batch_is_one_byte_per_gfn),
	 PT_TEST(test_rejects_malformed))
