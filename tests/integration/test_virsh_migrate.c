// SPDX-License-Identifier: MIT
/*
 * `virsh migrate --live` of a real QEMU/KVM guest between two libvirtds,
 * each in its own network, mount and UTS namespace with its own host UUID,
 * joined by a veth pair, with a ptrackd on each side following libvirt:
 * tests/integration/virsh-migrate.sh does it (it can also be run by hand);
 * this runs it against the binaries under test. The script's exit 77 (a
 * prerequisite missing) is a PT_SKIP, so a failure in CI.
 */
#include "svc.h"

#define SCRIPT "tests/integration/virsh-migrate.sh"

static void test_virsh_migrate(void)
{
	char cmd[PATH_MAX + 200], log[64] = "/tmp/ptrack-vmig-log-XXXXXX";
	int fd = mkstemp(log), st;

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	if (access(SCRIPT, R_OK)) {
		CU_FAIL("run the tests from the top of the tree: no " SCRIPT);
		unlink(log);
		return;
	}
	snprintf(cmd, sizeof(cmd), "bash " SCRIPT " '%s' > '%s' 2>&1",
		 pt_test_bindir(), log);
	st = system(cmd);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		char *out = svc_slurp(log);
		const char *why = out ? strstr(out, "skipped: ") : NULL;
		size_t n = why ? strcspn(why + 9, "\n") : 0;

		pt_test_skip(__FILE__, __LINE__, "virsh-migrate.sh: %.*s",
			     (int)n, why ? why + 9 : "exit 77");
		free(out);
	} else {
		CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		CU_ASSERT(svc_file_has(log, "virsh-migrate: ok: "));
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			svc_show(log);
		} else {
			char *out = svc_slurp(log);
			const char *ok =
				out ? strstr(out, "virsh-migrate: ok") : NULL;

			fprintf(stderr, "\n  %s", ok ? ok : "");
			free(out);
		}
	}
	unlink(log);
}

PT_SUITE(virsh_migrate, PT_TEST(test_virsh_migrate));
