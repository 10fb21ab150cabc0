// SPDX-License-Identifier: MIT
/* ptrackctl metrics: the Prometheus text, also when HTTP is off. */
#include "ctl.h"

int cmd_metrics(struct ctl *c, int argc, char **argv)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__MetricsRequest mq =
		PTRACK__CONTROL__V1__METRICS_REQUEST__INIT;
	PtCtlReply *r;
	int ret;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: ptrackctl metrics [--json]\n");
		return CTL_USAGE;
	}
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_METRICS;
	q.metrics = &mq;
	ret = ctl_call(c, &q, &r);
	if (ret)
		return ret;
	if (r->body_case != PTRACK__CONTROL__V1__REPLY__BODY_METRICS) {
		ret = CTL_FAILED;
	} else if (c->json) {
		printf("{\"ok\":true,\"text\":");
		json_str(stdout, r->metrics->text);
		printf("}\n");
	} else {
		fputs(r->metrics->text, stdout);
	}
	pt_ctl_reply_free(r);
	return ret;
}
