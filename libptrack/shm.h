/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory ring between libptrack (producer, in the VMM) and
 * ptrackd (consumer). One memfd: a header, then a data area of records.
 *
 * head and tail are byte counts that only grow; the record at head % size
 * is the next to write. A record never wraps: when the space left before
 * the end is too short, the producer writes a PAD record over it, or,
 * when even a record header does not fit, both sides skip it silently.
 * The producer publishes head with a release store and then writes the
 * data eventfd; the consumer publishes tail the same way and writes the
 * space eventfd. The consumer treats everything it reads as untrusted.
 */
#ifndef PT_LIBPTRACK_SHM_H
#define PT_LIBPTRACK_SHM_H

#include <stdint.h>

#define PTL_SHM_MAGIC 0x4d485350u /* "PSHM" */
#define PTL_SHM_VERSION 1
#define PTL_SHM_HDR_SIZE 4096u
#define PTL_SHM_MIN (64u << 10)
#define PTL_SHM_MAX (1u << 30)

struct ptl_shm {
	uint32_t magic;
	uint32_t version;
	uint64_t size; /* whole memfd */
	uint64_t data_off; /* PTL_SHM_HDR_SIZE */
	uint64_t data_size; /* size - data_off, a multiple of 8 */
	uint8_t pad0[32];
	uint64_t head; /* offset 64: written by the producer */
	uint8_t pad1[56];
	uint64_t tail; /* offset 128: written by the consumer */
	uint8_t pad2[56];
};

enum ptl_rec_type {
	PTL_REC_PAD = 0,
	PTL_REC_BITMAP = 1, /* id: region, first: page, count: pages */
	PTL_REC_RING = 2, /* id: vCPU or -1, count: GFNs */
	PTL_REC_ALL = 3, /* id: region */
};

struct ptl_rec {
	uint32_t type;
	uint32_t len; /* whole record, a multiple of 8 */
	int32_t id;
	uint32_t reserved;
	uint64_t first;
	uint64_t count;
	/* u64 words or GFNs follow */
};

/* Largest record: a quarter of the ring, so the producer always progresses. */
static inline uint64_t ptl_rec_max(uint64_t data_size)
{
	return (data_size / 4) & ~(uint64_t)7;
}

#endif
