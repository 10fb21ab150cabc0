/* SPDX-License-Identifier: MIT */
/*
 * Dirty source for VMMs that push their KVM dirty log through libptrack
 * (include/ptrack/libptrack.h). ptrackd listens on a unix socket; each
 * accepted registration becomes a struct pt_dirty_source whose regions are
 * the VMM's guest memory fds mapped read-only, and whose operations are
 * requests to the VMM: harvest() asks for a harvest and feeds the records
 * the VMM writes to shared memory to the sink until the VMM replies.
 *
 * Every call is blocking and bounded: a VMM that disconnects makes the
 * pending and all later calls fail with -ECONNRESET; one that does not
 * answer within the timeout makes them fail with -ETIMEDOUT.
 */
#ifndef PT_SOURCE_VMM_PUSH_H
#define PT_SOURCE_VMM_PUSH_H

#include "core/dirty.h"

#define PT_VMM_TIMEOUT_MS_DEFAULT 30000

/* Creates a SOCK_SEQPACKET listener at @path (replacing a stale socket
 * file). Returns the fd or a negative errno. */
int pt_vmm_listen(const char *path);

/*
 * Accepts one VMM connection on @lfd, waiting at most @timeout_ms for it
 * (-EAGAIN when none came), and completes its registration (at most 5 s).
 * Returns 0 with *@out set, or a negative errno; a refused registration
 * is answered to the VMM with the same errno.
 */
int pt_vmm_accept(int lfd, int timeout_ms, struct pt_dirty_source **out);

/* Bounds each request to the VMM (default PT_VMM_TIMEOUT_MS_DEFAULT). */
void pt_vmm_set_timeout(struct pt_dirty_source *src, int ms);

/* The connection's fd, to poll for the VMM going away (POLLHUP). */
int pt_vmm_fd(const struct pt_dirty_source *src);

/* Records and bytes consumed from shared memory so far (for stats). */
void pt_vmm_stats(const struct pt_dirty_source *src, uint64_t *records,
		  uint64_t *bytes);

#endif
