/* SPDX-License-Identifier: MIT */
/* CRC32C (Castagnoli), via ISA-L's SIMD implementation. */
#ifndef PT_CODEC_CRC32C_H
#define PT_CODEC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues a CRC32C: start with crc = 0, feed buffers in order. The result
 * is the standard CRC32C (check value 0xe3069283 for "123456789").
 */
uint32_t pt_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
