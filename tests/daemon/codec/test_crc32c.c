// SPDX-License-Identifier: MIT
#include "codec/crc32c.h"

#include <stdlib.h>

#include "pt_test.h"

static void test_check_value(void)
{
	CU_ASSERT_EQUAL(pt_crc32c(0, "123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(pt_crc32c(0, "", 0), 0);
}

static void test_chunked_equals_whole(void)
{
	uint8_t buf[10007];
	uint32_t whole, part;
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	whole = pt_crc32c(0, buf, sizeof(buf));
	part = pt_crc32c(0, buf, 3);
	part = pt_crc32c(part, buf + 3, 4096);
	part = pt_crc32c(part, buf + 4099, sizeof(buf) - 4099);
	CU_ASSERT_EQUAL(whole, part);
	buf[5000] ^= 1;
	CU_ASSERT_NOT_EQUAL(whole, pt_crc32c(0, buf, sizeof(buf)));
}

PT_SUITE(codec_crc32c, PT_TEST(test_check_value),
	 PT_TEST(test_chunked_equals_whole))
