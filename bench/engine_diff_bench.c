/*
 * The helper of bench/engine_diff_bench.sh: fills an engine's store L3
 * through the tier the engine itself writes with (src/engine/tier.h), in
 * batches of 10,000 rows, so a million keys take seconds instead of a
 * million HTTP requests; the rows are exactly those the engine's drain
 * would write (9-byte header, version, value).
 *
 *   engine_diff_bench fill DIR NS N         keys k/00000000.. with 100-byte
 *                                           values, versions 1..N
 *   engine_diff_bench diverge DIR NS N D    D keys spread over the N, each
 *                                           given a new value at version N+1+i
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tier.h"

#define BATCH     10000
#define VALUE_LEN 100

static int write_rows(sl_tier *t, size_t n, size_t first, size_t step, uint64_t version0, char fill)
{
	static char keys[BATCH][16];
	static char value[VALUE_LEN];
	static sl_tier_row rows[BATCH];
	for (size_t done = 0; done < n;) {
		size_t m = n - done < BATCH ? n - done : BATCH;
		for (size_t i = 0; i < m; i++) {
			size_t k = first + (done + i) * step;
			snprintf(keys[i], sizeof(keys[i]), "k/%08zu", k);
			memset(&rows[i], 0, sizeof(rows[i]));
			rows[i].key = keys[i];
			rows[i].key_len = strlen(keys[i]);
			rows[i].value = (const uint8_t *)value;
			rows[i].value_len = VALUE_LEN;
			rows[i].version = version0 + done + i;
			rows[i].fresh = fill == 'a';
		}
		memset(value, fill, sizeof(value));
		int rc = t->ops->write(t->impl, rows, m);
		if (rc != SL_OK) {
			fprintf(stderr, "engine_diff_bench: %s\n", sl_error_last()->message);
			return 1;
		}
		done += m;
	}
	return 0;
}

int main(int argc, char **argv)
{
	sl_tier t;
	int rc;
	if (argc < 5 || (strcmp(argv[1], "fill") != 0 && strcmp(argv[1], "diverge") != 0) ||
	    (strcmp(argv[1], "diverge") == 0 && argc < 6)) {
		fprintf(stderr, "usage: engine_diff_bench fill DIR NS N | diverge DIR NS N D\n");
		return 2;
	}
	size_t n = strtoull(argv[4], NULL, 10);
	if (sl_tier_store_open(&t, argv[2], argv[3], 60000) != SL_OK) {
		fprintf(stderr, "engine_diff_bench: %s\n", sl_error_last()->message);
		return 1;
	}
	if (strcmp(argv[1], "fill") == 0) {
		rc = write_rows(&t, n, 0, 1, 1, 'a');
	} else {
		size_t d = strtoull(argv[5], NULL, 10);
		rc = write_rows(&t, d, n / (2 * d), n / d, n + 1, 'b');
	}
	t.ops->close(t.impl);
	return rc;
}
