// SPDX-License-Identifier: MIT
/* ptrackctl track start|stop VM */
#include <string.h>

#include "ctl.h"

int cmd_track(struct ctl *c, int argc, char **argv)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__TrackRequest t =
		PTRACK__CONTROL__V1__TRACK_REQUEST__INIT;
	PtCtlReply *r;
	int ret;

	if (argc != 3 ||
	    (strcmp(argv[1], "start") != 0 && strcmp(argv[1], "stop") != 0)) {
		fprintf(stderr,
			"usage: ptrackctl track start|stop VM [--json]\n");
		return CTL_USAGE;
	}
	t.start = !strcmp(argv[1], "start");
	t.vm = argv[2];
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_TRACK;
	q.track = &t;
	ret = ctl_call(c, &q, &r);
	if (ret)
		return ret;
	if (c->json) {
		printf("{\"ok\":true,\"vm\":");
		json_str(stdout, argv[2]);
		printf(",\"tracked\":%s}\n", t.start ? "true" : "false");
	} else {
		printf("%s: tracking %s\n", argv[2], t.start ? "on" : "off");
	}
	pt_ctl_reply_free(r);
	return 0;
}
