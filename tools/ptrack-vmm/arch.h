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

#endif
