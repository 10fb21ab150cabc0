// SPDX-License-Identifier: MIT
/*
 * Switchover through the service: `ptrackctl migrate` from one `ptrackd
 * serve` to another whose `ptrackctl peer listen` fills an incoming VM
 * (`ptrack-vmm --incoming`); the guest resumes there and the source guest
 * is stopped. A `peer listen` with no incoming VM (and no destination
 * file) is refused before anything listens.
 */

#include "svc.h"

#include "engine/migrate.h"

static int exit_of(int st)
{
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

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

static void test_service_switchover(void)
{
	const char *sargs[] = { "--mem",  "128M",  "--vcpus",	      "2",
				"--rate", "20000", "--verify-memory", NULL };
	const char *dargs[] = {
		"--mem",    "128M", "--vcpus",	       "2", "--incoming",
		"--run-ms", "1000", "--verify-memory", NULL
	};
	char to[64], pout[200], mout[200], dlog[200];
	struct svc src, dst;
	pid_t svmm, dvmm, peer, mig;
	char *text = NULL;
	int fd;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_FATAL(svc_mkdir(&src) == 0 && svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&src, NULL) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", pt_test_free_port());
	snprintf(pout, sizeof(pout), "%s/peer.out", dst.dir);
	snprintf(mout, sizeof(mout), "%s/migrate.out", src.dir);
	snprintf(dlog, sizeof(dlog), "%s/vmm-sw.log", dst.dir);
	dvmm = svc_vmm(&dst, "sw", dargs);
	CU_ASSERT_FATAL(dvmm > 0);
	CU_ASSERT_EQUAL(svc_ctl(&dst, &text, "vms"), 0);
	CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "incoming") : NULL);
	free(text);
	peer = ctl_bg(&dst, pout, (char *[]){ "peer", "listen", to, NULL });
	CU_ASSERT(svc_wait_file(pout, "listening", 5000));
	/* ptrackctl status shows the listener and the VM it fills. */
	CU_ASSERT_EQUAL(svc_ctl(&dst, &text, "status", "--json"), 0);
	CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "\"incoming_vms\":[\"sw\"]")
				    : NULL);
	CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, to) : NULL);
	free(text);
	svmm = svc_vmm(&src, "sw", sargs);
	CU_ASSERT_FATAL(svmm > 0);
	mig = ctl_bg(&src, mout,
		     (char *[]){ "migrate", "sw", "--to", to, NULL });
	CU_ASSERT_EQUAL(exit_of(svc_wait(mig, 90000)), 0);
	CU_ASSERT_EQUAL(exit_of(svc_wait(peer, 10000)), 0);
	/* Nothing stays listening once the session is over. */
	CU_ASSERT_EQUAL(svc_ctl(&dst, &text, "status", "--json"), 0);
	CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "\"listeners\":[]") : NULL);
	free(text);
	fd = pt_tcp_connect(to, 500);
	CU_ASSERT(fd < 0);
	if (fd >= 0)
		close(fd);
	/* Stopped only after the destination said it runs the guest. */
	CU_ASSERT_EQUAL(exit_of(svc_wait(svmm, 10000)), 0);
	CU_ASSERT_EQUAL(exit_of(svc_wait(dvmm, 20000)), 0);
	CU_ASSERT(svc_file_has(dlog, "guest resumed on the destination: "
				     "memory identical"));
	CU_ASSERT(svc_file_has(dlog, " 0 pages back in time"));
	CU_ASSERT(svc_file_has(dst.log, "migrated in: the guest runs here"));
	CU_ASSERT(svc_file_has(mout, "the guest runs on the destination now"));
	if (!svc_file_has(dlog, "guest resumed on the destination")) {
		svc_show(mout);
		svc_show(dlog);
		svc_show(src.log);
		svc_show(dst.log);
	}
	CU_ASSERT_EQUAL(svc_stop(&src), 0);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&src);
	svc_cleanup(&dst);
}

/* Completing into memory nobody runs must be impossible. */
static void test_service_peer_needs_incoming(void)
{
	struct svc dst;
	char to[64], *text = NULL;
	int fd;

	CU_ASSERT_FATAL(svc_mkdir(&dst) == 0);
	CU_ASSERT_FATAL(svc_start(&dst, NULL) == 0);
	snprintf(to, sizeof(to), "127.0.0.1:%d", pt_test_free_port());
	CU_ASSERT_NOT_EQUAL(svc_ctl(&dst, &text, "peer", "listen", to), 0);
	free(text);
	/* Refused before anything listens. */
	fd = pt_tcp_connect(to, 500);
	CU_ASSERT(fd < 0);
	if (fd >= 0)
		close(fd);
	CU_ASSERT_EQUAL(svc_stop(&dst), 0);
	svc_cleanup(&dst);
}

PT_SUITE(service_switchover, PT_TEST(test_service_switchover),
	 PT_TEST(test_service_peer_needs_incoming));
