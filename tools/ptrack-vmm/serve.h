/* SPDX-License-Identifier: MIT */
/* ptrack-vmm's ptrackd mode: the first user of libptrack. */
#ifndef PT_VMM_SERVE_H
#define PT_VMM_SERVE_H

#include "vmm.h"

/* Registers @vm with ptrackd at @path and serves it until told to stop or
 * disconnected. Returns 0 after a stop request, else a negative errno. */
int vmm_serve_ptrackd(struct vmm *vm, const char *path, const char *name);

#endif
