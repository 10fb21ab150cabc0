// SPDX-License-Identifier: MIT
/* ptrackctl vms */
#include <errno.h>
#include <inttypes.h>

#include "ctl.h"

static void vm_json(const Ptrack__Control__V1__VmInfo *v)
{
	printf("{\"name\":");
	json_str(stdout, v->name);
	printf(",\"uuid\":");
	json_str(stdout, v->uuid);
	printf(",\"source\":");
	json_str(stdout, v->source);
	printf(",\"vcpus\":%u,\"memory_bytes\":%" PRIu64
	       ",\"tracked\":%s,\"dirty_rate_bytes_per_second\":%.3f,\"state\":",
	       v->vcpus, v->memory_bytes, v->tracked ? "true" : "false",
	       v->dirty_rate_bytes_per_second);
	json_str(stdout, v->state);
	printf(",\"pid\":%d,\"domain\":", v->pid);
	json_str(stdout, v->domain);
	printf("}");
}

static void print_json(const Ptrack__Control__V1__VmsReply *vr)
{
	printf("{\"ok\":true,\"vms\":[");
	for (size_t i = 0; i < vr->n_vms; i++) {
		if (i)
			printf(",");
		vm_json(vr->vms[i]);
	}
	printf("]}\n");
}

static void print_text(const Ptrack__Control__V1__VmsReply *vr)
{
	printf("%-20s %-36s %-6s %5s %10s %-9s %14s %s\n", "NAME", "UUID",
	       "SOURCE", "VCPUS", "MEMORY", "STATE", "DIRTY MiB/s", "DOMAIN");
	for (size_t i = 0; i < vr->n_vms; i++) {
		const Ptrack__Control__V1__VmInfo *v = vr->vms[i];

		printf("%-20s %-36s %-6s %5u %8.0fMi %-9s %14.3f %s\n", v->name,
		       v->uuid, v->source, v->vcpus,
		       v->memory_bytes / 1048576.0, v->state,
		       v->dirty_rate_bytes_per_second / 1048576.0,
		       *v->domain ? v->domain : "-");
	}
}

int cmd_vms(struct ctl *c, int argc, char **argv)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__VmsRequest vq =
		PTRACK__CONTROL__V1__VMS_REQUEST__INIT;
	PtCtlReply *r;
	int ret;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: ptrackctl vms [--json]\n");
		return CTL_USAGE;
	}
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_VMS;
	q.vms = &vq;
	ret = ctl_call(c, &q, &r);
	if (ret)
		return ret;
	if (r->body_case != PTRACK__CONTROL__V1__REPLY__BODY_VMS) {
		ctl_print_error(c, -EBADMSG, "unexpected reply");
		ret = CTL_FAILED;
	} else if (c->json) {
		print_json(r->vms);
	} else {
		print_text(r->vms);
	}
	pt_ctl_reply_free(r);
	return ret;
}
