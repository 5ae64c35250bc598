/*
 * CRC-32C (polynomial 0x1EDC6F41, bit-reflected 0x82F63B78), the checksum
 * of the engine's WAL records and of cuckoo filter snapshots.
 *
 * The chained value is the finished CRC: the running register is its
 * complement, so sl_crc32c(0, ...) starts from the usual all-ones register
 * and each call ends with the final complement. Feeding a result back in
 * therefore continues the same CRC, and a message split anywhere gives the
 * same value as the whole message.
 *
 * Two implementations compute the same function:
 *   - portable: slicing by 8, eight 256-entry tables (8 KiB) built once on
 *     first use; table k holds the CRC of a byte followed by k zero bytes,
 *     so eight bytes are folded with eight lookups per step. Words are read
 *     byte by byte, so it is correct on any byte order and alignment.
 *   - SSE4.2: the crc32 instruction on 8-byte words (same polynomial and
 *     bit order), only on x86_64, compiled for that one function through a
 *     target attribute so the rest of the library keeps the baseline ISA.
 * The choice is made once, at first use, from the CPU's feature bits.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"
#include "base/crc32c_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#else
#define CRC32C_HAVE_SSE42 0
#endif

#define CRC32C_POLY_REFLECTED UINT32_C(0x82F63B78)

typedef uint32_t (*crc_fn)(uint32_t crc, const void *data, size_t len);

static uint32_t table[8][256];
static crc_fn chosen = sl_crc32c_portable;
static int hw_usable;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t crc = n;
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ ((crc & 1) ? CRC32C_POLY_REFLECTED : 0);
		table[0][n] = crc;
	}
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t crc = table[0][n];
		for (int k = 1; k < 8; k++) {
			crc = (crc >> 8) ^ table[0][crc & 0xff];
			table[k][n] = crc;
		}
	}
}

static void init(void)
{
	build_tables();
#if CRC32C_HAVE_SSE42
	__builtin_cpu_init();
	hw_usable = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (hw_usable)
		chosen = sl_crc32c_hw;
#endif
}

static void ensure_init(void)
{
	if (pthread_once(&init_once, init) != 0) {
		fprintf(stderr, "sluice: fatal: pthread_once for the CRC-32C tables failed\n");
		abort();
	}
}

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t sl_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t reg = ~crc;

	ensure_init();
	while (len >= 8) {
		uint32_t lo = load_le32(p) ^ reg;
		uint32_t hi = load_le32(p + 4);
		reg = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		      table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^ table[3][hi & 0xff] ^
		      table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len > 0) {
		reg = (reg >> 8) ^ table[0][(reg ^ *p) & 0xff];
		p++;
		len--;
	}
	return ~reg;
}

#if CRC32C_HAVE_SSE42

__attribute__((target("sse4.2"))) uint32_t sl_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t reg = ~crc;
	uint64_t reg64;

	/* Align to 8 so the word loads do not straddle cache lines. */
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		reg = _mm_crc32_u8(reg, *p);
		p++;
		len--;
	}
	reg64 = reg;
	while (len >= 8) {
		uint64_t word;
		memcpy(&word, p, sizeof(word)); /* x86 is little-endian */
		reg64 = _mm_crc32_u64(reg64, word);
		p += 8;
		len -= 8;
	}
	reg = (uint32_t)reg64;
	while (len > 0) {
		reg = _mm_crc32_u8(reg, *p);
		p++;
		len--;
	}
	return ~reg;
}

#else

uint32_t sl_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	return sl_crc32c_portable(crc, data, len);
}

#endif

int sl_crc32c_hw_available(void)
{
	ensure_init();
	return hw_usable;
}

uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len)
{
	ensure_init();
	return chosen(crc, data, len);
}
