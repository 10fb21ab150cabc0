// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the frame and message decoders. Each input is
 * decoded as it is (so CRC and header checks are exercised), then again with
 * its CRC recomputed so the fuzzer reaches the protobuf and payload decoders
 * behind the CRC. Decoded messages are also re-encoded and must decode to
 * the same bytes: a round trip that is not stable is a bug.
 *
 * With PTRACK_FUZZ_SEEDS=DIR, initialisation writes a valid frame of every
 * message type into DIR, the seed corpus.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"

static struct pt_layout layout;

static void decode_one(const uint8_t *buf, size_t len)
{
	struct pt_frame f;
	struct pt_msg m;
	struct pt_error e;

	if (pt_frame_decode(buf, len, PT_FRAME_MAX_DEFAULT, &f, &e)) {
		if (!e.code || !e.text[0])
			abort(); /* every rejection says why */
		return;
	}
	if (pt_msg_decode(&f, &layout, &m, &e)) {
		if (!e.code || !e.text[0])
			abort();
		return;
	}
	pt_msg_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 8-aligned copy, as the stream reader provides */
	uint8_t *buf = aligned_alloc(8, pt_align8(size) + 8);
	uint32_t crc;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	decode_one(buf, size);
	if (size >= PT_FRAME_HDR_LEN) {
		crc = htole32(pt_crc32c(0, buf + 8, size - 8));
		memcpy(buf + 4, &crc, 4);
		decode_one(buf, size);
	}
	free(buf);
	return 0;
}

static void write_seed(const char *dir, const char *name, uint16_t type,
		       const ProtobufCMessage *m, const void *pl, size_t plen)
{
	struct iovec iov = { (void *)pl, plen };
	struct pt_txframe f;
	char path[512];
	FILE *out;
	int i;

	if (pt_txframe_init(&f))
		return;
	if (pt_frame_build(&f, type, 0, 1, m, &iov, plen ? 1 : 0,
			   PT_FRAME_MAX_DEFAULT, NULL))
		goto release;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = fopen(path, "wb");
	if (!out)
		goto release;
	for (i = 0; i < f.iovcnt; i++)
		fwrite(f.iov[i].iov_base, 1, f.iov[i].iov_len, out);
	fclose(out);
release:
	pt_txframe_release(&f);
}

static void write_seeds(const char *dir)
{
	static uint8_t uuid[16], page[4096];
	static uint64_t words[4] = { 0xf0f0, 1, 0, 1ull << 63 };
	static const uint8_t rle[8] = { 0x03, 0x02, 0x08 };
	static const uint8_t ring[8] = { 0x05, 0x00, 0x80, 0x01 };
	Ptrack__V1__Hello h = PTRACK__V1__HELLO__INIT;
	Ptrack__V1__Region r = PTRACK__V1__REGION__INIT, *rp = &r;
	Ptrack__V1__DirtyBitmap b = PTRACK__V1__DIRTY_BITMAP__INIT;
	Ptrack__V1__DirtyRing rg = PTRACK__V1__DIRTY_RING__INIT;
	Ptrack__V1__PageData p = PTRACK__V1__PAGE_DATA__INIT;
	Ptrack__V1__Complete c = PTRACK__V1__COMPLETE__INIT;
	Ptrack__V1__RegionChecksum cs = PTRACK__V1__REGION_CHECKSUM__INIT;
	Ptrack__V1__RegionChecksum *csp = &cs;
	Ptrack__V1__Resume res = PTRACK__V1__RESUME__INIT;
	Ptrack__V1__Error err = PTRACK__V1__ERROR__INIT;
	uint64_t list[2] = { 3, 8 }, zm = 2;

	r.id = 1;
	r.size = 1 << 30;
	r.page_size = 4096;
	h.version = 1;
	h.role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h.vm_name = "seed";
	h.vm_uuid = (ProtobufCBinaryData){ 16, uuid };
	h.n_regions = 1;
	h.regions = &rp;
	h.vcpus = 2;
	h.dirty_source = PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	write_seed(dir, "hello", 1, &h.base, NULL, 0);
	b.region = 1;
	b.page_count = 256;
	b.dirty_count = 10;
	write_seed(dir, "bitmap_raw", 2, &b.base, words, sizeof(words));
	b.encoding = PTRACK__V1__BITMAP_ENCODING__BITMAP_ENCODING_RLE;
	b.dirty_count = 4;
	write_seed(dir, "bitmap_rle", 2, &b.base, rle, sizeof(rle));
	rg.count = 3;
	write_seed(dir, "ring", 3, &rg.base, ring, sizeof(ring));
	p.region = 1;
	p.first_page = 7;
	p.page_count = 1;
	write_seed(dir, "pages_range", 4, &p.base, page, sizeof(page));
	p.first_page = p.page_count = 0;
	p.n_pages = 2;
	p.pages = list;
	p.n_zero_mask = 1;
	p.zero_mask = &zm;
	write_seed(dir, "pages_list", 4, &p.base, page, sizeof(page));
	cs.region = 1;
	c.n_checksums = 1;
	c.checksums = &csp;
	write_seed(dir, "complete", 8, &c.base, NULL, 0);
	res.session_id = 3;
	write_seed(dir, "resume", 7, &res.base, NULL, 0);
	err.code = 5;
	err.text = "x";
	write_seed(dir, "error", 9, &err.base, NULL, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("PTRACK_FUZZ_SEEDS");

	(void)argc;
	(void)argv;
	pt_layout_add(&layout, 1, 0, 1 << 30, 4096, NULL);
	pt_layout_add(&layout, 2, 4ull << 30, 64u << 20, 2u << 20, NULL);
	if (seeds)
		write_seeds(seeds);
	return 0;
}
