// SPDX-License-Identifier: MIT
/*
 * Skips: a test that cannot run here says why with PT_SKIP(). Skips are
 * counted and listed after CUnit's summary, so a run that did not test
 * something never reads as all passed; in CI (CI set, not "false" or "0")
 * every skip is also a failure, because the CI machine has what the tests
 * need and a skip there means a broken set-up.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pt_test.h"

struct skip {
	struct skip *next;
	char text[];
};

static struct skip *skips, **skips_tail = &skips;
static unsigned int nskips;

int pt_test_ci(void)
{
	const char *v = getenv("CI");

	return v && *v && strcmp(v, "false") != 0 && strcmp(v, "0") != 0;
}

/* Something that answers KVM's API version, not just a node that opens
 * (/dev/null bind-mounted over /dev/kvm hides it). */
int pt_test_have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	ok = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
	close(fd);
	return ok;
}

/* Appends to $PTRACK_SKIP_LOG, which tests/run.sh counts. */
static void log_skip(const char *text)
{
	const char *path = getenv("PTRACK_SKIP_LOG");
	char build[PATH_MAX], *slash;
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "ae");
	if (!f)
		return;
	/* build/normal/bin or build/san/bin: which run skipped it */
	snprintf(build, sizeof(build), "%s", pt_test_bindir());
	slash = strrchr(build, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(build, '/');
	fprintf(f, "(%s) %s\n", slash ? slash + 1 : build, text);
	fclose(f);
}

void pt_test_skip(const char *file, unsigned int line, const char *fmt, ...)
{
	CU_pSuite suite = CU_get_current_suite();
	CU_pTest test = CU_get_current_test();
	char reason[512], msg[600];
	struct skip *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	n = snprintf(msg, sizeof(msg), "%s/%s: %s", suite ? suite->pName : "?",
		     test ? test->pName : "?", reason);
	fprintf(stderr, "\n  SKIPPED: %s%s\n", reason,
		pt_test_ci() ? " (a failure in CI)" : "");
	nskips++;
	log_skip(msg);
	s = malloc(sizeof(*s) + (size_t)n + 1);
	if (s) {
		memcpy(s->text, msg, (size_t)n + 1);
		s->next = NULL;
		*skips_tail = s;
		skips_tail = &s->next;
	}
	if (pt_test_ci()) {
		snprintf(msg, sizeof(msg), "PT_SKIP in CI: %s", reason);
		CU_assertImplementation(CU_FALSE, line, msg, file, "",
					CU_FALSE);
	}
}

unsigned int pt_test_skip_report(void)
{
	printf("\n%u skipped%s\n", nskips,
	       nskips && pt_test_ci() ? " (CI: each is a failure)" : "");
	for (struct skip *s = skips; s; s = s->next)
		printf("  skipped %s\n", s->text);
	while (skips) {
		struct skip *s = skips;

		skips = s->next;
		free(s);
	}
	skips_tail = &skips;
	return nskips;
}
