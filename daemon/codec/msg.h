/* SPDX-License-Identifier: MIT */
/*
 * Typed messages: unpack a checked frame's protobuf message and validate it
 * against the session's layout, including its payload, so the caller only
 * ever sees messages that make sense.
 */
#ifndef PT_CODEC_MSG_H
#define PT_CODEC_MSG_H

#include <stdint.h>

#include "codec/frame.h"
#include "codec/layout.h"

#define PT_PAGEDATA_MAX_PAGES 4096
#define PT_TEXT_MAX 1024
/* VMM state blob: whole and per frame. */
#define PT_STATE_MAX (64u << 20)
#define PT_STATE_CHUNK_MAX (4u << 20)

struct pt_msg {
	uint16_t type; /* PTRACK__V1__MSG_TYPE__* */
	uint64_t seq;
	uint16_t flags;
	union {
		ProtobufCMessage *base;
		Ptrack__V1__Hello *hello;
		Ptrack__V1__DirtyBitmap *bitmap;
		Ptrack__V1__DirtyRing *ring;
		Ptrack__V1__PageData *pages;
		Ptrack__V1__IterationDone *iter;
		Ptrack__V1__Ack *ack;
		Ptrack__V1__Resume *resume;
		Ptrack__V1__Complete *complete;
		Ptrack__V1__Error *error;
		Ptrack__V1__VmmState *state;
		Ptrack__V1__Resumed *resumed;
	} u;
	const uint8_t *payload;
	size_t payload_len;
	/* DirtyBitmap: decoded words (page_count bits). DirtyRing: GFNs. */
	uint64_t *words;
	uint64_t *gfns;
	/* PageData: page indexes (n_pages of them), zero pages flagged. */
	uint64_t *page_idx;
	uint64_t n_pages;
	const struct pt_region *region;
};

/* The protobuf descriptor of a message type, or NULL when unknown. */
const ProtobufCMessageDescriptor *pt_msg_descriptor(uint16_t type);

/*
 * Unpacks and validates @f. @layout may be NULL before Hello, when only
 * Hello, Resume, Ack and Error are acceptable. Returns 0 or a negative
 * errno with the protocol error in @e; on success release with
 * pt_msg_release().
 */
int pt_msg_decode(const struct pt_frame *f, const struct pt_layout *layout,
		  struct pt_msg *m, struct pt_error *e);
void pt_msg_release(struct pt_msg *m);

/* True when page @i of a decoded PageData carries no data (all zeroes). */
static inline int pt_msg_page_is_zero(const struct pt_msg *m, uint64_t i)
{
	const Ptrack__V1__PageData *p = m->u.pages;

	return p->n_zero_mask && (p->zero_mask[i / 64] >> (i % 64)) & 1;
}

#endif
