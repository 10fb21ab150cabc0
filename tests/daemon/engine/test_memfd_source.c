// SPDX-License-Identifier: MIT
/* Self-test of the in-process memfd dirty source. */
#include "memfd_source.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt_test.h"

#define PAGE 4096u

/* Self-test: every written page is reported, in both modes. */
struct collect {
	struct pt_dirty_sink sink;
	uint64_t *bm;
	uint64_t n;
};

static int col_bitmap(struct pt_dirty_sink *k, uint32_t region, uint64_t first,
		      uint64_t npages, const uint64_t *w)
{
	struct collect *c = (struct collect *)k;
	uint64_t i;

	CU_ASSERT_EQUAL(region, 7);
	for (i = 0; i < npages; i++)
		if ((w[i / 64] >> (i % 64)) & 1)
			c->bm[(first + i) / 64] |= 1ull << ((first + i) % 64);
	return 0;
}

static int col_ring(struct pt_dirty_sink *k, int vcpu, const uint64_t *g,
		    size_t n)
{
	struct collect *c = (struct collect *)k;
	size_t i;

	(void)vcpu;
	for (i = 0; i < n; i++)
		c->bm[g[i] / 64] |= 1ull << (g[i] % 64);
	return 0;
}

static const struct pt_dirty_sink_ops col_ops = { .bitmap = col_bitmap,
						  .ring = col_ring };

static void check_mode(int ring)
{
	struct msrc_opts o = { .size = 8 << 20,
			       .nregions = 1,
			       .writers = 2,
			       .rate = 20000,
			       .ring = ring };
	struct collect c = { .sink.ops = &col_ops };
	struct pt_dirty_source *s;
	struct msrc *m;
	const uint8_t *mem;
	uint8_t *before;
	uint64_t pg, npages, size, missed = 0, changed = 0;

	CU_ASSERT_FATAL(msrc_create(&m, &o) == 0);
	s = msrc_source(m);
	mem = msrc_mem(m, &size);
	npages = size / PAGE;
	c.bm = calloc((npages + 63) / 64, 8);
	before = malloc(o.size);
	CU_ASSERT_FATAL(c.bm && before);
	CU_ASSERT_EQUAL(s->ops->start(s), 0);
	s->ops->pause(s);
	memcpy(before, mem, o.size);
	s->ops->harvest(s, &c.sink);
	memset(c.bm, 0, (npages + 63) / 64 * 8);
	s->ops->resume(s);
	usleep(100000);
	CU_ASSERT_EQUAL(s->ops->pause(s), 0);
	CU_ASSERT(msrc_paused(m));
	CU_ASSERT_EQUAL(s->ops->harvest(s, &c.sink), 0);
	for (pg = 0; pg < npages; pg++) {
		int d = (c.bm[pg / 64] >> (pg % 64)) & 1;

		if (memcmp(before + pg * PAGE, mem + pg * PAGE, PAGE)) {
			changed++;
			missed += !d;
		}
	}
	CU_ASSERT(changed > 100);
	CU_ASSERT_EQUAL(missed, 0);
	s->ops->resume(s);
	free(before);
	free(c.bm);
	msrc_destroy(m);
}

static void test_bitmap_reports_writes(void)
{
	check_mode(0);
}

static void test_ring_reports_writes(void)
{
	check_mode(1);
}

PT_SUITE(memfd_source, PT_TEST(test_bitmap_reports_writes),
	 PT_TEST(test_ring_reports_writes));
