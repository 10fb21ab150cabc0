// SPDX-License-Identifier: MIT
/* ptrackctl status */
#include <errno.h>
#include <inttypes.h>

#include "ctl.h"

static void print_json(const Ptrack__Control__V1__StatusReply *s)
{
	printf("{\"ok\":true,\"version\":");
	json_str(stdout, s->version);
	printf(",\"uptime_ms\":%" PRIu64 ",\"vms\":%u,\"tracked\":%u,"
	       "\"migrations\":%u,\"libvirt_uri\":",
	       s->uptime_ms, s->vms, s->tracked, s->migrations);
	json_str(stdout, s->libvirt_uri);
	printf(",\"libvirt_connected\":%s,\"metrics_listen\":",
	       s->libvirt_connected ? "true" : "false");
	json_str(stdout, s->metrics_listen);
	printf(",\"control_socket\":");
	json_str(stdout, s->control_socket);
	printf(",\"vmm_socket\":");
	json_str(stdout, s->vmm_socket);
	printf(",\"listeners\":[");
	for (size_t i = 0; i < s->n_listeners; i++) {
		printf(i ? "," : "");
		json_str(stdout, s->listeners[i]);
	}
	printf("],\"incoming_vms\":[");
	for (size_t i = 0; i < s->n_incoming_vms; i++) {
		printf(i ? "," : "");
		json_str(stdout, s->incoming_vms[i]);
	}
	printf("]}\n");
}

static void print_text(const Ptrack__Control__V1__StatusReply *s)
{
	printf("ptrackd %s, up %.1f s\n", s->version, s->uptime_ms / 1000.0);
	printf("VMs:        %u (%u tracked, %u migrating)\n", s->vms,
	       s->tracked, s->migrations);
	printf("control:    %s\n", s->control_socket);
	printf("VMM socket: %s\n", s->vmm_socket);
	printf("metrics:    %s\n",
	       *s->metrics_listen ? s->metrics_listen : "off");
	if (*s->libvirt_uri)
		printf("libvirt:    %s (%s)\n", s->libvirt_uri,
		       s->libvirt_connected ? "connected" : "not connected");
	else
		printf("libvirt:    off\n");
	printf("listening:  %s", s->n_listeners ? "" : "none");
	for (size_t i = 0; i < s->n_listeners; i++)
		printf("%s%s", i ? ", " : "", s->listeners[i]);
	printf("\nincoming:   %s", s->n_incoming_vms ? "" : "none");
	for (size_t i = 0; i < s->n_incoming_vms; i++)
		printf("%s%s", i ? ", " : "", s->incoming_vms[i]);
	printf("\n");
}

int cmd_status(struct ctl *c, int argc, char **argv)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__StatusRequest sq =
		PTRACK__CONTROL__V1__STATUS_REQUEST__INIT;
	PtCtlReply *r;
	int ret;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: ptrackctl status [--json]\n");
		return CTL_USAGE;
	}
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_STATUS;
	q.status = &sq;
	ret = ctl_call(c, &q, &r);
	if (ret)
		return ret;
	if (r->body_case != PTRACK__CONTROL__V1__REPLY__BODY_STATUS_REPLY) {
		ctl_print_error(c, -EBADMSG, "unexpected reply");
		ret = CTL_FAILED;
	} else if (c->json) {
		print_json(r->status_reply);
	} else {
		print_text(r->status_reply);
	}
	pt_ctl_reply_free(r);
	return ret;
}
