// SPDX-License-Identifier: MIT
#include "ctl.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_connect(struct ctl *c)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int ret;

	if (strlen(c->socket) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, c->socket);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)))
		goto out_close;
	ret = pt_reader_init(&c->rd, c->fd, PT_CTL_FRAME_MAX);
	if (ret) {
		close(c->fd);
		return ret;
	}
	return 0;
out_close:
	ret = -errno;
	close(c->fd);
	c->fd = -1;
	return ret;
}

void ctl_close(struct ctl *c)
{
	if (c->fd < 0)
		return;
	pt_reader_release(&c->rd);
	close(c->fd);
	c->fd = -1;
}

void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

int ctl_status_exit(int status)
{
	switch (status) {
	case 0:
		return CTL_OK;
	case -EACCES:
	case -EPERM:
		return CTL_DENIED;
	case -ENOENT:
		return CTL_NOT_FOUND;
	default:
		return CTL_FAILED;
	}
}

void ctl_print_error(struct ctl *c, int status, const char *text)
{
	if (c->json) {
		printf("{\"ok\":false,\"status\":%d,\"error\":", status);
		json_str(stdout, text);
		printf("}\n");
		fflush(stdout);
	}
	fprintf(stderr, "ptrackctl: %s\n", text);
}

/* ptrackd refuses a caller by answering before it reads anything and
 * closing: the send then fails, but the reason is waiting to be read. */
static int refused(struct ctl *c, int send_err)
{
	struct pt_error e = { 0 };
	struct pt_frame f;
	PtCtlReply *r;
	int ret;

	if (pt_reader_next(&c->rd, &f, &e) != 1 ||
	    pt_ctl_decode_reply(&f, &r, &e))
		return send_err;
	ret = r->status;
	ctl_print_error(c, r->status, r->error);
	pt_ctl_reply_free(r);
	return ret ? ret : send_err;
}

int ctl_send(struct ctl *c, PtCtlRequest *q)
{
	char text[256];
	int ret;

	if (c->fd < 0) {
		ret = ctl_connect(c);
		if (ret) {
			snprintf(text, sizeof(text), "cannot connect to %s: %s",
				 c->socket, strerror(-ret));
			ctl_print_error(c, ret, text);
			return ret == -EACCES ? CTL_DENIED : CTL_NO_DAEMON;
		}
	}
	q->id = ++c->seq;
	ret = pt_ctl_send(c->fd, c->seq, &q->base);
	if (ret)
		ret = refused(c, ret);
	if (ret) {
		if (ret == -EACCES)
			return CTL_DENIED;
		snprintf(text, sizeof(text), "sending to ptrackd: %s",
			 strerror(-ret));
		ctl_print_error(c, ret, text);
		return CTL_NO_DAEMON;
	}
	return 0;
}

int ctl_recv(struct ctl *c, PtCtlReply **out)
{
	struct pt_error e = { 0 };
	struct pt_frame f;
	char text[256];
	int ret = pt_reader_next(&c->rd, &f, &e);

	if (ret == 1)
		ret = pt_ctl_decode_reply(&f, out, &e);
	else if (ret == 0)
		ret = -ECONNRESET;
	if (!ret)
		return 0;
	snprintf(text, sizeof(text), "reading from ptrackd: %s",
		 e.text[0] ? e.text : strerror(-ret));
	ctl_print_error(c, ret, text);
	return CTL_NO_DAEMON;
}

int ctl_call(struct ctl *c, PtCtlRequest *q, PtCtlReply **out)
{
	PtCtlReply *r;
	int ret = ctl_send(c, q);

	if (ret)
		return ret;
	for (;;) {
		ret = ctl_recv(c, &r);
		if (ret)
			return ret;
		if (r->final)
			break;
		pt_ctl_reply_free(r);
	}
	if (r->status) {
		ret = ctl_status_exit(r->status);
		ctl_print_error(c, r->status, r->error);
		pt_ctl_reply_free(r);
		return ret;
	}
	*out = r;
	return 0;
}
