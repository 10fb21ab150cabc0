// SPDX-License-Identifier: MIT
#include "codec/layout.h"

#include <errno.h>

#include "pt_test.h"

#define BAD_REGION PTRACK__V1__ERROR_CODE__ERROR_BAD_REGION

static void test_valid_and_lookup(void)
{
	struct pt_layout l = { 0 };

	CU_ASSERT_EQUAL(
		pt_layout_add(&l, 7, 4ull << 30, 1ull << 30, 4096, NULL), 0);
	CU_ASSERT_EQUAL(pt_layout_add(&l, 3, 0, 2u << 20, 65536, NULL), 0);
	CU_ASSERT_EQUAL(l.n, 2);
	CU_ASSERT_EQUAL(l.r[0].id, 3); /* sorted by base */
	CU_ASSERT_EQUAL(l.r[0].page_shift, 16);
	CU_ASSERT_EQUAL(l.r[1].npages, 262144);
	CU_ASSERT_EQUAL(pt_layout_find(&l, 7)->gpa_base, 4ull << 30);
	CU_ASSERT_PTR_NULL(pt_layout_find(&l, 4));
	CU_ASSERT_EQUAL(pt_layout_find_gpa(&l, (4ull << 30) + 5)->id, 7);
	CU_ASSERT_EQUAL(pt_layout_find_gpa(&l, (2u << 20) - 1)->id, 3);
	CU_ASSERT_PTR_NULL(pt_layout_find_gpa(&l, 2u << 20));
	CU_ASSERT_PTR_NULL(pt_layout_find_gpa(&l, 5ull << 30));
}

static int add(struct pt_layout *l, uint32_t id, uint64_t base, uint64_t size,
	       uint32_t ps, struct pt_error *e)
{
	e->code = 0;
	return pt_layout_add(l, id, base, size, ps, e);
}

static void test_rejects_bad_regions(void)
{
	struct pt_layout l = { 0 };
	struct pt_error e;

	CU_ASSERT_EQUAL(add(&l, 1, 0, 1 << 20, 4096, &e), 0);
	CU_ASSERT_EQUAL(add(&l, 1, 8 << 20, 4096, 4096, &e), -EINVAL);
	CU_ASSERT_EQUAL(e.code, BAD_REGION);
	CU_ASSERT_EQUAL(add(&l, 2, 4096, 4096, 4096, &e), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.text, "overlaps"));
	CU_ASSERT_EQUAL(add(&l, 3, 8 << 20, 4096, 3000, &e), -EINVAL);
	CU_ASSERT_EQUAL(add(&l, 3, 8 << 20, 4096, 2048, &e), -EINVAL);
	CU_ASSERT_EQUAL(add(&l, 3, (8 << 20) + 1, 4096, 4096, &e), -EINVAL);
	CU_ASSERT_EQUAL(add(&l, 3, 8 << 20, 0, 4096, &e), -EINVAL);
	CU_ASSERT_EQUAL(add(&l, 3, UINT64_MAX - 4095, 8192, 4096, &e), -EINVAL);
	CU_ASSERT_EQUAL(l.n, 1);
}

PT_SUITE(codec_layout, PT_TEST(test_valid_and_lookup),
	 PT_TEST(test_rejects_bad_regions))
