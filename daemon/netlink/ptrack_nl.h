/* SPDX-License-Identifier: MIT */
/*
 * Client of the "ptrack" generic netlink family (include/uapi/linux/
 * ptrack.h), served by the page tracking agent driver (driver/pta/).
 *
 * Two layers:
 * - message building and parsing, pure functions on libnl messages (unit
 *   tested without a kernel): ptrack_nl_put_*() and ptrack_nl_parse_*();
 * - a client that resolves the family and talks to the kernel:
 *   ptrack_nl_open() and the calls that take a struct ptrack_nl.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; errors the kernel reports are returned as they are (-EPERM
 * without CAP_NET_ADMIN, -ENOENT for an unknown tracker, ...).
 */
#ifndef PT_NETLINK_PTRACK_NL_H
#define PT_NETLINK_PTRACK_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netlink/attr.h>
#include <netlink/msg.h>

#include "uapi/linux/ptrack.h"

#define PTRACK_NL_NAME_MAX 64
#define PTRACK_NL_MAX_CPUS 1024

struct ptrack_nl_device {
	char name[PTRACK_NL_NAME_MAX];
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

struct ptrack_nl_tracker {
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
	uint64_t cpus[PTRACK_NL_MAX_CPUS / 64];
};

/* One PTRACK_CMD_READ reply. */
struct ptrack_nl_batch {
	uint32_t tracker_id;
	int cpu; /* -1: all CPUs */
	bool lossy; /* pages were lost: treat every page as dirty */
	bool more; /* pages remain: read again */
	uint64_t *pages; /* caller's buffer */
	size_t n; /* pages stored */
};

struct ptrack_nl_event {
	uint8_t cmd; /* PTRACK_CMD_EVENT_* */
	struct ptrack_nl_tracker tracker;
	uint32_t old_vmid; /* PTRACK_CMD_EVENT_VMID_CHANGED only */
};

/* The attribute policy both directions are parsed with. */
extern struct nla_policy ptrack_nl_policy[PTRACK_A_MAX + 1];

/* --- building requests (family: the resolved family id) ---------------- */

/* A request with no attributes (GET_DEVICE, or a GET_TRACKER dump). */
int ptrack_nl_put_cmd(struct nl_msg *msg, int family, uint8_t cmd, int flags);
/* GET_TRACKER (doit), UNSUBSCRIBE or FLUSH of @tracker. */
int ptrack_nl_put_tracker_cmd(struct nl_msg *msg, int family, uint8_t cmd,
			      uint32_t tracker);
int ptrack_nl_put_subscribe(struct nl_msg *msg, int family, uint32_t tracker,
			    uint32_t mode);
/* @cpu -1: all CPUs; @max 0: the kernel's default. */
int ptrack_nl_put_read(struct nl_msg *msg, int family, uint32_t tracker,
		       int cpu, uint32_t max, bool flush);

/* --- parsing replies and events ---------------------------------------- */

int ptrack_nl_parse_device(struct nlmsghdr *nlh, struct ptrack_nl_device *d);
int ptrack_nl_parse_tracker(struct nlmsghdr *nlh, struct ptrack_nl_tracker *t);
/* @b->pages must hold @cap pages; -ENOSPC if the reply holds more. */
int ptrack_nl_parse_batch(struct nlmsghdr *nlh, struct ptrack_nl_batch *b,
			  size_t cap);
int ptrack_nl_parse_event(struct nlmsghdr *nlh, struct ptrack_nl_event *e);

/* --- the client --------------------------------------------------------- */

struct ptrack_nl;

/* Connects and resolves the family; -ENOENT when no driver is loaded. */
int ptrack_nl_open(struct ptrack_nl **out);
/* The same, plus membership of the events group (needs CAP_NET_ADMIN). */
int ptrack_nl_open_events(struct ptrack_nl **out);
void ptrack_nl_close(struct ptrack_nl *h);
int ptrack_nl_family(const struct ptrack_nl *h);
int ptrack_nl_fd(const struct ptrack_nl *h);

int ptrack_nl_get_device(struct ptrack_nl *h, struct ptrack_nl_device *d);
int ptrack_nl_get_tracker(struct ptrack_nl *h, uint32_t id,
			  struct ptrack_nl_tracker *t);
/* Calls @cb for every tracker; a non-zero return of @cb stops the dump. */
int ptrack_nl_dump_trackers(struct ptrack_nl *h,
			    int (*cb)(const struct ptrack_nl_tracker *t,
				      void *arg),
			    void *arg);
int ptrack_nl_subscribe(struct ptrack_nl *h, uint32_t tracker, uint32_t mode);
int ptrack_nl_unsubscribe(struct ptrack_nl *h, uint32_t tracker);
int ptrack_nl_flush(struct ptrack_nl *h, uint32_t tracker);
/* One batch of at most @cap pages (PTRACK_READ_MAX_PAGES at most). */
int ptrack_nl_read(struct ptrack_nl *h, uint32_t tracker, int cpu, bool flush,
		   uint64_t *pages, size_t cap, struct ptrack_nl_batch *b);
/* Receives pending events (blocking unless the socket is non-blocking). */
int ptrack_nl_recv_events(struct ptrack_nl *h,
			  int (*cb)(const struct ptrack_nl_event *e, void *arg),
			  void *arg);

#endif /* PT_NETLINK_PTRACK_NL_H */
