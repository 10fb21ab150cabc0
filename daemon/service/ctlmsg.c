// SPDX-License-Identifier: MIT
/*
 * Control protocol codec: framing reused from daemon/codec, messages from
 * proto/control.proto, every field checked before a request is served.
 */
#include "service/ctlmsg.h"

#include <errno.h>
#include <string.h>

#define BAD(e, ...)                                                         \
	pt_error_set(e, PTRACK__V1__ERROR_CODE__ERROR_BAD_MESSAGE, EBADMSG, \
		     __VA_ARGS__)

int pt_ctl_send(int fd, uint64_t seq, const ProtobufCMessage *m)
{
	struct pt_txframe f;
	struct pt_error e;
	int ret;

	ret = pt_txframe_init(&f);
	if (ret)
		return ret;
	ret = pt_frame_build(&f, PT_CTL_FRAME_TYPE, 0, seq, m, NULL, 0,
			     PT_CTL_FRAME_MAX, &e);
	if (!ret)
		ret = pt_frame_send(fd, &f);
	pt_txframe_release(&f);
	return ret;
}

static int frame_ok(const struct pt_frame *f, struct pt_error *e)
{
	if (f->hdr.type != PT_CTL_FRAME_TYPE)
		return pt_error_set(
			e, PTRACK__V1__ERROR_CODE__ERROR_UNKNOWN_TYPE, EBADMSG,
			"control frame of type %u", f->hdr.type);
	if (f->hdr.payload_len)
		return pt_error_set(e,
				    PTRACK__V1__ERROR_CODE__ERROR_BAD_PAYLOAD,
				    EBADMSG, "control frame with a payload");
	if (f->hdr.flags)
		return pt_error_set(e, PTRACK__V1__ERROR_CODE__ERROR_BAD_HEADER,
				    EBADMSG, "control frame with flags 0x%x",
				    f->hdr.flags);
	return 0;
}

static int str_ok(const char *s, size_t max, int required, const char *what,
		  struct pt_error *e)
{
	size_t n = s ? strnlen(s, max + 1) : 0;

	if (required && !n)
		return BAD(e, "%s is empty", what);
	if (n > max)
		return BAD(e, "%s longer than %zu bytes", what, max);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return BAD(e, "%s has a control character", what);
	return 0;
}

static int check_dirtyrate(const Ptrack__Control__V1__DirtyRateRequest *d,
			   struct pt_error *e)
{
	if (d->seconds > PT_CTL_SECONDS_MAX)
		return BAD(e, "seconds %u out of 1..%d", d->seconds,
			   PT_CTL_SECONDS_MAX);
	if (d->mode < PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_ANY ||
	    d->mode > PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_RING)
		return BAD(e, "unknown dirty mode %d", d->mode);
	return str_ok(d->vm, PT_CTL_NAME_MAX, 1, "vm", e);
}

static int check_migrate(const Ptrack__Control__V1__MigrateRequest *m,
			 struct pt_error *e)
{
	int ret = str_ok(m->vm, PT_CTL_NAME_MAX, 1, "vm", e);

	if (ret)
		return ret;
	ret = str_ok(m->to, PT_CTL_ADDR_MAX, 1, "to", e);
	if (ret)
		return ret;
	if (!strchr(m->to, ':'))
		return BAD(e, "to is not HOST:PORT");
	if (m->downtime_ms > 3600 * 1000)
		return BAD(e, "downtime_ms %llu over an hour",
			   (unsigned long long)m->downtime_ms);
	if (m->max_rounds > 100000)
		return BAD(e, "max_rounds %u too large", m->max_rounds);
	return 0;
}

static int check_peer(const Ptrack__Control__V1__PeerListenRequest *p,
		      struct pt_error *e)
{
	int ret = str_ok(p->listen, PT_CTL_ADDR_MAX, 1, "listen", e);

	if (!ret)
		ret = str_ok(p->mem_path, PT_CTL_ADDR_MAX, 0, "mem_path", e);
	if (!ret)
		ret = str_ok(p->state_dir, PT_CTL_ADDR_MAX, 0, "state_dir", e);
	if (!ret && !strchr(p->listen, ':'))
		ret = BAD(e, "listen is not HOST:PORT");
	return ret;
}

/* protobuf-c keeps an overlong-encoded field number 0 as an unknown
 * field, which it then packs into a message nobody can unpack: reject. */
static int unknown_ok(const ProtobufCMessage *m, struct pt_error *e)
{
	for (unsigned int i = 0; m && i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return BAD(e, "field number 0");
	return 0;
}

static const ProtobufCMessage *body(const PtCtlRequest *r)
{
	switch (r->body_case) {
	case PTRACK__CONTROL__V1__REQUEST__BODY_STATUS:
		return &r->status->base;
	case PTRACK__CONTROL__V1__REQUEST__BODY_VMS:
		return &r->vms->base;
	case PTRACK__CONTROL__V1__REQUEST__BODY_METRICS:
		return &r->metrics->base;
	case PTRACK__CONTROL__V1__REQUEST__BODY_TRACK:
		return &r->track->base;
	case PTRACK__CONTROL__V1__REQUEST__BODY_DIRTYRATE:
		return &r->dirtyrate->base;
	case PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE:
		return &r->migrate->base;
	case PTRACK__CONTROL__V1__REQUEST__BODY_PEER_LISTEN:
		return &r->peer_listen->base;
	default:
		return NULL;
	}
}

static int check_request(const PtCtlRequest *r, struct pt_error *e)
{
	int ret = unknown_ok(&r->base, e);

	if (!ret)
		ret = unknown_ok(body(r), e);
	if (ret)
		return ret;
	switch (r->body_case) {
	case PTRACK__CONTROL__V1__REQUEST__BODY_STATUS:
	case PTRACK__CONTROL__V1__REQUEST__BODY_VMS:
	case PTRACK__CONTROL__V1__REQUEST__BODY_METRICS:
		return 0;
	case PTRACK__CONTROL__V1__REQUEST__BODY_TRACK:
		return str_ok(r->track->vm, PT_CTL_NAME_MAX, 1, "vm", e);
	case PTRACK__CONTROL__V1__REQUEST__BODY_DIRTYRATE:
		return check_dirtyrate(r->dirtyrate, e);
	case PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE:
		return check_migrate(r->migrate, e);
	case PTRACK__CONTROL__V1__REQUEST__BODY_PEER_LISTEN:
		return check_peer(r->peer_listen, e);
	default:
		return BAD(e, "request without a known body (%d)",
			   (int)r->body_case);
	}
}

int pt_ctl_decode_request(const struct pt_frame *f, PtCtlRequest **out,
			  struct pt_error *e)
{
	PtCtlRequest *r;
	int ret = frame_ok(f, e);

	if (ret)
		return ret;
	r = ptrack__control__v1__request__unpack(NULL, f->hdr.msg_len, f->msg);
	if (!r)
		return BAD(e, "request does not unpack");
	ret = check_request(r, e);
	if (ret) {
		ptrack__control__v1__request__free_unpacked(r, NULL);
		return ret;
	}
	*out = r;
	return 0;
}

void pt_ctl_request_free(PtCtlRequest *r)
{
	if (r)
		ptrack__control__v1__request__free_unpacked(r, NULL);
}

int pt_ctl_decode_reply(const struct pt_frame *f, PtCtlReply **out,
			struct pt_error *e)
{
	PtCtlReply *r;
	int ret = frame_ok(f, e);

	if (ret)
		return ret;
	r = ptrack__control__v1__reply__unpack(NULL, f->hdr.msg_len, f->msg);
	if (!r)
		return BAD(e, "reply does not unpack");
	*out = r;
	return 0;
}

void pt_ctl_reply_free(PtCtlReply *r)
{
	if (r)
		ptrack__control__v1__reply__free_unpacked(r, NULL);
}

int pt_ctl_parse_request(const uint8_t *buf, size_t len, PtCtlRequest **out,
			 struct pt_error *e)
{
	struct pt_frame f;
	int ret = pt_frame_decode(buf, len, PT_CTL_FRAME_MAX, &f, e);

	if (ret)
		return ret;
	return pt_ctl_decode_request(&f, out, e);
}
