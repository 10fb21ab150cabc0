// SPDX-License-Identifier: MIT
/*
 * Ground truth for KVM's dirty log: runs the real ptrack-vmm (256 MiB,
 * 2 vCPUs, random writes) for many harvest rounds in bitmap and ring modes
 * and requires that no page whose content changed was missing from the
 * harvested sets. The false-positive rate is printed.
 */
#include "pt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (256 << 10)

/* Runs ptrack-vmm with @args; returns its exit status (or -1) and its last
 * stdout line in @last. */
static int run_vmm(const char *const *args, char *last, size_t lastsz)
{
	char path[4096], *out, *argv[32], *nl;
	int p[2], status, n = 0;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/ptrack-vmm", pt_test_bindir());
	argv[n++] = path;
	while (*args && n < 31)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	out = calloc(1, OUT_MAX);
	if (!out || pipe2(p, O_CLOEXEC)) {
		free(out);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execv(path, argv);
		_exit(127);
	}
	close(p[1]);
	while (pid > 0 && (r = read(p[0], out + len, OUT_MAX - 1 - len)) > 0)
		len += r;
	close(p[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		free(out);
		return -1;
	}
	while (len && out[len - 1] == '\n')
		out[--len] = '\0';
	nl = strrchr(out, '\n');
	snprintf(last, lastsz, "%s", nl ? nl + 1 : out);
	free(out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The number after "key": in a flat JSON line, or -1. */
static double json_num(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

static void groundtruth(const char *mode, const char *ring_entries)
{
	const char *args[] = {
		"--mem",      "256M",
		"--vcpus",    "2",
		"--pattern",  "random",
		"--dirty",    mode,
		"--rounds",   "30",
		"--interval", "50",
		"--json",     ring_entries ? "--ring-entries" : NULL,
		ring_entries, NULL
	};
	char last[4096];
	int rc = run_vmm(args, last, sizeof(last));

	printf("\n    %s: %s\n", mode, last);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(last, "\"result\":\"ok\""));
	CU_ASSERT_EQUAL(json_num(last, "false_negatives"), 0);
	CU_ASSERT(json_num(last, "rounds") == 31);
	/* A working guest dirties thousands of pages per round. */
	CU_ASSERT(json_num(last, "harvested") > 31 * 1000);
	CU_ASSERT(json_num(last, "changed") > 31 * 1000);
	CU_ASSERT(json_num(last, "fp_rate") >= 0);
}

static void test_groundtruth_bitmap(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	groundtruth("bitmap", NULL);
}

static void test_groundtruth_ring(void)
{
	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	groundtruth("ring", NULL);
}

/* A ring small enough to fill between harvests: exercises
 * KVM_EXIT_DIRTY_RING_FULL (8192: this host livelocks at <= 4096), and with
 * harvests a second apart, the folding of long pending lists. */
static void test_groundtruth_ring_full(void)
{
	const char *args[] = { "--mem",		 "64M",	   "--vcpus",  "2",
			       "--pattern",	 "random", "--dirty",  "ring",
			       "--ring-entries", "8192",   "--rounds", "3",
			       "--interval",	 "1000",   "--json",   NULL };
	char last[4096];
	int rc = run_vmm(args, last, sizeof(last));

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	printf("\n    ring 8192: %s\n", last);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(json_num(last, "false_negatives"), 0);
	CU_ASSERT(json_num(last, "ring_full_exits") > 0);
	CU_ASSERT(json_num(last, "ring_folds") > 0);
}

/* The smallest ring KVM takes: many ring-full exits per round. */
static void test_groundtruth_small_ring(void)
{
	const char *args[] = { "--mem",		 "256M",   "--vcpus",  "2",
			       "--pattern",	 "random", "--dirty",  "ring",
			       "--ring-entries", "256",	   "--rounds", "5",
			       "--interval",	 "100",	   "--json",   NULL };
	char last[4096];
	int rc = run_vmm(args, last, sizeof(last));

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	printf("\n    ring 256: %s\n", last);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(json_num(last, "false_negatives"), 0);
	CU_ASSERT(json_num(last, "ring_full_exits") > 20);
}

/* The checker itself must catch a harvest that went missing. */
static void test_checker_catches_drop(void)
{
	const char *args[] = {
		"--mem", "64M",	       "--vcpus", "2",	    "--rounds",
		"5",	 "--interval", "50",	  "--json", "--inject-drop",
		"3",	 NULL
	};
	char last[4096];
	int rc = run_vmm(args, last, sizeof(last));

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(last, "\"result\":\"FAIL\""));
	CU_ASSERT(json_num(last, "false_negatives") >= 1);
}

static void test_patterns(void)
{
	static const char *const pats[] = { "seq", "hotcold" };
	unsigned int i;

	if (!pt_test_have_kvm())
		PT_SKIP("no /dev/kvm");
	for (i = 0; i < 2; i++) {
		const char *args[] = { "--mem",	 "64M",	       "--vcpus",
				       "2",	 "--pattern",  pats[i],
				       "--rate", "50000",      "--rounds",
				       "5",	 "--interval", "50",
				       "--json", NULL };
		char last[4096];

		CU_ASSERT_EQUAL(run_vmm(args, last, sizeof(last)), 0);
		CU_ASSERT_EQUAL(json_num(last, "false_negatives"), 0);
		/* Rate limit holds within 20%. */
		CU_ASSERT(json_num(last, "guest_pages_per_s") < 60000);
		CU_ASSERT(json_num(last, "guest_pages_per_s") > 10000);
	}
}

static void test_cli_errors(void)
{
	const char *bad_pattern[] = { "--pattern", "zigzag", NULL };
	const char *bad_ring[] = { "--dirty", "ring", "--ring-entries", "1000",
				   NULL };
	const char *help[] = { "--help", NULL };
	const char *no_daemon[] = { "--mem", "16M", "--ptrackd",
				    "/nonexistent/ptrackd.sock", NULL };
	char last[4096];

	CU_ASSERT_EQUAL(run_vmm(bad_pattern, last, sizeof(last)), 2);
	CU_ASSERT_EQUAL(run_vmm(bad_ring, last, sizeof(last)), 2);
	CU_ASSERT_EQUAL(run_vmm(no_daemon, last, sizeof(last)), 3);
	CU_ASSERT_EQUAL(run_vmm(help, last, sizeof(last)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(last, "runtime errors"));
}

PT_SUITE(vmm_groundtruth, PT_TEST(test_groundtruth_bitmap),
	 PT_TEST(test_groundtruth_ring), PT_TEST(test_groundtruth_ring_full),
	 PT_TEST(test_groundtruth_small_ring),
	 PT_TEST(test_checker_catches_drop), PT_TEST(test_patterns),
	 PT_TEST(test_cli_errors));
