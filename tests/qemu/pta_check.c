// SPDX-License-Identifier: GPL-2.0
/*
 * Checks run inside the emulated arm64 host (tests/qemu/scenarios/pta),
 * built static for arm64 with no library but libc:
 *
 *   pta_check bound     the ptrack-pta platform driver is bound to a device
 *   pta_check kvm-cap   KVM reports KVM_CAP_ARM_PAGE_TRACKING_DEVICE
 *   pta_check netlink   the "ptrack" genl family answers GET_DEVICE with a
 *                       v1 device and a tracker dump (raw netlink)
 *   pta_check unload    the module can be removed (no live trackers)
 *   pta_check kvm-tracker
 *                       a VM with the capability enabled and a dirty-logged
 *                       memslot gets a tracker, listed by the dump with our
 *                       pid; a subscriber can read it; rmmod is refused
 *                       while it lives; closing the VM releases it
 *   pta_check kvm-unbind
 *                       unbinding the device under a VM with a tracker is
 *                       safe: KVM then reports every page of the logged
 *                       slot dirty (or fails GET_DIRTY_LOG), the module is
 *                       no longer pinned, and the device binds again
 *
 * Exit status 0 means the check passed; every failure prints why.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../include/uapi/linux/ptrack.h"

#ifndef KVM_CAP_ARM_PAGE_TRACKING_DEVICE
#define KVM_CAP_ARM_PAGE_TRACKING_DEVICE 239
#endif

static int check_bound(void)
{
	const char *dir = "/sys/bus/platform/drivers/ptrack-pta";
	struct dirent *de;
	int found = 0;
	DIR *d = opendir(dir);

	if (!d) {
		printf("pta_check: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((de = readdir(d)))
		if (strstr(de->d_name, "pta")) {
			printf("pta_check: bound to %s\n", de->d_name);
			found = 1;
		}
	closedir(d);
	if (!found)
		printf("pta_check: driver registered but no device bound\n");
	return !found;
}

static int check_kvm_cap(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int r;

	if (fd < 0) {
		printf("pta_check: /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PAGE_TRACKING_DEVICE);
	close(fd);
	printf("pta_check: KVM_CAP_ARM_PAGE_TRACKING_DEVICE = %d\n", r);
	return r > 0 ? 0 : 1;
}

struct req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char buf[256];
};

static void put_attr(struct req *r, uint16_t type, const void *data,
		     uint16_t len)
{
	struct nlattr *a =
		(struct nlattr *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	r->n.nlmsg_len = NLMSG_ALIGN(r->n.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static int transact_id(int fd, uint16_t type, uint8_t cmd, uint16_t flags,
		       const char *family_name, uint32_t tracker, char *reply,
		       size_t size)
{
	struct req r;
	ssize_t n;

	memset(&r, 0, sizeof(r));
	r.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r.n.nlmsg_type = type;
	r.n.nlmsg_flags = NLM_F_REQUEST | flags;
	r.n.nlmsg_seq = 1;
	r.g.cmd = cmd;
	r.g.version = type == GENL_ID_CTRL ? 1 : PTRACK_GENL_VERSION;
	if (family_name)
		put_attr(&r, CTRL_ATTR_FAMILY_NAME, family_name,
			 strlen(family_name) + 1);
	if (tracker)
		put_attr(&r, PTRACK_A_TRACKER_ID, &tracker, sizeof(tracker));
	if (send(fd, &r, r.n.nlmsg_len, 0) < 0)
		return -errno;
	n = recv(fd, reply, size, 0);
	if (n < 0)
		return -errno;
	return (int)n;
}

static int transact(int fd, uint16_t type, uint8_t cmd, uint16_t flags,
		    const char *family_name, char *reply, size_t size)
{
	return transact_id(fd, type, cmd, flags, family_name, 0, reply, size);
}

/* Finds attribute @type in the genl message @nlh. */
static struct nlattr *find_attr(struct nlmsghdr *nlh, uint16_t type)
{
	int len = nlh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	struct nlattr *a =
		(struct nlattr *)((char *)NLMSG_DATA(nlh) + GENL_HDRLEN);

	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
	       a->nla_len <= len) {
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		len -= NLA_ALIGN(a->nla_len);
		a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
	}
	return NULL;
}

static char reply[16384];

/* Opens a genl socket and resolves the ptrack family; -1 on failure. */
static int open_family(uint16_t *family)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct nlmsghdr *nlh = (struct nlmsghdr *)reply;
	struct nlattr *a;
	int fd, n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		printf("pta_check: netlink socket: %s\n", strerror(errno));
		return -1;
	}
	n = transact(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, PTRACK_GENL_NAME,
		     reply, sizeof(reply));
	if (n < 0 || nlh->nlmsg_type == NLMSG_ERROR ||
	    !(a = find_attr(nlh, CTRL_ATTR_FAMILY_ID))) {
		printf("pta_check: family %s not found\n", PTRACK_GENL_NAME);
		close(fd);
		return -1;
	}
	memcpy(family, (char *)a + NLA_HDRLEN, sizeof(*family));
	return fd;
}

static uint32_t attr_u32(struct nlmsghdr *nlh, uint16_t type)
{
	struct nlattr *a = find_attr(nlh, type);
	uint32_t v = 0;

	if (a)
		memcpy(&v, (char *)a + NLA_HDRLEN, sizeof(v));
	return v;
}

/*
 * Dumps the trackers; returns how many, or -1. *@mine gets the id of one
 * owned by process @pid (0 if none).
 */
static int dump_trackers(int fd, uint16_t family, uint32_t pid, uint32_t *mine)
{
	struct nlmsghdr *nlh;
	int n, trackers = 0;

	*mine = 0;
	n = transact(fd, family, PTRACK_CMD_GET_TRACKER, NLM_F_DUMP, NULL,
		     reply, sizeof(reply));
	for (;;) {
		if (n <= 0) {
			printf("pta_check: dump failed: %d\n", n);
			return -1;
		}
		for (nlh = (struct nlmsghdr *)reply; NLMSG_OK(nlh, n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_type == NLMSG_DONE)
				return trackers;
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return -1;
			trackers++;
			printf("pta_check: tracker id %u vmid %u pid %u pages %u\n",
			       attr_u32(nlh, PTRACK_A_TRACKER_ID),
			       attr_u32(nlh, PTRACK_A_TRACKER_VMID),
			       attr_u32(nlh, PTRACK_A_TRACKER_PID),
			       attr_u32(nlh, PTRACK_A_TRACKER_PAGES));
			if (attr_u32(nlh, PTRACK_A_TRACKER_PID) == pid)
				*mine = attr_u32(nlh, PTRACK_A_TRACKER_ID);
		}
		n = recv(fd, reply, sizeof(reply), 0);
	}
}

static int check_netlink(void)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)reply;
	struct nlattr *a;
	uint16_t family;
	uint32_t version, mine;
	int fd, n;

	fd = open_family(&family);
	if (fd < 0)
		return 1;
	n = transact(fd, family, PTRACK_CMD_GET_DEVICE, 0, NULL, reply,
		     sizeof(reply));
	if (n < 0 || nlh->nlmsg_type != family ||
	    !(a = find_attr(nlh, PTRACK_A_DEV_VERSION))) {
		printf("pta_check: GET_DEVICE failed\n");
		return 1;
	}
	memcpy(&version, (char *)a + NLA_HDRLEN, sizeof(version));
	a = find_attr(nlh, PTRACK_A_DEV_NAME);
	printf("pta_check: device %s version %#x\n",
	       a ? (char *)a + NLA_HDRLEN : "?", version);
	if (version >> 16 != 1)
		return 1;
	n = dump_trackers(fd, family, 0, &mine);
	close(fd);
	printf("pta_check: %d trackers\n", n);
	return n < 0;
}

/* The kernel's answer (ACK or error) to a request without a reply. */
static int nl_status(int n)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)reply;

	if (n < 0)
		return n;
	if (nlh->nlmsg_type != NLMSG_ERROR)
		return 0;
	return ((struct nlmsgerr *)NLMSG_DATA(nlh))->error;
}

static int check_kvm_tracker(void)
{
	const size_t size = 2 << 20;
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_ARM_PAGE_TRACKING_DEVICE,
		.args = { 1 },
	};
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0x40000000,
		.memory_size = size,
	};
	int kvm, vm, fd, n, r, trackers;
	uint32_t mine, pid = (uint32_t)getpid();
	uint16_t family;
	void *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		printf("pta_check: KVM_CREATE_VM: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(vm, KVM_ENABLE_CAP, &cap)) {
		printf("pta_check: KVM_ENABLE_CAP: %s\n", strerror(errno));
		return 1;
	}
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	slot.userspace_addr = (uintptr_t)mem;
	if (mem == MAP_FAILED || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot)) {
		printf("pta_check: memslot: %s\n", strerror(errno));
		return 1;
	}
	fd = open_family(&family);
	if (fd < 0)
		return 1;
	trackers = dump_trackers(fd, family, pid, &mine);
	if (trackers < 1 || !mine) {
		printf("pta_check: no tracker for pid %u\n", pid);
		return 1;
	}
	r = nl_status(transact_id(fd, family, PTRACK_CMD_SUBSCRIBE, NLM_F_ACK,
				  NULL, mine, reply, sizeof(reply)));
	if (r) {
		printf("pta_check: SUBSCRIBE: %s\n", strerror(-r));
		return 1;
	}
	n = transact_id(fd, family, PTRACK_CMD_READ, 0, NULL, mine, reply,
			sizeof(reply));
	if (n < 0 || nl_status(n) ||
	    !find_attr((struct nlmsghdr *)reply, PTRACK_A_PAGES)) {
		printf("pta_check: READ failed: %d\n", nl_status(n));
		return 1;
	}
	if (!syscall(SYS_delete_module, "ptrack_pta", O_NONBLOCK)) {
		printf("pta_check: rmmod succeeded with a live tracker\n");
		return 1;
	}
	printf("pta_check: rmmod refused: %s\n", strerror(errno));
	close(vm);
	close(kvm);
	munmap(mem, size);
	n = dump_trackers(fd, family, pid, &mine);
	close(fd);
	if (n != trackers - 1 || mine) {
		printf("pta_check: tracker not released (%d left)\n", n);
		return 1;
	}
	return 0;
}

static int check_unload(void)
{
	if (syscall(SYS_delete_module, "ptrack_pta", O_NONBLOCK)) {
		printf("pta_check: rmmod ptrack_pta: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

static int check_kvm_unbind(void)
{
	const size_t pages = 64, size = pages * 4096;
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_ARM_PAGE_TRACKING_DEVICE,
		.args = { 1 },
	};
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0x40000000,
		.memory_size = size,
	};
	uint64_t bitmap = 0;
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = &bitmap };
	int kvm, vm, r;
	void *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	slot.userspace_addr = (uintptr_t)mem;
	if (vm < 0 || mem == MAP_FAILED || ioctl(vm, KVM_ENABLE_CAP, &cap) ||
	    ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot)) {
		printf("pta_check: VM setup: %s\n", strerror(errno));
		return 1;
	}
	r = write_file("/sys/bus/platform/drivers/ptrack-pta/unbind",
		       "90c0000.pta");
	if (r) {
		printf("pta_check: unbind: %s\n", strerror(-r));
		return 1;
	}
	r = ioctl(vm, KVM_GET_DIRTY_LOG, &log);
	printf("pta_check: GET_DIRTY_LOG after unbind: %d (%s), bitmap %#llx\n",
	       r, r ? strerror(errno) : "ok", (unsigned long long)bitmap);
	if (!r && bitmap != ~0ULL) {
		printf("pta_check: pages lost after the device went away\n");
		return 1;
	}
	/* The tracker was detached: the module is not pinned any more. */
	if (syscall(SYS_delete_module, "ptrack_pta", O_NONBLOCK)) {
		printf("pta_check: rmmod after unbind: %s\n", strerror(errno));
		return 1;
	}
	close(vm);
	close(kvm);
	munmap(mem, size);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "bound"))
		return check_bound();
	if (argc == 2 && !strcmp(argv[1], "kvm-cap"))
		return check_kvm_cap();
	if (argc == 2 && !strcmp(argv[1], "netlink"))
		return check_netlink();
	if (argc == 2 && !strcmp(argv[1], "unload"))
		return check_unload();
	if (argc == 2 && !strcmp(argv[1], "kvm-tracker"))
		return check_kvm_tracker();
	if (argc == 2 && !strcmp(argv[1], "kvm-unbind"))
		return check_kvm_unbind();
	fprintf(stderr,
		"usage: pta_check bound|kvm-cap|netlink|unload|kvm-tracker|"
		"kvm-unbind\n");
	return 2;
}
