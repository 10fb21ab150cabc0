// SPDX-License-Identifier: MIT
/*
 * Switchover of a real KVM guest over loopback: ptrack-vmm (256 MiB,
 * 2 vCPUs writing random pages throughout) registered with `ptrackd source`
 * moves to an incoming ptrack-vmm registered with `ptrackd peer
 * --vmm-socket`, resumes there and runs on; the destination VMM checks
 * that memory matches the source's at the pause, that the guest's sequence
 * counters continued and that no page went back in time. Then a fault at
 * each step of the switchover; every run must end with exactly one running
 * guest, or, when the outcome cannot be known, one paused guest and the
 * report that says so.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eng.h"
#include "pt_test.h"

struct sw {
	const char *dirty; /* bitmap | ring */
	const char *src_fault, *dst_fault; /* --inject-switchover */
	const char *dst_name; /* incoming VM's name, NULL: the same */
	int kill_peer_ms; /* kill the peer this long after the VMM loads */
	/* Guest size and pages/s, NULL: 256M and 5000 (20 MB/s: converges
	 * under ASan on a loaded 2-core host, where 20000 did not). */
	const char *mem, *rate;
	const char *const *src_args; /* more `ptrackd source` options */
	char dir[PATH_MAX];
	int port;
	pid_t peer, dvmm, src, svmm;
	int peer_rc, dvmm_rc, src_rc, svmm_rc;
};

static pid_t spawn(const struct sw *r, const char *log, char *const argv[])
{
	char path[PATH_MAX + 32];
	pid_t pid = fork();
	int fd;

	if (pid)
		return pid;
	snprintf(path, sizeof(path), "%s/%s", r->dir, log);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(97);
	execv(argv[0], argv);
	_exit(98);
}

static void wait_file(const struct sw *r, const char *name)
{
	char path[PATH_MAX + 32];
	int i;

	snprintf(path, sizeof(path), "%s/%s", r->dir, name);
	for (i = 0; i < 500 && access(path, F_OK); i++)
		usleep(10000);
}

static int log_has(const struct sw *r, const char *name, const char *what)
{
	char path[PATH_MAX + 32], buf[32768];
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

static void show_logs(const struct sw *r)
{
	static const char *const logs[] = { "peer.log", "dvmm.log",
					    "source.log", "svmm.log" };
	char cmd[PATH_MAX + 96];
	size_t i;

	for (i = 0; i < 4; i++) {
		snprintf(cmd, sizeof(cmd), "sed 's/^/  %s: /' '%s/%s' >&2",
			 logs[i], r->dir, logs[i]);
		if (system(cmd))
			return;
	}
}

static void start_destination(struct sw *r, const char *bin)
{
	char ptrackd[PATH_MAX + 16], vmm[PATH_MAX + 16], sock[PATH_MAX + 16];
	char listen[64];
	char *pargv[] = {
		ptrackd,       "peer",	       "--listen",
		listen,	       "--vmm-socket", sock,
		"--state-dir", r->dir,	       "--idle-ms",
		"3000",	       "--tls-dir",    (char *)pt_test_tls_dir(),
		NULL
	};
	char *vargv[20] = { vmm,
			    "--mem",
			    (char *)(r->mem ? r->mem : "256M"),
			    "--vcpus",
			    "2",
			    "--dirty",
			    (char *)r->dirty,
			    "--incoming",
			    "--ptrackd",
			    sock,
			    "--run-ms",
			    "1000",
			    "--verify-memory" };
	int n = 13;

	snprintf(ptrackd, sizeof(ptrackd), "%s/ptrackd", bin);
	snprintf(vmm, sizeof(vmm), "%s/ptrack-vmm", bin);
	snprintf(sock, sizeof(sock), "%s/dst.sock", r->dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", r->port);
	r->peer = spawn(r, "peer.log", pargv);
	wait_file(r, "dst.sock");
	if (r->dst_name) {
		vargv[n++] = "--name";
		vargv[n++] = (char *)r->dst_name;
	}
	if (r->dst_fault) {
		vargv[n++] = "--inject-switchover";
		vargv[n++] = (char *)r->dst_fault;
	}
	vargv[n] = NULL;
	r->dvmm = spawn(r, "dvmm.log", vargv);
}

static void start_source(struct sw *r, const char *bin)
{
	char ptrackd[PATH_MAX + 16], vmm[PATH_MAX + 16], sock[PATH_MAX + 16];
	char to[64];
	char *sargv[32] = { ptrackd,
			    "source",
			    "--vmm-socket",
			    sock,
			    "--to",
			    to,
			    "--reconnect-ms",
			    "2000",
			    "--switchover-ms",
			    "4000",
			    "--tls-dir",
			    (char *)pt_test_tls_dir(),
			    NULL };
	char *vargv[20] = { vmm,
			    "--mem",
			    (char *)(r->mem ? r->mem : "256M"),
			    "--vcpus",
			    "2",
			    "--dirty",
			    (char *)r->dirty,
			    "--pattern",
			    "random",
			    "--rate",
			    (char *)(r->rate ? r->rate : "5000"),
			    "--ptrackd",
			    sock,
			    "--verify-memory" };
	int n = 14, k = 0;

	snprintf(ptrackd, sizeof(ptrackd), "%s/ptrackd", bin);
	snprintf(vmm, sizeof(vmm), "%s/ptrack-vmm", bin);
	snprintf(sock, sizeof(sock), "%s/src.sock", r->dir);
	snprintf(to, sizeof(to), "127.0.0.1:%d", r->port);
	while (sargv[k])
		k++;
	for (int i = 0; r->src_args && r->src_args[i] && k < 31; i++)
		sargv[k++] = (char *)r->src_args[i];
	r->src = spawn(r, "source.log", sargv);
	wait_file(r, "src.sock");
	if (r->src_fault) {
		vargv[n++] = "--inject-switchover";
		vargv[n++] = (char *)r->src_fault;
	}
	vargv[n] = NULL;
	r->svmm = spawn(r, "svmm.log", vargv);
}

/* Whether @pid still runs; a child that exited stays to be reaped. */
static int alive(pid_t pid)
{
	siginfo_t si = { 0 };

	return !waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) &&
	       si.si_pid == 0;
}

static void run(struct sw *r)
{
	const char *bin = pt_test_bindir();
	int i;

	eu_tmpdir(r->dir, sizeof(r->dir));
	r->port = eu_free_port();
	CU_ASSERT_FATAL(r->dir[0] && r->port > 0);
	start_destination(r, bin);
	start_source(r, bin);
	if (r->kill_peer_ms) {
		for (i = 0; i < 3000 && !log_has(r, "peer.log", "(final)"); i++)
			usleep(10000);
		usleep((useconds_t)r->kill_peer_ms * 1000);
		kill(r->peer, SIGKILL);
	}
	r->src_rc = eu_wait(r->src, 120000);
	r->peer_rc = eu_wait(r->peer, 30000);
	r->dvmm_rc = eu_wait(r->dvmm, 30000);
}

/* Ends what still runs; the source VMM's exit status, -1 if killed. */
static int reap_source_vmm(struct sw *r)
{
	if (alive(r->svmm))
		kill(r->svmm, SIGTERM);
	return eu_wait(r->svmm, 10000);
}

static void check_switchover(const char *dirty)
{
	struct sw r = { .dirty = dirty };

	run(&r);
	r.svmm_rc = reap_source_vmm(&r);
	CU_ASSERT_EQUAL(r.src_rc, 0);
	CU_ASSERT_EQUAL(r.peer_rc, 0);
	CU_ASSERT_EQUAL(r.dvmm_rc, 0);
	CU_ASSERT_EQUAL(r.svmm_rc, 0);
	CU_ASSERT(log_has(&r, "source.log", "switchover: the guest runs on"));
	CU_ASSERT(log_has(&r, "source.log", "round 1"));
	CU_ASSERT(log_has(&r, "svmm.log", "stopped after"));
	CU_ASSERT(log_has(&r, "dvmm.log",
			  "guest resumed on the destination: "
			  "memory identical"));
	CU_ASSERT(log_has(&r, "dvmm.log", "sequence counters continued"));
	CU_ASSERT(log_has(&r, "dvmm.log", " 0 pages back in time"));
	CU_ASSERT(
		!log_has(&r, "dvmm.log", " 0 stores made on the destination"));
	if (r.src_rc || r.peer_rc || r.dvmm_rc || r.svmm_rc)
		show_logs(&r);
	eu_rmdir(r.dir);
}

static void test_switchover_bitmap(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	check_switchover("bitmap");
}

static void test_switchover_ring(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	check_switchover("ring");
}

/*
 * The switchover failed before the destination ran the guest: the source
 * says why and its guest runs on; the incoming guest was discarded.
 */
static void check_back_home(struct sw *r, const char *why)
{
	CU_ASSERT_EQUAL(r->src_rc, 1);
	CU_ASSERT(log_has(r, "source.log", why));
	CU_ASSERT(log_has(r, "source.log", "the guest keeps running"));
	CU_ASSERT(!log_has(r, "source.log", "keeps running: 0 pages"));
	CU_ASSERT(!log_has(r, "dvmm.log", "guest resumed on the destination"));
	CU_ASSERT(r->dvmm_rc != 0);
	if (r->src_rc != 1)
		show_logs(r);
}

/* No incoming VM for this guest: refused at Hello, before any page. */
static void test_switchover_no_incoming(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	struct sw r = { .dirty = "bitmap", .dst_name = "another-vm" };

	run(&r);
	reap_source_vmm(&r);
	check_back_home(&r, "NO_INCOMING");
	CU_ASSERT(!log_has(&r, "source.log", "round 0"));
	CU_ASSERT(!log_has(&r, "peer.log", "round 0 stored"));
	eu_rmdir(r.dir);
}

/* The destination VMM refuses a corrupted state blob. */
static void test_switchover_state_refused(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	struct sw r = { .dirty = "bitmap", .src_fault = "corrupt-state" };

	run(&r);
	reap_source_vmm(&r);
	check_back_home(&r, "refused the state");
	CU_ASSERT(log_has(&r, "dvmm.log", "state refused"));
	eu_rmdir(r.dir);
}

/* The destination VMM dies while loading the state. */
static void test_switchover_vmm_dies_in_load(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	struct sw r = { .dirty = "bitmap", .dst_fault = "die-in-load" };

	run(&r);
	reap_source_vmm(&r);
	check_back_home(&r, "STATE");
	CU_ASSERT_EQUAL(r.dvmm_rc, 9);
	eu_rmdir(r.dir);
}

/*
 * The peer dies after Complete and before Resumed (while its VMM loads):
 * the source cannot learn whether the guest runs there, so it leaves it
 * paused, says so and exits 4; the source VMM holds the paused guest and
 * says how to settle it. Here the destination never resumed: resuming at
 * the source (SIGUSR2) is what the operator would do.
 */
static void test_switchover_peer_lost_after_complete(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	struct sw r = { .dirty = "bitmap",
			.dst_fault = "slow-load",
			.kill_peer_ms = 1500 };

	run(&r);
	CU_ASSERT_EQUAL(r.src_rc, 4);
	CU_ASSERT(log_has(&r, "source.log", "switchover outcome unknown"));
	CU_ASSERT(log_has(&r, "source.log", "stays paused"));
	CU_ASSERT(!log_has(&r, "dvmm.log", "guest resumed on the destination"));
	CU_ASSERT(alive(r.svmm));
	usleep(200000);
	CU_ASSERT(log_has(&r, "svmm.log", "the guest stays PAUSED"));
	kill(r.svmm, SIGUSR2);
	usleep(300000);
	CU_ASSERT(log_has(&r, "svmm.log", "resuming the guest here"));
	CU_ASSERT_EQUAL(reap_source_vmm(&r), 0);
	if (r.src_rc != 4)
		show_logs(&r);
	eu_rmdir(r.dir);
}

/*
 * Auto-converge: a 4 MiB guest writing as fast as its vCPUs run (30k to
 * ~290k pages/s here, whatever the host's load) over a 16 MB/s cap (3906
 * pages/s) with a 20 ms downtime limit. Like QEMU's, the throttle takes a
 * share of vCPU time: at 99% the guest writes under the cap and the
 * migration converges and moves; without auto-converge it fails at the
 * limit, cleanly, and the guest runs on at the source.
 */
static const char *const ac_args[] = { "--downtime-ms",
				       "20",
				       "--bandwidth",
				       "16000000",
				       "--time-limit-ms",
				       "30000",
				       "--max-rounds",
				       "100",
				       "--auto-converge",
				       "--ac-initial",
				       "50",
				       "--ac-step",
				       "20",
				       NULL };

static void test_auto_converge(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	struct sw r = {
		.dirty = "bitmap", .mem = "4M", .rate = "0", .src_args = ac_args
	};

	run(&r);
	r.svmm_rc = reap_source_vmm(&r);
	CU_ASSERT_EQUAL(r.src_rc, 0);
	CU_ASSERT(log_has(&r, "source.log", "vCPU throttle 50%"));
	CU_ASSERT(log_has(&r, "source.log",
			  "auto-converge: vCPU throttle up to"));
	CU_ASSERT(log_has(&r, "source.log", "switchover: the guest runs on"));
	CU_ASSERT(log_has(&r, "svmm.log", "vCPU throttle 0%"));
	CU_ASSERT_EQUAL(r.dvmm_rc, 0);
	CU_ASSERT(log_has(&r, "dvmm.log", " 0 pages back in time"));
	if (r.src_rc || r.dvmm_rc)
		show_logs(&r);
	eu_rmdir(r.dir);
}

static void test_no_auto_converge_fails_cleanly(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	static const char *const args[] = { "--downtime-ms",
					    "20",
					    "--bandwidth",
					    "16000000",
					    "--time-limit-ms",
					    "8000",
					    "--max-rounds",
					    "5",
					    NULL };
	struct sw r = {
		.dirty = "bitmap", .mem = "4M", .rate = "0", .src_args = args
	};

	/* Five short rounds (~0.2 s each): a guest descheduled for longer on
	 * a loaded host could otherwise look converged by chance. */

	run(&r);
	reap_source_vmm(&r);
	check_back_home(&r, "no convergence after");
	CU_ASSERT(!log_has(&r, "source.log", "vCPU throttle"));
	eu_rmdir(r.dir);
}

PT_SUITE(switchover, PT_TEST(test_switchover_bitmap),
	 PT_TEST(test_switchover_ring), PT_TEST(test_switchover_no_incoming),
	 PT_TEST(test_switchover_state_refused),
	 PT_TEST(test_switchover_vmm_dies_in_load),
	 PT_TEST(test_switchover_peer_lost_after_complete),
	 PT_TEST(test_auto_converge),
	 PT_TEST(test_no_auto_converge_fails_cleanly));
