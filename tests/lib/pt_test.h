/* SPDX-License-Identifier: MIT */
/*
 * Test harness: every tests/.../test_*.c file registers its CUnit suite with
 * PT_SUITE(), so one binary runs all of them and ends with CUnit's summary.
 */
#ifndef PT_TEST_H
#define PT_TEST_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <sys/types.h>

struct pt_suite {
	const char *name;
	CU_InitializeFunc init;
	CU_CleanupFunc cleanup;
	const CU_TestInfo *tests;
	struct pt_suite *next;
};

void pt_suite_register(struct pt_suite *s);

/* Directory holding the binaries under test (ptrackd, ptrack-vmm, ...). */
const char *pt_test_bindir(void);

/* True when PTRACK_TEST_LONG=1: long-running variants of tests. */
int pt_test_long(void);

/* A loopback TCP port that was free a moment ago, or -1. */
int pt_test_free_port(void);

/*
 * A directory of throwaway TLS credentials (tests/lib/make-certs.sh: CA,
 * server and client certificates, psk.txt, other/, rogue/), made once per
 * run and removed at exit; NULL when certtool failed.
 */
const char *pt_test_tls_dir(void);

/* --- waiting for events (wait.c); every wait is bounded by @ms ---------- */

/* CLOCK_MONOTONIC in ms. */
long pt_test_ms(void);
/* pidfd_open(2) of @pid, or -1. */
int pt_pidfd(pid_t pid);
/* Reaps @pid when it exits within @ms (status in *@status, may be NULL);
 * -ETIMEDOUT otherwise (the child is left alone). */
int pt_wait_pid(pid_t pid, long ms, int *status);
/* Waits until @path exists and, unless @what is NULL, contains @what.
 * 0, -ETIMEDOUT, or -ECHILD when @pid (if > 0) exited first. */
int pt_wait_file(const char *path, const char *what, pid_t pid, long ms);
/* Waits until @path (which exists) is written to: 0 or -ETIMEDOUT. */
int pt_wait_change(const char *path, long ms);
/* Waits until @fd is readable: 0, -ETIMEDOUT, or -ECHILD when @pid (if
 * > 0) exited first. */
int pt_wait_readable(int fd, pid_t pid, long ms);

/* True when running in CI (CI set, and not "false" or "0"). */
int pt_test_ci(void);

/* True when /dev/kvm opens read-write. */
int pt_test_have_kvm(void);

/*
 * Records that (part of) the current test did not run, and why. Skips are
 * counted and listed after CUnit's summary; in CI each one is a failure.
 * PT_SKIP() also returns from the test.
 */
void pt_test_skip(const char *file, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define PT_SKIP(...)                                           \
	do {                                                   \
		pt_test_skip(__FILE__, __LINE__, __VA_ARGS__); \
		return;                                        \
	} while (0)
/* Prints "N skipped" and the reasons; returns N. */
unsigned int pt_test_skip_report(void);

#define PT_SUITE_FULL(sname, sinit, sclean, ...)                             \
	static const CU_TestInfo pt_tests_##sname[] = { __VA_ARGS__,         \
							CU_TEST_INFO_NULL }; \
	static struct pt_suite pt_suite_##sname = {                          \
		.name = #sname,                                              \
		.init = sinit,                                               \
		.cleanup = sclean,                                           \
		.tests = pt_tests_##sname,                                   \
	};                                                                   \
	__attribute__((constructor)) static void pt_register_##sname(void)   \
	{                                                                    \
		pt_suite_register(&pt_suite_##sname);                        \
	}

#define PT_SUITE(sname, ...) PT_SUITE_FULL(sname, NULL, NULL, __VA_ARGS__)
#define PT_TEST(fn)     \
	{               \
#fn, fn \
	}

#endif /* PT_TEST_H */
