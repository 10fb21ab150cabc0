// SPDX-License-Identifier: MIT
/*
 * Live migration of a real KVM guest over loopback: ptrack-vmm (256 MiB,
 * 2 vCPUs writing random pages throughout) registers with `ptrackd source`
 * through libptrack, which migrates it to a `ptrackd peer`; the
 * destination file is compared byte for byte with the memory the source
 * dumped while the guest was paused. Also: the peer killed and restarted
 * at random points, a rogue peer, and a destination out of space.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eng.h"
#include "pt_test.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name

struct vrun {
	const char *dirty; /* bitmap | ring */
	const char *rate; /* guest pages/s, NULL: as fast as it runs */
	const char *bandwidth; /* source cap, NULL: none */
	const char *tmpfs; /* peer's destination on a tmpfs of this size */
	int kill_at_ms; /* kill and restart the peer, 0: never */
	int killed; /* the peer was still running when killed */
	const char *to; /* a rogue peer's address instead of ptrackd peer */

	char dir[PATH_MAX];
	int src_rc, peer_rc, vmm_rc;
	long cmp;
};

static pid_t spawn(const char *log, char *const argv[])
{
	pid_t pid = fork();
	int fd;

	if (pid)
		return pid;
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(97);
	execv(argv[0], argv);
	_exit(98);
}

static pid_t start_source(struct vrun *r, const char *to)
{
	char bin[PATH_MAX + 16], sock[PATH_MAX + 16], dump[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	char *argv[16] = { bin,	   "source",   "--vmm-socket",	sock,
			   "--to", (char *)to, "--dump-memory", dump };
	int n = 8;

	snprintf(bin, sizeof(bin), "%s/ptrackd", pt_test_bindir());
	snprintf(sock, sizeof(sock), "%s/vmm.sock", r->dir);
	snprintf(dump, sizeof(dump), "%s/source.mem", r->dir);
	snprintf(log, sizeof(log), "%s/source.log", r->dir);
	if (r->bandwidth) {
		argv[n++] = "--bandwidth";
		argv[n++] = (char *)r->bandwidth;
	}
	/* The rogue peer speaks plain TCP: it tests the protocol. */
	if (r->to) {
		argv[n++] = "--insecure";
	} else {
		argv[n++] = "--tls-dir";
		argv[n++] = (char *)pt_test_tls_dir();
	}
	argv[n] = NULL;
	return spawn(log, argv);
}

static pid_t start_vmm(struct vrun *r)
{
	char bin[PATH_MAX + 16], sock[PATH_MAX + 16], log[PATH_MAX + 16];
	char src_log[PATH_MAX + 16];
	char *argv[16] = { bin,		"--mem",   "256M",
			   "--vcpus",	"2",	   "--pattern",
			   "random",	"--dirty", (char *)r->dirty,
			   "--ptrackd", sock,	   NULL };

	snprintf(bin, sizeof(bin), "%s/ptrack-vmm", pt_test_bindir());
	snprintf(sock, sizeof(sock), "%s/vmm.sock", r->dir);
	snprintf(log, sizeof(log), "%s/vmm.log", r->dir);
	if (r->rate) {
		argv[11] = "--rate";
		argv[12] = (char *)r->rate;
	}
	/* The source says so once it listens (stdout is line-buffered). */
	snprintf(src_log, sizeof(src_log), "%s/source.log", r->dir);
	pt_wait_file(src_log, "waiting for a VMM on", 0, 5000);
	return spawn(log, argv);
}

/* Whether @name in the run's directory contains @what. */
static int log_has(const struct vrun *r, const char *name, const char *what)
{
	char path[PATH_MAX + 16], buf[16384];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", r->dir, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, what) != NULL;
}

static void show_log(const struct vrun *r, const char *name)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "sed 's/^/  %s: /' '%s/%s' >&2", name,
		 r->dir, name);
	if (system(cmd))
		return;
}

/* Compares the peer's destination with the source's paused dump. */
static long compare_dump(const struct vrun *r)
{
	char src[PATH_MAX + 16], dst[PATH_MAX + 32];
	struct stat st;
	uint8_t *p;
	long c;
	int fd;

	snprintf(src, sizeof(src), "%s/source.mem", r->dir);
	snprintf(dst, sizeof(dst), "%s/dest/dest.mem", r->dir);
	fd = open(src, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || st.st_size != 256 << 20) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	c = eu_compare(dst, p, (uint64_t)st.st_size);
	munmap(p, (size_t)st.st_size);
	return c;
}

static void run(struct vrun *r)
{
	char to[64];
	int port = eu_free_port();
	pid_t peer = -1, src, vmm;
	int st;

	eu_tmpdir(r->dir, sizeof(r->dir));
	CU_ASSERT_FATAL(r->dir[0] && port > 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	if (!r->to)
		peer = eu_start_peer(r->dir, port, r->tmpfs);
	src = start_source(r, r->to ? r->to : to);
	vmm = start_vmm(r);
	r->peer_rc = -1;
	if (r->kill_at_ms) {
		eu_wait_session(r->dir);
		usleep((useconds_t)r->kill_at_ms * 1000);
		/* Too late when the peer already finished. */
		r->killed = waitpid(peer, &st, WNOHANG) == 0;
		if (r->killed) {
			kill(peer, SIGKILL);
			CU_ASSERT_EQUAL(eu_wait(peer, 5000), 128 + SIGKILL);
			peer = eu_start_peer(r->dir, port, r->tmpfs);
		} else {
			r->peer_rc = WIFEXITED(st) ? WEXITSTATUS(st) : 99;
		}
	}
	r->src_rc = eu_wait(src, 120000);
	if (r->peer_rc < 0)
		r->peer_rc = peer > 0 ? eu_wait(peer, 30000) : 0;
	r->vmm_rc = eu_wait(vmm, 30000);
	r->cmp = r->src_rc ? -2 : compare_dump(r);
	if (r->src_rc || r->peer_rc || r->cmp) {
		show_log(r, "source.log");
		show_log(r, "vmm.log");
	}
}

static void check_identical(const char *dirty)
{
	/* 20k pages/s (80 MB/s) over 2 vCPUs: converges even when the
	 * host is loaded and ptrackd gets little CPU. */
	struct vrun r = { .dirty = dirty, .rate = "20000" };

	run(&r);
	CU_ASSERT_EQUAL(r.src_rc, 0);
	CU_ASSERT_EQUAL(r.peer_rc, 0);
	CU_ASSERT_EQUAL(r.cmp, 0);
	/* The guest wrote during the migration: at least one round after
	 * round 0 had dirty pages to send. */
	CU_ASSERT(log_has(&r, "source.log", "round 1"));
	CU_ASSERT(log_has(&r, "source.log", "(final, vCPUs paused)"));
	CU_ASSERT(log_has(&r, "vmm.log", "stopped after"));
	eu_rmdir(r.dir);
}

static void test_vmm_bitmap_identical(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	check_identical("bitmap");
}

static void test_vmm_ring_identical(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	check_identical("ring");
}

static void test_vmm_peer_restart(void)
{
	int runs = pt_test_long() ? 20 : 2, i, ok = 0, killed = 0;
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	for (i = 0; i < runs; i++) {
		struct vrun r = {
			.dirty = i % 2 ? "ring" : "bitmap",
			/* A guest that 12 MB/s outruns to convergence. */
			.bandwidth = "12000000",
			.rate = "1000",
			/* After the Hello, at a random point of the stream,
			 * which lasts ~350 ms (zero pages are not sent). A
			 * kill after the peer acked Complete is harmless: the
			 * restarted peer finds the session complete. */
			.kill_at_ms = (int)(rand_r(&seed) % 250),
		};

		run(&r);
		fprintf(stderr, "[restart %d: %s, kill at %d ms%s: %s]\n", i,
			r.dirty, r.kill_at_ms, r.killed ? "" : " (too late)",
			r.src_rc ? "reported failure" : "completed");
		killed += r.killed;
		if (r.src_rc == 0) {
			CU_ASSERT_EQUAL(r.cmp, 0);
			CU_ASSERT_EQUAL(r.peer_rc, 0);
			ok++;
		} else {
			CU_ASSERT(
				log_has(&r, "source.log", "migration failed"));
		}
		eu_rmdir(r.dir);
	}
	/* Resuming is the point: most runs must kill mid-stream and still
	 * complete. */
	CU_ASSERT(ok * 3 >= runs * 2);
	CU_ASSERT(killed * 2 >= runs);
}

static void test_vmm_rogue_peer(void)
{
	struct rogue g = { .mode = 0, .got_error = -1 };
	struct vrun r = { .dirty = "bitmap" };
	char to[64];

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	g.port = eu_free_port();
	snprintf(to, sizeof(to), "127.0.0.1:%d", g.port);
	g.lfd = pt_tcp_listen(to);
	CU_ASSERT_FATAL(g.lfd >= 0);
	pthread_create(&g.th, NULL, rogue_peer, &g);
	r.to = to;
	run(&r);
	pthread_join(g.th, NULL);
	close(g.lfd);
	CU_ASSERT_EQUAL(r.src_rc, 1);
	CU_ASSERT_EQUAL(g.got_error, E(BAD_MAGIC));
	CU_ASSERT(log_has(&r, "source.log", "BAD_MAGIC"));
	/* The VM was not paused and still writes after the failure. */
	CU_ASSERT(log_has(&r, "source.log", "the guest keeps running"));
	CU_ASSERT(!log_has(&r, "source.log", "keeps running: 0 pages"));
	eu_rmdir(r.dir);
}

static void test_vmm_no_space(void)
{
	struct vrun r = { .dirty = "bitmap", .tmpfs = "64m" };

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	run(&r);
	CU_ASSERT_EQUAL(r.src_rc, 1);
	CU_ASSERT_EQUAL(r.peer_rc, 1);
	CU_ASSERT(log_has(&r, "source.log", "NO_SPACE"));
	CU_ASSERT(log_has(&r, "source.log", "the guest keeps running"));
	CU_ASSERT(!log_has(&r, "source.log", "keeps running: 0 pages"));
	CU_ASSERT(!log_has(&r, "source.log", "migration complete"));
	eu_rmdir(r.dir);
}

PT_SUITE(migrate, PT_TEST(test_vmm_bitmap_identical),
	 PT_TEST(test_vmm_ring_identical), PT_TEST(test_vmm_peer_restart),
	 PT_TEST(test_vmm_rogue_peer), PT_TEST(test_vmm_no_space));
