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
#include "source/vmm_push.h"
#include "tls_cli.h"

struct src_cli {
	struct pt_source_opts o;
	const char *vmm_socket, *dump;
	int quiet;
	struct tls_cli tls;
};

static void progress(const struct pt_mig_progress *p, void *arg)
{
	const struct src_cli *c = arg;

	if (c->quiet)
		return;
	printf("round %" PRIu64 "%s: dirty %" PRIu64
	       " pages, remaining %.1f MiB",
	       p->round, p->final ? " (final, vCPUs paused)" : "",
	       p->dirty_pages, (double)p->remaining / (1 << 20));
	if (p->mbps > 0)
		printf(", %.1f MB/s, expected downtime %.0f ms", p->mbps,
		       p->expected_downtime_ms);
	printf(", transferred %.1f MB", (double)p->transferred / 1e6);
	if (p->throttle)
		printf(", vCPU throttle %u%%", p->throttle);
	printf("\n");
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
		{ "tcp-congestion", required_argument, NULL, 'C' },
		{ "reconnect-ms", required_argument, NULL, 'R' },
		{ "switchover-ms", required_argument, NULL, 'S' },
		{ "copy-only", no_argument, NULL, 'O' },
		{ "cap-final-round", no_argument, NULL, 'F' },
		{ "auto-converge", no_argument, NULL, 'A' },
		{ "ac-initial", required_argument, NULL, 'I' },
		{ "ac-step", required_argument, NULL, 'P' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		TLS_CLI_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "v:t:d:b:r:T:D:C:R:S:OFAI:P:qh",
				  lo, NULL)) != -1) {
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
		case 'C':
			c->o.tcp_congestion = optarg;
			break;
		case 'R':
			c->o.reconnect_ms = strtoull(optarg, NULL, 0);
			break;
		case 'S':
			c->o.switchover_ms = strtoull(optarg, NULL, 0);
			break;
		case 'O':
			c->o.copy_only = 1;
			break;
		case 'F':
			c->o.cap_final_round = 1;
			break;
		case 'A':
			c->o.auto_converge = 1;
			break;
		case 'I':
			c->o.ac_initial =
				(unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'P':
			c->o.ac_step = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		case 'q':
			c->quiet = 1;
			break;
		case 'h':
			return 1;
		default:
			if (tls_cli_opt(&c->tls, opt, optarg))
				break;
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

	if (r && res.outcome_unknown) {
		fprintf(stderr,
			"ptrackd source: %s. Ask the destination whether its "
			"guest runs (its ptrackd peer printed \"switchover done\" "
			"and its VMM \"guest resumed\"); the source VMM says "
			"how to resume or end the paused guest.\n",
			res.err);
		return 4;
	}
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
	if (res.throttle_max)
		printf("auto-converge: vCPU throttle up to %u%%, lifted\n",
		       res.throttle_max);
	printf("downtime: %" PRIu64 " ms pause and final harvest, %" PRIu64
	       " ms final round, %" PRIu64 " ms %schecksums and Complete",
	       res.pause_ms,
	       res.downtime_ms - res.pause_ms - res.complete_ms - res.resume_ms,
	       res.complete_ms, res.switched_over ? "VMM state, " : "");
	if (res.switched_over)
		printf(", %" PRIu64 " ms until the destination resumed",
		       res.resume_ms);
	printf("\n");
	if (res.switched_over)
		printf("switchover: the guest runs on %s (%" PRIu64
		       " bytes of VMM state); stopping it here\n",
		       c->o.to, res.state_bytes);
	else
		printf("memory copied only: the peer has no incoming VM\n");
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

struct counter {
	struct pt_dirty_sink sink;
	uint64_t pages;
};

static int count_bitmap(struct pt_dirty_sink *k, uint32_t region,
			uint64_t first, uint64_t npages, const uint64_t *w)
{
	uint64_t i;

	(void)region;
	(void)first;
	for (i = 0; i < (npages + 63) / 64; i++)
		((struct counter *)k)->pages +=
			(uint64_t)__builtin_popcountll(w[i]);
	return 0;
}

static int count_ring(struct pt_dirty_sink *k, int vcpu, const uint64_t *g,
		      size_t n)
{
	(void)vcpu;
	(void)g;
	((struct counter *)k)->pages += n;
	return 0;
}

static int count_all(struct pt_dirty_sink *k, uint32_t region)
{
	(void)region;
	((struct counter *)k)->pages += 1;
	return 0;
}

static const struct pt_dirty_sink_ops counter_ops = { .bitmap = count_bitmap,
						      .ring = count_ring,
						      .all = count_all };

/* After a failure, show that the guest still runs: it keeps dirtying. */
static void check_running(struct pt_dirty_source *s)
{
	struct counter c = { .sink.ops = &counter_ops };
	int r = s->ops->harvest(s, &c.sink);

	usleep(200000);
	c.pages = 0;
	if (!r)
		r = s->ops->harvest(s, &c.sink);
	if (r)
		fprintf(stderr, "ptrackd source: cannot reach the VMM: %s\n",
			strerror(-r));
	else
		printf("the guest keeps running: %" PRIu64
		       " pages written in 200 ms\n",
		       c.pages);
}

static int accept_vm(const char *path, struct pt_dirty_source **out)
{
	int fd, r;

	fd = pt_vmm_listen(path);
	if (fd < 0)
		return fd;
	printf("waiting for a VMM on %s\n", path);
	r = pt_vmm_accept(fd, 60000, out);
	if (r == -EAGAIN)
		r = -ETIMEDOUT;
	close(fd);
	unlink(path);
	return r;
}

int ptrackd_source(int argc, char **argv)
{
	struct src_cli c = { .o = { .progress = progress } };
	struct pt_dirty_source *s = NULL;
	struct pt_tls *t;
	int r;

	c.o.arg = &c;
	r = parse(&c, argc, argv);
	if (r) {
		/* --help: the usage on stdout, status 0 (ptrackd --help has
		 * every option of every mode). */
		fprintf(r > 0 ? stdout : stderr,
			"usage: ptrackd source --vmm-socket PATH --to "
			"HOST:PORT [options]   (options: ptrackd --help)\n" TLS_CLI_USAGE);
		return r > 0 ? 0 : 2;
	}
	/* Before the VM registers: a missing key must not cost a VMM. */
	if (tls_cli_load(&c.tls, 0, &t))
		return 2;
	c.o.tls = t;
	r = accept_vm(c.vmm_socket, &s);
	if (r || !s) {
		fprintf(stderr, "ptrackd source: no VM registered on %s: %s\n",
			c.vmm_socket, strerror(-r));
		pt_tls_free(t);
		return 1;
	}
	printf("VM '%s' registered: %u vCPUs, %zu regions, %s dirty log\n",
	       s->name, s->vcpus, s->nregions,
	       s->kind == PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING
		       ? "ring"
		       : "bitmap");
	r = migrate(&c, s);
	if (r == 1)
		check_running(s);
	else if (!r)
		s->ops->stop(s);
	s->ops->release(s);
	pt_tls_free(t);
	return r;
}
