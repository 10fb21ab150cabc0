/* SPDX-License-Identifier: MIT */
/*
 * The one seam between where dirty pages come from and where they go.
 *
 * A dirty source (a VMM pushing its KVM dirty log through libptrack, or the
 * page tracking device through netlink) owns a VM's memory view and, when
 * harvested, reports every page written since its previous harvest to a
 * dirty sink (the migration stream, the dirty-rate meter, ...). Sources and
 * sinks know nothing else of each other.
 *
 * The contract that keeps guest memory correct: a page written before
 * harvest() returns is reported by that harvest or a later one. A source
 * that lost track (a device log overflow) must call sink->all() for the
 * affected regions; it must never drop a page silently.
 */
#ifndef PT_CORE_DIRTY_H
#define PT_CORE_DIRTY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/ptrack.pb-c.h"

struct pt_dirty_sink;

struct pt_dirty_sink_ops {
	/* @npages bits of @words: pages @first_page.. of region @region. */
	int (*bitmap)(struct pt_dirty_sink *sink, uint32_t region,
		      uint64_t first_page, uint64_t npages,
		      const uint64_t *words);
	/* GFNs (gpa >> 12) written by @vcpu (-1: not attributed). */
	int (*ring)(struct pt_dirty_sink *sink, int vcpu, const uint64_t *gfns,
		    size_t n);
	/* Every page of @region must be treated as dirty. */
	int (*all)(struct pt_dirty_sink *sink, uint32_t region);
};

struct pt_dirty_sink {
	const struct pt_dirty_sink_ops *ops;
};

/* One guest memory region as the daemon sees it. */
struct pt_mem_region {
	uint32_t id;
	uint32_t page_size;
	uint64_t gpa_base;
	uint64_t size;
	int fd; /* memfd or file holding the region, -1 if none */
	off_t offset; /* of the region in @fd */
	uint8_t *hva; /* @fd mapped shared: read-only, read-write if incoming */
};

struct pt_dirty_source;

struct pt_dirty_source_ops {
	/* Begins tracking; what was written before is the caller's to copy. */
	int (*start)(struct pt_dirty_source *src);
	/* Reports everything written since the previous harvest. */
	int (*harvest)(struct pt_dirty_source *src, struct pt_dirty_sink *sink);
	/* Stops and resumes the vCPUs (the final round). */
	int (*pause)(struct pt_dirty_source *src);
	int (*resume)(struct pt_dirty_source *src);
	int (*stop)(struct pt_dirty_source *src);
	void (*release)(struct pt_dirty_source *src);
	/*
	 * Switchover, optional (NULL: the source's VMM cannot hand its guest
	 * over). save_state, with the vCPUs paused: the VMM's opaque state in
	 * *@blob (malloc'd, the caller frees). load_state, incoming VM only:
	 * hands that blob to the destination VMM, which then waits for resume.
	 */
	int (*save_state)(struct pt_dirty_source *src, void **blob,
			  size_t *len);
	int (*load_state)(struct pt_dirty_source *src, const void *blob,
			  size_t len);
	/* Optional: hold the vCPUs out for @pct percent of their time. */
	int (*throttle)(struct pt_dirty_source *src, unsigned int pct);
};

struct pt_dirty_source {
	const struct pt_dirty_source_ops *ops;
	char name[64];
	uint8_t uuid[16];
	Ptrack__V1__DirtySource kind;
	unsigned int vcpus;
	size_t nregions;
	struct pt_mem_region *regions;
	/* The destination of a migration: @regions are mapped read-write
	 * and its vCPUs wait for load_state and resume. */
	int incoming;
};

#endif
