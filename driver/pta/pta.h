/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Page Tracking Agent driver: state shared by the platform glue
 * (pta_main.c) and the generic netlink family (pta_netlink.c).
 */
#ifndef PTA_H
#define PTA_H

#include <linux/device.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>

#include <asm/page_tracking.h>

#if !IS_ENABLED(CONFIG_KVM_ARM_PAGE_TRACKING)
#error "the PTA driver needs a kernel with CONFIG_KVM_ARM_PAGE_TRACKING"
#endif

#include "pta_core.h"
#include "pta_hw.h"

/* View owner of the KVM consumer; netlink views use the socket's port. */
#define PTA_OWNER_KVM		0

struct pta_dev {
	struct device *dev;
	struct pta_hw hw;
	struct pta_core core;
	struct pta_entry *ring;
	dma_addr_t ring_dma;
	size_t ring_bytes;
	u32 ring_log2;
	int irq;
	/*
	 * Linux CPU -> device CPU id, or PTA_CPU_UNKNOWN until the CPU has
	 * been online with the driver bound (the CPU hotplug callback reads
	 * its MPIDR on it), or PTA_CPU_UNTRACKED when the device has no id
	 * for it. A mapping stays while the CPU is offline.
	 */
	int *cpu_to_id;
	int id_to_cpu[PTA_MAX_CPUS];
	u64 irqs;
	struct hlist_node cpuhp_node;
	struct page_tracking_device ptd;
};

#define PTA_CPU_UNKNOWN		(-1)
#define PTA_CPU_UNTRACKED	(-2)

/* Per-tracker driver state, page_tracker->priv. */
struct pta_tracker_priv {
	struct pta_tracker *pt;
	struct pta_view *kvm_view;
	/*
	 * Enables of Linux CPUs not mapped yet (PTA_CPU_UNKNOWN), per CPU;
	 * given to the core when the CPU comes online and is mapped.
	 */
	u32 *pending_refs;
	u32 pid;
	bool per_cpu_reads;
};

/*
 * pta_lock protects pta_the_dev, and the device's core and trackers. It is
 * taken inside the page tracking core's locks (the ops are called with
 * them held) and never held while calling into the page tracking core.
 */
extern struct mutex pta_lock;
extern struct pta_dev *pta_the_dev;

int pta_cpu_to_id(struct pta_dev *pd, int cpu);
void pta_report_overflows(struct pta_dev *pd);

int pta_netlink_init(void);
void pta_netlink_exit(void);
void pta_netlink_tracker_event(struct pta_dev *pd, struct pta_tracker *pt,
			       u8 cmd, u16 old_vmid);

#endif /* PTA_H */
