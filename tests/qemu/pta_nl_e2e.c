// SPDX-License-Identifier: GPL-2.0
/*
 * End-to-end test of the ptrack netlink client (daemon/ptnl/ptnl.c,
 * libnl-genl) against the PTA driver, inside the emulated arm64 host.
 * Built static for arm64 against Debian's arm64 libnl by run-pta.sh.
 *
 * It joins the events group, creates a VM with
 * KVM_CAP_ARM_PAGE_TRACKING_DEVICE and a dirty-logged data slot, finds its
 * tracker (TRACKER_NEW event, then the dump, by pid), subscribes, and runs
 * rounds in which the guest writes a random range of pages. After each
 * round it reads dirty batches (with a flush) until none remain and checks
 * that every page the guest wrote is in them: 0 false negatives, round 0
 * included, whose stores all take a stage-2 fault first (KVM maps a faulting
 * page clean, so that the retried store reaches the device). KVM's own
 * GET_DIRTY_LOG runs every round too (it re-arms the pages): the two
 * consumers must not steal each other's pages. Closing the VM must bring a
 * TRACKER_DEL event. Prints "PASS: ..." or "FAIL: ..."; exit status says.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ptnl/ptnl.h"

/* An arm64 KVM guest: on other hosts (make lint) only a stub builds. */
#ifndef __aarch64__
int main(void)
{
	puts("pta_nl_e2e: arm64 only");
	return 77;
}
#else

#ifndef KVM_CAP_ARM_PAGE_TRACKING_DEVICE
#define KVM_CAP_ARM_PAGE_TRACKING_DEVICE 239
#endif

#define CODE_GPA 0x10000000ULL
#define CODE_SIZE 0x10000ULL
#define DATA_GPA 0x20000000ULL
#define MMIO_GPA 0x3f000000ULL

#include "e2e_vm.h"

#define PAGES 512
#define ROUNDS 10

/* x0 first page, x4 pages, x5 tag, x3 MMIO exit address. */
extern const uint32_t e2e_code[];
extern const uint32_t e2e_code_size;
__asm__(".pushsection .rodata\n"
	".balign 16\n"
	".globl e2e_code\n"
	"e2e_code:\n"
	"1:	mov	x7, x4\n"
	"	mov	x8, x0\n"
	"2:	str	x5, [x8]\n"
	"	add	x8, x8, #4096\n"
	"	subs	x7, x7, #1\n"
	"	b.ne	2b\n"
	"	str	x5, [x3]\n"
	"	b	1b\n"
	"e2e_code_end:\n"
	".balign 4\n"
	".globl e2e_code_size\n"
	"e2e_code_size:\n"
	"	.word	e2e_code_end - e2e_code\n"
	".popsection\n");

#define CORE_REG(x)                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, x) / sizeof(uint32_t)))

static int fail(const char *what, int err)
{
	printf("FAIL: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

static int set_reg(int fd, uint64_t id, uint64_t val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&val };

	return ioctl(fd, KVM_SET_ONE_REG, &reg) ? errno : 0;
}

struct ev_ctx {
	uint8_t want;
	uint32_t pid;
	uint32_t id; /* in: 0 or the id wanted; out: the id seen */
	int seen;
};

static int on_event(const struct ptnl_event *e, void *arg)
{
	struct ev_ctx *c = arg;

	printf("event %u tracker %u pid %u\n", e->cmd, e->tracker.id,
	       e->tracker.pid);
	if (e->cmd == c->want && e->tracker.pid == c->pid &&
	    (!c->id || c->id == e->tracker.id)) {
		c->id = e->tracker.id;
		c->seen = 1;
	}
	return 0;
}

/* Waits up to 5 s for event @want of process @pid. */
static int wait_event(struct ptnl *ev, struct ev_ctx *c, uint8_t want)
{
	struct pollfd p = { .fd = ptnl_fd(ev), .events = POLLIN };
	int i;

	c->want = want;
	c->seen = 0;
	for (i = 0; i < 50 && !c->seen; i++) {
		if (poll(&p, 1, 100) > 0) {
			int r = ptnl_recv_events(ev, on_event, c);

			if (r < 0)
				return r;
		}
	}
	return c->seen ? 0 : -ETIMEDOUT;
}

struct find_ctx {
	uint32_t pid;
	uint32_t id;
};

static int on_tracker(const struct ptnl_tracker *t, void *arg)
{
	struct find_ctx *f = arg;

	if (t->pid == f->pid)
		f->id = t->id;
	return 0;
}

int main(void)
{
	static uint64_t batch[PTRACK_READ_MAX_PAGES];
	static unsigned long bitmap[PAGES / (8 * sizeof(unsigned long))];
	static uint8_t got[PAGES];
	struct ev_ctx evc = { .pid = (uint32_t)getpid() };
	struct find_ctx fc = { .pid = (uint32_t)getpid() };
	struct e2e_vm v;
	const char *what;
	struct ptnl *nl = NULL, *ev = NULL;
	struct kvm_vcpu_init init;
	struct kvm_run *run;
	uint64_t fneg = 0, fpos = 0, total = 0, lossy = 0;
	int kvm, vm, vcpu, r, round;

	srand(4242);
	r = ptnl_open_events(&ev);
	if (r)
		return fail("events socket", r);
	r = ptnl_open(&nl);
	if (r)
		return fail("ptrack family", r);

	r = e2e_vm_create(&v, e2e_code, e2e_code_size, PAGES, &what);
	if (r)
		return fail(what, r);
	kvm = v.kvm;
	vm = v.vm;
	init = v.init;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0 || ioctl(vcpu, KVM_ARM_VCPU_INIT, &init))
		return fail("vCPU", errno);
	run = mmap(NULL, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0),
		   PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run", errno);
	if (set_reg(vcpu, CORE_REG(regs.pc), CODE_GPA) ||
	    set_reg(vcpu, CORE_REG(regs.regs[3]), MMIO_GPA))
		return fail("registers", errno);

	/* The tracker: its creation event, then the dump agrees. */
	r = wait_event(ev, &evc, PTRACK_CMD_EVENT_TRACKER_NEW);
	if (r)
		return fail("TRACKER_NEW event", r);
	r = ptnl_dump_trackers(nl, on_tracker, &fc);
	if (r || fc.id != evc.id)
		return fail("tracker dump", r ? r : ENOENT);
	r = ptnl_subscribe(nl, fc.id, PTRACK_SUB_DRAIN);
	if (r)
		return fail("subscribe", r);
	printf("tracker %u, subscribed\n", fc.id);

	for (round = 0; round <= ROUNDS; round++) {
		/* Round 0 faults every page in; then random ranges. */
		uint64_t start = round ? (uint64_t)(rand() % PAGES) : 0;
		uint64_t count =
			round ? 1 + (uint64_t)rand() % (PAGES - start) : PAGES;
		struct kvm_dirty_log log = { .slot = 1,
					     .dirty_bitmap = bitmap };
		struct ptnl_batch b;
		uint64_t i, n = 0, rf = 0;

		if (set_reg(vcpu, CORE_REG(regs.regs[0]),
			    DATA_GPA + start * 4096) ||
		    set_reg(vcpu, CORE_REG(regs.regs[4]), count) ||
		    set_reg(vcpu, CORE_REG(regs.regs[5]), (uint64_t)round))
			return fail("registers", errno);
		if (ioctl(vcpu, KVM_RUN, 0) ||
		    run->exit_reason != KVM_EXIT_MMIO)
			return fail("KVM_RUN", errno ? errno : EPROTO);
		memset(got, 0, sizeof(got));
		do {
			r = ptnl_read(nl, fc.id, -1, true, batch,
				      PTRACK_READ_MAX_PAGES, &b);
			if (r)
				return fail("read", r);
			lossy += b.lossy;
			for (i = 0; i < b.n; i++) {
				uint64_t p = (batch[i] - DATA_GPA) / 4096;

				if (batch[i] >= DATA_GPA && p < PAGES)
					got[p] = 1;
			}
			n += b.n;
		} while (b.more);
		/* KVM's consumer: harvests and re-arms the pages. */
		if (ioctl(vm, KVM_GET_DIRTY_LOG, &log))
			return fail("KVM_GET_DIRTY_LOG", errno);
		for (i = 0; i < PAGES; i++) {
			int w = i >= start && i < start + count;

			rf += w && !got[i] && !b.lossy;
			fpos += !w && got[i];
		}
		fneg += rf;
		total += count;
		printf("round %d: written %llu batch pages %llu false-neg %llu\n",
		       round, (unsigned long long)count, (unsigned long long)n,
		       (unsigned long long)rf);
	}

	/* The kvm_run mapping holds the vCPU, and so the VM, alive. */
	munmap(run, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
	close(vcpu);
	close(vm);
	evc.id = fc.id;
	r = wait_event(ev, &evc, PTRACK_CMD_EVENT_TRACKER_DEL);
	if (r)
		return fail("TRACKER_DEL event", r);
	ptnl_close(nl);
	ptnl_close(ev);
	close(kvm);
	if (fneg || !total) {
		printf("FAIL: %llu false negatives\n",
		       (unsigned long long)fneg);
		return 1;
	}
	printf("PASS: %d rounds, %llu pages written, 0 false negatives, "
	       "%llu false positives, %llu lossy reads\n",
	       ROUNDS + 1, (unsigned long long)total, (unsigned long long)fpos,
	       (unsigned long long)lossy);
	return 0;
}
#endif /* __aarch64__ */
