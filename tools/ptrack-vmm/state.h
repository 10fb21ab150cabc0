/* SPDX-License-Identifier: MIT */
/* ptrack-vmm's switchover state (state.c). */
#ifndef PT_VMM_STATE_H
#define PT_VMM_STATE_H

#include "vmm.h"

/* What the destination learnt at the switchover, and its later check. */
struct vmm_switch {
	bool loaded, hashed;
	uint64_t *seq0; /* per vCPU: the guest's store count at the pause */
	uint64_t *snap; /* per work page: first quadword at the switchover */
	uint64_t last_exit_ns; /* source: the last guest exit, CLOCK_REALTIME */
	uint64_t first_entry_ns; /* here: the first guest entry */
	/* vmm_switch_check(): */
	uint64_t stores, rewritten, back_in_time, seq_backwards;
};

uint64_t vmm_realtime_ns(void);
uint64_t vmm_mem_hash(const uint8_t *mem, uint64_t len);

/* Paused vCPUs: the state blob (malloc'd); @hash adds a memory hash. */
int vmm_save_state(struct vmm *vm, bool hash, void **blob, size_t *len);
/* Incoming VM, vCPUs not started: restores @blob, or says *@why not. */
int vmm_load_state(struct vmm *vm, const void *blob, size_t len,
		   struct vmm_switch *sw, const char **why);
/* Paused after running here: counts stores and pages gone back in time. */
int vmm_switch_check(struct vmm *vm, struct vmm_switch *sw);
void vmm_switch_release(struct vmm_switch *sw);

#endif
