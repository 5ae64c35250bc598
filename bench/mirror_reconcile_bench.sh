#!/usr/bin/env bash
# Mirror reconciliation benchmark (part of `make bench-mirror`): what
# `sluice mirror reconcile` costs to find and repair D differences between
# a PostgreSQL table mirrored from a namespace of N keys and the namespace,
# in seconds and bytes exchanged, next to what listing the namespace's
# whole set would send, in the same run.
#
# A store (mutable namespace `m`, N keys `k/<i>` with 32-byte values) is
# built by bench/reconcile_bench.c and mirrored with `sluice mirror run`
# into a throwaway PostgreSQL (the mirror's rate is printed: every row
# written also has its item hashed by PostgreSQL, the generated column
# sluice_item). A first reconcile (no difference; it makes the items'
# index) is timed, then D differences are made behind the mirror's back,
# a quarter each: rows deleted, values changed, rows added, rows turned
# into tombstones. The timed reconcile must report exactly those and
# leave the table equal to the namespace (a second one finds nothing), or
# the benchmark fails.
#
#   bench/mirror_reconcile_bench.sh BUILD_DIR [N] [D]   (default 1,000,000 and 100)
#   BENCH_RECORD=0   print only; else appended to bench/RESULTS.md
set -euo pipefail

build=${1:?usage: bench/mirror_reconcile_bench.sh BUILD_DIR [N] [D]}
n=${2:-1000000}
d=${3:-100}
sluice=$build/sluice
helper=$build/reconcile_bench
src=$(cd "$(dirname "$0")/.." && pwd)
results=$src/bench/RESULTS.md
[ -x "$sluice" ] && [ -x "$helper" ] || { echo "mirror_reconcile_bench.sh: build first (make)" >&2; exit 1; }
BENCH=mirror_reconcile_bench.sh
source "$src/bench/bench_common.bash"
[ $((d % 4)) = 0 ] || fail "D must be a multiple of 4"

date_utc=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
echo "sluice mirror reconciliation benchmark, $date_utc, N = $n keys, D = $d"
echo "cpu: $cpu_model, $(nproc) cores; revision $revision"
start_pg || fail "PostgreSQL did not start"
sql() { psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }

t0=$(now_ms)
"$helper" build "$tmp/store" "$n" >/dev/null
echo "store: $n keys built in $(secs $(($(now_ms) - t0))) s"
printf '%s\n' "[source]" 'type = "node"' "dir = \"$tmp/store\"" 'namespace = "m"' \
	"[postgres]" "url = \"$SLUICE_PG_URL\"" 'table = "rec_items"' >"$tmp/mirror.toml"

t0=$(now_ms)
"$sluice" mirror run -c "$tmp/mirror.toml" >"$tmp/run.out"
mirror_ms=$(($(now_ms) - t0))
events=$(sed -n 's/^mirror run: \([0-9]*\) events.*/\1/p' "$tmp/run.out")
mirror_rate=$(awk -v e="$events" -v ms="$mirror_ms" 'BEGIN { printf "%d", e * 1000 / ms }')
echo "mirror run: $events events in $(secs "$mirror_ms") s, $mirror_rate events/s"

reconcile() { # OUT_FILE: the --json report; prints the wall ms
	local t0 rc=0
	t0=$(now_ms)
	"$sluice" mirror reconcile -c "$tmp/mirror.toml" --json >"$1" || rc=$?
	[ "$rc" = 0 ] || fail "reconcile failed"
	echo $(($(now_ms) - t0))
}
first_ms=$(reconcile "$tmp/first.json")
jq -e '.added == 0 and .changed == 0 and .removed == 0' "$tmp/first.json" >/dev/null ||
	fail "the first reconcile found differences: $(cat "$tmp/first.json")"
echo "first reconcile (no difference; makes the index): $(secs "$first_ms") s"

q=$((d / 4))
sql "DELETE FROM rec_items WHERE key IN (SELECT key FROM rec_items ORDER BY md5(key) LIMIT $q);
     UPDATE rec_items SET value = 'changed' WHERE key IN (SELECT key FROM rec_items WHERE NOT deleted ORDER BY md5(key || 'c') LIMIT $q);
     UPDATE rec_items SET deleted = true, value = NULL WHERE key IN (SELECT key FROM rec_items WHERE NOT deleted AND value <> 'changed' ORDER BY md5(key || 't') LIMIT $q);
     INSERT INTO rec_items (key, value, version, deleted) SELECT 'extra/' || i, 'x', 1, false FROM generate_series(1, $q) i"
sql "VACUUM ANALYZE rec_items" # as autovacuum would, untimed

ms=$(reconcile "$tmp/timed.json")
r=$(cat "$tmp/timed.json")
[ "$(jq -r '"\(.added)/\(.changed)/\(.removed)"' <<<"$r")" = "$((2 * q))/$q/$q" ] ||
	fail "expected $((2 * q)) added, $q changed, $q removed: $r"
again_ms=$(reconcile "$tmp/again.json")
jq -e '.added == 0 and .changed == 0 and .removed == 0' "$tmp/again.json" >/dev/null ||
	fail "a second reconcile found differences: $(cat "$tmp/again.json")"
bytes=$(jq '.bytes_sent + .bytes_received' <<<"$r")
trips=$(jq '.round_trips' <<<"$r")
again_bytes=$(jq '.bytes_sent + .bytes_received' "$tmp/again.json")
ids=$((n * 32))
keys=$("$helper" sizes "$tmp/store" | sed -n 's/.*key_bytes=\([0-9]*\).*/\1/p')
pct=$(awk -v b="$bytes" -v l="$ids" 'BEGIN { printf "%.2f", 100 * b / l }')
echo "reconcile of $d differences: $(secs "$ms") s, $bytes bytes in $trips round trips ($pct% of the $ids bytes of the ids alone; keys $keys bytes)"
echo "again (no difference): $(secs "$again_ms") s, $again_bytes bytes"

[ "${BENCH_RECORD:-1}" = 0 ] && exit 0
heading="## Mirror reconciliation (\`make bench-mirror\`)"
cat >"$tmp/intro.md" <<'EOF'
`bench/mirror_reconcile_bench.sh BUILD_DIR [N] [D]` (default 1,000,000
keys and 100 differences): a store namespace of N keys `k/<i>` with
32-byte values (built by `bench/reconcile_bench.c`), mirrored by `sluice
mirror run` into a throwaway PostgreSQL; then D differences made behind
the mirror's back (a quarter each: rows deleted, values changed, rows
turned into tombstones, rows added) and `sluice mirror reconcile`, which
must report exactly them; a second reconcile must find none. Bytes are
the request and response bodies of the set reconciliation between the
table's items and the namespace's; the naive columns are what listing
the namespace's whole set would send (every item id, 32 bytes each, or
every key). The seconds are the whole command: reading the table's items
(kept by PostgreSQL in the generated, indexed column sluice_item), the
exchange, and the repairs in one transaction.
EOF
block="### $date_utc, revision $revision

$cpu_model, $(nproc) cores. N = $(printf "%'d" "$n") keys, D = $d.
mirror run: $(printf "%'d" "$events") events in $(secs "$mirror_ms") s ($(printf "%'d" "$mirror_rate") events/s, the table's item hashed by PostgreSQL on every write).

| run | seconds | bytes exchanged | round trips | ids listing | keys listing |
|---|---:|---:|---:|---:|---:|
| first reconcile, no difference (makes the items' index) | $(secs "$first_ms") | $(jq '.bytes_sent + .bytes_received' "$tmp/first.json") | $(jq '.round_trips' "$tmp/first.json") | $(printf "%'d" "$ids") | $(printf "%'d" "$keys") |
| reconcile of $d differences | $(secs "$ms") | $(printf "%'d" "$bytes") ($pct%) | $trips | $(printf "%'d" "$ids") | $(printf "%'d" "$keys") |
| again, no difference | $(secs "$again_ms") | $again_bytes | $(jq '.round_trips' "$tmp/again.json") | | |"
printf '%s\n' "$block" >"$tmp/block.md"
record_results "$results" "$heading" "$tmp/intro.md" "$tmp/block.md"
echo "recorded in bench/RESULTS.md"
