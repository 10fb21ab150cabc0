// SPDX-License-Identifier: MIT
/*
 * Migrations driven through the control socket: `ptrackctl migrate` of a
 * ptrack-vmm guest to a second ptrackd that `ptrackctl peer listen`s,
 * with JSON progress and the metrics during and after; SIGTERM to the
 * source ptrackd mid-migration ends it cancelled, the daemon exits
 * cleanly and the guest keeps running until its VMM is let go; a VMM
 * that disconnects mid-migration fails it without harm.
 */

#include "svc.h"

/* Runs ptrackctl in the background, output to @out. */
static pid_t ctl_bg(const struct svc *s, const char *out, char *const args[])
{
	char bin[PATH_MAX];
	char *argv[24] = { bin, "--socket", (char *)s->ctl };
	int n = 3;

	snprintf(bin, sizeof(bin), "%s/ptrackctl", pt_test_bindir());
	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return svc_spawn(out, argv, NULL);
}

static int exit_of(int st)
{
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_migrate(void)
{
	const char *vargs[] = { "--mem",  "128M", "--vcpus", "2",
				"--rate", "5000", NULL };
	const char *mextra[] = { "--metrics=127.0.0.1:0", NULL };
	char to[64], mem[200], pout[200], mout[200];
	struct svc src, dst;
	pid_t vmm, peer, mig;
	char *text = NULL;
	int port = pt_test_free_port();

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&src) == 0 && svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&src, mextra) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(mem, sizeof(mem), "%s/dest.mem", dst.dir);
	snprintf(pout, sizeof(pout), "%s/peer.out", dst.dir);
	snprintf(mout, sizeof(mout), "%s/migrate.out", src.dir);
	peer = ctl_bg(&dst, pout,
		      (char *[]){ "peer", "listen", to, "--mem-file", mem,
				  "--json", NULL });
	CU_ASSERT(svc_wait_file(pout, "\"state\":\"listening\"", 5000));
	vmm = svc_vmm(&src, "mig", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	mig = ctl_bg(
		&src, mout,
		(char *[]){ "migrate", "mig", "--to", to, "--json", NULL });
	CU_ASSERT(svc_wait_file(mout, "\"event\":\"progress\"", 10000));
	/* The metrics mid-migration are valid and show it running. */
	CU_ASSERT_EQUAL(svc_ctl(&src, &text, "metrics"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		text, "ptrack_migration_data_processed_bytes{vm=\"mig\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		text, "ptrack_migration_start_timestamp_seconds{vm=\"mig\""));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(text, "ptrack_migration_data_total_bytes{"));
	/* No per-migration label: one series per VM however many run. */
	CU_ASSERT_PTR_NULL(strstr(text, "migration_id="));
	CU_ASSERT_EQUAL(svc_promtool(text), 0);
	free(text);
	CU_ASSERT_EQUAL(exit_of(svc_wait(mig, 90000)), 0);
	CU_ASSERT_EQUAL(exit_of(svc_wait(peer, 10000)), 0);
	CU_ASSERT(svc_file_has(mout, "\"event\":\"result\",\"ok\":true"));
	CU_ASSERT(svc_file_has(mout, "\"state\":\"completed\""));
	CU_ASSERT(svc_file_has(pout, "\"state\":\"completed\""));
	/* 64-bit ids as JSON strings, quantities named with their unit. */
	CU_ASSERT(svc_file_has(mout, "\"migration_id\":\"1\""));
	CU_ASSERT(svc_file_has(mout, "\"transfer_bytes_per_second\":"));
	CU_ASSERT(svc_file_has(pout, "\"session_id\":\""));
	if (!svc_file_has(mout, "\"state\":\"completed\"")) {
		svc_show(mout);
		svc_show(src.log);
		svc_show(dst.log);
	}
	CU_ASSERT_EQUAL(svc_ctl(&src, &text, "metrics"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		text, "ptrack_migrations_total{engine=\"ptrack\",direction="
		      "\"outgoing\",result=\"completed\"} 1"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(text, "ptrack_migration_downtime_seconds{vm=\"mig\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		text, "ptrack_migration_end_timestamp_seconds{vm=\"mig\""));
	free(text);
	/* The destination exports its incoming migration. */
	CU_ASSERT_EQUAL(svc_ctl(&dst, &text, "metrics"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		text, "ptrack_migrations_total{engine=\"ptrack\",direction="
		      "\"incoming\",result=\"completed\"} 1"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(text, "ptrack_migration_data_total_bytes{listen=\""));
	CU_ASSERT_EQUAL(svc_promtool(text), 0);
	free(text);
	/* The source guest was stopped: it lives on the peer now. */
	CU_ASSERT_EQUAL(exit_of(svc_wait(vmm, 10000)), 0);
	CU_ASSERT(svc_file_has(src.log, "MIGRATION_ID=1"));
	CU_ASSERT_EQUAL(svc_stop(&src), 0);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&src);
	svc_cleanup(&dst);
}

/* A plain `ptrackd peer` that gives up soon after its source is gone. */
static pid_t engine_peer(const struct svc *s, const char *to)
{
	char bin[PATH_MAX], mem[200], log[200];
	char *argv[] = { bin,	       "peer",
			 "--listen",   (char *)to,
			 "--mem-file", mem,
			 "--idle-ms",  "3000",
			 "--tls-dir",  (char *)pt_test_tls_dir(),
			 NULL };

	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrackd", pt_test_bindir());
	snprintf(mem, sizeof(mem), "%s/dest.mem", s->dir);
	snprintf(log, sizeof(log), "%s/peer.log", s->dir);
	pid = svc_spawn(log, argv, NULL);
	CU_ASSERT(svc_wait_file(log, "ptrackd peer: listening on", 5000));
	return pid;
}

static void test_sigterm_mid_migration(void)
{
	/* Unlimited random writes over a 20 MB/s cap never converge. */
	const char *vargs[] = { "--mem", "64M", "--vcpus", "1", NULL };
	char to[64], mout[200], vlog[200];
	struct svc s;
	pid_t vmm, peer, mig;
	int port = pt_test_free_port();

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(mout, sizeof(mout), "%s/migrate.out", s.dir);
	snprintf(vlog, sizeof(vlog), "%s/vmm-term.log", s.dir);
	peer = engine_peer(&s, to);
	vmm = svc_vmm(&s, "term", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	mig = ctl_bg(&s, mout,
		     (char *[]){ "migrate", "term", "--to", to, "--bandwidth",
				 "20000000", "--json", NULL });
	/* Past round 0, the guest running and dirtying. */
	CU_ASSERT(svc_wait_file(mout, "\"round\":1,", 30000));
	kill(s.pid, SIGTERM);
	CU_ASSERT_EQUAL(exit_of(svc_wait(s.pid, 20000)), 0);
	s.pid = 0;
	CU_ASSERT_EQUAL(exit_of(svc_wait(mig, 5000)), 1);
	CU_ASSERT(svc_file_has(mout, "\"state\":\"cancelled\""));
	CU_ASSERT(svc_file_has(s.log, "cancelling migration"));
	CU_ASSERT(svc_file_has(s.log, "cancelled after"));
	/* The guest ran throughout: never paused for a final round, and
	 * its VMM ended on the disconnect, not on a crash. */
	CU_ASSERT_FALSE(svc_file_has(mout, "\"final_round\":true"));
	CU_ASSERT_EQUAL(exit_of(svc_wait(vmm, 10000)) >= 0, 1);
	CU_ASSERT(svc_file_has(vlog, "disconnected after"));
	if (!svc_file_has(mout, "\"state\":\"cancelled\"")) {
		svc_show(mout);
		svc_show(s.log);
		svc_show(vlog);
	}
	kill(peer, SIGTERM);
	svc_wait(peer, 5000);
	svc_cleanup(&s);
}

static void test_vmm_disconnect(void)
{
	const char *vargs[] = { "--mem", "64M", "--vcpus", "1", NULL };
	char to[64], mout[200];
	struct svc s;
	pid_t vmm, peer, mig;
	int port = pt_test_free_port();
	char *out = NULL;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(mout, sizeof(mout), "%s/migrate.out", s.dir);
	peer = engine_peer(&s, to);
	vmm = svc_vmm(&s, "gone", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	mig = ctl_bg(&s, mout,
		     (char *[]){ "migrate", "gone", "--to", to, "--bandwidth",
				 "20000000", "--json", NULL });
	CU_ASSERT(svc_wait_file(mout, "\"round\":1,", 30000));
	kill(vmm, SIGKILL);
	svc_wait(vmm, 5000);
	CU_ASSERT_EQUAL(exit_of(svc_wait(mig, 30000)), 1);
	CU_ASSERT(svc_file_has(mout, "\"state\":\"failed\""));
	/* The daemon goes on, and forgets the VM. */
	CU_ASSERT_EQUAL(svc_ctl(&s, &out, "vms", "--json"), 0);
	CU_ASSERT_PTR_NULL(strstr(out, "\"gone\""));
	free(out);
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	kill(peer, SIGTERM);
	svc_wait(peer, 5000);
	svc_cleanup(&s);
}

/* One migration of a fresh guest named @name; ptrackctl's output (a TTY
 * through script(1) when @tty) lands in @out. Returns ptrackctl's exit. */
static int migrate_once(struct svc *src, struct svc *dst, const char *name,
			int tty, const char *out)
{
	const char *vargs[] = { "--mem", "64M", "--rate", "2000", NULL };
	char to[64], mem[200], pout[200], cmd[1024];
	pid_t vmm, peer;
	int ret;

	snprintf(to, sizeof(to), "127.0.0.1:%d", pt_test_free_port());
	snprintf(mem, sizeof(mem), "%s/%s.mem", dst->dir, name);
	snprintf(pout, sizeof(pout), "%s/%s.peer", dst->dir, name);
	peer = ctl_bg(
		dst, pout,
		(char *[]){ "peer", "listen", to, "--mem-file", mem, NULL });
	if (!svc_wait_file(pout, "listening", 5000))
		return -1;
	vmm = svc_vmm(src, name, vargs);
	if (vmm <= 0)
		return -1;
	if (tty)
		snprintf(cmd, sizeof(cmd),
			 "script -qec '%s/ptrackctl --socket %s migrate %s "
			 "--to %s' %s >/dev/null",
			 pt_test_bindir(), src->ctl, name, to, out);
	else
		snprintf(cmd, sizeof(cmd),
			 "%s/ptrackctl --socket %s migrate %s --to %s > %s",
			 pt_test_bindir(), src->ctl, name, to, out);
	ret = system(cmd);
	svc_wait(peer, 10000);
	svc_wait(vmm, 10000);
	return WIFEXITED(ret) ? WEXITSTATUS(ret) : -1;
}

static void test_migrate_tty_and_plain(void)
{
	char out[200];
	struct svc src, dst;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	if (system("command -v script >/dev/null"))
		PT_SKIP("no script(1) (Debian package bsdutils)");
	CU_ASSERT_FATAL(svc_mkdir(&src) == 0 && svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&src, NULL) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	/* On a terminal: the bar, redrawn in place. */
	snprintf(out, sizeof(out), "%s/tty.out", src.dir);
	CU_ASSERT_EQUAL(migrate_once(&src, &dst, "t1", 1, out), 0);
	CU_ASSERT(svc_file_has(out, "\r\033[K["));
	CU_ASSERT(svc_file_has(out, "expected downtime"));
	CU_ASSERT(svc_file_has(out, "migration 1 completed"));
	/* Not a terminal: one plain line per round, no escapes. */
	snprintf(out, sizeof(out), "%s/plain.out", src.dir);
	CU_ASSERT_EQUAL(migrate_once(&src, &dst, "t2", 0, out), 0);
	CU_ASSERT(svc_file_has(out, "round 1: dirty "));
	CU_ASSERT(svc_file_has(out, "migration 2 completed"));
	CU_ASSERT_FALSE(svc_file_has(out, "\033["));
	if (!svc_file_has(out, "migration 2 completed"))
		svc_show(out);
	CU_ASSERT_EQUAL(svc_stop(&src), 0);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&src);
	svc_cleanup(&dst);
}

/* A congestion control other than the system's, which the kernel has. */
static const char *other_cc(void)
{
	char def[32] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");

	if (f && !fgets(def, sizeof(def), f))
		def[0] = '\0';
	if (f)
		fclose(f);
	return strncmp(def, "reno", 4) ? "reno" : "cubic";
}

/*
 * Polls `ss -ti` for the established connections to @port into @out,
 * in a loop of its own so that a short stream is seen too.
 */
static pid_t ss_watch(int port, const char *out)
{
	char filter[64];
	char *argv[] = { "/bin/sh", "-c",
			 "while :; do ss -tinH state established \"$0\"; done",
			 filter, NULL };

	snprintf(filter, sizeof(filter), "( dport = :%d )", port);
	return svc_spawn(out, argv, NULL);
}

/*
 * --tcp-congestion: a name the kernel lacks fails the request up front
 * with what is available; a real one is what the stream's socket uses
 * (ss -ti on the source host, during the migration).
 */
static void test_migrate_tcp_congestion(void)
{
	const char *vargs[] = { "--mem", "32M", "--rate", "300", NULL };
	const char *cc = other_cc();
	char to[64], mem[200], pout[200], mout[200], ssout[200], want[80];
	struct svc src, dst;
	pid_t vmm, peer, mig, ss;
	int port = pt_test_free_port(), rc;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&src) == 0 && svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&src, NULL) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(mem, sizeof(mem), "%s/dest.mem", dst.dir);
	snprintf(pout, sizeof(pout), "%s/peer.out", dst.dir);
	snprintf(mout, sizeof(mout), "%s/migrate.out", src.dir);
	peer = ctl_bg(&dst, pout,
		      (char *[]){ "peer", "listen", to, "--mem-file", mem,
				  "--json", NULL });
	CU_ASSERT(svc_wait_file(pout, "\"state\":\"listening\"", 5000));
	vmm = svc_vmm(&src, "cc", vargs);
	CU_ASSERT_FATAL(vmm > 0);

	/* Refused before anything is sent: exit 1, a clear reason. */
	mig = ctl_bg(&src, mout,
		     (char *[]){ "migrate", "cc", "--to", to,
				 "--tcp-congestion", "nosuchcc", NULL });
	CU_ASSERT_EQUAL(exit_of(svc_wait(mig, 10000)), 1);
	CU_ASSERT(svc_file_has(
		mout, "TCP congestion control 'nosuchcc' is not available in "
		      "this kernel (available: "));
	CU_ASSERT(svc_file_has(mout, "reno"));
	/* Too long for the kernel: refused by ptrackctl itself. */
	CU_ASSERT_EQUAL(svc_ctl(&src, NULL, "migrate", "cc", "--to", to,
				"--tcp-congestion", "abcdefghijklmnop"),
			2);
	/* Nothing happened: the VM is idle, the peer still listens. */
	CU_ASSERT(svc_file_has(src.log, "migration to") == 0);
	CU_ASSERT(waitpid(peer, NULL, WNOHANG) == 0);

	/* The real one. Pages written meanwhile (zero pages are not sent)
	 * and a bandwidth cap make the stream last about a second. */
	unlink(mout);
	snprintf(ssout, sizeof(ssout), "%s/ss.out", src.dir);
	usleep(2000000);
	ss = ss_watch(port, ssout);
	mig = ctl_bg(&src, mout,
		     (char *[]){ "migrate", "cc", "--to", to, "--bandwidth",
				 "2000000", "--tcp-congestion", (char *)cc,
				 "--json", NULL });
	rc = exit_of(svc_wait(mig, 60000));
	CU_ASSERT_EQUAL(rc, 0);
	if (rc) {
		svc_show(mout);
		svc_show(src.log);
	}
	kill(ss, SIGKILL);
	svc_wait(ss, 5000);
	snprintf(want, sizeof(want), " %s ", cc);
	CU_ASSERT(svc_file_has(ssout, want));
	if (!svc_file_has(ssout, want)) {
		fprintf(stderr, "\n  the stream never showed '%s' in ss -ti\n",
			cc);
		svc_show(ssout);
	}
	CU_ASSERT(svc_file_has(mout, "\"state\":\"completed\""));
	CU_ASSERT_EQUAL(exit_of(svc_wait(peer, 10000)), 0);
	snprintf(want, sizeof(want), "TCP congestion control %s)", cc);
	CU_ASSERT(svc_file_has(src.log, want));
	CU_ASSERT_EQUAL(exit_of(svc_wait(vmm, 10000)), 0);
	CU_ASSERT_EQUAL(svc_stop(&src), 0);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&src);
	svc_cleanup(&dst);
}

/* The VM's dirty rate through `ptrackctl vms --json`, or -1. */
static double vm_rate(const struct svc *s, int *migrating)
{
	char *out = NULL;
	double r = -1;

	if (svc_ctl((struct svc *)s, &out, "vms", "--json") == 0 && out) {
		r = svc_json_num(out, "dirty_rate_bytes_per_second");
		*migrating = strstr(out, "\"state\":\"migrating\"") != NULL;
	}
	free(out);
	return r;
}

/*
 * A tracked VM's dirty-rate gauge holds its last window's value until the
 * migration's first harvest (the end of round 0) gives a new one: a graph
 * must not dip to 0 whenever a migration starts. Sampling every 100 ms
 * makes a dip show at once; a bandwidth cap makes round 0 last ~1 s.
 */
static void test_rate_holds_in_round0(void)
{
	const char *extra[] = { "--set", "metrics.sample_ms=100", NULL };
	const char *vargs[] = { "--mem",     "32M", "--rate", "1000",
				"--pattern", "seq", NULL };
	char to[64], mem[200], pout[200], mout[200];
	int port = pt_test_free_port(), migrating = 0, samples = 0, zero = 0;
	struct svc src, dst;
	pid_t vmm, peer, mig;
	double r;
	long t0;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&src) == 0 && svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&src, extra) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(mem, sizeof(mem), "%s/dest.mem", dst.dir);
	snprintf(pout, sizeof(pout), "%s/peer.out", dst.dir);
	snprintf(mout, sizeof(mout), "%s/migrate.out", src.dir);
	peer = ctl_bg(&dst, pout,
		      (char *[]){ "peer", "listen", to, "--mem-file", mem,
				  "--json", NULL });
	CU_ASSERT(svc_wait_file(pout, "\"state\":\"listening\"", 5000));
	vmm = svc_vmm(&src, "hold", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	CU_ASSERT_EQUAL(svc_ctl(&src, NULL, "track", "start", "hold"), 0);
	/* 1000 fresh pages/s: 8 MiB written before the migration starts. */
	usleep(2000000);
	r = vm_rate(&src, &migrating);
	CU_ASSERT(r > 1000 * 4096 * 0.5);
	mig = ctl_bg(&src, mout,
		     (char *[]){ "migrate", "hold", "--to", to, "--bandwidth",
				 "8000000", "--json", NULL });
	CU_ASSERT(svc_wait_file(mout, "\"event\":\"progress\"", 10000));
	for (t0 = svc_ms(); svc_ms() - t0 < 1500; usleep(50000)) {
		if (svc_file_has(mout, "\"round\":1"))
			break;
		r = vm_rate(&src, &migrating);
		if (!migrating)
			continue;
		samples++;
		zero += r <= 0;
	}
	fprintf(stderr, "\n  round 0: %d samples of the rate, %d zero\n",
		samples, zero);
	CU_ASSERT(samples > 0);
	CU_ASSERT_EQUAL(zero, 0);
	CU_ASSERT_EQUAL(exit_of(svc_wait(mig, 60000)), 0);
	CU_ASSERT_EQUAL(exit_of(svc_wait(peer, 10000)), 0);
	CU_ASSERT_EQUAL(exit_of(svc_wait(vmm, 10000)), 0);
	CU_ASSERT_EQUAL(svc_stop(&src), 0);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&src);
	svc_cleanup(&dst);
}

/* Both ptrackctl clients go away mid-run: control orphans their requests,
 * and the peer session and the migration carry on to completion. */
static void test_clients_leave(void)
{
	const char *vargs[] = { "--mem", "64M", "--rate", "2000", NULL };
	char to[64], mem[200], pout[200], mout[200];
	struct svc src, dst;
	pid_t vmm, peer, mig;
	char *text = NULL;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&src) == 0 && svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&src, NULL) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", pt_test_free_port());
	snprintf(mem, sizeof(mem), "%s/dest.mem", dst.dir);
	snprintf(pout, sizeof(pout), "%s/peer.out", dst.dir);
	snprintf(mout, sizeof(mout), "%s/migrate.out", src.dir);
	peer = ctl_bg(&dst, pout,
		      (char *[]){ "peer", "listen", to, "--mem-file", mem,
				  "--json", NULL });
	CU_ASSERT(svc_wait_file(pout, "\"state\":\"listening\"", 5000));
	kill(peer, SIGKILL);
	svc_wait(peer, 5000);
	vmm = svc_vmm(&src, "orphan", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	mig = ctl_bg(
		&src, mout,
		(char *[]){ "migrate", "orphan", "--to", to, "--json", NULL });
	CU_ASSERT(svc_wait_file(mout, "\"event\":\"progress\"", 10000));
	kill(mig, SIGKILL);
	svc_wait(mig, 5000);
	CU_ASSERT(svc_wait_file(src.log, "completed after", 90000));
	CU_ASSERT(svc_wait_file(dst.log, "completed", 10000));
	CU_ASSERT_EQUAL(svc_ctl(&src, &text, "metrics"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		text, "ptrack_migrations_total{engine=\"ptrack\",direction="
		      "\"outgoing\",result=\"completed\"} 1"));
	free(text);
	CU_ASSERT_EQUAL(exit_of(svc_wait(vmm, 10000)), 0);
	CU_ASSERT_EQUAL(svc_stop(&src), 0);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&src);
	svc_cleanup(&dst);
}

PT_SUITE(service_migrate, PT_TEST(test_migrate),
	 PT_TEST(test_migrate_tty_and_plain),
	 PT_TEST(test_sigterm_mid_migration), PT_TEST(test_vmm_disconnect),
	 PT_TEST(test_migrate_tcp_congestion),
	 PT_TEST(test_rate_holds_in_round0), PT_TEST(test_clients_leave));
