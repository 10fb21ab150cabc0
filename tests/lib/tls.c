// SPDX-License-Identifier: MIT
/* Throwaway TLS credentials for the tests (tests/lib/make-certs.sh). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_test.h"

static char tls_dir[PATH_MAX];
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_rm(void)
{
	char cmd[PATH_MAX + 16];

	if (!strncmp(tls_dir, "/tmp/ptrack-pki-", 16)) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tls_dir);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", tls_dir);
	}
}

static void tls_make(void)
{
	char dir[] = "/tmp/ptrack-pki-XXXXXX", cmd[2 * PATH_MAX + 64];

	if (!mkdtemp(dir))
		return;
	snprintf(cmd, sizeof(cmd),
		 "bash '%s/../../../tests/lib/make-certs.sh' '%s'",
		 pt_test_bindir(), dir);
	snprintf(tls_dir, sizeof(tls_dir), "%s", dir);
	atexit(tls_rm);
	if (system(cmd)) {
		fprintf(stderr,
			"make-certs.sh failed (certtool: gnutls-bin)\n");
		tls_rm();
		tls_dir[0] = 0;
	}
}

const char *pt_test_tls_dir(void)
{
	pthread_once(&tls_once, tls_make);
	return tls_dir[0] ? tls_dir : NULL;
}
