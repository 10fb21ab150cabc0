// SPDX-License-Identifier: MIT
/*
 * vmm_push with the real ptrack-vmm: a KVM guest (256 MiB, 2 vCPUs, random
 * writes) registers through libptrack; the test, as ptrackd, harvests it in
 * bitmap and ring modes and checks from its read-only view of guest memory
 * that every page that changed was pushed (the same rule as ptrack-vmm's
 * own checker: changed before harvest k means in H(k) or H(k+1)). Also:
 * pause holds the guest, resume releases it, stop ends the VMM, and a
 * killed VMM is an error, not a hang.
 */
#include "pt_test.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "source/vmm_push.h"

#define PAGE 4096u

struct gt_sink {
	struct pt_dirty_sink sink;
	uint64_t npages;
	uint64_t *h; /* this harvest */
	uint64_t bad, bitmaps, rings;
};

static void set_page(struct gt_sink *g, uint64_t p)
{
	if (p < g->npages)
		g->h[p / 64] |= 1ull << (p % 64);
	else
		g->bad++;
}

static int g_bitmap(struct pt_dirty_sink *s, uint32_t region, uint64_t first,
		    uint64_t npages, const uint64_t *words)
{
	struct gt_sink *g = (struct gt_sink *)s;
	uint64_t i;

	g->bitmaps++;
	if (region != 0) {
		g->bad++;
		return 0;
	}
	for (i = 0; i < npages; i++)
		if ((words[i / 64] >> (i % 64)) & 1)
			set_page(g, first + i);
	return 0;
}

static int g_ring(struct pt_dirty_sink *s, int vcpu, const uint64_t *gfns,
		  size_t n)
{
	struct gt_sink *g = (struct gt_sink *)s;
	size_t i;

	g->rings++;
	if (vcpu < 0 || vcpu > 1)
		g->bad++;
	for (i = 0; i < n; i++)
		set_page(g, gfns[i]);
	return 0;
}

static int g_all(struct pt_dirty_sink *s, uint32_t region)
{
	struct gt_sink *g = (struct gt_sink *)s;

	(void)region;
	memset(g->h, 0xff, (g->npages + 63) / 64 * 8);
	return 0;
}

static const struct pt_dirty_sink_ops g_ops = {
	.bitmap = g_bitmap,
	.ring = g_ring,
	.all = g_all,
};

/* Shadow-copy checker over the daemon's read-only mapping. */
struct gt {
	struct gt_sink s;
	const uint8_t *mem;
	uint8_t *shadow;
	uint64_t *c_prev, *c, *h_prev;
	uint64_t fn, changed, harvested;
};

static int gt_init(struct gt *g, const struct pt_mem_region *r)
{
	size_t words;

	memset(g, 0, sizeof(*g));
	g->s.sink.ops = &g_ops;
	g->s.npages = r->size / PAGE;
	g->mem = r->hva;
	words = (g->s.npages + 63) / 64;
	g->s.h = calloc(words, 8);
	g->c = calloc(words, 8);
	g->c_prev = calloc(words, 8);
	g->h_prev = calloc(words, 8);
	g->shadow = malloc(r->size);
	if (!g->s.h || !g->c || !g->c_prev || !g->h_prev || !g->shadow)
		return -ENOMEM;
	memcpy(g->shadow, g->mem, r->size);
	return 0;
}

static void gt_release(struct gt *g)
{
	free(g->s.h);
	free(g->c);
	free(g->c_prev);
	free(g->h_prev);
	free(g->shadow);
}

static uint64_t popcount(const uint64_t *w, size_t n)
{
	uint64_t c = 0;

	while (n--)
		c += __builtin_popcountll(w[n]);
	return c;
}

/* After harvest k into g->s.h: C(k-1) must be within H(k-1) | H(k). */
static void gt_round(struct gt *g)
{
	size_t words = (g->s.npages + 63) / 64, w;
	uint64_t p, *t;

	memset(g->c, 0, words * 8);
	for (p = 0; p < g->s.npages; p++) {
		if (!memcmp(g->mem + p * PAGE, g->shadow + p * PAGE, PAGE))
			continue;
		memcpy(g->shadow + p * PAGE, g->mem + p * PAGE, PAGE);
		g->c[p / 64] |= 1ull << (p % 64);
		g->changed++;
	}
	for (w = 0; w < words; w++)
		g->fn += __builtin_popcountll(g->c_prev[w] &
					      ~(g->h_prev[w] | g->s.h[w]));
	g->harvested += popcount(g->s.h, words);
	memcpy(g->h_prev, g->s.h, words * 8);
	memset(g->s.h, 0, words * 8);
	t = g->c_prev;
	g->c_prev = g->c;
	g->c = t;
}

/* With the guest paused after the last harvest: C(last) within H(last). */
static void gt_final(struct gt *g)
{
	size_t words = (g->s.npages + 63) / 64, w;

	for (w = 0; w < words; w++)
		g->fn += __builtin_popcountll(g->c_prev[w] & ~g->h_prev[w]);
}

/* --- the VMM child -------------------------------------------------------- */

struct child {
	char dir[64], path[108];
	pid_t pid;
	int lfd, pidfd;
};

/* How the guest runs and how the test harvests it. */
struct run {
	const char *mode, *mem, *ring_entries;
	int rounds, interval_ms;
	bool folds; /* ring mode: expect a folded (bitmap) harvest */
};

static int spawn_vmm(struct child *ch, const struct run *r)
{
	char bin[4096];

	snprintf(ch->dir, sizeof(ch->dir), "/tmp/ptvmm-test-XXXXXX");
	if (!mkdtemp(ch->dir))
		return -errno;
	snprintf(ch->path, sizeof(ch->path), "%s/vmm.sock", ch->dir);
	ch->lfd = pt_vmm_listen(ch->path);
	if (ch->lfd < 0)
		return ch->lfd;
	snprintf(bin, sizeof(bin), "%s/ptrack-vmm", pt_test_bindir());
	ch->pid = fork();
	if (ch->pid == 0) {
		execl(bin, bin, "--mem", r->mem, "--vcpus", "2", "--pattern",
		      "random", "--dirty", r->mode, "--ring-entries",
		      r->ring_entries, "--ptrackd", ch->path, (char *)NULL);
		_exit(127);
	}
	if (ch->pid < 0)
		return -errno;
	ch->pidfd = (int)syscall(SYS_pidfd_open, ch->pid, 0);
	return ch->pidfd < 0 ? -errno : 0;
}

/* The VMM's registration, within 30 s; -ECHILD at once if it exited
 * first (it could not create its VM, say). */
static int accept_vmm(struct child *ch, struct pt_dirty_source **src)
{
	struct pollfd p[2] = { { .fd = ch->lfd, .events = POLLIN },
			       { .fd = ch->pidfd, .events = POLLIN } };
	int ret = poll(p, 2, 30000);

	if (ret < 0)
		return -errno;
	if (!ret)
		return -ETIMEDOUT;
	if (!(p[0].revents & POLLIN))
		return -ECHILD;
	return pt_vmm_accept(ch->lfd, 0, src);
}

/* Exit status of the child, waiting at most 5 s (then killing it). */
static int reap(struct child *ch)
{
	struct pollfd p = { .fd = ch->pidfd, .events = POLLIN };
	int st;

	if (poll(&p, 1, 5000) != 1) {
		kill(ch->pid, SIGKILL);
		waitpid(ch->pid, &st, 0);
		st = -1;
	} else if (waitpid(ch->pid, &st, 0) != ch->pid) {
		st = -1;
	}
	close(ch->pidfd);
	close(ch->lfd);
	unlink(ch->path);
	rmdir(ch->dir);
	return st;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

static uint64_t harvest_count(struct pt_dirty_source *src, struct gt *g)
{
	size_t words = (g->s.npages + 63) / 64;
	uint64_t n;

	CU_ASSERT_EQUAL(src->ops->harvest(src, &g->s.sink), 0);
	n = popcount(g->s.h, words);
	memset(g->s.h, 0, words * 8);
	return n;
}

static void run_mode(const struct run *r, Ptrack__V1__DirtySource kind)
{
	struct pt_dirty_source *src = NULL;
	struct child ch = { 0 };
	double t0, dt, sum_ms = 0, max_ms = 0;
	struct gt g;
	int k, st, ret;

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(spawn_vmm(&ch, r) == 0);
	ret = accept_vmm(&ch, &src);
	CU_ASSERT_EQUAL(ret, 0);
	if (ret) {
		st = reap(&ch);
		fprintf(stderr, "\n  ptrack-vmm: %s, exit status %d\n",
			strerror(-ret), WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return;
	}
	CU_ASSERT_EQUAL(src->kind, kind);
	CU_ASSERT_EQUAL(src->vcpus, 2);
	CU_ASSERT(src->regions[0].size >= 64u << 20);
	CU_ASSERT_EQUAL(src->ops->start(src), 0);
	CU_ASSERT_FATAL(gt_init(&g, &src->regions[0]) == 0);
	for (k = 0; k < r->rounds; k++) {
		sleep_ms(r->interval_ms);
		t0 = now_ms();
		CU_ASSERT_EQUAL(src->ops->harvest(src, &g.s.sink), 0);
		dt = now_ms() - t0;
		sum_ms += dt;
		max_ms = dt > max_ms ? dt : max_ms;
		gt_round(&g);
	}
	CU_ASSERT_EQUAL(src->ops->pause(src), 0);
	CU_ASSERT_EQUAL(src->ops->harvest(src, &g.s.sink), 0);
	gt_round(&g);
	gt_final(&g);
	printf("\n    %s: changed %lu harvested %lu false negatives %lu, "
	       "harvest through libptrack avg %.2f ms max %.2f ms\n",
	       r->mode, (unsigned long)g.changed, (unsigned long)g.harvested,
	       (unsigned long)g.fn, sum_ms / r->rounds, max_ms);
	CU_ASSERT_EQUAL(g.fn, 0);
	CU_ASSERT_EQUAL(g.s.bad, 0);
	CU_ASSERT(g.changed > 5000);
	if (kind == PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP)
		CU_ASSERT(g.s.bitmaps > 0 && g.s.rings == 0);
	if (kind == PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING)
		CU_ASSERT(g.s.rings > 0 && (g.s.bitmaps > 0) == r->folds);
	/* Paused: nothing more is written. */
	sleep_ms(100);
	CU_ASSERT_EQUAL(harvest_count(src, &g), 0);
	CU_ASSERT_EQUAL(src->ops->resume(src), 0);
	sleep_ms(100);
	CU_ASSERT(harvest_count(src, &g) > 1000);
	CU_ASSERT_EQUAL(src->ops->stop(src), 0);
	st = reap(&ch);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	src->ops->release(src);
	gt_release(&g);
}

static void test_push_bitmap(void)
{
	static const struct run r = { .mode = "bitmap",
				      .mem = "256M",
				      .ring_entries = "65536",
				      .rounds = 10,
				      .interval_ms = 50 };

	run_mode(&r, PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP);
}

static void test_push_ring(void)
{
	static const struct run r = { .mode = "ring",
				      .mem = "256M",
				      .ring_entries = "65536",
				      .rounds = 10,
				      .interval_ms = 50 };

	run_mode(&r, PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING);
}

/* Small rings filling between rarer harvests: ring-full exits, and the
 * VMM folding its pending GFNs into a bitmap push. */
static void test_push_ring_full(void)
{
	static const struct run r = { .mode = "ring",
				      .mem = "64M",
				      .ring_entries = "8192",
				      .rounds = 3,
				      .interval_ms = 1000,
				      .folds = true };

	run_mode(&r, PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING);
}

static void test_vmm_killed(void)
{
	struct pt_dirty_source *src = NULL;
	struct timespec t0, t1;
	struct child ch = { 0 };
	struct gt g;
	int ret;

	static const struct run r = { .mode = "bitmap",
				      .mem = "256M",
				      .ring_entries = "65536" };

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(spawn_vmm(&ch, &r) == 0);
	ret = accept_vmm(&ch, &src);
	CU_ASSERT_EQUAL(ret, 0);
	if (ret) {
		reap(&ch);
		return;
	}
	CU_ASSERT_FATAL(gt_init(&g, &src->regions[0]) == 0);
	CU_ASSERT_EQUAL(src->ops->harvest(src, &g.s.sink), 0);
	kill(ch.pid, SIGKILL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = src->ops->harvest(src, &g.s.sink);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CU_ASSERT(ret == -ECONNRESET || ret == -EPIPE);
	CU_ASSERT(t1.tv_sec - t0.tv_sec < 3);
	CU_ASSERT(src->ops->pause(src) < 0);
	/* The mapping outlives the VMM: its memory can still be read. */
	CU_ASSERT_EQUAL(((volatile uint8_t *)src->regions[0].hva)[0x1000] & 1,
			1);
	src->ops->release(src);
	gt_release(&g);
	reap(&ch);
}

PT_SUITE(vmm_push, PT_TEST(test_push_bitmap), PT_TEST(test_push_ring),
	 PT_TEST(test_push_ring_full), PT_TEST(test_vmm_killed));
