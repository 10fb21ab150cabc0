// SPDX-License-Identifier: MIT
/*
 * KVM plumbing of ptrack-vmm: a VM with one memslot over a memfd, vCPUs in
 * long mode, pause/resume by signal and immediate_exit, and harvesting of
 * the dirty log by bitmap (manual protect, GET then CLEAR) or dirty rings.
 */
#include "vmm.h"
#include "arch.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SIG_KICK SIGUSR1

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

static int enable_cap(int vmfd, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };

	return xioctl(vmfd, KVM_ENABLE_CAP, &c);
}

static void write_params(struct vmm *vm)
{
	struct vmm_params *p = (void *)(vm->mem + VMM_PARAM_GPA);
	uint64_t per_vcpu = vm->o.rate / vm->o.vcpus;

	p->work_gpa = VMM_WORK_GPA;
	p->npages = vm->npages - VMM_WORK_GPA / VMM_PAGE;
	p->pattern = vm->o.pattern;
	/* About ten port exits a second per vCPU when rate limited. */
	p->batch = 64;
	if (vm->o.rate && per_vcpu < 640)
		p->batch = per_vcpu / 10 ? per_vcpu / 10 : 1;
	p->hot_pages = vm->o.hot_pages;
	p->hot_pct = vm->o.hot_pct;
	p->cold_pages = p->npages - p->hot_pages;
	p->hundred = 100;
	p->nvcpus = vm->o.vcpus;
}

/* Finds KVM's per-vCPU "exits" counter (binary stats, Linux 5.14+). */
static void stats_init(struct vmm_vcpu *v)
{
	struct kvm_stats_header h;
	size_t dsz;
	char *descs;
	uint32_t i;

	v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
	if (v->stats_fd < 0 ||
	    pread(v->stats_fd, &h, sizeof(h), 0) != sizeof(h))
		return;
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = calloc(h.num_desc, dsz);
	if (descs && pread(v->stats_fd, descs, h.num_desc * dsz,
			   h.desc_offset) == (ssize_t)(h.num_desc * dsz))
		for (i = 0; i < h.num_desc; i++) {
			struct kvm_stats_desc *d = (void *)(descs + i * dsz);

			if (!strcmp(d->name, "exits"))
				v->exits_off = h.data_offset + d->offset;
		}
	free(descs);
}

int64_t vmm_kernel_exits(struct vmm *vm)
{
	int64_t n = 0;
	uint64_t val;
	unsigned int i;

	for (i = 0; i < vm->o.vcpus; i++) {
		struct vmm_vcpu *v = &vm->vcpu[i];

		if (!v->exits_off || pread(v->stats_fd, &val, sizeof(val),
					   v->exits_off) != sizeof(val))
			return -1;
		n += val - __atomic_load_n(&v->user_exits, __ATOMIC_RELAXED);
	}
	return n;
}

static int create_vcpu(struct vmm *vm, struct vmm_vcpu *v, int id)
{
	size_t ring_bytes;

	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vmfd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return -errno;
	v->run_size = vm->run_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -errno;
	}
	if (vm->o.dirty == VMM_DIRTY_RING) {
		ring_bytes = (size_t)vm->o.ring_entries *
			     sizeof(struct kvm_dirty_gfn);
		v->ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
			       MAP_SHARED, v->fd,
			       KVM_DIRTY_LOG_PAGE_OFFSET * getpagesize());
		if (v->ring == MAP_FAILED) {
			v->ring = NULL;
			return -errno;
		}
	}
	stats_init(v);
	return vmm_arch_init_vcpu(v);
}

static int setup_memory(struct vmm *vm)
{
	struct kvm_userspace_memory_region mr;

	vm->memfd =
		memfd_create("ptrack-vmm-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (vm->memfd < 0)
		return -errno;
	/* ptrackd requires F_SEAL_SHRINK: a shrunk memslot would SIGBUS it
	 * (as QEMU's memory-backend-memfd seals by default). */
	if (ftruncate(vm->memfd, vm->o.mem) ||
	    fcntl(vm->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		return -errno;
	vm->mem = mmap(NULL, vm->o.mem, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->memfd, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		return -errno;
	}
	vm->npages = vm->o.mem / VMM_PAGE;
	vmm_arch_init_memory(vm);
	write_params(vm);
	memcpy(vm->mem + VMM_CODE_GPA, vmm_guest_start, vmm_guest_size);
	mr = (struct kvm_userspace_memory_region){
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0,
		.memory_size = vm->o.mem,
		.userspace_addr = (uintptr_t)vm->mem,
	};
	return xioctl(vm->vmfd, KVM_SET_USER_MEMORY_REGION, &mr);
}

const char *vmm_opts_error(const struct vmm_opts *o)
{
	uint64_t work;

	if (o->mem % (2u << 20) || o->mem < (4u << 20) ||
	    o->mem > ((uint64_t)VMM_MAX_GIB << 30))
		return "--mem must be a multiple of 2M from 4M to 64G";
	work = o->mem / VMM_PAGE - VMM_WORK_GPA / VMM_PAGE;
	if (o->vcpus < 1 || o->vcpus > 64)
		return "--vcpus must be 1 to 64";
	if (o->pattern == VMM_HOTCOLD &&
	    (!o->hot_pages || o->hot_pages >= work || o->hot_pct > 100))
		return "--hot-pages must be below the work pages, --hot-pct <= 100";
	if (o->dirty == VMM_DIRTY_RING &&
	    (o->ring_entries < 256 ||
	     (o->ring_entries & (o->ring_entries - 1))))
		/* KVM wants at least one page of entries. */
		return "--ring-entries must be a power of 2, at least 256";
	return NULL;
}

static int setup_dirty(struct vmm *vm)
{
	int ret;

	if (vm->o.dirty == VMM_DIRTY_RING)
		ret = enable_cap(vm->vmfd, KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
				 (uint64_t)vm->o.ring_entries *
					 sizeof(struct kvm_dirty_gfn));
	else
		/* No INITIALLY_SET: the first harvest then holds only real
		 * writes. */
		ret = enable_cap(vm->vmfd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				 KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
	return ret ? ret : vmm_arch_setup_dirty(vm);
}

int vmm_create(struct vmm *vm, const struct vmm_opts *o)
{
	unsigned int i;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->kvm = vm->vmfd = vm->memfd = -1;
	vm->o = *o;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	pthread_mutex_init(&vm->ring_lock, NULL);
	if (vmm_opts_error(o))
		return -EINVAL;
	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		return -errno;
	vm->vmfd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->vmfd < 0)
		return -errno;
	vm->run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < 0)
		return -errno;
	ret = setup_dirty(vm);
	if (ret)
		return ret;
	ret = setup_memory(vm);
	if (ret)
		return ret;
	ret = vmm_arch_setup_tracking(vm);
	if (ret)
		return ret;
	vm->vcpu = calloc(o->vcpus, sizeof(*vm->vcpu));
	vm->ring_fold = calloc((vm->npages + 63) / 64, 8);
	if (!vm->vcpu || !vm->ring_fold)
		return -ENOMEM;
	for (i = 0; i < o->vcpus; i++)
		vm->vcpu[i].fd = vm->vcpu[i].stats_fd = -1;
	for (i = 0; i < o->vcpus; i++) {
		ret = create_vcpu(vm, &vm->vcpu[i], i);
		if (ret)
			return ret;
	}
	return 0;
}

/* --- dirty rings ---------------------------------------------------------- */

/*
 * Bounds a vCPU's pending list: past one entry per guest page, a bitmap
 * holds the same information in less memory, so the list is folded into
 * the VM's fold bitmap (then harvested as a bitmap, not GFN batches).
 */
static void pend_fold(struct vmm *vm, struct vmm_vcpu *v)
{
	size_t j;

	for (j = 0; j < v->npend; j++)
		if (v->pend[j] < vm->npages)
			vmm_set_bit(vm->ring_fold, v->pend[j]);
	v->npend = 0;
	vm->folded = true;
	vm->ring_folds++;
}

static int pend_add(struct vmm_vcpu *v, uint64_t gfn)
{
	if (v->npend >= v->vm->npages)
		pend_fold(v->vm, v);
	if (v->npend == v->cappend) {
		size_t cap = v->cappend ? v->cappend * 2 : 4096;
		uint64_t *p = realloc(v->pend, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->pend = p;
		v->cappend = cap;
	}
	v->pend[v->npend++] = gfn;
	return 0;
}

/* Moves every published entry of every ring to the pending lists, then has
 * KVM re-protect them. Caller holds ring_lock. */
static int collect_rings(struct vmm *vm)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vm->o.vcpus; i++) {
		struct vmm_vcpu *v = &vm->vcpu[i];

		for (;;) {
			struct kvm_dirty_gfn *e =
				&v->ring[v->fetch & (vm->o.ring_entries - 1)];
			uint32_t fl =
				__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);

			if (!(fl & KVM_DIRTY_GFN_F_DIRTY))
				break;
			/* One slot at GPA 0: the offset is the GFN. */
			ret = pend_add(v, e->offset);
			if (ret)
				return ret;
			__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
					 __ATOMIC_RELEASE);
			v->fetch++;
		}
	}
	ret = ioctl(vm->vmfd, KVM_RESET_DIRTY_RINGS, 0);
	return ret < 0 ? -errno : 0;
}

/* --- vCPU threads --------------------------------------------------------- */

static void kick_handler(int sig)
{
	(void)sig;
}

static void vcpu_fail(struct vmm *vm, int err)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->error)
		vm->error = err;
	pthread_mutex_unlock(&vm->lock);
}

/* Parks while a pause is requested. Returns false when told to stop. */
static bool vcpu_gate(struct vmm_vcpu *v)
{
	struct vmm *vm = v->vm;
	bool go;

	pthread_mutex_lock(&vm->lock);
	while (vm->pause_req && !vm->stop) {
		vm->nparked++;
		pthread_cond_broadcast(&vm->cond);
		pthread_cond_wait(&vm->cond, &vm->lock);
		vm->nparked--;
	}
	go = !vm->stop;
	/* Cleared under the lock, so a kick after this cannot be lost. */
	if (go)
		v->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->lock);
	return go;
}

static void rate_limit(struct vmm_vcpu *v, double *t0)
{
	uint64_t per_vcpu = v->vm->o.rate / v->vm->o.vcpus;
	double due, now = now_ms();
	struct timespec ts;

	if (!per_vcpu)
		return;
	due = *t0 + (double)(v->stores - v->stores_base) * 1e3 / per_vcpu;
	/* Throttled, the guest must not catch up on the time it lost. */
	if (due < now - 20 &&
	    __atomic_load_n(&v->vm->throttle, __ATOMIC_RELAXED)) {
		*t0 = now;
		v->stores_base = v->stores;
		return;
	}
	if (due <= now)
		return;
	ts.tv_sec = (time_t)((due - now) / 1e3);
	ts.tv_nsec = (long)((due - now - ts.tv_sec * 1e3) * 1e6);
	nanosleep(&ts, NULL); /* a kick cuts it short: fine */
}

/*
 * PVM hosts livelock with rings of <= 4096 entries: the vCPU exits
 * ring-full forever without running a single store. Fail loudly instead
 * of spinning (a batch fills a tiny ring a few times at most).
 */
static int ring_full_progress(struct vmm_vcpu *v)
{
	if (v->stores != v->stores_at_full) {
		v->stores_at_full = v->stores;
		v->full_spins = 0;
		return 0;
	}
	if (++v->full_spins < 10000)
		return 0;
	fprintf(stderr,
		"vcpu %d: dirty ring full exits without progress; host dirty "
		"ring bug? (try --ring-entries 65536)\n",
		v->id);
	return -ELOOP;
}

/*
 * Sleeps pct/(100-pct) of the time the vCPU was active (in the guest or
 * rate limited) since its last throttle sleep, so its store rate drops to
 * (100-pct) percent.
 */
static void throttle_sleep(struct vmm_vcpu *v)
{
	unsigned int pct = __atomic_load_n(&v->vm->throttle, __ATOMIC_RELAXED);
	uint64_t now = vmm_realtime_ns(), ran, ns;
	struct timespec ts;

	if (!pct || !v->active_ns || now < v->active_ns) {
		v->active_ns = now;
		return;
	}
	/* Longer means it was parked (paused), not active. */
	ran = now - v->active_ns;
	if (ran > 100000000ull)
		ran = 100000000ull;
	ns = ran * pct / (100 - pct);
	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	nanosleep(&ts, NULL); /* a kick cuts it short: fine */
	v->active_ns = vmm_realtime_ns();
}

int vmm_throttle(struct vmm *vm, unsigned int pct)
{
	if (pct > 99)
		return -EINVAL;
	__atomic_store_n(&vm->throttle, pct, __ATOMIC_RELAXED);
	return 0;
}

static int handle_exit(struct vmm_vcpu *v, double *t0)
{
	struct vmm *vm = v->vm;
	struct kvm_run *run = v->run;
	const struct vmm_params *p = (void *)(vm->mem + VMM_PARAM_GPA);
	int ret;

	if (vmm_arch_is_batch_exit(run)) {
		__atomic_add_fetch(&v->stores, p->batch, __ATOMIC_RELAXED);
		rate_limit(v, t0);
		return 0;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_DIRTY_RING_FULL:
		v->ring_full_exits++;
		ret = ring_full_progress(v);
		if (ret)
			return ret;
		pthread_mutex_lock(&vm->ring_lock);
		ret = collect_rings(vm);
		pthread_mutex_unlock(&vm->ring_lock);
		return ret;
	case KVM_EXIT_INTR:
		return 0;
	default:
		fprintf(stderr, "vcpu %d: unexpected exit %u\n", v->id,
			run->exit_reason);
		return -EPROTO;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *v = arg;
	double t0 = now_ms();
	int ret = 0, rc;

	/* Stores carried over from a migration source are not this run's. */
	v->stores_base = v->stores;
	while (vcpu_gate(v)) {
		if (!v->first_entry_ns)
			v->first_entry_ns = vmm_realtime_ns();
		rc = ioctl(v->fd, KVM_RUN, 0);
		v->last_exit_ns = vmm_realtime_ns();
		/* Every return (EINTR too) is an exit userspace saw. */
		__atomic_add_fetch(&v->user_exits, 1, __ATOMIC_RELAXED);
		if (rc < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ret = -errno;
			break;
		}
		ret = handle_exit(v, &t0);
		throttle_sleep(v);
		if (ret)
			break;
	}
	if (ret)
		vcpu_fail(v->vm, ret);
	pthread_mutex_lock(&v->vm->lock);
	v->vm->nexited++;
	pthread_cond_broadcast(&v->vm->cond);
	pthread_mutex_unlock(&v->vm->lock);
	return NULL;
}

int vmm_start(struct vmm *vm)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	unsigned int i;
	int ret;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_KICK, &sa, NULL))
		return -errno;
	for (i = 0; i < vm->o.vcpus; i++) {
		ret = -pthread_create(&vm->vcpu[i].thread, NULL, vcpu_thread,
				      &vm->vcpu[i]);
		if (ret) {
			vmm_stop(vm);
			return ret;
		}
		vm->vcpu[i].started = true;
	}
	return 0;
}

/* Caller holds vm->lock. */
static void kick_all(struct vmm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->o.vcpus; i++) {
		if (!vm->vcpu[i].started)
			continue;
		vm->vcpu[i].run->immediate_exit = 1;
		pthread_kill(vm->vcpu[i].thread, SIG_KICK);
	}
}

static unsigned int nstarted(struct vmm *vm)
{
	unsigned int i, n = 0;

	for (i = 0; i < vm->o.vcpus; i++)
		n += vm->vcpu[i].started;
	return n;
}

/* Returns once no vCPU runs guest code: all parked or exited. */
int vmm_pause(struct vmm *vm)
{
	unsigned int n = nstarted(vm);
	int ret;

	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	kick_all(vm);
	while (vm->nparked + vm->nexited < n)
		pthread_cond_wait(&vm->cond, &vm->lock);
	ret = vm->error;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int vmm_resume(struct vmm *vm)
{
	int ret;

	pthread_mutex_lock(&vm->lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->cond);
	ret = vm->error;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void vmm_stop(struct vmm *vm)
{
	unsigned int i;

	pthread_mutex_lock(&vm->lock);
	vm->stop = true;
	kick_all(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->o.vcpus; i++) {
		if (!vm->vcpu[i].started)
			continue;
		pthread_join(vm->vcpu[i].thread, NULL);
		vm->vcpu[i].started = false;
	}
}

uint64_t vmm_stores(struct vmm *vm)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < vm->o.vcpus; i++)
		n += __atomic_load_n(&vm->vcpu[i].stores, __ATOMIC_RELAXED);
	return n;
}

void vmm_destroy(struct vmm *vm)
{
	unsigned int i;

	if (vm->vcpu) {
		vmm_stop(vm);
		for (i = 0; i < vm->o.vcpus; i++) {
			struct vmm_vcpu *v = &vm->vcpu[i];

			if (v->ring)
				munmap(v->ring, (size_t)vm->o.ring_entries *
							sizeof(*v->ring));
			if (v->run)
				munmap(v->run, v->run_size);
			if (v->fd >= 0)
				close(v->fd);
			if (v->stats_fd >= 0)
				close(v->stats_fd);
			free(v->pend);
		}
		free(vm->vcpu);
	}
	free(vm->ring_fold);
	if (vm->mem)
		munmap(vm->mem, vm->o.mem);
	if (vm->memfd >= 0)
		close(vm->memfd);
	if (vm->vmfd >= 0)
		close(vm->vmfd);
	if (vm->kvm >= 0)
		close(vm->kvm);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->ring_lock);
	memset(vm, 0, sizeof(*vm));
}

/* --- harvesting ----------------------------------------------------------- */

int vmm_harvest_init(struct vmm *vm, struct vmm_harvest *h)
{
	unsigned int n = vm->o.vcpus;

	memset(h, 0, sizeof(*h));
	h->bitmap = calloc((vm->npages + 63) / 64, 8);
	h->gfns = calloc(n, sizeof(*h->gfns));
	h->ngfns = calloc(n, sizeof(*h->ngfns));
	h->capgfns = calloc(n, sizeof(*h->capgfns));
	if (vm->ring_with_bitmap)
		h->ring_bitmap = calloc((vm->npages + 63) / 64, 8);
	if (!h->bitmap || !h->gfns || !h->ngfns || !h->capgfns ||
	    (vm->ring_with_bitmap && !h->ring_bitmap)) {
		vmm_harvest_release(vm, h);
		return -ENOMEM;
	}
	return 0;
}

void vmm_harvest_release(struct vmm *vm, struct vmm_harvest *h)
{
	unsigned int i;

	if (h->gfns)
		for (i = 0; i < vm->o.vcpus; i++)
			free(h->gfns[i]);
	free(h->gfns);
	free(h->ngfns);
	free(h->capgfns);
	free(h->bitmap);
	free(h->ring_bitmap);
	memset(h, 0, sizeof(*h));
}

static int harvest_bitmap(struct vmm *vm, struct vmm_harvest *h)
{
	struct kvm_dirty_log get = { .slot = 0, .dirty_bitmap = h->bitmap };
	struct kvm_clear_dirty_log clr = {
		.slot = 0,
		.first_page = 0,
		.num_pages = vm->npages,
		.dirty_bitmap = h->bitmap,
	};
	double t0 = now_ms();
	int ret;

	ret = xioctl(vm->vmfd, KVM_GET_DIRTY_LOG, &get);
	if (ret)
		return ret;
	h->get_ms = now_ms() - t0;
	t0 = now_ms();
	ret = xioctl(vm->vmfd, KVM_CLEAR_DIRTY_LOG, &clr);
	h->clear_ms = now_ms() - t0;
	return ret;
}

/*
 * With the ring's bitmap, what did not reach a ring (pages a page tracking
 * device still held, writes without a vCPU) is in the slot's bitmap: read
 * after the rings, as KVM documents, and re-protected by the GET itself
 * (no manual protect with rings).
 */
static int ring_bitmap(struct vmm *vm, struct vmm_harvest *h)
{
	size_t words = (vm->npages + 63) / 64, w;
	struct kvm_dirty_log get = { .slot = 0,
				     .dirty_bitmap = h->ring_bitmap };
	int ret;

	memset(h->ring_bitmap, 0, words * 8);
	ret = xioctl(vm->vmfd, KVM_GET_DIRTY_LOG, &get);
	if (ret)
		return ret;
	h->nring_bitmap = 0;
	for (w = 0; w < words; w++) {
		h->nring_bitmap += __builtin_popcountll(h->ring_bitmap[w]);
		h->bitmap[w] |= h->ring_bitmap[w];
	}
	return 0;
}

/* Hands the pending lists over to @h (swapping buffers, no copies). */
static int harvest_ring(struct vmm *vm, struct vmm_harvest *h)
{
	double t0 = now_ms();
	unsigned int i;
	size_t j;
	int ret;

	pthread_mutex_lock(&vm->ring_lock);
	ret = collect_rings(vm);
	for (i = 0; i < vm->o.vcpus; i++) {
		struct vmm_vcpu *v = &vm->vcpu[i];
		uint64_t *b = h->gfns[i];
		size_t cap = h->capgfns[i];

		h->gfns[i] = v->pend;
		h->ngfns[i] = v->npend;
		h->capgfns[i] = v->cappend;
		v->pend = b;
		v->cappend = cap;
		v->npend = 0;
		for (j = 0; j < h->ngfns[i]; j++)
			if (h->gfns[i][j] < vm->npages)
				vmm_set_bit(h->bitmap, h->gfns[i][j]);
	}
	h->folded = vm->folded;
	if (vm->folded)
		for (j = 0; j < (vm->npages + 63) / 64; j++) {
			h->bitmap[j] |= vm->ring_fold[j];
			vm->ring_fold[j] = 0;
		}
	vm->folded = false;
	pthread_mutex_unlock(&vm->ring_lock);
	if (!ret && vm->ring_with_bitmap)
		ret = ring_bitmap(vm, h);
	h->get_ms = now_ms() - t0;
	h->clear_ms = 0;
	return ret;
}

int vmm_harvest(struct vmm *vm, struct vmm_harvest *h)
{
	size_t words = (vm->npages + 63) / 64, w;
	int ret;

	memset(h->bitmap, 0, words * 8);
	if (vm->o.dirty == VMM_DIRTY_RING)
		ret = harvest_ring(vm, h);
	else
		ret = harvest_bitmap(vm, h);
	h->ndirty = 0;
	for (w = 0; w < words; w++)
		h->ndirty += __builtin_popcountll(h->bitmap[w]);
	return ret;
}
