// SPDX-License-Identifier: MIT
/*
 * Message building and parsing of the ptrack generic netlink client
 * (daemon/ptnl/ptnl.c), without a kernel: requests are built and
 * parsed back through ptnl_policy, and replies and events are built
 * the way driver/pta/pta_netlink.c builds them and parsed by the client.
 */
#include "ptnl/ptnl.h"

#include <errno.h>
#include <string.h>

#include <netlink/genl/genl.h>

#include "pt_test.h"

#define FAMILY 0x1234

static struct nl_msg *msg_new(void)
{
	struct nl_msg *m = nlmsg_alloc();

	CU_ASSERT_FATAL(m != NULL);
	return m;
}

/* A message as the kernel starts it (no version check in the parsers). */
static struct nl_msg *reply_new(uint8_t cmd)
{
	struct nl_msg *m = msg_new();

	CU_ASSERT_FATAL(genlmsg_put(m, 1, 1, FAMILY, 0, 0, cmd,
				    PTRACK_GENL_VERSION) != NULL);
	return m;
}

static int parse_back(struct nl_msg *m, struct nlattr **tb, uint8_t *cmd)
{
	struct nlmsghdr *nlh = nlmsg_hdr(m);

	*cmd = genlmsg_hdr(nlh)->cmd;
	CU_ASSERT(nlh->nlmsg_type == FAMILY);
	CU_ASSERT(genlmsg_hdr(nlh)->version == PTRACK_GENL_VERSION);
	return genlmsg_parse(nlh, 0, tb, PTRACK_A_MAX, ptnl_policy);
}

static void test_build_read(void)
{
	struct nlattr *tb[PTRACK_A_MAX + 1];
	struct nl_msg *m = msg_new();
	uint8_t cmd;

	CU_ASSERT(ptnl_put_read(m, FAMILY, 7, 3, 512, true) == 0);
	CU_ASSERT_FATAL(parse_back(m, tb, &cmd) == 0);
	CU_ASSERT(cmd == PTRACK_CMD_READ);
	CU_ASSERT(tb[PTRACK_A_TRACKER_ID] &&
		  nla_get_u32(tb[PTRACK_A_TRACKER_ID]) == 7);
	CU_ASSERT(tb[PTRACK_A_CPU] && nla_get_u32(tb[PTRACK_A_CPU]) == 3);
	CU_ASSERT(tb[PTRACK_A_MAX_PAGES] &&
		  nla_get_u32(tb[PTRACK_A_MAX_PAGES]) == 512);
	CU_ASSERT(tb[PTRACK_A_FLUSH] != NULL);
	nlmsg_free(m);

	/* All CPUs, default size, no flush: only the tracker id. */
	m = msg_new();
	CU_ASSERT(ptnl_put_read(m, FAMILY, 9, -1, 0, false) == 0);
	CU_ASSERT_FATAL(parse_back(m, tb, &cmd) == 0);
	CU_ASSERT(!tb[PTRACK_A_CPU] && !tb[PTRACK_A_MAX_PAGES] &&
		  !tb[PTRACK_A_FLUSH]);
	CU_ASSERT(nla_get_u32(tb[PTRACK_A_TRACKER_ID]) == 9);
	nlmsg_free(m);

	m = msg_new();
	CU_ASSERT(ptnl_put_read(m, FAMILY, 9, -2, 0, false) == -EINVAL);
	CU_ASSERT(ptnl_put_read(m, FAMILY, 9, 0, PTRACK_READ_MAX_PAGES + 1,
				false) == -EINVAL);
	CU_ASSERT(ptnl_put_read(m, FAMILY, 0, 0, 1, false) == -EINVAL);
	nlmsg_free(m);
}

static void test_build_subscribe_and_simple(void)
{
	struct nlattr *tb[PTRACK_A_MAX + 1];
	struct nl_msg *m = msg_new();
	uint8_t cmd;

	CU_ASSERT(ptnl_put_subscribe(m, FAMILY, 5, PTRACK_SUB_PER_CPU) == 0);
	CU_ASSERT_FATAL(parse_back(m, tb, &cmd) == 0);
	CU_ASSERT(cmd == PTRACK_CMD_SUBSCRIBE);
	CU_ASSERT(nla_get_u32(tb[PTRACK_A_TRACKER_ID]) == 5);
	CU_ASSERT(tb[PTRACK_A_SUB_MODE] &&
		  nla_get_u32(tb[PTRACK_A_SUB_MODE]) == PTRACK_SUB_PER_CPU);
	nlmsg_free(m);

	m = msg_new();
	CU_ASSERT(ptnl_put_subscribe(m, FAMILY, 5, 2) == -EINVAL);
	nlmsg_free(m);

	m = msg_new();
	CU_ASSERT(ptnl_put_tracker_cmd(m, FAMILY, PTRACK_CMD_FLUSH, 11) == 0);
	CU_ASSERT_FATAL(parse_back(m, tb, &cmd) == 0);
	CU_ASSERT(cmd == PTRACK_CMD_FLUSH);
	CU_ASSERT(nla_get_u32(tb[PTRACK_A_TRACKER_ID]) == 11);
	nlmsg_free(m);

	m = msg_new();
	CU_ASSERT(ptnl_put_cmd(m, FAMILY, PTRACK_CMD_GET_TRACKER, NLM_F_DUMP) ==
		  0);
	CU_ASSERT(nlmsg_hdr(m)->nlmsg_flags & NLM_F_DUMP);
	CU_ASSERT_FATAL(parse_back(m, tb, &cmd) == 0);
	CU_ASSERT(cmd == PTRACK_CMD_GET_TRACKER && !tb[PTRACK_A_TRACKER_ID]);
	nlmsg_free(m);
}

static void test_parse_device(void)
{
	struct nl_msg *m = reply_new(PTRACK_CMD_GET_DEVICE);
	struct ptnl_device d;

	nla_put_string(m, PTRACK_A_DEV_NAME, "90c0000.pta");
	nla_put_u32(m, PTRACK_A_DEV_VERSION, 0x10000);
	nla_put_u32(m, PTRACK_A_DEV_CAPS, PTRACK_DEV_CAP_PER_CPU);
	nla_put_u32(m, PTRACK_A_DEV_CONTEXTS, 8);
	nla_put_u32(m, PTRACK_A_DEV_CONTEXTS_USED, 2);
	nla_put_u32(m, PTRACK_A_DEV_CPUS, 2);
	nla_put_u32(m, PTRACK_A_DEV_RING_ENTRIES, 65536);
	nla_put_u64(m, PTRACK_A_DEV_ENTRIES, 1ULL << 40);
	nla_put_u64(m, PTRACK_A_DEV_LOST, 17);
	CU_ASSERT_FATAL(ptnl_parse_device(nlmsg_hdr(m), &d) == 0);
	CU_ASSERT_STRING_EQUAL(d.name, "90c0000.pta");
	CU_ASSERT(d.version == 0x10000 && d.caps == PTRACK_DEV_CAP_PER_CPU);
	CU_ASSERT(d.contexts == 8 && d.contexts_used == 2 && d.cpus == 2);
	CU_ASSERT(d.ring_entries == 65536);
	CU_ASSERT(d.entries == 1ULL << 40 && d.lost == 17 && d.irqs == 0);
	nlmsg_free(m);

	/* Another command's reply is not a device. */
	m = reply_new(PTRACK_CMD_READ);
	nla_put_u32(m, PTRACK_A_DEV_VERSION, 0x10000);
	CU_ASSERT(ptnl_parse_device(nlmsg_hdr(m), &d) == -EPROTO);
	nlmsg_free(m);
}

static void put_tracker(struct nl_msg *m, uint32_t id)
{
	uint64_t cpus[2] = { 0x5, 0x1 };

	nla_put_u32(m, PTRACK_A_TRACKER_ID, id);
	nla_put_u32(m, PTRACK_A_TRACKER_VMID, 0x101);
	nla_put_u32(m, PTRACK_A_TRACKER_PID, 4242);
	nla_put_u32(m, PTRACK_A_TRACKER_MODE, PTRACK_MODE_RING);
	nla_put_u32(m, PTRACK_A_TRACKER_PAGE_SHIFT, 12);
	nla_put(m, PTRACK_A_TRACKER_CPUS, sizeof(cpus), cpus);
	nla_put_u64(m, PTRACK_A_TRACKER_PAGES, 123456);
	nla_put_u64(m, PTRACK_A_TRACKER_OVERFLOWS, 3);
	nla_put_flag(m, PTRACK_A_TRACKER_LOSSY);
	nla_put_u32(m, PTRACK_A_TRACKER_SUBSCRIBERS, 1);
}

static void test_parse_tracker(void)
{
	struct nl_msg *m = reply_new(PTRACK_CMD_GET_TRACKER);
	struct ptnl_tracker t;

	put_tracker(m, 7);
	CU_ASSERT_FATAL(ptnl_parse_tracker(nlmsg_hdr(m), &t) == 0);
	CU_ASSERT(t.id == 7 && t.vmid == 0x101 && t.pid == 4242);
	CU_ASSERT(t.mode == PTRACK_MODE_RING && t.page_shift == 12);
	CU_ASSERT(t.ncpu_words == 2 && t.cpus[0] == 0x5 && t.cpus[1] == 1);
	CU_ASSERT(!t.all_cpus && t.lossy);
	CU_ASSERT(t.pages == 123456 && t.overflows == 3);
	CU_ASSERT(t.subscribers == 1);
	nlmsg_free(m);

	/* No id: rejected. */
	m = reply_new(PTRACK_CMD_GET_TRACKER);
	nla_put_u32(m, PTRACK_A_TRACKER_VMID, 1);
	CU_ASSERT(ptnl_parse_tracker(nlmsg_hdr(m), &t) == -EPROTO);
	nlmsg_free(m);

	/* A u32 attribute of the wrong size fails the policy. */
	m = reply_new(PTRACK_CMD_GET_TRACKER);
	nla_put_u16(m, PTRACK_A_TRACKER_ID, 1);
	CU_ASSERT(ptnl_parse_tracker(nlmsg_hdr(m), &t) == -EPROTO);
	nlmsg_free(m);

	/* A CPU bitmap that is not whole words. */
	m = reply_new(PTRACK_CMD_GET_TRACKER);
	nla_put_u32(m, PTRACK_A_TRACKER_ID, 1);
	nla_put(m, PTRACK_A_TRACKER_CPUS, 12, "abcdefghijkl");
	CU_ASSERT(ptnl_parse_tracker(nlmsg_hdr(m), &t) == -EPROTO);
	nlmsg_free(m);
}

static void test_parse_batch(void)
{
	uint64_t pages[3] = { 0x1000, 0x40000000, 0xfffffffff000ULL };
	uint64_t out[4] = { 0 };
	struct ptnl_batch b = { .pages = out };
	struct nl_msg *m = reply_new(PTRACK_CMD_READ);

	nla_put_u32(m, PTRACK_A_TRACKER_ID, 7);
	nla_put(m, PTRACK_A_PAGES, sizeof(pages), pages);
	nla_put_u32(m, PTRACK_A_CPU, 1);
	nla_put_flag(m, PTRACK_A_MORE);
	CU_ASSERT_FATAL(ptnl_parse_batch(nlmsg_hdr(m), &b, 4) == 0);
	CU_ASSERT(b.tracker_id == 7 && b.cpu == 1 && b.n == 3);
	CU_ASSERT(!b.lossy && b.more);
	CU_ASSERT(memcmp(out, pages, sizeof(pages)) == 0);
	/* The caller's buffer is too small. */
	CU_ASSERT(ptnl_parse_batch(nlmsg_hdr(m), &b, 2) == -ENOSPC);
	nlmsg_free(m);

	/* Empty and lossy, all CPUs. */
	m = reply_new(PTRACK_CMD_READ);
	nla_put_u32(m, PTRACK_A_TRACKER_ID, 7);
	nla_put(m, PTRACK_A_PAGES, 0, NULL);
	nla_put_flag(m, PTRACK_A_LOSSY);
	CU_ASSERT_FATAL(ptnl_parse_batch(nlmsg_hdr(m), &b, 4) == 0);
	CU_ASSERT(b.n == 0 && b.cpu == -1 && b.lossy && !b.more);
	nlmsg_free(m);

	/* A torn page array, and a reply without pages. */
	m = reply_new(PTRACK_CMD_READ);
	nla_put_u32(m, PTRACK_A_TRACKER_ID, 7);
	nla_put(m, PTRACK_A_PAGES, 12, pages);
	CU_ASSERT(ptnl_parse_batch(nlmsg_hdr(m), &b, 4) == -EPROTO);
	nlmsg_free(m);
	m = reply_new(PTRACK_CMD_READ);
	nla_put_u32(m, PTRACK_A_TRACKER_ID, 7);
	CU_ASSERT(ptnl_parse_batch(nlmsg_hdr(m), &b, 4) == -EPROTO);
	nlmsg_free(m);
}

static void test_parse_events(void)
{
	static const uint8_t cmds[] = {
		PTRACK_CMD_EVENT_TRACKER_NEW,
		PTRACK_CMD_EVENT_TRACKER_DEL,
		PTRACK_CMD_EVENT_OVERFLOW,
	};
	struct ptnl_event e;
	struct nl_msg *m;
	size_t i;

	for (i = 0; i < sizeof(cmds); i++) {
		m = reply_new(cmds[i]);
		put_tracker(m, 30 + i);
		CU_ASSERT(ptnl_parse_event(nlmsg_hdr(m), &e) == 0);
		CU_ASSERT(e.cmd == cmds[i] && e.tracker.id == 30 + i);
		CU_ASSERT(e.tracker.overflows == 3);
		nlmsg_free(m);
	}
	m = reply_new(PTRACK_CMD_EVENT_VMID_CHANGED);
	put_tracker(m, 40);
	nla_put_u32(m, PTRACK_A_OLD_VMID, 0x22);
	CU_ASSERT(ptnl_parse_event(nlmsg_hdr(m), &e) == 0);
	CU_ASSERT(e.old_vmid == 0x22 && e.tracker.vmid == 0x101);
	nlmsg_free(m);

	/* VMID changed without the old VMID; a request is not an event. */
	m = reply_new(PTRACK_CMD_EVENT_VMID_CHANGED);
	put_tracker(m, 40);
	CU_ASSERT(ptnl_parse_event(nlmsg_hdr(m), &e) == -EPROTO);
	nlmsg_free(m);
	m = reply_new(PTRACK_CMD_READ);
	put_tracker(m, 40);
	CU_ASSERT(ptnl_parse_event(nlmsg_hdr(m), &e) == -EPROTO);
	nlmsg_free(m);
}

static void test_truncated_header(void)
{
	struct nl_msg *m = msg_new();
	struct ptnl_tracker t;

	/* A netlink header with no generic netlink header behind it. */
	CU_ASSERT_FATAL(nlmsg_put(m, 1, 1, FAMILY, 0, 0) != NULL);
	CU_ASSERT(ptnl_parse_tracker(nlmsg_hdr(m), &t) == -EPROTO);
	nlmsg_free(m);
}

/* Without the driver (as on the build host) the family does not resolve. */
static void test_open_without_driver(void)
{
	struct ptnl *h = NULL;
	int ret = ptnl_open(&h);

	if (ret == 0) {
		struct ptnl_device d;

		/* A driver is loaded: the device must answer. */
		CU_ASSERT(ptnl_get_device(h, &d) == 0);
		CU_ASSERT(d.version >> 16 == 1);
		ptnl_close(h);
		return;
	}
	CU_ASSERT(ret == -ENOENT || ret == -EIO);
	CU_ASSERT(h == NULL);
}

PT_SUITE(ptnl, PT_TEST(test_build_read),
	 PT_TEST(test_build_subscribe_and_simple), PT_TEST(test_parse_device),
	 PT_TEST(test_parse_tracker), PT_TEST(test_parse_batch),
	 PT_TEST(test_parse_events), PT_TEST(test_truncated_header),
	 PT_TEST(test_open_without_driver))
