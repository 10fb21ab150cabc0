// SPDX-License-Identifier: MIT
/*
 * Control protocol codec: round trips, field validation, and a seeded
 * mutation run over valid frames (bit flips, truncation, splices) that
 * must never crash and must reject every frame whose CRC no longer holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pt_test.h"
#include "service/ctlmsg.h"

/* Builds the frame of @q into @buf; returns its length. */
static size_t build(PtCtlRequest *q, uint8_t *buf, size_t cap)
{
	struct pt_txframe f;
	struct pt_error e;
	size_t off = 0;

	CU_ASSERT_FATAL(pt_txframe_init(&f) == 0);
	CU_ASSERT_FATAL(pt_frame_build(&f, PT_CTL_FRAME_TYPE, 0, 1, &q->base,
				       NULL, 0, PT_CTL_FRAME_MAX, &e) == 0);
	for (int i = 0; i < f.iovcnt; i++) {
		CU_ASSERT_FATAL(off + f.iov[i].iov_len <= cap);
		memcpy(buf + off, f.iov[i].iov_base, f.iov[i].iov_len);
		off += f.iov[i].iov_len;
	}
	pt_txframe_release(&f);
	return off;
}

static int parse(const uint8_t *buf, size_t len, struct pt_error *e)
{
	PtCtlRequest *r = NULL;
	int ret = pt_ctl_parse_request(buf, len, &r, e);

	pt_ctl_request_free(r);
	return ret;
}

static void test_round_trip(void)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT, *r = NULL;
	Ptrack__Control__V1__MigrateRequest m =
		PTRACK__CONTROL__V1__MIGRATE_REQUEST__INIT;
	struct pt_error e;
	uint8_t buf[4096];
	size_t n;

	m.vm = "vm1";
	m.to = "10.0.0.2:4444";
	m.downtime_ms = 100;
	q.id = 42;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE;
	q.migrate = &m;
	n = build(&q, buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(pt_ctl_parse_request(buf, n, &r, &e), 0);
	CU_ASSERT_EQUAL(r->id, 42);
	CU_ASSERT_STRING_EQUAL(r->migrate->to, "10.0.0.2:4444");
	CU_ASSERT_EQUAL(r->migrate->downtime_ms, 100);
	pt_ctl_request_free(r);
}

static int parse_req(PtCtlRequest *q, struct pt_error *e)
{
	uint8_t buf[4096];

	return parse(buf, build(q, buf, sizeof(buf)), e);
}

static void test_invalid_fields(void)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__MigrateRequest m =
		PTRACK__CONTROL__V1__MIGRATE_REQUEST__INIT;
	Ptrack__Control__V1__DirtyRateRequest d =
		PTRACK__CONTROL__V1__DIRTY_RATE_REQUEST__INIT;
	struct pt_error e;

	/* No body at all. */
	CU_ASSERT_EQUAL(parse_req(&q, &e), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.text, "body"));
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE;
	q.migrate = &m;
	m.vm = "vm1";
	m.to = "nowhere";
	CU_ASSERT_EQUAL(parse_req(&q, &e), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.text, "HOST:PORT"));
	m.to = "";
	CU_ASSERT_EQUAL(parse_req(&q, &e), -EBADMSG);
	m.to = "h:1";
	m.vm = "bad\nname";
	CU_ASSERT_EQUAL(parse_req(&q, &e), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.text, "control character"));
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_DIRTYRATE;
	q.dirtyrate = &d;
	d.vm = "vm1";
	d.seconds = 61;
	CU_ASSERT_EQUAL(parse_req(&q, &e), -EBADMSG);
	d.seconds = 60;
	d.mode = 7;
	CU_ASSERT_EQUAL(parse_req(&q, &e), -EBADMSG);
	d.mode = PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_RING;
	CU_ASSERT_EQUAL(parse_req(&q, &e), 0);
}

static void test_wrong_frames(void)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__StatusRequest s =
		PTRACK__CONTROL__V1__STATUS_REQUEST__INIT;
	struct pt_txframe f;
	struct pt_error e;
	uint8_t buf[4096];
	size_t off = 0;

	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_STATUS;
	q.status = &s;
	/* A wire-protocol frame type other than the control one. */
	CU_ASSERT_FATAL(pt_txframe_init(&f) == 0);
	CU_ASSERT_FATAL(pt_frame_build(&f, PTRACK__V1__MSG_TYPE__MSG_TYPE_ACK,
				       0, 1, &q.base, NULL, 0, PT_CTL_FRAME_MAX,
				       &e) == 0);
	for (int i = 0; i < f.iovcnt; i++) {
		memcpy(buf + off, f.iov[i].iov_base, f.iov[i].iov_len);
		off += f.iov[i].iov_len;
	}
	pt_txframe_release(&f);
	CU_ASSERT_EQUAL(parse(buf, off, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, PTRACK__V1__ERROR_CODE__ERROR_UNKNOWN_TYPE);
	/* Garbage, empty and short input. */
	memset(buf, 0xa5, sizeof(buf));
	CU_ASSERT(parse(buf, sizeof(buf), &e) < 0);
	CU_ASSERT(parse(buf, 0, &e) < 0);
	CU_ASSERT(parse(buf, 7, &e) < 0);
}

/* xorshift: reproducible mutations. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_mutations(void)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__PeerListenRequest p =
		PTRACK__CONTROL__V1__PEER_LISTEN_REQUEST__INIT;
	uint8_t good[4096], buf[4096];
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct pt_error e;
	size_t n;
	int accepted = 0;

	p.listen = "0.0.0.0:4444";
	p.mem_path = "/var/lib/ptrack/dest.mem";
	q.id = 7;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_PEER_LISTEN;
	q.peer_listen = &p;
	n = build(&q, good, sizeof(good));
	for (int i = 0; i < 20000; i++) {
		size_t len = n;

		memcpy(buf, good, n);
		switch (rnd(&seed) % 3) {
		case 0: /* flip 1..4 bits */
			for (int k = 0; k <= (int)(rnd(&seed) % 4); k++)
				buf[rnd(&seed) % n] ^= 1u << (rnd(&seed) % 8);
			break;
		case 1: /* truncate */
			len = rnd(&seed) % n;
			break;
		default: /* random bytes over a span */
			for (size_t k = rnd(&seed) % n; k < n; k += 3)
				buf[k] = (uint8_t)rnd(&seed);
		}
		/* Two flips of one bit give back the original. */
		if (len == n && !memcmp(buf, good, n))
			continue;
		if (parse(buf, len, &e) == 0)
			accepted++;
	}
	/* CRC32C catches every change of up to 4 bits in a short frame;
	 * a random change gets through with odds of 2^-32. */
	CU_ASSERT_EQUAL(accepted, 0);
}

/* Found by fuzz_control: an overlong field number 0 inside a body, which
 * protobuf-c unpacks as an unknown field and then packs unreadably. */
static void test_field_zero(void)
{
	static const uint8_t msg[] = {
		0x18, 0x01, 0x72, 0x1e, 0x0a, 0x03, 0x76, 0x6d, 0x31, 0x12,
		0x0e, 0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31,
		0x3a, 0x34, 0x34, 0x34, 0x34, 0x18, 0xac, 0x02, 0x80, 0x00,
		0xeb, 0x94, 0xdc, 0x03, 0xf8, 0xff, 0x7b, 0x00, 0x08, 0x2f,
	};
	struct pt_frame f = { .hdr = { .type = PT_CTL_FRAME_TYPE,
				       .msg_len = sizeof(msg) },
			      .msg = msg };
	PtCtlRequest *r = NULL;
	struct pt_error e;

	CU_ASSERT_EQUAL(pt_ctl_decode_request(&f, &r, &e), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.text, "field number 0"));
	pt_ctl_request_free(r);
}

PT_SUITE(service_ctlmsg, PT_TEST(test_field_zero), PT_TEST(test_round_trip),
	 PT_TEST(test_invalid_fields), PT_TEST(test_wrong_frames),
	 PT_TEST(test_mutations));
