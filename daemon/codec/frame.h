/* SPDX-License-Identifier: MIT */
/*
 * Frames: the unit of the ptrack wire protocol. The codec knows nothing of
 * sockets' peers or VMs: it turns messages into iovecs and bytes into
 * checked frames. Layout (all fields little-endian):
 *
 *   0  u32 magic        "PTRK" (0x4b525450)
 *   4  u32 crc32c       over bytes 8 .. end of frame (header rest, message,
 *                       padding, payload)
 *   8  u16 version      PT_PROTO_VERSION
 *  10  u16 type         enum Ptrack__V1__MsgType
 *  12  u16 flags        PT_FRAME_F_*
 *  14  u16 hdr_len      32; a newer minor version may append fields
 *  16  u32 msg_len      protobuf message bytes
 *  20  u32 payload_len  raw payload bytes, a multiple of 8
 *  24  u64 seq          sender's sequence number, from 1, +1 per frame
 *
 * The message follows the header, then zero padding up to an 8-byte
 * boundary, then the payload, so a reader whose buffer is 8-aligned sees
 * bitmap words and pages aligned.
 */
#ifndef PT_CODEC_FRAME_H
#define PT_CODEC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "codec/error.h"

#define PT_FRAME_MAGIC 0x4b525450u
#define PT_PROTO_VERSION 1
#define PT_FRAME_HDR_LEN 32
#define PT_MSG_MAX (64u << 10)
#define PT_FRAME_MAX_DEFAULT ((8u << 20) + PT_MSG_MAX + PT_FRAME_HDR_LEN)
#define PT_FRAME_MAX_LIMIT (64u << 20)

/* The sender asks for an Ack of this frame (and all before it). */
#define PT_FRAME_F_ACK_REQ 0x0001u
#define PT_FRAME_F_ALL PT_FRAME_F_ACK_REQ

/* Most iovecs a payload may be given in, and a whole frame's iovecs. */
#define PT_TX_PAYLOAD_IOV_MAX 64
#define PT_TX_IOV_MAX (PT_TX_PAYLOAD_IOV_MAX + 4)

struct pt_frame_hdr {
	uint32_t magic;
	uint32_t crc;
	uint16_t version;
	uint16_t type;
	uint16_t flags;
	uint16_t hdr_len;
	uint32_t msg_len;
	uint32_t payload_len;
	uint64_t seq;
};

static inline size_t pt_align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Offset of the payload from the start of a frame. */
static inline size_t pt_frame_payload_off(const struct pt_frame_hdr *h)
{
	return pt_align8((size_t)h->hdr_len + h->msg_len);
}

static inline size_t pt_frame_len(const struct pt_frame_hdr *h)
{
	return pt_frame_payload_off(h) + h->payload_len;
}

/* A frame ready to send. The payload iovecs point at the caller's memory,
 * which must stay unchanged until the frame is sent. */
struct pt_txframe {
	uint8_t hdr[PT_FRAME_HDR_LEN];
	uint8_t pad[8];
	uint8_t *msg; /* packed message, owned, PT_MSG_MAX bytes */
	struct iovec iov[PT_TX_IOV_MAX];
	int iovcnt;
	size_t len; /* whole frame */
};

int pt_txframe_init(struct pt_txframe *f);
void pt_txframe_release(struct pt_txframe *f);

/*
 * Builds a frame: packs @msg (may be NULL for an empty message), appends
 * the payload iovecs (their total must be a multiple of 8) and computes the
 * CRC. Fails with -EMSGSIZE when the message or frame exceeds its limit.
 */
int pt_frame_build(struct pt_txframe *f, uint16_t type, uint16_t flags,
		   uint64_t seq, const ProtobufCMessage *msg,
		   const struct iovec *payload, int npayload, size_t max_frame,
		   struct pt_error *e);

/* Writes the whole frame with writev, resuming after short writes and
 * EINTR. Returns 0 or a negative errno (-EPIPE, -ECONNRESET, ...). */
int pt_frame_send(int fd, struct pt_txframe *f);

/* A received frame: views into the buffer it was decoded from. */
struct pt_frame {
	struct pt_frame_hdr hdr;
	const uint8_t *msg;
	const uint8_t *payload;
};

/*
 * Parses and checks the fixed header in @buf (@len >= PT_FRAME_HDR_LEN):
 * magic, version, header length, flags, known type, message and frame size
 * against @max_frame. Does not check the CRC.
 */
int pt_frame_parse_hdr(const uint8_t *buf, size_t len, size_t max_frame,
		       struct pt_frame_hdr *h, struct pt_error *e);

/*
 * Checks one complete frame held in @buf[0..@len): the header, that @len is
 * exactly the frame's length (shorter: TRUNCATED, longer: TRAILING), zero
 * padding and the CRC. Fills @f with views into @buf.
 */
int pt_frame_decode(const uint8_t *buf, size_t len, size_t max_frame,
		    struct pt_frame *f, struct pt_error *e);

/* Reads frames from a stream socket into one bounded, 8-aligned buffer. */
struct pt_reader {
	int fd;
	size_t max_frame;
	/* Whole-frame deadlines (header, then the rest), 0: none. A sender
	 * trickling a byte at a time runs out of time, not only one that
	 * stops. */
	int timeout_ms;
	uint8_t *buf;
	uint64_t frames;
	uint64_t bytes;
};

int pt_reader_init(struct pt_reader *r, int fd, size_t max_frame);
void pt_reader_release(struct pt_reader *r);

/*
 * Reads the next frame. Returns 1 with @f valid until the next call, 0 on a
 * clean end of stream between frames, or a negative errno: -EBADMSG and
 * friends for a malformed frame (with @e saying why), -EPIPE when the stream
 * ends inside a frame (TRUNCATED), or the read error.
 */
int pt_reader_next(struct pt_reader *r, struct pt_frame *f, struct pt_error *e);

#endif
