/* SPDX-License-Identifier: MIT */
/*
 * Client of the "ptrack" generic netlink family (include/uapi/linux/
 * ptrack.h), served by the page tracking agent driver (driver/pta/).
 *
 * Two layers:
 * - message building and parsing, pure functions on libnl messages (unit
 *   tested without a kernel): ptnl_put_*() and ptnl_parse_*();
 * - a client that resolves the family and talks to the kernel:
 *   ptnl_open() and the calls that take a struct ptnl.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; errors the kernel reports are returned as they are (-EPERM
 * without CAP_NET_ADMIN, -ENOENT for an unknown tracker, ...).
 */
#ifndef PT_NETLINK_PTNL_H
#define PT_NETLINK_PTNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netlink/attr.h>
#include <netlink/msg.h>

#include "uapi/linux/ptrack.h"

#define PTNL_NAME_MAX 64
#define PTNL_MAX_CPUS 1024

struct ptnl_device {
	char name[PTNL_NAME_MAX];
	uint32_t version; /* major << 16 | minor */
	uint32_t caps; /* PTRACK_DEV_CAP_* */
	uint32_t contexts;
	uint32_t contexts_used;
	uint32_t cpus;
	uint32_t ring_entries;
	uint64_t entries;
	uint64_t lost;
	uint64_t irqs;
	uint64_t flushes;
};

struct ptnl_tracker {
	uint32_t id;
	uint32_t vmid;
	uint32_t pid;
	uint32_t mode; /* enum ptrack_tracker_mode */
	uint32_t page_shift;
	uint32_t subscribers;
	bool all_cpus;
	bool lossy;
	uint64_t pages;
	uint64_t overflows;
	uint32_t ncpu_words; /* valid words of cpus[] */
	uint64_t cpus[PTNL_MAX_CPUS / 64];
};

/* One PTRACK_CMD_READ reply. */
struct ptnl_batch {
	uint32_t tracker_id;
	int cpu; /* -1: all CPUs */
	bool lossy; /* pages were lost: treat every page as dirty */
	bool more; /* pages remain: read again */
	uint64_t *pages; /* caller's buffer */
	size_t n; /* pages stored */
};

struct ptnl_event {
	uint8_t cmd; /* PTRACK_CMD_EVENT_* */
	struct ptnl_tracker tracker;
	uint32_t old_vmid; /* PTRACK_CMD_EVENT_VMID_CHANGED only */
};

/* The attribute policy both directions are parsed with. */
extern struct nla_policy ptnl_policy[PTRACK_A_MAX + 1];

/* --- building requests (family: the resolved family id) ---------------- */

/* A request with no attributes (GET_DEVICE, or a GET_TRACKER dump). */
int ptnl_put_cmd(struct nl_msg *msg, int family, uint8_t cmd, int flags);
/* GET_TRACKER (doit), UNSUBSCRIBE or FLUSH of @tracker. */
int ptnl_put_tracker_cmd(struct nl_msg *msg, int family, uint8_t cmd,
			 uint32_t tracker);
int ptnl_put_subscribe(struct nl_msg *msg, int family, uint32_t tracker,
		       uint32_t mode);
/* @cpu -1: all CPUs; @max 0: the kernel's default. */
int ptnl_put_read(struct nl_msg *msg, int family, uint32_t tracker, int cpu,
		  uint32_t max, bool flush);

/* --- parsing replies and events ---------------------------------------- */

int ptnl_parse_device(struct nlmsghdr *nlh, struct ptnl_device *d);
int ptnl_parse_tracker(struct nlmsghdr *nlh, struct ptnl_tracker *t);
/* @b->pages must hold @cap pages; -ENOSPC if the reply holds more. */
int ptnl_parse_batch(struct nlmsghdr *nlh, struct ptnl_batch *b, size_t cap);
int ptnl_parse_event(struct nlmsghdr *nlh, struct ptnl_event *e);

/* --- the client --------------------------------------------------------- */

struct ptnl;

/* Connects and resolves the family; -ENOENT when no driver is loaded. */
int ptnl_open(struct ptnl **out);
/* The same, plus membership of the events group (needs CAP_NET_ADMIN). */
int ptnl_open_events(struct ptnl **out);
void ptnl_close(struct ptnl *h);
int ptnl_family(const struct ptnl *h);
int ptnl_fd(const struct ptnl *h);

int ptnl_get_device(struct ptnl *h, struct ptnl_device *d);
int ptnl_get_tracker(struct ptnl *h, uint32_t id, struct ptnl_tracker *t);
/* Calls @cb for every tracker; a non-zero return of @cb stops the dump. */
int ptnl_dump_trackers(struct ptnl *h,
		       int (*cb)(const struct ptnl_tracker *t, void *arg),
		       void *arg);
int ptnl_subscribe(struct ptnl *h, uint32_t tracker, uint32_t mode);
int ptnl_unsubscribe(struct ptnl *h, uint32_t tracker);
int ptnl_flush(struct ptnl *h, uint32_t tracker);
/* One batch of at most @cap pages (PTRACK_READ_MAX_PAGES at most). */
int ptnl_read(struct ptnl *h, uint32_t tracker, int cpu, bool flush,
	      uint64_t *pages, size_t cap, struct ptnl_batch *b);
/* Receives pending events (blocking unless the socket is non-blocking). */
int ptnl_recv_events(struct ptnl *h,
		     int (*cb)(const struct ptnl_event *e, void *arg),
		     void *arg);

#endif /* PT_NETLINK_PTNL_H */
