// SPDX-License-Identifier: MIT
/* Messages: every type round-trips, and each semantic error is reported
 * with its own code. */
#include "codec/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bitmap.h"
#include "codec/ring.h"
#include "codec.h"
#include "pt_test.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name

static struct pt_layout layout;
/* The last frame decoded: messages point into it until the next rt(). */
static uint8_t *frame_buf;
static uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

/* Encodes, decodes against the test layout, returns the error code. */
static int rt(uint16_t type, const ProtobufCMessage *m, const void *pl,
	      size_t plen, struct pt_msg *out)
{
	struct iovec iov = { (void *)pl, plen };
	struct pt_error e;
	size_t len;
	uint8_t *b = cu_frame(type, 9, m, &iov, plen ? 1 : 0, &len);
	int code;

	free(frame_buf);
	frame_buf = b;
	if (!b)
		return -1;
	code = cu_decode(b, len, &layout, out, &e);
	if (code)
		pt_msg_release(out);
	return code;
}

static int rt_code(uint16_t type, const ProtobufCMessage *m, const void *pl,
		   size_t plen)
{
	struct pt_msg out;
	int code = rt(type, m, pl, plen, &out);

	if (!code)
		pt_msg_release(&out);
	return code;
}

static void fill_hello(Ptrack__V1__Hello *h, Ptrack__V1__Region **rp,
		       Ptrack__V1__Region *r)
{
	ptrack__v1__hello__init(h);
	ptrack__v1__region__init(&r[0]);
	ptrack__v1__region__init(&r[1]);
	r[0] = (Ptrack__V1__Region){ r[0].base, 1, 0, 1 << 30, 4096 };
	r[1] = (Ptrack__V1__Region){ r[1].base, 2, 4ull << 30, 1 << 30,
				     2u << 20 };
	rp[0] = &r[0];
	rp[1] = &r[1];
	h->version = 1;
	h->role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h->vm_name = "guest-a";
	h->vm_uuid = (ProtobufCBinaryData){ 16, uuid };
	h->n_regions = 2;
	h->regions = rp;
	h->vcpus = 2;
	h->dirty_source = PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING;
	h->features = PTRACK__V1__FEATURE__FEATURE_RLE_BITMAP;
	h->session_id = 0x1234567890abcdefull;
}

static void test_hello(void)
{
	Ptrack__V1__Hello h;
	Ptrack__V1__Region r[2], *rp[2];
	struct pt_layout l;
	struct pt_msg m;

	fill_hello(&h, rp, r);
	CU_ASSERT_EQUAL_FATAL(rt(T(HELLO), &h.base, NULL, 0, &m), 0);
	CU_ASSERT_STRING_EQUAL(m.u.hello->vm_name, "guest-a");
	CU_ASSERT_EQUAL(memcmp(m.u.hello->vm_uuid.data, uuid, 16), 0);
	CU_ASSERT_EQUAL(m.u.hello->session_id, h.session_id);
	CU_ASSERT_EQUAL(m.u.hello->regions[1]->page_size, 2u << 20);
	CU_ASSERT_EQUAL(pt_layout_from_hello(&l, m.u.hello, NULL), 0);
	CU_ASSERT_EQUAL(l.n, 2);
	pt_msg_release(&m);

	h.version = 2;
	CU_ASSERT_EQUAL(rt_code(T(HELLO), &h.base, NULL, 0), E(BAD_VERSION));
	h.version = 1;
	h.vm_uuid.len = 5;
	CU_ASSERT_EQUAL(rt_code(T(HELLO), &h.base, NULL, 0), E(BAD_MESSAGE));
	h.vm_uuid.len = 16;
	h.vcpus = 0;
	CU_ASSERT_EQUAL(rt_code(T(HELLO), &h.base, NULL, 0), E(BAD_MESSAGE));
	h.vcpus = 2;
	r[1].gpa_base = 4096;
	CU_ASSERT_EQUAL(rt_code(T(HELLO), &h.base, NULL, 0), E(BAD_REGION));
	r[1].gpa_base = 4ull << 30;
	h.role = 9;
	CU_ASSERT_EQUAL(rt_code(T(HELLO), &h.base, NULL, 0), E(BAD_MESSAGE));
	h.role = PTRACK__V1__ROLE__ROLE_PEER;
	h.dirty_source = 0;
	CU_ASSERT_EQUAL(rt_code(T(HELLO), &h.base, NULL, 0), E(BAD_MESSAGE));
}

static void bitmap_case(unsigned int every)
{
	Ptrack__V1__DirtyBitmap b = PTRACK__V1__DIRTY_BITMAP__INIT;
	struct pt_bitmap_enc enc = { 0 };
	uint64_t w[160] = { 0 }, i, n = 10000;
	struct pt_msg m;

	for (i = 0; i < n; i += every)
		w[i / 64] |= 1ull << (i % 64);
	CU_ASSERT_EQUAL_FATAL(pt_bitmap_encode(&enc, w, n, 0), 0);
	b.region = 1;
	b.first_page = 100;
	b.page_count = n;
	b.encoding = enc.encoding;
	b.dirty_count = enc.dirty;
	CU_ASSERT_EQUAL_FATAL(
		rt(T(DIRTY_BITMAP), &b.base, enc.data, enc.len, &m), 0);
	CU_ASSERT_EQUAL(memcmp(m.words, w, pt_bitmap_words(n) * 8), 0);
	CU_ASSERT_EQUAL(m.region->id, 1);
	pt_msg_release(&m);

	b.region = 3;
	CU_ASSERT_EQUAL(rt_code(T(DIRTY_BITMAP), &b.base, enc.data, enc.len),
			E(BAD_REGION));
	b.region = 1;
	b.first_page = (1 << 18) - n + 1;
	CU_ASSERT_EQUAL(rt_code(T(DIRTY_BITMAP), &b.base, enc.data, enc.len),
			E(PAGE_RANGE));
	b.first_page = 0;
	b.dirty_count++;
	CU_ASSERT_EQUAL(rt_code(T(DIRTY_BITMAP), &b.base, enc.data, enc.len),
			E(COUNT_MISMATCH));
	pt_bitmap_enc_release(&enc);
}

static void test_dirty_bitmap_raw_and_rle(void)
{
	bitmap_case(2); /* dense: RAW */
	bitmap_case(1000); /* sparse: RLE */
	bitmap_case(1); /* full: RLE */
}

static void test_dirty_ring(void)
{
	Ptrack__V1__DirtyRing r = PTRACK__V1__DIRTY_RING__INIT;
	uint64_t g[5] = { 7, 3, (4ull << 30 >> 12) + 9, 3, 100 };
	uint8_t buf[pt_ring_encode_bound(5)];
	size_t count, len = pt_ring_encode(g, 5, buf, &count);
	struct pt_msg m;

	r.vcpu = 1;
	r.batch_seq = 77;
	r.count = count;
	CU_ASSERT_EQUAL_FATAL(rt(T(DIRTY_RING), &r.base, buf, len, &m), 0);
	CU_ASSERT_EQUAL(m.u.ring->batch_seq, 77);
	CU_ASSERT_EQUAL(m.gfns[0], 3);
	CU_ASSERT_EQUAL(m.gfns[3], (4ull << 30 >> 12) + 9);
	pt_msg_release(&m);

	g[0] = (2ull << 30) >> 12; /* between the regions */
	len = pt_ring_encode(g, 4, buf, &count);
	r.count = count;
	CU_ASSERT_EQUAL(rt_code(T(DIRTY_RING), &r.base, buf, len),
			E(PAGE_RANGE));
	r.count = 100;
	CU_ASSERT_EQUAL(rt_code(T(DIRTY_RING), &r.base, buf, len), E(OVERSIZE));
}

static void test_page_data(void)
{
	Ptrack__V1__PageData p = PTRACK__V1__PAGE_DATA__INIT;
	static uint8_t pages[3 * 4096];
	uint64_t list[3] = { 5, 9, 1000 }, zero[1] = { 2 };
	struct pt_msg m;

	memset(pages, 0xab, sizeof(pages));
	p.region = 1;
	p.first_page = 10;
	p.page_count = 3;
	CU_ASSERT_EQUAL_FATAL(
		rt(T(PAGE_DATA), &p.base, pages, sizeof(pages), &m), 0);
	CU_ASSERT_EQUAL(m.n_pages, 3);
	CU_ASSERT_EQUAL(m.payload[4096 * 2 + 7], 0xab);
	pt_msg_release(&m);

	/* list form, the middle page flagged zero and not sent */
	p.first_page = p.page_count = 0;
	p.n_pages = 3;
	p.pages = list;
	p.n_zero_mask = 1;
	p.zero_mask = zero;
	CU_ASSERT_EQUAL_FATAL(rt(T(PAGE_DATA), &p.base, pages, 2 * 4096, &m),
			      0);
	CU_ASSERT_EQUAL(m.page_idx[2], 1000);
	CU_ASSERT(pt_msg_page_is_zero(&m, 1));
	CU_ASSERT(!pt_msg_page_is_zero(&m, 0));
	pt_msg_release(&m);

	CU_ASSERT_EQUAL(rt_code(T(PAGE_DATA), &p.base, pages, 3 * 4096),
			E(BAD_PAYLOAD));
	list[1] = 5;
	CU_ASSERT_EQUAL(rt_code(T(PAGE_DATA), &p.base, pages, 2 * 4096),
			E(ORDER));
	list[1] = 1 << 18;
	CU_ASSERT_EQUAL(rt_code(T(PAGE_DATA), &p.base, pages, 2 * 4096),
			E(PAGE_RANGE));
	list[1] = 9;
	zero[0] = 1 << 5;
	CU_ASSERT_EQUAL(rt_code(T(PAGE_DATA), &p.base, pages, 2 * 4096),
			E(BAD_MESSAGE));
	zero[0] = 2;
	p.page_count = 3;
	CU_ASSERT_EQUAL(rt_code(T(PAGE_DATA), &p.base, pages, 2 * 4096),
			E(BAD_MESSAGE));
}

static void test_small_messages(void)
{
	Ptrack__V1__IterationDone it = PTRACK__V1__ITERATION_DONE__INIT;
	Ptrack__V1__Ack ack = PTRACK__V1__ACK__INIT;
	Ptrack__V1__Resume res = PTRACK__V1__RESUME__INIT;
	Ptrack__V1__Error err = PTRACK__V1__ERROR__INIT;
	struct pt_msg m;
	uint64_t pl = 0;

	it.round = 4;
	it.dirty_pages = 1000;
	it.final = 1;
	CU_ASSERT_EQUAL_FATAL(rt(T(ITERATION_DONE), &it.base, NULL, 0, &m), 0);
	CU_ASSERT(m.u.iter->final);
	CU_ASSERT_EQUAL(m.u.iter->dirty_pages, 1000);
	pt_msg_release(&m);
	ack.seq = 1ull << 40;
	CU_ASSERT_EQUAL_FATAL(rt(T(ACK), &ack.base, NULL, 0, &m), 0);
	CU_ASSERT_EQUAL(m.u.ack->seq, 1ull << 40);
	pt_msg_release(&m);
	res.session_id = 5;
	res.last_acked_seq = 99;
	CU_ASSERT_EQUAL_FATAL(rt(T(RESUME), &res.base, NULL, 0, &m), 0);
	CU_ASSERT_EQUAL(m.u.resume->last_acked_seq, 99);
	pt_msg_release(&m);
	res.session_id = 0;
	CU_ASSERT_EQUAL(rt_code(T(RESUME), &res.base, NULL, 0), E(SESSION));
	err.code = PTRACK__V1__ERROR_CODE__ERROR_NO_SPACE;
	err.text = "destination full";
	CU_ASSERT_EQUAL_FATAL(rt(T(ERROR), &err.base, NULL, 0, &m), 0);
	CU_ASSERT_STRING_EQUAL(m.u.error->text, "destination full");
	pt_msg_release(&m);
	CU_ASSERT_EQUAL(rt_code(T(ACK), &ack.base, &pl, 8), E(BAD_PAYLOAD));
}

static void test_complete(void)
{
	Ptrack__V1__Complete c = PTRACK__V1__COMPLETE__INIT;
	Ptrack__V1__RegionChecksum cs[2], *csp[2] = { &cs[0], &cs[1] };
	struct pt_msg m;

	ptrack__v1__region_checksum__init(&cs[0]);
	ptrack__v1__region_checksum__init(&cs[1]);
	cs[0].region = 1;
	cs[0].crc32c = 0xdeadbeef;
	cs[1].region = 2;
	c.n_checksums = 2;
	c.checksums = csp;
	c.total_rounds = 6;
	CU_ASSERT_EQUAL_FATAL(rt(T(COMPLETE), &c.base, NULL, 0, &m), 0);
	CU_ASSERT_EQUAL(m.u.complete->checksums[0]->crc32c, 0xdeadbeef);
	pt_msg_release(&m);
	cs[1].region = 1;
	CU_ASSERT_EQUAL(rt_code(T(COMPLETE), &c.base, NULL, 0), E(BAD_MESSAGE));
	cs[1].region = 8;
	CU_ASSERT_EQUAL(rt_code(T(COMPLETE), &c.base, NULL, 0), E(BAD_REGION));
}

static void test_session_order_and_garbage(void)
{
	Ptrack__V1__IterationDone it = PTRACK__V1__ITERATION_DONE__INIT;
	static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0x01, 0x02 };
	struct iovec iov = { NULL, 0 };
	struct pt_frame f;
	struct pt_msg m;
	struct pt_error e;
	size_t len;
	uint8_t *b = cu_frame(T(ITERATION_DONE), 1, &it.base, &iov, 0, &len);

	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT_EQUAL(pt_frame_decode(b, len, PT_FRAME_MAX_DEFAULT, &f, &e),
			0);
	CU_ASSERT_EQUAL(pt_msg_decode(&f, NULL, &m, &e), -EPROTO);
	CU_ASSERT_EQUAL(e.code, E(SESSION));
	free(b);

	/* a protobuf body that does not unpack */
	f.hdr.type = T(HELLO);
	f.hdr.msg_len = sizeof(junk);
	f.hdr.payload_len = 0;
	f.msg = junk;
	CU_ASSERT_EQUAL(pt_msg_decode(&f, NULL, &m, &e), -EBADMSG);
	CU_ASSERT_EQUAL(e.code, E(BAD_MESSAGE));
}

static int setup(void)
{
	struct pt_error e;

	memset(&layout, 0, sizeof(layout));
	return pt_layout_add(&layout, 1, 0, 1 << 30, 4096, &e) ||
	       pt_layout_add(&layout, 2, 4ull << 30, 1 << 30, 2u << 20, &e);
}

static int teardown(void)
{
	free(frame_buf);
	frame_buf = NULL;
	return 0;
}

PT_SUITE_FULL(codec_msg, setup, teardown, PT_TEST(test_hello),
	      PT_TEST(test_dirty_bitmap_raw_and_rle), PT_TEST(test_dirty_ring),
	      PT_TEST(test_page_data), PT_TEST(test_small_messages),
	      PT_TEST(test_complete), PT_TEST(test_session_order_and_garbage))
