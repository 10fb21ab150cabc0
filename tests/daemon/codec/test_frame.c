// SPDX-License-Identifier: MIT
/* Frame layer: header checks, the malformed-frame corpus, and the stream
 * reader over real unix and TCP sockets. */
#include "codec/frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "pt_test.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name

/* An Ack frame with a 16-byte payload is not valid as a message, but the
 * frame layer does not look inside: it is a handy test frame. */
static uint8_t *ack_frame(size_t *len, size_t payload)
{
	static uint64_t pl[512];
	Ptrack__V1__Ack ack = PTRACK__V1__ACK__INIT;
	struct iovec iov = { pl, payload };

	ack.seq = 41;
	return cu_frame(T(ACK), 42, &ack.base, &iov, payload ? 1 : 0, len);
}

static int decode(const uint8_t *b, size_t len, struct pt_error *e)
{
	struct pt_frame f;

	memset(e, 0, sizeof(*e));
	return pt_frame_decode(b, len, PT_FRAME_MAX_DEFAULT, &f, e);
}

static void test_header_fields(void)
{
	size_t len = 0;
	uint8_t *b = ack_frame(&len, 16);
	struct pt_frame f;
	struct pt_error e;

	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT_EQUAL(pt_frame_decode(b, len, PT_FRAME_MAX_DEFAULT, &f, &e),
			0);
	CU_ASSERT_EQUAL(f.hdr.magic, PT_FRAME_MAGIC);
	CU_ASSERT_EQUAL(f.hdr.version, 1);
	CU_ASSERT_EQUAL(f.hdr.type, T(ACK));
	CU_ASSERT_EQUAL(f.hdr.seq, 42);
	CU_ASSERT_EQUAL(f.hdr.payload_len, 16);
	CU_ASSERT_EQUAL((size_t)(f.payload - b) % 8, 0);
	CU_ASSERT_EQUAL(memcmp(b, "PTRK", 4), 0); /* little-endian magic */
	free(b);
}

struct corrupt {
	const char *what;
	size_t off; /* byte to overwrite */
	uint8_t val;
	int fix_crc; /* recompute the CRC so the named check is reached */
	int code;
};

static void test_corpus(void)
{
	static const struct corrupt cases[] = {
		{ "magic", 0, 'X', 1, E(BAD_MAGIC) },
		{ "version", 8, 2, 1, E(BAD_VERSION) },
		{ "type", 10, 77, 1, E(UNKNOWN_TYPE) },
		{ "type zero", 10, 0, 1, E(UNKNOWN_TYPE) },
		{ "flags", 12, 0x80, 1, E(BAD_HEADER) },
		{ "hdr_len", 14, 40, 1, E(BAD_HEADER) },
		{ "msg_len huge", 18, 0x10, 1, E(OVERSIZE) },
		{ "payload_len odd", 20, 17, 1, E(BAD_PAYLOAD) },
		{ "payload_len huge", 23, 0x10, 1, E(OVERSIZE) },
		{ "payload_len longer", 20, 24, 1, E(TRUNCATED) },
		{ "payload_len shorter", 20, 8, 1, E(TRAILING) },
		{ "crc", 4, 0x55, 0, E(BAD_CRC) },
		{ "body bit", 33, 0x40, 0, E(BAD_CRC) },
		{ "payload bit", 40, 0x01, 0, E(BAD_CRC) },
	};
	struct pt_error e;
	size_t i, len = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *b = ack_frame(&len, 16);

		CU_ASSERT_FATAL(b != NULL);
		b[cases[i].off] = cases[i].val;
		if (cases[i].fix_crc)
			cu_fix_crc(b, len);
		CU_ASSERT(decode(b, len, &e) < 0);
		if (e.code != cases[i].code)
			fprintf(stderr, "case %s: got %s (%s)\n", cases[i].what,
				pt_error_name(e.code), e.text);
		CU_ASSERT_EQUAL(e.code, cases[i].code);
		CU_ASSERT(e.text[0] != '\0');
		free(b);
	}
}

static void test_truncated_at_every_length(void)
{
	struct pt_error e;
	size_t len = 0, n;
	uint8_t *b = ack_frame(&len, 64);

	CU_ASSERT_FATAL(b != NULL);
	for (n = 0; n < len; n++) {
		CU_ASSERT_EQUAL(decode(b, n, &e), -EPIPE);
		CU_ASSERT_EQUAL(e.code, E(TRUNCATED));
	}
	CU_ASSERT_EQUAL(decode(b, len, &e), 0);
	free(b);
}

static void test_trailing_garbage_and_padding(void)
{
	struct pt_error e;
	size_t len = 0;
	uint8_t *b = ack_frame(&len, 8);
	uint8_t *big = calloc(1, len + 8);
	struct pt_frame f;

	CU_ASSERT_FATAL(b && big);
	memcpy(big, b, len);
	CU_ASSERT_EQUAL(decode(big, len + 1, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(TRAILING));
	/* the Ack message is 2 bytes: 6 pad bytes follow at 34..39 */
	CU_ASSERT_EQUAL(pt_frame_decode(b, len, PT_FRAME_MAX_DEFAULT, &f, &e),
			0);
	CU_ASSERT_EQUAL(f.hdr.msg_len, 2);
	b[36] = 1;
	cu_fix_crc(b, len);
	CU_ASSERT_EQUAL(decode(b, len, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_HEADER));
	free(b);
	free(big);
}

static void test_build_limits(void)
{
	static uint64_t pl[1024];
	struct iovec odd = { pl, 12 }, big = { pl, sizeof(pl) };
	struct pt_txframe f;
	struct pt_error e;

	CU_ASSERT_EQUAL_FATAL(pt_txframe_init(&f), 0);
	CU_ASSERT_EQUAL(pt_frame_build(&f, T(ACK), 0, 1, NULL, &odd, 1,
				       PT_FRAME_MAX_DEFAULT, &e),
			-EINVAL);
	CU_ASSERT_EQUAL(e.code, E(BAD_PAYLOAD));
	CU_ASSERT_EQUAL(
		pt_frame_build(&f, T(ACK), 0, 1, NULL, &big, 1, 4096, &e),
		-EMSGSIZE);
	CU_ASSERT_EQUAL(e.code, E(OVERSIZE));
	CU_ASSERT_EQUAL(pt_frame_build(&f, T(ACK), 0, 1, NULL, &big, 1,
				       PT_FRAME_MAX_DEFAULT, &e),
			0);
	CU_ASSERT_EQUAL(f.len, 32 + sizeof(pl));
	pt_txframe_release(&f);
}

struct sender {
	int fd;
	int frames;
	size_t payload;
	int cut_last; /* close half way through the last frame */
};

static void *send_frames(void *arg)
{
	struct sender *s = arg;
	uint64_t *pl = calloc(1, s->payload + 8);
	struct iovec iov = { pl, s->payload };
	struct pt_txframe f;
	Ptrack__V1__Ack ack = PTRACK__V1__ACK__INIT;
	int i;

	if (!pl || pt_txframe_init(&f))
		goto out;
	for (i = 1; i <= s->frames; i++) {
		pl[0] = (uint64_t)i;
		ack.seq = (uint64_t)i;
		if (pt_frame_build(&f, T(ACK), 0, (uint64_t)i, &ack.base, &iov,
				   1, PT_FRAME_MAX_DEFAULT, NULL))
			break;
		if (i == s->frames && s->cut_last) {
			if (write(s->fd, f.iov[0].iov_base, 20) != 20)
				break;
			break;
		}
		if (pt_frame_send(s->fd, &f))
			break;
	}
	pt_txframe_release(&f);
out:
	free(pl);
	close(s->fd);
	return NULL;
}

/* Streams frames through @fds and checks each arrives intact. */
static void stream_through(int fds[2], int frames, size_t payload, int cut)
{
	struct sender s = { fds[1], frames, payload, cut };
	struct pt_reader r;
	struct pt_frame f;
	struct pt_error e;
	pthread_t t;
	int i, ret;

	CU_ASSERT_EQUAL_FATAL(pt_reader_init(&r, fds[0], PT_FRAME_MAX_DEFAULT),
			      0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, send_frames, &s), 0);
	for (i = 1; i <= frames - cut; i++) {
		ret = pt_reader_next(&r, &f, &e);
		CU_ASSERT_EQUAL(ret, 1);
		if (ret != 1)
			break;
		CU_ASSERT_EQUAL(f.hdr.seq, (uint64_t)i);
		CU_ASSERT_EQUAL(((const uint64_t *)f.payload)[0], (uint64_t)i);
	}
	ret = pt_reader_next(&r, &f, &e);
	CU_ASSERT_EQUAL(ret, cut ? -EPIPE : 0);
	if (cut)
		CU_ASSERT_EQUAL(e.code, E(TRUNCATED));
	pthread_join(t, NULL);
	pt_reader_release(&r);
	close(fds[0]);
}

static void test_reader_unix_socket(void)
{
	int fds[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	stream_through(fds, 200, 4096, 0);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	stream_through(fds, 5, 4096, 1);
}

static int tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al))
		goto fail;
	fds[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (fds[1] < 0 || connect(fds[1], (struct sockaddr *)&a, sizeof(a)))
		goto fail;
	fds[0] = accept(l, NULL, NULL);
	close(l);
	return fds[0] < 0 ? -1 : 0;
fail:
	if (l >= 0)
		close(l);
	return -1;
}

static void test_reader_tcp_large_frames(void)
{
	int fds[2];

	/* 4 MiB frames force partial writes and reads on loopback TCP */
	CU_ASSERT_EQUAL_FATAL(tcp_pair(fds), 0);
	stream_through(fds, 20, 4u << 20, 0);
	CU_ASSERT_EQUAL_FATAL(tcp_pair(fds), 0);
	stream_through(fds, 3, 1u << 20, 1);
}

static void test_reader_rejects_garbage_stream(void)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n......";
	struct pt_reader r;
	struct pt_frame f;
	struct pt_error e;
	int fds[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	CU_ASSERT_EQUAL(write(fds[1], junk, sizeof(junk)),
			(ssize_t)sizeof(junk));
	close(fds[1]);
	CU_ASSERT_EQUAL_FATAL(pt_reader_init(&r, fds[0], PT_FRAME_MAX_DEFAULT),
			      0);
	CU_ASSERT_EQUAL(pt_reader_next(&r, &f, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_MAGIC));
	pt_reader_release(&r);
	close(fds[0]);
}

PT_SUITE(codec_frame, PT_TEST(test_header_fields), PT_TEST(test_corpus),
	 PT_TEST(test_truncated_at_every_length),
	 PT_TEST(test_trailing_garbage_and_padding), PT_TEST(test_build_limits),
	 PT_TEST(test_reader_unix_socket),
	 PT_TEST(test_reader_tcp_large_frames),
	 PT_TEST(test_reader_rejects_garbage_stream))
