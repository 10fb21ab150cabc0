// SPDX-License-Identifier: MIT
/*
 * The libvirt policy in-process: a service on test:///default (libvirt's
 * events served by our sd-event loop), a real ptrack-vmm registering as
 * "test" (the test driver's domain), and migration job start and end
 * turning tracking on and off. The test driver has no migration jobs, so
 * the job events are delivered by calling the policy entry point that the
 * libvirt callbacks call.
 */
#include <libvirt/libvirt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_test.h"
#include "service/meter.h"
#include "service/service.h"

static int run_until(struct pt_service *s, int (*done)(struct pt_service *),
		     long ms)
{
	uint64_t t0 = pt_now_ns();

	while ((pt_now_ns() - t0) / 1000000 < (uint64_t)ms) {
		if (done(s))
			return 1;
		sd_event_run(s->ev, 50000);
	}
	return done(s);
}

static int registered(struct pt_service *s)
{
	return s->vms != NULL;
}

static int mapped(struct pt_service *s)
{
	return s->vms && !strcmp(s->vms->domain, "test");
}

static pid_t vmm_start(const char *sock)
{
	char bin[PATH_MAX];
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrack-vmm", pt_test_bindir());
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (!freopen("/dev/null", "w", stdout))
			_exit(97);
		execl(bin, bin, "--ptrackd", sock, "--name", "test", "--mem",
		      "32M", "--rate", "200", (char *)NULL);
		_exit(98);
	}
	return pid;
}

static void test_job_policy(void)
{
	char dir[64] = "/tmp/ptrack-virt-XXXXXX", cmd[128];
	struct pt_config cfg;
	struct pt_service s;
	virConnectPtr conn;
	virDomainPtr d;
	sigset_t old;
	pid_t vmm;
	int st;

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	pt_config_defaults(&cfg);
	snprintf(cfg.control_socket, sizeof(cfg.control_socket), "%s/c.sock",
		 dir);
	snprintf(cfg.vmm_socket, sizeof(cfg.vmm_socket), "%s/v.sock", dir);
	strcpy(cfg.libvirt_uri, "test:///default");
	cfg.log_target = 1; /* stderr */
	cfg.log_prio = 3;
	sigprocmask(SIG_BLOCK, NULL, &old);
	CU_ASSERT_FATAL(pt_service_init(&s, &cfg) == 0);
	CU_ASSERT(pt_virt_connected(&s));
	vmm = vmm_start(cfg.vmm_socket);
	CU_ASSERT(run_until(&s, registered, 10000));
	/* Registered as "test": mapped to the domain of that name. */
	CU_ASSERT(run_until(&s, mapped, 2000));
	conn = virConnectOpen("test:///default");
	CU_ASSERT_FATAL(conn != NULL);
	d = virDomainLookupByName(conn, "test");
	CU_ASSERT_FATAL(d != NULL);
	/* Not fatal: the VMM and the service are still to be cleaned up. */
	CU_ASSERT_PTR_NOT_NULL(s.vms);
	if (s.vms) {
		CU_ASSERT_EQUAL(s.vms->tracked, 0);
		pt_virt_job(&s, d, 1);
		CU_ASSERT_EQUAL(s.vms->tracked, 1);
		pt_virt_job(&s, d, 0);
		CU_ASSERT_EQUAL(s.vms->tracked, 0);
		/* Policy off: jobs leave tracking alone. */
		s.cfg.track_migrations = 0;
		pt_virt_job(&s, d, 1);
		CU_ASSERT_EQUAL(s.vms->tracked, 0);
	}
	virDomainFree(d);
	virConnectClose(conn);
	kill(vmm, SIGTERM);
	waitpid(vmm, &st, 0);
	pt_service_release(&s);
	/* The service blocked SIGTERM/SIGINT for its signalfd: undo. */
	sigprocmask(SIG_SETMASK, &old, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CU_ASSERT(system(cmd) == 0);
}

PT_SUITE(service_virt_policy, PT_TEST(test_job_policy));
