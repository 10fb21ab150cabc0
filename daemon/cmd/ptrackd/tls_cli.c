// SPDX-License-Identifier: MIT
/* The peer link's TLS options (tls_cli.h). */
#include "tls_cli.h"

#include <stdio.h>

int tls_cli_opt(struct tls_cli *t, int c, const char *arg)
{
	switch (c) {
	case TLS_OPT_BASE:
		t->o.dir = arg;
		return 1;
	case TLS_OPT_BASE + 1:
		t->o.mode = PT_TLS_PSK;
		t->o.psk_file = arg;
		return 1;
	case TLS_OPT_BASE + 2:
		t->o.psk_identity = arg;
		return 1;
	case TLS_OPT_BASE + 3:
		t->o.allowed = arg;
		return 1;
	case TLS_OPT_BASE + 4:
		t->o.hostname = arg;
		return 1;
	case TLS_OPT_BASE + 5:
		t->insecure = 1;
		return 1;
	default:
		return 0;
	}
}

int tls_cli_load(const struct tls_cli *t, int server, struct pt_tls **out)
{
	char err[512];

	*out = NULL;
	if (t->insecure) {
		fprintf(stderr,
			"ptrackd: WARNING: --insecure: the peer link is plain TCP, "
			"unauthenticated and unencrypted\n");
		return 0;
	}
	*out = pt_tls_new(&t->o, server, err, sizeof(err));
	if (*out)
		return 0;
	fprintf(stderr,
		"ptrackd: %s\n(the peer link needs TLS credentials, see --help; "
		"--insecure for plain TCP)\n",
		err);
	return -1;
}
