/* SPDX-License-Identifier: MIT */
/*
 * Test helper: an in-process pt_dirty_source over a memfd. Writer threads
 * (the "vCPUs") dirty random pages and record each page in a bitmap (or, in
 * ring mode, a per-writer GFN list) after writing it, so a harvest reports
 * every page written before it, as the dirty.h contract demands. Lets the
 * engine be tested without KVM; the integration tests use ptrack-vmm.
 */
#ifndef PT_TEST_MEMFD_SOURCE_H
#define PT_TEST_MEMFD_SOURCE_H

#include <stdint.h>

#include "core/dirty.h"

struct msrc_opts {
	uint64_t size; /* bytes over all regions */
	unsigned int nregions; /* 1 or 2 */
	unsigned int writers; /* threads dirtying pages */
	uint64_t rate; /* pages/s per writer, 0: unlimited */
	int ring; /* report GFNs through sink->ring */
	int fill_all; /* every page random data (no zero pages) */
};

struct msrc;

int msrc_create(struct msrc **out, const struct msrc_opts *o);
/* Stops the writers and frees everything. */
void msrc_destroy(struct msrc *m);
struct pt_dirty_source *msrc_source(struct msrc *m);
/* Pages written so far (all writers). */
uint64_t msrc_writes(struct msrc *m);
int msrc_paused(struct msrc *m);
/* The memory, regions back to back in layout (guest-physical) order. */
const uint8_t *msrc_mem(struct msrc *m, uint64_t *size);
/* Copies region after region (layout order) into @fd; for comparisons. */
int msrc_dump(struct msrc *m, int fd);

#endif
