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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../include/uapi/linux/ptrack.h"

#define KVMIO 0xAE
#define KVM_CHECK_EXTENSION _IO(KVMIO, 0x03)
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

static int transact(int fd, uint16_t type, uint8_t cmd, uint16_t flags,
		    const char *family_name, char *reply, size_t size)
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
	if (send(fd, &r, r.n.nlmsg_len, 0) < 0)
		return -errno;
	n = recv(fd, reply, size, 0);
	if (n < 0)
		return -errno;
	return (int)n;
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

static int check_netlink(void)
{
	static char reply[16384];
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct nlmsghdr *nlh = (struct nlmsghdr *)reply;
	struct nlattr *a;
	uint16_t family;
	uint32_t version;
	int fd, n, trackers = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		printf("pta_check: netlink socket: %s\n", strerror(errno));
		return 1;
	}
	n = transact(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, PTRACK_GENL_NAME,
		     reply, sizeof(reply));
	if (n < 0 || nlh->nlmsg_type == NLMSG_ERROR ||
	    !(a = find_attr(nlh, CTRL_ATTR_FAMILY_ID))) {
		printf("pta_check: family %s not found\n", PTRACK_GENL_NAME);
		return 1;
	}
	memcpy(&family, (char *)a + NLA_HDRLEN, sizeof(family));
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
	/* A dump of the trackers ends with NLMSG_DONE. */
	n = transact(fd, family, PTRACK_CMD_GET_TRACKER, NLM_F_DUMP, NULL,
		     reply, sizeof(reply));
	for (;;) {
		if (n <= 0) {
			printf("pta_check: dump failed: %d\n", n);
			return 1;
		}
		for (nlh = (struct nlmsghdr *)reply; NLMSG_OK(nlh, n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_type == NLMSG_DONE) {
				printf("pta_check: %d trackers\n", trackers);
				close(fd);
				return 0;
			}
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return 1;
			trackers++;
		}
		n = recv(fd, reply, sizeof(reply), 0);
	}
}

static int check_unload(void)
{
	if (syscall(SYS_delete_module, "ptrack_pta", O_NONBLOCK)) {
		printf("pta_check: rmmod ptrack_pta: %s\n", strerror(errno));
		return 1;
	}
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
	fprintf(stderr, "usage: pta_check bound|kvm-cap|netlink|unload\n");
	return 2;
}
