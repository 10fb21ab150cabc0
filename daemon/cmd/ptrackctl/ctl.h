/* SPDX-License-Identifier: MIT */
/* ptrackctl: the client side of the control socket, shared by every
 * subcommand (one per file). */
#ifndef PTRACKCTL_CTL_H
#define PTRACKCTL_CTL_H

#include <stdio.h>

#include "codec/frame.h"
#include "service/ctlmsg.h"

/* Exit status, documented in ptrackctl(8). */
enum {
	CTL_OK = 0,
	CTL_FAILED = 1, /* ptrackd refused or the operation failed */
	CTL_USAGE = 2,
	CTL_NO_DAEMON = 3, /* cannot reach ptrackd */
	CTL_DENIED = 4, /* not root nor in the ptrack group */
	CTL_NOT_FOUND = 5, /* no such VM */
};

struct ctl {
	const char *socket;
	int json;
	int fd;
	struct pt_reader rd;
	uint64_t seq;
};

int ctl_connect(struct ctl *c);
void ctl_close(struct ctl *c);
int ctl_send(struct ctl *c, PtCtlRequest *q);
/* Next reply; free with pt_ctl_reply_free. Returns 0 or an exit status. */
int ctl_recv(struct ctl *c, PtCtlReply **out);
/* One request, one final reply. Returns 0 or an exit status (and prints
 * the error, as JSON with --json). */
int ctl_call(struct ctl *c, PtCtlRequest *q, PtCtlReply **out);
int ctl_status_exit(int status);
void ctl_print_error(struct ctl *c, int status, const char *text);

void json_str(FILE *f, const char *s);

/* Subcommands: argv[0] is the subcommand's name. */
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_vms(struct ctl *c, int argc, char **argv);
int cmd_track(struct ctl *c, int argc, char **argv);
int cmd_dirtyrate(struct ctl *c, int argc, char **argv);
int cmd_migrate(struct ctl *c, int argc, char **argv);
int cmd_peer(struct ctl *c, int argc, char **argv);
int cmd_metrics(struct ctl *c, int argc, char **argv);

#endif
