/*
 * The two CRC-32C implementations behind sl_crc32c, exposed so the tests
 * can check one against the other. Both take and return the same chained
 * value as sl_crc32c (0 to start, the previous result to continue).
 */
#ifndef SLUICE_BASE_CRC32C_INTERNAL_H
#define SLUICE_BASE_CRC32C_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Table-driven, slicing by 8 bytes; runs everywhere. */
uint32_t sl_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* 1 when this build and this CPU have the SSE4.2 crc32 instruction. */
int sl_crc32c_hw_available(void);

/* The SSE4.2 version; only call it when sl_crc32c_hw_available(). Builds
 * for other CPUs make it the portable version. */
uint32_t sl_crc32c_hw(uint32_t crc, const void *data, size_t len);

#endif
