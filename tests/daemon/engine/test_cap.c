// SPDX-License-Identifier: MIT
/*
 * The bandwidth cap's arithmetic: bytes * 10^9 overflowed 64 bits once
 * 18.45 GB were sent, after which the stream ran uncapped.
 */
#include <stdint.h>

#include "engine/migrate.h"
#include "pt_test.h"

static void test_cap_small(void)
{
	CU_ASSERT_EQUAL(pt_cap_due_ns(0, 0, 1000), 0);
	CU_ASSERT_EQUAL(pt_cap_due_ns(5, 1000, 1000), 5 + 1000000000ull);
	/* 256 MiB/s: 1 GiB is due 4 s after the start. */
	CU_ASSERT_EQUAL(pt_cap_due_ns(7, 1ull << 30, 256ull << 20),
			7 + 4000000000ull);
}

static void test_cap_past_64_bits(void)
{
	uint64_t wrap = UINT64_MAX / 1000000000ull + 1; /* 18.45 GB */
	uint64_t bw = 256ull << 20;

	/* Just past the old overflow: still ~68.7 s at 256 MiB/s. */
	CU_ASSERT_EQUAL(pt_cap_due_ns(0, wrap, bw),
			(uint64_t)((unsigned __int128)wrap * 1000000000u / bw));
	CU_ASSERT(pt_cap_due_ns(0, wrap, bw) > 68000000000ull);
	CU_ASSERT(pt_cap_due_ns(0, wrap + 1, bw) >= pt_cap_due_ns(0, wrap, bw));
	/* 1 TB at 1 GB/s: 1000 s, monotonic in the byte count. */
	CU_ASSERT_EQUAL(pt_cap_due_ns(0, 1000000000000ull, 1000000000ull),
			1000000000000ull);
	/* Saturates instead of wrapping. */
	CU_ASSERT_EQUAL(pt_cap_due_ns(UINT64_MAX - 10, 1ull << 40, 1),
			UINT64_MAX);
}

PT_SUITE(engine_cap, PT_TEST(test_cap_small), PT_TEST(test_cap_past_64_bits));
