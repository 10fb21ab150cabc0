// SPDX-License-Identifier: MIT
/*
 * libvirt: a real libvirtd on a private socket (serving test:///default
 * through the remote driver) and ptrackd connected to it. Domain lifecycle
 * events reach ptrackd's sd-event loop through virEventRegisterImpl;
 * domains map to registered VMs; libvirtd killed and restarted is
 * followed by a reconnect, and ptrackd keeps serving meanwhile.
 */
#include <libvirt/libvirt.h>

#include "svc.h"

struct lvd {
	char dir[64], uri[200], conf[128], pidf[128], log[128];
	pid_t pid;
};

static int lvd_start(struct lvd *l)
{
	char sock[160];
	char *argv[] = { "/usr/sbin/libvirtd", "--config", l->conf,
			 "--pid-file",	       l->pidf,	   NULL };
	/* Only the built-in drivers (test, remote): no QEMU state to set up. */
	char env1[160];
	char *env[] = { env1, NULL };

	snprintf(env1, sizeof(env1), "LIBVIRT_DRIVER_DIR=%s/none", l->dir);
	snprintf(sock, sizeof(sock), "%s/libvirt-sock", l->dir);
	l->pid = svc_spawn(l->log, argv, env);
	return svc_wait_accepting(sock, l->pid, 10000) ? -1 : 0;
}

static int lvd_init(struct lvd *l)
{
	FILE *f;
	char none[96];

	memset(l, 0, sizeof(*l));
	strcpy(l->dir, "/tmp/ptrack-lvd-XXXXXX");
	if (!mkdtemp(l->dir))
		return -1;
	snprintf(none, sizeof(none), "%s/none", l->dir);
	mkdir(none, 0755);
	snprintf(l->conf, sizeof(l->conf), "%s/libvirtd.conf", l->dir);
	snprintf(l->pidf, sizeof(l->pidf), "%s/libvirtd.pid", l->dir);
	snprintf(l->log, sizeof(l->log), "%s/libvirtd.log", l->dir);
	snprintf(l->uri, sizeof(l->uri),
		 "test+unix:///default?socket=%s/libvirt-sock", l->dir);
	f = fopen(l->conf, "w");
	if (!f)
		return -1;
	fprintf(f,
		"unix_sock_dir = \"%s\"\nunix_sock_rw_perms = \"0700\"\n"
		"auth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n",
		l->dir);
	fclose(f);
	return lvd_start(l);
}

static void lvd_kill(struct lvd *l)
{
	if (l->pid > 0) {
		kill(l->pid, SIGKILL);
		svc_wait(l->pid, 5000);
	}
	l->pid = 0;
	unlink(l->pidf);
}

static int connected(const struct svc *s)
{
	char *out = NULL;
	int c = svc_ctl(s, &out, "status", "--json") == 0 &&
		strstr(out, "\"libvirt_connected\":true");

	free(out);
	return c;
}

/* ptrackd logs every connect, close and retry: look again after each. */
static int wait_connected(const struct svc *s, int want, long ms)
{
	long t0 = svc_ms();

	while (connected(s) != want) {
		if (pt_wait_change(s->log, ms - (svc_ms() - t0)))
			return connected(s) == want;
	}
	return 1;
}

/* Suspends and resumes domain "test" from our own connection. */
static int bounce(const char *uri)
{
	virConnectPtr c = virConnectOpen(uri);
	virDomainPtr d;
	int ret = -1;

	if (!c)
		return -1;
	d = virDomainLookupByName(c, "test");
	if (d && !virDomainSuspend(d) && !virDomainResume(d))
		ret = 0;
	if (d)
		virDomainFree(d);
	virConnectClose(c);
	return ret;
}

static void test_libvirt(void)
{
	const char *vargs[] = { "--mem", "32M", "--rate", "100", NULL };
	const char *extra[] = { "--libvirt-uri", NULL, "--set",
				"libvirt.reconnect_ms=200", NULL };
	struct lvd l;
	struct svc s;
	char *out = NULL;
	pid_t vmm = -1;

	if (access("/usr/sbin/libvirtd", X_OK))
		PT_SKIP("libvirtd missing (Debian package libvirt-daemon)");
	CU_ASSERT_FATAL(lvd_init(&l) == 0);
	extra[1] = l.uri;
	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, extra) == 0);
	CU_ASSERT(wait_connected(&s, 1, 5000));
	/* Lifecycle events come through our loop: 3 suspended, 4 resumed. */
	CU_ASSERT_EQUAL(bounce(l.uri), 0);
	CU_ASSERT(svc_wait_file(s.log, "domain event 3/0 VM=test", 5000));
	CU_ASSERT(svc_wait_file(s.log, "domain event 4/0 VM=test", 5000));
	if (!svc_have_kvm()) {
		pt_test_skip(
			__FILE__, __LINE__,
			"no /dev/kvm: mapping a VM to its domain not checked");
	} else {
		/* A VM named like the domain maps to it (no QEMU PID here). */
		vmm = svc_vmm(&s, "test", vargs);
		CU_ASSERT(vmm > 0);
		CU_ASSERT_EQUAL(svc_ctl(&s, &out, "vms", "--json"), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"domain\":\"test\""));
		free(out);
		CU_ASSERT(
			svc_file_has(s.log, "mapped to libvirt domain 'test'"));
	}
	/* libvirtd goes away: noticed, and ptrackd keeps serving. */
	lvd_kill(&l);
	CU_ASSERT(wait_connected(&s, 0, 15000));
	CU_ASSERT(svc_wait_file(s.log, "closed", 15000));
	CU_ASSERT_EQUAL(svc_ctl(&s, NULL, "vms"), 0);
	/* It comes back: reconnected, events flow again. */
	CU_ASSERT_FATAL(lvd_start(&l) == 0);
	CU_ASSERT(wait_connected(&s, 1, 10000));
	truncate(s.log, 0);
	CU_ASSERT_EQUAL(bounce(l.uri), 0);
	CU_ASSERT(svc_wait_file(s.log, "domain event 4/0 VM=test", 5000));
	if (vmm > 0) {
		kill(vmm, SIGTERM);
		svc_wait(vmm, 5000);
	}
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	lvd_kill(&l);
	svc_cleanup(&s);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", l.dir);
		CU_ASSERT(system(cmd) == 0);
	}
}

/* No libvirt at all at start-up: ptrackd runs and keeps trying. */
static void test_libvirt_absent(void)
{
	const char *extra[] = { "--libvirt-uri",
				"test+unix:///default?socket=/nonexistent/sock",
				"--set", "libvirt.reconnect_ms=100", NULL };
	struct svc s;

	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	CU_ASSERT_FATAL(svc_start(&s, extra) == 0);
	CU_ASSERT_FALSE(connected(&s));
	CU_ASSERT(svc_wait_file(s.log, "retrying every 100 ms", 5000));
	CU_ASSERT_EQUAL(svc_ctl(&s, NULL, "status"), 0);
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	svc_cleanup(&s);
}

/*
 * Mapping by QEMU PID: libvirt's QEMU driver keeps <pid_dir>/<domain>.pid.
 * The test driver has no QEMU, so the test writes that file for domain
 * "test" with the PID of a VMM registered under another name.
 */
static void test_libvirt_pid_map(void)
{
	const char *vargs[] = { "--mem", "32M", "--rate", "100", NULL };
	char piddir[128], pidfile[160], set[200];
	const char *extra[] = { "--libvirt-uri", NULL, "--set", set, NULL };
	struct lvd l;
	struct svc s;
	char *out = NULL;
	pid_t vmm;
	FILE *f;

	if (access("/usr/sbin/libvirtd", X_OK))
		PT_SKIP("libvirtd missing (Debian package libvirt-daemon)");
	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(lvd_init(&l) == 0);
	CU_ASSERT_FATAL(svc_mkdir(&s) == 0);
	snprintf(piddir, sizeof(piddir), "%s/qemu", l.dir);
	mkdir(piddir, 0755);
	snprintf(set, sizeof(set), "libvirt.pid_dir=%s", piddir);
	extra[1] = l.uri;
	CU_ASSERT_FATAL(svc_start(&s, extra) == 0);
	CU_ASSERT(wait_connected(&s, 1, 5000));
	vmm = svc_vmm(&s, "by-pid", vargs);
	CU_ASSERT_FATAL(vmm > 0);
	/* Not mapped by name: "by-pid" is no domain. */
	CU_ASSERT_EQUAL(svc_ctl(&s, &out, "vms", "--json"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"domain\":\"\""));
	free(out);
	snprintf(pidfile, sizeof(pidfile), "%s/test.pid", piddir);
	f = fopen(pidfile, "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f, "%d\n", (int)vmm);
	fclose(f);
	/* A lifecycle event makes ptrackd look again. */
	CU_ASSERT_EQUAL(bounce(l.uri), 0);
	CU_ASSERT(
		svc_wait_file(s.log, "mapped to libvirt domain 'test'", 5000));
	CU_ASSERT_EQUAL(svc_ctl(&s, &out, "vms", "--json"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"domain\":\"test\""));
	free(out);
	/* Metrics carry the domain's name. */
	CU_ASSERT_EQUAL(svc_ctl(&s, &out, "metrics"), 0);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(out, "ptrack_vm_memory_bytes{vm=\"test\""));
	free(out);
	kill(vmm, SIGTERM);
	svc_wait(vmm, 5000);
	CU_ASSERT_EQUAL(svc_stop(&s), 0);
	lvd_kill(&l);
	svc_cleanup(&s);
	snprintf(set, sizeof(set), "rm -rf '%s'", l.dir);
	CU_ASSERT(system(set) == 0);
}

PT_SUITE(service_libvirt, PT_TEST(test_libvirt), PT_TEST(test_libvirt_pid_map),
	 PT_TEST(test_libvirt_absent));
