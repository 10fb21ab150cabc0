/* SPDX-License-Identifier: MIT */
/* The guest memory layout both ends agree on in Hello: a table of regions. */
#ifndef PT_CODEC_LAYOUT_H
#define PT_CODEC_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "codec/error.h"

#define PT_LAYOUT_MAX_REGIONS 64
#define PT_GFN_SHIFT 12 /* DirtyRing GFNs are in 4 KiB frames */

struct pt_region {
	uint32_t id;
	uint32_t page_size;
	uint32_t page_shift;
	uint64_t gpa_base;
	uint64_t size;
	uint64_t npages;
};

struct pt_layout {
	size_t n;
	struct pt_region r[PT_LAYOUT_MAX_REGIONS]; /* sorted by gpa_base */
};

/*
 * Validates @hello's regions into @l: ids unique, page sizes powers of two
 * from 4 KiB to 1 GiB, bases and sizes page aligned, non-empty, no overlap
 * and no wrap-around. Returns 0 or -EINVAL with BAD_REGION.
 */
int pt_layout_from_hello(struct pt_layout *l, const Ptrack__V1__Hello *hello,
			 struct pt_error *e);

/* Adds one region (validated the same way). */
int pt_layout_add(struct pt_layout *l, uint32_t id, uint64_t gpa_base,
		  uint64_t size, uint32_t page_size, struct pt_error *e);

const struct pt_region *pt_layout_find(const struct pt_layout *l, uint32_t id);

/* The region holding guest-physical address @gpa, or NULL. */
const struct pt_region *pt_layout_find_gpa(const struct pt_layout *l,
					   uint64_t gpa);

#endif
