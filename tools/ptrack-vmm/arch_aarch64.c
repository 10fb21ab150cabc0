// SPDX-License-Identifier: MIT
/*
 * arm64 part of ptrack-vmm: the guest (guest_aarch64.c) runs at EL1 with
 * its MMU off, so guest memory needs no page tables; vCPUs enter it with
 * x0 = parameter page and x1 = vCPU id; the batch doorbell is a store to
 * VMM_MMIO_BATCH, outside the memslot, which exits as KVM_EXIT_MMIO. With
 * --tracking device the VM's dirty log comes from the page tracking device
 * (KVM_CAP_ARM_PAGE_TRACKING_DEVICE, Documentation/virt/kvm/api.rst of the
 * series in driver/patches).
 */
#include "arch.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Newer than Debian 12's arm64 uapi headers. */
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif
#ifndef KVM_CAP_ARM_PAGE_TRACKING_DEVICE
#define KVM_CAP_ARM_PAGE_TRACKING_DEVICE 239
#endif

#define CORE_REG(x)                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, x) / sizeof(uint32_t)))

/* EL1h with D, A, I and F masked: the guest takes no exceptions. */
#define PSTATE_EL1H_DAIF 0x3c5ull

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

static int enable_cap(int vmfd, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };

	return xioctl(vmfd, KVM_ENABLE_CAP, &c);
}

/* MMU off: the guest addresses physical memory directly. */
void vmm_arch_init_memory(struct vmm *vm)
{
	(void)vm;
}

static int set_reg(int fd, uint64_t id, uint64_t val)
{
	struct kvm_one_reg r = { .id = id, .addr = (uintptr_t)&val };

	return xioctl(fd, KVM_SET_ONE_REG, &r);
}

int vmm_arch_init_vcpu(struct vmm_vcpu *v)
{
	struct kvm_vcpu_init init;
	int ret;

	memset(&init, 0, sizeof(init));
	ret = xioctl(v->vm->vmfd, KVM_ARM_PREFERRED_TARGET, &init);
	if (ret)
		return ret;
	/* Every vCPU starts running (no KVM_ARM_VCPU_POWER_OFF): there is no
	 * PSCI boot protocol in a guest that only stores. */
	ret = xioctl(v->fd, KVM_ARM_VCPU_INIT, &init);
	if (ret)
		return ret;
	ret = set_reg(v->fd, CORE_REG(regs.pstate), PSTATE_EL1H_DAIF);
	if (!ret)
		ret = set_reg(v->fd, CORE_REG(regs.pc), VMM_CODE_GPA);
	if (!ret)
		ret = set_reg(v->fd, CORE_REG(regs.regs[0]), VMM_PARAM_GPA);
	if (!ret)
		ret = set_reg(v->fd, CORE_REG(regs.regs[1]), v->id);
	return ret;
}

bool vmm_arch_is_batch_exit(const struct kvm_run *run)
{
	return run->exit_reason == KVM_EXIT_MMIO && run->mmio.is_write &&
	       run->mmio.phys_addr == VMM_MMIO_BATCH;
}

/*
 * arm64 dirty rings come with the slot's bitmap (Linux 6.3+): the ring
 * cannot hold writes made without a vCPU, and a page tracking device
 * leaves what did not fit in a ring for KVM_GET_DIRTY_LOG. Enabled for
 * every ring VM, before the memslot, so both trackings harvest alike.
 */
int vmm_arch_setup_dirty(struct vmm *vm)
{
	int ret;

	if (vm->o.dirty != VMM_DIRTY_RING)
		return 0;
	ret = enable_cap(vm->vmfd, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 1);
	if (ret)
		return ret;
	vm->ring_with_bitmap = true;
	return 0;
}

int vmm_arch_setup_tracking(struct vmm *vm)
{
	int ret;

	if (vm->o.tracking == VMM_TRACK_WP)
		return 0;
	ret = ioctl(vm->kvm, KVM_CHECK_EXTENSION,
		    KVM_CAP_ARM_PAGE_TRACKING_DEVICE);
	if (ret <= 0)
		return -ENODEV; /* no device registered (or no series) */
	/* -EOPNOTSUPP with a ring: the device cannot attribute writes. */
	return enable_cap(vm->vmfd, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1);
}

/* --- migration state ------------------------------------------------------ */

/*
 * Every register KVM lists for the vCPU (KVM_GET_REG_LIST: core, FP/SIMD,
 * system registers, timer, PSCI firmware registers), as QEMU saves an arm64
 * vCPU. Registers wider than 128 bits (SVE) are not enabled on these vCPUs.
 */
#define A64_STATE_MAGIC 0x53343661u /* "a64S" */
#define A64_MAX_REGS 1024

struct a64_reg {
	uint64_t id;
	uint8_t val[16];
};

struct a64_vcpu_state {
	uint32_t magic;
	uint32_t nregs;
	struct a64_reg regs[A64_MAX_REGS];
};

size_t vmm_arch_vcpu_state_size(void)
{
	return sizeof(struct a64_vcpu_state);
}

static size_t reg_size(uint64_t id)
{
	return 1ull << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

int vmm_arch_save_vcpu(struct vmm_vcpu *v, void *buf)
{
	struct a64_vcpu_state *s = buf;
	struct kvm_reg_list probe = { .n = 0 }, *list;
	uint64_t i;
	int ret;

	memset(s, 0, sizeof(*s));
	s->magic = A64_STATE_MAGIC;
	/* E2BIG with the count filled in. */
	if (ioctl(v->fd, KVM_GET_REG_LIST, &probe) == 0 || errno != E2BIG)
		return -EIO;
	if (probe.n > A64_MAX_REGS)
		return -E2BIG;
	list = calloc(1, sizeof(*list) + probe.n * sizeof(uint64_t));
	if (!list)
		return -ENOMEM;
	list->n = probe.n;
	ret = xioctl(v->fd, KVM_GET_REG_LIST, list);
	for (i = 0; !ret && i < list->n; i++) {
		struct a64_reg *r = &s->regs[s->nregs];
		struct kvm_one_reg one = { .id = list->reg[i],
					   .addr = (uintptr_t)r->val };

		if (reg_size(one.id) > sizeof(r->val)) {
			ret = -E2BIG;
			break;
		}
		r->id = one.id;
		ret = xioctl(v->fd, KVM_GET_ONE_REG, &one);
		s->nregs++;
	}
	free(list);
	return ret;
}

int vmm_arch_load_vcpu(struct vmm_vcpu *v, const void *buf)
{
	const struct a64_vcpu_state *s = buf;
	uint32_t i;
	int ret = 0;

	if (s->magic != A64_STATE_MAGIC || s->nregs > A64_MAX_REGS)
		return -EINVAL;
	for (i = 0; !ret && i < s->nregs; i++) {
		struct kvm_one_reg one = { .id = s->regs[i].id,
					   .addr = (uintptr_t)s->regs[i].val };

		if (reg_size(one.id) > sizeof(s->regs[i].val))
			return -EINVAL;
		ret = xioctl(v->fd, KVM_SET_ONE_REG, &one);
	}
	return ret;
}
