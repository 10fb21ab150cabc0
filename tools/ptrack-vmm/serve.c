// SPDX-License-Identifier: MIT
/*
 * ptrack-vmm's ptrackd mode: registers the guest through libptrack, starts
 * the vCPUs and answers ptrackd's requests with the VM's own harvests.
 */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ptrack/libptrack.h"
#include "state.h"

struct serve {
	struct vmm *vm;
	const struct vmm_serve_opts *so;
	struct vmm_harvest h;
	uint64_t harvests, pages;
	bool started, resumed, saved, stopped;
	unsigned int throttle;
	struct vmm_switch sw;
	/* The first pause (the switchover): stores and exits up to it. */
	double pause_s;
	uint64_t pause_stores;
	int64_t pause_exits;
};

static double now_s(void);

static int on_start(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;

	(void)c;
	/* What was written before start is the daemon's to copy. */
	return vmm_harvest(s->vm, &s->h);
}

static int push(struct ptl_client *c, struct serve *s)
{
	unsigned int i;
	int ret;

	/* A folded ring harvest is whole only as a bitmap. */
	if (s->vm->o.dirty == VMM_DIRTY_BITMAP || s->h.folded)
		return ptl_push_bitmap(c, 0, 0, s->vm->npages, s->h.bitmap);
	for (i = 0; i < s->vm->o.vcpus; i++) {
		ret = ptl_push_ring(c, i, s->h.gfns[i], s->h.ngfns[i]);
		if (ret)
			return ret;
	}
	/* What reached no ring is in the ring's bitmap: push it as well. */
	if (s->h.nring_bitmap)
		return ptl_push_bitmap(c, 0, 0, s->vm->npages,
				       s->h.ring_bitmap);
	return 0;
}

static int on_harvest(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;
	int ret = vmm_harvest(s->vm, &s->h);

	/* A failed vCPU stops writing: tell ptrackd rather than converge. */
	if (!ret)
		ret = __atomic_load_n(&s->vm->error, __ATOMIC_RELAXED);
	if (ret)
		return ret;
	s->harvests++;
	s->pages += s->h.ndirty;
	return push(c, s);
}

static int on_pause(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;
	int ret;

	(void)c;
	ret = vmm_pause(s->vm);
	if (!ret && !s->pause_s) {
		s->pause_s = now_s();
		s->pause_stores = vmm_stores(s->vm);
		s->pause_exits = vmm_kernel_exits(s->vm);
	}
	return ret;
}

static int on_resume(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;
	int ret;

	(void)c;
	s->saved = false; /* the guest is ours again */
	if (s->started)
		return vmm_resume(s->vm);
	/* Incoming: the vCPUs start from the loaded state. */
	if (!s->sw.loaded)
		return -EINVAL;
	ret = vmm_start(s->vm);
	s->started = s->resumed = !ret;
	return ret;
}

static int on_stop(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;

	(void)c;
	vmm_stop(s->vm);
	s->stopped = true;
	return s->vm->error;
}

static int on_throttle(struct ptl_client *c, void *opaque, unsigned int pct)
{
	struct serve *s = opaque;

	(void)c;
	if (pct != s->throttle)
		printf("ptrack-vmm: vCPU throttle %u%%\n", pct);
	fflush(stdout);
	s->throttle = pct;
	return vmm_throttle(s->vm, pct);
}

static bool inject(const struct serve *s, const char *fault)
{
	return s->so->inject && !strcmp(s->so->inject, fault);
}

static int on_save_state(struct ptl_client *c, void *opaque, void **blob,
			 size_t *len)
{
	struct serve *s = opaque;
	int ret;

	(void)c;
	ret = vmm_save_state(s->vm, s->so->verify_memory, blob, len);
	s->saved = !ret;
	if (!ret && inject(s, "corrupt-state"))
		((uint8_t *)*blob)[0] ^= 0xff;
	return ret;
}

static int on_load_state(struct ptl_client *c, void *opaque, const void *blob,
			 size_t len)
{
	struct serve *s = opaque;
	const char *why = "";
	int ret;

	(void)c;
	if (!s->so->incoming || s->started)
		return -EBUSY;
	if (inject(s, "die-in-load"))
		_exit(9);
	if (inject(s, "slow-load"))
		sleep(3);
	ret = vmm_load_state(s->vm, blob, len, &s->sw, &why);
	if (ret)
		fprintf(stderr, "ptrack-vmm: state refused: %s: %s\n", why,
			strerror(-ret));
	return ret;
}

static const struct ptl_ops serve_ops = {
	.start = on_start,
	.harvest = on_harvest,
	.pause = on_pause,
	.resume = on_resume,
	.stop = on_stop,
	.save_state = on_save_state,
	.load_state = on_load_state,
	.throttle = on_throttle,
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Waits @ms (0: for ever) or until one of @sigs (0-terminated) arrives,
 * caught instead of their default action; returns it or 0. */
static int wait_signal(const int *sigs, unsigned int ms)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec ts = { 0, 10000000L };
	unsigned int waited = 0;

	sigemptyset(&sa.sa_mask);
	for (; *sigs; sigs++)
		sigaction(*sigs, &sa, NULL);
	while (!got_signal && (!ms || waited < ms)) {
		nanosleep(&ts, NULL);
		waited += 10;
	}
	return got_signal;
}

/*
 * The guest runs here after the switchover: for the time asked, then it
 * is paused and checked against the state it arrived with.
 */
static int run_incoming(struct serve *s)
{
	struct vmm_switch *sw = &s->sw;
	int ret;

	wait_signal((const int[]){ SIGINT, SIGTERM, 0 }, s->so->run_ms);
	ret = vmm_pause(s->vm);
	if (!ret)
		ret = vmm_switch_check(s->vm, sw);
	if (ret)
		return ret;
	printf("ptrack-vmm: guest resumed on the destination: %s, "
	       "guest-visible downtime %.1f ms, %" PRIu64
	       " stores made on the destination, %s, %" PRIu64
	       " pages back in time (%" PRIu64 " rewritten here)\n",
	       sw->hashed ? "memory identical" : "memory not hashed",
	       (double)(sw->first_entry_ns - sw->last_exit_ns) / 1e6,
	       sw->stores,
	       sw->seq_backwards ? "SEQUENCE COUNTERS WENT BACK"
				 : "sequence counters continued",
	       sw->back_in_time, sw->rewritten);
	fflush(stdout);
	return sw->back_in_time || sw->seq_backwards ? 1 : 0;
}

/*
 * ptrackd went away after taking the state and before saying stop or
 * resume: the guest may already run on the destination. It stays paused
 * until the operator, who can ask the destination, decides.
 */
static int settle_unknown(struct serve *s)
{
	int sig;

	printf("ptrack-vmm: ptrackd went away during the switchover: the "
	       "guest stays PAUSED; if it does not run on the destination, "
	       "resume it here with kill -USR2 %d, else end it with kill %d\n",
	       (int)getpid(), (int)getpid());
	fflush(stdout);
	sig = wait_signal((const int[]){ SIGUSR2, 0 }, 0);
	if (sig != SIGUSR2)
		return 0;
	printf("ptrack-vmm: resuming the guest here\n");
	fflush(stdout);
	got_signal = 0;
	vmm_resume(s->vm);
	wait_signal((const int[]){ SIGINT, SIGTERM, 0 }, 0);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the guest for @ms and returns its store rate (pages/s). */
static double warmup(struct vmm *vm, unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	double t0 = now_s();
	uint64_t s0 = vmm_stores(vm);

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	return (vmm_stores(vm) - s0) / (now_s() - t0);
}

/* One line for bench/: store rates before and during the migration (up
 * to the switchover's pause), and the exits KVM handled itself (stage-2
 * faults, and timer interrupts) in that time. */
static void print_stats(struct serve *s, double before, double t0, uint64_t s0,
			int64_t x0)
{
	if (!s->pause_s) {
		s->pause_s = now_s();
		s->pause_stores = vmm_stores(s->vm);
		s->pause_exits = vmm_kernel_exits(s->vm);
	}
	printf("ptrack-vmm: stats {\"store_rate_before\":%.0f,"
	       "\"store_rate_during\":%.0f,\"kernel_exits\":%" PRId64
	       ",\"harvested_pages\":%" PRIu64 "}\n",
	       before, (s->pause_stores - s0) / (s->pause_s - t0),
	       s->pause_exits - x0, s->pages);
}

int vmm_serve_ptrackd(struct vmm *vm, const struct vmm_serve_opts *so)
{
	double before = 0, t0 = 0;
	uint64_t s0 = 0;
	int64_t x0 = 0;
	struct serve s = { .vm = vm, .so = so };
	const char *path = so->path, *name = so->name;
	struct ptl_region r = {
		.id = 0,
		.page_size = VMM_PAGE,
		.gpa_base = 0,
		.size = vm->o.mem,
		.fd = vm->memfd,
		.fd_offset = 0,
	};
	struct ptl_vm info = {
		.name = name,
		.vcpus = vm->o.vcpus,
		.kind = vm->o.dirty == VMM_DIRTY_RING ? PTL_DIRTY_RING
						      : PTL_DIRTY_BITMAP,
		.regions = &r,
		.nregions = 1,
		.incoming = so->incoming,
	};
	struct ptl_client *c;
	int ret;

	if (getrandom(info.uuid, sizeof(info.uuid), 0) != sizeof(info.uuid))
		return -EIO;
	ret = vmm_harvest_init(vm, &s.h);
	if (ret)
		return ret;
	if (!so->incoming && so->warmup_ms) {
		ret = vmm_start(vm);
		if (ret)
			goto out_harvest;
		s.started = true;
		before = warmup(vm, so->warmup_ms);
	}
	ret = ptl_connect(path, &info, &serve_ops, &s, &c);
	if (ret) {
		fprintf(stderr,
			"ptrack-vmm: cannot register with ptrackd at %s: %s\n",
			path, strerror(-ret));
		goto out_harvest;
	}
	if (!so->incoming && !s.started) {
		ret = vmm_start(vm);
		if (ret)
			goto out_close;
		s.started = true;
	}
	t0 = now_s();
	s0 = vmm_stores(vm);
	x0 = vmm_kernel_exits(vm);
	printf("ptrack-vmm: registered '%s' with %s%s\n", name, path,
	       so->incoming ? " as an incoming VM, waiting for its state" : "");
	fflush(stdout);
	do
		ret = ptl_dispatch(c);
	while (ret == 0 && !s.resumed);
	if (ret == 1)
		ret = 0;
	if (s.resumed)
		ret = run_incoming(&s);
	else if (so->incoming)
		printf("ptrack-vmm: incoming migration %s: guest discarded\n",
		       s.stopped ? "failed" : "abandoned");
	else if (ret < 0 && s.saved && !s.stopped)
		ret = settle_unknown(&s);
	vmm_stop(vm);
	if (!s.resumed)
		printf("ptrack-vmm: %s after %" PRIu64 " harvests, %" PRIu64
		       " dirty pages, %" PRIu64 " guest stores, %" PRIu64
		       " ring folds\n",
		       ret ? "disconnected" : "stopped", s.harvests, s.pages,
		       vmm_stores(vm), vm->ring_folds);
	if (!so->incoming)
		print_stats(&s, before, t0, s0, x0);
out_close:
	ptl_close(c);
out_harvest:
	vmm_harvest_release(vm, &s.h);
	vmm_switch_release(&s.sw);
	if (so->incoming && !s.resumed && ret >= 0)
		ret = -ECANCELED;
	return ret;
}
