/*
 * dag_bench: what bench/dag_bench.sh measures through the library, next
 * to the stores `tests/tools/dag_fill` makes and `sluice serve` serves.
 *
 *   dag_bench verify-rate SECONDS
 *       The physical limit of receiving entries: Ed25519 verifications of
 *       one entry-sized message (250 bytes) a second on one thread, run
 *       for SECONDS. Prints `us_per_verify=F verifies_per_s=N`.
 *
 *   dag_bench sync DIR NS
 *       One sync of dag namespace NS of the store in DIR with its first
 *       peer (sl_dag_sync_peer, signed by DIR's node key), timed. Prints
 *       one JSON object: {"equal", "bootstrapped", "pulled", "pushed",
 *       "refused", "round_trips", "bytes_sent", "bytes_received", "ms"}.
 *       Exits 1 unless the sync ran and ended equal.
 *
 *   dag_bench entry-bytes DIR NS MIN_HEIGHT
 *       The bytes of the entries of NS above MIN_HEIGHT and of the values
 *       they set: what any protocol must move to bring a peer that lacks
 *       just those entries level. Prints `entries=N bytes=N`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/base.h"
#include "sluice/dag.h"
#include "sluice/dag_sync.h"
#include "sluice/store.h"
#include "sluice/sync.h"

#define BENCH_NAME "dag_bench"
#include "bench_util.h"

#define MESSAGE_LEN 250

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (*text == '\0' || *end != '\0' || *text == '-')
		die("%s: not a number: %s", what, text);
	return (uint64_t)v;
}

static sl_store *open_store(const char *dir)
{
	sl_store_options o;
	sl_store *s;
	sl_store_options_init(&o);
	check(sl_store_open(&s, dir, &o), "open the store");
	return s;
}

static int verify_rate(uint64_t seconds)
{
	uint8_t pk[SL_ED25519_PK_LEN], sk[SL_ED25519_SK_LEN], sig[SL_ED25519_SIG_LEN];
	uint8_t msg[MESSAGE_LEN];
	uint64_t n = 0;
	double start, spent;

	memset(msg, 0x5a, sizeof(msg));
	check(sl_ed25519_keypair(pk, sk), "key pair");
	check(sl_ed25519_sign(sig, msg, sizeof(msg), sk), "sign");
	start = now_s();
	do {
		for (int i = 0; i < 1000; i++, n++)
			check(sl_ed25519_verify(sig, msg, sizeof(msg), pk), "verify");
		spent = now_s() - start;
	} while (spent < (double)seconds);
	printf("us_per_verify=%.2f verifies_per_s=%.0f\n", spent * 1e6 / (double)n,
	       (double)n / spent);
	return 0;
}

static int sync_once(const char *dir, const char *ns)
{
	sl_store *s = open_store(dir);
	sl_dag_sync_report r;
	sl_dag_peer *peers = NULL;
	sl_node_key key;
	size_t n = 0;
	double start;
	int rc;

	check(sl_node_key_load(&key, dir, 0), "node key");
	check(sl_dag_peer_list(s, ns, &peers, &n), "peers");
	if (n == 0)
		die("namespace '%s' in %s has no peer", ns, dir);
	start = now_s();
	rc = sl_dag_sync_peer(s, &peers[0], &key, &r);
	printf("{\"equal\": %d, \"bootstrapped\": %d, \"pulled\": %llu, \"pushed\": %llu, "
	       "\"refused\": %llu, \"round_trips\": %llu, \"bytes_sent\": %llu, "
	       "\"bytes_received\": %llu, \"ms\": %.0f}\n",
	       r.equal, r.bootstrapped, (unsigned long long)r.pulled, (unsigned long long)r.pushed,
	       (unsigned long long)r.refused, (unsigned long long)r.round_trips,
	       (unsigned long long)r.bytes_sent, (unsigned long long)r.bytes_received,
	       (now_s() - start) * 1000);
	if (rc != SL_OK || !r.equal)
		fprintf(stderr, "dag_bench: the sync did not end equal: %s\n",
		        r.error[0] ? r.error : sl_error_last()->message);
	sl_free(peers);
	sl_store_free(s);
	memset(&key, 0, sizeof(key));
	return rc == SL_OK && r.equal ? 0 : 1;
}

typedef struct above {
	uint64_t min_height, entries, bytes;
} above;

static int count_above(void *ctx, const sl_dag_entry *e, const uint8_t *enc, size_t len)
{
	above *a = ctx;
	(void)enc;
	if (e->height <= a->min_height)
		return 0;
	a->entries++;
	a->bytes += len;
	for (size_t i = 0; i < e->n_writes; i++)
		if (e->writes[i].kind == SL_DAG_SET)
			a->bytes += e->writes[i].value_len;
	return 0;
}

static int entry_bytes(const char *dir, const char *ns, uint64_t min_height)
{
	sl_store *s = open_store(dir);
	above a = {min_height, 0, 0};
	check(sl_dag_log(s, ns, count_above, &a), "read the log");
	printf("entries=%llu bytes=%llu\n", (unsigned long long)a.entries,
	       (unsigned long long)a.bytes);
	sl_store_free(s);
	return 0;
}

int main(int argc, char **argv)
{
	check(sl_base_init(), "init");
	if (argc == 3 && strcmp(argv[1], "verify-rate") == 0)
		return verify_rate(parse_u64(argv[2], "SECONDS"));
	if (argc == 4 && strcmp(argv[1], "sync") == 0)
		return sync_once(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "entry-bytes") == 0)
		return entry_bytes(argv[2], argv[3], parse_u64(argv[4], "MIN_HEIGHT"));
	fprintf(stderr, "usage: dag_bench verify-rate SECONDS | sync DIR NS | "
	                "entry-bytes DIR NS MIN_HEIGHT\n");
	return 2;
}
