// SPDX-License-Identifier: MIT
/*
 * Migration stream benchmark. In one run:
 *  1. page throughput of the migration stream (round 0 of an idle 256 MiB
 *     guest whose pages all hold data) against raw loopback TCP moving the
 *     same memory into destination memory the same way, and their ratio;
 *     and the same stream over TLS 1.3 (x509, throwaway certificates from
 *     tests/lib/make-certs.sh; AES-GCM), with the TLS / plain ratio;
 *  2. total time, downtime, rounds and bytes on the wire at several dirty
 *     rates of the in-process test guest (2 writer threads).
 * Usage: bench-migrate [SIZE_MIB [FRAME_BYTES [throughput-only]]]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memfd_source.h"
#include "engine/migrate.h"
#include "engine/tls.h"

#define MIB (1ull << 20)

static uint32_t frame_bytes; /* 0: the engine's default */
static struct pt_tls *tls_srv, *tls_cli; /* NULL: no TLS rows */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int listen_any(char *to, size_t len)
{
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);
	int fd = pt_tcp_listen("127.0.0.1:0");

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&a, &al))
		return -1;
	snprintf(to, len, "127.0.0.1:%d", ntohs(a.sin_port));
	return fd;
}

struct raw {
	int lfd;
	uint8_t *dst;
	uint64_t size, t_end;
};

/* Reads the whole memory straight into its destination. */
static void *raw_receiver(void *arg)
{
	struct raw *r = arg;
	int fd = accept(r->lfd, NULL, NULL);
	uint64_t got = 0;
	ssize_t n;

	while (fd >= 0 && got < r->size) {
		n = read(fd, r->dst + got, r->size - got);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	r->t_end = now_ns();
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* The congestion control the stream gets too, NULL: the system's. */
static int set_cc(int fd, const char *cc)
{
	return cc ? setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc))
		  : 0;
}

/* Raw TCP: the same memory, 1 MiB writes, no framing. Returns ns. */
static uint64_t raw_tcp(const uint8_t *mem, uint64_t size, const char *cc)
{
	struct raw r = { .size = size };
	char to[64];
	pthread_t th;
	uint64_t off = 0, t0;
	ssize_t n;
	int fd;

	r.dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	r.lfd = listen_any(to, sizeof(to));
	if (r.dst == MAP_FAILED || r.lfd < 0)
		return 0;
	memset(r.dst, 1, size); /* fault in, as the peer's fallocate does */
	pthread_create(&th, NULL, raw_receiver, &r);
	fd = pt_tcp_connect(to, 1000);
	if (fd >= 0 && set_cc(fd, cc)) {
		close(fd);
		fd = -1;
	}
	t0 = now_ns();
	while (fd >= 0 && off < size) {
		n = write(fd, mem + off, size - off < MIB ? size - off : MIB);
		if (n <= 0)
			break;
		off += (uint64_t)n;
	}
	pthread_join(th, NULL);
	if (fd >= 0)
		close(fd);
	close(r.lfd);
	if (memcmp(r.dst, mem, size) != 0)
		fprintf(stderr, "raw TCP: destination differs!\n");
	munmap(r.dst, size);
	return r.t_end - t0;
}

struct peer_th {
	struct pt_peer_opts o;
	struct pt_peer_result res;
	int rc;
};

static void *peer_main(void *arg)
{
	struct peer_th *p = arg;

	p->rc = pt_peer_run(&p->o, &p->res);
	return NULL;
}

/* One migration of @m to an in-process peer over loopback. */
static int migrate(struct msrc *m, struct pt_source_result *res, const char *cc,
		   int tls)
{
	struct peer_th p = { .o = { .mem_path = NULL, .quiet = 1 } };
	struct pt_source_opts so = { .frame_bytes = frame_bytes,
				     .tcp_congestion = cc };

	if (tls) {
		p.o.tls = tls_srv;
		so.tls = tls_cli;
	}
	char to[64];
	pthread_t th;
	int rc;

	p.o.lfd = listen_any(to, sizeof(to));
	if (p.o.lfd < 0)
		return -1;
	so.to = to;
	pthread_create(&th, NULL, peer_main, &p);
	rc = pt_migrate(msrc_source(m), &so, res);
	pthread_join(th, NULL);
	close(p.o.lfd);
	if (rc)
		fprintf(stderr, "migration failed: %s\n", res->err);
	return rc || p.rc ? -1 : 0;
}

/* The system's default TCP congestion control, "?" if unknown. */
static void default_cc(char *name, size_t len)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");

	snprintf(name, len, "?");
	if (f && fgets(name, (int)len, f))
		name[strcspn(name, "\n")] = 0;
	if (f)
		fclose(f);
}

/* Whether this host lets a socket use congestion control @cc. */
static int cc_usable(const char *cc)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return 0;
	r = set_cc(fd, cc);
	close(fd);
	return !r;
}

/* Raw TCP and round 0 of the stream, interleaved, both under @cc. */
static void throughput_cc(struct msrc *m, uint64_t size, const char *cc,
			  const char *label)
{
	struct pt_source_result res;
	uint64_t best_raw = UINT64_MAX, best_st = UINT64_MAX, ns;
	uint64_t best_tls = UINT64_MAX;
	uint64_t pages = size / 4096, wire = 0;
	const uint8_t *mem = msrc_mem(m, &size);
	double raw_gbs, st_gbs;
	char info[96] = "";
	int i;

	for (i = 0; i < 5; i++) {
		ns = raw_tcp(mem, size, cc);
		if (ns && ns < best_raw)
			best_raw = ns;
		if (migrate(m, &res, cc, 0))
			exit(1);
		msrc_source(m)->ops->resume(msrc_source(m));
		if (res.round0_ns < best_st) {
			best_st = res.round0_ns;
			wire = res.round0_bytes;
		}
		if (!tls_cli)
			continue;
		if (migrate(m, &res, cc, 1))
			exit(1);
		msrc_source(m)->ops->resume(msrc_source(m));
		if (res.round0_ns < best_tls)
			best_tls = res.round0_ns;
	}
	raw_gbs = (double)size / (double)best_raw;
	st_gbs = (double)size / (double)best_st;
	printf("  TCP congestion control: %s\n", label);
	printf("  %-28s %12s %9s %10s\n", "", "pages/s", "GB/s", "ms");
	printf("  %-28s %12.0f %9.2f %10.1f\n", "raw TCP (read into place)",
	       (double)pages * 1e9 / (double)best_raw, raw_gbs,
	       (double)best_raw / 1e6);
	printf("  %-28s %12.0f %9.2f %10.1f\n", "migration stream, round 0",
	       (double)pages * 1e9 / (double)best_st, st_gbs,
	       (double)best_st / 1e6);
	if (tls_cli) {
		pt_tls_last_info(info, sizeof(info));
		printf("  %-28s %12.0f %9.2f %10.1f  (%s)\n",
		       "migration stream, TLS",
		       (double)pages * 1e9 / (double)best_tls,
		       (double)size / (double)best_tls, (double)best_tls / 1e6,
		       info);
	}
	printf("  stream / raw: %.1f%% (goal >= 90%%); wire bytes %.1f MB for %.1f MB of pages\n",
	       100.0 * st_gbs / raw_gbs, (double)wire / 1e6,
	       (double)size / 1e6);
	if (tls_cli)
		printf("  TLS stream / plain stream: %.1f%%, TLS stream / raw: %.1f%%\n",
		       100.0 * (double)best_st / (double)best_tls,
		       100.0 * (double)best_raw / (double)best_tls);
}

static void throughput(uint64_t size)
{
	struct msrc_opts mo = { .size = size, .fill_all = 1 };
	char cc[64], label[96];
	struct msrc *m;

	if (msrc_create(&m, &mo)) {
		fprintf(stderr, "cannot create the test guest\n");
		exit(1);
	}
	msrc_mem(m, &size);
	default_cc(cc, sizeof(cc));
	printf("Page throughput, %llu MiB of data pages over loopback TCP (best of 5, interleaved)\n",
	       (unsigned long long)(size / MIB));
	snprintf(label, sizeof(label), "%s (the system's)", cc);
	throughput_cc(m, size, NULL, label);
	/*
	 * BBR without the fq qdisc paces every socket with hrtimers (TCP
	 * internal pacing). Measured on a 2-CPU VM, the stream then took
	 * twice the timer interrupts and half the throughput it gets under
	 * CUBIC, while the raw sender was barely slowed, even with the
	 * stream's copy and CRC disabled. The same pair under CUBIC, on both
	 * sockets, separates that from the stream's own costs (framing, the
	 * staging copy, CRC32C on both ends).
	 */
	if (strcmp(cc, "cubic") != 0 && cc_usable("cubic")) {
		throughput_cc(m, size, "cubic", "cubic (set on both sockets)");
		if (!strcmp(cc, "bbr"))
			printf("  bbr paces every socket with hrtimers unless the fq qdisc does: use\n"
			       "  ptrackd source --tcp-congestion cubic, or fq on the interface\n");
	}
	printf("\n");
	msrc_destroy(m);
}

static void dirty_rates(uint64_t size)
{
	static const uint64_t rates[] = { 0, 10000, 50000, 200000 };
	struct pt_source_result res;
	struct msrc *m;
	char label[32];
	size_t i;

	printf("Pre-copy of a %llu MiB guest, 2 writers (random pages), downtime limit %d ms\n",
	       (unsigned long long)(size / MIB), PT_DOWNTIME_MS_DEFAULT);
	printf("  %14s %10s %12s %7s %12s %10s\n", "pages/s", "total ms",
	       "downtime ms", "rounds", "wire MB", "writes");
	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct msrc_opts mo = { .size = size,
					.writers = rates[i] ? 2 : 0,
					.rate = rates[i] / 2 };

		if (msrc_create(&m, &mo))
			exit(1);
		if (rates[i])
			snprintf(label, sizeof(label), "%llu",
				 (unsigned long long)rates[i]);
		else
			snprintf(label, sizeof(label), "idle");
		usleep(100000);
		if (migrate(m, &res, NULL, 0)) {
			printf("  %14llu   failed: %s\n",
			       (unsigned long long)rates[i], res.err);
		} else {
			printf("  %14s %10llu %12llu %7llu %12.1f %10llu\n",
			       label, (unsigned long long)res.total_ms,
			       (unsigned long long)res.downtime_ms,
			       (unsigned long long)res.rounds,
			       (double)res.bytes / 1e6,
			       (unsigned long long)msrc_writes(m));
		}
		msrc_destroy(m);
	}
}

/* ---- the demo workload: ptrack-vmm through ptrackd ------------------ */

static char bindir[PATH_MAX];

/* Throwaway certificates (tests/lib/make-certs.sh) for the TLS rows. */
static void tls_setup(char *dir, size_t len)
{
	struct pt_tls_opts o = { .dir = dir };
	char cmd[3 * PATH_MAX], err[256];

	snprintf(dir, len, "/tmp/ptrack-bench-pki-XXXXXX");
	if (!mkdtemp(dir)) {
		dir[0] = 0;
		return;
	}
	snprintf(cmd, sizeof(cmd),
		 "bash '%s/../../../tests/lib/make-certs.sh' '%s'", bindir,
		 dir);
	if (system(cmd) == 0) {
		tls_srv = pt_tls_new(&o, 1, err, sizeof(err));
		tls_cli = tls_srv ? pt_tls_new(&o, 0, err, sizeof(err)) : NULL;
	}
	if (!tls_cli)
		fprintf(stderr, "no TLS rows: %s\n",
			tls_srv ? err : "cannot make certificates");
}

static void tls_cleanup(const char *dir)
{
	char cmd[PATH_MAX + 16];

	pt_tls_free(tls_cli);
	pt_tls_free(tls_srv);
	if (!dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

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

static int wait_exit(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs peer, source and guest; prints the source's summary as a row. */
static void vmm_row(const char *dir, const char *rate, const char *dirty)
{
	char ptrackd[PATH_MAX + 16], vmm[PATH_MAX + 16], to[64], sock[256];
	char mem[256], log[256], line[512];
	uint64_t rounds = 0, total = 0, down = 0;
	double mb = 0;
	pid_t peer, src, guest;
	FILE *f;
	int i, port = 20000 + (int)(now_ns() / 1000 % 20000);

	snprintf(ptrackd, sizeof(ptrackd), "%s/ptrackd", bindir);
	snprintf(vmm, sizeof(vmm), "%s/ptrack-vmm", bindir);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(sock, sizeof(sock), "%s/vmm.sock", dir);
	snprintf(mem, sizeof(mem), "%s/dest.mem", dir);
	snprintf(log, sizeof(log), "%s/peer.log", dir);
	peer = spawn(log,
		     (char *const[]){ ptrackd, "peer", "--listen", to,
				      "--mem-file", mem, "--idle-ms", "20000",
				      "--quiet", "--insecure", NULL });
	snprintf(log, sizeof(log), "%s/source.log", dir);
	src = spawn(log, (char *const[]){ ptrackd, "source", "--vmm-socket",
					  sock, "--to", to, "--quiet",
					  "--insecure", NULL });
	for (i = 0; i < 200 && access(sock, F_OK); i++)
		usleep(10000);
	snprintf(log, sizeof(log), "%s/vmm.log", dir);
	guest = spawn(log,
		      (char *const[]){ vmm, "--mem", "256M", "--vcpus", "2",
				       "--pattern", "random", "--rate",
				       (char *)rate, "--dirty", (char *)dirty,
				       "--ptrackd", sock, NULL });
	i = wait_exit(src);
	wait_exit(peer);
	wait_exit(guest);
	snprintf(log, sizeof(log), "%s/source.log", dir);
	f = fopen(log, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line,
			   "migration complete: %" SCNu64
			   " rounds, total %" SCNu64 " ms, downtime %" SCNu64
			   " ms, %lf MB",
			   &rounds, &total, &down, &mb) == 4)
			break;
	if (f)
		fclose(f);
	if (i || !rounds)
		printf("  %8s %7s   failed (source exit %d)\n", rate, dirty, i);
	else
		printf("  %8s %7s %10" PRIu64 " %12" PRIu64 " %7" PRIu64
		       " %12.1f\n",
		       rate, dirty, total, down, rounds, mb);
	unlink(mem);
}

static void demo_workload(void)
{
	static const char *const rates[] = { "5000", "20000", "0" };
	char dir[] = "/tmp/ptrack-bench-XXXXXX", vmm[PATH_MAX + 16];
	size_t i;

	snprintf(vmm, sizeof(vmm), "%s/ptrack-vmm", bindir);
	if (access("/dev/kvm", R_OK | W_OK) || access(vmm, X_OK)) {
		printf("\nDemo workload: skipped (needs /dev/kvm and %s)\n",
		       vmm);
		return;
	}
	if (!mkdtemp(dir))
		return;
	printf("\nDemo workload: ptrack-vmm 256 MiB, 2 vCPUs, random writes, "
	       "migrated by ptrackd over loopback (rate 0: as fast as the guest "
	       "runs)\n");
	printf("  %8s %7s %10s %12s %7s %12s\n", "pages/s", "log", "total ms",
	       "downtime ms", "rounds", "wire MB");
	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		vmm_row(dir, rates[i], "bitmap");
		vmm_row(dir, rates[i], "ring");
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 256) * MIB;
	ssize_t n = readlink("/proc/self/exe", bindir, sizeof(bindir) - 1);
	char pki[PATH_MAX];

	bindir[n > 0 ? n : 0] = 0;
	if (strrchr(bindir, '/'))
		*strrchr(bindir, '/') = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2)
		frame_bytes = (uint32_t)strtoul(argv[2], NULL, 0);
	tls_setup(pki, sizeof(pki));
	throughput(size);
	tls_cleanup(pki);
	if (argc > 3)
		return 0;
	dirty_rates(size);
	demo_workload();
	return 0;
}
