// SPDX-License-Identifier: MIT
/*
 * Codec benchmark: encode and decode throughput of dirty bitmaps and ring
 * batches, and wire bytes per dirty page, each next to a memcpy of the same
 * size measured in the same run. Figures are best of several repetitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/bitmap.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "codec/ring.h"

#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name
#define REPS 7

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static struct pt_layout layout;
static volatile uint64_t sink;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill(uint64_t *w, uint64_t n, unsigned int per_mille)
{
	uint64_t i;

	memset(w, 0, pt_bitmap_words(n) * 8);
	for (i = 0; i < n; i++)
		if (rnd() % 1000 < per_mille)
			w[i / 64] |= 1ull << (i % 64);
}

static double memcpy_secs(void *dst, const void *src, size_t len, int iters)
{
	double best = 1e9, t;
	int r, i;

	for (r = 0; r < REPS; r++) {
		t = now();
		for (i = 0; i < iters; i++) {
			memcpy(dst, src, len);
			sink += ((volatile uint8_t *)dst)[len / 2];
		}
		t = (now() - t) / iters;
		best = t < best ? t : best;
	}
	return best;
}

/* Encodes one DirtyBitmap frame: returns its length. */
static size_t bitmap_frame(struct pt_txframe *f, struct pt_bitmap_enc *enc,
			   const uint64_t *w, uint64_t n, int force_raw)
{
	Ptrack__V1__DirtyBitmap b = PTRACK__V1__DIRTY_BITMAP__INIT;
	struct iovec iov;

	pt_bitmap_encode(enc, w, n, force_raw);
	b.region = 1;
	b.page_count = n;
	b.encoding = enc->encoding;
	b.dirty_count = enc->dirty;
	iov = (struct iovec){ (void *)enc->data, enc->len };
	if (pt_frame_build(f, T(DIRTY_BITMAP), 0, 1, &b.base, &iov, 1,
			   PT_FRAME_MAX_DEFAULT, NULL))
		abort();
	return f->len;
}

static uint8_t *flatten(const struct pt_txframe *f)
{
	uint8_t *b = aligned_alloc(64, (f->len + 63) & ~(size_t)63);
	size_t off = 0;
	int i;

	for (i = 0; i < f->iovcnt; i++) {
		memcpy(b + off, f->iov[i].iov_base, f->iov[i].iov_len);
		off += f->iov[i].iov_len;
	}
	return b;
}

static double decode_secs(const uint8_t *buf, size_t len, int iters)
{
	double best = 1e9, t;
	struct pt_frame fr;
	struct pt_msg m;
	int r, i;

	for (r = 0; r < REPS; r++) {
		t = now();
		for (i = 0; i < iters; i++) {
			if (pt_frame_decode(buf, len, PT_FRAME_MAX_DEFAULT, &fr,
					    NULL) ||
			    pt_msg_decode(&fr, &layout, &m, NULL))
				abort();
			sink += m.words ? m.words[0] : m.gfns[0];
			pt_msg_release(&m);
		}
		t = (now() - t) / iters;
		best = t < best ? t : best;
	}
	return best;
}

static void bench_bitmap(const char *name, unsigned int per_mille,
			 int force_raw)
{
	const uint64_t n = 2u << 20; /* 8 GiB of 4 KiB pages, 256 KiB map */
	const size_t bytes = pt_bitmap_words(n) * 8;
	uint64_t *w = malloc(bytes), *dst = malloc(bytes);
	struct pt_bitmap_enc enc = { 0 };
	struct pt_txframe f;
	double best = 1e9, t, base, dec;
	uint8_t *flat;
	int r, i, iters = 200;

	fill(w, n, per_mille);
	pt_txframe_init(&f);
	for (r = 0; r < REPS; r++) {
		t = now();
		for (i = 0; i < iters; i++)
			sink += bitmap_frame(&f, &enc, w, n, force_raw);
		t = (now() - t) / iters;
		best = t < best ? t : best;
	}
	base = memcpy_secs(dst, w, bytes, iters);
	flat = flatten(&f);
	dec = decode_secs(flat, f.len, iters / 4);
	printf("bitmap %-22s %-3s encode %6.2f GB/s  decode %6.2f GB/s  memcpy %6.2f GB/s  encode/memcpy %.2f  decode/memcpy %.2f\n",
	       name, enc.encoding ? "RLE" : "RAW", bytes / best / 1e9,
	       bytes / dec / 1e9, bytes / base / 1e9, base / best, base / dec);
	free(flat);
	pt_txframe_release(&f);
	pt_bitmap_enc_release(&enc);
	free(w);
	free(dst);
}

static void bench_ring(int sorted)
{
	const size_t n = 4096;
	uint64_t g[4096], work[4096], dst[4096];
	uint8_t out[pt_ring_encode_bound(4096)];
	double best = 1e9, t, base;
	size_t count, len = 0, k;
	int r, i, iters = 2000;

	for (k = 0; k < n; k++)
		g[k] = (k * 61 + rnd() % 61) & ((1u << 18) - 1);
	for (k = 0; k < n; k++)
		g[k] = sorted ? k * 64 + rnd() % 64 : g[k];
	for (r = 0; r < REPS; r++) {
		double spent = 0;

		for (i = 0; i < iters; i++) {
			memcpy(work, g, sizeof(g));
			t = now();
			len = pt_ring_encode(work, n, out, &count);
			spent += now() - t;
		}
		best = spent / iters < best ? spent / iters : best;
	}
	base = memcpy_secs(dst, g, sizeof(g), iters);
	printf("ring   %-22s     encode %7.1f M GFN/s  memcpy %7.1f M GFN/s  encode/memcpy %.3f  (%.2f B/GFN)\n",
	       sorted ? "4096 GFNs, sorted" : "4096 GFNs, unsorted",
	       n / best / 1e6, n / base / 1e6, base / best, (double)len / n);
}

static void bench_ring_decode(void)
{
	Ptrack__V1__DirtyRing rg = PTRACK__V1__DIRTY_RING__INIT;
	uint64_t g[4096], dst[4096];
	uint8_t out[pt_ring_encode_bound(4096)];
	struct pt_txframe f;
	struct iovec iov;
	size_t count, k;
	double dec, base;
	uint8_t *flat;

	for (k = 0; k < 4096; k++)
		g[k] = k * 64 + rnd() % 64;
	iov.iov_base = out;
	iov.iov_len = pt_ring_encode(g, 4096, out, &count);
	rg.count = count;
	pt_txframe_init(&f);
	if (pt_frame_build(&f, T(DIRTY_RING), 0, 1, &rg.base, &iov, 1,
			   PT_FRAME_MAX_DEFAULT, NULL))
		abort();
	flat = flatten(&f);
	dec = decode_secs(flat, f.len, 2000);
	base = memcpy_secs(dst, g, sizeof(g), 2000);
	printf("ring   %-22s     decode %7.1f M GFN/s  memcpy %7.1f M GFN/s  decode/memcpy %.3f  (whole frame: CRC, protobuf, range checks)\n",
	       "4096 GFNs", 4096 / dec / 1e6, 4096 / base / 1e6, base / dec);
	free(flat);
	pt_txframe_release(&f);
}

static void wire_bytes(const char *name, uint64_t n, unsigned int per_mille,
		       int sequential)
{
	uint64_t *w = calloc(pt_bitmap_words(n), 8), i, dirty;
	uint64_t *g = malloc(n * 8);
	uint8_t *ring = malloc(pt_ring_encode_bound(n));
	struct pt_bitmap_enc enc = { 0 };
	struct pt_txframe f;
	size_t flen, rlen, count, ng = 0;

	if (sequential)
		for (i = 0; i < n * per_mille / 1000; i++)
			w[i / 64] |= 1ull << (i % 64);
	else
		fill(w, n, per_mille);
	for (i = 0; i < n; i++)
		if (w[i / 64] >> (i % 64) & 1)
			g[ng++] = i;
	pt_txframe_init(&f);
	flen = bitmap_frame(&f, &enc, w, n, 0);
	dirty = enc.dirty;
	rlen = pt_ring_encode(g, ng, ring, &count);
	printf("wire   %-32s bitmap(%s) %6.3f B/dirty page (%6.3f bit; %5.3f bit/page covered)  ring %5.3f B/dirty page  memcpy of raw map %6.3f B/dirty page\n",
	       name, enc.encoding ? "RLE" : "RAW", (double)flen / dirty,
	       8.0 * flen / dirty, 8.0 * flen / n, (double)rlen / dirty,
	       (double)pt_bitmap_words(n) * 8 / dirty);
	pt_txframe_release(&f);
	pt_bitmap_enc_release(&enc);
	free(w);
	free(g);
	free(ring);
}

int main(void)
{
	pt_layout_add(&layout, 1, 0, 64ull << 30, 4096, NULL);
	printf("ptrack codec benchmark (best of %d; GB = 1e9 bytes)\n", REPS);
	bench_bitmap("dense 50%, zero copy", 500, 1);
	bench_bitmap("dense 50%, auto", 500, 0);
	bench_bitmap("sparse 1%, auto", 10, 0);
	bench_bitmap("sparse 0.1%, auto", 1, 0);
	bench_bitmap("full 100%, auto", 1000, 0);
	bench_ring(1);
	bench_ring(0);
	bench_ring_decode();
	wire_bytes("sparse 0.1% random (1M pages)", 1 << 20, 1, 0);
	wire_bytes("sparse 1% random (1M pages)", 1 << 20, 10, 0);
	wire_bytes("dense 50% random (1M pages)", 1 << 20, 500, 0);
	wire_bytes("dense 90% random (1M pages)", 1 << 20, 900, 0);
	wire_bytes("dense 100% (1M pages)", 1 << 20, 1000, 1);
	wire_bytes("dense 50% sequential (1M pages)", 1 << 20, 500, 1);
	return sink == 42;
}
