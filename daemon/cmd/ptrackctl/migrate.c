// SPDX-License-Identifier: MIT
/*
 * ptrackctl migrate VM --to HOST:PORT [--downtime-ms N] [--bandwidth B]
 *                    [--max-rounds N] [--tcp-congestion NAME]
 * Streams ptrackd's progress: a live bar on a terminal, one plain line per
 * round otherwise, one JSON object per line with --json.
 */
#include <errno.h>
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

#define BAR 30

struct view {
	const char *to;
	int tty;
	uint64_t max_remaining;
};

/* The engine's mbps is 10^6 bytes/s; the terminal shows MiB like the
 * sizes next to it. */
static double mib_s(const Ptrack__Control__V1__MigrateProgress *p)
{
	return p->mbps * 1e6 / 1048576.0;
}

static void progress_json(const Ptrack__Control__V1__MigrateProgress *p,
			  const PtCtlReply *r)
{
	/* 64-bit ids as strings (JSON numbers lose precision above 2^53);
	 * every quantity's name says its unit. */
	printf("{\"event\":\"%s\",\"ok\":%s,\"migration_id\":\"%" PRIu64
	       "\",\"state\":",
	       r->final ? "result" : "progress", r->status ? "false" : "true",
	       p->migration_id);
	json_str(stdout, p->state);
	printf(",\"round\":%" PRIu64 ",\"dirty_pages\":%" PRIu64
	       ",\"remaining_bytes\":%" PRIu64 ",\"transferred_bytes\":%" PRIu64
	       ",\"transfer_bytes_per_second\":%.0f"
	       ",\"expected_downtime_ms\":%.3f,\"total_ms\":%" PRIu64
	       ",\"downtime_ms\":%" PRIu64 ",\"final_round\":%s",
	       p->round, p->dirty_pages, p->remaining, p->transferred,
	       p->mbps * 1e6, p->expected_downtime_ms, p->total_ms,
	       p->downtime_ms, p->final_round ? "true" : "false");
	printf(",\"throttle_percent\":%u", p->throttle);
	if (r->final)
		printf(",\"switched_over\":%s",
		       p->switched_over ? "true" : "false");
	if (r->status) {
		printf(",\"error\":");
		json_str(stdout, r->error);
	}
	printf("}\n");
	fflush(stdout);
}

static void progress_bar(struct view *v,
			 const Ptrack__Control__V1__MigrateProgress *p)
{
	char bar[BAR + 1];
	double done;
	int n;

	if (p->remaining > v->max_remaining)
		v->max_remaining = p->remaining;
	done = v->max_remaining
		       ? 1.0 - (double)p->remaining / (double)v->max_remaining
		       : 0.0;
	n = (int)(done * BAR + 0.5);
	memset(bar, '#', (size_t)n);
	memset(bar + n, '-', (size_t)(BAR - n));
	bar[BAR] = '\0';
	printf("\r\033[K[%s] round %" PRIu64
	       "  remaining %.1f MiB  %.1f MiB/s  expected downtime %.0f ms%s",
	       bar, p->round, p->remaining / 1048576.0, mib_s(p),
	       p->expected_downtime_ms, p->final_round ? "  (final)" : "");
	fflush(stdout);
}

static void progress_line(const Ptrack__Control__V1__MigrateProgress *p)
{
	printf("round %" PRIu64 ": dirty %" PRIu64
	       " pages, remaining %.1f MiB, %.1f MiB/s, expected downtime %.0f ms%s\n",
	       p->round, p->dirty_pages, p->remaining / 1048576.0, mib_s(p),
	       p->expected_downtime_ms, p->final_round ? " (final round)" : "");
	if (p->throttle)
		printf("  vCPU throttle %u%%\n", p->throttle);
	fflush(stdout);
}

static void result(struct view *v, const PtCtlReply *r)
{
	const Ptrack__Control__V1__MigrateProgress *p = r->progress;

	if (v->tty)
		printf("\n");
	if (r->status) {
		fprintf(stderr, "ptrackctl: migration %" PRIu64 " %s: %s\n",
			p->migration_id, p->state, r->error);
		return;
	}
	printf("migration %" PRIu64 " completed: %" PRIu64
	       " rounds, %.1f MiB sent, total %" PRIu64 " ms, downtime %" PRIu64
	       " ms\n",
	       p->migration_id, p->round, p->transferred / 1048576.0,
	       p->total_ms, p->downtime_ms);
	if (p->switched_over)
		printf("the guest runs on the destination now; stopped here\n");
	else
		printf("memory copied only (the peer has no incoming VM); "
		       "the guest was stopped here\n");
}

static int follow(struct ctl *c, struct view *v)
{
	PtCtlReply *r;
	int ret, fin;

	do {
		ret = ctl_recv(c, &r);
		if (ret)
			return ret;
		if (r->body_case != PTRACK__CONTROL__V1__REPLY__BODY_PROGRESS) {
			ret = ctl_status_exit(r->status);
			ctl_print_error(c, r->status, r->error);
			pt_ctl_reply_free(r);
			return ret ? ret : CTL_FAILED;
		}
		if (c->json)
			progress_json(r->progress, r);
		else if (!r->final && !r->progress->transferred &&
			 !r->progress->remaining)
			printf("migration %" PRIu64 " to %s started\n",
			       r->progress->migration_id, v->to);
		else if (r->final)
			result(v, r);
		else if (v->tty)
			progress_bar(v, r->progress);
		else
			progress_line(r->progress);
		fin = r->final;
		ret = r->status ? CTL_FAILED : CTL_OK;
		pt_ctl_reply_free(r);
	} while (!fin);
	return ret;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: ptrackctl migrate VM --to HOST:PORT [--downtime-ms N] [--bandwidth RATE] [--max-rounds N] [--tcp-congestion NAME] [--auto-converge] [--json]\n");
	return CTL_USAGE;
}

/* A decimal number in [@min, @max]; 0 or -1 with @why set. */
static int number(const char *opt, const char *v, uint64_t min, uint64_t max,
		  uint64_t *out, char *why, size_t len)
{
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)v[0])) {
		snprintf(why, len, "%s '%s' is not a number", opt, v);
		return -1;
	}
	*out = strtoull(v, &end, 10);
	if (errno || *end) {
		snprintf(why, len, "%s '%s' is not a number", opt, v);
		return -1;
	}
	if (*out < min || *out > max) {
		snprintf(why, len,
			 "%s %s out of range %" PRIu64 "..%" PRIu64
			 " (as ptrackd.conf's [migration])",
			 opt, v, min, max);
		return -1;
	}
	return 0;
}

/*
 * Bandwidth in bytes/s: a number with an optional binary suffix, K, M, G
 * or T (KiB, MiB...; "B", "iB" and "/s" may follow), so "100M" and
 * "100MiB/s" are 100 MiB/s, the unit of virsh migrate-setspeed. 0: no cap.
 */
static int bandwidth(const char *v, uint64_t *out, char *why, size_t len)
{
	static const char units[] = "KMGT";
	const char *u;
	char *end;
	double x;

	if (!isdigit((unsigned char)v[0]))
		goto out_bad;
	errno = 0;
	x = strtod(v, &end);
	if (errno)
		goto out_bad;
	if (*end && (u = strchr(units, toupper((unsigned char)*end)))) {
		x *= (double)(1ull << (10 * (u - units + 1)));
		end++;
		if (*end == 'i')
			end++;
	}
	if (*end == 'B')
		end++;
	if (!strcmp(end, "/s"))
		end += 2;
	if (*end)
		goto out_bad;
	if (x > (double)(UINT64_MAX / 2)) {
		snprintf(why, len, "--bandwidth %s is too large", v);
		return -1;
	}
	*out = (uint64_t)x;
	return 0;
out_bad:
	snprintf(
		why, len,
		"--bandwidth '%s' is not a rate: bytes/s, or a number with K, M, G or T (KiB/s, MiB/s...), 0 for no cap",
		v);
	return -1;
}

static int parse(int argc, char **argv, Ptrack__Control__V1__MigrateRequest *m,
		 char *why, size_t len)
{
	static const struct option lo[] = {
		{ "to", required_argument, NULL, 't' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "max-rounds", required_argument, NULL, 'r' },
		{ "tcp-congestion", required_argument, NULL, 'C' },
		{ "auto-converge", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "t:d:b:r:C:A", lo, NULL)) != -1) {
		switch (opt) {
		case 't':
			m->to = optarg;
			break;
		case 'd':
			if (number("--downtime-ms", optarg, 1, 3600000,
				   &m->downtime_ms, why, len))
				return -1;
			break;
		case 'b':
			if (bandwidth(optarg, &m->bandwidth, why, len))
				return -1;
			break;
		case 'r':
			if (number("--max-rounds", optarg, 2, 100000, &n, why,
				   len))
				return -1;
			m->max_rounds = (uint32_t)n;
			break;
		case 'A':
			m->auto_converge = 1;
			break;
		case 'C':
			/* The kernel's names are 1 to 15 characters; ptrackd
			 * checks the kernel has it. */
			if (!optarg[0] || strlen(optarg) > 15) {
				snprintf(
					why, len,
					"'%s' is not a TCP congestion control name",
					optarg);
				return -1;
			}
			m->tcp_congestion = optarg;
			break;
		default:
			snprintf(why, len,
				 "unknown option or missing value: %s",
				 argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc - 1) {
		snprintf(why, len, "expected one VM name");
		return -1;
	}
	if (!*m->to) {
		snprintf(why, len, "--to HOST:PORT is required");
		return -1;
	}
	m->vm = argv[optind];
	return 0;
}

int cmd_migrate(struct ctl *c, int argc, char **argv)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__MigrateRequest m =
		PTRACK__CONTROL__V1__MIGRATE_REQUEST__INIT;
	struct view v = { .tty = isatty(STDOUT_FILENO) };
	int ret;

	char why[300];

	if (parse(argc, argv, &m, why, sizeof(why))) {
		ctl_print_error(c, -EINVAL, why);
		return usage();
	}
	v.to = m.to;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE;
	q.migrate = &m;
	ret = ctl_send(c, &q);
	if (ret)
		return ret;
	return follow(c, &v);
}
