// SPDX-License-Identifier: MIT
/*
 * ptrackctl: drives ptrackd over its control socket. Options --json and
 * --socket PATH are accepted anywhere on the command line.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ptrack/version.h"
#include "service/config.h"

static const struct {
	const char *name;
	int (*fn)(struct ctl *c, int argc, char **argv);
} cmds[] = {
	{ "status", cmd_status },   { "vms", cmd_vms },
	{ "track", cmd_track },	    { "dirtyrate", cmd_dirtyrate },
	{ "migrate", cmd_migrate }, { "peer", cmd_peer },
	{ "metrics", cmd_metrics },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ptrackctl [--socket PATH] [--json] COMMAND [ARGS]\n"
		"  status                      daemon status\n"
		"  vms                         VMs, their dirty source and rate\n"
		"  track start|stop VM         track a VM's dirty rate\n"
		"  dirtyrate VM [--seconds N] [--mode bitmap|ring] [--vcpu]\n"
		"  migrate VM --to HOST:PORT [--downtime-ms N] [--bandwidth B]\n"
		"  peer listen HOST:PORT [--mem-file PATH] [--state-dir DIR]\n"
		"  metrics                     Prometheus text\n"
		"  --help, --version\n"
		"Socket: --socket, $PTRACK_CONTROL_SOCKET or " PT_CONTROL_SOCKET
		"\n"
		"Exit status: 0 ok, 1 failed, 2 usage, 3 ptrackd unreachable,\n"
		"4 permission denied, 5 no such VM.\n");
}

/* Pulls the global options out of argv wherever they are. */
static int globals(struct ctl *c, int *argc, char **argv)
{
	int j = 0;

	for (int i = 0; i < *argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			c->json = 1;
		} else if (!strcmp(argv[i], "--socket") && i + 1 < *argc) {
			c->socket = argv[++i];
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			c->socket = argv[i] + 9;
		} else if (!strcmp(argv[i], "--socket")) {
			return -1;
		} else {
			argv[j++] = argv[i];
		}
	}
	*argc = j;
	argv[j] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl c = { .fd = -1 };
	int ret;

	/* A refused or vanished daemon is an error to report, not a kill. */
	signal(SIGPIPE, SIG_IGN);
	c.socket = getenv("PTRACK_CONTROL_SOCKET");
	if (!c.socket)
		c.socket = PT_CONTROL_SOCKET;
	if (globals(&c, &argc, argv) || argc < 2) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return CTL_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ptrackctl %s\n", PTRACK_VERSION);
		return CTL_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		ret = cmds[i].fn(&c, argc - 1, argv + 1);
		ctl_close(&c);
		return ret;
	}
	fprintf(stderr, "ptrackctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CTL_USAGE;
}
