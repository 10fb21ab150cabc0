// SPDX-License-Identifier: MIT
/*
 * ptrackctl peer listen HOST:PORT [--mem-file PATH] [--state-dir DIR]
 * Has ptrackd receive one migration; waits for its end.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

static void print(struct ctl *c, const PtCtlReply *r)
{
	const Ptrack__Control__V1__PeerReply *p = r->peer;

	if (c->json) {
		printf("{\"event\":\"%s\",\"ok\":%s,\"state\":",
		       r->final ? "result" : "progress",
		       r->status ? "false" : "true");
		json_str(stdout, p->state);
		printf(",\"listen\":");
		json_str(stdout, p->listen);
		/* The session id is random 64-bit: a string for JSON. */
		printf(",\"session_id\":\"%" PRIu64 "\",\"pages\":%" PRIu64
		       ",\"rounds\":%" PRIu64 ",\"mem_size_bytes\":%" PRIu64,
		       p->session_id, p->pages, p->rounds, p->mem_size);
		if (r->status) {
			printf(",\"error\":");
			json_str(stdout, r->error);
		}
		printf("}\n");
	} else if (r->status) {
		fprintf(stderr, "ptrackctl: peer on %s failed: %s\n", p->listen,
			r->error);
	} else if (!r->final) {
		printf("listening on %s\n", p->listen);
	} else {
		printf("session %016" PRIx64 " completed: %" PRIu64
		       " pages in %" PRIu64 " rounds, checksums match\n",
		       p->session_id, p->pages, p->rounds);
	}
	fflush(stdout);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: ptrackctl peer listen HOST:PORT [--mem-file PATH] [--state-dir DIR] [--json]\n");
	return CTL_USAGE;
}

int cmd_peer(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mem-file", required_argument, NULL, 'm' },
		{ "state-dir", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__PeerListenRequest p =
		PTRACK__CONTROL__V1__PEER_LISTEN_REQUEST__INIT;
	PtCtlReply *r;
	int opt, ret, fin;

	optind = 2;
	while ((opt = getopt_long(argc, argv, "m:s:", lo, NULL)) != -1) {
		if (opt == 'm')
			p.mem_path = optarg;
		else if (opt == 's')
			p.state_dir = optarg;
		else
			return usage();
	}
	if (argc < 2 || strcmp(argv[1], "listen") != 0 || optind != argc - 1)
		return usage();
	p.listen = argv[optind];
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_PEER_LISTEN;
	q.peer_listen = &p;
	ret = ctl_send(c, &q);
	if (ret)
		return ret;
	do {
		ret = ctl_recv(c, &r);
		if (ret)
			return ret;
		if (r->body_case != PTRACK__CONTROL__V1__REPLY__BODY_PEER) {
			ret = ctl_status_exit(r->status);
			ctl_print_error(c, r->status, r->error);
			pt_ctl_reply_free(r);
			return ret ? ret : CTL_FAILED;
		}
		print(c, r);
		fin = r->final;
		ret = ctl_status_exit(r->status);
		pt_ctl_reply_free(r);
	} while (!fin);
	return ret;
}
