/* SPDX-License-Identifier: MIT */
/*
 * The dirty-rate meter: a pt_dirty_sink that every harvest of a VM goes
 * through. It ORs each harvested set into open windows, so a window knows
 * the exact set of distinct pages (and, with dirty rings, the pages each
 * vCPU wrote) since it opened: rate = pages * page size / elapsed. No
 * sampling. Harvests may come from the migration thread, so all state is
 * under one mutex.
 */
#ifndef PT_SERVICE_METER_H
#define PT_SERVICE_METER_H

#include <pthread.h>
#include <stdint.h>

#include "core/dirty.h"

#define PT_METER_WINDOWS 8
#define PT_HIST_BUCKETS 12

struct pt_window {
	uint64_t *bits; /* one bit per guest page, regions back to back */
	uint64_t **vbits; /* per vCPU, NULL when not attributed */
	uint64_t t0_ns;
};

struct pt_meter {
	struct pt_dirty_sink sink;
	pthread_mutex_t lock;
	const struct pt_dirty_source *src;
	uint64_t *pfx; /* first global page of each region */
	uint64_t npages;
	uint32_t page_size;
	unsigned int vcpus;
	int per_vcpu;
	struct pt_window *win[PT_METER_WINDOWS];
	/* Counters for metrics. */
	uint64_t pages_total; /* pages reported by all harvests */
	uint64_t harvests;
	uint64_t hist[PT_HIST_BUCKETS]; /* harvest seconds, cumulative le */
	double hist_sum;
};

extern const double pt_hist_bounds[PT_HIST_BUCKETS];

int pt_meter_init(struct pt_meter *m, const struct pt_dirty_source *src);
void pt_meter_release(struct pt_meter *m);

/* Opens a window from now; close it with pt_meter_close(). */
int pt_meter_open(struct pt_meter *m, struct pt_window **out);

/* Distinct pages in @w and per vCPU (@vcpu_pages may be NULL), then
 * restarts the window at @now_ns when @restart, else frees it. Returns
 * the window's length up to @now_ns in ns (0 when @now_ns is 0). */
uint64_t pt_meter_take(struct pt_meter *m, struct pt_window *w, uint64_t now_ns,
		       int restart, uint64_t *pages, uint64_t *vcpu_pages);

/* Records one harvest's duration. */
void pt_meter_harvest_time(struct pt_meter *m, double seconds);

uint64_t pt_now_ns(void);

#endif
