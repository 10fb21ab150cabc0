/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VM of the netlink end-to-end tests: a code slot and a dirty-logged
 * data slot, with KVM_CAP_ARM_PAGE_TRACKING_DEVICE enabled. The includer
 * defines CODE_GPA, CODE_SIZE, DATA_GPA and
 * KVM_CAP_ARM_PAGE_TRACKING_DEVICE.
 */
#ifndef PTA_E2E_VM_H
#define PTA_E2E_VM_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

struct e2e_vm {
	int kvm, vm;
	void *code, *data;
	struct kvm_vcpu_init init;
};

/* 0, or an errno with *@what naming the step that failed. */
static int e2e_vm_create(struct e2e_vm *v, const void *code, size_t len,
			 size_t pages, const char **what)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_ARM_PAGE_TRACKING_DEVICE,
		.args = { 1 },
	};
	struct kvm_userspace_memory_region s0 = {
		.slot = 0,
		.guest_phys_addr = CODE_GPA,
		.memory_size = CODE_SIZE,
	};
	struct kvm_userspace_memory_region s1 = {
		.slot = 1,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = DATA_GPA,
		.memory_size = pages * 4096UL,
	};

	*what = "VM with the capability";
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	v->vm = v->kvm < 0 ? -1 : ioctl(v->kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0 || ioctl(v->vm, KVM_ENABLE_CAP, &cap))
		return errno;
	*what = "mmap";
	v->code = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	v->data = mmap(NULL, pages * 4096UL, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (v->code == MAP_FAILED || v->data == MAP_FAILED)
		return errno;
	memcpy(v->code, code, len);
	s0.userspace_addr = (uintptr_t)v->code;
	s1.userspace_addr = (uintptr_t)v->data;
	*what = "memslots";
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &s0) ||
	    ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &s1))
		return errno;
	*what = "KVM_ARM_PREFERRED_TARGET";
	if (ioctl(v->vm, KVM_ARM_PREFERRED_TARGET, &v->init))
		return errno;
	return 0;
}

#endif /* PTA_E2E_VM_H */
