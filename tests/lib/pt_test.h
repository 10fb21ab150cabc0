/* SPDX-License-Identifier: MIT */
/*
 * Test harness: every tests/.../test_*.c file registers its CUnit suite with
 * PT_SUITE(), so one binary runs all of them and ends with CUnit's summary.
 */
#ifndef PT_TEST_H
#define PT_TEST_H

#include <CUnit/CUnit.h>
#include <stddef.h>

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
