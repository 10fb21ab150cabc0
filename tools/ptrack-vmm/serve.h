/* SPDX-License-Identifier: MIT */
/* ptrack-vmm's ptrackd mode: the first user of libptrack. */
#ifndef PT_VMM_SERVE_H
#define PT_VMM_SERVE_H

#include "vmm.h"

struct vmm_serve_opts {
	const char *path; /* ptrackd's VMM socket */
	const char *name;
	bool incoming; /* the destination of a migration */
	bool verify_memory; /* hash guest memory at the switchover */
	unsigned int run_ms; /* incoming: run this long after resuming */
	const char *inject; /* test hook: a switchover fault, see main.c */
	/* Run the guest this long before registering, to measure its store
	 * rate before the migration (bench/: the guest slowdown). */
	unsigned int warmup_ms;
};

/* Registers @vm with ptrackd and serves it until told to stop or
 * disconnected, or, incoming, until it ran @so->run_ms after the
 * switchover. Returns 0 after a stop request or a clean run after the
 * switchover, 1 when that run's check failed, else a negative errno. */
int vmm_serve_ptrackd(struct vmm *vm, const struct vmm_serve_opts *so);

#endif
