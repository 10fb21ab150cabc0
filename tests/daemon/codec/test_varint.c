// SPDX-License-Identifier: MIT
#include "codec/varint.h"

#include <errno.h>

#include "pt_test.h"

static void test_roundtrip_boundaries(void)
{
	static const uint64_t v[] = { 0,
				      1,
				      127,
				      128,
				      16383,
				      16384,
				      (1ull << 35) - 1,
				      1ull << 56,
				      UINT64_MAX - 1,
				      UINT64_MAX };
	uint8_t buf[PT_VARINT_MAX];
	size_t i, n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const uint8_t *p = buf;
		uint64_t out = 0;

		n = pt_varint_put(buf, v[i]);
		CU_ASSERT_EQUAL(n, pt_varint_len(v[i]));
		CU_ASSERT_EQUAL(pt_varint_get(&p, buf + n, &out), 0);
		CU_ASSERT_EQUAL(out, v[i]);
		CU_ASSERT_PTR_EQUAL(p, buf + n);
	}
	CU_ASSERT_EQUAL(pt_varint_len(UINT64_MAX), 10);
}

static int get(const uint8_t *b, size_t n)
{
	const uint8_t *p = b;
	uint64_t v;

	return pt_varint_get(&p, b + n, &v);
}

static void test_rejects_malformed(void)
{
	static const uint8_t unterminated[] = { 0x80, 0x80 };
	static const uint8_t eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					  0x80, 0x80, 0x80, 0x80, 0x01 };
	static const uint8_t overflow[] = { 0xff, 0xff, 0xff, 0xff, 0xff,
					    0xff, 0xff, 0xff, 0xff, 0x02 };
	static const uint8_t overlong[] = { 0x81, 0x00 };
	static const uint8_t zero[] = { 0x00 };

	CU_ASSERT_EQUAL(get(unterminated, sizeof(unterminated)), -EBADMSG);
	CU_ASSERT_EQUAL(get(unterminated, 0), -EBADMSG);
	CU_ASSERT_EQUAL(get(eleven, sizeof(eleven)), -EBADMSG);
	CU_ASSERT_EQUAL(get(overflow, sizeof(overflow)), -EBADMSG);
	CU_ASSERT_EQUAL(get(overlong, sizeof(overlong)), -EBADMSG);
	CU_ASSERT_EQUAL(get(zero, sizeof(zero)), 0);
}

PT_SUITE(codec_varint, PT_TEST(test_roundtrip_boundaries),
	 PT_TEST(test_rejects_malformed))
