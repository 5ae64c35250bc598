#!/usr/bin/env bash
# DAG sync benchmark (`make bench-dag`): a bootstrap of N entries, every
# one verified before it is stored, next to the rate at which this machine
# can verify Ed25519 signatures at all; and a fork of N common entries with
# F new entries on each side, in round trips and bytes, next to the bytes
# of the new entries themselves and of a full transfer (the bootstrap's),
# measured in the same run.
#
#   bench/dag_bench.sh BUILD_DIR [N] [F]     (default N = 1,000,000, F = 50)
#
# The base store (tests/tools/dag_fill: one chain of N entries, each
# setting one key to a 32-byte value) is built once. Bootstrap: `sluice
# serve` serves it; a fresh store with the same node key (an admin, so no
# approval step) joins by ticket and syncs once (bench/dag_bench.c, which
# reports round trips and bytes). Fork: two copies of the base each get F
# entries written with `sluice put`, one copy is served, the other syncs
# once both ways. Both syncs must end equal, with the same tips on both
# sides, or the benchmark fails. The table is printed and appended, with
# the machine and revision, to bench/RESULTS.md (BENCH_RECORD=0: print
# only).
set -euo pipefail

build=${1:?usage: bench/dag_bench.sh BUILD_DIR [N] [F]}
n=${2:-1000000}
forks=${3:-50}
sluice=$build/sluice
fill=$build/dag_fill
helper=$build/dag_bench
src=$(cd "$(dirname "$0")/.." && pwd)
results=$src/bench/RESULTS.md
for b in "$sluice" "$fill" "$helper"; do
	[ -x "$b" ] || { echo "dag_bench.sh: build $b first (make)" >&2; exit 1; }
done
BENCH=dag_bench.sh
source "$src/bench/bench_common.bash"

tips() { # DIR
	"$sluice" dag tips --json d -d "$1" | jq -r .id | sort | tr '\n' ' '
}
field() { # JSON NAME
	jq -r ".$2" <<<"$1"
}

date_utc=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cores=$(nproc)
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
echo "sluice DAG sync benchmark, $date_utc, N = $n entries, F = $forks"
echo "cpu: $cpu_model, $cores cores; revision $revision"

# ------------------------------------------------------------- the limit
rate=$("$helper" verify-rate 3)
us_verify=$(sed -n 's/.*us_per_verify=\([0-9.]*\).*/\1/p' <<<"$rate")
per_core=$(sed -n 's/.*verifies_per_s=\([0-9]*\).*/\1/p' <<<"$rate")
limit=$((per_core * cores))
echo "Ed25519 verification: $us_verify us each on one thread: at most $per_core entries/s a core, $limit on $cores"

# ------------------------------------------------------------- the base
start=$(now_ms)
"$fill" "$tmp/base" d "$n" >/dev/null
build_s=$(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.1f", ms / 1000 }')
echo "base: $n entries built and verified in $build_s s ($(du -sh "$tmp/base" | cut -f1) on disk)"

# ------------------------------------------------------------- bootstrap
start_server "$tmp/base" -m off --dag-sync off
"$sluice" init -d "$tmp/c" >/dev/null
cp "$tmp/base/node.key" "$tmp/c/node.key"
ticket=$("$sluice" ticket d --addr "127.0.0.1:$port" -d "$tmp/base")
"$sluice" join "$ticket" -d "$tmp/c" >/dev/null
c0=$(cpu_ms "$server")
/usr/bin/time -f '%U %S' -o "$tmp/time" "$helper" sync "$tmp/c" d >"$tmp/boot.json" ||
	fail "the bootstrap did not end equal"
c1=$(cpu_ms "$server")
boot=$(cat "$tmp/boot.json")
boot_server=$((c1 - c0))
[ "$(tips "$tmp/c")" = "$(tips "$tmp/base")" ] || fail "after the bootstrap the tips differ"
boot_ms=$(field "$boot" ms)
boot_pulled=$(field "$boot" pulled)
boot_rate=$(awk -v e="$boot_pulled" -v ms="$boot_ms" 'BEGIN { printf "%.0f", e * 1000 / ms }')
boot_bytes=$(($(field "$boot" bytes_sent) + $(field "$boot" bytes_received)))
boot_client=$(awk '{ printf "%.0f", ($1 + $2) * 1000 }' "$tmp/time")
echo "bootstrap: $boot_pulled entries in $boot_ms ms = $boot_rate entries/s," \
	"$(field "$boot" round_trips) round trips, $boot_bytes B; server CPU $boot_server ms, client CPU $boot_client ms"
stop_server
rm -rf "$tmp/c"

# ------------------------------------------------------------- the fork
cp -a "$tmp/base" "$tmp/a"
mv "$tmp/base" "$tmp/b"
base_height=$((n - 1))
for side in a b; do
	for i in $(seq 1 "$forks"); do
		printf '%s-%d-%032d' "$side" "$i" 0 | "$sluice" put d "fork/$side/$i" -d "$tmp/$side"
	done
done
new_a=$("$helper" entry-bytes "$tmp/a" d "$base_height")
new_b=$("$helper" entry-bytes "$tmp/b" d "$base_height")
new_bytes=$(($(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$new_a") + $(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$new_b")))
start_server "$tmp/b" -m off --dag-sync off
"$sluice" peer add "127.0.0.1:$port" d -d "$tmp/a" >/dev/null
c0=$(cpu_ms "$server")
"$helper" sync "$tmp/a" d >"$tmp/fork.json" || fail "the fork's sync did not end equal"
c1=$(cpu_ms "$server")
fork=$(cat "$tmp/fork.json")
stop_server
[ "$(tips "$tmp/a")" = "$(tips "$tmp/b")" ] || fail "after the fork's sync the tips differ"
fork_rt=$(field "$fork" round_trips)
fork_bytes=$(($(field "$fork" bytes_sent) + $(field "$fork" bytes_received)))
[ "$(field "$fork" pulled)" = "$forks" ] && [ "$(field "$fork" pushed)" = "$forks" ] ||
	fail "the fork's sync pulled $(field "$fork" pulled) and pushed $(field "$fork" pushed), not $forks each"
echo "fork: $fork_rt round trips, $(field "$fork" bytes_sent) B sent, $(field "$fork" bytes_received) B received," \
	"$(field "$fork" ms) ms, server CPU $((c1 - c0)) ms; the $((2 * forks)) new entries and their values: $new_bytes B"

# ------------------------------------------------------------- goals
goal_rt=6 goal_overhead=65536
if [ "$fork_rt" -le "$goal_rt" ] && [ "$fork_bytes" -lt $((goal_overhead + new_bytes)) ]; then
	fork_verdict=met
else
	fork_verdict="missed (goal: <= $goal_rt round trips, < $goal_overhead B + the new entries)"
fi
if [ "$boot_rate" -ge 100000 ]; then
	boot_verdict=met
else
	boot_verdict="missed: the goal is 100,000/s; verifying signatures alone allows at most $limit/s on this machine"
fi
overhead=$((fork_bytes - new_bytes))
table=$(
	echo "| case | entries moved | round trips | sent (B) | received (B) | wall (ms) | entries/s | server CPU (ms) | reference |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
	printf '| bootstrap of %s | %s | %s | %s | %s | %s | %s | %s | verify limit %s/s (%s cores x %s/s) |\n' \
		"$n" "$boot_pulled" "$(field "$boot" round_trips)" "$(field "$boot" bytes_sent)" \
		"$(field "$boot" bytes_received)" "$boot_ms" "$boot_rate" "$boot_server" \
		"$limit" "$cores" "$per_core"
	printf '| fork, %s new a side | %s | %s | %s | %s | %s | - | %s | new entries %s B; full transfer %s B |\n' \
		"$forks" "$((2 * forks))" "$fork_rt" "$(field "$fork" bytes_sent)" \
		"$(field "$fork" bytes_received)" "$(field "$fork" ms)" "$((c1 - c0))" "$new_bytes" "$boot_bytes"
)
echo
echo "$table"
echo
echo "- fork: $fork_rt round trips, $fork_bytes B = the new entries ($new_bytes B) + $overhead B: $fork_verdict"
echo "- bootstrap: $boot_rate verified entries/s: $boot_verdict"

[ "${BENCH_RECORD:-1}" != 0 ] || exit 0
# shellcheck disable=SC2016 # the backquotes are markdown
heading='## DAG sync (`make bench-dag`)'
cat >"$tmp/intro.md" <<EOF
\`bench/dag_bench.sh BUILD_DIR [N] [F]\` (default N = 1,000,000, F = 50).
The base store is one chain of N entries of a dag namespace, each setting
one key to a 32-byte value, made by \`tests/tools/dag_fill\` through
\`sl_dag_insert\` (so every entry was verified as a received one is).
Bootstrap: \`sluice serve\` serves it (default 16 MiB pages) and a fresh
store with the same node key joins by ticket and syncs once; every entry
is decoded, its id recomputed, its signature, parents, height and author's
right checked before it is stored. The reference is the most entries a
second that this machine can verify at all: one thread's Ed25519
verifications a second (libsodium, 250-byte messages) times the cores.
Fork: two copies of the base each get F entries (\`sluice put\`), one is
served and the other syncs once, both ways; "new entries" is the bytes of
those 2F entries and their values, what any protocol must move, and "full
transfer" is the bootstrap's bytes in the same run. Round trips count
requests; bytes are request and response bodies. Both syncs must end with
the same tips on both sides or the benchmark fails.
EOF
block=$(
	echo "### Run of $date_utc (N = $n, F = $forks)"
	echo
	echo "Machine: $cores cores, $cpu_model; revision $revision; base of $n entries built in $build_s s."
	echo
	echo "$table"
	echo
	echo "Goals, as measured:"
	echo
	echo "- fork: $fork_rt round trips, $fork_bytes B = the new entries ($new_bytes B) + $overhead B: $fork_verdict"
	echo "- bootstrap: $boot_rate verified entries/s: $boot_verdict"
)
printf '%s\n' "$block" >"$tmp/block.md"
record_results "$results" "$heading" "$tmp/intro.md" "$tmp/block.md"
