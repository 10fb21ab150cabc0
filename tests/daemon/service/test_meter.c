// SPDX-License-Identifier: MIT
/*
 * The dirty-rate meter counts distinct pages exactly: bitmaps and ring
 * batches from several harvests are unioned per window, per vCPU with
 * rings, whole regions with all(), and windows restart cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "pt_test.h"
#include "service/meter.h"

static struct pt_mem_region regions[2] = {
	{ .id = 7, .page_size = 4096, .gpa_base = 0, .size = 1000 * 4096 },
	{ .id = 9,
	  .page_size = 4096,
	  .gpa_base = 1ull << 32,
	  .size = 64 * 4096 },
};

static void source(struct pt_dirty_source *s, int ring)
{
	memset(s, 0, sizeof(*s));
	s->vcpus = 2;
	s->kind = ring ? PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING
		       : PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	s->nregions = 2;
	s->regions = regions;
}

static void test_bitmap_union(void)
{
	struct pt_dirty_source src;
	struct pt_meter m;
	struct pt_window *w, *w2;
	uint64_t words[16] = { 0 }, pages;

	source(&src, 0);
	CU_ASSERT_FATAL(pt_meter_init(&m, &src) == 0);
	CU_ASSERT_EQUAL(m.npages, 1064);
	CU_ASSERT_FATAL(pt_meter_open(&m, &w) == 0);
	/* Pages 0, 63, 64 and 999 of region 7... */
	words[0] = 1ull | 1ull << 63;
	words[1] = 1;
	words[15] = 1ull << (999 - 960);
	CU_ASSERT_EQUAL(m.sink.ops->bitmap(&m.sink, 7, 0, 1000, words), 0);
	/* ...again, plus page 1 from an offset: a union, not a sum. */
	CU_ASSERT_EQUAL(m.sink.ops->bitmap(&m.sink, 7, 0, 1000, words), 0);
	words[0] = 1;
	CU_ASSERT_EQUAL(m.sink.ops->bitmap(&m.sink, 7, 1, 1, words), 0);
	/* Bits past npages are ignored; unknown regions and ranges fail. */
	words[0] = ~0ull;
	CU_ASSERT_EQUAL(m.sink.ops->bitmap(&m.sink, 9, 60, 4, words), 0);
	CU_ASSERT(m.sink.ops->bitmap(&m.sink, 8, 0, 1, words) < 0);
	CU_ASSERT(m.sink.ops->bitmap(&m.sink, 9, 60, 5, words) < 0);
	CU_ASSERT_FATAL(pt_meter_open(&m, &w2) == 0);
	CU_ASSERT_EQUAL(m.sink.ops->all(&m.sink, 9), 0);
	pt_meter_take(&m, w, pt_now_ns(), 1, &pages, NULL);
	CU_ASSERT_EQUAL(pages, 5 + 64);
	/* Restarted: empty until the next harvest. */
	pt_meter_take(&m, w, pt_now_ns(), 1, &pages, NULL);
	CU_ASSERT_EQUAL(pages, 0);
	/* The window opened later saw only all(). */
	pt_meter_take(&m, w2, 0, 0, &pages, NULL);
	CU_ASSERT_EQUAL(pages, 64);
	/* 4 + 4 + 1 + 4 + 64 pages were reported in all. */
	CU_ASSERT_EQUAL(m.pages_total, 77);
	pt_meter_take(&m, w, 0, 0, &pages, NULL);
	pt_meter_release(&m);
}

static void test_ring_per_vcpu(void)
{
	struct pt_dirty_source src;
	struct pt_meter m;
	struct pt_window *w;
	uint64_t g0[] = { 1, 2, 3, 3, (1ull << 20) + 5 };
	uint64_t g1[] = { 3, 4, 5000 /* outside every region */ };
	uint64_t pages, vp[2];

	source(&src, 1);
	CU_ASSERT_FATAL(pt_meter_init(&m, &src) == 0);
	CU_ASSERT_FATAL(pt_meter_open(&m, &w) == 0);
	CU_ASSERT_EQUAL(m.sink.ops->ring(&m.sink, 0, g0, 5), 0);
	CU_ASSERT_EQUAL(m.sink.ops->ring(&m.sink, 1, g1, 3), 0);
	CU_ASSERT_EQUAL(m.sink.ops->ring(&m.sink, -1, g1, 1), 0);
	pt_meter_take(&m, w, 0, 0, &pages, vp);
	/* Distinct: 1, 2, 3, 4 and region 9's page 5. */
	CU_ASSERT_EQUAL(pages, 5);
	CU_ASSERT_EQUAL(vp[0], 4);
	CU_ASSERT_EQUAL(vp[1], 2);
	pt_meter_release(&m);
}

static void test_hist_and_limits(void)
{
	struct pt_dirty_source src;
	struct pt_meter m;
	struct pt_window *w[PT_METER_WINDOWS + 1];
	uint64_t pages;

	source(&src, 0);
	CU_ASSERT_FATAL(pt_meter_init(&m, &src) == 0);
	pt_meter_harvest_time(&m, 0.0002);
	pt_meter_harvest_time(&m, 2.0);
	CU_ASSERT_EQUAL(m.harvests, 2);
	CU_ASSERT_EQUAL(m.hist[0], 0); /* le 0.0001 */
	CU_ASSERT_EQUAL(m.hist[1], 1); /* le 0.00025 */
	CU_ASSERT_EQUAL(m.hist[PT_HIST_BUCKETS - 1], 1); /* le 1: not 2 s */
	for (int i = 0; i < PT_METER_WINDOWS; i++)
		CU_ASSERT_EQUAL(pt_meter_open(&m, &w[i]), 0);
	CU_ASSERT(pt_meter_open(&m, &w[PT_METER_WINDOWS]) < 0);
	for (int i = 0; i < PT_METER_WINDOWS; i++)
		pt_meter_take(&m, w[i], 0, 0, &pages, NULL);
	pt_meter_release(&m);
}

PT_SUITE(service_meter, PT_TEST(test_bitmap_union), PT_TEST(test_ring_per_vcpu),
	 PT_TEST(test_hist_and_limits));
