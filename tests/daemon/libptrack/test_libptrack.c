// SPDX-License-Identifier: MIT
/*
 * libptrack against ptrackd's vmm_push source, in one process over a real
 * unix socket: an in-process VMM (a thread, or a forked child to die or
 * hang) with memfd guest memory pushes known bitmaps and ring batches
 * through a small shared ring, and a recording sink must see them exactly.
 */
#include "pt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libptrack/shm.h"
#include "libptrack/wire.h"
#include "ptrack/libptrack.h"
#include "source/vmm_push.h"
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define REGION_SIZE (4ull << 30) /* sparse memfd: 1M pages */
#define REGION_PAGES (REGION_SIZE / 4096)
#define WORDS (REGION_PAGES / 64)
#define RING_N 100000

/* --- expected data, generated the same way on both sides ----------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Round @k's bitmap: sparse blocks with zero runs, and the last word. */
static void expected_bitmap(unsigned int k, uint64_t *w)
{
	uint64_t i;

	memset(w, 0, WORDS * 8);
	for (i = 0; i < WORDS; i++)
		if (mix(i * 7 + k) % 5 == 0)
			w[i] = mix(i + ((uint64_t)k << 40)) | 1;
	w[WORDS - 1] |= 1ull << 63;
}

static uint64_t expected_gfn(unsigned int k, int vcpu, size_t i)
{
	return mix(i + ((uint64_t)k << 32) + ((uint64_t)vcpu << 48)) %
	       REGION_PAGES;
}

/* --- the in-process VMM --------------------------------------------------- */

struct fake_vmm {
	char path[108];
	int memfd;
	unsigned int harvests;
	int starts, pauses, resumes, stops;
	int fail_resume; /* errno to return from resume */
	int die_in_harvest; /* child: _exit mid-harvest */
	int hang_in_harvest; /* child: sleep mid-harvest */
	size_t shm_size;
	uint64_t region_size;
	int connect_ret, run_ret;
	uint64_t *words, *gfns;
};

static int f_start(struct ptl_client *c, void *o)
{
	(void)c;
	((struct fake_vmm *)o)->starts++;
	return 0;
}

static int f_harvest(struct ptl_client *c, void *o)
{
	struct fake_vmm *f = o;
	unsigned int k = ++f->harvests;
	size_t i;
	int v, ret;

	expected_bitmap(k, f->words);
	ret = ptl_push_bitmap(c, 7, 0, REGION_PAGES, f->words);
	if (ret)
		return ret;
	if (f->die_in_harvest)
		_exit(0);
	if (f->hang_in_harvest)
		sleep(5);
	for (v = 0; v < 2; v++) {
		for (i = 0; i < RING_N; i++)
			f->gfns[i] = expected_gfn(k, v, i);
		ret = ptl_push_ring(c, v, f->gfns, RING_N);
		if (ret)
			return ret;
	}
	return ptl_push_all(c, 7);
}

static int f_pause(struct ptl_client *c, void *o)
{
	(void)c;
	((struct fake_vmm *)o)->pauses++;
	return 0;
}

static int f_resume(struct ptl_client *c, void *o)
{
	struct fake_vmm *f = o;

	(void)c;
	f->resumes++;
	return f->fail_resume ? -f->fail_resume : 0;
}

static int f_stop(struct ptl_client *c, void *o)
{
	(void)c;
	((struct fake_vmm *)o)->stops++;
	return 0;
}

static const struct ptl_ops f_ops = {
	.start = f_start,
	.harvest = f_harvest,
	.pause = f_pause,
	.resume = f_resume,
	.stop = f_stop,
};

static void *fake_main(void *arg)
{
	struct fake_vmm *f = arg;
	struct ptl_region r = {
		.id = 7,
		.page_size = 4096,
		.gpa_base = 1ull << 32,
		.size = f->region_size,
		.fd = f->memfd,
	};
	struct ptl_vm vm = {
		.name = "fake",
		.uuid = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
			  16 },
		.vcpus = 2,
		.kind = PTL_DIRTY_RING,
		.regions = &r,
		.nregions = 1,
		.shm_size = f->shm_size,
	};
	struct ptl_client *c;

	f->connect_ret = ptl_connect(f->path, &vm, &f_ops, f, &c);
	if (f->connect_ret)
		return NULL;
	f->run_ret = ptl_run(c);
	ptl_close(c);
	return NULL;
}

/* --- the recording sink --------------------------------------------------- */

struct rec_sink {
	struct pt_dirty_sink sink;
	uint64_t *bitmap;
	uint64_t *gfns[2];
	size_t ngfns[2];
	int alls, bad;
};

static int s_bitmap(struct pt_dirty_sink *s, uint32_t region, uint64_t first,
		    uint64_t npages, const uint64_t *words)
{
	struct rec_sink *r = (struct rec_sink *)s;
	uint64_t i;

	if (region != 7 || first % 64 || first + npages > REGION_PAGES) {
		r->bad++;
		return 0;
	}
	for (i = 0; i < (npages + 63) / 64; i++)
		r->bitmap[first / 64 + i] |= words[i];
	return 0;
}

static int s_ring(struct pt_dirty_sink *s, int vcpu, const uint64_t *gfns,
		  size_t n)
{
	struct rec_sink *r = (struct rec_sink *)s;

	if (vcpu < 0 || vcpu > 1 || r->ngfns[vcpu] + n > RING_N) {
		r->bad++;
		return 0;
	}
	memcpy(r->gfns[vcpu] + r->ngfns[vcpu], gfns, n * 8);
	r->ngfns[vcpu] += n;
	return 0;
}

static int s_all(struct pt_dirty_sink *s, uint32_t region)
{
	struct rec_sink *r = (struct rec_sink *)s;

	r->alls += region == 7;
	return 0;
}

static const struct pt_dirty_sink_ops rec_ops = {
	.bitmap = s_bitmap,
	.ring = s_ring,
	.all = s_all,
};

static void sink_init(struct rec_sink *r)
{
	memset(r, 0, sizeof(*r));
	r->sink.ops = &rec_ops;
	r->bitmap = calloc(WORDS, 8);
	r->gfns[0] = calloc(RING_N, 8);
	r->gfns[1] = calloc(RING_N, 8);
}

static void sink_reset(struct rec_sink *r)
{
	memset(r->bitmap, 0, WORDS * 8);
	r->ngfns[0] = r->ngfns[1] = 0;
	r->alls = r->bad = 0;
}

static void sink_release(struct rec_sink *r)
{
	free(r->bitmap);
	free(r->gfns[0]);
	free(r->gfns[1]);
}

/* --- fixtures ------------------------------------------------------------- */

static char dir[64];

static int setup(struct fake_vmm *f, int *lfd)
{
	memset(f, 0, sizeof(*f));
	snprintf(dir, sizeof(dir), "/tmp/ptl-test-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(f->path, sizeof(f->path), "%s/vmm.sock", dir);
	f->memfd = memfd_create("fake-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	f->region_size = REGION_SIZE;
	f->shm_size = 64 << 10; /* small: records wrap around many times */
	f->words = calloc(WORDS, 8);
	f->gfns = calloc(RING_N, 8);
	if (f->memfd < 0 || ftruncate(f->memfd, REGION_SIZE) ||
	    fcntl(f->memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		return -errno;
	*lfd = pt_vmm_listen(f->path);
	return *lfd < 0 ? *lfd : 0;
}

static void teardown(struct fake_vmm *f, int lfd)
{
	if (lfd >= 0)
		close(lfd);
	unlink(f->path);
	rmdir(dir);
	close(f->memfd);
	free(f->words);
	free(f->gfns);
}

static void check_round(struct rec_sink *r, unsigned int k)
{
	uint64_t *w = calloc(WORDS, 8);
	size_t i, bad = 0;
	int v;

	expected_bitmap(k, w);
	CU_ASSERT_EQUAL(memcmp(w, r->bitmap, WORDS * 8), 0);
	for (v = 0; v < 2; v++) {
		CU_ASSERT_EQUAL(r->ngfns[v], RING_N);
		for (i = 0; i < r->ngfns[v]; i++)
			bad += r->gfns[v][i] != expected_gfn(k, v, i);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(r->alls, 1);
	CU_ASSERT_EQUAL(r->bad, 0);
	free(w);
}

/* --- tests ---------------------------------------------------------------- */

static void test_push_exact(void)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	struct rec_sink r;
	pthread_t th;
	uint64_t recs, bytes;
	unsigned int k;
	int lfd = -1;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	sink_init(&r);
	pthread_create(&th, NULL, fake_main, &f);
	CU_ASSERT_FATAL(pt_vmm_accept(lfd, 10000, &src) == 0);
	CU_ASSERT_STRING_EQUAL(src->name, "fake");
	CU_ASSERT_EQUAL(src->uuid[15], 16);
	CU_ASSERT_EQUAL(src->vcpus, 2);
	CU_ASSERT_EQUAL(src->kind, PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING);
	CU_ASSERT_EQUAL(src->nregions, 1);
	CU_ASSERT_EQUAL(src->regions[0].gpa_base, 1ull << 32);
	CU_ASSERT_EQUAL(src->ops->start(src), 0);
	for (k = 1; k <= 3; k++) {
		sink_reset(&r);
		CU_ASSERT_EQUAL(src->ops->harvest(src, &r.sink), 0);
		check_round(&r, k);
	}
	pt_vmm_stats(src, &recs, &bytes);
	/* 128 KiB bitmap + 1.6 MB of GFNs through a 60 KiB ring. */
	CU_ASSERT(bytes > 3 * (2 * RING_N * 8));
	CU_ASSERT_EQUAL(src->ops->stop(src), 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(f.connect_ret, 0);
	CU_ASSERT_EQUAL(f.run_ret, 0);
	CU_ASSERT_EQUAL(f.starts, 1);
	CU_ASSERT_EQUAL(f.stops, 1);
	src->ops->release(src);
	sink_release(&r);
	teardown(&f, lfd);
}

static void test_memory_shared(void)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	pthread_t th;
	char *m;
	int lfd = -1;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, f.memfd, 0);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	strcpy(m + 4096 * 3, "before");
	pthread_create(&th, NULL, fake_main, &f);
	CU_ASSERT_FATAL(pt_vmm_accept(lfd, 10000, &src) == 0);
	CU_ASSERT_STRING_EQUAL((char *)src->regions[0].hva + 4096 * 3,
			       "before");
	strcpy(m + 4096 * 5, "after");
	CU_ASSERT_STRING_EQUAL((char *)src->regions[0].hva + 4096 * 5, "after");
	CU_ASSERT_EQUAL(src->ops->stop(src), 0);
	pthread_join(th, NULL);
	src->ops->release(src);
	munmap(m, 1 << 20);
	teardown(&f, lfd);
}

static void test_pause_resume(void)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	pthread_t th;
	int lfd = -1;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	pthread_create(&th, NULL, fake_main, &f);
	CU_ASSERT_FATAL(pt_vmm_accept(lfd, 10000, &src) == 0);
	CU_ASSERT_EQUAL(src->ops->pause(src), 0);
	CU_ASSERT_EQUAL(src->ops->resume(src), 0);
	CU_ASSERT_EQUAL(src->ops->pause(src), 0);
	/* A VMM's error comes back as is, and the source stays usable. */
	f.fail_resume = EBUSY;
	CU_ASSERT_EQUAL(src->ops->resume(src), -EBUSY);
	f.fail_resume = 0;
	CU_ASSERT_EQUAL(src->ops->resume(src), 0);
	CU_ASSERT_EQUAL(src->ops->stop(src), 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(f.pauses, 2);
	CU_ASSERT_EQUAL(f.resumes, 3);
	src->ops->release(src);
	teardown(&f, lfd);
}

static void test_refused_layout(void)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	pthread_t th;
	int lfd = -1;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	f.region_size = 4096 * 10 + 100; /* not whole pages */
	pthread_create(&th, NULL, fake_main, &f);
	CU_ASSERT_EQUAL(pt_vmm_accept(lfd, 10000, &src), -EINVAL);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(f.connect_ret, -EINVAL);
	teardown(&f, lfd);
}

/* Guest memory that could shrink under ptrackd (an unsealed memfd; a
 * truncation then SIGBUSed the daemon) is refused at registration. */
static void test_refused_unsealed(void)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	pthread_t th;
	int lfd = -1, sealed;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	sealed = f.memfd;
	f.memfd = memfd_create("unsealed-ram", MFD_CLOEXEC);
	CU_ASSERT_FATAL(f.memfd >= 0 && !ftruncate(f.memfd, REGION_SIZE));
	pthread_create(&th, NULL, fake_main, &f);
	CU_ASSERT_EQUAL(pt_vmm_accept(lfd, 10000, &src), -EPERM);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(f.connect_ret, -EPERM);
	close(f.memfd);
	f.memfd = sealed;
	teardown(&f, lfd);
}

/* A VMM in a child that dies or hangs during a harvest. */
static void child_harvest(int die, int timeout_ms, int want)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	struct rec_sink r;
	struct timespec t0, t1;
	pid_t pid;
	double secs;
	int lfd = -1, st;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	sink_init(&r);
	f.die_in_harvest = die;
	f.hang_in_harvest = !die;
	pid = fork();
	if (pid == 0) {
		fake_main(&f);
		_exit(0);
	}
	CU_ASSERT_FATAL(pt_vmm_accept(lfd, 10000, &src) == 0);
	pt_vmm_set_timeout(src, timeout_ms);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(src->ops->harvest(src, &r.sink), want);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	CU_ASSERT(secs < 3);
	/* Later requests fail at once. */
	CU_ASSERT_EQUAL(src->ops->pause(src), want);
	CU_ASSERT_EQUAL(src->ops->resume(src), want);
	src->ops->release(src);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	sink_release(&r);
	teardown(&f, lfd);
}

static void test_vmm_dies(void)
{
	child_harvest(1, 10000, -ECONNRESET);
}

static void test_vmm_hangs(void)
{
	child_harvest(0, 300, -ETIMEDOUT);
}

/* --- a rogue VMM, speaking the protocol by hand --------------------------- */

enum rogue_kind {
	ROGUE_BAD_REGION,
	ROGUE_BAD_LEN,
	ROGUE_BAD_HEAD,
	ROGUE_SILENT
};

struct rogue {
	const char *path;
	enum rogue_kind kind;
};

static int rogue_register(int sock, int *fds, struct ptl_shm **shm)
{
	Ptrack__Vmm__V1__Region reg = PTRACK__VMM__V1__REGION__INIT;
	Ptrack__Vmm__V1__Region *regs[1] = { &reg };
	Ptrack__Vmm__V1__RegisterVm rv = PTRACK__VMM__V1__REGISTER_VM__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT, *in;
	uint8_t uuid[16] = { 0 };
	int none[1], n;

	fds[0] = memfd_create("rogue-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	fds[1] = eventfd(0, EFD_CLOEXEC);
	fds[2] = eventfd(0, EFD_CLOEXEC);
	fds[3] = memfd_create("rogue-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (ftruncate(fds[0], 64 << 10) || ftruncate(fds[3], 1 << 20) ||
	    fcntl(fds[0], F_ADD_SEALS, F_SEAL_SHRINK) ||
	    fcntl(fds[3], F_ADD_SEALS, F_SEAL_SHRINK))
		return -1;
	*shm = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
		    0);
	(*shm)->magic = PTL_SHM_MAGIC;
	(*shm)->version = PTL_SHM_VERSION;
	(*shm)->size = 64 << 10;
	(*shm)->data_off = PTL_SHM_HDR_SIZE;
	(*shm)->data_size = (64 << 10) - PTL_SHM_HDR_SIZE;
	reg.page_size = 4096;
	reg.size = 1 << 20;
	rv.version = 1;
	rv.name = "rogue";
	rv.uuid.data = uuid;
	rv.uuid.len = 16;
	rv.vcpus = 1;
	rv.kind = PTRACK__VMM__V1__DIRTY_KIND__DIRTY_KIND_BITMAP;
	rv.n_regions = 1;
	rv.regions = regs;
	rv.shm_size = 64 << 10;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REGISTER_VM;
	m.register_vm = &rv;
	if (ptl_send(sock, &m, fds, 4) || ptl_recv(sock, &in, none, 0, &n))
		return -1;
	ptl_msg_free(in);
	return 0;
}

/* Answers the first request with one broken record. */
static void rogue_answer(int sock, const struct rogue *r, struct ptl_shm *shm,
			 int data_efd)
{
	struct ptl_rec *rec = (void *)((uint8_t *)shm + PTL_SHM_HDR_SIZE);
	uint64_t one = 1, seq;
	int none[1], n;
	ptl_msg *in;

	if (ptl_recv(sock, &in, none, 0, &n))
		return;
	seq = in->request->seq;
	ptl_msg_free(in);
	memset(rec, 0, 64);
	rec->type = PTL_REC_BITMAP;
	rec->len = 40;
	rec->count = 64;
	if (r->kind == ROGUE_BAD_REGION)
		rec->id = 99;
	if (r->kind == ROGUE_BAD_LEN)
		rec->len = 1 << 20;
	shm->head = r->kind == ROGUE_BAD_HEAD ? 1ull << 40 : 40;
	(void)!write(data_efd, &one, sizeof(one));
	ptl_send_reply(sock, seq, 0, 1);
}

static void *rogue_main(void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const struct rogue *r = arg;
	struct ptl_shm *shm = NULL;
	int sock, fds[4], i;
	char c;

	strcpy(sa.sun_path, r->path);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)))
		goto out;
	if (r->kind == ROGUE_SILENT) {
		(void)!read(sock, &c, 1); /* until the daemon gives up */
		goto out;
	}
	if (rogue_register(sock, fds, &shm))
		goto out;
	rogue_answer(sock, r, shm, fds[1]);
	(void)!read(sock, &c, 1); /* until the daemon closes */
	munmap(shm, 64 << 10);
	for (i = 0; i < 4; i++)
		close(fds[i]);
out:
	close(sock);
	return NULL;
}

/* Malformed shared-memory records fail the source cleanly, for good. */
static void test_rogue_records(void)
{
	static const enum rogue_kind kinds[] = { ROGUE_BAD_REGION,
						 ROGUE_BAD_LEN,
						 ROGUE_BAD_HEAD };
	struct fake_vmm f;
	struct rec_sink rs;
	unsigned int i;
	int lfd = -1;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	sink_init(&rs);
	for (i = 0; i < 3; i++) {
		struct rogue r = { .path = f.path, .kind = kinds[i] };
		struct pt_dirty_source *src = NULL;
		pthread_t th;

		pthread_create(&th, NULL, rogue_main, &r);
		CU_ASSERT_FATAL(pt_vmm_accept(lfd, 10000, &src) == 0);
		pt_vmm_set_timeout(src, 2000);
		sink_reset(&rs);
		CU_ASSERT_EQUAL(src->ops->harvest(src, &rs.sink), -EBADMSG);
		CU_ASSERT_EQUAL(src->ops->pause(src), -EBADMSG);
		CU_ASSERT_EQUAL(rs.bad, 0);
		src->ops->release(src);
		pthread_join(th, NULL);
	}
	sink_release(&rs);
	teardown(&f, lfd);
}

/* A client that connects and never registers does not block accept. */
static void test_silent_client(void)
{
	struct pt_dirty_source *src = NULL;
	struct fake_vmm f;
	struct rogue r;
	pthread_t th;
	int lfd = -1;

	CU_ASSERT_FATAL(setup(&f, &lfd) == 0);
	r.path = f.path;
	r.kind = ROGUE_SILENT;
	pthread_create(&th, NULL, rogue_main, &r);
	CU_ASSERT_EQUAL(pt_vmm_accept(lfd, 10000, &src), -ETIMEDOUT);
	pthread_join(th, NULL);
	teardown(&f, lfd);
}

PT_SUITE(libptrack, PT_TEST(test_push_exact), PT_TEST(test_memory_shared),
	 PT_TEST(test_pause_resume), PT_TEST(test_refused_layout),
	 PT_TEST(test_refused_unsealed), PT_TEST(test_vmm_dies),
	 PT_TEST(test_vmm_hangs), PT_TEST(test_rogue_records),
	 PT_TEST(test_silent_client));
