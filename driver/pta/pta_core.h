/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hardware-independent core of the Page Tracking Agent driver: log ring
 * consumption, overflow accounting, per-CPU enable reference counts and
 * per-consumer views. See SPEC.md for the device.
 *
 * The core has no locking of its own: every function is called with the
 * caller's lock held (the driver's mutex), and may sleep (it allocates with
 * GFP_KERNEL). It talks to the device only through struct pta_core_hw_ops,
 * so it also builds in userspace, where tests run it against a software
 * model of SPEC.md.
 */
#ifndef PTA_CORE_H
#define PTA_CORE_H

#ifdef __KERNEL__
#include <linux/types.h>
#endif

#define PTA_MAX_CTX		32
#define PTA_MAX_CPUS		64
#define PTA_ENTRY_SIZE		16

/* Entry fields (SPEC.md 4.1) */
#define PTA_ENTRY_ADDR_MASK	(~0xfffULL)
#define PTA_ENTRY_CPU(i)	((u32)((i) & 0xffff))
#define PTA_ENTRY_CTX(i)	((u32)(((i) >> 16) & 0x1f))
#define PTA_ENTRY_SIZE_CODE(i)	((u32)(((i) >> 24) & 0x1f))
#define PTA_ENTRY_VMID(i)	((u32)(((i) >> 32) & 0xffff))

/* Largest block (in pages of the tracker) expanded into pages. */
#define PTA_MAX_EXPAND		512

struct pta_entry {
	__le64 addr;
	__le64 info;
};

/* Programming of one context (SPEC.md 3.2). */
struct pta_ctx_cfg {
	bool enable;
	bool all_cpus;
	bool vmid16;
	u16 vmid;
	u64 cpumask;
};

struct pta_core_hw_ops {
	/* RING_PROD */
	u32 (*read_prod)(void *hw);
	/* RING_CONS */
	void (*write_cons)(void *hw, u32 cons);
	/* CTX_VMID, CTX_CPUMASK, CTX_CTRL of context @ctx */
	void (*ctx_program)(void *hw, u32 ctx, const struct pta_ctx_cfg *cfg);
	/* Read CTX_STATUS.OVF of @ctx, clear it, return whether it was set. */
	bool (*ctx_test_clear_ovf)(void *hw, u32 ctx);
	/* Flush the device and wait for completion: 0 or -errno. */
	int (*flush)(void *hw);
};

/* A set of page addresses without duplicates (open addressing). */
struct pta_pageset {
	u64 *slots;	/* 0: empty, otherwise address | 1 */
	u32 order;	/* 1 << order slots; 0 when not allocated */
	u32 count;
};

#define PTA_VIEW_PER_CPU	0x1

/*
 * One consumer's view of a tracker: every page the device logs for the
 * tracker is added to every view, and reading a view clears only that view.
 */
struct pta_view {
	struct pta_view *next;
	struct pta_tracker *tracker;
	u32 flags;
	u32 owner;		/* chosen by the creator, e.g. a netlink port */
	u32 nsets;		/* 1, or one per CPU id */
	struct pta_pageset *sets;
	bool lossy;		/* pages were lost since the last read */
	u64 pages_added;
};

struct pta_tracker_params {
	u16 vmid;
	u32 page_shift;		/* 12 to 30 */
	u32 mode;		/* enum ptrack_tracker_mode, informative */
	u32 pid;		/* owner tgid, informative */
};

struct pta_tracker {
	struct pta_core *core;
	void *priv;		/* the caller's, untouched by the core */
	u32 id;			/* unique while the core lives, never 0 */
	u32 ctx;
	struct pta_tracker_params p;
	u32 all_refs;
	u32 cpu_refs[PTA_MAX_CPUS];
	struct pta_ctx_cfg cfg;	/* as last programmed */
	struct pta_view *views;
	u32 nviews;
	u64 pages_logged;
	u64 overflows;
};

struct pta_core_stats {
	u64 entries;		/* consumed from the ring */
	u64 stray;		/* entries for a context without tracker */
	u64 overflows;		/* context overflow events */
	u64 flushes;
	u64 errors;		/* device malfunctions detected */
	u64 cpu_downs;		/* CPUs that went offline */
};

struct pta_core {
	const struct pta_core_hw_ops *ops;
	void *hw;
	const struct pta_entry *ring;
	u32 ring_log2;
	u32 cons;		/* mirror of RING_CONS */
	u32 nctx;
	u32 ncpus;
	bool vmid16;
	u32 view_max_order;	/* per-set growth bound (log2 slots) */
	struct pta_tracker *trackers[PTA_MAX_CTX];
	u32 ntrackers;
	u32 next_id;
	u32 ovf_pending;	/* contexts that overflowed, for the caller */
	struct pta_core_stats stats;
};

/* pta_view_read() flags */
#define PTA_READ_LOSSY		0x1	/* treat every page as dirty */
#define PTA_READ_MORE		0x2	/* pages remain in the view */

int pta_core_init(struct pta_core *core, const struct pta_core_hw_ops *ops,
		  void *hw, const struct pta_entry *ring, u32 ring_log2,
		  u32 nctx, u32 ncpus, bool vmid16);
void pta_core_fini(struct pta_core *core);

int pta_core_drain(struct pta_core *core);
int pta_core_flush(struct pta_core *core);
int pta_core_cpu_down(struct pta_core *core, u32 cpu);
u32 pta_core_take_overflows(struct pta_core *core);
void pta_core_mark_all_lossy(struct pta_core *core);

int pta_tracker_alloc(struct pta_core *core,
		      const struct pta_tracker_params *params,
		      struct pta_tracker **out);
void pta_tracker_free(struct pta_tracker *t);
int pta_tracker_enable(struct pta_tracker *t, int cpu);
int pta_tracker_add_refs(struct pta_tracker *t, int cpu, u32 n);
int pta_tracker_disable(struct pta_tracker *t, int cpu);
int pta_tracker_set_vmid(struct pta_tracker *t, u16 vmid);
struct pta_tracker *pta_tracker_get(struct pta_core *core, u32 id);
bool pta_tracker_lossy(const struct pta_tracker *t);

int pta_view_create(struct pta_tracker *t, u32 flags, u32 owner,
		    struct pta_view **out);
void pta_view_destroy(struct pta_view *v);
struct pta_view *pta_view_find(struct pta_tracker *t, u32 owner);
int pta_view_read(struct pta_view *v, int cpu, u64 *addrs, u32 max,
		  u32 *flags);

#endif /* PTA_CORE_H */
