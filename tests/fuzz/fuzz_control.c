// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the control-socket decoder (daemon/service/ctlmsg.c).
 * Each input is decoded as it is, then with its CRC recomputed so the
 * fuzzer reaches protobuf unpacking and field validation behind the CRC.
 * An accepted request must re-encode into a frame that decodes again.
 *
 * With PTRACK_FUZZ_SEEDS=DIR, initialisation writes a valid frame of every
 * request kind into DIR, the seed corpus.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/crc32c.h"
#include "service/ctlmsg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frame[PT_CTL_FRAME_MAX + 64];

static size_t encode(PtCtlRequest *q, uint8_t *out)
{
	struct pt_txframe f;
	struct pt_error e;
	size_t off = 0;

	if (pt_txframe_init(&f))
		abort();
	if (pt_frame_build(&f, PT_CTL_FRAME_TYPE, 0, 1, &q->base, NULL, 0,
			   PT_CTL_FRAME_MAX, &e)) {
		pt_txframe_release(&f);
		return 0;
	}
	for (int i = 0; i < f.iovcnt; i++) {
		memcpy(out + off, f.iov[i].iov_base, f.iov[i].iov_len);
		off += f.iov[i].iov_len;
	}
	pt_txframe_release(&f);
	return off;
}

static void decode_one(const uint8_t *buf, size_t len)
{
	PtCtlRequest *q = NULL, *again = NULL;
	struct pt_error e = { 0 };
	size_t n;

	if (pt_ctl_parse_request(buf, len, &q, &e)) {
		if (!e.code || !e.text[0])
			abort(); /* every rejection says why */
		return;
	}
	n = encode(q, frame);
	if (!n || pt_ctl_parse_request(frame, n, &again, &e))
		abort(); /* an accepted request must survive a round trip */
	if (again->body_case != q->body_case || again->id != q->id)
		abort();
	pt_ctl_request_free(again);
	pt_ctl_request_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	uint32_t crc;

	decode_one(data, size);
	if (size < PT_FRAME_HDR_LEN || size > PT_CTL_FRAME_MAX)
		return 0;
	/* 8-aligned, as the stream reader's buffer is. */
	copy = aligned_alloc(8, (size + 7) & ~(size_t)7);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	crc = htole32(pt_crc32c(0, copy + 8, size - 8));
	memcpy(copy + 4, &crc, 4);
	decode_one(copy, size);
	free(copy);
	return 0;
}

static void seed(const char *dir, const char *name, PtCtlRequest *q)
{
	char path[4096];
	size_t n = encode(q, frame);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(frame, 1, n, f);
	fclose(f);
}

static void write_seeds(const char *dir)
{
	PtCtlRequest q = PTRACK__CONTROL__V1__REQUEST__INIT;
	Ptrack__Control__V1__StatusRequest st =
		PTRACK__CONTROL__V1__STATUS_REQUEST__INIT;
	Ptrack__Control__V1__TrackRequest tr =
		PTRACK__CONTROL__V1__TRACK_REQUEST__INIT;
	Ptrack__Control__V1__DirtyRateRequest dr =
		PTRACK__CONTROL__V1__DIRTY_RATE_REQUEST__INIT;
	Ptrack__Control__V1__MigrateRequest mr =
		PTRACK__CONTROL__V1__MIGRATE_REQUEST__INIT;
	Ptrack__Control__V1__PeerListenRequest pr =
		PTRACK__CONTROL__V1__PEER_LISTEN_REQUEST__INIT;

	q.id = 1;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_STATUS;
	q.status = &st;
	seed(dir, "status", &q);
	tr.vm = "vm1";
	tr.start = 1;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_TRACK;
	q.track = &tr;
	seed(dir, "track", &q);
	dr.vm = "vm1";
	dr.seconds = 3;
	dr.mode = PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_RING;
	dr.vcpu = 1;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_DIRTYRATE;
	q.dirtyrate = &dr;
	seed(dir, "dirtyrate", &q);
	mr.vm = "vm1";
	mr.to = "127.0.0.1:4444";
	mr.downtime_ms = 300;
	mr.bandwidth = 1000000000;
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE;
	q.migrate = &mr;
	seed(dir, "migrate", &q);
	pr.listen = "[::]:4444";
	pr.mem_path = "/var/lib/ptrack/mem";
	q.body_case = PTRACK__CONTROL__V1__REQUEST__BODY_PEER_LISTEN;
	q.peer_listen = &pr;
	seed(dir, "peer", &q);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("PTRACK_FUZZ_SEEDS");

	(void)argc;
	(void)argv;
	if (seeds)
		write_seeds(seeds);
	return 0;
}
