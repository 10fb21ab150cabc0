// SPDX-License-Identifier: GPL-2.0
/*
 * ptrack_kvm_test - dirty logging test and benchmark for
 * KVM_CAP_ARM_PAGE_TRACKING_DEVICE, with the structure of the kernel's
 * dirty_log_test: guest vCPUs write pages in rounds, the host stops them
 * after each round, collects the dirty log and checks that every page
 * written in the round is reported (false negatives must be 0).
 *
 * Built statically for arm64 and run inside the emulated arm64 host
 * (tests/arm64). Uses raw KVM ioctls so that it needs no selftest library.
 *
 *   --probe               print KVM and capability state
 *   --expect-cap N        fail unless KVM_CHECK_EXTENSION(cap) == N
 *   --cap on|off|toggle   dirty logging through the device, write-protect
 *                         only, or switch between them while vCPUs run
 *   --manual              KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (GET + CLEAR)
 *   --overflow R          inject a device overflow before round R
 *   --ring-check          a VM with a dirty ring refuses the capability
 *                         (EINVAL without KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP,
 *                         EOPNOTSUPP from a device that cannot attribute
 *                         writes to CPUs), and a VM that used the capability
 *                         refuses a ring (EINVAL)
 *   --ring-accept         with --ring-check: the device attributes writes,
 *                         the capability is accepted with ring and bitmap
 *   --ring N              dirty ring of N entries per vCPU (with
 *                         KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP): each vCPU
 *                         writes its own slice, exits to userspace every
 *                         --progress writes, harvests its ring on
 *                         KVM_EXIT_DIRTY_RING_FULL; after each round the
 *                         rings and then the bitmap are read, and the report
 *                         says whose ring each written page came from
 *   --log-toggle          stop and restart dirty logging mid-run
 *   --bench               sequential writes of every page each round,
 *                         timings in dirty_log_perf_test's line format
 *   --progress N          with --ring: writes between progress exits
 *                         (default 128)
 *   --rounds N --pages N --writes N --vcpus N --seed N
 *
 * The last line is "PASS: ..." or "FAIL: ...", and the exit code says so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef KVM_CAP_ARM_PAGE_TRACKING_DEVICE
#define KVM_CAP_ARM_PAGE_TRACKING_DEVICE 239
#endif
/* Debian 12's arm64 linux-libc-dev (6.1) predates arm64 dirty rings. */
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif
#if KVM_DIRTY_LOG_PAGE_OFFSET == 0
#undef KVM_DIRTY_LOG_PAGE_OFFSET
#define KVM_DIRTY_LOG_PAGE_OFFSET 64
#endif

#define CODE_GPA	0x10000000ULL
#define CODE_SIZE	0x10000ULL
#define DATA_GPA	0x20000000ULL
#define MMIO_GPA	0x3f000000ULL
#define PROGRESS_GPA	(MMIO_GPA + 8)
#define CODE_SLOT	0
#define DATA_SLOT	1
#define MAX_VCPUS	8
#define INJECT_PATH	"/sys/module/kvm/parameters/hafdbs_tracker_inject_overflow"

/*
 * Guest code, position independent, run at EL1 with the MMU off.
 * x0 data base, x1 pages, x2 xorshift state, x3 MMIO exit address,
 * x4 writes per round, x5 round number, x6 vCPU tag, x10 mode
 * (0 random pages, 1 sequential pages x11 .. x11 + x4 - 1), x13 writes
 * between progress exits (0: none).
 * Each write stores the round number and the vCPU tag at the start of a
 * page. Every x13 writes the guest stores to the progress address (an
 * exit to userspace in the middle of a round). After each round the guest
 * stores the round number to the MMIO address, which exits to the host,
 * and starts the next round.
 */
extern const uint32_t guest_code[];
extern const uint32_t guest_code_size;
asm(".pushsection .rodata\n"
    ".balign 16\n"
    ".globl guest_code\n"
    "guest_code:\n"
    "1:	mov	x7, x4\n"
    "	mov	x12, x11\n"
    "	mov	x14, x13\n"
    "2:	cbnz	x10, 3f\n"
    "	eor	x2, x2, x2, lsl #13\n"
    "	eor	x2, x2, x2, lsr #7\n"
    "	eor	x2, x2, x2, lsl #17\n"
    "	udiv	x8, x2, x1\n"
    "	msub	x8, x8, x1, x2\n"
    "	b	4f\n"
    "3:	mov	x8, x12\n"
    "	add	x12, x12, #1\n"
    "4:	add	x9, x0, x8, lsl #12\n"
    "	str	x5, [x9]\n"
    "	str	x6, [x9, #8]\n"
    "	cbz	x13, 5f\n"
    "	subs	x14, x14, #1\n"
    "	b.ne	5f\n"
    "	str	x5, [x3, #8]\n"
    "	mov	x14, x13\n"
    "5:	subs	x7, x7, #1\n"
    "	b.ne	2b\n"
    "	str	x5, [x3]\n"
    "	add	x5, x5, #1\n"
    "	b	1b\n"
    "guest_code_end:\n"
    ".balign 4\n"
    ".globl guest_code_size\n"
    "guest_code_size:\n"
    "	.word	guest_code_end - guest_code\n"
    ".popsection\n");

struct vcpu {
	int fd;
	int id;
	struct kvm_run *run;
	pthread_t thread;
	int stats_fd;
	uint64_t exits_off, mmio_off;
	int error;
	struct kvm_dirty_gfn *ring;	/* --ring: the vCPU's dirty ring */
	uint32_t fetch;			/* next ring entry to harvest */
	uint64_t ring_full_exits;
};

static struct {
	int kvm_fd, vm_fd;
	int nvcpus;
	struct vcpu vcpus[MAX_VCPUS];
	uint8_t *data;
	uint64_t pages;
	size_t page_size;
	unsigned long *bitmap;
	int manual;
	uint32_t ring_entries;		/* --ring: entries per vCPU ring */
	uint64_t progress;		/* writes between progress exits */
	uint16_t *src;			/* per page: bit v ring of vCPU v, 15 bitmap */
	uint64_t ring_stray;		/* ring entries outside the data slot */
	/* round synchronisation */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int round;		/* round the vCPUs are allowed to run */
	int done;		/* vCPUs done with that round */
	int quit;
	volatile int stuck;	/* set by the watchdog: report and fail */
} g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf(" (errno %d %s)\n", errno, strerror(errno));
	va_end(ap);
	fflush(stdout);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int check_ext(int fd, long cap)
{
	return ioctl(fd, KVM_CHECK_EXTENSION, cap);
}

static int enable_cap(int fd, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg0 } };

	return ioctl(fd, KVM_ENABLE_CAP, &c);
}

static void set_slot(int slot, uint64_t gpa, uint64_t size, void *hva,
		     uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(g.vm_fd, KVM_SET_USER_MEMORY_REGION, &r))
		die("KVM_SET_USER_MEMORY_REGION slot %d flags %#x", slot, flags);
}

#define CORE_REG(x) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
		     (offsetof(struct kvm_regs, x) / sizeof(uint32_t)))

static void set_reg(int fd, uint64_t id, uint64_t val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&val };

	if (ioctl(fd, KVM_SET_ONE_REG, &reg))
		die("KVM_SET_ONE_REG %#llx", (unsigned long long)id);
}

/* Find the offsets of two vCPU statistics in the binary stats fd. */
static void stats_init(struct vcpu *v)
{
	struct kvm_stats_header h;
	size_t dsz;
	char *descs;
	uint32_t i;

	v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
	if (v->stats_fd < 0)
		die("KVM_GET_STATS_FD");
	if (pread(v->stats_fd, &h, sizeof(h), 0) != sizeof(h))
		die("stats header");
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = calloc(h.num_desc, dsz);
	if (!descs || pread(v->stats_fd, descs, h.num_desc * dsz, h.desc_offset) !=
	    (ssize_t)(h.num_desc * dsz))
		die("stats descriptors");
	v->exits_off = v->mmio_off = UINT64_MAX;
	for (i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (void *)(descs + i * dsz);

		if (!strcmp(d->name, "exits"))
			v->exits_off = h.data_offset + d->offset;
		if (!strcmp(d->name, "mmio_exit_user"))
			v->mmio_off = h.data_offset + d->offset;
	}
	free(descs);
	if (v->exits_off == UINT64_MAX || v->mmio_off == UINT64_MAX)
		die("exits/mmio_exit_user stats not found");
}

static uint64_t stat_read(struct vcpu *v, uint64_t off)
{
	uint64_t val;

	if (pread(v->stats_fd, &val, sizeof(val), off) != sizeof(val))
		die("stats read");
	return val;
}

/* Exits that were not our end-of-round MMIO exits: stage-2 faults, mostly. */
static uint64_t other_exits(void)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < g.nvcpus; i++)
		n += stat_read(&g.vcpus[i], g.vcpus[i].exits_off) -
		     stat_read(&g.vcpus[i], g.vcpus[i].mmio_off);
	return n;
}

static uint64_t get_reg(int fd, uint64_t id)
{
	uint64_t val = 0;
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&val };

	ioctl(fd, KVM_GET_ONE_REG, &reg);
	return val;
}

static void sig_noop(int sig)
{
}

#define SRC_BITMAP	0x8000

/* Take the dirty entries of a vCPU's ring and mark them for reset. */
static uint64_t ring_harvest(struct vcpu *v)
{
	uint64_t n = 0;

	for (;;) {
		struct kvm_dirty_gfn *e = &v->ring[v->fetch & (g.ring_entries - 1)];
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);

		if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
			break;
		if (e->slot == DATA_SLOT && e->offset < g.pages)
			__atomic_fetch_or(&g.src[e->offset], 1 << v->id,
					  __ATOMIC_RELAXED);
		else
			__atomic_fetch_add(&g.ring_stray, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
		v->fetch++;
		n++;
	}
	return n;
}

static void ring_reset(void)
{
	if (ioctl(g.vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
		die("KVM_RESET_DIRTY_RINGS");
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	int round = 0;

	for (;;) {
		pthread_mutex_lock(&g.lock);
		while (g.round == round && !g.quit)
			pthread_cond_wait(&g.cond, &g.lock);
		if (g.quit) {
			pthread_mutex_unlock(&g.lock);
			return NULL;
		}
		round = g.round;
		pthread_mutex_unlock(&g.lock);

		for (;;) {
			if (ioctl(v->fd, KVM_RUN, NULL)) {
				if (errno == EINTR && g.stuck) {
					printf("vcpu %d stuck: pc=%#llx exit=%u elr=%#llx esr=%#llx far=%#llx\n",
					       v->id,
					       (unsigned long long)get_reg(v->fd, CORE_REG(regs.pc)),
					       v->run->exit_reason,
					       (unsigned long long)get_reg(v->fd, CORE_REG(elr_el1)),
					       (unsigned long long)get_reg(v->fd, ARM64_SYS_REG(3, 0, 5, 2, 0)),
					       (unsigned long long)get_reg(v->fd, ARM64_SYS_REG(3, 0, 6, 0, 0)));
					v->error = ETIMEDOUT;
					break;
				}
				if (errno == EINTR || errno == EAGAIN)
					continue;
				v->error = errno;
				break;
			}
			if (v->run->exit_reason == KVM_EXIT_MMIO &&
			    v->run->mmio.phys_addr == MMIO_GPA)
				break;
			if (v->run->exit_reason == KVM_EXIT_INTR)
				continue;
			if (v->run->exit_reason == KVM_EXIT_MMIO &&
			    v->run->mmio.phys_addr == PROGRESS_GPA)
				continue;
			if (v->run->exit_reason == KVM_EXIT_DIRTY_RING_FULL &&
			    g.ring_entries) {
				/* What a VMM does: harvest, reset, go on. */
				v->ring_full_exits++;
				ring_harvest(v);
				ring_reset();
				continue;
			}
			printf("vcpu %d: unexpected exit %u\n", v->id,
			       v->run->exit_reason);
			v->error = EIO;
			break;
		}

		pthread_mutex_lock(&g.lock);
		g.done++;
		pthread_cond_broadcast(&g.cond);
		pthread_mutex_unlock(&g.lock);
		if (v->error)
			return NULL;
	}
}

static void start_round(int round)
{
	pthread_mutex_lock(&g.lock);
	g.done = 0;
	g.round = round;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

static void wait_round(void)
{
	struct timespec ts;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&g.lock);
	while (g.done < g.nvcpus) {
		if (pthread_cond_timedwait(&g.cond, &g.lock, &ts) == ETIMEDOUT &&
		    !g.stuck) {
			/* Kick the vCPUs out of KVM_RUN to see where they are. */
			g.stuck = 1;
			for (i = 0; i < g.nvcpus; i++)
				pthread_kill(g.vcpus[i].thread, SIGUSR1);
		}
	}
	pthread_mutex_unlock(&g.lock);
	for (i = 0; i < g.nvcpus; i++)
		if (g.vcpus[i].error) {
			errno = g.vcpus[i].error;
			die("vcpu %d KVM_RUN", i);
		}
}

static void create_vm(void)
{
	struct kvm_vcpu_init init;
	void *code;
	int i, mmap_size;

	g.vm_fd = ioctl(g.kvm_fd, KVM_CREATE_VM, 0);
	if (g.vm_fd < 0)
		die("KVM_CREATE_VM");
	if (g.ring_entries) {
		/* Before any vCPU, and the bitmap before any memslot. */
		int rc = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;

		if (check_ext(g.kvm_fd, rc) <= 0)
			rc = KVM_CAP_DIRTY_LOG_RING;
		if (enable_cap(g.vm_fd, rc, g.ring_entries *
			       sizeof(struct kvm_dirty_gfn)))
			die("enable a dirty ring of %u entries", g.ring_entries);
		if (enable_cap(g.vm_fd, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 1))
			die("enable KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP");
	}

	code = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED)
		die("mmap code");
	memcpy(code, guest_code, guest_code_size);
	if (!guest_code_size || memcmp(code, guest_code, guest_code_size))
		die("guest code copy");
	set_slot(CODE_SLOT, CODE_GPA, CODE_SIZE, code, 0);

	g.data = mmap(NULL, g.pages * g.page_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (g.data == MAP_FAILED)
		die("mmap data");

	mmap_size = ioctl(g.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ioctl(g.vm_fd, KVM_ARM_PREFERRED_TARGET, &init))
		die("KVM_ARM_PREFERRED_TARGET");
	for (i = 0; i < g.nvcpus; i++) {
		struct vcpu *v = &g.vcpus[i];

		v->id = i;
		v->fd = ioctl(g.vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			die("KVM_CREATE_VCPU");
		if (ioctl(v->fd, KVM_ARM_VCPU_INIT, &init))
			die("KVM_ARM_VCPU_INIT");
		v->run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED)
			die("mmap kvm_run");
		if (g.ring_entries) {
			v->ring = mmap(NULL, g.ring_entries *
				       sizeof(struct kvm_dirty_gfn),
				       PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
				       KVM_DIRTY_LOG_PAGE_OFFSET * g.page_size);
			if (v->ring == MAP_FAILED)
				die("mmap dirty ring");
		}
		stats_init(v);
	}
}

static void setup_vcpus(uint64_t seed, uint64_t writes, int sequential)
{
	int i;

	for (i = 0; i < g.nvcpus; i++) {
		int fd = g.vcpus[i].fd;
		uint64_t slice = g.pages / g.nvcpus;
		/* Ring mode: each vCPU writes its own slice, for attribution. */
		uint64_t base = g.ring_entries ? slice * i : 0;

		set_reg(fd, CORE_REG(regs.pc), CODE_GPA);
		set_reg(fd, CORE_REG(regs.regs[0]),
			DATA_GPA + base * g.page_size);
		set_reg(fd, CORE_REG(regs.regs[1]),
			g.ring_entries ? slice : g.pages);
		set_reg(fd, CORE_REG(regs.regs[2]),
			seed * 0x9e3779b97f4a7c15ULL + i + 1);
		set_reg(fd, CORE_REG(regs.regs[3]), MMIO_GPA);
		set_reg(fd, CORE_REG(regs.regs[4]), sequential ? slice : writes);
		set_reg(fd, CORE_REG(regs.regs[5]), 1);
		set_reg(fd, CORE_REG(regs.regs[6]), i + 1);
		set_reg(fd, CORE_REG(regs.regs[10]), sequential);
		set_reg(fd, CORE_REG(regs.regs[11]), base ? 0 : slice * i);
		set_reg(fd, CORE_REG(regs.regs[13]), g.progress);
	}
}

static int test_bit(uint64_t nr, const unsigned long *map)
{
	return (map[nr / (8 * sizeof(long))] >> (nr % (8 * sizeof(long)))) & 1;
}

static double get_log(void)
{
	struct kvm_dirty_log log = {
		.slot = DATA_SLOT,
		.dirty_bitmap = g.bitmap,
	};
	double t = now();

	if (ioctl(g.vm_fd, KVM_GET_DIRTY_LOG, &log))
		die("KVM_GET_DIRTY_LOG");
	return now() - t;
}

static double clear_log(void)
{
	struct kvm_clear_dirty_log c = {
		.slot = DATA_SLOT,
		.first_page = 0,
		.num_pages = g.pages,
		.dirty_bitmap = g.bitmap,
	};
	double t = now();

	if (ioctl(g.vm_fd, KVM_CLEAR_DIRTY_LOG, &c))
		die("KVM_CLEAR_DIRTY_LOG");
	return now() - t;
}

static void write_file(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(val, f) < 0 || fclose(f))
		die("write %s", path);
}

static int ring_vm(int ring_cap, int bitmap)
{
	int vm = ioctl(g.kvm_fd, KVM_CREATE_VM, 0);

	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ring_cap && enable_cap(vm, ring_cap, 65536 * 16))
		die("enable dirty ring");
	if (bitmap && enable_cap(vm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 1))
		die("enable KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP");
	return vm;
}

static void expect_refused(int r, int err, const char *what)
{
	if (!r || errno != err) {
		if (!r)
			errno = 0;
		die("%s: expected %s, got r=%d", what, strerror(err), r);
	}
}

static int ring_check(int accept)
{
	int vm, ring_cap, r;

	ring_cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	if (check_ext(g.kvm_fd, ring_cap) <= 0)
		ring_cap = KVM_CAP_DIRTY_LOG_RING;
	if (check_ext(g.kvm_fd, ring_cap) <= 0) {
		printf("dirty ring not supported, nothing to check\n");
		return 0;
	}

	/* ring without the bitmap, then the capability */
	vm = ring_vm(ring_cap, 0);
	r = enable_cap(vm, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1);
	expect_refused(r, EINVAL, "capability on a ring without bitmap");
	close(vm);

	/* ring and bitmap, then the capability */
	vm = ring_vm(ring_cap, 1);
	r = enable_cap(vm, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1);
	if (accept) {
		if (r)
			die("capability refused on a ring+bitmap VM");
		if (enable_cap(vm, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 0))
			die("disable capability");
	} else {
		expect_refused(r, EOPNOTSUPP, "capability on a ring+bitmap VM");
	}
	close(vm);

	/* capability first, then the ring */
	vm = ring_vm(0, 0);
	if (enable_cap(vm, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1))
		die("enable capability");
	/* a second enable must succeed without allocating again */
	if (enable_cap(vm, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1))
		die("second enable");
	r = enable_cap(vm, ring_cap, 65536 * 16);
	expect_refused(r, EINVAL, "dirty ring on a VM with the capability");
	/* disabling keeps the ring refused: the exclusion is for the VM's life */
	if (enable_cap(vm, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 0))
		die("disable capability");
	r = enable_cap(vm, ring_cap, 65536 * 16);
	expect_refused(r, EINVAL, "dirty ring after the capability was used");
	close(vm);
	printf("PASS: ring then capability: EINVAL without bitmap, %s with it; capability then ring: EINVAL\n",
	       accept ? "accepted" : "EOPNOTSUPP");
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = 20, cap_mode = 0, overflow_round = -1, bench = 0;
	int probe = 0, expect_cap = -1, do_ring = 0, log_toggle = 0;
	int ring_accept = 0;
	uint64_t writes = 1024, seed = 1, total_fn = 0, total_fp = 0;
	uint64_t total_dirty = 0, first_faults = 0, redirty_faults = 0;
	uint64_t redirty_pages = 0, total_own = 0, total_other = 0;
	uint64_t total_bitmap = 0, total_written = 0, total_full = 0;
	double get_total = 0, clear_total = 0, dirty_total = 0;
	int cap_on = 0, r, i, opt;
	static const struct option opts[] = {
		{ "probe", no_argument, NULL, 'P' },
		{ "expect-cap", required_argument, NULL, 'E' },
		{ "cap", required_argument, NULL, 'c' },
		{ "manual", no_argument, NULL, 'm' },
		{ "overflow", required_argument, NULL, 'o' },
		{ "ring-check", no_argument, NULL, 'R' },
		{ "ring-accept", no_argument, NULL, 'A' },
		{ "ring", required_argument, NULL, 'g' },
		{ "progress", required_argument, NULL, 'G' },
		{ "log-toggle", no_argument, NULL, 'L' },
		{ "bench", no_argument, NULL, 'b' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "pages", required_argument, NULL, 'p' },
		{ "writes", required_argument, NULL, 'w' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "seed", required_argument, NULL, 's' },
		{ }
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGUSR1, &(struct sigaction){ .sa_handler = sig_noop }, NULL);
	g.pages = 4096;
	g.nvcpus = 2;
	g.page_size = getpagesize();
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'P': probe = 1; break;
		case 'E': expect_cap = atoi(optarg); break;
		case 'c':
			cap_mode = !strcmp(optarg, "on") ? 1 :
				   !strcmp(optarg, "toggle") ? 2 : 0;
			break;
		case 'm': g.manual = 1; break;
		case 'o': overflow_round = atoi(optarg); break;
		case 'R': do_ring = 1; break;
		case 'A': ring_accept = 1; break;
		case 'g': g.ring_entries = strtoul(optarg, NULL, 0); break;
		case 'G': g.progress = strtoull(optarg, NULL, 0); break;
		case 'L': log_toggle = 1; break;
		case 'b': bench = 1; break;
		case 'r': rounds = atoi(optarg); break;
		case 'p': g.pages = strtoull(optarg, NULL, 0); break;
		case 'w': writes = strtoull(optarg, NULL, 0); break;
		case 'v': g.nvcpus = atoi(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		default: die("bad option");
		}
	}
	if (g.nvcpus < 1 || g.nvcpus > MAX_VCPUS || g.pages < (uint64_t)g.nvcpus)
		die("bad vcpus/pages");
	if (g.ring_entries & (g.ring_entries - 1))
		die("--ring: a power of two");
	if (g.ring_entries && (g.manual || cap_mode == 2 || log_toggle ||
			       overflow_round >= 0))
		die("--ring: not with --manual, --cap toggle, --log-toggle, --overflow");
	if (g.ring_entries && !g.progress)
		g.progress = 128;

	g.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (g.kvm_fd < 0)
		die("open /dev/kvm");
	r = check_ext(g.kvm_fd, KVM_CAP_ARM_PAGE_TRACKING_DEVICE);
	printf("KVM API %d, KVM_CAP_ARM_PAGE_TRACKING_DEVICE = %d, page size %zu\n",
	       ioctl(g.kvm_fd, KVM_GET_API_VERSION, 0), r, g.page_size);
	if (expect_cap >= 0 && r != expect_cap) {
		errno = 0;
		die("capability is %d, expected %d", r, expect_cap);
	}
	if (probe) {
		printf("PASS: probe\n");
		return 0;
	}
	if (do_ring)
		return ring_check(ring_accept);

	create_vm();
	if (cap_mode && r <= 0) {
		errno = ENODEV;
		die("no page tracking device registered");
	}
	if (cap_mode == 0) {
		/* Without a device the capability must be refused. */
		if (r <= 0 && enable_cap(g.vm_fd, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1) == 0) {
			errno = 0;
			die("capability enabled without a device");
		}
	}
	if (g.manual &&
	    enable_cap(g.vm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		       KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE))
		die("enable manual protect");

	g.bitmap = calloc((g.pages + 63) / 64, 8);
	g.src = calloc(g.pages, sizeof(*g.src));
	if (!g.bitmap || !g.src)
		die("calloc");

	set_slot(DATA_SLOT, DATA_GPA, g.pages * g.page_size, g.data,
		 KVM_MEM_LOG_DIRTY_PAGES);
	if (cap_mode == 1) {
		if (enable_cap(g.vm_fd, KVM_CAP_ARM_PAGE_TRACKING_DEVICE, 1))
			die("enable capability");
		cap_on = 1;
	}
	setup_vcpus(seed, writes, bench);
	for (i = 0; i < g.nvcpus; i++)
		if (pthread_create(&g.vcpus[i].thread, NULL, vcpu_thread,
				   &g.vcpus[i]))
			die("pthread_create");

	printf("mode: cap=%s manual=%d pages=%llu vcpus=%d rounds=%d %s ring=%u progress=%llu\n",
	       cap_mode == 1 ? "on" : cap_mode == 2 ? "toggle" : "off",
	       g.manual, (unsigned long long)g.pages, g.nvcpus, rounds,
	       bench ? "sequential (bench)" : "random", g.ring_entries,
	       (unsigned long long)g.progress);
	/* Start from a clean log: the first round is compared with it. */
	get_log();
	if (g.manual)
		clear_log();

	for (r = 1; r <= rounds; r++) {
		uint64_t fn = 0, fp = 0, dirty = 0, written = 0, p;
		uint64_t faults0 = other_exits(), faults;
		double t, tget, tclear = 0;
		uint64_t own = 0, other = 0, bitmap_only = 0, full = 0;

		memset(g.src, 0, g.pages * sizeof(*g.src));
		if (r == overflow_round) {
			write_file(INJECT_PATH, "1");
			printf("round %d: injected one device overflow\n", r);
		}
		t = now();
		start_round(r);
		/* toggle: switch while the vCPUs run, every other round */
		if (cap_mode == 2 && r % 2 == 0) {
			if (enable_cap(g.vm_fd, KVM_CAP_ARM_PAGE_TRACKING_DEVICE,
				       !cap_on))
				die("toggle capability to %d", !cap_on);
			cap_on = !cap_on;
		}
		if (log_toggle && r % 5 == 0) {
			/* Stop logging; pages written now need not be reported. */
			set_slot(DATA_SLOT, DATA_GPA, g.pages * g.page_size,
				 g.data, 0);
		}
		wait_round();
		t = now() - t;
		dirty_total += t;
		faults = other_exits() - faults0;
		if (log_toggle && r % 5 == 0) {
			set_slot(DATA_SLOT, DATA_GPA, g.pages * g.page_size,
				 g.data, KVM_MEM_LOG_DIRTY_PAGES);
			/* Restarting logging reports nothing old: skip checks. */
			get_log();
			if (g.manual)
				clear_log();
			printf("round %d: logging stopped and restarted\n", r);
			continue;
		}

		if (g.ring_entries) {
			/* The rings first, then the bitmap for what did not fit. */
			for (i = 0; i < g.nvcpus; i++) {
				ring_harvest(&g.vcpus[i]);
				full += g.vcpus[i].ring_full_exits;
				g.vcpus[i].ring_full_exits = 0;
			}
			ring_reset();
		}
		tget = get_log();
		get_total += tget;
		for (p = 0; p < g.pages; p++) {
			uint64_t v = *(volatile uint64_t *)(g.data + p * g.page_size);
			int d = test_bit(p, g.bitmap);

			if (g.ring_entries) {
				uint64_t tag = *(volatile uint64_t *)(g.data + p * g.page_size + 8);
				uint16_t own_bit = tag >= 1 && tag <= (uint64_t)g.nvcpus ?
						   1 << (tag - 1) : 0;

				if (d)
					g.src[p] |= SRC_BITMAP;
				d = !!g.src[p];
				if (v == (uint64_t)r && (g.src[p] & own_bit))
					own++;
				else if (v == (uint64_t)r && (g.src[p] & ~SRC_BITMAP))
					other++;
				else if (v == (uint64_t)r && d)
					bitmap_only++;
			}
			dirty += d;
			if (v == (uint64_t)r) {
				written++;
				fn += !d;
			} else {
				fp += d;
			}
		}
		if (g.manual) {
			tclear = clear_log();
			clear_total += tclear;
		}
		total_fn += fn;
		total_fp += fp;
		total_dirty += dirty;
		if (r == 1) {
			first_faults += faults;
		} else {
			redirty_faults += faults;
			redirty_pages += written;
		}
		if (bench) {
			printf("Iteration %d dirty memory time: %.9fs\n", r, t);
			printf("Iteration %d get dirty log time: %.9fs\n", r, tget);
			if (g.manual)
				printf("Iteration %d clear dirty log time: %.9fs\n",
				       r, tclear);
			printf("Iteration %d faults: %llu written pages: %llu faults/page: %.4f\n",
			       r, (unsigned long long)faults,
			       (unsigned long long)written,
			       written ? (double)faults / written : 0.0);
		} else if (g.ring_entries) {
			printf("round %d: cap=%d written=%llu own-ring=%llu other-ring=%llu bitmap-only=%llu false-neg=%llu false-pos=%llu ring-full-exits=%llu exits=%llu\n",
			       r, cap_on, (unsigned long long)written,
			       (unsigned long long)own, (unsigned long long)other,
			       (unsigned long long)bitmap_only,
			       (unsigned long long)fn, (unsigned long long)fp,
			       (unsigned long long)full,
			       (unsigned long long)faults);
		} else {
			printf("round %d: cap=%d written=%llu dirty=%llu false-neg=%llu false-pos=%llu exits=%llu\n",
			       r, cap_on, (unsigned long long)written,
			       (unsigned long long)dirty, (unsigned long long)fn,
			       (unsigned long long)fp, (unsigned long long)faults);
		}
		total_own += own;
		total_other += other;
		total_bitmap += bitmap_only;
		total_written += written;
		total_full += full;
		if (r == overflow_round && dirty != g.pages) {
			errno = 0;
			die("round %d: overflow did not mark every page dirty (%llu of %llu)",
			    r, (unsigned long long)dirty,
			    (unsigned long long)g.pages);
		}
	}

	pthread_mutex_lock(&g.lock);
	g.quit = 1;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);

	if (bench) {
		printf("Get dirty log over %d iterations took %.9fs. (Avg %.9fs/iteration)\n",
		       rounds, get_total, get_total / rounds);
		if (g.manual)
			printf("Clear dirty log over %d iterations took %.9fs. (Avg %.9fs/iteration)\n",
			       rounds, clear_total, clear_total / rounds);
		printf("Dirty memory over %d iterations took %.9fs. (Avg %.9fs/iteration)\n",
		       rounds, dirty_total, dirty_total / rounds);
		printf("First-touch faults: %llu; re-dirty faults: %llu over %llu re-dirtied pages: %.4f faults/page\n",
		       (unsigned long long)first_faults,
		       (unsigned long long)redirty_faults,
		       (unsigned long long)redirty_pages,
		       redirty_pages ? (double)redirty_faults / redirty_pages : 0.0);
	}
	if (g.ring_entries)
		printf("ring: %llu written pages: %llu in the writing vCPU's ring, %llu in another vCPU's ring, %llu in the bitmap only; %llu ring-full exits, %llu stray entries\n",
		       (unsigned long long)total_written,
		       (unsigned long long)total_own,
		       (unsigned long long)total_other,
		       (unsigned long long)total_bitmap,
		       (unsigned long long)total_full,
		       (unsigned long long)g.ring_stray);
	if (total_fn) {
		errno = 0;
		die("%llu false negatives", (unsigned long long)total_fn);
	}
	printf("PASS: %d rounds, 0 false negatives, %llu false positives, %llu dirty reported\n",
	       rounds, (unsigned long long)total_fp,
	       (unsigned long long)total_dirty);
	return 0;
}
