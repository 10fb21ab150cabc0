// SPDX-License-Identifier: MIT
/*
 * ptrackctl dirtyrate VM [--seconds N] [--mode bitmap|ring] [--vcpu]
 * virsh domdirtyrate-calc's semantics, measured from the harvested sets:
 * the distinct pages written during N seconds, not a sample.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int parse_mode(const char *s)
{
	if (!strcmp(s, "bitmap") || !strcmp(s, "dirty-bitmap"))
		return PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_BITMAP;
	if (!strcmp(s, "ring") || !strcmp(s, "dirty-ring"))
		return PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_RING;
	return -1;
}

static void print_json(const Ptrack__Control__V1__DirtyRateReply *d)
{
	printf("{\"ok\":true,\"vm\":");
	json_str(stdout, d->vm);
	printf(",\"method\":");
	json_str(stdout, d->method[0] ? d->method : "ptrack");
	printf(",\"calc_status\":%u,\"calc_start_time\":%" PRIu64
	       ",\"calc_period\":%.6f,\"calc_mode\":",
	       d->calc_status, d->calc_start_time, d->calc_period);
	json_str(stdout, d->calc_mode);
	printf(",\"dirty_pages\":%" PRIu64 ",\"bytes_per_second\":%.3f,"
	       "\"megabytes_per_second\":%.6f,\"vcpu_bytes_per_second\":[",
	       d->dirty_pages, d->bytes_per_second, d->megabytes_per_second);
	for (size_t i = 0; i < d->n_vcpu_bytes_per_second; i++)
		printf("%s%.3f", i ? "," : "", d->vcpu_bytes_per_second[i]);
	printf("]}\n");
}

static void print_text(const Ptrack__Control__V1__DirtyRateReply *d)
{
	printf("Domain: '%s'\n", d->vm);
	printf("  method=%s\n", d->method[0] ? d->method : "ptrack");
	printf("  dirtyrate.calc_status=%u\n", d->calc_status);
	printf("  dirtyrate.calc_start_time=%" PRIu64 "\n", d->calc_start_time);
	printf("  dirtyrate.calc_period=%.3f\n", d->calc_period);
	printf("  dirtyrate.calc_mode=%s\n", d->calc_mode);
	printf("  dirtyrate.dirty_pages=%" PRIu64 "\n", d->dirty_pages);
	printf("  dirtyrate.bytes_per_second=%.0f\n", d->bytes_per_second);
	printf("  dirtyrate.megabytes_per_second=%.3f\n",
	       d->megabytes_per_second);
	for (size_t i = 0; i < d->n_vcpu_bytes_per_second; i++)
		printf("  dirtyrate.vcpu.%zu.megabytes_per_second=%.3f\n", i,
		       d->vcpu_bytes_per_second[i] / 1048576.0);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: ptrackctl dirtyrate VM [--seconds N] [--mode bitmap|ring] [--vcpu] [--json]\n");
	return CTL_USAGE;
}

static int parse(int argc, char **argv,
		 Ptrack__Control__V1__DirtyRateRequest *d)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "vcpu", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:m:v", lo, NULL)) != -1) {
		switch (opt) {
		case 's':
			d->seconds = (uint32_t)strtoul(optarg, &end, 10);
			if (*end || d->seconds < 1 || d->seconds > 60)
				return -1;
			break;
		case 'm':
			if (parse_mode(optarg) < 0)
				return -1;
			d->mode = parse_mode(optarg);
			break;
		case 'v':
			d->vcpu = 1;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc - 1)
		return -1;
	d->vm = argv[optind];
	return 0;
}

int cmd_dirtyrate(struct ctl *c, int argc, char **argv)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__DirtyRateRequest d =
		PTRACK__CONTROL__V1__DIRTY_RATE_REQUEST__INIT;
	PtCtlReply *r;
	int ret;

	d.seconds = 1;
	if (parse(argc, argv, &d))
		return usage();
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_DIRTYRATE;
	q.dirtyrate = &d;
	ret = ctl_call(c, &q, &r);
	if (ret)
		return ret;
	if (r->body_case != PTRACK__CONTROL__V1__REPLY__BODY_DIRTYRATE) {
		ctl_print_error(c, -EBADMSG, "unexpected reply");
		ret = CTL_FAILED;
	} else if (c->json) {
		print_json(r->dirtyrate);
	} else {
		print_text(r->dirtyrate);
	}
	pt_ctl_reply_free(r);
	return ret;
}
