// SPDX-License-Identifier: MIT
/*
 * ptrackd: the migration daemon, a thin CLI over the engine for now.
 *
 *   ptrackd serve [OPTIONS]            the service (serve.c)
 *   ptrackd peer --listen HOST:PORT --mem-file PATH [--state-dir DIR]
 *   ptrackd source --vmm-socket PATH --to HOST:PORT [--downtime-ms N]
 *           [--bandwidth BYTES/s] [--max-rounds N] [--dump-memory PATH]
 *           [--tcp-congestion NAME]
 *
 * Exit status: 0 on success, 1 when the migration failed, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/error.h"
#include "engine/migrate.h"
#include "serve.h"
#include "source.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ptrackd serve [OPTIONS]   the service (see ptrackd serve --help)\n"
		"       ptrackd peer --listen HOST:PORT [--mem-file PATH] [--state-dir DIR]\n"
		"                    [--idle-ms N] [--quiet]\n"
		"       ptrackd source --vmm-socket PATH --to HOST:PORT [--downtime-ms N]\n"
		"                    [--bandwidth BYTES/s] [--max-rounds N] [--time-limit-ms N]\n"
		"                    [--dump-memory PATH] [--tcp-congestion NAME] [--quiet]\n"
		"peer: receive one migration into PATH (default: a memfd); with a state\n"
		"dir the session survives a restart of the peer.\n"
		"source: accept one VM registration on the unix socket PATH (libptrack)\n"
		"and migrate it; --dump-memory writes the paused guest's memory (regions\n"
		"in guest-physical order, as the peer stores them) after success;\n"
		"--tcp-congestion sets the stream's TCP congestion control (e.g. cubic\n"
		"where BBR runs without the fq qdisc and paces with timers).\n");
}

static int run_peer(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "mem-file", required_argument, NULL, 'm' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pt_peer_opts o = { .lfd = -1 };
	struct pt_peer_result res;
	int c, r;

	while ((c = getopt_long(argc, argv, "l:m:s:i:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'l':
			o.listen = optarg;
			break;
		case 'm':
			o.mem_path = optarg;
			break;
		case 's':
			o.state_dir = optarg;
			break;
		case 'i':
			o.idle_ms = strtoull(optarg, NULL, 0);
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.listen) {
		usage(stderr);
		return 2;
	}
	r = pt_peer_run(&o, &res);
	if (r) {
		fprintf(stderr, "ptrackd peer: failed: %s (%s)\n", res.err,
			pt_error_name(res.code));
		return 1;
	}
	printf("ptrackd peer: session %016" PRIx64 " complete%s: %" PRIu64
	       " frames, %" PRIu64 " pages (%" PRIu64 " zero), %" PRIu64
	       " rounds, %" PRIu64 " duplicates, %" PRIu64
	       " stale, checksums match\n",
	       res.session_id, res.resumed ? " (resumed from state)" : "",
	       res.frames, res.pages, res.zero_pages, res.rounds,
	       res.duplicates, res.stale_pages);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "peer"))
		return run_peer(argc - 1, argv + 1);
	if (!strcmp(argv[1], "source"))
		return ptrackd_source(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return ptrackd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
