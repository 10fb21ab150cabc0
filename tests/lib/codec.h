/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the codec tests (codec.c): frames flattened into one
 * buffer. Compiled once into libpttest.a.
 */
#ifndef PT_TEST_CODEC_H
#define PT_TEST_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "codec/frame.h"
#include "codec/layout.h"
#include "codec/msg.h"

/* Builds a frame and copies its iovecs into a fresh 8-aligned buffer. */
uint8_t *cu_frame(uint16_t type, uint64_t seq, const ProtobufCMessage *m,
		  const struct iovec *pl, int npl, size_t *len);
/* A two-region layout: region 1 at 0 (64 MiB of 4 KiB pages), region 2 at
 * 4 GiB (32 MiB of 2 MiB pages). */
void cu_layout(struct pt_layout *l);
/* Decodes a flattened frame fully; returns the protocol error code. */
int cu_decode(const uint8_t *buf, size_t len, const struct pt_layout *l,
	      struct pt_msg *m, struct pt_error *e);
/* Rewrites the CRC of a flattened frame after a test edited it. */
void cu_fix_crc(uint8_t *buf, size_t len);

#endif
