/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel APIs the PTA driver core (driver/pta/pta_core.c) uses,
 * for building it in userspace. Include this before the core's sources.
 *
 * Allocations can be made to fail: kc_fail_alloc_after = n makes the
 * (n+1)-th allocation from now on fail, and every one after it until the
 * test sets it back to -1.
 */
#ifndef PT_TESTS_KCOMPAT_H
#define PT_TESTS_KCOMPAT_H

#include <endian.h>
#include <errno.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define U32_MAX UINT32_MAX
#define GFP_KERNEL 0

#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define le64_to_cpu(x) le64toh(x)
#define cpu_to_le64(x) htole64(x)
#define dma_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define dma_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static int kc_fail_alloc_after = -1;

static inline void *kc_alloc(size_t n, size_t size)
{
	if (kc_fail_alloc_after == 0)
		return NULL;
	if (kc_fail_alloc_after > 0)
		kc_fail_alloc_after--;
	return calloc(n, size);
}

#define kzalloc(size, gfp) kc_alloc(1, (size))
#define kcalloc(n, size, gfp) kc_alloc((n), (size))
#define kvcalloc(n, size, gfp) kc_alloc((n), (size))
#define kfree(p) free(p)
#define kvfree(p) free(p)

#endif /* PT_TESTS_KCOMPAT_H */
