// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for a whole peer session: the real pt_peer_run() state
 * machine (not only the decoders) serving one connection over a unix
 * socket. The harness opens the session with a valid Hello (seq 1, two
 * small regions), then turns the input into stream frames with correct
 * CRCs, so the fuzzer reaches what lies behind them: dirty sets, pages,
 * IterationDone, Complete and its checksums, Resume, duplicates and
 * misordered frames. The connection's side of the privilege separation
 * runs in a thread here (pt_peer_opts.privsep_thread), talking to the
 * listener over the same socketpair messages as a forked child does.
 * Each input chunk is
 *   u8 type, u8 flags (bit 0: ACK_REQ, bit 1: take seq from the input),
 *   [u64 seq], u16 msg_len, msg bytes, u8 payload_pages
 * and the payload is payload_pages * 4 KiB of a pattern.
 *
 * With PTRACK_FUZZ_SEEDS=DIR, initialisation writes seeds that make a
 * whole session: pages for every page, IterationDone, Complete with the
 * right and with wrong checksums.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"

#define NPAGES 16
#define PAGE 4096u
#define MAXOUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct out {
	uint8_t *b;
	size_t n;
};

static int put(struct out *o, const void *p, size_t n)
{
	if (o->n + n > MAXOUT)
		return -1;
	memcpy(o->b + o->n, p, n);
	o->n += n;
	return 0;
}

/* A raw frame around @msg (already packed) and @pages of pattern. */
static int put_frame(struct out *o, uint16_t type, uint16_t flags, uint64_t seq,
		     const uint8_t *msg, uint32_t mlen, uint32_t pages)
{
	size_t start = o->n, i, off;
	uint8_t h[PT_FRAME_HDR_LEN] = { 0 };
	uint32_t v32, plen = pages * PAGE;
	uint16_t v16;
	uint64_t v64;
	static const uint8_t zero[8];

	v32 = htole32(PT_FRAME_MAGIC);
	memcpy(h, &v32, 4);
	v16 = htole16(PT_PROTO_VERSION);
	memcpy(h + 8, &v16, 2);
	v16 = htole16(type);
	memcpy(h + 10, &v16, 2);
	v16 = htole16(flags & PT_FRAME_F_ALL);
	memcpy(h + 12, &v16, 2);
	v16 = htole16(PT_FRAME_HDR_LEN);
	memcpy(h + 14, &v16, 2);
	v32 = htole32(mlen);
	memcpy(h + 16, &v32, 4);
	v32 = htole32(plen);
	memcpy(h + 20, &v32, 4);
	v64 = htole64(seq);
	memcpy(h + 24, &v64, 8);
	if (put(o, h, sizeof(h)) || put(o, msg, mlen))
		return -1;
	off = pt_align8(PT_FRAME_HDR_LEN + mlen) - PT_FRAME_HDR_LEN - mlen;
	if (put(o, zero, off) || o->n + plen > MAXOUT)
		return -1;
	for (i = 0; i < plen; i++)
		o->b[o->n + i] = (uint8_t)(i * 31 + seq);
	o->n += plen;
	v32 = htole32(pt_crc32c(0, o->b + start + 8, o->n - start - 8));
	memcpy(o->b + start + 4, &v32, 4);
	return 0;
}

static int put_msg(struct out *o, uint16_t type, uint16_t flags, uint64_t seq,
		   const ProtobufCMessage *m, uint32_t pages)
{
	uint8_t buf[PT_MSG_MAX];
	size_t n = m ? protobuf_c_message_pack(m, buf) : 0;

	return put_frame(o, type, flags, seq, buf, (uint32_t)n, pages);
}

static int put_hello(struct out *o)
{
	Ptrack__V1__Hello h = PTRACK__V1__HELLO__INIT;
	Ptrack__V1__Region r[2] = { PTRACK__V1__REGION__INIT,
				    PTRACK__V1__REGION__INIT };
	Ptrack__V1__Region *rp[2] = { &r[0], &r[1] };
	static uint8_t uuid[16] = { 1 };

	r[0].id = 1;
	r[0].gpa_base = 0;
	r[0].size = NPAGES * PAGE;
	r[0].page_size = PAGE;
	r[1].id = 2;
	r[1].gpa_base = 1ull << 32;
	r[1].size = NPAGES * PAGE;
	r[1].page_size = PAGE;
	h.version = PT_PROTO_VERSION;
	h.role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h.vm_name = "fuzz";
	h.vm_uuid.data = uuid;
	h.vm_uuid.len = 16;
	h.n_regions = 2;
	h.regions = rp;
	h.vcpus = 1;
	h.dirty_source = PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	h.features = PTRACK__V1__FEATURE__FEATURE_ZERO_PAGES |
		     PTRACK__V1__FEATURE__FEATURE_RESUME;
	h.session_id = 0x5eed;
	return put_msg(o, PTRACK__V1__MSG_TYPE__MSG_TYPE_HELLO, 0, 1, &h.base,
		       0);
}

/* The input's chunks as frames after the Hello. */
static void build_stream(struct out *o, const uint8_t *d, size_t n)
{
	uint64_t seq = 2, s;
	uint16_t mlen;
	uint8_t type, flags, pages;

	if (put_hello(o))
		return;
	while (n >= 5) {
		type = d[0];
		flags = d[1];
		d += 2;
		n -= 2;
		s = seq;
		if (flags & 2) {
			if (n < 8)
				return;
			memcpy(&s, d, 8);
			s = le64toh(s);
			d += 8;
			n -= 8;
		}
		if (n < 3)
			return;
		memcpy(&mlen, d, 2);
		mlen = le16toh(mlen);
		d += 2;
		n -= 2;
		if (mlen > n - 1)
			return;
		pages = d[mlen] % (2 * NPAGES + 1);
		if (put_frame(o, type, flags & 1, s, d, mlen, pages))
			return;
		d += mlen + 1;
		n -= mlen + 1u;
		if (s == seq)
			seq++;
	}
}

struct run {
	struct pt_peer_opts o;
	struct pt_peer_result res;
	int rc;
};

static void *peer_main(void *arg)
{
	struct run *r = arg;

	r->rc = pt_peer_run(&r->o, &r->res);
	return NULL;
}

/* Writes the stream while draining the peer's answers, then reads to EOF. */
static void talk(int fd, const struct out *o)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	uint8_t sink[4096];
	size_t off = 0;
	ssize_t n;

	while (poll(&p, 1, 2000) > 0) {
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, sink, sizeof(sink));
			if (n <= 0)
				return;
		}
		if (off < o->n && (p.revents & POLLOUT)) {
			n = send(fd, o->b + off, o->n - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (errno != EAGAIN)
				return;
		}
		if (off == o->n && (p.events & POLLOUT)) {
			shutdown(fd, SHUT_WR);
			p.events = POLLIN;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct run r = { .o = { .io_timeout_ms = 1000,
				.idle_ms = 1,
				.max_mem = 1 << 20,
				.quiet = 1,
				/* The child's code in a thread: the fuzzer
				 * sees its coverage. */
				.privsep_thread = 1 } };
	struct out o = { .b = malloc(MAXOUT) };
	pthread_t th;
	int lfd, fd;

	if (!o.b)
		return 0;
	build_stream(&o, data, size);
	/* Abstract name: nothing on disk, unique per process. */
	snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "ptrack-fuzz-%d",
		 (int)getpid());
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 1))
		abort();
	r.o.lfd = lfd;
	if (pthread_create(&th, NULL, peer_main, &r))
		abort();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		abort();
	talk(fd, &o);
	close(fd);
	pthread_join(th, NULL);
	close(lfd);
	if (getenv("PTRACK_FUZZ_DEBUG"))
		fprintf(stderr, "peer: rc %d, %llu frames, %llu pages: %s\n",
			r.rc, (unsigned long long)r.res.frames,
			(unsigned long long)r.res.pages, r.res.err);
	/* Success needs every page right: Complete's checksums matched. */
	if (r.rc == 0 && !r.res.frames)
		abort();
	if (r.rc && !r.res.err[0])
		abort(); /* every failure says why */
	free(o.b);
	return 0;
}

/* ---- seeds ------------------------------------------------------------ */

static void chunk(struct out *o, uint16_t type, uint8_t flags,
		  const ProtobufCMessage *m, uint8_t pages)
{
	uint8_t buf[PT_MSG_MAX];
	uint16_t n = (uint16_t)(m ? protobuf_c_message_pack(m, buf) : 0);
	uint16_t le = htole16(n);
	uint8_t hdr[2] = { (uint8_t)type, flags };

	put(o, hdr, 2);
	put(o, &le, 2);
	put(o, buf, n);
	put(o, &pages, 1);
}

static void write_seed(const char *dir, const char *name, const struct out *o)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return;
	if (fwrite(o->b, 1, o->n, f) != o->n)
		fprintf(stderr, "short seed %s\n", path);
	fclose(f);
}

/* The memory the pattern writes (put_frame), for Complete's checksums. */
static uint32_t region_crc(uint64_t seq)
{
	static uint8_t mem[NPAGES * PAGE];
	size_t i;

	for (i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i * 31 + seq);
	return pt_crc32c(0, mem, sizeof(mem));
}

static void seeds(const char *dir)
{
	Ptrack__V1__PageData pd = PTRACK__V1__PAGE_DATA__INIT;
	Ptrack__V1__IterationDone it = PTRACK__V1__ITERATION_DONE__INIT;
	Ptrack__V1__Complete c = PTRACK__V1__COMPLETE__INIT;
	Ptrack__V1__RegionChecksum rc[2] = {
		PTRACK__V1__REGION_CHECKSUM__INIT,
		PTRACK__V1__REGION_CHECKSUM__INIT
	};
	Ptrack__V1__RegionChecksum *rcp[2] = { &rc[0], &rc[1] };
	struct out o = { .b = malloc(MAXOUT) };
	int wrong;

	if (!o.b)
		return;
	for (wrong = 0; wrong < 2; wrong++) {
		o.n = 0;
		pd.region = 1;
		pd.first_page = 0;
		pd.page_count = NPAGES;
		chunk(&o, PTRACK__V1__MSG_TYPE__MSG_TYPE_PAGE_DATA, 0, &pd.base,
		      NPAGES); /* seq 2 */
		pd.region = 2;
		chunk(&o, PTRACK__V1__MSG_TYPE__MSG_TYPE_PAGE_DATA, 1, &pd.base,
		      NPAGES); /* seq 3 */
		it.round = 0;
		it.final = 1;
		chunk(&o, PTRACK__V1__MSG_TYPE__MSG_TYPE_ITERATION_DONE, 0,
		      &it.base, 0);
		rc[0].region = 1;
		rc[0].crc32c = region_crc(2) + (uint32_t)wrong;
		rc[1].region = 2;
		rc[1].crc32c = region_crc(3);
		c.n_checksums = 2;
		c.checksums = rcp;
		chunk(&o, PTRACK__V1__MSG_TYPE__MSG_TYPE_COMPLETE, 1, &c.base,
		      0);
		write_seed(dir, wrong ? "session-bad-crc" : "session", &o);
	}
	o.n = 0;
	chunk(&o, PTRACK__V1__MSG_TYPE__MSG_TYPE_ITERATION_DONE, 1, &it.base,
	      0);
	write_seed(dir, "ack-req", &o);
	free(o.b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("PTRACK_FUZZ_SEEDS");

	(void)argc;
	(void)argv;
	if (dir)
		seeds(dir);
	return 0;
}
