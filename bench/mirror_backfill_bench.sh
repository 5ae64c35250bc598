#!/usr/bin/env bash
# Mirror backfill benchmark (part of `make bench-mirror`): N events applied
# by `sluice mirror backfill work` with 1, 2 and 4 worker processes, next
# to a plain binary COPY of the same rows into a table of the same shape,
# on the same throwaway PostgreSQL in the same run. The goal: the best
# worker count at least 0.5 of the COPY rate on this machine.
#
# The rows are those of bench/mirror_bench.c (N distinct keys of 20
# bytes, values of 180 bytes, version i + 1): `mirror_bench copy` is the
# reference, and `mirror_bench ndjson-gen` writes the same events as an
# NDJSON file, the backfill's source (so reading and parsing the file is
# inside the timed part, in every worker). For each worker count the
# database starts empty (the tables dropped, a CHECKPOINT), `plan` cuts
# the file into 4 ranges per worker, the workers start at once, and the
# time runs from their start to the last one's exit; every range must be
# done and the table must hold N rows, or the benchmark fails.
#
#   bench/mirror_backfill_bench.sh BUILD_DIR [N]   (default 1,000,000)
#   BENCH_WORKERS="1 2 4"   the worker counts
#   BENCH_RECORD=0          print only; else appended to bench/RESULTS.md
set -euo pipefail

build=${1:?usage: bench/mirror_backfill_bench.sh BUILD_DIR [N]}
n=${2:-1000000}
sluice=$build/sluice
helper=$build/mirror_bench
src=$(cd "$(dirname "$0")/.." && pwd)
results=$src/bench/RESULTS.md
[ -x "$sluice" ] && [ -x "$helper" ] || { echo "mirror_backfill_bench.sh: build first (make)" >&2; exit 1; }
BENCH=mirror_backfill_bench.sh
source "$src/bench/bench_common.bash"

date_utc=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
echo "sluice mirror backfill benchmark, $date_utc, N = $n events"
echo "cpu: $cpu_model, $(nproc) cores; revision $revision"
start_pg || fail "PostgreSQL did not start"
sql() { psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

copy_line=$("$helper" copy "$SLUICE_PG_URL" "$n")
copy_rate=$(kv "$copy_line" rows_per_s)
[ -n "$copy_rate" ] || fail "the COPY reference failed: $copy_line"
echo "COPY: $copy_rate rows/s"
"$helper" ndjson-gen "$tmp/events.ndjson" "$n" >/dev/null
printf '%s\n' "[source]" 'type = "ndjson"' "path = \"$tmp/events.ndjson\"" "[postgres]" \
	"url = \"$SLUICE_PG_URL\"" 'table = "mirror_items"' >"$tmp/mirror.toml"

rows=()
best=0
for w in ${BENCH_WORKERS:-1 2 4}; do
	sql "SET client_min_messages = warning; DROP TABLE IF EXISTS copy_items, mirror_items,
	     sluice_mirror_position, sluice_dead_letter, sluice_mirror_gap, sluice_backfill_range; CHECKPOINT"
	"$sluice" mirror backfill plan -c "$tmp/mirror.toml" --job bench --ranges $((4 * w)) >/dev/null
	pids=()
	t0=$(now_ms)
	for i in $(seq 1 "$w"); do
		"$sluice" mirror backfill work -c "$tmp/mirror.toml" --job bench --worker "w$i" --no-wait \
			>"$tmp/w$i.out" 2>&1 &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || fail "a worker failed: $(cat "$tmp"/w*.out)"; done
	ms=$(($(now_ms) - t0))
	"$sluice" mirror backfill status -c "$tmp/mirror.toml" --job bench --json >"$tmp/status.json" ||
		fail "status: $(cat "$tmp/status.json")"
	[ "$(sql "SELECT count(*) FROM mirror_items")" = "$n" ] || fail "$w workers: the table does not hold $n rows"
	[ "$(sql "SELECT count(*) FROM sluice_backfill_range WHERE state <> 'done'")" = 0 ] ||
		fail "$w workers: ranges not done"
	rate=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%d", n * 1000 / ms }')
	ratio=$(awk -v r="$rate" -v c="$copy_rate" 'BEGIN { printf "%.2f", r / c }')
	[ "$rate" -gt "$best" ] && best=$rate
	echo "$w workers: $rate rows/s in $(awk -v ms="$ms" 'BEGIN { printf "%.2f", ms / 1000 }') s ($ratio of COPY)"
	rows+=("| backfill, $w worker processes, $((4 * w)) ranges | $(printf "%'d" "$rate") rows/s | $ratio | $(awk -v ms="$ms" 'BEGIN { printf "%.2f", ms / 1000 }') s |")
done
best_ratio=$(awk -v r="$best" -v c="$copy_rate" 'BEGIN { printf "%.2f", r / c }')
goal=$(awk -v r="$best_ratio" 'BEGIN { print (r >= 0.5) ? "met" : "missed" }')
echo "best: $best_ratio of COPY (goal 0.5: $goal)"

[ "${BENCH_RECORD:-1}" = 0 ] && exit 0
heading="## Mirror backfill (\`make bench-mirror\`)"
cat >"$tmp/intro.md" <<'EOF'
`bench/mirror_backfill_bench.sh BUILD_DIR [N]` (default 1,000,000
events): the events of `bench/mirror_bench.c` (distinct keys of 20 bytes,
values of 180, one event per key) in an NDJSON file, applied by `sluice
mirror backfill work` processes (1, 2, 4; `plan` cut the file into 4
ranges per worker) into a fresh default table, next to `mirror_bench
copy`: one binary COPY of the same rows into a table of the same shape
(the mirror's own, generated item column included) on the same server.
Each backfill is timed from its workers' start to the last one's exit,
so it includes reading and parsing the file in every worker, the claims,
and every batch's transaction (the range's compare-and-set first). Goal:
the best worker count at least 0.5 of the COPY rate.
EOF
block="### $date_utc, revision $revision

$cpu_model, $(nproc) cores. N = $(printf "%'d" "$n") events.

| run | rate | of COPY | wall |
|---|---:|---:|---:|
| COPY of the same rows (reference) | $(printf "%'d" "$copy_rate") rows/s | 1.00 | |
$(printf '%s\n' "${rows[@]}")

Best: $best_ratio of COPY: goal $goal."
printf '%s\n' "$block" >"$tmp/block.md"
record_results "$results" "$heading" "$tmp/intro.md" "$tmp/block.md"
echo "recorded in bench/RESULTS.md"
