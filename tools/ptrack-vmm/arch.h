/* SPDX-License-Identifier: MIT */
/*
 * What ptrack-vmm needs from the architecture: guest memory set-up (page
 * tables and descriptors the guest code relies on), a vCPU's initial
 * registers, and the exit the guest's batch doorbell causes. One
 * arch_<arch>.c and guest_<arch>.c per architecture implement it.
 */
#ifndef PT_VMM_ARCH_H
#define PT_VMM_ARCH_H

#include <stdbool.h>

#include "vmm.h"

/* Writes what the guest code expects below VMM_PARAM_GPA. */
void vmm_arch_init_memory(struct vmm *vm);
/* Sets @v's registers to enter the guest code with its parameters. */
int vmm_arch_init_vcpu(struct vmm_vcpu *v);
/* True when @run's exit is the guest's batch doorbell. */
bool vmm_arch_is_batch_exit(const struct kvm_run *run);
/* Dirty-log set-up of the arch, after the generic one and before any
 * memslot exists (KVM wants ring-related capabilities then). */
int vmm_arch_setup_dirty(struct vmm *vm);
/* Turns on vm->o.tracking once the memslot logs dirty pages; -EOPNOTSUPP
 * for a tracking the arch does not have. */
int vmm_arch_setup_tracking(struct vmm *vm);

/*
 * Migration: everything of a paused vCPU's state the guest depends on,
 * as a self-contained record of vmm_arch_vcpu_state_size() bytes written
 * to @buf, and its restore on a vCPU of an incoming VM. The vCPU must be
 * out of KVM_RUN with no pending I/O (vmm_vcpu_settle()).
 */
size_t vmm_arch_vcpu_state_size(void);
int vmm_arch_save_vcpu(struct vmm_vcpu *v, void *buf);
int vmm_arch_load_vcpu(struct vmm_vcpu *v, const void *buf);
/* The guest's per-vCPU store sequence number (guest_<arch>.c). */
int vmm_arch_guest_seq(struct vmm_vcpu *v, uint64_t *seq);

#endif
