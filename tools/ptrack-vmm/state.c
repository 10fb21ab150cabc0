// SPDX-License-Identifier: MIT
/*
 * Switchover state of ptrack-vmm: what the source hands over (the
 * workload settings, each vCPU's registers and store counters, a hash of
 * guest memory at the pause, the time of the last guest exit) and what the
 * destination does with it: restore, then prove after running on that no
 * page went back in time.
 */
#include "state.h"
#include "arch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define STATE_MAGIC 0x534d5650u /* "PVMS" */
#define STATE_VERSION 1

struct state_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t mem;
	uint32_t vcpus;
	uint32_t pattern;
	uint64_t rate, hot_pages, hot_pct;
	uint64_t mem_hash; /* 0: not computed */
	uint64_t last_exit_ns; /* CLOCK_REALTIME */
	uint32_t vcpu_size; /* bytes of each vCPU record */
	uint32_t pad;
};

struct vcpu_rec {
	uint64_t stores; /* counted by the host at batch exits */
	uint64_t seq; /* the guest's own count */
	/* arch state follows */
};

uint64_t vmm_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Four independent multiply-xor lanes: fast enough to run in the pause. */
uint64_t vmm_mem_hash(const uint8_t *mem, uint64_t len)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h[4] = { 1, 2, 3, 4 }, w[4], i;
	int j;

	for (i = 0; i + 32 <= len; i += 32) {
		memcpy(w, mem + i, 32);
		for (j = 0; j < 4; j++)
			h[j] = (h[j] ^ w[j]) * k + (h[j] >> 29);
	}
	return (h[0] ^ (h[1] << 1) ^ (h[2] << 2) ^ (h[3] << 3)) | 1;
}

/* Finishes a parked vCPU's pending exit (the doorbell's OUT) without
 * running guest code, so its registers are the whole story. */
static int settle(struct vmm_vcpu *v)
{
	v->run->immediate_exit = 1;
	if (ioctl(v->fd, KVM_RUN, 0) == 0 || errno == EINTR)
		return 0;
	return -errno;
}

int vmm_save_state(struct vmm *vm, bool hash, void **blob, size_t *len)
{
	size_t vsz = sizeof(struct vcpu_rec) + vmm_arch_vcpu_state_size();
	size_t n = sizeof(struct state_hdr) + vm->o.vcpus * vsz;
	struct state_hdr *h;
	unsigned int i;
	uint8_t *p;
	int ret = 0;

	h = calloc(1, n);
	if (!h)
		return -ENOMEM;
	*h = (struct state_hdr){
		.magic = STATE_MAGIC,
		.version = STATE_VERSION,
		.mem = vm->o.mem,
		.vcpus = vm->o.vcpus,
		.pattern = vm->o.pattern,
		.rate = vm->o.rate,
		.hot_pages = vm->o.hot_pages,
		.hot_pct = vm->o.hot_pct,
		.mem_hash = hash ? vmm_mem_hash(vm->mem, vm->o.mem) : 0,
		.vcpu_size = (uint32_t)vsz,
	};
	p = (uint8_t *)(h + 1);
	for (i = 0; !ret && i < vm->o.vcpus; i++, p += vsz) {
		struct vmm_vcpu *v = &vm->vcpu[i];
		struct vcpu_rec *r = (struct vcpu_rec *)p;

		ret = settle(v);
		if (!ret)
			ret = vmm_arch_save_vcpu(v, r + 1);
		if (!ret)
			ret = vmm_arch_guest_seq(v, &r->seq);
		r->stores = __atomic_load_n(&v->stores, __ATOMIC_RELAXED);
		if (v->last_exit_ns > h->last_exit_ns)
			h->last_exit_ns = v->last_exit_ns;
	}
	if (ret) {
		free(h);
		return ret;
	}
	*blob = h;
	*len = n;
	return 0;
}

static int check_hdr(const struct vmm *vm, const struct state_hdr *h,
		     size_t len, const char **why)
{
	size_t vsz = sizeof(struct vcpu_rec) + vmm_arch_vcpu_state_size();

	*why = "not a ptrack-vmm state of this version";
	if (len < sizeof(*h) || h->magic != STATE_MAGIC ||
	    h->version != STATE_VERSION || h->vcpu_size != vsz)
		return -EINVAL;
	*why = "a guest of another size or vCPU count";
	if (h->mem != vm->o.mem || h->vcpus != vm->o.vcpus ||
	    len != sizeof(*h) + h->vcpus * vsz)
		return -EINVAL;
	*why = "guest memory differs from the source's at the pause";
	if (h->mem_hash && vmm_mem_hash(vm->mem, vm->o.mem) != h->mem_hash)
		return -EBADMSG;
	return 0;
}

int vmm_load_state(struct vmm *vm, const void *blob, size_t len,
		   struct vmm_switch *sw, const char **why)
{
	const struct state_hdr *h = blob;
	const uint8_t *p;
	uint64_t i, work = vm->npages - VMM_WORK_GPA / VMM_PAGE;
	int ret = check_hdr(vm, h, len, why);

	if (ret)
		return ret;
	memset(sw, 0, sizeof(*sw));
	sw->seq0 = calloc(vm->o.vcpus, sizeof(uint64_t));
	sw->snap = malloc(work * sizeof(uint64_t));
	if (!sw->seq0 || !sw->snap)
		return -ENOMEM;
	sw->hashed = h->mem_hash != 0;
	sw->last_exit_ns = h->last_exit_ns;
	/* The workload runs on as it was set on the source. */
	vm->o.pattern = h->pattern;
	vm->o.rate = h->rate;
	vm->o.hot_pages = h->hot_pages;
	vm->o.hot_pct = h->hot_pct;
	*why = "a vCPU's registers could not be restored";
	p = (const uint8_t *)(h + 1);
	for (i = 0; i < vm->o.vcpus; i++, p += h->vcpu_size) {
		const struct vcpu_rec *r = (const struct vcpu_rec *)p;

		ret = vmm_arch_load_vcpu(&vm->vcpu[i], r + 1);
		if (ret)
			return ret;
		vm->vcpu[i].stores = r->stores;
		sw->seq0[i] = r->seq;
	}
	/* What every work page holds at the switchover (its first quadword
	 * is the only one the guest writes). */
	for (i = 0; i < work; i++)
		memcpy(&sw->snap[i], vm->mem + VMM_WORK_GPA + i * VMM_PAGE, 8);
	sw->loaded = true;
	return 0;
}

int vmm_switch_check(struct vmm *vm, struct vmm_switch *sw)
{
	uint64_t i, q, seq, work = vm->npages - VMM_WORK_GPA / VMM_PAGE;
	uint64_t *now = calloc(vm->o.vcpus, sizeof(uint64_t));
	unsigned int id;
	int ret = 0;

	if (!now)
		return -ENOMEM;
	sw->stores = 0;
	sw->first_entry_ns = 0;
	for (i = 0; !ret && i < vm->o.vcpus; i++) {
		ret = vmm_arch_guest_seq(&vm->vcpu[i], &now[i]);
		if (now[i] < sw->seq0[i])
			sw->seq_backwards++;
		sw->stores += now[i] - sw->seq0[i];
		if (!sw->first_entry_ns ||
		    vm->vcpu[i].first_entry_ns < sw->first_entry_ns)
			sw->first_entry_ns = vm->vcpu[i].first_entry_ns;
	}
	/*
	 * Each page holds its switchover content or a store made here: with
	 * a sequence number past the pause's, or equal to it when the vCPU
	 * was paused between counting a store and making it.
	 */
	for (i = 0; !ret && i < work; i++) {
		memcpy(&q, vm->mem + VMM_WORK_GPA + i * VMM_PAGE, 8);
		if (q == sw->snap[i])
			continue;
		id = q & 0xff;
		seq = q >> 8;
		if (id < vm->o.vcpus && seq >= sw->seq0[id] && seq <= now[id])
			sw->rewritten++;
		else
			sw->back_in_time++;
	}
	free(now);
	return ret;
}

void vmm_switch_release(struct vmm_switch *sw)
{
	free(sw->seq0);
	free(sw->snap);
	memset(sw, 0, sizeof(*sw));
}
