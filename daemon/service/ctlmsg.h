/* SPDX-License-Identifier: MIT */
/*
 * Control protocol codec (proto/control.proto): Request and Reply messages
 * in frames of the wire protocol's framing. The frame codec checks magic,
 * CRC and sizes; this layer unpacks with protobuf-c and validates fields,
 * so the server only ever sees requests that make sense.
 */
#ifndef PT_SERVICE_CTLMSG_H
#define PT_SERVICE_CTLMSG_H

#include <stddef.h>
#include <stdint.h>

#include "codec/frame.h"
#include "proto/control.pb-c.h"

typedef Ptrack__Control__V1__Request PtCtlRequest;
typedef Ptrack__Control__V1__Reply PtCtlReply;

/* The frame codec only admits wire protocol types; see control.proto. */
#define PT_CTL_FRAME_TYPE PTRACK__V1__MSG_TYPE__MSG_TYPE_HELLO
/* Control frames never carry a payload, so one message is the limit. */
#define PT_CTL_FRAME_MAX (PT_FRAME_HDR_LEN + PT_MSG_MAX + 8)
#define PT_CTL_NAME_MAX 255
#define PT_CTL_ADDR_MAX 1023
#define PT_CTL_SECONDS_MAX 60

/* Packs @m into a frame with sequence @seq and writes it to @fd. */
int pt_ctl_send(int fd, uint64_t seq, const ProtobufCMessage *m);

/* Unpacks and validates a checked frame; free with pt_ctl_request_free. */
int pt_ctl_decode_request(const struct pt_frame *f, PtCtlRequest **out,
			  struct pt_error *e);
void pt_ctl_request_free(PtCtlRequest *r);

int pt_ctl_decode_reply(const struct pt_frame *f, PtCtlReply **out,
			struct pt_error *e);
void pt_ctl_reply_free(PtCtlReply *r);

/* Decodes one whole request frame held in @buf (the fuzz entry point). */
int pt_ctl_parse_request(const uint8_t *buf, size_t len, PtCtlRequest **out,
			 struct pt_error *e);

#endif
