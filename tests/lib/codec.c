// SPDX-License-Identifier: MIT
/* The codec tests' helpers: see codec.h. */
#include "codec.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "codec/crc32c.h"

/* Builds a frame and copies its iovecs into a fresh 8-aligned buffer. */
uint8_t *cu_frame(uint16_t type, uint64_t seq, const ProtobufCMessage *m,
		  const struct iovec *pl, int npl, size_t *len)
{
	struct pt_txframe f;
	struct pt_error e;
	uint8_t *buf = NULL;
	size_t off = 0;
	int i;

	*len = 0;
	if (pt_txframe_init(&f))
		return NULL;
	if (pt_frame_build(&f, type, 0, seq, m, pl, npl, PT_FRAME_MAX_DEFAULT,
			   &e))
		goto out;
	buf = aligned_alloc(8, pt_align8(f.len) + 8);
	if (!buf)
		goto out;
	for (i = 0; i < f.iovcnt; i++) {
		memcpy(buf + off, f.iov[i].iov_base, f.iov[i].iov_len);
		off += f.iov[i].iov_len;
	}
	*len = off;
out:
	pt_txframe_release(&f);
	return buf;
}

/* A two-region layout: region 1 at 0 (64 MiB of 4 KiB pages), region 2 at
 * 4 GiB (32 MiB of 2 MiB pages). */
void cu_layout(struct pt_layout *l)
{
	memset(l, 0, sizeof(*l));
	pt_layout_add(l, 1, 0, 64ull << 20, 4096, NULL);
	pt_layout_add(l, 2, 4ull << 30, 32ull << 20, 2u << 20, NULL);
}

/* Decodes a flattened frame fully; returns the protocol error code. */
int cu_decode(const uint8_t *buf, size_t len, const struct pt_layout *l,
	      struct pt_msg *m, struct pt_error *e)
{
	struct pt_frame f;

	memset(e, 0, sizeof(*e));
	memset(m, 0, sizeof(*m));
	if (pt_frame_decode(buf, len, PT_FRAME_MAX_DEFAULT, &f, e))
		return e->code ? e->code : -1;
	if (pt_msg_decode(&f, l, m, e))
		return e->code ? e->code : -1;
	return 0;
}

/* Rewrites the CRC of a flattened frame after a test edited it. */
void cu_fix_crc(uint8_t *buf, size_t len)
{
	uint32_t crc = htole32(pt_crc32c(0, buf + 8, len - 8));

	memcpy(buf + 4, &crc, 4);
}
