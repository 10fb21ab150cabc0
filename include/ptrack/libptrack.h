/* SPDX-License-Identifier: MIT */
/**
 * @file libptrack.h
 * @brief libptrack: how a VMM hands its guest's dirty memory to ptrackd.
 *
 * KVM answers VM ioctls only in the process that created the VM, so ptrackd
 * cannot read a guest's dirty log itself: the VMM pushes it. With libptrack
 * a VMM
 *  - connects to ptrackd's unix socket and registers the VM: name, UUID,
 *    vCPU count, dirty log kind and memory regions, whose fds (memfd or
 *    file) ptrackd maps read-only to read page contents itself;
 *  - answers ptrackd's requests, each through a callback: start tracking,
 *    harvest now, pause the vCPUs, resume them, stop the guest;
 *  - during the harvest callback, pushes what KVM reported as bitmap
 *    chunks (KVM_GET_DIRTY_LOG words) or ring batches (dirty ring GFNs).
 *    They go through a shared-memory ring with an eventfd, not through the
 *    socket, so pages and bitmaps are never copied through the kernel.
 *
 * Threading: one thread calls ptl_dispatch()/ptl_run(); callbacks run in
 * that thread and may block (pausing vCPUs usually does). The push
 * functions may be called only from inside the harvest callback. A client
 * is not safe to use from several threads at once.
 *
 * Semantics the VMM must keep, or guest memory will be copied stale:
 *  - harvest: report every page written since the previous harvest (or
 *    start). With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, push the bitmap from
 *    KVM_GET_DIRTY_LOG after KVM_CLEAR_DIRTY_LOG returned for those bits;
 *    with dirty rings, push the collected GFNs after
 *    KVM_RESET_DIRTY_RINGS. When the log was lost, ptl_push_all().
 *  - pause: return only when no vCPU executes guest code (kick them out
 *    of KVM_RUN, e.g. with a signal and kvm_run->immediate_exit).
 *  - stop: the guest will not run again; the VMM may exit after
 *    ptl_run() returns.
 *
 * Switchover: a source VMM with a save_state callback is paused, harvested
 * a last time and asked for its state; ptrackd streams it with the final
 * pages. On the destination, a VMM started in incoming mode (@c incoming
 * in struct ptl_vm) registers the same layout and waits; that ptrackd
 * writes the pages into its memory, verifies them, calls load_state, then
 * resume. Only once the destination confirms that its guest runs does the
 * source ptrackd call stop; any failure before that calls resume on the
 * source instead. An incoming VMM whose ptrackd goes away after resume
 * keeps running: it owns the guest from then on.
 *
 * Errors are negative errno values. -ECONNRESET means ptrackd went away.
 *
 * Protocol, for VMMs that cannot link this library: a unix SOCK_SEQPACKET
 * connection carrying one protobuf ptrack.vmm.v1.VmmMsg per packet
 * (proto/vmm.proto). The VMM sends RegisterVm with SCM_RIGHTS fds (shared
 * memory memfd, data eventfd, space eventfd, one fd per region) and gets
 * Registered; then ptrackd sends Request{seq, op} and the VMM answers
 * Reply{seq, status} when done. Dirty records go through the memfd, a
 * single-producer ring described in libptrack/shm.h; the VMM
 * signals the data eventfd after committing records and waits on the space
 * eventfd when the ring is full. Records are committed before the Reply.
 *
 * Example, a VMM with one memslot backed by a memfd:
 * @code
 *	static int on_harvest(struct ptl_client *c, void *opaque)
 *	{
 *		struct my_vm *vm = opaque;
 *		int ret = my_get_and_clear_dirty_log(vm, vm->bitmap);
 *
 *		if (ret)
 *			return ret;
 *		return ptl_push_bitmap(c, 0, 0, vm->npages, vm->bitmap);
 *	}
 *
 *	static const struct ptl_ops ops = {
 *		.harvest = on_harvest,
 *		.pause = on_pause,     // kick vCPUs out, hold them
 *		.resume = on_resume,
 *		.stop = on_stop,
 *	};
 *
 *	struct ptl_region r = {
 *		.id = 0, .page_size = 4096, .gpa_base = 0,
 *		.size = vm->ram_size, .fd = vm->memfd, .fd_offset = 0,
 *	};
 *	struct ptl_vm info = {
 *		.name = "vm1", .vcpus = 2, .kind = PTL_DIRTY_BITMAP,
 *		.regions = &r, .nregions = 1,
 *	};
 *	struct ptl_client *c;
 *	int ret = ptl_connect("/run/ptrack/vmm.sock", &info, &ops, vm, &c);
 *
 *	if (ret == 0) {
 *		ret = ptl_run(c);  // or poll ptl_fd(c), then ptl_dispatch(c)
 *		ptl_close(c);
 *	}
 * @endcode
 *
 * Example, the destination of a migration: the same guest is built but
 * not started; ptrackd fills its memory and then loads and resumes it.
 * @code
 *	static int on_load_state(struct ptl_client *c, void *opaque,
 *				 const void *blob, size_t len)
 *	{
 *		return my_set_vcpu_registers(opaque, blob, len); // KVM_SET_*
 *	}
 *
 *	static int on_resume_incoming(struct ptl_client *c, void *opaque)
 *	{
 *		return my_start_vcpu_threads(opaque);
 *	}
 *
 *	static const struct ptl_ops in_ops = {
 *		.load_state = on_load_state,
 *		.resume = on_resume_incoming,
 *		.stop = on_stop,       // migration failed: discard the guest
 *		.harvest = on_harvest, // to migrate it on later
 *		.pause = on_pause,
 *		.save_state = on_save_state,
 *	};
 *
 *	info.incoming = 1;     // same name, UUID and regions as the source
 *	ret = ptl_connect("/run/ptrack/vmm.sock", &info, &in_ops, vm, &c);
 *	while (ret == 0)
 *		ret = ptl_dispatch(c);
 *	// ret < 0 after resume: ptrackd went away, the guest keeps running
 * @endcode
 */
#ifndef PTRACK_LIBPTRACK_H
#define PTRACK_LIBPTRACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Protocol version sent at registration. */
#define PTL_VERSION 1
/** Most memory regions a VM may register. */
#define PTL_MAX_REGIONS 64
/** Default size of the shared-memory ring. */
#define PTL_SHM_DEFAULT_SIZE (4u << 20)
/** Largest VMM state blob (save_state/load_state). */
#define PTL_STATE_MAX (64u << 20)

/** How the VMM reads its dirty log. */
enum ptl_dirty_kind {
	PTL_DIRTY_BITMAP = 1, /**< KVM_GET_DIRTY_LOG (+ CLEAR) bitmaps */
	PTL_DIRTY_RING = 2, /**< KVM dirty ring GFNs */
};

/** One guest memory region (a KVM memslot). */
struct ptl_region {
	uint32_t id; /**< Unique, the id used by ptl_push_bitmap() */
	uint32_t page_size; /**< 4096 */
	uint64_t gpa_base; /**< Guest physical address of the first byte */
	uint64_t size; /**< Bytes, a multiple of page_size */
	int fd; /**< memfd or file holding the region */
	uint64_t fd_offset; /**< Of the region in @c fd, page aligned */
};

/** What ptl_connect() registers. */
struct ptl_vm {
	const char *name; /**< Up to 63 bytes */
	uint8_t uuid[16];
	unsigned int vcpus;
	enum ptl_dirty_kind kind;
	const struct ptl_region *regions;
	size_t nregions; /**< 1..PTL_MAX_REGIONS */
	size_t shm_size; /**< 0: PTL_SHM_DEFAULT_SIZE */
	/**
	 * Non-zero: an incoming VM (the destination of a migration, like
	 * QEMU's -incoming). ptrackd maps the regions read-write and writes
	 * the received pages straight into them; the vCPUs must not run
	 * until the load_state and resume callbacks were called.
	 */
	int incoming;
};

struct ptl_client;

/**
 * Request callbacks. Each returns 0 or a negative errno, which is sent back
 * to ptrackd. NULL callbacks answer 0 (start, resume) or -EOPNOTSUPP.
 */
struct ptl_ops {
	/** Begin tracking: forget what is logged so far (GET+CLEAR, drop). */
	int (*start)(struct ptl_client *c, void *opaque);
	/** Harvest the dirty log and push it with ptl_push_*(). */
	int (*harvest)(struct ptl_client *c, void *opaque);
	/** Hold all vCPUs out of guest mode; return once they are. */
	int (*pause)(struct ptl_client *c, void *opaque);
	/** Let paused vCPUs run again. */
	int (*resume)(struct ptl_client *c, void *opaque);
	/** Stop the guest for good; ptl_run() returns 0 afterwards. */
	int (*stop)(struct ptl_client *c, void *opaque);
	/**
	 * Source, vCPUs paused after the final harvest: hand over everything
	 * the destination VMM needs to run the guest on (vCPU registers,
	 * device state) as an opaque blob of 1 to PTL_STATE_MAX bytes in
	 * *@p blob, allocated with malloc(); the library frees it. ptrackd
	 * never interprets it. NULL: the VM cannot be switched over, ptrackd
	 * only copies its memory.
	 */
	int (*save_state)(struct ptl_client *c, void *opaque, void **blob,
			  size_t *len);
	/**
	 * Incoming VM, memory complete and verified: load the blob the
	 * source's save_state produced. Do not run the vCPUs yet: resume
	 * follows when ptrackd has recorded the switchover. An error refuses
	 * the switchover (the guest then resumes on the source); after it,
	 * or without a resume, ptrackd sends stop and the VMM discards the
	 * guest.
	 */
	int (*load_state)(struct ptl_client *c, void *opaque, const void *blob,
			  size_t len);
	/**
	 * Auto-converge: keep each vCPU out of guest mode for @p percent
	 * (0..99) of its time, e.g. by sleeping after each exit in
	 * proportion to the time it ran; 0 lifts the throttle. ptrackd
	 * raises it while a migration does not converge and lifts it when
	 * the migration ends. NULL: -EOPNOTSUPP, the migration goes on
	 * unthrottled.
	 */
	int (*throttle)(struct ptl_client *c, void *opaque,
			unsigned int percent);
};

/**
 * Connects to ptrackd at @p path, registers @p vm and waits for the answer.
 * The region fds are duplicated into ptrackd; the caller keeps its own.
 * @p ops and @p opaque must outlive the client.
 * @return 0 with *@p out set, or a negative errno (ptrackd's refusal
 *         included, e.g. -EINVAL for a bad layout).
 */
int ptl_connect(const char *path, const struct ptl_vm *vm,
		const struct ptl_ops *ops, void *opaque,
		struct ptl_client **out);

/** The socket to poll for readability before calling ptl_dispatch(). */
int ptl_fd(const struct ptl_client *c);

/**
 * Reads one request from ptrackd, runs its callback and replies.
 * Blocks until a request arrives.
 * @return 0 when served, 1 when a stop request was served, or a negative
 *         errno (-ECONNRESET when ptrackd disconnected).
 */
int ptl_dispatch(struct ptl_client *c);

/** Serves requests until a stop (returns 0) or an error. */
int ptl_run(struct ptl_client *c);

/**
 * Pushes @p npages bits of @p words: bit i (word i / 64, bit i % 64) set
 * means page @p first_page + i of region @p region is dirty. Any size:
 * split into records as needed, runs of zero words are skipped. Blocks
 * while the shared ring is full until ptrackd consumes.
 */
int ptl_push_bitmap(struct ptl_client *c, uint32_t region, uint64_t first_page,
		    uint64_t npages, const uint64_t *words);

/**
 * Pushes @p n GFNs (guest physical address >> 12) written by vCPU
 * @p vcpu (-1 when not attributed). Duplicates are allowed.
 */
int ptl_push_ring(struct ptl_client *c, int vcpu, const uint64_t *gfns,
		  size_t n);

/** Every page of @p region must be treated as dirty (log lost). */
int ptl_push_all(struct ptl_client *c, uint32_t region);

/** Disconnects and frees @p c (NULL is fine). */
void ptl_close(struct ptl_client *c);

#ifdef __cplusplus
}
#endif

#endif
