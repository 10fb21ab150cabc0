// SPDX-License-Identifier: MIT
/*
 * Runs every registered suite with CUnit's basic interface. Usage:
 *   ptrack-tests [-s SUITE[,SUITE...]] [-l]
 * -s runs only the named suites, -l lists them. The exit status is non-zero
 * when any assertion failed or any suite could not be set up (in CI, a
 * skip is a failed assertion: see skip.c). Skips are listed after CUnit's
 * summary as "N skipped".
 */
#include "pt_test.h"

#include <CUnit/Basic.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A test that runs longer than this (PTRACK_TEST_TIMEOUT seconds) fails the
 * whole run loudly instead of hanging CI. */
#define PT_TEST_TIMEOUT_DEFAULT 600

static struct pt_suite *suites;
static char bindir[PATH_MAX];

void pt_suite_register(struct pt_suite *s)
{
	struct pt_suite **p = &suites;

	/* Keep suites sorted by name so runs are reproducible. */
	while (*p && strcmp((*p)->name, s->name) < 0)
		p = &(*p)->next;
	s->next = *p;
	*p = s;
}

const char *pt_test_bindir(void)
{
	return bindir;
}

int pt_test_long(void)
{
	const char *v = getenv("PTRACK_TEST_LONG");

	return v && strcmp(v, "1") == 0;
}

static void *watchdog(void *arg)
{
	unsigned int limit = *(unsigned int *)arg, same = 0;
	CU_pTest last = NULL, cur;

	for (;;) {
		sleep(1);
		cur = CU_get_current_test();
		same = cur && cur == last ? same + 1 : 0;
		last = cur;
		if (!cur || same < limit)
			continue;
		fprintf(stderr,
			"\nTIMEOUT: test %s ran longer than %u s; aborting the run\n",
			cur->pName, limit);
		fflush(NULL);
		/* our own process group: the test and what it started */
		kill(0, SIGKILL);
		_exit(1);
	}
	return NULL;
}

static void start_watchdog(void)
{
	static unsigned int limit = PT_TEST_TIMEOUT_DEFAULT;
	const char *v = getenv("PTRACK_TEST_TIMEOUT");
	pthread_t t;

	if (v && atoi(v) > 0)
		limit = (unsigned int)atoi(v);
	setpgid(0, 0);
	if (!pthread_create(&t, NULL, watchdog, &limit))
		pthread_detach(t);
}

static int selected(const char *filter, const char *name)
{
	size_t n = strlen(name);
	const char *p = filter;

	if (!filter)
		return 1;
	while ((p = strstr(p, name))) {
		if ((p == filter || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
		p += n;
	}
	return 0;
}

static int add_suite(const struct pt_suite *s)
{
	CU_pSuite cs = CU_add_suite(s->name, s->init, s->cleanup);
	const CU_TestInfo *t;

	if (!cs)
		return -1;
	for (t = s->tests; t->pName; t++)
		if (!CU_add_test(cs, t->pName, t->pTestFunc))
			return -1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *filter = getenv("PTRACK_SUITES");
	char self[PATH_MAX];
	struct pt_suite *s;
	ssize_t n;
	int opt, fails;

	while ((opt = getopt(argc, argv, "s:l")) != -1) {
		if (opt == 's') {
			filter = optarg;
		} else if (opt == 'l') {
			for (s = suites; s; s = s->next)
				puts(s->name);
			return 0;
		} else {
			fprintf(stderr, "usage: %s [-s SUITES] [-l]\n",
				argv[0]);
			return 2;
		}
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return 2;
	self[n] = '\0';
	snprintf(bindir, sizeof(bindir), "%s", dirname(self));

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (s = suites; s; s = s->next)
		if (selected(filter, s->name) && add_suite(s)) {
			fprintf(stderr, "cannot register suite %s\n", s->name);
			CU_cleanup_registry();
			return 2;
		}
	start_watchdog();
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	pt_test_skip_report();
	return fails ? 1 : 0;
}
