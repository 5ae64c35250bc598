/*
 * Fuzz target for the base codecs. The input is read as a little program:
 * each opcode byte picks a read (u8, be32, be64, varint, a length-prefixed
 * byte range, expect_end) that runs on the rest of the input through
 * sl_reader. After every read we check the invariants the rest of sluice
 * relies on:
 *   - a failed read returns SL_ECORRUPT and leaves the reader and the
 *     output untouched;
 *   - a successful read consumes exactly the bytes it decoded: a varint
 *     re-encodes to the very bytes it came from (so encodings are
 *     canonical), big-endian words re-encode to their bytes;
 *   - the offset never passes the end.
 * The whole input is also fed to sl_hex_decode and sl_digest_from_hex,
 * whose acceptance is compared with a plain character check, and whose
 * output must re-encode to the lower-cased input. Violations abort().
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "codec_fuzz: invariant failed: %s (line %d)\n", #cond,     \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void check_failure(int rc, const sl_reader *r, size_t off_before)
{
	CHECK(rc == SL_ECORRUPT);
	CHECK(sl_error_last()->code == SL_ECORRUPT);
	CHECK(r->off == off_before);
}

static void run_reader(const uint8_t *data, size_t size)
{
	sl_reader r;
	sl_reader_init(&r, data, size);
	while (sl_reader_remaining(&r) > 0) {
		uint8_t op = 0;
		CHECK(sl_reader_u8(&r, &op) == SL_OK);
		size_t before = r.off;
		int rc;
		switch (op % 6) {
		case 0: {
			uint64_t v = 0x5555;
			uint8_t enc[SL_VARINT_MAX];
			rc = sl_reader_varint(&r, &v);
			if (rc != SL_OK) {
				check_failure(rc, &r, before);
				CHECK(v == 0x5555);
				/* Skip the offending byte so the rest is explored. */
				uint8_t skip;
				sl_reader_u8(&r, &skip);
				break;
			}
			size_t n = sl_varint_put(enc, v);
			CHECK(n == r.off - before);
			CHECK(n == sl_varint_len(v));
			CHECK(memcmp(enc, data + before, n) == 0);
			break;
		}
		case 1: {
			uint64_t v = 7;
			uint8_t enc[8];
			rc = sl_reader_be64(&r, &v);
			if (rc != SL_OK) {
				check_failure(rc, &r, before);
				CHECK(size - before < 8 && v == 7);
				break;
			}
			sl_be64_put(enc, v);
			CHECK(r.off == before + 8 && memcmp(enc, data + before, 8) == 0);
			break;
		}
		case 2: {
			uint32_t v = 7;
			uint8_t enc[4];
			rc = sl_reader_be32(&r, &v);
			if (rc != SL_OK) {
				check_failure(rc, &r, before);
				CHECK(size - before < 4 && v == 7);
				break;
			}
			sl_be32_put(enc, v);
			CHECK(r.off == before + 4 && memcmp(enc, data + before, 4) == 0);
			break;
		}
		case 3: {
			/* A varint length followed by that many bytes. */
			uint64_t n = 0;
			const uint8_t *bytes = NULL;
			rc = sl_reader_varint(&r, &n);
			if (rc != SL_OK) {
				check_failure(rc, &r, before);
				return;
			}
			size_t mid = r.off;
			rc = sl_reader_bytes(&r, (size_t)n, &bytes);
			if (rc != SL_OK) {
				check_failure(rc, &r, mid);
				CHECK(bytes == NULL && n > size - mid);
				return;
			}
			CHECK(bytes == data + mid && r.off == mid + n);
			break;
		}
		case 4: {
			rc = sl_reader_expect_end(&r);
			CHECK((rc == SL_OK) == (before == size) && r.off == before);
			break;
		}
		default:
			break;
		}
		CHECK(r.off <= size);
	}
	CHECK(sl_reader_expect_end(&r) == SL_OK);
}

static void run_hex(const uint8_t *data, size_t size)
{
	const char *hex = (const char *)data;
	uint8_t out[256];
	size_t n = 12345;
	int all_hex = 1;

	for (size_t i = 0; i < size; i++)
		all_hex &= isxdigit(data[i]) != 0;
	int rc = sl_hex_decode(out, sizeof(out), &n, hex, size);
	if (size % 2 != 0 || !all_hex) {
		CHECK(rc == SL_EINVAL && n == 12345);
	} else if (size / 2 > sizeof(out)) {
		CHECK(rc == SL_ETOOLARGE && n == 12345);
	} else {
		char back[2 * sizeof(out) + 1];
		CHECK(rc == SL_OK && n == size / 2);
		sl_hex_encode(back, out, n);
		for (size_t i = 0; i < size; i++)
			CHECK(back[i] == tolower(data[i]));
	}

	/* sl_digest_from_hex on the input as a C string. */
	char *s = malloc(size + 1);
	CHECK(s != NULL);
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	sl_digest d;
	rc = sl_digest_from_hex(&d, s);
	size_t len = strlen(s);
	int want_ok = len == 2 * SL_DIGEST_LEN;
	for (size_t i = 0; i < len && want_ok; i++)
		want_ok = isxdigit((unsigned char)s[i]) != 0;
	CHECK((rc == SL_OK) == want_ok);
	if (rc == SL_OK) {
		sl_digest_hex h = sl_digest_to_hex(&d);
		for (size_t i = 0; i < len; i++)
			CHECK(h.s[i] == tolower((unsigned char)s[i]));
	} else {
		CHECK(rc == SL_EINVAL);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run_reader(data, size);
	run_hex(data, size);
	return 0;
}
