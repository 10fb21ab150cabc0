// SPDX-License-Identifier: MIT
#include "codec/frame.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/crc32c.h"
#include "codec/msg.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static void hdr_write(uint8_t *p, const struct pt_frame_hdr *h)
{
	put32(p + 0, h->magic);
	put32(p + 4, h->crc);
	put16(p + 8, h->version);
	put16(p + 10, h->type);
	put16(p + 12, h->flags);
	put16(p + 14, h->hdr_len);
	put32(p + 16, h->msg_len);
	put32(p + 20, h->payload_len);
	put64(p + 24, h->seq);
}

static void hdr_read(const uint8_t *p, struct pt_frame_hdr *h)
{
	h->magic = get32(p + 0);
	h->crc = get32(p + 4);
	h->version = get16(p + 8);
	h->type = get16(p + 10);
	h->flags = get16(p + 12);
	h->hdr_len = get16(p + 14);
	h->msg_len = get32(p + 16);
	h->payload_len = get32(p + 20);
	h->seq = get64(p + 24);
}

int pt_txframe_init(struct pt_txframe *f)
{
	memset(f, 0, sizeof(*f));
	f->msg = malloc(PT_MSG_MAX);
	return f->msg ? 0 : -ENOMEM;
}

void pt_txframe_release(struct pt_txframe *f)
{
	free(f->msg);
	f->msg = NULL;
}

static int payload_len(const struct iovec *payload, int n, size_t *len,
		       struct pt_error *e)
{
	size_t total = 0;
	int i;

	if (n < 0 || n > PT_TX_PAYLOAD_IOV_MAX)
		return pt_error_set(e, E(BAD_PAYLOAD), EINVAL,
				    "%d payload iovecs, at most %d", n,
				    PT_TX_PAYLOAD_IOV_MAX);
	for (i = 0; i < n; i++)
		total += payload[i].iov_len;
	if (total % 8)
		return pt_error_set(e, E(BAD_PAYLOAD), EINVAL,
				    "payload of %zu bytes is not 8-aligned",
				    total);
	*len = total;
	return 0;
}

int pt_frame_build(struct pt_txframe *f, uint16_t type, uint16_t flags,
		   uint64_t seq, const ProtobufCMessage *msg,
		   const struct iovec *payload, int npayload, size_t max_frame,
		   struct pt_error *e)
{
	struct pt_frame_hdr h = { .magic = PT_FRAME_MAGIC,
				  .version = PT_PROTO_VERSION,
				  .type = type,
				  .flags = flags,
				  .hdr_len = PT_FRAME_HDR_LEN,
				  .seq = seq };
	size_t plen = 0, mlen = 0, pad;
	uint32_t crc;
	int i, r;

	r = payload_len(payload, npayload, &plen, e);
	if (r)
		return r;
	if (msg) {
		mlen = protobuf_c_message_get_packed_size(msg);
		if (mlen > PT_MSG_MAX)
			return pt_error_set(e, E(OVERSIZE), EMSGSIZE,
					    "message of %zu bytes, at most %u",
					    mlen, PT_MSG_MAX);
		protobuf_c_message_pack(msg, f->msg);
	}
	h.msg_len = (uint32_t)mlen;
	pad = pt_align8(PT_FRAME_HDR_LEN + mlen) - PT_FRAME_HDR_LEN - mlen;
	if (plen > UINT32_MAX ||
	    PT_FRAME_HDR_LEN + mlen + pad + plen > max_frame)
		return pt_error_set(e, E(OVERSIZE), EMSGSIZE,
				    "frame of %zu bytes, at most %zu",
				    PT_FRAME_HDR_LEN + mlen + pad + plen,
				    max_frame);
	h.payload_len = (uint32_t)plen;
	hdr_write(f->hdr, &h);

	f->iov[0] = (struct iovec){ f->hdr, PT_FRAME_HDR_LEN };
	f->iov[1] = (struct iovec){ f->msg, mlen };
	memset(f->pad, 0, sizeof(f->pad));
	f->iov[2] = (struct iovec){ f->pad, pad };
	f->iovcnt = 3;
	crc = pt_crc32c(0, f->hdr + 8, PT_FRAME_HDR_LEN - 8);
	crc = pt_crc32c(crc, f->msg, mlen);
	crc = pt_crc32c(crc, f->pad, pad);
	for (i = 0; i < npayload; i++) {
		if (!payload[i].iov_len)
			continue;
		crc = pt_crc32c(crc, payload[i].iov_base, payload[i].iov_len);
		f->iov[f->iovcnt++] = payload[i];
	}
	put32(f->hdr + 4, crc);
	f->len = PT_FRAME_HDR_LEN + mlen + pad + plen;
	return 0;
}

int pt_frame_send(int fd, struct pt_txframe *f)
{
	struct iovec *iov = f->iov;
	int cnt = f->iovcnt;
	ssize_t n;

	while (cnt) {
		n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Skip what was written; the iovecs are ours to adjust. */
		while (cnt && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int pt_frame_parse_hdr(const uint8_t *buf, size_t len, size_t max_frame,
		       struct pt_frame_hdr *h, struct pt_error *e)
{
	if (len < PT_FRAME_HDR_LEN)
		return pt_error_set(e, E(TRUNCATED), EPIPE,
				    "%zu bytes, a header needs %d", len,
				    PT_FRAME_HDR_LEN);
	hdr_read(buf, h);
	if (h->magic != PT_FRAME_MAGIC)
		return pt_error_set(e, E(BAD_MAGIC), EBADMSG,
				    "magic 0x%08x, expected 0x%08x", h->magic,
				    PT_FRAME_MAGIC);
	if (h->version != PT_PROTO_VERSION)
		return pt_error_set(e, E(BAD_VERSION), EPROTONOSUPPORT,
				    "protocol version %u, this side speaks %d",
				    h->version, PT_PROTO_VERSION);
	if (h->hdr_len != PT_FRAME_HDR_LEN)
		return pt_error_set(e, E(BAD_HEADER), EBADMSG,
				    "header length %u, expected %d", h->hdr_len,
				    PT_FRAME_HDR_LEN);
	if (h->flags & ~PT_FRAME_F_ALL)
		return pt_error_set(e, E(BAD_HEADER), EBADMSG,
				    "unknown flags 0x%04x", h->flags);
	if (!pt_msg_descriptor(h->type))
		return pt_error_set(e, E(UNKNOWN_TYPE), EBADMSG,
				    "unknown message type %u", h->type);
	if (h->msg_len > PT_MSG_MAX)
		return pt_error_set(e, E(OVERSIZE), EMSGSIZE,
				    "message of %u bytes, at most %u",
				    h->msg_len, PT_MSG_MAX);
	if (h->payload_len % 8)
		return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
				    "payload of %u bytes is not 8-aligned",
				    h->payload_len);
	if (pt_frame_len(h) > max_frame)
		return pt_error_set(e, E(OVERSIZE), EMSGSIZE,
				    "frame of %zu bytes, at most %zu",
				    pt_frame_len(h), max_frame);
	return 0;
}

static int check_body(const uint8_t *buf, const struct pt_frame_hdr *h,
		      struct pt_error *e)
{
	size_t off = PT_FRAME_HDR_LEN + h->msg_len;
	size_t end = pt_frame_payload_off(h);
	uint32_t crc;

	for (; off < end; off++)
		if (buf[off])
			return pt_error_set(e, E(BAD_HEADER), EBADMSG,
					    "non-zero padding at offset %zu",
					    off);
	crc = pt_crc32c(0, buf + 8, pt_frame_len(h) - 8);
	if (crc != h->crc)
		return pt_error_set(e, E(BAD_CRC), EBADMSG,
				    "CRC32C 0x%08x, header says 0x%08x", crc,
				    h->crc);
	return 0;
}

int pt_frame_decode(const uint8_t *buf, size_t len, size_t max_frame,
		    struct pt_frame *f, struct pt_error *e)
{
	int r = pt_frame_parse_hdr(buf, len, max_frame, &f->hdr, e);

	if (r)
		return r;
	if (len < pt_frame_len(&f->hdr))
		return pt_error_set(e, E(TRUNCATED), EPIPE,
				    "%zu bytes, the frame is %zu", len,
				    pt_frame_len(&f->hdr));
	if (len > pt_frame_len(&f->hdr))
		return pt_error_set(e, E(TRAILING), EBADMSG,
				    "%zu bytes after the frame",
				    len - pt_frame_len(&f->hdr));
	r = check_body(buf, &f->hdr, e);
	if (r)
		return r;
	f->msg = buf + PT_FRAME_HDR_LEN;
	f->payload = buf + pt_frame_payload_off(&f->hdr);
	return 0;
}

int pt_reader_init(struct pt_reader *r, int fd, size_t max_frame)
{
	memset(r, 0, sizeof(*r));
	if (max_frame < PT_FRAME_HDR_LEN || max_frame > PT_FRAME_MAX_LIMIT)
		return -EINVAL;
	r->fd = fd;
	r->max_frame = max_frame;
	/* 8-aligned, so payloads (at 8-aligned offsets) are too. */
	r->buf = aligned_alloc(64, (max_frame + 63) & ~(size_t)63);
	return r->buf ? 0 : -ENOMEM;
}

void pt_reader_release(struct pt_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads exactly @len bytes by @deadline (CLOCK_MONOTONIC ms, 0: none);
 * returns the count read before EOF, or -errno (-ETIMEDOUT). */
static ssize_t read_full(int fd, uint8_t *p, size_t len, uint64_t deadline)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	uint64_t now;
	ssize_t n;

	while (got < len) {
		if (deadline) {
			now = now_ms();
			n = now < deadline ? poll(&pf, 1, (int)(deadline - now))
					   : 0;
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -ETIMEDOUT;
		}
		n = read(fd, p + got, len - got);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static uint64_t deadline_of(const struct pt_reader *r)
{
	return r->timeout_ms > 0 ? now_ms() + (uint64_t)r->timeout_ms : 0;
}

int pt_reader_next(struct pt_reader *r, struct pt_frame *f, struct pt_error *e)
{
	ssize_t n = read_full(r->fd, r->buf, PT_FRAME_HDR_LEN, deadline_of(r));
	size_t rest;
	int ret;

	if (n <= 0)
		return (int)n;
	ret = pt_frame_parse_hdr(r->buf, (size_t)n, r->max_frame, &f->hdr, e);
	if (ret)
		return ret;
	rest = pt_frame_len(&f->hdr) - PT_FRAME_HDR_LEN;
	n = read_full(r->fd, r->buf + PT_FRAME_HDR_LEN, rest, deadline_of(r));
	if (n < 0)
		return (int)n;
	if ((size_t)n < rest)
		return pt_error_set(
			e, E(TRUNCATED), EPIPE,
			"stream ended %zu bytes into a %zu-byte frame",
			PT_FRAME_HDR_LEN + (size_t)n, pt_frame_len(&f->hdr));
	ret = check_body(r->buf, &f->hdr, e);
	if (ret)
		return ret;
	f->msg = r->buf + PT_FRAME_HDR_LEN;
	f->payload = r->buf + pt_frame_payload_off(&f->hdr);
	r->frames++;
	r->bytes += pt_frame_len(&f->hdr);
	return 1;
}
