#!/usr/bin/env bash
# Set reconciliation benchmark (`make bench-reconcile`): what `sluice diff
# --peer` costs to find d differences between two namespaces of N keys, in
# round trips, bytes, the server's CPU and the client's time, next to what
# sending one side's whole set would cost.
#
# A base store (mutable namespace `m`, N keys `k/<i>` with 32-byte values,
# commits of 10,000) is built once by bench/reconcile_bench.c. For each case
# it is copied to A and B, d differences are applied (a third only in A, a
# third only in B, a third with different values; scattered uniformly over
# the keys or clustered in item order), `sluice serve` serves B, and
# `sluice diff -d A m --peer` runs twice: cold (the server's first request,
# which builds its in-memory view of the items) and warm. Each run's lists
# must equal the differences applied, or the benchmark fails. A last case
# repeats d = 100 after both copies rewrote enough keys that the server's
# view replays a tail of nearly 262,144 operations (the default
# state_flush_ops), the most a store leaves unflushed. The table is
# printed and appended, with the machine and revision, to bench/RESULTS.md
# (BENCH_RECORD=0: print only).
#
#   bench/reconcile_bench.sh BUILD_DIR [N]      (default N = 1,000,000)
#   RECONCILE_SEED=S   seed of the differences (default 20261203)
set -euo pipefail

build=${1:?usage: bench/reconcile_bench.sh BUILD_DIR [N]}
n=${2:-1000000}
seed=${RECONCILE_SEED:-20261203}
sluice=$build/sluice
helper=$build/reconcile_bench
src=$(cd "$(dirname "$0")/.." && pwd)
results=$src/bench/RESULTS.md
if [ ! -x "$sluice" ] || [ ! -x "$helper" ]; then
	echo "reconcile_bench.sh: build $sluice and $helper first (make)" >&2
	exit 1
fi
BENCH=reconcile_bench.sh
source "$src/bench/bench_common.bash"

date_utc=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
echo "sluice reconciliation benchmark, $date_utc, N = $n keys, seed $seed"
echo "cpu: $cpu_model, $(nproc) cores; revision $revision"
echo

# ------------------------------------------------------------- the base
start=$(now_ms)
"$helper" build "$tmp/base" "$n" >/dev/null
build_ms=$(($(now_ms) - start))
build_s=$(awk -v ms="$build_ms" 'BEGIN { printf "%.1f", ms / 1000 }')
base_tail=$("$helper" sizes "$tmp/base" | sed -n 's/.*tail=\(-*[0-9]*\).*/\1/p')
echo "base store: $n keys built in ${build_s} s ($(du -sh "$tmp/base" | cut -f1) on disk; $base_tail operations not yet in its state table)"
fingerprints=$("$helper" fingerprints "$tmp/base" 100000)
fp_us=$(sed -n 's/.*us_per_fingerprint=\([0-9.]*\).*/\1/p' <<<"$fingerprints")
fp_open=$(sed -n 's/.*open_ms=\([0-9.]*\).*/\1/p' <<<"$fingerprints")
echo "range fingerprints: $fp_us us each over 100000 random ranges of the $n items, after $fp_open ms to open them"

# ------------------------------------------------------------- the cases
rows=()
goal_lines=()
# run_case D LAYOUT INDEX REWRITE: REWRITE keys get the same new values in
# both copies first.
run_case() {
	local d=$1 layout=$2 index=$3 rewrite=$4 dir=$tmp/case run shown=$2
	local sizes ids keys tail c0 c1 t0 t1 want got
	rm -rf "$dir"
	mkdir -p "$dir"
	cp -a "$tmp/base" "$dir/A"
	cp -a "$tmp/base" "$dir/B"
	if [ "$rewrite" -gt 0 ]; then
		"$helper" rewrite "$dir/A" "$rewrite"
		"$helper" rewrite "$dir/B" "$rewrite"
		shown="$layout, long tail"
	fi
	"$helper" perturb "$dir/A" "$dir/B" "$d" "$layout" $((seed + index)) \
		>"$dir/expected.json" 2>"$dir/perturb.log" || { cat "$dir/perturb.log" >&2; fail "perturb failed"; }
	sed 's/^reconcile_bench: /  /' "$dir/perturb.log"
	sizes=$("$helper" sizes "$dir/B")
	ids=$(sed -n 's/.*id_bytes=\([0-9]*\).*/\1/p' <<<"$sizes")
	keys=$(sed -n 's/.*key_bytes=\([0-9]*\).*/\1/p' <<<"$sizes")
	tail=$(sed -n 's/.*tail=\(-*[0-9]*\).*/\1/p' <<<"$sizes")
	echo "  B: $tail operations not yet in its state table"
	want=$(jq -c '{only_local, only_remote, different}' "$dir/expected.json")
	[ "$d" != 0 ] || shown=-

	start_server "$dir/B" -m 0
	for run in cold warm; do
		c0=$(cpu_ms "$server")
		t0=$(now_ms)
		timeout 600 /usr/bin/time -f '%U %S' -o "$dir/time" "$sluice" diff -d "$dir/A" m \
			--peer "127.0.0.1:$port" --json >"$dir/diff.json" 2>"$dir/diff.err" ||
			{ cat "$dir/diff.err" >&2; fail "d=$d $layout $run: sluice diff failed"; }
		t1=$(now_ms)
		c1=$(cpu_ms "$server")
		got=$(jq -c '{only_local, only_remote, different}' "$dir/diff.json")
		if [ "$got" != "$want" ] || [ "$(jq .vanished "$dir/diff.json")" != 0 ]; then
			echo "expected $(jq -c '[.only_local, .only_remote, .different] | map(length)' "$dir/expected.json")" \
				"(only_local, only_remote, different), got" \
				"$(jq -c '[.only_local, .only_remote, .different] | map(length)' "$dir/diff.json")," \
				"vanished $(jq .vanished "$dir/diff.json")" >&2
			fail "d=$d $layout $run: sluice diff reported the wrong differences"
		fi
		local rt sent recv client_cpu
		rt=$(jq .round_trips "$dir/diff.json")
		sent=$(jq .bytes_sent "$dir/diff.json")
		recv=$(jq .bytes_received "$dir/diff.json")
		client_cpu=$(awk '{ printf "%.0f", ($1 + $2) * 1000 }' "$dir/time")
		rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %s |' \
			"$d" "$shown" "$tail" "$run" "$rt" "$sent" "$recv" \
			"$(awk -v b=$((sent + recv)) 'BEGIN { print b / 1024 }')" \
			$((c1 - c0)) $((t1 - t0)) "$client_cpu" "$ids" "$keys")")
		printf '  %-4s round trips %2s, %8s B sent, %8s B received, server CPU %5s ms, client %5s ms wall %5s ms CPU\n' \
			"$run" "$rt" "$sent" "$recv" $((c1 - c0)) $((t1 - t0)) "$client_cpu"
		check_goal "$d" "$shown" "$run" "$rt" $((sent + recv))
	done
	stop_server
	rm -rf "$dir"
}

# The goals: d = 0 in one round trip of under 1 KiB; d = 100 in at most 4
# round trips and 256 KiB.
check_goal() {
	local d=$1 layout=$2 run=$3 rt=$4 bytes=$5 verdict
	[ "$layout" = - ] || layout=" $layout"
	case $d in
	0)
		if [ "$rt" -eq 1 ] && [ "$bytes" -lt 1024 ]; then verdict=met
		else verdict="missed (goal: 1 round trip, < 1024 B)"; fi ;;
	100)
		if [ "$rt" -le 4 ] && [ "$bytes" -le 262144 ]; then verdict=met
		else verdict="missed by $((rt > 4 ? rt - 4 : 0)) round trips and $((bytes > 262144 ? bytes - 262144 : 0)) B (goal: <= 4, <= 262144 B)"; fi ;;
	*) return 0 ;;
	esac
	goal_lines+=("- d = $d${layout#-}, $run: round trips $rt, $bytes B in total: $verdict")
}

# Keys to rewrite for the long tail: two operations each in a mutable
# namespace (the put and the floor's re-append), leaving room below
# 262,144 for the base's own tail and the differences.
long=$(((262144 - 2000 - (base_tail > 0 ? base_tail : 0)) / 2 / 1000 * 1000))
[ "$long" -le "$n" ] || long=$n
cases=("0 scattered 0" "1 scattered 0" "100 scattered 0" "100 clustered 0" "10000 scattered 0"
	"10000 clustered 0" "100 scattered $long")
index=0
for c in "${cases[@]}"; do
	read -r d layout rewrite <<<"$c"
	[ "$d" -le "$n" ] || continue
	index=$((index + 1))
	if [ "$d" = 0 ]; then echo "d = 0"; else echo "d = $d, $layout"; fi
	[ "$rewrite" = 0 ] || echo "  both copies rewrite $rewrite keys first"
	run_case "$d" "$layout" "$index" "$rewrite"
done

# ------------------------------------------------------------- the table
table=$(
	echo "| d | layout | B's tail (ops) | run | round trips | sent (B) | received (B) | total (KiB) | server CPU (ms) | client wall (ms) | client CPU (ms) | naive: every id (B) | naive: every key (B) |"
	echo "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
)
block=$(
	echo "### Run of $date_utc (N = $n)"
	echo
	echo "Machine: $(nproc) cores, $cpu_model; revision $revision; base store of $n keys built in ${build_s} s; seed $seed."
	echo
	echo "Range fingerprints on the base store: $fp_us µs each (the sums of 100,000 random index ranges of the $n items, in one process, after $fp_open ms to build the view)."
	echo
	echo "$table"
	echo
	echo "Goals, as measured:"
	echo
	printf '%s\n' "${goal_lines[@]}"
)
echo
echo "$table"
echo
printf '%s\n' "${goal_lines[@]}"

[ "${BENCH_RECORD:-1}" != 0 ] || exit 0
# shellcheck disable=SC2016 # the backquotes are markdown
heading='## Set reconciliation (`make bench-reconcile`)'
cat >"$tmp/intro.md" <<EOF
\`bench/reconcile_bench.sh BUILD_DIR [N]\` (default N = 1,000,000): a store
whose mutable namespace \`m\` holds N keys \`k/<i>\` with 32-byte values
(built through the library by \`bench/reconcile_bench.c\`, commits of
10,000, durable=0) is copied to A and B for each case, and d differences
are applied: a third of the keys only in A, a third only in B, a third
with different values (d = 1: one key with different values). Scattered
picks the keys uniformly; clustered picks d consecutive items in item
order and draws the new values until their items fall in the same
stretch, so every differing item is in one range. \`sluice serve\` serves B
and \`sluice diff -d A m --peer\` runs twice: cold, the server's first
request, which builds its in-memory view of the items, and warm. Every
run's three lists are checked against the differences applied. Round
trips count reconciliation rounds and item reads; bytes are request and
response bodies. Server CPU is the serve process's utime + stime over the
diff (/proc/PID/stat, 10 ms ticks); the client's wall and CPU time cover
the whole \`sluice diff\` process, which opens A and builds its own view
each time. "B's tail" is how many operations B's log holds beyond its
state table (size - state_loc), which a handle replays to build its view
of the items; A's is the same give or take the differences. The last
case, "long tail", repeats d = 100 after both copies rewrote enough keys
to bring the tail near 262,144, the most a store leaves unflushed by
default. The naive columns are B's whole set sent once: every item id
(count x 32 B), and every key (its bytes plus its length as a LEB128
varint, one byte here).
EOF
printf '%s\n' "$block" >"$tmp/block.md"
record_results "$results" "$heading" "$tmp/intro.md" "$tmp/block.md"
