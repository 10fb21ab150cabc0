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
 * Exit status: 0 on success, 1 when the migration failed, 2 on usage errors,
 * 4 when a switchover's outcome is unknown (the guest stays paused).
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
#include "ptrack/version.h"
#include "serve.h"
#include "source.h"
#include "source/vmm_push.h"
#include "tls_cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ptrackd serve [OPTIONS]   the service (see ptrackd serve --help)\n"
		"       ptrackd peer --listen HOST:PORT (--vmm-socket PATH | --mem-file PATH)\n"
		"                    [--state-dir DIR] [--idle-ms N] [--max-mem BYTES] [--quiet]\n"
		"       ptrackd source --vmm-socket PATH --to HOST:PORT [--downtime-ms N]\n"
		"                    [--bandwidth BYTES/s] [--max-rounds N] [--time-limit-ms N]\n"
		"                    [--dump-memory PATH] [--tcp-congestion NAME] [--quiet]\n"
		"                    [--reconnect-ms N] [--switchover-ms N] [--copy-only]\n"
		"                    [--cap-final-round] [--auto-converge [--ac-initial PCT]\n"
		"                    [--ac-step PCT]]\n"
		"       ptrackd --help | --version\n"
		"peer: receive one migration. With --vmm-socket, an incoming VMM (libptrack,\n"
		"e.g. ptrack-vmm --incoming) registers there first; the pages go into its\n"
		"memory and the guest resumes in it (switchover). With --mem-file, only the\n"
		"memory is copied into PATH; with a state dir that survives a restart.\n"
		"source: accept one VM registration on the unix socket PATH (libptrack)\n"
		"and migrate it; --dump-memory writes the paused guest's memory (regions\n"
		"in guest-physical order, as the peer stores them) after success;\n"
		"--tcp-congestion sets the stream's TCP congestion control (e.g. cubic\n"
		"where BBR runs without the fq qdisc and paces with timers).\n"
		"When the VMM can save its state and the peer has an incoming VM, the\n"
		"guest switches over: it is stopped here only once the peer says it\n"
		"resumed; --switchover-ms bounds that wait (if the outcome stays unknown\n"
		"the guest stays paused and the exit status is 4); --copy-only copies\n"
		"the memory without handing the guest over. --bandwidth does not hold in\n"
		"the final round (the guest is paused) unless --cap-final-round.\n"
		"--auto-converge throttles the guest's vCPUs (20%%, then +10%% per step)\n"
		"while rounds do not shrink the dirty set, as QEMU's auto-converge.\n"
		"peer and source: " TLS_CLI_USAGE);
}

/* The incoming VM the session must be for: the first to register. */
static int accept_incoming(const char *path, int timeout_ms,
			   struct pt_dirty_source **out)
{
	int fd, r;

	*out = NULL;
	fd = pt_vmm_listen(path);
	if (fd < 0)
		return fd;
	printf("waiting for an incoming VMM on %s\n", path);
	r = pt_vmm_accept(fd, timeout_ms, out);
	if (r == -EAGAIN)
		r = -ETIMEDOUT;
	close(fd);
	unlink(path);
	if (!r && *out && !(*out)->incoming) {
		(*out)->ops->release(*out);
		*out = NULL;
		r = -EINVAL;
	}
	return r;
}

static void peer_report(const struct pt_peer_result *res)
{
	printf("ptrackd peer: session %016" PRIx64 " complete%s: %" PRIu64
	       " frames, %" PRIu64 " pages (%" PRIu64 " zero), %" PRIu64
	       " rounds, %" PRIu64 " duplicates, %" PRIu64
	       " stale, checksums match\n",
	       res->session_id, res->resumed ? " (resumed from state)" : "",
	       res->frames, res->pages, res->zero_pages, res->rounds,
	       res->duplicates, res->stale_pages);
	if (res->switched_over)
		printf("ptrackd peer: switchover done: the guest runs in the "
		       "incoming VMM\n");
}

static int run_peer(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "mem-file", required_argument, NULL, 'm' },
		{ "vmm-socket", required_argument, NULL, 'v' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "max-mem", required_argument, NULL, 'M' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		TLS_CLI_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct pt_peer_opts o = { .lfd = -1 };
	struct pt_peer_result res;
	const char *vmm_socket = NULL;
	struct tls_cli tls = { 0 };
	struct pt_tls *t;
	int c, r;

	while ((c = getopt_long(argc, argv, "l:m:v:s:i:M:qh", lo, NULL)) !=
	       -1) {
		switch (c) {
		case 'l':
			o.listen = optarg;
			break;
		case 'm':
			o.mem_path = optarg;
			break;
		case 'v':
			vmm_socket = optarg;
			break;
		case 's':
			o.state_dir = optarg;
			break;
		case 'i':
			o.idle_ms = strtoull(optarg, NULL, 0);
			break;
		case 'M':
			o.max_mem = strtoull(optarg, NULL, 0);
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (tls_cli_opt(&tls, c, optarg))
				break;
			usage(stderr);
			return 2;
		}
	}
	/* Memory that nobody will ever run or read is not a migration. */
	if (!o.listen || !vmm_socket == !o.mem_path) {
		usage(stderr);
		return 2;
	}
	if (tls_cli_load(&tls, 1, &t))
		return 2;
	o.tls = t;
	/* Listen first: a source may connect while the VMM starts. */
	o.lfd = pt_tcp_listen(o.listen);
	if (o.lfd < 0) {
		fprintf(stderr, "ptrackd peer: cannot listen on %s: %s\n",
			o.listen, strerror(-o.lfd));
		pt_tls_free(t);
		return 1;
	}
	if (vmm_socket) {
		r = accept_incoming(vmm_socket, 60000, &o.incoming);
		if (r || !o.incoming) {
			fprintf(stderr,
				"ptrackd peer: no incoming VM registered on %s: %s\n",
				vmm_socket, strerror(-r));
			close(o.lfd);
			pt_tls_free(t);
			return 1;
		}
		printf("incoming VM '%s' registered: %u vCPUs, %zu regions\n",
		       o.incoming->name, o.incoming->vcpus,
		       o.incoming->nregions);
	}
	/* Ready for a source from here on: tests wait for this line. */
	if (!o.quiet) {
		printf("ptrackd peer: listening on %s\n", o.listen);
		fflush(stdout);
	}
	r = pt_peer_run(&o, &res);
	pt_tls_free(t);
	if (r) {
		fprintf(stderr, "ptrackd peer: failed: %s (%s)\n", res.err,
			pt_error_name(res.code));
		/* Never resumed here: the incoming guest is discarded. */
		if (o.incoming && !res.switched_over)
			o.incoming->ops->stop(o.incoming);
	} else {
		peer_report(&res);
	}
	if (o.incoming)
		o.incoming->ops->release(o.incoming);
	if (o.lfd >= 0)
		close(o.lfd);
	return r ? 1 : 0;
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
	if (!strcmp(argv[1], "--version")) {
		printf("ptrackd %s\n", PTRACK_VERSION);
		return 0;
	}
	usage(stderr);
	return 2;
}
