/* SPDX-License-Identifier: MIT */
/*
 * ptrack-vmm: a minimal KVM VMM whose guest writes memory with a chosen
 * pattern, harvests the dirty log by bitmap or ring and can prove, against
 * a shadow copy, that no written page was missed. The architecture's part
 * is in arch.h, arch_<arch>.c and guest_<arch>.c.
 */
#ifndef PT_VMM_H
#define PT_VMM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Debian 12's arm64 uapi headers (Linux 6.1) predate arm64 dirty rings,
 * which Linux 6.3 maps at the same page offset as x86. */
#if defined(__aarch64__) && KVM_DIRTY_LOG_PAGE_OFFSET == 0
#undef KVM_DIRTY_LOG_PAGE_OFFSET
#define KVM_DIRTY_LOG_PAGE_OFFSET 64
#endif

#define VMM_PAGE 4096u
#define VMM_PAGE_SHIFT 12

/*
 * Guest physical layout. The first MiB holds what the host writes before
 * the vCPUs start (page tables, GDT, parameters, code); the guest writes
 * only the work area above it, so any page change there is the guest's.
 */
#define VMM_MAX_GIB 64
#define VMM_PARAM_GPA 0x50000ull
#define VMM_CODE_GPA 0x60000ull
#define VMM_WORK_GPA 0x100000ull

/* Port (x86) the guest writes to after each batch of stores. */
#define VMM_PORT_BATCH 0x10
/* MMIO address (arm64, outside any memslot up to VMM_MAX_GIB) the guest
 * stores to after each batch: guest_aarch64.c builds it with one movz. */
#define VMM_MMIO_BATCH 0xff00000000ull

/* Parameter page: read by the guest at start (offsets used in guest.c). */
struct vmm_params {
	uint64_t work_gpa; /* 0 */
	uint64_t npages; /* 8: work pages */
	uint64_t pattern; /* 16: enum vmm_pattern */
	uint64_t batch; /* 24: stores between two port exits */
	uint64_t hot_pages; /* 32 */
	uint64_t hot_pct; /* 40: share of stores to the hot set */
	uint64_t cold_pages; /* 48: npages - hot_pages */
	uint64_t hundred; /* 56: divisor constant */
	uint64_t nvcpus; /* 64: stride of the sequential sweep */
};

enum vmm_pattern { VMM_SEQ = 0, VMM_RANDOM = 1, VMM_HOTCOLD = 2 };
enum vmm_dirty { VMM_DIRTY_BITMAP = 0, VMM_DIRTY_RING = 1 };
/* Who finds the written pages: write-protect faults, or (arm64) the page
 * tracking device, KVM_CAP_ARM_PAGE_TRACKING_DEVICE. */
enum vmm_tracking { VMM_TRACK_WP = 0, VMM_TRACK_DEVICE = 1 };

struct vmm_opts {
	uint64_t mem;
	unsigned int vcpus;
	enum vmm_pattern pattern;
	uint64_t rate; /* total pages/s, 0: unlimited */
	uint64_t hot_pages;
	unsigned int hot_pct;
	enum vmm_dirty dirty;
	uint32_t ring_entries;
	enum vmm_tracking tracking;
};

struct vmm;

struct vmm_vcpu {
	struct vmm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	struct kvm_dirty_gfn *ring;
	uint32_t fetch; /* next ring entry to collect */
	pthread_t thread;
	bool started;
	uint64_t stores; /* completed guest stores, atomic */
	uint64_t stores_base; /* stores when the thread started */
	uint64_t ring_full_exits;
	uint64_t user_exits; /* KVM_RUN returns, atomic */
	int stats_fd; /* KVM_GET_STATS_FD, -1: none */
	uint64_t exits_off; /* offset of the "exits" counter, 0: none */
	uint64_t stores_at_full, full_spins; /* livelock detection */
	/* CLOCK_REALTIME: the first entry into the guest, the latest exit
	 * (switchover: the guest-visible downtime lies between them). */
	uint64_t first_entry_ns, last_exit_ns;
	uint64_t active_ns; /* auto-converge: end of the last throttle sleep */
	/* Ring entries collected but not yet harvested; under ring_lock. */
	uint64_t *pend;
	size_t npend, cappend;
};

/* One harvest: always a bitmap of the slot; ring mode also keeps GFNs. */
struct vmm_harvest {
	uint64_t *bitmap; /* npages bits */
	uint64_t ndirty; /* bits set */
	uint64_t **gfns; /* per vCPU, ring mode */
	size_t *ngfns;
	size_t *capgfns;
	bool folded; /* ring mode: some GFNs only in @bitmap (see vm.c) */
	/* Ring mode with the ring's bitmap (arm64): pages KVM_GET_DIRTY_LOG
	 * reported beside the rings, also in @bitmap; NULL otherwise. */
	uint64_t *ring_bitmap;
	uint64_t nring_bitmap;
	double get_ms, clear_ms;
};

struct vmm {
	struct vmm_opts o;
	int kvm, vmfd, memfd;
	uint8_t *mem;
	uint64_t npages; /* whole slot */
	int run_size;
	struct vmm_vcpu *vcpu;

	pthread_mutex_t lock; /* pause state */
	pthread_cond_t cond;
	bool pause_req, stop;
	unsigned int throttle; /* percent of time held out, atomic */
	unsigned int nparked, nexited;
	int error; /* first vCPU error, negative errno */

	/* Ring mode, under ring_lock: pending GFNs folded to save memory. */
	pthread_mutex_t ring_lock;
	uint64_t *ring_fold;
	bool folded;
	uint64_t ring_folds;
	/* Ring mode also logs into the slot's bitmap, read after the rings
	 * (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, set by the arch). */
	bool ring_with_bitmap;
};

/* What is wrong with @o, for the user, or NULL. */
const char *vmm_opts_error(const struct vmm_opts *o);
int vmm_create(struct vmm *vm, const struct vmm_opts *o);
int vmm_start(struct vmm *vm);
int vmm_pause(struct vmm *vm);
int vmm_resume(struct vmm *vm);
/* Auto-converge: each vCPU spends @pct percent of its time out of the
 * guest (sleeping after each exit in proportion to its run time). */
int vmm_throttle(struct vmm *vm, unsigned int pct);
/* Stops and joins the vCPU threads; safe to call twice. */
void vmm_stop(struct vmm *vm);
void vmm_destroy(struct vmm *vm);
uint64_t vmm_stores(struct vmm *vm);
/* Guest exits KVM handled without returning to userspace (stage-2 faults,
 * mostly, when write-protect tracks the guest), from KVM's binary stats;
 * -1 when KVM has no "exits" counter. */
int64_t vmm_kernel_exits(struct vmm *vm);

int vmm_harvest_init(struct vmm *vm, struct vmm_harvest *h);
void vmm_harvest_release(struct vmm *vm, struct vmm_harvest *h);
/* Collects everything dirtied since the previous harvest into @h. */
int vmm_harvest(struct vmm *vm, struct vmm_harvest *h);

/* Guest code, copied to VMM_CODE_GPA. */
extern const uint8_t vmm_guest_start[];
extern const uint64_t vmm_guest_size;

/* Ground truth checker (check.c). */
struct vmm_check {
	uint64_t npages;
	uint8_t *shadow;
	uint64_t *changed_prev; /* C(k-1): changed pages seen at harvest k-1 */
	uint64_t *changed; /* C(k) */
	uint64_t *harvest_prev; /* H(k-1) */
	uint64_t fn, fp, harvested, changed_total;
	uint64_t round_fn, round_fp, round_changed;
	double cmp_ms;
};

int vmm_check_init(struct vmm_check *c, const uint8_t *mem, uint64_t npages);
void vmm_check_release(struct vmm_check *c);
/* Call right after each harvest, with its bitmap. */
void vmm_check_round(struct vmm_check *c, const uint8_t *mem,
		     const uint64_t *harvest);
/* After the last harvest with the guest paused: nothing may be pending. */
void vmm_check_final(struct vmm_check *c);

static inline bool vmm_test_bit(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static inline void vmm_set_bit(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ull << (i % 64);
}

#endif
