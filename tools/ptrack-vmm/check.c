// SPDX-License-Identifier: MIT
/*
 * Ground truth for the dirty log. A shadow copy of guest memory is brought
 * up to date after every harvest k; the pages found changed, C(k), were
 * written between two harvests' memory reads. A write before harvest k's
 * GET (or ring collection) is in H(k); one racing it lands in H(k+1). So
 * the rule checked is C(k) within H(k) | H(k+1), and with the guest paused
 * before the last harvest, C(last) within H(last).
 *
 * False positives are harvested pages that changed in neither C(k-1) nor
 * C(k) (a write just before harvest k-1's read may be logged in H(k)).
 */
#include "vmm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int vmm_check_init(struct vmm_check *c, const uint8_t *mem, uint64_t npages)
{
	size_t words = (npages + 63) / 64;

	memset(c, 0, sizeof(*c));
	c->npages = npages;
	c->shadow = malloc(npages * VMM_PAGE);
	c->changed = calloc(words, 8);
	c->changed_prev = calloc(words, 8);
	c->harvest_prev = calloc(words, 8);
	if (!c->shadow || !c->changed || !c->changed_prev || !c->harvest_prev) {
		vmm_check_release(c);
		return -ENOMEM;
	}
	memcpy(c->shadow, mem, npages * VMM_PAGE);
	return 0;
}

void vmm_check_release(struct vmm_check *c)
{
	free(c->shadow);
	free(c->changed);
	free(c->changed_prev);
	free(c->harvest_prev);
	memset(c, 0, sizeof(*c));
}

/* C(k): pages differing from the shadow, which is then brought up to date. */
static void collect_changed(struct vmm_check *c, const uint8_t *mem)
{
	size_t words = (c->npages + 63) / 64;
	uint64_t p;

	memset(c->changed, 0, words * 8);
	c->round_changed = 0;
	for (p = 0; p < c->npages; p++) {
		const uint8_t *m = mem + p * VMM_PAGE;
		uint8_t *s = c->shadow + p * VMM_PAGE;

		if (memcmp(m, s, VMM_PAGE) == 0)
			continue;
		memcpy(s, m, VMM_PAGE);
		vmm_set_bit(c->changed, p);
		c->round_changed++;
	}
	c->changed_total += c->round_changed;
}

void vmm_check_round(struct vmm_check *c, const uint8_t *mem,
		     const uint64_t *harvest)
{
	size_t words = (c->npages + 63) / 64, w;
	double t0 = now_ms();
	uint64_t *tmp;

	collect_changed(c, mem);
	c->round_fn = 0;
	c->round_fp = 0;
	for (w = 0; w < words; w++) {
		uint64_t missed, extra;

		/* C(k-1) must be within H(k-1) | H(k). */
		missed =
			c->changed_prev[w] & ~(c->harvest_prev[w] | harvest[w]);
		extra = harvest[w] & ~(c->changed[w] | c->changed_prev[w]);
		c->round_fn += __builtin_popcountll(missed);
		c->round_fp += __builtin_popcountll(extra);
		c->harvested += __builtin_popcountll(harvest[w]);
	}
	c->fn += c->round_fn;
	c->fp += c->round_fp;
	memcpy(c->harvest_prev, harvest, words * 8);
	tmp = c->changed_prev;
	c->changed_prev = c->changed;
	c->changed = tmp;
	c->cmp_ms = now_ms() - t0;
}

void vmm_check_final(struct vmm_check *c)
{
	size_t words = (c->npages + 63) / 64, w;
	uint64_t missed = 0;

	for (w = 0; w < words; w++)
		missed += __builtin_popcountll(c->changed_prev[w] &
					       ~c->harvest_prev[w]);
	c->round_fn += missed;
	c->fn += missed;
}
