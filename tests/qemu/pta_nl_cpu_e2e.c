// SPDX-License-Identifier: GPL-2.0
/*
 * End-to-end test of per-CPU (ring-style) netlink subscriptions
 * (PTRACK_SUB_PER_CPU) against the PTA driver, inside the emulated arm64
 * host. Built static for arm64 against Debian's arm64 libnl by run-pta.sh.
 *
 * A VM with KVM_CAP_ARM_PAGE_TRACKING_DEVICE has 2 vCPUs; the thread of
 * vCPU i is pinned to host CPU i (sched_setaffinity) and writes pages of
 * its own half of a dirty-logged slot, a random range each round. After
 * each round a per-CPU subscriber reads CPU 0 and CPU 1 separately (with a
 * flush) until no pages remain. Checks:
 * - every page written is reported on some CPU: 0 false negatives;
 * - every page is reported on the CPU its writer was pinned to: 0 pages
 *   attributed to the wrong CPU;
 * - reading every CPU (-1) afterwards finds nothing left over.
 * KVM's own GET_DIRTY_LOG runs every round too (it re-arms the pages).
 *
 * Round 0 writes every page of both halves, and every one of those
 * stores takes a stage-2 fault first: it is checked too, since the kernel
 * series maps a faulting page clean with DBM, so the retried store is a
 * hardware clean-to-dirty transition the device logs, on the CPU of the
 * vCPU (patch 6, the fault-path fix). Later rounds write pages mapped with
 * DBM since the previous GET_DIRTY_LOG.
 *
 * Option: --rounds N (default 10). Needs 2 online host CPUs (after a boot
 * with maxcpus=1, CPU 1 onlined later: its mapping comes from the driver's
 * hotplug callback). Prints "PASS: ..." or "FAIL: ..."; exit status says.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
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
	puts("pta_nl_cpu_e2e: arm64 only");
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

#define NVCPUS 2
#define PAGES 1024
#define HALF (PAGES / NVCPUS)
#define DEFAULT_ROUNDS 10

/* x0 first page, x4 pages, x5 tag, x3 MMIO exit address. */
extern const uint32_t cpu_e2e_code[];
extern const uint32_t cpu_e2e_code_size;
__asm__(".pushsection .rodata\n"
	".balign 16\n"
	".globl cpu_e2e_code\n"
	"cpu_e2e_code:\n"
	"1:	mov	x7, x4\n"
	"	mov	x8, x0\n"
	"2:	str	x5, [x8]\n"
	"	add	x8, x8, #4096\n"
	"	subs	x7, x7, #1\n"
	"	b.ne	2b\n"
	"	str	x5, [x3]\n"
	"	b	1b\n"
	"cpu_e2e_code_end:\n"
	".balign 4\n"
	".globl cpu_e2e_code_size\n"
	"cpu_e2e_code_size:\n"
	"	.word	cpu_e2e_code_end - cpu_e2e_code\n"
	".popsection\n");

#define CORE_REG(x)                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, x) / sizeof(uint32_t)))

struct vcpu {
	int idx;
	int fd;
	struct kvm_run *run;
	uint64_t start, count, tag;
	int err; /* errno of the first failure */
	int ran_on; /* sched_getcpu() after KVM_RUN */
};

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

/* One round of vCPU @arg, on host CPU idx. */
static void *vcpu_round(void *arg)
{
	struct vcpu *v = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(v->idx, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		v->err = errno;
		return NULL;
	}
	v->err = set_reg(v->fd, CORE_REG(regs.regs[0]),
			 DATA_GPA + v->start * 4096);
	if (!v->err)
		v->err = set_reg(v->fd, CORE_REG(regs.regs[4]), v->count);
	if (!v->err)
		v->err = set_reg(v->fd, CORE_REG(regs.regs[5]), v->tag);
	if (v->err)
		return NULL;
	if (ioctl(v->fd, KVM_RUN, 0)) {
		v->err = errno;
		return NULL;
	}
	if (v->run->exit_reason != KVM_EXIT_MMIO)
		v->err = EPROTO;
	v->ran_on = sched_getcpu();
	return NULL;
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

/*
 * Reads CPU @cpu's pages (-1: every CPU) of tracker @id until none remain;
 * sets bit (cpu + 1) of got[page]. Returns pages read or -errno.
 */
static long read_cpu(struct ptnl *nl, uint32_t id, int cpu, uint8_t *got,
		     uint64_t *lossy)
{
	static uint64_t batch[PTRACK_READ_MAX_PAGES];
	struct ptnl_batch b;
	long n = 0;
	int r, first = 1;

	do {
		size_t i;

		r = ptnl_read(nl, id, cpu, first, batch, PTRACK_READ_MAX_PAGES,
			      &b);
		if (r)
			return r;
		if (b.cpu != cpu)
			return -EPROTO;
		first = 0;
		*lossy += b.lossy;
		for (i = 0; i < b.n; i++) {
			uint64_t p = (batch[i] - DATA_GPA) / 4096;

			if (batch[i] >= DATA_GPA && p < PAGES)
				got[p] |= 1U << (cpu + 1);
		}
		n += (long)b.n;
	} while (b.more);
	return n;
}

int main(int argc, char **argv)
{
	static unsigned long bitmap[PAGES / (8 * sizeof(unsigned long))];
	static uint8_t got[PAGES];
	struct find_ctx fc = { .pid = (uint32_t)getpid() };
	struct e2e_vm v;
	const char *what;
	struct vcpu vc[NVCPUS];
	struct ptnl *nl = NULL;
	struct kvm_vcpu_init init;
	uint64_t fneg = 0, wrong = 0, left = 0, total = 0, lossy = 0;
	uint64_t per_cpu[NVCPUS] = { 0 };
	int kvm, vm, r, round, rounds = DEFAULT_ROUNDS, i, tries;
	size_t run_size;

	if (argc == 3 && !strcmp(argv[1], "--rounds"))
		rounds = atoi(argv[2]);
	if (sysconf(_SC_NPROCESSORS_ONLN) < NVCPUS) {
		printf("FAIL: %d host CPUs online needed\n", NVCPUS);
		return 1;
	}
	srand(777);
	r = ptnl_open(&nl);
	if (r)
		return fail("ptrack family", r);

	r = e2e_vm_create(&v, cpu_e2e_code, cpu_e2e_code_size, PAGES, &what);
	if (r)
		return fail(what, r);
	kvm = v.kvm;
	vm = v.vm;
	init = v.init;
	run_size = (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	for (i = 0; i < NVCPUS; i++) {
		vc[i].idx = i;
		vc[i].fd = ioctl(vm, KVM_CREATE_VCPU, i);
		if (vc[i].fd < 0 || ioctl(vc[i].fd, KVM_ARM_VCPU_INIT, &init))
			return fail("vCPU", errno);
		vc[i].run = mmap(NULL, run_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, vc[i].fd, 0);
		if (vc[i].run == MAP_FAILED)
			return fail("mmap kvm_run", errno);
		if (set_reg(vc[i].fd, CORE_REG(regs.pc), CODE_GPA) ||
		    set_reg(vc[i].fd, CORE_REG(regs.regs[3]), MMIO_GPA))
			return fail("registers", errno);
	}

	/* The tracker exists once dirty logging is on: find it by pid. */
	for (tries = 0; tries < 50 && !fc.id; tries++) {
		r = ptnl_dump_trackers(nl, on_tracker, &fc);
		if (r)
			return fail("tracker dump", r);
		if (!fc.id)
			usleep(100000);
	}
	if (!fc.id)
		return fail("no tracker for this VM", ENOENT);
	r = ptnl_subscribe(nl, fc.id, PTRACK_SUB_PER_CPU);
	if (r)
		return fail("per-CPU subscribe", r);
	printf("tracker %u, per-CPU subscription\n", fc.id);

	for (round = 0; round <= rounds; round++) {
		struct kvm_dirty_log log = { .slot = 1,
					     .dirty_bitmap = bitmap };
		pthread_t th[NVCPUS];
		uint64_t rf = 0, rw = 0, n[NVCPUS];
		long k;
		int c;

		for (i = 0; i < NVCPUS; i++) {
			/* Round 0 writes (faults in) every page; then ranges. */
			uint64_t s = round ? (uint64_t)(rand() % HALF) : 0;

			vc[i].start = (uint64_t)i * HALF + s;
			vc[i].count = round ? 1 + (uint64_t)rand() % (HALF - s)
					    : HALF;
			vc[i].tag = (uint64_t)round << 8 | (uint64_t)i;
			vc[i].err = 0;
			vc[i].ran_on = -1;
			if (pthread_create(&th[i], NULL, vcpu_round, &vc[i]))
				return fail("pthread_create", EAGAIN);
		}
		for (i = 0; i < NVCPUS; i++)
			pthread_join(th[i], NULL);
		for (i = 0; i < NVCPUS; i++) {
			if (vc[i].err)
				return fail("vCPU round", vc[i].err);
			if (vc[i].ran_on != i) {
				printf("FAIL: vCPU %d ran on CPU %d\n", i,
				       vc[i].ran_on);
				return 1;
			}
		}
		memset(got, 0, sizeof(got));
		for (c = 0; c < NVCPUS; c++) {
			k = read_cpu(nl, fc.id, c, got, &lossy);
			if (k < 0)
				return fail("per-CPU read", (int)k);
			n[c] = (uint64_t)k;
		}
		/* Every CPU's set was emptied: nothing is left for -1. */
		k = read_cpu(nl, fc.id, -1, got, &lossy);
		if (k < 0)
			return fail("all-CPU read", (int)k);
		/* KVM's consumer: harvests and re-arms the pages. */
		if (ioctl(vm, KVM_GET_DIRTY_LOG, &log))
			return fail("KVM_GET_DIRTY_LOG", errno);
		left += (uint64_t)k;
		for (i = 0; i < NVCPUS; i++) {
			uint64_t p;

			for (p = vc[i].start; p < vc[i].start + vc[i].count;
			     p++) {
				rf += !(got[p] & 0x6);
				rw += (got[p] & 0x6) &&
				      got[p] != (1U << (i + 1));
			}
			total += vc[i].count;
			per_cpu[i] += n[i];
		}
		fneg += rf;
		wrong += rw;
		printf("round %d: written %llu+%llu, read cpu0 %llu cpu1 %llu "
		       "left %ld, false-neg %llu, wrong CPU %llu\n",
		       round, (unsigned long long)vc[0].count,
		       (unsigned long long)vc[1].count,
		       (unsigned long long)n[0], (unsigned long long)n[1], k,
		       (unsigned long long)rf, (unsigned long long)rw);
	}

	for (i = 0; i < NVCPUS; i++) {
		munmap(vc[i].run, run_size);
		close(vc[i].fd);
	}
	close(vm);
	close(kvm);
	ptnl_close(nl);
	if (lossy) {
		printf("FAIL: %llu lossy reads (the ring must not overflow)\n",
		       (unsigned long long)lossy);
		return 1;
	}
	if (fneg || wrong || left || !total) {
		printf("FAIL: %llu false negatives, %llu pages on the wrong "
		       "CPU, %llu left over\n",
		       (unsigned long long)fneg, (unsigned long long)wrong,
		       (unsigned long long)left);
		return 1;
	}
	printf("PASS: %d rounds, %llu pages written by 2 pinned vCPUs, "
	       "read per CPU: cpu0 %llu, cpu1 %llu; 0 false negatives, "
	       "0 on the wrong CPU\n",
	       rounds + 1, (unsigned long long)total,
	       (unsigned long long)per_cpu[0], (unsigned long long)per_cpu[1]);
	return 0;
}
#endif /* __aarch64__ */
