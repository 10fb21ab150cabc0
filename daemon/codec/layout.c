// SPDX-License-Identifier: MIT
#include "codec/layout.h"

#include <errno.h>
#include <string.h>

#define BAD_REGION PTRACK__V1__ERROR_CODE__ERROR_BAD_REGION

static int check_geometry(uint32_t id, uint64_t base, uint64_t size,
			  uint32_t page_size, struct pt_error *e)
{
	if (page_size < 4096 || page_size > (1u << 30) ||
	    (page_size & (page_size - 1)))
		return pt_error_set(
			e, BAD_REGION, EINVAL,
			"region %u: page size %u is not a power of two from 4 KiB to 1 GiB",
			id, page_size);
	if (!size || size % page_size || base % page_size)
		return pt_error_set(
			e, BAD_REGION, EINVAL,
			"region %u: base 0x%llx size 0x%llx not page aligned or empty",
			id, (unsigned long long)base, (unsigned long long)size);
	if (base + size < base)
		return pt_error_set(e, BAD_REGION, EINVAL,
				    "region %u wraps around the address space",
				    id);
	return 0;
}

static int check_conflicts(const struct pt_layout *l, uint32_t id,
			   uint64_t base, uint64_t size, struct pt_error *e)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		const struct pt_region *r = &l->r[i];

		if (r->id == id)
			return pt_error_set(e, BAD_REGION, EINVAL,
					    "region id %u appears twice", id);
		if (base < r->gpa_base + r->size && r->gpa_base < base + size)
			return pt_error_set(e, BAD_REGION, EINVAL,
					    "region %u overlaps region %u", id,
					    r->id);
	}
	return 0;
}

int pt_layout_add(struct pt_layout *l, uint32_t id, uint64_t gpa_base,
		  uint64_t size, uint32_t page_size, struct pt_error *e)
{
	size_t pos;
	int r;

	if (l->n >= PT_LAYOUT_MAX_REGIONS)
		return pt_error_set(e, BAD_REGION, EINVAL,
				    "more than %d regions",
				    PT_LAYOUT_MAX_REGIONS);
	r = check_geometry(id, gpa_base, size, page_size, e);
	if (!r)
		r = check_conflicts(l, id, gpa_base, size, e);
	if (r)
		return r;
	for (pos = l->n; pos && l->r[pos - 1].gpa_base > gpa_base; pos--)
		l->r[pos] = l->r[pos - 1];
	l->r[pos] = (struct pt_region){
		.id = id,
		.page_size = page_size,
		.page_shift = (uint32_t)__builtin_ctz(page_size),
		.gpa_base = gpa_base,
		.size = size,
		.npages = size / page_size,
	};
	l->n++;
	return 0;
}

int pt_layout_from_hello(struct pt_layout *l, const Ptrack__V1__Hello *hello,
			 struct pt_error *e)
{
	size_t i;
	int r;

	memset(l, 0, sizeof(*l));
	if (!hello->n_regions)
		return pt_error_set(e, BAD_REGION, EINVAL,
				    "Hello describes no memory regions");
	if (hello->n_regions > PT_LAYOUT_MAX_REGIONS)
		return pt_error_set(e, BAD_REGION, EINVAL,
				    "%zu regions, at most %d", hello->n_regions,
				    PT_LAYOUT_MAX_REGIONS);
	for (i = 0; i < hello->n_regions; i++) {
		const Ptrack__V1__Region *rg = hello->regions[i];

		r = pt_layout_add(l, rg->id, rg->gpa_base, rg->size,
				  rg->page_size, e);
		if (r)
			return r;
	}
	return 0;
}

const struct pt_region *pt_layout_find(const struct pt_layout *l, uint32_t id)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->r[i].id == id)
			return &l->r[i];
	return NULL;
}

const struct pt_region *pt_layout_find_gpa(const struct pt_layout *l,
					   uint64_t gpa)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct pt_region *r = &l->r[mid];

		if (gpa < r->gpa_base)
			hi = mid;
		else if (gpa - r->gpa_base >= r->size)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}
