/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * ptrack: generic netlink interface of page tracking device drivers.
 *
 * Family PTRACK_GENL_NAME, version PTRACK_GENL_VERSION. Every request and
 * reply carries flat PTRACK_A_* attributes; the kernel validates requests
 * strictly (unknown attributes and trailing data are rejected).
 *
 * Commands (doit unless noted; "admin" means CAP_NET_ADMIN is required):
 *
 * PTRACK_CMD_GET_DEVICE
 *	Request: none. Reply: PTRACK_A_DEV_*.
 * PTRACK_CMD_GET_TRACKER (doit with PTRACK_A_TRACKER_ID, or dumpit)
 *	Reply: one message per tracker with PTRACK_A_TRACKER_*.
 * PTRACK_CMD_SUBSCRIBE (admin)
 *	Request: PTRACK_A_TRACKER_ID, PTRACK_A_SUB_MODE (default
 *	PTRACK_SUB_DRAIN). Gives the requesting socket its own view of the
 *	tracker's dirty pages, fed from the device from now on. Reads by one
 *	subscriber (or by KVM) never take pages from another. A socket has at
 *	most one subscription per tracker (-EEXIST). Subscriptions end with
 *	PTRACK_CMD_UNSUBSCRIBE, when the socket closes, or when the tracker is
 *	destroyed.
 * PTRACK_CMD_UNSUBSCRIBE (admin)
 *	Request: PTRACK_A_TRACKER_ID.
 * PTRACK_CMD_READ (admin)
 *	Request: PTRACK_A_TRACKER_ID; optional PTRACK_A_CPU (per-CPU
 *	subscriptions only; absent means every CPU); optional
 *	PTRACK_A_MAX_PAGES (default and upper bound PTRACK_READ_MAX_PAGES);
 *	optional PTRACK_A_FLUSH (flush the device first).
 *	Drains the caller's view and clears what it returns. Reply:
 *	PTRACK_A_TRACKER_ID, PTRACK_A_PAGES (array of __u64 guest-physical
 *	page addresses, host endianness), PTRACK_A_CPU if one was asked,
 *	PTRACK_A_LOSSY if pages were lost since the previous read (the
 *	subscriber must then treat every page as dirty), PTRACK_A_MORE if
 *	pages remain.
 * PTRACK_CMD_FLUSH (admin)
 *	Request: PTRACK_A_TRACKER_ID. Flushes the device and drains it into
 *	every view.
 *
 * Multicast group PTRACK_MCGRP_EVENTS (joining needs CAP_NET_ADMIN) carries
 * PTRACK_CMD_EVENT_* messages with PTRACK_A_TRACKER_* attributes (the
 * tracker's state at the time of the event); VMID_CHANGED adds
 * PTRACK_A_OLD_VMID.
 */
#ifndef _UAPI_LINUX_PTRACK_H
#define _UAPI_LINUX_PTRACK_H

#include <linux/types.h>

#define PTRACK_GENL_NAME	"ptrack"
#define PTRACK_GENL_VERSION	1
#define PTRACK_MCGRP_EVENTS	"events"

/* Largest number of pages one PTRACK_CMD_READ reply carries. */
#define PTRACK_READ_MAX_PAGES	4096

enum ptrack_cmd {
	PTRACK_CMD_UNSPEC,
	PTRACK_CMD_GET_DEVICE,
	PTRACK_CMD_GET_TRACKER,
	PTRACK_CMD_SUBSCRIBE,
	PTRACK_CMD_UNSUBSCRIBE,
	PTRACK_CMD_READ,
	PTRACK_CMD_FLUSH,
	/* Notifications, sent to PTRACK_MCGRP_EVENTS only. */
	PTRACK_CMD_EVENT_TRACKER_NEW,
	PTRACK_CMD_EVENT_TRACKER_DEL,
	PTRACK_CMD_EVENT_OVERFLOW,
	PTRACK_CMD_EVENT_VMID_CHANGED,

	__PTRACK_CMD_MAX,
	PTRACK_CMD_MAX = __PTRACK_CMD_MAX - 1
};

/* PTRACK_A_DEV_CAPS bits */
#define PTRACK_DEV_CAP_PER_CPU	(1U << 0) /* entries carry the CPU */
#define PTRACK_DEV_CAP_VMID16	(1U << 1) /* 16-bit VMIDs */
#define PTRACK_DEV_CAP_BLOCKS	(1U << 2) /* logs block mappings */
#define PTRACK_DEV_CAP_FLUSH	(1U << 3) /* flush with completion */

/* PTRACK_A_TRACKER_MODE: how the tracker's owner consumes pages. */
enum ptrack_tracker_mode {
	PTRACK_MODE_BITMAP = 0,	/* all CPUs together (dirty bitmaps) */
	PTRACK_MODE_RING = 1,	/* per CPU (dirty rings) */
};

/* PTRACK_A_SUB_MODE */
enum ptrack_sub_mode {
	PTRACK_SUB_DRAIN = 0,	/* one view, drain-and-clear */
	PTRACK_SUB_PER_CPU = 1,	/* one view per CPU, read per CPU or all */
};

enum ptrack_attr {
	PTRACK_A_UNSPEC,
	PTRACK_A_PAD,			/* padding for 64-bit attributes */

	/* device */
	PTRACK_A_DEV_NAME,		/* string */
	PTRACK_A_DEV_VERSION,		/* u32: major << 16 | minor */
	PTRACK_A_DEV_CAPS,		/* u32: PTRACK_DEV_CAP_* */
	PTRACK_A_DEV_CONTEXTS,		/* u32: tracking contexts */
	PTRACK_A_DEV_CONTEXTS_USED,	/* u32 */
	PTRACK_A_DEV_CPUS,		/* u32: CPUs the device attributes */
	PTRACK_A_DEV_RING_ENTRIES,	/* u32 */
	PTRACK_A_DEV_ENTRIES,		/* u64: entries consumed */
	PTRACK_A_DEV_LOST,		/* u64: entries dropped by the device */
	PTRACK_A_DEV_IRQS,		/* u64 */
	PTRACK_A_DEV_FLUSHES,		/* u64 */

	/* tracker */
	PTRACK_A_TRACKER_ID,		/* u32 */
	PTRACK_A_TRACKER_VMID,		/* u32 (16 significant bits) */
	PTRACK_A_TRACKER_PID,		/* u32: tgid of the owner (VMM) */
	PTRACK_A_TRACKER_MODE,		/* u32: enum ptrack_tracker_mode */
	PTRACK_A_TRACKER_PAGE_SHIFT,	/* u32 */
	PTRACK_A_TRACKER_ALL_CPUS,	/* flag: enabled on every CPU */
	PTRACK_A_TRACKER_CPUS,		/* binary: __u64[] bitmap of Linux CPUs */
	PTRACK_A_TRACKER_PAGES,		/* u64: pages logged */
	PTRACK_A_TRACKER_OVERFLOWS,	/* u64: overflow events */
	PTRACK_A_TRACKER_LOSSY,		/* flag: lost pages not yet reported */
	PTRACK_A_TRACKER_SUBSCRIBERS,	/* u32 */

	/* subscriptions and reads */
	PTRACK_A_SUB_MODE,		/* u32: enum ptrack_sub_mode */
	PTRACK_A_CPU,			/* u32: a Linux CPU number */
	PTRACK_A_MAX_PAGES,		/* u32: 1..PTRACK_READ_MAX_PAGES */
	PTRACK_A_FLUSH,			/* flag */
	PTRACK_A_PAGES,			/* binary: __u64[] addresses */
	PTRACK_A_LOSSY,			/* flag */
	PTRACK_A_MORE,			/* flag */

	/* events */
	PTRACK_A_OLD_VMID,		/* u32 */

	__PTRACK_A_MAX,
	PTRACK_A_MAX = __PTRACK_A_MAX - 1
};

#endif /* _UAPI_LINUX_PTRACK_H */
