// SPDX-License-Identifier: MIT
/* `ptrackd source`: accept one VMM registration and migrate that VM. */
#include "source.h"

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

struct src_cli {
	struct pt_source_opts o;
	const char *vmm_socket, *dump;
	int quiet;
};

static void progress(const struct pt_mig_progress *p, void *arg)
{
	const struct src_cli *c = arg;

	if (c->quiet)
		return;
	printf("round %" PRIu64 "%s: dirty %" PRIu64
	       " pages, remaining %.1f MiB, %.1f MB/s, expected downtime %.0f ms, transferred %.1f MB\n",
	       p->round, p->final ? " (final, vCPUs paused)" : "",
	       p->dirty_pages, (double)p->remaining / (1 << 20), p->mbps,
	       p->expected_downtime_ms, (double)p->transferred / 1e6);
}

static int parse(struct src_cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmm-socket", required_argument, NULL, 'v' },
		{ "to", required_argument, NULL, 't' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "max-rounds", required_argument, NULL, 'r' },
		{ "time-limit-ms", required_argument, NULL, 'T' },
		{ "dump-memory", required_argument, NULL, 'D' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "v:t:d:b:r:T:D:q", lo, NULL)) !=
	       -1) {
		switch (opt) {
		case 'v':
			c->vmm_socket = optarg;
			break;
		case 't':
			c->o.to = optarg;
			break;
		case 'd':
			c->o.downtime_ms = strtoull(optarg, NULL, 0);
			break;
		case 'b':
			c->o.bandwidth = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			c->o.max_rounds =
				(unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'T':
			c->o.time_limit_ms = strtoull(optarg, NULL, 0);
			break;
		case 'D':
			c->dump = optarg;
			break;
		case 'q':
			c->quiet = 1;
			break;
		default:
			return -EINVAL;
		}
	}
	return c->vmm_socket && c->o.to ? 0 : -EINVAL;
}

/* The paused guest's regions in guest-physical order, like the peer's. */
static int dump_memory(const struct pt_dirty_source *s, const char *path)
{
	uint64_t last = 0;
	size_t i, k, best;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = 0;

	if (fd < 0)
		return -errno;
	for (k = 0; k < s->nregions && !r; k++) {
		best = s->nregions;
		for (i = 0; i < s->nregions; i++)
			if ((!k || s->regions[i].gpa_base > last) &&
			    (best == s->nregions ||
			     s->regions[i].gpa_base <
				     s->regions[best].gpa_base))
				best = i;
		last = s->regions[best].gpa_base;
		for (i = 0; i < s->regions[best].size && !r;) {
			ssize_t n = write(fd, s->regions[best].hva + i,
					  s->regions[best].size - i);

			if (n <= 0)
				r = n < 0 ? -errno : -EIO;
			else
				i += (size_t)n;
		}
	}
	if (close(fd) && !r)
		r = -errno;
	return r;
}

static int migrate(struct src_cli *c, struct pt_dirty_source *s)
{
	struct pt_source_result res;
	int r = pt_migrate(s, &c->o, &res);

	if (r) {
		fprintf(stderr,
			"ptrackd source: migration failed: %s (%s); the guest keeps running\n",
			res.err, pt_error_name(res.code));
		return 1;
	}
	printf("migration complete: %" PRIu64 " rounds, total %" PRIu64
	       " ms, downtime %" PRIu64 " ms, %.1f MB on the wire, %" PRIu64
	       " pages sent, %" PRIu64 " zero pages, %" PRIu64 " reconnects\n",
	       res.rounds, res.total_ms, res.downtime_ms,
	       (double)res.bytes / 1e6, res.pages_sent, res.zero_pages,
	       res.reconnects);
	if (c->dump) {
		r = dump_memory(s, c->dump);
		if (r) {
			fprintf(stderr,
				"ptrackd source: cannot dump memory to %s: %s\n",
				c->dump, strerror(-r));
			return 1;
		}
	}
	return 0;
}

int ptrackd_source(int argc, char **argv)
{
	struct src_cli c = { .o = { .progress = progress } };
	struct pt_dirty_source *s = NULL;
	int r;

	c.o.arg = &c;
	if (parse(&c, argc, argv)) {
		fprintf(stderr,
			"usage: ptrackd source --vmm-socket PATH --to HOST:PORT [options]\n");
		return 2;
	}
	r = -ENOSYS;
	if (r || !s) {
		fprintf(stderr,
			"ptrackd source: cannot take a VM from %s: %s (libptrack's vmm_push is not built in yet)\n",
			c.vmm_socket, strerror(-r));
		return 1;
	}
	r = migrate(&c, s);
	s->ops->stop(s);
	s->ops->release(s);
	return r;
}
