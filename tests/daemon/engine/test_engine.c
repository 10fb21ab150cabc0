// SPDX-License-Identifier: MIT
/*
 * The engine end to end over loopback TCP: pt_migrate() of the in-process
 * memfd source (writers dirtying pages throughout) to a real `ptrackd peer`
 * process; the destination file is compared byte for byte with the paused
 * source. Failure paths: peer killed and restarted, rogue peer, rogue
 * source, destination out of space, no convergence.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"
#include "eng.h"
#include "memfd_source.h"
#include "pt_test.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define MIB (1ull << 20)

struct run {
	struct msrc_opts mo;
	struct pt_source_opts so;
	const char *tmpfs; /* peer's destination on a tmpfs of this size */
	int kill_at_ms; /* kill and restart the peer after this, 0: never */
	int sample_rss; /* record the peer's peak anonymous memory */
	uint64_t peer_rss_kib;

	char dir[PATH_MAX], to[64];
	struct msrc *m;
	pid_t peer;
	int rc, peer_rc;
	long cmp;
	struct pt_source_result res;
	pthread_t th;
};

static void *source_thread(void *arg)
{
	struct run *r = arg;

	r->rc = pt_migrate(msrc_source(r->m), &r->so, &r->res);
	return NULL;
}

/* The peer's private (anonymous) resident memory in KiB; its destination
 * memory is a shared file mapping and not counted. */
static uint64_t rss_anon_kib(pid_t pid);

/* The peer and its connection children (privilege separation): what
 * serving a migration costs the destination. */
static uint64_t peer_anon_kib(pid_t pid)
{
	char path[96];
	uint64_t kib = rss_anon_kib(pid);
	FILE *f;
	int c;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	f = fopen(path, "r");
	while (f && fscanf(f, "%d", &c) == 1)
		kib += rss_anon_kib((pid_t)c);
	if (f)
		fclose(f);
	return kib;
}

static uint64_t rss_anon_kib(pid_t pid)
{
	char path[64], line[256];
	uint64_t kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %" SCNu64, &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static void restart_peer(struct run *r, int port)
{
	kill(r->peer, SIGKILL);
	CU_ASSERT_EQUAL(eu_wait(r->peer, 5000), 128 + SIGKILL);
	r->peer = eu_start_peer(r->dir, port, r->tmpfs);
}

/* Runs one migration; fills rc, peer_rc and cmp (0: identical). */
static void migrate(struct run *r)
{
	char path[PATH_MAX + 32];
	const uint8_t *mem;
	uint64_t size;
	int port = eu_free_port();

	eu_tmpdir(r->dir, sizeof(r->dir));
	CU_ASSERT_FATAL(r->dir[0] && port > 0);
	snprintf(r->to, sizeof(r->to), "127.0.0.1:%d", port);
	r->so.to = r->to;
	r->so.tls = eu_tls_client();
	if (!r->so.reconnect_ms)
		r->so.reconnect_ms = 5000;
	CU_ASSERT_FATAL(msrc_create(&r->m, &r->mo) == 0);
	r->peer = eu_start_peer(r->dir, port, r->tmpfs);
	CU_ASSERT_FATAL(pthread_create(&r->th, NULL, source_thread, r) == 0);
	if (r->kill_at_ms) {
		eu_wait_session(r->dir);
		usleep((useconds_t)r->kill_at_ms * 1000);
		restart_peer(r, port);
	}
	while (r->sample_rss && pthread_tryjoin_np(r->th, NULL) != 0) {
		uint64_t kib = peer_anon_kib(r->peer);

		if (kib > r->peer_rss_kib)
			r->peer_rss_kib = kib;
		usleep(5000);
	}
	if (!r->sample_rss)
		pthread_join(r->th, NULL);
	r->peer_rc = eu_wait(r->peer, 20000);
	mem = msrc_mem(r->m, &size);
	snprintf(path, sizeof(path), "%s/dest/dest.mem", r->dir);
	/* The guest stays paused after success: compare now. */
	r->cmp = r->rc ? -2 : eu_compare(path, mem, size);
}

static void finish(struct run *r)
{
	msrc_destroy(r->m);
	eu_rmdir(r->dir);
}

/* After a failed migration the guest must be running and writing. */
static void assert_guest_runs(struct run *r)
{
	uint64_t w = msrc_writes(r->m);

	CU_ASSERT(!msrc_paused(r->m));
	usleep(50000);
	CU_ASSERT(msrc_writes(r->m) > w);
}

static void check_identical(int ring, unsigned int nregions)
{
	struct run r = {
		.mo = { .size = 64 * MIB,
			.nregions = nregions,
			.writers = 2,
			.rate = 20000,
			.ring = ring },
	};

	migrate(&r);
	CU_ASSERT_EQUAL(r.rc, 0);
	if (r.rc)
		fprintf(stderr, "migration failed: %s\n", r.res.err);
	CU_ASSERT_EQUAL(r.peer_rc, 0);
	CU_ASSERT_EQUAL(r.cmp, 0);
	CU_ASSERT(r.res.rounds >= 2);
	CU_ASSERT(r.res.zero_pages > 0);
	CU_ASSERT(msrc_paused(r.m));
	finish(&r);
}

static void test_bitmap_identical(void)
{
	check_identical(0, 2);
}

static void test_ring_identical(void)
{
	check_identical(1, 2);
}

/* Exit status of `ptrackd peer` restarted on @r's state, when no source
 * connects within @idle_ms. */
static int restarted_peer_rc(const struct run *r, int idle_ms)
{
	char bin[PATH_MAX + 16], mem[PATH_MAX + 32], state[PATH_MAX + 16];
	char listen[64], idle[16];
	const char *tls = pt_test_tls_dir(); /* before the fork */
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrackd", pt_test_bindir());
	snprintf(mem, sizeof(mem), "%s/dest/dest.mem", r->dir);
	snprintf(state, sizeof(state), "%s/state", r->dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", eu_free_port());
	snprintf(idle, sizeof(idle), "%d", idle_ms);
	pid = fork();
	if (!pid) {
		execl(bin, bin, "peer", "--listen", listen, "--mem-file", mem,
		      "--state-dir", state, "--idle-ms", idle, "--quiet",
		      "--tls-dir", tls, (char *)NULL);
		_exit(98);
	}
	return eu_wait(pid, 10000);
}

/* A peer restarted after it acked Complete (killed before it could exit)
 * reports no success on its own: a state file proves nothing about who
 * left it (issue 14), only that session's source asking does (see
 * test_switchover_peer_lost_after_complete). Its memory is untouched. */
static void test_peer_restart_after_complete(void)
{
	struct run r = {
		.mo = { .size = 16 * MIB, .writers = 1, .rate = 2000 },
	};
	char path[PATH_MAX + 32];
	const uint8_t *mem;
	uint64_t size;

	migrate(&r);
	CU_ASSERT_FATAL(r.rc == 0 && r.peer_rc == 0);
	CU_ASSERT_EQUAL(restarted_peer_rc(&r, 300), 1);
	mem = msrc_mem(r.m, &size);
	snprintf(path, sizeof(path), "%s/dest/dest.mem", r.dir);
	CU_ASSERT_EQUAL(eu_compare(path, mem, size), 0);
	finish(&r);
}

/* The peer is SIGKILLed at a random point and restarted from its state
 * file; each run must end identical, or fail and say so. */
static void test_peer_restart(void)
{
	int runs = pt_test_long() ? 20 : 3, i, ok = 0;
	unsigned int seed = (unsigned int)time(NULL);

	for (i = 0; i < runs; i++) {
		struct run r = {
			.mo = { .size = 32 * MIB,
				.writers = 2,
				.rate = 10000,
				.ring = i % 2 },
			/* Slow enough that the kill lands mid-stream. */
			.so = { .bandwidth = 60 * MIB, .window = 16 },
			/* Round 0 alone takes ~350 ms. */
			.kill_at_ms = 1 + rand_r(&seed) % 300,
		};

		migrate(&r);
		if (r.rc == 0) {
			CU_ASSERT_EQUAL(r.cmp, 0);
			CU_ASSERT_EQUAL(r.peer_rc, 0);
			/* It resumed rather than starting over. */
			CU_ASSERT(r.res.reconnects >= 1);
			ok++;
		} else {
			CU_ASSERT(r.res.err[0] != 0);
			assert_guest_runs(&r);
			fprintf(stderr, "restart run %d failed: %s\n", i,
				r.res.err);
		}
		fprintf(stderr,
			"restart run %d: kill at %d ms, rc %d, %llu reconnects, %llu resent\n",
			i, r.kill_at_ms, r.rc,
			(unsigned long long)r.res.reconnects,
			(unsigned long long)r.res.retransmitted);
		finish(&r);
	}
	/* Resuming is the point: most runs must complete. */
	CU_ASSERT(ok * 3 >= runs * 2);
}

/* A TCP relay that cuts the first connection after @cut_after bytes
 * from the source, then relays later connections whole. */
struct relay {
	int lfd;
	char to[64];
	uint64_t cut_after;
	int conns, stop;
	pthread_t th;
};

/* Relays until either side closes, or the cut; 1 when it cut. */
static int relay_conn(struct relay *rl, int a, int b, uint64_t cut)
{
	struct pollfd p[2] = { { .fd = a, .events = POLLIN },
			       { .fd = b, .events = POLLIN } };
	static char buf[65536];
	uint64_t up = 0;
	ssize_t n;
	int i;

	while (!rl->stop && poll(p, 2, 100) >= 0) {
		for (i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0 || write(p[!i].fd, buf, (size_t)n) != n)
				return 0;
			up += i == 0 ? (uint64_t)n : 0;
			if (cut && up >= cut)
				return 1;
		}
	}
	return 0;
}

static void *relay_main(void *arg)
{
	struct relay *rl = arg;
	struct pollfd p = { .fd = rl->lfd, .events = POLLIN };
	int a, b, i;

	while (!rl->stop) {
		if (poll(&p, 1, 100) != 1)
			continue;
		a = accept(rl->lfd, NULL, NULL);
		/* The peer may still be starting. */
		for (i = 0; (b = pt_tcp_connect(rl->to, 1000)) < 0 && i < 100;
		     i++)
			usleep(50000);
		if (a >= 0 && b >= 0) {
			rl->conns++;
			relay_conn(rl, a, b,
				   rl->conns == 1 ? rl->cut_after : 0);
		}
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
	}
	return NULL;
}

/* The connection drops mid-round while the peer lives on: the source
 * reconnects, resumes after the last acked frame, and the result is
 * identical. */
static void test_tcp_drop_resume(void)
{
	struct msrc_opts mo = { .size = 32 * MIB, .writers = 2, .rate = 10000 };
	struct pt_source_opts so = { .window = 16 };
	struct relay rl = { .cut_after = 5 * MIB };
	struct pt_source_result res;
	char dir[PATH_MAX], via[64], path[PATH_MAX + 32];
	const uint8_t *mem;
	uint64_t size;
	int port = eu_free_port(), rport = eu_free_port(), rc;
	struct msrc *m;
	pid_t peer;

	eu_tmpdir(dir, sizeof(dir));
	snprintf(rl.to, sizeof(rl.to), "127.0.0.1:%d", port);
	snprintf(via, sizeof(via), "127.0.0.1:%d", rport);
	rl.lfd = pt_tcp_listen(via);
	CU_ASSERT_FATAL(rl.lfd >= 0);
	pthread_create(&rl.th, NULL, relay_main, &rl);
	peer = eu_start_peer(dir, port, NULL);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	so.to = via;
	so.tls = eu_tls_client();
	rc = pt_migrate(msrc_source(m), &so, &res);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(res.reconnects, 1);
	CU_ASSERT(res.retransmitted < 16);
	CU_ASSERT_EQUAL(eu_wait(peer, 10000), 0);
	mem = msrc_mem(m, &size);
	snprintf(path, sizeof(path), "%s/dest/dest.mem", dir);
	CU_ASSERT_EQUAL(eu_compare(path, mem, size), 0);
	rl.stop = 1;
	pthread_join(rl.th, NULL);
	close(rl.lfd);
	msrc_destroy(m);
	eu_rmdir(dir);
}

/* Backpressure: the peer's own memory stays bounded by its frame buffer,
 * whatever the guest size (its destination is a file mapping). */
static void test_peer_memory_bounded(void)
{
	struct run r = {
		.mo = { .size = 256 * MIB,
			.writers = 2,
			.rate = 20000,
			.fill_all = 1 },
		.sample_rss = 1,
	};

	migrate(&r);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.cmp, 0);
	fprintf(stderr, "peer anonymous memory peak: %llu KiB\n",
		(unsigned long long)r.peer_rss_kib);
	/* 8.5 MiB frame buffer, bitmaps, libraries; not 256 MiB. */
	CU_ASSERT(r.peer_rss_kib > 0);
	CU_ASSERT(r.peer_rss_kib < 48 * 1024);
	finish(&r);
}

/* A round that would take far longer than the time limit fails at the
 * limit, and the guest keeps running. */
static void test_time_limit_mid_round(void)
{
	struct run r = {
		.mo = { .size = 32 * MIB, .writers = 1, .rate = 1000 },
		/* 22 MB of data at 2 MB/s: round 0 alone would take 11 s. */
		.so = { .bandwidth = 2000000, .time_limit_ms = 1500 },
	};

	migrate(&r);
	CU_ASSERT(r.rc < 0);
	CU_ASSERT(strstr(r.res.err, "time limit") != NULL);
	CU_ASSERT(r.res.total_ms < 4000);
	CU_ASSERT_EQUAL(r.peer_rc, 1);
	assert_guest_runs(&r);
	finish(&r);
}

/* The cap holds on average, and a capped run still converges. */
static void test_bandwidth_cap(void)
{
	struct run r = {
		.mo = { .size = 16 * MIB, .writers = 1, .rate = 1000 },
		.so = { .bandwidth = 20000000 },
	};
	double rate;

	migrate(&r);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.cmp, 0);
	rate = (double)r.res.bytes * 1e3 / (double)r.res.total_ms;
	CU_ASSERT(rate <= 20000000 * 1.1);
	/* 16 MiB of data at 20 MB/s: not faster than the cap allows. */
	CU_ASSERT(r.res.total_ms >= 400);
	finish(&r);
}

static void test_no_space(void)
{
	struct run r = {
		.mo = { .size = 32 * MIB, .writers = 1, .rate = 10000 },
		.tmpfs = "8m",
	};

	migrate(&r);
	CU_ASSERT(r.rc < 0);
	CU_ASSERT_EQUAL(r.res.code, E(NO_SPACE));
	CU_ASSERT_EQUAL(r.peer_rc, 1);
	assert_guest_runs(&r);
	finish(&r);
}

static void test_no_convergence(void)
{
	struct run r = {
		.mo = { .size = 32 * MIB, .writers = 2, .rate = 40000 },
		/* 4 MB/s cannot keep up with 80k pages/s. */
		.so = { .bandwidth = 4000000,
			.max_rounds = 2,
			.time_limit_ms = 20000,
			.downtime_ms = 50 },
	};

	r.mo.size = 8 * MIB;
	migrate(&r);
	CU_ASSERT(r.rc < 0);
	CU_ASSERT(strstr(r.res.err, "no convergence") != NULL);
	/* The peer was told and gave up rather than waiting. */
	CU_ASSERT_EQUAL(r.peer_rc, 1);
	assert_guest_runs(&r);
	finish(&r);
}

/* The stream runs under the congestion control asked for. */
static void test_tcp_congestion(void)
{
	struct run r = {
		.mo = { .size = 16 * MIB, .writers = 1, .rate = 1000 },
		.so = { .tcp_congestion = "reno" }, /* always built in */
	};

	migrate(&r);
	CU_ASSERT_EQUAL(r.rc, 0);
	if (r.rc)
		fprintf(stderr, "migration failed: %s\n", r.res.err);
	CU_ASSERT_EQUAL(r.peer_rc, 0);
	CU_ASSERT_EQUAL(r.cmp, 0);
	finish(&r);
}

/* An unknown one fails at once, saying which, and the guest runs on. */
static void test_tcp_congestion_unknown(void)
{
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 1000 };
	struct pt_source_opts so = { .tcp_congestion = "no-such-cc",
				     .reconnect_ms = 5000 };
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);
	struct pt_source_result res;
	struct msrc *m;
	char to[64];
	int lfd = pt_tcp_listen("127.0.0.1:0");

	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_FATAL(!getsockname(lfd, (struct sockaddr *)&a, &al));
	snprintf(to, sizeof(to), "127.0.0.1:%d", ntohs(a.sin_port));
	so.to = to;
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT(pt_migrate(msrc_source(m), &so, &res) < 0);
	CU_ASSERT(strstr(res.err, "no-such-cc") != NULL);
	CU_ASSERT(res.total_ms < 3000);
	CU_ASSERT(!msrc_paused(m));
	msrc_destroy(m);
	close(lfd);
}

/* ---- rogue ends -------------------------------------------------------- */

static void check_rogue_peer(int mode, int code)
{
	struct rogue g = { .mode = mode, .got_error = -1 };
	struct pt_source_result res;
	struct pt_source_opts so = { .reconnect_ms = 1000 };
	struct msrc_opts mo = { .size = 8 * MIB, .writers = 1, .rate = 10000 };
	struct msrc *m;
	char to[64];
	int r;

	g.port = eu_free_port();
	snprintf(to, sizeof(to), "127.0.0.1:%d", g.port);
	g.lfd = pt_tcp_listen(to);
	CU_ASSERT_FATAL(g.lfd >= 0);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	pthread_create(&g.th, NULL, rogue_peer, &g);
	so.to = to;
	r = pt_migrate(msrc_source(m), &so, &res);
	pthread_join(g.th, NULL);
	CU_ASSERT(r < 0);
	CU_ASSERT_EQUAL(res.code, code);
	CU_ASSERT_EQUAL(g.got_error, code);
	CU_ASSERT(strstr(res.err, "malformed") != NULL);
	CU_ASSERT(!msrc_paused(m));
	r = (int)msrc_writes(m);
	usleep(50000);
	CU_ASSERT((int)msrc_writes(m) > r);
	close(g.lfd);
	msrc_destroy(m);
}

static void test_rogue_peer_garbage(void)
{
	check_rogue_peer(0, E(BAD_MAGIC));
}

static void test_rogue_peer_bad_ack(void)
{
	check_rogue_peer(1, E(SEQUENCE));
}

/* A source that sends a frame with a broken CRC, or one before Hello: the
 * peer answers with an Error frame and drops that connection, but keeps
 * its port for the real source. */
static void check_rogue_source(int corrupt, int code)
{
	Ptrack__V1__PageData pd = PTRACK__V1__PAGE_DATA__INIT;
	struct rogue g = { .got_error = -1 };
	struct pt_txframe tx;
	char dir[PATH_MAX];
	pid_t peer;
	int fd;

	eu_tmpdir(dir, sizeof(dir));
	fd = eu_connect_new_peer(dir, &peer);
	CU_ASSERT_FATAL(fd >= 0);
	pd.region = 1;
	pd.page_count = 1;
	CU_ASSERT_FATAL(pt_txframe_init(&tx) == 0);
	CU_ASSERT(pt_frame_build(&tx, PTRACK__V1__MSG_TYPE__MSG_TYPE_PAGE_DATA,
				 0, 1, &pd.base, NULL, 0, PT_FRAME_MAX_DEFAULT,
				 NULL) == 0);
	if (corrupt)
		tx.hdr[4] ^= 0xff; /* the CRC field */
	CU_ASSERT_EQUAL(pt_frame_send(fd, &tx), 0);
	rogue_read_error(&g, fd);
	close(fd);
	pt_txframe_release(&tx);
	CU_ASSERT_EQUAL(g.got_error, code);
	CU_ASSERT_EQUAL(eu_wait(peer, 500), -1); /* still listening */
	eu_rmdir(dir);
}

/* A valid Hello, then PageData whose payload does not match its CRC: the
 * peer stores none of it (CRC first) and drops the connection, so that a
 * real source would resend it after Resume. */
static void test_rogue_source_bad_payload(void)
{
	Ptrack__V1__Hello h = PTRACK__V1__HELLO__INIT;
	Ptrack__V1__Region rg = PTRACK__V1__REGION__INIT, *rp = &rg;
	Ptrack__V1__PageData pd = PTRACK__V1__PAGE_DATA__INIT;
	struct rogue g = { .got_error = -1 };
	static uint8_t page[4096], uuid[16];
	struct iovec iov = { page, sizeof(page) };
	struct pt_txframe tx;
	struct pt_reader rd;
	struct pt_frame f;
	char dir[PATH_MAX];
	pid_t peer;
	int fd;

	eu_tmpdir(dir, sizeof(dir));
	fd = eu_connect_new_peer(dir, &peer);
	CU_ASSERT_FATAL(fd >= 0);
	rg.id = 1;
	rg.size = 1 << 20;
	rg.page_size = 4096;
	h.version = PT_PROTO_VERSION;
	h.role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h.vm_name = "rogue";
	h.vm_uuid.data = uuid;
	h.vm_uuid.len = 16;
	h.n_regions = 1;
	h.regions = &rp;
	h.vcpus = 1;
	h.dirty_source = PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	h.session_id = 42;
	CU_ASSERT_FATAL(pt_txframe_init(&tx) == 0);
	CU_ASSERT(pt_frame_build(&tx, PTRACK__V1__MSG_TYPE__MSG_TYPE_HELLO, 0,
				 1, &h.base, NULL, 0, PT_FRAME_MAX_DEFAULT,
				 NULL) == 0);
	CU_ASSERT_EQUAL(pt_frame_send(fd, &tx), 0);
	CU_ASSERT_FATAL(pt_reader_init(&rd, fd, PT_FRAME_MAX_DEFAULT) == 0);
	CU_ASSERT_EQUAL(pt_reader_next(&rd, &f, NULL), 1);
	CU_ASSERT_EQUAL(f.hdr.type, PTRACK__V1__MSG_TYPE__MSG_TYPE_HELLO);
	pt_reader_release(&rd);
	memset(page, 0xab, sizeof(page));
	pd.region = 1;
	pd.first_page = 3;
	pd.page_count = 1;
	CU_ASSERT(pt_frame_build(&tx, PTRACK__V1__MSG_TYPE__MSG_TYPE_PAGE_DATA,
				 0, 2, &pd.base, &iov, 1, PT_FRAME_MAX_DEFAULT,
				 NULL) == 0);
	page[100] ^= 1; /* after the CRC was computed */
	CU_ASSERT_EQUAL(pt_frame_send(fd, &tx), 0);
	rogue_read_error(&g, fd);
	close(fd);
	pt_txframe_release(&tx);
	CU_ASSERT_EQUAL(g.got_error, -1);
	CU_ASSERT_EQUAL(eu_wait(peer, 500), -1); /* waits for the Resume */
	{
		char path[PATH_MAX + 32];
		uint8_t got[4096] = { 1 };
		int mfd;

		snprintf(path, sizeof(path), "%s/dest/dest.mem", dir);
		mfd = open(path, O_RDONLY);
		CU_ASSERT(mfd >= 0 &&
			  pread(mfd, got, sizeof(got), 3 * 4096) == 4096);
		CU_ASSERT(got[0] == 0 && !memcmp(got, got + 1, 4095));
		if (mfd >= 0)
			close(mfd);
	}
	eu_rmdir(dir);
}

static void test_rogue_source_bad_crc(void)
{
	check_rogue_source(1, E(BAD_CRC));
}

static void test_rogue_source_no_hello(void)
{
	check_rogue_source(0, E(SESSION));
}

PT_SUITE(engine, PT_TEST(test_bitmap_identical), PT_TEST(test_ring_identical),
	 PT_TEST(test_peer_restart), PT_TEST(test_peer_restart_after_complete),
	 PT_TEST(test_tcp_drop_resume), PT_TEST(test_bandwidth_cap),
	 PT_TEST(test_time_limit_mid_round), PT_TEST(test_peer_memory_bounded),
	 PT_TEST(test_no_space), PT_TEST(test_no_convergence),
	 PT_TEST(test_tcp_congestion), PT_TEST(test_tcp_congestion_unknown),
	 PT_TEST(test_rogue_peer_garbage), PT_TEST(test_rogue_peer_bad_ack),
	 PT_TEST(test_rogue_source_bad_crc),
	 PT_TEST(test_rogue_source_no_hello),
	 PT_TEST(test_rogue_source_bad_payload));
